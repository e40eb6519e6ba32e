"""Calibrated probabilities: Platt scaling, moved to the test cohort's base rate.

LightGBM's raw score (log-odds) is mapped to probabilities by a logistic fit (`a * margin + b`, two
parameters: stable on a few thousand children, where isotonic regression overfits). By default the fit is
cross-fitted (see train.py): out-of-fold margins of the training and validation cohorts, one shared slope
and one intercept per cohort (`Calibrator.fit_pooled`), which doubles the children the slope rests on and
scores no child with a model that saw it. The share of children not reaching GLD falls from cohort to
cohort (50% in 2013, ~21% in 2018 in Basildon), so probabilities calibrated on one cohort overstate risk in
the next. The calibrator therefore adds a label-shift offset: logit(expected rate of the target cohort) -
logit(observed rate of the validation cohort), where the expected rate extrapolates a straight line
through logit(outcome rate) of the latest `trend_cohorts` cohorts with outcomes (outcome rates need no
feature history, so early cohorts count here). Under label shift (p(x | y) stable) this is the exact Bayes
correction; `base_rate="validation"` turns it off. The offset moves every child's risk the same way in
log-odds, so ranks, AUC and bands by rank are unaffected.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np
from sklearn.linear_model import LogisticRegression


def logit(p: float) -> float:
    p = min(max(p, 1e-6), 1 - 1e-6)
    return math.log(p / (1 - p))


def sigmoid(x: np.ndarray) -> np.ndarray:
    return 1 / (1 + np.exp(-x))


@dataclass(frozen=True)
class Calibrator:
    slope: float
    intercept: float
    offset: float = 0.0  # label-shift correction to the target cohort's expected base rate
    target_rate: float | None = None

    @classmethod
    def fit(cls, margin: np.ndarray, y: np.ndarray) -> Calibrator:
        lr = LogisticRegression(C=1e6, max_iter=1000)
        lr.fit(np.asarray(margin, dtype=np.float64).reshape(-1, 1), np.asarray(y, dtype=np.int64))
        return cls(slope=float(lr.coef_[0, 0]), intercept=float(lr.intercept_[0]))

    @classmethod
    def fit_pooled(cls, margin: np.ndarray, y: np.ndarray, cohort: np.ndarray, reference: int) -> Calibrator:
        """Platt scaling over several cohorts: one slope shared by all, one intercept per cohort (base rates
        differ from cohort to cohort); the calibrator keeps the `reference` cohort's intercept."""
        cohort = np.asarray(cohort)
        levels = sorted(set(cohort.tolist()))
        if reference not in levels:
            raise ValueError(f"reference cohort {reference} not among {levels}")
        design = np.column_stack([np.asarray(margin, dtype=np.float64)] + [(cohort == c).astype(np.float64)
                                                                          for c in levels])
        lr = LogisticRegression(C=1e6, fit_intercept=False, max_iter=1000).fit(design, np.asarray(y, dtype=np.int64))
        return cls(slope=float(lr.coef_[0, 0]), intercept=float(lr.coef_[0, 1 + levels.index(reference)]))

    def shifted(self, offset: float, target_rate: float | None) -> Calibrator:
        return Calibrator(self.slope, self.intercept, offset, target_rate)

    def __call__(self, margin: np.ndarray) -> np.ndarray:
        return sigmoid(self.slope * np.asarray(margin, dtype=np.float64) + self.intercept + self.offset)

    def to_dict(self) -> dict:
        return asdict(self)


def expected_rate(rates: dict[int, float], target: int, trend_cohorts: int = 3) -> float:
    """The outcome rate expected in cohort `target`: a least-squares line through logit(rate) of the latest
    `trend_cohorts` cohorts before it, extrapolated (the latest rate alone when only one cohort is known)."""
    known = sorted(c for c in rates if c < target)[-trend_cohorts:]
    if not known:
        raise ValueError(f"no cohort before {target} to extrapolate a base rate from")
    if len(known) == 1:
        return rates[known[0]]
    x = np.array(known, dtype=np.float64)
    z = np.array([logit(rates[c]) for c in known])
    slope, icpt = np.polyfit(x, z, 1)
    return float(sigmoid(np.array(slope * target + icpt)))
