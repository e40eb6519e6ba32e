"""Linkage benchmark and evaluation on a synthetic Essex: pseudonymised vs clear text, F1 and timings.

    # quality on the default world (100k residents, 2013-01..2018-07), both paths side by side:
    .venv/bin/python benchmarks/linkage_benchmark.py evaluate --people 100000 --seed 42

    # throughput: link the first N pseudonymised person records of a world big enough to hold them, end to
    # end (training included); 1.25M residents give 1.01M person records:
    .venv/bin/python benchmarks/linkage_benchmark.py speed --people 1250000 --records 1000000

    # adding a month: incremental linking vs a full re-link carrying ids over (stability, crosswalk, time):
    .venv/bin/python benchmarks/linkage_benchmark.py refresh --people 100000

The world goes landing CSV -> quality.read_extract -> quality.validate ->
privacy.pseudonymise_people -> linkage.link, and is evaluated against
truth/person_records.parquet. Worlds and their tokens are cached under
--work (default data/benchmarks/linkage/) so repeated runs skip generation.
Peak memory is the process's max RSS (getrusage), reported in GiB.
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import time
from pathlib import Path

import polars as pl

from ed_pipeline.linkage import evaluate_links, link
from ed_pipeline.linkage.cleartext import clear_tokens
from ed_pipeline.linkage.model import TrainingConfig

KEY = bytes.fromhex("6b" * 32)  # a fixed benchmark key; tokens are never written outside --work


def peak_rss_gib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20


def build_world(people: int, seed: int, work: Path, first_month: str | None = None,
                last_month: str | None = None) -> dict[str, Path]:
    """Generate (once) a world and its validated and pseudonymised person records; returns the cached paths."""
    from ed_pipeline.settings import DEFAULT_LAST_MONTH, FIRST_MONTH
    from ed_pipeline.synth import SynthConfig, generate

    first_month = first_month or FIRST_MONTH
    last_month = last_month or DEFAULT_LAST_MONTH
    root = work / f"world_{people}_{seed}_{first_month}_{last_month}"
    paths = {"records": root / "records.parquet", "tokens": root / "tokens.parquet",
             "truth": root / "truth" / "person_records.parquet",
             "truth_households": root / "truth" / "household_membership.parquet"}
    if all(p.exists() for p in paths.values()):
        return paths
    t = time.perf_counter()
    generate(SynthConfig(people=people, seed=seed, first_month=first_month, last_month=last_month),
             root / "landing", root / "truth", progress=lambda m: print(f"  synth: {m}", file=sys.stderr))
    print(f"generated in {time.perf_counter() - t:.0f}s", file=sys.stderr)
    records = validated_records(root / "landing")
    records.write_parquet(paths["records"])
    t = time.perf_counter()
    from ed_pipeline.privacy import pseudonymise_people

    pseudonymise_people(records, KEY).write_parquet(paths["tokens"])
    print(f"pseudonymised {records.height:,} records in {time.perf_counter() - t:.0f}s", file=sys.stderr)
    return paths


def validated_records(landing: Path) -> pl.DataFrame:
    """Every landing CSV read and validated; the canonical person records (+ group_ref, role, upn)."""
    from ed_pipeline.quality import read_extract, validate
    from ed_pipeline.sources import CANONICAL_COLUMNS, GROUP_COLUMNS, SOURCES

    t = time.perf_counter()
    frames = []
    keep = [*CANONICAL_COLUMNS, *GROUP_COLUMNS, "upn"]
    for source in SOURCES:
        raws = []
        for path in sorted((landing / source.name).glob("*.csv")):
            ex = read_extract(path, source, path.stem)
            if ex.problems:
                print(f"  {path}: {ex.problems}", file=sys.stderr)
                continue
            raws.append(ex.frame)
        if not raws:
            continue
        v = validate(pl.concat(raws, how="diagonal_relaxed"), source)
        df = v.validated
        frames.append(df.select([pl.col(c) if c in df.columns else pl.lit(None, dtype=pl.String).alias(c)
                                 for c in keep]))
        print(f"  validated {source.name}: {df.height:,} person records "
              f"({v.quarantine.height:,} rows quarantined)", file=sys.stderr)
    print(f"read and validated in {time.perf_counter() - t:.0f}s", file=sys.stderr)
    return pl.concat(frames, how="diagonal_relaxed")


def evaluate(args: argparse.Namespace) -> dict:
    paths = build_world(args.people, args.seed, Path(args.work), args.first_month, args.last_month)
    tokens = pl.read_parquet(paths["tokens"])
    truth = pl.read_parquet(paths["truth"]).select("source", "record_id", pl.col("person_id").cast(pl.String))
    report: dict = {"people": args.people, "seed": args.seed, "records": tokens.height}
    config = TrainingConfig()
    t = time.perf_counter()
    result = link(tokens, config=config, keep_pairs=False)
    report["pseudonymised"] = {**evaluate_links(result.links, truth), "seconds": round(time.perf_counter() - t, 1),
                               "timings": {k: round(v, 2) for k, v in result.timings.items()}}
    from ed_pipeline.linkage.households import households

    t = time.perf_counter()
    hh = households(tokens, result.links)
    truth_hh = pl.read_parquet(paths["truth_households"]).select(
        pl.col("household_id").cast(pl.String), pl.col("person_id").cast(pl.String), "valid_from", "valid_to")
    probes = tokens.select("source", "record_id", pl.col("event_date").alias("date"))
    h = evaluate_links(result.links, truth, predicted_membership=hh.membership, truth_membership=truth_hh,
                       probes=probes)
    report["households"] = {k: v for k, v in h.items() if k.startswith("household")}
    report["households"]["seconds"] = round(time.perf_counter() - t, 1)
    if args.save_model:
        result.model.save(Path(args.work) / "model.json")
    if not args.skip_clear:
        records = pl.read_parquet(paths["records"])
        t = time.perf_counter()
        clear = link(clear_tokens(records), config=config, keep_pairs=False,
                     train_kwargs={"similarity": "clear"})
        report["clear_text"] = {**evaluate_links(clear.links, truth), "seconds": round(time.perf_counter() - t, 1)}
        report["pseudonymised_f1_over_clear_f1"] = report["pseudonymised"]["f1"] / report["clear_text"]["f1"]
    report["peak_rss_gib"] = round(peak_rss_gib(), 2)
    return report


def speed(args: argparse.Namespace) -> dict:
    paths = build_world(args.people, args.seed, Path(args.work), args.first_month, args.last_month)
    tokens = pl.read_parquet(paths["tokens"])
    if tokens.height >= args.records:
        tokens = tokens.head(args.records)
    else:
        raise SystemExit(f"the world has {tokens.height:,} records; ask for a bigger --people")
    truth = pl.read_parquet(paths["truth"]).select("source", "record_id", pl.col("person_id").cast(pl.String))
    rss0 = peak_rss_gib()
    t = time.perf_counter()
    result = link(tokens, keep_pairs=False)
    seconds = time.perf_counter() - t
    return {"records": tokens.height, "seconds": round(seconds, 1),
            "timings": {k: round(v, 2) for k, v in result.timings.items()},
            "peak_rss_gib": round(peak_rss_gib(), 2), "rss_before_link_gib": round(rss0, 2),
            **{k: v for k, v in evaluate_links(result.links, truth).items()
               if k in ("precision", "recall", "f1", "predicted_persons", "true_persons")}}


def refresh(args: argparse.Namespace) -> dict:
    """Adding a month: incremental (no re-training) vs a full re-link with id carry-over, on one world."""
    from ed_pipeline.linkage import id_stability
    from ed_pipeline.linkage.link import link_incremental

    paths = build_world(args.people, args.seed, Path(args.work), args.first_month, args.last_month)
    tokens = pl.read_parquet(paths["tokens"])
    truth = pl.read_parquet(paths["truth"]).select("source", "record_id", pl.col("person_id").cast(pl.String))
    last = tokens["extract_month"].max()
    old, new = tokens.filter(pl.col("extract_month") < last), tokens.filter(pl.col("extract_month") == last)
    t = time.perf_counter()
    r1 = link(old, keep_pairs=False)
    first = time.perf_counter() - t
    t = time.perf_counter()
    inc = link_incremental(r1.links, old, new, r1.model, keep_pairs=False)
    inc_s = time.perf_counter() - t
    t = time.perf_counter()
    full = link(tokens, r1.model, previous=r1.links, keep_pairs=False)
    full_s = time.perf_counter() - t
    return {
        "records_before": old.height, "new_month": last, "new_records": new.height,
        "first_link_seconds": round(first, 1),
        "incremental": {"seconds": round(inc_s, 2), "id_stability": id_stability(r1.links, inc.links),
                        "candidates": inc.model.metadata["last_incremental"]["candidates"],
                        "f1": evaluate_links(inc.links, truth)["f1"]},
        "full_relink_same_model": {"seconds": round(full_s, 1), "id_stability": id_stability(r1.links, full.links),
                                   "merges": full.crosswalk.filter(pl.col("change") == "merge").height,
                                   "splits": full.crosswalk.filter(pl.col("change") == "split").height,
                                   "f1": evaluate_links(full.links, truth)["f1"]},
        "peak_rss_gib": round(peak_rss_gib(), 2),
    }


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("mode", choices=["evaluate", "speed", "refresh", "build"])
    p.add_argument("--people", type=int, default=100_000)
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--first-month", default=None)
    p.add_argument("--last-month", default=None)
    p.add_argument("--records", type=int, default=1_000_000)
    p.add_argument("--work", default="data/benchmarks/linkage")
    p.add_argument("--skip-clear", action="store_true")
    p.add_argument("--save-model", action="store_true")
    args = p.parse_args(argv)
    if args.mode == "build":
        print(json.dumps({k: str(v) for k, v in build_world(args.people, args.seed, Path(args.work),
                                                           args.first_month, args.last_month).items()}))
        return
    report = {"evaluate": evaluate, "speed": speed, "refresh": refresh}[args.mode](args)
    print(json.dumps(report, indent=2, default=str))


if __name__ == "__main__":
    main()
