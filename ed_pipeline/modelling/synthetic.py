"""A synthetic `features.child_features` frame with a known signal, for tests and benchmarks only.

The pipeline never calls this: it reads the dbt mart. The frame follows the mart's contract (columns and
types) and the default world's shape: cohorts assessed 2013..2018 whose prediction dates (third birthdays)
fall 0..43 months after the data begin (2013-01), so earlier cohorts' 12/24-month windows are truncated;
the share not reaching GLD falls by cohort (50% in 2013 to ~21% in 2018); risk rises with a household's
latent adversity (seen through agency events), the ward's deprivation, being a boy, summer-born, on free
school meals, EAL, SEN, and an unrecorded part. `p_not_gld` (the true probability) is returned too.
"""

from __future__ import annotations

from datetime import date

import numpy as np
import polars as pl

NOT_GLD = {2013: 0.50, 2014: 0.42, 2015: 0.35, 2016: 0.305, 2017: 0.25, 2018: 0.215, 2019: 0.21, 2020: 0.21}
WARDS = ("Billericay East", "Billericay West", "Burstead", "Crouch", "Fryerns", "Laindon Park", "Langdon Hills",
         "Lee Chapel North", "Nethermayne", "Pitsea North West", "Pitsea South East", "St Martin's", "Vange",
         "Wickford Castledon", "Wickford North", "Wickford Park")
WARD_DEPRIVATION = np.array([-1.0, -1.1, -0.9, -0.6, 1.0, 0.6, -0.2, 1.2, 0.3, 0.8, 0.7, 0.9, 1.3, -0.3, -0.5,
                             -0.2])
ETHNICITY = np.array(["White British", "White other", "Mixed", "Asian", "Black", "Other"])
ETHNICITY_P = np.array([0.85, 0.05, 0.03, 0.03, 0.035, 0.005])
EAL_P = np.array([0.01, 0.65, 0.10, 0.50, 0.35, 0.55])
DATA_START = date(2013, 1, 1)


def _sigmoid(x):
    return 1 / (1 + np.exp(-x))


def synthetic_features(children: int = 8_400, seed: int = 0, cohorts: tuple[int, ...] = tuple(range(2013, 2019)),
                       unassessed_cohorts: tuple[int, ...] = (), signal: float = 1.0) -> pl.DataFrame:
    """`children` rows spread evenly over `cohorts` (assessed) and `unassessed_cohorts` (outcome columns null).

    `signal` scales every recorded effect (0: outcomes depend on cohort and unrecorded factors only).
    """
    rng = np.random.default_rng(seed)
    all_cohorts = np.array([*cohorts, *unassessed_cohorts])
    n = children
    year = all_cohorts[np.arange(n) % len(all_cohorts)]
    assessed = np.isin(year, np.array(cohorts))
    # born September (year-6) .. August (year-5); prediction at the third birthday
    birth_month = rng.integers(1, 13, n)
    birth_year = np.where(birth_month >= 9, year - 6, year - 5)
    birth_day = rng.integers(1, 29, n)
    pred_year = birth_year + 3
    history = np.maximum(0, (pred_year - DATA_START.year) * 12 + (birth_month - 1))
    seen24 = np.minimum(history, 24) / 24
    seen12 = np.minimum(history, 12) / 12
    months_younger = (birth_month - 9) % 12

    households = max(1, int(n * 0.85))
    household = rng.integers(0, households, n)
    hh_adv = rng.normal(0, 1, households)
    hh_ward = rng.choice(len(WARDS), households, p=np.full(len(WARDS), 1 / len(WARDS)))
    hh_eth = rng.choice(len(ETHNICITY), households, p=ETHNICITY_P / ETHNICITY_P.sum())
    adv = hh_adv[household] + 0.3 * WARD_DEPRIVATION[hh_ward[household]]
    ward = hh_ward[household]
    dep = WARD_DEPRIVATION[ward]
    boy = rng.random(n) < 0.51
    sex = np.where(boy, "M", "F").astype(object)
    sex[rng.random(n) < 0.003] = "U"

    def events(rate, horizon_seen):  # true count over the window, and the part inside the data
        true = rng.poisson(rate)
        return true, rng.binomial(true, horizon_seen)

    s = signal
    da_true, da24 = events(0.25 * np.exp(s * 0.9 * adv), seen24)
    da12 = rng.binomial(da24, np.where(seen24 > 0, 0.5 * seen12 / np.maximum(seen24, 1e-9), 0).clip(0, 1))
    police_true, police24 = events(0.4 * np.exp(s * 0.7 * adv), seen24)
    police24 = police24 + da24
    police12 = rng.binomial(police24, 0.5)
    sc_true, sc24 = events(0.12 * np.exp(s * 1.0 * adv), seen24)
    cin = (sc_true > 0) & (rng.random(n) < 0.4 * seen24)
    cp = cin & (rng.random(n) < 0.15)
    claim = rng.random(n) < _sigmoid(-2.0 + s * (1.2 * adv + 0.3 * dep))
    benefit = claim & (rng.random(n) < np.where(history > 0, 0.3 + 0.7 * seen24, 0))
    ta_true = rng.random(n) < _sigmoid(-4.5 + s * (1.2 * adv + 0.4 * dep))
    ta = ta_true & (rng.random(n) < seen24)
    drug_true = rng.random(n) < _sigmoid(-4.0 + s * 1.0 * adv)
    drug = drug_true & (rng.random(n) < seen24)
    overcrowded = (rng.random(n) < _sigmoid(-3.5 + s * 0.8 * adv)) & (rng.random(n) < seen24)
    register = (rng.random(n) < _sigmoid(-2.5 + s * 0.7 * adv)) & (rng.random(n) < seen24)
    moves = rng.binomial(rng.poisson(0.3 * np.exp(s * 0.4 * adv)), seen24)
    pyo = rng.poisson(0.05 * np.exp(s * 0.8 * adv))
    syo = rng.poisson(0.03 * np.exp(s * 0.8 * adv))
    hh_size = 2 + rng.poisson(1.5, households)[household]

    eth = hh_eth[household]
    fsm = rng.random(n) < np.where(claim, 0.85, 0.03)
    eal = rng.random(n) < EAL_P[eth]
    home = rng.normal(0, 0.8, n)
    u = rng.random(n)
    p_ehcp = 0.015 * np.exp(0.3 * adv + 0.4 * boy)
    p_support = _sigmoid(-2.6 + 0.4 * adv + 0.5 * boy + 0.6 * home)
    sen = np.where(u < p_ehcp, "E", np.where(u < p_ehcp + p_support, "K", "N")).astype(object)
    eta = s * (0.1 * dep + 0.45 * adv + 0.08 * months_younger + 0.62 * boy + 0.55 * fsm + 0.25 * eal
               + 0.35 * (sc_true > 0) + 0.25 * (da_true > 0) + 0.25 * drug_true + 0.3 * ta_true) \
        + 1.5 * (sen == "K") + 2.8 * (sen == "E") + home
    intercept = np.zeros(n)
    for y in np.unique(year):
        sel = year == y
        lo, hi = -10.0, 10.0
        for _ in range(50):
            b = (lo + hi) / 2
            lo, hi = (b, hi) if _sigmoid(b + eta[sel]).mean() < NOT_GLD.get(int(y), 0.21) else (lo, b)
        intercept[sel] = b
    p = _sigmoid(intercept + eta)
    not_gld = rng.random(n) < p

    prediction = [date(int(a), int(b), int(c)) for a, b, c in zip(pred_year, birth_month, birth_day, strict=True)]
    frame = pl.DataFrame({
        "person_id": pl.Series(rng.permutation(n * 3)[:n] + 1, dtype=pl.Int64),
        "prediction_date": pl.Series(prediction, dtype=pl.Date),
        "birth_year": pl.Series(birth_year, dtype=pl.Int32),
        "birth_month": pl.Series(birth_month, dtype=pl.Int32),
        "household_id": pl.Series(household + 1, dtype=pl.Int64),
        "history_months": pl.Series(history, dtype=pl.Int32),
        "sex": pl.Series(sex, dtype=pl.Utf8),
        "summer_born": pl.Series(np.isin(birth_month, (5, 6, 7, 8))),
        "ward": pl.Series(np.asarray(WARDS, dtype=object)[ward], dtype=pl.Utf8),
        "lsoa": pl.Series([f"E0102{1200 + w * 8 + k}" for w, k in zip(ward, rng.integers(0, 8, n), strict=True)]),
        "household_size": pl.Series(hh_size, dtype=pl.Int32),
        "police_incidents_12m": pl.Series(police12, dtype=pl.Int32),
        "police_incidents_24m": pl.Series(police24, dtype=pl.Int32),
        "domestic_abuse_12m": pl.Series(da12, dtype=pl.Int32),
        "domestic_abuse_24m": pl.Series(da24, dtype=pl.Int32),
        "social_care_referrals_24m": pl.Series(sc24, dtype=pl.Int32),
        "child_in_need_ever": pl.Series(cin), "child_protection_ever": pl.Series(cp),
        "parent_youth_offending": pl.Series(pyo, dtype=pl.Int32),
        "sibling_youth_offending": pl.Series(syo, dtype=pl.Int32),
        "parent_drug_alcohol_24m": pl.Series(drug), "temporary_accommodation_24m": pl.Series(ta),
        "overcrowded_24m": pl.Series(overcrowded), "housing_register_24m": pl.Series(register),
        "benefit_claim_24m": pl.Series(benefit), "moves_24m": pl.Series(moves, dtype=pl.Int32),
        "assessment_year": pl.Series(np.where(assessed, year, 0), dtype=pl.Int32),
        "not_gld": pl.Series(not_gld), "fsm": pl.Series(fsm), "eal": pl.Series(eal),
        "sen": pl.Series(sen, dtype=pl.Utf8), "ethnicity_group": pl.Series(ETHNICITY[eth], dtype=pl.Utf8),
        "p_not_gld": pl.Series(p),
    })
    outcome = ["assessment_year", "not_gld", "fsm", "eal", "sen", "ethnicity_group"]
    return frame.with_columns(
        [pl.when(pl.Series(assessed)).then(pl.col(c)).otherwise(None).alias(c) for c in outcome]
    )
