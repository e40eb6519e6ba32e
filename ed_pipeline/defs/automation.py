"""Automation: the monthly schedule, the landing sensor, declarative automation after ingestion, and the
run-failure sensor.

- `monthly_ingest_schedule` ingests the month that just ended for every source
  (raw -> validated -> pseudonymised), on the 5th at 06:00, when agencies have
  dropped their extracts; everything downstream (linked -> features -> model ->
  outputs) follows by declarative automation (`follows_upstream()` on each of
  those assets, evaluated by `downstream_automation`) as one run, once no
  ingestion is in progress any more.
- `landing_sensor` requests a month's partition, in one run for every source
  whose file for that month appeared in `landing/<source>/` since its last
  tick, and again when a file is replaced (its cursor keeps each file's
  modification time and size; the run key names them). Misnamed files are
  left out and logged, every tick: one of them never stops the others. A
  month a killed or failed run left loaded in part, or not loaded, is run
  again once a delivery (`months_to_run_again`), once no run is unfinished (a
  run whose worker process has ended is marked failed first).
- `record_run_failures` appends every failed run to `ops.run_failure` in
  `data/ops.duckdb` and to the log.
- `record_analyses` records on a passing run that analysed everything what it
  left (`analysis_state`), as `ed-pipeline refresh` does for its own.
"""

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import dagster as dg
import duckdb
from dagster._core.storage.dagster_run import NOT_FINISHED_STATUSES

from ed_pipeline.analysis_state import ANALYSE_JOB, ANALYSED_TAG, record_if_whole_analysis
from ed_pipeline.defs.pseudonymised import pseudonymised_key
from ed_pipeline.defs.raw import raw_key
from ed_pipeline.defs.run_worker import fail_dead_runs
from ed_pipeline.defs.validated import quarantine_key, validated_key
from ed_pipeline.settings import LANDING_NAME_RULE, Settings, file_state, is_partition_month
from ed_pipeline.sources import SOURCES, Source

TRIGGER_TAG = "ed_pipeline/trigger"
REFRESH_TRIGGER = "refresh"  # `ed-pipeline refresh` tags its runs so, and runs what follows ingestion itself


def follows_upstream() -> dg.AutomationCondition:
    """Dagster's `eager()`, adapted to whole-history assets over monthly partitions: requested once any
    dependency has been updated (or will be, in the same tick), never while a dependency or the asset itself is
    in progress.

    - Without `eager()`'s "no missing dependency" clause: these assets depend on every monthly partition since
      2013-01, and some months never exist (a source that started later, a month not landed yet), so `eager()`
      would wait for ever. A month that fails a blocking check is not materialised and so updates nothing.
    - Updates made by `ed-pipeline refresh` do not count: the refresh runs linking and everything after it
      itself, right after ingesting (a second, automatic run would race it for the DuckDB files).
    """
    updated_outside_refresh = (
        dg.AutomationCondition.newly_updated()
        & ~dg.AutomationCondition.executed_with_root_target()
        & ~dg.AutomationCondition.executed_with_tags(tag_values={TRIGGER_TAG: REFRESH_TRIGGER})
    ).with_label("newly_updated_outside_refresh")
    return (
        dg.AutomationCondition.eager()
        .without(dg.AutomationCondition.in_latest_time_window())
        .without(~dg.AutomationCondition.any_deps_missing())
        .replace("newly_updated_without_root", updated_outside_refresh)
        .with_label("eager over landed months")
    )


# Evaluates `follows_upstream()` of linked, features, model and outputs every minute (turn it on in the UI:
# Automation -> downstream_automation), so that a month ingested by the schedule or the landing sensor flows on.
downstream_automation = dg.AutomationConditionSensorDefinition(
    "downstream_automation",
    target=dg.AssetSelection.groups("linked", "features", "model", "outputs"),
    minimum_interval_seconds=60,
    description="Declarative automation of everything after ingestion: once a month has been pseudonymised (by "
    "the monthly schedule or the landing sensor), link, build features, train and score, in one run.",
)


def source_keys(source: Source) -> list[dg.AssetKey]:
    """Everything one agency's monthly partition materialises."""
    return [raw_key(source), validated_key(source), quarantine_key(source), pseudonymised_key(source)]


def build_monthly_schedule(ingest_job) -> dg.ScheduleDefinition:
    return dg.build_schedule_from_partitioned_job(
        ingest_job,
        name="monthly_ingest_schedule",
        description="Ingest last month's extracts of every source on the 5th; linking follows automatically.",
        day_of_month=5,
        hour_of_day=6,
    )


SOURCES_TAG = "ed_pipeline/sources"  # the sources a landing_sensor run ingests, comma-separated


def seen_files(cursor: str | None, settings: Settings) -> dict[str, str] | None:
    """The landing sensor's cursor as {"<source>/<YYYY-MM>.csv": "<file_state>#<deliveries>"}; None before its first
    tick (or for a cursor it cannot read). A cursor of an earlier version (the newest modification time seen)
    counts the files no newer than it as seen."""
    try:
        seen = json.loads(cursor) if cursor else None
    except ValueError:
        return None
    if isinstance(seen, int | float):
        return {settings.landing_name(p): file_state(p) for p in settings.landing_files() if p.stat().st_mtime <= seen}
    return seen if isinstance(seen, dict) else None


# A cursor entry's mark: this delivery of the file has been run again once, after a run left its month half loaded
# or did not load it.
RAN_AGAIN = "again"
# A cursor entry's field: raw's latest write of the file's month (its event's storage id, 0 for none) when the sensor
# requested this delivery. A write after it has read this delivery (the file is unchanged since); none, and the
# delivery was never loaded. Storage ids, not times: a file moved in with its old times kept is still a new delivery.
RAW_BEFORE = "raw="


@dataclass(frozen=True)
class Delivery:
    """A cursor entry: `<file_state>#<deliveries>`, then `#raw=<storage id>` when the sensor requested it and
    `#again` once run again. An entry of an earlier version is the state alone (one delivery), or has no `raw=`
    (never taken for not loaded: a sensor turned on over a loaded history requests nothing either)."""

    state: str | None
    count: int = 0
    raw_before: int | None = None  # see RAW_BEFORE; None: not requested by the sensor (loaded before its first tick)
    ran_again: bool = False

    @classmethod
    def parse(cls, entry: str | None) -> "Delivery":
        if entry is None:
            return cls(None)
        state, *fields = entry.split("#")
        count = int(fields[0]) if fields and fields[0].isdigit() else 1
        raw_before = next((int(f.removeprefix(RAW_BEFORE)) for f in fields
                           if f.startswith(RAW_BEFORE) and f.removeprefix(RAW_BEFORE).isdigit()), None)
        return cls(state, count, raw_before, RAN_AGAIN in fields[1:])

    def entry(self) -> str:
        requested = f"#{RAW_BEFORE}{self.raw_before}" if self.raw_before is not None else ""
        return f"{self.state}#{self.count}{requested}" + (f"#{RAN_AGAIN}" if self.ran_again else "")


def raw_writes(instance: dg.DagsterInstance) -> dict[str, dict[str, int]]:
    """{source: {month: storage id of raw's latest write of that month}}: ids grow with every event recorded."""
    materialized = dg.DagsterEventType.ASSET_MATERIALIZATION
    return {source.name: instance.event_log_storage.get_latest_storage_id_by_partition(raw_key(source), materialized)
            for source in SOURCES}


def half_loaded_months(instance: dg.DagsterInstance, raw_written: dict[str, dict[str, int]]) -> dict[str, set[str]]:
    """{source: months} a run left half loaded: raw's slice written after the latest write of validated's,
    quarantine's or pseudonymised's (or with none of theirs), so raw rows no longer = validated + quarantined. A run
    killed between raw's step and the next (SIGKILL, the OOM killer, a power cut) leaves that, and nothing else
    would run the month again."""
    storage = instance.event_log_storage
    materialized = dg.DagsterEventType.ASSET_MATERIALIZATION
    half = {}
    for source in SOURCES:
        later = [storage.get_latest_storage_id_by_partition(key(source), materialized)
                 for key in (validated_key, quarantine_key, pseudonymised_key)]
        months = {month for month, raw_id in raw_written.get(source.name, {}).items()
                  if any(layer.get(month, -1) < raw_id for layer in later)}
        if months:
            half[source.name] = months
    return half


def not_loaded_months(settings: Settings, seen: dict[str, str] | None, raw_written: dict[str, dict[str, int]]
                      ) -> dict[str, set[str]]:
    """{source: months} whose landed file the sensor requested and raw has not been written since: the run ended
    before raw's write committed (killed, or the file unreadable), so the month still holds the previous delivery,
    or nothing. The file's state is unchanged and its run key used up: nothing else would request it."""
    missing: dict[str, set[str]] = {}
    for name, entry in (seen or {}).items():
        delivery = Delivery.parse(entry)
        path = settings.landing_dir / name
        source, month = path.parent.name, path.stem
        if delivery.raw_before is None or raw_written.get(source, {}).get(month, 0) > delivery.raw_before:
            continue
        if path.is_file() and file_state(path) == delivery.state:  # taken away or replaced: not this delivery's
            missing.setdefault(source, set()).add(month)
    return missing


def months_to_run_again(instance: dg.DagsterInstance, settings: Settings, seen: dict[str, str] | None
                        ) -> tuple[dict[str, dict[str, int]], dict[str, set[str]]]:
    """Raw's latest writes (`raw_writes`), and the months to run again: half loaded or never loaded (see
    `half_loaded_months`, `not_loaded_months`). Nothing while any run is unfinished: it may be the one still loading
    the month. A started run whose worker process has ended (killed, a power cut) is marked failed first
    (`run_worker.fail_dead_runs`), so it is not waited on."""
    raw_written = raw_writes(instance)  # the event ids first: a run starting meanwhile is then found unfinished
    again: dict[str, set[str]] = {}
    for months in (half_loaded_months(instance, raw_written), not_loaded_months(settings, seen, raw_written)):
        for source, some in months.items():
            again.setdefault(source, set()).update(some)
    if again:
        fail_dead_runs(instance)
    if again and instance.get_runs_count(dg.RunsFilter(statuses=NOT_FINISHED_STATUSES)):
        return raw_written, {}
    return raw_written, again


def landing_requests(settings: Settings, seen: dict[str, str] | None, materialized: dict[str, set[str]],
                     run_again: dict[str, set[str]] | None = None, raw_written: dict[str, dict[str, int]] | None = None
                     ) -> tuple[list[dg.RunRequest], dict[str, str]]:
    """Run requests for landed files that are new or replaced since the sensor last `seen` them: one run per
    month, for every source with such a file for that month (so Dagster's run set-up is paid once a month, not
    once an agency; a source whose file fails a blocking check stops only its own assets in the run); and what
    is seen now (the next cursor). Files whose name is not a month that can be ingested are left out
    (`Settings.misnamed_landing_files`; the sensor reports them).

    Before the first tick (`seen` None) only files whose partition was never materialised are requested: the
    history is loaded by a backfill or `ed-pipeline refresh`, not one run per old file.
    The run key names each file, its state and how many times it was delivered: a replaced file makes a new key,
    so its month runs again, even when it is sent back as it was before.

    A file unchanged since it was requested whose month is to `run_again` (`months_to_run_again`: half loaded, or
    this delivery never loaded) is requested again, once a delivery (its cursor entry is marked): a run killed again,
    or failing again the same way (an unreadable file, a step that raises on this file), leaves the month to a person
    (`ed-pipeline refresh`), not to a request every tick. A requested delivery's entry keeps raw's latest write of its
    month then (from `raw_written`, `raw_writes`), to tell later whether it was loaded.
    """
    fresh_files: dict[str, list[tuple[Source, str]]] = {}
    now: dict[str, str] = dict(seen or {})  # a file taken away keeps its count, should it be sent again
    for source in SOURCES:
        for path in settings.landing_files(source.name):
            if not is_partition_month(path.stem):
                continue
            name, state = settings.landing_name(path), file_state(path)
            before = Delivery.parse(seen.get(name) if seen is not None else None)
            fresh = before.state != state if seen is not None else path.stem not in materialized.get(source.name, set())
            deliveries = before.count + (fresh or seen is None)  # on the first tick, a file there is one delivery
            again = not fresh and not before.ran_again and path.stem in (run_again or {}).get(source.name, set())
            raw_before = (raw_written or {}).get(source.name, {}).get(path.stem, 0) if fresh else before.raw_before
            now[name] = Delivery(state, deliveries, raw_before, again or (before.ran_again and not fresh)).entry()
            if fresh or again:
                # Dagster never runs a run key twice: a file re-sent as it was before (moved in with its times
                # kept) after another delivery would be skipped, its month left as the other one wrote it, so the
                # key counts the file's deliveries (and is marked when a delivery is run again)
                run_key = (f"{path}:{state}" + (f"#{deliveries}" if deliveries > 1 or again else "")
                           + (f"#{RAN_AGAIN}" if again else ""))
                fresh_files.setdefault(path.stem, []).append((source, run_key))
    requests = [
        dg.RunRequest(
            run_key=" ".join(key for _, key in files),
            partition_key=month,
            asset_selection=[k for source, _ in files for k in source_keys(source)],
            tags={TRIGGER_TAG: "landing_sensor", SOURCES_TAG: ",".join(source.name for source, _ in files)},
        )
        for month, files in sorted(fresh_files.items())
    ]
    return requests, now


def build_landing_sensor(ingest_job) -> dg.SensorDefinition:
    @dg.sensor(
        name="landing_sensor",
        job=ingest_job,
        minimum_interval_seconds=60,
        description="Ingests agencies' monthly files as soon as they land (or are replaced) in landing/<source>/: one "
        "run per month for the sources whose file is new.",
    )
    def landing_sensor(context: dg.SensorEvaluationContext):
        settings = Settings.from_env()
        seen = seen_files(context.cursor, settings)
        materialized = {} if seen is not None else {
            s.name: set(context.instance.get_materialized_partitions(raw_key(s))) for s in SOURCES}
        raw_written, run_again = months_to_run_again(context.instance, settings, seen)
        requests, now = landing_requests(settings, seen, materialized, run_again, raw_written)
        context.update_cursor(json.dumps(now, sort_keys=True))
        again, left = rerun_report(seen, now, run_again)
        if again:
            context.log.warning(f"run again, a run left the month loaded in part or not at all (its process was not "
                                f"finished, or it failed): {', '.join(again)}")
        if left:  # every tick, until a person looks: the re-run did not finish them either
            context.log.warning(f"still loaded in part or not at all after running again: {', '.join(left)}; see the "
                                "failed run, then run `ed-pipeline refresh`")
        misnamed = [settings.landing_name(p) for p in settings.misnamed_landing_files()]
        if misnamed:  # every tick, until someone renames or removes them: they would never be ingested
            context.log.warning(f"left out of ingestion, not named {LANDING_NAME_RULE}: {', '.join(misnamed)}")
        return requests or dg.SkipReason("no new or replaced extract in landing/"
                                         + (f" ({len(misnamed)} misnamed file(s) left out: see the log)"
                                            if misnamed else ""))

    return landing_sensor


def rerun_report(seen: dict[str, str] | None, now: dict[str, str], run_again: dict[str, set[str]]
                 ) -> tuple[list[str], list[str]]:
    """Of the landed files whose month is to run again (half loaded, or not loaded): those requested again at this
    tick, and those run again before that are still so (names as in the cursor, `<source>/<YYYY-MM>.csv`)."""
    pending = sorted(name for name in now if Path(name).stem in run_again.get(Path(name).parent.name, set()))
    marked = [name for name in pending if Delivery.parse(now[name]).ran_again]
    before = [name for name in marked if seen is not None and Delivery.parse(seen.get(name)).ran_again]
    return [name for name in marked if name not in before], before


@dg.run_failure_sensor(
    name="record_run_failures",
    description="Appends every failed run to ops.run_failure (data/ops.duckdb) and to the log.",
    default_status=dg.DefaultSensorStatus.RUNNING,
)
def record_run_failures(context: dg.RunFailureSensorContext):
    run = context.dagster_run
    failures = context.get_step_failure_events()
    steps = [e.step_key for e in failures]
    error = _first_error(failures) or (context.failure_event.message or "")
    row = (run.run_id, run.job_name, datetime.now(UTC).replace(tzinfo=None), json.dumps(steps), error,
           json.dumps(run.tags.get("dagster/partition")))
    record_failure(Settings.from_env(), row)
    context.log.error(f"run {run.run_id} of {run.job_name} failed in steps {steps}: {error}")


@dg.run_status_sensor(
    run_status=dg.DagsterRunStatus.SUCCESS,
    name="record_analyses",
    description="Records on each passing run that analysed everything (linking onwards and the privacy audit: "
    "declarative automation after a month, the UI's Materialize all) what it left, as `ed-pipeline refresh` "
    "records its own, so that the command's next refresh does not analyse the same state again.",
    default_status=dg.DefaultSensorStatus.RUNNING,
)
def record_analyses(context: dg.RunStatusSensorContext):
    run = context.dagster_run
    if run.tags.get(TRIGGER_TAG) == REFRESH_TRIGGER or ANALYSED_TAG in run.tags:
        return  # the refresh records its own, once its process has closed every file
    repository = context.repository_def
    analysis = repository.get_job(ANALYSE_JOB).asset_layer.selected_asset_keys
    selected = (run.asset_selection  # empty (or None) for a job run whole
                or (repository.get_job(run.job_name).asset_layer.selected_asset_keys
                    if repository.has_job(run.job_name) else set()))
    why_not = record_if_whole_analysis(context.instance, run, selected, analysis, Settings.from_env())
    context.log.info(f"run {run.run_id[:8]} of {run.job_name} " + (
        f"is not recorded as an analysis: {why_not}" if why_not else "is recorded as the last analysis"))


def _first_error(failures) -> str:
    """The first failed step's error class and first line only: a full trace could quote data values."""
    for event in failures:
        error = getattr(event.event_specific_data, "error", None)
        error = getattr(error, "cause", None) or error
        if error is not None:
            return (error.message or error.cls_name or "").strip().splitlines()[0][:500]  # "Class: message"
    return ""


def record_failure(settings: Settings, row: tuple) -> None:
    """Append to run_failure in data/ops.duckdb (read it as ops.run_failure: the file is the catalog), once per
    run: a run can be reported failed twice (by run monitoring and by the landing sensor, both finding its worker
    gone; or the sensor's cursor lost in a daemon crash), and the first report is the one kept."""
    settings.ops_db_path.parent.mkdir(parents=True, exist_ok=True)
    with duckdb.connect(str(settings.ops_db_path)) as conn:
        conn.execute("create table if not exists run_failure (run_id varchar, job_name varchar, "
                     "failed_at timestamp, failed_steps json, error varchar, partition json)")
        conn.execute("insert into run_failure select ?, ?, ?, ?, ?, ? "
                     "where not exists (select 1 from run_failure where run_id = $1)", list(row))
