"""The landing sensor, the monthly schedule and the run-failure sensor."""

from __future__ import annotations

import os
from datetime import UTC, datetime

import dagster as dg
import duckdb
from dagster._core.test_utils import create_run_for_test

from ed_pipeline.defs.automation import (
    REFRESH_TRIGGER,
    SOURCES_TAG,
    TRIGGER_TAG,
    landing_requests,
    record_run_failures,
    seen_files,
    source_keys,
)
from ed_pipeline.settings import Settings
from ed_pipeline.sources import get_source
from ed_pipeline_tests.conftest import release_held_back


def land(settings: Settings, source: str, month: str, mtime: float) -> None:
    path = settings.landing_file(source, month)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("header\n")
    os.utime(path, (mtime, mtime))


def key(settings: Settings, source: str, month: str, delivery: int = 1) -> str:
    """The run-key part of one landed file: its path, modification time and size, and which delivery it is."""
    path = settings.landing_file(source, month)
    return f"{path}:{path.stat().st_mtime}:{path.stat().st_size}" + (f"#{delivery}" if delivery > 1 else "")


def test_landing_sensor_requests_new_and_replaced_files_only(tmp_path, monkeypatch):
    monkeypatch.setenv("ED_DATA_DIR", str(tmp_path))
    settings = Settings.from_env()
    land(settings, "housing", "2017-05", 1_000)
    land(settings, "housing", "2017-06", 2_000)
    land(settings, "benefits", "2017-06", 3_000)
    (settings.landing_dir / "housing" / "readme.csv").write_text("not a month")

    # first tick: partitions never materialised are requested, the history already loaded is not; one run for
    # the month, for both sources that sent it
    requests, seen = landing_requests(settings, None, {"housing": {"2017-05"}})
    [june] = requests
    assert june.partition_key == "2017-06" and june.tags[SOURCES_TAG] == "housing,benefits"
    assert june.asset_selection == source_keys(get_source("housing")) + source_keys(get_source("benefits"))
    assert sorted(seen) == ["benefits/2017-06.csv", "housing/2017-05.csv", "housing/2017-06.csv"]

    # nothing new: nothing requested
    assert landing_requests(settings, seen, {})[0] == []

    # a replaced file comes back with a new run key (its month again, for that source alone); a new month arrives
    land(settings, "housing", "2017-05", 4_000)
    land(settings, "social_care", "2017-07", 5_000)
    requests, seen = landing_requests(settings, seen, {})
    assert sorted((r.tags[SOURCES_TAG], r.partition_key) for r in requests) == [
        ("housing", "2017-05"), ("social_care", "2017-07")]
    assert [r.run_key for r in requests] == [key(settings, "housing", "2017-05", delivery=2),
                                             key(settings, "social_care", "2017-07")]

    # files copied with their times kept (rsync -a, cp -p, a move from a staging folder) are older than the newest
    # seen: a new one and a corrected re-send of an old month (same time, another size) are still requested
    land(settings, "drugs_alcohol", "2017-07", 1_500)
    settings.landing_file("housing", "2017-06").write_text("header\nrow\n")
    os.utime(settings.landing_file("housing", "2017-06"), (2_000, 2_000))
    requests, seen = landing_requests(settings, seen, {})
    assert sorted((r.tags[SOURCES_TAG], r.partition_key) for r in requests) == [
        ("drugs_alcohol", "2017-07"), ("housing", "2017-06")]
    assert landing_requests(settings, seen, {})[0] == []


def test_a_file_sent_back_as_it_was_before_is_requested_again(tmp_path, monkeypatch):
    """March lands (A), is replaced (B), then A is sent back, moved in with its times kept: the same state as the
    first delivery. Dagster never runs a run key it has run before, so the third request needs a key of its own,
    or the month keeps B's rows; so too when the file was taken away in between."""
    monkeypatch.setenv("ED_DATA_DIR", str(tmp_path))
    settings = Settings.from_env()
    path = settings.landing_file("housing", "2017-03")
    requests, seen = landing_requests(settings, {}, {})
    run_keys = []
    for text, mtime in (("a\n", 1_000), ("bb\n", 2_000), ("a\n", 1_000), (None, 0), ("bb\n", 2_000)):
        if text is None:
            path.unlink()
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
            os.utime(path, (mtime, mtime))
        requests, seen = landing_requests(settings, seen, {})
        run_keys += [r.run_key for r in requests]
    assert len(run_keys) == 4 and len(set(run_keys)) == 4, run_keys
    assert landing_requests(settings, seen, {})[0] == []


def test_misnamed_files_are_left_out_and_stop_no_other(tmp_path, monkeypatch):
    """A file named for a month the partitions do not have (before 2013-01, this month or later, a typo) is never
    requested: Dagster would refuse its partition key and, with it, every request of the tick."""
    monkeypatch.setenv("ED_DATA_DIR", str(tmp_path))
    settings = Settings.from_env()
    land(settings, "housing", "2017-06", 1_000)
    this_month = datetime.now(UTC).strftime("%Y-%m")
    for source, month in (("benefits", "2012-12"), ("benefits", "2062-11"), ("police_incidents", this_month),
                          ("social_care", "2017-6"), ("social_care", "2017-13")):
        land(settings, source, month, 2_000)
    [request] = landing_requests(settings, None, {})[0]
    assert request.partition_key == "2017-06"
    assert settings.landed_months() == ["2017-06"]
    assert sorted(p.relative_to(settings.landing_dir).as_posix() for p in settings.misnamed_landing_files()) == [
        "benefits/2012-12.csv", "benefits/2062-11.csv", f"police_incidents/{this_month}.csv",
        "social_care/2017-13.csv", "social_care/2017-6.csv"]


def test_a_first_tick_over_an_empty_landing_dir_sees_every_later_file(tmp_path, monkeypatch):
    """The first tick's rule (only partitions never materialised) holds for the first tick alone: after one over an
    empty landing dir, a late file for a month already materialised (an empty partition of a schedule run) is
    requested. An earlier version's cursor (the newest time seen) counts the files no newer than it as seen."""
    monkeypatch.setenv("ED_DATA_DIR", str(tmp_path))
    settings = Settings.from_env()
    settings.landing_dir.mkdir(parents=True)
    requests, seen = landing_requests(settings, None, {})
    assert requests == [] and seen == {}
    land(settings, "housing", "2017-06", 1_000)
    [late] = landing_requests(settings, seen, {"housing": {"2017-06"}})[0]
    assert late.partition_key == "2017-06"

    land(settings, "benefits", "2017-06", 2_000)
    assert seen_files(None, settings) is None and seen_files("not a cursor", settings) is None
    assert seen_files("1500.0", settings) == {"housing/2017-06.csv": "1000.0:7"}


def test_one_run_ingests_every_source_of_a_month_and_a_broken_file_stops_only_its_own(refreshed_copy):
    """The landing sensor's one run for a month: every source whose file is good is ingested, and a source whose
    file is unreadable fails its blocking check and stops only its own assets."""
    from ed_pipeline.defs.pseudonymised import pseudonymised_key
    from ed_pipeline.defs.raw import READABLE_CHECK, raw_key
    from ed_pipeline.sources import SOURCES

    settings = refreshed_copy
    defs = definitions_over(settings)
    landed = release_held_back(settings)
    month = landed[0].stem
    settings.landing_file("housing", month).write_bytes(b"")  # the agency sent an empty file
    with dg.DagsterInstance.get() as instance:
        materialized = {s.name: set(instance.get_materialized_partitions(raw_key(s))) for s in SOURCES}
        [request] = landing_requests(settings, None, materialized)[0]
        sent = sorted(p.parent.name for p in landed)
        assert request.partition_key == month and sorted(request.tags[SOURCES_TAG].split(",")) == sent
        result = defs.resolve_job_def("ingest").execute_in_process(
            instance=instance, partition_key=month, asset_selection=request.asset_selection, tags=request.tags,
            raise_on_error=False)
    assert not result.success
    failed = {(e.asset_key.path[-1], e.check_name) for e in result.get_asset_check_evaluations() if not e.passed}
    assert failed == {("housing", READABLE_CHECK)}
    done = {e.asset_key for e in result.get_asset_materialization_events() if e.asset_key}
    assert done >= {pseudonymised_key(get_source(name)) for name in sent if name != "housing"}
    assert pseudonymised_key(get_source("housing")) not in done
    with duckdb.connect(str(settings.warehouse_path), read_only=True) as conn:
        for name in sent:
            rows = conn.execute(f"select count(*) from pseudonymised.{name} where extract_month = ?", [month]
                                ).fetchone()[0]
            assert (rows == 0) == (name == "housing"), name


def test_definitions_carry_schedule_sensors_and_retries():
    from ed_pipeline.definitions import defs

    schedule = defs.resolve_schedule_def("monthly_ingest_schedule")
    assert schedule.cron_schedule == "0 6 5 * *"
    assert {s.name for s in defs.sensors} >= {"landing_sensor", "record_run_failures", "downstream_automation"}
    raw_housing = defs.resolve_assets_def(dg.AssetKey(["raw", "housing"]))
    assert raw_housing.op.retry_policy is not None and raw_housing.op.retry_policy.max_retries == 2
    assert raw_housing.backfill_policy == dg.BackfillPolicy.single_run()
    graph = defs.resolve_asset_graph()
    automated = {node.group_name for node in graph.asset_nodes if node.automation_condition is not None}
    assert automated == {"linked", "features", "model", "outputs"}, "everything after ingestion, nothing before"


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
        record_run_failures(context)  # reported twice (run monitoring and the landing sensor): recorded once

    with duckdb.connect(str(Settings.from_env().ops_db_path), read_only=True) as conn:
        rows = conn.execute("select run_id, failed_steps, error from ops.run_failure").fetchall()
    assert rows == [(result.run_id, '["always_fails"]', "RuntimeError: disk on fire")]


def definitions_over(settings: Settings) -> dg.Definitions:
    """The one Definitions, with its resources pointing at `settings`' data directory (they are bound when
    ed_pipeline.definitions is first imported, possibly for another directory)."""
    from ed_pipeline.definitions import defs
    from ed_pipeline.defs.features import dbt_resource
    from ed_pipeline.defs.resources import all_resources

    return dg.Definitions(assets=defs.assets, asset_checks=defs.asset_checks, jobs=defs.jobs,
                          schedules=defs.schedules, sensors=defs.sensors, executor=defs.executor,
                          resources={**all_resources(settings), "dbt": dbt_resource})


def requested(result) -> set[str]:
    return {key.to_user_string() for key in DOWNSTREAM if result.get_requested_partitions(key)}


DOWNSTREAM = [dg.AssetKey(["linked", "person_link"]), dg.AssetKey(["staging", "stg_drugs_alcohol"]),
              dg.AssetKey(["staging", "stg_housing"]), dg.AssetKey(["features", "child_features"]),
              dg.AssetKey(["model", "school_readiness_model"]), dg.AssetKey(["outputs", "community_risk"])]


def test_downstream_follows_an_ingested_month_once_but_not_a_refresh(refreshed_copy):
    """After the schedule (or the landing sensor) ingests a month, the automation daemon requests linking and
    everything after it, once; months ingested by `ed-pipeline refresh`, which runs them itself, request nothing."""
    settings = refreshed_copy
    defs = definitions_over(settings)
    month = release_held_back(settings)[0].stem
    ingest = defs.resolve_job_def("ingest")
    with dg.DagsterInstance.get() as instance:  # DAGSTER_HOME of the refreshed copy
        tick = dg.evaluate_automation_conditions(defs=defs, instance=instance)
        assert tick.total_requested == 0, "nothing new since the refresh"

        assert ingest.execute_in_process(instance=instance, partition_key=month, tags={TRIGGER_TAG: REFRESH_TRIGGER},
                                         asset_selection=source_keys(get_source("housing"))).success
        tick = dg.evaluate_automation_conditions(defs=defs, instance=instance, cursor=tick.cursor)
        assert tick.total_requested == 0, "the refresh runs what follows ingestion itself"

        assert ingest.execute_in_process(instance=instance, partition_key=month,
                                         asset_selection=source_keys(get_source("drugs_alcohol"))).success
        tick = dg.evaluate_automation_conditions(defs=defs, instance=instance, cursor=tick.cursor)
        # linked -> features (only the staging model of the source that changed) -> model -> outputs
        assert requested(tick) == {"linked/person_link", "staging/stg_drugs_alcohol", "features/child_features",
                                   "model/school_readiness_model", "outputs/community_risk"}
        assert all(tick.get_requested_partitions(key) <= {None} for key in DOWNSTREAM), "whole-history runs"

        tick = dg.evaluate_automation_conditions(defs=defs, instance=instance, cursor=tick.cursor)
        assert tick.total_requested == 0, "requested once, not again while nothing changes"


def test_landing_sensor_over_a_real_landing_dir(tmp_path, monkeypatch):
    """The sensor itself, ticked over a landing directory: a dropped file is requested once, a replaced one again."""
    monkeypatch.setenv("ED_DATA_DIR", str(tmp_path))
    from ed_pipeline.definitions import defs

    sensor = defs.resolve_sensor_def("landing_sensor")
    settings = Settings.from_env()
    with dg.instance_for_test() as instance:
        def tick(cursor):
            return sensor.evaluate_tick(dg.build_sensor_context(instance=instance, cursor=cursor, definitions=defs))

        first = tick(None)
        assert not first.run_requests and first.skip_message

        land(settings, "housing", "2017-06", 1_700_000_000)
        path = settings.landing_file("housing", "2017-06")
        second = tick(first.cursor)
        [request] = second.run_requests
        assert request.partition_key == "2017-06"
        assert request.asset_selection == source_keys(get_source("housing"))
        assert request.run_key == key(settings, "housing", "2017-06")
        # the daemon launches the requested run (a delivery requested and never loaded, with no run unfinished, is
        # requested again: test_half_loaded.py)
        create_run_for_test(instance, job_name="ingest", status=dg.DagsterRunStatus.STARTED,
                            tags={"dagster/run_key": request.run_key})

        assert not tick(second.cursor).run_requests, "an unchanged file is not requested again"

        os.utime(path, (1_700_000_100, 1_700_000_100))  # the agency replaced it
        replaced = tick(second.cursor)
        [again] = replaced.run_requests
        assert again.partition_key == "2017-06"
        assert again.run_key == key(settings, "housing", "2017-06", delivery=2) != request.run_key

        # a misnamed file beside a good one: the good one is requested, the tick does not fail on the other
        land(settings, "benefits", "2062-11", 1_700_000_200)
        land(settings, "benefits", "2017-07", 1_700_000_200)
        third = tick(replaced.cursor)
        [july] = third.run_requests
        assert july.partition_key == "2017-07"
        fourth = tick(third.cursor)
        assert not fourth.run_requests and "1 misnamed file(s) left out" in fourth.skip_message


def test_files_that_would_never_be_ingested_are_reported_whatever_their_name(tmp_path, monkeypatch):
    """An upper-case extension (Windows), an Excel workbook, a misspelt source folder, a file dropped in landing/
    itself: never requested, so each is reported as left out, beside the misnamed months; hidden files are not."""
    monkeypatch.setenv("ED_DATA_DIR", str(tmp_path))
    settings = Settings.from_env()
    land(settings, "housing", "2017-06", 1_000)
    for name in ("housing/2017-07.CSV", "benefits/2017-07.xlsx", "socialcare/2017-07.csv", "2017-07.csv",
                 "housing/.2017-07.csv.Xa81k", ".DS_Store"):
        (settings.landing_dir / name).parent.mkdir(parents=True, exist_ok=True)
        (settings.landing_dir / name).write_text("header\n")
    [request] = landing_requests(settings, None, {})[0]
    assert request.partition_key == "2017-06"
    assert sorted(settings.landing_name(p) for p in settings.misnamed_landing_files()) == [
        "2017-07.csv", "benefits/2017-07.xlsx", "housing/2017-07.CSV", "socialcare/2017-07.csv"]
