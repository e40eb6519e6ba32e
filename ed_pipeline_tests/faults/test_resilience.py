"""The refresh lock and the full-disk message on their own (the end-to-end faults are in the other modules)."""

from __future__ import annotations

import errno
import os
import sqlite3
import subprocess
import sys
from collections import namedtuple
from pathlib import Path

import duckdb
import pytest

from ed_pipeline import resilience
from ed_pipeline.resilience import disk_full_message, refresh_lock


def test_a_second_refresh_lock_is_refused_naming_the_holder(tmp_path: Path):
    take = ("import sys; from pathlib import Path; from ed_pipeline.resilience import refresh_lock\n"
            "with refresh_lock(Path(sys.argv[1])): print('held')")
    other = [sys.executable, "-c", take, str(tmp_path)]
    with refresh_lock(tmp_path):
        assert (tmp_path / "refresh.lock").read_text() == f"{os.getpid()}\n"
        with refresh_lock(tmp_path):  # re-entrant in the holding process (the CLI, then refresh())
            pass
        refused = subprocess.run(other, capture_output=True, text=True, timeout=60)
        assert refused.returncode == 1 and "held" not in refused.stdout
        assert f"RefreshBusyError: another refresh is running on {tmp_path} (pid {os.getpid()})" in refused.stderr
    assert (tmp_path / "refresh.lock").read_text() == ""  # released, the pid gone
    assert subprocess.run(other, capture_output=True, text=True, timeout=60).stdout == "held\n"


def _raised(error: BaseException, cause: BaseException) -> BaseException:
    try:
        try:
            raise cause
        except BaseException as inner:
            raise error from inner
    except BaseException as outer:
        return outer


FULL = "free space on that disk and re-run `ed-pipeline refresh`; the previous warehouse is intact"


@pytest.mark.parametrize("error, says", [
    (OSError(errno.ENOSPC, "No space left on device", "/d/agency_zone.duckdb"),
     "disk full while writing /d/agency_zone.duckdb"),
    (OSError(errno.EFBIG, "File too large", "/d/x.parquet"), "file size limit reached while writing /d/x.parquet"),
    (duckdb.TransactionException('Failed to commit: Could not write file "/d/warehouse.duckdb.wal": No space left '
                                 "on device"), "disk full while writing /d/warehouse.duckdb.wal"),
    (_raised(RuntimeError("run storage failed"), sqlite3.OperationalError("database or disk is full")),
     "disk full while writing a file under /d"),
])
def test_a_full_disk_is_named_with_what_to_do(error: BaseException, says: str):
    message = disk_full_message(error, "a file under /d")
    assert message == f"{says}: {FULL} (each write is one transaction, and the unfinished one was rolled back)"
    assert disk_full_message(message, "elsewhere") == message  # carried whole through a step's failure


def test_other_errors_are_not_called_a_full_disk(tmp_path: Path, monkeypatch):
    assert disk_full_message(ValueError("bad value"), "x") is None
    assert disk_full_message(OSError(errno.EACCES, "Permission denied"), "x") is None
    io_error = sqlite3.OperationalError("disk I/O error")  # SQLite's only word when it cannot create its journal
    assert disk_full_message(io_error, "x", disk=tmp_path) is None  # plenty of space: not a full disk
    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(resilience.shutil, "disk_usage", lambda _: usage(10**9, 10**9 - 4096, 4096))
    assert disk_full_message(io_error, f"a file under {tmp_path}", disk=tmp_path).startswith(
        f"disk full while writing a file under {tmp_path}: ")


def test_months_left_after_unreadable_ones_run_in_consecutive_stretches():
    from ed_pipeline.refresh import _ranges
    from ed_pipeline.settings import month_range

    months = month_range("2014-01", "2014-08")
    bad = {"2014-03", "2014-04", "2014-07"}
    assert _ranges([m for m in months if m not in bad], months) == [
        ["2014-01", "2014-02"], ["2014-05", "2014-06"], ["2014-08"]]
    assert _ranges([], months) == []


def test_a_stage_process_killed_from_outside_is_a_clear_error(tmp_path: Path, monkeypatch, capsys):
    """The kernel's out-of-memory killer (or an operator) ends a stage's process while `ed-pipeline refresh` lives:
    it says so and what to do, with the exit code of an error, not a traceback."""
    from ed_pipeline import cli

    def killed(args, settings):
        raise resilience.ChildProcessDied("the analyse process ended (exit code -9) before it finished")

    monkeypatch.setenv("ED_DATA_DIR", str(tmp_path))
    monkeypatch.setattr(cli, "_refresh_locked", killed)
    assert cli.main(["refresh"]) == 2
    said = " ".join(capsys.readouterr().err.split())
    assert "the analyse process ended (exit code -9)" in said and "run `ed-pipeline refresh` again" in said
