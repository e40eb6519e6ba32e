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

A whole analysis run from elsewhere (declarative automation after the landing sensor's month, the UI's
Materialize all) is recorded the same way by the `record_analyses` sensor, once it has passed
(`record_if_whole_analysis`), so that the command's next refresh does not analyse the same state again.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
import os
from collections.abc import Iterable, Set
from pathlib import Path

import dagster as dg

from ed_pipeline.resilience import PARENT_ENV
from ed_pipeline.settings import DBT_PROJECT_DIR, Settings, dbt_project_files, file_state, local_path

ANALYSED_TAG = "ed_pipeline/analysed"
ANALYSE_JOB = "analyse"
AUDIT_CHECK = "no_identifiers_anywhere"  # the privacy audit, which an analysis runs last
# a run's files are closed before its end is recorded (measured: the last written 0.06 s before it); a write later
# than this is someone else's, which the analysis has not seen
WRITES_AFTER_END_S = 1.0
SETTING_PREFIXES = ("ED_", "DBT_", "MLFLOW_")
SECRET_SETTINGS = {"ED_PSEUDO_KEY"}
# where things are, not what they hold (the files' own digests say that): a data directory moved or copied with
# its files' times (mv, cp -a, rsync -a) is as it was
LOCATION_SETTINGS = {"ED_DATA_DIR", "ED_WAREHOUSE_DB", "ED_AGENCY_ZONE_DB", "ED_POSTCODE_DIRECTORY", "DBT_TARGET_PATH",
                     PARENT_ENV}  # and the process a stage's process dies with


def analysis_state(settings: Settings) -> dict[str, str | None]:
    """Each part of what the analysis reads and keeps (see the module's docstring), as a short digest; None for a
    part that cannot be taken."""
    return {
        **{part: None if paths is None else _files(paths, settings.data_dir)
           for part, paths in _data_files(settings).items()},
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
    recorded = last.tags.get(ANALYSED_TAG)  # only ever on a whole analysis that passed
    if recorded is None or last.status != dg.DagsterRunStatus.SUCCESS:
        if last.job_name == ANALYSE_JOB:
            return f"the last analysis ({last.run_id[:8]}) did not pass, or is not recorded yet", None
        return ("after ingesting" if last.job_name == "ingest"
                else f"after run {last.run_id[:8]} of {last.job_name}"), None
    before, now = json.loads(recorded), analysis_state(settings)
    changed = [part for part, digest in now.items() if digest is None or before.get(part) != digest]
    if changed:
        return f"changed: {', '.join(changed)}", last.run_id
    state, why = load_state(settings.audit_state_path, DEFAULT_MAX_AGE_DAYS)
    if state is None:
        return f"the privacy audit is due ({why})", last.run_id
    return None, last.run_id


def record_if_whole_analysis(instance: dg.DagsterInstance, run: dg.DagsterRun, selected: Set[dg.AssetKey],
                             analysis: Set[dg.AssetKey], settings: Settings) -> str | None:
    """Record a finished run of the assets `selected` as the last analysis (as `record_analysis`) if it was a whole
    analysis that passed: it materialised every asset of the analysis (`analysis`: the `analyse` job's) and ran
    the privacy audit, no blocking check failed, and nothing has written the data since it ended (what is recorded
    is the state it left). Returns why it was not recorded (None: it was). The `record_analyses` sensor calls it
    for runs from elsewhere than the refresh (declarative automation, the UI), a tick after they end."""
    if run.status != dg.DagsterRunStatus.SUCCESS:
        return f"it ended {run.status.value.lower()}"
    left_out = sorted(key.to_user_string() for key in analysis - set(selected))
    if left_out:
        return f"it left out {len(left_out)} of the analysis's {len(analysis)} assets ({', '.join(left_out[:3])}...)"
    checks = [record.event_log_entry.dagster_event.event_specific_data for record in instance.get_records_for_run(
        run.run_id, of_type=dg.DagsterEventType.ASSET_CHECK_EVALUATION).records]
    failed = [check.check_name for check in checks
              if not check.passed and check.severity == dg.AssetCheckSeverity.ERROR]
    if failed:
        return f"blocking checks failed: {', '.join(sorted(failed))}"
    if not any(check.check_name == AUDIT_CHECK and check.passed for check in checks):
        return f"the privacy audit ({AUDIT_CHECK}) did not run in it"
    state = analysis_state(settings)  # before the check below: a write after it makes the next refresh's differ
    ended = instance.get_run_record_by_id(run.run_id).end_time
    if ended is None or last_written(settings) > ended + WRITES_AFTER_END_S:
        return "the data has been written since it ended"
    record_analysis(instance, run.run_id, settings, state)
    return None


def record_analysis(instance: dg.DagsterInstance, run_id: str, settings: Settings,
                    state: dict[str, str | None] | None = None) -> None:
    """Record on a passing analysis run the state it left (after its process ended: every file closed); `state`:
    taken already (`analysis_state`)."""
    state = analysis_state(settings) if state is None else state
    instance.add_run_tags(run_id, {ANALYSED_TAG: json.dumps(state, sort_keys=True)})


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


def _data_files(settings: Settings) -> dict[str, list[Path] | None]:
    """The files of each part of the data the analysis reads and keeps; None: not files on this machine."""
    return {
        "warehouse": _database(settings.warehouse_path, ".wal"),
        "agency zone": _database(settings.agency_zone_path, ".wal"),
        "linkage model": _tree(settings.linkage_dir),
        "model file": _tree(settings.models_dir),
        "outputs": _tree(settings.outputs_dir),
        "privacy audit state": _tree(settings.audit_state_path.parent),
        "postcode directory": [settings.postcode_directory],
        "MLflow": _mlflow_files(settings),
    }


def last_written(settings: Settings) -> float:
    """When the data the analysis reads and keeps was last written (the newest modification time, epoch seconds)."""
    return max((path.stat().st_mtime for paths in _data_files(settings).values() for path in paths or ()
                if path.is_file()), default=0.0)


def _mlflow_files(settings: Settings) -> list[Path] | None:
    """MLflow's store and its artifacts, when both are files on this machine (a tracking server is not)."""
    uri = settings.mlflow_tracking_uri
    store = Path(uri.removeprefix("sqlite:///")) if uri.startswith("sqlite:///") else local_path(uri)
    if store is None:
        return None
    files = _database(store, "-wal", "-journal") if store.suffix == ".db" else _tree(store)
    return [*files, *_tree(settings.mlflow_artifact_root)]


def _code() -> str:
    """ed_pipeline's Python and the dbt project's files, byte for byte (a reworded comment runs the analysis once;
    by their syntax trees, as the ingest's fingerprint, would take 0.7-0.9 s of every refresh)."""
    package = Path(__file__).parent
    files = [(package, p) for p in sorted(package.rglob("*.py"))]
    files += [(DBT_PROJECT_DIR, p) for p in dbt_project_files(DBT_PROJECT_DIR)]
    return _digest(f"{root.name}/{p.relative_to(root)}\t{hashlib.sha256(p.read_bytes()).hexdigest()}"
                   for root, p in files)
