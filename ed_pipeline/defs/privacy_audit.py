"""The whole-system privacy audit: no agency-zone identifier anywhere outside the agency zone.

Each pseudonymised partition is already scanned against its own records; this
check, run on the last output, scans every table of warehouse.duckdb, everything
Dagster recorded (event metadata, check results, log messages of recent runs),
and MLflow's params, tags and artifacts, against every identifier held in the
agency zone's validated tables.

Incrementally (`ed_pipeline.privacy.audit`): what is new or changed since the last passing audit is
scanned against every identifier, what that audit scanned against the identifiers that are new since; a full
rescan when there is no usable state, or when asked (`full_rescan: true` in the check's run config).
"""

import os
import re
import sys
from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path

import dagster as dg
from dagster_duckdb import DuckDBResource

from ed_pipeline.analysis_state import AUDIT_CHECK
from ed_pipeline.defs.outputs import COMMUNITY_RISK_KEY
from ed_pipeline.privacy.audit import (
    DEFAULT_MAX_AGE_DAYS,
    MODEL_ENVIRONMENT_FILES,
    Parts,
    is_model_environment_file,
    load_state,
    mlflow_artifact_folders,
    run_audit,
    sha256_text,
)
from ed_pipeline.privacy.leak_scan import Local
from ed_pipeline.settings import DATA_DIR_LAYOUT, Settings, duckdb_memory_limit, memory_limited

RECENT_RUNS = 100
AUDIT_MEMORY_LIMIT = "ED_AUDIT_MEMORY_LIMIT"  # the environment variable: DuckDB's units, e.g. '4GB'
MODEL_REFERENCES = ("models:/", "runs:/")  # a model version's source naming a logged model or run: no location
MLFLOW_PAGE = 1000  # runs, experiments or model versions an MLflow search returns at a time
Texts = dict[str, list[tuple[str, str]]]  # unit -> (location, text)
# Tags MLflow sets from the machine a run started on (login, script, git branch and commit), never from data.
MACHINE_TAGS = frozenset({"mlflow.user", "mlflow.source.name", "mlflow.source.git.branch", "mlflow.source.git.commit",
                          "mlflow.source.git.repoURL"})
# Dagster's run and code-version ids, in every event: random, and a group of four hex digits can spell a surname
# ("cade", "eade"), which would stop a refresh in a few thousand.
RANDOM_ID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
__all__ = ["MODEL_ENVIRONMENT_FILES", "audit_automation", "identifier_audit", "is_model_environment_file",
           "no_identifiers_anywhere"]


class PrivacyAuditConfig(dg.Config):
    full_rescan: bool = False  # scan everything against every identifier, whatever the last audit scanned
    max_state_age_days: float = DEFAULT_MAX_AGE_DAYS  # an older audit state is not trusted: full rescan
    # Dagster runs read, the most recent first: an older run is not read again, not even against identifiers new
    # since (reading every run's events each month grows with the years); 0 reads every run, e.g. with a full rescan
    dagster_runs: int = RECENT_RUNS


# The paths a data directory had before it was moved or copied (`mv data /srv/ed_data`), which the events and
# MLflow files recorded then still name: any absolute path followed by an entry of a data directory's layout
# ("/home/jonathon/data" in "/home/jonathon/data/warehouse.duckdb"), the longest such (a folder named like an entry
# before it, "/srv/models/jonathon/data/landing", goes too). By the layout, not by the paths the store or Dagster
# recorded: a directory that never trained a model has no MLflow location, and Dagster records no data directory
# of its own, but every text that names a data directory names something in it. Only a path is taken (no space,
# quote or bracket in it, after no word, "." or the current directory's `<local>`): a name written in a message,
# or in a path that names no data directory, is still read.
_PATH_PART = r"""[^/\s'"`,;:()\[\]{}<>|*?]"""
EARLIER_DATA_DIRS = re.compile(
    rf"(?<![\w.>-])(?:/{_PATH_PART}+)+(?=/(?:{'|'.join(map(re.escape, DATA_DIR_LAYOUT))})(?![\w-]))")


def local_directories(settings: Settings, artifact_folders: Iterable[Path] = ()) -> Local:
    """The deployment's own directories, longest first, that the audit leaves out of everything it reads
    (`leak_scan.without_local`): the data directory, Dagster's home, the project, the Python environment, and
    MLflow's artifact folders (one out of the data directory, kept from before it was moved, names itself in the
    files there); then the data directory's earlier paths (`EARLIER_DATA_DIRS`)."""
    dirs = {settings.data_dir, Path(__file__).resolve().parents[2], Path(sys.prefix), *artifact_folders}
    if os.environ.get("DAGSTER_HOME"):
        dirs.add(Path(os.environ["DAGSTER_HOME"]))
    return (*sorted({str(d.resolve()) for d in dirs} - {"/"}, key=len, reverse=True), EARLIER_DATA_DIRS)


def _entry_text(entry) -> str:
    """An event's message and data, without its partition key (scanned once per run, see `dagster_texts`) and
    Dagster's random ids."""
    event = entry.dagster_event
    payload = repr(_without_partition(event.event_specific_data)) if event is not None else ""
    return RANDOM_ID.sub("<id>", f"{entry.user_message}\n{payload}")


def _without_partition(data):
    """A run over many months records one materialisation (and one planned) per month, the same but for the
    month: without it, they are one text."""
    materialization = getattr(data, "materialization", None)
    if getattr(materialization, "partition", None) is not None:
        return data._replace(materialization=materialization._replace(partition=None))
    if getattr(data, "partition", None) is not None and hasattr(data, "_replace"):
        return data._replace(partition=None)
    return data


def dagster_runs(instance: dg.DagsterInstance, runs: int | None = RECENT_RUNS, since: float | None = None) -> Parts:
    """A fingerprint of each of the most recent runs, and of every run updated after `since` (a POSIX time: runs
    no audit has read, however many): the storage id of its last event (a run gains events, never changes them)."""
    out: Parts = {}
    for run in _runs(instance, runs, since):
        last = instance.get_records_for_run(run.run_id, limit=1, ascending=False).records
        out[f"dagster run {run.run_id}"] = {"*": str(last[0].storage_id if last else 0)}
    return out


def _runs(instance: dg.DagsterInstance, runs: int | None, since: float | None) -> list[dg.DagsterRun]:
    found = {run.run_id: run for run in instance.get_runs(limit=runs)}
    if since is not None and runs is not None:
        after = dg.RunsFilter(updated_after=datetime.fromtimestamp(since, UTC))  # Dagster compares in UTC
        found.update((run.run_id, run) for run in instance.get_runs(filters=after))
    return list(found.values())


def not_audited_since(instance: dg.DagsterInstance, state_path: Path) -> float:
    """When the last passing audit began (its run's creation; what its state says, however old): a run updated
    since may hold events it did not read. 0 (every run) when there is no such audit."""
    state, _ = load_state(state_path, max_age_days=10**6)  # however old: only when it began is used
    if state is None:
        return 0.0
    record = instance.get_run_record_by_id(state.dagster_run_id) if state.dagster_run_id else None
    return record.create_timestamp.timestamp() if record else datetime.fromisoformat(state.audited_at).timestamp()


def dagster_texts(instance: dg.DagsterInstance, runs: int | None = RECENT_RUNS, only: set[str] | None = None
                  ) -> list[tuple[str, str]]:
    """(location, text) for every event of the most recent runs (or of the runs `only` names by unit):
    metadata, check results, log messages. Each distinct text of a step once (a run over 66 months repeats each
    materialisation 66 times, but for the month), and the months of each run as one text of their own."""
    return [t for texts in dagster_texts_by_run(instance, runs, only).values() for t in texts]


def dagster_texts_by_run(instance: dg.DagsterInstance, runs: int | None = RECENT_RUNS, only: set[str] | None = None
                         ) -> dict[str, list[tuple[str, str]]]:
    """`dagster_texts`, by unit ("dagster run <run id>")."""
    out: dict[str, list[tuple[str, str]]] = {}
    if only is not None and not only:
        return out  # (no run ids would filter nothing: every run)
    # the runs `only` names, wherever they are (a run outside the most recent ones that no audit has read)
    chosen = instance.get_runs(limit=runs) if only is None else instance.get_runs(
        filters=dg.RunsFilter(run_ids=sorted(u.removeprefix("dagster run ") for u in only)))
    for run in chosen:
        unit = f"dagster run {run.run_id}"
        texts = out[unit] = []
        seen, partitions = set(), set()
        for entry in instance.all_logs(run.run_id):
            text = (f"dagster run {run.run_id[:8]} {entry.step_key or ''}", _entry_text(entry))
            if text not in seen:
                seen.add(text)
                texts.append(text)
            if entry.dagster_event is not None and entry.dagster_event.partition:
                partitions.add(entry.dagster_event.partition)
        if partitions:
            texts.append((f"dagster run {run.run_id[:8]} partitions", " ".join(sorted(partitions))))
    return out


def _every_page(search, **kwargs):
    """Every item of an MLflow search, page after page (one call returns at most `max_results`)."""
    token = None
    while True:
        page = search(max_results=MLFLOW_PAGE, page_token=token, **kwargs)
        yield from page
        token = page.token
        if not token:
            return


def mlflow_units(tracking_uri: str, locations: dict[str, str | None] | None = None) -> Texts:
    """(location, text) of the params and tags of every MLflow run and registered model version, by unit; the
    tags MLflow takes from the machine (`MACHINE_TAGS`) left out. Deleted runs and experiments too: MLflow only
    marks them deleted (the UI shows and restores them; `mlflow gc` removes them). Where each run and model
    version keeps its artifacts is added to `locations`, and the experiment of each run (its logged models' are
    there; an experiment without runs, such as MLflow's `Default`, has nothing anywhere), each with its
    experiment's location (for `mlflow_artifact_folders` to find it after the data directory was moved)."""
    from mlflow.entities import ViewType
    from mlflow.tracking import MlflowClient  # here: see defs/model.py

    client = MlflowClient(tracking_uri)
    units: Texts = {}
    locations = {} if locations is None else locations
    experiment_of: dict[str, str] = {}  # run id -> its experiment's artifact location
    for experiment in _every_page(client.search_experiments, view_type=ViewType.ALL):
        for run in _every_page(client.search_runs, experiment_ids=[experiment.experiment_id],
                               run_view_type=ViewType.ALL):
            experiment_of[run.info.run_id] = experiment.artifact_location
            locations.update({run.info.artifact_uri: experiment.artifact_location,
                              experiment.artifact_location: experiment.artifact_location})
            texts = [(f"mlflow run {run.info.run_id[:8]} param {k}", v) for k, v in sorted(run.data.params.items())]
            texts += [(f"mlflow run {run.info.run_id[:8]} tag {k}", v) for k, v in sorted(run.data.tags.items())
                      if k not in MACHINE_TAGS]
            units[f"mlflow run {run.info.run_id}"] = texts
    for version in _every_page(client.search_model_versions):
        if version.source and not version.source.startswith(MODEL_REFERENCES):
            locations[version.source] = experiment_of.get(version.run_id or "")
        units[f"mlflow model {version.name} v{version.version}"] = [
            (f"mlflow model {version.name} v{version.version} tag {k}", v) for k, v in sorted(version.tags.items())]
    return units


AUDIT_DESCRIPTION = (
    "No name, date of birth, NHS number, UPN, postcode, address or UPRN of the agency zone appears in any table of "
    "warehouse.duckdb, in Dagster's event metadata and logs, or in MLflow's params, tags and artifacts. "
    "Incremental: new or changed content against every identifier, content already audited against the "
    "identifiers new since.")
# Where the warehouse is a code location of its own (`ed_pipeline.locations`), the audit, which needs the agency
# zone, is an asset of the agency zone's location after the outputs: Dagster launches a check only from its own
# asset's location (dagster-io/dagster#17808), so it cannot stay a check on `outputs.community_risk` there.
AUDIT_KEY = dg.AssetKey(["privacy", "identifier_audit"])


@dg.asset_check(asset=COMMUNITY_RISK_KEY, name=AUDIT_CHECK, blocking=True, description=AUDIT_DESCRIPTION)
def no_identifiers_anywhere(context: dg.AssetCheckExecutionContext, config: PrivacyAuditConfig,
                            warehouse: DuckDBResource, agency_zone: DuckDBResource) -> dg.AssetCheckResult:
    return audit(context, config, warehouse, agency_zone)


@dg.asset(
    key=AUDIT_KEY,
    deps=[COMMUNITY_RISK_KEY],
    group_name="privacy",
    tags={"zone": "agency"},
    check_specs=[dg.AssetCheckSpec(AUDIT_CHECK, asset=AUDIT_KEY, blocking=True, description=AUDIT_DESCRIPTION)],
    automation_condition=dg.AutomationCondition.eager(),
    description="The privacy audit of the warehouse, Dagster and MLflow, run by the agency zone's code location "
    "after each new community risk table (two code locations: `ed_pipeline.locations`). Its check is the audit.",
)
def identifier_audit(context: dg.AssetExecutionContext, config: PrivacyAuditConfig, warehouse: DuckDBResource,
                     agency_zone: DuckDBResource) -> dg.MaterializeResult:
    return dg.MaterializeResult(check_results=[audit(context, config, warehouse, agency_zone)])


# The agency zone's location audits each new community risk table the warehouse's location writes (turn it on in
# the UI: Automation -> privacy_audit_automation).
audit_automation = dg.AutomationConditionSensorDefinition(
    "privacy_audit_automation", target=[AUDIT_KEY], minimum_interval_seconds=60,
    description="Runs the privacy audit once the warehouse's location has written a new community risk table.")


def audit(context: dg.AssetCheckExecutionContext | dg.AssetExecutionContext, config: PrivacyAuditConfig,
          warehouse: DuckDBResource, agency_zone: DuckDBResource) -> dg.AssetCheckResult:
    """The audit (`ed_pipeline.privacy.audit.run_audit`) over the warehouse, the instance's runs and MLflow."""
    settings = Settings.from_env()
    recent = config.dagster_runs or None  # None: every run
    # the most recent runs and every run updated since the last passing audit (more than `recent` of them when
    # the landing sensor ran a month at a time through years of history: never read at all before)
    runs = dagster_runs(context.instance, recent, not_audited_since(context.instance, settings.audit_state_path))
    # fingerprints first: an event written after them is scanned next
    locations: dict[str, str | None] = {}
    mlflow = mlflow_units(settings.mlflow_tracking_uri, locations)
    folders, unread = mlflow_artifact_folders(settings.mlflow_artifact_root, locations)
    units = {**runs, **{unit: {"*": sha256_text(*(t for _, t in items))} for unit, items in mlflow.items()}}
    read: dict[str, int] = {"dagster_texts": 0}

    def read_texts(wanted: set[str]) -> dict[str, list[tuple[str, str]]]:
        texts = dagster_texts_by_run(context.instance, recent, only={u for u in wanted if u in runs})
        read["dagster_texts"] += sum(map(len, texts.values()))
        return {**texts, **{u: mlflow[u] for u in sorted(wanted) if u in mlflow}}

    # both databases held to ED_AUDIT_MEMORY_LIMIT (spilling past it): a full audit at Essex scale otherwise
    # takes DuckDB's default, 80% of the machine, and was the full refresh's peak (6.1 -> 4.2 GB, no slower)
    with agency_zone.get_connection() as agency, warehouse.get_connection() as conn, \
            memory_limited([agency, conn], duckdb_memory_limit(AUDIT_MEMORY_LIMIT)):
        result = run_audit(agency, conn, settings.audit_state_path, text_units=units, read_texts=read_texts,
                           artifact_folders=folders, full=config.full_rescan,
                           max_age_days=config.max_state_age_days, run_id=context.run.run_id,
                           local=local_directories(settings, folders))
    return dg.AssetCheckResult(
        passed=result.passed,
        metadata={
            "mode": result.mode,
            "identifiers": result.identifiers,
            "identifiers_new_since_last_audit": result.new_identifiers,
            # per kind of content: the parts scanned against every identifier, and against the new ones only
            **{f"{kind}_parts_all_identifiers": fresh for kind, (fresh, _) in result.scanned.items()},
            **{f"{kind}_parts_new_identifiers": kept for kind, (_, kept) in result.scanned.items()},
            # warehouse rows against every identifier: those of changed tables that the last audit did not scan
            "warehouse_rows_all_identifiers": result.warehouse_rows[0],
            "warehouse_rows_already_audited": result.warehouse_rows[1],
            # warehouse columns already audited that hold a key token of a new identifier: read against those
            "warehouse_columns_new_identifiers": "all" if result.old_columns is None else result.old_columns,
            # agency-zone partitions whose identifier phrases were made now, and read from the agency zone's cache
            "identifier_parts_made": result.identifier_parts[0],
            "identifier_parts_cached": result.identifier_parts[1],
            "dagster_texts_scanned": read["dagster_texts"],
            "mlflow_texts": sum(len(v) for v in mlflow.values()),
            # the folders of MLflow's artifact files scanned (the data directory's, and any the store names out of
            # it), and the artifact paths it names that could not be read (on no file system of this machine, or
            # not there, nor under the data directory's as it was moved with it); counts only, a path can name a
            # login
            "mlflow_artifact_paths": len(folders),
            "mlflow_artifact_paths_not_found": len(unread),
            "leaks": dg.MetadataValue.md("\n".join(f"- {leak}" for leak in result.leaks) or "none"),
        },
    )
