"""The promotion gate's refusal: a worse model is a record in MLflow, never the model the outputs score with."""

from __future__ import annotations

import dagster as dg
import duckdb
import polars as pl
from dagster_duckdb import DuckDBResource

from ed_pipeline.defs.model import PROMOTION_CHECK, load_latest_model, train_school_readiness_model
from ed_pipeline.modelling import booster_sha256, champion_info
from ed_pipeline.modelling.synthetic import synthetic_features
from ed_pipeline.settings import Settings


def test_a_refused_model_leaves_the_champion_in_use(tmp_path, monkeypatch):
    """A retrain on worse data (training outcomes scrambled, as a linkage fault would) is refused: the local model
    and model.metrics stay the champion's, so the next refresh scores with it instead of retraining again."""
    monkeypatch.setenv("ED_DATA_DIR", str(tmp_path))
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    settings = Settings.from_env()
    database = str(tmp_path / "warehouse.duckdb")
    good = synthetic_features(8400, seed=0, unassessed_cohorts=(2019,)).drop("p_not_gld")
    bad = good.with_columns(pl.when(pl.col("assessment_year") < 2018).then(pl.col("not_gld").shuffle(seed=5))
                            .otherwise(pl.col("not_gld")).alias("not_gld"))

    def refresh(frame: pl.DataFrame, retrain: bool = False) -> tuple[dict, bool]:
        with duckdb.connect(database) as conn:
            conn.execute("create schema if not exists features; create schema if not exists pseudonymised")
            conn.execute("create or replace table pseudonymised.x as select '2018-07' as extract_month")
            conn.execute("create or replace table features.child_features as select * from frame order by person_id")
        result = dg.materialize(
            [train_school_readiness_model], resources={"warehouse": DuckDBResource(database=database)},
            run_config={"ops": {"train_school_readiness_model": {"config": {"retrain": retrain}}}},
            raise_on_error=False)
        metadata = {k: v.value for e in result.get_asset_materialization_events()
                    for k, v in e.materialization.metadata.items()}
        [passed] = [e.event_specific_data.passed for e in result.all_events
                    if e.event_type_value == "ASSET_CHECK_EVALUATION"
                    and e.event_specific_data.check_name == PROMOTION_CHECK]
        return metadata, passed

    def local_metric() -> float:
        with duckdb.connect(database, read_only=True) as conn:
            return conn.execute("select value from model.metrics where metric = 'test_roc_auc'").fetchone()[0]

    first, passed = refresh(good)
    assert passed and first["model_version"] == "1"
    champion_auc = local_metric()
    worse, passed = refresh(bad, retrain=True)
    assert not passed and worse["model_version"] == "2" and worse["test_roc_auc"] < champion_auc - 0.005
    champion = champion_info(settings.mlflow_tracking_uri)
    assert champion.version == "1"
    assert booster_sha256(load_latest_model(settings).booster) == champion.booster_sha256
    assert local_metric() == champion_auc
    after, passed = refresh(bad)
    assert passed and after["refresh_kind"] == "scoring_only" and after["model_version"] == "1"
