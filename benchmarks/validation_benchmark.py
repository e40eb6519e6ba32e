"""Raw -> validated throughput: read_extract + validate, rows per second per source.

    .venv/bin/python benchmarks/validation_benchmark.py                # 40,000 generated rows per source
    .venv/bin/python benchmarks/validation_benchmark.py --rows 100000 --months 12
    .venv/bin/python benchmarks/validation_benchmark.py --landing data/landing   # the files synth wrote

Generated rows are valid ones built from the registry, with about 1% made invalid
(a bad date of birth) so that the quarantine path is exercised. As in the pipeline,
each source's months are read one file at a time and validated in one call.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import polars as pl

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from ed_pipeline.quality import read_extract, validate  # noqa: E402
from ed_pipeline.settings import is_month, month_range  # noqa: E402
from ed_pipeline.sources import SOURCES, Source, get_source  # noqa: E402
from ed_pipeline_tests.quality.valid_rows import valid_rows, write_extract  # noqa: E402


def generate(landing: Path, rows: int, months: int) -> None:
    month_list = month_range("2014-01", "2030-12")[:months]
    per_month = max(1, rows // months)
    for source in SOURCES:
        for m, month in enumerate(month_list):
            batch = valid_rows(source, per_month, month, start=m * per_month)
            for i in range(0, len(batch), 100):  # ~1% quarantined: a date of birth after the extract month
                batch[i][source.people[0].date_of_birth] = "01/01/2099" if "%d/" in source.date_format else "2099-01-01"
            write_extract(landing / source.name / f"{month}.csv", source, batch)


def bench(landing: Path, sources: list[Source]) -> list[dict]:
    results = []
    for source in sources:
        files = sorted(p for p in (landing / source.name).glob("*.csv") if is_month(p.stem))
        if not files:
            continue
        t0 = time.perf_counter()
        frames = []
        for path in files:
            ex = read_extract(path, source, path.stem)
            if ex.problems:
                print(f"  {ex.problems[0].message}", file=sys.stderr)
            frames.append(ex.frame)
        raw = pl.concat(frames)
        t1 = time.perf_counter()
        v = validate(raw, source)
        t2 = time.perf_counter()
        s = v.summary
        assert s["reconciled"], s
        results.append({
            "source": source.name, "files": len(files), "rows": s["rows_in"], "read_s": t1 - t0, "validate_s": t2 - t1,
            "records": s["records_validated"], "quarantined": s["rows_quarantined"],
            "expectations": s["gx_statistics"].get("evaluated_expectations", 0),
        })
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--landing", type=Path, help="a landing dir (<source>/<YYYY-MM>.csv); default: generate one")
    parser.add_argument("--rows", type=int, default=40_000, help="generated rows per source (default 40,000)")
    parser.add_argument("--months", type=int, default=12, help="generated months per source (default 12)")
    parser.add_argument("--source", action="append", help="only this source (repeatable)")
    args = parser.parse_args(argv)
    sources = [get_source(s) for s in args.source] if args.source else list(SOURCES)

    t = time.perf_counter()
    validate(pl.DataFrame(schema={c: pl.String for c in sources[0].columns}), sources[0])  # import + GX context
    warmup = time.perf_counter() - t
    with tempfile.TemporaryDirectory() as tmp:
        landing = args.landing
        if landing is None:
            landing = Path(tmp) / "landing"
            t = time.perf_counter()
            generate(landing, args.rows, args.months)
            print(f"generated {args.rows:,} rows x {len(SOURCES)} sources in {time.perf_counter() - t:.1f}s")
        results = bench(landing, sources)

    print(f"warm-up (GX import, context, first suite): {warmup:.1f}s")
    print(f"{'source':<18}{'files':>6}{'rows':>10}{'records':>10}{'quar.':>7}{'exp.':>6}"
          f"{'read s':>8}{'valid. s':>9}{'rows/s':>10}")
    total_rows = total_s = 0.0
    for r in results:
        seconds = r["read_s"] + r["validate_s"]
        total_rows += r["rows"]
        total_s += seconds
        print(f"{r['source']:<18}{r['files']:>6}{r['rows']:>10,}{r['records']:>10,}{r['quarantined']:>7,}"
              f"{r['expectations']:>6}{r['read_s']:>8.2f}{r['validate_s']:>9.2f}{r['rows'] / seconds:>10,.0f}")
    if total_s:
        print(f"{'total':<18}{'':>6}{int(total_rows):>10,}{'':>23}{total_s:>17.2f}{total_rows / total_s:>10,.0f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
