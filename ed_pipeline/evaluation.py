"""`ed-pipeline evaluate`: the pipeline's results against the synthetic world's ground truth.

The only module outside synth that reads data/truth/: evaluation is its purpose.
"""

from __future__ import annotations

import fcntl
import os
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import fields
from datetime import date
from pathlib import Path
from types import NoneType
from typing import get_args, get_type_hints

import duckdb
import polars as pl
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from ed_pipeline.linkage import TokenColumns, evaluate_links
from ed_pipeline.linkage.tables import cohort_table, person_table, write_tables
from ed_pipeline.mart import MART, read_mart
from ed_pipeline.modelling import TrainingConfig, log_reference_metrics, train_and_evaluate
from ed_pipeline.modelling.metrics import ece, roc_auc
from ed_pipeline.resilience import copy_database
from ed_pipeline.settings import DBT_PROJECT_DIR, Settings, dbt_executable
from ed_pipeline.sources import SOURCES

# Goals of issue 3 on the default world.
LINKAGE_GOALS = {"f1": 0.99, "precision": 0.995}


def _probes(conn: duckdb.DuckDBPyConnection) -> pl.DataFrame:
    """Every pseudonymised record on its event date: where household assignment is judged."""
    # the sources' tables only: the schema holds the record of months delivered (landed_extract) too
    tables = [t for (t,) in conn.execute(
        "select table_name from information_schema.tables where table_schema = 'pseudonymised'").fetchall()
              if t in {s.name for s in SOURCES}]
    union = " union all ".join(f"select source, record_id, event_date as date from pseudonymised.{t}"
                               for t in tables)
    return conn.execute(f"select distinct * from ({union})").pl()


def evaluate_linkage(settings: Settings) -> dict[str, float | int]:
    """Pairwise precision, recall, F1 of person links and household assignment accuracy, against truth."""
    truth_dir = settings.truth_dir
    missing = [p for p in ("person_records.parquet", "household_membership.parquet") if not (truth_dir / p).exists()]
    if missing:
        raise FileNotFoundError(f"no ground truth ({', '.join(missing)}) in {truth_dir}: "
                                "evaluation needs a synthetic world made by `ed-pipeline synth`")
    if not settings.warehouse_path.exists():
        raise FileNotFoundError(f"no warehouse at {settings.warehouse_path}: run `ed-pipeline refresh` first")
    with duckdb.connect(str(settings.warehouse_path), read_only=True) as conn:
        predicted = conn.execute("select source, record_id, person_id from linked.person_link").pl()
        membership = conn.execute("select household_id, person_id, valid_from, valid_to "
                                  "from linked.household_membership").pl()
        probes = _probes(conn)
    return evaluate_links(
        predicted,
        pl.read_parquet(truth_dir / "person_records.parquet"),
        predicted_membership=membership,
        truth_membership=pl.read_parquet(truth_dir / "household_membership.parquet"),
        probes=probes,
    )


# --- the model against its references -------------------------------------------------------------------

# Goals of issue 4 on the default world.
MODEL_GOALS = {"max_auc_below_truelink": 0.01, "min_auc_above_baseline": 0.03, "max_test_ece": 0.02}


def latest_refresh(settings: Settings) -> tuple[str, dict[str, float]]:
    """The MLflow run id and the metrics of the latest refresh's model (`model.metrics`)."""
    if not settings.warehouse_path.exists():
        raise FileNotFoundError(f"no warehouse at {settings.warehouse_path}: run `ed-pipeline refresh` first")
    with duckdb.connect(str(settings.warehouse_path), read_only=True) as conn:
        exists = conn.execute("select count(*) from information_schema.tables "
                              "where table_schema = 'model' and table_name = 'metrics'").fetchone()[0]
        rows = conn.execute("select mlflow_run_id, metric, value from model.metrics").fetchall() if exists else []
    if not rows:
        raise FileNotFoundError(f"no trained model in {settings.warehouse_path} (model.metrics is missing or empty): "
                                "run `ed-pipeline refresh` first")
    run_ids = {r[0] for r in rows}
    if len(run_ids) != 1:
        raise ValueError(f"model.metrics holds several MLflow runs ({sorted(run_ids)}): expected one per refresh")
    return run_ids.pop(), {metric: value for _, metric, value in rows}


def training_config(params: dict[str, str]) -> TrainingConfig:
    """The TrainingConfig a refresh run logged as MLflow params (with its test and validation cohorts resolved),
    each value read back as its field's type (a setting whose default is None, set to 5, is logged as "5")."""
    types = get_type_hints(TrainingConfig)
    values = {}
    for f in fields(TrainingConfig):
        if f.name not in params:
            continue
        raw = params[f.name]
        kind = next((t for t in get_args(types[f.name]) if t is not NoneType), types[f.name])  # int | None: int
        values[f.name] = None if raw == "None" else (raw == "True") if kind is bool else kind(raw)
    return TrainingConfig(**values)


def oracle_metrics(children: pl.DataFrame, year: int, bins: int = 10) -> dict[str, float]:
    """AUC and ECE of the generator's true probability `p_not_gld` over the truth children assessed in `year`."""
    cohort = children.filter(pl.col("assessment_year") == year)
    y = cohort["not_gld"].cast(pl.Int64).to_numpy()
    p = cohort["p_not_gld"].to_numpy()
    return {"oracle_test_n": float(cohort.height), "oracle_test_roc_auc": roc_auc(y, p),
            "oracle_test_ece": ece(y, p, bins)}


def spells_by_address(membership: pl.DataFrame, addresses: pl.DataFrame) -> pl.DataFrame:
    """Truth membership split where the household moves: the truth keeps a household's id across its moves, the
    pipeline's households (and the `moves_24m` feature) are spells at one address, so each (household, address
    spell) becomes a household id of its own, `<household_id>.<n>`."""
    far = pl.lit(date(9999, 12, 31))
    spells = (addresses.select("household_id", pl.col("valid_from").cast(pl.Date).alias("a_from"),
                               pl.col("valid_to").cast(pl.Date).alias("a_to"))
              .sort("household_id", "a_from")
              .with_columns(pl.int_range(pl.len()).over("household_id").alias("n")))
    joined = membership.join(spells, on="household_id", how="inner").filter(
        (pl.col("valid_from") < pl.col("a_to").fill_null(far)) & (pl.col("a_from") < pl.col("valid_to").fill_null(far)))
    return joined.select(
        pl.format("{}.{}", pl.col("household_id"), pl.col("n")).alias("household_id"), "person_id",
        pl.max_horizontal("valid_from", "a_from").alias("valid_from"),
        pl.when(pl.col("valid_to").is_null()).then(pl.col("a_to"))
        .when(pl.col("a_to").is_null()).then(pl.col("valid_to"))
        .otherwise(pl.min_horizontal("valid_to", "a_to")).alias("valid_to"))


def true_linked_tables(tokens: pl.DataFrame, truth_records: pl.DataFrame, truth_membership: pl.DataFrame,
                       truth_addresses: pl.DataFrame | None = None) -> dict[str, pl.DataFrame]:
    """`linked.person_link`, `person`, `household_membership` and `cohort` as a perfect linkage would make them:
    the truth's person of every pseudonymised record, and the truth's household spells of the persons those
    records name (a resident no agency recorded is unknown to any linkage, so is left out), split by address
    spell when `truth_addresses` is given (see `spells_by_address`)."""
    spec = TokenColumns()
    present = tokens.select(pl.col(spec.source).alias("source"),
                            pl.col(spec.record_id).cast(pl.String).alias("record_id")).unique()
    links = (truth_records.select("source", pl.col("record_id").cast(pl.String),
                                  pl.col("person_id").cast(pl.String))
             .join(present, on=["source", "record_id"], how="semi")
             .unique(subset=["source", "record_id"], keep="first")
             .with_columns(pl.lit(1.0).alias("match_probability"))
             .sort("source", "record_id"))
    membership = (truth_membership.select(pl.col("household_id").cast(pl.String), pl.col("person_id").cast(pl.String),
                                          pl.col("valid_from").cast(pl.Date), pl.col("valid_to").cast(pl.Date))
                  .join(links.select("person_id").unique(), on="person_id", how="semi"))
    if truth_addresses is not None:
        membership = spells_by_address(
            membership, truth_addresses.with_columns(pl.col("household_id").cast(pl.String)))
    membership = membership.sort("household_id", "person_id", "valid_from")
    persons = person_table(links, tokens, spec)
    return {"person_link": links, "person": persons, "household_membership": membership,
            "cohort": cohort_table(persons, membership)}


TRUELINK_WAREHOUSE = "warehouse.duckdb"


@contextmanager
def evaluation_work_dir(settings: Settings) -> Iterator[Path]:
    """`settings.evaluation_dir`, where the true-linkage features are built, one evaluation at a time (a second
    fails at once, saying so). dbt's target stays there, so that the next evaluation's dbt parses partially (in a
    new directory each time it parsed the whole project); the warehouse's copy does not."""
    work_dir = settings.evaluation_dir
    work_dir.mkdir(parents=True, exist_ok=True)
    with (work_dir / "evaluate.lock").open("a") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise RuntimeError(f"another evaluation is building its features in {work_dir}: wait for it to finish "
                               "and run `ed-pipeline evaluate` again") from None
        try:
            yield work_dir
        finally:
            for name in (TRUELINK_WAREHOUSE, f"{TRUELINK_WAREHOUSE}.wal"):
                (work_dir / name).unlink(missing_ok=True)


def build_truelink_features(settings: Settings, work_dir: Path, dbt_command: str = "run") -> pl.DataFrame:
    """`features.child_features` built by dbt from the true linkage, in a copy of the warehouse under work_dir
    (the warehouse itself is only read). dbt's target is work_dir/target; its log goes with the process."""
    from ed_pipeline.linkage.tokens import read_tokens

    copy = work_dir / TRUELINK_WAREHOUSE
    copy_database(settings.warehouse_path, copy)
    truth_dir = settings.truth_dir
    with duckdb.connect(str(copy)) as conn:
        tokens = read_tokens(conn, TokenColumns())
        tables = true_linked_tables(tokens, pl.read_parquet(truth_dir / "person_records.parquet"),
                                    pl.read_parquet(truth_dir / "household_membership.parquet"),
                                    pl.read_parquet(truth_dir / "household_addresses.parquet"))
        write_tables(conn, tables, append=())
    env = {**os.environ, "ED_WAREHOUSE_DB": str(copy.resolve()), "DBT_SEND_ANONYMOUS_USAGE_STATS": "false"}
    with tempfile.TemporaryDirectory(prefix="ed_truelink_logs_") as logs:
        cmd = [dbt_executable(), dbt_command, "--select", f"+{MART}", "--project-dir", str(DBT_PROJECT_DIR),
               "--profiles-dir", str(DBT_PROJECT_DIR), "--target-path", str(work_dir / "target"),
               "--log-path", logs]
        done = subprocess.run(cmd, env=env, capture_output=True, text=True, cwd=DBT_PROJECT_DIR)
    if done.returncode != 0:
        raise RuntimeError(f"dbt {dbt_command} of the true-linkage features failed ({done.returncode}):\n"
                           + (done.stdout + done.stderr)[-4000:])
    with duckdb.connect(str(copy), read_only=True) as conn:
        return read_mart(conn)


def evaluate_model(settings: Settings, dbt_command: str = "run", log: bool = True) -> dict:
    """The latest refresh's model beside its two references on the same test cohort, logged to its MLflow run.

    `oracle_test_roc_auc`: the AUC of the generator's true probabilities (a ceiling no model reaches: part of
    the risk is recorded nowhere). `truelink_test_roc_auc`: the same training (same config, same cohorts) on
    features built by dbt from the true linkage instead of the pipeline's: what privacy-preserving linkage costs.
    Returns the model's, the references' and the baseline's figures, the gaps, and the goals with pass/fail.
    """
    truth_dir = settings.truth_dir
    needed = ("children.parquet", "person_records.parquet", "household_membership.parquet",
              "household_addresses.parquet")
    missing = [p for p in needed if not (truth_dir / p).exists()]
    if missing:
        raise FileNotFoundError(f"no ground truth ({', '.join(missing)}) in {truth_dir}: "
                                "evaluation needs a synthetic world made by `ed-pipeline synth`")
    run_id, refresh = latest_refresh(settings)
    client = MlflowClient(tracking_uri=settings.mlflow_tracking_uri)
    try:
        params = client.get_run(run_id).data.params
    except MlflowException as exc:  # the store moved, deleted, or another deployment's: said, not a traceback
        raise FileNotFoundError(f"the refresh's MLflow run {run_id} is not in {settings.mlflow_tracking_uri} "
                                f"({exc.message}): run `ed-pipeline refresh` again, or set MLFLOW_TRACKING_URI to "
                                "the store it was logged to") from exc
    config = training_config(params)
    if config.test_cohort is None:
        raise ValueError(f"MLflow run {run_id} records no test cohort")
    timings = {}

    t0 = time.perf_counter()
    oracle = oracle_metrics(pl.read_parquet(truth_dir / "children.parquet"), config.test_cohort, config.ece_bins)
    with evaluation_work_dir(settings) as work_dir:
        features = build_truelink_features(settings, work_dir, dbt_command)
    timings["truelink_features_seconds"] = time.perf_counter() - t0
    t1 = time.perf_counter()
    truelink = train_and_evaluate(features, config)
    timings["truelink_training_seconds"] = time.perf_counter() - t1
    reference = {
        **oracle,
        "truelink_test_n": float(truelink.metrics["test_n"]),
        "truelink_test_roc_auc": float(truelink.metrics["test_roc_auc"]),
        "truelink_test_ece": float(truelink.metrics["test_ece"]),
        "truelink_baseline_test_roc_auc": float(truelink.metrics["baseline_test_roc_auc"]),
        "auc_below_truelink": float(truelink.metrics["test_roc_auc"] - refresh["test_roc_auc"]),
        "auc_below_oracle": float(oracle["oracle_test_roc_auc"] - refresh["test_roc_auc"]),
    }
    if log:
        log_reference_metrics(run_id, reference, settings.mlflow_tracking_uri)
    above_baseline = refresh["test_roc_auc"] - refresh["baseline_test_roc_auc"]
    goals = {
        "auc_below_truelink": (reference["auc_below_truelink"], f"<= {MODEL_GOALS['max_auc_below_truelink']}",
                               reference["auc_below_truelink"] <= MODEL_GOALS["max_auc_below_truelink"]),
        "auc_above_baseline": (above_baseline, f">= {MODEL_GOALS['min_auc_above_baseline']}",
                               above_baseline >= MODEL_GOALS["min_auc_above_baseline"]),
        "test_ece": (refresh["test_ece"], f"<= {MODEL_GOALS['max_test_ece']}",
                     refresh["test_ece"] <= MODEL_GOALS["max_test_ece"]),
    }
    return {
        "mlflow_run_id": run_id, "test_cohort": config.test_cohort,
        "test_n": refresh.get("test_n"), "test_roc_auc": refresh["test_roc_auc"], "test_ece": refresh["test_ece"],
        "baseline_test_roc_auc": refresh["baseline_test_roc_auc"], "auc_above_baseline": above_baseline,
        **reference,
        "goals": {name: {"value": v, "goal": g, "passed": bool(ok)} for name, (v, g, ok) in goals.items()},
        "logged": log, **timings,
    }
