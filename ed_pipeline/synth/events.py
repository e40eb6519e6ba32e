"""What each agency sees happen: true events, driven by the households' latent adversity.

Every builder returns a polars frame of *rows* in a common shape that the renderer turns into
the agency's CSV:

- `_day` (event day), `_minute` (time of day, police only), `_gid` (the row group: a referral,
  an application, a claim, an incident), `_sub` (1-based position within the group, for
  two-part keys), `_p0`..`_pN` (person ids of the source's person slots, -1 empty),
  `_addr` (address index, -1 none), `_updates` (False; True for a later re-send of the same key),
- and the source's own event and role columns, already as raw codes.

Rates follow REFERENCE.md and rise with adversity (which includes the area's deprivation).
Alongside, `Exposures` records which children lived through which events, for the GLD model.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date

import numpy as np
import polars as pl

from ed_pipeline.quality.rules import EARLIEST_EVENT_YEAR
from ed_pipeline.synth.population import CHILD, HEAD, OTHER, PARTNER, RELATIVE, Population
from ed_pipeline.synth.timeutil import DAYS_PER_YEAR, Calendar, day_of, years

BASILDON_DISTRICT = 0
YOUNG_REFERRAL = 2.0  # referral rate of under-fives relative to older children (about a third of referrals)
MAX_DEPENDANTS = 4  # dependant slots of a benefit claim (the registry's dep1..dep4)


@dataclass
class Exposures:
    """(child, day) pairs per kind of event that touched the child's household."""

    pid: dict[str, list[np.ndarray]] = field(default_factory=dict)
    day: dict[str, list[np.ndarray]] = field(default_factory=dict)

    def add(self, kind: str, pid: np.ndarray, day: np.ndarray) -> None:
        self.pid.setdefault(kind, []).append(np.asarray(pid, dtype=np.int64))
        self.day.setdefault(kind, []).append(np.asarray(day, dtype=np.int64))

    def any_before(self, kind: str, pid: np.ndarray, day: np.ndarray) -> np.ndarray:
        if kind not in self.pid:
            return np.zeros(len(pid), bool)
        p = np.concatenate(self.pid[kind])
        d = np.concatenate(self.day[kind])
        key = np.sort(p * (1 << 24) + (d + 100_000))
        lo = np.searchsorted(key, np.asarray(pid) * (1 << 24), side="left")
        hi = np.searchsorted(key, np.asarray(pid) * (1 << 24) + (np.asarray(day) + 100_000), side="left")
        return hi > lo


def _pick(rng: np.random.Generator, options: tuple[str, ...], p: list[float], n: int) -> np.ndarray:
    cum = np.cumsum(p) / np.sum(p)
    return np.asarray(options, dtype=object)[np.searchsorted(cum, rng.random(n), side="right").clip(0, len(p) - 1)]


def _normalised(w: np.ndarray, expo: np.ndarray) -> np.ndarray:
    """Weights rescaled to an exposure-weighted mean of 1."""
    return w / max((w * expo).sum() / max(expo.sum(), 1e-9), 1e-12)


def _poisson_days(rng: np.random.Generator, lo: np.ndarray, hi: np.ndarray, rate: np.ndarray):
    """Poisson events at `rate` a year over [lo, hi): (unit index, day)."""
    expo = np.maximum(hi - lo, 0) / DAYS_PER_YEAR
    n = rng.poisson(rate * expo)
    unit = np.repeat(np.arange(len(lo)), n)
    day = lo[unit] + (rng.random(len(unit)) * (hi[unit] - lo[unit])).astype(np.int64)
    order = np.lexsort((unit, day))
    return unit[order], day[order]


def _first_in_group(group: np.ndarray, score: np.ndarray) -> np.ndarray:
    """Index of the highest-scoring row of each group (groups given as ints); -1 for none."""
    if len(group) == 0:
        return np.zeros(0, dtype=np.int64)
    order = np.lexsort((-score, group))
    g = group[order]
    first = np.ones(len(g), bool)
    first[1:] = g[1:] != g[:-1]
    return order[first]


def _rank_in_group(group: np.ndarray, score: np.ndarray) -> np.ndarray:
    """0-based rank of each row within its group by descending score."""
    order = np.lexsort((-score, group))
    g = group[order]
    start = np.searchsorted(g, g, side="left")
    rank = np.empty(len(g), dtype=np.int64)
    rank[order] = np.arange(len(g)) - start
    return rank


def person_window(pop: Population, cal: Calendar, min_age: float, max_age: float) -> tuple[np.ndarray, np.ndarray]:
    """[lo, hi) of each person's days in the area, within the world, aged min_age to max_age."""
    lo = np.maximum.reduce([pop.p_from, pop.dob + years(min_age), np.full(pop.n_people, cal.start_day)])
    hi = np.minimum.reduce([pop.p_to, pop.dob + years(max_age), np.full(pop.n_people, cal.end_day)])
    return lo, np.maximum(hi, lo)


def household_window(pop: Population, cal: Calendar) -> tuple[np.ndarray, np.ndarray]:
    lo = np.maximum(pop.hh_start, cal.start_day)
    return lo, np.maximum(pop.hh_end, lo)


def _age(pop: Population, pid: np.ndarray, day: np.ndarray) -> np.ndarray:
    return (np.asarray(day) - pop.dob[pid]) / DAYS_PER_YEAR


def _expose_children(pop: Population, exposures: Exposures, kind: str, hh: np.ndarray, day: np.ndarray) -> None:
    ev, pid, _ = pop.members_at(hh, day)
    child = _age(pop, pid, day[ev]) < 18
    exposures.add(kind, pid[child], day[ev][child])


# ----------------------------------------------------------------------------- plans made before addresses


@dataclass
class HousingPlan:
    hh: np.ndarray
    registered: np.ndarray
    ta: np.ndarray  # -1: never
    housed: np.ndarray
    closed: np.ndarray
    overcrowded: np.ndarray  # bedrooms short: 0, 1 or 2


def plan_housing(rng: np.random.Generator, pop: Population, cal: Calendar) -> HousingPlan:
    """Housing-register applications of Basildon households, and what becomes of them."""
    lo, hi = household_window(pop, cal)
    hi = np.where(pop.hh_district == BASILDON_DISTRICT, hi, lo)
    w = _normalised(np.exp(1.0 * pop.hh_adversity), (hi - lo).astype(float))
    hh, reg = _poisson_days(rng, lo, hi, 0.025 * w)
    adv = pop.hh_adversity[hh]
    n = len(hh)
    p_ta = np.clip(0.04 * np.exp(0.9 * adv), 0, 0.5)
    ta = np.where(rng.random(n) < p_ta, reg + rng.integers(20, 200, n), -1)
    housed_after = np.where(ta >= 0, ta, reg) + rng.integers(60, 720, n)
    housed = np.where(rng.random(n) < np.where(ta >= 0, 0.7, 0.3), housed_after, -1)
    closed = np.where((housed < 0) & (rng.random(n) < 0.35), reg + rng.integers(150, 1000, n), -1)
    end = pop.hh_end[hh]
    ta = np.where(ta < np.minimum(end, cal.end_day), ta, -1)
    housed = np.where(housed < np.minimum(end, cal.end_day), housed, -1)
    closed = np.where(closed < np.minimum(end, cal.end_day), closed, -1)
    overcrowded = np.minimum(rng.poisson(np.clip(0.3 * np.exp(0.6 * adv), 0, 3)), 2)
    return HousingPlan(hh, reg, ta, housed, closed, overcrowded)


@dataclass
class ClaimPlan:
    hh: np.ndarray
    start: np.ndarray
    end: np.ndarray
    stock: np.ndarray  # claims already running at the start of the world


def plan_claims(rng: np.random.Generator, pop: Population, cal: Calendar) -> ClaimPlan:
    """Housing Benefit / Council Tax Reduction claim spells of Basildon households (10-15% claim)."""
    S, END = cal.start_day, cal.end_day
    bas = pop.hh_district == BASILDON_DISTRICT
    adv = pop.hh_adversity
    alive_at_s = bas & (pop.hh_start <= S) & (pop.hh_end > S)
    # stock: logistic in adversity, calibrated to 12% of households at the start
    lo_c, hi_c = -8.0, 4.0
    for _ in range(40):
        c = (lo_c + hi_c) / 2
        share = (1 / (1 + np.exp(-(c + 1.5 * adv[alive_at_s])))).mean() if alive_at_s.any() else 0.12
        lo_c, hi_c = (c, hi_c) if share < 0.12 else (lo_c, c)
    mean_years = 2.5
    stock = alive_at_s & (rng.random(len(adv)) < 1 / (1 + np.exp(-(c + 1.5 * adv))))
    hs = np.nonzero(stock)[0]
    s_start = S - np.round(rng.exponential(mean_years, len(hs)) * DAYS_PER_YEAR).astype(np.int64)
    # the exponential's tail has no end: a claim started before any claim could (validation's floor on event
    # dates, 33 years before 2013) would be quarantined (about one Essex-scale world in sixty)
    s_start = np.maximum(s_start, day_of(date(EARLIEST_EVENT_YEAR, 1, 1)))
    s_end = S + np.round(rng.exponential(mean_years, len(hs)) * DAYS_PER_YEAR).astype(np.int64)
    hh_l, st_l, en_l, stock_l = [hs], [s_start], [s_end], [np.ones(len(hs), bool)]
    t = np.maximum(pop.hh_start, S).astype(np.int64)
    t[hs] = s_end
    rate = 0.05 * np.exp(1.5 * adv) / np.exp(1.5 * adv[bas]).mean() if bas.any() else np.zeros(len(adv))
    for _ in range(3):
        start = t + np.round(rng.exponential(1.0, len(t)) / np.maximum(rate, 1e-9) * DAYS_PER_YEAR).astype(np.int64)
        ok = bas & (start < np.minimum(pop.hh_end, END))
        h = np.nonzero(ok)[0]
        end = start[h] + np.round(rng.exponential(mean_years, len(h)) * DAYS_PER_YEAR).astype(np.int64) + 30
        hh_l.append(h)
        st_l.append(start[h])
        en_l.append(end)
        stock_l.append(np.zeros(len(h), bool))
        t = np.where(ok, np.zeros(len(t), np.int64), END * 2)
        t[h] = end
    hh = np.concatenate(hh_l)
    start = np.concatenate(st_l)
    end = np.minimum(np.concatenate(en_l), pop.hh_end[hh])
    order = np.lexsort((hh, start))
    return ClaimPlan(hh[order], start[order], end[order], np.concatenate(stock_l)[order])


def claiming_at(claims: ClaimPlan, hh: np.ndarray, day: np.ndarray) -> np.ndarray:
    """Whether each household has a claim running on each day."""
    order = np.lexsort((claims.start, claims.hh))
    key = claims.hh[order] * (1 << 24) + (claims.start[order] + 100_000)
    q = np.asarray(hh) * (1 << 24) + (np.asarray(day) + 100_000)
    pos = np.searchsorted(key, q, side="right") - 1
    posc = np.maximum(pos, 0)
    return (pos >= 0) & (claims.hh[order][posc] == hh) & (day < claims.end[order][posc])


def claim_at(claims: ClaimPlan, hh: np.ndarray, day: np.ndarray) -> np.ndarray:
    """The index of the claim running for each household on each day (-1: none)."""
    order = np.lexsort((claims.start, claims.hh))
    key = claims.hh[order] * (1 << 24) + (claims.start[order] + 100_000)
    q = np.asarray(hh) * (1 << 24) + (np.asarray(day) + 100_000)
    pos = np.searchsorted(key, q, side="right") - 1
    posc = np.maximum(pos, 0)
    ok = (pos >= 0) & (claims.hh[order][posc] == hh) & (day < claims.end[order][posc])
    return np.where(ok, order[posc], -1)


# ----------------------------------------------------------------------------- the sources' rows


def as_series(name: str, v) -> pl.Series:
    if isinstance(v, pl.Series):
        return v.alias(name)
    v = np.asarray(v)
    if v.dtype == object or v.dtype.kind == "U":
        return pl.Series(name, v.tolist(), dtype=pl.String)
    return pl.Series(name, v)


def _rows(**cols) -> pl.DataFrame:
    return pl.DataFrame([as_series(k, v) for k, v in cols.items()])


def social_care_rows(rng, pop: Population, cal: Calendar, exposures: Exposures) -> pl.DataFrame:
    """Referrals (5% of children a year), children in need (~45% of them), protection plans."""
    lo, hi = person_window(pop, cal, 0, 18)
    hh0 = pop.household_at(np.arange(pop.n_people), lo)
    adv = np.where(hh0 >= 0, pop.hh_adversity[np.maximum(hh0, 0)], 0)
    frailty = rng.gamma(1.0, 1.0, pop.n_people)
    # the under-fives are referred more often than older children (a birth, a new partner, health visitors'
    # concerns): their rate is YOUNG_REFERRAL times the rest, the overall rate staying at 5% of children a year
    mid = np.clip(np.minimum(pop.dob + years(5), cal.end_day), lo, hi)
    young, old = (mid - lo).astype(float), (hi - mid).astype(float)
    age_w = np.concatenate([np.full(len(lo), YOUNG_REFERRAL), np.ones(len(lo))])
    w = _normalised(np.exp(1.1 * np.concatenate([adv, adv])) * age_w, np.concatenate([young, old]))
    unit, day = _poisson_days(rng, np.concatenate([lo, mid]), np.concatenate([mid, hi]),
                              0.05 / 1.5 * w * np.concatenate([frailty, frailty]))
    index_pid = unit % len(lo)
    order = np.lexsort((index_pid, day))
    index_pid, day = index_pid[order], day[order]
    # siblings living with the child are often referred together
    hh = pop.household_at(index_pid, day)
    ev, sib, _ = pop.members_at(hh, day)
    together = (sib == index_pid[ev]) | ((_age(pop, sib, day[ev]) < 18) & (rng.random(len(ev)) < 0.5))
    pid, day = sib[together], day[ev][together]
    hh = hh[ev][together]
    n = len(pid)
    category = np.full(n, "Referral", dtype=object)
    a = pop.hh_adversity[hh]
    cin = rng.random(n) < 1 / (1 + np.exp(-(-0.3 + 0.5 * a)))
    cin_day = day + rng.integers(10, 60, n)
    cpp = cin & (rng.random(n) < np.clip(0.12 * np.exp(0.4 * a), 0, 0.6))
    cpp_day = cin_day + rng.integers(20, 90, n)
    pid = np.concatenate([pid, pid[cin], pid[cpp]])
    day = np.concatenate([day, cin_day[cin], cpp_day[cpp]])
    hh = np.concatenate([hh, hh[cin], hh[cpp]])
    category = np.concatenate([category, np.full(cin.sum(), "Child in need", dtype=object),
                               np.full(cpp.sum(), "Child protection plan", dtype=object)])
    keep = day < cal.end_day
    pid, day, hh, category = pid[keep], day[keep], hh[keep], category[keep]
    exposures.add("social_care", pid, day)
    n = len(pid)
    return _rows(
        _day=day, _p0=pid, _addr=pop.address_at(hh, day),
        referral_source=_pick(rng, ("Police", "School", "Health", "Local authority", "Family", "Other"),
                              [0.28, 0.18, 0.15, 0.12, 0.08, 0.19], n),
        category=category,
        primary_need=_pick(rng, tuple(f"N{i}" for i in range(1, 10)),
                           [0.5, 0.04, 0.04, 0.08, 0.16, 0.03, 0.01, 0.01, 0.13], n),
    )


def youth_offending_rows(rng, pop: Population, cal: Calendar) -> pl.DataFrame:
    """First-time entrants (0.3% of 10-17s a year) and their further offences."""
    lo, hi = person_window(pop, cal, 10, 18)
    hh0 = pop.household_at(np.arange(pop.n_people), lo)
    adv = np.where(hh0 >= 0, pop.hh_adversity[np.maximum(hh0, 0)], 0)
    w = _normalised(np.exp(1.2 * adv) * np.where(pop.sex == 0, 2.5, 0.6), (hi - lo).astype(float))
    expo = (hi - lo) / DAYS_PER_YEAR
    first = rng.random(pop.n_people) < 1 - np.exp(-0.003 * w * expo)
    who = np.nonzero(first)[0]
    d1 = lo[who] + (rng.random(len(who)) * (hi[who] - lo[who])).astype(np.int64)
    again = rng.poisson(1.0 * np.exp(0.3 * adv[who]))
    rep = np.repeat(np.arange(len(who)), again)
    d2 = d1[rep] + rng.integers(30, 730, len(rep))
    ok2 = d2 < hi[who][rep]
    pid = np.concatenate([who, who[rep][ok2]])
    day = np.concatenate([d1, d2[ok2]])
    repeat = np.concatenate([np.zeros(len(who), bool), np.ones(ok2.sum(), bool)])
    n = len(pid)
    outcome_first = _pick(rng, ("Youth caution", "Youth conditional caution", "Referral order",
                                "Youth rehabilitation order", "Custody"), [0.5, 0.2, 0.25, 0.04, 0.01], n)
    outcome_again = _pick(rng, ("Youth caution", "Youth conditional caution", "Referral order",
                                "Youth rehabilitation order", "Custody"), [0.15, 0.2, 0.35, 0.22, 0.08], n)
    return _rows(
        _day=day, _p0=pid,
        offence_type=_pick(rng, ("Violence against the person", "Theft and handling", "Criminal damage", "Drugs",
                                 "Public order", "Motoring", "Other"), [0.3, 0.2, 0.12, 0.12, 0.1, 0.08, 0.08], n),
        outcome=np.where(repeat, outcome_again, outcome_first),
    )


def drugs_alcohol_rows(rng, pop: Population, cal: Calendar, exposures: Exposures) -> pl.DataFrame:
    """Adult treatment episodes: 0.6% of adults a year, about a third living with children."""
    lo, hi = person_window(pop, cal, 18, 75)
    hh0 = pop.household_at(np.arange(pop.n_people), lo)
    adv = np.where(hh0 >= 0, pop.hh_adversity[np.maximum(hh0, 0)], 0)
    w = _normalised(np.exp(1.3 * adv) * np.where(pop.sex == 0, 1.6, 0.7), (hi - lo).astype(float))
    pid, day = _poisson_days(rng, lo, hi, 0.006 * w)
    hh = pop.household_at(pid, day)
    ev, mem, _ = pop.members_at(hh, day)
    child = _age(pop, mem, day[ev]) < 18
    lives_with = np.zeros(len(pid), bool)
    lives_with[ev[child]] = True
    exposures.add("drugs_alcohol", mem[child], day[ev][child])
    n = len(pid)
    return _rows(
        _day=day, _p0=pid, _addr=pop.address_at(hh, day),
        substance=_pick(rng, ("Opiates", "Crack", "Cocaine", "Cannabis", "Alcohol", "Other"),
                        [0.25, 0.08, 0.12, 0.15, 0.35, 0.05], n),
        lives_with_children=np.where(lives_with, "Y", "N"),
    )


def housing_rows(rng, pop: Population, cal: Calendar, plan: HousingPlan, exposures: Exposures) -> pl.DataFrame:
    """One row per member of each application, sent when registered and again at each change of status."""
    ev, pid, role = pop.members_at(plan.hh, plan.registered)
    day = plan.registered[ev]
    age = _age(pop, pid, day)
    adult = age >= 18
    role_rank = np.where(adult, np.array([0, 1, 3, 4, 5])[role], 9)
    applicant = _first_in_group(ev, -role_rank.astype(float))
    has_adult = np.zeros(len(plan.hh), bool)
    has_adult[ev[applicant][adult[applicant]]] = True
    keep = has_adult[ev]
    ev, pid, role, age, adult = ev[keep], pid[keep], role[keep], age[keep], adult[keep]
    is_app = np.zeros(len(ev), bool)
    applicant = _first_in_group(ev, -np.where(adult, np.array([0, 1, 3, 4, 5])[role], 9).astype(float))
    is_app[applicant] = True
    relationship = np.select(
        [is_app, (role == HEAD) | (role == PARTNER), role == CHILD, role == RELATIVE, role == OTHER],
        ["Applicant", "Partner", "Child", "Child", "Other"], "Other relative").astype(object)
    relationship[(role == RELATIVE) & (age >= 25) & ~is_app] = "Other relative"
    member_no = _rank_in_group(ev, -(np.where(is_app, 0, 1) * 1e6 + role * 1e4 - age))
    size = np.bincount(ev, minlength=len(plan.hh))
    children = np.bincount(ev[age < 18], minlength=len(plan.hh))
    needed = 1 + np.maximum(size - children - 2, 0) + np.ceil(children / 2).astype(int)
    current = np.maximum(needed - plan.overcrowded, 1)
    band = np.where(plan.overcrowded >= 2, "A", np.where(plan.overcrowded == 1, "B",
                    np.where(pop.hh_adversity[plan.hh] > 0.5, "C", "D"))).astype(object)
    frames = []
    for status, when in (("Registered", plan.registered), ("Temporary accommodation", plan.ta),
                         ("Housed", plan.housed), ("Closed", plan.closed)):
        sel = when[ev] >= 0
        b = np.where(status == "Temporary accommodation", "A", band)
        d = when[ev][sel]
        frames.append(_rows(
            _day=d, _gid=ev[sel].astype(np.int64), _sub=member_no[sel] + 1, _p0=pid[sel],
            _addr=pop.address_at(plan.hh[ev[sel]], plan.registered[ev[sel]]),
            _updates=np.full(sel.sum(), status != "Registered"),
            relationship=relationship[sel], status=np.full(sel.sum(), status, dtype=object), band=b[ev][sel],
            bedrooms_needed=needed[ev][sel].astype(str), bedrooms_current=current[ev][sel].astype(str),
        ))
    ta = plan.ta >= 0
    _expose_children(pop, exposures, "temporary_accommodation", plan.hh[ta], plan.ta[ta])
    return pl.concat(frames)


def benefits_rows(rng, pop: Population, cal: Calendar, claims: ClaimPlan) -> pl.DataFrame:
    """One wide row per claim: claimant, partner, up to four dependants. Running claims come in the first file.

    A birth is a change of circumstances: the claim is re-sent (same claim_ref, a later month, the claim start
    unchanged) with the household as it is then and the baby as a new dependant. Each person keeps their slot on a
    claim for its life (a dependant who left leaves the slot blank; a baby takes the next unused one), so that a
    record id always names the same person.
    """
    when = np.maximum(claims.start, cal.start_day)  # the household as at the claim (or the first extract)
    ev, pid, role = pop.members_at(claims.hh, when)
    age = _age(pop, pid, when[ev])
    adult = age >= 18
    rank = np.where(adult, np.array([0, 1, 3, 4, 5])[role], 9).astype(float)
    claimant = _first_in_group(ev, -rank)
    claimant = claimant[adult[claimant]]
    n = len(claims.hh)
    c_pid = np.full(n, -1, dtype=np.int64)
    c_pid[ev[claimant]] = pid[claimant]
    c_role = np.full(n, -1)
    c_role[ev[claimant]] = role[claimant]
    is_partner = adult & (pid != c_pid[ev]) & (((role == PARTNER) & (c_role[ev] == HEAD))
                                               | ((role == HEAD) & (c_role[ev] == PARTNER)))
    p_pid = np.full(n, -1, dtype=np.int64)
    p_pid[ev[is_partner]] = pid[is_partner]
    dep = (role == CHILD) & (age < 19)
    d_rank = _rank_in_group(ev[dep], -age[dep])
    deps = np.full((n, MAX_DEPENDANTS), -1, dtype=np.int64)
    ok = d_rank < MAX_DEPENDANTS
    deps[ev[dep][ok], d_rank[ok]] = pid[dep][ok]
    keep = c_pid >= 0
    claim_type = _pick(rng, ("HB+CTR", "CTR", "HB"), [0.55, 0.35, 0.10], n)
    award = np.where(claim_type == "CTR", rng.uniform(8, 30, n), rng.uniform(55, 230, n))

    # births into a claiming household while the claim runs: re-sent two to eight weeks after the birth
    born = (pop.m_role == CHILD) & (pop.m_from == pop.dob[pop.m_pid])
    b_hh, b_pid, b_day = pop.m_hh[born], pop.m_pid[born], pop.m_from[born]
    claim = claim_at(claims, b_hh, b_day)
    report = b_day + rng.integers(14, 57, len(b_day))
    ok_b = (claim >= 0) & (report < np.minimum(claims.end[np.maximum(claim, 0)], cal.end_day))
    ok_b &= b_day > when[np.maximum(claim, 0)]
    claim, b_pid, report = claim[ok_b], b_pid[ok_b], report[ok_b]
    order = np.lexsort((b_pid, report, claim))
    claim, b_pid, report = claim[order], b_pid[order], report[order]
    # the baby's slot: the next unused one on the claim
    used = (deps >= 0).sum(axis=1)
    slot = used[claim] + _rank_in_group(claim, -report.astype(float))
    slotted = np.full((n, MAX_DEPENDANTS), -1, dtype=np.int64)
    slotted[:] = deps
    fits = slot < MAX_DEPENDANTS
    slotted[claim[fits], slot[fits]] = b_pid[fits]
    # one re-send per birth, naming whoever of the claim's people still lives in the household that day
    r_hh = claims.hh[claim]

    def present(people: np.ndarray) -> np.ndarray:
        ok_p = people >= 0
        at = pop.household_at(np.maximum(people, 0), report)
        return np.where(ok_p & (at == r_hh), people, -1)

    r_deps = np.stack([present(np.where(slot >= k, slotted[claim, k], -1)) for k in range(MAX_DEPENDANTS)], axis=1)
    r_keep = keep[claim] & (present(c_pid[claim]) >= 0)
    gid = np.concatenate([np.arange(n), claim]).astype(np.int64)
    cols = dict(
        _day=np.concatenate([claims.start, claims.start[claim]]),
        _file_day=np.concatenate([when, report]),
        _gid=gid,
        _updates=np.concatenate([np.zeros(n, bool), np.ones(len(claim), bool)]),
        _p0=np.concatenate([c_pid, c_pid[claim]]), _p1=np.concatenate([p_pid, present(p_pid[claim])]),
        **{f"_p{2 + k}": np.concatenate([deps[:, k], r_deps[:, k]]) for k in range(MAX_DEPENDANTS)},
        _addr=np.concatenate([pop.address_at(claims.hh, when), pop.address_at(r_hh, report)]),
        claim_type=np.concatenate([claim_type, claim_type[claim]]),
        weekly_award=np.char.mod("%.2f", np.round(np.concatenate([award, award[claim]]), 2)).astype(object),
    )
    return _rows(**cols).filter(pl.Series(np.concatenate([keep, r_keep])))


def police_rows(rng, pop: Population, cal: Calendar, exposures: Exposures) -> pl.DataFrame:
    """Domestic abuse (6 per 100 households a year, concentrated, with repeats) and other incidents."""
    lo, hi = household_window(pop, cal)
    w = _normalised(np.exp(1.2 * pop.hh_adversity), (hi - lo).astype(float))
    frailty = rng.gamma(0.4, 1 / 0.4, pop.n_households)
    hh, day = _poisson_days(rng, lo, hi, 0.06 * w * frailty)
    ev, pid, role = pop.members_at(hh, day)
    age = _age(pop, pid, day[ev])
    adult = age >= 16
    female = pop.sex[pid] == 1
    score_v = np.where(adult, rng.random(len(ev)) + 1.5 * female + 0.5 * ((role == HEAD) | (role == PARTNER)), -9)
    victim = _first_in_group(ev, score_v)
    victim = victim[adult[victim]]
    v_of = np.full(len(hh), -1, dtype=np.int64)
    v_of[ev[victim]] = pid[victim]
    other_adult = adult & (pid != v_of[ev])
    score_s = np.where(other_adult, rng.random(len(ev)) + 1.5 * ~female + 1.0 * ((role == HEAD) | (role == PARTNER)),
                       -9)
    suspect = _first_in_group(ev, score_s)
    suspect = suspect[other_adult[suspect]]
    s_of = np.full(len(hh), -1, dtype=np.int64)
    s_of[ev[suspect]] = pid[suspect]
    ex = pop.hh_ex_partner[hh]
    use_ex = (s_of < 0) & (ex >= 0) & (rng.random(len(hh)) < 0.8)
    s_of[use_ex] = ex[use_ex]
    child = (age < 18) & (pid != v_of[ev])
    present = child & (rng.random(len(ev)) < 0.6)
    has_victim = v_of >= 0
    _expose_children(pop, exposures, "domestic_abuse", hh[has_victim], day[has_victim])
    inc = np.nonzero(has_victim)[0]
    da_event = np.concatenate([inc, inc[s_of[inc] >= 0], ev[present & has_victim[ev]]])
    da_pid = np.concatenate([v_of[inc], s_of[inc][s_of[inc] >= 0], pid[present & has_victim[ev]]])
    da_role = np.concatenate([np.full(len(inc), "Victim", dtype=object),
                              np.full((s_of[inc] >= 0).sum(), "Suspect", dtype=object),
                              np.full((present & has_victim[ev]).sum(), "Child present", dtype=object)])
    da_day = day[da_event]
    da_minute = np.clip(rng.normal(21 * 60, 180, len(hh)), 0, 24 * 60 - 1).astype(np.int64)[da_event]

    # other incidents: people 10+ as suspects, victims, witnesses; some with a second person
    plo, phi = person_window(pop, cal, 10, 110)
    hh0 = pop.household_at(np.arange(pop.n_people), plo)
    padv = np.where(hh0 >= 0, pop.hh_adversity[np.maximum(hh0, 0)], 0)
    young = (cal.start_day - pop.dob) / DAYS_PER_YEAR < 35
    pw = _normalised(np.exp(0.8 * padv) * np.where(pop.sex == 0, 1.4, 0.7) * np.where(young, 1.6, 0.7),
                     (phi - plo).astype(float))
    p1, oday = _poisson_days(rng, plo, phi, 0.03 * pw)
    k = len(p1)
    r1 = _pick(rng, ("Suspect", "Victim", "Witness"), [0.45, 0.4, 0.15], k)
    second = rng.random(k) < 0.35
    p2 = rng.integers(0, pop.n_people, k)
    second &= (p2 != p1) & (pop.dob[p2] + years(10) < oday)
    r2 = np.where(r1 == "Suspect", np.where(rng.random(k) < 0.7, "Victim", "Witness"), "Suspect").astype(object)
    otype = _pick(rng, ("Violence", "Anti-social behaviour", "Theft", "Criminal damage", "Other"),
                  [0.3, 0.3, 0.2, 0.1, 0.1], k)
    o_event = np.concatenate([np.arange(k), np.nonzero(second)[0]])
    o_pid = np.concatenate([p1, p2[second]])
    o_role = np.concatenate([r1, r2[second]])
    o_minute = rng.integers(0, 24 * 60, k)[o_event]

    n_da = len(hh)
    event = np.concatenate([da_event, n_da + o_event])
    pid_all = np.concatenate([da_pid, o_pid])
    role_all = np.concatenate([da_role, o_role])
    day_all = np.concatenate([da_day, oday[o_event]])
    minute = np.concatenate([da_minute, o_minute])
    itype = np.concatenate([np.full(len(da_event), "Domestic abuse", dtype=object), otype[o_event]])
    da_flag = np.where(np.arange(len(event)) < len(da_event), "Y", "N").astype(object)
    person_hh = pop.household_at(pid_all, day_all)
    seq = _rank_in_group(event, -np.arange(len(event), dtype=float))
    return _rows(
        _day=day_all, _minute=minute, _gid=event.astype(np.int64), _sub=seq + 1, _p0=pid_all,
        _addr=pop.address_at(person_hh, day_all), role=role_all, incident_type=itype, da_flag=da_flag,
    )
