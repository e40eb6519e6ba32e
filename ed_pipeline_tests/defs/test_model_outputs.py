"""After a refresh of a tiny world: the model tracked in MLflow, and the outputs written safely."""

from __future__ import annotations

import hashlib
from pathlib import Path

import duckdb
from mlflow.tracking import MlflowClient

from ed_pipeline.modelling import CHAMPION, EXPERIMENT, MODEL_NAME
from ed_pipeline.settings import Settings, local_path


def test_refresh_trains_tracks_and_scores(refreshed_world):
    settings = Settings(data_dir=refreshed_world)
    client = MlflowClient(settings.mlflow_tracking_uri)
    experiment = client.get_experiment_by_name(EXPERIMENT)
    runs = client.search_runs([experiment.experiment_id])
    assert len(runs) == 1, "one refresh is one MLflow run"
    run = runs[0]
    for metric in ("test_roc_auc", "test_pr_auc", "test_brier", "test_ece", "baseline_test_roc_auc"):
        assert metric in run.data.metrics
    for tag in ("dagster_run_id", "months", "git_commit", "input_hash"):
        assert run.data.tags.get(tag), tag
    artifacts = {a.path for a in client.list_artifacts(run.info.run_id, "evaluation")}
    assert {"evaluation/roc.png", "evaluation/pr.png", "evaluation/calibration.png",
            "evaluation/model_card.md"} <= artifacts
    assert client.get_model_version_by_alias(MODEL_NAME, CHAMPION).run_id == run.info.run_id

    with duckdb.connect(str(settings.warehouse_path), read_only=True) as conn:
        child = conn.execute("select person_id, risk, band from outputs.child_risk").pl()
        assessed = conn.execute("select count(*) from features.child_features where not_gld is not null "
                                "and person_id in (select person_id from outputs.child_risk)").fetchone()[0]
        community = conn.execute("select * from outputs.community_risk").pl()
        # children whose school year's returns have landed without them (left the area, or not linked)
        past_due = ("select person_id from features.child_features where not_gld is null and birth_year + case "
                    "when birth_month >= 9 then 6 else 5 end <= (select max(assessment_year) "
                    "from features.child_features where not_gld is not null)")
        past, listed_past = conn.execute(f"select count(*), count(*) filter (where person_id in (select person_id "
                                         f"from outputs.child_risk)) from ({past_due})").fetchone()
    assert child.height > 0 and child["risk"].is_between(0, 1).all()
    assert set(child["band"]) <= {"high", "medium", "low"}
    assert assessed == 0, "child_risk lists children not yet assessed only"
    assert listed_past == 0, f"nor children whose assessment is past ({past} in the mart)"
    published = community.filter(~community["children_suppressed"])["children"]
    assert ((published % 5 == 0) & ((published == 0) | (published >= 5))).all(), "disclosure control"
    assert (settings.outputs_dir / "ward_ranking.png").exists()


def _latest_check(instance, check_name: str):
    for run in instance.get_runs(limit=5):
        for entry in instance.all_logs(run.run_id):
            event = entry.dagster_event
            if event is not None and event.event_type_value == "ASSET_CHECK_EVALUATION" and \
                    event.event_specific_data.check_name == check_name:
                data = event.event_specific_data
                return data.passed, {k: v.value for k, v in data.metadata.items()}
    raise AssertionError(f"no evaluation of {check_name}")


def test_a_month_without_a_new_cohort_scores_with_the_champion_and_retrain_trains(month_added_copy):
    """The held-back month (August: no school-readiness return, so no new assessed cohort) is scored with the
    registered champion: one MLflow run tagged scoring-only that links the champion's run, nothing registered,
    a gate with nothing to promote, the privacy audit incremental. `retrain: true` trains and registers again."""
    import dagster as dg

    from ed_pipeline.defs.model import METRICS_KEY, MODEL_KEY, PROMOTION_CHECK
    from ed_pipeline.modelling import CHAMPION_RUN_TAG, REFRESH_KIND_TAG, SCORING_ONLY, TRAINED
    from ed_pipeline_tests.defs.test_automation import definitions_over

    settings = month_added_copy  # refreshed, then 2017-08 landed and `ed-pipeline refresh` ran again
    assert settings.landed_months()[-1] == "2017-08"
    client = MlflowClient(settings.mlflow_tracking_uri)
    # every experiment: each world is a copy of the one before, so each refresh in it made one of its own
    experiments = [e.experiment_id for e in client.search_experiments()]
    runs = client.search_runs(experiments, order_by=["attributes.start_time DESC"])
    assert len(runs) == 2, "the month's refresh is one MLflow run of its own"
    scoring, trained_run = runs
    assert trained_run.data.tags[REFRESH_KIND_TAG] == TRAINED
    champion = client.get_model_version_by_alias(MODEL_NAME, CHAMPION)
    assert scoring.data.tags[REFRESH_KIND_TAG] == SCORING_ONLY
    assert scoring.data.tags[CHAMPION_RUN_TAG] == champion.run_id == trained_run.info.run_id
    assert scoring.data.metrics["test_roc_auc"] == trained_run.data.metrics["test_roc_auc"]
    assert "no new assessed cohort" in scoring.data.params["scoring_reason"]
    assert len(client.search_model_versions(f"name='{MODEL_NAME}'")) == 1, "nothing new registered"
    assert client.get_model_version_by_alias(MODEL_NAME, CHAMPION).version == champion.version
    with duckdb.connect(str(settings.warehouse_path), read_only=True) as conn:
        (run_id,) = conn.execute("select distinct mlflow_run_id from model.metrics").fetchone()
        scored = conn.execute("select count(*) from outputs.child_risk").fetchone()[0]
    assert run_id == scoring.info.run_id and scored > 0
    with dg.DagsterInstance.get() as instance:
        passed, gate = _latest_check(instance, PROMOTION_CHECK)
        assert passed and gate["promoted"] is False and "nothing to promote" in gate["reasons"]
        passed, audit = _latest_check(instance, "no_identifiers_anywhere")
        assert passed and audit["mode"].startswith("incremental since"), audit

    # asked to retrain: a new model is trained, logged and put to the gate (same data: it passes)
    defs = definitions_over(settings)
    with dg.DagsterInstance.get() as instance:
        done = defs.resolve_implicit_global_asset_job_def().execute_in_process(
            instance=instance, asset_selection=[MODEL_KEY, METRICS_KEY],
            run_config={"ops": {"train_school_readiness_model": {"config": {"retrain": True}}}})
        assert done.success
        passed, gate = _latest_check(instance, PROMOTION_CHECK)
    runs = client.search_runs([e.experiment_id for e in client.search_experiments()],
                              order_by=["attributes.start_time DESC"])
    assert len(runs) == 3 and runs[0].data.tags[REFRESH_KIND_TAG] == TRAINED
    assert runs[0].data.params["retrain_reason"] == "asked for (config retrain)"
    assert len(client.search_model_versions(f"name='{MODEL_NAME}'")) == 2
    assert passed and "candidate is already the champion" not in gate["reasons"]


def test_training_and_scoring_read_only_the_marts_documented_columns_in_its_order(refreshed_world, tmp_path):
    """The YAML documents every column the mart has, and a column added without documenting it (an incremental
    model's `_row_hash`, say) is not read by training, scoring or the evaluation (`mart.read_mart`); they read the
    rows in the mart's order however the table stores them."""
    import shutil

    from ed_pipeline.mart import documented_columns, read_mart

    warehouse = tmp_path / "warehouse.duckdb"
    shutil.copy(Settings(data_dir=refreshed_world).warehouse_path, warehouse)
    with duckdb.connect(str(warehouse)) as conn:
        built = [c for (c,) in conn.execute("select column_name from information_schema.columns where "
                                            "table_schema = 'features' and table_name = 'child_features' "
                                            "order by ordinal_position").fetchall()]
        assert list(documented_columns()) == built
        before = read_mart(conn, "not_gld is not null")
        conn.execute("alter table features.child_features add column _row_hash ubigint default 7")
        after = read_mart(conn, "not_gld is not null")
        # stored in another order (rewritten, not by dbt): read in the same one, which training depends on
        conn.execute("create or replace table features.child_features as "
                     "select * from features.child_features order by prediction_date desc, person_id desc")
        reordered = read_mart(conn, "not_gld is not null")
    assert before.height and after.columns == built and after.equals(before) and reordered.equals(before)


def test_child_risk_leaves_out_children_whose_assessment_is_past(refreshed_copy):
    """A child with no EYFSP result whose school year's returns have landed (moved away, or the return did not
    link) is not listed for early help; a child whose assessment is to come is."""
    import dagster as dg
    from dagster_duckdb import DuckDBResource

    from ed_pipeline.defs.outputs import child_risk

    database = str(refreshed_copy.warehouse_path)
    with duckdb.connect(database) as conn:
        latest = conn.execute("select max(assessment_year) from features.child_features "
                              "where not_gld is not null").fetchone()[0]
        for person, birth_year in (("P-past", latest - 5), ("P-to-come", latest - 4)):
            conn.execute("create or replace temp table extra as select * from features.child_features "
                         "where not_gld is not null order by person_id limit 1")
            conn.execute("update extra set person_id = ?, birth_year = ?, birth_month = 3, not_gld = null, "
                         "assessment_year = null", [person, birth_year])
            conn.execute("insert into features.child_features select * from extra")
    listed = child_risk(dg.build_asset_context(), warehouse=DuckDBResource(database=database))["person_id"]
    assert "P-to-come" in listed.to_list() and "P-past" not in listed.to_list()


def _files(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in folder.rglob("*") if p.is_file()}


def test_a_copied_data_directorys_refresh_writes_its_mlflow_artifacts_inside_the_copy(refreshed_world,
                                                                                     refreshed_copy):
    """`cp -r data /srv/ed_data`: the copied store's experiment names the old directory as its artifact location.
    A refresh in the copy writes its run, its models and the outputs' chart inside the copy, never into the
    original: the experiment is renamed, its run kept, and a new one made under the copy's artifact root; the
    registry and its champion go on working."""
    import dagster as dg

    from ed_pipeline.defs.model import METRICS_KEY, MODEL_KEY
    from ed_pipeline.defs.outputs import COMMUNITY_RISK_KEY
    from ed_pipeline.modelling import load_model, tracking
    from ed_pipeline.settings import is_within
    from ed_pipeline_tests.defs.test_automation import definitions_over

    settings = refreshed_copy
    original = Settings(data_dir=refreshed_world).mlflow_artifact_root
    before = _files(original)
    client = MlflowClient(settings.mlflow_tracking_uri)
    old = client.get_experiment_by_name(EXPERIMENT)
    assert is_within(old.artifact_location, original)  # the copy's store names the original

    with dg.DagsterInstance.get() as instance:
        done = definitions_over(settings).resolve_implicit_global_asset_job_def().execute_in_process(
            instance=instance, asset_selection=[MODEL_KEY, METRICS_KEY, COMMUNITY_RISK_KEY],
            run_config={"ops": {"train_school_readiness_model": {"config": {"retrain": True}}}})
        assert done.success
    assert _files(original) == before, "nothing written into the original data directory"

    experiment = client.get_experiment_by_name(EXPERIMENT)
    assert experiment.experiment_id != old.experiment_id
    assert is_within(experiment.artifact_location, settings.mlflow_artifact_root)
    (run,) = client.search_runs([experiment.experiment_id])
    assert is_within(run.info.artifact_uri, settings.mlflow_artifact_root)
    assert {"evaluation/model_card.md", "outputs/ward_ranking.png"} <= {
        str(p.relative_to(local_path(run.info.artifact_uri))) for p in local_path(run.info.artifact_uri).rglob("*")}
    models = client.search_logged_models([experiment.experiment_id])
    assert models and all(is_within(m.artifact_location, settings.mlflow_artifact_root) for m in models)
    # the earlier runs stay, under a name that says why
    assert client.get_experiment_by_name(tracking.earlier_experiment_name(EXPERIMENT, old.experiment_id)) is not None
    assert len(client.search_runs([old.experiment_id])) == 1
    # the registry goes on: the new version was put to the gate against the old champion and promoted
    champion = client.get_model_version_by_alias(MODEL_NAME, CHAMPION)
    assert champion.run_id == run.info.run_id and str(champion.version) == "2"
    assert load_model(settings.mlflow_tracking_uri).metadata.run_id == run.info.run_id



def test_a_moved_data_directorys_champion_is_restored_and_gates_the_next_model(refreshed_copy, tmp_path,
                                                                               monkeypatch):
    """`mv data /srv/ed_data`: the moved store's runs and registered models still name the old directory as
    where their artifacts are. They are read from the same place under the moved one: a refresh that scores
    restores the champion from the registry (the same version, scoring as it did), and a retrain is compared
    with it on the same cohort; nothing is written at the old path."""
    import shutil

    import dagster as dg
    import pytest

    from ed_pipeline.defs.model import METRICS_KEY, MODEL_KEY, PROMOTION_CHECK, load_latest_model
    from ed_pipeline.mart import read_mart
    from ed_pipeline.modelling import score_children
    from ed_pipeline_tests.defs.test_automation import definitions_over

    retrain = {"ops": {"train_school_readiness_model": {"config": {"retrain": True}}}}
    model_steps = [MODEL_KEY, METRICS_KEY]

    def refresh(settings: Settings, run_config: dict | None = None) -> tuple[bool, dict]:
        job = definitions_over(settings).resolve_implicit_global_asset_job_def()
        with dg.DagsterInstance.get() as instance:
            assert job.execute_in_process(instance=instance, asset_selection=model_steps, run_config=run_config or {}
                                          ).success
            return _latest_check(instance, PROMOTION_CHECK)

    # a champion registered in this directory (the copy's store names the shared world's for the one before)
    old = refreshed_copy.data_dir
    assert refresh(refreshed_copy, retrain)[0]
    champion = load_latest_model(refreshed_copy)
    client = MlflowClient(refreshed_copy.mlflow_tracking_uri)
    version = client.get_model_version_by_alias(MODEL_NAME, CHAMPION)
    assert local_path(client.get_run(version.run_id).info.artifact_uri).is_relative_to(old)
    logged_auc = client.get_run(version.run_id).data.metrics["test_roc_auc"]

    new = tmp_path / "srv" / "ed_data"
    new.parent.mkdir()
    shutil.move(old, new)
    monkeypatch.setenv("ED_DATA_DIR", str(new))
    monkeypatch.setenv("DAGSTER_HOME", str(new / "dagster"))
    settings = Settings.from_env()
    (settings.models_dir / "latest.pkl").unlink()  # scoring restores the champion from the registry
    scored, scoring_gate = refresh(settings)
    assert scored and scoring_gate["champion_version"] == str(version.version)
    with duckdb.connect(str(settings.warehouse_path), read_only=True) as conn:
        mart = read_mart(conn)
    assert score_children(load_latest_model(settings), mart).equals(score_children(champion, mart))
    gated, retrain_gate = refresh(settings, retrain)
    assert gated and retrain_gate["champion_auc"] == pytest.approx(logged_auc)
    assert not old.exists()
