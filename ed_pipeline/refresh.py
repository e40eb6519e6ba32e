"""`ed-pipeline refresh`: bring every asset up to date with what has landed, in process, with progress.

Runs the same Definitions as the Dagster UI, recorded in the same Dagster
instance, so every refresh shows up in the UI's run history. Ingest and analysis
each run in a fresh child process that dies with this one (resilience.ChildProcess),
so the memory one keeps is not held through the other; the analysis's process
starts while the ingest runs, and loads the definitions meanwhile.

Ingest loads, for each source, the landed months that are not loaded as they
are now (`months_to_ingest`): a new or replaced file, a month a run left half
loaded, a month loaded by other ingest code; `full=True` (`--full`) loads every
landed month again. The sources that want the same months share a run (a
single-run backfill per run of consecutive months): a month's new files are one
run, as the landing sensor's. A broken extract stops only its own source's
assets in it; that source's other months are then run again without the
unreadable ones, so they still go through. Analysis then runs over the whole
history, linking only what is new, unless nothing it reads or keeps has changed
since it last passed (`analysis_state`). A full disk stops the refresh with a
clear error (docs/resilience.md).
"""

from __future__ import annotations

import contextlib
import os
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import dagster as dg
import duckdb

from ed_pipeline.analysis_state import record_analysis, why_analyse
from ed_pipeline.defs.run_worker import RUN_WORKER_TAG, ended_message, fail_dead_runs, worker_running
from ed_pipeline.resilience import (
    ChildProcess,
    ChildProcessDied,
    DiskFullError,
    RefreshBusyError,
    disk_full_message,
    identity_fields,
    refresh_lock,
)
from ed_pipeline.settings import Settings, file_state, month_range
from ed_pipeline.sources import SOURCES, Source

RANGE_START_TAG = "dagster/asset_partition_range_start"
RANGE_END_TAG = "dagster/asset_partition_range_end"
STAGES = ("ingest", "analyse")
TRIGGER_TAG = "ed_pipeline/trigger"
QUIET = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}


@dataclass
class SourceOutcome:
    source: str
    success: bool
    seconds: float
    failed_checks: list[str] = field(default_factory=list)
    unreadable_months: list[str] = field(default_factory=list)  # left out; the source's other months went through
    kept_months: list[str] = field(default_factory=list)  # loaded before, their file gone: rows kept as they were
    months: list[str] = field(default_factory=list)  # the months ingested (none: the source was up to date)
    why: dict[str, int] = field(default_factory=dict)  # how many of them for each reason (`months_to_ingest`)
    up_to_date: bool = False  # nothing to do: no month to ingest; the analysis with nothing changed since it ran
    reason: str = ""  # the analysis: why it ran, or the run it is up to date with (`analysis_state.why_analyse`)
    run_id: str = ""  # the analysis: its run


@dataclass
class RefreshResult:
    months: list[str]
    outcomes: list[SourceOutcome]
    seconds: float

    @property
    def success(self) -> bool:
        return all(o.success and not o.failed_checks for o in self.outcomes)


DAGSTER_YAML_HEADER = "# Written by ed-pipeline."
DAGSTER_YAML = (
    f"{DAGSTER_YAML_HEADER} One run at a time: DuckDB allows one writer per file.\n"
    "run_queue:\n  max_concurrent_runs: 1\n"
    "telemetry:\n  enabled: false\n"
    "# Dagster's SQLite event log, keeping its connections (its default opens and closes one per event)\n"
    "event_log_storage:\n  module: ed_pipeline.defs.event_log_storage\n  class: PooledSqliteEventLogStorage\n"
    "# A run whose worker process died (killed, a power cut) is marked failed by the daemon's run monitoring, so it\n"
    "# does not hold the queue: the launcher tells from the pid and start time each run records (docs/resilience.md).\n"
    "# Every 30 s; a run not started in 5 minutes has failed to start; a run still going after 4 hours is stuck (the\n"
    "# Essex full refresh takes ~5 minutes) and is stopped, its worker ended; not resumed (the launcher cannot, and\n"
    "# the landing sensor and `ed-pipeline refresh` run a month again, from its first step).\n"
    "run_launcher:\n  module: ed_pipeline.defs.run_worker\n  class: MonitoredRunLauncher\n"
    "run_monitoring:\n  enabled: true\n  poll_interval_seconds: 30\n  start_timeout_seconds: 300\n"
    "  max_runtime_seconds: 14400\n  cancel_timeout_seconds: 180\n  max_resume_run_attempts: 0\n"
)


def ensure_dagster_home(settings: Settings) -> Path:
    """Point DAGSTER_HOME at data/dagster (unless set) so CLI runs and the UI share one instance, configured by
    `DAGSTER_YAML`: written when missing, and brought up to date when ed-pipeline wrote it (one without the
    header is the deployment's own and is left alone)."""
    home = Path(os.environ.setdefault("DAGSTER_HOME", str(settings.dagster_home)))
    home.mkdir(parents=True, exist_ok=True)
    config = home / "dagster.yaml"
    current = config.read_text() if config.exists() else None
    if current is None or (current.startswith(DAGSTER_YAML_HEADER) and current != DAGSTER_YAML):
        written = config.with_name(f".dagster.yaml.{os.getpid()}")
        written.write_text(DAGSTER_YAML)
        written.replace(config)  # whole or not at all: another process may be reading it
    return home


class MissingKeyError(RuntimeError):
    pass


def provide_pseudo_key(settings: Settings) -> str:
    """Make sure ED_PSEUDO_KEY is set (from the demo key file if need be); say where it came from."""
    if os.environ.get("ED_PSEUDO_KEY"):
        return "ED_PSEUDO_KEY"
    if not settings.demo_key_file.exists():
        raise MissingKeyError(
            "ED_PSEUDO_KEY is not set and there is no demo key at "
            f"{settings.demo_key_file}: set ED_PSEUDO_KEY (at least 32 random bytes, hex or base64) "
            "or run `ed-pipeline keygen` to make a random demo key"
        )
    os.environ["ED_PSEUDO_KEY"] = settings.demo_key_file.read_text().strip()
    return str(settings.demo_key_file)


def refresh(settings: Settings, progress=None, only: str | None = None, full: bool = False) -> RefreshResult:
    """Ingest what has landed and is not loaded as it is now (`months_to_ingest`; `full`: every landed month of
    every source again), then run the whole-history analysis unless it is up to date (`analysis_state`; `full`
    and `only='analyse'` run it anyway); `only` ('ingest' or 'analyse') runs one of the two.
    `progress(source, outcome_or_None)` reports each step. Raises DiskFullError when a write fails for want of
    space (what was committed before it stands)."""
    if only not in (None, *STAGES):
        raise ValueError(f"only must be one of {STAGES}, not {only!r}")
    months = settings.landed_months()
    if not months:
        raise FileNotFoundError(
            f"no extracts found under {settings.landing_dir}; run `ed-pipeline synth` first or drop files there"
        )
    provide_pseudo_key(settings)
    try:
        with refresh_lock(settings.data_dir):
            return _refresh(settings, months, progress, only, full)
    except (DiskFullError, RefreshBusyError):
        raise
    except Exception as exc:  # Dagster's own instance (SQLite) or MLflow may be the first to find the disk full
        message = disk_full_message(exc, f"a file under {settings.data_dir}", disk=settings.data_dir)
        if message:
            raise DiskFullError(message) from exc
        raise


def _refresh(settings: Settings, months: list[str], progress, only: str | None, full: bool) -> RefreshResult:
    ensure_dagster_home(settings)
    started = time.perf_counter()
    outcomes = []
    with dg.DagsterInstance.get() as instance:  # opened first: a full disk is found before the slow imports
        _fail_orphaned_runs(instance)
    # Each stage in a fresh process (recorded in the same instance: DAGSTER_HOME is inherited), so that what
    # ingest's polars and DuckDB keep of the memory they freed is not held through linkage; the child dies with
    # this process, and this process holds the refresh lock throughout.
    ready: ChildProcess | None = None  # the analysis's process, loading the definitions while the ingest runs
    try:
        for stage in STAGES if only is None else (only,):
            # what the stage has to do, decided here: a stage with nothing to do starts no process (the
            # definitions' load alone takes seconds)
            if stage == "ingest":
                work = _months_wanted(settings, months, full)
                if not any(work.values()):
                    outcomes += _nothing_to_do([(source.name, "") for source in SOURCES], progress)
                    continue
                if only is None:  # an ingest makes the analysis due: its process can start now
                    ready = ChildProcess("analyse", warm_up=_warm_up_analysis)
            else:
                work, last = _why_analyse(settings, full, only)
                if work is None:  # nothing it reads or keeps changed since its last passing run
                    reason = f"nothing it reads or keeps changed since run {last[:8]}"
                    outcomes += _nothing_to_do([(stage, reason)], progress, run_id=last)
                    continue
            child = ready if stage == "analyse" and ready is not None else ChildProcess(stage)
            try:
                with child:  # ended on leaving: before the next stage opens the databases
                    stage_outcomes = child.run(_run_stage, settings, stage, work, progress=progress)
                outcomes += stage_outcomes
            except ChildProcessDied as exc:
                with dg.DagsterInstance.get() as instance:
                    stopped = stopped_runs(instance, exc.pid)
                if stopped:
                    raise StageStopped(f"the {stage} stage was stopped: its run {', '.join(stopped)} was "
                                       "terminated (the Dagster UI's Terminate, or run monitoring's maximum "
                                       "runtime)", pid=exc.pid) from exc
                raise
            if stage == "analyse" and all(o.success and not o.failed_checks for o in stage_outcomes):
                with dg.DagsterInstance.get() as instance:  # its process has ended: every file it wrote is closed
                    record_analysis(instance, stage_outcomes[0].run_id, settings)
    finally:
        if ready is not None:
            ready.close()  # never sent its work (the ingest failed): ended
    return RefreshResult(months, outcomes, time.perf_counter() - started)


def _warm_up_analysis() -> None:
    """What the analysis's process can do before its work comes: import, never open a file. The model's
    libraries (LightGBM, scikit-learn, MLflow: ~1.5 s), which the definitions leave to the model step, and the
    instance's storage classes, which its first open would import (~0.7 s), too."""
    import ed_pipeline.definitions  # noqa: F401 (loaded, to be used by the work that follows)
    import ed_pipeline.defs.event_log_storage  # noqa: F401 (the launcher's module, run_worker, is this one's import)
    import ed_pipeline.modelling  # noqa: F401

    with contextlib.suppress(ImportError):  # Dagster's own SQLite storages: private modules, a move costs time only
        import dagster._core.storage.runs  # noqa: F401
        import dagster._core.storage.schedules  # noqa: F401


def _months_wanted(settings: Settings, months: list[str], full: bool) -> dict[str, dict[str, str]]:
    """{source: {month: why}} to ingest (`months_to_ingest`; `full`: every month, no reason given)."""
    every = ingest_ranges(settings, months)
    if full:
        return {name: dict.fromkeys(range_, "") for name, range_ in every.items()}
    with dg.DagsterInstance.get() as instance:
        return months_to_ingest(instance, settings, every)


def _why_analyse(settings: Settings, full: bool, only: str | None) -> tuple[str | None, str | None]:
    """Why the analysis runs (None: it is up to date), and its last run (`analysis_state.why_analyse`)."""
    if full or only:
        return ("--full" if full else "--only analyse"), None
    with dg.DagsterInstance.get() as instance:
        return why_analyse(instance, settings)


def _nothing_to_do(steps: list[tuple[str, str]], progress, run_id: str | None = None) -> list[SourceOutcome]:
    """The outcomes of steps up to date ((name, why) each), reported as such."""
    outcomes = [SourceOutcome(name, True, 0.0, up_to_date=True, reason=why, run_id=run_id or "")
                for name, why in steps]
    for outcome in outcomes if progress else ():
        progress(outcome.source, outcome)
    return outcomes


class StageStopped(ChildProcessDied):
    """A refresh's stage process ended because a run it executed was stopped (`run_worker.ended_message`)."""


def stopped_runs(instance: dg.DagsterInstance, pid: int | None) -> list[str]:
    """The ids of the refresh's runs that process `pid` executed and that were stopped by ending it."""
    if pid is None:
        return []
    runs = instance.get_runs(filters=dg.RunsFilter(tags={TRIGGER_TAG: "refresh"}), limit=50)
    return [run.run_id for run in runs if identity_fields(run.tags.get(RUN_WORKER_TAG, "")).get("pid") == str(pid)
            and any(e.message == ended_message(run)
                    for e in instance.all_logs(run.run_id, of_type=dg.DagsterEventType.RUN_CANCELED))]


def _run_stage(settings: Settings, stage: str, work, progress=None) -> list[SourceOutcome]:
    """One stage of the refresh, in this process: 'ingest' the months of `work` ({source: {month: why}}), a run
    for the sources that want the same months; 'analyse' the whole-history job (`work`: why it is due)."""
    with dg.DagsterInstance.get() as instance:
        from ed_pipeline.definitions import defs

        if stage == "ingest":
            together: dict[tuple[str, ...], list[Source]] = {}
            for source in SOURCES:
                together.setdefault(tuple(work[source.name]), []).append(source)
            outcomes = {o.source: o for sources in together.values()
                        for o in _ingest_sources(instance, defs, settings, sources, work, progress)}
            return [outcomes[source.name] for source in SOURCES]
        return [_analyse(instance, settings, work, progress)]


def _fail_orphaned_runs(instance: dg.DagsterInstance) -> None:
    """Runs whose worker process has ended (`run_worker.fail_dead_runs`: an earlier refresh killed, a run worker
    killed or a power cut) are marked failed, so that neither the UI nor the run queue waits on them for ever; so
    too runs an earlier refresh left 'started' that recorded no worker (an earlier version: we hold the lock, so no
    refresh on this data directory is running them)."""
    fail_dead_runs(instance)
    runs = instance.get_runs(filters=dg.RunsFilter(statuses=[dg.DagsterRunStatus.STARTED],
                                                   tags={TRIGGER_TAG: "refresh"}))
    for run in runs:
        if worker_running(run) is None:
            instance.report_run_failed(run, message="the refresh running it ended before it finished (killed?); "
                                       "a later refresh re-ran its work")


# Why `months_to_ingest` wants a month, as the refresh reports it
TABLE_MISSING, NEW, REPLACED, OTHER_CODE, HALF_LOADED = (
    "table missing", "new", "replaced", "ingest code changed", "half loaded")


def months_to_ingest(instance: dg.DagsterInstance, settings: Settings, every: dict[str, list[str]]
                     ) -> dict[str, dict[str, str]]:
    """{source: {month: why}} to ingest, in month order, out of `every` (each source's months, from its first
    landed month to its last):

    - every month of `every` for a source whose raw, validated, quarantine or pseudonymised table is missing
      (NEW: never loaded; TABLE_MISSING: a database file deleted, a table dropped for a new key: docs/privacy.md);
    - each landed month whose file raw has not read (NEW) or not as it is now (REPLACED: its `file_state`), or
      read under other ingest code (OTHER_CODE: `ingest_fingerprint`): raw records both for every month it reads;
    - each month a run left half loaded (HALF_LOADED, `half_loaded_months`: killed, or stopped by a blocking
      check).

    A month whose file has gone keeps what was loaded (a missing file is no withdrawal), so it is not run."""
    from ed_pipeline.defs.automation import half_loaded_months, raw_writes
    from ed_pipeline.defs.raw import ingest_fingerprint, raw_key

    raw_written = raw_writes(instance)
    half = half_loaded_months(instance, raw_written)
    missing = _sources_missing_a_table(settings)
    rules = ingest_fingerprint()
    wanted: dict[str, dict[str, str]] = {}
    for source in SOURCES:
        if source.name in missing:  # never loaded (new), or a table gone since
            wanted[source.name] = dict.fromkeys(every[source.name], TABLE_MISSING if raw_written[source.name] else NEW)
            continue
        ids = list(raw_written.get(source.name, {}).values())
        records = instance.fetch_materializations(
            dg.AssetRecordsFilter(asset_key=raw_key(source), storage_ids=ids), limit=len(ids)).records if ids else []
        read = {r.partition_key: r.asset_materialization.metadata for r in records if r.asset_materialization}
        wanted[source.name] = {}
        for month in settings.landed_months(source.name):
            state, code = _recorded(read.get(month, {}))
            why = (NEW if state is None else
                   REPLACED if state != file_state(settings.landing_file(source.name, month)) else
                   OTHER_CODE if code != rules else
                   HALF_LOADED if month in half.get(source.name, ()) else None)
            if why:
                wanted[source.name][month] = why
    return wanted


def _recorded(metadata) -> tuple[str | None, str | None]:
    """(the state of the file, the ingest code's fingerprint) raw recorded for a month it read."""
    from ed_pipeline.defs.raw import INGEST_RULES, LANDED_FILE

    state, code = metadata.get(LANDED_FILE), metadata.get(INGEST_RULES)
    return (state.value if state else None, code.value if code else None)


def pending(settings: Settings) -> tuple[dict[str, dict[str, str]], str | None]:
    """What `ed-pipeline refresh` would do now, without running anything: the months it would ingest and why
    (`months_to_ingest`), and why it would run the analysis (None: up to date; after any ingest it runs). Takes the
    refresh lock while it reads (RefreshBusyError if a refresh is running: it holds the DuckDB files)."""
    with refresh_lock(settings.data_dir):
        ensure_dagster_home(settings)
        wanted = _months_wanted(settings, settings.landed_months(), full=False)
        return wanted, ("after the months ingested" if any(wanted.values())
                        else _why_analyse(settings, full=False, only=None)[0])


def ingest_ranges(settings: Settings, months: list[str]) -> dict[str, list[str]]:
    """Each source's months from its first landed month to its last (every landed month of any source when it has
    none: its tables must still exist, empty); Dagster records every partition of a run, so months cost time."""
    every = {}
    for source in SOURCES:
        own = settings.landed_months(source.name) or months
        every[source.name] = month_range(own[0], own[-1])
    return every


def _sources_missing_a_table(settings: Settings) -> set[str]:
    """The sources whose raw, validated or quarantine table (agency zone) or pseudonymised table (warehouse) is
    not there."""
    present: set[str] = set()
    for path in (settings.agency_zone_path, settings.warehouse_path):
        if path.exists():
            with duckdb.connect(str(path), read_only=True) as conn:
                present |= {f"{schema}.{table}" for schema, table in conn.execute(
                    "select schema_name, table_name from duckdb_tables()").fetchall()}
    return {source.name for source in SOURCES
            if not {f"{layer}.{source.name}" for layer in ("raw", "validated", "quarantine", "pseudonymised")}
            <= present}


def _ingest_sources(instance: dg.DagsterInstance, defs: dg.Definitions, settings: Settings,
                    sources: list[Source], work: dict[str, dict[str, str]], progress) -> list[SourceOutcome]:
    """Ingest `sources`, which want the same months (`work[source]`: {month: why}, in order; none: up to date),
    together: one run over each run of consecutive months, so Dagster's run set-up is paid once, not once a
    source. A source's failure stops only its own assets. If some of a source's files are unreadable (its blocking
    check stops its assets for the run's every month), its other months are run again without them, so one bad
    file holds back only its own month. Each outcome's seconds are its own steps'."""
    from ed_pipeline.defs.automation import source_keys
    from ed_pipeline.defs.raw import READABLE_CHECK, raw_key

    months = list(work[sources[0].name])
    if progress:
        progress(", ".join(source.name for source in sources), None)
    tally = {source.name: _Tally(source_keys(source), {defs.resolve_assets_def(key).node_def.name
                                                       for key in source_keys(source)}) for source in sources}
    for run in _ranges(months, month_range(months[0], months[-1])) if months else []:
        result = _ingest_run(instance, settings, sources, run)
        took = _step_seconds(instance, result)
        for source in sources:
            bad = sorted({
                month for e in result.get_asset_check_evaluations()
                if e.asset_key == raw_key(source) and e.check_name == READABLE_CHECK and not e.passed
                for month in run if str(settings.landing_file(source.name, month)) in (e.description or "")
            })
            tally[source.name].add(result, took, judged=not bad)
            if bad:  # reported as the failed check; the run is judged by its other months' runs
                tally[source.name].unreadable += bad
                for again in _ranges([m for m in run if m not in bad], run):
                    rerun = _ingest_run(instance, settings, [source], again)
                    tally[source.name].add(rerun, _step_seconds(instance, rerun))
    outcomes = []
    for source in sources:
        wanted, done = work[source.name], tally[source.name]
        gone = [month for month in wanted if not settings.landing_file(source.name, month).exists()]
        outcome = SourceOutcome(source.name, done.success, done.seconds, done.failed, done.unreadable,
                                _loaded(settings, source, gone) if gone else [], list(wanted),
                                dict(Counter(why for why in wanted.values() if why)), up_to_date=not wanted)
        if progress:
            progress(source.name, outcome)
        outcomes.append(outcome)
    return outcomes


@dataclass
class _Tally:
    """What a source's part of the ingest runs came to: `keys`, its assets, materialised by the steps `steps`."""
    keys: list[dg.AssetKey]
    steps: set[str]
    success: bool = True
    seconds: float = 0.0
    failed: list[str] = field(default_factory=list)  # its failed blocking checks (`_failed_checks`)
    unreadable: list[str] = field(default_factory=list)

    def add(self, result: dg.JobExecutionResult, took: dict[str, float], judged: bool = True) -> None:
        """Count the source's part of a run (`took`: its steps' seconds): its steps' time and failed checks;
        unless not `judged`, whether its steps all succeeded (a run that failed outside any step failed them all)."""
        self.seconds += sum(took.get(step, 0.0) for step in self.steps)
        self.failed += [f for f in _failed_checks(result, self.keys) if f not in self.failed]
        if judged and not result.success:
            failed_steps = set(result.get_failed_step_keys())
            self.success = self.success and bool(failed_steps) and not failed_steps & self.steps


# The refresh executes its runs with `dg.execute_job`: through the job's own executor, which records this process as
# the run's worker, and without `execute_in_process`'s output capture, which keeps every output value (raw's frames)
# in memory until the run ends (the 1.5M full refresh's peak 5,415 MiB against 5,745: docs/performance.md).
def ingest_job() -> dg.JobDefinition:
    from ed_pipeline.definitions import defs

    return defs.resolve_job_def("ingest")


def analyse_job() -> dg.JobDefinition:
    from ed_pipeline.definitions import defs

    return defs.resolve_job_def("analyse")


def _step_seconds(instance: dg.DagsterInstance, result: dg.JobExecutionResult) -> dict[str, float]:
    """{step: seconds it ran} of a run."""
    return {s.step_key: (s.end_time or s.start_time or 0.0) - (s.start_time or 0.0)
            for s in instance.get_run_step_stats(result.run_id)}


def _loaded(settings: Settings, source: Source, months: list[str]) -> list[str]:
    """Those of `months` that raw.<source> holds rows of."""
    if not settings.agency_zone_path.exists():
        return []
    with duckdb.connect(str(settings.agency_zone_path), read_only=True) as conn:
        try:
            return [m for (m,) in conn.execute(f"select distinct extract_month from raw.{source.name} where "
                                               "extract_month in (select unnest(?)) order by 1", [months]).fetchall()]
        except duckdb.CatalogException:  # the source's run failed before its first write
            return []


def _ingest_run(instance: dg.DagsterInstance, settings: Settings, sources: list[Source], months: list[str]
                ) -> dg.JobExecutionResult:
    from ed_pipeline.defs.automation import source_keys

    result = dg.execute_job(
        dg.reconstructable(ingest_job), instance,
        asset_selection=[key for source in sources for key in source_keys(source)],
        tags={RANGE_START_TAG: months[0], RANGE_END_TAG: months[-1], TRIGGER_TAG: "refresh"},
        raise_on_error=False,
        # Dagster's own events stay in the instance (the UI shows them); the console gets our progress.
        run_config=QUIET,
    )
    _raise_if_disk_full(result, settings)
    return result


def _ranges(wanted: list[str], months: list[str]) -> list[list[str]]:
    """`wanted` (a subset of `months`, in order) cut into runs of months that are consecutive in `months`."""
    runs: list[list[str]] = []
    for month in wanted:
        if runs and months.index(month) == months.index(runs[-1][-1]) + 1:
            runs[-1].append(month)
        else:
            runs.append([month])
    return runs


def _failed_checks(result: dg.JobExecutionResult, keys: list[dg.AssetKey] | None = None) -> list[str]:
    """The blocking checks that failed (of the assets `keys` only, if given), `<asset>:<check>`, with what each
    said was wrong (its description)."""
    return [f"{'/'.join(e.asset_key.path)}:{e.check_name}" + (f" ({e.description})" if e.description else "")
            for e in result.get_asset_check_evaluations()
            if not e.passed and e.severity == dg.AssetCheckSeverity.ERROR and (keys is None or e.asset_key in keys)]


def _raise_if_disk_full(result: dg.JobExecutionResult, settings: Settings) -> None:
    """A step that failed for want of space stops the refresh: every later write would fail the same way."""
    if result.success:
        return
    for event in result.all_events:
        if event.is_step_failure and event.step_failure_data:
            data = event.step_failure_data
            error = data.user_failure_data.description if data.user_failure_data else None
            message = disk_full_message(error or data.error, f"a file under {settings.data_dir}",
                                        disk=settings.data_dir)
            if message:
                raise DiskFullError(message)


def _analyse(instance: dg.DagsterInstance, settings: Settings, why: str, progress) -> SourceOutcome:
    """Run the unpartitioned `analyse` job (linking and everything after it) over whatever the warehouse holds;
    `why`: what made it due (`analysis_state.why_analyse`)."""
    if progress:
        progress("analyse", None)
    t0 = time.perf_counter()
    result = dg.execute_job(dg.reconstructable(analyse_job), instance, raise_on_error=False,
                            tags={TRIGGER_TAG: "refresh"}, run_config=QUIET)
    _raise_if_disk_full(result, settings)
    outcome = SourceOutcome("analyse", result.success, time.perf_counter() - t0, _failed_checks(result), reason=why,
                            run_id=result.run_id)
    if progress:
        progress(outcome.source, outcome)
    return outcome


def _counter(conn: duckdb.DuckDBPyConnection):
    tables = {f"{s}.{t}" for s, t in conn.execute(
        "select table_schema, table_name from information_schema.tables").fetchall()}

    def count(table: str, expr: str = "count(*)") -> int | None:
        return conn.execute(f"select {expr} from {table}").fetchone()[0] if table in tables else None

    return count


def layer_counts(settings: Settings, sources: tuple[Source, ...] = SOURCES) -> list[dict]:
    """Rows per source in raw, validated, quarantine and pseudonymised (None where a table does not exist)."""
    with duckdb.connect(str(settings.agency_zone_path)) as agency:
        count = _counter(agency)
        rows = [{"source": s.name, "raw": count(f"raw.{s.name}"), "validated": count(f"validated.{s.name}"),
                 "quarantine": count(f"quarantine.{s.name}")} for s in sources]
    if settings.warehouse_path.exists():
        # Not read-only: this process may still hold the run's read-write connection, and DuckDB refuses two
        # configurations of one file in one process.
        with duckdb.connect(str(settings.warehouse_path)) as warehouse:
            count = _counter(warehouse)
            for row in rows:
                row["pseudonymised"] = count(f"pseudonymised.{row['source']}")
    return rows


def linkage_summary(settings: Settings) -> dict[str, int | None]:
    """Records, persons, households, cohort children and pending review pairs in the linked layer."""
    if not settings.warehouse_path.exists():
        return {}
    with duckdb.connect(str(settings.warehouse_path)) as conn:
        count = _counter(conn)
        return {
            "records linked": count("linked.person_link"),
            "persons": count("linked.person"),
            "households": count("linked.household_membership", "count(distinct household_id)"),
            "children in cohort": count("linked.cohort", "count(distinct person_id)"),
            "pairs awaiting review": count("linked.review_pair", "count(*) filter (where decision is null)"),
        }


def model_summary(settings: Settings) -> tuple[dict[str, float], list[tuple]]:
    """The refresh's headline test metrics and its five highest-risk wards (as published, after suppression)."""
    if not settings.warehouse_path.exists():
        return {}, []
    with duckdb.connect(str(settings.warehouse_path)) as conn:
        count = _counter(conn)
        metrics = {}
        if count("model.metrics") is not None:
            metrics = dict(conn.execute(
                "select metric, value from model.metrics where metric in "
                "('test_roc_auc', 'baseline_test_roc_auc', 'test_ece', 'test_precision_top10')").fetchall())
        wards = []
        if count("outputs.community_risk") is not None:
            wards = conn.execute(
                "select rank, area, mean_risk from outputs.community_risk where level = 'ward' "
                "and rank is not null order by rank, area limit 5").fetchall()
    return metrics, wards
