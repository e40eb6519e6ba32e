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


def test_a_partitioned_table_gains_new_columns_and_loses_retired_ones_in_every_month(tmp_path):
    """An upgrade that stops writing a token found to give identifiers back (tok_dob_day) and writes a new one:
    the month written again inserts, and the retired column leaves the months not written again too."""
    from ed_pipeline.defs.resources import MONTH_PARTITION_EXPR

    database = tmp_path / "warehouse.duckdb"
    io_manager = ZoneIOManager(database=str(database))
    months = dg.MonthlyPartitionsDefinition(start_date="2017-01-01", end_date="2017-03-01")

    def materialise(month: str, frame: pl.DataFrame) -> None:
        @dg.asset(key=["pseudonymised", "housing"], io_manager_key="io_manager", partitions_def=months,
                  metadata={"partition_expr": MONTH_PARTITION_EXPR})
        def housing() -> pl.DataFrame:
            return frame

        assert dg.materialize([housing], partition_key=month, resources={"io_manager": io_manager}).success

    with duckdb.connect(str(database)) as conn:  # two months as the earlier version wrote them
        conn.execute("create schema pseudonymised; create table pseudonymised.housing as select * from "
                     "(values ('a', '2017-01', 'x'), ('b', '2017-02', 'y')) t(record_id, extract_month, tok_dob_day)")
    materialise("2017-02-01", pl.DataFrame({"record_id": ["b"], "extract_month": ["2017-02"],
                                            "tok_dob_month_day": ["z"]}))
    with duckdb.connect(str(database), read_only=True) as conn:
        assert conn.execute("select record_id, extract_month, tok_dob_month_day from pseudonymised.housing "
                            "order by record_id").fetchall() == [("a", "2017-01", None), ("b", "2017-02", "z")]
