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
| `mean_risk` | mean predicted risk of those children, to 2 decimals |
| `predicted_high_risk` | children in the 'high' band (count) |
| `assessed_children` | children with an observed EYFSP outcome (count) |
| `observed_not_gld_rate` | share of the assessed not at GLD, of the rounded counts, 2 decimals; null if none assessed |
| `rank` | 1 = highest mean risk among the level's published areas (ties share the lower rank) |
| `rank_low`, `rank_high` | the 95% interval of `rank` (2.5th and 97.5th percentiles over a bootstrap of the children) |
| `<column>_suppressed` | true where the figure is withheld (the value is then null) |

Disclosure control (`ed_pipeline.privacy.disclosure`): counts of 1-4 are suppressed, every other count is
rounded to the nearest 5, with secondary suppression among the wards (their sum, the borough total, is
published elsewhere) and among the LSOAs of each ward (the ward row is their total), and of each set of wards
that LSOAs split across them link (their sum is the total of their LSOAs, as an LSOA counts in one ward only).
Every LSOA cell of a suppressed ward cell is suppressed too, so that LSOAs cannot add back up to it.
`mean_risk` is withheld with `children`; the observed rate with `assessed_children` or when the number who did,
or did not, reach GLD is suppressed (0, 1-4, or secondarily: a rate of 0 or 1 would tell every assessed child's
outcome). Rounded counts and rounded means and rates are all that is published.

The rate and the mean are made so that they tell no more about the counts than the rounded counts do (docs/
privacy.md has the attacks): the rate is of the rounded counts (the rate of the true counts to 2 decimals, beside
the rounded number assessed, often told both counts exactly, and the ward's exact counts less its LSOAs' then
gave back withheld LSOAs' children with their outcomes); the mean is to 2 decimals (a ward's children times its
mean is the sum of its LSOAs', and to 3 decimals that sum left one set of exact counts in small areas).

Uncertainty of the ranking: the children of each published area are resampled with replacement (a stratified
bootstrap: each area keeps its number of children), `bootstrap` times with a fixed `seed`, and the published
areas of the level are ranked on each draw as `rank` is (means to 2 decimals, ties share the lower rank).
`rank_low`..`rank_high` holds the middle 95% of an area's ranks: areas whose intervals overlap cannot be told
apart by these children. Only children of published areas take part (a withheld area's children neither enter
another area's draws nor get an interval). The result depends on the children, not on their row order.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
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
_HIDDEN_COUNTS: tuple[str, ...] = ("_not_gld", "_gld")  # suppressed and rounded as counts; the rate is of them
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
    "rank_low": pl.Int64(),
    "rank_high": pl.Int64(),
}
MEAN_DECIMALS = 2  # not 3: with the children of each level's areas adding up, 3 gave exact counts back
BOOTSTRAP_DRAWS = 1_000
BOOTSTRAP_SEED = 20_180_601
RANK_INTERVAL = (0.025, 0.975)
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
        .with_columns(mean_risk=(pl.col("_risk_sum") / pl.col("children")).round(MEAN_DECIMALS))
        .sort(by)
    )


def _one_outcome_for_all(table: pl.DataFrame) -> dict[str, pl.Series]:
    """The hidden counts to withhold although they are 0: where every assessed child of an area did, or every one
    did not, reach GLD, a rate of 0 or 1 would tell each child's outcome (as one to four on the other side would)."""
    return {c: (table[c] == 0) & (table["assessed_children"] > 0) for c in _HIDDEN_COUNTS}


def _linked_wards(pairs: pl.DataFrame) -> dict[str, str]:
    """Each ward -> the first (by name) of the wards that LSOAs split across them link it to (`pairs`: lsoa, ward).
    The LSOAs of such linked wards add up to the wards' sum, not each to its ward, so that sum is a total too:
    a ward whose only LSOA is withheld, and another that holds part of a split one, would otherwise give it back."""
    root = {w: w for w in sorted(pairs["ward"].unique().to_list())}

    def find(ward: str) -> str:
        while root[ward] != ward:
            ward = root[ward]
        return ward

    for wards in pairs.group_by("lsoa").agg("ward")["ward"].to_list():
        for ward in wards[1:]:
            first, other = sorted((find(wards[0]), find(ward)))
            root[other] = first
    return {w: find(w) for w in root}


def _rank(table: pl.DataFrame) -> pl.DataFrame:
    return table.with_columns(rank=pl.col("mean_risk").rank(method="min", descending=True).cast(pl.Int64))


def _min_rank(means: np.ndarray) -> np.ndarray:
    """Ranks within each row of `means` (draws x areas, values in [0, 1]), 1 = highest, ties sharing the lower
    rank (as `_rank`): 1 + the number of the row's values above each. One sort of all rows, each shifted by
    2 x its row number so that rows stay apart."""
    k, n = means.shape
    shifted = means + 2.0 * np.arange(k)[:, None]
    after = np.searchsorted(np.sort(shifted, axis=None), shifted, side="right")
    return 1 + (np.arange(1, k + 1)[:, None] * n - after)


def rank_intervals(scores: pl.DataFrame, by: str, areas: list[str], *, draws: int = BOOTSTRAP_DRAWS,
                   seed: int = BOOTSTRAP_SEED) -> pl.DataFrame:
    """`by`, rank_low, rank_high for the given (published) areas: a stratified bootstrap of their children's risks.

    Each draw resamples every area's children with replacement (its size kept) and ranks the areas on their means
    to `MEAN_DECIMALS`, highest first; the interval is the 2.5th..97.5th percentile of each area's ranks. Children are
    taken in (area, person_id, risk) order, so the result does not depend on the input's row order.
    """
    schema = {by: pl.String, "rank_low": pl.Int64, "rank_high": pl.Int64}
    kids = (scores.filter(pl.col(by).is_in(areas)).select(by, "person_id", "risk")
            .sort(by, "person_id", "risk"))
    if not areas or kids.is_empty():
        return pl.DataFrame(schema=schema)
    names, area_of, size = np.unique(kids[by].to_numpy().astype(str), return_inverse=True, return_counts=True)
    order = np.argsort(area_of, kind="stable")  # children grouped by area, in np.unique's order of areas
    risk, area_of = kids["risk"].to_numpy().astype(float)[order], area_of[order]
    start = np.concatenate([[0], np.cumsum(size)[:-1]])
    n, n_areas = len(risk), len(names)
    rng = np.random.default_rng(seed)
    ranks = np.empty((draws, n_areas), dtype=np.int64)
    chunk = max(1, 2_000_000 // n)  # draws per step: bounded memory at Essex scale
    for first in range(0, draws, chunk):
        k = min(chunk, draws - first)
        pick = start[area_of] + (rng.random((k, n)) * size[area_of]).astype(np.int64)
        cell = (np.arange(k)[:, None] * n_areas + area_of[None, :]).ravel()
        sums = np.bincount(cell, weights=risk[pick].ravel(), minlength=k * n_areas).reshape(k, n_areas)
        ranks[first:first + k] = _min_rank(np.round(sums / size, MEAN_DECIMALS))
    low, high = np.quantile(ranks, RANK_INTERVAL, axis=0, method="inverted_cdf")
    return pl.DataFrame({by: names.tolist(), "rank_low": low.astype(np.int64), "rank_high": high.astype(np.int64)},
                        schema=schema)


def _observed_rate(table: pl.DataFrame) -> pl.DataFrame:
    """The not-GLD rate from the counts as suppressed and rounded: a rate of the true counts to 2 decimals, beside
    the rounded number assessed, tells both counts exactly (12 assessed, published 10, and a rate of 0.42: 5 of 12)."""
    return table.with_columns(observed_not_gld_rate=pl.when(pl.col("assessed_children") > 0)
                              .then(pl.col("_not_gld") / pl.col("assessed_children")).round(2))


def _finish(table: pl.DataFrame, level: str, scores: pl.DataFrame, by: str, draws: int, seed: int) -> pl.DataFrame:
    table = mask_derived(_observed_rate(table), _DERIVED)
    table = _rank(table.with_columns(level=pl.lit(level)))
    published = table.filter(pl.col("rank").is_not_null())["area"].to_list()
    intervals = rank_intervals(scores, by, published, draws=draws, seed=seed).rename({by: "area"})
    table = table.join(intervals, on="area", how="left").with_columns(
        # the interval always holds the published rank (it does unless a tie sits on a percentile's edge)
        rank_low=pl.min_horizontal("rank_low", "rank"), rank_high=pl.max_horizontal("rank_high", "rank"))
    return table.select(COMMUNITY_RISK_SCHEMA.keys()).cast(COMMUNITY_RISK_SCHEMA).sort(
        "rank", "area", nulls_last=True)


def community_risk(
    scores: pl.DataFrame,
    level: Literal["ward", "lsoa", "both"] = "both",
    *,
    threshold: int = DEFAULT_THRESHOLD,
    rounding: int = DEFAULT_ROUNDING,
    bootstrap: int = BOOTSTRAP_DRAWS,
    seed: int = BOOTSTRAP_SEED,
) -> pl.DataFrame:
    """Risk by area, safe to publish (see the module docstring); wards first, then LSOAs, each by rank."""
    if level not in ("ward", "lsoa", "both"):
        raise ValueError(f"level must be 'ward', 'lsoa' or 'both', not {level!r}")
    scores = _one_row_per_child(scores)
    counts = [*COMMUNITY_COUNT_COLUMNS, *_HIDDEN_COUNTS]

    wards = _aggregate(scores, "ward").with_columns(area=pl.col("ward"))
    wards = suppress_counts(wards, counts, group_total_by=None, threshold=threshold, rounding=rounding,
                            also_suppress=_one_outcome_for_all(wards))
    out = {"ward": _finish(wards, "ward", scores, "ward", bootstrap, seed)} if level in ("ward", "both") else {}

    if level in ("lsoa", "both"):
        pairs = (scores.filter(pl.col("lsoa").is_not_null() & pl.col("ward").is_not_null())
                 .group_by("lsoa", "ward").len())
        parent = pairs.sort("len", "ward", descending=[True, False]).unique("lsoa", keep="first").select("lsoa", "ward")
        lsoas = (
            _aggregate(scores, "lsoa")
            .join(parent, on="lsoa", how="left")
            .rename({"lsoa": "area"})
            .with_columns(_linked=pl.col("ward").replace_strict(_linked_wards(pairs), default=None))
        )
        hidden_wards = wards.select("ward", *(pl.col(flag_column(c)).alias(f"_parent_{c}") for c in counts))
        lsoas = lsoas.join(hidden_wards, on="ward", how="left")
        uniform = _one_outcome_for_all(lsoas)
        lsoas = suppress_counts(
            lsoas, counts, group_total_by=[["ward"], ["_linked"]], threshold=threshold, rounding=rounding,
            also_suppress={c: lsoas[f"_parent_{c}"].fill_null(False) | uniform.get(c, False) for c in counts},
        )
        out["lsoa"] = _finish(lsoas, "lsoa", scores, "lsoa", bootstrap, seed)
    return pl.concat(out.values()) if out else pl.DataFrame(schema=COMMUNITY_RISK_SCHEMA)
