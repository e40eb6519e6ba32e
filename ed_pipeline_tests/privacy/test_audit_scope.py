from __future__ import annotations

from pathlib import Path

import dagster as dg

from ed_pipeline.defs.privacy_audit import RANDOM_ID, dagster_texts, is_model_environment_file, local_directories
from ed_pipeline.privacy.leak_scan import identifiers_from_records, scan_files, scan_texts, without_local
from ed_pipeline.settings import Settings
from ed_pipeline_tests.privacy.records import records


def test_the_deployments_own_directories_are_left_out_of_the_texts_read(tmp_path) -> None:
    """Events name the data directory in every run: a folder named like a resident (a login) is configuration,
    not a leak, and would otherwise fail every audit."""
    settings = Settings(data_dir=tmp_path / "home" / "jonathon" / "data")
    text = f"Loading file from {settings.data_dir}/warehouse.duckdb"
    ids = identifiers_from_records(records())
    assert scan_texts([("dagster run x", text)], ids)  # Jonathon Pemberton-Smythe's forename
    left = without_local(text, local_directories(settings))
    assert left == "Loading file from <local>/warehouse.duckdb" and not scan_texts([("dagster run x", left)], ids)
    # MLflow's MLmodel file names its own directory
    mlmodel = tmp_path / "MLmodel"
    mlmodel.write_text(f"artifact_path: file://{settings.data_dir}/mlflow/artifacts\n")
    assert scan_files([mlmodel], ids) and not scan_files([mlmodel], ids, local=local_directories(settings))


def test_only_mlflow_model_environment_files_are_left_out_of_the_artifact_scan(tmp_path) -> None:
    model = tmp_path / "models" / "m-1" / "artifacts"
    model.mkdir(parents=True)
    for name in ("MLmodel", "uv.lock", "pyproject.toml", "requirements.txt", "input_example.json"):
        (model / name).write_text("x")
    loose = tmp_path / "run" / "artifacts"
    loose.mkdir(parents=True)
    (loose / "requirements.txt").write_text("x")
    assert is_model_environment_file(model / "uv.lock") and is_model_environment_file(model / "pyproject.toml")
    assert not is_model_environment_file(model / "input_example.json")  # data: scanned
    assert not is_model_environment_file(model / "MLmodel")  # the signature: scanned
    assert not is_model_environment_file(loose / "requirements.txt")  # not beside a logged model: scanned


def test_a_run_over_many_months_is_read_as_one_text_per_step_and_its_months(tmp_path) -> None:
    """A single-run backfill records each materialisation once per month, the same but for the month: the audit
    reads it once, the months once, and a text that differs in more than the month each time."""
    months = dg.MonthlyPartitionsDefinition(start_date="2013-01", end_date="2013-04", fmt="%Y-%m")

    @dg.asset(partitions_def=months, backfill_policy=dg.BackfillPolicy.single_run())
    def notes(context):
        for month in context.partition_keys:
            context.log.info(f"{month}: seen")
        context.log.info("note: Mary-Ann Kowalczyk")  # a planted identifier, once
        return dg.MaterializeResult(metadata={"rows": 3, "sources": "housing"})

    with dg.instance_for_test(temp_dir=str(tmp_path)) as instance:
        result = dg.materialize([notes], instance=instance, tags={"dagster/asset_partition_range_start": "2013-01",
                                                                 "dagster/asset_partition_range_end": "2013-03"})
        assert result.success
        assert len(result.get_asset_materialization_events()) == 3
        texts = dagster_texts(instance)
    materialised = [t for _, t in texts if "MaterializeResult" in t or "AssetMaterialization(" in t]
    assert len(materialised) == 1 and "partition=None" in materialised[0]
    assert [t for loc, t in texts if loc.endswith(" partitions")] == ["2013-01 2013-02 2013-03"]
    logs = [t for _, t in texts if ": seen" in t]
    assert len(logs) == 3  # each month's own message: different texts
    found = scan_texts(texts, identifiers_from_records(records()))
    assert [(leak.kind, leak.count) for leak in found] == [("name", 1)]
    # the run's id (in its code-version tags) is not read: a group of it could spell a surname
    assert not any(result.run_id[:8] in t or RANDOM_ID.search(t) for _, t in texts)
    assert any("<id>" in t for _, t in texts)


def test_the_audit_reads_the_most_recent_runs_or_every_run() -> None:
    """By default the most recent runs (an older one is not read again); `dagster_runs: 0` reads them all, e.g.
    beside a full rescan, so that a run older than the window is checked against every identifier again."""
    from ed_pipeline.defs.privacy_audit import PrivacyAuditConfig, dagster_runs

    @dg.asset
    def note() -> dg.MaterializeResult:
        return dg.MaterializeResult(metadata={"note": "Cases to review: none"})

    with dg.DagsterInstance.ephemeral() as instance:
        for _ in range(3):
            assert dg.materialize([note], instance=instance).success
        recent = PrivacyAuditConfig(dagster_runs=2).dagster_runs
        assert len(dagster_runs(instance, recent)) == 2
        config_runs = PrivacyAuditConfig(dagster_runs=0).dagster_runs or None
        assert len(dagster_runs(instance, config_runs)) == 3
        texts = dagster_texts(instance, config_runs)
        assert len({location.split()[2] for location, _ in texts}) == 3


def test_the_audit_reads_every_mlflow_run_deleted_ones_and_past_a_page(refreshed_world, tmp_path, monkeypatch) -> None:
    """A run deleted in the MLflow UI (or its experiment) keeps its params and tags in mlflow.db, shown and restored
    from the UI: still read. And every run, not only the first page (1000) of a search."""
    import shutil

    from mlflow.tracking import MlflowClient

    from ed_pipeline.defs import privacy_audit
    from ed_pipeline.defs.privacy_audit import mlflow_units

    db = tmp_path / "mlflow.db"
    shutil.copy(refreshed_world / "mlflow" / "mlflow.db", db)
    uri = f"sqlite:///{db}"
    client = MlflowClient(uri)
    before = set(mlflow_units(uri))
    assert before
    experiment = client.search_experiments()[0].experiment_id
    deleted = client.create_run(experiment)
    client.log_param(deleted.info.run_id, "note", "Mary-Ann Kowalczyk")
    client.delete_run(deleted.info.run_id)
    other = client.create_experiment("other", artifact_location=(tmp_path / "other").as_uri())
    in_deleted = client.create_run(other)
    client.delete_experiment(other)
    units = mlflow_units(uri)
    assert {f"mlflow run {deleted.info.run_id}", f"mlflow run {in_deleted.info.run_id}"} <= set(units)
    assert (f"mlflow run {deleted.info.run_id[:8]} param note", "Mary-Ann Kowalczyk") \
        in units[f"mlflow run {deleted.info.run_id}"]
    monkeypatch.setattr(privacy_audit, "MLFLOW_PAGE", 1)
    assert mlflow_units(uri) == units


def test_runs_no_audit_has_read_are_read_however_many(tmp_path) -> None:
    """More runs than the window (`dagster_runs`) since the last passing audit (the landing sensor runs a month
    at a time: years of history land as one run a month): every one of them is read, not only the most recent."""
    import time

    from ed_pipeline.defs.privacy_audit import dagster_runs, dagster_texts_by_run, not_audited_since
    from ed_pipeline.privacy.audit import AuditState, save_state

    @dg.asset
    def note() -> dg.MaterializeResult:
        return dg.MaterializeResult(metadata={"note": "Cases to review: none"})

    state_path = tmp_path / "audit" / "state.json"
    (tmp_path / "dagster").mkdir()
    with dg.instance_for_test(temp_dir=str(tmp_path / "dagster")) as instance:
        old = [dg.materialize([note], instance=instance).run_id for _ in range(2)]
        assert not_audited_since(instance, state_path) == 0  # no audit yet: every run
        assert len(dagster_runs(instance, 1, not_audited_since(instance, state_path))) == 2
        time.sleep(0.01)
        audited = dg.materialize([note], instance=instance)  # the run of the last passing audit
        save_state(state_path, AuditState(audited_at="2026-01-01T00:00:00+00:00", rules="r",
                                          dagster_run_id=audited.run_id))
        time.sleep(0.01)
        new = [dg.materialize([note], instance=instance).run_id for _ in range(3)]
        runs = dagster_runs(instance, 1, not_audited_since(instance, state_path))
        assert {f"dagster run {r}" for r in new} <= set(runs)  # all three, though the window is one
        assert not {f"dagster run {r}" for r in old[:1]} & set(runs)  # audited before, out of the window
        texts = dagster_texts_by_run(instance, 1, only={f"dagster run {new[0]}"})
        assert list(texts) == [f"dagster run {new[0]}"] and texts[f"dagster run {new[0]}"]
        assert dagster_texts_by_run(instance, 1, only=set()) == {}


def test_a_name_in_an_artifact_kept_out_of_the_data_directory_is_found(refreshed_copy, tmp_path) -> None:
    """An experiment made before the data directory was moved keeps its artifacts where they were: the audit
    reads every artifact folder the MLflow store names, wherever it lies, and counts those it cannot read (a
    folder no longer there)."""
    import dagster as dg
    import duckdb
    from mlflow.tracking import MlflowClient

    from ed_pipeline.defs.outputs import COMMUNITY_RISK_KEY
    from ed_pipeline_tests.defs.test_automation import definitions_over
    from ed_pipeline_tests.defs.test_model_outputs import _latest_check

    settings = refreshed_copy
    with duckdb.connect(str(settings.agency_zone_path), read_only=True) as agency:
        given, family = agency.execute("select given_name, family_name from validated.social_care "
                                       "order by record_id limit 1").fetchone()
    client = MlflowClient(settings.mlflow_tracking_uri)
    earlier = tmp_path / "earlier" / "data" / "mlflow" / "artifacts" / "school-readiness"
    run = client.create_run(client.create_experiment("earlier", artifact_location=earlier.as_uri()))
    card = tmp_path / "model_card.md"
    card.write_text(f"# Model card\nreviewed with {given} {family}\n")
    client.log_artifact(run.info.run_id, str(card), artifact_path="evaluation")
    planted = earlier / run.info.run_id / "artifacts" / "evaluation" / "model_card.md"
    assert planted.is_file() and not planted.is_relative_to(settings.data_dir)
    gone = client.create_experiment("gone", artifact_location=(tmp_path / "gone").as_uri())
    client.create_run(gone)  # its folder and the run's are not there: counted, not read

    with dg.DagsterInstance.get() as instance:
        done = definitions_over(settings).resolve_implicit_global_asset_job_def().execute_in_process(
            instance=instance, asset_selection=[COMMUNITY_RISK_KEY], raise_on_error=False)
        assert not done.success
        passed, audit = _latest_check(instance, "no_identifiers_anywhere")
    assert not passed and f"name in {planted.resolve()}" in audit["leaks"], audit["leaks"]
    assert audit["mlflow_artifact_paths"] == 3  # the data directory's, the original world's, the earlier one
    assert audit["mlflow_artifact_paths_not_found"] == 2


def test_the_artifact_folders_read_are_the_data_directorys_and_those_the_store_names_out_of_it(tmp_path) -> None:
    """Each folder once, none inside another; a run's folder that is not there inside one read (a run with no
    artifacts) is nothing to report, one out of every folder read (moved away) or not on this machine is."""
    from ed_pipeline.privacy.audit import mlflow_artifact_folders

    root = tmp_path / "data" / "mlflow" / "artifacts"
    (root / "school-readiness" / "r1" / "artifacts").mkdir(parents=True)
    earlier = tmp_path / "earlier" / "school-readiness"
    (earlier / "r2" / "artifacts").mkdir(parents=True)
    locations = [(root / "school-readiness").as_uri(), (root / "school-readiness" / "r1" / "artifacts").as_uri(),
                 (root / "school-readiness" / "r3" / "artifacts").as_uri(), earlier.as_uri(),
                 str(earlier / "r2" / "artifacts"), (tmp_path / "gone" / "r4").as_uri(), "s3://bucket/r5"]
    folders, unread = mlflow_artifact_folders(root, dict.fromkeys(locations))
    assert folders == [root.resolve(), earlier.resolve()]
    assert unread == [(tmp_path / "gone" / "r4").as_uri(), "s3://bucket/r5"]


def test_the_audit_holds_both_databases_to_its_memory_limit(refreshed_copy, monkeypatch) -> None:
    """DuckDB's own default is 80% of the machine: a full audit at Essex scale filled it, the full refresh's peak.
    The check runs with ED_AUDIT_MEMORY_LIMIT on the agency zone and the warehouse alike."""
    import duckdb

    from ed_pipeline.defs import privacy_audit
    from ed_pipeline.defs.outputs import COMMUNITY_RISK_KEY
    from ed_pipeline_tests.defs.test_automation import definitions_over
    from ed_pipeline_tests.defs.test_model_outputs import _latest_check

    with duckdb.connect(":memory:") as con:
        con.execute("SET memory_limit = '300MB'")
        expected = con.execute("SELECT current_setting('memory_limit')").fetchone()[0]
    seen: list[str] = []
    audit = privacy_audit.run_audit

    def recording(agency, warehouse, *args, **kwargs):
        seen.extend(c.execute("SELECT current_setting('memory_limit')").fetchone()[0] for c in (agency, warehouse))
        return audit(agency, warehouse, *args, **kwargs)

    monkeypatch.setattr(privacy_audit, "run_audit", recording)
    monkeypatch.setenv(privacy_audit.AUDIT_MEMORY_LIMIT, "300MB")
    with dg.DagsterInstance.get() as instance:
        done = definitions_over(refreshed_copy).resolve_implicit_global_asset_job_def().execute_in_process(
            instance=instance, asset_selection=[COMMUNITY_RISK_KEY])
        assert done.success and _latest_check(instance, "no_identifiers_anywhere")[0]
    assert seen == [expected, expected]


def test_a_moved_experiments_artifact_locations_are_read_where_they_are_now(tmp_path) -> None:
    """`mv data /srv/ed_data`: the store names the old artifact root. A location there that is under the current
    root, as `artifacts_now` reads it (relative to its experiment's folder's parent), is found: its files are
    scanned there, and a run without artifacts (no folder) is nothing to report, as before the move. An
    experiment whose folder is not under the current root is still counted."""
    from ed_pipeline.privacy.audit import mlflow_artifact_folders

    old = tmp_path / "home" / "data" / "mlflow" / "artifacts"
    root = tmp_path / "srv" / "ed_data" / "mlflow" / "artifacts"
    (root / "school-readiness" / "r1" / "artifacts").mkdir(parents=True)
    experiment = (old / "school-readiness").as_uri()
    gone = (tmp_path / "gone" / "exp").as_uri()
    locations = {experiment: experiment, (old / "school-readiness" / "r1" / "artifacts").as_uri(): experiment,
                 (old / "school-readiness" / "r2" / "artifacts").as_uri(): experiment,  # a run with no artifacts
                 gone: gone, f"{gone}/r3/artifacts": gone, "s3://bucket/r4": None}
    folders, unread = mlflow_artifact_folders(root, locations)
    assert folders == [root.resolve()]
    assert unread == sorted([gone, f"{gone}/r3/artifacts", "s3://bucket/r4"])


def test_a_moved_data_directorys_mlflow_store_has_no_artifact_location_not_found(tmp_path, monkeypatch) -> None:
    """A model trained, then the data directory moved: every location the moved store names (the audit's
    `mlflow_artifact_paths_not_found`) is found under the current artifact root, where its files are scanned."""
    import shutil

    from ed_pipeline.defs.privacy_audit import mlflow_units
    from ed_pipeline.privacy.audit import mlflow_artifact_folders
    from ed_pipeline.settings import local_path
    from ed_pipeline_tests.defs.test_model_gate import trained_in_a_directory_to_move

    old, new, _, (_, passed) = trained_in_a_directory_to_move(tmp_path, monkeypatch)
    assert passed
    shutil.move(old, new)
    monkeypatch.setenv("ED_DATA_DIR", str(new))
    settings = Settings.from_env()
    locations: dict[str, str | None] = {}
    mlflow_units(settings.mlflow_tracking_uri, locations)
    assert any(local_path(uri).is_relative_to(old) for uri in locations)  # the store names the old directory
    folders, unread = mlflow_artifact_folders(settings.mlflow_artifact_root, locations)
    assert folders == [settings.mlflow_artifact_root.resolve()] and unread == []


def test_an_earlier_data_directorys_paths_are_left_out_of_the_texts_read_but_names_are_not(tmp_path) -> None:
    """Events recorded before the data directory was moved or copied name where it was then ("/home/jonathon/
    data/warehouse.duckdb"): any absolute path followed by an entry of a data directory's layout is left out,
    like the current one, so a login named like a resident fails no audit. A name written outside a path is
    still found, and so is one in a path that names no data directory."""
    settings = Settings(data_dir=tmp_path / "srv" / "ed_data")
    earlier = "/home/jonathon/data"

    @dg.asset
    def note(context) -> dg.MaterializeResult:
        context.log.info(f"Loading file from {earlier}/warehouse.duckdb")
        context.log.info("wrote /srv/models/jonathon/data/landing/housing/2017-06.csv")  # an entry's name before
        return dg.MaterializeResult(metadata={
            "path": dg.MetadataValue.path(f"{earlier}/outputs/ward_ranking.png"),
            "mlflow_ui": f"mlflow ui --backend-store-uri sqlite:///{earlier}/mlflow/mlflow.db",
            "artifacts": f"file://{earlier}/mlflow/artifacts/school-readiness/1/artifacts"})

    ids = identifiers_from_records(records())
    local = local_directories(settings)
    with dg.instance_for_test(temp_dir=str(tmp_path)) as instance:
        assert dg.materialize([note], instance=instance).success
        texts = dagster_texts(instance)
    assert scan_texts(texts, ids)  # Jonathon, in the paths
    left = [(loc, without_local(text, local)) for loc, text in texts]
    assert not scan_texts(left, ids), [t for _, t in left if "jonathon" in t]
    assert any("<local>/warehouse.duckdb" in t for _, t in left)
    for text in ("note: Jonathon called about /home/x/data/landing", "see /home/jonathon/notes.txt",
                 "reviewed by jonathon/landing", "Mary-Ann Kowalczyk /srv/data/landing"):
        assert scan_texts([("dagster run x", without_local(text, local))], ids), text
    mlmodel = tmp_path / "MLmodel"  # an artifact file logged before the move names the earlier directory
    mlmodel.write_text(f"artifact_path: file://{earlier}/mlflow/artifacts\n")
    assert scan_files([mlmodel], ids) and not scan_files([mlmodel], ids, local=local)


def test_the_data_directory_layout_names_the_first_folder_of_every_location_under_it(tmp_path) -> None:
    from ed_pipeline.settings import DATA_DIR_LAYOUT

    settings = Settings(data_dir=tmp_path)
    paths = [getattr(settings, name) for name in dir(Settings) if isinstance(getattr(Settings, name), property)]
    paths = [p for p in paths if isinstance(p, str | Path) and str(p).startswith(str(tmp_path))]
    paths.append(settings.mlflow_tracking_uri.removeprefix("sqlite:///"))
    assert len(paths) > 10
    assert {Path(p).relative_to(tmp_path).parts[0] for p in paths} <= set(DATA_DIR_LAYOUT)
