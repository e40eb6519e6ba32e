"""Benchmark the synthetic world generator: people/s, wall seconds and peak RSS per scale.

    .venv/bin/python benchmarks/synth_benchmark.py                      # 100k and 1.5M residents
    .venv/bin/python benchmarks/synth_benchmark.py --people 100000      # one scale

Each scale runs in a fresh process (so peak RSS is that scale's own) and writes to a temporary
folder that is removed afterwards. The target: 1.5M residents (all Essex) in 5 minutes or less.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

DEFAULT_SCALES = (100_000, 1_500_000)
TARGET_SECONDS = {1_500_000: 300.0, 100_000: 30.0}


def run_one(people: int, seed: int, out: Path) -> dict:
    from ed_pipeline.synth import SynthConfig, generate

    t0 = time.perf_counter()
    summary = generate(SynthConfig(people=people, seed=seed), out / "landing", out / "truth",
                       progress=lambda msg: print(f"  [{time.perf_counter() - t0:6.1f}s] {msg}", file=sys.stderr,
                                                  flush=True))
    wall = time.perf_counter() - t0
    peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    size = sum(p.stat().st_size for p in out.rglob("*") if p.is_file())
    return {"people": people, "wall_s": round(wall, 1), "people_per_s": round(people / wall),
            "peak_rss_mib": round(peak_kib / 1024), "output_mib": round(size / 2**20),
            "rows": sum(summary.rows.values()), "rows_per_source": summary.rows, "files": summary.files,
            "distinct_people": summary.people, "households": summary.households, "children": summary.children}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--people", type=int, action="append", help="residents; repeat for several scales")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    scales = args.people or list(DEFAULT_SCALES)
    if args.child:
        with tempfile.TemporaryDirectory(prefix="synth_bench_") as tmp:
            print(json.dumps(run_one(scales[0], args.seed, Path(tmp))))
        return 0
    failed = False
    print(f"{'people':>10} {'wall s':>8} {'people/s':>10} {'peak RSS MiB':>13} {'rows':>10} {'output MiB':>11}")
    for people in scales:
        proc = subprocess.run([sys.executable, __file__, "--child", "--people", str(people), "--seed", str(args.seed)],
                              stdout=subprocess.PIPE, text=True)
        if proc.returncode != 0:
            print(f"{people:>10} failed (exit {proc.returncode})")
            failed = True
            continue
        r = json.loads(proc.stdout.strip().splitlines()[-1])
        print(f"{r['people']:>10,} {r['wall_s']:>8} {r['people_per_s']:>10,} {r['peak_rss_mib']:>13,} {r['rows']:>10,}"
              f" {r['output_mib']:>11,}")
        print(f"{'':>10} rows per source: {r['rows_per_source']}")
        target = TARGET_SECONDS.get(people)
        if target and r["wall_s"] > target:
            print(f"{'':>10} SLOWER than the {target:.0f}s target")
            failed = True
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
