"""ed_pipeline: Essex agencies' extracts -> pseudonymised, linked cohort -> school-readiness risk (README.md).

No tool the pipeline runs reports its use to its maker: a county's data system makes no outside calls. dbt's
and Great Expectations' are off in their own configuration (dbt_project.yml, gx_runtime's context) and
Dagster's in the instance's dagster.yaml (refresh.DAGSTER_YAML); MLflow 3 has only an environment variable,
read when it is imported, so it is set here, before any module of ours can import it. A deployment that sets
it itself keeps its own value.
"""

import os

NO_USAGE_REPORTING = {"MLFLOW_DISABLE_TELEMETRY": "true", "GX_ANALYTICS_ENABLED": "False"}

# MLflow's progress bars for the artifacts it reads back: a refresh's output and Dagster's logs are not a terminal
QUIET = {"MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false"}

for _name, _value in {**NO_USAGE_REPORTING, **QUIET}.items():
    os.environ.setdefault(_name, _value)
