"""Whether the analysis (the `analyse` job: linking onwards) is up to date with everything it reads and keeps.

`ed-pipeline refresh` runs the analysis only when something has changed since it last ran whole and passed, so
that a refresh with nothing new ends in seconds instead of analysing the whole history again (40-50 s at
Essex scale). Once an analysis run has passed, the refresh records on it (the `ed_pipeline/analysed` tag) a short
digest of each part of `analysis_state`; the next refresh takes them again and compares:

- the warehouse and the agency zone, by their files' modification times and sizes: every write changes them (an
  ingest, a reviewer's decision in `linked.review_pair`), a read does not;
- what the analysis keeps beside them: the linkage model, the model file, the published outputs, the privacy
  audit's state, MLflow's store (a model promoted by hand, a run logged by `ed-pipeline evaluate`), the postcode
  directory;
- the code (ed_pipeline's Python and the dbt project, byte for byte), the installed libraries' versions, and
  the ED_*, DBT_* and MLFLOW_* settings (not ED_PSEUDO_KEY: a new key means tables written again anyway; not
  those that only say where a file is).

Files within the data directory are named relative to it: a data directory moved or copied with its files'
times kept (mv, cp -a, rsync -a) is as it was.

Beside the digests, the last run in the Dagster instance must be that analysis (any other run, from the UI or a
sensor, may have written something, or logged a text the privacy audit has not read yet), and the privacy audit
must not be due (its state older than its maximum age: the next audit is a full one). Any doubt runs the
analysis: a digest that cannot be taken (MLflow not on this machine) never matches.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
import os
from collections.abc import Iterable
from pathlib import Path

import dagster as dg

from ed_pipeline.resilience import PARENT_ENV
from ed_pipeline.settings import DBT_PROJECT_DIR, Settings, dbt_project_files, file_state, local_path

ANALYSED_TAG = "ed_pipeline/analysed"
ANALYSE_JOB = "analyse"
SETTING_PREFIXES = ("ED_", "DBT_", "MLFLOW_")
SECRET_SETTINGS = {"ED_PSEUDO_KEY"}
# where things are, not what they hold (the files' own digests say that): a data directory moved or copied with
# its files' times (mv, cp -a, rsync -a) is as it was
LOCATION_SETTINGS = {"ED_DATA_DIR", "ED_WAREHOUSE_DB", "ED_AGENCY_ZONE_DB", "ED_POSTCODE_DIRECTORY", "DBT_TARGET_PATH",
                     PARENT_ENV}  # and the process a stage's process dies with


def analysis_state(settings: Settings) -> dict[str, str | None]:
    """Each part of what the analysis reads and keeps (see the module's docstring), as a short digest; None for a
    part that cannot be taken."""
    def files(paths: Iterable[Path]) -> str:
        return _files(paths, settings.data_dir)

    return {
        "warehouse": files(_database(settings.warehouse_path, ".wal")),
        "agency zone": files(_database(settings.agency_zone_path, ".wal")),
        "linkage model": files(_tree(settings.linkage_dir)),
        "model file": files(_tree(settings.models_dir)),
        "outputs": files(_tree(settings.outputs_dir)),
        "privacy audit state": files(_tree(settings.audit_state_path.parent)),
        "postcode directory": files([settings.postcode_directory]),
        "MLflow": _mlflow(settings),
        "code": _code(),
        "libraries": _digest(sorted(f"{d.metadata['Name']}=={d.version}" for d in importlib.metadata.distributions())),
        "settings": _digest(sorted(f"{name}={value}" for name, value in os.environ.items()
                                   if name.startswith(SETTING_PREFIXES)
                                   and name not in SECRET_SETTINGS | LOCATION_SETTINGS)),
    }


def why_analyse(instance: dg.DagsterInstance, settings: Settings) -> tuple[str | None, str | None]:
    """(why the analysis must run, None when it is up to date; the id of the last analysis run, if any)."""
    from ed_pipeline.privacy.audit import DEFAULT_MAX_AGE_DAYS, load_state

    runs = instance.get_runs(limit=1)
    if not runs:
        return "first run", None
    last = runs[0]
    recorded = last.tags.get(ANALYSED_TAG)
    if last.job_name != ANALYSE_JOB:
        return ("after ingesting" if last.job_name == "ingest"
                else f"after run {last.run_id[:8]} of {last.job_name}"), None
    if recorded is None or last.status != dg.DagsterRunStatus.SUCCESS:
        return f"the last analysis ({last.run_id[:8]}) did not pass or was not a refresh's", None
    before, now = json.loads(recorded), analysis_state(settings)
    changed = [part for part, digest in now.items() if digest is None or before.get(part) != digest]
    if changed:
        return f"changed: {', '.join(changed)}", last.run_id
    state, why = load_state(settings.audit_state_path, DEFAULT_MAX_AGE_DAYS)
    if state is None:
        return f"the privacy audit is due ({why})", last.run_id
    return None, last.run_id


def record_analysis(instance: dg.DagsterInstance, run_id: str, settings: Settings) -> None:
    """Record on a passing analysis run the state it left (after its process ended: every file closed)."""
    instance.add_run_tags(run_id, {ANALYSED_TAG: json.dumps(analysis_state(settings), sort_keys=True)})


def _digest(lines: Iterable[str]) -> str:
    return hashlib.sha256("\n".join(lines).encode()).hexdigest()[:16]


def _files(paths: Iterable[Path], data_dir: Path) -> str:
    """The state (modification time and size) of each of `paths`, or that it is not there; each named within
    `data_dir` when it is there (a data directory moved is as it was)."""
    root = data_dir.resolve()
    return _digest(f"{_within(path.resolve(), root)}\t{file_state(path) if path.is_file() else '-'}" for path in paths)


def _within(path: Path, root: Path) -> str:
    return f"<data>/{path.relative_to(root)}" if path.is_relative_to(root) else str(path)


def _database(path: Path, *journals: str) -> list[Path]:
    """A database file and its journals (a write in progress, or left by a process that died)."""
    return [path, *(path.with_name(path.name + suffix) for suffix in journals)]


def _tree(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.is_file()) if folder.is_dir() else [folder]


def _mlflow(settings: Settings) -> str | None:
    """MLflow's store and its artifacts, when both are files on this machine (a tracking server is not)."""
    uri = settings.mlflow_tracking_uri
    store = Path(uri.removeprefix("sqlite:///")) if uri.startswith("sqlite:///") else local_path(uri)
    if store is None:
        return None
    files = _database(store, "-wal", "-journal") if store.suffix == ".db" else _tree(store)
    return _files([*files, *_tree(settings.mlflow_artifact_root)], settings.data_dir)


def _code() -> str:
    """ed_pipeline's Python and the dbt project's files, byte for byte (a reworded comment runs the analysis once;
    by their syntax trees, as the ingest's fingerprint, would take 0.7-0.9 s of every refresh)."""
    package = Path(__file__).parent
    files = [(package, p) for p in sorted(package.rglob("*.py"))]
    files += [(DBT_PROJECT_DIR, p) for p in dbt_project_files(DBT_PROJECT_DIR)]
    return _digest(f"{root.name}/{p.relative_to(root)}\t{hashlib.sha256(p.read_bytes()).hexdigest()}"
                   for root, p in files)
