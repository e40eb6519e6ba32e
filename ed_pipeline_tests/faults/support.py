"""Helpers of the fault tests: start the real command, watch its run, kill it, and compare table contents."""

from __future__ import annotations

import logging
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from unittest import mock

import dagster as dg
import duckdb

from ed_pipeline.defs.run_worker import in_process_recording_worker
from ed_pipeline.resilience import LOCK_FILE, table_digests
from ed_pipeline_tests.conftest import TEST_KEY

# Everything the analyse job (linking onwards) writes: dropped to get "ingested, never analysed".
ANALYSE_SCHEMAS = ("linked", "staging", "intermediate", "features", "model", "outputs")
ANALYSE_DIRS = ("linkage", "models", "outputs")
LINK_STEP = "link_people_and_households"
INGEST_MONTH = "2016-07"  # one month of the tiny world (with its July school-readiness return), ingested alone
KILLED_WRITE = "commit:pseudonymised.school_readiness"  # the month is one run, its steps in order of their
# names: police incidents (and the three before it) have committed by then, social care has not started
Digests = dict[str, tuple[int, int]]  # table -> (rows, hash)


@dataclass(frozen=True)
class KilledThenRerun:
    """A refresh SIGKILLed at KILLED_WRITE, then run again, then run with `--full` (every landed month ingested
    again): what each left (DuckDB file name -> digests), and what became of the runs the kill left started (run
    id -> status, failure message) after a pass of run monitoring."""

    data: Path
    killed_pid: int
    killed_rc: int
    killed_log: str
    after_kill: dict[str, Digests]
    lock_holder_after_kill: str
    monitored_after_kill: dict[str, tuple[dg.DagsterRunStatus, str]]
    rerun_rc: int
    rerun_log: str
    after_rerun: dict[str, Digests]
    full_rc: int
    full_log: str
    after_full: dict[str, Digests]


def cli_env(data_dir: Path, **extra: str) -> dict[str, str]:
    return {**os.environ, "ED_DATA_DIR": str(data_dir), "DAGSTER_HOME": str(data_dir / "dagster"),
            "ED_PSEUDO_KEY": os.environ.get("ED_PSEUDO_KEY", TEST_KEY), **extra}


def start_cli(*args: str, data_dir: Path, log: Path, **env: str) -> subprocess.Popen:
    """`ed-pipeline ARGS` in the background, its output to `log` (a file: a pipe nobody reads could block it)."""
    with log.open("wb") as out:
        return subprocess.Popen([sys.executable, "-m", "ed_pipeline.cli", *args], env=cli_env(data_dir, **env),
                                stdout=out, stderr=subprocess.STDOUT)


def wait_for(condition: Callable[[], bool], process: subprocess.Popen, what: str, timeout: float = 300) -> None:
    """Poll `condition` until true; fail if the process ends first or time runs out."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert process.poll() is None, f"the process ended (rc {process.returncode}) before {what}"
        assert time.monotonic() < deadline, f"no {what} within {timeout}s"
        time.sleep(0.05)


def kill(process: subprocess.Popen) -> None:
    """SIGKILL the command; return once it and every process it had started have ended. Its stage process dies
    by the kernel's death signal a moment after it, holding the warehouse open until then (a read in that moment
    met DuckDB's lock)."""
    family = descendants(process.pid)
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=60)
    assert process.returncode == -signal.SIGKILL
    deadline = time.monotonic() + 60
    while not all(map(ended, family)):
        assert time.monotonic() < deadline, "the killed command's processes outlived it by a minute"
        time.sleep(0.05)


def descendants(pid: int) -> set[int]:
    """The processes under `pid` now (each one's children from /proc/<pid>/task/<tid>/children)."""
    found, todo = set(), [pid]
    while todo:
        parent = todo.pop()
        try:
            tids = os.listdir(f"/proc/{parent}/task")
        except OSError:
            continue  # ended meanwhile
        for tid in tids:
            try:
                children = Path(f"/proc/{parent}/task/{tid}/children").read_text().split()
            except OSError:
                continue
            todo += [int(c) for c in children if int(c) not in found]
            found.update(int(c) for c in children)
    return found


def ended(pid: int) -> bool:
    """Gone, or a zombie (it has exited: its files, and the locks on them, are closed)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return True
    return state in ("Z", "X")


def once_unlocked(db: Path, timeout: float = 60) -> Path:
    """`db`, once no process holds DuckDB's lock on it. A stage process that SIGKILLs its parent and then itself
    (`resilience.fault_point`) still holds the file for a moment after the parent has been reaped: a read in that
    moment met the lock (seen under load)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            duckdb.connect(str(db), read_only=True).close()
            return db
        except duckdb.IOException as exc:
            if "lock" not in str(exc) or time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def lock_holder(data_dir: Path) -> str:
    path = data_dir / LOCK_FILE
    return path.read_text().strip() if path.exists() else ""


def run_event_logs(data_dir: Path) -> set[Path]:
    """The instance's per-run event-log files (SQLite), one per run so far."""
    return {p for p in (data_dir / "dagster" / "history" / "runs").glob("*.db") if p.name != "index.db"}


def runs_with_status(data_dir: Path, status: str) -> int:
    with sqlite3.connect(f"file:{data_dir / 'dagster' / 'history' / 'runs.db'}?mode=ro", uri=True) as conn:
        return conn.execute("select count(*) from runs where status = ?", [status]).fetchone()[0]


def events(data_dir: Path, event_type: str, step_key: str | None = None, since: set[Path] = frozenset()) -> list[str]:
    """Events (serialised) of one type, optionally of one step, in runs started after the runs in `since`."""
    found = []
    for path in sorted(run_event_logs(data_dir) - set(since)):
        try:
            with sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=1) as conn:
                found += [e for (e,) in conn.execute(
                    "select event from event_logs where dagster_event_type = ? and (? is null or step_key = ?)",
                    [event_type, step_key, step_key]).fetchall()]
        except sqlite3.OperationalError:  # created but not yet set up by the writer: nothing in it yet
            continue
    return found


def monitoring_pass(instance: dg.DagsterInstance) -> None:
    """One iteration of the Dagster daemon's run monitoring over every run of the instance (no workspace: it serves
    only to resume runs, which ed-pipeline's dagster.yaml turns off)."""
    from dagster._daemon.monitoring.run_monitoring import execute_run_monitoring_iteration

    context = SimpleNamespace(instance=instance, create_request_context=lambda: None)
    errors = [e for e in execute_run_monitoring_iteration(context, logging.getLogger("run_monitoring")) if e]
    assert not errors, errors


def monitored(data_dir: Path) -> dict[str, tuple[dg.DagsterRunStatus, str]]:
    """The runs left started in the data directory's instance, after a pass of run monitoring: run id -> (status,
    the message of its failure, if it failed)."""
    # the instance's event log storage finds its files through DAGSTER_HOME
    with mock.patch.dict(os.environ, {"DAGSTER_HOME": str(data_dir / "dagster")}), \
            dg.DagsterInstance.get() as instance:
        started = instance.get_runs(dg.RunsFilter(statuses=[dg.DagsterRunStatus.STARTED]))
        monitoring_pass(instance)
        out = {}
        for run in started:
            failures = instance.all_logs(run.run_id, of_type=dg.DagsterEventType.RUN_FAILURE)
            out[run.run_id] = (instance.get_run_by_id(run.run_id).status, failures[-1].message if failures else "")
        return out


digests = table_digests  # (rows, hash of every row without its run columns) per table of a DuckDB file


def differing(got: dict, expected: dict) -> dict:
    """The tables whose digest differs, with both digests: a readable assertion message."""
    return {t: (got.get(t), expected.get(t)) for t in sorted(set(got) | set(expected)) if got.get(t) != expected.get(t)}


def strip_analysis(data_dir: Path) -> None:
    """Make a refreshed world look ingested but never analysed: drop what linking onwards wrote."""
    with duckdb.connect(str(data_dir / "warehouse.duckdb")) as conn:
        for schema in ANALYSE_SCHEMAS:
            conn.execute(f"drop schema if exists {schema} cascade")
    for name in ANALYSE_DIRS:
        shutil.rmtree(data_dir / name, ignore_errors=True)


def duplicated(db: Path, table: str, key: str) -> int:
    """Keys of `table` that occur more than once."""
    with duckdb.connect(str(db), read_only=True) as conn:
        return conn.execute(f"select count(*) from (select {key} from {table} group by all having count(*) > 1)"
                            ).fetchone()[0]


def ingest_job() -> dg.JobDefinition:
    """The deployment's ingest job (for `dg.reconstructable`, which needs a function of a module)."""
    from ed_pipeline.definitions import defs

    return defs.resolve_job_def("ingest")


def analyse_job() -> dg.JobDefinition:
    """The deployment's analyse job (linking onwards), for `dg.reconstructable`."""
    from ed_pipeline.definitions import defs

    return defs.resolve_job_def("analyse")


# The analyse job's dbt build alone, executed as the code server's run worker would: in a process of its own that is
# not the leader of a process group (a worker shares the code server's), with the job's own executor.
_DBT_RUN = """
import dagster as dg
from ed_pipeline.defs.features import dbt_features
from ed_pipeline_tests.faults.support import analyse_job
with dg.DagsterInstance.get() as instance:
    dg.execute_job(dg.reconstructable(analyse_job), instance, asset_selection=list(dbt_features.keys))
"""


def start_dbt_run(data_dir: Path, log: Path) -> subprocess.Popen:
    """A process running the analyse job's dbt assets over the data directory's warehouse."""
    with log.open("wb") as out:
        return subprocess.Popen([sys.executable, "-c", _DBT_RUN], env=cli_env(data_dir), stdout=out,
                                stderr=subprocess.STDOUT)


def command_line(pid: int) -> list[str]:
    """The process's arguments (none once it has ended)."""
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace").rstrip("\0").split("\0")
    except OSError:
        return []


# A run request executed as the Dagster code server's run worker would, in a process of its own (so that a fault
# point's SIGKILL ends it alone): the ingest job, with its own executor (which records the process as the run's
# worker), over the request's partition and assets, recorded in the instance of DAGSTER_HOME.
_RUN_REQUEST = """
import json, sys
import dagster as dg
from ed_pipeline_tests.faults.support import ingest_job
request = json.loads(sys.argv[1])
with dg.DagsterInstance.get() as instance:
    result = dg.execute_job(
        dg.reconstructable(ingest_job), instance, tags={**request["tags"], "dagster/partition": request["partition"]},
        asset_selection=[dg.AssetKey.from_user_string(key) for key in request["assets"]], raise_on_error=False)
sys.exit(0 if result.success else 1)
"""


def run_request_in_child(request, data_dir: Path, log: Path, **env: str) -> int:
    """Execute a sensor's `dg.RunRequest` in a fresh process, tagged as the daemon tags it (sensor, run key); its
    exit code (-9 when a fault point killed it)."""
    import json

    tags = {**request.tags, "dagster/sensor_name": "landing_sensor", "dagster/run_key": request.run_key}
    payload = json.dumps({"partition": request.partition_key, "tags": tags,
                          "assets": [key.to_user_string() for key in request.asset_selection]})
    with log.open("wb") as out:
        return subprocess.run([sys.executable, "-c", _RUN_REQUEST, payload], env=cli_env(data_dir, **env),
                              stdout=out, stderr=subprocess.STDOUT, timeout=600).returncode


# A run that waits until a file exists, executed by the deployment's executor (which records its worker process), in
# a process of its own: a run worker to keep alive or to kill at will.
@dg.op(config_schema={"until": str})
def wait_for_file(context) -> None:
    while not Path(context.op_config["until"]).exists():
        time.sleep(0.05)


@dg.job(executor_def=in_process_recording_worker)
def waiting_job():
    wait_for_file()


_WAITING_RUN = """
import json, sys
import dagster as dg
from ed_pipeline_tests.faults.support import waiting_job
with dg.DagsterInstance.get() as instance:
    result = dg.execute_job(dg.reconstructable(waiting_job), instance,
                            tags={"waiting_for": sys.argv[1], **json.loads(sys.argv[2])},
                            run_config={"ops": {"wait_for_file": {"config": {"until": sys.argv[1]}}}})
sys.exit(0 if result.success else 1)
"""


def start_waiting_run(until: Path, data_dir: Path, log: Path, **tags: str) -> subprocess.Popen:
    """A process running `waiting_job` (its run tagged `waiting_for=<until>` and `tags`) until the file `until`
    exists."""
    import json

    with log.open("wb") as out:
        return subprocess.Popen([sys.executable, "-c", _WAITING_RUN, str(until), json.dumps(tags)],
                                env=cli_env(data_dir), stdout=out, stderr=subprocess.STDOUT)
