"""End to end through Dagster: landing files -> raw -> validated + quarantine, on a tiny world."""

from __future__ import annotations

import csv

import dagster as dg
import duckdb
import pytest

from ed_pipeline.defs.raw import raw_assets
from ed_pipeline.defs.resources import zone_resources
from ed_pipeline.defs.validated import validated_assets
from ed_pipeline.sources import SOURCES
from ed_pipeline_tests.conftest import run_cli


def test_definitions_load_with_every_layer_and_check():
    from ed_pipeline.definitions import defs

    dg.Definitions.validate_loadable(defs)
    keys = {key.to_user_string() for key in defs.resolve_all_asset_keys()}
    for source in SOURCES:
        assert {f"raw/{source.name}", f"validated/{source.name}", f"quarantine/{source.name}"} <= keys
    check_names = {(k.asset_key.to_user_string(), k.name) for k in defs.resolve_asset_graph().asset_check_keys}
    assert ("raw/housing", "extract_readable") in check_names
    assert ("validated/housing", "reconciled") in check_names


def table_fingerprints(path) -> dict[str, tuple[int, int]]:
    """(rows, order-independent hash of the content without load times) per table."""
    out = {}
    with duckdb.connect(str(path), read_only=True) as conn:
        for schema, table in conn.execute("select table_schema, table_name from information_schema.tables").fetchall():
            cols = ", ".join(f'"{c}"' for (c,) in conn.execute(
                "select column_name from information_schema.columns where table_schema=? and table_name=?",
                [schema, table]).fetchall() if c != "_loaded_at")
            n, h = conn.execute(f"select count(*), coalesce(sum(hash({cols})), 0) from {schema}.{table}").fetchone()
            out[f"{schema}.{table}"] = (n, int(h))
    return out


def reconciliation(path, source: str) -> tuple[int, int, int]:
    with duckdb.connect(str(path), read_only=True) as conn:
        raw = conn.execute(f"select count(*) from raw.{source}").fetchone()[0]
        passed = conn.execute(
            f"select count(distinct (_source_file, _row_number)) from validated.{source}").fetchone()[0]
        quarantined = conn.execute(f"select count(*) from quarantine.{source}").fetchone()[0]
    return raw, passed, quarantined


def landed_rows(settings, source: str) -> int:
    """Data rows in the landing CSVs, counted independently of the pipeline's reader."""
    total = 0
    for path in (settings.landing_dir / source).glob("*.csv"):
        with path.open(newline="", encoding="utf-8") as f:
            total += sum(1 for _ in csv.reader(f)) - 1
    return total


def test_refresh_cli_loads_every_source_and_rerun_changes_nothing(world_copy):
    first = run_cli("refresh", data_dir=world_copy.data_dir)
    assert first.returncode == 0, first.stderr[-3000:]
    assert "8/8 steps succeeded" in first.stderr
    assert sum(landed_rows(world_copy, s.name) for s in SOURCES) > 100
    for source in SOURCES:
        raw, passed, quarantined = reconciliation(world_copy.agency_zone_path, source.name)
        assert raw == landed_rows(world_copy, source.name), f"{source.name}: raw does not hold every landed row"
        assert raw == passed + quarantined, f"{source.name}: rows lost"
    before = table_fingerprints(world_copy.agency_zone_path)

    second = run_cli("refresh", data_dir=world_copy.data_dir)
    assert second.returncode == 0, second.stderr[-3000:]
    assert table_fingerprints(world_copy.agency_zone_path) == before, "re-running changed the tables"


def test_broken_file_stops_only_its_own_source(world_copy):
    broken = world_copy.landing_file("housing", "2017-06")
    broken.write_bytes(b"")
    result = run_cli("refresh", data_dir=world_copy.data_dir)
    assert result.returncode == 1
    assert "FAILED" in result.stderr and "housing" in result.stderr
    assert "7/8 steps succeeded" in result.stderr
    with duckdb.connect(str(world_copy.agency_zone_path), read_only=True) as conn:
        tables = {t for (t,) in conn.execute(
            "select table_schema || '.' || table_name from information_schema.tables").fetchall()}
    assert "validated.housing" not in tables, "a blocked source must not be validated"
    for source in SOURCES:
        if source.name != "housing":
            raw, passed, quarantined = reconciliation(world_copy.agency_zone_path, source.name)
            assert raw == passed + quarantined == landed_rows(world_copy, source.name)


@pytest.mark.parametrize("source_name", ["benefits", "police_incidents"])
def test_rematerialising_a_partition_replaces_it(world_copy, source_name):
    assets = [a for a in [*raw_assets, *validated_assets] if any(source_name in k.path for k in a.keys)]
    resources = zone_resources(world_copy)
    for _ in range(2):
        result = dg.materialize(assets, partition_key="2017-06", resources=resources)
        assert result.success
    raw, passed, quarantined = reconciliation(world_copy.agency_zone_path, source_name)
    with duckdb.connect(str(world_copy.agency_zone_path), read_only=True) as conn:
        months = conn.execute(f"select distinct extract_month from raw.{source_name}").fetchall()
        duplicated = conn.execute(
            f"select count(*) from (select record_id from validated.{source_name} "
            "group by record_id, extract_month having count(*) > 1)").fetchone()[0]
    assert months == [("2017-06",)]
    assert raw == passed + quarantined > 0
    assert duplicated == 0
