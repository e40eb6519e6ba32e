"""The agency zone and the warehouse as two code locations (`workspace-split.yaml`): every asset in one of them,
the key and the agency zone only on the agency side, and a month through both, by their automation, equal to the
one location's."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import dagster as dg

from ed_pipeline.definitions import agency_zone_location, one_location, warehouse_location
from ed_pipeline.defs.automation import source_keys
from ed_pipeline.defs.outputs import COMMUNITY_RISK_KEY
from ed_pipeline.defs.privacy_audit import AUDIT_CHECK, AUDIT_KEY
from ed_pipeline.defs.resources import AGENCY_ZONE
from ed_pipeline.refresh import QUIET, RANGE_END_TAG, RANGE_START_TAG
from ed_pipeline.resilience import table_digests
from ed_pipeline.sources import get_source
from ed_pipeline_tests.conftest import TINY_LAST, release_held_back

AGENCY_SECRETS = {"pseudo_key", "agency_zone", AGENCY_ZONE}


def _executable(defs: dg.Definitions) -> set[dg.AssetKey]:
    graph = defs.resolve_asset_graph()
    return {key for key in graph.get_all_asset_keys() if graph.get(key).is_executable}


def test_every_asset_is_in_one_location_and_only_the_agency_zone_holds_the_key():
    one, agency, warehouse = one_location(), agency_zone_location(), warehouse_location()
    for defs in (one, agency, warehouse):
        dg.Definitions.validate_loadable(defs)  # every resource an asset asks for is there
    assert _executable(agency) | _executable(warehouse) == _executable(one) | {AUDIT_KEY}
    assert not _executable(agency) & _executable(warehouse)
    # the warehouse's location is given neither the key nor the agency zone, and no asset of it asks for them
    assert not AGENCY_SECRETS & set(warehouse.resources)
    assert set(agency.resources) >= AGENCY_SECRETS
    graph = warehouse.resolve_asset_graph()
    for key in _executable(warehouse):
        assert not AGENCY_SECRETS & graph.get(key).assets_def.required_resource_keys, key
    # the audit: a check on the community risk table in one location; an asset after it on the agency side
    one_checks = {key for key in one.resolve_asset_graph().asset_check_keys if key.name == AUDIT_CHECK}
    assert one_checks == {dg.AssetCheckKey(COMMUNITY_RISK_KEY, AUDIT_CHECK)}
    agency_graph = agency.resolve_asset_graph()
    assert {key for key in agency_graph.asset_check_keys if key.name == AUDIT_CHECK} == {
        dg.AssetCheckKey(AUDIT_KEY, AUDIT_CHECK)}
    assert agency_graph.get(AUDIT_KEY).parent_keys == {COMMUNITY_RISK_KEY}
    assert not {key for key in graph.asset_check_keys if key.name == AUDIT_CHECK}


def agency_ingest_job() -> dg.JobDefinition:
    """The agency zone location's ingest job (for `dg.reconstructable`)."""
    from ed_pipeline.locations.agency_zone import defs

    return defs.resolve_job_def("ingest")


_WAREHOUSE_RUN = """
import dagster as dg
from ed_pipeline.locations.warehouse import defs

with dg.DagsterInstance.get() as instance:
    result = defs.resolve_job_def("analyse").execute_in_process(instance=instance, raise_on_error=False)
raise SystemExit(0 if result.success else 1)
"""


def _daemon_tick(workspace, instance: dg.DagsterInstance) -> list[dg.DagsterRun]:
    """One pass of Dagster's automation daemon over the workspace; the runs it requested (queued: no daemon
    launches them here)."""
    from dagster._daemon.asset_daemon import AssetDaemon

    before = {run.run_id for run in instance.get_runs()}
    daemon = AssetDaemon(settings=instance.get_auto_materialize_settings(), pre_sensor_interval_seconds=0)
    daemon._run_iteration_impl(workspace, threadpool_executor=None, amp_tick_futures={}, debug_crash_flags={})
    return [run for run in instance.get_runs() if run.run_id not in before]


def test_a_month_flows_through_the_two_locations_as_through_one(refreshed_copy, month_added_world, tmp_path,
                                                                 monkeypatch):
    """`workspace-split.yaml` as Dagster's daemon loads it: one graph over the two locations. The held-back month
    ingested by the agency zone's location makes the warehouse's automation request linking onwards; the warehouse's
    location analyses it in a process without the key and with the agency zone out of reach; the new community
    risk table makes the agency zone's automation request the audit, which passes. The tables are those of the
    same month refreshed by the one location (`month_added_world`)."""
    from dagster._core.test_utils import create_test_daemon_workspace_context
    from dagster._core.workspace.load_target import WorkspaceFileTarget

    # each tick here comes sooner than the automation sensors' minimum interval (60 s), which the daemon respects
    monkeypatch.setattr("dagster._daemon.asset_daemon.is_under_min_interval", lambda *args, **kwargs: False)
    settings = refreshed_copy
    workspace_file = Path(__file__).parents[2] / "workspace-split.yaml"
    with dg.DagsterInstance.get() as instance, create_test_daemon_workspace_context(
            WorkspaceFileTarget(paths=[str(workspace_file)]), instance) as workspace:
        context = workspace.create_request_context()
        locations = context.get_code_location_entries()
        assert {name: entry.load_error for name, entry in locations.items()} == {"agency_zone": None,
                                                                                 "warehouse": None}
        graph = context.asset_graph
        where = {key: graph.get_repository_handle(key).location_name for key in graph.executable_asset_keys}
        housing, person_link = dg.AssetKey(["pseudonymised", "housing"]), dg.AssetKey(["linked", "person_link"])
        assert where[housing] == where[AUDIT_KEY] == "agency_zone"
        assert where[COMMUNITY_RISK_KEY] == where[person_link] == "warehouse"
        # the lineage crosses the line both ways: pseudonymised -> linked, community risk -> the audit
        assert person_link in graph.get(housing).child_keys
        assert graph.get(AUDIT_KEY).parent_keys == {COMMUNITY_RISK_KEY}
        assert graph.get(housing).partitions_def is not None  # the agency side's definition, not a stub
        for entry in locations.values():
            for sensor in next(iter(entry.code_location.get_repositories().values())).get_sensors():
                if sensor.name in ("downstream_automation", "privacy_audit_automation"):
                    instance.start_sensor(sensor)  # as a user turns them on in the UI
        assert _daemon_tick(workspace, instance) == [], "nothing new since the refresh"

        landed = release_held_back(settings)
        sources = [get_source(path.parent.name) for path in landed]
        ingest = dg.execute_job(dg.reconstructable(agency_ingest_job), instance, raise_on_error=False,
                                asset_selection=[key for source in sources for key in source_keys(source)],
                                tags={RANGE_START_TAG: TINY_LAST, RANGE_END_TAG: TINY_LAST}, run_config=QUIET)
        assert ingest.success
        (requested,) = _daemon_tick(workspace, instance)
        assert requested.tags["dagster/sensor_name"] == "downstream_automation"
        assert requested.remote_job_origin.location_name == "warehouse"
        assert {person_link, COMMUNITY_RISK_KEY} <= requested.asset_selection
        assert all(key.path[0] not in ("raw", "validated", "pseudonymised") for key in requested.asset_selection)

        # linking onwards, as the requested run would, in a process without the key or the agency zone
        away = tmp_path / "agency_side"
        away.mkdir()
        for path in (settings.agency_zone_path, settings.data_dir / "secrets"):
            if path.exists():
                shutil.move(path, away / path.name)
        env = {k: v for k, v in os.environ.items() if k != "ED_PSEUDO_KEY"}
        run = subprocess.run([sys.executable, "-c", _WAREHOUSE_RUN], env=env, capture_output=True, text=True,
                             timeout=600)
        assert run.returncode == 0, run.stderr[-4000:]
        assert not settings.agency_zone_path.exists(), "the warehouse's location opened the agency zone"
        for path in away.iterdir():
            shutil.move(path, settings.data_dir / path.name)

        (requested,) = _daemon_tick(workspace, instance)
        assert requested.tags["dagster/sensor_name"] == "privacy_audit_automation"
        assert requested.remote_job_origin.location_name == "agency_zone"
        assert requested.asset_selection == {AUDIT_KEY}
        assert _daemon_tick(workspace, instance) == [], "each requested once"

        from ed_pipeline.locations.agency_zone import defs as agency

        audited = agency.get_implicit_global_asset_job_def().execute_in_process(
            instance=instance, asset_selection=[AUDIT_KEY], run_config=QUIET, raise_on_error=False)
    assert audited.success
    (evaluation,) = audited.get_asset_check_evaluations()
    assert evaluation.check_name == AUDIT_CHECK and evaluation.passed
    assert evaluation.metadata["identifiers"].value > 0  # it read the agency zone's identifiers

    expected = table_digests(month_added_world / "warehouse.duckdb")
    got = table_digests(settings.warehouse_path)
    assert {t for t in got if got[t] != expected.get(t)} == set()
    assert set(got) == set(expected)
