"""Resources: one DuckDB IO manager per zone.

The agency zone (identifiable extracts) and the shared warehouse (pseudonymised
data only) are separate DuckDB files, so an asset's zone is decided by which IO
manager it names. Both are dagster-duckdb's polars IO manager with two changes
that the pipeline's guarantees need:

- a partition's delete and insert run in one transaction, so a run killed half
  way leaves the previous contents, never a half-written or doubled slice; the
  tables one step writes together (validated and its quarantine) are written by
  `write_partition_together`, all in one transaction, so they always agree;
- a write that fails for want of space fails its step at once (no retry) with a
  clear message naming the file (docs/resilience.md);
- an empty frame still creates its (typed) table, so an empty quarantine can be
  read downstream;
- a month's slice is read and deleted by a range on `extract_month` itself
  (`month_where`), which DuckDB answers from each row group's minimum and
  maximum; dagster-duckdb's clause compares a timestamp computed from the
  column, which reads the whole column, so a month's read grew with the
  history;
- a partitioned table gains the columns a new version of the code writes, and
  loses those it retired (`privacy.pseudonymise.RETIRED_COLUMNS`: tokens found
  to give identifiers back must leave every month, not only those written
  again).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from contextlib import closing, contextmanager, suppress

import dagster as dg
import duckdb
import polars as pl
from dagster._core.storage.db_io_manager import DbIOManager, DbTypeHandler, TablePartitionDimension, TableSlice
from dagster_duckdb import DuckDBResource
from dagster_duckdb.io_manager import DuckDbClient, DuckDBIOManager
from dagster_duckdb_polars import DuckDBPolarsTypeHandler

from ed_pipeline.privacy import load_key
from ed_pipeline.privacy.pseudonymise import RETIRED_COLUMNS
from ed_pipeline.resilience import disk_full_message, fault_point
from ed_pipeline.settings import Settings

AGENCY_ZONE = "agency_zone_io_manager"
WAREHOUSE = "warehouse_io_manager"
# The column holding each row's month ('YYYY-MM'): the monthly tables' `partition_expr`, read by `month_where`.
MONTH_PARTITION_EXPR = "extract_month"
# The months each source delivered, with their record counts, rows or none (a file with its header alone):
# written with the source's pseudonymised months, read by dbt's int_data_window.
LANDED_TABLE = "pseudonymised.landed_extract"


@contextmanager
def _transaction(conn, database: str, tables: Sequence[str]) -> Iterator:
    """One transaction on `conn` writing `tables`: committed when the block ends, rolled back if it raises (a kill
    before the commit leaves the same). A full disk fails at once, saying what to do."""
    conn.begin()
    try:
        yield conn
        for table in tables:
            fault_point(f"commit:{table}")
        conn.commit()
    except BaseException as exc:
        with suppress(duckdb.Error):  # a failed commit has already ended the transaction
            conn.rollback()
        full = disk_full_message(exc, database)
        if full:  # retrying in seconds will not free a disk: fail now, saying what to do
            raise dg.Failure(description=full, allow_retries=False) from exc
        raise


def month_where(table_slice: TableSlice) -> str:
    """The slice's months as a range of 'YYYY-MM' strings on its month column."""
    clauses = []
    for dimension in table_slice.partition_dimensions:
        if not isinstance(dimension.partitions, dg.TimeWindow):
            raise TypeError(f"{table_slice.schema}.{table_slice.table}: only monthly partitions are supported")
        start, end = dimension.partitions
        clauses.append(f"{dimension.partition_expr} >= '{start:%Y-%m}' AND {dimension.partition_expr} < '{end:%Y-%m}'")
    return " AND ".join(clauses)


def select_slice(table_slice: TableSlice) -> str:
    columns = ", ".join(table_slice.columns) if table_slice.columns else "*"
    table = f"{table_slice.schema}.{table_slice.table}"
    return f"SELECT {columns} FROM {table}" + (f" WHERE {month_where(table_slice)}"
                                              if table_slice.partition_dimensions else "")


class _TransactionalClient(DuckDbClient):
    @staticmethod
    @contextmanager
    def connect(context, table_slice) -> Iterator:
        tables = [f"{table_slice.schema}.{table_slice.table}"] if isinstance(context, dg.OutputContext) else []
        # closing: dagster-duckdb's connect leaves the connection open when the block raises
        with (DuckDbClient.connect(context, table_slice) as conn, closing(conn),
              _transaction(conn, str(table_slice.database), tables)):
            yield conn

    @staticmethod
    def get_select_statement(table_slice: TableSlice) -> str:
        return select_slice(table_slice)

    @staticmethod
    def delete_table_slice(context, table_slice, connection) -> None:
        """Left to `write_slice`, after it has brought the table's columns up to date: DuckDB refuses to commit a
        transaction that alters a table after deleting from it."""


def write_slice(connection, table_slice: TableSlice, obj: pl.DataFrame) -> None:
    """Replace the table's slice (the whole table when unpartitioned) with `obj`, in the caller's transaction."""
    table = f"{table_slice.schema}.{table_slice.table}"
    frame = obj.to_arrow()  # noqa: F841 (read by DuckDB by name)
    connection.execute(f"create schema if not exists {table_slice.schema}")
    if not table_slice.partition_dimensions:  # the whole table: replaced, so a changed column type follows
        connection.execute(f"create or replace table {table} as select * from frame")
    else:
        connection.execute(f"create table if not exists {table} as select * from frame limit 0")
        _follow_columns(connection, table_slice, dict(connection.execute(
            "select column_name, column_type from (describe select * from frame)").fetchall()))
        connection.execute(f"delete from {table} where {month_where(table_slice)}")
        connection.execute(f"insert into {table} by name select * from frame")


def table_metadata(obj: pl.DataFrame) -> dict:
    return {
        "dagster/row_count": obj.height,
        "dagster/column_schema": dg.TableSchema(
            columns=[dg.TableColumn(name=n, type=str(t)) for n, t in obj.schema.items()]
        ),
    }


def write_partition_together(context: dg.AssetExecutionContext, zone: DuckDBResource,
                             frames: Mapping[dg.AssetKey, pl.DataFrame], landed: pl.DataFrame | None = None) -> None:
    """Write the run's months of several monthly tables (`schema.table` from each asset key) in one transaction:
    a failure or a kill between two of them leaves every one as it was. Their outputs are then `dg.Nothing`, read
    downstream by the zone's IO manager as any other. `landed`: the months delivered (`write_landed`), recorded in
    the same transaction, so that the record and the rows always agree."""
    window = context.partition_time_window
    slices = [TableSlice(table=key.path[-1], schema=key.path[-2], database=zone.database,
                         partition_dimensions=[TablePartitionDimension(MONTH_PARTITION_EXPR, window)])
              for key in frames]
    tables = [f"{s.schema}.{s.table}" for s in slices] + ([LANDED_TABLE] if landed is not None else [])
    with zone.get_connection() as conn, closing(conn), _transaction(conn, zone.database, tables):
        for table_slice, frame in zip(slices, frames.values(), strict=True):
            write_slice(conn, table_slice, frame)
        if landed is not None:
            write_landed(conn, landed)


def write_landed(connection, landed: pl.DataFrame) -> None:
    """Record each (source, extract month) of `landed` (`quality.arrival.landed_extracts`) in LANDED_TABLE, in the
    caller's transaction: a month recorded before is replaced, never doubled; months not in `landed` stay."""
    frame = landed.to_arrow()  # noqa: F841 (read by DuckDB by name)
    schema = LANDED_TABLE.split(".")[0]
    connection.execute(f"create schema if not exists {schema}")
    connection.execute(f"create table if not exists {LANDED_TABLE} "
                       "(source varchar, extract_month varchar, records bigint, primary key (source, extract_month))")
    connection.execute(f"insert or replace into {LANDED_TABLE} by name select * from frame")


class _PolarsHandler(DuckDBPolarsTypeHandler):
    def load_input(self, context: dg.InputContext, table_slice: TableSlice, connection) -> pl.DataFrame:
        if table_slice.partition_dimensions and not context.asset_partition_keys:
            return pl.DataFrame()  # as dagster-duckdb's handler answers no partitions
        return pl.DataFrame(connection.execute(select_slice(table_slice)).to_arrow_table())

    def handle_output(self, context: dg.OutputContext, table_slice: TableSlice, obj: pl.DataFrame, connection):
        write_slice(connection, table_slice, obj)
        context.add_output_metadata(table_metadata(obj))


def _follow_columns(connection, table_slice: TableSlice, columns: dict[str, str]) -> None:
    """A partitioned table follows the code's columns: one the frame brings is added (null in the months written
    before it, until they are written again), and one the code retired is dropped from every month at once."""
    table = f"{table_slice.schema}.{table_slice.table}"
    have = {name for (name,) in connection.execute(
        "select column_name from information_schema.columns where table_schema = ? and table_name = ?",
        [table_slice.schema, table_slice.table]).fetchall()}
    for name in sorted(have & RETIRED_COLUMNS):
        connection.execute(f'alter table {table} drop column "{name}"')
    for name, sql_type in columns.items():
        if name not in have:
            connection.execute(f'alter table {table} add column "{name}" {sql_type}')


class ZoneIOManager(DuckDBIOManager):
    """Reads and writes polars frames as `schema.table` (from the asset key) in one DuckDB file."""

    @staticmethod
    def type_handlers() -> Sequence[DbTypeHandler]:
        return [_PolarsHandler()]

    @staticmethod
    def default_load_type() -> type | None:
        return pl.DataFrame

    def create_io_manager(self, context) -> DbIOManager:
        return DbIOManager(
            db_client=_TransactionalClient(),
            database=self.database,
            schema=self.schema_,
            type_handlers=self.type_handlers(),
            default_load_type=self.default_load_type(),
            io_manager_name="ZoneIOManager",
        )


class PseudonymisationKey(dg.ConfigurableResource):
    """The HMAC key that turns identifiers into tokens: configured from ED_PSEUDO_KEY, never written anywhere."""

    key: str

    def key_bytes(self) -> bytes:
        return load_key(self.key)  # refuses keys shorter than 32 bytes with a clear error


def warehouse_resources(settings: Settings) -> dict[str, dg.ConfigurableResource]:
    """The warehouse's IO manager, and a connection to it: all that the warehouse's code location is given."""
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    return {
        WAREHOUSE: ZoneIOManager(database=str(settings.warehouse_path)),
        "warehouse": DuckDBResource(database=str(settings.warehouse_path)),
    }


def zone_resources(settings: Settings) -> dict[str, dg.ConfigurableResource]:
    """Each zone's IO manager, and a connection to it: for assets that write tables themselves in one transaction
    (validated and quarantine, the linked layer), or read what a table held before (raw: earlier deliveries)."""
    return {
        **warehouse_resources(settings),
        AGENCY_ZONE: ZoneIOManager(database=str(settings.agency_zone_path)),
        "agency_zone": DuckDBResource(database=str(settings.agency_zone_path)),
    }


def all_resources(settings: Settings) -> dict:
    return {
        **zone_resources(settings),
        "pseudo_key": PseudonymisationKey(key=dg.EnvVar("ED_PSEUDO_KEY")),
    }
