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


def _row_groups(database, table: str) -> list[int]:
    """Rows per row group of `table`, as DuckDB stores them."""
    with duckdb.connect(str(database), read_only=True) as conn:
        return [n for (n,) in conn.execute(
            f"select max(count) from pragma_storage_info('{table}') group by row_group_id order by row_group_id")
                .fetchall()]


def test_a_month_appended_keeps_row_groups_of_its_own_and_a_month_sent_again_lets_duckdb_merge_them(tmp_path):
    """DuckDB's checkpoint merges partly filled row groups, which made every appended month rewrite the rows
    before it. A month written for the first time merges nothing (for the IO manager and for tables written
    together); a month written again deleted rows, and its checkpoint merges as DuckDB would."""
    from dagster_duckdb import DuckDBResource

    from ed_pipeline.defs.resources import MONTH_PARTITION_EXPR, write_partition_together

    database = tmp_path / "agency_zone.duckdb"
    months = dg.MonthlyPartitionsDefinition(start_date="2017-01-01", end_date="2017-04-01")

    def rows(month: str, n: int) -> pl.DataFrame:
        return pl.DataFrame({"record_id": [f"{month}-{i}" for i in range(n)], "extract_month": [month] * n})

    @dg.asset(key=["raw", "housing"], io_manager_key="io_manager", partitions_def=months,
              metadata={"partition_expr": MONTH_PARTITION_EXPR})
    def raw_housing(context: dg.AssetExecutionContext) -> pl.DataFrame:
        return rows(context.partition_key[:7], 10 if context.partition_key != "2017-02-01" else sent_again)

    @dg.asset(key=["validated", "housing"], partitions_def=months, deps=[raw_housing])
    def validated_housing(context: dg.AssetExecutionContext, agency_zone: DuckDBResource) -> None:
        month = context.partition_key[:7]
        n = 10 if month != "2017-02" else sent_again
        write_partition_together(context, agency_zone, {dg.AssetKey(["validated", "housing"]): rows(month, n),
                                                        dg.AssetKey(["quarantine", "housing"]): rows(month, 1)})

    resources = {"io_manager": ZoneIOManager(database=str(database)),
                 "agency_zone": DuckDBResource(database=str(database))}
    sent_again = 10
    for month in ("2017-01-01", "2017-02-01", "2017-03-01"):
        assert dg.materialize([raw_housing, validated_housing], partition_key=month, resources=resources).success
    assert _row_groups(database, "raw.housing") == [10, 10, 10]
    assert _row_groups(database, "validated.housing") == [10, 10, 10]
    assert _row_groups(database, "quarantine.housing") == [1, 1, 1]

    sent_again = 4  # February sent again, smaller: its rows replaced, and the table's row groups merged
    assert dg.materialize([raw_housing, validated_housing], partition_key="2017-02-01", resources=resources).success
    assert _row_groups(database, "raw.housing") == [24]
    assert _row_groups(database, "validated.housing") == [24]
    with duckdb.connect(str(database), read_only=True) as conn:
        assert conn.execute("select extract_month, count(*) from validated.housing group by 1 order by 1"
                            ).fetchall() == [("2017-01", 10), ("2017-02", 4), ("2017-03", 10)]
        assert conn.execute("select count(*) from quarantine.housing").fetchone() == (3,)
