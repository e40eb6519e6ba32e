"""model.*: the LightGBM school-readiness model, trained on features.child_features and tracked in MLflow.

Each materialisation is one MLflow run (experiment `school-readiness`) tagged with the Dagster run id, the
months it covers, the git commit and a hash of its input table, and `refresh_kind`:

- `trained`: a new model, registered as `school_readiness_risk`. The blocking `promotion_gate` check moves
  the `champion` alias only when it is not worse than the champion on the same test cohort: a refused model
  refreshes no output. A refresh trains when the data change in a way that matters (a new assessed cohort
  arrived, or the cohorts the champion was trained on changed), when there is no champion, or when asked
  (`retrain: true` in the run config); see `modelling.retrain_reason`.
- `scoring_only`: otherwise the refresh scores with the registered champion (its model object, checked
  against the registry by its booster's fingerprint; one that is not the champion's, or none, gives way to
  the champion restored from the registry) and logs a run of its own linking the champion's run
  (`champion_run_id`); nothing is registered, and the gate passes with nothing to promote (its metadata
  says so).
"""

import pickle
import subprocess
from pathlib import Path
from typing import TYPE_CHECKING

import dagster as dg
import duckdb
import polars as pl
from dagster_duckdb import DuckDBResource

from ed_pipeline.defs.automation import follows_upstream
from ed_pipeline.defs.features import MART_KEY
from ed_pipeline.defs.metadata import column_schema, markdown_table, preview, table_metadata
from ed_pipeline.defs.partitions import transient_retry
from ed_pipeline.mart import read_mart
from ed_pipeline.settings import Settings

# ed_pipeline.modelling is imported where it is used: sklearn, LightGBM and MLflow take some 3 s to import, which
# loading the definitions (every refresh's ingest process, the UI's code server, each run's worker) then skips
if TYPE_CHECKING:
    from ed_pipeline.modelling import ChampionInfo, TrainedModel

MODEL_KEY = dg.AssetKey(["model", "school_readiness_model"])
METRICS_KEY = dg.AssetKey(["model", "metrics"])
PROMOTION_CHECK = "promotion_gate"
MODEL_IO = "model_io_manager"
SCORING_REASON = ("no new model this refresh: the data bring no new assessed cohort (test cohort {test}, as the "
                  "champion's) and no retrain was asked for")
NOTHING_TO_PROMOTE = "nothing to promote: {why}; the champion (version {version}) stays"
HEADLINE = ("test_roc_auc", "test_pr_auc", "test_brier", "test_ece", "baseline_test_roc_auc",
            "test_precision_top10", "test_recall_top10")


class ModelConfig(dg.Config):
    test_cohort: int | None = None  # default: the latest assessed cohort
    validation_cohort: int | None = None  # default: the one before it
    retrain: bool = False  # train a new model even when the champion could score this refresh


def git_commit() -> str:
    try:
        return subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=10,
                              cwd=Path(__file__).parent).stdout.strip() or "unknown"
    except OSError:
        return "unknown"


def input_fingerprint(conn: duckdb.DuckDBPyConnection, table: str) -> str:
    """An order-independent hash of a table's content: which inputs a run was trained on."""
    n, h = conn.execute(f"select count(*), coalesce(sum(hash(t)), 0) from {table} t").fetchone()
    return f"{n}:{int(h) & 0xFFFFFFFFFFFFFFFF:016x}"


def months_covered(conn: duckdb.DuckDBPyConnection) -> str:
    tables = [t for (t,) in conn.execute(
        "select table_name from information_schema.tables where table_schema = 'pseudonymised'").fetchall()]
    union = " union all ".join(f"select extract_month from pseudonymised.{t}" for t in tables)
    first, last = conn.execute(f"select min(extract_month), max(extract_month) from ({union})").fetchone()
    return f"{first}..{last}"


@dg.multi_asset(
    name="train_school_readiness_model",
    specs=[
        dg.AssetSpec(MODEL_KEY, deps=[MART_KEY], group_name="model", kinds={"lightgbm", "mlflow"},
                     owners=["team:data-science"], automation_condition=follows_upstream(),
                     description="Calibrated LightGBM risk of not reaching GLD, trained on earlier cohorts and "
                     "tested on the latest; logged and registered in MLflow."),
        dg.AssetSpec(METRICS_KEY, deps=[MART_KEY], group_name="model", kinds={"duckdb"},
                     owners=["team:data-science"], automation_condition=follows_upstream(),
                     description="Test-cohort metrics of this refresh's model and baseline, overall and by "
                     "subgroup with group sizes (no child-level rows)."),
    ],
    check_specs=[dg.AssetCheckSpec(
        PROMOTION_CHECK, asset=MODEL_KEY, blocking=True,
        description="Not worse than the champion on the same test cohort by more than 0.005 AUC, calibration "
        "within bound; only then does the `champion` alias move and the outputs refresh.")],
    retry_policy=transient_retry,
    can_subset=False,
)
def train_school_readiness_model(context: dg.AssetExecutionContext, config: ModelConfig, warehouse: DuckDBResource):
    from ed_pipeline.modelling import (
        TrainingConfig,
        champion_info,
        champion_model,
        choose_cohorts,
        log_refresh_run,
        promote_if_better,
        retrain_reason,
        train_and_evaluate,
    )

    settings = Settings.from_env()
    with warehouse.get_connection() as conn:
        features = read_mart(conn)
        tags = {"dagster_run_id": context.run.run_id, "months": months_covered(conn), "git_commit": git_commit(),
                "input_hash": input_fingerprint(conn, "features.child_features")}
    training = TrainingConfig(test_cohort=config.test_cohort, validation_cohort=config.validation_cohort)
    champion = champion_info(settings.mlflow_tracking_uri)
    reason = retrain_reason(choose_cohorts(features, training), champion, config.retrain)
    linkage_artifacts = sorted(p for p in settings.linkage_dir.glob("*") if p.is_file())
    if reason is None:
        # the champion's object: the local one, or (when that is another model, or none) restored from the registry
        result = champion_model(settings.mlflow_tracking_uri, champion, _load_local(settings), features, training,
                                settings.mlflow_artifact_root)
        yield from _score_with_champion(context, settings, champion, result, tags, linkage_artifacts, warehouse)
        return
    result = train_and_evaluate(features, training)
    run_id = log_refresh_run(result, settings.mlflow_tracking_uri, settings.mlflow_artifact_root, tags=tags,
                             params={"retrain_reason": reason}, extra_artifacts=linkage_artifacts)
    decision = promote_if_better(settings.mlflow_tracking_uri, run_id, result,
                                 artifact_root=settings.mlflow_artifact_root)
    result.extra["mlflow_run_id"] = run_id
    result.extra["trained_run_id"] = run_id
    if decision.passed:
        _save(settings, result)
        _write_metrics(warehouse, result, run_id)
    # a refused model stays a record in MLflow: the champion stays the local model (the outputs score with it,
    # and the next refresh does not retrain for want of it) and its figures stay in model.metrics
    verdict = "passed" if decision.passed else "failed: the champion stays in use"
    context.log.info(f"model trained ({reason}): {_headline(result)}; MLflow run {run_id}; promotion {verdict}")
    yield from _results(result, run_id, settings, {"refresh_kind": "trained", "retrain_reason": reason,
                                                   "model_version": str(decision.candidate_version)})
    yield dg.AssetCheckResult(
        check_name=PROMOTION_CHECK, asset_key=MODEL_KEY, passed=decision.passed,
        description=None if decision.passed else "; ".join(decision.reasons),  # why, for `ed-pipeline refresh`
        metadata={"reasons": "; ".join(decision.reasons), "candidate_auc": decision.candidate_auc,
                  "champion_auc": decision.champion_auc, "promoted": bool(decision.promoted)})


def _score_with_champion(context: dg.AssetExecutionContext, settings: Settings, champion: "ChampionInfo",
                         result: "TrainedModel", tags: dict, linkage_artifacts: list[Path],
                         warehouse: DuckDBResource):
    """No new model: the champion (`result`) scores this refresh (the outputs read it from `latest.pkl`), one
    MLflow run records the refresh, and the gate has nothing to decide."""
    from ed_pipeline.modelling import log_scoring_run

    why = SCORING_REASON.format(test=result.cohorts.test)
    run_id = log_scoring_run(result, champion, settings.mlflow_tracking_uri, settings.mlflow_artifact_root,
                             tags=tags, params={"scoring_reason": why}, extra_artifacts=linkage_artifacts)
    result.extra["mlflow_run_id"] = run_id
    _save(settings, result)
    _write_metrics(warehouse, result, run_id)
    context.log.info(f"scored with the champion (version {champion.version}, run {champion.run_id}): {why}; "
                     f"MLflow run {run_id}")
    yield from _results(result, run_id, settings, {
        "refresh_kind": "scoring_only", "scoring_reason": why, "model_version": champion.version,
        "champion_run_id": champion.run_id})
    yield dg.AssetCheckResult(
        check_name=PROMOTION_CHECK, asset_key=MODEL_KEY, passed=True,
        metadata={"reasons": NOTHING_TO_PROMOTE.format(why=why, version=champion.version),
                  "candidate_auc": None, "champion_auc": float(result.metrics["test_roc_auc"]), "promoted": False,
                  "champion_version": champion.version, "champion_run_id": champion.run_id})


def _headline(result: "TrainedModel") -> dict[str, float]:
    return {k: round(float(result.metrics[k]), 4) for k in HEADLINE if k in result.metrics}


def _metrics_frame(result: "TrainedModel") -> pl.DataFrame:
    return pl.DataFrame({"metric": list(result.metrics), "value": [float(v) for v in result.metrics.values()]})


def _write_metrics(warehouse: DuckDBResource, result: "TrainedModel", run_id: str) -> None:
    metrics = _metrics_frame(result)  # noqa: F841 (read by DuckDB by name)
    with warehouse.get_connection() as conn:
        conn.execute("create schema if not exists model")
        conn.execute("create or replace table model.metrics as select ? as mlflow_run_id, * from metrics", [run_id])
        subgroups = result.subgroups  # noqa: F841 (read by DuckDB by name)
        conn.execute("create or replace table model.subgroup_metrics as select ? as mlflow_run_id, * from subgroups",
                     [run_id])


def _results(result: "TrainedModel", run_id: str, settings: Settings, kind: dict):
    headline = _headline(result)
    metrics = _metrics_frame(result)
    yield dg.MaterializeResult(asset_key=MODEL_KEY, metadata={
        **headline, "mlflow_run_id": run_id, **kind,
        "cohorts": f"train {list(result.cohorts.train)}, validation {result.cohorts.validation}, "
                   f"test {result.cohorts.test}",
        "mlflow_ui": "mlflow ui --backend-store-uri " + settings.mlflow_tracking_uri,
        "test_metrics": dg.MetadataValue.md(markdown_table(pl.DataFrame(
            {"metric": list(headline), "value": list(headline.values())}))),
    })
    yield dg.MaterializeResult(asset_key=METRICS_KEY, metadata={
        **table_metadata(metrics), "subgroup_rows": result.subgroups.height,
        "preview": preview(metrics.filter(pl.col("metric").is_in(list(HEADLINE)))),
        "subgroup_columns": column_schema(result.subgroups.schema)})


def _save(settings: Settings, result: "TrainedModel") -> None:
    settings.models_dir.mkdir(parents=True, exist_ok=True)
    with (settings.models_dir / "latest.pkl").open("wb") as f:
        pickle.dump(result, f)


def _load_local(settings: Settings) -> "TrainedModel | None":
    """The model object the last refresh left, or None when there is none (or it cannot be read)."""
    try:
        return load_latest_model(settings)
    except (FileNotFoundError, pickle.UnpicklingError, EOFError, AttributeError, ModuleNotFoundError):
        return None


def load_latest_model(settings: Settings) -> "TrainedModel":
    """The model the last refresh trained (it holds pseudonymous ids of its test cohort: data/ stays local)."""
    path = settings.models_dir / "latest.pkl"
    if not path.exists():
        raise FileNotFoundError(f"no trained model at {path}: materialise model/school_readiness_model first")
    with path.open("rb") as f:
        return pickle.load(f)


model_assets = [train_school_readiness_model]
