"""The agency zone and the warehouse as two code locations (`workspace-split.yaml`): every asset in one of them,
the key and the agency zone only on the agency side, and a month through both, by their automation, equal to the
one location's."""

from __future__ import annotations

import contextlib
import os
import shutil
import time
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


def _launch(instance: dg.DagsterInstance, workspace, run: dg.DagsterRun) -> dg.DagsterRun:
    """Launch a queued run as the run queue's daemon does, by the instance's launcher (its code location's server
    starts the run's process), and wait for it to end."""
    instance.launch_run(run.run_id, workspace.create_request_context())
    deadline = time.monotonic() + 600
    while not (run := instance.get_run_by_id(run.run_id)).is_finished:
        assert time.monotonic() < deadline, f"run {run.run_id} still {run.status}"
        time.sleep(0.5)
    return run


def _code_server_environments() -> dict[str, dict[str, str]]:
    """The environment of each code server this process started, by location name (from /proc)."""
    found = {}
    for proc in Path("/proc").iterdir():
        with contextlib.suppress(OSError):
            if not proc.name.isdigit() or int((proc / "stat").read_text().rsplit(")", 1)[1].split()[1]) != os.getpid():
                continue
            args = (proc / "cmdline").read_bytes().split(b"\0")
            if b"--location-name" in args:
                name = args[args.index(b"--location-name") + 1].decode()
                pairs = (item.partition(b"=") for item in (proc / "environ").read_bytes().split(b"\0") if item)
                found[name] = {key.decode(): value.decode() for key, _, value in pairs}
    return found


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
    location's server runs the requested run without the key (its Python drops it) and with the agency zone out of
    reach; the new community risk table makes the agency zone's automation request the audit, which its server runs
    and which passes. The tables are those of the same month refreshed by the one location (`month_added_world`)."""
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

        # the key is in the agency location's environment only, though this process (as `dagster dev`) has it
        environments = _code_server_environments()
        assert set(environments) == {"agency_zone", "warehouse"}
        assert os.environ["ED_PSEUDO_KEY"] == environments["agency_zone"]["ED_PSEUDO_KEY"]
        assert "ED_PSEUDO_KEY" not in environments["warehouse"]

        # the requested run, launched by the warehouse location's server, with the agency zone out of reach
        away = tmp_path / "agency_side"
        away.mkdir()
        for path in (settings.agency_zone_path, settings.data_dir / "secrets"):
            if path.exists():
                shutil.move(path, away / path.name)
        assert _launch(instance, workspace, requested).status == dg.DagsterRunStatus.SUCCESS
        assert not settings.agency_zone_path.exists(), "the warehouse's location opened the agency zone"
        for path in away.iterdir():
            shutil.move(path, settings.data_dir / path.name)

        (requested,) = _daemon_tick(workspace, instance)
        assert requested.tags["dagster/sensor_name"] == "privacy_audit_automation"
        assert requested.remote_job_origin.location_name == "agency_zone"
        assert requested.asset_selection == {AUDIT_KEY}
        assert _daemon_tick(workspace, instance) == [], "each requested once"
        audit = _launch(instance, workspace, requested)
        assert audit.status == dg.DagsterRunStatus.SUCCESS
        (record,) = instance.event_log_storage.get_asset_check_execution_history(
            dg.AssetCheckKey(AUDIT_KEY, AUDIT_CHECK), limit=1)
    assert record.run_id == audit.run_id
    evaluation = record.event.dagster_event.event_specific_data
    assert evaluation.passed
    assert evaluation.metadata["identifiers"].value > 0  # it read the agency zone's identifiers

    expected = table_digests(month_added_world / "warehouse.duckdb")
    got = table_digests(settings.warehouse_path)
    assert {t for t in got if got[t] != expected.get(t)} == set()
    assert set(got) == set(expected)
