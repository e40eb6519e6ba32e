"""The trained linkage model, unchanged, on Splink's Spark backend (PySpark in local mode): the same persons as
DuckDB gives on the same pseudonymised records.

One JVM for the module (local[2], two shuffle partitions, the small-data settings of `spark.SMALL_DATA_CONF`);
the world is small (~2,300 records) so the whole module stays well under a minute and a half with the JVM start.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys

import polars as pl
import pytest
import sqlglot

from ed_pipeline.linkage import evaluate_links, link, train_model
from ed_pipeline.linkage.link import _in_key_order
from ed_pipeline.linkage.spark import (
    _to_polars,
    link_spark,
    prepare_on_spark,
    spark_frame,
    spark_settings,
    to_spark_sql,
)
from ed_pipeline_tests.linkage.test_linkage import FAST
from ed_pipeline_tests.linkage.world import make_tokens, make_world
from ed_pipeline_tests.test_benchmarks import BENCHMARK, _load

BENCHMARKS = BENCHMARK.parent


@pytest.fixture(scope="module")
def world():
    records, truth, _ = make_world(households=400, seed=23, months=("2017-01", "2017-02", "2017-03"))
    return make_tokens(records), truth


@pytest.fixture(scope="module")
def model(world):
    return train_model(world[0], config=FAST)


@pytest.fixture(scope="module")
def spark(tmp_path_factory):
    from ed_pipeline.linkage.spark import SMALL_DATA_CONF, spark_session, stop_spark

    assert shutil.which("java") or os.environ.get("JAVA_HOME"), \
        "PySpark needs a Java 17+ runtime: apt-get install openjdk-17-jre-headless (CI's .ci/run does)"
    session = spark_session("local[2]", shuffle_partitions=2, conf=SMALL_DATA_CONF,
                            checkpoint_dir=str(tmp_path_factory.mktemp("spark_checkpoints")))
    yield session
    stop_spark(session)  # and its JVM: the rest of the suite has the memory back


def test_settings_for_spark_are_the_models_settings_in_spark_sql(model):
    settings = model.settings
    converted = spark_settings(settings)
    assert settings == model.settings  # the model itself is untouched (DuckDB SQL)
    for comp, comp_sp in zip(settings["comparisons"], converted["comparisons"], strict=True):
        assert comp["output_column_name"] == comp_sp["output_column_name"]
        for lv, lv_sp in zip(comp["comparison_levels"], comp_sp["comparison_levels"], strict=True):
            assert {k: v for k, v in lv.items() if k != "sql_condition"} == \
                {k: v for k, v in lv_sp.items() if k != "sql_condition"}
            if lv["sql_condition"] != "ELSE":
                assert '"' not in lv_sp["sql_condition"]  # double quotes are strings in Spark SQL
                sqlglot.parse_one(lv_sp["sql_condition"], read="spark")
    assert len(converted["blocking_rules_to_generate_predictions"]) == \
        len(settings["blocking_rules_to_generate_predictions"])
    assert all(br["sql_dialect"] == "spark" for br in converted["blocking_rules_to_generate_predictions"])
    dice = next(lv["sql_condition"] for c in converted["comparisons"] for lv in c["comparison_levels"]
                if "BIT_COUNT" in lv["sql_condition"])
    assert "CAST(2.0 AS DOUBLE)" in dice  # DuckDB's DECIMAL / INTEGER is a DOUBLE: the same arithmetic
    # the clear-text benchmark model's Jaro-Winkler is the UDF of Splink's jar on Spark
    assert to_spark_sql('jaro_winkler_similarity("tok_given_name_l", "tok_given_name_r") >= 0.9') == \
        "JARO_WINKLER(`tok_given_name_l`, `tok_given_name_r`) >= CAST(0.9 AS DOUBLE)"


def _decisions(linked: pl.DataFrame) -> tuple[pl.DataFrame, tuple, tuple]:
    """Two reviewers' decisions against the model: split two records of one person, join two lone records."""
    key = ["source", "record_id"]
    sizes = linked.group_by("person_id").len()
    pair = linked.join(sizes.filter(pl.col("len") >= 2), on="person_id").sort(key).head(2)
    singles = linked.join(sizes.filter(pl.col("len") == 1), on="person_id").sort(key).head(2)
    assert pair["person_id"].n_unique() == 1 and singles.height == 2
    (a, b), (c, d) = pair.select(key).rows(), singles.select(key).rows()
    decisions = pl.DataFrame({"source_l": [a[0], c[0]], "record_id_l": [a[1], c[1]], "source_r": [b[0], d[0]],
                              "record_id_r": [b[1], d[1]], "decision": ["non_match", "match"]})
    return decisions, (a, b), (c, d)


def _parquet_parts(frame: pl.DataFrame, folder, parts: int = 3):
    """`frame` as `parts` Parquet files in `folder`, as an extract sits in object storage (Spark packs small files
    into fewer partitions, each file's rows kept in order)."""
    folder.mkdir()
    size = -(-frame.height // parts)
    for i in range(parts):
        frame.slice(i * size, size).write_parquet(folder / f"part-{i}.parquet")
    return folder


def test_records_prepared_on_the_executors_are_the_drivers(world, model, spark, tmp_path):
    """`prepare_on_spark` over records Spark reads itself (three files, read as two partitions; two range
    partitions once sorted): every column and every id as `model.prepare` gives on the driver, ids in key order.
    A record re-sent in the same extract (one key twice) keeps the order it was read in."""
    tokens = world[0]
    again = tokens.head(1).with_columns(pl.lit("2017-04").alias("extract_month"))
    tokens = pl.concat([tokens.head(1), again, tokens.slice(1)])
    folder = _parquet_parts(tokens, tmp_path / "tokens")
    read = spark.read.parquet(str(folder))
    assert read.rdd.getNumPartitions() > 1
    on_driver = spark_frame(spark, model.prepare(_in_key_order(tokens, model.spec)))
    on_executors = prepare_on_spark(read, model)
    assert on_executors.schema == on_driver.schema
    got, want = (_to_polars(f).sort("unique_id") for f in (on_executors, on_driver))
    assert got["unique_id"].to_list() == list(range(tokens.height))
    assert got.equals(want)
    first = got.filter(pl.col("record_id") == tokens["record_id"][0])
    assert first["extract_month"].to_list() == [tokens["extract_month"][0], "2017-04"]


def test_spark_links_the_same_persons_as_duckdb(world, model, spark, tmp_path):
    """One Spark run (the JVM's first is the slow one) over records Spark reads itself, from Parquet (as from
    object storage; never on the driver): the model's own clusters plus two reviewers' decisions, which touch two
    pairs; every other person is the model's, and all must be DuckDB's."""
    tokens, truth = world
    key = ["source", "record_id"]
    plain = link(tokens, model, keep_pairs=False).person_links().select(*key, "person_id")
    decisions, split, joined = _decisions(plain)
    on_duckdb = link(tokens, model, keep_pairs=False, decisions=decisions).person_links().select(*key, "person_id")
    timings: dict[str, float] = {}
    read = spark.read.parquet(str(_parquet_parts(tokens, tmp_path / "tokens")))
    on_spark = link_spark(read, model, spark, decisions=decisions, timings=timings)
    assert on_spark.height == tokens.height
    # same clusters, hence the same (deterministic) person ids
    assert on_spark.sort(key).equals(on_duckdb.sort(key)), "Spark and DuckDB disagree on the persons"
    pid = {(s, r): p for s, r, p in on_spark.iter_rows()}
    assert pid[split[0]] != pid[split[1]] and pid[joined[0]] == pid[joined[1]]
    # apart from the reviewed records, the model's clusters
    reviewed = pl.DataFrame([*split, *joined], schema=key, orient="row")
    same = plain.join(reviewed, on=key, how="anti").join(on_spark, on=key, suffix="_spark")
    assert same.group_by("person_id").agg(pl.col("person_id_spark").n_unique()).select(
        (pl.col("person_id_spark") == 1).all()).item()
    assert on_duckdb["person_id"].n_unique() < tokens.height * 0.6
    m = evaluate_links(on_spark, truth)
    assert m["precision"] >= 0.99 and m["f1"] >= 0.97, m


def test_the_linked_asset_links_every_record_on_spark_as_on_duckdb(world, spark, tmp_path, monkeypatch):
    """ED_LINKAGE_BACKEND=spark: a link of every record (here, forced by a reviewer's decision that splits a
    person) runs on Spark with the saved model and writes the same linked tables as on DuckDB: persons, ids, best
    probabilities, households, cohort, review pairs and the crosswalk of the split."""
    import duckdb

    import ed_pipeline.linkage.spark as spark_linkage
    from ed_pipeline_tests.defs.test_linked import link_in_process

    tokens, _ = world
    monkeypatch.setenv("ED_DATA_DIR", str(tmp_path))
    on_duckdb, on_spark = tmp_path / "duckdb.duckdb", tmp_path / "spark.duckdb"
    assert link_in_process(on_duckdb, tokens)[0] == "full"  # trains and saves the model
    with duckdb.connect(str(on_duckdb)) as conn:
        pair = conn.execute("select pair_id, source_l, record_id_l, source_r, record_id_r from linked.review_pair "
                            "where same_person_now order by match_probability desc, pair_id limit 1").fetchone()
        assert pair, "the world has no borderline pair of one person to split"
        conn.execute("update linked.review_pair set decision = 'non_match', reviewer = 'test' where pair_id = ?",
                     [pair[0]])
    shutil.copy(on_duckdb, on_spark)

    calls = []
    real = spark_linkage.link_on_spark
    monkeypatch.setattr(spark_linkage, "link_on_spark", lambda *a, **k: calls.append(1) or real(*a, **k))
    on_duckdb_said, on_spark_said = {}, {}
    assert link_in_process(on_duckdb, tokens, on_duckdb_said)[0] == "full" and not calls
    monkeypatch.setenv("ED_LINKAGE_BACKEND", "spark")
    spill = tmp_path / "spill"
    spill.mkdir()
    monkeypatch.setenv("ED_LINKAGE_TEMP_DIR", str(spill))
    assert link_in_process(on_spark, tokens, on_spark_said)[0] == "full" and calls == [1]
    assert (on_duckdb_said["backend"], on_spark_said["backend"]) == ("duckdb", "spark")  # in the run's metadata
    # Splink's checkpoints (the records' tokens) went to a directory of the link's own, removed after
    assert str(spill) in spark.sparkContext.getCheckpointDir() and not any(spill.iterdir())

    # every table, the crosswalks' refresh times aside; floats (the same sums by two engines) to 1e-9
    compare = _load(BENCHMARKS / "spark_linked_asset.py", "spark_linked_asset")
    duck, sparked = compare.linked_tables(on_duckdb), compare.linked_tables(on_spark)
    assert {"person_link", "household_membership", "review_pair"} <= set(duck)
    assert compare.differences(duck, sparked) == [], "DuckDB and Spark wrote different linked tables"
    links = duck["person_link"]
    person = {(s, r): p for s, r, p in links.select("source", "record_id", "person_id").iter_rows()}
    assert person[(pair[1], pair[2])] != person[(pair[3], pair[4])]  # the reviewer's split, on both
    assert duck["person_crosswalk"].height > 0 and duck["review_pair"].height > 0

    # the next link, with nothing to link again whole, is a month's: DuckDB's, whatever the setting
    monthly = {}
    assert link_in_process(on_spark, tokens, monthly)[0] == "incremental"
    assert monthly["backend"] == "duckdb" and calls == [1]


def test_a_spark_backend_that_cannot_run_says_why(world, monkeypatch):
    """An unknown backend is refused by name, and as the definitions load; Spark without Java or PySpark says what
    to do."""
    from ed_pipeline.linkage.spark import link_every_record_on_spark
    from ed_pipeline.settings import linkage_backend

    monkeypatch.setenv("ED_LINKAGE_BACKEND", "Kafka")
    with pytest.raises(ValueError, match="ED_LINKAGE_BACKEND='kafka': give one of duckdb, spark"):
        linkage_backend()
    loaded = subprocess.run([sys.executable, "-c", "import ed_pipeline.definitions"], capture_output=True, text=True,
                            timeout=120, env={**os.environ, "ED_LINKAGE_BACKEND": "kafka"})
    assert loaded.returncode != 0 and "ED_LINKAGE_BACKEND='kafka': give one of duckdb, spark" in loaded.stderr
    monkeypatch.setenv("ED_LINKAGE_BACKEND", " Spark ")
    assert linkage_backend() == "spark"
    monkeypatch.delenv("ED_LINKAGE_BACKEND")
    assert linkage_backend() == "duckdb"

    monkeypatch.delenv("JAVA_HOME", raising=False)
    monkeypatch.setattr(shutil, "which", lambda name: None)
    with pytest.raises(RuntimeError, match="needs a Java 17"):
        link_every_record_on_spark(world[0], None, "local[2]")
    find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *rest: None if name == "pyspark" else find_spec(name, *rest))
    with pytest.raises(RuntimeError, match="needs PySpark: install ed-pipeline with its `spark` extra"):
        link_every_record_on_spark(world[0], None, "spark://cluster:7077")


def test_a_local_spark_starts_without_its_log_lines_and_stops_leaving_no_checkpoints():
    """Spark's start on a local master (a refresh with ED_LINKAGE_BACKEND=spark) prints nothing of Spark's own
    logging to the refresh's terminal (its default: the log4j profile, WARNs about the host and Hadoop, the shell's
    log level); an error would still show. The JVM's own note about incubator modules is not Spark's logging.
    The checkpoint directory it made itself (none given) is removed when it stops."""
    script = ("import os\n"
              "from ed_pipeline.linkage.spark import SMALL_DATA_CONF, spark_session, stop_spark\n"
              "spark = spark_session('local[1]', conf=SMALL_DATA_CONF)\n"
              "assert spark.range(3).count() == 3\n"
              "print(spark.sparkContext.getConf().get('spark.driver.extraJavaOptions'))\n"
              "spark.sparkContext._jvm.org.apache.log4j.LogManager.getLogger('ed_pipeline').error('shown')\n"
              "made = os.path.dirname(spark.sparkContext.getCheckpointDir().removeprefix('file:'))\n"
              "assert os.path.isdir(made), made\n"
              "stop_spark(spark)\n"
              "print('checkpoints left' if os.path.exists(made) else 'checkpoints removed')\n")
    started = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=180)
    assert started.returncode == 0, started.stderr
    assert "-XX:TieredStopAtLevel=1" in started.stdout  # the caller's JVM options are kept beside the logging's
    assert "checkpoints removed" in started.stdout
    lines = [line for line in started.stderr.splitlines() if not line.startswith("WARNING: Using incubator modules")]
    assert len(lines) == 1 and lines[0].endswith("ERROR ed_pipeline: shown"), started.stderr
