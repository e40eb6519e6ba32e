"""The agency zone and the warehouse as two code locations (`workspace-split.yaml`): every asset in one of them,
the key and the agency zone only on the agency side, and a month run through both equal to the one location's."""

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


def test_the_split_workspace_joins_the_two_locations_into_one_graph(tmp_path, monkeypatch):
    from dagster._core.workspace.context import WorkspaceProcessContext
    from dagster._core.workspace.load_target import WorkspaceFileTarget

    monkeypatch.setenv("ED_DATA_DIR", str(tmp_path / "data"))
    workspace = Path(__file__).parents[2] / "workspace-split.yaml"
    with dg.instance_for_test() as instance, \
            WorkspaceProcessContext(instance, WorkspaceFileTarget(paths=[str(workspace)])) as process:
        context = process.create_request_context()
        assert {name: entry.load_error for name, entry in context.get_code_location_entries().items()} == {
            "agency_zone": None, "warehouse": None}
        graph = context.asset_graph
        where = {key: graph.get_repository_handle(key).location_name for key in graph.executable_asset_keys}
    housing = dg.AssetKey(["pseudonymised", "housing"])
    assert where[housing] == where[AUDIT_KEY] == "agency_zone"
    assert where[COMMUNITY_RISK_KEY] == where[dg.AssetKey(["linked", "person_link"])] == "warehouse"
    # the lineage crosses the line both ways: pseudonymised -> linked, community risk -> the audit
    assert dg.AssetKey(["linked", "person_link"]) in graph.get(housing).child_keys
    assert graph.get(AUDIT_KEY).parent_keys == {COMMUNITY_RISK_KEY}
    assert graph.get(housing).partitions_def is not None  # the agency side's definition, not the warehouse's stub


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


def test_a_month_through_the_two_locations_equals_the_one_locations_month(refreshed_copy, month_added_world,
                                                                          tmp_path):
    """The held-back month ingested by the agency zone's location, analysed by the warehouse's in a process
    without the key and with the agency zone out of reach, then audited by the agency zone's: the tables are
    those of the same month refreshed by the one location (`month_added_world`)."""
    settings = refreshed_copy
    landed = release_held_back(settings)
    sources = [get_source(path.parent.name) for path in landed]
    with dg.DagsterInstance.get() as instance:
        ingest = dg.execute_job(dg.reconstructable(agency_ingest_job), instance, raise_on_error=False,
                                asset_selection=[key for source in sources for key in source_keys(source)],
                                tags={RANGE_START_TAG: TINY_LAST, RANGE_END_TAG: TINY_LAST}, run_config=QUIET)
    assert ingest.success

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

    from ed_pipeline.locations.agency_zone import defs as agency

    with dg.DagsterInstance.get() as instance:
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
