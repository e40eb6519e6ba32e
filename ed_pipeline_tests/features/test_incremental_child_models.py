"""intermediate.int_child_household_members and int_child_events are incremental by row hash (a child at the
prediction date is rebuilt whole when any of its rows changes): a build after a relink and a change of
households gives exactly the tables a full build gives, and a build rewrites only the children whose rows changed
(with nothing changed, none). After new, re-sent, corrected and vanished records the same holds:
test_incremental_staging compares every table, these included."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import duckdb

from ed_pipeline_tests.features.test_incremental_person_events import built_and_marked, marked, relink
from ed_pipeline_tests.features.test_incremental_staging import tables
from ed_pipeline_tests.features.warehouse import base_records, dbt_build, write_warehouse

MODELS = ("intermediate.int_child_household_members", "intermediate.int_child_events")
# an event of C2 before C2's prediction date (2015-11-01): int_child_events then has rows of two children
C2_REFERRAL = ("social_care", "SC9", "C2", "SC9", "child", "2015-06", date(2015, 6, 1), None,
               {"referral_source": "Health", "category": "Referral", "primary_need": "N1"})


def records() -> list:
    return [*base_records(), C2_REFERRAL]


def move_households(warehouse: Path) -> None:
    """X stays in H past C's prediction date (C gains a member), and C2 joins H (C2 gets a household)."""
    with duckdb.connect(str(warehouse)) as conn:
        conn.execute("update linked.household_membership set valid_to = null where person_id = 'X'")
        conn.execute("insert into linked.household_membership values ('H', 'C2', date '2014-01-01', null)")


def rows(warehouse: Path, table: str) -> list[tuple]:
    with duckdb.connect(str(warehouse), read_only=True) as conn:
        return sorted(conn.execute(f"select * exclude (_row_hash) from {table}").fetchall(), key=repr)


def test_an_incremental_build_after_a_relink_and_moves_equals_a_full_build(tmp_path, dbt_built):
    renumber, unlink = {"S": "S-2", "M": "F", "F": "M"}, ("SC1",)  # S renumbered, M and F swap ids

    incremental = tmp_path / "incremental.duckdb"
    dbt_built(incremental, records())
    before = {table: rows(incremental, table) for table in MODELS}
    relink(incremental, renumber, unlink)
    move_households(incremental)
    second = dbt_build(incremental, tmp_path / "a")
    assert second.returncode == 0, second.stdout[-4000:]

    full = tmp_path / "full.duckdb"
    write_warehouse(full, records())
    relink(full, renumber, unlink)
    move_households(full)
    whole = dbt_build(full, tmp_path / "b")
    assert whole.returncode == 0, whole.stdout[-4000:]

    built, expected = tables(incremental), tables(full)
    assert set(built) == set(expected) and set(MODELS) <= set(built)
    for name in expected:
        assert built[name] == expected[name], name
    for table in MODELS:  # the changes reached both models
        assert rows(incremental, table) != before[table], table
    with duckdb.connect(str(incremental), read_only=True) as conn:
        members = conn.execute("select person_id, list(member_id order by member_id) "
                               "from intermediate.int_child_household_members group by 1 order by 1").fetchall()
    # at D C2 had joined H and X had not left; at C2's date (2015-11-01) C had not yet moved into H
    assert members == [("C", ["C", "C2", "F", "M", "S-2", "X"]), ("C2", ["C2", "F", "M", "S-2", "X"]),
                       ("C3", ["C3"])]


def test_int_child_events_rewrites_only_the_children_whose_rows_changed(tmp_path, dbt_built):
    table = "intermediate.int_child_events"
    warehouse, before = built_and_marked(dbt_built, tmp_path, records(), table, "ward", by="person_id")
    assert set(before) == {"C", "C2"} and all(m == n for n, m in before.values())  # nothing changed: no rewrite

    # INC1-1 (M's incident, counted for C) re-sent in its extract with another ward: C's rows change, C2's do not
    write_warehouse(warehouse, [(*r[:7], "Crouch", *r[8:]) if r[1] == "INC1-1" else r for r in records()])
    assert dbt_build(warehouse, tmp_path).returncode == 0
    after = marked(warehouse, table, "ward", by="person_id")
    assert after["C"] == (before["C"][0], 0)  # every row of C rebuilt
    assert after["C2"] == before["C2"]  # untouched


def test_int_child_household_members_rewrites_only_the_children_whose_rows_changed(tmp_path, dbt_built):
    table = "intermediate.int_child_household_members"
    warehouse, before = built_and_marked(dbt_built, tmp_path, records(), table, "household_id", by="person_id")
    assert set(before) == {"C", "C2", "C3"} and all(m == n for n, m in before.values())  # no rewrite

    relink(warehouse, {"S": "S-2"})  # C's brother renumbered: C's rows change, C2's and C3's do not
    assert dbt_build(warehouse, tmp_path).returncode == 0
    after = marked(warehouse, table, "household_id", by="person_id")
    assert after["C"] == (before["C"][0], 0)  # every row of C rebuilt
    assert {p: after[p] for p in ("C2", "C3")} == {p: before[p] for p in ("C2", "C3")}  # untouched
