"""School-readiness risk: LightGBM on `features.child_features`, calibration, evaluation, MLflow tracking.

Dagster-free (DESIGN.md); `ed_pipeline/defs/model.py` wires it. The API:

    result = train_and_evaluate(features, TrainingConfig())      # TrainedModel
    scored = score_children(result, features)                    # person_id, prediction_date, risk, band, top_factors
    run_id = log_refresh_run(result, tracking_uri, artifact_root, tags, params, extra_artifacts)
    log_reference_metrics(run_id, {"truelink_test_roc_auc": ...}, tracking_uri)
    decision = promote_if_better(tracking_uri, run_id, result, artifact_root=artifact_root)  # the gate

    reason = retrain_reason(choose_cohorts(features, config), champion_info(tracking_uri), retrain)
    champion_object = champion_model(tracking_uri, champion, local_model, features, config, artifact_root)  # no reason
    run_id = log_scoring_run(champion_object, champion, tracking_uri, artifact_root, tags)
"""

from ed_pipeline.modelling.calibration import Calibrator
from ed_pipeline.modelling.features import BASELINE_FEATURES, FEATURES, SUBGROUPS
from ed_pipeline.modelling.tracking import (
    CHAMPION,
    CHAMPION_RUN_TAG,
    EXPERIMENT,
    MODEL_NAME,
    REFRESH_KIND_TAG,
    SCORING_ONLY,
    TRAINED,
    ChampionInfo,
    Decision,
    Gate,
    booster_sha256,
    champion_info,
    champion_model,
    load_model,
    log_reference_metrics,
    log_refresh_run,
    log_scoring_run,
    model_input,
    promote_if_better,
    promotion_decision,
    retrain_reason,
)
from ed_pipeline.modelling.train import (
    Cohorts,
    TrainedModel,
    TrainingConfig,
    choose_cohorts,
    score_children,
    train_and_evaluate,
)

__all__ = [
    "BASELINE_FEATURES", "CHAMPION", "CHAMPION_RUN_TAG", "EXPERIMENT", "FEATURES", "MODEL_NAME", "REFRESH_KIND_TAG",
    "SCORING_ONLY", "SUBGROUPS", "TRAINED", "Calibrator", "ChampionInfo", "Cohorts", "Decision", "Gate",
    "TrainedModel", "TrainingConfig", "booster_sha256", "champion_info", "champion_model", "choose_cohorts",
    "load_model", "log_reference_metrics", "log_refresh_run", "log_scoring_run", "model_input", "promote_if_better",
    "promotion_decision", "retrain_reason", "score_children", "train_and_evaluate",
]
