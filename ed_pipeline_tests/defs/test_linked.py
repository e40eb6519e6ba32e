"""Landing -> ... -> linked, through the CLI on a tiny world: quality against truth, privacy, incremental months."""

from __future__ import annotations

import shutil

import dagster as dg
import duckdb
import polars as pl

from ed_pipeline.evaluation import evaluate_linkage
from ed_pipeline.privacy import identifiers_from_duckdb, scan_duckdb
from ed_pipeline.sources import SOURCES
from ed_pipeline_tests.conftest import TINY_LAST, run_cli


def last_link_run(settings) -> tuple[dict, dict[str, bool]]:
    """The latest linked/person_link metadata, and the check results of the latest run, from Dagster's instance."""
    with dg.DagsterInstance.from_config(str(settings.dagster_home)) as instance:
        event = instance.get_latest_materialization_event(dg.AssetKey(["linked", "person_link"]))
        metadata = {k: v.value for k, v in event.asset_materialization.metadata.items()}
        run = instance.get_runs(limit=1)[0]
        checks = {e.dagster_event.event_specific_data.check_name: e.dagster_event.event_specific_data.passed
                  for e in instance.all_logs(run.run_id)
                  if e.dagster_event and e.dagster_event.event_type_value == "ASSET_CHECK_EVALUATION"}
    return metadata, checks


def linked_ids(settings) -> pl.DataFrame:
    with duckdb.connect(str(settings.warehouse_path), read_only=True) as conn:
        return conn.execute("select source, record_id, person_id from linked.person_link").pl()


def test_refresh_links_people_accurately_and_leaks_nothing(world_copy):
    result = run_cli("refresh", data_dir=world_copy.data_dir)
    assert result.returncode == 0, result.stderr[-3000:]

    metrics = evaluate_linkage(world_copy)
    assert metrics["precision"] >= 0.98 and metrics["recall"] >= 0.95, metrics

    # every validated record, and nothing else, has a person
    with duckdb.connect(str(world_copy.agency_zone_path), read_only=True) as agency:
        validated = pl.concat([
            agency.execute(f"select distinct source, record_id from validated.{s.name}").pl() for s in SOURCES])
    linked = linked_ids(world_copy)
    assert linked.height == validated.height == linked.join(validated, on=["source", "record_id"]).height

    with duckdb.connect(str(world_copy.agency_zone_path), read_only=True) as agency:
        identifiers = identifiers_from_duckdb(agency)
    assert scan_duckdb(world_copy.warehouse_path, identifiers) == []
    metadata, checks = last_link_run(world_copy)
    assert metadata["mode"] == "full"
    assert checks == {"ids_stable": True, "no_identifiers_anywhere": True}
    with duckdb.connect(str(world_copy.warehouse_path), read_only=True) as conn:
        tables = {t for (t,) in conn.execute(
            "select table_schema || '.' || table_name from information_schema.tables").fetchall()}
    assert {"linked.person_link", "linked.person", "linked.household_membership", "linked.cohort",
            "linked.person_crosswalk", "linked.review_pair"} <= tables


def test_a_new_month_links_incrementally_and_keeps_ids(world_copy):
    held_back = world_copy.data_dir / "held_back"
    for source in SOURCES:
        last = world_copy.landing_file(source.name, TINY_LAST)
        if last.exists():
            (held_back / source.name).mkdir(parents=True, exist_ok=True)
            shutil.move(last, held_back / source.name / last.name)
    first = run_cli("refresh", data_dir=world_copy.data_dir)
    assert first.returncode == 0, first.stderr[-3000:]
    before = linked_ids(world_copy)

    for source in SOURCES:
        for path in (held_back / source.name).glob("*.csv"):
            shutil.move(path, world_copy.landing_file(source.name, path.stem))
    second = run_cli("refresh", data_dir=world_copy.data_dir)
    assert second.returncode == 0, second.stderr[-3000:]
    after = linked_ids(world_copy)
    metadata, checks = last_link_run(world_copy)
    assert metadata["mode"] == "incremental" and checks["ids_stable"]

    assert after.height > before.height, "the new month added no records"
    kept = before.join(after, on=["source", "record_id"], suffix="_now")
    assert kept.height == before.height
    assert (kept["person_id"] == kept["person_id_now"]).mean() >= 0.999
