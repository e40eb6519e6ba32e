"""Token frames read from the warehouse's pseudonymised layer: every record's latest version, or only the columns
and records a monthly link needs.

A month's link (`link_incremental`) needs every token of its new records and of the existing records that share
a blocking key with them, but of the other million only a few columns (keys, dates, clear birth fields, address
tokens for households, the term-frequency columns). `read_tokens(columns=...)` reads those few;
`read_candidates` lets DuckDB find the candidates in the warehouse, so that the wide rows of the rest never
leave it (at 1.5M residents: 0.9 GB and ~5 s of transfer for all 34 columns).
"""

from __future__ import annotations

import duckdb
import polars as pl

from ed_pipeline.linkage.engine import TF_COMPANIONS, tf_columns
from ed_pipeline.linkage.link import candidate_keys
from ed_pipeline.linkage.model import LinkageModel
from ed_pipeline.linkage.spec import TokenColumns
from ed_pipeline.privacy.leak_scan import registered
from ed_pipeline.sources import SOURCES

SCHEMA = "pseudonymised"
KEY = ["source", "record_id"]
VERSION = [*KEY, "extract_month"]  # a record's version: (source, record_id) is a key of each month's table
# ...as validation leaves them (record_id_unique quarantines a key's later rows in one extract). Where a table holds
# a version twice all the same (written otherwise), the row kept is the one dbt's staging keeps: the latest event
# date, then the later row of the file, whatever order the rows are stored in (macros/staged_records.sql).
LATER_COPY = ["event_date", "_row_number"]
_KEYS_VIEW = "__linkage_keys"
_NEW_VIEW = "__linkage_new"


def _tables(conn: duckdb.DuckDBPyConnection) -> dict[str, set[str]]:
    """The pseudonymised table of each source the warehouse has, with its columns."""
    rows = conn.execute("select table_name, column_name from information_schema.columns where table_schema = ?",
                        [SCHEMA]).fetchall()
    columns: dict[str, set[str]] = {}
    for table, column in rows:
        columns.setdefault(table, set()).add(column)
    tables = {s.name: columns[s.name] for s in SOURCES if s.name in columns}
    if not tables:
        raise RuntimeError("no pseudonymised tables in the warehouse: materialise the pseudonymised layer first")
    return tables


def read_tokens(conn: duckdb.DuckDBPyConnection, spec: TokenColumns, columns: set[str] | None = None
                ) -> pl.DataFrame:
    """The latest version of every pseudonymised record (a correction replaces what it corrects), in (source,
    record_id) order: the columns the spec names (or only `columns` of them, with the version's key), read table
    by table and de-duplicated in polars (a window over the union of every table in DuckDB held 4.6 GiB for a
    0.8 GiB frame at 1.5M residents; this, 3.3 GiB)."""
    wanted = {c for c in spec.mapping().values() if c}
    if columns is not None:
        wanted = wanted & (set(columns) | set(VERSION))
    frames = [conn.execute(f"select {', '.join(sorted((wanted | set(LATER_COPY)) & have))} from {SCHEMA}.{table}").pl()
              for table, have in _tables(conn).items()]
    tokens = pl.concat(frames, how="diagonal_relaxed")  # union by name
    del frames
    # The latest month's row is the one version to keep. One sort puts it first among its record's rows, and a
    # shift finds the firsts (at 1.2M records: 0.8-0.9 s, where sorting by month, unique and sorting by record
    # took 1.6-1.8 s)
    tokens = tokens.sort(VERSION, descending=[False, False, True])
    same = [pl.col(c) == pl.col(c).shift(1) for c in VERSION]
    if tokens.select(pl.all_horizontal(same).any()).item():  # a version twice: its later copy first
        tokens = _later_copy_first(tokens)
    first = ~(same[0] & same[1]).fill_null(False)
    return tokens.filter(first).drop(set(LATER_COPY) - wanted, strict=False)


def _later_copy_first(rows: pl.DataFrame) -> pl.DataFrame:
    """`rows` put in VERSION order (the latest month first) and each version's copies in the order dbt's staging
    ranks them: the latest event date, the later row of the file; then, for two copies of one row of a file (which
    no extract read by the pipeline has), a hash of the row, so that any stored order gives the same order."""
    later = [c for c in LATER_COPY if c in rows.columns]
    return (rows.with_columns(pl.struct(pl.all()).hash().alias("_row_hash"))
            .sort([*VERSION, *later, "_row_hash"], descending=[False, False, True, *[True] * len(later), True],
                  nulls_last=True)
            .drop("_row_hash"))


def monthly_link_columns(spec: TokenColumns, model: LinkageModel) -> set[str]:
    """The columns that an incremental link needs of every record (`read_tokens(columns=...)`): keys and dates,
    the clear birth fields and sex (`linked.person`), the address tokens (households) and the model's
    term-frequency columns with their companions (counted over every record)."""
    internal = set(VERSION) | {"event_date", "birth_year", "birth_month", "sex", "tok_uprn", "tok_address",
                               "tok_address_street"}
    for column in tf_columns(model.settings):
        internal |= {column, *TF_COMPANIONS.get(column, ())}
    mapping = spec.mapping()
    return {mapping[c] for c in internal if c in mapping}


PERSON_COLUMNS = ("event_date", "birth_year", "birth_month", "sex")  # what linked.person reads of a record


def version_digests(conn: duckdb.DuckDBPyConnection, spec: TokenColumns) -> dict[str, str]:
    """"<source>/<extract_month>" -> a digest of that month's pseudonymised rows (count and an order-independent
    hash of their keys and of the columns `linked.person` reads), in DuckDB (a column scan each): a month whose
    digest is the one it had at the last link is, for linked.person, the month that link read."""
    mapping = spec.mapping()
    wanted = set(VERSION) | {mapping[c] for c in PERSON_COLUMNS if mapping.get(c)}
    digests = {}
    for table, have in _tables(conn).items():
        columns = ", ".join(f'"{c}"' for c in sorted(wanted & have))
        for month, n, h in conn.execute(f"select extract_month, count(*), sum(hash({columns})) from {SCHEMA}.{table} "
                                        "group by all").fetchall():
            digests[f"{table}/{month}"] = f"{n}:{int(h or 0):x}"
    return digests


def read_records(conn: duckdb.DuckDBPyConnection, spec: TokenColumns, versions: pl.DataFrame) -> pl.DataFrame:
    """Every column the spec names of the record versions in `versions` (source, record_id, extract_month), in
    (source, record_id) order, as `read_tokens` gives them."""
    return _read_where(conn, spec, versions)


def read_candidates(conn: duckdb.DuckDBPyConnection, model: LinkageModel, versions: pl.DataFrame,
                    new_tokens: pl.DataFrame) -> pl.DataFrame:
    """Every column of the record versions in `versions` (the latest of each existing record) that share some
    blocking key of the model's, or a group, with a record of `new_tokens` (`link.candidate_keys`): the existing
    records `predict_between` could pair with the new ones, and their group members (`link._candidates`, but
    found by DuckDB in the warehouse), in (source, record_id) order."""
    rules = [pairs for pairs in candidate_keys(model) if all(new in new_tokens.columns for _, new in pairs)]

    def matching(have: set[str]) -> str:
        """The versions of a table with columns `have` that meet some rule (its columns all there: else they are
        nulls, which meet none), as SQL: a semi-join per rule over every version (a column scan each), of which
        `_read_where` keeps the latest (an OR of EXISTS over the latest versions took DuckDB 17 s at 1.5M)."""
        return " union ".join(
            f"select {', '.join(VERSION)} from {{table}} x semi join {_NEW_VIEW} n on "
            + " and ".join(f'n."{new}" = x."{old}"' for old, new in pairs)
            for pairs in rules if all(old in have for old, _ in pairs)) or None

    with registered(conn, _NEW_VIEW, new_tokens.select(sorted({n for pairs in rules for _, n in pairs}))):
        return _read_where(conn, model.spec, versions, matching)


def _read_where(conn: duckdb.DuckDBPyConnection, spec: TokenColumns, versions: pl.DataFrame, among=None
                ) -> pl.DataFrame:
    """The versions' rows of every pseudonymised table, every column of the spec's, in (source, record_id) order;
    only those among `among(columns of the table)` when given (SQL giving versions of `{table}`; None: none)."""
    wanted = {c for c in spec.mapping().values() if c}
    frames = []
    for table, have in _tables(conn).items():
        fq = f"{SCHEMA}.{table}"
        rows = versions.select(VERSION)
        if among is not None:
            # the versions it gives (few: a column scan or two each) that are wanted, matched here: DuckDB
            # scanned the million wanted versions again for every table (0.25 s each at 1.5M)
            sql = among(have)
            if sql is None:
                continue
            rows = rows.join(conn.execute(sql.format(table=fq)).pl(), on=VERSION, how="semi")
        with registered(conn, _KEYS_VIEW, rows):
            frames.append(conn.execute(f"select {', '.join(sorted((wanted | set(LATER_COPY)) & have))} from {fq} "
                                       f"semi join {_KEYS_VIEW} using ({', '.join(VERSION)})").pl())
    if not frames:
        return pl.DataFrame(schema={c: pl.String for c in VERSION})
    records = pl.concat(frames, how="diagonal_relaxed")
    if records.select(pl.struct(VERSION).is_duplicated().any()).item():  # a version twice: its later copy only
        records = _later_copy_first(records).unique(VERSION, keep="first", maintain_order=True)
    return records.drop(set(LATER_COPY) - wanted, strict=False).sort(KEY)
