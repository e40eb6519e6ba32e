"""A full disk stops the refresh with a clear error, and the warehouse it had is still there, readable, unchanged.

The disk is a tmpfs mounted for the test and filled to its last page. Where mounting is not allowed (no root),
a file-size limit on the refresh process stands in for it (writes past 64 KiB fail with EFBIG instead).
"""

from __future__ import annotations

import re
import resource
import shutil
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from ed_pipeline_tests.faults.support import cli_env, differing, digests

LANDED = "2016-06"  # one month to load is enough to need more than the page left free
PAGE = 4096


@contextmanager
def full_disk(where: Path, content: list[Path]) -> Iterator[bool]:
    """Mount a tmpfs at `where`, move `content` onto it and fill it to one free page; yields whether it could
    mount (False: nothing moved, nothing mounted)."""
    where.mkdir()
    size = sum(f.stat().st_size for p in content for f in ([p] if p.is_file() else p.rglob("*")) if f.is_file())
    size = (size // PAGE + len(content) + 4096) * PAGE  # room for the copies' own rounding, then filled up
    mount = ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(where)]
    mounted = shutil.which("mount") is not None and subprocess.run(mount, capture_output=True).returncode == 0
    try:
        if mounted:
            for path in content:
                shutil.move(path, where / path.name)
            free = shutil.disk_usage(where).free
            with (where / "ballast").open("wb") as f:
                f.write(b"\0" * (free - PAGE))
            assert shutil.disk_usage(where).free <= PAGE
        yield mounted
    finally:
        if mounted:
            subprocess.run(["umount", "-l", str(where)], check=True)


def _limit_file_size() -> None:
    resource.setrlimit(resource.RLIMIT_FSIZE, (64 * 1024, 64 * 1024))


@pytest.mark.parametrize("full", ["warehouse_disk", "data_disk"])
def test_disk_full_gives_a_clear_error_and_keeps_the_previous_warehouse(full: str, refreshed_world: Path,
                                                                        tmp_path: Path):
    """`warehouse_disk`: the warehouse alone (ED_WAREHOUSE_DB) on the full disk: the first source's warehouse
    write fails, and the refresh stops there, naming the file. `data_disk`: the whole data directory on it:
    Dagster's own SQLite instance is the first to fail. Either way: a clear error, exit code 2, no traceback,
    and both DuckDB files exactly as before."""
    copy = tmp_path / "data"
    shutil.copytree(refreshed_world, copy)
    for path in (copy / "landing").glob("*/*.csv"):
        if path.stem != LANDED:
            path.unlink()
    before = {name: digests(copy / name) for name in ("warehouse.duckdb", "agency_zone.duckdb")}
    disk = tmp_path / "disk"
    content = [copy / "warehouse.duckdb"] if full == "warehouse_disk" else [copy]
    with full_disk(disk, content) as mounted:
        data = disk / "data" if mounted and full == "data_disk" else copy
        warehouse = disk / "warehouse.duckdb" if mounted and full == "warehouse_disk" else data / "warehouse.duckdb"
        result = subprocess.run(
            [sys.executable, "-m", "ed_pipeline.cli", "refresh", "--only", "ingest", "--full"],  # the month again
            env=cli_env(data, ED_WAREHOUSE_DB=str(warehouse)), capture_output=True, text=True, timeout=600,
            preexec_fn=None if mounted else _limit_file_size)
        err = result.stderr
        assert result.returncode == 2, err[-3000:]
        assert "Traceback" not in err, err[-3000:]
        if mounted and full == "warehouse_disk":
            assert f"error: disk full while writing {warehouse}" in err, err[-3000:]
            assert "> school_readiness" not in err, "the refresh carried on after the disk filled"
        elif mounted:  # whichever file it was: Dagster's instance, the lock file, a DuckDB file
            assert re.search(f"error: disk full while writing (a file under )?{re.escape(str(data))}", err), err[-3000:]
        else:
            assert "error: file size limit reached while writing" in err or "error: disk full while writing" in err
        assert "free space on that disk and re-run `ed-pipeline refresh`; the previous warehouse is intact" in err
        after = {"warehouse.duckdb": digests(warehouse), "agency_zone.duckdb": digests(data / "agency_zone.duckdb")}
    for name in before:
        assert after[name] == before[name], differing(after[name], before[name])
