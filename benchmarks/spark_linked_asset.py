"""The linked asset's link of every record on DuckDB and on Spark (`ED_LINKAGE_BACKEND`): time each, same tables?

    # a refreshed world (`make run`, or full_refresh.py's): its warehouse and saved linkage model are only read
    ED_DATA_DIR=data .venv/bin/python benchmarks/spark_linked_asset.py
    ED_DATA_DIR=/tmp/fr/100000 .venv/bin/python benchmarks/spark_linked_asset.py --master 'local[2]'

The world's warehouse and linkage model are copied twice into a temporary folder (the world itself is only read);
`link_people_and_households` runs on each copy, in this process, with `full_relink` (every record scored and
clustered again with the saved model, ids carried over): first on DuckDB, then with ED_LINKAGE_BACKEND=spark on a
fresh local JVM (its start counted). Every `linked.*`
table of the two copies is then compared (floats to 1e-9). Prints one JSON line: the seconds of each run, the
records and persons, and whether the tables are the same. Where `spark_linkage_benchmark.py` times the scoring
and clustering alone, this is what the pipeline's step costs on each backend, households and tables included.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import duckdb
import polars as pl


def linked_tables(warehouse: Path) -> dict[str, pl.DataFrame]:
    """Every linked table but the crosswalks' refresh times, each in one order."""
    with duckdb.connect(str(warehouse), read_only=True) as conn:
        names = [n for (n,) in conn.execute("select table_name from information_schema.tables "
                                            "where table_schema = 'linked' order by 1").fetchall()]
        tables = {n: conn.execute(f"select * from linked.{n}").pl().drop("refreshed_at", strict=False)
                  for n in names}
    return {n: t.sort(t.columns, nulls_last=True) for n, t in tables.items()}


def close(x: pl.Series, y: pl.Series, tolerance: float = 1e-9) -> bool:
    """Nulls in the same rows, and the values within `tolerance` (the same sums, computed by two engines)."""
    return (x.is_null() == y.is_null()).all() and bool(((x - y).abs().fill_null(0) <= tolerance).all())


def differences(a: dict[str, pl.DataFrame], b: dict[str, pl.DataFrame]) -> list[str]:
    """The tables that differ (names, rows, or values; floats beyond 1e-9)."""
    out = sorted(set(a) ^ set(b))
    for name in sorted(set(a) & set(b)):
        x, y = a[name], b[name]
        if x.columns != y.columns or x.height != y.height:
            out.append(name)
            continue
        floats = [c for c, t in x.schema.items() if t.is_float()]
        if not x.drop(floats).equals(y.drop(floats)) or not all(close(x[c], y[c]) for c in floats):
            out.append(name)
    return out


def link_every_record(warehouse: Path) -> float:
    """`link_people_and_households` with full_relink over `warehouse`, in this process; its seconds."""
    import dagster as dg
    from dagster_duckdb import DuckDBResource

    from ed_pipeline.defs.linked import link_people_and_households

    started = time.perf_counter()
    result = dg.materialize([link_people_and_households],
                            resources={"warehouse": DuckDBResource(database=str(warehouse))},
                            run_config={"ops": {"link_people_and_households": {"config": {"full_relink": True}}}})
    assert result.success
    return time.perf_counter() - started


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--master", default="local[2]", help="ED_SPARK_MASTER for the Spark run")
    args = p.parse_args(argv)
    from ed_pipeline.settings import Settings

    settings = Settings.from_env()
    if not settings.warehouse_path.exists():
        print(f"no warehouse at {settings.warehouse_path}: refresh the world first (ED_DATA_DIR)", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory(prefix="ed_spark_linked_") as work:
        # each run its own data directory: the warehouse and the saved model (linkage/), which it writes back
        copies = {}
        for backend in ("duckdb", "spark"):
            data_dir = Path(work) / backend
            shutil.copytree(settings.linkage_dir, data_dir / "linkage")
            copies[backend] = Path(shutil.copy(settings.warehouse_path, data_dir / "warehouse.duckdb"))
        os.environ["ED_SPARK_MASTER"] = args.master
        seconds = {}
        for backend, copy in copies.items():
            os.environ.update(ED_LINKAGE_BACKEND=backend, ED_DATA_DIR=str(copy.parent))
            seconds[backend] = round(link_every_record(copy), 1)
        tables = {backend: linked_tables(copy) for backend, copy in copies.items()}
    links = tables["duckdb"]["person_link"]
    print(json.dumps({"data_dir": str(settings.data_dir), "records": links.height,
                      "persons": links["person_id"].n_unique(), "duckdb_s": seconds["duckdb"],
                      "spark_s": seconds["spark"], "master": args.master,
                      "tables_differing": differences(tables["duckdb"], tables["spark"]),
                      "load_average": [round(x, 2) for x in os.getloadavg()]}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
