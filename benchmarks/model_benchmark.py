"""School-readiness model benchmark: training and scoring at Essex scale on a synthetic feature frame.

    .venv/bin/python benchmarks/model_benchmark.py                      # ~90k children (Essex scale)
    .venv/bin/python benchmarks/model_benchmark.py --children 8400      # the default world's size
    .venv/bin/python benchmarks/model_benchmark.py --mlflow             # also log + register + gate, in a temp store

The frame follows `features.child_features`' contract with a known signal
(`ed_pipeline.modelling.synthetic`): six assessed cohorts (2013-2018) and two unassessed (2019-2020), like
Essex's ~15k births a year. Times are wall clock; peak memory is the process's max RSS.
"""

from __future__ import annotations

import argparse
import resource
import tempfile
import time
from pathlib import Path

from ed_pipeline.modelling import TrainingConfig, log_refresh_run, promote_if_better, score_children, train_and_evaluate
from ed_pipeline.modelling.metrics import roc_auc
from ed_pipeline.modelling.synthetic import synthetic_features


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--children", type=int, default=90_000)
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--mlflow", action="store_true", help="also time log_refresh_run and promote_if_better")
    args = ap.parse_args()

    t = time.perf_counter()
    frame = synthetic_features(args.children, seed=args.seed, unassessed_cohorts=(2019, 2020))
    gen_s = time.perf_counter() - t

    t = time.perf_counter()
    result = train_and_evaluate(frame, TrainingConfig())
    train_s = time.perf_counter() - t

    t = time.perf_counter()
    scored = score_children(result, frame)
    score_s = time.perf_counter() - t

    m, c = result.metrics, result.cohorts
    test = result.test_frame
    print(f"children: {frame.height:,} (generated in {gen_s:.1f}s); cohorts train {list(c.train)} "
          f"({int(m['train_n']):,} rows), validation {c.validation} ({int(m['validation_n']):,}), "
          f"test {c.test} ({int(m['test_n']):,})")
    print(f"train_and_evaluate: {train_s:.1f}s ({result.best_iteration} trees; incl. baseline, subgroups, "
          f"pred_contrib on the test cohort)")
    print(f"score_children: {score_s:.1f}s for {scored.height:,} children "
          f"({scored.height / score_s:,.0f} a second, risk + band + top factors)")
    print(f"test ROC AUC {m['test_roc_auc']:.3f} (baseline {m['baseline_test_roc_auc']:.3f}, "
          f"true probability {roc_auc(test['not_gld'], test['p_not_gld']):.3f}); PR AUC {m['test_pr_auc']:.3f}; "
          f"Brier {m['test_brier']:.4f}; ECE {m['test_ece']:.4f} (noise floor {m['test_ece_noise_floor']:.4f}); "
          f"top 10% precision {m['test_precision_top10']:.3f} recall {m['test_recall_top10']:.3f}")
    bands = scored.group_by("band").len().sort("band")
    print("bands (all scored children): " + ", ".join(f"{b} {n:,}" for b, n in bands.iter_rows()))
    if args.mlflow:
        with tempfile.TemporaryDirectory() as tmp:
            uri = f"sqlite:///{Path(tmp) / 'mlflow.db'}"
            t = time.perf_counter()
            run_id = log_refresh_run(result, uri, Path(tmp), tags={"benchmark": "model"}, params={}, extra_artifacts=[])
            log_s = time.perf_counter() - t
            t = time.perf_counter()
            decision = promote_if_better(uri, run_id, result)
            gate_s = time.perf_counter() - t
        print(f"log_refresh_run: {log_s:.1f}s (first run creates the store); promote_if_better: {gate_s:.1f}s "
              f"(passed={decision.passed})")
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    print(f"generate + train + score: {gen_s + train_s + score_s:.1f}s; peak RSS {peak:.2f} GiB")


if __name__ == "__main__":
    main()
