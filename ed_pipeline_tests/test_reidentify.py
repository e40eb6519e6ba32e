"""Agency-side re-identification for human review: the listing, the audit trail, and a warehouse left untouched.

The shared refreshed tiny world (the test key) gets a hand-made `outputs.child_risk` from linked children, in a
known order; each test works on its own copy.
"""

from __future__ import annotations

import getpass
import hashlib
import re
import shutil
from datetime import date
from pathlib import Path

import duckdb
import polars as pl
import pytest

from ed_pipeline.privacy import load_key, pseudonymise_people
from ed_pipeline.reidentify import (
    LISTING_COLUMNS,
    MissingOutputError,
    ReidentifyError,
    UnknownSourceError,
    read_audit,
    reidentify,
)
from ed_pipeline.settings import Settings
from ed_pipeline_tests.conftest import TEST_KEY, run_cli

KEY = load_key(TEST_KEY)


@pytest.fixture(scope="module")
def refreshed(refreshed_world: Path, tmp_path_factory) -> Path:
    """The shared refreshed tiny world, with the model's outputs.child_risk dropped (tests write their own)."""
    data_dir = tmp_path_factory.mktemp("reidentify") / "data"
    shutil.copytree(refreshed_world, data_dir)
    with duckdb.connect(str(data_dir / "warehouse.duckdb")) as wh:
        wh.execute("drop table if exists outputs.child_risk")
    return data_dir


@pytest.fixture(scope="module")
def scored(refreshed: Path, tmp_path_factory) -> Path:
    """The refreshed world plus a hand-made outputs.child_risk: two children known only to other agencies score
    highest, then every child with a social-care record, in a known order."""
    data_dir = tmp_path_factory.mktemp("reidentify_scored") / "data"
    shutil.copytree(refreshed, data_dir)
    with duckdb.connect(str(data_dir / "warehouse.duckdb")) as wh:
        social = wh.execute("select distinct person_id from linked.person_link where source = 'social_care' "
                            "order by person_id").pl()["person_id"].to_list()
        others = wh.execute("select distinct person_id from linked.person_link where person_id not in "
                            "(select person_id from linked.person_link where source = 'social_care') "
                            "order by person_id limit 2").pl()["person_id"].to_list()
        assert len(social) >= 4, "the tiny world should have a few children known to social care"
        ids = others + social
        child_risk = pl.DataFrame({  # noqa: F841  (read by DuckDB)
            "person_id": ids + ids[:3],
            "prediction_date": [date(2017, 8, 31)] * len(ids) + [date(2017, 5, 31)] * 3,  # older scores: ignored
            "risk": [0.95 - 0.05 * i for i in range(len(ids))] + [0.01] * 3,
            "band": ["high"] * len(ids) + ["low"] * 3,
            "top_factors": [["social_care_episodes", "overcrowded_housing"]] * (len(ids) + 3),
        })
        wh.execute("create schema if not exists outputs; create table outputs.child_risk as select * from child_risk")
    return data_dir


@pytest.fixture
def world(scored: Path, tmp_path: Path, monkeypatch) -> Settings:
    data_dir = tmp_path / "data"
    shutil.copytree(scored, data_dir)
    monkeypatch.setenv("ED_DATA_DIR", str(data_dir))
    return Settings.from_env()


def expected_listing(settings: Settings, source: str = "social_care") -> pl.DataFrame:
    """Independently: the latest scores, ranked, of children with a record of `source`, and their names."""
    with duckdb.connect(str(settings.warehouse_path), read_only=True) as wh:
        ranked = wh.execute(f"""
            with latest as (select * from outputs.child_risk where prediction_date = date '2017-08-31'),
            ranked as (select rank() over (order by risk desc) as rank, person_id from latest)
            select rank, l.person_id, l.record_id
            from ranked join linked.person_link l using (person_id) where l.source = '{source}'""").pl()
    with duckdb.connect(str(settings.agency_zone_path), read_only=True) as agency:
        names = agency.execute(f"select distinct record_id, given_name, family_name from validated.{source}").pl()
    return ranked.join(names, on="record_id").sort("rank", "record_id")


def fingerprint(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_the_cli_lists_an_agencys_flagged_children_and_audits_the_call(world):
    before = fingerprint(world.warehouse_path)
    expected = expected_listing(world)
    top3 = expected.unique("person_id", keep="first", maintain_order=True).head(3)
    assert top3["rank"].to_list()[0] == 3  # ranks 1 and 2 are children social care does not know

    result = run_cli("reidentify", "--source", "social_care", "--top", "3", "--reviewer", "A. Practitioner",
                     "--purpose", "early help panel", data_dir=world.data_dir)
    assert result.returncode == 0, result.stderr[-3000:]
    shown = " ".join(result.stdout.split())  # the table may wrap long cells
    for person in top3["person_id"].to_list():  # a child may have several records (and name versions)
        records = expected.filter(pl.col("person_id") == person)
        assert any(name in shown for name in records["given_name"].to_list())
        assert any(record in shown for record in records["record_id"].to_list())
    for name in expected.filter(~pl.col("person_id").is_in(top3["person_id"].to_list()))["record_id"].to_list():
        assert name not in shown, "a child beyond --top was listed"

    audit = read_audit(world)
    assert audit.height == 1
    row = audit.row(0, named=True)
    assert row["os_user"] == getpass.getuser() and row["reviewer"] == "A. Practitioner"
    assert (row["source"], row["top"], row["rows_listed"], row["outcome"]) == ("social_care", 3, 3, "listed")
    assert row["purpose"] == "early help panel"
    assert row["person_ids"] == top3["person_id"].to_list()
    words = set(re.findall(r"[\w'-]+", str(row).lower()))
    for name in expected["given_name"].to_list() + expected["family_name"].to_list():
        assert name.lower() not in words, "a name reached the audit trail"

    # the warehouse was only read: same bytes, and no write-ahead log left behind
    assert fingerprint(world.warehouse_path) == before
    assert not world.warehouse_path.with_name(world.warehouse_path.name + ".wal").exists()


def test_every_call_is_appended_including_refused_ones(world):
    first = reidentify(world, "social_care", 2, KEY, reviewer="R1", purpose="panel")
    second = reidentify(world, "social_care", 50, KEY, os_user="someone")
    with pytest.raises(UnknownSourceError, match="unknown source 'gp_records'"):
        reidentify(world, "gp_records", 5, KEY)
    audit = read_audit(world)
    assert audit["rows_listed"].to_list() == [2, second.listing.height, 0]
    assert audit["outcome"][:2].to_list() == ["listed", "listed"] and audit["outcome"][2].startswith("refused")
    assert audit["os_user"][1] == "someone" and audit["reviewer"][0] == "R1"
    assert audit["person_ids"][0].to_list() == first.listing["person_id"].to_list()
    assert audit["called_at"].is_sorted()
    assert list(first.listing.columns) == list(LISTING_COLUMNS)
    assert second.listing["rank"].is_sorted() and second.listing.height == min(50, second.flagged_children)


def test_a_record_whose_identity_changed_is_not_listed(world):
    top = reidentify(world, "social_care", 1, KEY).listing.row(0, named=True)
    records = top["record_ids"].split(", ")
    with duckdb.connect(str(world.agency_zone_path)) as agency:  # the agency corrected its records since linking
        agency.execute("update validated.social_care set given_name = 'Zebedee' where list_contains(?, record_id)",
                       [records])
    review = reidentify(world, "social_care", 50, KEY)
    assert top["person_id"] not in review.listing["person_id"].to_list()
    assert review.unmatched_records == len(records)


def test_a_record_id_reused_for_another_person_is_not_listed(world):
    """A later version of a linked record names somebody else (the agency re-used the id, or corrected who it
    was): the link was made with the first identity, so neither name is shown against the child's score."""
    top = reidentify(world, "social_care", 1, KEY).listing.row(0, named=True)
    record = top["record_ids"].split(", ")[0]
    with duckdb.connect(str(world.agency_zone_path)) as agency:
        latest = agency.execute("select * from validated.social_care where record_id = ? "
                                "order by extract_month desc limit 1", [record]).pl()
        reused = latest.with_columns(pl.lit("2017-09").alias("extract_month"), pl.lit("Yusuf").alias("given_name"),
                                     pl.lit("Adeyemi").alias("family_name"))
        agency.execute("insert into validated.social_care by name select * from reused")
    tokens = pseudonymise_people(reused, KEY)  # noqa: F841 (read by DuckDB)
    with duckdb.connect(str(world.warehouse_path)) as wh:
        columns = [c for (c,) in wh.execute("select column_name from information_schema.columns where "
                                            "table_schema = 'pseudonymised' and table_name = 'social_care'").fetchall()]
        wh.execute(f"insert into pseudonymised.social_care by name select {', '.join(columns)} from tokens")

    review = reidentify(world, "social_care", 50, KEY)
    assert "Yusuf" not in review.listing["given_name"].to_list()
    assert not review.listing["record_ids"].str.contains(record).any()
    assert review.unmatched_records == 1


def test_a_call_that_fails_after_its_checks_is_recorded(world):
    with duckdb.connect(str(world.agency_zone_path)) as agency:  # the agency zone lost the source's records
        agency.execute("drop table validated.social_care")
    with pytest.raises(MissingOutputError, match="validated.social_care does not exist"):
        reidentify(world, "social_care", 5, KEY, reviewer="R2")
    [call] = read_audit(world).iter_rows(named=True)
    assert call["reviewer"] == "R2" and call["rows_listed"] == 0 and call["person_ids"] == []
    assert call["outcome"].startswith("refused: validated.social_care does not exist")


def test_no_model_output_yet_is_a_clear_error(refreshed, tmp_path):
    data_dir = tmp_path / "data"
    shutil.copytree(refreshed, data_dir)
    result = run_cli("reidentify", "--source", "social_care", "--top", "5", data_dir=data_dir)
    assert result.returncode == 2
    message = " ".join(result.stderr.split())
    assert "outputs.child_risk does not exist yet" in message and "run `ed-pipeline refresh` first" in message
    settings = Settings(data_dir=data_dir)
    assert read_audit(settings)["outcome"][0].startswith("refused: outputs.child_risk")
    with pytest.raises(MissingOutputError):
        reidentify(Settings(data_dir=tmp_path / "nowhere"), "social_care", 5, KEY)


def test_a_key_other_than_the_warehouses_is_refused_not_reported_as_changed_identities(world):
    """Under another key no record re-hashes to its tokens: that is the key, not 82 records whose identity
    changed (which the practitioner was told to look up by hand, with exit 0 and an audit row 'listed')."""
    other = load_key("ab" * 32)
    with pytest.raises(ReidentifyError, match="not the key the warehouse was made with"):
        reidentify(world, "social_care", 5, other, reviewer="R3")
    [call] = read_audit(world).iter_rows(named=True)
    assert call["outcome"].startswith("refused: none of the") and call["rows_listed"] == 0
    assert reidentify(world, "social_care", 5, KEY).listing.height == 5  # the right key still lists


def test_a_warehouse_held_by_a_refresh_is_a_clear_error_not_a_traceback(world, monkeypatch, capsys):
    """While a refresh (another process) writes to the warehouse, reidentify and evaluate say so and exit 2."""
    import subprocess
    import sys

    from ed_pipeline.cli import main

    monkeypatch.setenv("ED_PSEUDO_KEY", TEST_KEY)
    holder = subprocess.Popen(
        [sys.executable, "-c", "import duckdb, sys, time; c = duckdb.connect(sys.argv[1]); print('held', flush=True); "
         "time.sleep(120)", str(world.warehouse_path)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        for argv in (["reidentify", "--source", "social_care", "--top", "5"], ["evaluate", "--linkage-only"]):
            capsys.readouterr()
            assert main(argv) == 2, argv
            said = " ".join(capsys.readouterr().err.split())
            assert "error:" in said and "another process is writing to it" in said and "Traceback" not in said
    finally:
        holder.kill()
        holder.wait()
    assert read_audit(world)["outcome"][0] == "failed: IOException"


def test_a_record_listed_under_the_names_of_its_latest_extract_however_stored():
    """Two versions of a record on one date, the later extract spelling the name otherwise (the tokens the same):
    the listing gives the later one's, in either stored order."""
    from ed_pipeline.reidentify import _listing

    flagged = pl.DataFrame({"rank": [1], "person_id": ["P1"], "risk": [0.9], "band": ["high"],
                            "top_factors": [["social_care_episodes"]], "record_id": ["soc-1"],
                            "tok_name_dob": ["t1"], "tok_dob": ["d1"]})
    records = pl.DataFrame({"record_id": ["soc-1", "soc-1"], "extract_month": ["2017-05", "2017-06"],
                            "event_date": [date(2017, 5, 2)] * 2, "given_name": ["Aoife", "Aoife"],
                            "family_name": ["OBRIEN", "O'Brien"], "date_of_birth": [date(2014, 3, 1)] * 2,
                            "tok_name_dob": ["t1", "t1"], "tok_dob": ["d1", "d1"]})
    listed = [_listing(flagged, stored, top=5)[0]["family_name"].to_list() for stored in (records, records.reverse())]
    assert listed == [["O'Brien"], ["O'Brien"]]
