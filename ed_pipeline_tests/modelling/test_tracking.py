"""MLflow: a refresh run in a temporary sqlite store, the registered calibrated model, the champion gate."""

from __future__ import annotations

import logging
import math
import os
import warnings

import mlflow
import numpy as np
import polars as pl
import pytest
from mlflow.tracking import MlflowClient

from ed_pipeline.modelling import (
    CHAMPION,
    EXPERIMENT,
    FEATURES,
    MODEL_NAME,
    Gate,
    TrainingConfig,
    load_model,
    log_reference_metrics,
    log_refresh_run,
    model_input,
    promote_if_better,
    promotion_decision,
    score_children,
    train_and_evaluate,
)

TAGS = {"dagster_run_id": "run-123", "months": "2013-01..2018-07", "git_commit": "abc123", "input_hash": "f00d"}


# --- the pure gate ---------------------------------------------------------------------------------------

def test_gate_passes_without_a_champion():
    d = promotion_decision({"test_roc_auc": 0.70, "test_ece": 0.01}, None)
    assert d.passed and "no champion yet" in d.reasons


def test_gate_allows_a_small_drop_and_refuses_a_larger_one():
    assert promotion_decision({"test_roc_auc": 0.696, "test_ece": 0.01}, {"test_roc_auc": 0.70}).passed
    refused = promotion_decision({"test_roc_auc": 0.694, "test_ece": 0.01}, {"test_roc_auc": 0.70})
    assert not refused.passed and any("worse than champion" in r for r in refused.reasons)
    assert refused.champion_auc == 0.70 and refused.candidate_auc == 0.694


def test_gate_refuses_poor_calibration_even_when_better():
    d = promotion_decision({"test_roc_auc": 0.80, "test_ece": 0.05}, {"test_roc_auc": 0.70})
    assert not d.passed and any("calibration out of bound" in r for r in d.reasons)
    assert promotion_decision({"test_roc_auc": 0.80, "test_ece": 0.05}, None, Gate(max_ece=0.06)).passed
    assert not promotion_decision({"test_roc_auc": float("nan"), "test_ece": 0.01}, None).passed


# --- a refresh run ---------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def store(tmp_path_factory):
    root = tmp_path_factory.mktemp("mlflow")
    return f"sqlite:///{root / 'mlflow.db'}", root


@pytest.fixture(scope="module")
def first_run(store, trained, tmp_path_factory):
    uri, root = store
    weights = tmp_path_factory.mktemp("linkage") / "match_weights.png"
    weights.write_bytes(b"\x89PNG fake")
    before = (mlflow.get_tracking_uri(), os.environ.get("MLFLOW_TRACKING_URI"))
    run_id = log_refresh_run(trained, uri, root, tags=TAGS, params={"people": 100_000}, extra_artifacts=[weights])
    assert (mlflow.get_tracking_uri(), os.environ.get("MLFLOW_TRACKING_URI")) == before  # global state restored
    return run_id


def test_logging_the_models_gives_none_of_mlflows_advice_on_what_is_chosen_on_purpose(trained, tmp_path):
    """No input example (it would be children's rows), a Python object as the model, no pip in the environment, uv's
    files copied: MLflow's warnings and notes on them read as faults on every refresh's console."""
    said: list[str] = []
    keep = logging.Handler()
    keep.emit = lambda record: said.append(record.getMessage())
    mlflow_logger = logging.getLogger("mlflow")  # its own handler, not propagated: pytest's capture does not see it
    mlflow_logger.addHandler(keep)
    try:
        with warnings.catch_warnings(record=True) as warned:
            warnings.simplefilter("always")
            log_refresh_run(trained, f"sqlite:///{tmp_path / 'mlflow.db'}", tmp_path, tags=TAGS, params={},
                            extra_artifacts=[])
    finally:
        mlflow_logger.removeHandler(keep)
    advice = ("input example", "python_model", "pip version", "uv.lock", "pyproject.toml")
    assert not [m for m in said if any(a in m for a in advice)], said
    assert not [w for w in warned if any(a in str(w.message) for a in advice)], [str(w.message) for w in warned]


def test_refresh_run_logs_everything(store, first_run, trained):
    uri, root = store
    client = MlflowClient(uri)
    run = client.get_run(first_run)
    experiment = client.get_experiment(run.info.experiment_id)
    assert experiment.name == EXPERIMENT
    assert experiment.artifact_location.startswith((root / EXPERIMENT).as_uri())
    assert {k: run.data.tags[k] for k in TAGS} == TAGS
    assert run.data.params["people"] == "100000" and run.data.params["test_cohort"] == "2018"
    assert run.data.params["train_cohorts"] == "2016"
    metrics = run.data.metrics
    for k in ("test_roc_auc", "test_pr_auc", "test_brier", "test_ece", "baseline_test_roc_auc",
              "test_precision_top10", "test_recall_top10", "test_roc_auc__sex_F", "test_n__sex_F",
              "test_n__ward_St_Martin_s", "test_n__fsm_true", "test_ece__ethnicity_group_White_British"):
        assert k in metrics, k
    assert metrics["test_roc_auc"] == pytest.approx(trained.metrics["test_roc_auc"])
    sizes = [metrics.get(f"test_n__sex_{v}") for v in ("F", "M", "U")]
    assert sum(n or 0 for n in sizes) <= trained.metrics["test_n"] and sizes.count(None) != 1, \
        "no one size alone withheld: the cohort's less the others' would tell it"
    files = {a.path for a in client.list_artifacts(first_run, "evaluation")}
    for name in ("roc.png", "pr.png", "calibration.png", "shap_summary.png", "model_card.md", "subgroups.csv"):
        assert f"evaluation/{name}" in files
    assert [a.path for a in client.list_artifacts(first_run, "inputs")] == ["inputs/match_weights.png"]
    card = (root / EXPERIMENT / first_run / "artifacts" / "evaluation" / "model_card.md").read_text()
    assert "Every flag is reviewed by a person, and no decision is automated" in card
    assert "| 2018 |" in card and "ROC AUC" in card
    # the scorer's files were logged from a folder named after the run: MLmodel records that path, and a random
    # temp name (eight letters at times) would be a word for the privacy audit
    mlmodels = [p.read_text() for p in (root / EXPERIMENT / "models").glob("*/artifacts/MLmodel")]
    uris = [line.split("uri:")[1].strip() for text in mlmodels if f"run_id: {first_run}" in text
            for line in text.splitlines() if "uri:" in line]
    assert uris and all(f"/ed_mlflow_{first_run}/" in uri for uri in uris), uris


def test_each_logged_model_carries_the_run_metrics(store, first_run, trained):
    """MLflow 3 shows a logged model's metrics: each of the run's two models carries its overall ones, the run
    every one (its subgroups' too)."""
    uri, _ = store
    client = MlflowClient(uri)
    models = client.search_logged_models(experiment_ids=[client.get_run(first_run).info.experiment_id],
                                         filter_string=f"source_run_id = '{first_run}'")
    assert sorted(m.name for m in models) == ["booster", "model"]
    for model in models:
        metrics = {m.key: m.value for m in model.metrics}
        assert metrics["test_roc_auc"] == pytest.approx(trained.metrics["test_roc_auc"])
        assert metrics.keys() == {k for k, v in trained.metrics.items() if math.isfinite(v)}
    run = client.get_run(first_run).data.metrics
    assert run.keys() > metrics.keys() and any(k.startswith("test_roc_auc__") for k in run)  # the subgroups'


def test_registered_model_returns_calibrated_risk(store, first_run, trained, feature_frame):
    uri, _ = store
    client = MlflowClient(uri, registry_uri=uri)
    (version,) = client.search_model_versions(f"name='{MODEL_NAME}'")
    assert version.run_id == first_run and version.tags["run_id"] == first_run
    model = _load_version(uri, version.version)
    sample = feature_frame.head(200)
    risk = model.predict(model_input(sample))["risk"].to_numpy()
    assert np.allclose(risk, score_children(trained, sample)["risk"].to_numpy())
    # the signature and input example hold the features only
    assert model.metadata.get_input_schema().input_names() == list(FEATURES)


def _load_version(uri: str, version: str):
    from ed_pipeline.modelling.tracking import _mlflow_at

    with _mlflow_at(uri):
        return mlflow.pyfunc.load_model(f"models:/{MODEL_NAME}/{version}")


def test_no_person_id_reaches_mlflow(store, first_run, trained):
    """No child's row reaches MLflow: the models carry a signature, no input example (a few children's features);
    no text artifact names or holds a person id."""
    _, root = store
    assert not list(root.rglob("input_example.json")) and not list(root.rglob("serving_input_example.json"))
    for path in root.rglob("*"):
        if path.is_file() and path.suffix in (".json", ".md", ".csv", ".txt", ".yaml"):
            text = path.read_text(errors="ignore")
            assert "person_id" not in text, path
            if path.suffix == ".csv":  # aggregates only: no key column
                assert not {"person_id", "household_id", "prediction_date"} & set(text.splitlines()[0].split(","))


def test_promotion_first_then_refusal_then_reference_metrics(store, first_run, trained, feature_frame):
    uri, root = store
    first = promote_if_better(uri, first_run, trained)
    assert first.passed and first.promoted and first.champion_version is None
    client = MlflowClient(uri, registry_uri=uri)
    assert str(client.get_model_version_by_alias(MODEL_NAME, CHAMPION).version) == first.candidate_version
    assert load_model(uri).predict(model_input(feature_frame.head(3)))["risk"].shape == (3,)

    # a candidate trained on scrambled outcomes, tested on the same cohort: the champion stays
    scrambled = feature_frame.with_columns(
        pl.when(pl.col("assessment_year") < 2018).then(pl.col("not_gld").shuffle(seed=5)).otherwise(
            pl.col("not_gld")).alias("not_gld"))
    weak = train_and_evaluate(scrambled, TrainingConfig())
    weak_run = log_refresh_run(weak, uri, root, tags={"dagster_run_id": "run-456"}, params={}, extra_artifacts=[])
    second = promote_if_better(uri, weak_run, weak)
    assert not second.passed and not second.promoted
    assert second.champion_auc == pytest.approx(trained.metrics["test_roc_auc"])  # champion scored on same cohort
    assert str(client.get_model_version_by_alias(MODEL_NAME, CHAMPION).version) == first.candidate_version
    assert client.get_model_version(MODEL_NAME, second.candidate_version).tags["promotion"] == "refused"
    assert client.get_run(weak_run).data.metrics["promotion_passed"] == 0.0

    # re-checking the champion itself passes without moving anything
    again = promote_if_better(uri, first.candidate_version, trained)
    assert again.passed and not again.promoted

    log_reference_metrics(first_run, {"oracle_test_roc_auc": 0.81, "truelink_test_roc_auc": 0.70}, uri)
    metrics = client.get_run(first_run).data.metrics
    assert metrics["oracle_test_roc_auc"] == 0.81 and metrics["truelink_test_roc_auc"] == 0.70


def test_the_registered_model_scores_on_the_features_it_was_trained_on(store, first_run, trained, feature_frame):
    """A later release that adds, drops or reorders features: the champion still scores on its own columns, in
    its own order, and the gate says when the cohort no longer has them (it used to fail with a KeyError, or
    score the champion on swapped columns)."""
    from ed_pipeline.modelling.tracking import champion_metrics

    uri, _ = store
    promote_if_better(uri, first_run, trained)  # the first run's model is the champion (idempotent)
    sample = feature_frame.head(200)
    expected = score_children(trained, sample)["risk"].to_numpy()
    shuffled = model_input(sample, tuple(reversed(FEATURES))).assign(a_new_feature=1.0)
    assert np.allclose(load_model(uri).predict(shuffled)["risk"].to_numpy(), expected)
    version, metrics = champion_metrics(uri, trained.test_frame)
    assert metrics["test_roc_auc"] == pytest.approx(trained.metrics["test_roc_auc"])
    assert champion_metrics(uri, trained.test_frame.drop(FEATURES[0])) == (version, None)


def test_a_candidate_tested_on_a_cohort_the_champion_trained_on_is_not_compared(store, first_run, trained,
                                                                                 feature_frame):
    """The champion (tested on 2018) was validated on 2017: a candidate tested on 2017 would meet the champion's
    in-sample score there, inflated; the gate says so and the champion stays."""
    uri, root = store
    promote_if_better(uri, first_run, trained)  # the first run's model is the champion (idempotent)
    assert trained.cohorts.validation == 2017
    earlier = train_and_evaluate(feature_frame, TrainingConfig(test_cohort=2017))
    run = log_refresh_run(earlier, uri, root, tags={"dagster_run_id": "run-789"}, params={}, extra_artifacts=[])
    decision = promote_if_better(uri, run, earlier)
    assert not decision.passed and not decision.promoted
    assert any("trained or validated on the test cohort 2017" in r for r in decision.reasons)
    champion = MlflowClient(uri, registry_uri=uri).get_model_version_by_alias(MODEL_NAME, CHAMPION)
    assert champion.run_id == first_run


# --- retrain, or score with the champion ------------------------------------------------------------------

def test_retrain_only_when_the_training_data_change_in_a_way_that_matters(store, first_run, trained, feature_frame):
    from ed_pipeline.modelling import booster_sha256, champion_info, champion_model, choose_cohorts, retrain_reason

    uri, _ = store
    promote_if_better(uri, first_run, trained)  # the first run's model is the champion (idempotent)
    champion = champion_info(uri)
    assert champion is not None and champion.run_id == first_run
    assert champion.test_cohort == 2018 and champion.train_cohorts == (2016,) and champion.features == FEATURES
    assert champion.booster_sha256 == booster_sha256(trained.booster)

    same = choose_cohorts(feature_frame, TrainingConfig())
    assert retrain_reason(same, champion) is None  # nothing new: score with the champion
    assert retrain_reason(same, champion, retrain=True) == "asked for (config retrain)"
    assert retrain_reason(same, None) == "no champion yet"

    # a new assessed cohort arrives (2019 gets outcomes): retrain
    unassessed = pl.col("assessment_year").is_null()
    newer = feature_frame.with_columns(
        pl.when(unassessed).then(pl.col("p_not_gld") > 0.5).otherwise(pl.col("not_gld")).alias("not_gld"),
        pl.when(unassessed).then(pl.lit(2019, dtype=pl.Int32)).otherwise(pl.col("assessment_year"))
        .alias("assessment_year"))
    cohorts = choose_cohorts(newer, TrainingConfig())
    assert cohorts.test == 2019
    assert retrain_reason(cohorts, champion).startswith("a new assessed cohort: test cohort 2019")

    # the champion scores with its local copy; another model there, or none, gives way to the champion restored
    # from the registry (its scorer, metrics and subgroup figures, its band thresholds set again on its test cohort)
    assert champion_model(uri, champion, trained, feature_frame, TrainingConfig()) is trained
    other = train_and_evaluate(feature_frame, TrainingConfig(seed=3, learning_rate=0.1))
    for local in (other, None):
        restored = champion_model(uri, champion, local, feature_frame, TrainingConfig())
        assert booster_sha256(restored.booster) == champion.booster_sha256
        assert restored.band_thresholds == trained.band_thresholds
        assert restored.metrics == pytest.approx({k: v for k, v in trained.metrics.items() if math.isfinite(v)})
        assert restored.subgroups.equals(trained.subgroups)
        assert score_children(restored, feature_frame).equals(score_children(trained, feature_frame))


def test_a_scoring_only_refresh_is_one_run_linked_to_the_champion(store, first_run, trained):
    from ed_pipeline.modelling import CHAMPION_RUN_TAG, REFRESH_KIND_TAG, SCORING_ONLY, champion_info, log_scoring_run

    uri, root = store
    promote_if_better(uri, first_run, trained)
    champion = champion_info(uri)
    client = MlflowClient(uri, registry_uri=uri)
    versions = len(client.search_model_versions(f"name='{MODEL_NAME}'"))
    run_id = log_scoring_run(trained, champion, uri, root, tags={**TAGS, "dagster_run_id": "run-789"},
                             params={"scoring_reason": "nothing new"})
    run = client.get_run(run_id)
    assert run.data.tags[REFRESH_KIND_TAG] == SCORING_ONLY and run.data.tags[CHAMPION_RUN_TAG] == first_run
    assert run.data.tags["champion_version"] == champion.version and run.data.tags["dagster_run_id"] == "run-789"
    assert run.data.params["test_cohort"] == "2018" and run.data.params["scoring_reason"] == "nothing new"
    assert run.data.metrics["test_roc_auc"] == pytest.approx(trained.metrics["test_roc_auc"])
    assert len(client.search_model_versions(f"name='{MODEL_NAME}'")) == versions, "nothing registered"
    assert champion_info(uri).run_id == first_run, "the champion stays"


def test_an_experiment_whose_artifacts_lie_out_of_the_data_directory_is_renamed_and_a_new_one_made(tmp_path):
    """A data directory moved or copied keeps a store whose experiment names the old directory (MLflow fixes an
    experiment's artifact location): its runs would write there. It is renamed aside, runs and all, and a new one
    made under the current artifact root; the next refresh uses that one."""
    import shutil

    from ed_pipeline.modelling import tracking
    from ed_pipeline.modelling.tracking import ensure_experiment

    old, new = tmp_path / "old" / "data" / "mlflow", tmp_path / "new" / "data" / "mlflow"
    old.mkdir(parents=True)
    first = ensure_experiment(MlflowClient(f"sqlite:///{old / 'mlflow.db'}"), old / "artifacts")
    shutil.copytree(old, new)
    client = MlflowClient(f"sqlite:///{new / 'mlflow.db'}")
    moved = ensure_experiment(client, new / "artifacts")
    assert moved != first and ensure_experiment(client, new / "artifacts") == moved
    assert client.get_experiment(moved).artifact_location == (new / "artifacts" / EXPERIMENT).resolve().as_uri()
    assert client.create_run(moved).info.artifact_uri.startswith((new / "artifacts").resolve().as_uri())
    assert client.get_experiment(first).name == tracking.earlier_experiment_name(EXPERIMENT, first)
    # the original store is as it was
    assert ensure_experiment(MlflowClient(f"sqlite:///{old / 'mlflow.db'}"), old / "artifacts") == first


def test_loading_a_registered_model_writes_nothing_beside_its_artifacts(store, first_run):
    """MLflow loading a registered model in place writes a `registered_model_meta` file beside its artifacts: in
    the data directory it was logged in, another one after a move. The model is loaded from a copy."""
    uri, root = store
    client = MlflowClient(uri, registry_uri=uri)
    (version,) = client.search_model_versions(f"name='{MODEL_NAME}' and run_id='{first_run}'")
    client.set_registered_model_alias(MODEL_NAME, "loaded", version.version)
    before = sorted(p for p in root.rglob("*"))
    assert load_model(uri, alias="loaded").metadata.run_id == first_run
    assert sorted(p for p in root.rglob("*")) == before
