"""Linking with one trained model on DuckDB and on Spark (local mode): time per backend, same persons or not.

    # worlds cached by linkage_benchmark.py (build them with `linkage_benchmark.py build --people N`):
    .venv/bin/python benchmarks/spark_linkage_benchmark.py --people 20000 --people 100000 --master 'local[2]'

For each world the model is trained once (DuckDB), then `link.link` (DuckDB) and
`spark.link_spark` (Spark, one fresh JVM for the whole run) link every record
with it; both times exclude training. `--records N` links only the first N
records of the world. Prints one JSON line per size with the load average.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import polars as pl

from ed_pipeline.linkage import link, train_model
from ed_pipeline.linkage.model import TrainingConfig


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--people", type=int, action="append", required=True)
    p.add_argument("--records", type=int, default=None)
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--work", default="data/benchmarks/linkage")
    p.add_argument("--master", default="local[2]")
    p.add_argument("--shuffle-partitions", type=int, default=8)
    p.add_argument("--driver-memory", default="4g")
    args = p.parse_args(argv)

    from ed_pipeline.linkage.spark import link_spark, spark_session

    t = time.perf_counter()
    spark = spark_session(args.master, shuffle_partitions=args.shuffle_partitions, driver_memory=args.driver_memory)
    jvm = time.perf_counter() - t
    print(json.dumps({"jvm_start_s": round(jvm, 1), "load_average": os.getloadavg()}), flush=True)
    for people in args.people:
        path = Path(args.work) / f"world_{people}_{args.seed}_2013-01_2018-07" / "tokens.parquet"
        tokens = pl.read_parquet(path)
        if args.records:
            tokens = tokens.head(args.records)
        model = train_model(tokens, config=TrainingConfig())
        t = time.perf_counter()
        duck = link(tokens, model, keep_pairs=False).person_links().select("source", "record_id", "person_id")
        duck_s = time.perf_counter() - t
        timings: dict[str, float] = {}
        t = time.perf_counter()
        on_spark = link_spark(tokens, model, spark, timings=timings)
        spark_s = time.perf_counter() - t
        key = ["source", "record_id"]
        print(json.dumps({
            "people": people, "records": tokens.height, "duckdb_link_s": round(duck_s, 1),
            "spark_link_s": round(spark_s, 1), "spark_timings": {k: round(v, 1) for k, v in timings.items()},
            "same_persons": on_spark.sort(key).equals(duck.sort(key)), "persons": duck["person_id"].n_unique(),
            "master": args.master, "load_average": os.getloadavg(),
        }), flush=True)
    spark.stop()


if __name__ == "__main__":
    main()
