"""The feature mart as its readers see it: `features.child_features`' documented columns, nothing else.

Training, scoring and the evaluation read the mart's columns that its dbt YAML documents
(`dbt_project/models/marts/child_features.yml`, taken from dbt's manifest), not `select *`: a column the SQL adds
without documenting it (an incremental model's `_row_hash`, a debugging column) never reaches the model.
Dagster-free: the evaluation and the Dagster assets share it.
"""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path

import duckdb
import polars as pl

from ed_pipeline.settings import DBT_PROJECT_DIR, dbt_target_path

MART = "child_features"
MART_ORDER = ("person_id", "prediction_date")  # a key of the mart
MANIFEST = DBT_PROJECT_DIR / dbt_target_path() / "manifest.json"


@cache
def documented_columns(model: str = MART, manifest: Path = MANIFEST) -> tuple[str, ...]:
    """The columns dbt model `model`'s YAML documents, in their order."""
    if not manifest.exists():
        raise FileNotFoundError(f"no dbt manifest at {manifest}: run `dbt parse` in {DBT_PROJECT_DIR} (loading the "
                                "Dagster definitions does it)")
    nodes = json.loads(manifest.read_text())["nodes"].values()
    node = next((n for n in nodes if n["resource_type"] == "model" and n["name"] == model), None)
    if node is None or not node["columns"]:
        raise ValueError(f"dbt model {model} documents no columns in {manifest}")
    return tuple(node["columns"])


def read_mart(conn: duckdb.DuckDBPyConnection, where: str | None = None) -> pl.DataFrame:
    """The mart's documented columns, of the rows `where` selects, in the mart's order (child, prediction date):
    training cross-fits by row position and LightGBM's bagging follows row order, and a table's rows come back in
    no set order once it has been written otherwise than dbt writes it now."""
    columns = ", ".join(f'"{c}"' for c in documented_columns())
    sql = f"select {columns} from features.{MART}"
    sql += f" where {where}" if where else ""
    return conn.execute(f"{sql} order by {', '.join(MART_ORDER)}").pl()
