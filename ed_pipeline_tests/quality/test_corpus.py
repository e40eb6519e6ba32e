"""Every malformed file of the corpus gives its clear table problem, or its quarantine, and loses no row."""

from __future__ import annotations

import json

import polars as pl
import pytest

from ed_pipeline.quality import raw_schema, read_extract, validate
from ed_pipeline.sources import get_source
from ed_pipeline_tests.quality.corpus import CASES, MONTH, Case


def test_corpus_files_are_committed_and_current():
    for case in CASES:
        assert case.path.is_file(), f"{case.path} missing: run python -m ed_pipeline_tests.quality.corpus"
        assert case.path.read_bytes() == case.content, f"{case.path} is stale: rerun the corpus generator"


@pytest.mark.parametrize("case", CASES, ids=lambda c: f"{c.source}/{c.name}")
def test_corpus_case(case: Case):
    source = get_source(case.source)
    ex = read_extract(case.path, source, MONTH)
    assert ex.frame.schema == pl.Schema(raw_schema(source))
    for words in case.warning_words:
        assert any(words in w for w in ex.warnings), (words, ex.warnings)

    if case.problem_kind:
        assert [p.kind for p in ex.problems] == [case.problem_kind]
        problem = ex.problems[0]
        assert problem.file == str(case.path)
        assert problem.message.startswith(str(case.path))
        assert problem.problem in problem.message and problem.remedy in problem.message
        for words in case.message_words:
            assert words in problem.message, (words, problem.message)
        assert ex.frame.height == 0
        return

    assert ex.problems == [], [p.message for p in ex.problems]
    assert ex.frame.height == case.rows  # every data row of the file is there
    assert ex.frame["_row_number"].to_list() == list(range(1, case.rows + 1))
    v = validate(ex.frame, source)
    s = v.summary
    assert s["reconciled"] and s["rows_in"] == case.rows
    assert s["rows_validated_raw"] + s["rows_quarantined"] == case.rows
    got = dict(zip(v.quarantine["_row_number"].to_list(), v.quarantine["rule"].to_list(), strict=True))
    assert got == case.quarantined, v.quarantine.select("_row_number", "rule", "column", "value").to_dicts()
    assert set(v.validated["_row_number"].to_list()).isdisjoint(got)
    for row in v.quarantine.iter_rows(named=True):
        failures = json.loads(row["failures"])
        assert failures[0] == {"rule": row["rule"], "column": row["column"], "value": row["value"]}
        assert set(json.loads(row["raw_row"])) == set(source.columns)  # the raw values travel with the row
