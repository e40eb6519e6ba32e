"""Households and people, and how they change: births, deaths, moves, partners joining and leaving.

Everything is vectorised with numpy. A person belongs to at most two households over the
world's life: the one they start in (or are born or join into) and, for adult children who
leave home and partners who separate, one they form. Households move between addresses
(the household id stays, the address span changes), arrive from outside and leave.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

import numpy as np
import polars as pl

from ed_pipeline.synth.geography import Geography, build_addresses, pick_lsoa
from ed_pipeline.synth.identifiers import make_nhs_numbers
from ed_pipeline.synth.names import NamePools
from ed_pipeline.synth.timeutil import DAYS_PER_YEAR, Calendar, day_of, years

ROLES = ("head", "partner", "child", "other relative", "other")
HEAD, PARTNER, CHILD, RELATIVE, OTHER = range(5)
ETHNICITIES = ("WBRI", "WOTH", "MIXD", "ASIA", "BLAC", "CHIN", "AOEG")
ETHNICITY_P = np.array([0.85, 0.05, 0.03, 0.025, 0.035, 0.005, 0.005])
ETHNICITY_NAME_GROUP = np.array([0, 1, 0, 2, 3, 0, 4])
# household types: single working-age, single older, couple, older couple, couple with children,
# lone parent, multi-adult (couple with grown-up children, or sharers)
HH_TYPES = ("single", "single_older", "couple", "couple_older", "couple_children", "lone_parent", "multi_adult")
HH_TYPE_P = np.array([0.17, 0.13, 0.17, 0.11, 0.22, 0.10, 0.10])
HH_TYPE_DEP = np.array([0.15, -0.1, -0.15, -0.35, -0.05, 0.45, 0.0])  # how type shares shift with deprivation
HH_TYPE_ADVERSITY = np.array([0.2, -0.1, -0.3, -0.4, -0.1, 0.55, 0.0])

IN_MIGRATION = 0.03  # households arriving a year, per household
OUT_MIGRATION = 0.03  # hazard a year of a household leaving the area
MOVE_RATE = 0.07  # moves a year within the area
SEPARATION = 0.02  # couples a year
PARTNER_JOIN = 0.06  # single adults a year
LEAVE_HOME_MEAN_YEARS = 5.0  # after turning 18
BIRTH_RATE = 0.012  # births a year per resident
ASFR = {(16, 20): 0.015, (20, 25): 0.05, (25, 30): 0.09, (30, 35): 0.11, (35, 40): 0.065, (40, 45): 0.014}


@dataclass
class Population:
    # households, indexed by household id
    hh_start: np.ndarray
    hh_end: np.ndarray  # exclusive; calendar.end_day means still here
    hh_ward: np.ndarray  # ward and LSOA of the first address
    hh_lsoa: np.ndarray
    hh_district: np.ndarray
    hh_adversity: np.ndarray
    hh_ethnicity: np.ndarray
    hh_type: np.ndarray
    hh_surname: np.ndarray
    hh_ex_partner: np.ndarray  # person who left by separation, -1 if none
    # people, indexed by person id
    dob: np.ndarray
    sex: np.ndarray  # 0 male, 1 female
    given: np.ndarray  # index into NamePools.given
    family: np.ndarray  # index into NamePools.surnames
    nhs: np.ndarray
    nick_user: np.ndarray
    # membership, sorted by (hh, from, pid); `hh_offsets[h]:hh_offsets[h+1]` are household h's rows
    m_pid: np.ndarray
    m_hh: np.ndarray
    m_from: np.ndarray
    m_to: np.ndarray
    m_role: np.ndarray
    hh_offsets: np.ndarray
    p_from: np.ndarray  # first day living in the area
    p_to: np.ndarray  # first day no longer living in the area (calendar.end_day: still here)
    initial_people: int
    # address spans, sorted by (hh, from); the span index is the address index (set by settle_addresses)
    a_hh: np.ndarray = None  # type: ignore[assignment]
    a_from: np.ndarray = None  # type: ignore[assignment]
    a_to: np.ndarray = None  # type: ignore[assignment]
    addresses: pl.DataFrame = None  # type: ignore[assignment]

    @property
    def n_people(self) -> int:
        return len(self.dob)

    @property
    def n_households(self) -> int:
        return len(self.hh_start)

    def household_at(self, pid: np.ndarray, day: np.ndarray) -> np.ndarray:
        """The household each person belongs to on each day (-1: not living in the area)."""
        return _span_lookup(self._m_by_pid_key, self._m_by_pid_to, self._m_by_pid_hh, pid, day)

    def address_at(self, hh: np.ndarray, day: np.ndarray) -> np.ndarray:
        """The address index of each household on each day (-1: none)."""
        idx = _span_lookup(self._a_key, self.a_to, np.arange(len(self.a_hh)), hh, day)
        return idx

    def members_at(self, hh: np.ndarray, day: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Every (event, person, role) for members of household hh[event] on day[event]."""
        hh = np.asarray(hh)
        ok = hh >= 0
        lo = np.where(ok, self.hh_offsets[np.maximum(hh, 0)], 0)
        hi = np.where(ok, self.hh_offsets[np.maximum(hh, 0) + 1], 0)
        counts = hi - lo
        event = np.repeat(np.arange(len(hh)), counts)
        row = np.arange(counts.sum()) - np.repeat(np.cumsum(counts) - counts, counts) + np.repeat(lo, counts)
        d = np.asarray(day)[event]
        keep = (self.m_from[row] <= d) & (d < self.m_to[row])
        return event[keep], self.m_pid[row[keep]], self.m_role[row[keep]]

    def finish_indexes(self) -> None:
        order = np.lexsort((self.m_from, self.m_pid))
        self._m_by_pid_key = self.m_pid[order].astype(np.int64) * (1 << 24) + (self.m_from[order] + 100_000)
        self._m_by_pid_to = self.m_to[order]
        self._m_by_pid_hh = self.m_hh[order]
        if self.a_hh is not None:
            self._a_key = self.a_hh.astype(np.int64) * (1 << 24) + (self.a_from + 100_000)


def _span_lookup(keys: np.ndarray, to: np.ndarray, value: np.ndarray, owner: np.ndarray, day: np.ndarray) -> np.ndarray:
    """For spans sorted by (owner, from) with keys owner<<24 | from: the value of the span covering day."""
    owner = np.asarray(owner, dtype=np.int64)
    day = np.asarray(day, dtype=np.int64)
    q = owner * (1 << 24) + (day + 100_000)
    pos = np.searchsorted(keys, q, side="right") - 1
    posc = np.maximum(pos, 0)
    ok = (pos >= 0) & (keys[posc] >> 24 == owner) & (day < to[posc]) & (owner >= 0)
    return np.where(ok, value[posc], -1)


def _exp_days(rng: np.random.Generator, rate_per_year: float | np.ndarray, n: int) -> np.ndarray:
    return np.round(rng.exponential(1.0, n) / np.asarray(rate_per_year) * DAYS_PER_YEAR).astype(np.int64)


def _choose(rng: np.random.Generator, p: np.ndarray, n: int) -> np.ndarray:
    return np.searchsorted(np.cumsum(p) / np.sum(p), rng.random(n), side="right").clip(0, len(p) - 1)


def _ward_in_district(rng: np.random.Generator, geo: Geography, district: np.ndarray) -> np.ndarray:
    """A ward of each given district, by population."""
    wd = geo.wards["district_idx"].to_numpy()
    pop = geo.wards["population"].to_numpy()
    out = np.zeros(len(district), dtype=np.int64)
    u = rng.random(len(district))
    for d in np.unique(district):  # 12 districts at most
        wards = np.nonzero(wd == d)[0]
        cum = np.cumsum(pop[wards]) / pop[wards].sum()
        mask = district == d
        out[mask] = wards[np.searchsorted(cum, u[mask], side="right").clip(0, len(wards) - 1)]
    return out


def _new_households(rng: np.random.Generator, ref_day: np.ndarray, dep: np.ndarray):
    """Household types and members as of ref_day. Returns (type, member arrays)."""
    n = len(ref_day)
    p = HH_TYPE_P[None, :] * np.exp(HH_TYPE_DEP[None, :] * dep[:, None])
    cum = np.cumsum(p, axis=1)
    hh_type = (rng.random(n)[:, None] * cum[:, -1:] > cum).sum(axis=1)
    slots = 6
    age = np.full((n, slots), np.nan)
    sex = np.zeros((n, slots), dtype=np.int8)
    role = np.full((n, slots), -1, dtype=np.int8)
    u = rng.random((n, 8))
    # children for families: 1-4, eldest 0-18, gaps of 1-5 years
    n_kids = np.searchsorted(np.cumsum([0.42, 0.40, 0.13, 0.05]), u[:, 0], side="right") + 1
    eldest = rng.uniform(0, 18, n)
    gaps = 1.0 + rng.gamma(2.0, 0.8, (n, 3))
    kid_age = eldest[:, None] - np.concatenate([np.zeros((n, 1)), np.cumsum(gaps, axis=1)], axis=1)
    mother_at_first = np.clip(rng.normal(28.5, 5.5, n), 17, 43)
    mother = eldest + mother_at_first
    father = np.maximum(mother + rng.normal(2.5, 3.5, n), 18)
    working = rng.uniform(20, 64, n)
    older = 65 + np.minimum(rng.exponential(9, n), 35)
    other_sex = (rng.random(n) < 0.98).astype(np.int8)  # couples: 2% same-sex

    def put(mask, slot, a, s, r):
        age[mask, slot] = a[mask] if np.ndim(a) else a
        sex[mask, slot] = s[mask] if np.ndim(s) else s
        role[mask, slot] = r

    female = (rng.random(n) < 0.5).astype(np.int8)
    t = hh_type
    put(t == 0, 0, working, female, HEAD)
    put(t == 1, 0, older, (rng.random(n) < 0.62).astype(np.int8), HEAD)
    put(t == 2, 0, working, 0, HEAD)
    put(t == 2, 1, np.maximum(working + rng.normal(-2, 3, n), 18), other_sex, PARTNER)
    put(t == 3, 0, older, 0, HEAD)
    put(t == 3, 1, np.maximum(older + rng.normal(-2, 3, n), 60), other_sex, PARTNER)
    put(t == 4, 0, father, 0, HEAD)
    put(t == 4, 1, mother, other_sex, PARTNER)
    lone_male = (rng.random(n) < 0.1).astype(np.int8)
    put(t == 5, 0, np.where(lone_male == 1, father, mother), 1 - lone_male, HEAD)
    for k in range(4):
        m = ((t == 4) | (t == 5)) & (n_kids > k) & (kid_age[:, k] >= 0)
        put(m, 2 + k, kid_age[:, k], (rng.random(n) < 0.488).astype(np.int8), CHILD)
    # multi-adult: 70% a couple of 45-65 with 1-2 grown-up children, 30% sharers
    sharers = u[:, 1] < 0.3
    parent_age = rng.uniform(45, 66, n)
    put((t == 6) & ~sharers, 0, parent_age, 0, HEAD)
    put((t == 6) & ~sharers, 1, np.maximum(parent_age + rng.normal(-2, 3, n), 40), other_sex, PARTNER)
    for k in range(2):
        m = (t == 6) & ~sharers & ((k == 0) | (u[:, 2] < 0.4))
        put(m, 2 + k, np.minimum(rng.uniform(18, 31, n), parent_age - 18), (rng.random(n) < 0.5).astype(np.int8),
            RELATIVE)
    for k in range(3):
        m = (t == 6) & sharers & ((k < 2) | (u[:, 3] < 0.4))
        put(m, k, rng.uniform(19, 40, n), (rng.random(n) < 0.5).astype(np.int8), HEAD if k == 0 else OTHER)
    present = role >= 0
    hh_local, slot = np.nonzero(present)
    return hh_type, hh_local, age[hh_local, slot], sex[hh_local, slot], role[hh_local, slot]


def build_population(rng: np.random.Generator, geo: Geography, cal: Calendar, people: int,
                     names: NamePools, nickname_rate: float) -> Population:
    S, END = cal.start_day, cal.end_day
    lsoa_dep = geo.lsoas["deprivation"].to_numpy()
    ward_pop = geo.wards["population"].to_numpy()
    ward_district = geo.wards["district_idx"].to_numpy()

    # --- households living here at the start (trimmed to the requested residents), and those arriving later
    h0 = int(people / 2.0) + 10
    ward0 = _choose(rng, ward_pop, h0)
    lsoa0 = pick_lsoa(rng, geo, ward0)
    type0, hl0, age0, sex0, role0 = _new_households(rng, np.full(h0, S), lsoa_dep[lsoa0])
    h0 = int(hl0[min(people, len(hl0) - 1)]) if len(hl0) > people else h0
    keep = hl0 < h0
    hl0, age0, sex0, role0 = hl0[keep], age0[keep], sex0[keep], role0[keep]
    ward0, lsoa0, type0 = ward0[:h0], lsoa0[:h0], type0[:h0]
    n_in = int(rng.poisson(h0 * IN_MIGRATION * cal.years))
    start_in = np.sort(rng.integers(S, END, n_in))
    ward_in = _choose(rng, ward_pop, n_in)
    lsoa_in = pick_lsoa(rng, geo, ward_in)
    type_in, hl_in, age_in, sex_in, role_in = _new_households(rng, start_in, lsoa_dep[lsoa_in])
    start = np.concatenate([np.full(h0, S), start_in]).astype(np.int64)
    ward = np.concatenate([ward0, ward_in])
    lsoa = np.concatenate([lsoa0, lsoa_in])
    hh_type = np.concatenate([type0, type_in])
    hl = np.concatenate([hl0, hl_in + h0])
    age = np.concatenate([age0, age_in])
    sex = np.concatenate([sex0, sex_in])
    role = np.concatenate([role0, role_in])
    dep = lsoa_dep[lsoa]
    n_h = len(start)
    initial_people = int((start[hl] == S).sum())
    eth = _choose(rng, ETHNICITY_P, n_h)
    group = ETHNICITY_NAME_GROUP[eth]
    adversity = 0.4 * dep + HH_TYPE_ADVERSITY[hh_type] + rng.normal(0, 0.85, n_h)
    end = start + _exp_days(rng, OUT_MIGRATION, n_h)
    end = np.where(end < END, end, END)
    surname = names.sample_surname(rng, group)
    district = ward_district[ward]

    # --- people of those households
    n_p = len(hl)
    dob = start[hl] - years(age)
    p_sex = sex.astype(np.int8)
    family = surname[hl].copy()
    own_name = (role == OTHER) | ((role == PARTNER) & (rng.random(n_p) < 0.35))
    family[own_name] = names.sample_surname(rng, group[hl[own_name]])
    hh1 = hl.astype(np.int64)
    from1 = start[hl].copy()
    to1 = end[hl].copy()
    role1 = role.astype(np.int8)
    hh2 = np.full(n_p, -1, dtype=np.int64)
    from2 = np.zeros(n_p, dtype=np.int64)
    to2 = np.zeros(n_p, dtype=np.int64)

    # deaths (Gompertz: about 1.8% a year at 70, 5% at 80, 13% at 90)
    age_now = (from1 - dob) / DAYS_PER_YEAR
    old = age_now >= 45
    a, b = -11.0, 0.1
    e = rng.exponential(1.0, n_p)
    t_death = np.log1p(b * e / np.exp(a + b * age_now)) / b
    death = from1 + years(np.where(old, t_death, 500))
    died = old & (death < to1)
    to1 = np.where(died, death, to1)

    new_h: list[dict[str, np.ndarray]] = []

    def form_households(pids: np.ndarray, when: np.ndarray, parent_hh: np.ndarray) -> None:
        """People leaving home to a household of their own (a quarter leave the area instead)."""
        stay = rng.random(len(pids)) >= 0.25
        pids, when, parent_hh = pids[stay], when[stay], parent_hh[stay]
        k = len(pids)
        if k == 0:
            return
        same_ward = rng.random(k) < 0.5
        w = np.where(same_ward, ward[parent_hh], _ward_in_district(rng, geo, district[parent_hh]))
        ls = pick_lsoa(rng, geo, w)
        new_id = n_h + sum(len(x["start"]) for x in new_h) + np.arange(k)
        hend = when + _exp_days(rng, OUT_MIGRATION, k)
        hend = np.where(hend < END, hend, END)
        hend = np.maximum(hend, when + 1)
        new_h.append({
            "start": when, "end": hend, "ward": w, "lsoa": ls, "district": district[parent_hh],
            "adversity": 0.5 * adversity[parent_hh] + 0.3 * lsoa_dep[ls] + rng.normal(0, 0.7, k),
            "ethnicity": eth[parent_hh], "type": np.zeros(k, dtype=hh_type.dtype), "surname": family[pids],
        })
        hh2[pids] = new_id
        from2[pids] = when
        to2[pids] = hend

    # grown-up children leave home
    kid = (role1 == CHILD) | (role1 == RELATIVE)
    leave = np.maximum(from1, dob + years(18)) + _exp_days(rng, 1 / LEAVE_HOME_MEAN_YEARS, n_p)
    leaving = kid & (leave < to1)
    to1 = np.where(leaving, leave, to1)
    idx = np.nonzero(leaving)[0]
    form_households(idx, leave[idx], hh1[idx])

    # couples separate: one partner (usually the man) leaves
    sep = start + _exp_days(rng, SEPARATION, n_h)
    hh_has_partner = np.zeros(n_h, bool)
    hh_has_partner[hl[role1 == PARTNER]] = True
    separating = hh_has_partner & (sep < end)
    head_leaves = rng.random(n_h) < 0.8
    cand = (separating[hh1]) & (((role1 == HEAD) & head_leaves[hh1]) | ((role1 == PARTNER) & ~head_leaves[hh1]))
    cand &= sep[hh1] < to1
    idx = np.nonzero(cand)[0]
    to1[idx] = sep[hh1[idx]]
    ex_partner = np.full(n_h, -1, dtype=np.int64)
    ex_partner[hh1[idx]] = idx
    form_households(idx, sep[hh1[idx]], hh1[idx])

    # concatenate the households formed by leavers
    if new_h:
        cat = {k: np.concatenate([x[k] for x in new_h]) for k in new_h[0]}
        start = np.concatenate([start, cat["start"]])
        end = np.concatenate([end, cat["end"]])
        ward = np.concatenate([ward, cat["ward"]])
        lsoa = np.concatenate([lsoa, cat["lsoa"]])
        district = np.concatenate([district, cat["district"]])
        adversity = np.concatenate([adversity, cat["adversity"]])
        eth = np.concatenate([eth, cat["ethnicity"]])
        hh_type = np.concatenate([hh_type, cat["type"]])
        surname = np.concatenate([surname, cat["surname"]])
        ex_partner = np.concatenate([ex_partner, np.full(len(cat["start"]), -1)])
    n_h = len(start)
    group = ETHNICITY_NAME_GROUP[eth]

    # a partner joins some single adults (single, lone parents, those who left home)
    single_adult = np.isin(hh_type, (0, 5))
    head_of = np.full(n_h, -1, dtype=np.int64)
    is_head1 = role1 == HEAD
    head_of[hh1[is_head1]] = np.nonzero(is_head1)[0]
    has2 = hh2 >= 0
    head_of[hh2[has2]] = np.nonzero(has2)[0]
    join = start + _exp_days(rng, PARTNER_JOIN, n_h)
    head_end = np.where(head_of >= 0, np.where(hh2[head_of] == np.arange(n_h), to2[head_of], to1[head_of]), 0)
    head_age_at_join = (join - dob[head_of]) / DAYS_PER_YEAR
    joins = single_adult & (head_of >= 0) & (join < end) & (join < head_end) & (head_age_at_join < 55)
    jh = np.nonzero(joins)[0]
    k = len(jh)
    j_sex = np.where(rng.random(k) < 0.97, 1 - p_sex[head_of[jh]], p_sex[head_of[jh]]).astype(np.int8)
    j_age = np.maximum(head_age_at_join[jh] + np.where(j_sex == 0, 1.5, -1.5) + rng.normal(0, 4, k), 18)
    j_dob = join[jh] - years(j_age)
    j_family = names.sample_surname(rng, group[jh])

    # births: women 16-44, more often with a partner
    f_hh = np.concatenate([hh1, hh2, jh])
    f_from = np.concatenate([from1, from2, join[jh]])
    f_to = np.concatenate([to1, to2, end[jh]])
    f_sex = np.concatenate([p_sex, p_sex, j_sex])
    f_dob = np.concatenate([dob, dob, j_dob])
    f_role = np.concatenate([role1, np.zeros(n_p, np.int8), np.full(k, PARTNER, np.int8)])
    lo = np.maximum.reduce([f_from, f_dob + years(16), np.full(len(f_from), S)])
    hi = np.minimum.reduce([f_to, f_dob + years(45), np.full(len(f_from), END)])
    ok = (f_sex == 1) & (f_hh >= 0) & (hi > lo)
    partnered = np.zeros(n_h, bool)
    partnered[hh_has_partner.nonzero()[0]] = True
    partnered[jh] = True
    mult = np.where(np.isin(f_role, (HEAD, PARTNER)), np.where(partnered[np.maximum(f_hh, 0)], 1.0, 0.35), 0.15)
    mid_age = ((lo + hi) / 2 - f_dob) / DAYS_PER_YEAR
    asfr = np.zeros(len(f_from))
    for (a0, a1), r in ASFR.items():
        asfr[(mid_age >= a0) & (mid_age < a1)] = r
    expo = np.where(ok, (hi - lo) / DAYS_PER_YEAR, 0.0)
    lam = asfr * mult * expo
    target = BIRTH_RATE * initial_people * cal.years
    lam *= target / max(lam.sum(), 1e-9)
    n_births = rng.poisson(lam)
    bi = np.repeat(np.arange(len(lam)), n_births)
    b_dob = lo[bi] + (rng.random(len(bi)) * (hi[bi] - lo[bi])).astype(np.int64)
    b_hh = f_hh[bi]
    b_sex = (rng.random(len(bi)) >= 0.512).astype(np.int8)
    b_family = surname[b_hh]
    nb = len(bi)

    # --- all people: the initial members, those who joined, the babies
    dob = np.concatenate([dob, j_dob, b_dob])
    sex_all = np.concatenate([p_sex, j_sex, b_sex])
    family = np.concatenate([family, j_family, b_family])
    hh1 = np.concatenate([hh1, jh, b_hh])
    from1 = np.concatenate([from1, join[jh], b_dob])
    to1 = np.concatenate([to1, end[jh], end[b_hh]])
    role1 = np.concatenate([role1, np.full(k, PARTNER, np.int8), np.full(nb, CHILD, np.int8)])
    pad = np.full(k + nb, -1, dtype=np.int64)
    hh2 = np.concatenate([hh2, pad])
    from2 = np.concatenate([from2, np.zeros(k + nb, np.int64)])
    to2 = np.concatenate([to2, np.zeros(k + nb, np.int64)])
    n_all = len(dob)
    p_group = group[hh1]
    modern = dob >= day_of(date(2000, 1, 1))
    given = names.sample_given(rng, p_group, sex_all, modern.astype(int))
    nhs = make_nhs_numbers(rng, n_all)
    has_nick = names.nickname_of[given] >= 0
    share = max(has_nick.mean(), 1e-9)
    nick_user = has_nick & (rng.random(n_all) < min(1.0, nickname_rate / share))

    # --- membership table
    m_pid = np.concatenate([np.arange(n_all), np.arange(n_all)])
    m_hh = np.concatenate([hh1, hh2])
    m_from = np.concatenate([from1, from2])
    m_to = np.concatenate([to1, to2])
    m_role = np.concatenate([role1, np.zeros(n_all, np.int8)])
    ok = (m_hh >= 0) & (m_to > m_from) & (m_to > S)
    m_pid, m_hh, m_from, m_to, m_role = (x[ok] for x in (m_pid, m_hh, m_from, m_to, m_role))
    order = np.lexsort((m_pid, m_from, m_hh))
    m_pid, m_hh, m_from, m_to, m_role = (x[order] for x in (m_pid, m_hh, m_from, m_to, m_role))
    hh_offsets = np.searchsorted(m_hh, np.arange(n_h + 1), side="left")

    pop = Population(
        hh_start=start, hh_end=end, hh_ward=ward, hh_lsoa=lsoa, hh_district=district, hh_adversity=adversity,
        hh_ethnicity=eth, hh_type=hh_type, hh_surname=surname, hh_ex_partner=ex_partner,
        dob=dob, sex=sex_all, given=given, family=family, nhs=nhs, nick_user=nick_user,
        m_pid=m_pid, m_hh=m_hh, m_from=m_from, m_to=m_to, m_role=m_role, hh_offsets=hh_offsets,
        p_from=from1, p_to=np.where(hh2 >= 0, to2, to1), initial_people=initial_people,
    )
    pop.finish_indexes()
    return pop


def settle_addresses(rng: np.random.Generator, geo: Geography, pop: Population, names: NamePools,
                     extra_moves: tuple[np.ndarray, np.ndarray] | None = None) -> None:
    """Give every household an address at every moment: its first, then one per move."""
    n_h = pop.n_households
    start, end, ward, lsoa, district = pop.hh_start, pop.hh_end, pop.hh_ward, pop.hh_lsoa, pop.hh_district
    adversity = pop.hh_adversity
    # --- moves: some a year, more in hard-pressed households; plus those given by housing outcomes
    dur = (end - start) / DAYS_PER_YEAR
    n_moves = rng.poisson(MOVE_RATE * np.exp(0.25 * adversity) * dur)
    mv_hh = np.repeat(np.arange(n_h), n_moves)
    mv_day = start[mv_hh] + (rng.random(len(mv_hh)) * (end[mv_hh] - start[mv_hh])).astype(np.int64)
    if extra_moves is not None:
        xh, xd = extra_moves
        okx = (xh < n_h) & (xd > start[np.minimum(xh, n_h - 1)]) & (xd < end[np.minimum(xh, n_h - 1)])
        mv_hh = np.concatenate([mv_hh, xh[okx]])
        mv_day = np.concatenate([mv_day, xd[okx]])
    same = rng.random(len(mv_hh)) < 0.5
    mv_ward = np.where(same, ward[mv_hh], _ward_in_district(rng, geo, district[mv_hh]))
    mv_lsoa = pick_lsoa(rng, geo, mv_ward)
    a_hh = np.concatenate([np.arange(n_h), mv_hh])
    a_from = np.concatenate([start, mv_day])
    a_lsoa = np.concatenate([lsoa, mv_lsoa])
    order = np.lexsort((a_from, a_hh))
    a_hh, a_from, a_lsoa = a_hh[order], a_from[order], a_lsoa[order]
    # drop a move on the day of another
    dup = np.zeros(len(a_hh), bool)
    dup[1:] = (a_hh[1:] == a_hh[:-1]) & (a_from[1:] == a_from[:-1])
    a_hh, a_from, a_lsoa = a_hh[~dup], a_from[~dup], a_lsoa[~dup]
    a_to = np.empty_like(a_from)
    a_to[:-1] = np.where(a_hh[1:] == a_hh[:-1], a_from[1:], end[a_hh[:-1]])
    a_to[-1] = end[a_hh[-1]]
    pop.a_hh, pop.a_from, pop.a_to = a_hh, a_from, a_to
    pop.addresses = build_addresses(rng, geo, a_lsoa, names.street_names)

    pop.finish_indexes()
