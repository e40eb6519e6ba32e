"""`ed-pipeline refresh`: materialise every asset for every landed month, in process, with progress.

Runs the same Definitions as the Dagster UI, recorded in the same Dagster
instance, so every refresh shows up in the UI's run history. Each source is its
own run over the whole month range (one run per asset, as a single-run
backfill), so a broken extract stops only that source.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from pathlib import Path

import dagster as dg
import duckdb

from ed_pipeline.settings import Settings
from ed_pipeline.sources import SOURCES, Source

RANGE_START_TAG = "dagster/asset_partition_range_start"
RANGE_END_TAG = "dagster/asset_partition_range_end"


@dataclass
class SourceOutcome:
    source: str
    success: bool
    seconds: float
    failed_checks: list[str] = field(default_factory=list)


@dataclass
class RefreshResult:
    months: list[str]
    outcomes: list[SourceOutcome]
    seconds: float

    @property
    def success(self) -> bool:
        return all(o.success and not o.failed_checks for o in self.outcomes)


def ensure_dagster_home(settings: Settings) -> Path:
    """Point DAGSTER_HOME at data/dagster (unless set) so CLI runs and the UI share one instance."""
    home = Path(os.environ.setdefault("DAGSTER_HOME", str(settings.dagster_home)))
    home.mkdir(parents=True, exist_ok=True)
    config = home / "dagster.yaml"
    if not config.exists():
        config.write_text(
            "# Written by ed-pipeline. One run at a time: DuckDB allows one writer per file.\n"
            "run_queue:\n  max_concurrent_runs: 1\n"
            "telemetry:\n  enabled: false\n"
        )
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


def refresh(settings: Settings, progress=None) -> RefreshResult:
    """Ingest every landed month for every source; `progress(source, outcome_or_None)` reports each step."""
    from ed_pipeline.definitions import defs
    from ed_pipeline.defs.pseudonymised import pseudonymised_key
    from ed_pipeline.defs.raw import raw_key
    from ed_pipeline.defs.validated import quarantine_key, validated_key

    months = settings.landed_months()
    if not months:
        raise FileNotFoundError(
            f"no extracts found under {settings.landing_dir}; run `ed-pipeline synth` first or drop files there"
        )
    provide_pseudo_key(settings)
    ensure_dagster_home(settings)
    job = defs.resolve_job_def("ingest")
    started = time.perf_counter()
    outcomes = []
    with dg.DagsterInstance.get() as instance:
        for source in SOURCES:
            if progress:
                progress(source.name, None)
            t0 = time.perf_counter()
            result = job.execute_in_process(
                instance=instance,
                asset_selection=[raw_key(source), validated_key(source), quarantine_key(source),
                                 pseudonymised_key(source)],
                tags={RANGE_START_TAG: months[0], RANGE_END_TAG: months[-1], "ed_pipeline/trigger": "refresh"},
                raise_on_error=False,
                # Dagster's own events stay in the instance (the UI shows them); the console gets our progress.
                run_config={"loggers": {"console": {"config": {"log_level": "WARNING"}}}},
            )
            failed = [
                f"{'/'.join(e.asset_key.path)}:{e.check_name}"
                for e in result.get_asset_check_evaluations()
                if not e.passed and e.severity == dg.AssetCheckSeverity.ERROR
            ]
            outcome = SourceOutcome(source.name, result.success, time.perf_counter() - t0, failed)
            outcomes.append(outcome)
            if progress:
                progress(source.name, outcome)
        outcomes.append(_run_whole_history(instance, defs, "analyse", progress))
    return RefreshResult(months, outcomes, time.perf_counter() - started)


def _run_whole_history(instance: dg.DagsterInstance, defs: dg.Definitions, job_name: str, progress) -> SourceOutcome:
    """Run the unpartitioned job (linking and everything after it) over whatever the warehouse holds."""
    if progress:
        progress(job_name, None)
    t0 = time.perf_counter()
    result = defs.resolve_job_def(job_name).execute_in_process(
        instance=instance, raise_on_error=False, tags={"ed_pipeline/trigger": "refresh"},
        run_config={"loggers": {"console": {"config": {"log_level": "WARNING"}}}},
    )
    failed = [f"{'/'.join(e.asset_key.path)}:{e.check_name}" for e in result.get_asset_check_evaluations()
              if not e.passed and e.severity == dg.AssetCheckSeverity.ERROR]
    outcome = SourceOutcome(job_name, result.success, time.perf_counter() - t0, failed)
    if progress:
        progress(job_name, outcome)
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
