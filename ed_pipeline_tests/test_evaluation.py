"""`ed-pipeline evaluate`: the model beside its oracle and true-linkage references, logged to the refresh's run.

The tiny world's model is weak (AUC about 0.5): these tests check the mechanics, not the quality.
"""

from __future__ import annotations

import hashlib
from datetime import date

import polars as pl
import pytest
from mlflow.tracking import MlflowClient

from ed_pipeline.evaluation import (
    TRUELINK_WAREHOUSE,
    evaluate_model,
    latest_refresh,
    oracle_metrics,
    spells_by_address,
    true_linked_tables,
)
from ed_pipeline.settings import Settings
from ed_pipeline_tests.conftest import run_cli


def _digest(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def evaluated(refreshed_world, tmp_path_factory):
    """One evaluation of a private copy of the refreshed tiny world: (settings, result, warehouse digest before)."""
    import shutil

    data_dir = tmp_path_factory.mktemp("evaluated") / "data"
    shutil.copytree(refreshed_world, data_dir)
    settings = Settings(data_dir=data_dir)
    before = _digest(settings.warehouse_path)
    return settings, evaluate_model(settings), before


def test_references_are_measured_on_the_refresh_test_cohort(evaluated):
    settings, result, _ = evaluated
    run_id, refresh = latest_refresh(settings)
    assert result["mlflow_run_id"] == run_id
    assert result["test_roc_auc"] == pytest.approx(refresh["test_roc_auc"])
    for key in ("oracle_test_roc_auc", "oracle_test_ece", "truelink_test_roc_auc", "truelink_test_ece",
                "truelink_baseline_test_roc_auc"):
        assert 0.0 <= result[key] <= 1.0, key
    assert result["oracle_test_n"] > 0 and result["truelink_test_n"] > 0
    assert result["auc_below_truelink"] == pytest.approx(result["truelink_test_roc_auc"] - result["test_roc_auc"])
    assert result["auc_above_baseline"] == pytest.approx(result["test_roc_auc"] - result["baseline_test_roc_auc"])
    assert set(result["goals"]) == {"auc_below_truelink", "auc_above_baseline", "test_ece"}
    assert all(isinstance(g["passed"], bool) for g in result["goals"].values())


def test_references_are_logged_to_the_refresh_run(evaluated):
    settings, result, _ = evaluated
    logged = MlflowClient(settings.mlflow_tracking_uri).get_run(result["mlflow_run_id"]).data.metrics
    for key in ("oracle_test_roc_auc", "truelink_test_roc_auc", "truelink_test_ece", "auc_below_truelink"):
        assert logged[key] == pytest.approx(result[key]), key
    assert logged["test_roc_auc"] == pytest.approx(result["test_roc_auc"])  # the refresh's own metrics stay


def test_the_warehouse_is_left_unchanged(evaluated):
    settings, _, before = evaluated
    assert _digest(settings.warehouse_path) == before


def test_a_refresh_run_missing_from_the_mlflow_store_is_a_clear_error(evaluated, tmp_path, monkeypatch):
    """The MLflow store moved or deleted (or another deployment's set): said, not MLflow's traceback."""
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'other.db'}")
    with pytest.raises(FileNotFoundError, match="MLflow run .* is not in sqlite"):
        evaluate_model(evaluated[0])


def test_oracle_metrics_take_the_assessment_year_only():
    children = pl.DataFrame({"person_id": [1, 2, 3, 4, 5], "assessment_year": [2017, 2017, 2017, 2017, 2016],
                             "p_not_gld": [0.9, 0.8, 0.2, 0.1, 0.95], "not_gld": [True, False, False, False, False]})
    oracle = oracle_metrics(children, 2017)
    assert oracle["oracle_test_n"] == 4
    assert oracle["oracle_test_roc_auc"] == pytest.approx(1.0)


def test_true_linkage_tables_keep_only_recorded_records_and_people():
    tokens = pl.DataFrame({"source": ["a", "a", "b"], "record_id": ["1", "2", "9"],
                           "event_date": [date(2016, 1, 1), date(2016, 3, 1), date(2016, 2, 1)],
                           "birth_year": [2013, 2013, 1990], "birth_month": [4, 4, 2], "sex": ["F", "U", "M"]})
    records = pl.DataFrame({"source": ["a", "a", "b", "b"], "record_id": ["1", "2", "9", "10"],
                            "person_id": [7, 7, 8, 99]})
    membership = pl.DataFrame({"household_id": [1, 1, 1], "person_id": [7, 8, 50],
                               "valid_from": [date(2013, 4, 1)] * 3, "valid_to": [None, None, None]},
                              schema_overrides={"valid_to": pl.Date})
    tables = true_linked_tables(tokens, records, membership)
    assert tables["person_link"]["record_id"].to_list() == ["1", "2", "9"]  # record 10 was never pseudonymised
    assert tables["person_link"]["person_id"].dtype == pl.String
    assert sorted(tables["household_membership"]["person_id"].to_list()) == ["7", "8"]  # 50: recorded nowhere
    person = tables["person"].filter(pl.col("person_id") == "7").row(0, named=True)
    assert (person["records"], person["birth_year"], person["sex"]) == (2, 2013, "F")
    assert tables["cohort"]["person_id"].to_list() == ["7"]


def test_a_household_move_starts_a_new_spell_as_in_the_pipeline():
    membership = pl.DataFrame({"household_id": ["1", "1"], "person_id": ["7", "8"],
                               "valid_from": [date(2013, 1, 1), date(2016, 5, 1)], "valid_to": [None, None]},
                              schema_overrides={"valid_to": pl.Date})
    addresses = pl.DataFrame({"household_id": ["1", "1"], "valid_from": [date(2013, 1, 1), date(2015, 3, 1)],
                              "valid_to": [date(2015, 3, 1), None]}, schema_overrides={"valid_to": pl.Date})
    spells = spells_by_address(membership, addresses).sort("person_id", "valid_from")
    assert spells.rows() == [("1.0", "7", date(2013, 1, 1), date(2015, 3, 1)), ("1.1", "7", date(2015, 3, 1), None),
                             ("1.1", "8", date(2016, 5, 1), None)]


def test_cli_reports_both_tables_and_exits_zero_without_gating(evaluated):
    """A second evaluation, by the command: dbt builds the true-linkage features where the first did
    (data/evaluation), parsing nothing again (its partial parse file is left as the first wrote it); the
    warehouse's copy is removed, dbt's target kept."""
    settings = evaluated[0]
    work_dir = settings.evaluation_dir
    parsed = work_dir / "target" / "partial_parse.msgpack"
    first = parsed.read_bytes()
    result = run_cli("evaluate", data_dir=settings.data_dir)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "linkage against the synthetic world's truth" in result.stdout
    assert "same model, true linkage" in result.stdout and "oracle" in result.stdout
    assert "auc_above_baseline" in result.stdout
    assert parsed.read_bytes() == first
    assert not (work_dir / TRUELINK_WAREHOUSE).exists()


def test_a_second_evaluation_at_once_is_refused_clearly_and_leaves_the_first_s_work(evaluated):
    from ed_pipeline.evaluation import evaluation_work_dir

    settings = evaluated[0]
    with evaluation_work_dir(settings) as work_dir:
        (work_dir / TRUELINK_WAREHOUSE).write_text("the first evaluation's copy")
        with pytest.raises(RuntimeError, match="another evaluation is building its features in .*: wait"):
            evaluate_model(settings, log=False)
        assert (work_dir / TRUELINK_WAREHOUSE).exists()
    assert not (work_dir / TRUELINK_WAREHOUSE).exists()


def test_cli_says_clearly_when_there_is_no_refresh(world_copy):
    result = run_cli("evaluate", data_dir=world_copy.data_dir)
    assert result.returncode == 2
    assert "error" in result.stderr and "refresh" in result.stderr


def test_a_training_config_is_read_back_from_its_params_with_each_fields_type():
    from ed_pipeline.evaluation import training_config

    params = {"max_train_cohorts": "5", "test_cohort": "2018", "validation_cohort": "None", "monotone": "False",
              "min_cohort_share": "0.5", "calibration": "validation", "learning_rate": "0.05", "seed": "7"}
    config = training_config(params)
    assert (config.max_train_cohorts, config.test_cohort, config.validation_cohort, config.monotone) == (
        5, 2018, None, False)
    assert (config.min_cohort_share, config.calibration, config.learning_rate, config.seed) == (
        0.5, "validation", 0.05, 7)
