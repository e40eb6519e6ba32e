"""Evaluation metrics on hand-made clusters with known answers."""

from __future__ import annotations

from datetime import date

import polars as pl
import pytest

from ed_pipeline.linkage.evaluation import evaluate_links, household_metrics, pair_counts, pairwise_metrics


def frame(assign: dict[str, str]) -> pl.DataFrame:
    return pl.DataFrame({"source": ["s"] * len(assign), "record_id": list(assign), "person_id": list(assign.values())})


def test_pair_counts_from_cluster_intersections():
    truth = frame({"a": "1", "b": "1", "c": "1", "d": "2", "e": "2", "f": "3"})
    # predicted: {a,b} {c,d,e} {f}
    pred = frame({"a": "x", "b": "x", "c": "y", "d": "y", "e": "y", "f": "z"})
    c = pair_counts(pred, truth)
    # true pairs: 3 (abc) + 1 (de) = 4; predicted: 1 (ab) + 3 (cde) = 4; correct: ab, de = 2
    assert c == {"records": 6, "predicted_pairs": 4, "true_pairs": 4, "true_positive_pairs": 2}
    m = pairwise_metrics(pred, truth)
    assert m["precision"] == pytest.approx(0.5)
    assert m["recall"] == pytest.approx(0.5)
    assert m["f1"] == pytest.approx(0.5)
    assert m["false_positive_pairs"] == 2 and m["false_negative_pairs"] == 2


def test_perfect_and_degenerate_clusterings():
    truth = frame({"a": "1", "b": "1", "c": "2"})
    assert pairwise_metrics(truth, truth)["f1"] == 1.0
    singletons = frame({"a": "x", "b": "y", "c": "z"})
    m = pairwise_metrics(singletons, truth)
    assert m["precision"] == 1.0 and m["recall"] == 0.0 and m["f1"] == 0.0
    lumped = frame({"a": "x", "b": "x", "c": "x"})
    m = pairwise_metrics(lumped, truth)
    assert m["precision"] == pytest.approx(1 / 3) and m["recall"] == 1.0


def test_only_records_in_both_count_and_repeated_keys_are_one_record():
    truth = frame({"a": "1", "b": "1", "c": "1"})
    pred = pl.concat([frame({"a": "x", "b": "x"}), frame({"a": "x"})])  # c missing, a sent twice
    r = evaluate_links(pred, truth)
    assert r["records"] == 2 and r["records_missing_from_prediction"] == 1
    assert r["precision"] == 1.0 and r["recall"] == 1.0


def test_large_clusters_are_counted_without_enumerating_pairs():
    n = 200_000
    truth = pl.DataFrame({"source": "s", "record_id": [str(i) for i in range(n)], "person_id": "one"})
    pred = truth.with_columns(pl.when(pl.int_range(n) < n // 2).then(pl.lit("p")).otherwise(pl.lit("q"))
                              .alias("person_id"))
    c = pair_counts(pred, truth)
    assert c["true_pairs"] == n * (n - 1) // 2
    assert c["predicted_pairs"] == 2 * ((n // 2) * (n // 2 - 1) // 2)


def test_household_accuracy_compares_households_as_clusterings_on_probe_dates():
    links = frame({"r1": "A", "r2": "B", "r3": "C", "r4": "A"})
    truth_links = frame({"r1": "a", "r2": "b", "r3": "c", "r4": "a"})
    d = date
    truth_m = pl.DataFrame({
        "household_id": ["h1", "h1", "h2", "h1"],
        "person_id": ["a", "b", "c", "c"],
        "valid_from": [d(2015, 1, 1), d(2015, 1, 1), d(2015, 1, 1), d(2016, 1, 1)],
        "valid_to": [None, None, d(2016, 1, 1), None],
    })
    pred_m = pl.DataFrame({  # C is placed with A and B in 2015 (wrong), no household for anyone in 2016
        "household_id": ["X", "X", "X"], "person_id": ["A", "B", "C"],
        "valid_from": [d(2015, 1, 1)] * 3, "valid_to": [d(2016, 1, 1)] * 3,
    })
    probes = pl.DataFrame({"source": "s", "record_id": ["r1", "r2", "r3", "r4"],
                           "date": [d(2015, 6, 1), d(2015, 6, 1), d(2015, 6, 1), d(2016, 6, 1)]})
    m = household_metrics(links, pred_m, truth_links, truth_m, probes)
    assert m["household_probes"] == 4
    # true households by probe: r1,r2,r4 -> h1, r3 -> h2; predicted: r1,r2,r3 -> X, r4 -> none
    assert m["household_coverage"] == pytest.approx(3 / 4)
    # h1's majority predicted household is X: r1, r2 right; r4 (none) wrong; h2 -> X: r3 right
    assert m["household_accuracy"] == pytest.approx(3 / 4)
    # pairs: predicted {r1,r2,r3} = 3 pairs, true {r1,r2,r4} = 3 pairs, shared r1-r2 = 1
    assert m["household_precision"] == pytest.approx(1 / 3)
    assert m["household_recall"] == pytest.approx(1 / 3)
