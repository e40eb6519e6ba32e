"""Linkage past one machine: the same trained model, scored and clustered by Splink's Spark backend.

The model (`LinkageModel.settings`: comparisons, m and u, blocking rules; its
threshold) is trained once, on DuckDB, and stored as JSON in DuckDB SQL. This
module gives exactly those settings to a Splink `Linker` over `SparkAPI` and
reproduces `link.link`'s clustering (edges at the threshold, row-group members
kept apart, connected components, cannot-link repair), so a Spark run and a
DuckDB run over the same pseudonymised records give the same persons.

The only dialect work is here, in `to_spark_sql`: every SQL condition is
transpiled from DuckDB to Spark SQL with sqlglot (quoted identifiers,
`::INTEGER` casts; `bit_count` and `&` exist in both), decimal literals become
doubles (DuckDB divides to DOUBLE, Spark would keep a DECIMAL, so a Dice
threshold is compared in the same arithmetic), and DuckDB's
`jaro_winkler_similarity` becomes the `jaro_winkler` UDF of the jar Splink
ships (used only by the clear-text benchmark model). Records go to Spark with
hashed tokens and Bloom words as signed 64-bit integers (Spark has no unsigned
type; equality and `bit_count(a & b)` do not care about the sign). The records may be a Spark DataFrame that
never reaches the driver: they are then prepared on the executors (`prepare_on_spark`).

    spark = spark_session("local[2]")                 # or a cluster's session (spark.jars: similarity_jar_location())
    persons = link_spark(tokens, model, spark)        # source, record_id, person_id (as link_people)
    persons = link_spark(spark.read.parquet(path), model, spark)   # the same, records read by Spark
    result = link_on_spark(tokens, model, spark, previous=ids, retired=retired)   # a LinkResult, as link.link's

`link_people_and_households` links every record here, instead of on DuckDB, when `ED_LINKAGE_BACKEND=spark`
(`linkage_backend`); a month's incremental link stays on DuckDB.

pyspark is imported lazily: nothing else in the package needs it.
"""

from __future__ import annotations

import copy
import importlib.util
import logging
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import polars as pl
import sqlglot
from sqlglot import exp

from ed_pipeline.linkage.clustering import cannot_link_sql, duplicate_like_sql, repair_clusters
from ed_pipeline.linkage.engine import SPLINK_LOG_LEVEL, tf_columns, tf_sql
from ed_pipeline.linkage.link import (
    LinkResult,
    _in_key_order,
    best_probability_sql,
    edges_sql,
    link_result,
    pairs_sql,
    predict_settings,
)
from ed_pipeline.linkage.model import LinkageModel, train_model
from ed_pipeline.linkage.spec import TokenColumns

if TYPE_CHECKING:
    from pyspark.sql import DataFrame as SparkDataFrame
    from pyspark.sql import SparkSession

logger = logging.getLogger(__name__)

SOURCE_DIALECT = "duckdb"  # the dialect every level, rule and helper of the linkage package is written in
# DuckDB functions with another name (or only a UDF) on Spark; sqlglot does the rest
SPARK_FUNCTIONS = {"jaro_winkler_similarity": "jaro_winkler", "jaro_similarity": "jaro_sim"}


# ---------------------------------------------------------------------------------------------- dialect

def _rewrite_for_spark(node: exp.Expression) -> exp.Expression:
    if isinstance(node, exp.Literal) and not node.is_string and not node.is_int:
        # 0.7 is a DECIMAL in both engines, but DuckDB's DECIMAL / INTEGER is DOUBLE and Spark's is DECIMAL: doubles
        # on Spark make `2.0 * common / (bits_l + bits_r) >= 0.7` the same floating-point sum as on DuckDB.
        return exp.Cast(this=node.copy(), to=exp.DataType.build("DOUBLE"))
    if isinstance(node, exp.JarowinklerSimilarity):
        return exp.Anonymous(this=SPARK_FUNCTIONS["jaro_winkler_similarity"],
                             expressions=[node.this.copy(), node.expression.copy()])
    if isinstance(node, exp.Anonymous) and str(node.this).lower() in SPARK_FUNCTIONS:
        return exp.Anonymous(this=SPARK_FUNCTIONS[str(node.this).lower()], expressions=[e.copy() for e in
                                                                                       node.expressions])
    return node


def to_spark_sql(sql: str) -> str:
    """One SQL expression or statement of the linkage package (DuckDB dialect) in Spark SQL."""
    if sql.strip().upper() == "ELSE":
        return sql
    tree = sqlglot.parse_one(sql, read=SOURCE_DIALECT).transform(_rewrite_for_spark)
    return tree.sql(dialect="spark")


def spark_settings(settings: dict[str, Any]) -> dict[str, Any]:
    """A trained model's Splink settings for a Spark linker: the same comparisons, levels, m, u, term-frequency
    columns and blocking rules; only the SQL text is Spark's."""
    out = copy.deepcopy(settings)
    out.pop("sql_dialect", None)
    for comp in out["comparisons"]:
        for lv in comp["comparison_levels"]:
            lv["sql_condition"] = to_spark_sql(lv["sql_condition"])
    rules = []
    for br in out["blocking_rules_to_generate_predictions"]:
        sql = br["blocking_rule"] if isinstance(br, dict) else br
        dialect = br.get("sql_dialect", SOURCE_DIALECT) if isinstance(br, dict) else SOURCE_DIALECT
        sql = to_spark_sql(sql) if dialect == SOURCE_DIALECT else sql
        rules.append({**(br if isinstance(br, dict) else {}), "blocking_rule": sql, "sql_dialect": "spark"})
    out["blocking_rules_to_generate_predictions"] = rules
    return out


# ---------------------------------------------------------------------------------------------- session and data

# For small data on one machine (tests, demos), where fixed costs dominate: no adaptive re-planning, no whole-stage
# code generation, and a driver JVM that JIT-compiles with C1 only (Splink's big CASE expressions otherwise keep the
# C2 compiler busy for a minute). Measured on a 2,922-record world, first link on a fresh JVM: 112 s with
# Spark's defaults, 46 s with these (a loaded 2-core machine). Never for a cluster.
SMALL_DATA_CONF: dict[str, str] = {
    "spark.sql.adaptive.enabled": "false",
    "spark.sql.codegen.wholeStage": "false",
    "spark.driver.extraJavaOptions": "-XX:TieredStopAtLevel=1 -XX:+UseSerialGC",
}
# Spark's own logging on a local master: errors only (its start-up lines would print into the refresh's terminal).
LOCAL_LOG4J_CONFIG = Path(__file__).with_name("spark-log4j2.properties")
# Checkpoint directories `spark_session` made itself (none given): `stop_spark` removes them.
_made_checkpoint_dirs: set[str] = set()


def spark_session(master: str = "local[2]", *, shuffle_partitions: int = 4, driver_memory: str = "2g",
                  app_name: str = "ed_pipeline-linkage", conf: dict[str, str] | None = None,
                  checkpoint_dir: str | None = None) -> SparkSession:
    """A Spark session with Splink's similarity UDF jar (jaro_winkler &c.). `local[n]` for one machine and tests;
    on a cluster pass its master (or build the session there and add `similarity_jar_location()` to spark.jars).
    `checkpoint_dir` holds Splink's parquet checkpoints (object storage on a cluster; a temporary folder if
    not given)."""
    from pyspark.sql import SparkSession
    from splink.backends.spark import similarity_jar_location

    builder = (
        SparkSession.builder.master(master).appName(app_name)
        .config("spark.jars", similarity_jar_location())
        .config("spark.sql.shuffle.partitions", str(shuffle_partitions))
        .config("spark.default.parallelism", str(shuffle_partitions))
        .config("spark.driver.memory", driver_memory)
        .config("spark.ui.enabled", "false")
        .config("spark.ui.showConsoleProgress", "false")
        .config("spark.sql.execution.arrow.pyspark.enabled", "true")
        .config("spark.sql.adaptive.enabled", "true")
    )
    conf = dict(conf or {})
    if master.startswith("local"):  # one machine: never depend on the host name resolving
        builder = builder.config("spark.driver.host", "127.0.0.1").config("spark.driver.bindAddress", "127.0.0.1")
        # the Python workers (`prepare_on_spark`) in this interpreter's environment, not the first `python3` on
        # the PATH, which may lack polars and ed_pipeline (PySpark reads only the variable)
        os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
        java_options = conf.get("spark.driver.extraJavaOptions", "")
        conf["spark.driver.extraJavaOptions"] = \
            f"{java_options} -Dlog4j2.configurationFile={LOCAL_LOG4J_CONFIG.as_uri()}".strip()
    for k, v in conf.items():
        builder = builder.config(k, v)
    spark = builder.getOrCreate()
    spark.sparkContext.setLogLevel("ERROR")
    if checkpoint_dir or spark.sparkContext.getCheckpointDir() is None:
        if not checkpoint_dir:
            checkpoint_dir = tempfile.mkdtemp(prefix="ed_spark_checkpoints_")
            _made_checkpoint_dirs.add(checkpoint_dir)
        spark.sparkContext.setCheckpointDir(checkpoint_dir)
    return spark


def stop_spark(spark: SparkSession) -> None:
    """Stop the session and, where this process started the JVM (local mode), end the JVM too: its memory is
    given back now instead of when the interpreter exits (the test suite goes on for minutes). A later
    `spark_session` starts a fresh JVM."""
    from pyspark import SparkContext

    spark.stop()
    while _made_checkpoint_dirs:  # they hold the records' tokens
        shutil.rmtree(_made_checkpoint_dirs.pop(), ignore_errors=True)
    gateway = SparkContext._gateway
    proc = getattr(gateway, "proc", None)
    if gateway is not None:
        gateway.shutdown()
        SparkContext._gateway = None
        SparkContext._jvm = None
    if proc is not None:  # the JVM ends when its standard input closes
        if proc.stdin:
            proc.stdin.close()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()


def signed(df: pl.DataFrame) -> pl.DataFrame:
    """Unsigned integers (hashed tokens, Bloom words) reinterpreted as signed 64-bit integers, the same bits:
    Spark has no unsigned type."""
    casts = []
    for name, dtype in df.schema.items():
        if dtype == pl.UInt64():
            casts.append(pl.col(name).reinterpret(signed=True).alias(name))
        elif dtype in (pl.UInt32(), pl.UInt16(), pl.UInt8()):
            casts.append(pl.col(name).cast(pl.Int64))
    return df.with_columns(casts) if casts else df


def spark_frame(spark: SparkSession, df: pl.DataFrame) -> SparkDataFrame:
    """A polars frame as a Spark DataFrame (through Arrow), its unsigned integers `signed`."""
    return spark.createDataFrame(signed(df).to_arrow())


def prepare_on_spark(tokens: SparkDataFrame, model: LinkageModel) -> SparkDataFrame:
    """`model.prepare(_in_key_order(tokens))` on the executors, for token frames that are not on the driver (read
    by Spark from Parquet or Iceberg): the same internal columns, hashed tokens and Bloom words (`signed`), and
    the same `unique_id`s, numbered in key order (source, record_id as text; rows of one key in the order they
    are read). Each partition of the sorted records is prepared batch by batch (`mapInArrow`) by `model.prepare`
    itself, its ids from the count of the partitions before it. The executors' Python needs
    ed_pipeline installed, as the driver's."""
    from pyspark.sql import functions as F

    spec = model.spec
    schema = spark_frame(tokens.sparkSession, model.prepare(_to_polars(tokens.limit(0)))).schema
    # sorted once and checkpointed, so that the partitions counted are the partitions numbered: a range
    # partitioning is sampled again by each action that recomputes it
    ordered = (tokens.withColumn("_ed_read", F.monotonically_increasing_id())
               .orderBy(spec.source, F.col(spec.record_id).cast("string"), "_ed_read")
               .withColumn("_ed_part", F.spark_partition_id()).checkpoint())
    counts = dict(ordered.groupBy("_ed_part").count().collect())
    starts, total = {}, 0
    for part in sorted(counts):
        starts[part], total = total, total + counts[part]

    def prepare_batches(batches):
        import pyarrow as pa

        seen = None
        for batch in batches:
            frame = pl.from_arrow(pa.Table.from_batches([batch]))
            if frame.height == 0:
                continue
            if seen is None:  # one partition per call: its first row's number
                seen = starts[frame["_ed_part"][0]]
            prepared = signed(model.prepare(frame.drop("_ed_read", "_ed_part"), id_offset=seen))
            seen += frame.height
            yield from prepared.to_arrow().to_batches()

    return ordered.mapInArrow(prepare_batches, schema)


def _to_polars(sdf: SparkDataFrame) -> pl.DataFrame:
    return pl.from_arrow(sdf.toArrow())  # type: ignore[return-value]


# ---------------------------------------------------------------------------------------------- linking

def _double_literal(node: exp.Expression) -> exp.Expression:
    """Splink's `customspark` edit: CAST(0.25 AS DOUBLE) -> 0.25D (a DOUBLE literal, never a DECIMAL)."""
    if (isinstance(node, (exp.Cast, exp.TryCast)) and node.to.is_type("double") and isinstance(node.this, exp.Literal)
            and not node.this.is_string):
        return exp.Literal.number(f"{node.this.name}D")
    return node


def spark_api(spark: SparkSession, **kwargs: Any):
    """Splink's SparkAPI, whose SQL is generated with sqlglot's stock Spark dialect.

    Splink 5.0.0 generates Spark SQL with its own dialect, `customspark`, a subclass of sqlglot's Spark
    generator; with sqlglot's compiled build (sqlglotc, which dagster-dbt installs through sqlglot[rs]) a Python
    class cannot subclass the compiled one ("TypeError: interpreted classes cannot inherit from compiled",
    tobymao/sqlglot#7700). Its only edit (double literals) is made here as a tree transform instead."""
    from splink.backends.spark import SparkAPI

    class _SparkAPI(SparkAPI):
        def _setup_for_execute_sql(self, sql: str, physical_name: str) -> str:
            tree = sqlglot.parse_one(sql, read="spark").transform(_double_literal)
            return tree.sql(dialect="spark", pretty=True)

    return _SparkAPI(spark_session=spark, **kwargs)


class SparkLinkage:
    """One Spark session with Splink's SparkAPI over it: the Spark counterpart of `engine.Session`."""

    def __init__(self, spark: SparkSession, *, break_lineage_method: str = "parquet",
                 num_partitions_on_repartition: int | None = None):
        self.spark = spark
        self.db_api = spark_api(spark, break_lineage_method=break_lineage_method,
                                num_partitions_on_repartition=num_partitions_on_repartition)
        self._n = 0

    def register(self, frame: SparkDataFrame, stem: str = "records"):
        """`frame` as a temporary view of its own, registered with Splink; returns the SplinkDataFrame."""
        self._n += 1
        name = f"ed_{stem}_{self._n}"
        frame.createOrReplaceTempView(name)
        return self.db_api.register(name, table_name=f"{stem}_{self._n}")

    def sql(self, duckdb_sql: str) -> SparkDataFrame:
        return self.spark.sql(to_spark_sql(duckdb_sql))

    def view(self, name: str, duckdb_sql: str) -> str:
        self.sql(duckdb_sql).persist().createOrReplaceTempView(name)
        return name

    def linker(self, sdf, settings: dict[str, Any]):
        """A Splink linker over the registered records `sdf`, with the term-frequency lookups of `tf_frame`
        computed on Spark over them (not collected to the driver)."""
        from splink import Linker

        linker = Linker(sdf, spark_settings(settings), log_level=SPLINK_LOG_LEVEL)
        columns = self.spark.table(sdf.physical_name).columns
        for col in tf_columns(settings):
            tf = self.register(self.sql(tf_sql(sdf.physical_name, col, columns)), f"tf_{col}")
            linker.table_management.register_term_frequency_lookup(tf, col)
        return linker


MATCH_WORDS = ("match", "same", "yes", "y", "true")  # a reviewer's decision that says "one person" (as link.py)


def decisions_frame(decisions: pl.DataFrame | None, records: pl.DataFrame) -> pl.DataFrame | None:
    """Reviewers' decisions (source_l, record_id_l, source_r, record_id_r, decision) as unique-id pairs
    (u < v, is_match) over the records at hand, as link._load_decisions makes them; None when there are none."""
    if decisions is None or decisions.height == 0:
        return None
    cols = ["source_l", "record_id_l", "source_r", "record_id_r", "decision"]
    d = decisions.select(cols).cast(dict.fromkeys(cols, pl.String)).with_columns(
        is_match=pl.col("decision").str.to_lowercase().is_in(list(MATCH_WORDS)))
    ids = records.select("source", "record_id", "unique_id")
    d = (d.join(ids.rename({"source": "source_l", "record_id": "record_id_l", "unique_id": "a"}),
                on=["source_l", "record_id_l"])
         .join(ids.rename({"source": "source_r", "record_id": "record_id_r", "unique_id": "b"}),
               on=["source_r", "record_id_r"])
         .filter(pl.col("a") != pl.col("b")))
    return d.select(pl.min_horizontal("a", "b").alias("u"), pl.max_horizontal("a", "b").alias("v"),
                    "is_match").unique()


def cluster_spark(sl: SparkLinkage, records: str, edges: str, model: LinkageModel,
                  decisions: str | None = None) -> tuple[pl.DataFrame, int]:
    """clustering.cluster on Spark: connected components (Splink's, on Spark), then the few components holding a
    cannot-link pair are collected and re-clustered greedily, exactly as on DuckDB. unique_id, cluster_id."""
    from splink.clustering import cluster_pairwise_predictions_at_threshold

    cc = cluster_pairwise_predictions_at_threshold(
        records, edges, sl.db_api, node_id_column_name="unique_id",
        edge_id_column_name_left="unique_id_l", edge_id_column_name_right="unique_id_r",
    )
    sl.view("ed_cc", f"SELECT unique_id, min(unique_id) OVER (PARTITION BY cluster_id) AS cluster_id "
                     f"FROM {cc.physical_name}")
    clusters = _to_polars(sl.sql("SELECT unique_id, cluster_id FROM ed_cc")).cast(
        {"unique_id": pl.Int64, "cluster_id": pl.Int64})
    if not model.separate_group_members and not decisions:
        return clusters, 0
    dup = duplicate_like_sql(model.sql_context, model.fields) if model.separate_group_members else "TRUE"
    conflicts = _to_polars(sl.sql(f"""
        SELECT c.cluster_id, p.u, p.v FROM ({cannot_link_sql(records, dup, decisions)}) p
        JOIN ed_cc c ON c.unique_id = p.u
        JOIN ed_cc c2 ON c2.unique_id = p.v AND c2.cluster_id = c.cluster_id
    """))
    if conflicts.height == 0:
        return clusters, 0
    bad = conflicts["cluster_id"].unique()
    sl.spark.createDataFrame(pl.DataFrame({"cluster_id": bad}).to_arrow()).createOrReplaceTempView("ed_bad")
    sub_edges = _to_polars(sl.sql(f"""
        SELECT e.unique_id_l, e.unique_id_r, e.match_probability, c.cluster_id
        FROM {edges} e JOIN ed_cc c ON c.unique_id = e.unique_id_l
        WHERE c.cluster_id IN (SELECT cluster_id FROM ed_bad)
    """)).cast({"unique_id_l": pl.Int64, "unique_id_r": pl.Int64, "match_probability": pl.Float64})
    return repair_clusters(clusters, conflicts, sub_edges)


def link_on_spark(tokens: pl.DataFrame | SparkDataFrame, model: LinkageModel, spark: SparkSession, *,
                  previous: pl.DataFrame | None = None, retired: set[str] | None = None,
                  decisions: pl.DataFrame | None = None, keep_pairs: bool = True,
                  break_lineage_method: str = "parquet") -> LinkResult:
    """`link.link(tokens, model, ...)` on Spark: the same persons, ids, best match probabilities and scored pairs
    (with `keep_pairs`, for clerical review), as a `LinkResult`. `tokens` is a polars frame, prepared on the
    driver, or a Spark DataFrame (records read by Spark, never on the driver: they are prepared on the executors,
    `prepare_on_spark`, and only each record's key, id and group are collected). `previous` carries ids over and
    `retired` ids are never issued again (assign_stable_ids); `decisions` are reviewers' verdicts
    (review.DECISION columns), must-link / cannot-link."""
    timings: dict[str, float] = {}
    t0 = t = time.perf_counter()
    sl = SparkLinkage(spark, break_lineage_method=break_lineage_method)
    if isinstance(tokens, pl.DataFrame):
        # already on the driver: prepared there, as link does (through Spark's Python workers the link of 445k
        # records took 156 s instead of 121 on 2 cores)
        df = model.prepare(_in_key_order(tokens, model.spec))  # ids in key order break ties as link's do
        prepared = spark_frame(spark, df)
        keys = df.select("unique_id", "source", "record_id", "group_ref")
    else:
        prepared = prepare_on_spark(tokens, model).persist()  # every query of the link reads it
        keys = _to_polars(prepared.select("unique_id", "source", "record_id", "group_ref"))  # all the driver holds
    sdf = sl.register(prepared)
    records = sdf.physical_name
    linker = sl.linker(sdf, predict_settings(model, keep_pairs))
    timings["load"] = time.perf_counter() - t
    t = time.perf_counter()
    floor = min(model.review_band[0], model.threshold)
    predictions = linker.inference.predict(threshold_match_probability=floor, warning_mode="never")
    decided = decisions_frame(decisions, keys)
    decisions_view = None
    if decided is not None:
        decisions_view = "ed_decisions"
        sl.spark.createDataFrame(decided.to_arrow()).createOrReplaceTempView(decisions_view)
    edges = sl.view("ed_edges", edges_sql(predictions.physical_name, records, model, decisions_view))
    n_edges = sl.spark.table(edges).count()
    timings["predict"] = time.perf_counter() - t
    t = time.perf_counter()
    clusters, repaired = cluster_spark(sl, records, edges, model, decisions_view)
    sl.spark.createDataFrame(clusters.to_arrow()).createOrReplaceTempView("ed_best_cc")
    best = _to_polars(sl.sql(best_probability_sql(edges, "ed_best_cc"))).cast(
        {"unique_id": pl.Int64, "match_probability": pl.Float64})
    timings["cluster"] = time.perf_counter() - t
    pairs = pl.DataFrame()
    if keep_pairs:
        columns = sl.spark.table(predictions.physical_name).columns
        pairs = _to_polars(sl.sql(pairs_sql(predictions.physical_name, records, columns)))
    result = link_result(keys, clusters, best, pairs, model, previous=previous, retired=retired, timings=timings,
                         started=t0, edges=n_edges, repaired=repaired)
    logger.info("linked %d records on Spark: %d edges, %d components repaired, %s", keys.height, n_edges, repaired,
                {k: round(v, 2) for k, v in timings.items()})
    for name in ("ed_cc", "ed_edges", "ed_bad", "ed_decisions", "ed_best_cc"):
        sl.spark.catalog.dropTempView(name)
    prepared.unpersist()  # (a no-op for a frame from the driver, never persisted)
    return result


def link_every_record_on_spark(tokens: pl.DataFrame, model: LinkageModel | None, master: str, *,
                               spec: TokenColumns | None = None, previous: pl.DataFrame | None = None,
                               retired: set[str] | None = None,
                               decisions: pl.DataFrame | None = None) -> LinkResult:
    """What `link.link(tokens, model, ...)` does, with the pairs scored and clustered on Spark at `master` (the
    session this process already has, if any): a model is trained first, on DuckDB, if none is given. For
    `ED_LINKAGE_BACKEND=spark`; a clear error if PySpark, or Java for a local master, is missing."""
    if importlib.util.find_spec("pyspark") is None:
        raise RuntimeError("ED_LINKAGE_BACKEND=spark needs PySpark: install ed-pipeline with its `spark` extra "
                           "(uv sync --extra spark; pip install 'ed-pipeline[spark]'), or unset ED_LINKAGE_BACKEND")
    if master.startswith("local") and not (shutil.which("java") or os.environ.get("JAVA_HOME")):
        raise RuntimeError(f"ED_LINKAGE_BACKEND=spark on {master} needs a Java 17+ runtime on this machine "
                           "(apt-get install openjdk-17-jre-headless), or ED_SPARK_MASTER set to a cluster")
    timings: dict[str, float] = {}
    if model is None:
        t = time.perf_counter()
        model = train_model(tokens, spec=spec)
        timings["train"] = time.perf_counter() - t
    # Splink's checkpoints hold the records' tokens: on this machine, in a directory of the link's own (under
    # ED_LINKAGE_TEMP_DIR, as DuckDB's spill), removed after; a cluster's come from its own settings
    with tempfile.TemporaryDirectory(prefix="ed_spark_checkpoints_", dir=os.environ.get("ED_LINKAGE_TEMP_DIR")) as tmp:
        spark = spark_session(master, checkpoint_dir=tmp if master.startswith("local") else None)
        result = link_on_spark(tokens, model, spark, previous=previous, retired=retired, decisions=decisions)
    if timings:  # as link.link's: the total counts the training
        result.timings.update(timings, total=result.timings["total"] + timings["train"])
    return result


def link_spark(tokens: pl.DataFrame | SparkDataFrame, model: LinkageModel, spark: SparkSession, *,
               previous: pl.DataFrame | None = None, decisions: pl.DataFrame | None = None,
               break_lineage_method: str = "parquet", timings: dict[str, float] | None = None) -> pl.DataFrame:
    """link_people with a trained model, on Spark: source, record_id, person_id (one row per record), the same
    persons as `link.link(tokens, model, previous=..., decisions=...)` on DuckDB (`link_on_spark`, without the
    scored pairs). `timings` is filled with the link's."""
    result = link_on_spark(tokens, model, spark, previous=previous, decisions=decisions, keep_pairs=False,
                           break_lineage_method=break_lineage_method)
    if timings is not None:
        timings.update(result.timings)
    return result.links.select("source", "record_id", "person_id")
