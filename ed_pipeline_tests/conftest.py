"""Shared fixtures: tiny synthetic worlds in temporary data directories."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from ed_pipeline.settings import Settings

# A fixed test key (never a real one): 32 bytes, hex.
TEST_KEY = "00112233445566778899aabbccddeeff" * 2
TINY_PEOPLE = 2_000
TINY_SEED = 7
# Four months around July, so the school-readiness return (which lands each July) is among them.
TINY_FIRST, TINY_LAST = "2017-05", "2017-08"


@pytest.fixture(scope="session")
def tiny_world(tmp_path_factory) -> Path:
    """A tiny world's data directory (landing/ and truth/), generated once per session; copy before writing."""
    from ed_pipeline.synth import SynthConfig, generate

    data_dir = tmp_path_factory.mktemp("tiny_world")
    generate(
        SynthConfig(people=TINY_PEOPLE, seed=TINY_SEED, first_month=TINY_FIRST, last_month=TINY_LAST),
        data_dir / "landing",
        data_dir / "truth",
    )
    return data_dir


@pytest.fixture
def world_copy(tiny_world: Path, tmp_path: Path, monkeypatch) -> Settings:
    """A private copy of the tiny world, with ED_DATA_DIR pointing at it."""
    data_dir = tmp_path / "data"
    shutil.copytree(tiny_world, data_dir)
    monkeypatch.setenv("ED_DATA_DIR", str(data_dir))
    monkeypatch.setenv("DAGSTER_HOME", str(data_dir / "dagster"))
    monkeypatch.setenv("ED_PSEUDO_KEY", TEST_KEY)
    return Settings.from_env()


def run_cli(*args: str, data_dir: Path, timeout: int = 600) -> subprocess.CompletedProcess:
    """Run `ed-pipeline ARGS` in a fresh process, as a user would, against data_dir."""
    env = {**os.environ, "ED_DATA_DIR": str(data_dir), "DAGSTER_HOME": str(data_dir / "dagster"),
           "ED_PSEUDO_KEY": os.environ.get("ED_PSEUDO_KEY", TEST_KEY)}
    return subprocess.run(
        [sys.executable, "-m", "ed_pipeline.cli", *args],
        env=env, capture_output=True, text=True, timeout=timeout,
    )
