"""The pseudonymised assets' blocking leak check: rows that still hold an identifier never reach the warehouse."""

from __future__ import annotations

import datetime as dt
import secrets

import dagster as dg
import duckdb
import polars as pl
from dagster_duckdb import DuckDBResource

from ed_pipeline.defs.partitions import monthly_partitions
from ed_pipeline.defs.pseudonymised import build_pseudonymised_asset
from ed_pipeline.defs.resources import AGENCY_ZONE, MONTH_PARTITION_EXPR, WAREHOUSE, PseudonymisationKey, ZoneIOManager
from ed_pipeline.defs.validated import validated_key
from ed_pipeline.privacy import key_fingerprint, load_key
from ed_pipeline.quality.validation import validated_schema
from ed_pipeline.sources import SOURCES


def _validated_month(source, month: str, record_id: str, school_urn: str) -> dict:
    row = dict.fromkeys(validated_schema(source))
    row.update(source=source.name, record_id=record_id, given_name="Keziah", family_name="Okonkwo",
               date_of_birth=dt.date(2019, 5, 1), sex="F", postcode="SS16 4AB", upn="A123456789012",
               event_date=dt.date(int(month[:4]), int(month[5:]), 20), extract_month=month, group_ref=record_id,
               role="child", school_urn=school_urn, gld=True, _row_number=1)
    return row


def _materialise(source, rows: list[dict], month: str, agency, warehouse, key: str, instance=None):
    validated = pl.DataFrame(rows, schema=validated_schema(source)).to_arrow()  # noqa: F841 (read by DuckDB)
    with duckdb.connect(str(agency)) as conn:
        conn.execute("create schema if not exists validated")
        conn.execute("create or replace table validated.school_readiness as select * from validated")
    upstream = dg.AssetSpec(key=validated_key(source), partitions_def=monthly_partitions,
                            metadata={"partition_expr": MONTH_PARTITION_EXPR}).with_io_manager_key(AGENCY_ZONE)
    return dg.materialize(
        [build_pseudonymised_asset(source), upstream], partition_key=month, raise_on_error=False,
        instance=instance,
        resources={AGENCY_ZONE: ZoneIOManager(database=str(agency)), WAREHOUSE: ZoneIOManager(database=str(warehouse)),
                   "pseudo_key": PseudonymisationKey(key=key), "warehouse": DuckDBResource(database=str(warehouse))})


def test_a_month_under_another_key_is_refused_unless_the_table_was_dropped(tmp_path, monkeypatch):
    """A wrong key (another environment's, a mistyped secret) gives tokens that never match the table's other
    months: the month fails, naming both keys' fingerprints; after a rotation's drop of the table it runs."""
    monkeypatch.setenv("ED_DATA_DIR", str(tmp_path))
    source = next(s for s in SOURCES if s.name == "school_readiness")
    agency, warehouse = tmp_path / "agency_zone.duckdb", tmp_path / "warehouse.duckdb"
    first, second = secrets.token_hex(32), secrets.token_hex(32)
    with dg.DagsterInstance.ephemeral() as instance:
        june = [_validated_month(source, "2024-06", "RR1", "123456")]
        assert _materialise(source, june, "2024-06", agency, warehouse, first, instance).success
        july = [_validated_month(source, "2024-07", "RR2", "123456")]
        refused = _materialise(source, july, "2024-07", agency, warehouse, second, instance)
        assert not refused.success
        [failure] = [e for e in refused.all_events if e.event_type_value == "STEP_FAILURE"]
        assert key_fingerprint(load_key(first)) in failure.step_failure_data.user_failure_data.description
        assert _materialise(source, july, "2024-07", agency, warehouse, first, instance).success
        with duckdb.connect(str(warehouse)) as conn:
            conn.execute("drop table pseudonymised.school_readiness")
        assert _materialise(source, july, "2024-07", agency, warehouse, second, instance).success


def test_rows_with_an_identifier_in_an_event_field_are_not_written(tmp_path, monkeypatch):
    """A clerk pasted a pupil's UPN and name into the school URN field: the partition fails, naming the column,
    and the warehouse gains nothing (the check used to run after the IO manager had written the rows)."""
    monkeypatch.setenv("ED_DATA_DIR", str(tmp_path))
    source = next(s for s in SOURCES if s.name == "school_readiness")
    agency, warehouse = tmp_path / "agency_zone.duckdb", tmp_path / "warehouse.duckdb"
    row = _validated_month(source, "2024-06", "RR1", "A123456789012 Keziah Okonkwo")
    result = _materialise(source, [row], "2024-06", agency, warehouse, secrets.token_hex(32))
    assert not result.success
    [failure] = [e for e in result.all_events if e.event_type_value == "STEP_FAILURE"]
    failure_data = failure.step_failure_data
    assert "none of them is in the warehouse" in failure_data.user_failure_data.description
    leaks = failure_data.user_failure_data.metadata["leaks"].value
    assert "school_urn" in leaks and "upn" in leaks
    assert "Okonkwo" not in leaks and "A123456789012" not in leaks
    if warehouse.exists():
        with duckdb.connect(str(warehouse), read_only=True) as conn:
            assert not conn.execute("select table_name from information_schema.tables "
                                    "where table_schema = 'pseudonymised'").fetchall()
