"""A run whose worker process died is marked failed, so that it does not hold the run queue and the landing sensor.

A run worker SIGKILLed, or ended by a power cut, leaves its run 'started' for ever; with one run at a time
(dagster.yaml's `run_queue`), nothing else then runs. Dagster's run monitoring (its daemon) asks the run launcher
whether each started run's worker still runs, but the DefaultRunLauncher (one process per run on this host)
cannot tell. Here:

- every run records the process that runs it in its `RUN_WORKER_TAG` (`resilience.process_identity`: pid, start
  time, boot): the job's executor does it, in the run worker and in `ed-pipeline refresh`'s stage process (which
  executes its runs with `dg.execute_job`);
- `MonitoredRunLauncher`, the DefaultRunLauncher that dagster.yaml selects, answers run monitoring's question
  from that tag (`worker_health`): a run whose process has ended, or whose pid is another process's now, or
  recorded before the machine restarted, is reported gone, and the daemon marks the run failed;
- `fail_dead_runs` does the same at once, for the landing sensor and `ed-pipeline refresh` (each would otherwise
  wait on the run, and run monitoring may be off in a deployment's own dagster.yaml).

A run without the tag (started by an earlier version, or where there is no /proc) or of another host is left
alone: nothing here can tell it has ended.
"""

from __future__ import annotations

from collections.abc import Iterator

import dagster as dg
from dagster._core.executor.base import Executor
from dagster._core.launcher import CheckRunHealthResult, DefaultRunLauncher, WorkerStatus

from ed_pipeline.resilience import (
    end_process,
    end_process_later,
    identity_fields,
    process_identity,
    process_running,
)

RUN_WORKER_TAG = "ed_pipeline/run_worker"


def worker_tags(run_id: str) -> dict[str, str]:
    """The tag naming this process as the worker of run `run_id` (none where it cannot be told: see
    `process_identity`). It names the run too: Dagster copies a run's tags to the run that re-executes it, where
    the worker named is not that run's."""
    identity = process_identity()
    return {RUN_WORKER_TAG: f"run={run_id} {identity}"} if identity else {}


def _recorded(run: dg.DagsterRun) -> dict[str, str]:
    return identity_fields(run.tags.get(RUN_WORKER_TAG, ""))


def worker_running(run: dg.DagsterRun) -> bool | None:
    """Whether the run's worker still runs (`resilience.process_running`); None: not recorded (or recorded for the
    run it re-executes), or not told here."""
    if _recorded(run).get("run") != run.run_id:
        return None
    return process_running(run.tags[RUN_WORKER_TAG])


def gone_message(run: dg.DagsterRun) -> str:
    """Why the run is marked failed (its words are the leak scan's vocabulary: the audit reads Dagster's events)."""
    pid = _recorded(run).get("pid", "")
    return (f"run {run.run_id}: its worker, process {pid}, is not running any more (killed, or the machine started "
            "again) and the run had not finished; failed so that other work need not wait on it")


def ended_message(run: dg.DagsterRun) -> str:
    """Why a run stopped, when its worker was ended to stop it (`MonitoredRunLauncher.terminate`)."""
    pid = _recorded(run).get("pid", "")
    # its words are the leak scan's vocabulary, as gone_message's
    return f"run {run.run_id}: its worker, process {pid}, was killed to stop the run (nothing else could stop it)"


def worker_health(run: dg.DagsterRun) -> CheckRunHealthResult:
    """Run monitoring's answer for a started run: NOT_FOUND (the daemon then marks it failed) once its worker is
    known to have ended, RUNNING otherwise (alive, or nothing to tell by)."""
    if worker_running(run) is False:
        return CheckRunHealthResult(WorkerStatus.NOT_FOUND, gone_message(run))
    return CheckRunHealthResult(WorkerStatus.RUNNING)


def fail_dead_runs(instance: dg.DagsterInstance) -> list[dg.DagsterRun]:
    """Mark failed every started run whose worker is known to have ended (`worker_health`), as the run monitoring
    daemon does; the runs so marked."""
    failed = []
    for run in instance.get_runs(filters=dg.RunsFilter(statuses=[dg.DagsterRunStatus.STARTED])):
        if worker_running(run) is False:
            current = instance.get_run_by_id(run.run_id)  # it may have ended meanwhile (then its worker too)
            if current is not None and current.status == dg.DagsterRunStatus.STARTED:
                instance.report_run_failed(current, message=gone_message(current))
                failed.append(current)
    return failed


class MonitoredRunLauncher(DefaultRunLauncher):
    """Dagster's DefaultRunLauncher (a process per run, started by the code server), with run monitoring's worker
    health check (`worker_health`). Resuming a run is not supported (as by the DefaultRunLauncher): run
    monitoring's `max_resume_run_attempts` must be 0."""

    @property
    def supports_check_run_worker_health(self) -> bool:
        return True

    def check_run_worker_health(self, run: dg.DagsterRun) -> CheckRunHealthResult:
        return worker_health(run)

    def terminate(self, run_id: str) -> bool:
        """Stop a run (the UI's Terminate; run monitoring, once a run has run longer than `max_runtime_seconds`),
        making sure its worker ends. Dagster's way first: the code server that started the worker interrupts it,
        and it stops between two steps. Where that cannot be asked (a run `ed-pipeline refresh` executes, which no
        code server started; a code server started again since), the run is shown canceled and its recorded worker
        SIGKILLed now. Where it was asked, the worker is SIGKILLed after run monitoring's cancel timeout if it
        still runs then: stuck in a library's C code, which the interrupt does not reach, it would go on holding
        the warehouse's lock. A refresh's stage so ended fails the refresh; dbt ends with its worker."""
        run = self._instance.get_run_by_id(run_id) if self.has_instance else None
        try:
            asked = super().terminate(run_id)
        except Exception:  # noqa: BLE001 (the code server gone: ended below instead)
            asked = False
        if run is None or run.is_finished or worker_running(run) is not True:
            return asked
        worker = run.tags[RUN_WORKER_TAG]
        if asked:
            end_process_later(worker, self._instance.run_monitoring_cancel_timeout_seconds)
            return True
        # shown canceled first: the refresh whose stage this kills reads why as soon as the stage is gone
        self._instance.report_run_canceled(run, message=ended_message(run))
        end_process(worker)
        return True


class _WorkerRecordingExecutor(Executor):
    """An executor that records the process running the run (`RUN_WORKER_TAG`) before the `inner` one runs it."""

    def __init__(self, inner: Executor):
        self._inner = inner

    @property
    def retries(self):
        return self._inner.retries

    @property
    def step_dependency_config(self):
        return self._inner.step_dependency_config

    def execute(self, plan_context, execution_plan) -> Iterator[dg.DagsterEvent]:
        tags = worker_tags(plan_context.run_id)
        if tags:
            plan_context.instance.add_run_tags(plan_context.run_id, tags)
        yield from self._inner.execute(plan_context, execution_plan)


@dg.executor(name="in_process", config_schema=dg.in_process_executor.config_schema.as_field())
def in_process_recording_worker(init_context: dg.InitExecutorContext) -> Executor:
    """Dagster's in-process executor (same configuration), recording the run's worker process first."""
    return _WorkerRecordingExecutor(dg.in_process_executor.executor_creation_fn(init_context))
