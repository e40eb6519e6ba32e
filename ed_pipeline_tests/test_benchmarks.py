"""The full-refresh benchmark's own logic: holding back a month, sampling a process tree, the stage table."""

from __future__ import annotations

import importlib.util
import json
import os
import sys
import time
from pathlib import Path

import pytest

BENCHMARK = Path(__file__).resolve().parents[1] / "benchmarks" / "full_refresh.py"


def _load(path: Path, name: str):
    """A benchmark script as a module (benchmarks/ is not a package)."""
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def bench():
    return _load(BENCHMARK, "full_refresh_benchmark")


def test_hold_back_and_release_the_last_month(bench, tmp_path):
    for source in ("housing", "benefits"):
        for month in ("2018-05", "2018-06"):
            path = tmp_path / "landing" / source / f"{month}.csv"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text("a\n1\n")
    assert bench.hold_back(tmp_path) == "2018-06"
    assert sorted(p.stem for p in (tmp_path / "landing").glob("*/*.csv")) == ["2018-05", "2018-05"]
    assert sorted(p.parent.name for p in (tmp_path / "held_back").glob("*/2018-06.csv")) == ["benefits", "housing"]
    assert bench.release_month(tmp_path) == ["2018-06"]
    assert len(list((tmp_path / "landing").glob("*/2018-06.csv"))) == 2
    assert not list((tmp_path / "held_back").glob("*/*.csv"))


def test_hold_back_a_month_and_every_later_one_then_release_it_alone(bench, tmp_path):
    for month in ("2018-04", "2018-05", "2018-06"):
        path = tmp_path / "landing" / "housing" / f"{month}.csv"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("a\n1\n")
    assert bench.hold_back(tmp_path, "2018-05") == "2018-05"
    assert [p.stem for p in (tmp_path / "landing").glob("*/*.csv")] == ["2018-04"]
    assert bench.release_month(tmp_path) == ["2018-05"]  # the month of the incremental refresh only
    assert sorted(p.stem for p in (tmp_path / "landing").glob("*/*.csv")) == ["2018-04", "2018-05"]
    assert [p.stem for p in (tmp_path / "held_back").glob("*/*.csv")] == ["2018-06"]
    assert bench.release_month(tmp_path, everything=True) == ["2018-06"]
    with pytest.raises(SystemExit, match="no extract of 2019-01"):
        bench.hold_back(tmp_path, "2019-01")


def test_hold_back_the_last_months_for_a_sequence_of_monthly_refreshes(bench, tmp_path):
    months = ("2018-03", "2018-04", "2018-05", "2018-06")
    for month in months:
        path = tmp_path / "landing" / "housing" / f"{month}.csv"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("a\n1\n")
    assert bench.hold_back(tmp_path, months=3) == "2018-04"
    assert [p.stem for p in (tmp_path / "landing").glob("*/*.csv")] == ["2018-03"]
    # released one at a time, in order, as they would land
    assert [bench.release_month(tmp_path) for _ in range(3)] == [["2018-04"], ["2018-05"], ["2018-06"]]
    bench.release_month(tmp_path, everything=True)
    with pytest.raises(SystemExit, match="cannot hold back 4 of the 4 months"):
        bench.hold_back(tmp_path, months=4)  # the full refresh would have nothing


def test_each_world_refreshes_with_a_dbt_target_of_its_own(bench, tmp_path, monkeypatch):
    monkeypatch.delenv("DBT_TARGET_PATH", raising=False)
    monkeypatch.setenv("ED_WAREHOUSE_DB", "/elsewhere/warehouse.duckdb")
    targets = {bench.child_env(root)["DBT_TARGET_PATH"]
               for root in (tmp_path / "a" / "20000", tmp_path / "b" / "20000", tmp_path / "a" / "1500000")}
    assert len(targets) == 3 and all(t.startswith("target/benchmark-") for t in targets)  # not make run's target/
    env = bench.child_env(tmp_path / "a" / "20000")
    assert env["DBT_TARGET_PATH"] in targets and env["ED_DATA_DIR"] == str(tmp_path / "a" / "20000")
    assert "ED_WAREHOUSE_DB" not in env  # the world's own warehouse, under ED_DATA_DIR
    monkeypatch.setenv("DBT_TARGET_PATH", "target/mine")
    assert bench.child_env(tmp_path / "a" / "20000")["DBT_TARGET_PATH"] == "target/mine"


def test_tree_usage_sees_this_process(bench):
    assert os.getpid() in bench.process_tree(os.getpid())
    rss, cpu = bench.tree_usage(os.getpid())
    assert rss > 10 * 2**20 and cpu > 0


def test_the_pace_is_the_cpu_time_of_a_fixed_piece_of_python(bench):
    assert 0 < bench.pace(10_000) < bench.pace(200_000)


def test_the_machines_busy_time_counts_this_process_working(bench):
    busy, steal = bench.machine_cpu()
    spin_until = time.process_time() + 0.3
    while time.process_time() < spin_until:
        pass
    busy_after, steal_after = bench.machine_cpu()
    assert busy_after - busy >= 0.25 and steal_after >= steal >= 0


def test_a_refresh_beside_which_others_took_a_tenth_of_the_machine_is_marked_busy(bench):
    samples = [(t, 300 * 2**20, t - 100.0) for t in range(100, 131)]
    runs = [{"label": "analyse", "job": "analyse", "start": 105.0, "end": 128.0, "steps": []}]

    def summary(others: float) -> dict:  # 30 s on 2 cores: 60 CPU s of machine
        return bench.summarise({**_measured(samples, runs), "others_cpu_s": others, "steal_s": 0.5, "cores": 2,
                                "pace_s": 0.9})

    quiet, busy = summary(3.0), summary(20.0)
    assert (quiet["others_share"], quiet["busy"], busy["others_share"], busy["busy"]) == (0.05, False, 0.3333, True)
    assert "other processes 3.0 CPU s (5% of the machine), steal 0.5 s; pace 0.90 s before it" in \
        bench.format_table("month", quiet)
    assert "BUSY" not in bench.format_table("month", quiet)
    assert "other processes 20.0 CPU s (33% of the machine)" in bench.format_table("month", busy)
    assert "BUSY: others took more than a tenth of the machine" in bench.format_table("month", busy)
    # figures measured before the machine's share was: no line, no keys
    earlier = bench.summarise(_measured(samples, runs))
    assert "others_cpu_s" not in earlier and "beside it" not in bench.format_table("month", earlier)


def _measured(samples, runs, started=100.0, ended=130.0):
    return {"samples": samples, "started": started, "ended": ended, "cpu_s": 12.0, "max_rss_bytes": 900 * 2**20,
            "load_before": (1.0, 1.0, 1.0), "load_after": (2.0, 1.5, 1.0),
            "report": {"success": True, "failed": [], "ready": 105.0, "runs": runs}}


def test_stage_rows_split_the_child_into_steps_runs_and_overheads(bench):
    # (time, tree RSS, tree CPU): memory rises to 800 MiB inside the validate step, CPU 1 s per second
    samples = [(t, (800 if 108 <= t <= 112 else 300) * 2**20, t - 100.0) for t in range(100, 131)]
    runs = [
        {"label": "housing", "job": "ingest", "start": 106.0, "end": 116.0, "steps": [
            {"step_key": "raw__housing", "status": "SUCCESS", "start": 106.5, "end": 107.5},
            {"step_key": "validate_housing", "status": "SUCCESS", "start": 107.5, "end": 113.0},
            {"step_key": "pseudonymised__housing", "status": "SUCCESS", "start": 113.0, "end": 115.0}]},
        {"label": "analyse", "job": "analyse", "start": 118.0, "end": 128.0, "steps": [
            {"step_key": "link_people_and_households", "status": "SUCCESS", "start": 118.0, "end": 127.0}]},
    ]
    summary = bench.summarise(_measured(samples, runs))
    rows = {(r["group"], r["stage"]): r for r in summary["stages"]}
    assert rows[("process", "start-up (imports)")]["wall_s"] == 5.0
    validate = rows[("housing", "validated + quarantine (GX)")]
    assert validate["wall_s"] == 5.5 and validate["cpu_s"] == pytest.approx(6.0)
    assert validate["peak_rss_bytes"] == 800 * 2**20 and validate["start_rss_bytes"] == 300 * 2**20
    assert rows[("housing", "before the run (job subset, run set-up)")]["wall_s"] == 1.0
    assert rows[("housing", "outside steps (Dagster run, events)")]["wall_s"] == 1.5
    assert rows[("housing", "run total")]["wall_s"] == 10.0
    assert rows[("analyse", "linked (Splink)")]["wall_s"] == 9.0
    assert rows[("process", "after the last run (checks read back)")]["wall_s"] == 2.0
    # every second of the child is in exactly one non-subtotal row
    assert sum(r["wall_s"] for r in summary["stages"] if not r.get("subtotal")) == pytest.approx(30.0)
    assert summary["ingest_runs_s"] == 10.0 and summary["analyse_runs_s"] == 10.0
    assert summary["peak_tree_rss_bytes"] == 800 * 2**20
    table = bench.format_table("full", summary)
    assert "validated + quarantine (GX)" in table and "load average" in table
    json.dumps(summary)  # the figures file


def test_a_run_of_several_sources_names_each_step_by_its_source(bench):
    """The one-month refresh ingests every source in one run (the landing sensor's): each row says which source."""
    samples = [(t, 300 * 2**20, t - 100.0) for t in range(100, 111)]
    runs = [{"label": "ingest", "job": "ingest", "start": 101.0, "end": 109.0, "steps": [
        {"step_key": "raw__housing", "status": "SUCCESS", "start": 101.0, "end": 102.0},
        {"step_key": "raw__benefits", "status": "SUCCESS", "start": 102.0, "end": 104.0},
        {"step_key": "validate_benefits", "status": "SUCCESS", "start": 104.0, "end": 108.0}]}]
    rows = {(r["group"], r["stage"]): r for r in bench.summarise(_measured(samples, runs))["stages"]}
    assert rows[("ingest", "raw: housing")]["wall_s"] == 1.0 and rows[("ingest", "raw: benefits")]["wall_s"] == 2.0
    assert rows[("ingest", "validated + quarantine (GX): benefits")]["wall_s"] == 4.0


def test_a_months_full_privacy_audit_is_reported_and_warned_of(bench):
    """A month measured over a state saved under other audit rules (--incremental-only after a change to the
    audit's code) audits everything: the figures must say so, or a full audit reads as a month's."""
    from types import SimpleNamespace

    import dagster as dg

    def result(mode):
        check = SimpleNamespace(check_name="no_identifiers_anywhere",
                                metadata={"mode": dg.MetadataValue.text(mode)})
        other = SimpleNamespace(check_name="reconciled", metadata={})
        return SimpleNamespace(get_asset_check_evaluations=lambda: [other, check])

    incremental, full = "incremental since the audit of 2026-12-06T09:19:00Z", "full: the scanning rules changed"
    assert bench.audit_mode(result(incremental)) == incremental
    assert bench.audit_mode(SimpleNamespace(get_asset_check_evaluations=lambda: [])) is None
    samples = [(t, 300 * 2**20, t - 100.0) for t in range(100, 111)]
    measured = _measured(samples, [])
    measured["report"]["audit_mode"] = bench.audit_mode(result(full))
    summary = bench.summarise(measured)
    assert f"privacy audit: {full}" in bench.format_table("month", summary)
    assert "not a month's" in bench.full_audit_warning(summary)
    assert bench.full_audit_warning({**summary, "audit_mode": incremental}) is None
    assert bench.full_audit_warning({**summary, "audit_mode": None}) is None
    json.dumps(summary)


def test_goals(bench):
    full = {"wall_s": 500.0, "peak_process_rss_bytes": 5 * 10**9, "peak_tree_rss_bytes": 6 * 10**9}
    fast = {"wall_s": 40.0, "peak_process_rss_bytes": 2 * 10**9, "peak_tree_rss_bytes": 2 * 10**9}
    met = bench.goals(full, fast)
    assert all(g["met"] for g in met.values()) and met["incremental_share"]["value"] == 0.08
    slow = bench.goals({**full, "wall_s": 700.0, "peak_tree_rss_bytes": 9 * 10**9}, {**fast, "wall_s": 80.0})
    assert not any(g["met"] for g in slow.values())
    assert "NOT met" in bench.format_goals(slow)


def test_a_sequence_of_months_is_tabled_with_its_drift_and_judged_on_the_slowest(bench):
    def month(name, wall, linked, audit):
        samples = [(t, 300 * 2**20, t - 100.0) for t in range(100, 161)]
        runs = [{"label": "ingest", "job": "ingest", "start": 101.0, "end": 106.0, "steps": []},
                {"label": "analyse", "job": "analyse", "start": 106.0, "end": 100.0 + wall, "steps": [
                    {"step_key": "link_people_and_households", "status": "SUCCESS", "start": 106.0,
                     "end": 106.0 + linked},
                    {"step_key": "outputs__child_risk", "status": "SUCCESS", "start": 120.0, "end": 121.0},
                    {"step_key": "outputs__community_risk", "status": "SUCCESS", "start": 121.0, "end": 123.0},
                    {"step_key": "analyse__no_identifiers_anywhere", "status": "SUCCESS", "start": 124.0,
                     "end": 124.0 + audit}]}]
        measured = _measured(samples, runs, ended=100.0 + wall)
        measured["report"] = {**measured["report"], "finished": 100.0 + wall}
        return {**bench.summarise(measured), "month": name}

    full = {"wall_s": 400.0}
    months = [month("2018-04", 40.0, 8.0, 5.0), month("2018-05", 42.0, 9.0, 6.0), month("2018-06", 44.0, 10.0, 7.0)]
    row = bench.month_row(months[1], full)
    assert (row["month"], row["wall_s"], row["linked_s"], row["audit_s"]) == ("2018-05", 42.0, 9.0, 6.0)
    assert row["outputs_s"] == 3.0 and row["share"] == 0.105 and row["dbt_s"] == 0.0
    assert bench.drift([40.0, 42.0, 44.0]) == pytest.approx(2.0)
    assert bench.drift([44.0, 40.0, 44.0]) == pytest.approx(0.0)
    assert bench.drift([40.0, 44.0]) is None  # two months give no trend
    text = bench.format_months(months, full)
    assert "3 months" in text and "drift: +2.00 s a month" in text and "slowest 44.0 s" in text
    markdown = bench.markdown_months(months, full)
    assert "| 2018-06 | 44.0 |" in markdown and markdown.count("\n") == 4
    met = bench.goals({**full, "peak_process_rss_bytes": 1, "peak_tree_rss_bytes": 1}, months[2])
    assert met["incremental_share"]["value"] == 0.11 and met["incremental_share"]["month"] == "2018-06"
    assert "(2018-06, the slowest month)" in bench.format_goals(met)


def test_markdown_table(bench):
    samples = [(t, 300 * 2**20, t - 100.0) for t in range(100, 131)]
    runs = [{"label": "analyse", "job": "analyse", "start": 118.0, "end": 128.0, "steps": [
        {"step_key": "dbt_features", "status": "SUCCESS", "start": 118.0, "end": 127.0}]}]
    table = bench.markdown_table(bench.summarise(_measured(samples, runs)))
    assert "| analyse | features (dbt build) | 9.0 | 9.0 | 300 | 0 |" in table
    assert table.splitlines()[-1].startswith("| **total** |")


def test_the_scaling_fit_recovers_each_stages_line_and_groups_the_benchmarks_stages(tmp_path, capsys):
    fit = _load(BENCHMARK.with_name("scaling_fit.py"), "scaling_fit")

    def figures(people: int) -> dict:
        m = people / 1e6
        stages = [  # linkage 10 + 40 s per million residents; the audit 5 + 20; a fixed start-up, noisy
            {"group": "process", "stage": "start-up (imports)", "wall_s": 3.0 - m, "cpu_s": 3.0 - m},
            {"group": "analyse", "stage": "linked (Splink)", "wall_s": 8 + 30 * m, "cpu_s": 10 + 40 * m},
            {"group": "analyse", "stage": "no_identifiers_anywhere check", "wall_s": 5 + 20 * m, "cpu_s": 5 + 20 * m},
            {"group": "analyse", "stage": "run total", "subtotal": True, "wall_s": 999.0, "cpu_s": 999.0},
        ]
        refresh = {"stages": stages, "peak_process_rss_bytes": int((1 + 4 * m) * 1e9)}
        month = {"stages": [{**row, "wall_s": row["wall_s"] / 4, "cpu_s": row["cpu_s"] / 4} for row in stages]}
        return {"people": people, "command": "x", "full": refresh, "incremental": month}

    rows = {r["stage"]: r for r in fit.fit([figures(n) for n in (1_500_000, 100_000, 500_000)], "full", 56)}
    linked, audit = rows["linked (Splink, households)"]["cpu"], rows["privacy audit"]["cpu"]
    assert (round(linked["c0"], 6), round(linked["c1"], 6), round(linked["miss"], 6)) == (10, 40, 0)
    assert round(rows["linked (Splink, households)"]["wall"]["at"], 6) == 8 + 30 * 56
    assert (round(audit["c0"], 6), round(audit["c1"], 6)) == (5, 20)
    overhead = rows["start-up, run set-up, Dagster events"]["cpu"]
    assert overhead["c1"] == 0 and overhead["at"] == pytest.approx(3.0 - 2.1 / 3)  # cheaper when larger: fixed
    assert rows["total"]["cpu"]["measured"][0] == pytest.approx(3.0 - 0.1 + 10 + 4 + 5 + 2)  # subtotals left out

    paths = []
    for n in (100_000, 500_000):
        paths.append(tmp_path / f"{n}.json")
        paths[-1].write_text(json.dumps(figures(n)))
    assert fit.main([str(p) for p in paths]) == 0
    out = capsys.readouterr().out
    assert "| linked (Splink, households) | 14.0 / 30.0 | 10.0 | 40.0 | 0% | 2,250 |" in out
    assert "fitted 1.00 + 4.00 * n: 225 GB at 56M" in out
    # every stage of the month a quarter of the full refresh's: a quarter at every scale, and in the limit
    assert "month / full refresh (wall): 25.0% at 0.1M, 25.0% at 0.5M; as residents grow it tends to 25% (cpu)" in out
    assert fit.main([str(paths[0])]) == 2  # one scale: nothing to fit


def test_the_scaling_fit_fits_only_refreshes_of_one_kind(tmp_path, capsys):
    """A world's figures.json is its last run's: a year of months at one scale (twelve months held back, its month
    the first of them) or the month by the command is not fitted with the other scales' single Julys."""
    fit = _load(BENCHMARK.with_name("scaling_fit.py"), "scaling_fit")

    def figures(people: int, landed: int = 66, month: str = "2018-07", command: str = "python full_refresh.py",
                **extra) -> Path:
        def stages(seconds: float) -> list[dict]:
            return [{"group": "analyse", "stage": "linked (Splink)", "wall_s": seconds, "cpu_s": seconds}]

        path = tmp_path / f"{people}-{landed}-{month}-{len(command)}-{len(extra)}.json"
        path.write_text(json.dumps({
            "people": people, "command": command, **extra,
            "world": {"landed_months": landed, "held_back_month": month},
            "full": {"stages": stages(people / 1e4), "peak_process_rss_bytes": people * 1000},
            "incremental": {"stages": stages(people / 4e4), "month": month}}))
        return path

    julys = [figures(100_000), figures(500_000)]
    assert fit.main([str(p) for p in julys]) == 0
    assert "month / full refresh (wall): 25.0% at 0.1M, 25.0% at 0.5M" in capsys.readouterr().out

    year = figures(1_500_000, landed=55, month="2017-08", command="python full_refresh.py --months 12")
    assert fit.main([*map(str, julys), str(year)]) == 2
    err = capsys.readouterr().err
    assert "not of one kind" in err and f"{year} (1,500,000 residents): 55 months landed, 2017-08 on held back" in err

    # the same full refresh, its month by the command (recorded, or from the command line of earlier figures):
    # the full refresh is fitted, the months are not
    for by_command in (figures(1_500_000, month_by="cli"), figures(1_500_000, command="x.py --month-by cli")):
        assert fit.main([*map(str, julys), str(by_command)]) == 0
        out, err = capsys.readouterr()
        assert "full refresh\n" in out and "incremental refresh" not in out and "month / full refresh" not in out
        assert f"{by_command} (1,500,000 residents): the month 2018-07 by the command" in err
        assert f"{julys[0]} (100,000 residents): the month 2018-07 by the landing sensor" in err

    # the code each measured is named; different code is fitted all the same, and said
    same = [figures(n, code={"commit": "a" * 40, "dirty": False}) for n in (100_000, 500_000)]
    assert fit.main(list(map(str, same))) == 0
    out, err = capsys.readouterr()
    assert f"{same[0]}: 100,000 residents, measured None, code {'a' * 12}," in out and "different code" not in err
    other = figures(1_500_000, code={"commit": "b" * 40, "dirty": True})
    assert fit.main([*map(str, same), str(other)]) == 0
    err = capsys.readouterr().err
    assert "measured different code" in err and f"{other} (1,500,000 residents): code {'b' * 12} with changes" in err


def test_a_refresh_again_is_judged_by_content_not_by_when_its_rows_were_written(bench, tmp_path):
    """`--again` compares both databases before and after: a new load time or MLflow run id is no change, a value
    is."""
    import duckdb

    for name in ("agency_zone", "warehouse"):
        with duckdb.connect(str(tmp_path / f"{name}.duckdb")) as conn:
            conn.execute("create schema s")
            conn.execute("create table s.t as select 1 as x, now() as _loaded_at, 'r1' as mlflow_run_id")
    before = bench.zone_digests(tmp_path)
    assert set(before) == {"agency_zone:s.t", "warehouse:s.t"}
    with duckdb.connect(str(tmp_path / "warehouse.duckdb")) as conn:
        conn.execute("update s.t set _loaded_at = now() + interval 1 day, mlflow_run_id = 'r2'")
    assert bench.zone_digests(tmp_path) == before
    with duckdb.connect(str(tmp_path / "agency_zone.duckdb")) as conn:
        conn.execute("update s.t set x = 2")
    after = bench.zone_digests(tmp_path)
    assert [t for t in after if after[t] != before[t]] == ["agency_zone:s.t"]


def test_the_storage_report_counts_row_groups_and_the_deleted_rows_still_stored(tmp_path, capsys):
    """Three months appended without merging are three partly filled row groups; rows deleted stay stored until a
    merge. The report opens the files read-only and names a directory without them."""
    import duckdb

    report = _load(BENCHMARK.parent / "storage_report.py", "storage_report")
    for name in ("agency_zone", "warehouse"):
        for month in range(3):
            with duckdb.connect(str(tmp_path / f"{name}.duckdb")) as conn:
                conn.execute("SET max_vacuum_tasks = 0")  # each month keeps a row group of its own
                conn.execute("create schema if not exists raw; create table if not exists raw.housing (m int, x int)")
                conn.execute(f"insert into raw.housing select {month}, range from range(1000)")
        with duckdb.connect(str(tmp_path / f"{name}.duckdb")) as conn:
            conn.execute("SET max_vacuum_tasks = 0")
            conn.execute("delete from raw.housing where m = 1 and x < 250")

    with duckdb.connect(str(tmp_path / "warehouse.duckdb"), read_only=True) as conn:
        (housing,) = report.table_storage(conn)
    assert (housing.table, housing.row_groups, housing.part_filled, housing.stored, housing.live) == (
        "raw.housing", 3, 3, 3000, 2750)
    assert (housing.deleted, housing.deleted_share) == (250, 250 / 3000)

    assert report.main([str(tmp_path), "--top", "1"]) == 0
    out = capsys.readouterr().out
    assert "warehouse.duckdb" in out and "1 tables, 3 row groups, 250 deleted rows stored" in out
    with pytest.raises(SystemExit):
        report.main([str(tmp_path / "nowhere")])
    assert "no database at" in capsys.readouterr().err


def test_the_spark_asset_benchmark_names_the_tables_that_differ():
    """Same rows and floats within 1e-9: no difference; a value, a float beyond it, or a table on one side only:
    that table."""
    import polars as pl

    compare = _load(BENCHMARK.with_name("spark_linked_asset.py"), "spark_linked_asset").differences
    links = pl.DataFrame({"record_id": ["a", "b"], "person_id": ["P1", "P1"], "match_probability": [0.9, None]})
    same = {"person_link": links, "person": pl.DataFrame({"person_id": ["P1"]})}
    close = {**same, "person_link": links.with_columns(pl.col("match_probability") + 1e-12)}
    assert compare(same, close) == []
    assert compare(same, {**same, "person_link": links.with_columns(pl.col("match_probability") + 1e-6)}) == \
        ["person_link"]
    assert compare(same, {**same, "person_link": links.with_columns(person_id=pl.Series(["P1", "P2"]))}) == \
        ["person_link"]
    assert compare(same, {"person_link": links}) == ["person"]
    assert compare(same, {**same, "person_link": links.with_columns(match_probability=pl.lit(0.9))}) == \
        ["person_link"]  # a null on one side only


def test_another_commits_code_is_measured_from_a_tree_of_its_own_and_recorded(bench, tmp_path, monkeypatch):
    """`--code REV`: the commit's tree is made once (`git archive`, bytecode compiled) and reused; a name that is no
    commit is refused; the arguments reach that tree's benchmark with absolute paths and without --code; the
    figures record the code measured, and whether the checkout differs from its commit."""
    import subprocess

    repo = tmp_path / "repo"
    (repo / "benchmarks").mkdir(parents=True)
    (repo / "ed_pipeline").mkdir()
    (repo / "benchmarks" / "full_refresh.py").write_text("print('old benchmark')\n")
    (repo / "ed_pipeline" / "__init__.py").write_text("VERSION = 1\n")

    def git(*command: str) -> str:
        return subprocess.run(["git", "-C", str(repo), "-c", "user.name=t", "-c", "user.email=t@t", *command],
                              capture_output=True, text=True, check=True).stdout.strip()

    git("init", "-q")
    git("add", ".")
    git("commit", "-q", "-m", "one")
    commit = git("rev-parse", "HEAD")
    work = tmp_path / "work"

    found, tree = bench.code_tree("HEAD", work, checkout=repo)
    assert (found, tree) == (commit, (work / "code" / commit[:12]).resolve())
    assert (tree / "ed_pipeline" / "__init__.py").read_text() == "VERSION = 1\n"
    assert list((tree / "ed_pipeline" / "__pycache__").glob("__init__.*.pyc")), "bytecode compiled"
    (tree / "marker").write_text("kept")
    assert bench.code_tree(commit[:8], work, checkout=repo)[1] == tree and (tree / "marker").exists()
    with pytest.raises(SystemExit, match="--code nosuch: not a commit"):
        bench.code_tree("nosuch", work, checkout=repo)

    assert bench.argv_for_tree(["--people", "20000", "--code", "HEAD~1", "--work", "rel", "--months", "2"],
                               work, None) == ["--people", "20000", "--months", "2", "--work", str(work)]
    assert bench.argv_for_tree(["--code=abc", "--json=x.json"], work, tmp_path / "x.json") == [
        "--work", str(work), "--json", str(tmp_path / "x.json")]

    assert bench.code_identity(repo) == {"commit": commit, "dirty": False}
    (repo / "ed_pipeline" / "__init__.py").write_text("VERSION = 2\n")
    assert bench.code_identity(repo) == {"commit": commit, "dirty": True}
    assert bench.code_identity(tmp_path) == {"commit": None, "dirty": None}
    monkeypatch.setenv(bench.CODE_ENV, commit)
    assert bench.code_identity(tree)["commit"] == commit
