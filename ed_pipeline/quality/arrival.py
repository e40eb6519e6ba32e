"""When each row of an extract arrived: the month whose landing brought it (`_arrived_month`, lineage).

An agency's extract for month M lands at the end of M, so a row of M is usable from the first day of M + 1,
and the features count it only from then (point in time). An agency may send a month again later, to correct
rows quarantined the first time or to change others: those rows did not exist, as they are now, when M landed.
Dating them by M would put them into features at past prediction dates (the ones a model trains on), which
nobody had then, and change those features with every correction.

So a row keeps the month of the delivery that first brought it, exactly as delivered:
  - a month's first delivery: every row arrived with its own extract month (a refresh from scratch dates every
    row so, as before deliveries were told apart), unless it is late: the source had already delivered a later
    month (a month skipped, or unreadable, and sent afterwards), when its rows arrived with the delivery;
  - a later delivery of a month: a row the month already held with the same content (a run again of the same
    file, an unchanged row of a re-sent month) keeps the arrival it had; any other row (new, or changed) arrived
    with the delivery: in the month after the newest month landed when it came (`delivery_month`).
Content is the row as the agency wrote it (its registry columns as text), not what the pipeline makes of it, so
that a change of the code (parse rules, tokens) re-dates nothing.

Which months a source has delivered (`landed_extracts`) is kept beside its rows: a month delivered with no rows (a
file with its header alone: no events that month) holds no row that would say it landed, and looked late.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence

import polars as pl

ARRIVED_MONTH = "_arrived_month"
LANDED_SCHEMA = {"source": pl.String, "extract_month": pl.String, "records": pl.Int64}


def delivery_month(landed: Sequence[str], read: Sequence[str]) -> str | None:
    """The month a delivery arrived in: the month after the newest month landed (of any agency) or read.

    Month M's files land at the end of M, so a delivery that comes after them comes during M + 1 at the
    earliest, and its rows are usable from the first day of M + 2. Dated M, they counted at the first day of
    M + 1, before they had come: up to a month early. A re-send that lands at the very moment M's files do
    counts a month late instead, which leaks nothing."""
    newest = max([*landed, *read], default=None)
    if newest is None:
        return None
    year, month = map(int, newest.split("-"))
    return f"{year + month // 12:04d}-{month % 12 + 1:02d}"


def late_months(read: Sequence[str], held: Collection[str], newest_held: str | None) -> list[str]:
    """The months of `read` delivered for the first time (not `held`) although the source had already delivered a
    later one (`newest_held`, before this delivery): their rows were not there when the later month landed."""
    return [m for m in read if m not in held and newest_held is not None and m < newest_held]


def stamp_arrival(rows: pl.DataFrame, held: pl.DataFrame, content: Sequence[str], delivered: str | None,
                  late: Collection[str] = ()) -> pl.DataFrame:
    """`rows` (one or more months of one source's extracts, as read) with ARRIVED_MONTH set as the module says.

    `held`: the rows of those months already held (extract_month, the `content` columns, ARRIVED_MONTH, null for
    rows held before it was kept: their extract month); `delivered`: the month this delivery arrived with; `late`:
    months delivered for the first time after a later one (`late_months`), whose rows all arrived with it."""
    keys = ["extract_month", *content]
    known = (held.select(*keys, pl.col(ARRIVED_MONTH).fill_null(pl.col("extract_month")))
             .group_by(keys).agg(pl.col(ARRIVED_MONTH).min().alias("_known")))
    redelivered = held.get_column("extract_month").unique().implode()
    return (rows.join(known, on=keys, how="left", nulls_equal=True, maintain_order="left")
            .with_columns(pl.when(pl.col("extract_month").is_in(redelivered))
                          .then(pl.coalesce("_known", pl.lit(delivered, pl.String)))
                          .when(pl.col("extract_month").is_in(list(late)))
                          .then(pl.lit(delivered, pl.String))
                          .otherwise(pl.col("extract_month"))
                          .alias(ARRIVED_MONTH))
            .drop("_known"))


def landed_extracts(source: str, months: Sequence[str], with_file: Collection[str], records: pl.DataFrame
                    ) -> pl.DataFrame:
    """The months of `months` that `source` delivered, with the records each holds (LANDED_SCHEMA): a month whose
    file is in landing/ (just read, even with its header alone: a month without events), or that holds records
    (its file gone once loaded: kept, as raw keeps its rows). A month with neither is left out: not delivered, or
    delivered before and its file gone since, whose earlier record then stays (a missing file is no withdrawal).

    `records`: the rows written for `months` (an `extract_month` column)."""
    counts = records.get_column("extract_month").value_counts(name="records")
    held = dict(zip(counts["extract_month"], counts["records"], strict=True))
    landed = [(source, month, held.get(month, 0)) for month in sorted(set(months))
              if month in with_file or month in held]
    return pl.DataFrame(landed, schema=LANDED_SCHEMA, orient="row")
