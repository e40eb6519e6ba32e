"""The instance ed-pipeline configures: Dagster's SQLite event log, its engines kept instead of made per event."""

import sqlite3
from contextlib import closing
from pathlib import Path

import dagster as dg
import pytest

from ed_pipeline.defs import event_log_storage
from ed_pipeline.defs.event_log_storage import KEPT_ENGINES, PooledSqliteEventLogStorage
from ed_pipeline.refresh import DAGSTER_YAML, ensure_dagster_home
from ed_pipeline.settings import Settings


@dg.asset(check_specs=[dg.AssetCheckSpec("positive", asset="numbers")])
def numbers(context: dg.AssetExecutionContext):
    for n in range(20):
        context.log.info(f"line {n}")
    yield dg.MaterializeResult(metadata={"rows": 3})
    yield dg.AssetCheckResult(check_name="positive", passed=True)


@dg.asset(deps=[numbers])
def doubled() -> dg.MaterializeResult:
    return dg.MaterializeResult(metadata={"rows": 3})


@pytest.fixture
def home(tmp_path, monkeypatch) -> Path:
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "dagster"))
    return ensure_dagster_home(Settings(tmp_path / "data"))


def _materialise(instance: dg.DagsterInstance) -> str:
    result = dg.materialize([numbers, doubled], instance=instance)
    assert result.success
    return result.run_id


def test_the_written_instance_keeps_an_engine_per_database_not_one_per_event(home, monkeypatch):
    made = []
    create_engine = event_log_storage.db.create_engine
    monkeypatch.setattr(event_log_storage.db, "create_engine",
                        lambda *a, **k: made.append(a[0]) or create_engine(*a, **k))
    with dg.DagsterInstance.get() as instance:
        storage = instance.event_log_storage
        assert isinstance(storage, PooledSqliteEventLogStorage)
        assert Path(storage._base_dir) == home / "history" / "runs"  # where Dagster's default keeps them
        run_id = _materialise(instance)
        events = instance.all_logs(run_id)
        assert len(events) >= 40  # 20 log lines, step and asset events, each stored through the storage
        assert sorted(made) == sorted({*made})  # one engine per database: the run's and the index
        assert len(made) == 2
        assert instance.get_latest_materialization_event(dg.AssetKey("doubled")).run_id == run_id
        check = instance.event_log_storage.get_latest_asset_check_execution_by_key(
            [dg.AssetCheckKey(dg.AssetKey("numbers"), "positive")])
        assert check[dg.AssetCheckKey(dg.AssetKey("numbers"), "positive")].run_id == run_id

        run_ids = [run_id] + [_materialise(instance) for _ in range(KEPT_ENGINES + 1)]
        assert len(storage._engines) <= KEPT_ENGINES  # the oldest disposed of
        counts = [len(instance.all_logs(r)) for r in run_ids]  # evicted runs read again through new engines
        assert all(c == counts[0] for c in counts)
    assert not storage._engines  # the instance's dispose closes them

    with dg.DagsterInstance.get() as again:  # another process's view: everything was committed
        assert [len(again.all_logs(r)) for r in run_ids] == counts


MONTHS = dg.MonthlyPartitionsDefinition(start_date="2017-01", end_date="2017-05", fmt="%Y-%m")


@dg.asset(partitions_def=MONTHS)
def monthly() -> dg.MaterializeResult:
    return dg.MaterializeResult(metadata={"rows": 1})


def test_the_index_tables_found_are_remembered_not_asked_for_at_every_partition(home, monkeypatch):
    """Dagster asks the index whether its tags table exists for every partition's materialisation, making an engine
    to ask: it is asked once. Every partition's tags are stored all the same, and a wipe asks again."""
    from dagster._core.storage.event_log import SqliteEventLogStorage

    asked = []
    has_table = SqliteEventLogStorage.has_table  # Dagster's: an engine made, connected and disposed of
    monkeypatch.setattr(SqliteEventLogStorage, "has_table",
                        lambda self, name: asked.append(name) or has_table(self, name))
    with dg.DagsterInstance.get() as instance:
        for month in MONTHS.get_partition_keys():
            assert dg.materialize([monthly], instance=instance, partition_key=month).success
        assert asked == ["asset_event_tags"]  # without the memory, once a partition
        with closing(sqlite3.connect(Path(instance.event_log_storage._base_dir) / "index.db")) as index:
            tagged = index.execute("select count(*) from asset_event_tags where key = 'dagster/data_version'")
            assert tagged.fetchone() == (len(MONTHS.get_partition_keys()),)  # every partition's tags stored
        instance.event_log_storage.wipe()
        assert "asset_event_tags" in asked[1:]  # what was found is forgotten: the wipe's own checks ask again
        assert dg.materialize([monthly], instance=instance, partition_key="2017-01").success
        assert asked.count("asset_event_tags") == 2


def test_after_a_wipe_events_go_to_the_new_files(home):
    with dg.DagsterInstance.get() as instance:
        run_id = _materialise(instance)
        instance.event_log_storage.wipe()
        assert instance.all_logs(run_id) == []
        again = _materialise(instance)
    with dg.DagsterInstance.get() as fresh:
        assert len(fresh.all_logs(again)) >= 40
        assert fresh.get_latest_materialization_event(dg.AssetKey("doubled")).run_id == again


def test_dagster_yaml_written_by_ed_pipeline_is_brought_up_to_date_and_a_deployments_own_left_alone(tmp_path,
                                                                                                  monkeypatch):
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "dagster"))
    config = tmp_path / "dagster" / "dagster.yaml"
    config.parent.mkdir()
    old = "# Written by ed-pipeline. One run at a time: DuckDB allows one writer per file.\nrun_queue:\n" \
          "  max_concurrent_runs: 1\n"
    config.write_text(old)
    ensure_dagster_home(Settings(tmp_path / "data"))
    assert config.read_text() == DAGSTER_YAML
    assert sorted(p.name for p in config.parent.iterdir()) == ["dagster.yaml"]  # no temporary file left

    own = "run_queue:\n  max_concurrent_runs: 2\n"
    config.write_text(own)
    ensure_dagster_home(Settings(tmp_path / "data"))
    assert config.read_text() == own


def test_the_ui_gets_the_instance_configured_before_any_refresh(tmp_path, monkeypatch, capsys):
    """`make dagster` starts the UI with DAGSTER_HOME=$(ed-pipeline dagster-home): on a fresh data directory the
    UI's instance must already run one run at a time (two runs writing one DuckDB file would collide)."""
    from ed_pipeline.cli import main

    monkeypatch.setenv("DAGSTER_HOME", "unset")  # recorded, then unset: the command's own setting is undone after
    monkeypatch.delenv("DAGSTER_HOME")
    monkeypatch.setenv("ED_DATA_DIR", str(tmp_path / "data"))
    assert main(["dagster-home"]) == 0
    home = Path(capsys.readouterr().out.strip())
    assert home == (tmp_path / "data" / "dagster").resolve()
    assert (home / "dagster.yaml").read_text() == DAGSTER_YAML
    with dg.DagsterInstance.from_config(str(home)) as instance:
        assert instance.get_concurrency_config().run_queue_config.max_concurrent_runs == 1
        assert isinstance(instance.event_log_storage, PooledSqliteEventLogStorage)
