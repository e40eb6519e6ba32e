"""The promotion gate's refusal: a worse model is a record in MLflow, never the model the outputs score with."""

from __future__ import annotations

import pickle
import shutil

import dagster as dg
import duckdb
import polars as pl
from dagster_duckdb import DuckDBResource

from ed_pipeline.defs.model import PROMOTION_CHECK, load_latest_model, train_school_readiness_model
from ed_pipeline.mart import read_mart
from ed_pipeline.modelling import (
    MODEL_NAME,
    TrainingConfig,
    booster_sha256,
    champion_info,
    score_children,
    train_and_evaluate,
)
from ed_pipeline.modelling.synthetic import synthetic_features
from ed_pipeline.modelling.tracking import BOOSTER_TAG
from ed_pipeline.refresh import _failed_checks
from ed_pipeline.settings import Settings


def good_and_bad_features() -> tuple[pl.DataFrame, pl.DataFrame]:
    """A feature mart, and the same with the training cohorts' outcomes scrambled (as a linkage fault would)."""
    good = synthetic_features(8400, seed=0, unassessed_cohorts=(2019,)).drop("p_not_gld")
    bad = good.with_columns(pl.when(pl.col("assessment_year") < 2018).then(pl.col("not_gld").shuffle(seed=5))
                            .otherwise(pl.col("not_gld")).alias("not_gld"))
    return good, bad


def refresh_model(database: str, frame: pl.DataFrame, retrain: bool = False, failed: list[str] | None = None
                  ) -> tuple[dict, bool]:
    """`frame` as features.child_features, the model step materialised: its metadata and whether the gate passed;
    the failed checks as `ed-pipeline refresh` reports them added to `failed`."""
    with duckdb.connect(database) as conn:
        conn.execute("create schema if not exists features; create schema if not exists pseudonymised")
        conn.execute("create or replace table pseudonymised.x as select '2018-07' as extract_month")
        conn.execute("create or replace table features.child_features as select * from frame order by person_id")
    result = dg.materialize(
        [train_school_readiness_model], resources={"warehouse": DuckDBResource(database=database)},
        run_config={"ops": {"train_school_readiness_model": {"config": {"retrain": retrain}}}},
        raise_on_error=False)
    if failed is not None:
        failed += _failed_checks(result)
    metadata = {k: v.value for e in result.get_asset_materialization_events()
                for k, v in e.materialization.metadata.items()}
    [passed] = [e.event_specific_data.passed for e in result.all_events
                if e.event_type_value == "ASSET_CHECK_EVALUATION"
                and e.event_specific_data.check_name == PROMOTION_CHECK]
    return metadata, passed


def model_tables(database: str) -> tuple[pl.DataFrame, pl.DataFrame]:
    """model.metrics and model.subgroup_metrics, without the run that wrote them."""
    with duckdb.connect(database, read_only=True) as conn:
        return tuple(conn.execute(f"select * exclude (mlflow_run_id) from model.{t}").pl().sort(pl.all())
                     for t in ("metrics", "subgroup_metrics"))


def test_a_refused_model_leaves_the_champion_in_use(tmp_path, monkeypatch):
    """A retrain on worse data (training outcomes scrambled, as a linkage fault would) is refused: the local model
    and model.metrics stay the champion's, so the next refresh scores with it instead of retraining again."""
    monkeypatch.setenv("ED_DATA_DIR", str(tmp_path))
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    settings = Settings.from_env()
    database = str(tmp_path / "warehouse.duckdb")
    good, bad = good_and_bad_features()

    def local_metric() -> float:
        with duckdb.connect(database, read_only=True) as conn:
            return conn.execute("select value from model.metrics where metric = 'test_roc_auc'").fetchone()[0]

    first, passed = refresh_model(database, good)
    assert passed and first["model_version"] == "1"
    champion_auc = local_metric()
    failed = []
    worse, passed = refresh_model(database, bad, retrain=True, failed=failed)
    assert not passed and worse["model_version"] == "2" and worse["test_roc_auc"] < champion_auc - 0.005
    # `ed-pipeline refresh` says why, not only which check
    [said] = failed
    assert said.startswith("model/school_readiness_model:promotion_gate (") and "AUC worse than champion" in said
    champion = champion_info(settings.mlflow_tracking_uri)
    assert champion.version == "1"
    assert booster_sha256(load_latest_model(settings).booster) == champion.booster_sha256
    assert local_metric() == champion_auc
    after, passed = refresh_model(database, bad)
    assert passed and after["refresh_kind"] == "scoring_only" and after["model_version"] == "1"


def test_a_refused_model_an_earlier_version_left_as_latest_gives_way_to_the_champion(tmp_path, monkeypatch):
    """Before the gate kept refused models out of latest.pkl, a refusal left the refused model there. The next
    refresh restores the champion from the registry as the local model and scores with it (its band thresholds,
    metrics and subgroup figures), instead of training again on every refresh until a model passes; a retrain
    asked for still trains."""
    from mlflow.tracking import MlflowClient

    monkeypatch.setenv("ED_DATA_DIR", str(tmp_path))
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    settings = Settings.from_env()
    database = str(tmp_path / "warehouse.duckdb")
    good, bad = good_and_bad_features()

    first, passed = refresh_model(database, good)
    assert passed and first["model_version"] == "1"
    champion = load_latest_model(settings)
    champion_tables = model_tables(database)
    assert not refresh_model(database, bad, retrain=True)[1]
    # what an earlier version kept after that refusal: the refused model (version 2) as latest.pkl
    with duckdb.connect(database, read_only=True) as conn:
        refused = train_and_evaluate(read_mart(conn), TrainingConfig())  # the mart as the model step reads it
    client = MlflowClient(settings.mlflow_tracking_uri, registry_uri=settings.mlflow_tracking_uri)
    assert booster_sha256(refused.booster) == client.get_model_version(MODEL_NAME, "2").tags[BOOSTER_TAG]
    (settings.models_dir / "latest.pkl").write_bytes(pickle.dumps(refused))

    after, passed = refresh_model(database, bad)
    assert passed and after["refresh_kind"] == "scoring_only" and after["model_version"] == "1"
    restored = load_latest_model(settings)
    assert booster_sha256(restored.booster) == champion_info(settings.mlflow_tracking_uri).booster_sha256
    assert restored.band_thresholds == champion.band_thresholds
    assert (restored.cohorts.train, restored.cohorts.validation, restored.cohorts.test) == (
        champion.cohorts.train, champion.cohorts.validation, champion.cohorts.test)
    assert score_children(restored, good).equals(score_children(champion, good))
    for table, champions in zip(model_tables(database), champion_tables, strict=True):
        assert table.equals(champions)
    again, _ = refresh_model(database, bad, retrain=True)
    assert again["refresh_kind"] == "trained" and again["retrain_reason"] == "asked for (config retrain)"


def trained_in_a_directory_to_move(tmp_path, monkeypatch):
    """A data directory at <tmp_path>/old/data (ED_DATA_DIR, MLflow's store inside it) whose first refresh trained a
    model on the good features; where it is to move (its parent made), the features, and that refresh's result."""
    old, new = tmp_path / "old" / "data", tmp_path / "srv" / "ed_data"
    old.mkdir(parents=True)
    new.parent.mkdir()
    monkeypatch.setenv("ED_DATA_DIR", str(old))
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    good, bad = good_and_bad_features()
    return old, new, (good, bad), refresh_model(str(old / "warehouse.duckdb"), good)


def test_after_the_data_directory_is_moved_a_retrain_is_gated_against_the_champion_and_scoring_restores_it(
        tmp_path, monkeypatch):
    """`mv data /srv/ed_data`: the store moves with the directory but still names the old one as where the models
    registered before keep their artifacts. They are read from the same place under the moved directory: a
    retrain is compared with the champion (and refused, the champion staying), and a refresh that scores
    restores the champion from the registry and scores as it did; nothing is written at the old path."""
    from mlflow.tracking import MlflowClient

    old, new, (good, bad), (first, passed) = trained_in_a_directory_to_move(tmp_path, monkeypatch)
    assert passed and first["model_version"] == "1"
    champion = load_latest_model(Settings.from_env())

    shutil.move(old, new)
    monkeypatch.setenv("ED_DATA_DIR", str(new))
    settings = Settings.from_env()
    database = str(new / "warehouse.duckdb")
    worse, passed = refresh_model(database, bad, retrain=True)
    assert not passed and worse["model_version"] == "2"
    client = MlflowClient(settings.mlflow_tracking_uri, registry_uri=settings.mlflow_tracking_uri)
    assert "AUC worse than champion" in client.get_model_version(MODEL_NAME, "2").tags["promotion_reasons"]
    assert champion_info(settings.mlflow_tracking_uri).version == "1"

    (settings.models_dir / "latest.pkl").unlink()  # scoring restores the champion from the registry
    after, passed = refresh_model(database, bad)
    assert passed and after["refresh_kind"] == "scoring_only" and after["model_version"] == "1"
    restored = load_latest_model(settings)
    assert booster_sha256(restored.booster) == booster_sha256(champion.booster)
    assert score_children(restored, good).equals(score_children(champion, good))
    assert not old.exists()


def test_a_champion_registered_before_booster_fingerprints_is_restored_once(tmp_path, monkeypatch):
    """A champion registered by an earlier version carries no booster fingerprint (`booster_sha256`), so no local
    model could be recognised as it: the first refresh that scores restores it from the registry and records its
    fingerprint, and the next one scores with the local copy instead of restoring it again."""
    from mlflow.tracking import MlflowClient

    from ed_pipeline.modelling import tracking

    monkeypatch.setenv("ED_DATA_DIR", str(tmp_path))
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    settings = Settings.from_env()
    database = str(tmp_path / "warehouse.duckdb")
    good, _ = good_and_bad_features()
    assert refresh_model(database, good)[1]
    client = MlflowClient(settings.mlflow_tracking_uri, registry_uri=settings.mlflow_tracking_uri)
    client.delete_model_version_tag(MODEL_NAME, "1", BOOSTER_TAG)
    assert champion_info(settings.mlflow_tracking_uri).booster_sha256 is None
    restored = []
    restore = tracking.restore_champion
    monkeypatch.setattr(tracking, "restore_champion", lambda *a, **k: restored.append(1) or restore(*a, **k))

    first, passed = refresh_model(database, good)
    assert passed and first["refresh_kind"] == "scoring_only" and restored == [1]
    assert champion_info(settings.mlflow_tracking_uri).booster_sha256 == booster_sha256(
        load_latest_model(settings).booster)
    second, passed = refresh_model(database, good)
    assert passed and second["refresh_kind"] == "scoring_only" and second["model_version"] == "1"
    assert restored == [1]
