"""Storage: the pipeline's writes do not merge DuckDB's row groups; a compaction merges them when due."""

from __future__ import annotations

from pathlib import Path

import duckdb
import pytest

from ed_pipeline import storage
from ed_pipeline.resilience import table_digests
from ed_pipeline.settings import Settings
from ed_pipeline.storage import CompactionPolicy, TableStorage, compact_if_due, table_storage
from ed_pipeline_tests.conftest import run_cli


def _append_months(db: Path, months: int, rows: int = 1000, table: str = "raw.housing") -> None:
    """`months` appends of `rows` rows, each through a pipeline connection of its own, as monthly refreshes do."""
    for month in range(months):
        with storage.connect(db) as conn:
            conn.execute(f"create schema if not exists {table.split('.')[0]}")
            conn.execute(f"create table if not exists {table} (m int, x int, note varchar)")
            conn.execute(f"insert into {table} select {month}, range, 'n' || range from range({rows})")


def _storage(db: Path) -> dict[str, TableStorage]:
    with duckdb.connect(str(db), read_only=True) as conn:
        return {t.table: t for t in table_storage(conn)}


def test_pipeline_connections_append_without_merging_and_a_compaction_due_merges_keeping_every_row(tmp_path):
    db = tmp_path / "warehouse.duckdb"
    _append_months(db, 14)
    _append_months(db, 3, table="raw.police")  # a table not due: merged with the rest all the same
    with storage.connect(db) as conn:
        conn.execute("delete from raw.housing where m = 3 and x < 500")  # a group wholly deleted goes anyway
    before = _storage(db)
    assert (before["raw.housing"].row_groups, before["raw.housing"].part_filled) == (14, 14)
    assert (before["raw.housing"].stored, before["raw.housing"].live) == (14_000, 13_500)
    assert before["raw.police"].row_groups == 3
    digests = table_digests(db)

    (compaction,) = compact_if_due([db, tmp_path / "agency_zone.duckdb"])  # a file not there: left out
    after = _storage(db)
    assert compaction.compacted and compaction.reasons == ["raw.housing: 14 row groups under half full"]
    assert (after["raw.housing"].row_groups, after["raw.housing"].deleted) == (1, 0)
    assert after["raw.police"].row_groups == 1
    assert compaction.row_groups == (17, 2) and compaction.deleted == (500, 0)
    assert table_digests(db) == digests
    assert "row groups 17 -> 2" in compaction.summary()

    (again,) = compact_if_due([db])  # nothing due now: the file is not written
    assert not again.compacted and again.summary() == "warehouse.duckdb: not due"
    (forced,) = compact_if_due([db], force=True)
    assert forced.reasons == ["asked for"] and table_digests(db) == digests


def test_a_compaction_leaves_this_process_s_connections_not_merging(tmp_path):
    """DuckDB's setting is the file's, for every connection of the process: a compaction turns merging on for its
    checkpoint only."""
    db = tmp_path / "agency_zone.duckdb"
    _append_months(db, 13)
    with storage.connect(db) as held:  # a connection open throughout, as a Dagster resource's can be
        compact_if_due([db])
        held.execute("insert into raw.housing select 99, range, 'late' from range(1000)")
        held.execute("checkpoint")
        assert held.execute("select current_setting('max_vacuum_tasks')").fetchone() == (0,)
    assert _storage(db)["raw.housing"].row_groups == 2


@pytest.mark.parametrize(("table", "due"), [
    (TableStorage("t", row_groups=13, part_filled=13, stored=13_000, live=13_000), True),
    (TableStorage("t", row_groups=13, part_filled=12, stored=1_500_000, live=1_500_000), False),
    (TableStorage("t", row_groups=9, part_filled=2, stored=1_000_000, live=900_000), True),
    (TableStorage("t", row_groups=9, part_filled=2, stored=1_000_000, live=910_000), False),  # 9%
    (TableStorage("t", row_groups=1, part_filled=1, stored=1_000, live=500), False),  # half deleted, but 500 rows
])
def test_the_policy_is_due_for_a_year_of_small_groups_or_a_tenth_of_the_rows_deleted(table, due):
    assert bool(CompactionPolicy().reasons([table])) is due


def test_no_writer_of_a_monthly_refresh_merges_row_groups(refreshed_world: Path, month_added_world: Path):
    """The month's refresh appends to the tables that keep their history (dbt's incremental models, the linked
    layer's tables written by their changes, the audit's cache) as a row group of its own, and keeps the rows it
    replaced stored: any later writer of the file merging (dbt, the model, the outputs, the audit), in any table,
    would have merged them with the earlier group and reclaimed those rows. (`ed-pipeline refresh` rewrites every
    landed month of raw, validated and pseudonymised whole, so those tables are one group either way.)"""
    before = {**{f"agency_zone:{t}": s for t, s in _storage(refreshed_world / "agency_zone.duckdb").items()},
              **{f"warehouse:{t}": s for t, s in _storage(refreshed_world / "warehouse.duckdb").items()}}
    after = {**{f"agency_zone:{t}": s for t, s in _storage(month_added_world / "agency_zone.duckdb").items()},
             **{f"warehouse:{t}": s for t, s in _storage(month_added_world / "warehouse.duckdb").items()}}
    appended = ("warehouse:staging.stg_police_incidents", "warehouse:intermediate.int_person_events",
                "warehouse:linked.person", "warehouse:linked.person_link", "agency_zone:leak_scan_cache.phrases")
    for table in appended:
        assert (before[table].row_groups, after[table].row_groups) == (1, 2), table
        assert after[table].stored > before[table].stored, table
    for table in ("warehouse:linked.person", "warehouse:intermediate.int_person_events"):
        assert before[table].deleted == 0 and after[table].deleted > 0, table


def test_ed_pipeline_compact_merges_every_file_when_asked_and_changes_no_table(refreshed_copy: Settings):
    paths = [refreshed_copy.agency_zone_path, refreshed_copy.warehouse_path]
    digests = [table_digests(p) for p in paths]

    result = run_cli("compact", data_dir=refreshed_copy.data_dir)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "agency_zone.duckdb: not due" in result.stderr and "warehouse.duckdb: not due" in result.stderr

    result = run_cli("compact", "--force", data_dir=refreshed_copy.data_dir)
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stderr.count("compacted in") == 2 and "asked for" in result.stderr
    assert [table_digests(p) for p in paths] == digests


def test_ed_pipeline_compact_says_there_is_nothing_to_compact_before_a_refresh(tmp_path):
    result = run_cli("compact", data_dir=tmp_path / "data")
    assert result.returncode == 2 and "run `ed-pipeline refresh` first" in result.stderr


def test_the_compact_storage_job_compacts_the_zone_files_when_due_in_words_the_audit_knows(tmp_path):
    """The job's run is read by the privacy audit as every run is: a word of it outside the vocabulary could be
    somebody's name, and stop every refresh (privacy/test_vocabulary.py)."""
    import dagster as dg

    from ed_pipeline.defs.maintenance import compact_storage
    from ed_pipeline.defs.privacy_audit import dagster_texts
    from ed_pipeline.defs.resources import ZoneConnection
    from ed_pipeline.privacy.leak_scan import STOPWORDS, _prepare_text
    from ed_pipeline_tests.privacy.test_vocabulary import _non_random_words

    agency, warehouse = tmp_path / "agency_zone.duckdb", tmp_path / "warehouse.duckdb"
    _append_months(agency, 14, table="intermediate.int_child_events")
    with storage.connect(agency) as conn:  # a tenth deleted, and more than half a row group of rows
        conn.execute("insert into intermediate.int_child_events select 0, range, 'x' from range(70000)")
        conn.execute("delete from intermediate.int_child_events where m = 0 and x < 62000")
    _append_months(warehouse, 2)
    instance = dg.DagsterInstance.ephemeral()
    result = compact_storage.execute_in_process(
        instance=instance,
        resources={"agency_zone": ZoneConnection(database=str(agency)),
                   "warehouse": ZoneConnection(database=str(warehouse))})
    assert result.success
    assert _storage(agency)["intermediate.int_child_events"].row_groups < 15
    assert _storage(warehouse)["raw.housing"].row_groups == 2  # not due: left as it was
    logged = [e.user_message for e in instance.all_logs(result.run_id)]
    (compacted,) = [m for m in logged if m.startswith("agency_zone.duckdb: compacted in")]
    assert "row groups under half full" in compacted and "deleted rows stored (" in compacted
    assert "warehouse.duckdb: not due" in logged
    words = _non_random_words(_prepare_text(f"{where} {text}") for where, text in dagster_texts(instance))
    assert "compacted" in words and not words - STOPWORDS, sorted(words - STOPWORDS)


def test_a_refresh_compacts_the_files_that_are_due_after_its_stages(tmp_path, monkeypatch):
    from ed_pipeline import refresh

    settings = Settings(data_dir=tmp_path / "data")
    settings.data_dir.mkdir()
    _append_months(settings.agency_zone_path, 13)
    _append_months(settings.warehouse_path, 2)
    monkeypatch.setenv("DAGSTER_HOME", str(settings.data_dir / "dagster"))
    stages = []
    monkeypatch.setattr(refresh, "run_in_child", lambda stage, *args, **kwargs: stages.append(stage) or [])

    result = refresh._refresh(settings, ["2017-08"], progress=None, only=None)
    assert stages == ["ingest", "analyse"]
    assert [c.database for c in result.compactions if c.compacted] == ["agency_zone.duckdb"]
    assert _storage(settings.agency_zone_path)["raw.housing"].row_groups == 1
    assert _storage(settings.warehouse_path)["raw.housing"].row_groups == 2
