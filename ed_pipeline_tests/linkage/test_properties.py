"""Properties of the linkage core over random inputs (hypothesis): households, stable ids and the records linkage
reads do not depend on the order rows are read or stored in (DuckDB returns a table's rows in no set order, and a
killed-then-resumed or incremental write stores them in another); ids carry over when nothing changed and are well
formed; linked.person updated for the persons touched equals it built whole; a table written by its difference
holds exactly the rows given."""

from __future__ import annotations

from datetime import date, timedelta

import duckdb
import polars as pl
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ed_pipeline.linkage.households import households
from ed_pipeline.linkage.ids import stable_cluster_ids
from ed_pipeline.linkage.spec import TokenColumns
from ed_pipeline.linkage.tables import PERSON_SCHEMA, person_table, person_table_update, write_difference
from ed_pipeline.linkage.tokens import read_records, read_tokens

PROPERTY = settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
WITH_DUCKDB = settings(PROPERTY, max_examples=50)  # a database or two an example
FIRST_DAY = date(2014, 1, 1)

# Few persons, places and days, so that people share places, move together, leave and come back; days a month
# apart over four years, so that spells end (OPEN_SPELL_DAYS) and households move and chain.
persons = st.sampled_from([f"p{i}" for i in range(7)])
days = st.integers(0, 48).map(lambda month: FIRST_DAY + timedelta(days=30 * month))
maybe = lambda values: st.one_of(st.none(), st.sampled_from(values))  # noqa: E731
records = st.lists(
    st.tuples(persons, days, maybe(["u0", "u1", "u2", "u3"]), maybe(["a0", "a1", "a2"]), maybe(["s0", "s1"])),
    min_size=1, max_size=40)


def frames(rows: list[tuple]) -> tuple[pl.DataFrame, pl.DataFrame]:
    """tokens (source, record_id, event_date and the three place tokens) and links (record -> person)."""
    ids = [f"r{i}" for i in range(len(rows))]
    tokens = pl.DataFrame({"source": "housing", "record_id": ids, "event_date": [r[1] for r in rows],
                           "tok_uprn": [r[2] for r in rows], "tok_address": [r[3] for r in rows],
                           "tok_address_street": [r[4] for r in rows]},
                          schema_overrides={"tok_uprn": pl.String, "tok_address": pl.String,
                                            "tok_address_street": pl.String})
    links = pl.DataFrame({"source": "housing", "record_id": ids, "person_id": [r[0] for r in rows]})
    return tokens, links


def shuffled(frame: pl.DataFrame, seed: int) -> pl.DataFrame:
    return frame.sample(fraction=1.0, shuffle=True, seed=seed)


def in_order(frame: pl.DataFrame) -> pl.DataFrame:
    return frame.sort(frame.columns, nulls_last=True)


def households_by_stays(membership: pl.DataFrame) -> dict[frozenset, str]:
    """Each household's id, by its set of stays (person, start)."""
    return {frozenset(zip(group["person_id"], group["valid_from"], strict=True)): household_id
            for (household_id,), group in membership.group_by("household_id")}


@PROPERTY
@given(records, st.integers(0, 2**32 - 1))
def test_households_do_not_depend_on_the_order_of_the_rows(rows, seed):
    tokens, links = frames(rows)
    first = households(tokens, links)
    again = households(shuffled(tokens, seed), shuffled(links, seed + 1))
    assert in_order(again.membership).equals(in_order(first.membership))
    assert in_order(again.spells).equals(in_order(first.spells))
    # and given the previous refresh's membership in another order, the same ids
    carried = households(shuffled(tokens, seed + 2), links, previous=shuffled(first.membership, seed + 3))
    assert in_order(carried.membership).equals(in_order(first.membership))


@PROPERTY
@given(records)
def test_a_household_spell_of_a_person_ends_where_their_next_begins(rows):
    membership = households(*frames(rows)).membership
    assert membership["household_id"].null_count() == 0  # (no rows when no record says where anyone lived)
    for (_,), stays in membership.sort("person_id", "valid_from").group_by("person_id", maintain_order=True):
        starts, ends = stays["valid_from"].to_list(), stays["valid_to"].to_list()
        assert all(end is not None and start < end for start, end in zip(starts[:-1], ends[:-1], strict=True))
        assert ends[:-1] == starts[1:], "a gap or an overlap between one household and the next"
        assert ends[-1] is None or starts[-1] < ends[-1]


@PROPERTY
@given(records, records)
def test_households_keep_their_ids_across_refreshes(rows, later):
    """A refresh with nothing new keeps every id and says nothing changed. With more records, the households are
    those of a first build (only the ids are carried over), and a household whose stays are all as they were
    keeps its id."""
    tokens, links = frames(rows)
    first = households(tokens, links)
    same = households(tokens, links, previous=first.membership)
    assert in_order(same.membership).equals(in_order(first.membership)) and same.crosswalk.height == 0

    tokens, links = frames(rows + later)
    fresh = households_by_stays(households(tokens, links).membership)
    carried = households_by_stays(households(tokens, links, previous=first.membership).membership)
    assert set(carried) == set(fresh)
    before = households_by_stays(first.membership)
    assert all(carried[stays] == before[stays] for stays in set(carried) & set(before))


# Clusters of members m0..m11: what a refresh's clustering gives, and what the previous one gave.
members = [f"m{i}" for i in range(12)]
clusterings = st.lists(st.integers(0, 5), min_size=len(members), max_size=len(members))


def clustering(labels: list[int], column: str, prefix: str = "") -> pl.DataFrame:
    return pl.DataFrame({"member": members, column: [f"{prefix}{label}" for label in labels]})


@PROPERTY
@given(clusterings, clusterings, st.integers(0, 2**32 - 1), st.sets(st.integers(0, 5), max_size=3))
def test_stable_ids_follow_the_rules_in_any_row_order(before, now, seed, retired_labels):
    previous = clustering(before, "old", prefix="P")
    current = clustering(now, "cluster")
    retired = {f"P{label}" for label in retired_labels} - set(previous["old"])  # merged away long ago
    assigned, crosswalk = stable_cluster_ids(previous, current, prefix="P", retired=retired)
    again, crosswalk_again = stable_cluster_ids(shuffled(previous, seed), shuffled(current, seed + 1), prefix="P",
                                                retired=retired)
    assert in_order(again).equals(in_order(assigned)) and in_order(crosswalk_again).equals(in_order(crosswalk))

    ids = dict(assigned.iter_rows())
    assert set(ids) == set(current["cluster"]) and len(set(ids.values())) == len(ids)  # one id each, none twice
    assert not set(ids.values()) & retired
    # an old id carried over lives on in the cluster holding most of its members
    for cluster, pid in ids.items():
        if pid in set(previous["old"]):
            held = current.join(previous, on="member").filter(pl.col("old") == pid)
            counts = held.group_by("cluster").len()
            assert counts.filter(pl.col("cluster") == cluster)["len"].item() == counts["len"].max()
    # every old id not carried over is named in the crosswalk
    assert set(previous["old"]) - set(ids.values()) <= set(crosswalk["old_id"])
    # the same clusters again keep every id and change nothing
    mine = current.join(assigned, on="cluster").select("member", pl.col("id").alias("old"))
    same, nothing = stable_cluster_ids(mine, current, prefix="P", retired=retired)
    assert dict(same.iter_rows()) == ids and nothing.height == 0


rows_of = st.lists(st.tuples(st.integers(0, 3), st.sampled_from(["a", "b", None])), max_size=12)


@WITH_DUCKDB
@given(rows_of, rows_of)
def test_a_table_written_by_its_difference_holds_exactly_the_rows_given(old, new):
    schema = {"k": pl.Int64, "v": pl.String}
    before, wanted = (pl.DataFrame(rows, schema=schema, orient="row") for rows in (old, new))
    with duckdb.connect() as con:
        con.execute("create table t (k bigint, v varchar)")
        if before.height:
            con.execute("insert into t select * from before")
        written = write_difference(con, "t", wanted, most=1.0)
        got = con.execute("select * from t").pl()
    assert in_order(got).equals(in_order(wanted if written else before))


# A person's records: (person, source, event day, birth year, birth month, sex), few of each so that modes tie.
person_records = st.lists(
    st.tuples(persons, st.sampled_from(["housing", "benefits", "police_incidents"]), days,
              maybe([2012, 2013]), maybe([1, 2]), maybe(["F", "M", "U"])),
    min_size=1, max_size=30)


def person_frames(rows: list[tuple], first_id: int = 0) -> tuple[pl.DataFrame, pl.DataFrame]:
    """tokens (one row per record) and links for `rows`, record ids counted from `first_id`."""
    ids = [f"r{first_id + i}" for i in range(len(rows))]
    tokens = pl.DataFrame({"source": [r[1] for r in rows], "record_id": ids, "event_date": [r[2] for r in rows],
                           "birth_year": [r[3] for r in rows], "birth_month": [r[4] for r in rows],
                           "sex": [r[5] for r in rows]},
                          schema_overrides={"birth_year": pl.Int32, "birth_month": pl.Int32, "sex": pl.String})
    return tokens, pl.DataFrame({"source": tokens["source"], "record_id": ids, "person_id": [r[0] for r in rows]})


@PROPERTY
@given(person_records, person_records, st.lists(st.tuples(st.integers(0, 29), maybe([2011, 2014])), max_size=4),
       st.integers(0, 2**32 - 1))
def test_linked_person_updated_for_the_persons_touched_equals_it_built_whole(rows, new_rows, resent, seed):
    """A month's `linked.person`: the previous table with the rows of the persons touched (a record new to them, or
    one of theirs sent again with other values) built again, equals the table built from every record."""
    tokens, links = person_frames(rows)
    previous = person_table(links, tokens).cast(PERSON_SCHEMA)
    # records sent again with another birth year (a correction), and new records, some of new persons
    resent = {f"r{i}": year for i, year in resent if i < len(rows)}
    tokens = tokens.with_columns(pl.col("record_id").replace_strict(resent, default=pl.col("birth_year"),
                                                                   return_dtype=pl.Int32).alias("birth_year")
                                 if resent else pl.col("birth_year"))
    new_tokens, new_links = person_frames(new_rows, first_id=len(rows))
    tokens, links = shuffled(pl.concat([tokens, new_tokens]), seed), shuffled(pl.concat([links, new_links]), seed)
    touched = links.filter(pl.col("record_id").is_in(list(resent) + new_links["record_id"].to_list()))["person_id"]
    updated, fresh = person_table_update(previous, links, tokens, touched)
    assert updated.equals(person_table(links, tokens).cast(PERSON_SCHEMA))
    assert set(fresh["person_id"]) == set(touched)


# Versions of a few records over three months, some twice in one month (written otherwise than by the ingest):
# (record, month, event day, row of the file, family-name token).
versions = st.lists(st.tuples(st.sampled_from(["r0", "r1", "r2", "r3"]), st.sampled_from(["2017-01", "2017-02",
                                                                                         "2017-03"]),
                              days, st.integers(1, 5), st.sampled_from(["f0", "f1", "f2"])),
                    min_size=1, max_size=25, unique_by=lambda v: (v[0], v[1], v[3]))


@WITH_DUCKDB
@given(versions, st.integers(0, 2**32 - 1))
def test_linkage_reads_each_records_latest_version_whatever_order_it_is_stored_in(rows, seed):
    """Each record's row of its latest month; of two rows of one record in one month, dbt staging's: the latest
    event date, then the later row of the file. The same for the whole table (`read_tokens`) and for chosen
    versions (`read_records`), in any stored order."""
    table = pl.DataFrame(rows, schema=["record_id", "extract_month", "event_date", "_row_number", "tok_family_name"],
                         orient="row").with_columns(pl.lit("police_incidents").alias("source"))
    # the reference: each record's rows in (month, event day, row of the file) order, the last one kept
    expected = {v[0]: v[4] for v in sorted(rows, key=lambda v: (v[1], v[2], v[3]))}
    read = []
    for stored in (table, shuffled(table, seed)):
        with duckdb.connect() as conn:
            conn.execute("create schema pseudonymised")
            conn.register("stored", stored)
            conn.execute("create table pseudonymised.police_incidents as select * from stored")
            tokens = read_tokens(conn, TokenColumns())
            read.append((tokens, read_records(conn, TokenColumns(), tokens.select("source", "record_id",
                                                                                  "extract_month"))))
    (tokens, records), (tokens_again, records_again) = read
    assert dict(zip(tokens["record_id"], tokens["tok_family_name"], strict=True)) == expected
    assert records.equals(tokens.select(records.columns)) and "_row_number" not in tokens.columns
    assert tokens_again.equals(tokens) and records_again.equals(records)
