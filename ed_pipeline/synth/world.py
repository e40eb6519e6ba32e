"""generate(): build a world, write the seven agencies' monthly extracts and the ground truth."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import polars as pl

from ed_pipeline.sources import SOURCES, get_source
from ed_pipeline.synth import events as ev
from ed_pipeline.synth.config import SynthConfig
from ed_pipeline.synth.files import parquet_bytes, write_if_changed
from ed_pipeline.synth.geography import Geography, build_geography
from ed_pipeline.synth.names import NamePools, build_name_pools
from ed_pipeline.synth.outcomes import Assessment, assess
from ed_pipeline.synth.population import ROLES, Population, build_population, settle_addresses
from ed_pipeline.synth.render import prepare_rows, render, write_months
from ed_pipeline.synth.timeutil import Calendar

TRUTH_FILES = ("person_records.parquet", "household_membership.parquet", "children.parquet", "people.parquet",
               "households.parquet", "household_addresses.parquet", "child_factors.parquet")
STAGES = {  # independent random streams, so that changing one stage does not reshuffle the others
    "geography": 1, "population": 2, "addresses": 3, "housing": 4, "claims": 5, "social_care": 6,
    "youth_offending": 7, "drugs_alcohol": 8, "police_incidents": 9, "benefits": 10, "outcomes": 11,
    "render": 100,
}


@dataclass
class SynthSummary:
    people: int  # distinct people who lived in the world at any time
    residents_at_start: int
    households: int
    children: int  # children assessed at the EYFSP
    rows: dict[str, int] = field(default_factory=dict)  # rows written per source
    files: int = 0
    files_written: int = 0  # of `files`: those new or changed (the others already held the same bytes)
    seconds: float = 0.0
    not_gld_by_year: dict[int, float] = field(default_factory=dict)

    def as_dict(self) -> dict:
        return asdict(self)


POSTCODE_DIRECTORY = "postcode_directory.parquet"


def _rng(seed: int, stage: str, sub: int = 0) -> np.random.Generator:
    return np.random.default_rng([seed, STAGES[stage], sub])


def _date(days: np.ndarray, null_at: int | None = None) -> pl.Series:
    s = pl.Series(np.asarray(days, dtype="int64").astype("datetime64[D]"))
    if null_at is not None:
        s = pl.select(pl.when(pl.Series(np.asarray(days) < null_at)).then(s)).to_series()
    return s


def generate(config: SynthConfig, landing_dir: Path, truth_dir: Path,
             progress: Callable[[str], None] | None = None, reference_dir: Path | None = None) -> SynthSummary:
    """Generate a synthetic world: `landing_dir/<source>/<YYYY-MM>.csv` and Parquet truth in `truth_dir`.

    Also writes the world's public postcode directory (postcode -> ward, LSOA: what ONS publishes for the
    real country) to `reference_dir` (default: beside landing_dir). Any previous world in those folders is
    removed. Deterministic for `config.seed`: an extract or postcode directory that already holds the same bytes
    is left as it was (`files.write_if_changed`), so the same world made again gives the refresh nothing new.
    """
    t0 = time.perf_counter()
    say = progress or (lambda _msg: None)
    landing_dir, truth_dir = Path(landing_dir), Path(truth_dir)
    for name in TRUTH_FILES:  # no stale truth beside a new world if this one fails part way
        (truth_dir / name).unlink(missing_ok=True)
    landing_dir.mkdir(parents=True, exist_ok=True)
    truth_dir.mkdir(parents=True, exist_ok=True)
    seed, err = config.seed, config.errors
    cal = Calendar(config.months)

    say(f"places and names (seed {seed}, {config.people:,} residents)")
    geo = build_geography(_rng(seed, "geography"), config.people)
    names = build_name_pools(seed)
    say("people and households over time")
    pop = build_population(_rng(seed, "population"), geo, cal, config.people, names, err.nickname)
    housing_plan = ev.plan_housing(_rng(seed, "housing"), pop, cal)
    housed = housing_plan.housed >= 0
    settle_addresses(_rng(seed, "addresses"), geo, pop, names,
                     extra_moves=(housing_plan.hh[housed], housing_plan.housed[housed]))
    claims = ev.plan_claims(_rng(seed, "claims"), pop, cal)

    say("agency events")
    exposures = ev.Exposures()
    rows = {
        "social_care": ev.social_care_rows(_rng(seed, "social_care"), pop, cal, exposures),
        "youth_offending": ev.youth_offending_rows(_rng(seed, "youth_offending"), pop, cal),
        "drugs_alcohol": ev.drugs_alcohol_rows(_rng(seed, "drugs_alcohol"), pop, cal, exposures),
        "housing": ev.housing_rows(_rng(seed, "housing", 1), pop, cal, housing_plan, exposures),
        "benefits": ev.benefits_rows(_rng(seed, "benefits"), pop, cal, claims),
        "police_incidents": ev.police_rows(_rng(seed, "police_incidents"), pop, cal, exposures),
    }
    say("school readiness")
    assessment = assess(_rng(seed, "outcomes"), pop, geo, cal, claims, exposures)
    rows["school_readiness"] = assessment.rows

    summary = SynthSummary(people=pop.n_people, residents_at_start=pop.initial_people,
                           households=pop.n_households, children=assessment.children.height)
    truths = []
    for i, source in enumerate(SOURCES):
        say(f"writing {source.name}")
        rng = _rng(seed, "render", i)
        frame = prepare_rows(source, rows[source.name], cal, err, rng)
        rendered = render(source, frame, pop, names, cal, err, rng)
        files, written, n_rows = write_months(get_source(source.name), rendered, cal, landing_dir)
        summary.files += files
        summary.files_written += written
        summary.rows[source.name] = n_rows
        truths.append(rendered.truth)

    say("ground truth")
    _write_truth(truth_dir, pop, geo, cal, names, truths, assessment)
    _write_postcode_directory(Path(reference_dir or landing_dir.parent / "reference"), pop, geo)
    children = assessment.children
    summary.not_gld_by_year = {
        int(r["assessment_year"]): round(float(r["not_gld"]), 4)
        for r in children.group_by("assessment_year").agg(pl.col("not_gld").mean()).sort("assessment_year").iter_rows(
            named=True)
    }
    summary.seconds = round(time.perf_counter() - t0, 2)
    say(f"done in {summary.seconds:.1f}s")
    return summary


def _write_postcode_directory(reference_dir: Path, pop: Population, geo: Geography) -> None:
    """Public reference data, not truth: the pipeline may read it (to derive ward and LSOA from a postcode)."""
    a = pop.addresses
    directory = pl.DataFrame({
        "postcode": a["postcode"],
        "ward": geo.wards["ward"].to_numpy()[a["ward_idx"].to_numpy()].tolist(),
        "lsoa": geo.lsoas["lsoa"].to_numpy()[a["lsoa_idx"].to_numpy()].tolist(),
    }).unique("postcode", keep="first").sort("postcode")
    write_if_changed(reference_dir / POSTCODE_DIRECTORY, parquet_bytes(directory))


def _write_truth(truth_dir: Path, pop: Population, geo: Geography, cal: Calendar, names: NamePools,
                 truths: list[pl.DataFrame], assessment: Assessment) -> None:
    pl.concat(truths).write_parquet(truth_dir / "person_records.parquet")
    end = cal.end_day
    pl.DataFrame({
        "household_id": pop.m_hh.astype(np.int64),
        "person_id": pop.m_pid.astype(np.int64),
        "valid_from": _date(pop.m_from),
        "valid_to": _date(pop.m_to, null_at=end),  # first day no longer a member; null: still a member
        "role": np.asarray(ROLES)[pop.m_role],
    }).write_parquet(truth_dir / "household_membership.parquet")
    assessment.children.write_parquet(truth_dir / "children.parquet")
    assessment.factors.write_parquet(truth_dir / "child_factors.parquet")
    pl.DataFrame({
        "person_id": np.arange(pop.n_people, dtype=np.int64),
        "given_name": pl.Series(names.given.tolist(), dtype=pl.String).gather(pop.given),
        "family_name": pl.Series(names.surnames.tolist(), dtype=pl.String).gather(pop.family),
        "date_of_birth": _date(pop.dob),
        "sex": np.where(pop.sex == 0, "M", "F"),
        "nhs_number": pop.nhs.astype(str),
        "nickname_user": pop.nick_user,
    }).write_parquet(truth_dir / "people.parquet")
    wards = geo.wards["ward"].to_numpy()
    districts = geo.wards["district"].to_numpy()
    pl.DataFrame({
        "household_id": np.arange(pop.n_households, dtype=np.int64),
        "first_ward": wards[pop.hh_ward].tolist(), "district": districts[pop.hh_ward].tolist(),
        "adversity": pop.hh_adversity,
        "valid_from": _date(pop.hh_start), "valid_to": _date(pop.hh_end, null_at=end),
    }).write_parquet(truth_dir / "households.parquet")
    a = pop.addresses
    pl.DataFrame({
        "household_id": pop.a_hh.astype(np.int64),
        "valid_from": _date(pop.a_from), "valid_to": _date(pop.a_to, null_at=end),
        "uprn": a["uprn"], "parent_uprn": a["parent_uprn"], "address": a["line"], "town": a["town"],
        "postcode": a["postcode"], "ward": wards[a["ward_idx"].to_numpy()].tolist(),
        "lsoa": geo.lsoas["lsoa"].to_numpy()[a["lsoa_idx"].to_numpy()].tolist(),
    }).write_parquet(truth_dir / "household_addresses.parquet")

