"""Faults survived: one refresh per data directory, a clear error on a full disk, which process runs a run (so a
run whose process died is told from a live one), and the test-only fault hook.

What each fault does to the pipeline and how to recover: docs/resilience.md. This module imports nothing heavy
(no Dagster), so `ed-pipeline refresh` takes its lock before loading the definitions.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import fcntl
import logging
import multiprocessing
import multiprocessing.util
import os
import pickle
import re
import shutil
import signal
import subprocess
import sys
import threading
import traceback
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

# Test hook, the only one: `ED_PIPELINE_FAULT_AT=<point>` makes the process SIGKILL itself at that point, as a
# power cut or the OOM killer would. Points: `commit:<schema>.<table>` (an IO manager's write of that table,
# rows inserted, transaction not yet committed). Unset in real use; it changes nothing else.
FAULT_ENV = "ED_PIPELINE_FAULT_AT"
PARENT_ENV = "ED_PIPELINE_PARENT_PID"  # set in a `run_in_child` process: the pid it dies with
LOCK_FILE = "refresh.lock"
# Columns that say when or in which run a row was written, not what it holds: a run again changes only them.
RUN_COLUMNS = frozenset({"_loaded_at", "refreshed_at", "mlflow_run_id"})
NEARLY_FULL = 1 << 20  # bytes free below which an unexplained I/O error is taken for a full disk

_FULL_ERRNOS = {errno.ENOSPC: "disk full", errno.EDQUOT: "disk quota exceeded", errno.EFBIG: "file size limit reached"}
_FULL_WORDS = {
    "No space left on device": "disk full",
    "database or disk is full": "disk full",  # SQLite (Dagster's instance, MLflow)
    "Disk quota exceeded": "disk quota exceeded",
    "File too large": "file size limit reached",
}
_HELD: set[Path] = set()  # lock files this process holds
_QUOTED_PATH = re.compile(r"""["'](/[^"']+)["']""")


def fault_point(name: str) -> None:
    """SIGKILL the refresh here when ED_PIPELINE_FAULT_AT names this point (tests of recovery only): the process
    that started this one with `run_in_child` (the `ed-pipeline refresh` process; this one dies with it), and this
    process."""
    if os.environ.get(FAULT_ENV) == name:
        parent = os.environ.get(PARENT_ENV)
        if parent:
            os.kill(int(parent), signal.SIGKILL)
        os.kill(os.getpid(), signal.SIGKILL)


class RefreshBusyError(RuntimeError):
    """Another `ed-pipeline refresh` holds the data directory."""


class DiskFullError(RuntimeError):
    """A write failed for want of space; what was written before it stands."""


def table_digests(db: Path, schemas: tuple[str, ...] | None = None, where: str | None = None
                  ) -> dict[str, tuple[int, int]]:
    """(rows, order-independent hash of every row without its RUN_COLUMNS) per table (and view) of a DuckDB file,
    "schema.table" -> digest: two runs over the same input leave the same digests. `where` filters each table
    that has the columns it names (e.g. one extract month)."""
    import duckdb  # here: this module is imported before anything heavy

    out = {}
    with duckdb.connect(str(db), read_only=True) as conn:
        tables = conn.execute("select distinct table_schema, table_name from information_schema.tables "
                              "order by 1, 2").fetchall()
        for schema, table in tables:
            if schemas is None or schema in schemas:
                out[f"{schema}.{table}"] = table_digest(conn, schema, table, where=where)
    return out


def copy_database(source: Path, target: Path) -> None:
    """A DuckDB file and its write-ahead log, if it has one, copied over `target`'s (a stale log of `target` is
    removed: DuckDB would replay it into the copy)."""
    for suffix in ("", ".wal"):
        to = target.with_name(target.name + suffix)
        to.unlink(missing_ok=True)
        if (origin := source.with_name(source.name + suffix)).exists():
            shutil.copy2(origin, to)


def table_digest(conn, schema: str, table: str, *, where: str | None = None,
                 left_out: frozenset[str] = RUN_COLUMNS) -> tuple[int, int] | None:
    """(rows, order-independent hash of every row without the columns `left_out`) of one table or view on an open
    DuckDB connection; None where there is no such table. `where` filters it if it has the columns it names."""
    columns = [c for (c,) in conn.execute(
        "select column_name from information_schema.columns where table_schema = ? and table_name = ? "
        "order by ordinal_position", [schema, table]).fetchall()]
    if not columns:
        return None
    kept = ", ".join(f'"{c}"' for c in columns if c not in left_out)
    filter_ = f" where {where}" if where and "extract_month" in columns else ""
    n, h = conn.execute(
        f'select count(*), coalesce(sum(hash({kept})), 0) from "{schema}"."{table}"{filter_}').fetchone()
    return n, int(h)


@contextmanager
def refresh_lock(data_dir: Path) -> Iterator[Path]:
    """Hold `<data_dir>/refresh.lock` (an exclusive flock, released by the kernel even if this process is killed)
    for one refresh; a second refresh on the same directory fails at once, naming the holder's pid. Re-entrant
    within one process."""
    data_dir.mkdir(parents=True, exist_ok=True)
    path = data_dir / LOCK_FILE
    if path.resolve() in _HELD:  # this process holds it already (the CLI takes it before refresh() does)
        yield path
        return
    with path.open("a+") as f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            f.seek(0)
            holder = f.read().strip() or "unknown"
            raise RefreshBusyError(
                f"another refresh is running on {data_dir} (pid {holder}): wait for it to finish and run "
                "`ed-pipeline refresh` again (nothing was changed by this one)"
            ) from None
        try:
            f.seek(0)
            f.truncate()
            f.write(f"{os.getpid()}\n")
            f.flush()
        except OSError as exc:
            raise DiskFullError(disk_full_message(exc, str(path)) or str(exc)) from exc
        _HELD.add(path.resolve())
        try:
            yield path
        finally:
            _HELD.discard(path.resolve())
            f.truncate(0)  # the file stays (removing it would race a waiting refresh); the pid goes


def disk_full_message(error: object, fallback: str, disk: Path | None = None) -> str | None:
    """A clear message when `error` (an exception with its causes and contexts, or Dagster's serialised error)
    means a disk or file size limit was hit; None for any other error. `fallback` names the file when the error
    does not. SQLite says only "disk I/O error" when it cannot even create its journal: that counts as a full
    disk when `disk` (the data directory) has next to no space left."""
    reason, path = None, None
    if disk is not None and _nearly_full(disk) and any("disk I/O error" in str(i) for i in _chain(error)):
        reason = "disk full"
    for item in _chain(error):
        if isinstance(item, str) and item.startswith(tuple(f"{why} while writing " for why in _FULL_WORDS.values())):
            return item  # already this function's message (carried by a step's failure)
        if isinstance(item, OSError) and item.errno in _FULL_ERRNOS:
            reason, path = _FULL_ERRNOS[item.errno], path or item.filename
        text = str(item)
        for words, why in _FULL_WORDS.items():
            if words in text:
                reason = reason or why
                quoted = _QUOTED_PATH.search(text)
                path = path or (quoted.group(1) if quoted else None)
    if reason is None:
        return None
    return (f"{reason} while writing {path or fallback}: free space on that disk and re-run `ed-pipeline refresh`; the "
            "previous warehouse is intact (each write is one transaction, and the unfinished one was rolled back)")


def _nearly_full(directory: Path) -> bool:
    try:
        return shutil.disk_usage(directory).free < NEARLY_FULL
    except OSError:
        return False


def _chain(error: object) -> Iterator[BaseException | str]:
    """The error, then its causes and contexts (exceptions), or the messages of a serialised error chain."""
    seen: set[int] = set()
    todo = [error]
    while todo:
        item = todo.pop(0)
        if item is None or id(item) in seen:
            continue
        seen.add(id(item))
        if isinstance(item, BaseException | str):
            yield item
            if isinstance(item, BaseException):
                todo += [item.__cause__, item.__context__]
        else:  # Dagster's SerializableErrorInfo: message, cause, context
            yield str(getattr(item, "message", ""))
            todo += [getattr(item, "cause", None), getattr(item, "context", None)]


# --- work in a child process that dies with its parent ---------------------------------------------------

PR_SET_PDEATHSIG = 1  # linux/prctl.h


# Started beside each stage: waits for its stdin to close (the refresh process ended, however it ended: the kernel
# closes the pipe even after a SIGKILL), then SIGKILLs the stage's process group, which holds what the stage
# started (dbt): the death signal of the stage process is not inherited by its own children.
_REAPER = ("import os, signal, sys\n"
           "sys.stdin.buffer.read()\n"
           "try:\n    os.killpg(int(sys.argv[1]), signal.SIGKILL)\nexcept OSError:\n    pass\n")


class ChildProcessDied(RuntimeError):
    """A `run_in_child` process ended without a result (killed, or out of memory); `pid` was its process."""

    def __init__(self, message: str, pid: int | None = None):
        super().__init__(message)
        self.pid = pid


def run_in_child(name: str, function: Callable[..., Any], *args: Any,
                 progress: Callable[..., None] | None = None) -> Any:
    """`function(*args, progress=...)` in a fresh Python process (spawned: nothing of this one's memory is shared
    or kept), returning its result or raising its exception here. `progress(*event)` calls in the child are
    relayed to `progress` here, in order. The child dies with this process: SIGKILLed by the kernel the moment
    this process (the thread that started it) ends, however it ends (PR_SET_PDEATHSIG; elsewhere than Linux, it
    polls its parent). `function` must be importable (a module-level function) and its arguments picklable.

    The refresh runs each stage this way, so that the memory one stage's libraries keep after it (polars and
    DuckDB do not return what they freed) is not held through the next (docs/performance.md)."""
    with ChildProcess(name) as child:
        return child.run(function, *args, progress=progress)


class ChildProcess:
    """A `run_in_child` process started ahead of its work: it runs `warm_up()` (imports, loading definitions)
    at once, then waits to be sent the function to run. The refresh starts its analysis's process this way while
    the ingest runs, which leaves a core free; a process never sent work is ended on leaving the block."""

    def __init__(self, name: str, warm_up: Callable[[], Any] | None = None):
        self.name = name
        context = multiprocessing.get_context("spawn")
        self._receive, send = context.Pipe(duplex=False)
        receive_work, self._send_work = context.Pipe(duplex=False)
        self._child = context.Process(target=_child_main, args=(send, receive_work, os.getpid(), warm_up,
                                                                _quietening()), name=f"ed-pipeline {name}")
        # not a daemon: a stage may start processes of its own (a daemonic process may not); it never outlives
        # this one anyway (the death signal below, and the join in `close`)
        self._child.start()
        send.close()
        receive_work.close()
        # its own session, so that Ctrl-C (the terminal's process group) cannot end it before it has done its work
        self._reaper = subprocess.Popen([sys.executable, "-c", _REAPER, str(self._child.pid)], stdin=subprocess.PIPE,
                                        start_new_session=True)
        self._answered = False

    @property
    def pid(self) -> int | None:
        return self._child.pid

    def run(self, function: Callable[..., Any], *args: Any, progress: Callable[..., None] | None = None) -> Any:
        """`function(*args, progress=...)` in the process, as `run_in_child` says; once only."""
        with contextlib.suppress(OSError):  # it has ended already (killed): said below, as it ending mid-work
            self._send_work.send((function, args, progress is not None))
        while True:
            try:
                kind, payload = self._receive.recv()
            except EOFError:
                self._child.join()
                raise ChildProcessDied(f"the {self.name} process ended (exit code {self._child.exitcode}) before it "
                                       "finished", pid=self._child.pid) from None
            if kind == "progress" and progress is not None:
                progress(*payload)
            elif kind == "result":
                self._answered = True
                return payload
            elif kind == "error":
                self._answered = True
                raise payload

    def close(self) -> None:
        """End the process (at once, unless it has answered: then it is ending of itself) and what it started."""
        if self._reaper.stdin.closed:
            return
        self._receive.close()
        self._send_work.close()  # a process still waiting for work reads the end of it, and ends
        self._child.join(timeout=60 if self._answered else 0)  # not answered: this process is failing (Ctrl-C)
        if self._child.is_alive():
            self._child.kill()
            self._child.join()
        self._reaper.stdin.close()  # whatever the stage started and left running ends with it
        self._reaper.wait()

    def __enter__(self) -> ChildProcess:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()


# Started beside a process this one started: holds a pidfd on it, says so on its stdout (the block waits for it),
# waits for its stdin to close, and SIGKILLs it unless told "done" first (this process ended without saying it).
# The process is known by its pid and its start time (argv[2], `_start_time`): a pid whose start time differs is
# another process's (the one started ended, was waited for, and its pid was given again), and is left alone. Not
# by its parent: a starter killed before its reaper looked has left it another's child, and it must still end (the
# dbt fault test failed so on a loaded machine). Inline, importing nothing of ours: it must hold its pidfd within
# milliseconds of the process's start.
_PROCESS_REAPER = ("import os, signal, sys\n"
                   "def _start_time(pid):\n"
                   "    return open(f'/proc/{pid}/stat').read().rsplit(')', 1)[1].split()[19]\n"
                   "pid = int(sys.argv[1])\n"
                   "try:\n    handle = os.pidfd_open(pid) if hasattr(os, 'pidfd_open') else None\n"
                   "    if sys.argv[2] and _start_time(pid) != sys.argv[2]:\n        sys.exit()\n"
                   "except OSError:\n    sys.exit()\n"
                   "try:\n    os.write(1, b'watching')\n"  # a starter gone already reads nothing: end it all the same
                   "except OSError:\n    pass\nos.close(1)\n"
                   "if sys.stdin.buffer.read() != b'done':\n"
                   "    try:\n"
                   "        if handle is None:\n            os.kill(pid, signal.SIGKILL)\n"
                   "        else:\n            signal.pidfd_send_signal(handle, signal.SIGKILL)\n"
                   "    except OSError:\n        pass\n")


def _start_time(pid: int) -> str:
    """When process `pid` started (clock ticks since boot, /proc/<pid>/stat's 22nd field): with the pid, it names
    one process, as a later one given the same pid started later. "gone" for a pid with no process (its watcher
    then watches nothing), "" where there is no /proc (its watcher then trusts the pid)."""
    try:
        return _stat_fields(pid)[19]  # field 22 of proc(5): starttime, as `process_identity`
    except OSError:
        return "gone" if Path("/proc/self/stat").exists() else ""


@contextmanager
def ends_with_this_process(process: subprocess.Popen) -> Iterator[subprocess.Popen]:
    """While the block runs, `process` (started by this process, and not yet waited for) is SIGKILLed the moment
    this process ends, however it ends. The block begins once its watcher, a process of its own, is watching: a
    Python start-up, tens of milliseconds, and seconds on a loaded machine, where a kill early in the block had left
    `process` running. For dbt, which dagster-dbt starts in the run worker: a worker SIGKILLed (or taken by the OOM
    killer) would otherwise leave dbt building the warehouse, and holding DuckDB's lock, after its run has been
    marked failed. `run_in_child`'s process group does this for a refresh's stages; a worker that the code server
    starts shares the server's process group, which is not this process's to end."""
    reaper = subprocess.Popen([sys.executable, "-c", _PROCESS_REAPER, str(process.pid), _start_time(process.pid)],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                              start_new_session=True)  # out of the terminal's group: Ctrl-C is the block's to handle
    with reaper.stdout:
        reaper.stdout.read()  # b"watching", or nothing from a reaper with nothing to watch: it has exited
    try:
        yield process
    finally:
        # a reaper that had nothing to watch (the process ended and was waited for) has gone: its pipe is broken
        with contextlib.suppress(BrokenPipeError):
            reaper.stdin.write(b"done")
        with contextlib.suppress(BrokenPipeError):
            reaper.stdin.close()
        reaper.wait()


def die_with_parent(parent_pid: int) -> None:
    """Have the kernel SIGKILL this process when its parent ends (Linux), else poll for it; exit at once if the
    parent has already gone."""
    os.environ[PARENT_ENV] = str(parent_pid)
    if sys.platform.startswith("linux"):
        libc = ctypes.CDLL(None, use_errno=True)
        if libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0) != 0:
            raise OSError(ctypes.get_errno(), "prctl(PR_SET_PDEATHSIG) failed")
    else:
        def watch() -> None:
            while os.getppid() == parent_pid:
                threading.Event().wait(0.5)
            os.kill(os.getpid(), signal.SIGKILL)

        threading.Thread(target=watch, name="die-with-parent", daemon=True).start()
    if os.getppid() != parent_pid:  # it ended before the line above took effect
        os.kill(os.getpid(), signal.SIGKILL)


def _quietening() -> tuple[list, dict[str, int]]:
    """This process's warning filters and the levels set on its loggers (the CLI silences Dagster's beta warnings
    and Splink's narration), for a spawned child, which starts without them."""
    levels = {name: logger.level for name, logger in logging.root.manager.loggerDict.items()
              if isinstance(logger, logging.Logger) and logger.level != logging.NOTSET}
    return list(warnings.filters), levels


def _child_main(send, receive_work, parent_pid: int, warm_up: Callable[[], Any] | None,
                quietening: tuple[list, dict[str, int]] = ([], {})) -> None:
    os.setpgid(0, 0)  # a process group of its own, inherited by what it starts: the reaper ends them all at once
    die_with_parent(parent_pid)
    filters, levels = quietening
    for action, message, category, module, lineno in reversed(filters):  # patterns, or strings, or None
        warnings.filterwarnings(action, getattr(message, "pattern", message) or "", category,
                                getattr(module, "pattern", module) or "", lineno)
    for name, level in levels.items():
        logging.getLogger(name).setLevel(level)
    failed = None
    try:
        if warm_up is not None:
            warm_up()
    except BaseException as exc:  # noqa: BLE001 (said when the work comes, as the work's own failure)
        failed = exc
    try:
        function, args, relay = receive_work.recv()
    except EOFError:  # no work: the refresh did not need this stage after all
        _end_without_teardown()
    try:
        if failed is not None:
            raise failed
        kwargs = {"progress": lambda *event: send.send(("progress", event))} if relay else {}
        message = ("result", function(*args, **kwargs))
    except BaseException as exc:  # noqa: BLE001 (every failure goes back to the parent, to be raised there)
        message = ("error", _portable(exc))
    send.send(message)
    send.close()
    _end_without_teardown()


def _end_without_teardown() -> None:
    """End this process as multiprocessing ends a forked child: once its threads have finished, its logs and
    standard streams flushed, without the interpreter's teardown. In a stage that imported Dagster, Splink, MLflow
    and LightGBM that teardown (destroying every module and object, in C) took 2.2 s of the refresh, which waits for
    the stage to end before the next one opens the databases; everything it wrote is committed by then."""
    for thread in threading.enumerate():
        if thread is not threading.current_thread() and not thread.daemon:
            thread.join()
    # multiprocessing's finalizers, as its own children run them: a lock made here (tqdm's, GX's progress bars) is
    # given back to the resource tracker this process shares with its parent, which otherwise reports it leaked
    # when the refresh ends ("1 leaked semaphore objects to clean up at shutdown")
    with contextlib.suppress(Exception):
        multiprocessing.util._run_finalizers()
    logging.shutdown()
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):  # a closed or broken stream: nothing left to flush
            stream.flush()
    os._exit(0)


def _portable(exc: BaseException) -> BaseException:
    """The exception, with the child's traceback as a note, when it survives pickling; else a RuntimeError
    carrying its traceback as text (what disk_full_message and the user read)."""
    text = "".join(traceback.format_exception(exc))
    try:
        exc.add_note(f"in the child process:\n{text}")
        pickle.loads(pickle.dumps(exc))
        return exc
    except Exception:  # noqa: BLE001
        return RuntimeError(text)


# --- which process runs a run: told apart from a later process given the same pid ------------------------

_BOOT_ID = Path("/proc/sys/kernel/random/boot_id")


def process_identity(pid: int | None = None) -> str | None:
    """`pid=<pid> start=<ticks> boot=<boot id> host=<host name>` of a running process (this one by default): its
    start time in clock ticks since boot (from /proc), so that a later process given the same pid, after this one
    has ended or the machine restarted, is not taken for it (`process_running`). None where there is no /proc (not
    Linux) or no such process."""
    pid = os.getpid() if pid is None else pid
    try:
        boot = _BOOT_ID.read_text().strip()
        start = _stat_fields(pid)[19]  # field 22 of proc(5): starttime
    except (OSError, IndexError):
        return None
    return f"pid={pid} start={start} boot={boot} host={os.uname().nodename}"


def process_running(identity: str) -> bool | None:
    """Whether the process `identity` (`process_identity`, other fields beside it ignored) still runs: False once
    it has ended (a zombie has ended), or the machine has restarted since, or its pid belongs to another process
    now; None when this machine cannot tell (the identity is another host's, or unreadable, or there is no /proc)."""
    fields = identity_fields(identity)
    if not {"pid", "start", "boot", "host"} <= set(fields) or not fields["pid"].isdigit():
        return None
    if fields["host"] != os.uname().nodename:
        return None  # another machine's (or container's) pid: nothing to read of it here
    try:
        boot = _BOOT_ID.read_text().strip()
    except OSError:
        return None
    if fields["boot"] != boot:
        return False
    try:
        stat = _stat_fields(int(fields["pid"]))
    except OSError:
        return False
    return stat[0] not in ("Z", "X") and stat[19] == fields["start"]


def end_process(identity: str) -> bool:
    """SIGKILL the process `identity` (`process_identity`) if it still runs; whether it did. The signal goes through
    a pidfd opened after the start time was checked and checked again once it is open, so that a later process
    given the same pid is never hit. Linux only: elsewhere nothing can be told (`process_running`), nothing ended."""
    if process_running(identity) is not True or not hasattr(os, "pidfd_open"):
        return False
    try:
        handle = os.pidfd_open(int(identity_fields(identity)["pid"]))
    except OSError:
        return False
    try:
        if process_running(identity) is not True:  # the pid changed hands before the pidfd was opened
            return False
        signal.pidfd_send_signal(handle, signal.SIGKILL)
        return True
    finally:
        os.close(handle)


_END_LATER = ("import sys, time\nfrom ed_pipeline.resilience import end_process\n"
              "time.sleep(float(sys.argv[2]))\nend_process(sys.argv[1])\n")


def end_process_later(identity: str, seconds: float) -> None:
    """`end_process(identity)` in `seconds`, from a process of its own: the caller (the Dagster daemon, the UI's
    server) neither waits nor needs to live that long."""
    subprocess.Popen([sys.executable, "-c", _END_LATER, identity, str(seconds)], start_new_session=True,
                     stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def identity_fields(identity: str) -> dict[str, str]:
    """The `name=value` fields of an identity (`process_identity`, and any written beside it)."""
    return dict(part.partition("=")[::2] for part in identity.split())


def _stat_fields(pid: int) -> list[str]:
    """/proc/<pid>/stat after the command name (which may hold spaces and parentheses): state first."""
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
