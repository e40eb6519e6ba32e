"""School-readiness risk: LightGBM on `features.child_features`, calibration, evaluation, MLflow tracking.

Dagster-free (DESIGN.md); `ed_pipeline/defs/model.py` wires it. The API:

    result = train_and_evaluate(features, TrainingConfig())      # TrainedModel
    scored = score_children(result, features)                    # person_id, prediction_date, risk, band, top_factors
    run_id = log_refresh_run(result, tracking_uri, artifact_root, tags, params, extra_artifacts)
    log_reference_metrics(run_id, {"truelink_test_roc_auc": ...}, tracking_uri)
    decision = promote_if_better(tracking_uri, run_id, result)  # moves alias 'champion' only if the gate passes
"""

from ed_pipeline.modelling.calibration import Calibrator
from ed_pipeline.modelling.features import BASELINE_FEATURES, FEATURES, SUBGROUPS
from ed_pipeline.modelling.tracking import (
    CHAMPION,
    EXPERIMENT,
    MODEL_NAME,
    Decision,
    Gate,
    load_model,
    log_reference_metrics,
    log_refresh_run,
    model_input,
    promote_if_better,
    promotion_decision,
)
from ed_pipeline.modelling.train import TrainedModel, TrainingConfig, score_children, train_and_evaluate

__all__ = [
    "BASELINE_FEATURES", "CHAMPION", "EXPERIMENT", "FEATURES", "MODEL_NAME", "SUBGROUPS", "Calibrator", "Decision",
    "Gate", "TrainedModel", "TrainingConfig", "load_model", "log_reference_metrics", "log_refresh_run",
    "model_input", "promote_if_better", "promotion_decision", "score_children", "train_and_evaluate",
]
