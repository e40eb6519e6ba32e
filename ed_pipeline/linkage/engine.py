"""The DuckDB side of linkage: one in-memory database per call, token frames loaded as tables, Splink linkers.

Everything here is plumbing shared by training, prediction and incremental
linking; the public API is in `model.py` and `link.py`.
"""

from __future__ import annotations

import logging
import os
from typing import Any

import duckdb
import polars as pl
from splink import DuckDBAPI, Linker

from ed_pipeline.linkage.spec import INTERNAL_DTYPES, TokenColumns, to_internal

# Columns whose term frequencies adjust match weights. Frequencies are counted over *people*, not records:
# a value's frequency is the number of distinct (value, companion) pairs, the companion being another
# identifier, so that a person seen in fifty records does not make their own name look common.
TF_COMPANIONS: dict[str, tuple[str, ...]] = {
    "tok_name_pair": ("tok_dob", "birth_year"),
    "tok_dob": ("tok_name_pair", "tok_initials"),
}

SPLINK_LOG_LEVEL = logging.WARNING


def threads() -> int:
    """DuckDB worker threads: ED_LINKAGE_THREADS, else every core."""
    return int(os.environ.get("ED_LINKAGE_THREADS") or os.cpu_count() or 1)


def connect(memory_limit: str | None = None) -> duckdb.DuckDBPyConnection:
    con = duckdb.connect(":memory:")
    con.execute(f"SET threads = {threads()}")
    con.execute("SET preserve_insertion_order = false")
    limit = memory_limit or os.environ.get("ED_LINKAGE_MEMORY_LIMIT")
    if limit:
        con.execute(f"SET memory_limit = '{limit}'")
    return con


def internal_frame(tokens: pl.DataFrame, spec: TokenColumns, fields: frozenset[str], id_offset: int = 0) -> pl.DataFrame:
    """Internal columns plus an integer `unique_id` (row number + offset)."""
    df = to_internal(tokens, spec, fields)
    return df.with_columns(pl.int_range(id_offset, id_offset + df.height, dtype=pl.Int64).alias("unique_id"))


def load_table(con: duckdb.DuckDBPyConnection, name: str, df: pl.DataFrame) -> None:
    arrow = df.to_arrow()
    con.register("__incoming", arrow)
    con.execute(f'CREATE OR REPLACE TABLE "{name}" AS SELECT * FROM __incoming')
    con.unregister("__incoming")


def tf_frame(df: pl.DataFrame, column: str) -> pl.DataFrame:
    """Person-level term frequencies of one column (see TF_COMPANIONS): column, tf_<column>."""
    companions = [c for c in TF_COMPANIONS.get(column, ()) if c in df.columns]
    base = df.lazy().filter(pl.col(column).is_not_null())
    if companions:
        companion = pl.coalesce([pl.col(c).cast(pl.String) for c in companions])
        base = base.select(column, companion.alias("_c")).unique()
    counts = base.group_by(column).len().collect()
    total = counts["len"].sum() or 1
    return counts.select(column, (pl.col("len").cast(pl.Float64) / total).alias(f"tf_{column}"))


def tf_columns(settings: dict[str, Any]) -> list[str]:
    cols = []
    for comp in settings["comparisons"]:
        for lv in comp["comparison_levels"]:
            c = lv.get("tf_adjustment_column")
            if c and c not in cols:
                cols.append(c)
    return cols


class Session:
    """One DuckDB connection with Splink's API over it, and the tables loaded into it."""

    def __init__(self, memory_limit: str | None = None):
        self.con = connect(memory_limit)
        self.db_api = DuckDBAPI(self.con)
        self._n = 0

    def register(self, df: pl.DataFrame, stem: str = "records"):
        """Load a frame as a table and register it with Splink; returns the SplinkDataFrame."""
        self._n += 1
        name = f"ed_{stem}_{self._n}"
        load_table(self.con, name, df)
        return self.db_api.register(name, table_name=f"{stem}_{self._n}")

    def linker(self, sdf, settings: dict[str, Any], tf_source: pl.DataFrame | None = None) -> Linker:
        linker = Linker(sdf, settings, log_level=SPLINK_LOG_LEVEL)
        if tf_source is not None:
            self.register_tf(linker, settings, tf_source)
        return linker

    def register_tf(self, linker: Linker, settings: dict[str, Any], tf_source: pl.DataFrame) -> None:
        for col in tf_columns(settings):
            tf = self.register(tf_frame(tf_source, col), stem=f"tf_{col}")
            linker.table_management.register_term_frequency_lookup(tf, col)

    def query(self, sql: str) -> pl.DataFrame:
        return self.con.execute(sql).pl()

    def close(self) -> None:
        self.con.close()

    def __enter__(self) -> Session:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def empty_internal_frame() -> pl.DataFrame:
    return pl.DataFrame(schema={**INTERNAL_DTYPES, "unique_id": pl.Int64()})
