"""A refresh killed (SIGKILL) mid-way, then run again, ends where an uninterrupted refresh ends.

The uninterrupted reference is the session's refreshed tiny world (built once for the whole suite): the runs
here start from its extracts and must reproduce its tables exactly, which also proves the pipeline is
deterministic (linkage model, clustering, dbt and LightGBM).
"""

from __future__ import annotations

import os
import shutil
import signal
from pathlib import Path
from unittest import mock

import dagster as dg

from ed_pipeline_tests.conftest import run_cli
from ed_pipeline_tests.faults.support import (
    INGEST_MONTH,
    LINK_STEP,
    KilledThenRerun,
    differing,
    digests,
    duplicated,
    events,
    kill,
    lock_holder,
    run_event_logs,
    runs_with_status,
    start_cli,
    strip_analysis,
    wait_for,
)
from ed_pipeline_tests.faults.test_dead_run_worker import assert_vocabulary


def test_killed_while_linking_then_rerun_equals_an_uninterrupted_run(refreshed_world: Path, tmp_path: Path):
    """Ingested, never analysed: `refresh --only analyse` is SIGKILLed while Splink links; a second refresh
    started meanwhile is refused without touching anything; the re-run reproduces the uninterrupted tables."""
    data = tmp_path / "data"
    shutil.copytree(refreshed_world, data)
    strip_analysis(data)
    warehouse = data / "warehouse.duckdb"
    ingested = digests(warehouse)
    old_runs = run_event_logs(data)

    first = start_cli("refresh", "--only", "analyse", data_dir=data, log=tmp_path / "first.log")
    wait_for(lambda: lock_holder(data) == str(first.pid), first, "the refresh lock")
    second = run_cli("refresh", data_dir=data, timeout=120)
    assert second.returncode == 2, second.stderr[-3000:]
    assert f"another refresh is running on {data} (pid {first.pid})" in second.stderr, second.stderr[-3000:]

    wait_for(lambda: events(data, "STEP_START", LINK_STEP, since=old_runs), first, "linking")
    kill(first)
    assert not events(data, "STEP_SUCCESS", LINK_STEP, since=old_runs), "the kill came after linking"
    assert digests(warehouse) == ingested, "a killed link or the refused refresh changed the warehouse"

    again = run_cli("refresh", "--only", "analyse", data_dir=data)
    assert again.returncode == 0, again.stderr[-3000:]
    assert "1/1 steps succeeded" in again.stderr, again.stderr[-3000:]
    assert runs_with_status(data, "STARTED") == 0, "the killed run is still shown as running"
    got, expected = digests(warehouse), digests(refreshed_world / "warehouse.duckdb")
    assert {"linked.person_link", "features.child_features", "model.metrics", "outputs.community_risk"} <= set(got)
    assert got == expected, differing(got, expected)
    assert duplicated(warehouse, "linked.person_link", "source, record_id") == 0
    assert duplicated(warehouse, "features.child_features", "person_id, prediction_date") == 0


def test_killed_mid_write_then_rerun_equals_an_uninterrupted_run(killed_mid_write: KilledThenRerun,
                                                                 refreshed_world: Path):
    """SIGKILLed inside school readiness's warehouse write (rows inserted, not yet committed): the warehouse
    stays readable with that slice absent, not half there, and what committed before it is there; the re-run
    loads exactly what the uninterrupted refresh loaded for that month, in both zones, with nothing doubled."""
    run = killed_mid_write
    assert run.killed_rc == -signal.SIGKILL, run.killed_log[-3000:]
    warehouse, agency = run.after_kill["warehouse.duckdb"], run.after_kill["agency_zone.duckdb"]
    assert warehouse["pseudonymised.police_incidents"][0] > 0, "a committed write was lost"
    assert "pseudonymised.social_care" not in warehouse, "the run went on past the kill"
    assert "pseudonymised.school_readiness" not in warehouse, "the killed transaction left part of its write"
    assert agency["validated.school_readiness"][0] > 0  # its agency-zone layers had committed before the kill
    assert run.lock_holder_after_kill == str(run.killed_pid)  # the file names the dead holder; the kernel has
    # released its flock, so the re-run below is not refused (a stale lock would refuse it)

    assert run.rerun_rc == 0, run.rerun_log[-3000:]
    assert runs_with_status(run.data, "STARTED") == 0, "the killed run is still shown as running"
    for name, got in run.after_rerun.items():
        expected = digests(refreshed_world / name, ("raw", "validated", "quarantine", "pseudonymised"),
                           where=f"extract_month = '{INGEST_MONTH}'")
        assert got == expected, differing(got, expected)
    for source in ("school_readiness", "social_care", "benefits"):
        assert duplicated(run.data / "warehouse.duckdb", f"pseudonymised.{source}", "record_id, extract_month") == 0


def test_the_runs_of_a_killed_refresh_are_marked_failed_by_run_monitoring(killed_mid_write: KilledThenRerun):
    """The refresh executes its runs in its stage's process, which dies with it: before any refresh runs again, a
    pass of Dagster's run monitoring finds that process gone (the pid and start time each run recorded) and marks
    the runs failed, so that neither the run queue nor the landing sensor waits on them."""
    assert killed_mid_write.monitored_after_kill, "the kill left no run started"
    for run_id, (status, message) in killed_mid_write.monitored_after_kill.items():
        assert status == dg.DagsterRunStatus.FAILURE, (run_id, status)
        assert run_id in message and "is not running any more" in message, message


def test_a_refresh_whose_run_is_terminated_stops_and_says_so(refreshed_world: Path, tmp_path: Path):
    """A refresh's run stopped while it links (the UI's Terminate, or run monitoring past the maximum runtime): no
    code server runs it, so the launcher ends the stage process that does; the run is shown canceled and the
    refresh ends at once, saying its run was terminated rather than that it was killed or out of memory."""
    data = tmp_path / "data"
    shutil.copytree(refreshed_world, data)
    strip_analysis(data)
    old_runs = run_event_logs(data)
    refresh = start_cli("refresh", "--only", "analyse", data_dir=data, log=tmp_path / "refresh.log")
    wait_for(lambda: events(data, "STEP_START", LINK_STEP, since=old_runs), refresh, "linking")
    with mock.patch.dict(os.environ, {"DAGSTER_HOME": str(data / "dagster")}), dg.DagsterInstance.get() as instance:
        [run] = instance.get_runs(dg.RunsFilter(statuses=[dg.DagsterRunStatus.STARTED]))
        assert instance.run_launcher.terminate(run.run_id)
        assert refresh.wait(timeout=120) == 2
        assert instance.get_run_by_id(run.run_id).status == dg.DagsterRunStatus.CANCELED
        assert_vocabulary(instance, run)  # the words of stopping it too: the next audit reads them
    said = " ".join((tmp_path / "refresh.log").read_text().split())
    assert f"error: the analyse stage was stopped: its run {run.run_id} was terminated (the Dagster UI's " \
           "Terminate, or run monitoring's maximum runtime). What it committed stands" in said, said[-3000:]
    assert "out of memory" not in said
