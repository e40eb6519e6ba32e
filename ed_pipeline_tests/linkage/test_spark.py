"""The trained linkage model, unchanged, on Splink's Spark backend (PySpark in local mode): the same persons as
DuckDB gives on the same pseudonymised records.

One JVM for the module (local[2], two shuffle partitions, the small-data settings of `spark.SMALL_DATA_CONF`);
the world is small (~2,300 records) so the whole module stays well under a minute and a half with the JVM start.
"""

from __future__ import annotations

import os
import shutil

import polars as pl
import pytest
import sqlglot

from ed_pipeline.linkage import evaluate_links, link, train_model
from ed_pipeline.linkage.spark import link_spark, spark_settings, to_spark_sql
from ed_pipeline_tests.linkage.test_linkage import FAST
from ed_pipeline_tests.linkage.world import make_tokens, make_world


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


def test_spark_links_the_same_persons_as_duckdb(world, model, spark):
    """One Spark run (the JVM's first is the slow one): the model's own clusters plus two reviewers' decisions,
    which touch two pairs; every other person is the model's, and all must be DuckDB's."""
    tokens, truth = world
    key = ["source", "record_id"]
    plain = link(tokens, model, keep_pairs=False).person_links().select(*key, "person_id")
    decisions, split, joined = _decisions(plain)
    on_duckdb = link(tokens, model, keep_pairs=False, decisions=decisions).person_links().select(*key, "person_id")
    timings: dict[str, float] = {}
    on_spark = link_spark(tokens, model, spark, decisions=decisions, timings=timings)
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
