"""Metric functions against values computed by hand."""

from __future__ import annotations

import math

import numpy as np
import polars as pl
import pytest
from polars.testing import assert_frame_equal

from ed_pipeline.modelling.calibration import Calibrator, expected_rate, logit
from ed_pipeline.modelling.metrics import (
    COUNT_FIGURES,
    brier,
    calibration_curve,
    ece,
    ece_noise_floor,
    metric_key,
    published_calibration_curve,
    roc_auc,
    score_metrics,
    subgroup_metrics,
    top_places,
    top_share,
)


def test_ece_by_hand():
    # bin 1: p 0.1, 0.1, observed 1/2 -> |0.5 - 0.1| * 2/5 = 0.16; bin 3: p 0.3, 0.3, observed 0 -> 0.3 * 2/5 = 0.12;
    # bin 9: p 0.9, observed 1 -> 0.1 * 1/5 = 0.02
    y = [0, 1, 0, 0, 1]
    p = [0.1, 0.1, 0.3, 0.3, 0.9]
    assert ece(y, p) == pytest.approx(0.30)
    assert ece(y, p, bins=1) == pytest.approx(abs(2 / 5 - 1.7 / 5))  # one bin: |rate - mean prediction|


def test_ece_edges():
    assert ece([1, 0], [1.0, 0.0]) == pytest.approx(0.0)  # p = 1.0 falls in the last bin, not past it
    assert ece([1, 1], [0.95, 1.0]) == pytest.approx(0.025)
    assert math.isnan(ece([], []))


def test_ece_of_a_calibrated_score_is_near_its_noise_floor():
    rng = np.random.default_rng(1)
    p = rng.uniform(0, 0.6, 20_000)
    y = rng.random(len(p)) < p
    assert ece(y, p) < 0.01
    assert ece_noise_floor(p, draws=50) < 0.01
    assert ece(y, np.clip(p + 0.1, 0, 1)) == pytest.approx(0.1, abs=0.01)  # everyone overstated by 0.1


def test_precision_and_recall_in_the_top_ten_percent_by_hand():
    # 20 children, top 10% = the 2 highest; 4 outcomes in all, 1 of them among the top 2
    p = np.linspace(0.01, 0.2, 20)
    y = np.zeros(20)
    y[[19, 3, 5, 7]] = 1  # the highest is an outcome, the second highest (18) is not
    assert top_share(y, p, 0.1) == pytest.approx((0.5, 0.25))
    # 15 children: ceil(1.5) = 2 flagged
    assert top_share(y[5:], p[5:], 0.1) == pytest.approx((0.5, 1 / 3))


def test_top_share_averages_a_tie_at_the_cut_whatever_the_row_order():
    # 10 children, top 10% = 1 place; the two highest tie at 0.5 and one of them is an outcome: the place is
    # worth half an outcome, in either row order (the baseline's few distinct risks tie at the cut: by row order its
    # precision in the top 10% ran from 0.25 to 0.40 on the default world's test cohort)
    y = np.array([0, 1, 1, 0, 0, 0, 0, 0, 0, 0])
    p = np.array([0.5, 0.5, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1])
    assert top_share(y, p, 0.1) == pytest.approx((0.5, 0.25))
    assert top_share(y[::-1], p[::-1], 0.1) == pytest.approx((0.5, 0.25))
    # 20 children, 2 places: one child above the tie, then 1 of the 3 tied at 0.3 (one outcome among them)
    y = np.array([1] + [0, 0, 1] + [0] * 16)
    p = np.array([0.9] + [0.3] * 3 + [0.1] * 16)
    assert top_share(y, p, 0.1) == pytest.approx(((1 + 1 / 3) / 2, (1 + 1 / 3) / 2))


def test_brier_auc_and_calibration_curve_by_hand():
    assert brier([1, 0], [0.8, 0.4]) == pytest.approx((0.04 + 0.16) / 2)
    assert roc_auc([0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8]) == pytest.approx(0.75)
    assert math.isnan(roc_auc([1, 1], [0.1, 0.2]))
    curve = calibration_curve([0, 1, 0, 0, 1], [0.1, 0.1, 0.3, 0.3, 0.9])
    assert curve["n"].to_list() == [2, 2, 1]
    assert curve["observed_rate"].to_list() == pytest.approx([0.5, 0.0, 1.0])
    assert curve["mean_predicted"].to_list() == pytest.approx([0.1, 0.3, 0.9])
    m = score_metrics([0, 1, 0, 0, 1], [0.1, 0.1, 0.3, 0.3, 0.9])
    assert m["n"] == 5 and m["outcome_rate"] == pytest.approx(0.4) and m["ece"] == pytest.approx(0.3)


def test_subgroups_cover_everyone_with_sizes_and_unknowns():
    rng = np.random.default_rng(2)
    n = 400
    frame = pl.DataFrame({"sex": rng.choice(["F", "M"], n), "fsm": pl.Series([None] * 10 + [True, False] * 195)})
    p = rng.uniform(0, 1, n)
    y = rng.random(n) < p / 2  # half the flagged have the outcome: no count of 1-4 among them
    sub = subgroup_metrics(frame, y, p, ("sex", "fsm"), top=0.1)
    flagged = p >= np.sort(p)[-40]  # the top 10% of 400: no tie among uniform risks
    for group in ("sex", "fsm"):
        assert sub.filter(pl.col("group") == group)["n"].sum() == n
    assert sub.filter(pl.col("group") == "sex")["flagged"].sum() == int(flagged.sum())
    # a group under 30 children shows its size only: its outcomes and rates would tell near-individual outcomes
    unknown = sub.filter((pl.col("group") == "fsm") & (pl.col("value") == "unknown")).row(0, named=True)
    assert unknown["n"] == 10 and unknown["outcomes"] is None and unknown["flagged"] is None
    assert all(math.isnan(unknown[k]) for k in ("outcome_rate", "mean_risk", "roc_auc", "brier", "precision_top10",
                                                 "recall_top10"))
    # and so does the smaller known group: the cohort's flags and outcomes less the other's would tell unknown's
    known = {r["value"]: r for r in sub.filter((pl.col("group") == "fsm") & (pl.col("value") != "unknown"))
             .iter_rows(named=True)}
    assert [known[v]["flagged"] is None for v in ("false", "true")].count(True) == 1
    assert all(math.isfinite(known[v]["roc_auc"]) for v in ("false", "true"))
    girls = sub.filter(pl.col("value") == "F").row(0, named=True)
    sel = frame["sex"].to_numpy() == "F"
    assert girls["roc_auc"] == pytest.approx(roc_auc(y[sel], p[sel]))


def test_small_subgroups_cannot_be_told_from_the_others():
    """A group of 4 (sex unknown): its size is withheld with the next smallest size; its outcomes, which the
    cohort's less the other groups' would tell, are withheld with the next smallest group's, until the groups
    shown by size only hold 30 children or more."""
    rng = np.random.default_rng(5)
    frame = pl.DataFrame({"sex": ["U"] * 4 + ["F"] * 20 + ["M"] * 376,
                          "fsm": [True] * 200 + [False] * 200})
    p = rng.uniform(0, 1, 400)
    y = rng.random(400) < p / 2
    sub = subgroup_metrics(frame, y, p, ("sex", "fsm"), top=0.1)
    sex = {r["value"]: r for r in sub.filter(pl.col("group") == "sex").iter_rows(named=True)}
    assert sex["U"]["n"] is None and sex["F"]["n"] is None and sex["M"]["n"] == 376
    assert sex["U"]["outcomes"] is None and sex["F"]["outcomes"] is None and sex["M"]["outcomes"] is None, \
        "U and F add up to 24 children: M's outcomes would tell theirs"
    assert all(sex["M"][k] is None or math.isnan(sex["M"][k]) for k in COUNT_FIGURES)
    assert math.isfinite(sex["M"]["roc_auc"]) and math.isnan(sex["F"]["roc_auc"])
    fsm = sub.filter(pl.col("group") == "fsm")
    assert fsm["n"].to_list() == [200, 200] and fsm["outcomes"].null_count() == 0


def test_subgroups_count_a_tie_at_the_top_ten_percent_cut_as_the_overall_figures_do_in_any_row_order():
    # 400 children, 40 places: 30 above a tie of 30 at 0.6 (18 girls and 12 boys above, 6 girls and 24 boys tied),
    # so each tied child holds a third of a place: girls 18 + 2 places, boys 12 + 8, as the cohort's 40
    p = np.concatenate([np.linspace(0.9, 0.7, 30), np.full(30, 0.6), np.full(340, 0.1)])
    sex = np.array(["F"] * 18 + ["M"] * 12 + ["F"] * 6 + ["M"] * 24 + ["F", "M"] * 170)
    y = np.zeros(400)
    for value, above, tied, low in (("F", 8, 3, 30), ("M", 6, 6, 30)):  # outcomes of each sex in each part
        where = np.flatnonzero(sex == value)
        parts = (where[where < 30], where[(where >= 30) & (where < 60)], where[where >= 60])
        for part, outcomes in zip(parts, (above, tied, low), strict=True):
            y[part[:outcomes]] = 1
    frame = pl.DataFrame({"sex": sex})
    sub = subgroup_metrics(frame, y, p, ("sex",), top=0.1).sort("value")
    assert sub["flagged"].to_list() == [20, 20]
    assert sub["precision_top10"].to_list() == pytest.approx([(8 + 3 / 3) / 20, (6 + 6 / 3) / 20])
    precision, recall = top_share(y, p, 0.1)
    hits = (sub["recall_top10"] * sub["outcomes"]).sum()
    assert hits / 40 == pytest.approx(precision) and hits / y.sum() == pytest.approx(recall)
    order = np.random.default_rng(3).permutation(400)
    shuffled = subgroup_metrics(frame[order], y[order], p[order], ("sex",), top=0.1).sort("value")
    assert_frame_equal(shuffled, sub, check_exact=False)  # sums in another order: equal to rounding


def test_a_subgroup_whose_counts_would_tell_one_to_four_children_has_none():
    """Large enough groups whose figures would still tell 1-4 children: a ward of 40 with 3 outcomes, and the
    children with SEN, of whom one is flagged and did not have the outcome (a precision of 0 would say so). Their
    counts and rates are withheld, and those of one more group of their grouping (the cohort's counts less the
    others' would give theirs back); their AUCs stay, and wards whose counts are all 5 or more keep theirs."""
    n = 700
    ward = np.array(["A"] * 40 + ["B"] * 60 + ["C"] * 300 + ["D"] * 300)
    p = np.concatenate([np.full(100, 0.05), np.linspace(0.2, 0.9, 300), np.linspace(0.2, 0.9, 300)])
    p[0] = 0.06  # A's outcomes are not all tied with the others: an AUC for it
    y = np.zeros(n)
    y[[0, 1, 2]] = 1  # A: 3 of 40
    y[40:100:5] = 1  # B: 12 of 60
    y[100::2] = 1  # C and D: half, flagged or not
    top = int(np.argmax(p))
    y[top] = 0
    sen = np.where((np.arange(n) >= 40) & (np.arange(n) < 89) | (np.arange(n) == top), "true", "false")
    assert top_places(p, 0.1)[sen == "true"].sum() == 1
    sub = subgroup_metrics(pl.DataFrame({"ward": ward, "sen": sen}), y, p, ("ward", "sen"), top=0.1)
    rows = {(r["group"], r["value"]): r for r in sub.iter_rows(named=True)}
    hidden = {key for key, r in rows.items() if r["outcomes"] is None}
    assert hidden == {("ward", "A"), ("ward", "B"), ("sen", "true"), ("sen", "false")}
    for key in hidden:
        assert rows[key]["flagged"] is None and all(math.isnan(rows[key][k]) for k in COUNT_FIGURES
                                                    if k not in ("outcomes", "flagged"))
    assert math.isfinite(rows[("ward", "A")]["roc_auc"]) and rows[("ward", "A")]["n"] == 40
    assert rows[("ward", "C")]["outcomes"] == 150 and rows[("ward", "C")]["flagged"] >= 5


def test_the_published_calibration_curve_tells_no_childs_outcome():
    """A bin of one child (its observed rate, 1.0, was that child's outcome) and a bin of 19 with one outcome:
    their rates are withheld, and the sizes with the single child's, since the cohort's size less the other
    bins' would give it back; the mean prediction goes with the size, and the other bins are as they were."""
    rng = np.random.default_rng(0)
    p = np.concatenate([rng.uniform(0.1, 0.4, 500), rng.uniform(0.0, 0.1, 19), [0.65]])
    y = rng.random(len(p)) < p
    y[500:] = False
    y[[500, -1]] = True
    raw = {round(r["bin_lower"], 1): r for r in calibration_curve(y, p).iter_rows(named=True)}
    assert (raw[0.6]["n"], raw[0.6]["observed_rate"]) == (1, 1.0)
    curve = {round(r["bin_lower"], 1): r for r in published_calibration_curve(y, p).iter_rows(named=True)}
    for lower in (0.0, 0.6):
        assert (curve[lower]["n"], curve[lower]["mean_predicted"], curve[lower]["observed_rate"]) == (None,) * 3
        assert curve[lower]["n_suppressed"] and curve[lower]["observed_rate_suppressed"]
    for lower in (0.1, 0.2, 0.3):
        assert {k: curve[lower][k] for k in raw[lower]} == raw[lower] and not curve[lower]["n_suppressed"]


def test_metric_keys_are_mlflow_safe():
    assert metric_key("test_roc_auc", "sex", "F") == "test_roc_auc__sex_F"
    assert metric_key("test_n", "ward", "St Martin's") == "test_n__ward_St_Martin_s"
    assert metric_key("test_roc_auc") == "test_roc_auc"


def test_base_rate_trend_and_label_shift():
    rates = {2015: 0.5, 2016: 1 / (1 + math.exp(0.5)), 2017: 1 / (1 + math.exp(1.0))}  # logit falls 0.5 a year
    assert logit(expected_rate(rates, 2018)) == pytest.approx(-1.5)
    assert expected_rate({2017: 0.3}, 2018) == pytest.approx(0.3)
    with pytest.raises(ValueError):
        expected_rate(rates, 2015)
    cal = Calibrator(slope=2.0, intercept=-1.0)
    shifted = cal.shifted(-0.5, 0.2)
    margin = np.array([-1.0, 0.0, 2.0])
    assert np.allclose(logit_array(shifted(margin)) - logit_array(cal(margin)), -0.5)


def logit_array(p):
    return np.log(p / (1 - p))
