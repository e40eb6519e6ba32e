"""Who reaches a Good Level of Development at the EYFSP, and the school return's other fields.

The log-odds of *not* reaching GLD add up: the year (England's trend, Basildon calibrated to
about 50% not GLD in 2013), the area's deprivation, the household's latent adversity, being
summer-born, a boy, on free school meals, with English as an additional language, with special
educational needs, the agencies' events the child lived through (social care, domestic abuse,
a parent in drug or alcohol treatment, temporary accommodation), and a part no agency records
(development at home, health). `p_not_gld` is the probability given all of it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import polars as pl

from ed_pipeline.synth.events import BASILDON_DISTRICT, ClaimPlan, Exposures, as_series, claiming_at
from ed_pipeline.synth.geography import Geography
from ed_pipeline.synth.identifiers import make_upns
from ed_pipeline.synth.population import ETHNICITIES, Population
from ed_pipeline.synth.timeutil import Calendar, days_from_ymd, ymd

# share of Basildon's children NOT reaching GLD, by assessment year: 50% in 2013 (the seed), improving
# along England's trend (52% -> 72% GLD by 2019) a little faster locally; no assessment in 2020-21;
# the new profile from 2022 (England 65%, 67%).
BASILDON_NOT_GLD = {2013: 0.50, 2014: 0.42, 2015: 0.35, 2016: 0.305, 2017: 0.25, 2018: 0.215, 2019: 0.21,
                    2022: 0.32, 2023: 0.30}
ENGLAND_GLD = {2013: 0.52, 2014: 0.60, 2015: 0.66, 2016: 0.69, 2017: 0.71, 2018: 0.715, 2019: 0.718,
               2022: 0.65, 2023: 0.67}

EFFECTS = {  # log-odds of not reaching GLD
    "deprivation": 0.1,  # per unit of LSOA deprivation (z-ish)
    "adversity": 0.8,  # per SD of the household's latent adversity
    "age_in_year": 0.08,  # per month younger than a September-born (summer-born ~ +0.8)
    "boy": 0.62,
    "fsm": 0.55,
    "eal": 0.25,
    "sen_support": 1.5,
    "sen_ehcp": 2.8,
    "social_care": 0.5,
    "domestic_abuse": 0.4,
    "drugs_alcohol": 0.4,
    "temporary_accommodation": 0.4,
    "unrecorded_sd": 0.8,  # development at home, health: no agency records it
}
EAL_P = np.array([0.01, 0.65, 0.10, 0.50, 0.35, 0.60, 0.55])  # by ETHNICITIES


def not_gld_target(year: int) -> float:
    known = sorted(BASILDON_NOT_GLD)
    if year in BASILDON_NOT_GLD:
        return BASILDON_NOT_GLD[year]
    return BASILDON_NOT_GLD[known[0] if year < known[0] else known[-1]]


def assessment_year(dob: np.ndarray) -> np.ndarray:
    """Children born September Y-6 to August Y-5 are assessed in June of year Y."""
    y, m, _ = ymd(dob)
    return np.where(m >= 9, y + 6, y + 5)


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1 / (1 + np.exp(-x))


@dataclass
class Assessment:
    children: pl.DataFrame  # truth: person_id, ward, lsoa, assessment_year, p_not_gld, not_gld
    factors: pl.DataFrame  # truth detail: the factors behind each child's probability
    rows: pl.DataFrame  # school_readiness rows for the renderer


def assess(rng: np.random.Generator, pop: Population, geo: Geography, cal: Calendar, claims: ClaimPlan,
           exposures: Exposures) -> Assessment:
    year = assessment_year(pop.dob)
    years_in = sorted({y for y in range(int(cal.months[0][:4]), int(cal.months[-1][:4]) + 1)
                       if y not in (2020, 2021) and f"{y}-07" in cal.months})
    candidates = np.nonzero(np.isin(year, years_in))[0]
    y_c = year[candidates]
    june1 = days_from_ymd(y_c, np.full(len(y_c), 6), np.ones(len(y_c), dtype=np.int64))
    hh = pop.household_at(candidates, june1)
    here = hh >= 0
    pid, y_c, june1, hh = candidates[here], y_c[here], june1[here], hh[here]
    n = len(pid)
    addr = pop.address_at(hh, june1)
    ward_idx = pop.addresses["ward_idx"].to_numpy()[addr]
    lsoa_idx = pop.addresses["lsoa_idx"].to_numpy()[addr]
    district = geo.wards["district_idx"].to_numpy()[ward_idx]
    dep = geo.lsoas["deprivation"].to_numpy()[lsoa_idx]
    adv = pop.hh_adversity[hh]
    _, m, _ = ymd(pop.dob[pid])
    months_younger = (m - 9) % 12
    boy = pop.sex[pid] == 0
    claiming = claiming_at(claims, hh, june1)
    fsm = np.where(district == BASILDON_DISTRICT, rng.random(n) < np.where(claiming, 0.85, 0.03),
                   rng.random(n) < _sigmoid(-2.6 + 1.3 * adv))
    eth = pop.hh_ethnicity[hh]
    eal = rng.random(n) < EAL_P[eth]
    home = rng.normal(0, EFFECTS["unrecorded_sd"], n)
    u = rng.random(n)
    p_ehcp = 0.015 * np.exp(0.3 * adv + 0.4 * boy)
    p_support = _sigmoid(-2.6 + 0.4 * adv + 0.5 * boy + 0.6 * home)
    sen = np.where(u < p_ehcp, "E", np.where(u < p_ehcp + p_support, "K", "N")).astype(object)
    ex = {k: exposures.any_before(k, pid, june1) for k in
          ("social_care", "domestic_abuse", "drugs_alcohol", "temporary_accommodation")}
    e = EFFECTS
    eta = (e["deprivation"] * dep + e["adversity"] * adv + e["age_in_year"] * months_younger + e["boy"] * boy
           + e["fsm"] * fsm + e["eal"] * eal + e["sen_support"] * (sen == "K") + e["sen_ehcp"] * (sen == "E")
           + sum(e[k] * v for k, v in ex.items()) + home)
    intercept = np.zeros(n)
    bas = district == BASILDON_DISTRICT
    for y in years_in:
        sel = y_c == y
        ref = sel & bas if (sel & bas).any() else sel
        if not ref.any():
            continue
        lo, hi = -10.0, 10.0
        for _ in range(50):
            b = (lo + hi) / 2
            lo, hi = (b, hi) if _sigmoid(b + eta[ref]).mean() < not_gld_target(y) else (lo, b)
        intercept[sel] = b
    p = _sigmoid(intercept + eta)
    not_gld = rng.random(n) < p

    # schools: about one reception class of 45 per ward per year; each sets an assessment day in June
    n_wards = geo.n_wards
    per_ward = np.maximum(1, np.round(np.bincount(ward_idx, minlength=n_wards) / max(len(years_in), 1) / 45))
    school_offset = np.concatenate([[0], np.cumsum(per_ward)]).astype(np.int64)
    school = school_offset[ward_idx] + (rng.random(n) * per_ward[ward_idx]).astype(np.int64)
    n_schools = int(school_offset[-1])
    urn = 114_000 + rng.choice(9_000, n_schools, replace=False)
    estab = 2_000 + np.arange(n_schools) % 8_000
    day_of_june = rng.integers(2, 28, n_schools)
    a_day = june1 + day_of_june[school] - 1
    serial = _serial(school * 10_000 + y_c)
    upn = make_upns(estab[school], y_c - 1, serial)
    recorded_eth = np.asarray(ETHNICITIES, dtype=object)[eth]
    v = rng.random(n)
    recorded_eth[v < 0.02] = "NOBT"
    recorded_eth[v < 0.01] = "REFU"
    july = days_from_ymd(y_c, np.full(n, 7), np.full(n, 15))
    yn = np.array(["N", "Y"], dtype=object)
    rows = pl.DataFrame([as_series(k, v) for k, v in {
        "_day": a_day, "_file_day": july, "_p0": pid, "_addr": addr,
        "upn": upn, "school_urn": urn[school].astype(str),
        "gld": yn[(~not_gld).astype(int)], "fsm": yn[fsm.astype(int)], "eal": yn[eal.astype(int)],
        "sen": sen, "ethnicity": recorded_eth,
    }.items()])
    ward_name = geo.wards["ward"].to_numpy()[ward_idx]
    lsoa_code = geo.lsoas["lsoa"].to_numpy()[lsoa_idx]
    children = pl.DataFrame({
        "person_id": pid.astype(np.int64), "ward": ward_name.tolist(), "lsoa": lsoa_code.tolist(),
        "assessment_year": y_c.astype(np.int32), "p_not_gld": p, "not_gld": not_gld,
    })
    factors = pl.DataFrame({
        "person_id": pid.astype(np.int64), "household_id": hh.astype(np.int64), "district": bas,
        "deprivation": dep, "adversity": adv, "months_younger": months_younger.astype(np.int32), "boy": boy,
        "fsm": fsm, "eal": eal, "sen": sen.astype(str), **{k: v for k, v in ex.items()}, "unrecorded": home,
        "intercept": intercept,
    }).rename({"district": "in_basildon"})
    return Assessment(children=children, factors=factors, rows=rows)


def _serial(group: np.ndarray) -> np.ndarray:
    order = np.lexsort((np.arange(len(group)), group))
    g = group[order]
    start = np.searchsorted(g, g, side="left")
    out = np.empty(len(g), dtype=np.int64)
    out[order] = np.arange(len(g)) - start + 1
    return out
