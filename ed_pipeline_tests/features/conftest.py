"""The hand-made warehouse, built once per session through Dagster (the dbt assets of the one Definitions)."""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import dagster as dg
import pytest

from ed_pipeline_tests.conftest import TEST_KEY
from ed_pipeline_tests.features.warehouse import BORN, HOUSEHOLDS, Record, base_records, dbt_build, write_warehouse

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
        # parsed for this warehouse, as after a data directory's first build: this build then parses partially
        prepare_manifest(dbt_project, force=True)
        result = defs.resolve_implicit_global_asset_job_def().execute_in_process(
            instance=instance,
            asset_selection=sorted(keys, key=lambda k: k.to_user_string()),
            run_config={"loggers": {"console": {"config": {"log_level": "WARNING"}}}},
            raise_on_error=False,
        )
    return Built(data_dir / "warehouse.duckdb", result, keys, instance)


@pytest.fixture(scope="session")
def dbt_built(tmp_path_factory) -> Callable[[Path, list[Record]], None]:
    """`dbt_built(warehouse, records)`: at `warehouse`, the warehouse of `records` (`write_warehouse`) after a plain
    `dbt build` (`dbt_build`). Several tests start from the same records: each set is built once per test process,
    then copied. Under its own file name, which names the database that dbt's views refer to."""
    made: dict[str, Path] = {}

    def build(warehouse: Path, records: list[Record]) -> None:
        key = repr((warehouse.name, records, BORN, HOUSEHOLDS))  # all that write_warehouse reads (tests patch BORN)
        if key not in made:
            path = tmp_path_factory.mktemp("dbt_built") / warehouse.name
            write_warehouse(path, records)
            result = dbt_build(path, path.parent)
            assert result.returncode == 0, result.stdout[-4000:]
            made[key] = path
        shutil.copyfile(made[key], warehouse)

    return build
