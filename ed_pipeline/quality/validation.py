"""Validating raw extract rows: canonical person records out, every rejected row quarantined.

`validate` runs the source's GX suite once over all the rows it is given (one
or many months), turns the failing row indexes into quarantine rows (the first
failure, every failure as JSON, and the raw row as JSON so nothing is lost),
and maps the rows that passed every rule to the canonical person record of
DESIGN.md: one record per person named in the row.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import polars as pl

from ed_pipeline.quality.arrival import ARRIVED_MONTH
from ed_pipeline.quality.gx_runtime import run_suite
from ed_pipeline.quality.reading import raw_schema
from ed_pipeline.quality.rules import (
    ROW_KEY,
    Plan,
    check_columns,
    check_frame,
    date_col,
    digits_col,
    family_col,
    given_col,
    plan_for,
)
from ed_pipeline.sources import BOOL_CODES, CANONICAL_COLUMNS, GROUP_COLUMNS, Source

LINEAGE_OUT = ("_source_file", "_row_number")
QUARANTINE_SCHEMA: dict[str, pl.DataType] = {
    "source": pl.String(),
    "extract_month": pl.String(),
    "_source_file": pl.String(),
    "_row_number": pl.Int64(),
    "row_key": pl.String(),
    "rule": pl.String(),
    "column": pl.String(),
    "value": pl.String(),
    "failures": pl.String(),
    "raw_row": pl.String(),
}
_DTYPES: dict[str, pl.DataType] = {"bool": pl.Boolean(), "int": pl.Int64(), "float": pl.Float64(), "date": pl.Date()}


class SuiteError(RuntimeError):
    """An expectation raised instead of evaluating: a bug in the suite, never a pass."""


@dataclass
class Validation:
    validated: pl.DataFrame
    quarantine: pl.DataFrame
    summary: dict[str, Any]
    gx_results: list[Any] = field(default_factory=list)

    @property
    def reconciled(self) -> bool:
        return bool(self.summary["reconciled"])


def validated_schema(source: Source) -> dict[str, pl.DataType]:
    """Column names and types of `validate(...).validated` for `source`."""
    schema: dict[str, pl.DataType] = {c: pl.String() for c in (*CANONICAL_COLUMNS, *GROUP_COLUMNS)}
    schema["date_of_birth"] = pl.Date()
    schema["event_date"] = pl.Date()
    for name in source.extra_identifiers:
        schema[name] = pl.String()
    for ef in source.event_fields:
        schema[ef.name] = _DTYPES.get(ef.dtype, pl.String())
    schema["_source_file"] = pl.String()
    schema["_row_number"] = pl.Int64()
    schema[ARRIVED_MONTH] = pl.String()
    return schema


def validate(raw: pl.DataFrame, source: Source) -> Validation:
    """Validate raw rows of `source` (one or many months of `read_extract(...).frame`)."""
    raw = _conform(raw, source)
    plan = plan_for(source)
    checks = check_frame(raw, plan)
    months = raw.get_column("extract_month").drop_nulls().unique().sort().to_list()
    run_name = f"{months[0]}_to_{months[-1]}" if months else "no_rows"
    pdf = _to_pandas(checks.select(check_columns(plan)))
    result = run_suite(source, plan, pdf, run_name)

    failures = _failures(result, plan, raw, checks)
    failed_idx = failures.get_column("_idx").unique()
    raw_i = raw.with_row_index("_idx")
    passed = checks.with_row_index("_idx").filter(~pl.col("_idx").is_in(failed_idx.implode()))
    validated = _to_canonical(passed, plan)
    quarantine = _quarantine(raw_i, checks.get_column(ROW_KEY), failures, source)
    summary = _summary(raw, passed, validated, quarantine, failures, result)
    return Validation(validated, quarantine, summary, [result])


def _to_pandas(frame: pl.DataFrame):
    """A pandas frame for GX with plain numpy/object columns: element access on arrow-backed strings is slow."""
    pdf = frame.to_pandas()
    strings = [c for c, dtype in frame.schema.items() if dtype == pl.String]
    if strings:
        pdf[strings] = pdf[strings].astype(object)
        pdf[strings] = pdf[strings].where(pdf[strings].notna(), None)
    return pdf.copy()  # consolidated blocks: GX filters the whole frame once per expectation


def _conform(raw: pl.DataFrame, source: Source) -> pl.DataFrame:
    """Registry columns and lineage present, with the raw types (missing lineage becomes null)."""
    schema = raw_schema(source)
    missing = [c for c in source.columns if c not in raw.columns]
    if missing:
        raise ValueError(f"raw frame for {source.name} lacks registry column(s): {', '.join(missing)}")
    adds = [pl.lit(None, dtype).alias(c) for c, dtype in schema.items() if c not in raw.columns]
    return raw.with_columns(adds).select(list(schema)).cast(schema)  # type: ignore[arg-type]


def _failures(result: Any, plan: Plan, raw: pl.DataFrame, checks: pl.DataFrame) -> pl.DataFrame:
    """One row per (raw row, failed rule): _idx, order, rule, column, value (the raw value as in the file)."""
    idx: list[int] = []
    order: list[int] = []
    broken: list[str] = []
    for er in result.results:
        meta = er.expectation_config.meta or {}
        if er.exception_info and er.exception_info.get("raised_exception"):
            broken.append(f"{meta.get('rule')} on {meta.get('column')}: {er.exception_info.get('exception_message')}")
            continue
        if er.success:
            continue
        rows = (er.result or {}).get("unexpected_index_list") or []
        idx += [int(i) for i in rows]
        order += [int(meta["order"])] * len(rows)
    if broken:
        raise SuiteError("expectation(s) could not be evaluated: " + "; ".join(broken))
    frame = pl.DataFrame({"_idx": idx, "order": order}, schema={"_idx": pl.UInt32, "order": pl.Int64})
    rule_table = pl.DataFrame(
        {
            "order": list(range(len(plan.checks))),
            "rule": [c.rule for c in plan.checks],
            "column": [c.column for c in plan.checks],
            "value_from": [c.value_from for c in plan.checks],
        },
        schema={"order": pl.Int64, "rule": pl.String, "column": pl.String, "value_from": pl.String},
    )
    frame = frame.join(rule_table, on="order", how="left").sort("_idx", "order")
    # the failing value, read from the raw frame (as the agency wrote it) or the row key
    values = raw.with_columns(checks.get_column(ROW_KEY)).with_row_index("_idx")
    pieces = []
    for value_from, part in frame.partition_by("value_from", as_dict=True).items():
        column = value_from[0]
        looked_up = part.join(
            values.select("_idx", pl.col(column).cast(pl.String).alias("value")), on="_idx", how="left"
        )
        pieces.append(looked_up)
    if not pieces:
        return frame.with_columns(pl.lit(None, pl.String).alias("value"))
    return pl.concat(pieces).sort("_idx", "order")


def _quarantine(raw_i: pl.DataFrame, row_key: pl.Series, failures: pl.DataFrame, source: Source) -> pl.DataFrame:
    if failures.is_empty():
        return pl.DataFrame(schema=QUARANTINE_SCHEMA)
    lists = failures.group_by("_idx", maintain_order=True).agg("rule", "column", "value")
    failures_json = [
        json.dumps([{"rule": r, "column": c, "value": v} for r, c, v in zip(rs, cs, vs, strict=True)],
                   ensure_ascii=False)
        for rs, cs, vs in lists.select("rule", "column", "value").iter_rows()
    ]
    first = lists.select(
        "_idx",
        pl.col("rule").list.first(),
        pl.col("column").list.first(),
        pl.col("value").list.first(),
        pl.Series("failures", failures_json, dtype=pl.String),
    )
    rows = raw_i.with_columns(row_key.alias("row_key")).join(first, on="_idx", how="inner").sort("_idx")
    return rows.select(
        pl.lit(source.name, pl.String).alias("source"),
        "extract_month",
        "_source_file",
        "_row_number",
        "row_key",
        "rule",
        "column",
        "value",
        "failures",
        pl.struct(list(source.columns)).struct.json_encode().alias("raw_row"),
    ).cast(QUARANTINE_SCHEMA)  # type: ignore[arg-type]


def _to_canonical(passed: pl.DataFrame, plan: Plan) -> pl.DataFrame:
    """One canonical person record per person named in each passing row."""
    source = plan.source
    schema = validated_schema(source)
    group_ref = pl.col(source.key[0])
    sex_map = dict(source.sex_codes)
    per_person = []
    for index, person in enumerate(source.people):
        if person.full_name:
            given, family = pl.col(given_col(person.full_name)), pl.col(family_col(person.full_name))
        else:
            given, family = pl.col(person.given_name), pl.col(person.family_name)  # type: ignore[arg-type]
        sex = (
            pl.col(person.sex).replace_strict(sex_map, default=None, return_dtype=pl.String).fill_null("U")
            if person.sex else pl.lit("U")
        )
        role = pl.col(source.role_column) if source.role_column else pl.lit(person.role, pl.String)
        columns: dict[str, pl.Expr] = {
            "source": pl.lit(source.name, pl.String),
            "record_id": pl.col(ROW_KEY) + person.suffix,
            "given_name": given,
            "family_name": family,
            "date_of_birth": pl.col(date_col(person.date_of_birth)),
            "sex": sex,
            "nhs_number": pl.col(digits_col(source.nhs_number)) if source.nhs_number else pl.lit(None),
            "address": pl.col(source.address) if source.address else pl.lit(None),
            "postcode": pl.col(source.postcode).str.to_uppercase() if source.postcode else pl.lit(None),
            "uprn": pl.col(source.uprn) if source.uprn else pl.lit(None),
            "event_date": pl.col(date_col(source.event_date)),
            "extract_month": pl.col("extract_month"),
            "group_ref": group_ref,
            "role": role,
        }
        for name, column in source.extra_identifiers.items():
            columns[name] = pl.col(column)
        for ef in source.event_fields:
            columns[ef.name] = _typed(ef.raw, ef.dtype, source.date_format)
        columns["_source_file"] = pl.col("_source_file")
        columns["_row_number"] = pl.col("_row_number")
        columns[ARRIVED_MONTH] = pl.col(ARRIVED_MONTH)
        frame = passed
        if index in plan.present:
            frame = frame.filter(pl.col(plan.present[index]))
        per_person.append(
            frame.select([expr.alias(name) for name, expr in columns.items()]).cast(schema)  # type: ignore[arg-type]
            .with_columns(pl.lit(index, pl.Int32).alias("_person"), frame.get_column("_idx"))
        )
    out = pl.concat(per_person).sort("_idx", "_person").drop("_idx", "_person")
    return out.select(list(schema))


def _typed(column: str, dtype: str, date_format: str) -> pl.Expr:
    value = pl.col(column)
    if dtype == "bool":
        return value.replace_strict(BOOL_CODES, default=None, return_dtype=pl.Boolean)
    if dtype == "int":
        return value.cast(pl.Int64, strict=False)
    if dtype == "float":
        return value.cast(pl.Float64, strict=False)
    if dtype == "date":
        return pl.col(date_col(column))
    return value


def _summary(raw: pl.DataFrame, passed: pl.DataFrame, validated: pl.DataFrame, quarantine: pl.DataFrame,
             failures: pl.DataFrame, result: Any) -> dict[str, Any]:
    rows_in = raw.height
    rows_passed = passed.height
    rows_quarantined = quarantine.height

    def by_month(frame: pl.DataFrame) -> dict[str, int]:
        if frame.is_empty():
            return {}
        counts = frame.group_by("extract_month").len()
        return {str(m): int(n) for m, n in counts.iter_rows()}

    months_in, months_passed = by_month(raw), by_month(passed)
    months_records, months_quarantined = by_month(validated), by_month(quarantine)
    per_month = {
        m: {
            "rows_in": months_in.get(m, 0),
            "rows_validated_raw": months_passed.get(m, 0),
            "records_validated": months_records.get(m, 0),
            "rows_quarantined": months_quarantined.get(m, 0),
        }
        for m in sorted(months_in, key=str)
    }
    for counts in per_month.values():
        counts["reconciled"] = counts["rows_in"] == counts["rows_validated_raw"] + counts["rows_quarantined"]
    rows_by_rule = (
        {r: int(n) for r, n in failures.unique(["_idx", "rule"]).group_by("rule").len().sort("rule").iter_rows()}
        if not failures.is_empty() else {}
    )
    first_by_rule = (
        {r: int(n) for r, n in quarantine.group_by("rule").len().sort("rule").iter_rows()}
        if not quarantine.is_empty() else {}
    )
    stats = dict(result.statistics)
    return {
        "rows_in": rows_in,
        "rows_validated_raw": rows_passed,
        "records_validated": validated.height,
        "rows_quarantined": rows_quarantined,
        "failures_by_rule": rows_by_rule,  # raw rows failing each rule (a row may fail several)
        "quarantined_by_first_rule": first_by_rule,
        "reconciled": rows_in == rows_passed + rows_quarantined,
        "months": per_month,
        "gx_success": bool(result.success),
        "gx_statistics": {k: (float(v) if isinstance(v, float) else int(v)) for k, v in stats.items() if v is not None},
    }
