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


def test_a_run_over_months_replaces_and_reads_only_its_months_by_a_range_on_the_month_column(tmp_path):
    """A single run over 2017-02..2017-03 replaces those months' rows, leaving January, and reads them back; its
    slice is a range of 'YYYY-MM' strings on `extract_month`, which DuckDB answers from each row group's min and
    max (a timestamp computed from the column reads all of it, so a month's read would grow with the history)."""
    from dagster._core.storage.db_io_manager import TablePartitionDimension, TableSlice

    from ed_pipeline.defs.resources import MONTH_PARTITION_EXPR, month_where

    database = tmp_path / "agency_zone.duckdb"
    months = dg.MonthlyPartitionsDefinition(start_date="2017-01", end_date="2017-04", fmt="%Y-%m")
    with duckdb.connect(str(database)) as conn:
        conn.execute("create schema raw; create table raw.housing as select * from (values ('a', '2017-01'), "
                     "('b', '2017-02'), ('c', '2017-03'), ('d', '2017-03')) t(record_id, extract_month)")
    read_back = []

    @dg.asset(key=["raw", "housing"], io_manager_key="io_manager", partitions_def=months,
              backfill_policy=dg.BackfillPolicy.single_run(), metadata={"partition_expr": MONTH_PARTITION_EXPR})
    def raw_housing() -> pl.DataFrame:
        return pl.DataFrame({"record_id": ["e", "f"], "extract_month": ["2017-02", "2017-03"]})

    @dg.asset(partitions_def=months, backfill_policy=dg.BackfillPolicy.single_run(),
              ins={"rows": dg.AssetIn(key=["raw", "housing"])})
    def validated(rows: pl.DataFrame) -> None:
        read_back.extend(rows.sort("record_id").rows())

    assert dg.materialize([raw_housing, validated], resources={"io_manager": ZoneIOManager(database=str(database))},
                          tags={"dagster/asset_partition_range_start": "2017-02",
                                "dagster/asset_partition_range_end": "2017-03"}).success
    assert read_back == [("e", "2017-02"), ("f", "2017-03")]
    with duckdb.connect(str(database), read_only=True) as conn:
        assert conn.execute("select record_id, extract_month from raw.housing order by record_id").fetchall() == [
            ("a", "2017-01"), ("e", "2017-02"), ("f", "2017-03")]

    window = dg.TimeWindow(months.time_window_for_partition_key("2017-02").start,
                           months.time_window_for_partition_key("2017-03").end)
    clause = month_where(TableSlice(table="housing", schema="raw", database=str(database),
                                    partition_dimensions=[TablePartitionDimension(MONTH_PARTITION_EXPR, window)]))
    assert clause == "extract_month >= '2017-02' AND extract_month < '2017-04'"
