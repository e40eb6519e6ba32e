"""The row rules of every source, derived from its registry entry.

Each rule is a `Check`: a rule name, the raw column it reports, and one standard
Great Expectations expectation over the *check frame*. The check frame is the
raw extract with every registry column trimmed ('' and blanks become null) plus
a few derived columns computed once in polars where GX has no built-in
expectation or would be slow: parsed dates (and their year), the NHS-number
modulus-11 result, the halves of a one-column name, the row key and its
occurrence within the month, and whether an optional person slot is filled.
Each rule has exactly one implementation: the expectation decides, the derived
column only supplies the value it looks at.

Rule names (the `rule` of a quarantined row):
  row_parses, record_id_unique, extract_month_valid, required, value_length,
  name_format, name_length, name_characters, date_parses,
  date_of_birth_not_future, date_of_birth_from_1900, event_date_not_future, event_date_from_1980,
  nhs_number_format, nhs_number_check_digit, postcode_format, uprn_format,
  value_in_domain, int_parses, float_parses.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import polars as pl

from ed_pipeline.sources import BOOL_CODES, Person, Source

MAX_NAME_LENGTH = 100
MAX_VALUE_LENGTH = 255
EARLIEST_BIRTH_YEAR = 1900
# No event these extracts record is older: Housing Benefit began in 1982-83, the Children Act in 1989, youth
# offending teams in 2000, the EYFSP in 2008 (the partitions start in 2013). What is older is a system's stand-in
# for a missing date (1900-01-01, 1970-01-01) or a typo, and would count in every child's point-in-time features.
EARLIEST_EVENT_YEAR = 1980
MIN_PARSED_YEAR = 1000  # a date whose year has fewer than four digits does not parse

# letters of any script (incl. accents), then space, apostrophes, period, hyphen
NAME_CHARACTERS = r"^(?:[^\W\d_]|[ '\u2019.\-])+$"
SURNAME_COMMA_FORENAME = r"^[^,]+,[^,]+$"
INITIALS = r"^[^\W\d_]{2,3}$"
POSTCODE_FULL = r"(?i)^[A-Z]{1,2}[0-9][A-Z0-9]? ?[0-9][A-Z]{2}$"
POSTCODE_DISTRICT = r"(?i)^[A-Z]{1,2}[0-9][A-Z0-9]?$"
NHS_DIGITS = r"^[0-9]{10}$"
UPRN = r"^[0-9]{1,12}$"
INTEGER = r"^-?[0-9]{1,18}$"
DECIMAL = r"^-?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)$"

ROW_KEY = "_row_key"
KEY_OCCURRENCE = "_key_occurrence"
MONTH_END = "_month_end"
PARSE_ERROR = "_parse_error"
SLOT_EMPTY = "<slot empty>"


@dataclass(frozen=True)
class Check:
    """One row rule: `expectation(**kwargs)` over the check frame, reported against raw `column`."""

    rule: str
    column: str  # the raw column (or columns, joined by '+') a quarantined row names
    expectation: str  # a great_expectations.expectations class name
    kwargs: dict[str, Any]
    value_column: str | None = None  # where the reported value is read (default: `column`)

    @property
    def value_from(self) -> str:
        return self.value_column or self.column


@dataclass(frozen=True)
class DateColumn:
    column: str
    format: str
    kind: str  # "date_of_birth" | "event_date" | "event_field"


@dataclass(frozen=True)
class Plan:
    """Everything validation needs to know about one source, computed once from the registry."""

    source: Source
    checks: tuple[Check, ...]
    dates: tuple[DateColumn, ...]
    present: dict[int, str] = field(default_factory=dict)  # optional person index -> presence column
    required_if_present: dict[str, str] = field(default_factory=dict)  # column -> presence column of its slot


def date_col(column: str) -> str:
    return f"{column}__date"


def year_col(column: str) -> str:
    return f"{column}__year"


def given_col(column: str) -> str:
    return f"{column}__given"


def family_col(column: str) -> str:
    return f"{column}__family"


def digits_col(column: str) -> str:
    return f"{column}__digits"


def mod11_col(column: str) -> str:
    return f"{column}__mod11"


def parses_col(column: str) -> str:
    return f"{column}__parses"


def if_present_col(column: str) -> str:
    return f"{column}__if_present"


def present_col(index: int) -> str:
    return f"_person{index}__present"


def person_columns(person: Person) -> list[str]:
    return [c for c in (person.given_name, person.family_name, person.full_name, person.date_of_birth, person.sex) if c]


def plan_for(source: Source) -> Plan:
    """The checks of one source, in the order their failures are reported."""
    checks: list[Check] = []
    dates: list[DateColumn] = []
    present: dict[int, str] = {}
    required_if_present: dict[str, str] = {}

    def add(rule: str, report: str, expectation: str, value_column: str | None = None, **kwargs: Any) -> None:
        checks.append(Check(rule, report, expectation, kwargs, value_column))

    def required(column: str, slot: str | None = None) -> None:
        if slot:  # an optional person: the value, or a placeholder where the whole slot is blank
            required_if_present[column] = slot
            add("required", column, "ExpectColumnValuesToNotBeNull", column=if_present_col(column))
        else:
            add("required", column, "ExpectColumnValuesToNotBeNull", column=column)

    def parses_as_date(column: str, fmt: str, kind: str) -> None:
        dates.append(DateColumn(column, fmt, kind))
        # True/False where a value is given (blanks are `required`'s business)
        add("date_parses", column, "ExpectColumnValuesToBeInSet", column=parses_col(column), value_set=[True])

    def in_domain(column: str, values: tuple[str, ...] | list[str]) -> None:
        add("value_in_domain", column, "ExpectColumnValuesToBeInSet", column=column, value_set=list(values))

    def not_after_month_end(rule: str, column: str) -> None:
        add(rule, column, "ExpectColumnPairValuesAToBeGreaterThanB", column_A=MONTH_END, column_B=date_col(column),
            or_equal=True, ignore_row_if="either_value_is_missing")

    def max_length(rule: str, column: str, limit: int, value_column: str | None = None,
                   check_column: str | None = None) -> None:
        add(rule, column, "ExpectColumnValueLengthsToBeBetween", value_column=value_column,
            column=check_column or column, min_value=1, max_value=limit)

    def matches(rule: str, column: str, regex: str, check_column: str | None = None) -> None:
        add(rule, column, "ExpectColumnValuesToMatchRegex", column=check_column or column, regex=regex)

    add("row_parses", PARSE_ERROR, "ExpectColumnValuesToBeNull", column=PARSE_ERROR)
    key_label = "+".join(source.key)
    add("record_id_unique", key_label, "ExpectColumnValuesToBeBetween", value_column=ROW_KEY,
        column=KEY_OCCURRENCE, min_value=1, max_value=1)
    add("extract_month_valid", "extract_month", "ExpectColumnValuesToNotBeNull", column=MONTH_END)
    for k in source.key:
        required(k)
        max_length("value_length", k, MAX_VALUE_LENGTH)
    if source.role_column:
        required(source.role_column)
        if source.role_domain:
            in_domain(source.role_column, source.role_domain)

    for index, person in enumerate(source.people):
        slot = None
        if person.optional:
            slot = present[index] = present_col(index)
        if person.full_name:
            full = person.full_name
            required(full, slot)
            if source.name_style == "initials":
                matches("name_format", full, INITIALS)
            else:
                matches("name_format", full, SURNAME_COMMA_FORENAME)
            for part in (given_col(full), family_col(full)):
                max_length("name_length", full, MAX_NAME_LENGTH, value_column=full, check_column=part)
                add("name_characters", full, "ExpectColumnValuesToMatchRegex", value_column=full, column=part,
                    regex=NAME_CHARACTERS)
        for name in (person.given_name, person.family_name):
            if name:
                required(name, slot)
                max_length("name_length", name, MAX_NAME_LENGTH)
                matches("name_characters", name, NAME_CHARACTERS)
        dob = person.date_of_birth
        required(dob, slot)
        parses_as_date(dob, source.date_format, "date_of_birth")
        not_after_month_end("date_of_birth_not_future", dob)
        add("date_of_birth_from_1900", dob, "ExpectColumnValuesToBeBetween", column=year_col(dob),
            min_value=EARLIEST_BIRTH_YEAR)
        if person.sex:
            in_domain(person.sex, list(source.sex_codes))

    required(source.event_date)
    parses_as_date(source.event_date, source.event_format, "event_date")
    not_after_month_end("event_date_not_future", source.event_date)
    add("event_date_from_1980", source.event_date, "ExpectColumnValuesToBeBetween",
        column=year_col(source.event_date), min_value=EARLIEST_EVENT_YEAR)

    if source.nhs_number:
        nhs = source.nhs_number
        matches("nhs_number_format", nhs, NHS_DIGITS, check_column=digits_col(nhs))
        add("nhs_number_check_digit", nhs, "ExpectColumnValuesToBeInSet", column=mod11_col(nhs), value_set=[True])
    if source.postcode:
        regex = POSTCODE_DISTRICT if source.postcode_granularity == "district" else POSTCODE_FULL
        matches("postcode_format", source.postcode, regex)
    if source.uprn:
        matches("uprn_format", source.uprn, UPRN)
    if source.address:
        max_length("value_length", source.address, MAX_VALUE_LENGTH)
    for column in source.extra_identifiers.values():
        max_length("value_length", column, MAX_VALUE_LENGTH)

    for ef in source.event_fields:
        if ef.required:
            required(ef.raw)
        if ef.dtype == "date":
            # only parsed, as the month's end does not bound them either: a date beside the event (a tenancy's
            # start, a plan's end) may lie years before it or after the extract
            parses_as_date(ef.raw, source.date_format, "event_field")
        elif ef.dtype == "int":
            matches("int_parses", ef.raw, INTEGER)
        elif ef.dtype == "float":
            matches("float_parses", ef.raw, DECIMAL)
        if ef.domain:
            in_domain(ef.raw, ef.domain)
        elif ef.dtype == "bool":
            in_domain(ef.raw, list(BOOL_CODES))
        elif ef.dtype == "str":
            max_length("value_length", ef.raw, MAX_VALUE_LENGTH)
    return Plan(source, tuple(checks), tuple(dates), present, required_if_present)


# ---------------------------------------------------------------- derived columns (polars)


def _parse_date(column: str, fmt: str) -> pl.Expr:
    """The date `fmt` writes, or null; a year of fewer than four digits does not parse (strptime's %Y reads
    '03/03/14' as the year 14, which no rule on the date would stop: an event in the year 14 precedes them all)."""
    has_time = any(d in fmt for d in ("%H", "%M", "%S", "%I"))
    value = pl.col(column)
    if has_time:
        parsed = value.str.strptime(pl.Datetime("us"), fmt, strict=False).dt.date()
    else:
        parsed = value.str.strptime(pl.Date, fmt, strict=False)
    return pl.when(parsed.dt.year() >= MIN_PARSED_YEAR).then(parsed)


def _unswapped_date(column: str, fmt: str) -> pl.Expr:
    """`_parse_date`, except where the column of that file (extract month) is written month first, not as `fmt`
    says: more of its values parse only with day and month swapped (03/14/2014) than only as `fmt` (14/03/2014),
    and two or more (one is a typo). There a value that parses both ways to different dates (03/04/2014) is not
    trusted (null: `date_parses`): read as `fmt`, it would silently be another date."""
    parsed = _parse_date(column, fmt)
    if "%d" not in fmt or "%m" not in fmt:
        return parsed
    swapped = _parse_date(column, fmt.replace("%d", "\0").replace("%m", "%d").replace("\0", "%m"))
    swapped_only = (swapped.is_not_null() & parsed.is_null()).sum()
    month_first = ((swapped_only > (parsed.is_not_null() & swapped.is_null()).sum()) & (swapped_only >= 2)
                   ).over("extract_month")
    return pl.when(month_first & swapped.is_not_null() & (swapped != parsed)).then(None).otherwise(parsed)


def _mod11_valid(digits: pl.Expr) -> pl.Expr:
    """True/False for a 10-digit string (weights 10..2, 11 - sum mod 11, 11 -> 0, 10 invalid); null otherwise."""
    total = pl.sum_horizontal([digits.str.slice(i, 1).cast(pl.Int32, strict=False) * (10 - i) for i in range(9)])
    check = 11 - total % 11
    check = pl.when(check == 11).then(0).otherwise(check)
    last = digits.str.slice(9, 1).cast(pl.Int32, strict=False)
    return pl.when(digits.str.contains(NHS_DIGITS)).then((check != 10) & (check == last))


def check_frame(raw: pl.DataFrame, plan: Plan) -> pl.DataFrame:
    """The frame the suite runs over: trimmed registry columns and the derived columns of `plan`."""
    source = plan.source
    cols = list(source.columns)
    lf = raw.lazy().with_columns(
        # NFC: a name typed on a Mac or a web form may spell ë as e + a combining diaeresis, which is no letter
        pl.col(cols).str.strip_chars().str.normalize("NFC").replace("", None),
        pl.col("extract_month").str.strip_chars(),
    )
    derived: list[pl.Expr] = [
        (pl.col("extract_month") + "-01").str.strptime(pl.Date, "%Y-%m-%d", strict=False).dt.month_end()
        .alias(MONTH_END),
        source.row_key().alias(ROW_KEY),
    ]
    for d in plan.dates:
        parsed = _unswapped_date(d.column, d.format)
        derived.append(parsed.alias(date_col(d.column)))
        derived.append(pl.when(pl.col(d.column).is_not_null()).then(parsed.is_not_null()).alias(parses_col(d.column)))
    if source.nhs_number:
        derived.append(pl.col(source.nhs_number).str.replace_all(r"[ \-]", "").alias(digits_col(source.nhs_number)))
    for index, person in enumerate(source.people):
        if person.full_name:
            derived += [name.alias(out) for name, out in zip(
                split_full_name(pl.col(person.full_name), source.name_style),
                (given_col(person.full_name), family_col(person.full_name)), strict=True)]
        if index in plan.present:
            derived.append(pl.any_horizontal([pl.col(c).is_not_null() for c in person_columns(person)])
                           .alias(plan.present[index]))
    lf = lf.with_columns(derived)
    later: list[pl.Expr] = [
        pl.when(pl.col(ROW_KEY).is_not_null())
        .then(pl.int_range(pl.len(), dtype=pl.Int64).over("extract_month", ROW_KEY) + 1)
        .otherwise(1)
        .alias(KEY_OCCURRENCE),
    ]
    later += [pl.col(date_col(d.column)).dt.year().alias(year_col(d.column)) for d in plan.dates
              if d.kind in ("date_of_birth", "event_date")]
    later += [pl.when(pl.col(slot)).then(pl.col(column)).otherwise(pl.lit(SLOT_EMPTY)).alias(if_present_col(column))
              for column, slot in plan.required_if_present.items()]
    if source.nhs_number:
        later.append(_mod11_valid(pl.col(digits_col(source.nhs_number))).alias(mod11_col(source.nhs_number)))
    return lf.with_columns(later).collect()


def split_full_name(full: pl.Expr, style: str) -> tuple[pl.Expr, pl.Expr]:
    """(given, family) from one trimmed name column: "SMITH, John" -> (John, SMITH); "JAS" -> (JA, S)."""
    if style == "initials":
        return full.str.slice(0, full.str.len_chars() - 1), full.str.slice(-1, 1)
    if style == "surname_comma_forename":
        parts = full.str.splitn(",", 2)
        family = parts.struct.field("field_0").str.strip_chars().replace("", None)
        given = parts.struct.field("field_1").str.strip_chars().replace("", None)
        return given, family
    raise ValueError(f"a one-column name needs name_style initials or surname_comma_forename, not {style!r}")


def check_columns(plan: Plan) -> list[str]:
    """The check-frame columns the suite reads (the rest need not go to GX)."""
    needed: list[str] = []
    for check in plan.checks:
        for key in ("column", "column_A", "column_B"):
            if key in check.kwargs and check.kwargs[key] not in needed:
                needed.append(check.kwargs[key])
    return needed
