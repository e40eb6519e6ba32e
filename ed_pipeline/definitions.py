"""The Definitions, as one code location or as two.

`defs` is the one location: what `dagster dev -w workspace.yaml` and `ed-pipeline refresh` load. The same assets
also run as two locations, each in a process of its own that is given only its own zone's secrets and files
(`workspace-split.yaml`, `ed_pipeline.locations`, docs/scaling.md):
- `agency_zone_location()`: raw -> validated -> pseudonymised, with the pseudonymisation key and the agency zone,
  and the privacy audit, which needs the agency zone's identifiers (an asset after the outputs there);
- `warehouse_location()`: linked onwards, with the warehouse only: neither the key nor the agency zone.
"""

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
from ed_pipeline.defs.privacy_audit import audit_automation, identifier_audit, no_identifiers_anywhere
from ed_pipeline.defs.pseudonymised import landed_extract, pseudonymised_assets
from ed_pipeline.defs.raw import raw_assets
from ed_pipeline.defs.resources import all_resources, warehouse_resources
from ed_pipeline.defs.run_worker import in_process_recording_worker
from ed_pipeline.defs.validated import validated_assets
from ed_pipeline.settings import Settings, linkage_backend

AGENCY_ZONE_ASSETS = [*raw_assets, *validated_assets, *pseudonymised_assets, landed_extract]
WAREHOUSE_ASSETS = [*linked_assets, *feature_assets, *model_assets, *output_assets]

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


def _location(**parts) -> dg.Definitions:
    # DuckDB allows one writer per file: steps of a run execute one after another in one process, which records
    # itself in the run's tags first, so that run monitoring can tell when it has died (defs/run_worker.py).
    return dg.Definitions(executor=in_process_recording_worker, **parts)


def one_location() -> dg.Definitions:
    """Every asset in one location, the privacy audit a blocking check on the community risk table."""
    return _location(
        assets=[*AGENCY_ZONE_ASSETS, *WAREHOUSE_ASSETS],
        asset_checks=[no_identifiers_anywhere],
        jobs=[ingest_job, analyse_job],
        schedules=[build_monthly_schedule(ingest_job)],
        sensors=[build_landing_sensor(ingest_job), record_run_failures, record_analyses, downstream_automation],
        resources={**all_resources(Settings.from_env()), "dbt": dbt_resource},
    )


def agency_zone_location() -> dg.Definitions:
    """Ingestion and the privacy audit: the only location given the key and the agency zone."""
    return _location(
        assets=[*AGENCY_ZONE_ASSETS, identifier_audit],
        jobs=[ingest_job],
        schedules=[build_monthly_schedule(ingest_job)],
        sensors=[build_landing_sensor(ingest_job), record_run_failures, audit_automation],
        resources=all_resources(Settings.from_env()),
    )


def warehouse_location() -> dg.Definitions:
    """Linking onwards, over the pseudonymised tables the agency zone's location writes: the warehouse only.
    (`record_analyses` is the one location's: it serves `ed-pipeline refresh`, which runs that location.)"""
    return _location(
        assets=WAREHOUSE_ASSETS,
        jobs=[analyse_job],
        sensors=[record_run_failures, downstream_automation],
        resources={**warehouse_resources(Settings.from_env()), "dbt": dbt_resource},
    )


defs = one_location()
