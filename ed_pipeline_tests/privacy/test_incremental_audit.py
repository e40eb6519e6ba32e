"""The incremental privacy audit: new content against every identifier, old content against the new ones."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import duckdb
import polars as pl
import pytest

from ed_pipeline.privacy import pseudonymise_people
from ed_pipeline.privacy.audit import (
    MAX_INDEX_FILES,
    AuditState,
    code_fingerprint,
    load_state,
    read_index,
    rules_fingerprint,
    run_audit,
    save_index,
    unlisted_rows,
)
from ed_pipeline.privacy.leak_scan import identifier_sets, identifiers_from_records
from ed_pipeline_tests.privacy.records import KEY, records

# A person who arrives in the second month: her identifiers are new then.
NEWCOMER = {"source": "social_care", "record_id": "SC9", "given_name": "Ottoline", "family_name": "Quartermaine",
            "date_of_birth": dt.date(2015, 8, 19), "sex": "F", "nhs_number": "4010232137",
            "address": "9 Saffron Walk, Wickford", "postcode": "SS12 9QT", "uprn": None, "upn": None}


def _month(frame: pl.DataFrame, month: str) -> pl.DataFrame:
    return frame.with_columns(extract_month=pl.lit(month))


def _newcomer(**other: object) -> pl.DataFrame:
    first = records()
    values = {**NEWCOMER, **other}
    row = first.head(1).with_columns(**{k: pl.lit(v, dtype=first.schema[k]) for k, v in values.items()})
    return _month(row, "2018-02")


# Another newcomer, whose identifiers the first month's content does not hold.
STRANGER = {"record_id": "SC8", "given_name": "Persephone", "family_name": "Thistlewood", "nhs_number": "6541237890",
            "address": "3 Juniper Mews, Billericay", "postcode": "CM12 0ZZ", "date_of_birth": dt.date(2016, 4, 7)}


class World:
    """An agency zone and a warehouse on disk, Dagster-like text units and an MLflow-like artifact folder."""

    def __init__(self, root: Path):
        self.root = root
        self.agency_path, self.warehouse_path = root / "agency.duckdb", root / "warehouse.duckdb"
        self.state_path = root / "audit" / "state.json"
        self.artifacts = root / "artifacts"
        self.artifacts.mkdir()
        self.texts: dict[str, list[tuple[str, str]]] = {}
        self.texts_read: list[set[str]] = []  # the units each call of the text reader was asked for
        with duckdb.connect(str(self.agency_path)) as conn:
            conn.execute("create schema validated")
        with duckdb.connect(str(self.warehouse_path)) as conn:
            conn.execute("create schema pseudonymised; create schema linked")
            conn.execute("create table pseudonymised.notes (extract_month varchar, record_id varchar, note varchar)")
            conn.execute("create table linked.summary (label varchar, n bigint)")

    def land(self, people: pl.DataFrame, notes: list[tuple[str, str, str]]) -> None:
        """A month arrives: its records in the agency zone, their pseudonymised rows and notes in the warehouse."""
        tokens = pseudonymise_people(people, KEY)  # noqa: F841 (read by DuckDB by name)
        with duckdb.connect(str(self.agency_path)) as conn:
            exists = conn.execute("select count(*) from information_schema.tables where table_schema = 'validated' "
                                  "and table_name = 'people'").fetchone()[0]
            conn.execute("insert into validated.people select * from people" if exists else
                         "create table validated.people as select * from people")
        with duckdb.connect(str(self.warehouse_path)) as conn:
            exists = conn.execute("select count(*) from information_schema.tables where table_schema = "
                                  "'pseudonymised' and table_name = 'people'").fetchone()[0]
            conn.execute("insert into pseudonymised.people select * from tokens" if exists else
                         "create table pseudonymised.people as select * from tokens")
            conn.executemany("insert into pseudonymised.notes values (?, ?, ?)", notes)

    def sql(self, statement: str) -> None:
        with duckdb.connect(str(self.warehouse_path)) as conn:
            conn.execute(statement)

    def audit(self, agency_read_only: bool = False, **kwargs):
        units = {u: {"*": str(hash(tuple(items)))} for u, items in self.texts.items()}

        def read(wanted: set[str]) -> dict[str, list[tuple[str, str]]]:
            self.texts_read.append(set(wanted))
            return {u: self.texts[u] for u in sorted(wanted)}

        with duckdb.connect(str(self.agency_path), read_only=agency_read_only) as agency, \
                duckdb.connect(str(self.warehouse_path), read_only=True) as warehouse:
            return run_audit(agency, warehouse, self.state_path, text_units=units, read_texts=read,
                             artifact_folders=[self.artifacts], **kwargs)


def _found(result) -> set[tuple[str, str]]:
    return {(leak.location, leak.kind) for leak in result.leaks}


@pytest.fixture
def world(tmp_path) -> World:
    """Month 2018-01 landed and audited (passing): the state says what was scanned. Its content already
    holds the newcomer's name, NHS number and postcode, harmless then: nobody in the agency zone had them."""
    w = World(tmp_path)
    w.land(_month(records(), "2018-01"), [("2018-01", "SC1", "referral from school"),
                                          ("2018-01", "SC2", "the Quartermaine family moved in next door")])
    w.sql("insert into linked.summary values ('households', 4), ('ottoline', 1)")
    w.texts["dagster run 1"] = [("dagster run 1 step", "materialised 4010232137 rows"),
                                ("dagster run 1 log", "a child born 19/08/2015 was seen"),
                                ("dagster run 1 note", "Ottoline 2015-08-19")]
    (w.artifacts / "old_card.md").write_text("# Model card\nWards: Pitsea, Vange\nnote: SS12 9QT\n")
    first = w.audit()
    assert first.passed, first.leaks
    assert first.mode == "full: no audit state yet" and first.state_written
    return w


def test_old_content_with_a_new_identifier_and_new_content_with_an_old_one_are_both_found(world: World):
    # the second month: the newcomer arrives; new content carries an old identifier in every kind of content
    world.land(_newcomer(), [("2018-02", "SC9", "seen with Kowalczyk at the clinic")])
    world.texts["dagster run 2"] = [("dagster run 2 step", "record of Mary-Ann Kowalczyk")]
    (world.artifacts / "new_card.md").write_text("nhs 943 476 5919\n")

    result = world.audit()
    assert result.mode.startswith("incremental since ")
    # what the first audit scanned was scanned against the new identifiers only
    assert result.scanned["warehouse"] == (2, 3)  # 2018-02 of people and notes; 2018-01 of both, linked.summary
    assert result.scanned["texts"] == (1, 1) and result.scanned["files"] == (1, 1)
    assert 0 < result.new_identifiers < result.identifiers
    old_with_new = {("pseudonymised.notes.note", "name"), ("linked.summary.label", "name"),
                    ("dagster run 1 step", "nhs_number"), (str(world.artifacts / "old_card.md"), "postcode"),
                    ("dagster run 1 log", "date_of_birth"), ("dagster run 1 note", "date_of_birth")}
    new_with_old = {("dagster run 2 step", "name"), (str(world.artifacts / "new_card.md"), "nhs_number")}
    assert old_with_new | new_with_old <= _found(result), result.leaks
    # the planted note of 2018-02 ("Kowalczyk") and of 2018-01 ("Quartermaine"): the same column, both months
    notes = [leak for leak in result.leaks if leak.location == "pseudonymised.notes.note"]
    assert sum(leak.count for leak in notes) == 2
    hows = {(leak.location, leak.how) for leak in result.leaks if leak.kind == "date_of_birth"}
    assert {("dagster run 1 log", "dob in context"), ("dagster run 1 note", "dob with other identifier")} <= hows
    assert not result.state_written  # a failing audit leaves the last passing one's state

    # the same leaks as a full rescan finds
    full = world.audit(full=True)
    assert full.mode == "full rescan asked for" and full.leaks == result.leaks
    assert full.scanned["warehouse"] == (5, 0)


def test_a_clean_new_month_is_scanned_alone_against_every_identifier(world: World):
    world.land(_newcomer(**STRANGER), [("2018-02", "SC8", "home visit")])
    world.texts["dagster run 2"] = [("dagster run 2 step", "materialised 3 partitions")]
    before = json.loads(world.state_path.read_text())
    result = world.audit()
    assert result.passed, result.leaks
    assert result.scanned["warehouse"][0] == 2 and result.scanned["texts"] == (1, 1)
    after = json.loads(world.state_path.read_text())
    assert after["warehouse"]["pseudonymised.people"].keys() == {"2018-01", "2018-02"}
    assert after["audited_at"] >= before["audited_at"]

    # nothing new: the content is scanned against no identifier at all, and the audit passes
    again = world.audit()
    assert again.passed and again.scanned["warehouse"] == (0, 5) and again.new_identifiers == 0


def test_a_changed_partition_is_rescanned_against_every_identifier(world: World):
    world.sql("update pseudonymised.notes set note = 'Zoe O''Brien called' where record_id = 'SC1'")
    result = world.audit()
    # the changed partition against every identifier; the rest needs no scan: no identifier is new
    assert result.scanned["warehouse"] == (1, 2) and result.new_identifiers == 0
    assert ("pseudonymised.notes.note", "name") in _found(result)


def test_state_is_small_and_holds_no_identifier(world: World):
    text = world.state_path.read_text().lower()
    for value in ("kowalczyk", "o brien", "obrien", "9434765919", "ss16 4ab", "ss164ab", "lavender", "2014-03-05",
                  "quartermaine", "ottoline", "4010232137"):
        assert value not in text, value
    state = AuditState.from_json(world.state_path.read_text())
    assert set(state.warehouse) == {"pseudonymised.people", "pseudonymised.notes", "linked.summary"}
    assert len(text) < 20_000


def test_full_rescan_when_the_state_is_missing_stale_or_made_under_other_rules(world: World):
    rules = AuditState.from_json(world.state_path.read_text()).rules
    assert load_state(world.state_path, rules=rules)[0] is not None
    assert load_state(world.state_path, max_age_days=-1, rules=rules)[0] is None  # too old
    assert world.audit(max_age_days=-1).mode.startswith("full: the audit state is")
    data = json.loads(world.state_path.read_text())
    world.state_path.write_text(json.dumps({**data, "rules": "something else"}))
    assert world.audit().mode == "full: the scanning rules changed since the last audit"
    world.state_path.write_text("{not json")
    assert world.audit().mode.startswith("full: the audit state could not be read")
    world.state_path.unlink()
    assert world.audit().mode == "full: no audit state yet"


def test_the_rules_fingerprint_follows_the_scanners_code_not_its_comments_or_docstrings():
    """A reworded comment or docstring of the scanner leaves the next audit incremental (a full one is minutes
    at Essex scale); a changed stopword, rule or constant makes it full."""
    import inspect

    from ed_pipeline.privacy import leak_scan

    source = inspect.getsource(leak_scan)
    same = code_fingerprint(source)
    reworded = source.replace('"""', '"""Reworded. ', 1).replace("\n# ", "\n# reworded ", 3)
    relaid = source.replace("(\n", "(  \n")
    assert reworded != source and relaid != source
    assert code_fingerprint(reworded) == code_fingerprint(relaid) == same
    assert code_fingerprint(source.replace("household size", "household sized", 1)) != same  # a stopword
    assert code_fingerprint(source.replace("MIN_NAME_LETTERS = ", "MIN_NAME_LETTERS = 1 + ", 1)) != same
    assert rules_fingerprint() == rules_fingerprint()


def test_new_identifiers_are_those_no_earlier_record_had():
    first = _month(records(), "2018-01")
    both = pl.concat([first, _newcomer(), _month(records().head(1), "2018-02")], how="vertical_relaxed")
    is_new = pl.Series([False] * first.height + [True, True])
    everything, new = identifier_sets(both, is_new)
    assert everything.phrases.sort("phrase").equals(identifiers_from_records(both).phrases.sort("phrase"))
    phrases = set(new.phrases["phrase"])
    assert {"quartermaine", "ottoline", "4010232137", "ss12 9qt"} <= phrases
    assert not {"kowalczyk", "obrien", "9434765919", "ss16 4ab"} & phrases  # seen before the new month
    assert "2015 08 19" in phrases and "2014 03 05" in phrases  # dates of birth of the month's people
    assert set(new.people["record_id"]) == {"SC9", "SC1"}


def test_a_rewritten_table_is_scanned_only_in_its_new_rows(world: World):
    """A whole-history table rebuilt on every refresh (linked.*, dbt's models): the rows the last audit scanned
    come back unchanged, and only the rows the ledger does not list are scanned against every identifier."""
    world.sql("create or replace table linked.summary as select * from linked.summary union all "
              "select 'seen with kowalczyk', 1")
    result = world.audit()
    assert result.scanned["warehouse"] == (1, 2)
    assert result.warehouse_rows[0] == 1  # the new row alone, of linked.summary's three
    assert ("linked.summary.label", "name") in _found(result)
    assert world.audit(full=True).leaks == result.leaks

    # rewritten clean: the audit passes, and the next ledger lists the new row
    world.sql("create or replace table linked.summary as select * from linked.summary "
              "where label <> 'seen with kowalczyk' union all select 'households in vange', 2")
    clean = world.audit()
    assert clean.passed and clean.warehouse_rows[0] == 1, clean.leaks
    world.sql("create or replace table linked.summary as select * from linked.summary order by n desc")
    assert world.audit().warehouse_rows[0] == 0  # the same rows in another order: nothing to scan


def test_the_ledger_holds_hashes_only_and_one_file_is_kept(world: World):
    world.land(_newcomer(**STRANGER), [("2018-02", "SC8", "home visit")])
    assert world.audit().passed and world.audit().passed
    ledgers = list(world.state_path.parent.glob("*.rows-*.parquet"))
    assert len(ledgers) == 1 and ledgers[0].name == AuditState.from_json(world.state_path.read_text()).rows_ledger
    ledger = pl.read_parquet(ledgers[0])
    assert ledger.columns == ["unit", "h"] and ledger.schema["h"] == pl.UInt64
    with duckdb.connect(str(world.warehouse_path), read_only=True) as conn:
        rows = sum(conn.execute(f"select count(*) from {t}").fetchone()[0]
                   for t in ("pseudonymised.people", "pseudonymised.notes", "linked.summary"))
    assert ledger.height == rows


def test_without_its_ledger_a_changed_table_is_scanned_whole(world: World):
    world.sql("create or replace table linked.summary as select * from linked.summary union all select 'x', 3")
    for ledger in world.state_path.parent.glob("*.rows-*.parquet"):
        ledger.write_bytes(b"not parquet")
    result = world.audit()
    assert result.passed and result.mode.startswith("incremental") and result.warehouse_rows[0] == 3


def test_a_row_the_ledger_lists_is_trusted_as_scanned(world: World):
    """Why the ledger is written only after a passing audit: a listed row is not scanned against the
    identifiers it was already scanned against (here a forged entry hides an old identifier from it)."""
    world.sql("insert into linked.summary values ('seen with kowalczyk', 1)")
    name = AuditState.from_json(world.state_path.read_text()).rows_ledger
    with duckdb.connect(str(world.warehouse_path), read_only=True) as conn:
        forged = conn.execute("select 'linked.summary' as unit, hash(t) as h from linked.summary t "
                              "where label like 'seen%'").pl()
    ledger = pl.read_parquet(world.state_path.with_name(name))
    pl.concat([ledger, forged.cast(ledger.schema)]).write_parquet(world.state_path.with_name(name))
    assert world.audit().passed
    assert ("linked.summary.label", "name") in _found(world.audit(full=True))


def test_dates_of_birth_aligned_with_their_records_in_the_new_rows_of_a_rewritten_table(world: World):
    people = records().select("source", "record_id", "date_of_birth")
    clean = people.with_columns(seen=pl.col("date_of_birth") + pl.duration(days=400)).drop("date_of_birth")
    born = people.rename({"date_of_birth": "seen"})  # noqa: F841 (read by DuckDB by name)
    with duckdb.connect(str(world.warehouse_path)) as conn:
        conn.register("clean", clean)
        conn.execute("create table linked.visits as select * from clean")
    assert world.audit().passed
    with duckdb.connect(str(world.warehouse_path)) as conn:
        conn.register("born", born)
        conn.execute("create or replace table linked.visits as select * from linked.visits union all "
                     "select * from born")
    result = world.audit()
    assert result.warehouse_rows[0] == people.height  # the new rows alone
    assert ("linked.visits.seen", "date_of_birth") in _found(result), result.leaks
    assert world.audit(full=True).leaks == result.leaks


def test_identifier_phrases_are_made_only_for_new_or_changed_partitions(world: World):
    """Kept in the agency zone per partition: a new month's phrases are made, the others read back; a changed
    partition is made again (a corrected name is an identifier at once); the same leaks as without the cache."""
    assert world.audit().identifier_parts == (0, 1)  # nothing new: 2018-01 from the cache
    world.land(_newcomer(), [("2018-02", "SC9", "home visit")])
    result = world.audit()
    assert result.identifier_parts == (1, 1)
    assert ("pseudonymised.notes.note", "name") in _found(result)  # "Quartermaine" of 2018-01, new in 2018-02
    assert result.leaks == world.audit(agency_read_only=True).leaks  # read-only: nothing cached, all made

    with duckdb.connect(str(world.agency_path)) as conn:
        conn.execute("update validated.people set family_name = 'Referral' where record_id = 'SC1'")
        cached = conn.execute("select count(*) from leak_scan_cache.phrases").fetchone()[0]
    assert cached > 0
    # 'referral' is a common word, never an identifier: the changed partition is re-made, and clean
    changed = world.audit()
    assert changed.identifier_parts == (1, 1)
    with duckdb.connect(str(world.agency_path)) as conn:
        conn.execute("update validated.people set family_name = 'Kettleborough' where record_id = 'SC1'")
    world.sql("insert into linked.summary values ('kettleborough', 7)")
    found = world.audit()
    assert found.identifier_parts == (1, 1) and ("linked.summary.label", "name") in _found(found), found.leaks


def test_the_phrase_cache_stays_in_the_agency_zone(world: World):
    world.land(_newcomer(), [("2018-02", "SC9", "home visit")])
    world.audit()
    with duckdb.connect(str(world.agency_path), read_only=True) as conn:
        phrases = {r[0] for r in conn.execute("select phrase from leak_scan_cache.phrases").fetchall()}
    assert {"quartermaine", "ottoline", "4010232137"} <= phrases
    for path in world.state_path.parent.iterdir():  # beside the state: fingerprints and row hashes only
        data = path.read_bytes().lower()
        assert b"quartermaine" not in data and b"4010232137" not in data, path
    with duckdb.connect(str(world.warehouse_path), read_only=True) as conn:
        assert not conn.execute("select count(*) from information_schema.tables where table_schema = "
                                "'leak_scan_cache'").fetchone()[0]


def test_the_old_rows_of_a_rewritten_table_are_scanned_against_the_new_identifiers(world: World):
    """linked.summary, rewritten, keeps its row 'ottoline' (harmless when audited): the newcomer arrives, and that
    row, listed in the ledger, is now a leak."""
    world.land(_newcomer(), [("2018-02", "SC9", "home visit")])
    world.sql("create or replace table linked.summary as select * from linked.summary union all select 'moves', 2")
    result = world.audit()
    assert result.warehouse_rows[0] == 1 + _newcomer().height + 1  # the new summary row, people row, note
    assert ("linked.summary.label", "name") in _found(result), result.leaks
    assert result.leaks == world.audit(full=True).leaks


def test_content_already_audited_is_read_only_in_columns_holding_a_new_key_token(world: World):
    world.sql("create table linked.wide as select range AS n, 'ward ' || (range % 7) AS label, "
              "'never a name' AS note FROM range(50)")
    assert world.audit().passed  # a new table: scanned whole against every identifier, and indexed
    world.land(_newcomer(), [("2018-02", "SC9", "home visit")])
    result = world.audit()
    # of the columns already audited, those holding a key token of the newcomer's phrases: the notes ("the
    # Quartermaine family"), linked.summary's label ("ottoline"), the names' tokens of pseudonymised.people
    assert result.old_columns is not None and result.old_columns < 8
    assert {("pseudonymised.notes.note", "name"), ("linked.summary.label", "name")} <= _found(result)
    assert result.leaks == world.audit(full=True).leaks


def test_without_its_token_index_content_already_audited_is_read_whole_and_indexed(world: World):
    for index in world.state_path.parent.glob("*.tokens-*.parquet"):
        index.unlink()
    world.land(_newcomer(), [("2018-02", "SC9", "home visit")])
    result = world.audit()
    assert result.old_columns is None and ("linked.summary.label", "name") in _found(result)
    assert result.leaks == world.audit(full=True).leaks
    world.land(_newcomer(**STRANGER), [("2018-03", "SC8", "home visit")])
    world.sql("delete from pseudonymised.notes where record_id = 'SC2'; delete from linked.summary")
    world.texts.clear()
    for path in world.artifacts.iterdir():
        path.unlink()
    assert world.audit(full=True).passed
    assert AuditState.from_json(world.state_path.read_text()).token_index  # a full rescan indexes it all
    world.land(_newcomer(**{**STRANGER, "record_id": "SC7", "given_name": "Wilhelmina"}), [("2018-04", "SC7", "x")])
    assert world.audit().old_columns is not None


def test_an_unreadable_token_index_means_reading_more_not_failing(world: World):
    for index in world.state_path.parent.glob("*.tokens-*.parquet"):
        index.write_bytes(b"not parquet")
    world.land(_newcomer(), [("2018-02", "SC9", "home visit")])
    result = world.audit()
    assert result.old_columns is None and ("linked.summary.label", "name") in _found(result)
    assert result.leaks == world.audit(full=True).leaks


def test_the_token_index_is_merged_in_duckdb_once_it_has_too_many_files(tmp_path: Path):
    """A file per audit, merged into one past MAX_INDEX_FILES (a year of months at 1.5M: 8.9 s and +3.2 GB when
    polars did it): distinct tokens, the columns of tables gone left out, and an unreadable file kept, not fatal."""
    state_path, conn = tmp_path / "audit" / "state.json", duckdb.connect()

    def tokens(*pairs: tuple[str, int]) -> pl.DataFrame:
        return pl.DataFrame({"loc": [loc for loc, _ in pairs], "tok": [tok for _, tok in pairs]},
                            schema={"loc": pl.String, "tok": pl.UInt64})

    files: list[str] = []
    for month in range(MAX_INDEX_FILES):
        files = save_index(state_path, files, [tokens(("linked.person.ward", month), ("old.gone.name", 7))],
                           {"linked.person"}, conn)
    assert len(files) == MAX_INDEX_FILES  # one file per audit so far
    merged = save_index(state_path, files, [tokens(("linked.person.ward", 3), ("linked.person.ward", 99)),
                                            tokens(("linked.person_link.source", 1 << 63))],
                        {"linked.person", "linked.person_link"}, conn)
    assert len(merged) == 1
    index = read_index(state_path, merged).sort("loc", "tok")
    assert index.rows() == [("linked.person.ward", t) for t in [*range(MAX_INDEX_FILES), 99]] + [
        ("linked.person_link.source", 1 << 63)]  # each token once; "old.gone" is a table no more
    (state_path.parent / files[0]).write_bytes(b"not parquet")
    kept = save_index(state_path, files, [tokens(("linked.person.ward", 5))], {"linked.person"}, conn)
    assert kept[:-1] == files and len(kept) == MAX_INDEX_FILES + 1  # nothing lost: the next audit reads whole
    assert not [p for p in state_path.parent.glob("*.parquet") if p.name not in {*kept, *merged}]


def test_fingerprints_made_with_the_row_hashes_are_duckdbs(world: World):
    """One pass gives the fingerprints and the ledger's row hashes: the fingerprints are DuckDB's own sums."""
    from ed_pipeline.privacy.leak_scan import table_fingerprints

    world.sql("insert into linked.summary select 'row ' || i, i * 7919 from range(5000) t(i)")  # sums past 2^64
    with duckdb.connect(str(world.warehouse_path), read_only=True) as conn:
        hashes: list[pl.DataFrame] = []
        assert table_fingerprints(conn, row_hashes=hashes) == table_fingerprints(conn)
        rows = conn.execute("select count(*) from linked.summary").fetchone()[0]
    summary = pl.concat(hashes).filter(pl.col("unit") == "linked.summary")
    assert summary.height == rows and summary["h"].n_unique() == rows


def test_old_rows_aligned_with_a_corrected_date_of_birth_are_found(world: World):
    """The row-aligned check of content already audited asks only about re-sent records whose date of birth
    changed: a row written before the correction that holds the corrected date is found, as a full rescan finds."""
    first = records()
    corrected = first.with_columns(date_of_birth=pl.col("date_of_birth") + pl.duration(days=3))
    visits = corrected.select("source", "record_id", seen=pl.col("date_of_birth"))  # noqa: F841 (read by DuckDB)
    with duckdb.connect(str(world.warehouse_path)) as conn:
        conn.execute("create table linked.visits as select * from visits")
    assert world.audit().passed  # nobody was born on those days yet
    world.land(pl.concat([_month(corrected, "2018-02"), _newcomer()]), [("2018-02", "SC9", "referral")])
    result = world.audit()
    assert result.mode.startswith("incremental since ")
    hows = {(leak.location, leak.how) for leak in result.leaks if leak.kind == "date_of_birth"}
    assert ("linked.visits.seen", "row-aligned") in hows, result.leaks
    full = world.audit(full=True)
    assert ("linked.visits.seen", "row-aligned") in {(leak.location, leak.how) for leak in full.leaks}
    assert _found(result) == _found(full)


def test_a_row_is_listed_only_under_its_own_table():
    def frame(unit: str, *hashes: int) -> pl.DataFrame:
        return pl.DataFrame({"unit": [unit] * len(hashes), "h": list(hashes)},
                            schema={"unit": pl.String, "h": pl.UInt64})

    ledger = pl.concat([frame("a.t", 1, 2), frame("b.t", 3)])
    hashes = [frame("a.t"), frame("a.t", 1, 2, 3, 3), frame("b.t", 1, 3), frame("c.t", 5), frame("d.t", 6)]
    new = unlisted_rows(hashes, {"a.t", "b.t", "c.t"}, ledger).select("unit", "h")
    # a.t's 3 and b.t's 1 are listed only under the other table; c.t has no ledger; d.t has not changed
    assert sorted(new.rows()) == [("a.t", 3), ("a.t", 3), ("b.t", 1), ("c.t", 5)]
    assert unlisted_rows(hashes, {"a.t"}, None).select("unit", "h").rows() == [
        ("a.t", 1), ("a.t", 2), ("a.t", 3), ("a.t", 3)]


def test_texts_already_audited_are_read_again_only_where_a_new_identifier_could_be(world: World):
    # a second passing audit indexes two more runs: one with the newcomer's date of birth after "born", one clean
    world.texts["dagster run 3"] = [("dagster run 3 log", "a child born 19/08/2015 was seen")]
    world.texts["dagster run 0"] = [("dagster run 0 step", "materialised 3 partitions in 4.2 s")]
    assert world.audit().passed
    assert world.texts_read[-1] == {"dagster run 0", "dagster run 3"}

    # the newcomer's NHS number, name and birth date are new identifiers now
    world.land(_newcomer(), [("2018-02", "SC9", "referral")])
    result = world.audit()
    # run 1 holds her NHS number and name, run 3 her date of birth after "born"; run 0 none of them: not read
    assert world.texts_read[-1] == {"dagster run 1", "dagster run 3"}
    assert result.texts_read_again == (2, 3)
    assert {("dagster run 1 step", "nhs_number"), ("dagster run 1 note", "date_of_birth"),
            ("dagster run 3 log", "date_of_birth")} <= _found(result), result.leaks

    # without a text index (a state written before it), every text already audited is read
    state = json.loads(world.state_path.read_text())
    world.state_path.write_text(json.dumps({**state, "text_index": None}))
    assert world.audit().texts_read_again == (3, 3)


def test_a_text_is_read_again_for_a_new_address_only_where_its_words_follow_one_another(world: World):
    # the words of the newcomer's address, audited while nobody lived there: apart in one text, split between two
    # texts of one run, and in order
    world.texts["dagster run 4"] = [("dagster run 4 note", "Walk number 9 past Saffron House")]
    world.texts["dagster run 5"] = [("dagster run 5 a", "room 9 Saffron"), ("dagster run 5 b", "Walk")]
    world.texts["dagster run 6"] = [("dagster run 6 note", "moved to 9 Saffron Walk last week")]
    assert world.audit().passed

    # a newcomer whose only identifiers in those texts are her address's (names and dates found nowhere)
    world.land(_newcomer(given_name="Hermione", family_name="Blackwood", nhs_number=None, postcode=None,
                         date_of_birth=dt.date(2016, 1, 2)), [("2018-02", "SC9", "referral")])
    result = world.audit()
    # the scan matches an address as consecutive words of one text: only run 6 can hold it
    assert world.texts_read[-1] == {"dagster run 6"}
    assert ("dagster run 6 note", "address") in _found(result), result.leaks
    assert not {loc for loc, _ in _found(result)} & {"dagster run 4 note", "dagster run 5 a", "dagster run 5 b"}


def test_the_deployments_directories_are_left_out_of_the_texts_and_files_it_reads(world: World):
    """A data directory under a login named like a resident, in a run's events and an MLmodel file: found as
    a name unless the audit is told it is the deployment's own."""
    home = "/home/jonathon/ed_pipeline/data"  # Jonathon Pemberton-Smythe's forename
    world.texts["dagster run 9"] = [("dagster run 9 step", f"Loading file from {home}/warehouse.duckdb")]
    (world.artifacts / "MLmodel").write_text(f"artifact_path: file://{home}/mlflow/artifacts\n")
    assert {kind for _, kind in _found(world.audit())} == {"name"}
    assert world.audit(local=(home,)).passed


def _distinct_cache(world: World) -> tuple[set[tuple[str, str]], set[tuple[str, str]], set[str]]:
    """(the cached distinct phrases, those of every cached part, the parts the distinct ones are of)."""
    with duckdb.connect(str(world.agency_path), read_only=True) as conn:
        kept = set(conn.execute("select phrase, kind from leak_scan_cache.distinct_phrases").fetchall())
        every = set(conn.execute("select distinct phrase, kind from leak_scan_cache.phrases").fetchall())
        parts = {r[0] for r in conn.execute("select part from leak_scan_cache.distinct_parts").fetchall()}
    return kept, every, parts


def test_the_distinct_phrases_are_kept_and_a_month_adds_its_own(world: World):
    """The agency zone keeps the distinct phrases of the parts it lists; a month's audit adds its new parts'
    phrases to them, and its new identifiers are the same as without the cache."""
    world.land(_newcomer(), [("2018-02", "SC9", "home visit")])
    result = world.audit()
    kept, every, parts = _distinct_cache(world)
    assert kept == every and parts == {"validated.people|2018-01", "validated.people|2018-02"}
    assert ("quartermaine", "name") in kept
    uncached = world.audit(agency_read_only=True)  # nothing cached: everything made from the records
    assert (result.identifiers, result.new_identifiers) == (uncached.identifiers, uncached.new_identifiers)
    assert result.leaks == uncached.leaks and ("pseudonymised.notes.note", "name") in _found(result)


def test_after_a_failed_audit_the_new_identifiers_are_still_those_new_since_the_last_passing_one(world: World):
    """A failing audit leaves the state of the last passing one, but the distinct phrases it kept include the
    month's: the next audit must still scan content already audited against the month's identifiers (here the
    newcomer's surname, in a note of 2018-01), not count them as old."""
    world.land(_newcomer(), [("2018-02", "SC9", "seen with Kowalczyk at the clinic")])
    world.sql("delete from pseudonymised.notes where record_id = 'SC2'")  # the old note naming her: gone for now
    failed = world.audit()
    assert not failed.passed and ("pseudonymised.notes.note", "name") in _found(failed)
    world.sql("update pseudonymised.notes set note = 'home visit' where record_id = 'SC9'")
    again = world.audit()  # linked.summary's 'ottoline', which the last passing audit scanned, is a leak now
    assert again.new_identifiers == failed.new_identifiers > 0
    assert ("linked.summary.label", "name") in _found(again), again.leaks
    kept, every, _ = _distinct_cache(world)
    assert kept == every


def test_a_row_changed_in_place_is_scanned_whatever_the_table_row_count_or_rowids(world: World):
    """The new rows of a changed table are read again by their rowid (a view's, which has none, by their hash):
    a row updated in place, in a table whose row count is unchanged, is scanned against every identifier, and so
    is the same row seen through a view; rows deleted before it (rowids that moved on) change nothing."""
    world.sql("insert into linked.summary select 'ward ' || i, i from range(20) t(i)")
    world.sql("create view linked.summary_view as select label, n from linked.summary where n >= 0")
    assert world.audit().passed
    world.sql("update linked.summary set label = 'seen with kowalczyk' where label = 'ward 17'")
    result = world.audit()
    assert result.warehouse_rows[0] == 2  # the changed row, in the table and in the view
    assert {("linked.summary.label", "name"), ("linked.summary_view.label", "name")} <= _found(result), result.leaks
    assert result.leaks == world.audit(full=True).leaks

    world.sql("update linked.summary set label = 'ward 17' where label = 'seen with kowalczyk'")
    assert world.audit().passed
    world.sql("delete from linked.summary where n < 5")
    world.sql("update linked.summary set label = 'a note on mary-ann kowalczyk' where label = 'ward 12'")
    moved = world.audit()
    assert moved.warehouse_rows[0] == 2
    assert {("linked.summary.label", "name"), ("linked.summary_view.label", "name")} <= _found(moved), moved.leaks
    assert moved.leaks == world.audit(full=True).leaks


def test_artifact_files_already_audited_are_read_again_only_where_a_new_identifier_could_be(world: World):
    """MLflow's files are in the text index too: after the newcomer arrives, the model card that holds her
    postcode is read again (and the leak found), a clean one is not; without the index every one is read."""
    (world.artifacts / "clean_card.md").write_text("# Model card\nWards: Pitsea, Vange\nAUC 0.81\n")
    assert world.audit().passed
    world.land(_newcomer(), [("2018-02", "SC9", "referral")])
    result = world.audit()
    assert result.files_read_again == (1, 2)
    assert (str(world.artifacts / "old_card.md"), "postcode") in _found(result), result.leaks
    assert result.leaks == world.audit(full=True).leaks

    state = json.loads(world.state_path.read_text())
    world.state_path.write_text(json.dumps({**state, "text_index": None}))
    assert world.audit().files_read_again == (2, 2)


def test_a_full_audit_keeps_the_distinct_phrases_so_the_month_after_reads_only_its_own(world: World):
    """The fixture's audit was a full one: it keeps the distinct phrases of every part, as a month's audit does,
    so that the month after it matches only its own parts' phrases against them. Old content holding one of the
    month's new phrases (the 2018-01 note "the Quartermaine family", linked.summary's 'ottoline') is still found,
    with the same new identifiers and leaks as without the cache."""
    kept, every, parts = _distinct_cache(world)
    assert kept == every and parts == {"validated.people|2018-01"}
    world.land(_newcomer(), [("2018-02", "SC9", "home visit")])
    result = world.audit()
    assert result.mode.startswith("incremental since ") and result.identifier_parts == (1, 1)
    assert {("pseudonymised.notes.note", "name"), ("linked.summary.label", "name")} <= _found(result), result.leaks
    uncached = world.audit(agency_read_only=True)  # nothing cached: everything made from the records
    assert (result.identifiers, result.new_identifiers) == (uncached.identifiers, uncached.new_identifiers)
    assert result.leaks == uncached.leaks == world.audit(full=True).leaks


def test_old_rows_of_every_re_dated_record_are_read_by_their_keys(world: World):
    """The row-aligned check of content already audited reads each keyed table's rows of the re-dated records by
    their keys, written into the query as constants (one with a quote in it too): every such row is counted, as a
    full rescan counts them."""
    first = records().with_columns(record_id=pl.when(pl.col("record_id") == "SC1").then(pl.lit("SC'1"))
                                   .otherwise(pl.col("record_id")))
    with duckdb.connect(str(world.agency_path)) as conn:
        conn.execute("update validated.people set record_id = 'SC''1' where record_id = 'SC1'")
    corrected = first.with_columns(date_of_birth=pl.col("date_of_birth") + pl.duration(days=3))
    visits = pl.concat([  # noqa: F841 (read by DuckDB): two rows a record, on its corrected date, and others'
        corrected.select("source", "record_id", seen=pl.col("date_of_birth")),
        corrected.select("source", "record_id", seen=pl.col("date_of_birth")),
        corrected.select(pl.lit("elsewhere").alias("source"), "record_id", seen=pl.col("date_of_birth"))])
    with duckdb.connect(str(world.warehouse_path)) as conn:
        conn.execute("create table linked.visits as select * from visits")
    assert world.audit().passed  # nobody was born on those days yet
    world.land(pl.concat([_month(corrected, "2018-02"), _newcomer()]), [("2018-02", "SC9", "referral")])
    result = world.audit()
    assert result.mode.startswith("incremental since ")
    aligned = [leak for leak in result.leaks if leak.how == "row-aligned"]
    assert [(leak.location, leak.count) for leak in aligned] == [("linked.visits.seen", 2 * first.height)]
    full = world.audit(full=True)
    assert [leak for leak in full.leaks if leak.how == "row-aligned"] == aligned


def test_key_filter_names_every_record_or_none():
    from ed_pipeline.privacy.leak_scan import MAX_KEY_LITERALS, _key_filter

    people = pl.DataFrame({"source": ["a", "b", None], "record_id": ["x'1", "y", "z"]})
    assert _key_filter(people) == "CAST(t.record_id AS VARCHAR) IN ('x''1', 'y') AND CAST(t.source AS VARCHAR) IN " \
                                  "('a', 'b')"
    assert _key_filter(people.head(0)) is None
    n = MAX_KEY_LITERALS + 1
    many = pl.DataFrame({"source": ["a"] * n, "record_id": [str(i) for i in range(n)]})
    assert _key_filter(many) is None


def test_a_column_is_read_again_only_if_it_holds_every_token_of_a_new_phrase():
    """The token index flags a column already audited for the new identifiers when it holds every token of one of
    their phrases (here the newcomer's NHS number written '401 023 2137'), or a word saying "date of birth"; not
    for one token alone (a year column holding '2137', a ward holding 'saffron'). A token the index lists twice
    (two audits' files) counts once."""
    from ed_pipeline.privacy.audit import flagged_columns

    new_ids = identifiers_from_records(_newcomer())
    cells = {"t.code": ["401 023 2137"], "t.cells": ["401", "023", "x 2137"], "t.year": ["2137", "2015"],
             "t.ward": ["saffron"], "t.note": ["born then"], "t.twice": ["401 023", "401", "2137"]}
    rows = pl.DataFrame([(loc, v) for loc, vs in cells.items() for v in vs],  # noqa: F841 (read by DuckDB)
                        schema=["loc", "v"], orient="row")
    with duckdb.connect() as conn:
        index = conn.execute("SELECT loc, hash(unnest(string_split(v, ' '))) AS tok FROM rows").pl()
        assert flagged_columns(conn, index, new_ids) == {"t.code", "t.cells", "t.note", "t.twice"}


def test_old_content_holding_every_token_of_a_new_phrase_is_found(world: World):
    """Old content holding the newcomer's NHS number ('401 023 2137', its tokens listed by two audits' index files)
    is found, as a full rescan finds it."""
    world.sql("create table linked.codes (code varchar, year varchar)")
    world.sql("insert into linked.codes values ('x 401', '2137')")
    assert world.audit().passed
    world.sql("insert into linked.codes values ('call 401 023 2137', '2015')")
    assert world.audit().passed  # nobody has that NHS number yet
    world.land(_newcomer(), [("2018-02", "SC9", "home visit")])
    result = world.audit()
    assert ("linked.codes.code", "nhs_number") in _found(result), result.leaks
    assert result.leaks == world.audit(full=True).leaks
