"""The landing sensor, the monthly schedule and the run-failure sensor."""

from __future__ import annotations

import os

import dagster as dg
import duckdb

from ed_pipeline.defs.automation import landing_requests, record_run_failures, source_keys
from ed_pipeline.settings import Settings
from ed_pipeline.sources import get_source


def land(settings: Settings, source: str, month: str, mtime: float) -> None:
    path = settings.landing_file(source, month)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("header\n")
    os.utime(path, (mtime, mtime))


def test_landing_sensor_requests_new_and_replaced_files_only(tmp_path, monkeypatch):
    monkeypatch.setenv("ED_DATA_DIR", str(tmp_path))
    settings = Settings.from_env()
    land(settings, "housing", "2017-05", 1_000)
    land(settings, "housing", "2017-06", 2_000)
    land(settings, "benefits", "2017-06", 3_000)
    (settings.landing_dir / "housing" / "readme.csv").write_text("not a month")

    # first tick: partitions never materialised are requested, the history already loaded is not
    requests, cursor = landing_requests(settings, None, {"housing": {"2017-05"}})
    by_source = {r.tags["ed_pipeline/source"]: r for r in requests}
    assert sorted(by_source) == ["benefits", "housing"]
    assert by_source["housing"].partition_key == "2017-06"
    assert by_source["housing"].asset_selection == source_keys(get_source("housing"))
    assert cursor == 3_000

    # nothing new: nothing requested
    assert landing_requests(settings, cursor, {})[0] == []

    # a replaced file comes back with a new run key; a new month arrives
    land(settings, "housing", "2017-05", 4_000)
    land(settings, "social_care", "2017-07", 5_000)
    requests, cursor = landing_requests(settings, cursor, {})
    assert sorted((r.tags["ed_pipeline/source"], r.partition_key) for r in requests) == [
        ("housing", "2017-05"), ("social_care", "2017-07")]
    assert all(r.run_key.endswith(":4000.0") or r.run_key.endswith(":5000.0") for r in requests)
    assert cursor == 5_000


def test_definitions_carry_schedule_sensors_and_retries():
    from ed_pipeline.definitions import defs

    schedule = defs.resolve_schedule_def("monthly_ingest_schedule")
    assert schedule.cron_schedule == "0 6 5 * *"
    assert {s.name for s in defs.sensors} >= {"landing_sensor", "record_run_failures"}
    raw_housing = defs.resolve_assets_def(dg.AssetKey(["raw", "housing"]))
    assert raw_housing.op.retry_policy is not None and raw_housing.op.retry_policy.max_retries == 2
    assert raw_housing.backfill_policy == dg.BackfillPolicy.single_run()


def test_failed_runs_are_recorded(tmp_path, monkeypatch):
    monkeypatch.setenv("ED_DATA_DIR", str(tmp_path))

    @dg.asset
    def always_fails():
        raise RuntimeError("disk on fire")

    with dg.instance_for_test() as instance:
        result = dg.materialize([always_fails], instance=instance, raise_on_error=False)
        assert not result.success
        run = instance.get_run_by_id(result.run_id)
        failure = next(e for e in instance.all_logs(result.run_id)
                       if e.dagster_event and e.dagster_event.event_type_value == "PIPELINE_FAILURE")
        context = dg.build_run_status_sensor_context(
            sensor_name="record_run_failures", dagster_instance=instance, dagster_run=run,
            dagster_event=failure.dagster_event).for_run_failure()
        record_run_failures(context)

    with duckdb.connect(str(Settings.from_env().ops_db_path), read_only=True) as conn:
        rows = conn.execute("select run_id, failed_steps, error from ops.run_failure").fetchall()
    assert rows == [(result.run_id, '["always_fails"]', "RuntimeError: disk on fire")]
