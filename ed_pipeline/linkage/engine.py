"""The DuckDB side of linkage: one in-memory database per call, token frames loaded as tables, Splink linkers.

Everything here is plumbing shared by training, prediction and incremental
linking; the public API is in `model.py` and `link.py`.
"""

from __future__ import annotations

import logging
import os
import tempfile
from collections.abc import Iterable
from typing import Any

import duckdb
import numpy as np
import polars as pl
from splink import DuckDBAPI, Linker

from ed_pipeline.linkage.spec import INTERNAL_DTYPES, TokenColumns, to_internal
from ed_pipeline.settings import DEFAULT_DUCKDB_MEMORY_LIMIT, duckdb_memory_limit

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


# Splink's prediction of a county's records fills DuckDB's own default (80% of the machine's memory) before
# anything spills: 7 GiB at 1.5M residents (docs/performance.md).
DEFAULT_MEMORY_LIMIT = DEFAULT_DUCKDB_MEMORY_LIMIT


def configured_memory_limit() -> str:
    """The linkage session's DuckDB memory limit: ED_LINKAGE_MEMORY_LIMIT, else DEFAULT_MEMORY_LIMIT."""
    return duckdb_memory_limit("ED_LINKAGE_MEMORY_LIMIT")


def connect(memory_limit: str | None = None, temp_directory: str | os.PathLike | None = None
            ) -> duckdb.DuckDBPyConnection:
    """An in-memory DuckDB for one linkage session: every core (or ED_LINKAGE_THREADS), a memory limit, and a
    temp directory to spill to beyond it (DuckDB's default for an in-memory database is `.tmp` in the working
    directory)."""
    con = duckdb.connect(":memory:")
    con.execute(f"SET threads = {threads()}")
    con.execute("SET preserve_insertion_order = false")
    limit = memory_limit or configured_memory_limit()
    con.execute("SET memory_limit = ?", [limit])
    if temp_directory is not None:
        con.execute("SET temp_directory = ?", [str(temp_directory)])
    return con


HASH_SEED = 0x5EED


def hash_tokens(df: pl.DataFrame) -> pl.DataFrame:
    """Token strings (32 hex characters) as 64-bit integers: equality joins and comparisons on integers are several
    times faster in DuckDB. A collision among a few million distinct values has probability ~1e-7; the hash is
    only ever used inside one process, never stored."""
    cols = [c for c in df.columns if c.startswith("tok_") and df.schema[c] == pl.String()]
    return df.with_columns(
        pl.when(pl.col(c).is_not_null()).then(pl.col(c).hash(seed=HASH_SEED)).alias(c) for c in cols
    )


def bloom_widths(df: pl.DataFrame) -> dict[str, int]:
    """64-bit words per Bloom filter column (Binary, fixed length) of a frame; 0 for a column that is all null."""
    out = {}
    for c in df.columns:
        if c.startswith("bf_") and df.schema[c] == pl.Binary():
            lengths = df[c].bin.size().drop_nulls().unique()
            if len(lengths) > 1:
                raise ValueError(f"Bloom filters in {c!r} differ in length: {sorted(lengths.to_list())} bytes")
            nbytes = int(lengths[0]) if len(lengths) else 0
            if nbytes % 8:
                raise ValueError(f"Bloom filters in {c!r} are {nbytes} bytes; a multiple of 8 is required")
            out[c] = nbytes // 8
    return out


def bloom_words(df: pl.DataFrame, widths: dict[str, int]) -> pl.DataFrame:
    """Each Bloom filter column as 64-bit words `<bf>_w0..` plus its bit count `<bf>_pc`, so that Dice is a
    handful of integer bit counts per pair instead of a BLOB-to-BIT cast (three times faster in DuckDB)."""
    out = df
    for c, words in widths.items():
        if c not in df.columns:
            continue
        s = df[c]
        have = bloom_widths(df.select(c))[c]
        if have not in (0, words):
            raise ValueError(f"Bloom filters in {c!r} have {8 * have} bytes; the model was trained on {8 * words}")
        nbytes = 8 * words
        valid = s.is_not_null().to_numpy()
        if words and valid.any():
            filled = s.fill_null(b"\0" * nbytes).to_list()
            matrix = np.frombuffer(b"".join(filled), dtype=">u8").reshape(len(filled), words).astype(np.uint64)
        else:
            matrix = np.zeros((len(s), words), dtype=np.uint64)
        popcount = np.unpackbits(matrix.view(np.uint8), axis=1).sum(axis=1).astype(np.int32) if words else \
            np.zeros(len(s), dtype=np.int32)
        new = {f"{c}_w{i}": pl.Series(matrix[:, i], dtype=pl.UInt64) for i in range(words)}
        new[f"{c}_pc"] = pl.Series(popcount, dtype=pl.Int32)
        mask = pl.Series(valid, dtype=pl.Boolean)
        out = out.with_columns(pl.when(mask).then(v).alias(k) for k, v in new.items()).drop(c)
    return out


def internal_frame(tokens: pl.DataFrame, spec: TokenColumns, fields: frozenset[str], widths: dict[str, int],
                   id_offset: int = 0, *, hashed: bool = True) -> pl.DataFrame:
    """Internal columns plus an integer `unique_id` (row number + offset); tokens hashed, filters as words."""
    df = to_internal(tokens, spec, fields)
    if hashed:
        df = hash_tokens(df)
    df = bloom_words(df, widths)
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


def tf_sql(records_table: str, column: str, columns: Iterable[str]) -> str:
    """`tf_frame` as SQL over a table of records with `columns` (DuckDB's dialect; transpiled for Spark, where the
    records are not on the driver): the same counts and the same division."""
    companions = [c for c in TF_COMPANIONS.get(column, ()) if c in set(columns)]
    pairs = f"DISTINCT {column}, coalesce({', '.join(f'CAST({c} AS VARCHAR)' for c in companions)})" \
        if companions else column
    return f"""
        SELECT {column}, CAST(count(*) AS DOUBLE) / sum(count(*)) OVER () AS tf_{column}
        FROM (SELECT {pairs} FROM {records_table} WHERE {column} IS NOT NULL) t
        GROUP BY {column}
    """


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
        # spill files go to a directory of the session's own (under ED_LINKAGE_TEMP_DIR, else the system's),
        # removed when it closes
        self._spill = tempfile.TemporaryDirectory(prefix="ed_linkage_", dir=os.environ.get("ED_LINKAGE_TEMP_DIR"))
        self.con = connect(memory_limit, self._spill.name)
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
        self._spill.cleanup()

    def __enter__(self) -> Session:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def empty_internal_frame(widths: dict[str, int], hashed: bool = True) -> pl.DataFrame:
    df = pl.DataFrame(schema={**INTERNAL_DTYPES, "unique_id": pl.Int64()})
    if hashed:
        df = hash_tokens(df)
    return bloom_words(df, widths)
