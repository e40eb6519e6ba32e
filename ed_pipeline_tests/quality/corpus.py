"""The malformed-extract corpus: each case is a real file under corpus/ and the outcome it must give.

The files are committed; `python -m ed_pipeline_tests.quality.corpus` rewrites them from
the valid template rows below, and a test checks that the committed files are current.
A case either expects a table-level problem (`problem_kind` plus words its message must
contain) or a row-level outcome: how many data rows the file holds and which row numbers
are quarantined, with which first rule.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from ed_pipeline.sources import Source, get_source
from ed_pipeline_tests.quality.valid_rows import to_csv, valid_rows

CORPUS_DIR = Path(__file__).parent / "corpus"
MONTH = "2014-03"
N_ROWS = 4


@dataclass(frozen=True)
class Case:
    name: str
    source: str
    content: bytes
    problem_kind: str | None = None
    message_words: tuple[str, ...] = ()
    rows: int = N_ROWS  # data rows in the file: raw rows must equal this (nothing lost)
    quarantined: dict[int, str] = field(default_factory=dict)  # _row_number -> first rule
    warning_words: tuple[str, ...] = ()

    @property
    def path(self) -> Path:
        return CORPUS_DIR / self.source / f"{self.name}.csv"


def _text(source: Source, edit: Callable[[list[dict[str, str]]], None] | None = None,
          header: list[str] | None = None) -> str:
    rows = valid_rows(source, N_ROWS, MONTH, start=1)
    if edit:
        edit(rows)
    return to_csv(source, rows, header)


def _set(row: int, column: str, value: str) -> Callable[[list[dict[str, str]]], None]:
    def edit(rows: list[dict[str, str]]) -> None:
        rows[row - 1][column] = value

    return edit


def _cases() -> list[Case]:
    sc = get_source("social_care")
    bn = get_source("benefits")
    yo = get_source("youth_offending")
    cols = list(sc.columns)
    good = _text(sc)
    cases = [
        Case("zero_bytes", "social_care", b"", "empty_file", ("zero_bytes.csv", "empty", "re-send")),
        Case("missing_column", "social_care", _text(sc, header=[c for c in cols if c != "postcode"]).encode(),
             "missing_columns", ("missing_column.csv", "postcode", "re-export with the agreed header")),
        Case("renamed_column", "social_care",
             good.replace("dob,", "date_of_birth,", 1).encode(), "missing_columns",
             ("renamed_column.csv", "missing column(s) dob", "unexpected column(s) found: date_of_birth")),
        Case("semicolon_delimiter", "social_care",
             _semicolons(good).encode(), "wrong_delimiter",
             ("semicolon_delimiter.csv", "semicolon-delimited", "re-export it comma-delimited")),
        Case("latin1_zoe", "social_care", good.replace("Zoë", "Zoë").encode("latin-1"), "not_utf8",
             ("latin1_zoe.csv", "not valid UTF-8", "byte 0xeb", "line 2", "re-export the extract encoded as UTF-8")),
        Case("extra_column", "social_care", _text(sc, header=[*cols, "case_worker"]).encode(),
             warning_words=("extra column(s) ignored: case_worker",)),
        Case("utf8_bom", "social_care", b"\xef\xbb\xbf" + good.encode(), warning_words=("byte-order mark",)),
        Case("crlf", "social_care", good.replace("\n", "\r\n").encode(), warning_words=("CRLF",)),
        # a CR typed into an unquoted value of a CRLF file is data: csv ended the record there (two halves
        # quarantined, one row more); now the address keeps it and validates, the name fails as a name
        Case("lone_cr_in_value", "social_care",
             _text(sc, _edits(_set(2, "address_line_1", "Flat 2|3 Vange Hill Drive"), _set(3, "child_forename",
                                                                                            "Mary|Jane")))
             .replace("\n", "\r\n").replace("|", "\r").encode(),
             quarantined={3: "name_characters"}, warning_words=("CR(s) not at the end of a line",)),
        Case("header_only", "social_care", good.splitlines(keepends=True)[0].encode(), rows=0,
             warning_words=("header only",)),
        Case("truncated_last_line", "social_care", good.rstrip("\n")[: -len(good.splitlines()[-1]) // 2].encode(),
             quarantined={4: "row_parses"}),
        Case("truncated_in_quote", "social_care", (good + '9999,"Ann,Smi').encode(), rows=N_ROWS + 1,
             quarantined={5: "row_parses"}),
        Case("ragged_extra_fields", "social_care", _append_fields(good, 2, ["x", "y"]).encode(),
             quarantined={2: "row_parses"}),
        # Excel's trailing comma on the header only (or on some rows): every row is read, none quarantined
        Case("header_trailing_comma", "social_care", _append_fields(_append_fields(good, 0, [""]), 3, [""]).encode(),
             warning_words=("comma after its last column",)),
        # ... but a value under that unnamed column is still a row problem, kept in the parse error
        Case("header_trailing_comma_value", "social_care",
             _append_fields(_append_fields(good, 0, [""]), 2, ["x"]).encode(), quarantined={2: "row_parses"}),
        Case("future_date_of_birth", "social_care", _text(sc, _set(2, "dob", "01/04/2014")).encode(),
             quarantined={2: "date_of_birth_not_future"}),
        Case("born_before_1900", "social_care", _text(sc, _set(3, "dob", "31/12/1899")).encode(),
             quarantined={3: "date_of_birth_from_1900"}),
        Case("future_event_date", "social_care", _text(sc, _set(1, "referral_date", "01/04/2014")).encode(),
             quarantined={1: "event_date_not_future"}),
        # a system's stand-in for a missing date (1901-01-01, the epoch) precedes every event an extract records
        Case("event_before_1980", "social_care",
             _text(sc, _edits(_set(2, "referral_date", "01/01/1901"), _set(4, "referral_date", "01/01/1970"))).encode(),
             quarantined={2: "event_date_from_1980", 4: "event_date_from_1980"}),
        Case("impossible_date", "social_care", _text(sc, _set(1, "dob", "31/02/2010")).encode(),
             quarantined={1: "date_parses"}),
        Case("bad_nhs_check_digit", "social_care", _text(sc, _set(2, "nhs_no", _bad_check_digit())).encode(),
             quarantined={2: "nhs_number_check_digit"}),
        Case("bad_nhs_format", "social_care", _text(sc, _set(3, "nhs_no", "94347659")).encode(),
             quarantined={3: "nhs_number_format"}),
        Case("bad_postcode", "social_care", _text(sc, _set(1, "postcode", "SS16 4A")).encode(),
             quarantined={1: "postcode_format"}),
        Case("unknown_category", "social_care", _text(sc, _set(4, "category", "Early help")).encode(),
             quarantined={4: "value_in_domain"}),
        Case("blank_required", "social_care", _text(sc, _set(2, "child_surname", "  ")).encode(),
             quarantined={2: "required"}),
        Case("field_10kb", "social_care", _text(sc, _set(3, "child_forename", "A" * 10_000)).encode(),
             quarantined={3: "name_length"}),
        Case("address_10kb", "social_care", _text(sc, _set(1, "address_line_1", "Flat " * 2_000)).encode(),
             quarantined={1: "value_length"}),
        Case("quotes_and_sql_in_names", "social_care",
             _text(sc, _sql_and_quotes).encode(), quarantined={1: "name_characters", 3: "name_characters"}),
        Case("duplicate_key", "social_care", _text(sc, _set(3, "referral_id", "SO0000001")).encode(),
             quarantined={3: "record_id_unique"}),
        Case("benefits_partial_dependant", "benefits", _text(bn, _set(2, "dep2_forename", "Lily")).encode(),
             quarantined={2: "required"}),
        Case("youth_name_without_comma", "youth_offending", _text(yo, _set(1, "name", "SMITH John")).encode(),
             quarantined={1: "name_format"}),
    ]
    return cases


def _edits(*edits: Callable[[list[dict[str, str]]], None]) -> Callable[[list[dict[str, str]]], None]:
    def edit(rows: list[dict[str, str]]) -> None:
        for one in edits:
            one(rows)

    return edit


def _semicolons(text: str) -> str:
    out = io.StringIO()
    writer = csv.writer(out, delimiter=";", lineterminator="\n")
    writer.writerows(csv.reader(io.StringIO(text)))
    return out.getvalue()


def _append_fields(text: str, row: int, extra: list[str]) -> str:
    lines = text.splitlines(keepends=True)
    lines[row] = lines[row].rstrip("\n") + "," + ",".join(extra) + "\n"
    return "".join(lines)


def _bad_check_digit() -> str:
    valid = "9434765919"  # the NHS's own example number
    return valid[:9] + str((int(valid[9]) + 1) % 10)


def _sql_and_quotes(rows: list[dict[str, str]]) -> None:
    rows[0]["child_forename"] = "Robert'); DROP TABLE children;--"
    rows[1]["child_surname"] = "O'Brien"  # quoted by the writer only if needed; passes
    rows[1]["address_line_1"] = '12 "The Elms", High Road'  # doubled quotes and a comma inside quotes; passes
    rows[2]["child_surname"] = '" OR 1=1 --'


CASES: tuple[Case, ...] = tuple(_cases())


def write_corpus(directory: Path = CORPUS_DIR) -> list[Path]:
    written = []
    for case in CASES:
        path = directory / case.source / f"{case.name}.csv"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(case.content)
        written.append(path)
    return written


if __name__ == "__main__":
    for p in write_corpus():
        print(p)
