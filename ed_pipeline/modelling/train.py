"""Train, calibrate and evaluate the school-readiness risk model on temporally split cohorts.

Cohort rule (TrainingConfig): cohorts are assessment years with outcomes. The latest is the *test*
cohort, the one before it the *validation* cohort (early stopping, then calibration), and the *training*
cohorts are the earlier ones whose median `history_months` is at least `min_history_months` (12 by
default): a child whose third birthday falls before the data begin has empty 12/24-month windows, which
looks like "no adversity" and would teach the model that events do not matter. In the default world
(data from 2013-01) that trains on 2016 (median ~14 months), validates on 2017 and tests on 2018; 2013-2015
(prediction dates 2010-2013) are used only for the base-rate trend (see calibration.py). When no earlier
cohort has enough history the latest earlier cohort trains alone.

Calibration (`calibration="crossfit"`, the default): the number of boosting rounds comes from early
stopping on the validation cohort; then 5-fold out-of-fold margins over training + validation cohorts
fit a Platt calibrator (one slope, one intercept per cohort), and the final model is trained on training +
validation cohorts with those rounds. On the default world this took the test ECE from 0.020-0.025 (Platt
on the validation cohort alone, five LightGBM seeds) to 0.011-0.015, and AUC from ~0.637 to ~0.640: the
slope rests on twice the children, and the final model has seen the cohort with full 24-month histories.
`calibration="validation"` keeps the simpler split (model on training cohorts, Platt on validation).

The same function and config train "the same model" on any frame that follows the
`features.child_features` contract (e.g. features built from the true linkage, for evaluation).
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field

import lightgbm as lgb
import numpy as np
import polars as pl
from sklearn.linear_model import LogisticRegression

from ed_pipeline.modelling.calibration import Calibrator, expected_rate, logit
from ed_pipeline.modelling.features import (
    BASELINE_FEATURES,
    CATEGORICAL,
    COHORT,
    FEATURES,
    INCREASING,
    KEYS,
    SUBGROUPS,
    TARGET,
    Encoding,
    check_columns,
)
from ed_pipeline.modelling.metrics import (
    ece_noise_floor,
    published_calibration_curve,
    score_metrics,
    share_threshold,
    subgroup_metrics,
)

TOP_FACTORS = 3


@dataclass(frozen=True)
class TrainingConfig:
    test_cohort: int | None = None  # default: the latest cohort with outcomes
    validation_cohort: int | None = None  # default: the cohort before the test cohort
    min_history_months: int = 12  # a training cohort's median months of data before the prediction date
    max_train_cohorts: int | None = None  # keep only the latest N qualifying training cohorts
    # the latest cohort is left out (neither tested nor trained on) while its assessed children number fewer
    # than this share of the cohort before: its schools' returns are still arriving
    min_cohort_share: float = 0.5
    calibration: str = "crossfit"  # "crossfit": out-of-fold Platt on train + validation, final model on both;
    # "validation": model on the training cohorts, Platt on the validation cohort
    crossfit_folds: int = 5
    base_rate: str = "trend"  # "trend": shift calibration to the extrapolated test-cohort rate; "validation": don't
    trend_cohorts: int = 3
    monotone: bool = True  # risk never falls as an agency event count or flag rises
    learning_rate: float = 0.03
    num_leaves: int = 7
    min_data_in_leaf: int = 40
    feature_fraction: float = 0.8
    bagging_fraction: float = 0.8
    lambda_l2: float = 5.0
    cat_smoothing: float = 20.0
    max_rounds: int = 2000
    early_stopping_rounds: int = 100
    ece_bins: int = 10
    top_share: float = 0.10  # precision/recall at the top of the list; also the 'high' band
    medium_share: float = 0.20  # the next share down is 'medium'
    seed: int = 42
    num_threads: int = 0  # 0: one thread under 50k training rows (OpenMP only slows small data), else all cores

    def lgb_params(self, rows: int = 0) -> dict:
        threads = self.num_threads or (1 if rows < 50_000 else os.cpu_count() or 1)
        params = {
            "objective": "binary", "metric": "binary_logloss", "learning_rate": self.learning_rate,
            "num_leaves": self.num_leaves, "min_data_in_leaf": self.min_data_in_leaf,
            "feature_fraction": self.feature_fraction, "bagging_fraction": self.bagging_fraction,
            "bagging_freq": 1, "lambda_l2": self.lambda_l2, "cat_smooth": self.cat_smoothing,
            "min_data_per_group": 20, "max_cat_to_onehot": 4, "seed": self.seed, "deterministic": True,
            "force_row_wise": True, "num_threads": threads, "verbosity": -1,
        }
        if self.monotone:
            params["monotone_constraints"] = [1 if f in INCREASING else 0 for f in FEATURES]
            params["monotone_constraints_method"] = "advanced"
        return params

    def as_params(self) -> dict[str, str]:
        return {k: str(v) for k, v in self.__dict__.items()}


@dataclass(frozen=True)
class Cohorts:
    train: tuple[int, ...]
    validation: int
    test: int
    rates: dict[int, float]  # outcome rate of every cohort with outcomes
    sizes: dict[int, int]
    median_history: dict[int, float]


@dataclass
class RiskScorer:
    """Booster + category encoding + calibrator: feature frame in, calibrated risk and contributions out."""

    booster: lgb.Booster
    encoding: Encoding
    calibrator: Calibrator
    features: tuple[str, ...] = FEATURES  # the columns the booster was trained on, in its order

    def margin(self, frame: pl.DataFrame) -> np.ndarray:
        return self.booster.predict(self.encoding.matrix(frame, self.features), raw_score=True)

    def risk(self, frame: pl.DataFrame) -> np.ndarray:
        return self.calibrator(self.margin(frame))

    def contributions(self, frame: pl.DataFrame) -> np.ndarray:
        """Per child and feature, the log-odds contribution (TreeSHAP, `pred_contrib`); last column the bias."""
        return np.asarray(self.booster.predict(self.encoding.matrix(frame, self.features), pred_contrib=True))


@dataclass
class Baseline:
    """Logistic regression on BASELINE_FEATURES, calibrated the same way as the model."""

    model: LogisticRegression
    calibrator: Calibrator

    @staticmethod
    def matrix(frame: pl.DataFrame) -> np.ndarray:
        """BASELINE_FEATURES as numbers: sex as indicators of 'M' and 'U' (reference 'F'), flags 0/1, null 0."""
        cols = []
        for c in BASELINE_FEATURES:
            if c == "sex":
                cols += [(frame[c] == level).fill_null(False).to_numpy() for level in ("M", "U")]
            else:
                cols.append(frame[c].cast(pl.Float64).fill_null(0.0).to_numpy())
        return np.column_stack(cols).astype(np.float64)

    def risk(self, frame: pl.DataFrame) -> np.ndarray:
        return self.calibrator(self.model.decision_function(self.matrix(frame)))


@dataclass
class TrainedModel:
    config: TrainingConfig
    scorer: RiskScorer
    baseline: Baseline | None  # None in a model rebuilt from the registry (`rebuilt`): the baseline is not kept
    cohorts: Cohorts
    metrics: dict[str, float]  # test_*, baseline_test_*, validation_*, sizes
    subgroups: pl.DataFrame  # group, value, n, outcomes, metrics (test cohort)
    calibration: pl.DataFrame  # test cohort calibration curve
    baseline_calibration: pl.DataFrame
    importance: pl.DataFrame  # feature, mean_abs_contribution, mean_contribution, gain, splits
    test_frame: pl.DataFrame  # the test cohort's rows (in memory only; holds person_id: never logged)
    test_predictions: pl.DataFrame  # person_id, prediction_date, not_gld, risk, baseline_risk
    band_thresholds: dict[str, float]  # risk >= high -> 'high', >= medium -> 'medium', else 'low'
    best_iteration: int
    extra: dict = field(default_factory=dict)

    @property
    def booster(self) -> lgb.Booster:
        return self.scorer.booster

    @property
    def calibrator(self) -> Calibrator:
        return self.scorer.calibrator


def choose_cohorts(features: pl.DataFrame, config: TrainingConfig) -> Cohorts:
    known = features.filter(pl.col(COHORT).is_not_null() & pl.col(TARGET).is_not_null())
    stats = known.group_by(COHORT).agg(
        pl.len().alias("n"), pl.col(TARGET).cast(pl.Float64).mean().alias("rate"),
        pl.col("history_months").median().alias("history"),
    ).sort(COHORT)
    if (config.test_cohort is None and stats.height > 1
            and stats["n"][-1] < config.min_cohort_share * stats["n"][-2]):
        stats = stats.head(-1)
    years = stats[COHORT].to_list()
    if len(years) < 3:
        raise ValueError(f"need at least three assessed cohorts (train, validation, test); found {years}")
    test = config.test_cohort if config.test_cohort is not None else years[-1]
    earlier = [y for y in years if y < test]
    if config.validation_cohort is None and not earlier:
        raise ValueError(f"test cohort {test} is the earliest assessed cohort {years}: none left to validate on")
    validation = config.validation_cohort if config.validation_cohort is not None else earlier[-1]
    if test not in years or validation not in years or validation >= test:
        raise ValueError(f"test cohort {test} and validation cohort {validation} must be known, validation first")
    history = dict(zip(years, stats["history"].to_list(), strict=True))
    before = [y for y in years if y < validation]
    if not before:
        raise ValueError(f"no cohort before the validation cohort {validation} to train on")
    train = [y for y in before if (history[y] or 0) >= config.min_history_months] or [before[-1]]
    if config.max_train_cohorts:
        train = train[-config.max_train_cohorts:]
    return Cohorts(
        train=tuple(train), validation=validation, test=test,
        rates=dict(zip(years, stats["rate"].to_list(), strict=True)),
        sizes=dict(zip(years, stats["n"].to_list(), strict=True)), median_history=history,
    )


def _target(frame: pl.DataFrame) -> np.ndarray:
    return frame[TARGET].cast(pl.Int64).to_numpy()


def _fit_booster(config: TrainingConfig, encoding: Encoding, frame: pl.DataFrame, rounds: int,
                 valid: pl.DataFrame | None = None) -> lgb.Booster:
    """LightGBM on a frame: `rounds` rounds, or early stopping on `valid` when given."""
    data = lgb.Dataset(encoding.matrix(frame), _target(frame), feature_name=list(FEATURES),
                       categorical_feature=[FEATURES.index(c) for c in CATEGORICAL], free_raw_data=True)
    if valid is None:
        return lgb.train(config.lgb_params(frame.height), data, num_boost_round=rounds)
    d_val = lgb.Dataset(encoding.matrix(valid), _target(valid), reference=data)
    return lgb.train(config.lgb_params(frame.height), data, num_boost_round=rounds, valid_sets=[d_val],
                     valid_names=["validation"],
                     callbacks=[lgb.early_stopping(config.early_stopping_rounds, verbose=False)])


def _fit_baseline(frame: pl.DataFrame) -> LogisticRegression:
    return LogisticRegression(max_iter=1000).fit(Baseline.matrix(frame), _target(frame))


def _out_of_fold(frame: pl.DataFrame, folds: np.ndarray, fit, margin) -> np.ndarray:
    """Each row's margin from a model fitted without its fold: `margin(fit(other folds), this fold)`."""
    out = np.empty(frame.height, dtype=np.float64)
    for fold in np.unique(folds):
        held = folds == fold
        out[held] = margin(fit(frame.filter(pl.Series(~held))), frame.filter(pl.Series(held)))
    return out


def train_and_evaluate(features: pl.DataFrame, config: TrainingConfig | None = None) -> TrainedModel:
    """Fit LightGBM (early stopping on the validation cohort), calibrate, fit the baseline, and measure both on
    the test cohort: overall, by subgroup, calibration curve, global importance from `pred_contrib`."""
    config = config or TrainingConfig()
    check_columns(features, (*KEYS, *FEATURES, COHORT, TARGET, "history_months", *SUBGROUPS))
    cohorts = choose_cohorts(features, config)
    labelled = features.filter(pl.col(TARGET).is_not_null())
    train = labelled.filter(pl.col(COHORT).is_in(list(cohorts.train)))
    val = labelled.filter(pl.col(COHORT) == cohorts.validation)
    test = labelled.filter(pl.col(COHORT) == cohorts.test)
    y_val, y_test = _target(val), _target(test)

    # How many boosting rounds: early stopping on the validation cohort.
    encoding = Encoding.fit(train)
    booster = _fit_booster(config, encoding, train, config.max_rounds, valid=val)
    best = booster.best_iteration or booster.current_iteration()

    offset, target_rate = 0.0, None
    if config.base_rate == "trend":
        target_rate = expected_rate(cohorts.rates, cohorts.test, config.trend_cohorts)
        offset = logit(target_rate) - logit(cohorts.rates[cohorts.validation])
    elif config.base_rate != "validation":
        raise ValueError(f"base_rate must be 'trend' or 'validation', not {config.base_rate!r}")

    if config.calibration == "crossfit":
        # Out-of-fold margins over training + validation cohorts calibrate (no child is scored by a model that saw
        # it); the final model then learns from both, at the rounds early stopping chose.
        pool = pl.concat([train, val])
        y_pool, cohort = _target(pool), pool[COHORT].to_numpy()
        folds = np.random.default_rng(config.seed).permutation(pool.height) % config.crossfit_folds
        encoding = Encoding.fit(pool)
        oof = _out_of_fold(pool, folds, lambda part: _fit_booster(config, encoding, part, best),
                           lambda model, part: model.predict(encoding.matrix(part), raw_score=True))
        calibrator = Calibrator.fit_pooled(oof, y_pool, cohort, cohorts.validation)
        booster = _fit_booster(config, encoding, pool, best)
        val_margin = oof[cohort == cohorts.validation]

        base_oof = _out_of_fold(pool, folds, _fit_baseline,
                                lambda model, part: model.decision_function(Baseline.matrix(part)))
        base_lr = _fit_baseline(pool)
        base_cal = Calibrator.fit_pooled(base_oof, y_pool, cohort, cohorts.validation)
    elif config.calibration == "validation":
        booster = booster.model_from_string(booster.model_to_string(num_iteration=best))  # keep the best rounds
        val_margin = booster.predict(encoding.matrix(val), raw_score=True)
        calibrator = Calibrator.fit(val_margin, y_val)
        base_lr = _fit_baseline(train)
        base_cal = Calibrator.fit(base_lr.decision_function(Baseline.matrix(val)), y_val)
    else:
        raise ValueError(f"calibration must be 'crossfit' or 'validation', not {config.calibration!r}")
    calibrator = calibrator.shifted(offset, target_rate)
    scorer = RiskScorer(booster, encoding, calibrator)
    baseline = Baseline(base_lr, base_cal.shifted(offset, target_rate))

    risk = scorer.risk(test)
    base_risk = baseline.risk(test)
    metrics = {f"test_{k}": v for k, v in score_metrics(y_test, risk, top=config.top_share,
                                                        bins=config.ece_bins).items()}
    metrics["test_ece_noise_floor"] = ece_noise_floor(risk, config.ece_bins)
    metrics |= {f"baseline_test_{k}": v for k, v in score_metrics(y_test, base_risk, top=config.top_share,
                                                                  bins=config.ece_bins).items()
                if k not in ("n", "outcome_rate")}
    val_risk = calibrator.shifted(0.0, None)(val_margin)
    metrics |= {f"validation_{k}": v for k, v in score_metrics(y_val, val_risk, top=config.top_share,
                                                               bins=config.ece_bins).items()}
    metrics |= {"train_n": float(train.height), "best_iteration": float(best),
                "final_model_n": float(train.height + (val.height if config.calibration == "crossfit" else 0)),
                "auc_gain_over_baseline": metrics["test_roc_auc"] - metrics["baseline_test_roc_auc"],
                "expected_test_outcome_rate": target_rate if target_rate is not None else math.nan,
                "calibration_slope": calibrator.slope, "calibration_intercept": calibrator.intercept,
                "calibration_offset": offset}

    thresholds = band_thresholds(risk, config)
    subgroups = subgroup_metrics(test, y_test, risk, SUBGROUPS, top=config.top_share, bins=config.ece_bins)

    contrib = scorer.contributions(test)[:, : len(FEATURES)]
    importance = pl.DataFrame({
        "feature": list(FEATURES),
        "mean_abs_contribution": np.abs(contrib).mean(axis=0),
        "mean_contribution": contrib.mean(axis=0),
        "gain": booster.feature_importance("gain"),
        "splits": booster.feature_importance("split").astype(np.int64),
    }).sort("mean_abs_contribution", descending=True)

    test_predictions = test.select(*KEYS, COHORT, TARGET).with_columns(
        risk=pl.Series(risk), baseline_risk=pl.Series(base_risk))
    return TrainedModel(
        config=config, scorer=scorer, baseline=baseline, cohorts=cohorts, metrics=metrics, subgroups=subgroups,
        calibration=published_calibration_curve(y_test, risk, config.ece_bins),
        baseline_calibration=published_calibration_curve(y_test, base_risk, config.ece_bins),
        importance=importance, test_frame=test, test_predictions=test_predictions,
        band_thresholds=thresholds, best_iteration=int(best),
        extra={"test_contributions": contrib},
    )


def rebuilt(scorer: RiskScorer, features: pl.DataFrame, config: TrainingConfig, metrics: dict[str, float],
            subgroups: pl.DataFrame, importance: pl.DataFrame) -> TrainedModel:
    """A model trained before, from what was kept of it (its scorer, test metrics, subgroup figures and
    importance): its cohorts, test cohort and band thresholds set on `features` as `train_and_evaluate` set them
    (the same, on the same test cohort). No baseline: only its metrics were kept."""
    cohorts = choose_cohorts(features, config)
    test = features.filter(pl.col(TARGET).is_not_null() & (pl.col(COHORT) == cohorts.test))
    risk = scorer.risk(test)
    calibration = published_calibration_curve(_target(test), risk, config.ece_bins)
    return TrainedModel(
        config=config, scorer=scorer, baseline=None, cohorts=cohorts, metrics=metrics, subgroups=subgroups,
        calibration=calibration, baseline_calibration=calibration.clear(), importance=importance, test_frame=test,
        test_predictions=test.select(*KEYS, COHORT, TARGET).with_columns(
            risk=pl.Series(risk), baseline_risk=pl.lit(None, dtype=pl.Float64)),
        band_thresholds=band_thresholds(risk, config), best_iteration=scorer.booster.current_iteration(),
    )


def top_factors(contrib: np.ndarray, k: int = TOP_FACTORS) -> list[list[str]]:
    """Per child, the (up to) k features with the largest positive contributions, largest first."""
    contrib = contrib[:, : len(FEATURES)]
    order = np.argsort(-contrib, axis=1, kind="stable")[:, :k]
    names = np.asarray(FEATURES, dtype=object)
    picked = np.take_along_axis(contrib, order, axis=1) > 0
    return [list(names[o][m]) for o, m in zip(order, picked, strict=True)]


def band_thresholds(risk: np.ndarray, config: TrainingConfig) -> dict[str, float]:
    """'high' for the top `top_share` of `risk`, 'medium' for the next `medium_share`, as near as ties allow (a tie
    is never split; np.quantile put a whole tie at a cut above it, however large)."""
    return {"high": share_threshold(risk, config.top_share),
            "medium": share_threshold(risk, config.top_share + config.medium_share)}


def band(risk: np.ndarray, thresholds: dict[str, float]) -> np.ndarray:
    return np.where(risk >= thresholds["high"], "high", np.where(risk >= thresholds["medium"], "medium", "low"))


def score_children(result: TrainedModel, features: pl.DataFrame, *, factors: bool = True) -> pl.DataFrame:
    """Calibrated risk for every row of a feature frame.

    Returns person_id, prediction_date, risk (probability of not reaching GLD, at the base rate expected for
    the test cohort), band ('high': risk at or above the test cohort's top-10% threshold; 'medium': the next
    20%; 'low': the rest; thresholds fixed at training, in `result.band_thresholds`) and, unless `factors` is
    False, top_factors (the up to three features pushing this child's risk up most, from LightGBM's
    `pred_contrib`: most of the scoring's time, 1 s for the 1.5M-resident world's assessed cohort).
    """
    check_columns(features, (*KEYS, *FEATURES))
    risk = result.scorer.risk(features)
    scored = features.select(*KEYS).with_columns(
        risk=pl.Series(risk, dtype=pl.Float64),
        band=pl.Series(band(risk, result.band_thresholds), dtype=pl.Utf8),
    )
    if not factors:
        return scored
    return scored.with_columns(
        top_factors=pl.Series(top_factors(result.scorer.contributions(features)), dtype=pl.List(pl.Utf8)))
