"""Reading extracts: table-level problems are named without quoting a cell of the file (no GX here: fast)."""

from __future__ import annotations

from pathlib import Path

import pytest

from ed_pipeline.quality import read_extract
from ed_pipeline.sources import SOURCES, Source
from ed_pipeline_tests.quality.valid_rows import to_csv, valid_rows


@pytest.mark.parametrize("source", SOURCES, ids=lambda s: s.name)
def test_a_file_without_its_header_is_named_without_quoting_its_first_row(source: Source, tmp_path: Path):
    """A headerless extract's first line is a person's row: the problem (Dagster's check description, the
    refresh's output) says the header is missing and quotes none of its names, dates of birth or numbers."""
    rows = valid_rows(source, 3, "2014-07", start=1)
    path = tmp_path / "2014-07.csv"
    path.write_text(to_csv(source, rows).split("\n", 1)[1], encoding="utf-8")
    ex = read_extract(path, source, "2014-07")
    assert [p.kind for p in ex.problems] == ["missing_header"]
    message = ex.problems[0].message
    assert "header" in message and ex.frame.height == 0
    first = [v for v in rows[0].values() if len(v) >= 4]
    assert first and not [v for v in first if v in message], message
