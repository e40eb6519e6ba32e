"""A run worker SIGKILLed (or gone with a power cut) no longer leaves its run 'started' for ever, holding the run
queue (one run at a time) and the landing sensor: Dagster's run monitoring, asking the launcher dagster.yaml selects,
marks it failed; a live run is left alone, and a later process given the dead worker's pid is not taken for it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import dagster as dg
import pytest
from dagster._core.utils import make_new_run_id

from ed_pipeline.defs.privacy_audit import RANDOM_ID
from ed_pipeline.defs.run_worker import RUN_WORKER_TAG, MonitoredRunLauncher, fail_dead_runs
from ed_pipeline.privacy.leak_scan import STOPWORDS
from ed_pipeline.refresh import ensure_dagster_home
from ed_pipeline.resilience import process_identity, process_running
from ed_pipeline.settings import Settings
from ed_pipeline_tests.faults.support import kill, monitoring_pass, start_waiting_run, wait_for
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
    """The run of `start_waiting_run(until, ...)`, once started and its worker recorded."""
    def recorded() -> list[dg.DagsterRun]:
        return [r for r in instance.get_runs(dg.RunsFilter(tags={"waiting_for": str(until)}))
                if r.status == dg.DagsterRunStatus.STARTED and RUN_WORKER_TAG in r.tags]

    wait_for(lambda: bool(recorded()), process, "the run started, its worker recorded")
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
