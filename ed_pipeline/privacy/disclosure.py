"""Disclosure control of published figures: small-number suppression, rounding, secondary suppression.

Dagster-free; every published table of counts by area (`outputs.community_risk`) goes through here.

Conventions (issue 4, fixed here; REFERENCE.md notes that NHS Digital hides 1-7 and others <5 or <10)
-----------------------------------------------------------------------------------------------------
- Counts are non-negative integers (anything else is refused).
- **Primary suppression**: a true count of 1 to `threshold - 1` (1 to 4) is suppressed. **0 is published as 0**:
  an empty cell reveals nobody.
- **Rounding**: every other count is rounded to the nearest multiple of `rounding` (5), halves up. Integer
  counts never fall on a half when `rounding` is odd: with 5, remainders 0-2 round down and 3-4 round up, so a
  published count is within 2 of the true count (|published - true| <= rounding // 2). A published count is therefore
  0 or a multiple of 5 that is at least 5 (7 -> 5, 8 -> 10, 12 -> 10, 13 -> 15).
- **Secondary suppression**: within each group whose total is published (the whole table, a parent geography:
  LSOAs within their ward, wards within the borough), no count column may have exactly one suppressed cell,
  or the total minus the published cells would give it back. Where exactly one is suppressed, the published
  cell of the group with the smallest non-zero true value is suppressed too (zero cells only if no non-zero
  one is left; ties go to the earlier row), repeated over every grouping until no group has exactly one.
  `also_suppress` forces cells (e.g. every LSOA of a suppressed ward, which would otherwise add up to it).
- **Derived figures** (means, rates) computed from a suppressed count are suppressed with it (`mask_derived`).
  A published one must not tell its count more exactly than the rounded count does: a rate is of the rounded
  counts (the true counts' rate to 2 decimals, beside the rounded denominator, gave both back), a mean is
  coarse enough (`outputs.community`: 2 decimals) that counts times means adding up across levels cannot.
- **Representation** (DuckDB-friendly): a suppressed value is SQL NULL and its flag column
  `<column>_suppressed` is true; a published value has the flag false. A null with a false flag means "no
  data" (e.g. a rate where nobody was assessed). `display_suppressed` renders suppressed cells as '*' for people.
- **Idempotence**: a table already produced by `suppress_counts` (nulls with flags, multiples of 5) passes
  through unchanged: nulls count as suppressed, published values are already rounded and no group has
  exactly one suppressed cell.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import polars as pl

SUPPRESSED_SUFFIX = "_suppressed"
SUPPRESSED_MARK = "*"
DEFAULT_THRESHOLD = 5  # counts 1..4 are suppressed
DEFAULT_ROUNDING = 5  # other counts to the nearest 5


def flag_column(column: str) -> str:
    """The boolean column saying whether `column` is suppressed in a row."""
    return f"{column}{SUPPRESSED_SUFFIX}"


def round_count(value: int, rounding: int = DEFAULT_ROUNDING) -> int:
    """A non-negative integer count to the nearest multiple of `rounding`, halves up (13 -> 15, 12 -> 10)."""
    if rounding <= 1:
        return value
    return (value + rounding // 2) // rounding * rounding


def is_primary(value: int | None, threshold: int = DEFAULT_THRESHOLD) -> bool:
    """True for a count that must never be published: 1 to threshold - 1."""
    return value is not None and 0 < value < threshold


def _group_keys(group_total_by: str | Sequence[str] | Sequence[Sequence[str]] | None) -> list[tuple[str, ...]]:
    """Groupings as tuples of columns; () is the whole table. A list of lists is several groupings."""
    if group_total_by is None:
        return [()]
    if isinstance(group_total_by, str):
        return [(group_total_by,)]
    items = list(group_total_by)
    if items and all(not isinstance(i, str) for i in items):
        return [tuple([i] if isinstance(i, str) else i) for i in items]
    return [tuple(items)]


def _check_counts(table: pl.DataFrame, column: str) -> None:
    dtype = table.schema[column]
    if not (dtype.is_integer() or dtype == pl.Null):
        raise TypeError(f"count column {column!r} must be integer, not {dtype}")
    if table[column].min() is not None and table[column].min() < 0:
        raise ValueError(f"count column {column!r} has negative values")


def suppress_counts(
    table: pl.DataFrame,
    count_columns: Sequence[str],
    *,
    group_total_by: str | Sequence[str] | Sequence[Sequence[str]] | None = None,
    threshold: int = DEFAULT_THRESHOLD,
    rounding: int = DEFAULT_ROUNDING,
    also_suppress: Mapping[str, pl.Expr | pl.Series | str] | None = None,
) -> pl.DataFrame:
    """Counts made safe to publish: primary suppression, rounding, secondary suppression (see module docstring).

    table: one row per cell (an area), the true counts in `count_columns` (integers; a null is taken as
        already suppressed). Other columns pass through.
    group_total_by: the groups whose totals are published: None for the table's own total, a column (or a
        list of columns) for one grouping (e.g. "ward" for LSOA rows), or a list of lists for several
        groupings that each have published totals (rows and columns of a cross-tabulation).
    also_suppress: count column -> boolean (expression, series or column name) of cells to suppress whatever
        their value, e.g. cells whose parent is suppressed.

    Returns the rows in the same order with every count column rounded or null, and a boolean
    `<column>_suppressed` beside each.
    """
    groupings = _group_keys(group_total_by)
    out = table
    for column in count_columns:
        _check_counts(out, column)
        true = out[column].to_list()
        hidden = [v is None or is_primary(v, threshold) for v in true]
        if also_suppress and column in also_suppress:
            force = also_suppress[column]
            if not isinstance(force, pl.Series):
                force = out.select(pl.col(force) if isinstance(force, str) else force).to_series()
            hidden = [h or bool(f) for h, f in zip(hidden, force.to_list(), strict=True)]
        # every grouping at once, so that several groupings (margins of a cross-tabulation) reach a fixpoint
        groups = [members for keys in groupings for members in _groups(out, keys)]
        hidden = _secondary(true, hidden, groups)
        published = [None if h else round_count(v, rounding) for v, h in zip(true, hidden, strict=True)]
        out = out.with_columns(
            pl.Series(column, published, dtype=pl.Int64),
            pl.Series(flag_column(column), hidden, dtype=pl.Boolean),
        )
    return out


def _groups(table: pl.DataFrame, keys: tuple[str, ...]) -> list[list[int]]:
    if not keys:
        return [list(range(table.height))]
    indexed = table.select(*keys).with_row_index("_i")
    return [g.to_list() for g in indexed.group_by(list(keys), maintain_order=True).agg("_i")["_i"]]


def _secondary(values: list[int | None], hidden: list[bool], groups: list[list[int]]) -> list[bool]:
    """Suppress more cells until no group of two or more cells has exactly one suppressed."""
    hidden = list(hidden)
    changed = True
    while changed:
        changed = False
        for members in groups:
            if len(members) < 2 or sum(hidden[i] for i in members) != 1:
                continue
            candidates = [i for i in members if not hidden[i]]
            pick = min(candidates, key=lambda i: (values[i] == 0, values[i], i))
            hidden[pick] = True
            changed = True
    return hidden


def mask_derived(table: pl.DataFrame, derived: Mapping[str, Sequence[str]]) -> pl.DataFrame:
    """Suppress derived columns (means, rates) wherever a count they come from is suppressed.

    derived: derived column -> the count columns it is computed from; each of those must have its
    `<count>_suppressed` flag (from `suppress_counts`). Adds `<derived>_suppressed` and nulls the value.
    """
    out = table
    for column, sources in derived.items():
        flag = pl.any_horizontal([pl.col(flag_column(s)).fill_null(False) for s in sources])
        if flag_column(column) in out.columns:
            flag = flag | pl.col(flag_column(column)).fill_null(False)
        out = out.with_columns(flag.alias(flag_column(column))).with_columns(
            pl.when(pl.col(flag_column(column))).then(None).otherwise(pl.col(column)).alias(column))
    return out


def display_suppressed(table: pl.DataFrame) -> pl.DataFrame:
    """For people, not for storage: every column with a `_suppressed` flag as text, '*' where suppressed."""
    flagged = [c[: -len(SUPPRESSED_SUFFIX)] for c in table.columns
               if c.endswith(SUPPRESSED_SUFFIX) and c[: -len(SUPPRESSED_SUFFIX)] in table.columns]
    return table.with_columns(
        pl.when(pl.col(flag_column(c))).then(pl.lit(SUPPRESSED_MARK))
        .otherwise(pl.col(c).cast(pl.String).fill_null("")).alias(c)
        for c in flagged
    ).drop(flag_column(c) for c in flagged)
