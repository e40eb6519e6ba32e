"""How the pipeline's two DuckDB files are stored: no merging of row groups at each write, a compaction when due.

DuckDB stores a table in row groups of up to 122,880 rows. By default every checkpoint (each write's commit or
close) merges partly filled row groups, of every table in the file, not only those written, where fewer groups would
hold their rows, and so reclaims the deleted rows they held. Each month appended is a new partly filled group, so
every monthly write paid for rewriting the tables' last groups: about 5 s of a month's refresh at Essex scale after
a year (docs/performance.md, "DuckDB merges row groups at every checkpoint").

So every connection the pipeline writes through calls `stop_merging`, and `compact_if_due` merges on purpose
(any write with merging on merges every table) once a table of the file has more than a year of small groups,
or a large share of deleted rows. `ed-pipeline refresh` runs it after its stages, the `compact_storage` job
on a schedule, and `ed-pipeline compact` by hand.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import duckdb

ROW_GROUP_SIZE = 122_880  # DuckDB's default row group size


def stop_merging(conn: duckdb.DuckDBPyConnection) -> duckdb.DuckDBPyConnection:
    """No row-group merging at this connection's checkpoints. DuckDB's setting is global to the database instance
    (every connection to the file in this process), so it is set after connecting: connect-time configuration would
    differ from that of other connections to the same file, which DuckDB refuses."""
    conn.execute("SET max_vacuum_tasks = 0")
    return conn


def connect(path: str | Path) -> duckdb.DuckDBPyConnection:
    """A read-write connection to one of the pipeline's files that does not merge row groups."""
    return stop_merging(duckdb.connect(str(path)))


@dataclass(frozen=True)
class TableStorage:
    table: str
    row_groups: int
    part_filled: int  # row groups under half full
    stored: int  # rows stored, deleted ones included
    live: int  # rows a query sees

    @property
    def deleted(self) -> int:
        return self.stored - self.live

    @property
    def deleted_share(self) -> float:
        return self.deleted / self.stored if self.stored else 0.0


def table_storage(conn: duckdb.DuckDBPyConnection) -> list[TableStorage]:
    """Every table of the connection's database, most stored rows first."""
    tables = conn.execute("select schema_name, table_name from duckdb_tables() "
                          "where database_name = current_database() and not internal").fetchall()
    report = []
    for schema, table in tables:
        groups = [n for (n,) in conn.execute(
            "select max(count) from pragma_storage_info(?) group by row_group_id", [f"{schema}.{table}"]).fetchall()]
        (live,) = conn.execute(f'select count(*) from "{schema}"."{table}"').fetchone()
        report.append(TableStorage(f"{schema}.{table}", len(groups), sum(n < ROW_GROUP_SIZE // 2 for n in groups),
                                   sum(groups), live))
    return sorted(report, key=lambda t: (-t.stored, t.table))


@dataclass(frozen=True)
class CompactionPolicy:
    """When a file is compacted: once one of its tables has more small row groups than a year of months adds, or
    holds a tenth of its rows deleted, and at least half a row group of them (fewer cost a scan nothing much)."""

    small_groups: int = 12
    deleted_share: float = 0.10
    deleted_rows: int = ROW_GROUP_SIZE // 2

    def reasons(self, tables: Iterable[TableStorage]) -> list[str]:
        """Why the file is due for compaction; empty when it is not."""
        reasons = []
        for t in tables:
            if t.part_filled > self.small_groups:
                reasons.append(f"{t.table}: {t.part_filled} row groups under half full")
            if t.deleted_share >= self.deleted_share and t.deleted >= self.deleted_rows:
                reasons.append(f"{t.table}: {t.deleted:,} deleted rows stored ({t.deleted_share:.0%})")
        return reasons


@dataclass(frozen=True)
class Compaction:
    database: str
    reasons: list[str]  # empty: not due, left as it was
    seconds: float = 0.0
    row_groups: tuple[int, int] = (0, 0)  # before, after
    deleted: tuple[int, int] = (0, 0)

    @property
    def compacted(self) -> bool:
        return bool(self.reasons)

    def summary(self) -> str:
        if not self.compacted:
            return f"{self.database}: not due"
        return (f"{self.database}: compacted in {self.seconds:.1f} s, row groups {self.row_groups[0]} -> "
                f"{self.row_groups[1]}, deleted rows stored {self.deleted[0]:,} -> {self.deleted[1]:,} "
                f"({shorten(self.reasons)})")


def shorten(reasons: list[str], shown: int = 3) -> str:
    """The first few reasons, and how many more."""
    more = f"; and {len(reasons) - shown} more" if len(reasons) > shown else ""
    return "; ".join(reasons[:shown]) + more


def compact_if_due(paths: Iterable[Path], policy: CompactionPolicy = CompactionPolicy(),
                   force: bool = False) -> list[Compaction]:
    """Compact each existing file whose tables pass `policy` (every one with `force`). Opens each file for writing:
    run it where no pipeline run is writing them (a refresh's end, the `compact_storage` job)."""
    done = []
    for path in paths:
        if path.exists():
            with duckdb.connect(str(path)) as conn:
                done.append(_compact_if_due(conn, path.name, policy, force))
    return done


def _compact_if_due(conn: duckdb.DuckDBPyConnection, name: str, policy: CompactionPolicy, force: bool) -> Compaction:
    """Merge the file's partly filled row groups and reclaim their deleted rows, when due: a checkpoint with DuckDB's
    merging on, after a write (a checkpoint with nothing to write merges nothing). The tables' contents are
    unchanged."""
    started = time.perf_counter()
    before = table_storage(conn)
    reasons = policy.reasons(before) or (["asked for"] if force else [])
    if not reasons:
        return Compaction(name, [])
    conn.execute("RESET max_vacuum_tasks")  # merging on, even if this process had stopped it on this file
    try:
        conn.execute("BEGIN")
        conn.execute("CREATE TABLE main.ed_pipeline_compaction (marker INTEGER)")
        conn.execute("DROP TABLE main.ed_pipeline_compaction")
        conn.execute("COMMIT")
        conn.execute("CHECKPOINT")
    finally:
        stop_merging(conn)  # the pipeline's setting again, for any other connection of this process to the file
    after = table_storage(conn)
    return Compaction(name, reasons, time.perf_counter() - started,
                      (sum(t.row_groups for t in before), sum(t.row_groups for t in after)),
                      (sum(t.deleted for t in before), sum(t.deleted for t in after)))
