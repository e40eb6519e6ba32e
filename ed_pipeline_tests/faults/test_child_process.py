"""`resilience.run_in_child`, on which the refresh runs each stage: results, progress and errors come back, and the
child never outlives the process that started it (a SIGKILLed refresh leaves nothing running or writing)."""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import time
import warnings
from pathlib import Path

import pytest

from ed_pipeline.resilience import (
    FAULT_ENV,
    ChildProcess,
    ChildProcessDied,
    DiskFullError,
    ends_with_this_process,
    fault_point,
    run_in_child,
)
from ed_pipeline_tests.faults.support import ended


def _work(n: int, progress) -> tuple[int, int]:
    for i in range(n):
        progress("step", i)
    return os.getpid(), 2 * n


def _quietened() -> tuple[bool, int]:
    ignored = any(action == "ignore" and message is not None and message.pattern == ".*is currently in beta"
                  for action, message, *_ in warnings.filters)
    return ignored, logging.getLogger("splink").level


def _fail() -> None:
    raise DiskFullError("disk full while writing /d/warehouse.duckdb: free space")


def _vanish() -> None:
    os.kill(os.getpid(), signal.SIGKILL)  # as the OOM killer would


def _sleep_forever(pid_file: str) -> None:
    Path(pid_file).write_text(str(os.getpid()))
    while True:
        time.sleep(0.1)


def _start_a_process(pid_file: str) -> None:
    """As the analyse stage starts `dbt build` (dagster-dbt's subprocess), then waits on it."""
    started = subprocess.Popen(["sleep", "120"])
    Path(pid_file).write_text(str(started.pid))
    started.wait()


WARMED: list[int] = []


def _warm_up() -> None:
    WARMED.append(os.getpid())


def _warm_up_fails() -> None:
    raise ImportError("no module named 'ed_pipeline.definitions'")


def _warmed() -> list[int]:
    return WARMED


def test_a_child_started_ahead_warms_up_then_runs_its_work_or_ends_unused(tmp_path: Path):
    """`ChildProcess`: the warm-up runs in the child before the work it is sent, in the same process; a failed
    warm-up is raised when the work comes, as the work's own failure; a child never sent work ends with the block."""
    with ChildProcess("warm", warm_up=_warm_up) as child:
        assert child.run(_warmed) == [child.pid]
    assert WARMED == [], "the warm-up ran here, not in the child"
    with ChildProcess("broken", warm_up=_warm_up_fails) as child, pytest.raises(ImportError, match="definitions"):
        child.run(_warmed)
    with ChildProcess("unused", warm_up=_warm_up) as child:
        pid = child.pid
    assert ended(pid), "a child never sent work outlived its block"


def _reach_fault_point(pid_file: str) -> None:
    Path(pid_file).write_text(str(os.getpid()))
    fault_point("test:point")
    time.sleep(30)  # not reached: the fault point kills the parent, and this process with it


def test_a_child_returns_its_result_relays_progress_and_raises_its_errors():
    events = []
    pid, doubled = run_in_child("work", _work, 3, progress=lambda *e: events.append(e))
    assert pid != os.getpid() and doubled == 6
    assert events == [("step", 0), ("step", 1), ("step", 2)]
    splink = logging.getLogger("splink")
    level = splink.level
    with warnings.catch_warnings():  # the CLI's quietening of Dagster and Splink holds in the child too
        warnings.filterwarnings("ignore", message=".*is currently in beta")
        splink.setLevel(logging.ERROR)
        try:
            assert run_in_child("quiet", _quietened) == (True, logging.ERROR)
        finally:
            splink.setLevel(level)
    with pytest.raises(DiskFullError, match="disk full while writing /d/warehouse.duckdb"):
        run_in_child("fail", _fail)
    with pytest.raises(ChildProcessDied, match=f"the vanish process ended \\(exit code -{signal.SIGKILL}\\)"):
        run_in_child("vanish", _vanish)


_KEPT_LOCK = []


def _keep_a_lock() -> int:
    """As tqdm does for GX's progress bars: a multiprocessing lock made in the stage, kept for good."""
    import multiprocessing

    _KEPT_LOCK.append(multiprocessing.get_context("spawn").RLock())
    return os.getpid()


def test_a_lock_a_child_kept_is_given_back_not_reported_leaked():
    """A child ends without the interpreter's teardown, but runs multiprocessing's finalizers as its own children
    do: the resource tracker it shares with the refresh is told of its locks, and says nothing of a leak when the
    refresh ends."""
    code = ("from ed_pipeline.resilience import run_in_child\n"
            "from ed_pipeline_tests.faults.test_child_process import _keep_a_lock\n"
            "import os\n"
            "assert run_in_child('lock', _keep_a_lock) != os.getpid()\n")
    ended_ = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                            cwd=Path(__file__).resolve().parents[2])
    assert ended_.returncode == 0, ended_.stderr
    assert "leaked semaphore" not in ended_.stderr, ended_.stderr


def _assert_ends(child: int, within: float = 10) -> None:
    """`child` ends within `within` seconds; one that does not is SIGKILLed, so as not to outlive the test."""
    deadline = time.monotonic() + within
    while not ended(child):
        if time.monotonic() >= deadline:
            os.kill(child, signal.SIGKILL)
        assert time.monotonic() < deadline, f"the child {child} outlived its SIGKILLed parent"
        time.sleep(0.05)


def _parent(target: str, pid_file: Path, **env: str) -> subprocess.Popen:
    code = (f"from ed_pipeline.resilience import run_in_child\n"
            f"from ed_pipeline_tests.faults.test_child_process import {target}\n"
            f"run_in_child('child', {target}, {str(pid_file)!r})\n")
    return subprocess.Popen([sys.executable, "-c", code], env={**os.environ, **env},
                            cwd=Path(__file__).resolve().parents[2])


def _child_pid(pid_file: Path, parent: subprocess.Popen) -> int:
    deadline = time.monotonic() + 120
    while not pid_file.exists() or not pid_file.read_text():
        assert parent.poll() is None, f"the parent ended (rc {parent.returncode}) before its child started"
        assert time.monotonic() < deadline, "the child never started"
        time.sleep(0.1)
    return int(pid_file.read_text())


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="/proc")
def test_a_child_dies_with_its_parent(tmp_path: Path):
    pid_file = tmp_path / "child.pid"
    parent = _parent("_sleep_forever", pid_file)
    child = _child_pid(pid_file, parent)
    assert not ended(child)
    parent.send_signal(signal.SIGKILL)
    parent.wait(timeout=60)
    _assert_ends(child)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="/proc")
def test_a_fault_point_in_a_child_kills_the_refresh_itself(tmp_path: Path):
    """ED_PIPELINE_FAULT_AT in a stage's process SIGKILLs the process that started it (`ed-pipeline refresh`)."""
    pid_file = tmp_path / "child.pid"
    parent = _parent("_reach_fault_point", pid_file, **{FAULT_ENV: "test:point"})
    parent.wait(timeout=120)
    assert parent.returncode == -signal.SIGKILL
    _assert_ends(_child_pid(pid_file, parent))


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="/proc")
def test_what_a_child_started_dies_with_the_refresh(tmp_path: Path):
    """A process the stage started (dbt) must not go on writing the warehouse after the refresh was SIGKILLed (the
    next refresh would meet its lock), nor after the stage itself was killed (the OOM killer)."""
    pid_file = tmp_path / "started.pid"
    parent = _parent("_start_a_process", pid_file)
    started = _child_pid(pid_file, parent)
    parent.send_signal(signal.SIGKILL)
    parent.wait(timeout=60)
    _assert_ends(started)
    pid_file.unlink()
    code = ("import os, signal, time\nfrom pathlib import Path\nfrom ed_pipeline.resilience import run_in_child\n"
            f"def kill_stage():\n    while not Path({str(pid_file)!r}).exists(): time.sleep(0.05)\n"
            "    for p in Path('/proc').glob('[0-9]*'):\n"
            "        try: stat = (p / 'stat').read_text().rsplit(')', 1)[1].split()\n"
            "        except OSError: continue\n"
            "        if stat[1] == str(os.getpid()) and b'spawn_main' in (p / 'cmdline').read_bytes():\n"
            "            os.kill(int(p.name), 9)\n"
            "import threading; threading.Thread(target=kill_stage, daemon=True).start()\n"
            "from ed_pipeline_tests.faults.test_child_process import _start_a_process\n"
            f"try: run_in_child('child', _start_a_process, {str(pid_file)!r})\n"
            "except Exception as exc: print(type(exc).__name__)\n")
    stage_killed = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                                  cwd=Path(__file__).resolve().parents[2])
    assert stage_killed.stdout.strip() == "ChildProcessDied", stage_killed.stderr
    started = int(pid_file.read_text())
    _assert_ends(started)


# A process that starts another (as dagster-dbt starts dbt in a run worker) and keeps it under
# `ends_with_this_process` until a file exists; it writes the started process's pid first.
_STARTER = """
import subprocess, sys, time
from pathlib import Path
from ed_pipeline.resilience import ends_with_this_process
started = subprocess.Popen(["sleep", "120"])
with ends_with_this_process(started):
    Path(sys.argv[1]).write_text(str(started.pid))
    while not Path(sys.argv[2]).exists():
        time.sleep(0.05)
print("block ended", flush=True)
time.sleep(120)
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="/proc")
def test_a_process_kept_under_ends_with_this_process_dies_with_the_process_that_started_it(tmp_path: Path):
    """The starter SIGKILLed inside the block (a run worker killed while dbt builds): what it started ends too,
    although it is not in a process group of its own (a code server's run worker shares the server's). Once the
    block has ended, what it started is left alone."""
    pid_file, release = tmp_path / "started.pid", tmp_path / "release"
    starter = subprocess.Popen([sys.executable, "-c", _STARTER, str(pid_file), str(release)],
                               cwd=Path(__file__).resolve().parents[2])
    started = _child_pid(pid_file, starter)
    try:
        assert os.getpgid(started) == os.getpgid(starter.pid) == os.getpgid(0)  # one group: killpg is no way out
        os.kill(started, signal.SIGSTOP)  # stopped, as a process busy for minutes: it cannot end of itself
        starter.send_signal(signal.SIGKILL)
        starter.wait(timeout=60)
        _assert_ends(started)
    finally:
        if not ended(started):
            os.kill(started, signal.SIGKILL)

    pid_file.unlink()
    starter = subprocess.Popen([sys.executable, "-c", _STARTER, str(pid_file), str(release)],
                               stdout=subprocess.PIPE, cwd=Path(__file__).resolve().parents[2])
    started = _child_pid(pid_file, starter)
    try:
        release.touch()
        assert starter.stdout.readline() == b"block ended\n"
        starter.kill()
        starter.wait(timeout=60)
        time.sleep(1)  # a reaper that was not told the block ended would have killed it by now
        assert not ended(started), "a process outlived by its block was killed with the process that started it"
    finally:
        os.kill(started, signal.SIGKILL)


def _starter_killed(tmp_path: Path, block: str, before: str = "") -> int:
    """Run a starter that starts `sleep 120` and keeps it under `ends_with_this_process`, running `before` (a line
    or more) first and `block` in the block, either SIGKILLing the starter; the sleep's pid, once the starter is
    dead."""
    pid_file = tmp_path / "started.pid"
    code = ("import os, signal, subprocess, sys\nfrom pathlib import Path\n"
            "from ed_pipeline import resilience\n"
            "started = subprocess.Popen(['sleep', '120'])\nPath(sys.argv[1]).write_text(str(started.pid))\n"
            f"{before}with resilience.ends_with_this_process(started):\n    {block}\n")
    starter = subprocess.run([sys.executable, "-c", code, str(pid_file)], timeout=60,
                             cwd=Path(__file__).resolve().parents[2])
    assert starter.returncode == -signal.SIGKILL
    return int(pid_file.read_text())


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="/proc")
def test_a_process_started_dies_with_its_starter_killed_the_instant_the_block_begins(tmp_path: Path):
    """The block begins only once its watcher is watching: a starter SIGKILLed at the block's first line still
    takes what it started with it (before, the watcher's Python start-up raced the kill, and on a loaded machine
    lost it: what was started lived on, another process's child)."""
    _assert_ends(_starter_killed(tmp_path, block="os.kill(os.getpid(), signal.SIGKILL)"))


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="/proc")
def test_a_process_started_dies_with_its_starter_killed_before_its_watcher_looked(tmp_path: Path):
    """A starter SIGKILLed the moment its watcher is started, before the watcher's Python has run a line: what it
    started is another process's child by the time the watcher looks, and must end all the same (the watcher knew
    it by its parent, and left it running: the dbt fault test failed so on a loaded machine)."""
    start_then_die = ("popen = subprocess.Popen\n"
                      "def start_then_die(*args, **kwargs):\n"
                      "    popen(*args, **kwargs)\n    os.kill(os.getpid(), signal.SIGKILL)\n"
                      "resilience.subprocess.Popen = start_then_die\n")
    _assert_ends(_starter_killed(tmp_path, block="pass", before=start_then_die))


def test_ends_with_this_process_leaves_alone_a_process_that_ends_within_the_block():
    """A process that ends within the block (or before it, and is waited for: its pid may be another's by then, and
    its watcher has nothing to watch and goes) is no error."""
    with ends_with_this_process(subprocess.Popen([sys.executable, "-c", "pass"])) as started:
        assert started.wait(timeout=60) == 0
    for _ in range(5):
        started = subprocess.Popen([sys.executable, "-c", "pass"])
        started.wait(timeout=60)
        with ends_with_this_process(started):
            time.sleep(0.2)  # the watcher has looked, found no child of this process's and gone
