"""`ed-pipeline refresh` analyses (links onwards) only when something the analysis reads or keeps has changed since
it last passed (`ed_pipeline.analysis_state`)."""

from __future__ import annotations

import json
import shutil
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
