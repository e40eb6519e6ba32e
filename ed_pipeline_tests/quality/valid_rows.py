"""Small valid extract rows for every source, built from the registry (tests and the benchmark use them)."""

from __future__ import annotations

import csv
import io
from datetime import date
from pathlib import Path

from ed_pipeline.settings import month_start
from ed_pipeline.sources import Source

FORENAMES = ("John", "Zoë", "Mary-Jane", "Seán", "Amelia", "Oliver")
SURNAMES = ("Smith", "O'Brien", "Nguyen", "Ahmed", "St. John", "Brown")


def nhs_number(seed: int) -> str:
    """A modulus-11 valid NHS number (skips the bases whose check digit would be 10)."""
    base = 400_000_000 + seed * 7
    while True:
        digits = f"{base:09d}"
        check = 11 - sum(int(d) * (10 - i) for i, d in enumerate(digits)) % 11
        check = 0 if check == 11 else check
        if check != 10:
            return f"{digits}{check}"
        base += 1


def _date(d: date, fmt: str) -> str:
    return d.strftime(fmt)


def valid_row(source: Source, i: int, month: str) -> dict[str, str]:
    """One valid row of `source` for extract `month`; i makes the key (and some values) differ."""
    first = month_start(month)
    event_day = date(first.year, first.month, 1 + i % 28)
    row = {c: "" for c in source.columns}
    row[source.key[0]] = f"{source.name[:2].upper()}{i:07d}"
    for k in source.key[1:]:
        row[k] = "1"
    for n, person in enumerate(source.people):
        if person.optional and n > 2:  # benefits: claimant, partner and one dependant; the rest blank
            continue
        given, family = FORENAMES[(i + n) % len(FORENAMES)], SURNAMES[(i + n) % len(SURNAMES)]
        if person.full_name:
            if source.name_style == "initials":
                row[person.full_name] = f"{given[0]}{family[0]}"
            else:
                row[person.full_name] = f"{family.upper()}, {given}"
        else:
            row[person.given_name] = given  # type: ignore[index]
            row[person.family_name] = family  # type: ignore[index]
        born = date(first.year - 5 - (n * 9) % 40, 1 + (i + n) % 12, 1 + (i + 3 * n) % 28)
        row[person.date_of_birth] = _date(born, source.date_format)
        if person.sex:
            row[person.sex] = list(source.sex_codes)[(i + n) % 2]
    row[source.event_date] = _date(event_day, source.event_format) if "%H" not in source.event_format else (
        event_day.strftime(source.event_format.replace("%H", "14").replace("%M", "05")))
    if source.role_column:
        row[source.role_column] = source.role_domain[i % len(source.role_domain)]  # type: ignore[index]
    if source.nhs_number:
        row[source.nhs_number] = nhs_number(i)
    if source.postcode:
        row[source.postcode] = "SS16" if source.postcode_granularity == "district" else f"SS16 {i % 10}AB"
    if source.uprn:
        row[source.uprn] = f"{100090000000 + i}"
    if source.address:
        row[source.address] = f"{1 + i % 200} High Road, Vange"
    for column in source.extra_identifiers.values():
        row[column] = f"A{i:012d}"
    for ef in source.event_fields:
        if ef.domain:
            row[ef.raw] = ef.domain[i % len(ef.domain)]
        elif ef.dtype == "int":
            row[ef.raw] = str(1 + i % 4)
        elif ef.dtype == "float":
            row[ef.raw] = f"{50 + i % 100}.25"
        elif ef.dtype == "bool":
            row[ef.raw] = "YN"[i % 2]
        else:
            row[ef.raw] = f"{115000 + i % 500}"
    return row


def valid_rows(source: Source, n: int, month: str, start: int = 0) -> list[dict[str, str]]:
    return [valid_row(source, start + i, month) for i in range(n)]


def to_csv(source: Source, rows: list[dict[str, str]], header: list[str] | None = None) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(header or source.columns)
    for row in rows:
        writer.writerow([row.get(c, "") for c in (header or source.columns)])
    return out.getvalue()


def write_extract(path: Path, source: Source, rows: list[dict[str, str]]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(to_csv(source, rows), encoding="utf-8", newline="")
    return path
