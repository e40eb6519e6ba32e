"""The same partition materialised twice leaves every table exactly as after the first time."""

from __future__ import annotations

from ed_pipeline_tests.faults.support import KilledThenRerun, differing

INGEST_SCHEMAS = ("raw", "validated", "quarantine", "pseudonymised")


def test_same_partition_twice_gives_identical_tables(killed_mid_write: KilledThenRerun):
    """One month of every source (raw, validated, quarantine in the agency zone, pseudonymised in the warehouse),
    loaded by a refresh (the one after the kill finished what the kill left) and loaded again by
    `refresh --full`: identical table checksums (row count and an order-independent hash of every row, load times
    aside)."""
    run = killed_mid_write
    assert run.rerun_rc == 0, run.rerun_log[-3000:]
    assert run.full_rc == 0, run.full_log[-3000:]
    assert "up to date" not in run.full_log and "up to date" in run.rerun_log, run.full_log[-3000:]
    for name in ("agency_zone.duckdb", "warehouse.duckdb"):
        first = {t: d for t, d in run.after_rerun[name].items() if t.split(".")[0] in INGEST_SCHEMAS}
        second = {t: d for t, d in run.after_full[name].items() if t.split(".")[0] in INGEST_SCHEMAS}
        assert sum(1 for t, (rows, _) in first.items() if rows and not t.startswith("quarantine.")) >= 7, first
        assert first == second, differing(second, first)
