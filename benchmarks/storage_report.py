"""How DuckDB stores the pipeline's tables: row groups, partly filled ones, and deleted rows still stored.

    .venv/bin/python benchmarks/storage_report.py                     # data/ (ED_DATA_DIR)
    .venv/bin/python benchmarks/storage_report.py /tmp/fr/1500000 --top 10

A DuckDB table is stored in row groups of up to 122,880 rows. Each month appended is a partly filled group, and
a deleted row stays stored until a checkpoint merges its group with others (DuckDB merges groups only where fewer
would hold their rows). Merging costs the month's refresh time; not merging leaves small groups and deleted rows
that every scan reads. This report says where a data directory stands (docs/performance.md, "DuckDB merges row
groups at every checkpoint"). It opens both files read-only and changes nothing.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from pathlib import Path

import duckdb

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from ed_pipeline.settings import Settings  # noqa: E402

ROW_GROUP_SIZE = 122_880  # DuckDB's default row group size


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
        name = f'"{schema}"."{table}"'
        groups = [n for (n,) in conn.execute(
            "select max(count) from pragma_storage_info(?) group by row_group_id", [f"{schema}.{table}"]).fetchall()]
        (live,) = conn.execute(f"select count(*) from {name}").fetchone()
        report.append(TableStorage(f"{schema}.{table}", len(groups), sum(n < ROW_GROUP_SIZE // 2 for n in groups),
                                   sum(groups), live))
    return sorted(report, key=lambda t: (-t.stored, t.table))


def format_report(database: str, size: str, tables: list[TableStorage], top: int) -> str:
    lines = [f"{database} ({size}): {len(tables)} tables, {sum(t.row_groups for t in tables)} row groups, "
             f"{sum(t.deleted for t in tables):,} deleted rows stored",
             f"  {'table':45} {'groups':>6} {'under half':>10} {'stored':>11} {'deleted':>9} {'share':>6}"]
    lines += [f"  {t.table:45} {t.row_groups:6} {t.part_filled:10} {t.stored:11,} {t.deleted:9,} {t.deleted_share:6.1%}"
              for t in tables[:top]]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("data_dir", nargs="?", type=Path, help="holds agency_zone.duckdb and warehouse.duckdb "
                        "(default: ED_DATA_DIR, else data/)")
    parser.add_argument("--top", type=int, default=15, help="tables listed per file, most stored rows first")
    args = parser.parse_args(argv)
    settings = Settings.from_env()
    paths = ([args.data_dir / "agency_zone.duckdb", args.data_dir / "warehouse.duckdb"] if args.data_dir
             else [settings.agency_zone_path, settings.warehouse_path])
    missing = [str(p) for p in paths if not p.exists()]
    if missing:
        parser.error(f"no database at {', '.join(missing)}: give the data directory of a refreshed pipeline")
    for path in paths:
        with duckdb.connect(str(path), read_only=True) as conn:
            (size,) = conn.execute("select database_size from pragma_database_size()").fetchone()
            print(format_report(path.name, size, table_storage(conn), args.top))
    return 0


if __name__ == "__main__":
    sys.exit(main())
