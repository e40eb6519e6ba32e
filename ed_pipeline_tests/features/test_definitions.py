"""The dbt project as Dagster assets: keys that are warehouse tables, a connected graph, dbt tests as checks,
and a materialisation through Dagster against a hand-made warehouse."""

from __future__ import annotations

import json
import os
from types import SimpleNamespace

import dagster as dg
import duckdb
import yaml

from ed_pipeline.defs.features import (
    DBT_PROJECT_DIR,
    FEATURES_GROUP,
    KEEP_RUN_TARGETS,
    MART_KEY,
    PARSED_FOR,
    PARTIAL_PARSE,
    RUN_TARGET_PREFIX,
    adopt_partial_parse,
    dbt_project,
    manifest_is_stale,
    prepare_manifest,
    prune_run_targets,
)
from ed_pipeline.sources import SOURCES
from ed_pipeline_tests.features.conftest import dbt_keys

STAGING = {f"stg_{s.name}" for s in SOURCES} | {"stg_person_link", "stg_person", "stg_household_membership"}
INTERMEDIATE = {"int_person_events", "int_data_window", "int_child_assessments", "int_child_prediction_dates",
                "int_child_household_members", "int_child_events", "int_child_moves"}
MARTS = {MART_KEY, dg.AssetKey(["features", "child_area"])}  # child_area: where children live, for outputs


def test_dbt_models_are_assets_keyed_by_their_tables():
    from ed_pipeline.definitions import defs

    keys = dbt_keys(defs)
    assert keys == ({dg.AssetKey(["staging", m]) for m in STAGING}
                    | {dg.AssetKey(["intermediate", m]) for m in INTERMEDIATE} | MARTS)
    graph = defs.resolve_asset_graph()
    for key in keys:
        node = graph.get(key)
        assert node.group_name == FEATURES_GROUP
        assert node.kinds == {"dbt", "duckdb"}
        assert node.tags["layer"] == {"staging": "staging", "intermediate": "intermediate", "features": "marts"}[
            key.path[0]]


def test_sources_are_the_pseudonymised_and_linked_assets():
    from ed_pipeline.definitions import defs

    graph = defs.resolve_asset_graph()
    staging_parents = {p for k in dbt_keys(defs) if k.path[0] == "staging" for p in graph.get(k).parent_keys}
    linked = {dg.AssetKey(["linked", t]) for t in ("person_link", "person", "household_membership")}
    assert staging_parents == {dg.AssetKey(["pseudonymised", s.name]) for s in SOURCES} | linked
    # each is materialised by the pipeline's own assets, not a stub: the graph runs on from linkage to features
    for key in staging_parents:
        assert graph.get(key).is_materializable, key
    upstream = graph.get(MART_KEY).parent_keys
    assert dg.AssetKey(["intermediate", "int_child_events"]) in upstream


def test_dbt_tests_are_asset_checks():
    from ed_pipeline.definitions import defs

    checks = {c for c in defs.resolve_asset_graph().asset_check_keys if c.asset_key == MART_KEY}
    names = {c.name for c in checks}
    assert "unique_combination_of_columns_child_features_person_id__prediction_date" in names
    assert {"not_null_child_features_person_id", "not_null_child_features_prediction_date",
            "accepted_values_child_features_sex__M__F__U"} <= names
    assert len(checks) >= 25


def test_dbt_sources_follow_the_registry():
    sources = yaml.safe_load((DBT_PROJECT_DIR / "models" / "staging" / "_sources.yml").read_text())["sources"]
    tables = {s["name"]: {t["name"] for t in s["tables"]} for s in sources}
    assert tables["pseudonymised"] == {s.name for s in SOURCES} | {"landed_extract"}  # the months delivered
    assert all((DBT_PROJECT_DIR / "models" / "staging" / f"stg_{s.name}.sql").exists() for s in SOURCES)


def test_the_data_window_waits_for_the_monthly_sources_of_the_registry():
    """int_data_window reads every source, and the months each delivered, and leaves the registry's non-monthly
    ones (`landing_month`) out of the month the data are complete to."""
    project = yaml.safe_load((DBT_PROJECT_DIR / "dbt_project.yml").read_text())
    assert set(project["vars"]["annual_sources"]) == {s.name for s in SOURCES if s.landing_month is not None}
    prepare_manifest(dbt_project)
    manifest = json.loads(dbt_project.manifest_path.read_text())
    parents = manifest["nodes"]["model.ed_pipeline.int_data_window"]["depends_on"]["nodes"]
    assert set(parents) == {f"source.ed_pipeline.pseudonymised.{s.name}" for s in SOURCES} | {
        "source.ed_pipeline.pseudonymised.landed_extract"}


def test_the_record_of_months_delivered_is_declared_under_the_assets_that_write_it():
    """pseudonymised.landed_extract, which int_data_window reads, is written by each source's pseudonymised asset:
    it is in the graph under them (not one of dbt's stray sources), as a table no step materialises alone."""
    from ed_pipeline.definitions import defs
    from ed_pipeline.defs.pseudonymised import LANDED_KEY

    node = defs.resolve_asset_graph().get(LANDED_KEY)
    assert node.group_name == "pseudonymised" and not node.is_materializable
    assert node.parent_keys == {dg.AssetKey(["pseudonymised", s.name]) for s in SOURCES}
    assert node.child_keys == {dg.AssetKey(["intermediate", "int_data_window"])}


def test_manifest_is_current():
    # made on import for the warehouse of that moment: another test may have parsed for its own since
    prepare_manifest(dbt_project)
    assert dbt_project.manifest_path.exists() and not manifest_is_stale(dbt_project)


def test_a_manifest_parsed_for_another_warehouse_is_current(tmp_path, monkeypatch):
    prepare_manifest(dbt_project)
    assert not manifest_is_stale(dbt_project)
    # the asset graph does not depend on the warehouse: a new data directory loads without a dbt parse
    monkeypatch.setenv("ED_WAREHOUSE_DB", str(tmp_path / "elsewhere.duckdb"))
    assert not manifest_is_stale(dbt_project)
    # an edited model is newer than the manifest
    built = dbt_project.manifest_path.stat()
    os.utime(dbt_project.manifest_path, (1_000_000, 1_000_000))
    try:
        assert manifest_is_stale(dbt_project)
    finally:
        os.utime(dbt_project.manifest_path, (built.st_atime, built.st_mtime))


def test_a_build_for_another_warehouse_leaves_its_parse_to_the_next_build(tmp_path, monkeypatch):
    project = SimpleNamespace(manifest_path=tmp_path / "target" / "manifest.json")
    ours, stamp = tmp_path / "target" / PARTIAL_PARSE, tmp_path / "target" / PARSED_FOR
    ours.parent.mkdir()
    ours.write_bytes(b"parsed for a")
    stamp.write_text(str(tmp_path / "a.duckdb"))
    run = tmp_path / "target" / f"{RUN_TARGET_PREFIX}0000001-abcdef0"
    run.mkdir()
    monkeypatch.setenv("ED_WAREHOUSE_DB", str(tmp_path / "b.duckdb"))
    # dagster-dbt copied ours into the build, which dbt did not parse again (it stopped first): nothing to take
    (run / PARTIAL_PARSE).write_bytes(ours.read_bytes())
    assert not adopt_partial_parse(project, run)
    assert stamp.read_text() == str(tmp_path / "a.duckdb")
    # dbt parsed the whole project for b: its parse becomes the project's, for b
    (run / PARTIAL_PARSE).write_bytes(b"parsed for b")
    assert adopt_partial_parse(project, run)
    assert ours.read_bytes() == b"parsed for b" and stamp.read_text() == str(tmp_path / "b.duckdb")
    assert [p.name for p in ours.parent.iterdir() if p.name.startswith(PARTIAL_PARSE)] == [PARTIAL_PARSE]
    # the next build for b parsed partially from it: kept as it is
    (run / PARTIAL_PARSE).write_bytes(b"parsed for b, partially")
    assert not adopt_partial_parse(project, run)
    assert ours.read_bytes() == b"parsed for b"


def test_materialise_features_through_dagster(built):
    assert built.result.success
    materialised = {e.asset_key for e in built.result.get_asset_materialization_events()}
    assert materialised == built.asset_keys and MART_KEY in materialised
    evaluations = built.result.get_asset_check_evaluations()
    assert evaluations and all(e.passed for e in evaluations)
    assert {e.asset_key for e in evaluations} >= {MART_KEY, dg.AssetKey(["staging", "stg_housing"])}
    with duckdb.connect(str(built.warehouse), read_only=True) as conn:
        assert conn.execute("select count(*) from features.child_features").fetchone()[0] == 3
    # dbt's console output is in the run's event log, as one debug entry
    logs = [e.user_message for e in built.instance.all_logs(built.result.run_id) if e.dagster_event is None]
    dbt_logs = [m for m in logs if m.startswith("dbt build output")]
    assert len(dbt_logs) == 1 and "child_features" in dbt_logs[0], logs[:5]
    # parsed for this warehouse (the fixture's `prepare_manifest`), the build re-used the parse
    (build_log,) = dbt_project.manifest_path.parent.glob(f"dbt_features-{built.result.run_id[:7]}-*/dbt.log")
    assert "Unable to do partial parsing" not in build_log.read_text()
    # the dbt process was pointed at the warehouse only: this process's environment is as it was
    assert "ED_WAREHOUSE_DB" not in os.environ or os.environ["ED_WAREHOUSE_DB"] != str(built.warehouse)
    # older runs' target directories were removed, the newest kept
    assert len(list(dbt_project.manifest_path.parent.glob(f"{RUN_TARGET_PREFIX}*"))) <= KEEP_RUN_TARGETS


def test_only_the_newest_run_targets_are_kept(tmp_path):
    runs = []
    for n in range(5):
        run = tmp_path / f"{RUN_TARGET_PREFIX}{n:07d}-abcdef0"
        (run / "compiled").mkdir(parents=True)
        (run / "manifest.json").write_text("{}")
        os.utime(run, (1_000_000 + n, 1_000_000 + n))
        runs.append(run)
    (tmp_path / "partial_parse.msgpack").write_bytes(b"")  # the project's own files stay
    current = runs[0]  # the oldest by time, but the run that just built: never removed
    removed = prune_run_targets(current, keep=2)
    assert set(removed) == {runs[1], runs[2]}
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        [current.name, runs[3].name, runs[4].name, "partial_parse.msgpack"])


def test_the_dbt_resource_knows_its_version_without_starting_dbt(monkeypatch, tmp_path):
    """dagster-dbt asks `dbt --version` (a dbt start-up) in every run; ours reads the installed dbt-core's."""
    import importlib.metadata

    import dagster_dbt.core.resource as dbt_resource_module
    import pytest
    from packaging import version

    from ed_pipeline.defs.features import DbtCli
    from ed_pipeline.settings import dbt_executable

    def no_subprocess(command, *args, **kwargs):
        raise AssertionError(f"started {command}")

    monkeypatch.setattr(dbt_resource_module, "check_output", no_subprocess)
    resource = DbtCli(project_dir=dbt_project, dbt_executable=dbt_executable())
    assert resource._cli_version == version.parse(importlib.metadata.version("dbt-core"))
    elsewhere = tmp_path / "dbt"  # a dbt outside this environment is still asked
    elsewhere.write_text("#!/bin/sh\necho 'Core: 1.11.16'\n")
    elsewhere.chmod(0o755)
    with pytest.raises(AssertionError, match="--version"):
        _ = DbtCli(project_dir=dbt_project, dbt_executable=str(elsewhere))._cli_version


def test_the_dbt_resource_loads_no_dbt_adapter_in_the_dagster_process(monkeypatch):
    """dagster-dbt would load the project and an adapter (seconds) for metadata that dbt_features reads itself."""
    import dbt.adapters.factory

    from ed_pipeline.defs.features import DbtCli
    from ed_pipeline.settings import dbt_executable

    def no_adapter(*args, **kwargs):
        raise AssertionError("registered a dbt adapter in the Dagster process")

    monkeypatch.setattr(dbt.adapters.factory, "register_adapter", no_adapter)
    resource = DbtCli(project_dir=dbt_project, dbt_executable=dbt_executable())
    assert resource._initialize_dbt_core_adapter(["build"]) is None
