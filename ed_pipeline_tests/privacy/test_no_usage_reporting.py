"""No tool the pipeline runs reports its use to its maker (ed_pipeline/__init__.py)."""

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]

# MLflow, Dagster and GX each switch their reporting off by themselves when one of these is set (CI, pytest):
# the child runs without them, as `make run` and the Dagster code server do.
TEST_OR_CI = ("PYTEST_CURRENT_TEST", "PYTEST_XDIST_WORKER", "CI", "GITHUB_ACTIONS", "MLFLOW_DISABLE_TELEMETRY",
              "DO_NOT_TRACK", "GX_ANALYTICS_ENABLED")


def _outside_tests() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k not in TEST_OR_CI}


def test_mlflow_has_no_usage_reporting_client_once_the_pipeline_is_imported() -> None:
    probe = ("import ed_pipeline.modelling.tracking, mlflow\n"
             "from mlflow.telemetry.client import get_telemetry_client\n"
             "print('client', get_telemetry_client())\n")
    out = subprocess.run([sys.executable, "-c", probe], env=_outside_tests(), cwd=REPO,
                         capture_output=True, text=True, check=True).stdout
    assert out.strip().splitlines()[-1] == "client None"


def test_a_deployment_that_sets_the_variable_itself_keeps_its_value() -> None:
    probe = "import ed_pipeline, os; print(os.environ['MLFLOW_DISABLE_TELEMETRY'])"
    out = subprocess.run([sys.executable, "-c", probe], env={**_outside_tests(), "MLFLOW_DISABLE_TELEMETRY": "1"},
                         cwd=REPO, capture_output=True, text=True, check=True).stdout
    assert out.strip() == "1"


def test_the_mlflow_ui_of_make_mlflow_reports_nothing_either() -> None:
    recipe = subprocess.run(["make", "-n", "mlflow"], cwd=REPO, capture_output=True, text=True, check=True).stdout
    ui = [line for line in recipe.splitlines() if "mlflow ui" in line]
    assert ui and all("MLFLOW_DISABLE_TELEMETRY=true " in line for line in ui)


def test_the_other_tools_reporting_is_off_in_their_own_configuration() -> None:
    from ed_pipeline.quality import gx_runtime
    from ed_pipeline.refresh import DAGSTER_YAML

    assert "telemetry:\n  enabled: false" in DAGSTER_YAML
    assert "send_anonymous_usage_stats: false" in (REPO / "dbt_project" / "dbt_project.yml").read_text()
    assert gx_runtime.context().get_config().analytics_enabled is False
