"""The linkage session's DuckDB: bounded memory, with a spill directory of its own."""

from __future__ import annotations

from pathlib import Path

import duckdb
import polars as pl

from ed_pipeline.linkage.engine import DEFAULT_MEMORY_LIMIT, Session


def _limit(con: duckdb.DuckDBPyConnection) -> str:
    return con.execute("SELECT current_setting('memory_limit')").fetchone()[0]


def _as_duckdb_reads(limit: str | None) -> str:
    """How DuckDB reports a limit (binary units: '2GB' reads '1.8 GiB'); None: its own default (80% of RAM)."""
    with duckdb.connect(":memory:") as con:
        if limit:
            con.execute("SET memory_limit = ?", [limit])
        return _limit(con)


def test_the_session_has_a_memory_limit_and_spills_to_its_own_directory(monkeypatch, tmp_path: Path):
    monkeypatch.delenv("ED_LINKAGE_MEMORY_LIMIT", raising=False)
    monkeypatch.setenv("ED_LINKAGE_TEMP_DIR", str(tmp_path))
    with Session() as s:
        assert _limit(s.con) == _as_duckdb_reads(DEFAULT_MEMORY_LIMIT) != _as_duckdb_reads(None)
        spill = Path(s.con.execute("SELECT current_setting('temp_directory')").fetchone()[0])
        assert spill.parent == tmp_path and spill.is_dir()
    assert not spill.exists()  # removed with the session

    monkeypatch.setenv("ED_LINKAGE_MEMORY_LIMIT", "300MB")
    with Session() as s:
        assert _limit(s.con) == _as_duckdb_reads("300MB")
    with Session(memory_limit="1GB") as s:  # an explicit limit wins over the environment
        assert _limit(s.con) == _as_duckdb_reads("1GB")


def test_past_its_limit_a_session_spills_and_gets_the_same_answer(monkeypatch, tmp_path: Path):
    """A sort and a join of more than the limit finish by spilling to the session's directory, with the answer
    they give without the limit."""
    monkeypatch.setenv("ED_LINKAGE_TEMP_DIR", str(tmp_path))
    n = 2_000_000
    ids = pl.int_range(0, n, eager=True)
    frame = pl.DataFrame({"k": ids.hash(seed=1), "v": ids, "pad": ids.cast(pl.String).str.pad_start(24, "x")})
    query = ("CREATE TABLE out AS SELECT a.k, a.v + b.v AS v, a.pad FROM (SELECT * FROM {t} ORDER BY pad DESC) a "
             "JOIN {t} b ON a.k = b.k ORDER BY a.pad")
    answers, spilled = [], []
    for limit in ("8GB", "100MB"):
        with Session(memory_limit=limit) as s:
            table = s.register(frame, stem="t").physical_name
            s.con.execute(query.format(t=table))
            spilled.append(s.con.execute("SELECT coalesce(sum(size), 0) FROM duckdb_temporary_files()").fetchone()[0])
            answers.append(s.query("SELECT * FROM out ORDER BY pad").hash_rows().sum())
    assert answers[0] == answers[1]
    assert spilled[0] == 0 and spilled[1] > 0, spilled


def test_term_frequencies_in_sql_are_those_of_polars():
    """`tf_sql` (what a Spark link computes where the records are) gives `tf_frame`'s table: a column counted by
    its distinct companions (a name pair by date of birth), a plain one by its rows, nulls left out."""
    from ed_pipeline.linkage.engine import tf_frame, tf_sql

    records = pl.DataFrame({
        "tok_name_pair": [1, 1, 1, 2, 2, None, 3],
        "tok_dob": [10, 10, 11, 12, None, 13, None],
        "birth_year": [2010, 2010, 2011, 2012, 2013, 2014, None],
        "tok_postcode": [5, 5, 5, 6, None, 7, 7],
    }, schema={"tok_name_pair": pl.UInt64, "tok_dob": pl.UInt64, "birth_year": pl.Int32, "tok_postcode": pl.UInt64})
    with duckdb.connect() as conn:
        conn.register("records", records.to_arrow())
        for column in ("tok_name_pair", "tok_postcode"):
            in_sql = conn.sql(tf_sql("records", column, records.columns)).pl().sort(column)
            assert in_sql.equals(tf_frame(records, column).sort(column)), column
    # the name pair 1 once with dob 10, once with 11; 2 with dob 12 and with birth year 2013; 3 with nothing
    assert tf_frame(records, "tok_name_pair").sort("tok_name_pair")["tf_tok_name_pair"].to_list() == [0.4, 0.4, 0.2]
