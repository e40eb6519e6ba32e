"""intermediate.int_data_window: children enter the mart at a prediction date only once every agency that sends a
monthly extract has delivered the month before it. An agency whose extract is late holds the window back; the
annual EYFSP return (ed_pipeline/sources.py `landing_month`) and a source with no rows at all do not, nor does a
month delivered with its header alone (pseudonymised.landed_extract). A warehouse without that record (written
before it, as most tests here write theirs) goes by the months with rows."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import duckdb
import polars as pl

from ed_pipeline.defs.resources import write_landed
from ed_pipeline.quality.arrival import landed_extracts
from ed_pipeline.sources import SOURCES
from ed_pipeline_tests.features.test_child_features import features
from ed_pipeline_tests.features.test_incremental_staging import tables
from ed_pipeline_tests.features.warehouse import BORN, base_records, dbt_build, write_warehouse

# K: born 2015-07, D = 2018-07-01, the first day after the base window's last month (2018-06)
K_PROTECTION_PLAN = ("social_care", "SCK", "K", "SCK", "child", "2018-06", date(2018, 6, 10), None,
                     {"referral_source": "Police", "category": "Child protection plan", "primary_need": "N1"})


def window(warehouse: Path) -> tuple:
    with duckdb.connect(str(warehouse), read_only=True) as conn:
        return conn.execute("select first_month, last_month, data_complete_on from intermediate.int_data_window"
                            ).fetchone()


def record_landed(warehouse: Path, records: list, empty: tuple[str, str] | None = None) -> None:
    """pseudonymised.landed_extract as the pseudonymised assets write it: every month of `records`, and `empty`
    (source, month) delivered with its header alone."""
    with duckdb.connect(str(warehouse)) as conn:
        for source in SOURCES:
            rows = pl.DataFrame({"extract_month": [r[5] for r in records if r[0] == source.name]}, schema={
                "extract_month": pl.String})
            files = set(rows["extract_month"]) | ({empty[1]} if empty and empty[0] == source.name else set())
            write_landed(conn, landed_extracts(source.name, sorted(files), files, rows))


def test_the_base_warehouse_is_complete_to_its_last_month():
    """Each monthly source has a record in 2018-06 (the window below relies on it); the EYFSP return is annual."""
    last: dict[str, str] = {}
    for record in base_records():
        source, month = record[0], record[5]
        last[source] = max(last.get(source, month), month)
    monthly = {s.name for s in SOURCES if s.landing_month is None}
    assert monthly == set(last) - {"school_readiness"}
    assert {last[s] for s in monthly} == {"2018-06"} and last["school_readiness"] == "2017-07"


def test_a_late_agency_holds_the_window_back_until_its_month_lands(tmp_path, monkeypatch):
    monkeypatch.setitem(BORN, "K", (2015, 7, "M"))
    # social care's June has not landed (its latest extract is May's); youth offending has no rows at all
    late = [(*r[:5], "2018-05", date(2018, 5, 4), *r[7:]) if r[0] == "social_care" and r[5] == "2018-06" else r
            for r in base_records() if r[0] != "youth_offending"]
    warehouse = tmp_path / "warehouse.duckdb"
    write_warehouse(warehouse, late)
    result = dbt_build(warehouse, tmp_path / "a")
    assert result.returncode == 0, result.stdout[-4000:]
    # police, drugs, housing and benefits sent June; the window ends with social care's May
    assert window(warehouse) == ("2014-01", "2018-05", date(2018, 6, 1))
    rows = features(warehouse)
    assert set(rows) == {"C", "C2", "C3"} and rows["C"]["history_months"] == 50  # no K yet

    # social care's June lands (with K's protection plan): K enters the mart, with it
    landed = [r for r in base_records() if r[0] != "youth_offending"] + [K_PROTECTION_PLAN]
    write_warehouse(warehouse, landed)
    result = dbt_build(warehouse, tmp_path / "a")
    assert result.returncode == 0, result.stdout[-4000:]
    assert window(warehouse) == ("2014-01", "2018-06", date(2018, 7, 1))
    k = features(warehouse)["K"]
    assert (k["prediction_date"], k["history_months"], k["child_protection_ever"]) == (date(2018, 7, 1), 54, True)

    full = tmp_path / "full.duckdb"  # the incremental models followed the window as a full build does
    write_warehouse(full, landed)
    assert dbt_build(full, tmp_path / "b").returncode == 0
    assert tables(warehouse) == tables(full)


def test_an_agency_more_than_two_months_late_holds_the_window_back_no_longer(tmp_path):
    """Social care's feed stopped after March while the others sent June: the window waits two months for it
    (to April), not for ever (the newest children would go unscored as long as the feed stays down)."""
    stopped = [r for r in base_records() if not (r[0] == "social_care" and r[5] > "2018-03")]
    warehouse = tmp_path / "warehouse.duckdb"
    write_warehouse(warehouse, stopped)
    result = dbt_build(warehouse, tmp_path / "a")
    assert result.returncode == 0, result.stdout[-4000:]
    assert window(warehouse) == ("2014-01", "2018-04", date(2018, 5, 1))


def _social_care_june_empty() -> list:
    """The base records with social care's June record in May (as in the late agency's test above): its June
    extract has no rows."""
    return [(*r[:5], "2018-05", date(2018, 5, 4), *r[7:]) if r[0] == "social_care" and r[5] == "2018-06" else r
            for r in base_records()]


def test_a_month_delivered_with_its_header_alone_does_not_hold_the_window_back(tmp_path):
    """Social care's June extract landed with no rows (no events that month): its June is delivered, as the
    others' are, and the window ends with June; it used to end with May, as for a late agency."""
    records = _social_care_june_empty()
    warehouse = tmp_path / "warehouse.duckdb"
    write_warehouse(warehouse, records)
    record_landed(warehouse, records, empty=("social_care", "2018-06"))
    result = dbt_build(warehouse, tmp_path / "a")
    assert result.returncode == 0, result.stdout[-4000:]
    assert window(warehouse) == ("2014-01", "2018-06", date(2018, 7, 1))


def test_a_month_not_delivered_still_holds_the_window_back_where_deliveries_are_recorded(tmp_path):
    """The same warehouse, social care's June not delivered: no rows and no record of it (the others' months are
    recorded). The window waits for it, ending with May."""
    records = _social_care_june_empty()
    warehouse = tmp_path / "warehouse.duckdb"
    write_warehouse(warehouse, records)
    record_landed(warehouse, records)
    result = dbt_build(warehouse, tmp_path / "a")
    assert result.returncode == 0, result.stdout[-4000:]
    assert window(warehouse) == ("2014-01", "2018-05", date(2018, 6, 1))
