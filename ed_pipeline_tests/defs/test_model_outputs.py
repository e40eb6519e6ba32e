"""After a refresh of a tiny world: the model tracked in MLflow, and the outputs written safely."""

from __future__ import annotations

import duckdb
from mlflow.tracking import MlflowClient

from ed_pipeline.modelling import CHAMPION, EXPERIMENT, MODEL_NAME
from ed_pipeline.settings import Settings


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
    assert child.height > 0 and child["risk"].is_between(0, 1).all()
    assert set(child["band"]) <= {"high", "medium", "low"}
    assert assessed == 0, "child_risk lists children not yet assessed only"
    published = community.filter(~community["children_suppressed"])["children"]
    assert ((published % 5 == 0) & ((published == 0) | (published >= 5))).all(), "disclosure control"
    assert (settings.outputs_dir / "ward_ranking.png").exists()
