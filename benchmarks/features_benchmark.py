"""Features benchmark: `dbt build` of features.child_features at Essex scale (about 90k children).

    # the default world's warehouse (ED_DATA_DIR, after `ed-pipeline refresh`), replicated to ~90k children:
    .venv/bin/python benchmarks/features_benchmark.py --children 90000

    # as it is, no replication:
    .venv/bin/python benchmarks/features_benchmark.py --scale 1

The source warehouse is never written: its pseudonymised and linked tables are copied into a work warehouse
(--work, default $ED_DATA_DIR/benchmarks/features/), replicated --scale times with every record, person and
household id suffixed per copy (so copies never link to each other, and each copy's children, households and
events are as in the world). Reported: the children in the mart, `dbt build` wall time (start-up, parse, models
and the YAML tests), and the models' and tests' own times from dbt's run_results.json.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import duckdb

from ed_pipeline.defs.features import DBT_PROJECT_DIR, dbt_executable
from ed_pipeline.settings import Settings
from ed_pipeline.sources import SOURCES

TOKENS = ("tok_", "bf_")
LINKED = {"person_link": ("record_id", "person_id"), "person": ("person_id",),
          "household_membership": ("household_id", "person_id")}


def children_in(warehouse: Path) -> int:
    """Children the mart would hold: linked persons with a third birthday in the window, or an EYFSP result."""
    with duckdb.connect(str(warehouse), read_only=True) as conn:
        # as int_data_window: the last month every monthly source has delivered (not the annual EYFSP return)
        first, last = conn.execute(" union all ".join(
            f"select min(extract_month), max(extract_month), {s.landing_month is None} from pseudonymised.{s.name}"
            for s in SOURCES).join(["select min(f), min(l) filter (where monthly) from (", ") t(f, l, monthly)"])
        ).fetchone()
        return conn.execute(f"""
            select count(*) from linked.person p
            where p.birth_year is not null and p.birth_month between 1 and 12 and (
                make_date(p.birth_year + 3, p.birth_month, 1)
                    between cast('{first}-01' as date) and cast('{last}-01' as date) + interval 1 month
                or p.person_id in (select l.person_id from linked.person_link l where l.source = 'school_readiness'))
        """).fetchone()[0]


def replicate(source: Path, target: Path, scale: int) -> None:
    """pseudonymised.* and the linked tables the features read, `scale` times over, ids suffixed per copy."""
    target.unlink(missing_ok=True)
    with duckdb.connect(str(target)) as conn:
        conn.execute(f"attach '{source}' as src (read_only)")
        conn.execute(f"create table copies as select range as k from range({scale})")
        for schema in ("pseudonymised", "linked"):
            conn.execute(f"create schema {schema}")
        for s in SOURCES:
            cols = [c for (c,) in conn.execute(
                "select column_name from information_schema.columns where table_catalog = 'src' "
                "and table_schema = 'pseudonymised' and table_name = ? order by ordinal_position", [s.name]).fetchall()
                if not c.startswith(TOKENS)]
            select = ", ".join(f"{c} || '~' || k as {c}" if c in ("record_id", "group_ref") else c for c in cols)
            conn.execute(f"create table pseudonymised.{s.name} as "
                         f"select {select} from src.pseudonymised.{s.name} cross join copies")
        for table, ids in LINKED.items():
            cols = [c for (c,) in conn.execute(
                "select column_name from information_schema.columns where table_catalog = 'src' "
                "and table_schema = 'linked' and table_name = ? order by ordinal_position", [table]).fetchall()]
            select = ", ".join(f"{c} || '~' || k as {c}" if c in ids else c for c in cols)
            conn.execute(f"create table linked.{table} as select {select} from src.linked.{table} cross join copies")
        conn.execute("drop table copies")


def dbt_build(warehouse: Path, work: Path) -> tuple[float, dict]:
    env = {**os.environ, "ED_WAREHOUSE_DB": str(warehouse), "DBT_SEND_ANONYMOUS_USAGE_STATS": "false"}
    t = time.perf_counter()
    result = subprocess.run(
        [dbt_executable(), "build", "--project-dir", str(DBT_PROJECT_DIR), "--profiles-dir", str(DBT_PROJECT_DIR),
         "--target-path", str(work / "target"), "--log-path", str(work / "logs")],
        env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - t
    if result.returncode:
        sys.exit(f"dbt build failed:\n{result.stdout[-4000:]}")
    return seconds, json.loads((work / "target" / "run_results.json").read_text())


def main(argv: list[str] | None = None) -> int:
    settings = Settings.from_env()
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--warehouse", type=Path, default=settings.warehouse_path)
    parser.add_argument("--work", type=Path, default=settings.data_dir / "benchmarks" / "features")
    size = parser.add_mutually_exclusive_group()
    size.add_argument("--children", type=int, default=90_000, help="replicate until about this many children")
    size.add_argument("--scale", type=int, help="replicate exactly this many times")
    args = parser.parse_args(argv)

    if not args.warehouse.exists():
        sys.exit(f"no warehouse at {args.warehouse}: run `ed-pipeline refresh` first (or pass --warehouse)")
    base = children_in(args.warehouse)
    scale = args.scale or max(1, math.ceil(args.children / max(base, 1)))
    shutil.rmtree(args.work, ignore_errors=True)
    args.work.mkdir(parents=True)
    warehouse = args.work / "warehouse.duckdb"
    t = time.perf_counter()
    replicate(args.warehouse, warehouse, scale)
    copy_seconds = time.perf_counter() - t
    with duckdb.connect(str(warehouse), read_only=True) as conn:
        records = sum(conn.execute(f"select count(*) from pseudonymised.{s.name}").fetchone()[0] for s in SOURCES)

    seconds, run_results = dbt_build(warehouse, args.work)
    timings = {r["unique_id"]: r["execution_time"] for r in run_results["results"]}
    models = {k.split(".")[-1]: v for k, v in timings.items() if k.startswith("model.")}
    tests = sum(v for k, v in timings.items() if k.startswith("test."))
    with duckdb.connect(str(warehouse), read_only=True) as conn:
        children, assessed = conn.execute(
            "select count(*), count(not_gld) from features.child_features").fetchone()
    report = {
        "source_warehouse": str(args.warehouse), "children_per_copy": base, "scale": scale,
        "pseudonymised_records": records, "children": children, "children_with_outcome": assessed,
        "copy_seconds": round(copy_seconds, 1), "dbt_build_seconds": round(seconds, 1),
        "models_seconds": round(sum(models.values()), 1), "tests_seconds": round(tests, 1),
        "dbt_elapsed_seconds": round(run_results.get("elapsed_time", 0.0), 1),
        "slowest_models": {k: round(v, 2) for k, v in sorted(models.items(), key=lambda kv: -kv[1])[:5]},
    }
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
