"""Browser tests: `dagster dev` and `mlflow ui` over a copy of the refreshed tiny world, driven by Playwright
with Debian's chromium (`apt-get install chromium`; Playwright's own browser download is not used)."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from ed_pipeline_tests.conftest import TEST_KEY

REPO = Path(__file__).resolve().parents[2]
BIN = REPO / ".venv" / "bin"
CHROMIUM = os.environ.get("ED_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]
ARTIFACTS = REPO / "test-artifacts" / "screenshots"
START_TIMEOUT = 180  # seconds for a server to answer; two slow cores start both at once


def pytest_configure(config):
    config.addinivalue_line("markers", "browser: drives dagster dev and mlflow ui with Playwright and chromium")


def pytest_collection_modifyitems(items):
    here = Path(__file__).parent
    for item in items:
        if here in Path(item.fspath).parents:
            item.add_marker(pytest.mark.browser)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Server:
    """A UI server in its own process group, its output in a log file."""

    def __init__(self, name: str, args: list[str], env: dict[str, str], log: Path, health: str):
        self.name, self.log, self.health = name, log, health
        self._log_file = log.open("w")
        self.process = subprocess.Popen(args, cwd=REPO, env=env, stdout=self._log_file, stderr=subprocess.STDOUT,
                                        start_new_session=True)

    def wait(self, deadline: float) -> None:
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                pytest.fail(f"{self.name} exited ({self.process.returncode}):\n{self.log_tail()}")
            try:
                with urllib.request.urlopen(self.health, timeout=5) as response:
                    if response.status == 200:
                        return
            except OSError:
                pass
            time.sleep(1)
        pytest.fail(f"{self.name} did not answer {self.health} within {START_TIMEOUT}s:\n{self.log_tail()}")

    def log_tail(self) -> str:
        return self.log.read_text(errors="replace")[-4000:]

    def terminate(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGTERM)

    def stop(self) -> None:
        """Waits for the server to end (after `terminate`), killing it past 20 s."""
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=20)
        except ProcessLookupError:
            pass
        finally:
            self._log_file.close()


@pytest.fixture(scope="session")
def ui_world(refreshed_world: Path, tmp_path_factory) -> Path:
    """A private copy of the refreshed tiny world for the UIs (the Dagster UI writes runs into it)."""
    data_dir = tmp_path_factory.mktemp("ui_world") / "data"
    shutil.copytree(refreshed_world, data_dir)
    return data_dir


LOCATIONS_QUERY = b'{"query": "{ workspaceOrError { ... on Workspace { locationEntries { name loadStatus } } } }"}'


def wait_for_code_location(dagster_url: str, deadline: float) -> None:
    """The webserver answers before its code location has loaded (a fresh clone parses the dbt project first)."""
    while time.monotonic() < deadline:
        request = urllib.request.Request(f"{dagster_url}/graphql", data=LOCATIONS_QUERY,
                                         headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                entries = json.load(response)["data"]["workspaceOrError"]["locationEntries"]
            if entries and all(e["loadStatus"] == "LOADED" for e in entries):
                return
        except (OSError, KeyError, TypeError, ValueError):
            pass
        time.sleep(2)
    pytest.fail("dagster dev started but its code location did not finish loading in time")


@pytest.fixture(scope="module")
def ui_servers(ui_world: Path, tmp_path_factory) -> Iterator[dict[str, str]]:
    """`dagster dev -w workspace.yaml` and `mlflow ui` on free loopback ports, started together; their base URLs."""
    logs = tmp_path_factory.mktemp("ui_logs")
    env = {**os.environ, "ED_DATA_DIR": str(ui_world), "DAGSTER_HOME": str(ui_world / "dagster"),
           "ED_PSEUDO_KEY": TEST_KEY, "DAGSTER_DISABLE_TELEMETRY": "1", "MLFLOW_DISABLE_TELEMETRY": "true",
           "DO_NOT_TRACK": "true"}
    dagster_port, mlflow_port = free_port(), free_port()
    dagster_url, mlflow_url = f"http://127.0.0.1:{dagster_port}", f"http://127.0.0.1:{mlflow_port}"
    servers = []
    try:
        servers.append(Server(
            "dagster dev",
            [str(BIN / "dagster"), "dev", "-w", "workspace.yaml", "-h", "127.0.0.1", "-p", str(dagster_port)],
            env, logs / "dagster.log", f"{dagster_url}/server_info"))
        # one worker, not MLflow's four: each imports MLflow, on a 2-core machine the other test process is using
        servers.append(Server(
            "mlflow ui",
            [str(BIN / "mlflow"), "ui", "--backend-store-uri", f"sqlite:///{ui_world / 'mlflow' / 'mlflow.db'}",
             "--host", "127.0.0.1", "--port", str(mlflow_port), "--workers", "1"],
            env, logs / "mlflow.log", f"{mlflow_url}/health"))
        deadline = time.monotonic() + START_TIMEOUT
        for server in servers:
            server.wait(deadline)
        wait_for_code_location(dagster_url, deadline)
        yield {"dagster": dagster_url, "mlflow": mlflow_url}
    finally:  # both asked to stop first, then waited for: their shutdowns overlap
        for server in servers:
            server.terminate()
        for server in servers:
            server.stop()


@pytest.fixture(scope="module")
def browser():
    if not Path(CHROMIUM).exists():
        pytest.fail(f"The browser tests need Debian's chromium at {CHROMIUM}: "
                    "apt-get update && apt-get install -y chromium (or set ED_CHROMIUM to a chromium binary).")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def page(browser):
    context = browser.new_context(viewport={"width": 1400, "height": 900})
    context.set_default_timeout(60_000)
    page = context.new_page()
    # Dagster's one-off "Join the Dagster community" dialog: dismiss it whenever it shows up.
    page.add_locator_handler(page.get_by_role("button", name="Skip", exact=True), lambda button: button.click())
    yield page
    context.close()


@pytest.fixture
def shoot(page, tmp_path):
    """shoot(name): a screenshot of the page, kept under the test's tmp dir and test-artifacts/screenshots/."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)

    def take(name: str) -> Path:
        # The locator handler acts only before Playwright actions, and a Playwright click on "Skip" here would race
        # it (the handler clicks first, then the click waits for a button that has gone): click it in the page.
        if page.get_by_role("button", name="Skip", exact=True).is_visible():
            page.evaluate("() => [...document.querySelectorAll('button')]"
                          ".find(b => b.textContent.trim() === 'Skip')?.click()")
            page.wait_for_timeout(500)
        path = tmp_path / f"{name}.png"
        page.screenshot(path=path)
        shutil.copy(path, ARTIFACTS / path.name)
        return path

    return take
