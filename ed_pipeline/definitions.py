"""The one Definitions object: what `dagster dev -w workspace.yaml` and `ed-pipeline refresh` both load."""

import dagster as dg

from ed_pipeline.defs.automation import (
    build_landing_sensor,
    build_monthly_schedule,
    downstream_automation,
    record_analyses,
    record_run_failures,
)
from ed_pipeline.defs.features import dbt_resource, feature_assets
from ed_pipeline.defs.linked import linked_assets
from ed_pipeline.defs.model import model_assets
from ed_pipeline.defs.outputs import output_assets
from ed_pipeline.defs.privacy_audit import no_identifiers_anywhere
from ed_pipeline.defs.pseudonymised import landed_extract, pseudonymised_assets
from ed_pipeline.defs.raw import raw_assets
from ed_pipeline.defs.resources import all_resources
from ed_pipeline.defs.run_worker import in_process_recording_worker
from ed_pipeline.defs.validated import validated_assets
from ed_pipeline.settings import Settings, linkage_backend

ingest_job = dg.define_asset_job(
    "ingest",
    selection=dg.AssetSelection.groups("raw", "validated", "pseudonymised"),
    description="Load, validate and pseudonymise agency extracts for the selected months.",
)

analyse_job = dg.define_asset_job(
    "analyse",
    selection=dg.AssetSelection.groups("linked", "features", "model", "outputs"),
    description="The whole-history refresh after ingestion: link people and households (incrementally), build "
    "the features, train and track the model, score children and communities.",
)

linkage_backend()  # an unknown ED_LINKAGE_BACKEND fails here, as the code loads, not at the next full link

defs = dg.Definitions(
    assets=[*raw_assets, *validated_assets, *pseudonymised_assets, landed_extract, *linked_assets, *feature_assets,
            *model_assets, *output_assets],
    asset_checks=[no_identifiers_anywhere],
    jobs=[ingest_job, analyse_job],
    schedules=[build_monthly_schedule(ingest_job)],
    sensors=[build_landing_sensor(ingest_job), record_run_failures, record_analyses, downstream_automation],
    resources={**all_resources(Settings.from_env()), "dbt": dbt_resource},
    # DuckDB allows one writer per file: steps of a run execute one after another in one process, which records
    # itself in the run's tags first, so that run monitoring can tell when it has died (defs/run_worker.py).
    executor=in_process_recording_worker,
)
