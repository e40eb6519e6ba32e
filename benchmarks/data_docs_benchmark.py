"""The Data Docs build of one validation, as a site fills with months of them: with and without the index limit.

    .venv/bin/python benchmarks/data_docs_benchmark.py                 # 48 months of every source (336 results)
    .venv/bin/python benchmarks/data_docs_benchmark.py --months 12 --rows 50

Every validate step of a refresh builds the site's pages for its own results and then the index, which GX builds
by reading back the stored results it lists. The site keeps every result, so without a limit each month's builds
read back every result of every month before. The benchmark validates `--months` months of `--rows` generated
rows for every source, building the site after each as the pipeline does, then times the build of one more
validation of each source: with GX's `validation_results_limit` at ed_pipeline's default
(`GX_DOCS_INDEX_RESULTS`) and with none.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import polars as pl

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from ed_pipeline.quality import build_data_docs, validate  # noqa: E402
from ed_pipeline.settings import GX_DOCS_INDEX_RESULTS, month_range  # noqa: E402
from ed_pipeline.sources import SOURCES  # noqa: E402
from ed_pipeline_tests.quality.valid_rows import valid_rows  # noqa: E402


def validations(month: str, rows: int) -> list:
    return [validate(pl.DataFrame(valid_rows(source, rows, month)).with_columns(extract_month=pl.lit(month)), source)
            for source in SOURCES]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--months", type=int, default=48, help="months of validations already on the site")
    parser.add_argument("--rows", type=int, default=20, help="generated rows per source and month")
    args = parser.parse_args(argv)
    months = month_range("2014-01", "2040-12")[:args.months + 1]
    with tempfile.TemporaryDirectory() as tmp:
        site = Path(tmp) / "gx_docs"
        t = time.perf_counter()
        for month in months[:-1]:
            for v in validations(month, args.rows):
                build_data_docs(v.gx_results, site)
        print(f"site filled: {args.months} months x {len(SOURCES)} sources = {args.months * len(SOURCES)} results "
              f"in {time.perf_counter() - t:.1f} s", flush=True)
        last = validations(months[-1], args.rows)
        for label, limit in ((f"index limit {GX_DOCS_INDEX_RESULTS}", GX_DOCS_INDEX_RESULTS), ("no index limit", 0)):
            times = []
            for v in last:
                t = time.perf_counter()
                build_data_docs(v.gx_results, site, index_results=limit)
                times.append(time.perf_counter() - t)
            print(f"{label:<18} one build: median {statistics.median(times):.3f} s, a month of {len(SOURCES)} "
                  f"sources {sum(times):.2f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
