"""An ingest run killed between raw's write and the later layers' (validated and quarantine, pseudonymised) leaves
raw holding the month's new file while the rest hold the old one: raw rows = validated + quarantined is false. The
landing sensor marks the killed run failed (its worker process is gone: `defs/run_worker.py`), notices the month half
loaded and runs it again, once a delivery of its file; so too a month whose requested delivery was never loaded (a run
killed before raw's write committed, or an unreadable file)."""

from __future__ import annotations

import os
import shutil
import signal

import dagster as dg
import duckdb
from dagster._core.utils import make_new_run_id

from ed_pipeline.defs.automation import source_keys
from ed_pipeline.defs.run_worker import worker_tags
from ed_pipeline.resilience import table_digests
from ed_pipeline.settings import Settings
from ed_pipeline.sources import get_source
from ed_pipeline_tests.defs.test_automation import definitions_over
from ed_pipeline_tests.faults.support import once_unlocked, run_request_in_child

SOURCE = "housing"
KILLED_BETWEEN = f"commit:validated.{SOURCE}"  # raw committed; validated and quarantine rolled back
KILLED_BEFORE_RAW = f"commit:raw.{SOURCE}"  # raw's write rolled back: the month as the previous delivery left it


def counts(settings: Settings, month: str) -> tuple[int, int, int]:
    """The month's raw rows, validated raw rows and quarantined rows of the source (reconciled: first = others)."""
    with duckdb.connect(str(once_unlocked(settings.agency_zone_path)), read_only=True) as conn:
        return conn.execute(
            f"select (select count(*) from raw.{SOURCE} where extract_month = $m), "
            f"(select count(distinct _row_number) from validated.{SOURCE} where extract_month = $m), "
            f"(select count(*) from quarantine.{SOURCE} where extract_month = $m)", {"m": month}).fetchone()


def ticks(defs: dg.Definitions, instance: dg.DagsterInstance):
    """The landing sensor's evaluation over `instance`: a cursor in, the tick's result out."""
    sensor = defs.resolve_sensor_def("landing_sensor")
    return lambda cursor: sensor.evaluate_tick(dg.build_sensor_context(instance=instance, cursor=cursor,
                                                                       definitions=defs))


def killed_at(request: dg.RunRequest, settings: Settings, tmp_path, fault: str) -> None:
    """Run `request` in a process of its own, SIGKILLed at the fault point."""
    log = tmp_path / "killed.log"
    rc = run_request_in_child(request, settings.data_dir, log, ED_PIPELINE_FAULT_AT=fault)
    assert rc == -signal.SIGKILL, log.read_text()[-3000:]


def requested_once_when_found_dead(instance: dg.DagsterInstance, tick, request: dg.RunRequest, landed,
                                   month: str) -> tuple:
    """The killed run of `request` (the tick `landed` requested it) is left started. While another run is started
    whose worker runs, the sensor requests nothing (that run may be the one still loading the month), but it finds
    the killed run's worker gone and marks the run failed; once no run is unfinished, the month is requested once
    again, and not at the next tick. That request, and its tick."""
    [killed] = instance.get_runs(dg.RunsFilter(tags={"dagster/run_key": request.run_key}))
    assert killed.status == dg.DagsterRunStatus.STARTED
    live_id = make_new_run_id()  # a run whose worker is this process: it runs
    live = instance.create_run_for_job(dg.GraphDefinition("loading").to_job(), run_id=live_id,
                                       status=dg.DagsterRunStatus.STARTED, tags=worker_tags(live_id))
    assert not tick(landed.cursor).run_requests, "a run whose worker runs may still be loading the month"
    killed = instance.get_run_by_id(killed.run_id)
    assert killed.status == dg.DagsterRunStatus.FAILURE, "the sensor waits on a run whose worker is gone"
    [failure] = instance.all_logs(killed.run_id, of_type=dg.DagsterEventType.RUN_FAILURE)
    assert killed.run_id in failure.message and "is not running any more" in failure.message, failure.message
    assert instance.get_run_by_id(live.run_id).status == dg.DagsterRunStatus.STARTED, "a live run was failed"

    instance.report_run_canceled(live)
    noticed = tick(landed.cursor)
    [again] = noticed.run_requests
    assert again.partition_key == month and again.asset_selection == source_keys(get_source(SOURCE))
    assert again.run_key != request.run_key
    assert not tick(noticed.cursor).run_requests, "requested once, not every tick until it has run"
    return again, noticed


def test_a_month_a_killed_run_left_half_loaded_is_run_again_once(refreshed_copy, tmp_path):
    settings = refreshed_copy
    defs = definitions_over(settings)
    held = settings.data_dir / "held_back" / SOURCE
    month = next(held.glob("*.csv")).stem
    with dg.DagsterInstance.get() as instance:  # DAGSTER_HOME of the refreshed copy
        tick = ticks(defs, instance)
        start = tick(None)
        assert not start.run_requests, "the refreshed world is whole: nothing new, nothing loaded in part"
        shutil.move(held / f"{month}.csv", settings.landing_file(SOURCE, month))
        landed = tick(start.cursor)
        [request] = landed.run_requests

        killed_at(request, settings, tmp_path, KILLED_BETWEEN)
        raw, validated, quarantined = counts(settings, month)
        assert raw > 0 and validated + quarantined == 0, "the kill did not fall between raw's write and validated's"
        again, noticed = requested_once_when_found_dead(instance, tick, request, landed, month)

        ingest = defs.resolve_job_def("ingest")
        result = ingest.execute_in_process(instance=instance, partition_key=month, tags=again.tags,
                                           asset_selection=again.asset_selection)
        assert result.success
        raw, validated, quarantined = counts(settings, month)
        assert raw == validated + quarantined and raw > 0, "the agency zone does not reconcile"
        after = tick(noticed.cursor)
        assert not after.run_requests

        # running the month once more, uninterrupted, gives the very same tables
        def month_digests():
            return {name: table_digests(once_unlocked(settings.data_dir / name), where=f"extract_month = '{month}'")
                    for name in ("agency_zone.duckdb", "warehouse.duckdb")}

        loaded = month_digests()
        assert ingest.execute_in_process(instance=instance, partition_key=month,
                                         asset_selection=again.asset_selection).success
        assert month_digests() == loaded


def test_a_month_still_loaded_in_part_after_its_run_again_is_not_requested_every_tick(refreshed_copy, tmp_path):
    """A run that fails the same way each time (a step raising on this file) after raw's write: the month is run
    again once, then left to a person, not requested every tick; a new delivery of the file is requested as ever."""
    settings = refreshed_copy
    defs = definitions_over(settings)
    held = settings.data_dir / "held_back" / SOURCE
    month = next(held.glob("*.csv")).stem
    with dg.DagsterInstance.get() as instance:
        tick = ticks(defs, instance)
        cursor = tick(None).cursor
        shutil.move(held / f"{month}.csv", settings.landing_file(SOURCE, month))
        landed = tick(cursor)
        [request] = landed.run_requests
        cursor = landed.cursor
        for attempt in range(2):  # the first run, then its one run again, each failing after raw's write
            raw_only = [key for key in request.asset_selection if key.path[0] == "raw"]
            assert defs.resolve_job_def("ingest").execute_in_process(
                instance=instance, partition_key=month, asset_selection=raw_only, tags=request.tags).success
            result = tick(cursor)
            cursor = result.cursor
            if attempt == 0:
                [request] = result.run_requests
                assert request.partition_key == month
        assert not result.run_requests, "a month that fails again is requested again and again"
        for _ in range(3):
            result = tick(cursor)
            assert not result.run_requests
            cursor = result.cursor

        path = settings.landing_file(SOURCE, month)
        mtime = path.stat().st_mtime + 60
        os.utime(path, (mtime, mtime))  # the agency sends it again
        [resent] = tick(cursor).run_requests
        assert resent.partition_key == month


def test_a_delivery_a_killed_run_never_loaded_is_run_again_once(refreshed_copy, tmp_path):
    """A month sent again, its run killed before raw's write commits: the month is consistent but holds the previous
    delivery, the file is unchanged since it was requested and its run key used up. The sensor marks the run failed
    (its worker is gone) and requests the month once more, and that run loads the new delivery."""
    settings = refreshed_copy
    defs = definitions_over(settings)
    path = max(settings.landing_files(SOURCE))
    month = path.stem
    with dg.DagsterInstance.get() as instance:
        tick = ticks(defs, instance)
        start = tick(None)
        assert not start.run_requests, "a sensor turned on over a loaded history requests nothing"
        loaded, *_ = counts(settings, month)
        lines = path.read_text().splitlines(keepends=True)
        assert loaded == len(lines) - 1 > 1
        path.write_text("".join(lines[:-1]))  # the agency sends the month again, its last row withdrawn
        landed = tick(start.cursor)
        [request] = landed.run_requests

        killed_at(request, settings, tmp_path, KILLED_BEFORE_RAW)
        raw, validated, quarantined = counts(settings, month)
        assert raw == validated + quarantined == loaded, "the kill did not leave the previous delivery whole"
        again, noticed = requested_once_when_found_dead(instance, tick, request, landed, month)

        assert run_request_in_child(again, settings.data_dir, tmp_path / "again.log") == 0, \
            (tmp_path / "again.log").read_text()[-3000:]
        raw, validated, quarantined = counts(settings, month)
        assert raw == validated + quarantined == loaded - 1, "the agency zone does not hold the new delivery"
        assert not tick(noticed.cursor).run_requests


def test_an_unreadable_delivery_is_run_again_once_not_every_tick(refreshed_copy):
    """An unreadable file (the corpus's zero_bytes: empty) fails raw's step every time, writing nothing: the month
    is requested once more, then left to a person; the file sent again readable is requested as ever."""
    settings = refreshed_copy
    defs = definitions_over(settings)
    ingest = defs.resolve_job_def("ingest")
    held = settings.data_dir / "held_back" / SOURCE
    month = next(held.glob("*.csv")).stem
    path = settings.landing_file(SOURCE, month)
    with dg.DagsterInstance.get() as instance:
        tick = ticks(defs, instance)
        cursor = tick(None).cursor
        path.write_bytes(b"")
        result = tick(cursor)
        requested = []
        for _ in range(6):
            cursor = result.cursor
            for request in result.run_requests:
                requested.append(request.run_key)
                assert request.partition_key == month
                assert not ingest.execute_in_process(instance=instance, partition_key=month, tags=request.tags,
                                                     asset_selection=request.asset_selection,
                                                     raise_on_error=False).success
            result = tick(cursor)
        assert len(requested) == 2, f"requested {len(requested)} times: once as landed, then once again"
        assert month not in instance.get_materialized_partitions(source_keys(get_source(SOURCE))[0]), "raw written"

        shutil.move(held / f"{month}.csv", path)  # the agency sends it again, readable
        [resent] = tick(cursor).run_requests
        assert resent.partition_key == month and resent.run_key not in requested
