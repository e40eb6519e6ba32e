"""`ed-pipeline refresh` analyses (links onwards) only when something the analysis reads or keeps has changed since
it last passed (`ed_pipeline.analysis_state`)."""

from __future__ import annotations

import json
import os
import shutil
import time
from datetime import UTC, datetime, timedelta

import dagster as dg
import duckdb
import pytest

from ed_pipeline.analysis_state import analysis_state, record_analysis, why_analyse
from ed_pipeline.settings import DBT_PROJECT_DIR
from ed_pipeline_tests.conftest import run_cli


def analyse_runs(instance: dg.DagsterInstance) -> list[str]:
    return [run.run_id for run in instance.get_runs(filters=dg.RunsFilter(job_name="analyse"))]


def test_a_refresh_with_nothing_changed_does_not_analyse_again(refreshed_copy, tmp_path):
    """After a refresh, a second one finds every source and the analysis up to date, runs nothing and writes
    nothing, even in a copy of the data directory (its files' times kept); then each kind of change makes the
    analysis due again, and says which."""
    settings = refreshed_copy  # the refreshed world's last run is the refresh's analysis, recorded
    with dg.DagsterInstance.get() as instance:  # DAGSTER_HOME of the refreshed copy
        runs = analyse_runs(instance)
        assert why_analyse(instance, settings) == (None, runs[0])
    state = analysis_state(settings)

    dry = run_cli("refresh", "--dry-run", data_dir=settings.data_dir)
    assert dry.returncode == 0, dry.stderr[-3000:]
    assert "up to date" in next(line for line in dry.stdout.splitlines() if "analyse" in line), dry.stdout
    again = run_cli("refresh", data_dir=settings.data_dir)
    assert again.returncode == 0, again.stderr[-3000:]
    assert (f"ok analyse: up to date (nothing it reads or keeps changed since run {runs[0][:8]})"
            in again.stderr), again.stderr[-3000:]
    with dg.DagsterInstance.get() as instance:
        assert analyse_runs(instance) == runs
        assert instance.get_runs(limit=1)[0].run_id == runs[0], "a refresh with nothing to do ran something"
    assert analysis_state(settings) == state, "a refresh with nothing to do wrote something"

    with dg.DagsterInstance.get() as instance:
        with pytest.MonkeyPatch.context() as patch:
            patch.setenv("ED_AUDIT_MEMORY_LIMIT", "1GB")
            assert why_analyse(instance, settings)[0] == "changed: settings"
        dbt = tmp_path / "dbt_project"  # the project as it is, then with a model edited
        shutil.copytree(DBT_PROJECT_DIR, dbt, ignore=shutil.ignore_patterns("target", "logs", "dbt_packages"))
        with pytest.MonkeyPatch.context() as patch:
            patch.setattr("ed_pipeline.analysis_state.DBT_PROJECT_DIR", dbt)
            assert why_analyse(instance, settings)[0] is None
            model = next(dbt.glob("models/**/*.sql"))
            model.write_text(model.read_text() + "\n-- edited\n")
            assert why_analyse(instance, settings)[0] == "changed: code"
        assert why_analyse(instance, settings)[0] is None

        with duckdb.connect(str(settings.warehouse_path)) as conn:  # as a reviewer's decision writes it
            conn.execute("create table linked.review_note as select 1 as noted")
        assert why_analyse(instance, settings)[0] == "changed: warehouse"

        # the audit's state older than its maximum age: the next audit is a full one, and the analysis runs it
        audit = json.loads(settings.audit_state_path.read_text())
        audit["audited_at"] = (datetime.now(UTC) - timedelta(days=40)).isoformat(timespec="seconds")
        settings.audit_state_path.write_text(json.dumps(audit))
        record_analysis(instance, runs[0], settings)
        why, last = why_analyse(instance, settings)
        assert why.startswith("the privacy audit is due (") and last == runs[0], why

        @dg.asset
        def scratch() -> None:
            """A run from the UI: it may have written anything."""

        result = dg.materialize([scratch], instance=instance)
        assert why_analyse(instance, settings)[0] == f"after run {result.run_id[:8]} of {result.job_def.name}"


def test_a_whole_analysis_from_elsewhere_is_recorded_by_the_sensor(refreshed_copy):
    """A run of the whole analysis from elsewhere than the refresh (declarative automation after the landing
    sensor's month, the UI's Materialize all) is recorded by `record_analyses` as the refresh records its own, so
    that the command's next refresh finds the analysis up to date; a run that left out an asset or the privacy
    audit is not, nor one after which the data was written. The runs here are copies of the refresh's analysis
    (its checks' evaluations, its end), as the automation would launch them."""
    from dagster._core.utils import make_new_run_id

    from ed_pipeline.analysis_state import ANALYSED_TAG, AUDIT_CHECK, record_if_whole_analysis
    from ed_pipeline.definitions import defs
    from ed_pipeline.defs.automation import record_analyses

    settings = refreshed_copy
    repository = defs.get_repository_def()
    analysis = repository.get_job("analyse").asset_layer.selected_asset_keys
    with dg.DagsterInstance.get() as instance:
        refresh_run = instance.get_runs(limit=1)[0]  # the refresh's analysis, recorded

        def events(kind: dg.DagsterEventType) -> list:
            return [r.event_log_entry for r in instance.get_records_for_run(refresh_run.run_id, of_type=kind).records]

        checks, [success] = events(dg.DagsterEventType.ASSET_CHECK_EVALUATION), events(dg.DagsterEventType.RUN_SUCCESS)
        assert any(entry.dagster_event.event_specific_data.check_name == AUDIT_CHECK for entry in checks)

        def run_elsewhere(selection, audited: bool = True, job: str = "__ASSET_JOB") -> dg.DagsterRun:
            """A run of `selection` (empty: the whole job) that passed and has just ended (no refresh tag)."""
            run = instance.add_run(dg.DagsterRun(job_name=job, run_id=make_new_run_id(),
                                                 asset_selection=frozenset(selection),
                                                 status=dg.DagsterRunStatus.STARTED))
            for entry in checks:
                if audited or entry.dagster_event.event_specific_data.check_name != AUDIT_CHECK:
                    instance.store_event(entry._replace(run_id=run.run_id))
            instance.handle_new_event(success._replace(run_id=run.run_id, timestamp=time.time()))
            return instance.get_run_by_id(run.run_id)

        partial = run_elsewhere(analysis - {min(analysis)})
        assert record_if_whole_analysis(instance, partial, partial.asset_selection, analysis, settings).startswith(
            f"it left out 1 of the analysis's {len(analysis)} assets ({min(analysis).to_user_string()}")
        assert why_analyse(instance, settings)[0] == f"after run {partial.run_id[:8]} of __ASSET_JOB"

        unaudited = run_elsewhere(analysis, audited=False)
        assert record_if_whole_analysis(instance, unaudited, analysis, analysis, settings) == (
            f"the privacy audit ({AUDIT_CHECK}) did not run in it")
        assert ANALYSED_TAG not in instance.get_run_by_id(unaudited.run_id).tags

        whole = run_elsewhere((), job="analyse")  # the job from the UI; recorded by the sensor after the run
        record_analyses(dg.build_run_status_sensor_context(
            sensor_name="record_analyses", dagster_instance=instance, dagster_run=whole,
            dagster_event=success.dagster_event, repository_def=repository))
        assert json.loads(instance.get_run_by_id(whole.run_id).tags[ANALYSED_TAG]) == analysis_state(settings)
        assert why_analyse(instance, settings) == (None, whole.run_id)

        # a write after the run ended (a reviewer's decision before the sensor's tick) is not the run's
        written_after = run_elsewhere(analysis)
        later = instance.get_run_record_by_id(written_after.run_id).end_time + 5
        os.utime(settings.warehouse_path, (later, later))
        assert record_if_whole_analysis(instance, written_after, analysis, analysis, settings) == (
            "the data has been written since it ended")
        assert why_analyse(instance, settings)[0] == f"after run {written_after.run_id[:8]} of __ASSET_JOB"
