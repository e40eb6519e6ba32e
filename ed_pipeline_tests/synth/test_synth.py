"""The synthetic world: identifiers, formats, truth coverage, error rates, determinism and realism."""

from __future__ import annotations

import subprocess
import sys
from datetime import date, datetime
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from ed_pipeline.settings import month_end, month_range
from ed_pipeline.sources import SOURCES, Source, get_source
from ed_pipeline.synth import ErrorRates, SynthConfig, generate
from ed_pipeline.synth.identifiers import is_valid_nhs_number, is_valid_upn
from ed_pipeline.synth.names import NICKNAMES

UPN_LETTERS = "ABCDEFGHJKLMNPQRTUVWXYZ"


# ------------------------------------------------------------------ worlds (generated once per session)


def _make(tmp_path_factory, name: str, **kw) -> tuple[Path, Path, dict]:
    root = tmp_path_factory.mktemp(name)
    summary = generate(SynthConfig(**kw), root / "landing", root / "truth")
    return root / "landing", root / "truth", summary.as_dict()


@pytest.fixture(scope="session")
def clean_world(tmp_path_factory):
    """Error-free, 3,000 people, a few months around a July."""
    return _make(tmp_path_factory, "clean", people=3_000, seed=11, first_month="2014-05", last_month="2014-09",
                 errors=ErrorRates.none())


@pytest.fixture(scope="session")
def moderate_world(tmp_path_factory):
    """Default errors, 40,000 people, the default six and a half years: big enough for stable rates."""
    return _make(tmp_path_factory, "moderate", people=40_000, seed=5)


def read_source(landing: Path, source: Source) -> pl.DataFrame:
    files = sorted((landing / source.name).glob("*.csv"))
    return pl.concat([pl.read_csv(f, infer_schema=False).with_columns(_month=pl.lit(f.stem)) for f in files])


def person_records(landing: Path, source: Source) -> pl.DataFrame:
    """One row per filled person slot of every row: record_id (via the registry) and the raw identifiers."""
    df = read_source(landing, source)
    key = pl.concat_str([pl.col(k) for k in source.key], separator="-")
    frames = []
    for person in source.people:
        cols = [c for c in (person.given_name, person.family_name, person.full_name, person.date_of_birth) if c]
        filled = pl.any_horizontal([pl.col(c).is_not_null() for c in cols])
        part = df.filter(filled).select(
            record_id=key + person.suffix,
            given=pl.col(person.given_name) if person.given_name else pl.lit(None, pl.String),
            family=pl.col(person.family_name) if person.family_name else pl.lit(None, pl.String),
            full=pl.col(person.full_name) if person.full_name else pl.lit(None, pl.String),
            dob=pl.col(person.date_of_birth),
            event=pl.col(source.event_date),
            month=pl.col("_month"),
        )
        frames.append(part)
    return pl.concat(frames)


def auc(score: np.ndarray, label: np.ndarray) -> float:
    label = np.asarray(label, dtype=bool)
    ranks = pl.Series(np.asarray(score, dtype=float)).rank().to_numpy()
    n1, n0 = label.sum(), (~label).sum()
    return float((ranks[label].sum() - n1 * (n1 + 1) / 2) / (n1 * n0))


# ------------------------------------------------------------------ identifiers


def nhs_ok(number: str) -> bool:
    """An independent modulus-11 check, as REFERENCE.md states it."""
    total = sum(int(d) * w for d, w in zip(number[:9], range(10, 1, -1), strict=True))
    check = 11 - total % 11
    check = 0 if check == 11 else check
    return len(number) == 10 and check != 10 and check == int(number[9])


def upn_ok(upn: str) -> bool:
    total = sum(int(d) * w for d, w in zip(upn[1:], range(2, 14), strict=True))
    return len(upn) == 13 and upn[1:].isdigit() and upn[0] == UPN_LETTERS[total % 23]


def test_nhs_numbers_valid_and_distinct(clean_world):
    _, truth, _ = clean_world
    people = pl.read_parquet(truth / "people.parquet")
    assert people["nhs_number"].n_unique() == people.height
    assert all(nhs_ok(n) for n in people["nhs_number"])
    assert is_valid_nhs_number("9434765919") and not is_valid_nhs_number("9434765918")
    assert nhs_ok("9434765919") and not nhs_ok("9434765918")


def test_clean_world_nhs_numbers_always_present(clean_world):
    landing, _, _ = clean_world
    sc = read_source(landing, next(s for s in SOURCES if s.name == "social_care"))
    assert sc.height > 0
    assert sc["nhs_no"].null_count() == 0
    assert all(nhs_ok(n) for n in sc["nhs_no"])


def test_upn_shape_and_check_letter(clean_world):
    landing, _, _ = clean_world
    sr = read_source(landing, next(s for s in SOURCES if s.name == "school_readiness"))
    assert sr.height > 20
    assert all(upn_ok(u) and is_valid_upn(u) for u in sr["upn"])
    assert sr["upn"].n_unique() == sr.height
    assert not upn_ok("A" + sr["upn"][0][1:]) or not upn_ok("B" + sr["upn"][0][1:])


# ------------------------------------------------------------------ formats


def test_every_file_has_the_registry_header_and_every_month_lands(clean_world):
    landing, _, summary = clean_world
    months = month_range("2014-05", "2014-09")
    for source in SOURCES:
        expected = [m for m in months if source.landing_month is None or int(m[5:]) == source.landing_month]
        files = sorted(p.stem for p in (landing / source.name).glob("*.csv"))
        assert files == expected, source.name
        for month in files:
            header = (landing / source.name / f"{month}.csv").open(encoding="utf-8").readline().rstrip("\n")
            assert header.split(",") == list(source.columns), source.name
    assert summary["files"] == sum(len(list((landing / s.name).glob("*.csv"))) for s in SOURCES)


def _parse(value: str, fmt: str) -> date | None:
    try:
        return datetime.strptime(value, fmt).date()
    except (TypeError, ValueError):
        return None


def test_codes_formats_and_dates(moderate_world):
    landing, _, _ = moderate_world
    for source in SOURCES:
        df = read_source(landing, source)
        assert df.height > 0, source.name
        # keys unique within each month's file
        key = pl.concat_str([pl.col(k) for k in source.key], separator="-")
        assert df.select(pl.struct(key, "_month").is_duplicated().any()).item() is False, source.name
        for f in source.event_fields:
            if f.domain:
                assert set(df[f.raw].drop_nulls()) <= set(f.domain), (source.name, f.raw)
        if source.role_column:
            assert set(df[source.role_column].drop_nulls()) <= set(source.role_domain), source.name
        for person in source.people:
            if person.sex:
                assert set(df[person.sex].drop_nulls()) <= set(source.sex_codes), (source.name, person.sex)
        # events never after the end of the file's month; late ones at most a few months before
        events = [_parse(v, source.event_format) for v in df[source.event_date]]
        ends = [month_end(m) for m in df["_month"]]
        assert all(e is not None and e <= end for e, end in zip(events, ends, strict=True)), source.name
        dobs = [_parse(v, source.date_format) for p in source.people for v in df[p.date_of_birth].drop_nulls()]
        valid = [d for d in dobs if d is not None]
        assert len(valid) >= 0.98 * len(dobs), source.name  # a swapped day/month may be impossible
        assert max(valid) <= month_end(max(df["_month"])), source.name
    ya = read_source(landing, next(s for s in SOURCES if s.name == "youth_offending"))
    assert ya["name"].str.contains(r"^[^,]+, [^,]+$").mean() > 0.99
    da = read_source(landing, next(s for s in SOURCES if s.name == "drugs_alcohol"))
    assert da["initials"].str.contains(r"^\w\w$").all()
    assert da["postcode_district"].str.contains(r"^(SS|CM)\d{1,2}$").all()
    assert 0.2 < (da["lives_with_children"] == "Y").mean() < 0.5  # about a third live with children


# ------------------------------------------------------------------ truth


def test_person_records_cover_every_filled_slot(moderate_world):
    landing, truth, _ = moderate_world
    pr = pl.read_parquet(truth / "person_records.parquet")
    assert pr.select(pl.struct("source", "record_id").is_duplicated().any()).item() is False
    people = pl.read_parquet(truth / "people.parquet")
    assert set(pr["person_id"]) <= set(people["person_id"])
    for source in SOURCES:
        emitted = set(person_records(landing, source)["record_id"])
        truth_ids = set(pr.filter(pl.col("source") == source.name)["record_id"])
        assert emitted == truth_ids, source.name
    # a benefit claim names several people: one truth row each, with the registry's suffixes
    ben = pr.filter(pl.col("source") == "benefits")["record_id"]
    assert all(ben.str.ends_with(suffix).sum() > 0 for suffix in ("-C", "-P", "-D1"))
    hs = pr.filter(pl.col("source") == "housing")["record_id"]
    assert hs.str.contains(r"^H\d{7}-\d+$").all()


def test_clean_world_values_match_the_truth(clean_world):
    landing, truth, _ = clean_world
    pr = pl.read_parquet(truth / "person_records.parquet")
    people = pl.read_parquet(truth / "people.parquet")
    for source in SOURCES:
        recs = person_records(landing, source).join(pr.filter(pl.col("source") == source.name), on="record_id")
        recs = recs.join(people, on="person_id")
        assert recs.height > 0, source.name
        fmt_dob = recs.select(pl.col("date_of_birth").dt.strftime(source.date_format)).to_series()
        assert (recs["dob"] == fmt_dob).all(), source.name
        if source.name_style == "separate":
            assert (recs["given"] == recs["given_name"]).all(), source.name
            assert (recs["family"].str.to_lowercase() == recs["family_name"].str.to_lowercase()).all(), source.name
        elif source.name_style == "surname_comma_forename":
            expect = recs["family_name"].str.to_uppercase() + ", " + recs["given_name"]
            assert (recs["full"] == expect).all()
        else:
            expect = (recs["given_name"].str.slice(0, 1) + recs["family_name"].str.slice(0, 1)).str.to_uppercase()
            assert (recs["full"] == expect).all()


def test_household_membership_is_consistent(moderate_world):
    _, truth, summary = moderate_world
    hm = pl.read_parquet(truth / "household_membership.parquet")
    assert set(hm.columns) >= {"household_id", "person_id", "valid_from", "valid_to"}
    assert hm.filter(pl.col("valid_to").is_not_null() & (pl.col("valid_to") <= pl.col("valid_from"))).height == 0
    # nobody is in two households at once
    s = hm.sort("person_id", "valid_from").with_columns(
        prev_to=pl.col("valid_to").shift(1).over("person_id"))
    assert s.filter(pl.col("prev_to").is_not_null() & (pl.col("valid_from") < pl.col("prev_to"))).height == 0
    # people join and leave: births, partners, grown-up children (several spans, valid_from after the start)
    assert hm.filter(pl.col("valid_from") > date(2013, 1, 1)).height > 0.1 * summary["residents_at_start"]
    assert hm.filter(pl.col("valid_to").is_not_null()).height > 0.1 * summary["residents_at_start"]
    addr = pl.read_parquet(truth / "household_addresses.parquet")
    assert addr["uprn"].cast(pl.String).str.len_chars().eq(12).all()
    assert addr.group_by("household_id").len()["len"].max() > 1  # some households move
    children = pl.read_parquet(truth / "children.parquet")
    assert children.columns == ["person_id", "ward", "lsoa", "assessment_year", "p_not_gld", "not_gld"]
    assert children["lsoa"].str.contains(r"^E01\d{6}$").all()
    assert set(children["ward"]) <= {
        "Billericay East", "Billericay West", "Burstead", "Crouch", "Fryerns", "Laindon Park", "Langdon Hills",
        "Lee Chapel North", "Nethermayne", "Pitsea North West", "Pitsea South East", "St Martin's", "Vange",
        "Wickford Castledon", "Wickford North", "Wickford Park"}


# ------------------------------------------------------------------ errors


def test_error_rates_near_their_configured_values(moderate_world):
    landing, truth, _ = moderate_world
    rates = ErrorRates()
    pr = pl.read_parquet(truth / "person_records.parquet")
    people = pl.read_parquet(truth / "people.parquet")
    separate = [s for s in SOURCES if s.name_style == "separate"]
    recs = pl.concat([
        person_records(landing, s).join(pr.filter(pl.col("source") == s.name), on="record_id")
        .with_columns(fmt=pl.lit(s.date_format)) for s in separate
    ]).join(people, on="person_id")
    n = recs.height
    assert n > 40_000
    given_ok = recs["given"] == recs["given_name"]
    family_ok = recs["family"].str.to_lowercase() == recs["family_name"].str.to_lowercase()
    swapped = (recs["given"].str.to_lowercase() == recs["family_name"].str.to_lowercase()) & (
        recs["family"].str.to_lowercase() != recs["family_name"].str.to_lowercase())
    nick_pairs = {(formal, nick) for formal, nicks in NICKNAMES.items() for nick in nicks}
    nick = pl.Series([(g, e) in nick_pairs for g, e in zip(recs["given_name"], recs["given"], strict=True)])
    plain = ~swapped & ~nick
    typo_given = (~given_ok & plain).sum() / plain.sum()
    typo_family = (~family_ok & ~swapped).sum() / (~swapped).sum()
    assert abs(typo_given - rates.name_typo) < 0.006, typo_given
    assert abs(typo_family - (rates.name_typo + rates.correction)) < 0.008, typo_family  # corrections' originals
    assert abs(swapped.mean() - rates.name_swap) < 0.004, swapped.mean()
    assert abs(nick.mean() - rates.nickname * rates.nickname_use) < 0.006, nick.mean()
    # day/month swaps, among dates of birth whose day and month differ
    true_dob = recs["date_of_birth"]
    iso = pl.col("fmt") == "%Y-%m-%d"
    dm = recs.with_columns(
        d=pl.when(iso).then(pl.col("dob").str.slice(8, 2)).otherwise(pl.col("dob").str.slice(0, 2)),
        m=pl.when(iso).then(pl.col("dob").str.slice(5, 2)).otherwise(pl.col("dob").str.slice(3, 2)),
    )
    differs = true_dob.dt.day() != true_dob.dt.month()
    flipped = (dm["d"].cast(pl.Int32) == true_dob.dt.month()) & (dm["m"].cast(pl.Int32) == true_dob.dt.day()) & differs
    rate = flipped.sum() / differs.sum()
    assert 0.006 < rate < 0.0125, rate  # a few swaps that would land after the file's month are skipped
    # NHS numbers missing from most council records
    sc = read_source(landing, next(s for s in SOURCES if s.name == "social_care"))
    assert abs(sc["nhs_no"].is_null().mean() - rates.nhs_missing) < 0.02
    # postcode typos: emitted postcodes that exist nowhere in the world
    known = set(pl.read_parquet(truth / "household_addresses.parquet")["postcode"])
    pcs = pl.concat([read_source(landing, s)[s.postcode] for s in SOURCES
                     if s.postcode and s.postcode_granularity == "full"]).drop_nulls()
    unknown = (~pcs.is_in(list(known))).mean()
    assert 0.012 < unknown < 0.026, unknown


def test_duplicates_late_records_and_corrections(moderate_world):
    landing, truth, _ = moderate_world
    rates = ErrorRates()
    source = next(s for s in SOURCES if s.name == "social_care")
    df = read_source(landing, source)
    pr = pl.read_parquet(truth / "person_records.parquet").filter(pl.col("source") == "social_care")
    df = df.join(pr, left_on="referral_id", right_on="record_id")
    first_seen = df.group_by("referral_id").agg(pl.col("_month").min().alias("first"), pl.col("_month").n_unique()
                                                 .alias("months"))
    corrected = (first_seen["months"] > 1).mean()
    assert abs(corrected - rates.correction) < 0.004, corrected
    originals = df.join(first_seen, on="referral_id").filter(pl.col("_month") == pl.col("first"))
    ev_month = originals["referral_date"].str.slice(6, 4) + "-" + originals["referral_date"].str.slice(3, 2)
    late = (ev_month < originals["_month"]).mean()
    assert rates.late - 0.012 < late < rates.late + 0.015, late
    groups = originals.group_by("person_id", "referral_date", "category").len()
    dups = (groups["len"] - 1).sum() / groups["len"].sum()
    assert abs(dups - rates.duplicate) < 0.006, dups


# ------------------------------------------------------------------ determinism and housekeeping


def _bytes(landing: Path) -> dict[str, bytes]:
    return {str(p.relative_to(landing)): p.read_bytes() for p in sorted(landing.rglob("*.csv"))}


def test_same_seed_same_bytes_other_seed_differs(tmp_path):
    kw = dict(people=3_000, first_month="2016-06", last_month="2016-08")
    generate(SynthConfig(seed=3, **kw), tmp_path / "a" / "landing", tmp_path / "a" / "truth")
    generate(SynthConfig(seed=3, **kw), tmp_path / "b" / "landing", tmp_path / "b" / "truth")
    generate(SynthConfig(seed=4, **kw), tmp_path / "c" / "landing", tmp_path / "c" / "truth")
    a, b, c = (_bytes(tmp_path / x / "landing") for x in "abc")
    assert a == b
    assert a.keys() == c.keys() and a != c
    for name in ("person_records.parquet", "household_membership.parquet", "children.parquet"):
        ta = pl.read_parquet(tmp_path / "a" / "truth" / name)
        assert ta.equals(pl.read_parquet(tmp_path / "b" / "truth" / name)), name


def test_no_claim_starts_before_the_floor_validation_puts_on_event_dates(tmp_path):
    """Claims running when the world begins started an exponential time before it, with no end to its tail: in a
    world from 1985 one in seven started before 1980 and validation quarantined it (event_date_from_1980)."""
    from ed_pipeline.quality.rules import EARLIEST_EVENT_YEAR

    generate(SynthConfig(people=3_000, seed=3, first_month="1985-01", last_month="1985-02"), tmp_path / "landing",
             tmp_path / "truth")
    starts = read_source(tmp_path / "landing", get_source("benefits"))["claim_start"]
    assert starts.len() > 100 and starts.min() >= f"{EARLIEST_EVENT_YEAR}-01-01"  # the registry's %Y-%m-%d


def test_regenerating_removes_the_previous_world(tmp_path):
    generate(SynthConfig(people=1_000, seed=1, first_month="2016-01", last_month="2016-04",
                         errors=ErrorRates.none()), tmp_path / "landing", tmp_path / "truth")
    generate(SynthConfig(people=1_000, seed=1, first_month="2016-01", last_month="2016-02",
                         errors=ErrorRates.none()), tmp_path / "landing", tmp_path / "truth")
    assert sorted(p.stem for p in (tmp_path / "landing" / "police_incidents").glob("*.csv")) == ["2016-01", "2016-02"]
    assert not (tmp_path / "landing" / "school_readiness").exists() or not list(
        (tmp_path / "landing" / "school_readiness").glob("*.csv"))


def test_the_same_world_made_again_leaves_its_files_as_they_were(tmp_path):
    """`make run` twice: the second synth must not give the refresh replaced extracts (new modification times) or
    a changed postcode directory."""
    from ed_pipeline.settings import file_state
    from ed_pipeline.synth.world import POSTCODE_DIRECTORY

    def states() -> dict[str, str]:
        return {str(p.relative_to(tmp_path)): file_state(p) for p in sorted(tmp_path.rglob("*"))
                if p.is_file() and "truth" not in p.parts}

    kw = dict(people=1_000, first_month="2016-06", last_month="2016-08")
    (tmp_path / "landing" / "housing").mkdir(parents=True)
    (tmp_path / "landing" / "housing" / "2015-01.csv").write_text("a previous world's month\n")
    first = generate(SynthConfig(seed=5, **kw), tmp_path / "landing", tmp_path / "truth")
    before = states()
    assert first.files_written == first.files > 0 and (tmp_path / "reference" / POSTCODE_DIRECTORY).is_file()
    assert "landing/housing/2015-01.csv" not in before and not list(tmp_path.rglob(".*.partial"))

    again = generate(SynthConfig(seed=5, **kw), tmp_path / "landing", tmp_path / "truth")
    assert again.files_written == 0 and again.files == first.files
    assert states() == before

    other = generate(SynthConfig(seed=6, **kw), tmp_path / "landing", tmp_path / "truth")
    after = states()
    assert other.files_written > 0 and after.keys() == before.keys()
    changed = {name for name in before if after[name] != before[name]}
    assert len(changed) == other.files_written + 1  # and the postcode directory
    assert f"reference/{POSTCODE_DIRECTORY}" in changed


def test_error_rates_defaults_and_none():
    r = ErrorRates()
    assert r.name_typo >= 0.03 and r.nickname >= 0.02 and r.name_swap >= 0.01 and r.dob_swap >= 0.01
    assert r.nhs_missing >= 0.8 and r.postcode_typo >= 0.02 and r.duplicate >= 0.02
    assert r.late > 0 and r.correction > 0
    assert all(v == 0 for v in ErrorRates.none().as_dict().values())


def test_synth_does_not_import_dagster():
    code = "import sys, ed_pipeline.synth; sys.exit(any(m.split('.')[0] == 'dagster' for m in sys.modules))"
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0


# ------------------------------------------------------------------ school readiness realism


def test_gld_trend_and_areas(moderate_world):
    _, truth, summary = moderate_world
    children = pl.read_parquet(truth / "children.parquet")
    by_year = children.group_by("assessment_year").agg(p=pl.col("p_not_gld").mean(), obs=pl.col("not_gld").mean(),
                                                       n=pl.len()).sort("assessment_year")
    assert by_year["assessment_year"].to_list() == [2013, 2014, 2015, 2016, 2017, 2018]
    p = dict(zip(by_year["assessment_year"], by_year["p"], strict=True))
    obs = dict(zip(by_year["assessment_year"], by_year["obs"], strict=True))
    assert abs(p[2013] - 0.50) < 0.01  # Basildon: about half not school-ready in 2013
    assert all(p[y] > p[y + 1] for y in range(2013, 2018))  # improving, as England did
    assert obs[2013] > 0.44 and obs[2018] < 0.28 and obs[2013] - obs[2018] > 0.18
    area = children.with_columns(area=pl.when(pl.col("ward").str.starts_with("Billericay")).then(pl.lit("Billericay"))
                                 .otherwise(pl.col("ward")))
    rate = dict(area.group_by("area").agg(pl.col("not_gld").mean()).iter_rows())
    mean_p = dict(area.group_by("area").agg(pl.col("p_not_gld").mean()).iter_rows())
    assert rate["Vange"] > rate["Billericay"] + 0.08
    assert mean_p["Vange"] > mean_p["Billericay"] + 0.1
    assert sorted(mean_p, key=mean_p.get)[-5:].count("Vange") == 1  # among the highest
    vange_2018 = area.filter((pl.col("area") == "Vange") & (pl.col("assessment_year") == 2018))["p_not_gld"].mean()
    assert 0.2 < vange_2018 < 0.36
    assert summary["children"] == children.height


def test_oracle_auc_is_realistic(moderate_world):
    _, truth, _ = moderate_world
    children = pl.read_parquet(truth / "children.parquet")
    value = auc(children["p_not_gld"].to_numpy(), children["not_gld"].to_numpy())
    assert 0.70 < value < 0.90, value
    # the drivers no agency sees matter: adversity alone is a much weaker predictor
    factors = pl.read_parquet(truth / "child_factors.parquet").join(children, on="person_id")
    assert auc(factors["adversity"].to_numpy(), factors["not_gld"].to_numpy()) < value - 0.1


def test_young_children_appear_in_agency_records(moderate_world):
    """A birth during a benefit claim re-sends the claim (same claim_ref, later month, claim start unchanged) with
    the baby as a new dependant; a record id names the same person in every version; under-fives are referred."""
    landing, truth, _ = moderate_world
    source = next(s for s in SOURCES if s.name == "benefits")
    pr = pl.read_parquet(truth / "person_records.parquet").filter(pl.col("source") == "benefits")
    people = pl.read_parquet(truth / "people.parquet").select("person_id", "date_of_birth")
    recs = person_records(landing, source).join(pr, on="record_id").join(people, on="person_id")
    # every version of a record shows the same person (the date of birth as the world knows it, bar typos)
    same = recs.group_by("record_id").agg(pl.col("person_id").n_unique().alias("n"))
    assert same["n"].max() == 1
    first = recs.group_by("record_id").agg(pl.col("month").min().alias("first_month"))
    claims = recs.with_columns(claim=pl.col("record_id").str.extract(r"^(B\d+)-")).join(first, on="record_id")
    claim_first = claims.group_by("claim").agg(pl.col("month").min().alias("claim_month"))
    babies = (claims.join(claim_first, on="claim")
              .filter(pl.col("record_id").str.contains(r"-D\d$") & (pl.col("first_month") > pl.col("claim_month"))
                      & (pl.col("date_of_birth").dt.strftime("%Y-%m") > pl.col("claim_month"))))
    n_claims = claim_first.height
    assert babies["claim"].n_unique() > 0.03 * n_claims, (babies["claim"].n_unique(), n_claims)
    # the re-send keeps the claim start
    starts = recs.with_columns(claim=pl.col("record_id").str.extract(r"^(B\d+)-")).group_by("claim").agg(
        pl.col("event").n_unique().alias("n"))
    assert starts["n"].max() == 1
    # social care: children under five are referred more often, per child-year, than older children
    sc = next(s for s in SOURCES if s.name == "social_care")
    sc_pr = pl.read_parquet(truth / "person_records.parquet").filter(pl.col("source") == "social_care")
    ref = (person_records(landing, sc).join(sc_pr, on="record_id").join(people, on="person_id")
           .with_columns(event=pl.col("event").str.strptime(pl.Date, "%d/%m/%Y", strict=False)))
    age = (ref["event"] - ref["date_of_birth"]).dt.total_days() / 365.25
    under5 = (age < 5).mean()
    assert under5 > 0.30, under5  # about a third of referrals (CIN census); ~27% of child-years
