"""A run worker SIGKILLed (or gone with a power cut) no longer leaves its run 'started' for ever, holding the run
queue (one run at a time) and the landing sensor: Dagster's run monitoring, asking the launcher dagster.yaml selects,
marks it failed; a live run is left alone, and a later process given the dead worker's pid is not taken for it."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import dagster as dg
import pytest
from dagster._core.launcher import DefaultRunLauncher
from dagster._core.utils import make_new_run_id

from ed_pipeline.defs.privacy_audit import RANDOM_ID
from ed_pipeline.defs.run_worker import RUN_WORKER_TAG, MonitoredRunLauncher, fail_dead_runs
from ed_pipeline.privacy.leak_scan import STOPWORDS
from ed_pipeline.refresh import ensure_dagster_home
from ed_pipeline.resilience import _start_time, process_identity, process_running
from ed_pipeline.settings import Settings
from ed_pipeline_tests.faults.support import (
    command_line,
    descendants,
    ended,
    kill,
    monitoring_pass,
    once_unlocked,
    start_dbt_run,
    start_waiting_run,
    wait_for,
)
from ed_pipeline_tests.privacy.test_vocabulary import _words


@pytest.fixture
def instance(tmp_path, monkeypatch):
    """An instance configured as ed-pipeline writes it (dagster.yaml), in DAGSTER_HOME."""
    data = tmp_path / "data"
    monkeypatch.setenv("DAGSTER_HOME", str(data / "dagster"))
    ensure_dagster_home(Settings(data))
    with dg.DagsterInstance.get() as instance:
        yield instance


def started_run(instance: dg.DagsterInstance, until: Path, process: subprocess.Popen) -> dg.DagsterRun:
    """The run of `start_waiting_run(until, ...)`, once started, its worker recorded and its step begun. (Not before
    the step: Dagster's log capture starts a `tail -F` of the step's log, then a process to end it with the worker;
    a worker killed between the two leaves the tail running for ever, and `kill` waits for it in vain.)"""
    def recorded() -> list[dg.DagsterRun]:
        return [r for r in instance.get_runs(dg.RunsFilter(tags={"waiting_for": str(until)}))
                if r.status == dg.DagsterRunStatus.STARTED and RUN_WORKER_TAG in r.tags
                and instance.all_logs(r.run_id, of_type=dg.DagsterEventType.STEP_START)]

    wait_for(lambda: bool(recorded()), process, "the run started, its worker recorded, its step begun")
    [run] = recorded()
    return run


def test_a_killed_run_worker_is_marked_failed_by_run_monitoring_and_a_live_one_left_alone(instance, tmp_path):
    """Two runs, each executed by the deployment's executor in a process of its own (as a code server's run worker
    is), both started: a pass of run monitoring leaves both; one worker SIGKILLed, the next pass marks its run
    failed, naming the run and its process, and leaves the other, which goes on to succeed."""
    assert isinstance(instance.run_launcher, MonitoredRunLauncher)
    assert instance.run_monitoring_enabled and instance.run_monitoring_max_resume_run_attempts == 0
    data = tmp_path / "data"
    doomed_until, live_until = tmp_path / "never", tmp_path / "release"
    doomed = start_waiting_run(doomed_until, data, tmp_path / "doomed.log")
    live = start_waiting_run(live_until, data, tmp_path / "live.log")
    try:
        doomed_run, live_run = started_run(instance, doomed_until, doomed), started_run(instance, live_until, live)
        assert f"pid={doomed.pid} " in doomed_run.tags[RUN_WORKER_TAG]  # the worker itself, not a launcher's
        monitoring_pass(instance)
        assert instance.get_run_by_id(doomed_run.run_id).status == dg.DagsterRunStatus.STARTED

        kill(doomed)  # SIGKILL: its run stays 'started', nothing in the worker marks it
        assert instance.get_run_by_id(doomed_run.run_id).status == dg.DagsterRunStatus.STARTED
        monitoring_pass(instance)
        assert instance.get_run_by_id(doomed_run.run_id).status == dg.DagsterRunStatus.FAILURE
        [failure] = instance.all_logs(doomed_run.run_id, of_type=dg.DagsterEventType.RUN_FAILURE)
        assert doomed_run.run_id in failure.message and f"process {doomed.pid}, is not running any more" in \
            failure.message, failure.message
        assert instance.get_run_by_id(live_run.run_id).status == dg.DagsterRunStatus.STARTED, "a live run was failed"
        assert not fail_dead_runs(instance), "a run was failed twice, or a live one"

        live_until.touch()
        assert live.wait(timeout=120) == 0, (tmp_path / "live.log").read_text()[-3000:]
        assert instance.get_run_by_id(live_run.run_id).status == dg.DagsterRunStatus.SUCCESS
    finally:
        for process in (doomed, live):
            if process.poll() is None:
                process.kill()
                process.wait()
    # the failure's words (Dagster's run monitoring's around ours) are in the texts the privacy audit reads, without
    # random ids as it reads them (the run id's hex letters between its dashes would read as words by chance)
    words = _words([RANDOM_ID.sub(" ", failure.message)])
    assert words <= STOPWORDS, words - STOPWORDS


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="/proc")
def test_a_run_past_its_maximum_runtime_is_stopped_and_its_worker_ended(instance, tmp_path, monkeypatch):
    """A live worker that does not finish (stuck): once its run has run longer than the maximum runtime, run
    monitoring stops it. No code server started this worker (as for a refresh's run), so none can be asked to
    interrupt it: the launcher ends the worker itself, the run is failed, and nothing is left holding the
    warehouse. Where a code server was asked (faked here), the worker is ended after the cancel timeout unless it
    stopped by then."""
    assert instance.run_monitoring_max_runtime_seconds == 4 * 3600
    data = tmp_path / "data"
    stuck = start_waiting_run(tmp_path / "never", data, tmp_path / "stuck.log", **{"dagster/max_runtime": "1"})
    try:
        run = started_run(instance, tmp_path / "never", stuck)
        time.sleep(1.5)
        monitoring_pass(instance)
        assert stuck.wait(timeout=30) == -signal.SIGKILL
        assert instance.get_run_by_id(run.run_id).status == dg.DagsterRunStatus.FAILURE
        messages = [e.message for e in instance.all_logs(run.run_id)]
        assert any("was killed to stop the run" in m for m in messages), messages[-5:]
        assert any("Exceeded maximum runtime of 1 seconds" in m for m in messages), messages[-5:]
        assert_vocabulary(instance, run)
    finally:
        if stuck.poll() is None:
            stuck.kill()
            stuck.wait()

    monkeypatch.setattr(DefaultRunLauncher, "terminate", lambda self, run_id: True)  # as if a code server was asked
    monkeypatch.setattr(dg.DagsterInstance, "run_monitoring_cancel_timeout_seconds", property(lambda self: 2))
    deaf = start_waiting_run(tmp_path / "never again", data, tmp_path / "deaf.log", **{"dagster/max_runtime": "1"})
    try:
        run = started_run(instance, tmp_path / "never again", deaf)
        time.sleep(1.5)
        asked = time.monotonic()
        monitoring_pass(instance)
        assert deaf.wait(timeout=60) == -signal.SIGKILL
        assert time.monotonic() - asked >= 2, "ended before the cancel timeout"
        assert_vocabulary(instance, run)
    finally:
        if deaf.poll() is None:
            deaf.kill()
            deaf.wait()


STOPPING = {dg.DagsterEventType.RUN_CANCELING, dg.DagsterEventType.RUN_CANCELED, dg.DagsterEventType.RUN_FAILURE,
            dg.DagsterEventType.ENGINE_EVENT}


def assert_vocabulary(instance: dg.DagsterInstance, run: dg.DagsterRun) -> None:
    """Every word of what stopping the run wrote (Dagster's messages and ours, without random ids, as the privacy
    audit reads them) is in the leak scan's vocabulary: were one somebody's surname, the next audit would fail."""
    words = _words([RANDOM_ID.sub(" ", e.message or "") for e in instance.all_logs(run.run_id, of_type=STOPPING)])
    words -= _words(["waiting_job wait_for_file"])  # the test's own job and step
    assert words <= STOPWORDS, sorted(words - STOPWORDS)


def test_a_pid_reused_by_another_process_is_not_taken_for_the_worker(instance):
    """A worker's pid given to a later process (after it ended, or after a restart of the machine): the later
    process started at another time, so the worker is gone. A live worker is running; another host's is left alone."""
    worker, later = waiting_process(), None
    try:
        recorded = process_identity(worker.pid)
        assert process_running(recorded) is True
        worker.stdin.close()
        worker.wait()
        assert process_running(recorded) is False
        later = waiting_process()
        now_there = process_identity(later.pid)
        while _field(now_there, "start") == _field(recorded, "start"):  # started in the same clock tick
            later.stdin.close()
            later.wait()
            later = waiting_process()
            now_there = process_identity(later.pid)
        # the dead worker's pid, now the later process's: same pid, another start time
        reused = now_there.replace(f"start={_field(now_there, 'start')}", f"start={_field(recorded, 'start')}")
        assert process_running(now_there) is True and process_running(reused) is False
        restarted = now_there.replace(f"boot={_field(now_there, 'boot')}", "boot=00000000-0000-0000-0000-000000000000")
        assert process_running(restarted) is False, "a pid recorded before the machine restarted"
        elsewhere = now_there.replace(f"host={_field(now_there, 'host')}", "host=another-machine")
        assert process_running(elsewhere) is None

        runs = {"reused": started(instance, reused), "restarted": started(instance, restarted),
                "live": started(instance, now_there), "elsewhere": started(instance, elsewhere),
                "unrecorded": started(instance, None),
                # re-executing a run, Dagster copies its tags: the worker named is the other run's
                "copied": started(instance, reused, recorded_for="another-run")}
        health = {name: instance.run_launcher.check_run_worker_health(run).status.value for name, run in runs.items()}
        assert health == {"reused": "NOT_FOUND", "restarted": "NOT_FOUND", "live": "RUNNING", "elsewhere": "RUNNING",
                          "unrecorded": "RUNNING", "copied": "RUNNING"}
        monitoring_pass(instance)
        status = {name: instance.get_run_by_id(run.run_id).status.value for name, run in runs.items()}
        assert status == {"reused": "FAILURE", "restarted": "FAILURE", "live": "STARTED", "elsewhere": "STARTED",
                          "unrecorded": "STARTED", "copied": "STARTED"}
    finally:
        for process in (worker, later):
            if process is not None and process.poll() is None:
                process.stdin.close()
                process.wait()


def started(instance: dg.DagsterInstance, worker: str | None, recorded_for: str | None = None, **tags: str
            ) -> dg.DagsterRun:
    """A run shown as started, its worker recorded as `worker` (a `process_identity`; None: not recorded) for it,
    or for the run `recorded_for`."""
    run_id = make_new_run_id()
    if worker is not None:
        tags[RUN_WORKER_TAG] = f"run={recorded_for or run_id} {worker}"
    return instance.create_run_for_job(dg.GraphDefinition("nothing").to_job(), run_id=run_id,
                                       status=dg.DagsterRunStatus.STARTED, tags=tags)


def waiting_process() -> subprocess.Popen:
    """A process that runs until its stdin is closed."""
    return subprocess.Popen([sys.executable, "-c", "import sys; sys.stdin.read()"], stdin=subprocess.PIPE)


def _field(identity: str, name: str) -> str:
    return dict(part.partition("=")[::2] for part in identity.split())[name]


def test_a_refresh_fails_the_started_runs_whose_worker_is_gone_and_leaves_a_live_one(instance):
    """`ed-pipeline refresh` first fails the runs whose worker is gone (any trigger), and its own runs of an earlier
    version (no worker recorded: it holds the lock, so no refresh runs them); a refresh's run whose worker runs
    (another data directory's refresh, on the same instance) is left alone."""
    from ed_pipeline.refresh import TRIGGER_TAG, _fail_orphaned_runs

    gone = waiting_process()
    dead = process_identity(gone.pid)
    gone.stdin.close()
    gone.wait()
    refresh = {TRIGGER_TAG: "refresh"}
    runs = {"live refresh": started(instance, process_identity(), **refresh),
            "dead refresh": started(instance, dead, **refresh), "earlier refresh": started(instance, None, **refresh),
            "dead sensor": started(instance, dead), "earlier sensor": started(instance, None)}
    _fail_orphaned_runs(instance)
    status = {name: instance.get_run_by_id(run.run_id).status.value for name, run in runs.items()}
    assert status == {"live refresh": "STARTED", "dead refresh": "FAILURE", "earlier refresh": "FAILURE",
                      "dead sensor": "FAILURE", "earlier sensor": "STARTED"}


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="/proc")
def test_dbt_ends_with_its_run_worker_so_that_it_does_not_go_on_writing_the_warehouse(refreshed_world, tmp_path):
    """A run worker SIGKILLed while `dbt build` runs (dagster-dbt's child process): dbt ends too, instead of building
    the warehouse, and holding its lock, after run monitoring has failed the run. dbt is stopped first (SIGSTOP), as
    one busy for minutes would be, so that it cannot end of itself in the meantime."""
    data = tmp_path / "data"
    shutil.copytree(refreshed_world, data)
    worker = start_dbt_run(data, tmp_path / "worker.log")
    dbt = []

    def dbt_started() -> bool:
        dbt[:] = [pid for pid in descendants(worker.pid) if is_dbt_build(command_line(pid))]
        return bool(dbt)

    try:
        wait_for(dbt_started, worker, "dbt build")
        [pid] = dbt
        # dagster-dbt has started dbt; the worker then starts its watcher (a moment, which a loaded machine stretches)
        # (its arguments: dbt's pid and start time)
        wait_for(lambda: any(command_line(p)[-2:] == [str(pid), _start_time(pid)] for p in descendants(worker.pid)),
                 worker, "dbt's watcher", timeout=60)
        os.kill(pid, signal.SIGSTOP)
        assert os.getpgid(pid) == os.getpgid(worker.pid), "dbt in a group of its own: the test would not tell"
        kill(worker)  # waits for every process the worker had started to end, or fails after a minute
        assert ended(pid)
        once_unlocked(data / "warehouse.duckdb", timeout=10)
    finally:
        for pid in dbt:
            if not ended(pid):
                os.kill(pid, signal.SIGKILL)
        if worker.poll() is None:
            worker.kill()
            worker.wait()


def is_dbt_build(args: list[str]) -> bool:
    """`dbt build`, the dbt script run by its Python (or directly)."""
    return "build" in args and any(Path(arg).name == "dbt" for arg in args[:2])
