"""The whole-system privacy audit: no agency-zone identifier anywhere outside the agency zone.

Each pseudonymised partition is already scanned against its own records; this
check, run on the last output, scans every table of warehouse.duckdb, everything
Dagster recorded (event metadata, check results, log messages of recent runs),
and MLflow's params, tags and artifacts, against every identifier held in the
agency zone's validated tables.
"""

from pathlib import Path

import dagster as dg
from dagster_duckdb import DuckDBResource
from mlflow.tracking import MlflowClient

from ed_pipeline.defs.outputs import COMMUNITY_RISK_KEY
from ed_pipeline.privacy import identifiers_from_duckdb, scan_duckdb, scan_files, scan_texts
from ed_pipeline.settings import Settings

RECENT_RUNS = 100
# Files MLflow writes beside every logged model (MLmodel) to rebuild its Python environment: package names and
# versions from the environment, never data, and a package's name can coincide with somebody's ("java", "rich").
MODEL_ENVIRONMENT_FILES = frozenset({"conda.yaml", "python_env.yaml", "requirements.txt", "pyproject.toml", "uv.lock"})


def is_model_environment_file(path: Path) -> bool:
    return path.name in MODEL_ENVIRONMENT_FILES and (path.parent / "MLmodel").is_file()


def dagster_texts(instance: dg.DagsterInstance, runs: int = RECENT_RUNS) -> list[tuple[str, str]]:
    """(location, text) for every event of the most recent runs: metadata, check results, log messages."""
    texts = []
    for run in instance.get_runs(limit=runs):
        for entry in instance.all_logs(run.run_id):
            event = entry.dagster_event
            payload = repr(event.event_specific_data) if event is not None else ""
            texts.append((f"dagster run {run.run_id[:8]} {entry.step_key or ''}", f"{entry.user_message}\n{payload}"))
    return texts


def mlflow_texts(tracking_uri: str) -> list[tuple[str, str]]:
    """(location, text) for the params and tags of every MLflow run and registered model version."""
    client = MlflowClient(tracking_uri)
    texts = []
    for experiment in client.search_experiments():
        for run in client.search_runs([experiment.experiment_id], max_results=1000):
            texts += [(f"mlflow run {run.info.run_id[:8]} param {k}", v) for k, v in run.data.params.items()]
            texts += [(f"mlflow run {run.info.run_id[:8]} tag {k}", v) for k, v in run.data.tags.items()]
    for version in client.search_model_versions():
        texts += [(f"mlflow model {version.name} v{version.version} tag {k}", v) for k, v in version.tags.items()]
    return texts


@dg.asset_check(
    asset=COMMUNITY_RISK_KEY,
    name="no_identifiers_anywhere",
    blocking=True,
    description="No name, date of birth, NHS number, UPN, postcode, address or UPRN of the agency zone appears "
    "in any table of warehouse.duckdb, in Dagster's event metadata and logs, or in MLflow's params, tags and "
    "artifacts.",
)
def no_identifiers_anywhere(context: dg.AssetCheckExecutionContext, warehouse: DuckDBResource,
                            agency_zone: DuckDBResource) -> dg.AssetCheckResult:
    with agency_zone.get_connection() as conn:
        identifiers = identifiers_from_duckdb(conn)
    with warehouse.get_connection() as conn:
        leaks = scan_duckdb(conn, identifiers)
    texts = dagster_texts(context.instance)
    settings = Settings.from_env()
    tracked = mlflow_texts(settings.mlflow_tracking_uri)
    leaks += scan_texts(texts + tracked, identifiers)
    artifacts = [p for p in settings.mlflow_artifact_root.rglob("*") if p.is_file()
                 and not is_model_environment_file(p)]
    leaks += scan_files(artifacts, identifiers)
    return dg.AssetCheckResult(
        passed=not leaks,
        metadata={
            "dagster_events_scanned": len(texts),
            "mlflow_texts_scanned": len(tracked),
            "mlflow_artifacts_scanned": len(artifacts),
            "leaks": dg.MetadataValue.md("\n".join(f"- {leak}" for leak in leaks) or "none"),
        },
    )
