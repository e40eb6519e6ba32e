"""outputs.community_risk: predicted risk of not reaching a Good Level of Development, by ward and by LSOA.

Input: one row per child scored (`scores`): `person_id`, `ward`, `lsoa`, `risk` (calibrated probability of not
reaching GLD), `band` ('high' / 'medium' / 'low') and optionally `not_gld` (the observed EYFSP outcome, true
when the child did not reach GLD, null when not assessed yet). Children without a ward (or LSOA) are left out
of that level. If `prediction_date` is present and a child has several rows, the latest is used.

One row per area, `level` 'ward' or 'lsoa':

| column | what |
|---|---|
| `level`, `area` | 'ward' and the ward's name, or 'lsoa' and the LSOA code |
| `ward` | the ward (for an LSOA, the ward most of its children live in: LSOAs nest in wards) |
| `children` | children scored (count) |
| `mean_risk` | mean predicted risk of those children, to 3 decimals |
| `predicted_high_risk` | children in the 'high' band (count) |
| `assessed_children` | children with an observed EYFSP outcome (count) |
| `observed_not_gld_rate` | share of assessed children who did not reach GLD, to 2 decimals; null if none assessed |
| `rank` | 1 = highest mean risk among the level's published areas (ties share the lower rank) |
| `<column>_suppressed` | true where the figure is withheld (the value is then null) |

Disclosure control (`ed_pipeline.privacy.disclosure`): counts of 1-4 are suppressed, every other count is
rounded to the nearest 5, with secondary suppression among the wards (their sum, the borough total, is
published elsewhere) and among the LSOAs of each ward (the ward row is their total). Every LSOA cell of a
suppressed ward cell is suppressed too, so that LSOAs cannot add back up to it. `mean_risk` is withheld with
`children`; the observed rate with `assessed_children` or when the number who did, or did not, reach GLD is
suppressed (1-4, or secondarily). Rounded counts and rounded means and rates are all that is published.
"""

from __future__ import annotations

from typing import Literal

import polars as pl

from ed_pipeline.privacy.disclosure import (
    DEFAULT_ROUNDING,
    DEFAULT_THRESHOLD,
    flag_column,
    mask_derived,
    suppress_counts,
)

HIGH_BAND = "high"
COMMUNITY_COUNT_COLUMNS: tuple[str, ...] = ("children", "predicted_high_risk", "assessed_children")
_HIDDEN_COUNTS: tuple[str, ...] = ("_not_gld", "_gld")  # suppressed (they decide the rate), never published
_DERIVED: dict[str, list[str]] = {
    "mean_risk": ["children"],
    "observed_not_gld_rate": ["assessed_children", *_HIDDEN_COUNTS],
}
COMMUNITY_RISK_SCHEMA: dict[str, pl.DataType] = {
    "level": pl.String(),
    "area": pl.String(),
    "ward": pl.String(),
    "children": pl.Int64(),
    "children_suppressed": pl.Boolean(),
    "mean_risk": pl.Float64(),
    "mean_risk_suppressed": pl.Boolean(),
    "predicted_high_risk": pl.Int64(),
    "predicted_high_risk_suppressed": pl.Boolean(),
    "assessed_children": pl.Int64(),
    "assessed_children_suppressed": pl.Boolean(),
    "observed_not_gld_rate": pl.Float64(),
    "observed_not_gld_rate_suppressed": pl.Boolean(),
    "rank": pl.Int64(),
}
REQUIRED = ("person_id", "ward", "lsoa", "risk", "band")


def _one_row_per_child(scores: pl.DataFrame) -> pl.DataFrame:
    missing = [c for c in REQUIRED if c not in scores.columns]
    if missing:
        raise ValueError(f"scores lack column(s) {missing}; expected {list(REQUIRED)} (+ optional not_gld)")
    if "not_gld" not in scores.columns:
        scores = scores.with_columns(not_gld=pl.lit(None, dtype=pl.Boolean))
    if scores["person_id"].is_duplicated().any():
        if "prediction_date" not in scores.columns:
            raise ValueError("scores have several rows for one child and no prediction_date to choose the latest")
        scores = scores.sort("prediction_date").unique("person_id", keep="last", maintain_order=True)
    return scores.with_columns(not_gld=pl.col("not_gld").cast(pl.Boolean))


def _aggregate(scores: pl.DataFrame, by: str) -> pl.DataFrame:
    assessed = pl.col("not_gld").is_not_null()
    return (
        scores.filter(pl.col(by).is_not_null())
        .group_by(by)
        .agg(
            children=pl.len().cast(pl.Int64),
            _risk_sum=pl.col("risk").sum(),
            predicted_high_risk=(pl.col("band") == HIGH_BAND).sum().cast(pl.Int64),
            assessed_children=assessed.sum().cast(pl.Int64),
            _not_gld=pl.col("not_gld").fill_null(False).sum().cast(pl.Int64),
            _gld=(assessed & ~pl.col("not_gld").fill_null(True)).sum().cast(pl.Int64),
        )
        .with_columns(
            mean_risk=(pl.col("_risk_sum") / pl.col("children")).round(3),
            observed_not_gld_rate=pl.when(pl.col("assessed_children") > 0)
            .then(pl.col("_not_gld") / pl.col("assessed_children")).round(2),
        )
        .sort(by)
    )


def _rank(table: pl.DataFrame) -> pl.DataFrame:
    return table.with_columns(rank=pl.col("mean_risk").rank(method="min", descending=True).cast(pl.Int64))


def _finish(table: pl.DataFrame, level: str) -> pl.DataFrame:
    table = mask_derived(table, _DERIVED)
    table = _rank(table.with_columns(level=pl.lit(level)))
    return table.select(COMMUNITY_RISK_SCHEMA.keys()).cast(COMMUNITY_RISK_SCHEMA).sort(
        "rank", "area", nulls_last=True)


def community_risk(
    scores: pl.DataFrame,
    level: Literal["ward", "lsoa", "both"] = "both",
    *,
    threshold: int = DEFAULT_THRESHOLD,
    rounding: int = DEFAULT_ROUNDING,
) -> pl.DataFrame:
    """Risk by area, safe to publish (see the module docstring); wards first, then LSOAs, each by rank."""
    if level not in ("ward", "lsoa", "both"):
        raise ValueError(f"level must be 'ward', 'lsoa' or 'both', not {level!r}")
    scores = _one_row_per_child(scores)
    counts = [*COMMUNITY_COUNT_COLUMNS, *_HIDDEN_COUNTS]

    wards = _aggregate(scores, "ward").with_columns(area=pl.col("ward"))
    wards = suppress_counts(wards, counts, group_total_by=None, threshold=threshold, rounding=rounding)
    out = {"ward": _finish(wards, "ward")} if level in ("ward", "both") else {}

    if level in ("lsoa", "both"):
        parent = (
            scores.filter(pl.col("lsoa").is_not_null() & pl.col("ward").is_not_null())
            .group_by("lsoa", "ward").len()
            .sort("len", "ward", descending=[True, False])
            .unique("lsoa", keep="first")
            .select("lsoa", "ward")
        )
        lsoas = (
            _aggregate(scores, "lsoa")
            .join(parent, on="lsoa", how="left")
            .rename({"lsoa": "area"})
        )
        hidden_wards = wards.select("ward", *(pl.col(flag_column(c)).alias(f"_parent_{c}") for c in counts))
        lsoas = lsoas.join(hidden_wards, on="ward", how="left")
        lsoas = suppress_counts(
            lsoas, counts, group_total_by="ward", threshold=threshold, rounding=rounding,
            also_suppress={c: pl.col(f"_parent_{c}").fill_null(False) for c in counts},
        )
        out["lsoa"] = _finish(lsoas, "lsoa")
    return pl.concat(out.values()) if out else pl.DataFrame(schema=COMMUNITY_RISK_SCHEMA)
