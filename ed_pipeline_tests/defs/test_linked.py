"""Landing -> ... -> linked, through the CLI on a tiny world: quality against truth, privacy, incremental months."""

from __future__ import annotations

import os
from pathlib import Path
from unittest import mock

import dagster as dg
import duckdb
import polars as pl

from ed_pipeline.evaluation import evaluate_linkage
from ed_pipeline.linkage import TokenColumns
from ed_pipeline.linkage.tables import person_table
from ed_pipeline.linkage.tokens import read_tokens
from ed_pipeline.privacy import identifiers_from_duckdb, scan_duckdb
from ed_pipeline.settings import Settings
from ed_pipeline.sources import SOURCES


def last_link_run(settings) -> tuple[dict, dict[str, bool]]:
    """The latest linked/person_link metadata, and the check results of the latest run, from Dagster's instance."""
    # as Dagster opens an instance: from DAGSTER_HOME (its event log storage finds its files there)
    home = {"DAGSTER_HOME": str(settings.dagster_home)}
    with mock.patch.dict(os.environ, home), dg.DagsterInstance.get() as instance:
        event = instance.get_latest_materialization_event(dg.AssetKey(["linked", "person_link"]))
        metadata = {k: v.value for k, v in event.asset_materialization.metadata.items()}
        run = instance.get_runs(limit=1)[0]
        checks = {e.dagster_event.event_specific_data.check_name: e.dagster_event.event_specific_data.passed
                  for e in instance.all_logs(run.run_id)
                  if e.dagster_event and e.dagster_event.event_type_value == "ASSET_CHECK_EVALUATION"}
    return metadata, checks


def linked_ids(settings) -> pl.DataFrame:
    with duckdb.connect(str(settings.warehouse_path), read_only=True) as conn:
        return conn.execute("select source, record_id, person_id from linked.person_link").pl()


def test_refresh_links_people_accurately_and_leaks_nothing(refreshed_world):
    settings = Settings(data_dir=refreshed_world)
    metrics = evaluate_linkage(settings)
    assert metrics["precision"] >= 0.98 and metrics["recall"] >= 0.95, metrics

    # every validated record, and nothing else, has a person
    with duckdb.connect(str(settings.agency_zone_path), read_only=True) as agency:
        validated = pl.concat([
            agency.execute(f"select distinct source, record_id from validated.{s.name}").pl() for s in SOURCES])
        identifiers = identifiers_from_duckdb(agency)
    linked = linked_ids(settings)
    assert linked.height == validated.height == linked.join(validated, on=["source", "record_id"]).height

    assert scan_duckdb(settings.warehouse_path, identifiers) == []
    metadata, checks = last_link_run(settings)
    assert metadata["mode"] == "full"
    assert checks["ids_stable"] and checks["no_identifiers_anywhere"]
    with duckdb.connect(str(settings.warehouse_path), read_only=True) as conn:
        tables = {t for (t,) in conn.execute(
            "select table_schema || '.' || table_name from information_schema.tables").fetchall()}
    assert {"linked.person_link", "linked.person", "linked.household_membership", "linked.cohort",
            "linked.person_crosswalk", "linked.review_pair", "linked.review_decision"} <= tables


def test_a_new_month_links_incrementally_and_keeps_ids(refreshed_world, month_added_world):
    """The refresh after a month lands (`month_added_world`: `ed-pipeline refresh` again) links it incrementally."""
    before = linked_ids(Settings(data_dir=refreshed_world))
    settings = Settings(data_dir=month_added_world)
    after = linked_ids(settings)
    metadata, checks = last_link_run(settings)
    assert metadata["mode"] == "incremental" and checks["ids_stable"]

    assert after.height > before.height, "the new month added no records"
    # the records read with every token: the month's new ones and those sharing a blocking key with them
    assert metadata["new_records"] == after.height - before.height
    assert 0 < metadata["candidate_records"] < before.height
    kept = before.join(after, on=["source", "record_id"], suffix="_now")
    assert kept.height == before.height
    assert (kept["person_id"] == kept["person_id_now"]).mean() >= 0.999

    # the new links are appended (not the table rewritten): still one per validated record, and linked.person
    # is what the table as written gives
    with duckdb.connect(str(settings.agency_zone_path), read_only=True) as agency:
        validated = pl.concat([
            agency.execute(f"select distinct source, record_id from validated.{s.name}").pl() for s in SOURCES])
    assert after.height == validated.height == after.join(validated, on=["source", "record_id"]).height
    with duckdb.connect(str(settings.warehouse_path), read_only=True) as conn:
        links = conn.execute("select * from linked.person_link").pl()
        persons = conn.execute("select * from linked.person").pl()
        rebuilt = person_table(links, read_tokens(conn, TokenColumns()))
    assert persons.sort("person_id").equals(rebuilt)


def test_read_tokens_keeps_the_latest_version_of_each_record_in_record_order():
    conn = duckdb.connect()
    conn.execute("create schema pseudonymised")
    # a record re-sent (corrected) in a later month, and months arriving out of order in the table
    conn.execute("create table pseudonymised.housing as select * from (values "
                 "('housing', 'H2', '2014-03', 'old'), ('housing', 'H1', '2014-02', 'a'), "
                 "('housing', 'H2', '2014-05', 'new'), ('housing', 'H2', '2014-04', 'middle')) "
                 "as t(source, record_id, extract_month, tok_uprn)")
    conn.execute("create table pseudonymised.benefits as select * from (values "
                 "('benefits', 'B9', '2014-01', 'b'), ('benefits', 'B1', '2014-06', 'c')) "
                 "as t(source, record_id, extract_month, tok_uprn)")
    tokens = read_tokens(conn, TokenColumns())
    assert tokens.select("source", "record_id", "extract_month", "tok_uprn").rows() == [
        ("benefits", "B1", "2014-06", "c"), ("benefits", "B9", "2014-01", "b"),
        ("housing", "H1", "2014-02", "a"), ("housing", "H2", "2014-05", "new")]


def test_a_reviewers_decision_is_applied_by_the_next_refresh(refreshed_copy):
    """A reviewer judges a pair linked into one person a non-match: the next refresh splits them, although a
    monthly link only attaches new records (it links every record again this once), and the pair leaves the
    review table."""
    from ed_pipeline_tests.conftest import run_cli

    settings = refreshed_copy
    with duckdb.connect(str(settings.warehouse_path)) as conn:
        pair = conn.execute("select pair_id, source_l, record_id_l, source_r, record_id_r from linked.review_pair "
                            "where same_person_now order by pair_id limit 1").fetchone()
        assert pair, "the tiny world should have a borderline pair linked into one person"
        conn.execute("update linked.review_pair set decision = 'non_match' where pair_id = ?", [pair[0]])
    result = run_cli("refresh", "--only", "analyse", data_dir=settings.data_dir)
    assert result.returncode == 0, result.stderr[-3000:]
    ids = {(s, r): p for s, r, p in linked_ids(settings).iter_rows()}
    assert ids[(pair[1], pair[2])] != ids[(pair[3], pair[4])]
    metadata, checks = last_link_run(settings)
    assert metadata["mode"] == "full" and checks["ids_stable"]
    with duckdb.connect(str(settings.warehouse_path), read_only=True) as conn:
        assert conn.execute("select decision from linked.review_decision where record_id_l in (?, ?)",
                            [pair[2], pair[4]]).fetchall() == [("non_match",)]
        # linking every record scored the pair again; decided, it is not listed for review a second time
        assert not conn.execute("select 1 from linked.review_pair where pair_id = ?", [pair[0]]).fetchall()


def test_an_upgrade_that_retires_token_columns_leaves_none_behind(refreshed_copy):
    """A warehouse and linkage model made by a version that wrote tokens since retired (tok_dob_day gave the
    day of birth back): the next refresh drops the column from every month, trains a new linkage model (the
    saved one compares it) and links every record again, keeping the ids."""
    import json

    from ed_pipeline.defs.linked import MODEL_FILE
    from ed_pipeline_tests.conftest import run_cli

    settings = refreshed_copy
    before = linked_ids(settings)
    with duckdb.connect(str(settings.warehouse_path)) as conn:
        for source in SOURCES:
            conn.execute(f"alter table pseudonymised.{source.name} add column tok_dob_day varchar default 'x'")
    saved = json.loads((settings.linkage_dir / MODEL_FILE).read_text())
    (settings.linkage_dir / MODEL_FILE).write_text(json.dumps({**saved, "fields": [*saved["fields"], "tok_dob_day"]}))
    # the version that retired it changed the ingest code, so its refresh ingested every month again (as --full)
    result = run_cli("refresh", "--full", data_dir=settings.data_dir)
    assert result.returncode == 0, result.stderr[-3000:]
    with duckdb.connect(str(settings.warehouse_path), read_only=True) as conn:
        assert not conn.execute("select table_name from information_schema.columns "
                                "where column_name = 'tok_dob_day'").fetchall()
    assert "tok_dob_day" not in json.loads((settings.linkage_dir / MODEL_FILE).read_text())["fields"]
    metadata, checks = last_link_run(settings)
    assert metadata["mode"] == "full" and checks["ids_stable"]
    after = linked_ids(settings).join(before, on=["source", "record_id"], suffix="_before")
    assert (after["person_id"] == after["person_id_before"]).mean() > 0.99


def link_in_process(warehouse, rows: pl.DataFrame, metadata: dict | None = None, **config
                    ) -> tuple[str, pl.DataFrame]:
    """`rows` (tokens of every source) as the pseudonymised layer, linked by the asset in process with `config`:
    the link's mode and linked.person_link (and in `metadata`, if given, person_link's materialisation's)."""
    from dagster_duckdb import DuckDBResource

    from ed_pipeline.defs.linked import link_people_and_households

    with duckdb.connect(str(warehouse)) as conn:
        conn.execute("create schema if not exists pseudonymised")
        for (source,), part in rows.partition_by("source", as_dict=True).items():
            conn.register("part", part)
            conn.execute(f"create or replace table pseudonymised.{source} as select * from part")
    result = dg.materialize([link_people_and_households],
                            resources={"warehouse": DuckDBResource(database=str(warehouse))},
                            run_config={"ops": {"link_people_and_households": {"config": config}}})
    [linked] = [m.metadata for m in result.asset_materializations_for_node("link_people_and_households")
                if "mode" in m.metadata]
    mode = linked["mode"].value
    if metadata is not None:
        metadata.update({key: value.value for key, value in linked.items()})
    with duckdb.connect(str(warehouse), read_only=True) as conn:
        return mode, conn.execute("select * from linked.person_link").pl()


def test_a_record_withdrawn_from_the_warehouse_leaves_person_link_in_a_monthly_link(tmp_path, monkeypatch):
    """A month sent again without one of its records (the pseudonymised month is replaced): the monthly link
    no longer lists that record, as a full link would not; the other links stay as they were."""
    from ed_pipeline_tests.linkage.world import make_tokens, make_world

    monkeypatch.setenv("ED_DATA_DIR", str(tmp_path))
    records, _, _ = make_world(households=150, seed=5, months=("2017-01", "2017-02"))
    tokens = make_tokens(records)
    warehouse = tmp_path / "warehouse.duckdb"
    key = ["source", "record_id"]

    mode, before = link_in_process(warehouse, tokens.filter(pl.col("extract_month") == "2017-01"))
    assert mode == "full"
    gone = before.filter(pl.col("source") == "housing").head(1).select(key)
    mode, after = link_in_process(warehouse, tokens.join(gone, on=key, how="anti"))
    assert mode == "incremental"
    assert after.join(gone, on=key).height == 0
    assert after.height == tokens.height - 1
    assert before.join(gone, on=key, how="anti").join(after, on=[*key, "person_id"], how="anti").height == 0


def _small_linked_world(tmp_path, monkeypatch) -> tuple[pl.DataFrame, Path]:
    """A month of 150 households' tokens, and where their warehouse is to be (ED_DATA_DIR: tmp_path)."""
    from ed_pipeline_tests.linkage.world import make_tokens, make_world

    monkeypatch.setenv("ED_DATA_DIR", str(tmp_path))
    records, _, _ = make_world(households=150, seed=5, months=("2017-01",))
    return make_tokens(records), tmp_path / "warehouse.duckdb"


def _review_pairs(warehouse: Path) -> pl.DataFrame:
    with duckdb.connect(str(warehouse), read_only=True) as conn:
        return conn.execute("select * from linked.review_pair").pl()


def test_a_full_link_that_scores_no_pair_empties_the_review_table_and_keeps_the_decisions(tmp_path, monkeypatch):
    """The borderline pairs of the last refresh do not outlive a full link that scores none: the review table
    is written empty (not left as it was), a reviewer's decision made on it is kept, and a monthly link keeps
    the pairs still awaiting a decision (the links they were judged on stand)."""
    tokens, warehouse = _small_linked_world(tmp_path, monkeypatch)

    assert link_in_process(warehouse, tokens)[0] == "full"
    borderline = _review_pairs(warehouse)
    assert borderline.height > 1
    # a decision the links already meet: the next link stays a monthly one
    with duckdb.connect(str(warehouse)) as conn:
        conn.execute("update linked.review_pair set decision = case when same_person_now then 'match' "
                     "else 'non_match' end where pair_id = ?", [borderline["pair_id"].min()])
    assert link_in_process(warehouse, tokens)[0] == "incremental"
    pending = _review_pairs(warehouse)
    assert set(pending["pair_id"]) == set(borderline["pair_id"]) - {borderline["pair_id"].min()}
    assert pending["decision"].null_count() == pending.height

    with duckdb.connect(str(warehouse)) as conn:
        for (source,) in conn.execute("select table_name from information_schema.tables "
                                      "where table_schema = 'pseudonymised'").fetchall():
            conn.execute(f"drop table pseudonymised.{source}")
    assert link_in_process(warehouse, tokens.head(1), full_relink=True)[0] == "full"  # one record: no pair
    assert _review_pairs(warehouse).height == 0
    assert _review_pairs(warehouse).columns == borderline.columns
    with duckdb.connect(str(warehouse), read_only=True) as conn:
        assert conn.execute("select count(*) from linked.review_decision").fetchone() == (1,)


def test_a_record_withdrawn_in_a_monthly_link_takes_its_pending_review_pairs_with_it(tmp_path, monkeypatch):
    """A month sent again without a record of a pair awaiting review: the monthly link no longer lists the pair
    (the record is linked no longer), and keeps the other pending pairs."""
    tokens, warehouse = _small_linked_world(tmp_path, monkeypatch)
    key = ["source", "record_id"]

    assert link_in_process(warehouse, tokens)[0] == "full"
    before = _review_pairs(warehouse)
    assert before.height > 1
    gone = before.sort("pair_id").head(1).select(pl.col("source_l").alias("source"),
                                                 pl.col("record_id_l").alias("record_id"))
    mode, links = link_in_process(warehouse, tokens.join(gone, on=key, how="anti"))
    assert mode == "incremental" and links.join(gone, on=key).height == 0
    left = before.join(gone.rename({"source": "source_l", "record_id": "record_id_l"}),
                       on=["source_l", "record_id_l"], how="anti").join(
        gone.rename({"source": "source_r", "record_id": "record_id_r"}), on=["source_r", "record_id_r"], how="anti")
    assert 0 < left.height < before.height
    assert set(_review_pairs(warehouse)["pair_id"]) == set(left["pair_id"])


def test_a_monthly_link_builds_linked_person_again_only_where_it_must_and_as_a_full_build_would(
        tmp_path, monkeypatch):
    """linked.person after a month: built again only for the persons of the month's records (new ones, and old
    ones sent again in it with a corrected birth year, sex or date) where the months read before are as they were;
    from every record where one of those changed in place (its month sent again, no record withdrawn). Either
    way, the table a full build gives."""
    from ed_pipeline.defs import linked
    from ed_pipeline_tests.linkage.world import make_tokens, make_world

    monkeypatch.setenv("ED_DATA_DIR", str(tmp_path))
    records, _, _ = make_world(households=150, seed=5, months=("2017-01", "2017-02"))
    tokens = make_tokens(records)
    warehouse = tmp_path / "warehouse.duckdb"
    key = ["source", "record_id"]
    updates = []
    real_update = linked.person_table_update
    monkeypatch.setattr(linked, "person_table_update",
                        lambda *a, **k: updates.append(a[3].n_unique()) or real_update(*a, **k))

    def linked_person_as_built_whole() -> None:
        with duckdb.connect(str(warehouse), read_only=True) as conn:
            persons = conn.execute("select * from linked.person").pl().sort("person_id")
            whole = person_table(conn.execute("select * from linked.person_link").pl(),
                                 read_tokens(conn, TokenColumns()))
        assert persons.equals(whole)

    first = tokens.filter(pl.col("extract_month") == "2017-01")
    assert link_in_process(warehouse, first)[0] == "full"
    # the second month, with records of the first sent again in it, corrected: another birth year, sex and date
    corrected = first.filter(pl.col("birth_year").is_not_null()).head(6).with_columns(
        pl.lit("2017-02").alias("extract_month"), (pl.col("birth_year") - 3).alias("birth_year"),
        pl.when(pl.col("sex") == "F").then(pl.lit("M")).otherwise(pl.lit("F")).alias("sex"),
        pl.col("event_date").cast(pl.Date).dt.offset_by("40d").cast(tokens["event_date"].dtype))
    month = pl.concat([tokens, corrected], how="vertical_relaxed")
    assert link_in_process(warehouse, month)[0] == "incremental"
    linked_person_as_built_whole()
    assert len(updates) == 1 and updates[0] < tokens["source"].len() / 2  # built again: the month's persons only

    # the first month sent again with a record corrected in place: linked.person is built from every record
    target = first.filter(pl.col("birth_year").is_not_null()).tail(1)
    again = month.with_columns(pl.when((pl.col("extract_month") == "2017-01")
                                       & (pl.col("record_id") == target["record_id"][0])
                                       & (pl.col("source") == target["source"][0]))
                               .then(pl.col("birth_year") + 11).otherwise(pl.col("birth_year")).alias("birth_year"))
    assert again.join(month, on=[*key, "extract_month", "birth_year"], how="anti").height == 1
    assert link_in_process(warehouse, again)[0] == "incremental"
    linked_person_as_built_whole()
    assert len(updates) == 1  # not built again by persons
    # the same records once more, nothing new: no person is built again, and the table stays as it was
    assert link_in_process(warehouse, again)[0] == "incremental"
    linked_person_as_built_whole()
    assert updates[1:] == [0]
