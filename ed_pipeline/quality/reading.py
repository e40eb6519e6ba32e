"""Reading one agency extract robustly: table-level problems are named, rows are never dropped.

`read_extract` turns `data/landing/<source>/<YYYY-MM>.csv` into a frame with every
registry column as text exactly as the agency wrote it ('' becomes null), plus
lineage columns. What makes the whole file unusable (no bytes, not UTF-8, the
wrong delimiter, a missing or renamed column) is a `TableProblem`: the frame
then has no rows but the right schema, and the problem's message names the
file, what is wrong and what the agency should do. What only spoils one row (a
wrong number of fields, a truncated last line) is kept as a row with
`_parse_error` set, for validation to quarantine, so that raw rows always
reconcile with validated + quarantined. A CR inside a line of a file whose
lines end in LF or CRLF is data, kept in its value; only a classic Mac file
ends its lines at a bare CR.

Messages never quote cell values: they may end up in orchestration metadata,
outside the agency zone.
"""

from __future__ import annotations

import csv
import io
import json
import re
import sys
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import polars as pl

from ed_pipeline.quality.arrival import ARRIVED_MONTH
from ed_pipeline.settings import is_month
from ed_pipeline.sources import Source

LINEAGE_COLUMNS: tuple[str, ...] = ("extract_month", "_source_file", "_row_number", "_loaded_at", "_parse_error",
                                    ARRIVED_MONTH)
BOM = b"\xef\xbb\xbf"
_OTHER_DELIMITERS = {";": "semicolon", "\t": "tab", "|": "pipe"}
UTF16_BOMS = (b"\xff\xfe", b"\xfe\xff")
UTF16_HINT = " (it is UTF-16)"
_UTF16_SAMPLE = 4096  # bytes looked at for the NULs of UTF-16 without a byte-order mark

csv.field_size_limit(min(sys.maxsize, 2**31 - 1))  # a 10 kB (or 1 MB) field is a row problem, not a crash


@dataclass(frozen=True)
class TableProblem:
    """A fatal, table-level problem with one extract file."""

    file: str
    problem: str
    remedy: str
    # short code: missing_file, unreadable_file, empty_file, not_utf8, wrong_delimiter, missing_header,
    # missing_columns, ...
    kind: str = "table"

    @property
    def message(self) -> str:
        return f"{self.file}: {self.problem}; {self.remedy}."

    def __str__(self) -> str:
        return self.message


@dataclass
class Extract:
    """One extract file as read: its rows (possibly none), its fatal problems and its warnings."""

    path: Path
    source: Source
    month: str
    frame: pl.DataFrame
    problems: list[TableProblem] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


def raw_schema(source: Source) -> dict[str, pl.DataType]:
    """The schema of a raw extract frame: registry columns as text, then lineage."""
    schema: dict[str, pl.DataType] = {c: pl.String() for c in source.columns}
    schema.update(
        extract_month=pl.String(),
        _source_file=pl.String(),
        _row_number=pl.Int64(),
        _loaded_at=pl.Datetime("us", "UTC"),
        _parse_error=pl.String(),
        _arrived_month=pl.String(),  # the month whose landing brought the row (quality/arrival.py)
    )
    return schema


def empty_raw_frame(source: Source) -> pl.DataFrame:
    return pl.DataFrame(schema=raw_schema(source))


def read_extract(path: Path, source: Source, month: str) -> Extract:
    """Read one monthly extract of `source`; never raises for a bad file, reports it."""
    path = Path(path)
    file = str(path)
    warnings: list[str] = []

    def fail(problem: str, remedy: str, kind: str) -> Extract:
        problems = [TableProblem(file, problem, remedy, kind)]
        return Extract(path, source, month, empty_raw_frame(source), problems, warnings)

    if not is_month(month):
        raise ValueError(f"month must be YYYY-MM, got {month!r}")
    if not path.is_file():
        return fail(
            "the extract file does not exist", f"ask {source.agency} to deliver the {month} extract", "missing_file"
        )
    try:
        data = path.read_bytes()
    except OSError as exc:  # no read permission, a failing disk: this file's problem, not its source's other months
        return fail(
            f"the file could not be read (error {exc.errno})",
            f"check who may read it, or ask {source.agency} to re-send the {month} extract",
            "unreadable_file",
        )
    if not data:
        return fail(
            "the file is empty (0 bytes)",
            f"ask {source.agency} to re-send the {month} extract with its header and rows",
            "empty_file",
        )
    if data.startswith(BOM):
        data = data[len(BOM) :]
        warnings.append("UTF-8 byte-order mark stripped")
    utf16 = _utf16_without_bom(data)
    if utf16:  # its ASCII text decodes as UTF-8 too (NUL is valid), with a header nobody recognises
        return fail(
            f"the file is not valid UTF-8{UTF16_HINT}: a 0x00 in every other byte, as in {utf16} without a "
            "byte-order mark",
            "re-export the extract encoded as UTF-8",
            "not_utf8",
        )
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as err:
        line = data.count(b"\n", 0, err.start) + 1
        column = err.start - (data.rfind(b"\n", 0, err.start) + 1) + 1
        hint = ""
        if data.startswith(UTF16_BOMS):  # Excel's "Unicode Text": cp1252 decodes it too, wrongly
            hint = UTF16_HINT
        else:
            try:
                data.decode("cp1252")
                hint = " (it looks like Latin-1/Windows-1252)"
            except UnicodeDecodeError:
                pass
        return fail(
            f"the file is not valid UTF-8{hint}: byte 0x{data[err.start]:02x} at offset {err.start} "
            f"(line {line}, column {column}) cannot be decoded",
            "re-export the extract encoded as UTF-8",
            "not_utf8",
        )
    if "\r\n" in text:
        warnings.append("CRLF line endings accepted")
    if not text.strip():
        return fail(
            "the file holds only whitespace, no header",
            f"ask {source.agency} to re-send the {month} extract with its header and rows",
            "empty_file",
        )

    text, lone_cr = _protect_lone_cr(text)
    if lone_cr:
        warnings.append(f"{text.count(lone_cr)} CR(s) not at the end of a line kept as part of their value (the "
                        "file's line end is LF or CRLF)")
    reader = _LoneCrReader(csv.reader(io.StringIO(text, newline="")), lone_cr)
    header_raw = next(reader)
    while not header_raw:  # blank lines above the header (some line holds more than whitespace: see above)
        header_raw = next(reader)
    if reader.line_num > 1:
        warnings.append(f"{reader.line_num - 1} blank line(s) above the header skipped")
    header = [h.strip() for h in header_raw]
    problem = _check_header(header, source, warnings)
    if problem is not None:
        problem_text, remedy, kind = problem
        return fail(problem_text, remedy, kind)

    position = {h: i for i, h in reversed(list(enumerate(header)))}  # first occurrence wins
    wanted = [position[c] for c in source.columns]
    n_fields = len(header)
    named = _named_fields(header)
    if named < n_fields:
        warnings.append("the header has a comma after its last column (an empty column name): rows are read with "
                        "or without one")
    columns: list[list[str | None]] = [[] for _ in source.columns]
    parse_errors: list[str | None] = []
    blank_lines, empty_rows, swallowed, line = 0, 0, 0, reader.line_num
    for row in reader:
        lines, line = reader.line_num - line, reader.line_num
        if not row:
            blank_lines += 1
            continue
        if not any(value.strip() for value in row):
            # ",,,,": Excel writes a row of delimiters for each formatted but empty row under the data; there is no
            # record in it to quarantine (it failed `required` on the row key, inflating the quarantined share)
            empty_rows += 1
            continue
        for out, i in zip(columns, wanted, strict=True):
            out.append(row[i] if i < len(row) else None)
        parse_errors.append(_fields_problem(row, named, n_fields))
        if lines > 1 and _holds_rows(row, named):
            # a stray quote opening a field ran on to a later one, taking in whole lines between: one record
            # with the right number of fields, the rows inside it gone unless it is quarantined
            swallowed += 1
            note = (f"a quoted value runs over {lines} lines and holds what look like whole rows (a stray \" "
                    "opening a field?)")
            _add_error(parse_errors, note)
    if parse_errors and text.count('"') % 2 == 1 and _ends_in_quotes(text):
        # strict=False csv reads an unterminated quote to the end of the file: that last row is suspect
        note = "ends inside an unterminated quoted field (the file looks truncated)"
        _add_error(parse_errors, note)
    if swallowed:
        warnings.append(f"{swallowed} row(s) hold whole lines inside a quoted value; they will be quarantined")
    if blank_lines:
        warnings.append(f"{blank_lines} blank line(s) skipped")
    if empty_rows:
        warnings.append(f"{empty_rows} row(s) with no value at all left out")
    n_rows = len(parse_errors)
    if n_rows == 0:
        warnings.append("header only: the extract has no data rows")
    n_bad = sum(e is not None for e in parse_errors)
    if n_bad:
        warnings.append(f"{n_bad} row(s) do not parse (wrong number of fields); they will be quarantined")

    frame = pl.DataFrame(
        {c: pl.Series(c, values, dtype=pl.String) for c, values in zip(source.columns, columns, strict=True)}
    ).with_columns(pl.col(source.columns).replace("", None))
    frame = frame.with_columns(
        pl.lit(month, pl.String).alias("extract_month"),
        # relative to the landing folder (<source>/<YYYY-MM>.csv), so tables do not depend on where data lives
        pl.lit(f"{path.parent.name}/{path.name}", pl.String).alias("_source_file"),
        pl.int_range(1, n_rows + 1, dtype=pl.Int64).alias("_row_number"),
        pl.lit(datetime.now(UTC), pl.Datetime("us", "UTC")).alias("_loaded_at"),
        pl.Series("_parse_error", parse_errors, dtype=pl.String),
        pl.lit(month, pl.String).alias(ARRIVED_MONTH),  # as a month's first delivery: the raw asset knows better
    )
    return Extract(path, source, month, frame.cast(raw_schema(source)), [], warnings)  # type: ignore[arg-type]


def _protect_lone_cr(text: str) -> tuple[str, str | None]:
    """`text` with each CR that is not part of a CRLF replaced by a character it does not hold, and that character
    (None when there is no such CR, or where the first line ends in a lone CR: a classic Mac file, whose CRs end
    its lines). csv ends a record at a bare CR, even in an unquoted value: in a file whose lines end in LF or
    CRLF, a CR typed into a value split its record in two, both halves quarantined and the file a row longer."""
    if text.count("\r") == text.count("\r\n"):
        return text, None
    first_end = re.search(r"\r\n|\r|\n", text)
    if first_end is not None and first_end.group() == "\r":
        return text, None
    stand_in = next(chr(c) for c in range(0xE000, 0xF900) if chr(c) not in text)  # Unicode's private use area
    return re.sub(r"\r(?!\n)", stand_in, text), stand_in


class _LoneCrReader:
    """A csv reader whose values have their lone CRs back (see `_protect_lone_cr`), as csv keeps one in quotes."""

    def __init__(self, reader: Any, stand_in: str | None):
        self._reader, self._stand_in = reader, stand_in

    def __iter__(self) -> _LoneCrReader:
        return self

    def __next__(self) -> list[str]:
        row = next(self._reader)
        if self._stand_in is None:
            return row
        return [value.replace(self._stand_in, "\r") for value in row]

    @property
    def line_num(self) -> int:
        return self._reader.line_num


def _utf16_without_bom(data: bytes) -> str | None:
    """'UTF-16 LE' or 'UTF-16 BE' when the file starts as UTF-16 text without a byte-order mark: a NUL in every
    other byte (the high byte of each Latin character), none in the bytes between; else None."""
    sample = data[: min(len(data), _UTF16_SAMPLE) // 2 * 2]
    if len(sample) < 2 or sample.startswith(UTF16_BOMS):  # with its mark, it fails to decode and is named there
        return None
    even, odd = sample[0::2], sample[1::2]

    def mostly_nul(part: bytes) -> bool:
        return part.count(0) >= 0.9 * len(part)

    if mostly_nul(odd) and not even.count(0):
        return "UTF-16 LE"
    if mostly_nul(even) and not odd.count(0):
        return "UTF-16 BE"
    return None


def _named_fields(header: list[str]) -> int:
    """The header's fields up to its empty trailing names: Excel writes `a,b,c,` when a sheet's next column is
    formatted, and its rows may or may not carry that empty last field."""
    named = len(header)
    while named > 1 and not header[named - 1]:
        named -= 1
    return named


def _fields_problem(row: list[str], named: int, n_fields: int) -> str | None:
    """None when the row has the header's named fields, then (up to the header's length) only empty ones; else the
    parse error, keeping any value past the named fields (nothing of the row is lost)."""
    if named <= len(row) <= n_fields and not any(value.strip() for value in row[named:]):
        return None
    expected = n_fields if named == n_fields else f"{named} to {n_fields}"
    message = f"expected {expected} fields, found {len(row)}"
    if len(row) > named:
        message += f"; extra values: {json.dumps(row[named:], ensure_ascii=False)}"
    return message


def _add_error(parse_errors: list[str | None], note: str) -> None:
    """`note` on the last row read, beside any error it has already."""
    parse_errors[-1] = f"{parse_errors[-1]}; {note}" if parse_errors[-1] else note


def _holds_rows(row: list[str], n_fields: int) -> bool:
    """Whether a value of a record read over several lines holds a line with a whole row's delimiters: an address
    may run over lines, a line of it with 13 commas is another record taken in by a stray quote."""
    return any(line.count(",") >= n_fields - 1 for value in row if "\n" in value for line in value.split("\n")[1:])


def _ends_in_quotes(text: str) -> bool:
    """Whether the file ends inside a quoted value (an odd number of quotes can also be a quote inside an unquoted
    value, `5" Vange`, which csv reads as written)."""
    try:
        for _ in csv.reader(io.StringIO(text, newline=""), strict=True):
            pass
    except csv.Error as exc:
        return "unexpected end of data" in str(exc)
    return False


def _check_header(header: list[str], source: Source, warnings: list[str]) -> tuple[str, str, str] | None:
    """None when every registry column is present; else (problem, remedy, kind)."""
    expected = list(source.columns)
    agreed = ",".join(expected)
    found = set(header)
    missing = [c for c in expected if c not in found]
    if missing and len(header) == 1:
        for delimiter, name in _OTHER_DELIMITERS.items():
            if delimiter in header[0]:
                parts = [p.strip().strip('"') for p in header[0].split(delimiter)]
                matched = sum(p in expected for p in parts)
                detail = f"{matched} of {len(expected)} expected columns found after splitting on '{delimiter}'"
                return (
                    f"the file is {name}-delimited ({detail}), not comma-delimited",
                    "re-export it comma-delimited (CSV)",
                    "wrong_delimiter",
                )
    if missing and not {h.lower() for h in header} & {c.lower() for c in expected}:
        # no column name at all: the first line is data (a file without its header), so its cells (names, dates
        # of birth) must not be quoted: this message goes to Dagster's events and the refresh's output
        return (
            f"no header: the first line has none of the expected column names ({len(header)} columns)",
            f"re-send the extract with its header row: {agreed}",
            "missing_header",
        )
    if missing:
        lowered = {h.lower(): h for h in header}
        if all(c.lower() in lowered for c in missing):
            # same names, other case: accept, but say so
            for c in missing:
                header[header.index(lowered[c.lower()])] = c
            warnings.append(f"column name case differs from the registry: {', '.join(missing)}")
            missing = []
    if missing:
        unexpected = [h for h in header if h not in set(expected)]
        found_text = f"; unexpected column(s) found: {', '.join(unexpected)}" if unexpected else ""
        return (
            f"missing column(s) {', '.join(missing)}{found_text} (header has {len(header)} columns)",
            f"re-export with the agreed header: {agreed}",
            "missing_columns",
        )
    duplicated = sorted({c for c in expected if header.count(c) > 1})
    if duplicated:
        return (
            f"column(s) {', '.join(duplicated)} appear more than once in the header",
            f"re-export with each column once: {agreed}",
            "duplicate_columns",
        )
    extra = [h for h in header[: _named_fields(header)] if h not in set(expected)]
    if extra:
        warnings.append(f"extra column(s) ignored: {', '.join(h or '<blank>' for h in extra)}")
    if [h for h in header if h in set(expected)] != expected:
        warnings.append("columns are in a different order from the registry (read by name)")
    return None
