"""The staging models are incremental: a build after new, re-sent, corrected and vanished records gives exactly
the tables a full build of the same sources gives, and rebuilds nothing whose source did not change."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import duckdb

from ed_pipeline_tests.features.warehouse import base_records, dbt_build, planted_records, write_warehouse

SCHEMAS = ("staging", "intermediate", "features")


def tables(warehouse: Path) -> dict[str, list[tuple]]:
    """Every dbt-built table and view, its rows sorted."""
    with duckdb.connect(str(warehouse), read_only=True) as conn:
        names = [f"{s}.{t}" for s, t in conn.execute(
            "select table_schema, table_name from information_schema.tables where table_schema in (?, ?, ?) "
            "order by 1, 2", list(SCHEMAS)).fetchall()]
        return {name: sorted(conn.execute(f"select * from {name}").fetchall(), key=repr) for name in names}


def next_month(records):
    """What a later refresh sees: new months (late, future and corrected records), an old month re-sent with a
    record changed, a record gone from its month, and one extract carrying a record twice."""
    out = [r for r in records if r[1] != "B1-C"]  # gone: every version of it
    out = [(*r[:7], "Crouch", *r[8:]) if r[1] == "INC1-1" else r for r in out]  # re-sent with another ward
    twice = next(r for r in out if r[0] == "social_care")
    out.append((*twice[:6], date(2013, 1, 1), *twice[7:]))  # the same key again in its extract, an older date
    return out + planted_records()


def test_an_incremental_build_equals_a_full_build(tmp_path, dbt_built):
    base = base_records()
    assert {"B1-C", "INC1-1"} <= {r[1] for r in base}
    later = next_month(base)

    incremental = tmp_path / "incremental.duckdb"
    dbt_built(incremental, base)
    write_warehouse(incremental, later)
    second = dbt_build(incremental, tmp_path / "a")
    assert second.returncode == 0, second.stdout[-4000:]

    full = tmp_path / "full.duckdb"
    write_warehouse(full, later)
    whole = dbt_build(full, tmp_path / "b")
    assert whole.returncode == 0, whole.stdout[-4000:]

    built, expected = tables(incremental), tables(full)
    assert set(built) == set(expected)
    assert {"staging.stg_police_incidents", "intermediate.int_person_events", "intermediate.int_child_events",
            "intermediate.int_child_household_members"} <= set(built)
    for name in expected:
        assert built[name] == expected[name], name
    with duckdb.connect(str(incremental), read_only=True) as conn:
        # the changes reached staging: the correction supersedes INC2's first version, B1-C is gone
        assert conn.execute("select count(*) from staging.stg_benefits where record_id = 'B1-C'").fetchone() == (0,)
        assert conn.execute("select count(superseded_on) from staging.stg_police_incidents "
                            "where record_id = 'INC2-1'").fetchone() == (1,)


def test_a_build_rebuilds_only_what_changed_in_the_sources(tmp_path, dbt_built):
    warehouse = tmp_path / "warehouse.duckdb"
    dbt_built(warehouse, base_records())
    with duckdb.connect(str(warehouse)) as conn:  # a mark the sources do not explain, on two records
        conn.execute("update staging.stg_police_incidents set ward = 'MARKED' where record_id in ('INC1-1', 'INC2-1')")
    write_warehouse(warehouse, base_records() + planted_records())  # INC2-1 re-sent in 2018-05, INC1-1 not
    assert dbt_build(warehouse, tmp_path).returncode == 0
    with duckdb.connect(str(warehouse), read_only=True) as conn:
        marked = dict(conn.execute("select record_id, count(*) filter (where ward = 'MARKED') from "
                                   "staging.stg_police_incidents where record_id in ('INC1-1', 'INC2-1') "
                                   "group by 1").fetchall())
    assert marked == {"INC1-1": 1, "INC2-1": 0}  # untouched; rebuilt with its correction


def reverse_rows(warehouse: Path, source: str) -> None:
    """The same rows of pseudonymised.<source> stored in the reverse order (as a re-processed month may be)."""
    with duckdb.connect(str(warehouse)) as conn:
        conn.execute(f"create or replace table pseudonymised.{source} as select * exclude (_n) from "
                     f"(select *, row_number() over () as _n from pseudonymised.{source}) order by _n desc")


def test_a_record_twice_in_one_extract_keeps_its_later_row_however_the_rows_are_stored(tmp_path):
    """One extract carries a record twice with the same event date (the agency's second copy corrects the first):
    the later row of the file is kept, by a full build of the rows in either stored order and by an incremental
    build after the month is stored again in the other order."""
    first = ("police_incidents", "INC7-1", "M", "INC7", "Victim", "2017-11", date(2017, 11, 3), "Vange",
             {"incident_type": "Other", "domestic_abuse": False})
    second = (*first[:8], {"incident_type": "Domestic abuse", "domestic_abuse": True})

    def kept(warehouse: Path) -> tuple:
        with duckdb.connect(str(warehouse), read_only=True) as conn:
            return conn.execute(
                "select s.incident_type, f.domestic_abuse_12m from staging.stg_police_incidents as s, "
                "features.child_features as f where s.record_id = 'INC7-1' and f.person_id = 'C'").fetchone()

    warehouses = {}
    for order in ("as written", "reversed"):
        warehouse = warehouses[order] = tmp_path / f"{order.replace(' ', '_')}.duckdb"
        write_warehouse(warehouse, [*base_records(), first, second])
        if order == "reversed":
            reverse_rows(warehouse, "police_incidents")
        result = dbt_build(warehouse, tmp_path / order.replace(" ", "_"))
        assert result.returncode == 0, result.stdout[-4000:]
    # INC1 and INC4 before, INC7 now: the correction is what counts
    assert {order: kept(w) for order, w in warehouses.items()} == {
        "as written": ("Domestic abuse", 3), "reversed": ("Domestic abuse", 3)}

    incremental = warehouses["as written"]
    reverse_rows(incremental, "police_incidents")
    assert dbt_build(incremental, tmp_path / "as_written").returncode == 0
    assert tables(incremental) == tables(warehouses["reversed"])
