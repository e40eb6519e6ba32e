"""The model's inputs, as one constant, and how a feature frame becomes LightGBM's numeric matrix.

`features.child_features` holds one row per child per prediction date (the third birthday). Only the
columns in FEATURES reach the model; keys (`person_id`, `household_id`, dates), `history_months`, the
outcome and the subgroup columns (`fsm`, `eal`, `sen`, `ethnicity_group`: known only from the school
return, after the prediction date) never do.

`lsoa` is left out: about 120 LSOAs of ~20 children a cohort are too sparse for a categorical split to
generalise, and `ward` (16 levels, LightGBM's categorical handling) carries the area signal.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import polars as pl

FEATURES: tuple[str, ...] = (
    "sex",
    "summer_born",
    "ward",
    "household_size",
    "police_incidents_12m",
    "police_incidents_24m",
    "domestic_abuse_12m",
    "domestic_abuse_24m",
    "social_care_referrals_24m",
    "child_in_need_ever",
    "child_protection_ever",
    "parent_youth_offending",
    "sibling_youth_offending",
    "parent_drug_alcohol_24m",
    "temporary_accommodation_24m",
    "overcrowded_24m",
    "housing_register_24m",
    "benefit_claim_24m",
    "moves_24m",
)
BASELINE_FEATURES: tuple[str, ...] = ("sex", "summer_born", "benefit_claim_24m")
CATEGORICAL: tuple[str, ...] = ("sex", "ward")  # string columns, LightGBM categorical splits
TARGET = "not_gld"
COHORT = "assessment_year"
SUBGROUPS: tuple[str, ...] = ("sex", "ward", "fsm", "eal", "ethnicity_group")
KEYS: tuple[str, ...] = ("person_id", "prediction_date")

# Monotone constraints (+1: more of it never lowers risk), used when TrainingConfig.monotone is on: every
# agency event count or flag. Sex, ward and household size are left free.
INCREASING: frozenset[str] = frozenset(
    f for f in FEATURES if f not in ("sex", "ward", "household_size")
)


@dataclass(frozen=True)
class Encoding:
    """Fixed category vocabularies (learnt on the training cohorts) so codes mean the same at scoring time.

    An unseen or null category becomes NaN, which LightGBM sends down its 'missing' branch.
    """

    categories: dict[str, tuple[str, ...]]

    @classmethod
    def fit(cls, frame: pl.DataFrame) -> Encoding:
        return cls({c: tuple(sorted(v for v in frame[c].unique().to_list() if v is not None)) for c in CATEGORICAL})

    def matrix(self, frame: pl.DataFrame, columns: tuple[str, ...] = FEATURES) -> np.ndarray:
        """The frame's feature columns as float64 (booleans 0/1, categories as codes, null as NaN)."""
        out = np.empty((frame.height, len(columns)), dtype=np.float64)
        for j, c in enumerate(columns):
            col = frame[c]
            if c in self.categories:
                lookup = {v: float(i) for i, v in enumerate(self.categories[c])}
                out[:, j] = col.cast(pl.Utf8).replace_strict(lookup, default=None, return_dtype=pl.Float64) \
                    .fill_null(np.nan).to_numpy()
            else:
                out[:, j] = col.cast(pl.Float64).fill_null(np.nan).to_numpy()
        return out

    def to_dict(self) -> dict:
        return {c: list(v) for c, v in self.categories.items()}

    @classmethod
    def from_dict(cls, data: dict) -> Encoding:
        return cls({c: tuple(v) for c, v in data.items()})


def check_columns(frame: pl.DataFrame, needed: tuple[str, ...]) -> None:
    missing = [c for c in needed if c not in frame.columns]
    if missing:
        raise ValueError(f"feature frame lacks columns {missing}; expected features.child_features' contract")
