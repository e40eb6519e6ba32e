"""The zone IO manager replaces a whole (unpartitioned) table, so a changed column type follows the code."""

import dagster as dg
import duckdb
import polars as pl

from ed_pipeline.defs.resources import ZoneIOManager


def test_an_unpartitioned_table_is_replaced_whole_with_its_new_types(tmp_path):
    database = tmp_path / "warehouse.duckdb"
    io_manager = ZoneIOManager(database=str(database))

    def materialise(frame: pl.DataFrame) -> None:
        @dg.asset(key=["outputs", "child_risk"], io_manager_key="io_manager")
        def child_risk() -> pl.DataFrame:
            return frame

        assert dg.materialize([child_risk], resources={"io_manager": io_manager}).success

    materialise(pl.DataFrame({"person_id": ["a", "b"], "top_factors": ["ward, sex", "sex"]}))
    materialise(pl.DataFrame({"person_id": ["c"], "top_factors": [["ward", "summer_born"]]}))
    with duckdb.connect(str(database), read_only=True) as conn:
        assert conn.execute("select person_id, top_factors from outputs.child_risk").fetchall() == [
            ("c", ["ward", "summer_born"])]
        assert conn.execute("select data_type from information_schema.columns "
                            "where column_name = 'top_factors'").fetchone()[0] == "VARCHAR[]"
