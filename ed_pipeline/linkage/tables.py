"""The `linked` tables of warehouse.duckdb, built from a link result, and how to write them.

    linked.person_link           source, record_id, person_id, match_probability
    linked.person                person_id, records, sources, first_seen, last_seen, birth_year, birth_month, sex
    linked.household_membership  household_id, person_id, valid_from, valid_to
    linked.cohort                person_id, birth_year, birth_month, sex, household_id, valid_from, valid_to
    linked.person_crosswalk      old_id, new_id, change, records, refreshed_at
    linked.household_crosswalk   old_id, new_id, change, records, refreshed_at
    linked.review_pair           see review.review_pairs

Only pseudonymous values: person and household ids, record keys, clear
birth year and month and sex (already in the pseudonymised layer).
"""

from __future__ import annotations

import hashlib
import json
from datetime import date, datetime
from pathlib import Path

import duckdb
import polars as pl

from ed_pipeline.linkage.households import HouseholdResult
from ed_pipeline.linkage.link import LINK_SCHEMA, LinkResult
from ed_pipeline.linkage.spec import TokenColumns

APPENDED_TABLES = ("person_crosswalk", "household_crosswalk")  # histories, appended to by every refresh
PERSON_SCHEMA = {"person_id": pl.String, "records": pl.UInt32, "sources": pl.String, "first_seen": pl.Date,
                 "last_seen": pl.Date, "birth_year": pl.Int32, "birth_month": pl.Int32, "sex": pl.String}
COHORT_MAX_AGE_YEARS = 5  # children up to their sixth birthday: the EYFSP is taken in the year they turn five


def person_link_table(result: LinkResult) -> pl.DataFrame:
    return result.links.select(list(LINK_SCHEMA)).unique(subset=["source", "record_id"], keep="first").sort(
        "source", "record_id")


def added_links(result: LinkResult, previous: pl.DataFrame) -> pl.DataFrame:
    """The links of `result` to records that `previous` (a person_link table) does not have, in key order: what
    an incremental link appends (it never changes a link that exists)."""
    key = ["source", "record_id"]
    return (result.links.select(list(LINK_SCHEMA)).cast(LINK_SCHEMA)
            .join(previous.select(key), on=key, how="anti").unique(subset=key, keep="first").sort(key))


def person_table(links: pl.DataFrame, tokens: pl.DataFrame, spec: TokenColumns | None = None) -> pl.DataFrame:
    """One row per person: how many records from which sources, when seen, and the most common clear birth year,
    birth month and sex among their records."""
    spec = spec or TokenColumns()
    t = tokens.select(
        pl.col(spec.source).alias("source"), pl.col(spec.record_id).cast(pl.String).alias("record_id"),
        *( [pl.col(spec.event_date).cast(pl.Date).alias("event_date")] if spec.event_date in tokens.columns
           else [pl.lit(None, dtype=pl.Date).alias("event_date")]),
        *[(pl.col(c).alias(n) if c and c in tokens.columns else pl.lit(None).alias(n))
          for n, c in (("birth_year", spec.birth_year), ("birth_month", spec.birth_month), ("sex", spec.sex))],
    ).join(links.select("source", "record_id", "person_id").unique(subset=["source", "record_id"]),
           on=["source", "record_id"], how="inner")

    t = t.unique(subset=["source", "record_id"], keep="first")  # a record counts once

    def mode(col: str) -> pl.DataFrame:
        """person_id and the most common valid value of `col` among their records (the smallest of a tie), by a
        count per value: `mode()` inside the group-by took 3 s at a million records."""
        valid = t.filter(pl.col(col).is_not_null() & (pl.col(col).cast(pl.String) != "U"))
        counts = valid.group_by("person_id", col).len()
        # most common first, then the smallest value: the first row of each person (no sort by the ids)
        return (counts.sort(["len", col], descending=[True, False])
                .unique(subset="person_id", keep="first", maintain_order=True).select("person_id", col))

    # sources as a bit per source OR-ed over the person's records, then spelt out once per distinct set: a
    # sorted unique list per person took 1.3 s at a million records, this 0.4 s
    names = t["source"].unique().sort().to_list()
    persons = t.with_columns(
        pl.col("source").replace_strict(names, [1 << i for i in range(len(names))], return_dtype=pl.Int64)
        .alias("_bits")
    ).group_by("person_id").agg(
        pl.len().alias("records"), pl.col("_bits").bitwise_or(),
        pl.col("event_date").min().alias("first_seen"), pl.col("event_date").max().alias("last_seen"),
    )
    sets = persons["_bits"].unique().to_list()
    spelt = [",".join(n for i, n in enumerate(names) if bits >> i & 1) for bits in sets]
    persons = persons.select(
        "person_id", "records",
        pl.col("_bits").replace_strict(sets, spelt, return_dtype=pl.String).alias("sources"),
        "first_seen", "last_seen",
    )
    for col, dtype in (("birth_year", pl.Int32), ("birth_month", pl.Int32), ("sex", pl.String)):
        persons = persons.join(mode(col), on="person_id", how="left").with_columns(pl.col(col).cast(dtype))
    return persons.with_columns(pl.col("records").cast(pl.UInt32)).sort("person_id")


def person_table_update(previous: pl.DataFrame, links: pl.DataFrame, tokens: pl.DataFrame, touched: pl.Series,
                        spec: TokenColumns | None = None) -> tuple[pl.DataFrame, pl.DataFrame]:
    """`person_table(links, tokens)` from the previous table, where only the `touched` persons (those with a record
    new to `links` or whose tokens changed) can differ: their rows computed again from their own records, the
    others' kept. A person's row depends only on their records, so this is the whole table exactly when no other
    person's records changed (rebuilding it took 1.0-1.3 s of a month at 500k residents). Returns the table and
    the touched persons' rows (what `replace_rows` writes in place of those persons' rows)."""
    spec = spec or TokenColumns()
    touched = touched.cast(pl.String).unique()
    mine = links.filter(pl.col("person_id").is_in(touched.implode()))
    keys = mine.select("source", "record_id")
    records = tokens.join(keys.rename({"source": spec.source, "record_id": spec.record_id}),
                          left_on=[spec.source, pl.col(spec.record_id).cast(pl.String)],
                          right_on=[spec.source, spec.record_id], how="semi")
    fresh = person_table(mine, records, spec).cast(PERSON_SCHEMA) if mine.height else pl.DataFrame(
        schema=PERSON_SCHEMA)
    kept = previous.filter(~pl.col("person_id").is_in(touched.implode())).select(list(PERSON_SCHEMA)).cast(
        PERSON_SCHEMA)
    return pl.concat([kept, fresh]).sort("person_id"), fresh


def replace_rows(con: duckdb.DuckDBPyConnection, table: str, key: str, ids: pl.Series, rows: pl.DataFrame) -> None:
    """Make `table` hold `rows` in place of its rows whose `key` is one of `ids` (every other row kept as it is)."""
    con.register("__linked_ids", pl.DataFrame({key: ids}).to_arrow())
    con.execute(f"DELETE FROM {table} WHERE {key} IN (SELECT {key} FROM __linked_ids)")
    con.unregister("__linked_ids")
    con.register("__linked_in", rows.to_arrow())
    con.execute(f"INSERT INTO {table} BY NAME SELECT * FROM __linked_in")
    con.unregister("__linked_in")


def cohort_table(persons: pl.DataFrame, membership: pl.DataFrame, window: tuple[date, date] | None = None,
                 max_age_years: int = COHORT_MAX_AGE_YEARS) -> pl.DataFrame:
    """Children aged `max_age_years` or under at some time in `window` (default: the span of the records), with
    every household spell of theirs that overlaps the window (a child with no known household: one row, nulls)."""
    if window is None:
        window = (persons["first_seen"].min(), persons["last_seen"].max())
    start, end = window
    born = pl.date(pl.col("birth_year"), pl.col("birth_month").fill_null(6), 1)
    kids = persons.filter(pl.col("birth_year").is_not_null()).filter(
        (born <= pl.lit(end)) & (born > pl.lit(date(start.year - max_age_years - 1, start.month, 1))))
    m = membership.filter(pl.col("valid_from") <= pl.lit(end)).filter(
        pl.col("valid_to").is_null() | (pl.col("valid_to") > pl.lit(start)))
    return (kids.select("person_id", "birth_year", "birth_month", "sex")
            .join(m, on="person_id", how="left")
            .select("person_id", "birth_year", "birth_month", "sex", "household_id", "valid_from", "valid_to")
            .sort("person_id", "valid_from", nulls_last=True))


def linked_tables(result: LinkResult, tokens: pl.DataFrame, household: HouseholdResult,
                  review: pl.DataFrame | None = None, window: tuple[date, date] | None = None,
                  refreshed_at: datetime | None = None, person_link: pl.DataFrame | None = None,
                  persons: pl.DataFrame | None = None) -> dict[str, pl.DataFrame]:
    """Every table of the `linked` schema (see the module docstring), by name. `person_link` and `persons`: those
    tables, when the caller has them already (an incremental link: the previous table and the records new to it;
    `person_table_update`)."""
    stamp = refreshed_at or datetime.now()
    links = person_link if person_link is not None else person_link_table(result)
    persons = persons if persons is not None else person_table(links, tokens, result.model.spec)
    tables = {
        "person_link": links,
        "person": persons,
        "household_membership": household.membership,
        "cohort": cohort_table(persons, household.membership, window),
        "person_crosswalk": result.crosswalk.with_columns(pl.lit(stamp).alias("refreshed_at")),
        "household_crosswalk": household.crosswalk.with_columns(pl.lit(stamp).alias("refreshed_at")),
    }
    if review is not None:
        tables["review_pair"] = review
    return tables


def write_tables(database: str | Path | duckdb.DuckDBPyConnection, tables: dict[str, pl.DataFrame],
                 schema: str = "linked", append: tuple[str, ...] = APPENDED_TABLES,
                 by_difference: tuple[str, ...] = ()) -> None:
    """Replace `schema.<name>` for every table, but append to those named in `append` (by default the
    crosswalks, which keep the history of ids) and write those named in `by_difference` by their changes
    (`write_difference`)."""
    con = database if isinstance(database, duckdb.DuckDBPyConnection) else duckdb.connect(str(database))
    try:
        con.execute(f"CREATE SCHEMA IF NOT EXISTS {schema}")
        for name, df in tables.items():
            exists = con.execute(
                "SELECT count(*) FROM information_schema.tables WHERE table_schema = ? AND table_name = ?",
                [schema, name]).fetchone()[0]
            if name in by_difference and exists and write_difference(con, f"{schema}.{name}", df):
                continue
            con.register("__linked_in", df.to_arrow())
            if name in append and exists:
                con.execute(f"INSERT INTO {schema}.{name} BY NAME SELECT * FROM __linked_in")
            else:
                con.execute(f"CREATE OR REPLACE TABLE {schema}.{name} AS SELECT * FROM __linked_in")
            con.unregister("__linked_in")
    finally:
        if not isinstance(database, duckdb.DuckDBPyConnection):
            con.close()


def write_difference(con: duckdb.DuckDBPyConnection, table: str, df: pl.DataFrame, most: float = 0.25) -> bool:
    """Make `table` hold the rows of `df` by deleting the rows it has that `df` does not and inserting those it
    lacks (a month changes a few of the persons and households of the whole history: rewriting
    linked.person, household_membership and cohort took a second at 500k residents). False, writing
    nothing, where that would not be exact or not cheaper: other columns, a row twice in `df`, a row more often
    in the table than in `df`, or more than `most` of the rows to change. The rows' order is not kept."""
    old = con.execute(f"SELECT rowid AS __rowid, * FROM {table}").pl()
    if old.drop("__rowid").schema != df.schema or df.is_duplicated().any():
        return False
    columns = df.columns
    gone = old.join(df, on=columns, how="anti", nulls_equal=True)
    added = df.join(old, on=columns, how="anti", nulls_equal=True)
    # with no row twice in df, the rows kept match those of df already there one to one only if no row
    # the table has twice is kept
    if old.height - gone.height != df.height - added.height or gone.height + added.height > most * df.height:
        return False
    if gone.height:
        con.register("__linked_gone", gone.select("__rowid").to_arrow())
        con.execute(f"DELETE FROM {table} WHERE rowid IN (SELECT __rowid FROM __linked_gone)")
        con.unregister("__linked_gone")
    if added.height:
        con.register("__linked_in", added.to_arrow())
        con.execute(f"INSERT INTO {table} BY NAME SELECT * FROM __linked_in")
        con.unregister("__linked_in")
    return True


def save_model_artifacts(result_or_model, directory: str | Path) -> dict[str, Path]:
    """The trained model as JSON and its match-weights chart (HTML: PNG needs vl-convert, not installed), for
    MLflow; returns their paths."""
    model = getattr(result_or_model, "model", result_or_model)
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    return {"model": model.save(directory / "linkage_model.json"),
            "match_weights_chart": _match_weights_chart(model, directory / "match_weights.html"),
            "parameters": _write_parameters(model, directory / "linkage_parameters.csv")}


def _match_weights_chart(model, path: Path) -> Path:
    """The chart of the model's settings, drawn again only when they differ from those of the chart there (a
    month links with the saved model: drawing it every month took 0.2-0.6 s); `<chart>.settings` holds the
    fingerprint of the settings it was drawn from, written after it."""
    stamp = path.with_name(path.name + ".settings")
    fingerprint = hashlib.sha256(json.dumps(model.settings, sort_keys=True, default=str).encode()).hexdigest()
    if path.exists() and stamp.exists() and stamp.read_text() == fingerprint:
        return path
    stamp.unlink(missing_ok=True)
    drawn = model.match_weights_chart(path)
    if drawn == path:
        stamp.write_text(fingerprint)
    return drawn


def _write_parameters(model, path: Path) -> Path:
    model.parameters().write_csv(path)
    return path
