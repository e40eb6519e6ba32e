"""The hand-made warehouse, built once per session through Dagster (the dbt assets of the one Definitions)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import dagster as dg
import pytest

from ed_pipeline_tests.conftest import TEST_KEY
from ed_pipeline_tests.features.warehouse import base_records, write_warehouse

DBT_SCHEMAS = ("staging", "intermediate", "features")


def dbt_keys(defs: dg.Definitions) -> set[dg.AssetKey]:
    return {k for k in defs.resolve_asset_graph().get_all_asset_keys() if k.path[0] in DBT_SCHEMAS}


@dataclass
class Built:
    warehouse: Path
    result: dg.ExecuteInProcessResult
    asset_keys: set[dg.AssetKey]
    instance: dg.DagsterInstance  # the run's (ephemeral) instance: its event log


@pytest.fixture(scope="session")
def built(tmp_path_factory) -> Built:
    """Materialise every dbt asset (models and their checks) over the base warehouse, in process."""
    from ed_pipeline.definitions import defs
    from ed_pipeline.defs.features import dbt_project, prepare_manifest

    data_dir = tmp_path_factory.mktemp("features") / "data"
    data_dir.mkdir()
    write_warehouse(data_dir / "warehouse.duckdb", base_records())
    keys = dbt_keys(defs)
    instance = dg.DagsterInstance.ephemeral()
    with pytest.MonkeyPatch.context() as env:
        # relative, like `make run`'s default `data/`: the import-time parse and the build must still agree on the
        # profile's warehouse path for dbt to parse partially
        env.setenv("ED_DATA_DIR", os.path.relpath(data_dir))
        env.delenv("ED_WAREHOUSE_DB", raising=False)
        env.setenv("ED_PSEUDO_KEY", TEST_KEY)
        # parsed for this warehouse, as on the first import in a data directory: the build then parses partially
        prepare_manifest(dbt_project, force=True)
        result = defs.get_implicit_global_asset_job_def().execute_in_process(
            instance=instance,
            asset_selection=sorted(keys, key=lambda k: k.to_user_string()),
            run_config={"loggers": {"console": {"config": {"log_level": "WARNING"}}}},
            raise_on_error=False,
        )
    return Built(data_dir / "warehouse.duckdb", result, keys, instance)
