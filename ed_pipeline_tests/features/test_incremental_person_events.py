"""intermediate.int_person_events is incremental: a build after a relink (persons renumbered, a record unlinked)
gives exactly the tables a full build gives, and a build rewrites only the rows of records whose staging rows
or person changed (with nothing changed, none). After new, re-sent, corrected and vanished records the same
holds: test_incremental_staging compares every table, this one included."""

from __future__ import annotations

import shutil
from pathlib import Path

import duckdb

from ed_pipeline.settings import DBT_PROJECT_DIR
from ed_pipeline_tests.features.test_incremental_staging import tables
from ed_pipeline_tests.features.warehouse import base_records, dbt_build, planted_records, write_warehouse

LINKED = ("person_link", "person", "household_membership")


def relink(warehouse: Path, renumber: dict[str, str], unlink: tuple[str, ...] = ()) -> None:
    """What a full relink may do: the same people under other ids (swapped or new, in every linked table), and
    records no longer linked to anyone."""
    with duckdb.connect(str(warehouse)) as conn:
        whens = " ".join(f"when '{a}' then '{b}'" for a, b in renumber.items())
        case = f"case person_id {whens} else person_id end"
        for table in LINKED:
            conn.execute(f"update linked.{table} set person_id = {case}")
        conn.execute("delete from linked.person_link where list_contains(?, record_id)", [list(unlink)])


def test_an_incremental_build_after_a_relink_equals_a_full_build(tmp_path, dbt_built):
    renumber, unlink = {"M": "F", "F": "M", "Z": "Z-2"}, ("INC5-1",)  # M and F swap ids; Z renumbered
    incremental = tmp_path / "incremental.duckdb"
    dbt_built(incremental, base_records())
    relink(incremental, renumber, unlink)
    second = dbt_build(incremental, tmp_path / "a")
    assert second.returncode == 0, second.stdout[-4000:]

    full = tmp_path / "full.duckdb"
    write_warehouse(full, base_records())
    relink(full, renumber, unlink)
    whole = dbt_build(full, tmp_path / "b")
    assert whole.returncode == 0, whole.stdout[-4000:]

    built, expected = tables(incremental), tables(full)
    assert set(built) == set(expected) and "intermediate.int_person_events" in built
    for name in expected:
        assert built[name] == expected[name], name
    with duckdb.connect(str(incremental), read_only=True) as conn:
        persons = dict(conn.execute(
            "select record_id, any_value(person_id) from intermediate.int_person_events "
            "where record_id in ('INC1-1', 'INC1-2', 'INC9-1', 'INC5-1') group by 1").fetchall())
    assert persons == {"INC1-1": "F", "INC1-2": "M", "INC9-1": "Z-2"}  # INC5-1 unlinked: gone


def marked(warehouse: Path, table: str, column: str, by: str) -> dict[str, tuple[int, int]]:
    """`by` -> (rows, rows still carrying the mark in `column`) in `table`."""
    with duckdb.connect(str(warehouse), read_only=True) as conn:
        return {k: (n, m) for k, n, m in conn.execute(
            f"select {by}, count(*), count(*) filter (where {column} = 'MARKED') from {table} "
            "group by 1").fetchall()}


def built_and_marked(dbt_built, tmp_path: Path, records: list, table: str, column: str, by: str
                     ) -> tuple[Path, dict[str, tuple[int, int]]]:
    """A warehouse built (by the `dbt_built` fixture), `column` of every row of `table` set to a mark the inputs
    do not explain (the model's hash covers it, so a rewritten row loses it), then built again with nothing
    changed; the marks then."""
    warehouse = tmp_path / "warehouse.duckdb"
    dbt_built(warehouse, records)
    with duckdb.connect(str(warehouse)) as conn:
        conn.execute(f"update {table} set {column} = 'MARKED'")
    assert dbt_build(warehouse, tmp_path).returncode == 0
    return warehouse, marked(warehouse, table, column, by)


def test_a_build_rewrites_only_the_records_that_changed(tmp_path, dbt_built):
    table = "intermediate.int_person_events"
    warehouse, before = built_and_marked(dbt_built, tmp_path, base_records(), table, "ward", by="record_id")
    assert before and all(m == n for n, m in before.values())  # nothing changed: no row rewritten

    # INC2-1 re-sent in 2018-05 (its 2016-06 version is superseded), new records, Z's record relinked
    write_warehouse(warehouse, base_records() + planted_records())
    relink(warehouse, {"Z": "Z-2"})
    assert dbt_build(warehouse, tmp_path).returncode == 0
    after = marked(warehouse, table, "ward", by="record_id")
    rebuilt = {r for r, (n, m) in after.items() if m == 0}
    assert {r for r, (n, m) in after.items() if m == n} == set(before) - {"INC2-1", "INC9-1"}  # untouched
    assert rebuilt == {"INC2-1", "INC9-1"} | {r[1] for r in planted_records()}
    assert after["INC2-1"] == (2, 0)  # both versions rebuilt: the first one's superseded_on changed


def test_an_edit_of_a_models_comments_rewrites_none_of_its_rows_and_an_edit_of_its_sql_every_one(tmp_path,
                                                                                                    dbt_built):
    """The row hashes are salted with the model's code less its Jinja comments (macros/row_hash_incremental.sql):
    a header edited leaves every row as it was; a change of the SQL, even one that gives the same rows,
    rebuilds every record."""
    table = "intermediate.int_person_events"
    warehouse, before = built_and_marked(dbt_built, tmp_path, base_records(), table, "ward", by="record_id")
    assert before and all(m == n for n, m in before.values())
    project = tmp_path / "project"
    shutil.copytree(DBT_PROJECT_DIR, project, ignore=shutil.ignore_patterns("target", "logs"))
    model = project / "models" / "intermediate" / "int_person_events.sql"
    code = model.read_text()

    model.write_text(code.replace("{#-", "{#- A header edited.\n", 1))
    edited = dbt_build(warehouse, tmp_path / "edited", project, "--select", "int_person_events")
    assert edited.returncode == 0, edited.stdout[-4000:]
    assert marked(warehouse, table, "ward", by="record_id") == before  # no row rewritten

    model.write_text(code.replace("with records as (", "-- an SQL comment is SQL\nwith records as (", 1))
    changed = dbt_build(warehouse, tmp_path / "changed", project, "--select", "int_person_events")
    assert changed.returncode == 0, changed.stdout[-4000:]
    after = marked(warehouse, table, "ward", by="record_id")
    assert set(after) == set(before) and all(m == 0 for _, m in after.values())  # every record rebuilt
