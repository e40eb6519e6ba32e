"""Training, calibration, evaluation and scoring on a synthetic feature frame with a known signal."""

from __future__ import annotations

import math

import numpy as np
import polars as pl
import pytest

from ed_pipeline.modelling import (
    BASELINE_FEATURES,
    FEATURES,
    SUBGROUPS,
    TrainingConfig,
    score_children,
    train_and_evaluate,
)
from ed_pipeline.modelling.metrics import roc_auc
from ed_pipeline.modelling.synthetic import synthetic_features
from ed_pipeline.modelling.train import band, band_thresholds, choose_cohorts


def test_feature_lists():
    assert set(BASELINE_FEATURES) <= set(FEATURES)
    leaks = {"person_id", "household_id", "prediction_date", "history_months", "assessment_year", "not_gld",
             "fsm", "eal", "sen", "ethnicity_group", "lsoa"}
    assert not leaks & set(FEATURES)
    assert len(set(FEATURES)) == len(FEATURES)


def test_cohort_rule(feature_frame):
    c = choose_cohorts(feature_frame, TrainingConfig())
    assert (c.train, c.validation, c.test) == ((2016,), 2017, 2018)  # 2013-2015 have < 12 months of history
    assert c.median_history[2015] < 12 <= c.median_history[2016]
    assert set(c.rates) == set(range(2013, 2019))  # unassessed 2019 is not a cohort
    c = choose_cohorts(feature_frame, TrainingConfig(min_history_months=0))
    assert c.train == (2013, 2014, 2015, 2016)
    c = choose_cohorts(feature_frame, TrainingConfig(min_history_months=0, max_train_cohorts=2, test_cohort=2017))
    assert (c.train, c.validation, c.test) == ((2014, 2015), 2016, 2017)
    c = choose_cohorts(feature_frame, TrainingConfig(min_history_months=99))
    assert c.train == (2016,)  # none qualifies: the latest earlier cohort trains alone
    with pytest.raises(ValueError, match="three assessed cohorts"):
        choose_cohorts(feature_frame.filter(pl.col("assessment_year") >= 2017), TrainingConfig())
    first = feature_frame["assessment_year"].min()
    with pytest.raises(ValueError, match=f"test cohort {first} is the earliest"):  # not an IndexError
        choose_cohorts(feature_frame, TrainingConfig(test_cohort=first))


def test_a_cohort_whose_returns_are_still_arriving_is_not_the_test_cohort(feature_frame):
    """The first schools' EYFSP returns of a year are a few dozen children: a gate deciding on their AUC decides
    on noise, and the champion then stays "tested on" that year when the rest of it lands."""
    latest = feature_frame.filter(pl.col("assessment_year") == 2018)
    early = latest.filter(pl.col("not_gld").is_not_null()).head(latest.height // 5)
    partial = pl.concat([feature_frame.filter(pl.col("assessment_year") != 2018),
                         early, latest.filter(pl.col("not_gld").is_null())])
    c = choose_cohorts(partial, TrainingConfig())
    assert (c.validation, c.test) == (2016, 2017)
    assert 2018 not in c.sizes  # nor trained on
    assert choose_cohorts(partial, TrainingConfig(test_cohort=2018)).test == 2018  # asked for: as asked
    half = pl.concat([feature_frame.filter(pl.col("assessment_year") != 2018),
                      latest.filter(pl.col("not_gld").is_not_null()).head(latest.height * 3 // 5)])
    assert choose_cohorts(half, TrainingConfig()).test == 2018  # most of it landed: tested on


def test_trained_model_measures_the_test_cohort(trained, feature_frame):
    m = trained.metrics
    test = feature_frame.filter(pl.col("assessment_year") == 2018)
    assert m["test_n"] == test.height == trained.test_predictions.height
    for k in ("test_roc_auc", "test_pr_auc", "test_brier", "test_ece", "test_precision_top10", "test_recall_top10",
              "baseline_test_roc_auc", "baseline_test_ece", "validation_roc_auc", "test_ece_noise_floor"):
        assert math.isfinite(m[k]), k
    oracle = roc_auc(test["not_gld"], test["p_not_gld"])
    assert 0.62 < m["test_roc_auc"] < oracle
    assert m["test_roc_auc"] > m["baseline_test_roc_auc"] - 0.02
    assert m["test_ece"] < 0.04
    assert abs(m["test_mean_risk"] - m["test_outcome_rate"]) < 0.03  # the base-rate shift lands near the cohort
    assert m["test_precision_top10"] > m["test_outcome_rate"]  # the top of the list is enriched
    assert 0 < trained.best_iteration < trained.config.max_rounds
    # subgroups: every group covers the cohort, sizes given (but 1-4, and one more so that they stay unknown)
    for g in SUBGROUPS:
        sizes = trained.subgroups.filter(pl.col("group") == g)["n"]
        assert sizes.null_count() != 1
        assert sizes.sum() == test.height if not sizes.null_count() else test.height - sizes.sum() >= 2
    # the calibration curve as published: no bin of 1-4 children, nor a rate that would tell 0-4 outcomes
    curve = trained.calibration
    assert not curve["n"].is_between(1, 4).any() and curve["n"].sum() <= test.height
    assert curve.filter(pl.col("n").is_null())["observed_rate"].null_count() == curve["n"].null_count()
    rate = curve.filter(pl.col("observed_rate").is_not_null())
    assert ((rate["n"] * rate["observed_rate"]).round() >= 5).all()
    assert ((rate["n"] * (1 - rate["observed_rate"])).round() >= 5).all()
    assert set(trained.importance["feature"]) == set(FEATURES)
    assert trained.importance["mean_abs_contribution"][0] > 0


def test_label_shift_beats_validation_calibration(feature_frame, trained):
    plain = train_and_evaluate(feature_frame, TrainingConfig(base_rate="validation"))
    assert plain.metrics["test_roc_auc"] == pytest.approx(trained.metrics["test_roc_auc"])  # ranks unchanged
    assert plain.metrics["test_mean_risk"] > trained.metrics["test_mean_risk"]  # the falling rate not followed
    assert abs(trained.metrics["test_mean_risk"] - trained.metrics["test_outcome_rate"]) < abs(
        plain.metrics["test_mean_risk"] - plain.metrics["test_outcome_rate"])


def test_same_function_same_config_is_reproducible(feature_frame, trained):
    again = train_and_evaluate(feature_frame, TrainingConfig())
    assert again.metrics == pytest.approx(trained.metrics, nan_ok=True)


def test_no_signal_no_discrimination():
    frame = synthetic_features(8_400, seed=3, signal=0.0)
    result = train_and_evaluate(frame)
    assert abs(result.metrics["test_roc_auc"] - 0.5) < 0.06


def test_scoring_without_factors_gives_the_same_risk_and_band_without_computing_contributions(
        trained, feature_frame, monkeypatch):
    """Community risk reads only risk and band: its scoring skips LightGBM's pred_contrib, most of the time."""
    full = score_children(trained, feature_frame)
    monkeypatch.setattr(type(trained.scorer), "contributions",
                        lambda *_: (_ for _ in ()).throw(AssertionError("contributions computed")))
    lean = score_children(trained, feature_frame, factors=False)
    assert lean.columns == ["person_id", "prediction_date", "risk", "band"]
    assert lean.equals(full.drop("top_factors"))


def test_outcome_and_subgroup_columns_do_not_move_risk(trained, feature_frame):
    rng = np.random.default_rng(0)
    scrambled = feature_frame.with_columns(
        [pl.Series(c, rng.permutation(feature_frame[c].to_numpy())) for c in ("fsm", "eal", "ethnicity_group",
                                                                            "not_gld", "lsoa", "person_id")]
    )
    assert np.allclose(score_children(trained, scrambled)["risk"], trained.scorer.risk(feature_frame))


def test_score_children(trained, feature_frame):
    scored = score_children(trained, feature_frame)
    assert scored.columns == ["person_id", "prediction_date", "risk", "band", "top_factors"]
    assert scored.height == feature_frame.height  # unassessed children are scored too
    assert scored["risk"].is_between(0, 1).all()
    test = scored.join(trained.test_predictions.select("person_id", "prediction_date"),
                       on=["person_id", "prediction_date"])
    shares = test["band"].value_counts(normalize=True)
    share = dict(zip(shares["band"], shares["proportion"], strict=True))
    assert share["high"] == pytest.approx(0.10, abs=0.01) and share["medium"] == pytest.approx(0.20, abs=0.02)
    assert (scored.filter(pl.col("band") == "high")["risk"].min() >= trained.band_thresholds["high"])
    # top factors: at most three feature names, each with a positive contribution, largest first
    contrib = trained.scorer.contributions(feature_frame)
    for i, factors in enumerate(scored["top_factors"].to_list()[:300]):
        assert len(factors) <= 3 and set(factors) <= set(FEATURES)
        values = [contrib[i, FEATURES.index(f)] for f in factors]
        assert all(v > 0 for v in values) and values == sorted(values, reverse=True)


def test_monotone_in_agency_events(trained, feature_frame):
    base = feature_frame.head(500)
    more = base.with_columns(pl.col("domestic_abuse_24m") + 2, pl.lit(True).alias("child_protection_ever"))
    assert (trained.scorer.risk(more) >= trained.scorer.risk(base) - 1e-12).all()


def test_unseen_ward_and_nulls_are_scored(trained, feature_frame):
    odd = feature_frame.head(3).with_columns(pl.lit("Nowhere").alias("ward"), pl.lit(None, pl.Int32).alias("moves_24m"))
    assert score_children(trained, odd)["risk"].is_finite().all()


def test_missing_column_is_named(trained, feature_frame):
    with pytest.raises(ValueError, match="ward"):
        score_children(trained, feature_frame.drop("ward"))


def test_pooled_platt_recovers_shared_slope_and_cohort_intercepts():
    from ed_pipeline.modelling.calibration import Calibrator, sigmoid

    rng = np.random.default_rng(3)
    cohort = np.repeat([2016, 2017], 20_000)
    margin = rng.normal(size=cohort.size)
    intercept = np.where(cohort == 2016, -0.4, -1.1)
    y = rng.random(cohort.size) < sigmoid(1.5 * margin + intercept)
    cal = Calibrator.fit_pooled(margin, y, cohort, reference=2017)
    assert cal.slope == pytest.approx(1.5, abs=0.06) and cal.intercept == pytest.approx(-1.1, abs=0.05)
    assert Calibrator.fit_pooled(margin, y, cohort, reference=2016).intercept == pytest.approx(-0.4, abs=0.05)
    with pytest.raises(ValueError, match="reference cohort 2018"):
        Calibrator.fit_pooled(margin, y, cohort, reference=2018)


def test_crossfit_trains_the_final_model_on_training_and_validation_cohorts(feature_frame, trained):
    split = train_and_evaluate(feature_frame, TrainingConfig(calibration="validation"))
    sizes = trained.cohorts.sizes
    assert trained.metrics["final_model_n"] == sizes[2016] + sizes[2017]
    assert split.metrics["final_model_n"] == split.metrics["train_n"] == sizes[2016]
    assert trained.best_iteration == split.best_iteration  # rounds come from early stopping either way
    assert trained.booster.current_iteration() == split.booster.current_iteration() == trained.best_iteration
    # the final models differ (one saw the validation cohort), and both are calibrated to the test cohort
    assert trained.metrics["test_roc_auc"] != split.metrics["test_roc_auc"]
    for model in (trained, split):
        assert model.metrics["test_ece"] < 0.04
    with pytest.raises(ValueError, match="calibration must be"):
        train_and_evaluate(feature_frame, TrainingConfig(calibration="isotonic"))


def test_bands_hold_their_shares_as_near_as_ties_allow():
    # 100 children: 10 distinct high risks, 15 at 0.5, then a tie of 40 at 0.3 straddling the 30% cut, then 35 low.
    # The medium cut at 30 children falls 5 into the tie of 40: leaving the tie out gives 25 (medium 15%), taking it
    # in 65 (medium 55%, what np.quantile gave); the nearer edge is taken, and a tie is never split
    risk = np.concatenate([np.linspace(0.9, 0.81, 10), np.full(15, 0.5), np.full(40, 0.3), np.full(35, 0.1)])
    thresholds = band_thresholds(risk, TrainingConfig())
    bands = band(risk, thresholds)
    assert (bands == "high").sum() == 10 and (bands == "medium").sum() == 15
    # 10 places, 8 children above a tie of 4: either edge is 2 away, and the tie is taken in
    risk = np.concatenate([np.linspace(0.9, 0.83, 8), np.full(4, 0.6), np.full(88, 0.1)])
    assert (band(risk, band_thresholds(risk, TrainingConfig())) == "high").sum() == 12
