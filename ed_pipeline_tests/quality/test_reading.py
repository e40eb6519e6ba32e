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


def test_a_file_that_cannot_be_read_is_a_table_problem_not_a_crash(tmp_path: Path, monkeypatch):
    """A file dropped without read permission (or on a failing disk) is that month's problem, named in the blocking
    check; raising instead failed the source's whole run, so the refresh loaded none of its other months."""
    source = SOURCES[0]
    path = tmp_path / "2014-07.csv"
    path.write_text(to_csv(source, valid_rows(source, 2, "2014-07")), encoding="utf-8")

    def denied(self):
        raise PermissionError(13, "Permission denied", str(self))

    monkeypatch.setattr(Path, "read_bytes", denied)
    ex = read_extract(path, source, "2014-07")
    assert [p.kind for p in ex.problems] == ["unreadable_file"] and ex.frame.height == 0
    assert ex.problems[0].message.startswith(str(path))


def test_a_utf16_file_is_named_as_such_not_as_windows_1252(tmp_path: Path):
    """Excel's "Unicode Text" export is UTF-16 with a byte-order mark; every byte sequence decodes as cp1252 too,
    so the hint said Latin-1/Windows-1252, which sent the agency to the wrong setting."""
    source = SOURCES[0]
    path = tmp_path / "2014-07.csv"
    path.write_bytes(to_csv(source, valid_rows(source, 2, "2014-07")).encode("utf-16"))
    ex = read_extract(path, source, "2014-07")
    assert [p.kind for p in ex.problems] == ["not_utf8"]
    assert "UTF-16" in ex.problems[0].message and "1252" not in ex.problems[0].message


@pytest.mark.parametrize("encoding", ["utf-16-le", "utf-16-be"])
@pytest.mark.parametrize("letters", ["ascii", "latin"])
def test_a_utf16_file_without_a_byte_order_mark_is_named_as_utf16(encoding: str, letters: str, tmp_path: Path):
    """Without its mark, UTF-16 text in ASCII letters decodes as UTF-8 (NUL is valid), and was named a file without
    its header; with a letter such as "ë" it failed to decode and was named Latin-1/Windows-1252."""
    source = SOURCES[0]
    text = to_csv(source, valid_rows(source, 2, "2014-07"))
    text = text.encode("ascii", "ignore").decode() if letters == "ascii" else text
    assert text.isascii() == (letters == "ascii")  # the template rows hold "Zoë"
    path = tmp_path / "2014-07.csv"
    path.write_bytes(text.encode(encoding))
    ex = read_extract(path, source, "2014-07")
    assert [p.kind for p in ex.problems] == ["not_utf8"]
    message = ex.problems[0].message
    assert "(it is UTF-16)" in message and encoding[-2:].upper() in message and "1252" not in message, message


def test_rows_of_delimiters_under_the_data_are_skipped_not_quarantined(tmp_path: Path):
    """Excel writes ",,,,," for each formatted but empty row of a sheet: those are no records (they were quarantined
    as a record without its key, one each, over the 10% alert); a row with any value is still read."""
    source = SOURCES[0]
    rows = valid_rows(source, 2, "2014-07")
    empty = "," * (len(source.columns) - 1) + "\n"
    half = "," * (len(source.columns) - 2) + "N1\n"
    path = tmp_path / "2014-07.csv"
    path.write_text(to_csv(source, rows) + empty * 5 + half + " , ,\n", encoding="utf-8")
    ex = read_extract(path, source, "2014-07")
    assert ex.frame.height == 3 and ex.frame["_row_number"].to_list() == [1, 2, 3]
    assert any("6 row(s) with no value at all left out" in w for w in ex.warnings), ex.warnings


@pytest.mark.parametrize("line_end", ["\n", "\r\n"], ids=["LF", "CRLF"])
def test_a_lone_cr_inside_a_line_is_data_not_the_end_of_a_record(line_end: str, tmp_path: Path):
    """csv ends a record at a bare CR even in an unquoted value: `Flat 2<CR>3 High Road` made two records, both
    quarantined for their number of fields, and the file a row longer. In a file whose lines end in LF or CRLF it
    is data, kept in its value as csv keeps one inside quotes (the address's tokens read it as a space)."""
    from ed_pipeline.privacy.normalise import normalise_address, normalise_value

    source = next(s for s in SOURCES if s.name == "housing")
    rows = valid_rows(source, 3, "2014-07", start=1)
    rows[1]["address"] = "Flat 2|3 High Road"
    rows[2]["address"] = "Flat 4|5 High Road"
    path = tmp_path / "2014-07.csv"
    text = to_csv(source, rows).replace("Flat 4|5 High Road", '"Flat 4|5 High Road"')  # quoted: data before too
    path.write_bytes(text.replace("\n", line_end).replace("|", "\r").encode())
    ex = read_extract(path, source, "2014-07")
    assert ex.problems == [] and ex.frame["_parse_error"].is_null().all()
    assert ex.frame["_row_number"].to_list() == [1, 2, 3]
    assert ex.frame["application_no"].to_list() == [r["application_no"] for r in rows]
    assert ex.frame["address"].to_list()[1:] == ["Flat 2\r3 High Road", "Flat 4\r5 High Road"]
    assert any("2 CR(s) not at the end of a line kept" in w for w in ex.warnings), ex.warnings
    assert normalise_value(normalise_address, "Flat 2\r3 High Road") == normalise_value(normalise_address,
                                                                                         "Flat 2 3 High Road")


def test_a_classic_mac_file_still_ends_its_lines_at_each_cr(tmp_path: Path):
    source = SOURCES[0]
    path = tmp_path / "2014-07.csv"
    path.write_bytes(to_csv(source, valid_rows(source, 3, "2014-07")).replace("\n", "\r").encode())
    ex = read_extract(path, source, "2014-07")
    assert ex.problems == [] and ex.frame.height == 3 and ex.frame["_parse_error"].is_null().all()
