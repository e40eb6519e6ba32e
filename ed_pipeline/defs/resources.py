"""Resources: one DuckDB IO manager per zone.

The agency zone (identifiable extracts) and the shared warehouse (pseudonymised
data only) are separate DuckDB files, so an asset's zone is decided by which IO
manager it names. Both are dagster-duckdb's polars IO manager with two changes
that the pipeline's guarantees need:

- a partition's delete and insert run in one transaction, so a run killed half
  way leaves the previous contents, never a half-written or doubled slice;
- a write that fails for want of space fails its step at once (no retry) with a
  clear message naming the file (docs/resilience.md);
- an empty frame still creates its (typed) table, so an empty quarantine can be
  read downstream.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress

import dagster as dg
import duckdb
import polars as pl
from dagster._core.storage.db_io_manager import DbIOManager, DbTypeHandler, TableSlice
from dagster_duckdb import DuckDBResource
from dagster_duckdb.io_manager import DuckDbClient, DuckDBIOManager
from dagster_duckdb_polars import DuckDBPolarsTypeHandler

from ed_pipeline.privacy import load_key
from ed_pipeline.resilience import disk_full_message, fault_point
from ed_pipeline.settings import Settings

AGENCY_ZONE = "agency_zone_io_manager"
WAREHOUSE = "warehouse_io_manager"
# DuckDB's IO manager selects a month's slice with this expression over `extract_month` ('YYYY-MM').
MONTH_PARTITION_EXPR = "CAST(extract_month || '-01' AS TIMESTAMP)"


class _TransactionalClient(DuckDbClient):
    @staticmethod
    @contextmanager
    def connect(context, table_slice) -> Iterator:
        with DuckDbClient.connect(context, table_slice) as conn:
            conn.begin()
            try:
                yield conn
                if isinstance(context, dg.OutputContext):
                    fault_point(f"commit:{table_slice.schema}.{table_slice.table}")
                conn.commit()
            except BaseException as exc:
                with suppress(duckdb.Error):  # a failed commit has already ended the transaction
                    conn.rollback()
                full = disk_full_message(exc, str(table_slice.database))
                if full:  # retrying in seconds will not free a disk: fail now, saying what to do
                    raise dg.Failure(description=full, allow_retries=False) from exc
                raise


class _PolarsHandler(DuckDBPolarsTypeHandler):
    def handle_output(self, context: dg.OutputContext, table_slice: TableSlice, obj: pl.DataFrame, connection):
        table = f"{table_slice.schema}.{table_slice.table}"
        frame = obj.to_arrow()  # noqa: F841 (read by DuckDB by name)
        connection.execute(f"create schema if not exists {table_slice.schema}")
        if not table_slice.partition_dimensions:  # the whole table: replaced, so a changed column type follows
            connection.execute(f"create or replace table {table} as select * from frame")
        else:
            connection.execute(f"create table if not exists {table} as select * from frame limit 0")
            connection.execute(f"insert into {table} by name select * from frame")
        context.add_output_metadata(
            {
                "dagster/row_count": obj.height,
                "dagster/column_schema": dg.TableSchema(
                    columns=[dg.TableColumn(name=n, type=str(t)) for n, t in obj.schema.items()]
                ),
            }
        )


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


def zone_resources(settings: Settings) -> dict[str, dg.ConfigurableIOManager]:
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    return {
        AGENCY_ZONE: ZoneIOManager(database=str(settings.agency_zone_path)),
        WAREHOUSE: ZoneIOManager(database=str(settings.warehouse_path)),
    }


def all_resources(settings: Settings) -> dict:
    return {
        **zone_resources(settings),
        # For assets that write whole tables themselves (the linked layer), in one transaction.
        "warehouse": DuckDBResource(database=str(settings.warehouse_path)),
        "agency_zone": DuckDBResource(database=str(settings.agency_zone_path)),
        "pseudo_key": PseudonymisationKey(key=dg.EnvVar("ED_PSEUDO_KEY")),
    }
