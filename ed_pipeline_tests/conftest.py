"""Shared fixtures: tiny synthetic worlds in temporary data directories."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from ed_pipeline.settings import Settings

# Each parallel test process (pytest-xdist worker) its own dbt target directory, read by dbt, dagster-dbt and
# every process a test starts: the processes build against different warehouses, and a parse for one profile
# stops the other's builds from parsing partially (and prunes its run targets).
if os.environ.get("PYTEST_XDIST_WORKER"):
    os.environ["DBT_TARGET_PATH"] = f"target/{os.environ['PYTEST_XDIST_WORKER']}"

# `make test` hands each test file whole to one of its two processes, in the order of the collection, the next file
# to the first process free (`--dist loadfile --no-loadscope-reorder`). The files that take a minute or more go
# first, so that the run does not end on one of them while the other process has nothing left to do (xdist's own
# order, most tests first, put them last). test_linked comes first: it makes the refreshed and month-added worlds
# early, while the other process runs the features' dbt builds, which need neither (the two files that read
# features/conftest.py's `built`, made once per process, one after the other).
SLOW_FILES_FIRST = (
    "defs/test_linked.py",
    "features/test_definitions.py",
    "features/test_child_features.py",
    "features/test_incremental_child_models.py",
    "features/test_incremental_staging.py",
    "features/test_incremental_person_events.py",
    "faults/test_half_loaded.py",
    "defs/test_ingest.py",
    "defs/test_locations.py",
    "faults/test_kill.py",
    "linkage/test_spark.py",
    "privacy/test_audit_scope.py",
    "defs/test_automation.py",
    "defs/test_model_outputs.py",
    "faults/test_corpus_months.py",
    "faults/test_idempotent.py",
    "test_reidentify.py",
    "test_evaluation.py",
)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    here = Path(__file__).parent
    rank = {here / name: i for i, name in enumerate(SLOW_FILES_FIRST)}
    items.sort(key=lambda item: rank.get(item.path, len(rank)))  # a stable sort: the other files keep their order


# A fixed test key (never a real one): 32 bytes, hex.
TEST_KEY = "00112233445566778899aabbccddeeff" * 2
TINY_PEOPLE = 8_000
TINY_SEED = 7
# Three Julys (the school-readiness return lands each July): three assessed cohorts to train, validate and test.
TINY_FIRST, TINY_LAST = "2015-06", "2017-08"


@pytest.fixture(scope="session")
def tiny_world(tmp_path_factory) -> Path:
    """A tiny world's data directory (landing/ and truth/), generated once per session; copy before writing."""
    from ed_pipeline.synth import SynthConfig, generate

    def build(data_dir: Path) -> None:
        generate(
            SynthConfig(people=TINY_PEOPLE, seed=TINY_SEED, first_month=TINY_FIRST, last_month=TINY_LAST),
            data_dir / "landing",
            data_dir / "truth",
        )

    return session_world(tmp_path_factory, "tiny_world", build)


@pytest.fixture(scope="session")
def refreshed_world(tiny_world: Path, tmp_path_factory) -> Path:
    """The tiny world after one full `ed-pipeline refresh`, with its last month held back in `held_back/`
    (tests that add a month move it into landing/). Shared: copy it (`refreshed_copy`) before writing."""

    def build(data_dir: Path) -> None:
        shutil.copytree(tiny_world, data_dir)
        for source_dir in sorted((data_dir / "landing").iterdir()):
            last = source_dir / f"{TINY_LAST}.csv"
            if last.exists():
                (data_dir / "held_back" / source_dir.name).mkdir(parents=True, exist_ok=True)
                shutil.move(last, data_dir / "held_back" / source_dir.name / last.name)
        result = run_cli("refresh", data_dir=data_dir)
        assert result.returncode == 0, result.stderr[-5000:]

    return session_world(tmp_path_factory, "refreshed", build)


@pytest.fixture(scope="session")
def month_added_world(refreshed_world: Path, tmp_path_factory) -> Path:
    """The refreshed tiny world after its held-back month (2017-08: no school-readiness return) landed and
    `ed-pipeline refresh` ran again, as the monthly refresh does. Shared: copy it (`month_added_copy`) first."""

    def build(data_dir: Path) -> None:
        shutil.copytree(refreshed_world, data_dir)
        assert release_held_back(Settings(data_dir=data_dir)), "the refreshed world has no held-back month"
        result = run_cli("refresh", data_dir=data_dir)
        assert result.returncode == 0, result.stderr[-5000:]

    return session_world(tmp_path_factory, "month_added", build)


def session_world(tmp_path_factory, name: str, build: Callable[[Path], None]) -> Path:
    """`<name>/data`, made by `build` once per test session: under pytest-xdist, by the first test process to
    ask for it while the others wait (the three worlds take ~2 minutes of CPU to make). Shared by every test
    process, so only ever read (DuckDB files `read_only=True`: a read-write connection from one process locks
    the others out); copy it before writing."""
    if not os.environ.get("PYTEST_XDIST_WORKER"):
        data_dir = tmp_path_factory.mktemp(name) / "data"
        build(data_dir)
        return data_dir
    from filelock import FileLock

    root = tmp_path_factory.getbasetemp().parent / name  # the session's directory, above each process's own
    data_dir, made = root / "data", root / "made"
    root.mkdir(exist_ok=True)
    with FileLock(root / "lock"):
        if not made.exists():  # a process that failed to make it left it half made: start again
            shutil.rmtree(data_dir, ignore_errors=True)
            build(data_dir)
            made.touch()
    return data_dir


def release_held_back(settings: Settings) -> list[Path]:
    """Move the held-back month into landing/, as if the agencies had just dropped it; returns the files."""
    moved = []
    for path in sorted((settings.data_dir / "held_back").glob("*/*.csv")):
        target = settings.landing_file(path.parent.name, path.stem)
        shutil.move(path, target)
        moved.append(target)
    return moved


def _private_copy(source: Path, tmp_path: Path, monkeypatch) -> Settings:
    data_dir = tmp_path / "data"
    shutil.copytree(source, data_dir)
    monkeypatch.setenv("ED_DATA_DIR", str(data_dir))
    monkeypatch.setenv("DAGSTER_HOME", str(data_dir / "dagster"))
    monkeypatch.setenv("ED_PSEUDO_KEY", TEST_KEY)
    return Settings.from_env()


@pytest.fixture
def refreshed_copy(refreshed_world: Path, tmp_path: Path, monkeypatch) -> Settings:
    """A private copy of the refreshed tiny world, with ED_DATA_DIR pointing at it."""
    return _private_copy(refreshed_world, tmp_path, monkeypatch)


@pytest.fixture
def month_added_copy(month_added_world: Path, tmp_path: Path, monkeypatch) -> Settings:
    """A private copy of the tiny world refreshed again after its last month landed, ED_DATA_DIR pointing at it."""
    return _private_copy(month_added_world, tmp_path, monkeypatch)


@pytest.fixture
def world_copy(tiny_world: Path, tmp_path: Path, monkeypatch) -> Settings:
    """A private copy of the tiny world (never refreshed), with ED_DATA_DIR pointing at it."""
    return _private_copy(tiny_world, tmp_path, monkeypatch)


def run_cli(*args: str, data_dir: Path, timeout: int = 600) -> subprocess.CompletedProcess:
    """Run `ed-pipeline ARGS` in a fresh process, as a user would, against data_dir."""
    env = {**os.environ, "ED_DATA_DIR": str(data_dir), "DAGSTER_HOME": str(data_dir / "dagster"),
           "ED_PSEUDO_KEY": os.environ.get("ED_PSEUDO_KEY", TEST_KEY)}
    return subprocess.run(
        [sys.executable, "-m", "ed_pipeline.cli", *args],
        env=env, capture_output=True, text=True, timeout=timeout,
    )
