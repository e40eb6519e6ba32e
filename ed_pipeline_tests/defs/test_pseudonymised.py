"""The pseudonymised assets' blocking leak check: rows that still hold an identifier never reach the warehouse."""

from __future__ import annotations

import datetime as dt
import secrets

import dagster as dg
import duckdb
import polars as pl

from ed_pipeline.defs.partitions import monthly_partitions
from ed_pipeline.defs.pseudonymised import build_pseudonymised_asset
from ed_pipeline.defs.resources import AGENCY_ZONE, MONTH_PARTITION_EXPR, WAREHOUSE, PseudonymisationKey, ZoneIOManager
from ed_pipeline.defs.validated import validated_key
from ed_pipeline.quality.validation import validated_schema
from ed_pipeline.sources import SOURCES


def test_rows_with_an_identifier_in_an_event_field_are_not_written(tmp_path, monkeypatch):
    """A clerk pasted a pupil's UPN and name into the school URN field: the partition fails, naming the column,
    and the warehouse gains nothing (the check used to run after the IO manager had written the rows)."""
    monkeypatch.setenv("ED_DATA_DIR", str(tmp_path))
    source = next(s for s in SOURCES if s.name == "school_readiness")
    schema = validated_schema(source)
    row = dict.fromkeys(schema)
    row.update(source=source.name, record_id="RR1", given_name="Keziah", family_name="Okonkwo",
               date_of_birth=dt.date(2019, 5, 1), sex="F", postcode="SS16 4AB", upn="A123456789012",
               event_date=dt.date(2024, 6, 30), extract_month="2024-06", group_ref="RR1", role="child",
               school_urn="A123456789012 Keziah Okonkwo", gld=True, _row_number=1)
    validated = pl.DataFrame([row], schema=schema).to_arrow()  # noqa: F841 (read by DuckDB below)
    agency, warehouse = tmp_path / "agency_zone.duckdb", tmp_path / "warehouse.duckdb"
    with duckdb.connect(str(agency)) as conn:
        conn.execute("create schema validated")
        conn.execute("create table validated.school_readiness as select * from validated")
    upstream = dg.SourceAsset(key=validated_key(source), io_manager_key=AGENCY_ZONE,
                              partitions_def=monthly_partitions, metadata={"partition_expr": MONTH_PARTITION_EXPR})
    result = dg.materialize(
        [build_pseudonymised_asset(source), upstream], partition_key="2024-06", raise_on_error=False,
        resources={AGENCY_ZONE: ZoneIOManager(database=str(agency)), WAREHOUSE: ZoneIOManager(database=str(warehouse)),
                   "pseudo_key": PseudonymisationKey(key=secrets.token_hex(32))})
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
