"""Fixtures of the fault tests: each fault is staged once per session and asserted on by the tests that need it."""

from __future__ import annotations

import pickle
import shutil
from pathlib import Path

import pytest

from ed_pipeline_tests.conftest import run_cli, session_world
from ed_pipeline_tests.faults.support import (
    INGEST_MONTH,
    KILLED_WRITE,
    KilledThenRerun,
    digests,
    lock_holder,
    monitored,
    once_unlocked,
    start_cli,
)

OUTCOME = "killed_then_rerun.pickle"  # beside the staged data directory


@pytest.fixture(scope="session")
def killed_mid_write(tiny_world: Path, tmp_path_factory) -> KilledThenRerun:
    """One month of the tiny world lands; `refresh --only ingest` is SIGKILLed inside school readiness's
    warehouse write (rows inserted, not committed: the ED_PIPELINE_FAULT_AT hook), then a pass of Dagster's run
    monitoring, then the refresh again (what the kill left unloaded), then `--full` (the month again). Staged
    once for both test processes (test_kill and test_idempotent may run in either): what it left is kept beside
    the data directory, which is only read."""

    def stage(data: Path) -> None:
        shutil.copytree(tiny_world, data, ignore=shutil.ignore_patterns("truth"))
        for path in (data / "landing").glob("*/*.csv"):
            if path.stem != INGEST_MONTH:
                path.unlink()
        log = data.parent / "killed.log"
        killed = start_cli("refresh", "--only", "ingest", data_dir=data, log=log,
                           ED_PIPELINE_FAULT_AT=KILLED_WRITE)
        killed.wait(timeout=600)

        def snapshot() -> dict[str, dict[str, tuple[int, int]]]:
            return {name: digests(once_unlocked(data / name)) for name in ("agency_zone.duckdb", "warehouse.duckdb")}

        after_kill, holder = snapshot(), lock_holder(data)
        after_monitoring = monitored(data)
        again = run_cli("refresh", "--only", "ingest", data_dir=data)
        after_rerun = snapshot()
        full = run_cli("refresh", "--only", "ingest", "--full", data_dir=data)
        run = KilledThenRerun(data, killed.pid, killed.returncode, log.read_text(), after_kill, holder,
                              after_monitoring, again.returncode, again.stderr, after_rerun, full.returncode,
                              full.stderr, snapshot())
        (data.parent / OUTCOME).write_bytes(pickle.dumps(run))

    data = session_world(tmp_path_factory, "killed_mid_write", stage)
    return pickle.loads((data.parent / OUTCOME).read_bytes())
