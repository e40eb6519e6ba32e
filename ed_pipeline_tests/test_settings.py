from datetime import date

import pytest

from ed_pipeline.settings import Settings, is_month, is_partition_month, month_end, month_range, month_start


def test_month_helpers():
    assert month_range("2012-11", "2013-02") == ["2012-11", "2012-12", "2013-01", "2013-02"]
    assert month_end("2016-02").day == 29
    assert month_end("2013-12").isoformat() == "2013-12-31"
    with pytest.raises(ValueError):
        month_start("2013-1")


def test_only_yyyy_mm_months_the_partitions_have_are_partition_months():
    assert [m for m in ("2014-03", "2014-3", "2014-13", "+014-03", "2014-03 ", "2014_03", "٢٠١٤-03") if is_month(m)] \
        == ["2014-03"]
    today = date(2026, 12, 5)
    assert [m for m in ("2012-12", "2013-01", "2026-11", "2026-12", "2062-11")
            if is_partition_month(m, today)] == ["2013-01", "2026-11"]


def test_data_dir_moves_every_location(tmp_path, monkeypatch):
    monkeypatch.setenv("ED_DATA_DIR", str(tmp_path))
    for var in ("ED_AGENCY_ZONE_DB", "ED_WAREHOUSE_DB", "DAGSTER_HOME", "MLFLOW_TRACKING_URI"):
        monkeypatch.delenv(var, raising=False)
    s = Settings.from_env()
    for path in (s.landing_dir, s.truth_dir, s.agency_zone_path, s.warehouse_path, s.gx_docs_dir,
                 s.dagster_home, s.secrets_dir):
        assert path.is_relative_to(tmp_path)
    assert str(tmp_path) in s.mlflow_tracking_uri


def test_landed_months_ignores_stray_files(tmp_path, monkeypatch):
    monkeypatch.setenv("ED_DATA_DIR", str(tmp_path))
    s = Settings.from_env()
    for name in ("social_care/2014-02.csv", "housing/2014-01.csv", "housing/notes.csv", "housing/2014-13.csv"):
        (s.landing_dir / name).parent.mkdir(parents=True, exist_ok=True)
        (s.landing_dir / name).write_text("x")
    assert s.landed_months() == ["2014-01", "2014-02"]
    assert s.landed_months("housing") == ["2014-01"]


def test_a_memory_limit_holds_inside_and_duckdbs_default_comes_back_even_after_an_error(monkeypatch) -> None:
    import duckdb
    import pytest

    from ed_pipeline.settings import DEFAULT_DUCKDB_MEMORY_LIMIT, duckdb_memory_limit, memory_limited

    def limit(con) -> str:
        return con.execute("SELECT current_setting('memory_limit')").fetchone()[0]

    monkeypatch.delenv("ED_SOME_MEMORY_LIMIT", raising=False)
    assert duckdb_memory_limit("ED_SOME_MEMORY_LIMIT") == DEFAULT_DUCKDB_MEMORY_LIMIT
    monkeypatch.setenv("ED_SOME_MEMORY_LIMIT", "700MB")
    assert duckdb_memory_limit("ED_SOME_MEMORY_LIMIT") == "700MB"
    with duckdb.connect(":memory:") as a, duckdb.connect(":memory:") as b:
        default = limit(a)
        with pytest.raises(RuntimeError), memory_limited([a, b], "300MB"):
            assert limit(a) == limit(b) != default
            raise RuntimeError("a failing audit")
        assert limit(a) == limit(b) == default
