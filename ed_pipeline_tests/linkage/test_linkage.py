"""link_people and friends on a small labelled world, pseudonymised by the privacy package."""

from __future__ import annotations

from datetime import date

import duckdb
import polars as pl
import pytest

from ed_pipeline.linkage import (
    LinkageModel,
    TokenColumns,
    TrainingConfig,
    assign_stable_ids,
    evaluate_links,
    id_stability,
    link,
    link_people,
    train_model,
)
from ed_pipeline.linkage.cleartext import clear_tokens
from ed_pipeline.linkage.households import households, observations
from ed_pipeline.linkage.ids import TakenIds, id_candidate, ids_ever_named, new_person_id, stable_cluster_ids
from ed_pipeline.linkage.link import _candidates, link_incremental
from ed_pipeline.linkage.model import round_parameters
from ed_pipeline.linkage.review import accumulate_decisions, decisions_from_review, review_pairs, undecided
from ed_pipeline.linkage.tables import (
    APPENDED_TABLES,
    added_links,
    linked_tables,
    person_link_table,
    person_table,
    person_table_update,
    replace_rows,
    save_model_artifacts,
    write_tables,
)
from ed_pipeline.linkage.tokens import monthly_link_columns, read_candidates, read_records, read_tokens
from ed_pipeline_tests.linkage.world import make_tokens, make_world

FAST = TrainingConfig(u_max_pairs=5e5, em_max_pairs=5e5)
MONTHS = ("2017-01", "2017-02", "2017-03")


@pytest.fixture(scope="module")
def world():
    records, truth, hh = make_world(households=500, seed=11, months=MONTHS)
    return records, make_tokens(records), truth, hh


@pytest.fixture(scope="module")
def model(world):
    _, tokens, _, _ = world
    return train_model(tokens, config=FAST)


@pytest.fixture(scope="module")
def linked(world, model):
    _, tokens, _, _ = world
    return link(tokens, model)


def test_link_people_one_row_per_record_and_accurate(world):
    _, tokens, truth, _ = world
    out = link_people(tokens, config=FAST)
    assert out.columns == ["source", "record_id", "person_id"]
    assert out.height == tokens.height
    assert out.select(pl.struct("source", "record_id").is_unique().all()).item()
    m = evaluate_links(out, truth)
    assert m["precision"] >= 0.99, m
    assert m["f1"] >= 0.98, m


def test_model_trains_u_and_m_and_round_trips_as_json(model, linked, world, tmp_path):
    params = model.parameters()
    assert params.filter(pl.col("m_probability").is_null() & pl.col("u_probability").is_null()).height < 3
    exact = params.filter((pl.col("comparison") == "date_of_birth") & (pl.col("label") == "exact"))
    assert exact["match_weight"].item() > 5
    assert any(lv.get("tf_adjustment_column") for c in model.settings["comparisons"]
               for lv in c["comparison_levels"])
    again = LinkageModel.from_json(model.to_json())
    assert again.to_dict() == model.to_dict()
    path = model.save(tmp_path / "m.json")
    relinked = link(world[1], LinkageModel.load(path), keep_pairs=False)
    assert relinked.links.sort("source", "record_id")["person_id"].equals(
        linked.links.sort("source", "record_id")["person_id"])
    artifacts = save_model_artifacts(model, tmp_path / "art")
    assert artifacts["match_weights_chart"].suffix == ".html"
    assert "vega" in artifacts["match_weights_chart"].read_text().lower()


def test_the_match_weights_chart_is_drawn_again_only_for_other_settings(model, tmp_path, monkeypatch):
    """A month links with the saved model: its chart, drawn when the model was trained, is kept, not drawn again
    every month; a model with other settings (trained again) gets its own."""
    first = save_model_artifacts(model, tmp_path)["match_weights_chart"]
    drawn = []
    draw = LinkageModel.match_weights_chart
    monkeypatch.setattr(LinkageModel, "match_weights_chart", lambda self, path: drawn.append(path) or draw(self, path))
    assert save_model_artifacts(LinkageModel.from_json(model.to_json()), tmp_path)["match_weights_chart"] == first
    assert drawn == []
    other = LinkageModel.from_json(model.to_json())
    other.settings["probability_two_random_records_match"] /= 2
    assert save_model_artifacts(other, tmp_path)["match_weights_chart"] == first and drawn == [first]
    first.unlink()
    save_model_artifacts(other, tmp_path)
    assert drawn == [first, first] and "vega" in first.read_text().lower()


def test_new_ids_of_a_month_avoid_the_existing_ones_as_a_set_of_every_id_did():
    """A month's new persons get ids that no existing person has, looked up in the history's ids (TakenIds)
    rather than in a Python set of all of them: the same ids, a salted retry included."""
    seeds = ["benefits\x1f1", "housing\x1f2", "police\x1f3"]
    # the first seed's first two candidates and the second's first are in use
    existing = pl.Series([id_candidate(seeds[0], "P"), id_candidate(seeds[0], "P", 1), id_candidate(seeds[1], "P"),
                          "Pother"], dtype=pl.String)
    as_set, looked_up = set(existing.to_list()), TakenIds(existing, [id_candidate(s, "P") for s in seeds])
    ids = [new_person_id(s, "P", looked_up) for s in [*seeds, seeds[2]]]
    assert ids == [new_person_id(s, "P", as_set) for s in [*seeds, seeds[2]]]
    assert ids[0] == id_candidate(seeds[0], "P", 2) and ids[3] == id_candidate(seeds[2], "P", 1)
    assert not set(ids) & set(existing.to_list()) and len(set(ids)) == 4


def test_ids_new_and_inherited_count_as_they_read_when_grouped():
    """Clusters that inherit an id and clusters given a new one, their ids joined back to the members: an eager
    group-by counts them as the ids read. (Polars 2.1's eager group-by n_unique() and unique() count long strings
    written into a column by Series.scatter as many: a month's new ids written so read 'split' persons, session 20.)"""
    previous = pl.DataFrame({"member": ["a1", "a2"], "old": ["Hkept0000001", "Hkept0000001"]})
    members = [f"{c}{i}" for c in "abcde" for i in (1, 2)]
    current = pl.DataFrame({"member": members, "cluster": [m[0] for m in members]})
    assigned, _ = stable_cluster_ids(previous, current, prefix="H")
    ids = current.join(assigned, on="cluster").with_columns(everyone=pl.lit(1))
    assert ids["id"].n_unique() == 5 and ids.filter(pl.col("cluster") == "a")["id"].unique().to_list() == [
        "Hkept0000001"]
    grouped = ids.group_by("everyone").agg(pl.col("id").n_unique().alias("ids"), pl.col("id").unique().len().alias("u"))
    assert grouped.rows() == [(1, 5, 5)]
    assert ids.group_by("cluster").agg(pl.col("id").n_unique())["id"].to_list() == [1] * 5


def test_training_is_repeatable_to_the_bit(model, world):
    """DuckDB's parallel sums make EM's parameters differ in their last bits from run to run; rounded, a
    re-trained model is the same model, so a killed-and-rerun refresh reproduces every match probability."""
    again = train_model(world[1], config=FAST)
    assert again.parameters().equals(model.parameters())
    assert again.settings["probability_two_random_records_match"] == model.settings[
        "probability_two_random_records_match"]
    noisy = {"probability_two_random_records_match": 0.0012345678901234,
             "comparisons": [{"comparison_levels": [{"m_probability": 0.0035992213854536626, "u_probability": None},
                                                    {"is_null_level": True}]}]}
    other = {"probability_two_random_records_match": 0.0012345678901233,
             "comparisons": [{"comparison_levels": [{"m_probability": 0.0035992213854536613, "u_probability": None},
                                                    {"is_null_level": True}]}]}
    assert round_parameters(noisy) == round_parameters(other)
    assert round_parameters(noisy)["comparisons"][0]["comparison_levels"][0]["m_probability"] == 0.003599221385


def test_any_token_column_names_and_a_subset_of_fields(world):
    """Someone else's tokenised records: other column names, no Bloom filters, no address."""
    _, tokens, truth, _ = world
    theirs = tokens.select(
        pl.col("source").alias("src"), pl.col("record_id").alias("rid"), pl.col("sex").alias("gender"),
        pl.col("birth_year").alias("yob"), pl.col("tok_dob").alias("dob_hash"),
        pl.col("tok_given_name").alias("fn_hash"), pl.col("tok_family_name").alias("sn_hash"),
        pl.col("tok_name_pair").alias("names_hash"), pl.col("tok_postcode").alias("pc_hash"),
        pl.col("tok_postcode_district").alias("district_hash"), pl.col("tok_nhs_number").alias("nhs_hash"),
    )
    spec = TokenColumns(source="src", record_id="rid", sex="gender", birth_year="yob", dob="dob_hash",
                        given="fn_hash", family="sn_hash", name_pair="names_hash", postcode="pc_hash",
                        district="district_hash", nhs="nhs_hash", **{f: None for f in (
                            "group_ref", "role", "event_date", "extract_month", "birth_month", "name_is_initials",
                            "upn", "first_given", "initials", "given_phonetic", "family_phonetic", "name_dob",
                            "dob_month_day", "uprn", "address", "address_street",
                            "bf_given", "bf_family", "bf_name", "bf_address")})
    out = link_people(theirs, spec=spec, config=FAST)
    assert out.columns == ["source", "record_id", "person_id"] and out.height == theirs.height
    m = evaluate_links(out, truth)
    assert m["f1"] >= 0.9, m


def test_ids_are_stable_across_refreshes_and_the_crosswalk_is_typed(world, model, linked):
    _, tokens, truth, _ = world
    first = tokens.filter(pl.col("extract_month") < MONTHS[-1])
    r1 = link(first, model, keep_pairs=False)
    r2 = link(tokens, model, previous=r1.links, keep_pairs=False)
    assert id_stability(r1.links, r2.links) >= 0.99
    assert r2.crosswalk.columns == ["old_id", "new_id", "change", "records"]
    r3 = link(tokens, model, previous=r2.links, keep_pairs=False)  # nothing new: nothing changes
    assert id_stability(r2.links, r3.links) == 1.0
    assert r3.crosswalk.height == 0


def test_incremental_month_keeps_every_id_and_links_new_records(world, model):
    _, tokens, truth, _ = world
    old = tokens.filter(pl.col("extract_month") < MONTHS[-1])
    new = tokens.filter(pl.col("extract_month") == MONTHS[-1])
    r1 = link(old, model, keep_pairs=False)
    r2 = link_incremental(r1.links, old, new, model, keep_pairs=False)
    assert r2.links.height == tokens.height
    assert id_stability(r1.links, r2.links) == 1.0
    meta = r2.model.metadata["last_incremental"]
    assert meta["candidates"] < old.height  # only existing records sharing a blocking key are scored
    m = evaluate_links(r2.links, truth)
    assert m["precision"] >= 0.99 and m["f1"] >= 0.97, m
    # a re-sent record (same key) keeps its person
    again = link_incremental(r2.links, tokens, new.head(5), model, keep_pairs=False)
    assert id_stability(r2.links, again.links) == 1.0 and again.links.height == r2.links.height + 5


def test_a_month_keeps_a_new_record_apart_from_the_person_of_a_member_of_its_group(world, model):
    """Two records of one group (a claim, an incident) that are not duplicates are two people. A new record whose
    group has an existing member B is kept apart from B's person, even where B shares no blocking key with it
    (then only its group makes B a candidate): here the new record copies another record, A, of B's person, so
    that without B it would join that person."""
    _, tokens, _, _ = world
    key = ["source", "record_id"]
    old = tokens.filter(pl.col("extract_month") < MONTHS[-1])
    previous = person_link_table(link(old, model, keep_pairs=False))
    grouped = old.filter(pl.col("group_ref").is_not_null())
    member = grouped.row(0, named=True)  # B
    for copied in old.filter(pl.col("source") != member["source"]).iter_rows(named=True):  # A
        new = pl.DataFrame([{**copied, "source": member["source"], "record_id": "joined-later",
                             "group_ref": member["group_ref"], "extract_month": MONTHS[-1]}], schema=old.schema)
        if _blocks_nothing_with(old, member, new, model):
            break
    else:
        pytest.fail("every record shares a blocking key with the group member")
    # B is A's person (a reviewer joined them, say): the month's record copies A, in B's group
    person = previous.filter((pl.col("source") == copied["source"]) & (pl.col("record_id") == copied["record_id"])
                             )["person_id"].item()
    existing = previous.with_columns(pl.when((pl.col("source") == member["source"])
                                             & (pl.col("record_id") == member["record_id"]))
                                     .then(pl.lit(person)).otherwise(pl.col("person_id")).alias("person_id"))
    month = link_incremental(existing, old, new, model, keep_pairs=False)
    joined = month.links.join(new.select(key), on=key)["person_id"].item()
    assert joined != person, "the new record joined the person of a member of its group"
    apart = LinkageModel.from_json(model.to_json())
    apart.separate_group_members = False  # group members not kept apart: it joins A's person, as it should then
    assert link_incremental(existing, old, new, apart, keep_pairs=False).links.join(
        new.select(key), on=key)["person_id"].item() == person


def _blocks_nothing_with(old: pl.DataFrame, member: dict, new: pl.DataFrame, model: LinkageModel) -> bool:
    """The new record shares no blocking key with the group member (so only its group makes it a candidate)."""
    plain = LinkageModel.from_json(model.to_json())
    plain.separate_group_members = False
    only_member = old.filter((pl.col("source") == member["source"]) & (pl.col("record_id") == member["record_id"]))
    return _candidates(only_member, new, plain).height == 0


def test_an_incremental_month_appends_its_links_and_gives_the_tables_a_full_write_gives(world, model, tmp_path):
    """The linked asset's incremental write: person_link gains only the records new to it (re-sent ones are
    there already), and the tables read back equal those of replacing everything."""
    _, tokens, _, _ = world
    old = tokens.filter(pl.col("extract_month") < MONTHS[-1])
    resent = old.tail(7).with_columns(pl.lit(MONTHS[-1]).alias("extract_month"))
    new = pl.concat([tokens.filter(pl.col("extract_month") == MONTHS[-1]), resent])
    r1 = link(old, model, keep_pairs=False)
    previous = person_link_table(r1)
    r2 = link_incremental(previous, old, new, model, keep_pairs=False)
    added = added_links(r2, previous)
    assert added.height == tokens.height - old.height  # the re-sent records are not added again

    latest = pl.concat([old, new]).unique(["source", "record_id"], keep="last", maintain_order=True)
    h = households(latest, r2.links)
    full = linked_tables(r2, latest, h)
    appended = linked_tables(r2, latest, h, person_link=pl.concat([previous, added]))
    replaced_db, appended_db = tmp_path / "replaced.duckdb", tmp_path / "appended.duckdb"
    write_tables(replaced_db, {"person_link": previous})
    write_tables(replaced_db, full)
    # the last month's tables, then this month's: person, households and cohort by their differences
    write_tables(appended_db, linked_tables(r1, old, households(old, r1.links)))
    write_tables(appended_db, {**appended, "person_link": added}, append=(*APPENDED_TABLES, "person_link"),
                 by_difference=("person", "household_membership", "cohort"))
    for name in ("person_link", "person", "household_membership", "cohort"):
        assert appended[name].sort(pl.all()).equals(full[name].sort(pl.all())), name
        with duckdb.connect(str(replaced_db)) as a, duckdb.connect(str(appended_db)) as b:
            query = f"select * from linked.{name} order by all"
            assert a.execute(query).pl().equals(b.execute(query).pl()), name


def test_linked_person_built_again_for_the_persons_a_month_touches_is_the_table_built_whole(world, model, tmp_path):
    """A month's linked.person from the last one: rows built again for the persons of its new records and of the
    old records it sends again corrected, the others kept, and written by replacing those persons' rows; the
    same table as building it from every record, and not the same without the corrected records' persons."""
    _, tokens, _, _ = world
    key = ["source", "record_id"]
    old = tokens.filter(pl.col("extract_month") < MONTHS[-1])
    corrected = old.filter(pl.col("birth_year").is_not_null()).tail(9).with_columns(
        pl.lit(MONTHS[-1]).alias("extract_month"), (pl.col("birth_year") + 2).alias("birth_year"),
        pl.lit("U").alias("sex"))
    new = pl.concat([tokens.filter(pl.col("extract_month") == MONTHS[-1]), corrected])
    latest = pl.concat([old, new]).unique(key, keep="last", maintain_order=True)
    previous = person_link_table(link(old, model, keep_pairs=False))
    before = person_table(previous, old)
    links = pl.concat([previous, added_links(link_incremental(previous, old, new, model, keep_pairs=False),
                                             previous)])
    whole = person_table(links, latest)

    added = links.join(previous.select(key), on=key, how="anti")["person_id"]
    touched = pl.concat([added, links.join(corrected.select(key), on=key)["person_id"]])
    persons, fresh = person_table_update(before, links, latest, touched)
    assert persons.equals(whole)
    assert 0 < fresh.height == touched.n_unique() < whole.height
    assert not person_table_update(before, links, latest, added)[0].equals(whole)  # the corrections matter

    database = tmp_path / "warehouse.duckdb"
    write_tables(database, {"person": before})
    with duckdb.connect(str(database)) as conn:
        replace_rows(conn, "linked.person", "person_id", touched.unique(), fresh)
        assert conn.execute("select * from linked.person").pl().sort("person_id").equals(whole)


def test_a_month_linked_from_the_warehouse_reads_only_its_records_wide_and_links_as_from_every_token(world, model):
    """The linked asset's monthly read: the few columns of every record, every column of the new records and of
    the candidates DuckDB finds (`linkage.tokens`); the same candidates, links and tables as reading every token
    of every record and finding the candidates in polars, with re-sent records' latest versions."""
    _, tokens, _, _ = world
    old = tokens.filter(pl.col("extract_month") < MONTHS[-1])
    # re-sent in the new month with another postcode district and first-name phonetic: a blocking key of theirs
    # that only the old version has must not make a candidate
    resent = old.tail(40).with_columns(pl.lit(MONTHS[-1]).alias("extract_month"),
                                       pl.lit("moved").alias("tok_postcode_district"),
                                       pl.lit("renamed").alias("tok_given_nysiis"))
    conn = duckdb.connect()
    conn.execute("create schema pseudonymised")
    for (source,), rows in pl.concat([tokens, resent]).partition_by("source", as_dict=True).items():
        rows = rows.select([c for c in rows.columns if rows[c].null_count() < rows.height])  # its own columns
        conn.register("rows", rows)
        conn.execute(f"create table pseudonymised.{source} as select * from rows")
    previous = person_link_table(link(old, model, keep_pairs=False))
    key = ["source", "record_id"]
    spec = TokenColumns()

    every = read_tokens(conn, spec)
    known, new = every.join(previous.select(key), on=key, how="semi"), every.join(previous.select(key), on=key,
                                                                                   how="anti")
    narrow = read_tokens(conn, spec, columns=monthly_link_columns(spec, model))
    assert {"bf_name", "tok_nhs_number", "tok_given_nysiis"}.isdisjoint(narrow.columns)
    assert narrow.select(key).equals(every.select(key))
    narrow_known = narrow.join(previous.select(key), on=key, how="semi")
    wide_new = read_records(conn, spec, narrow.join(previous.select(key), on=key, how="anti"))
    assert wide_new.select(new.columns).equals(new)

    expected = _candidates(known, new, model)
    found = read_candidates(conn, model, narrow_known, new)
    assert 0 < found.height < known.height
    assert found.select(expected.columns).equals(expected)
    assert found.join(resent.select(key), on=key).height < resent.height  # some lost their key with the move

    from_every = link_incremental(previous, known, new, model, keep_pairs=False)
    from_warehouse = link_incremental(previous, narrow_known, wide_new, model, keep_pairs=False,
                                      find_candidates=lambda fresh: read_candidates(conn, model, narrow_known, fresh))
    assert from_warehouse.links.sort(key).equals(from_every.links.sort(key))  # (their order is the hash join's)
    assert from_warehouse.model.metadata["last_incremental"]["candidates"] == expected.height
    h_every, h_narrow = households(every, from_every.links), households(narrow, from_warehouse.links)
    assert h_narrow.membership.equals(h_every.membership)
    for name, table in linked_tables(from_every, every, h_every).items():
        if name not in ("person_crosswalk", "household_crosswalk"):  # stamped with the time
            assert linked_tables(from_warehouse, narrow, h_narrow)[name].equals(table), name


def test_a_record_stored_twice_in_one_extract_is_read_as_its_later_copy_however_stored(world, model):
    """Validation leaves a record once per extract (record_id_unique), but a warehouse written otherwise may hold
    it twice: linkage reads the copy dbt's staging keeps (the later row of the file), once, in either stored
    order, so that a rewritten table links as before (one row per record, never both copies)."""
    _, tokens, _, _ = world
    spec, key = TokenColumns(), ["source", "record_id"]
    police = tokens.filter(pl.col("source") == "police_incidents")
    police = police.select([c for c in police.columns if police[c].null_count() < police.height]).with_columns(
        pl.int_range(pl.len()).alias("_row_number"))
    target = police.row(0, named=True)
    correction = police.head(1).with_columns(pl.lit("corrected").alias("tok_family_name"),
                                             pl.col("_row_number") + police.height)
    read = {}
    for order in ("as written", "reversed"):
        rows = pl.concat([police, correction])
        conn = duckdb.connect()
        conn.execute("create schema pseudonymised")
        conn.register("rows", rows.reverse() if order == "reversed" else rows)
        conn.execute("create table pseudonymised.police_incidents as select * from rows")
        every = read_tokens(conn, spec)
        wanted = every.filter(pl.col("record_id") == target["record_id"])
        read[order] = (every, read_records(conn, spec, wanted),
                       read_candidates(conn, model, every.filter(pl.col("record_id") != target["record_id"]),
                                       wanted).height)
    every, records, _ = read["as written"]
    assert every.height == police.height and not every.select(key).is_duplicated().any()
    assert "_row_number" not in every.columns and records.height == 1
    assert every.filter(pl.col("record_id") == target["record_id"])["tok_family_name"].to_list() == ["corrected"]
    assert records["tok_family_name"].to_list() == ["corrected"]
    reversed_every, reversed_records, reversed_candidates = read["reversed"]
    assert reversed_every.equals(every) and reversed_records.equals(records)
    assert reversed_candidates == read["as written"][2]


def test_crosswalk_records_a_merge_and_a_split():
    prev = pl.DataFrame({"source": "s", "record_id": ["1", "2", "3", "4", "5", "6"],
                         "person_id": ["A", "A", "B", "C", "C", "C"]})
    clusters = pl.DataFrame({"source": "s", "record_id": ["1", "2", "3", "4", "5", "6"],
                             "cluster_id": ["x", "x", "x", "y", "y", "z"]})
    ids, cw = assign_stable_ids(prev, clusters)
    got = dict(zip(ids["record_id"], ids["person_id"], strict=True))
    assert got["1"] == got["2"] == got["3"] == "A"  # A absorbed B
    assert got["4"] == got["5"] == "C"  # C keeps its id where most of its records are
    assert got["6"] not in {"A", "B", "C"}
    rows = {(r["old_id"], r["change"]): r for r in cw.iter_rows(named=True)}
    assert rows[("B", "merge")]["new_id"] == "A"
    assert rows[("C", "split")]["new_id"] == got["6"] and rows[("C", "split")]["records"] == 1
    # deterministic fresh ids, never reusing a retired one
    ids2, _ = assign_stable_ids(None, clusters, retired={got["6"]})
    assert got["6"] not in set(ids2["person_id"])


def test_review_pairs_show_levels_not_tokens_and_decisions_feed_back(world, model, linked):
    _, tokens, _, _ = world
    review = review_pairs(linked, band=(0.0, 1.01))
    assert review.height > 0
    assert not [c for c in review.columns if c.startswith(("tok_", "bf_", "gamma_"))]
    tok_values = set(tokens["tok_dob"].drop_nulls().to_list()) | set(tokens["tok_name_pair"].drop_nulls().to_list())
    for col in review.columns:
        if review.schema[col] == pl.String:
            assert not (set(review[col].drop_nulls().to_list()) & tok_values), col
    assert set(review["name"].drop_nulls()) <= {lv.get("label_for_charts") for c in model.settings["comparisons"]
                                                 for lv in c["comparison_levels"]} | {"null"}
    # a linked pair judged a non-match is split; an unlinked pair judged a match is joined
    same = review.filter(pl.col("same_person_now")).head(1).with_columns(decision=pl.lit("non_match"))
    pid = dict(zip(zip(linked.links["source"], linked.links["record_id"], strict=True), linked.links["person_id"],
                   strict=True))
    singles = linked.links.group_by("person_id").len().filter(pl.col("len") == 1)["person_id"].head(2).to_list()
    a, b = (linked.links.filter(pl.col("person_id") == p).row(0, named=True) for p in singles)
    join = pl.DataFrame({"source_l": [a["source"]], "record_id_l": [a["record_id"]], "source_r": [b["source"]],
                         "record_id_r": [b["record_id"]], "decision": ["match"]})
    decisions = pl.concat([decisions_from_review(same), join])
    r = link(tokens, model, previous=linked.links, decisions=decisions, keep_pairs=False)
    now = dict(zip(zip(r.links["source"], r.links["record_id"], strict=True), r.links["person_id"], strict=True))
    s = same.row(0, named=True)
    assert pid[(s["source_l"], s["record_id_l"])] == pid[(s["source_r"], s["record_id_r"])]
    assert now[(s["source_l"], s["record_id_l"])] != now[(s["source_r"], s["record_id_r"])]
    assert now[(a["source"], a["record_id"])] == now[(b["source"], b["record_id"])]


def test_a_decided_pair_is_not_listed_for_review_again(linked):
    """A full link scores every pair again: the pairs reviewers decided (listed either way round) leave the
    review table, the others stay."""
    review = review_pairs(linked, band=(0.0, 1.01))
    first, second = review.head(2).iter_rows(named=True)
    decisions = pl.DataFrame({"source_l": [first["source_r"]], "record_id_l": [first["record_id_r"]],
                              "source_r": [first["source_l"]], "record_id_r": [first["record_id_l"]],
                              "decision": ["non_match"]})
    left = undecided(review, decisions)
    assert left.height == review.height - 1
    assert first["pair_id"] not in left["pair_id"].to_list() and second["pair_id"] in left["pair_id"].to_list()


def test_a_later_decision_replaces_an_earlier_one_whichever_side_each_listed_a_record():
    """A monthly review lists the known record on the left, a full one in record order: the same pair, decided
    twice, is one decision, the later."""
    def decided(left: tuple[str, str], right: tuple[str, str], decision: str) -> pl.DataFrame:
        return pl.DataFrame({"source_l": [left[0]], "record_id_l": [left[1]], "source_r": [right[0]],
                             "record_id_r": [right[1]], "decision": [decision]})

    youth, housing = ("youth_offending", "you-420"), ("housing", "hou-409")
    kept = decided(youth, housing, "non_match")
    later = decided(housing, youth, "match").with_columns(pl.lit(None, dtype=pl.String).alias("pair_id"))
    [row] = accumulate_decisions(kept, later).iter_rows(named=True)
    assert row["decision"] == "match"
    assert (row["source_l"], row["record_id_l"], row["source_r"], row["record_id_r"]) == (*housing, *youth)


def test_an_id_merged_away_is_never_issued_again():
    """Two persons merged by one refresh and split again by a later one (a reviewer's non-match): the split-off
    person gets a new id, not the one the crosswalk says was merged away (its history would read as it coming
    back)."""
    records = ["a1", "a2", "b1", "b2", "b3"]

    def clusters(ids: list[str]) -> pl.DataFrame:
        return pl.DataFrame({"source": "s", "record_id": records, "cluster_id": ids})

    first, _ = assign_stable_ids(None, clusters(["A", "A", "B", "B", "B"]))
    merged, crosswalk = assign_stable_ids(first, clusters(["X"] * 5))
    [(gone, kept)] = crosswalk.filter(pl.col("change") == "merge").select("old_id", "new_id").rows()
    split, _ = assign_stable_ids(merged, clusters(["A", "A", "B", "B", "B"]), retired=ids_ever_named(crosswalk))
    assert gone in first["person_id"].to_list() and kept in split["person_id"].to_list()
    assert gone not in split["person_id"].to_list()


def test_households_follow_a_family_that_moves_and_a_partner_who_leaves():
    d = date
    rows = [  # (record, person, date, uprn)
        ("1", "mum", d(2015, 1, 1), "X"), ("2", "dad", d(2015, 2, 1), "X"), ("3", "kid", d(2015, 3, 1), "X"),
        ("4", "mum", d(2016, 6, 1), "Y"), ("5", "kid", d(2016, 6, 2), "Y"), ("6", "dad", d(2016, 7, 1), "Y"),
        ("7", "dad", d(2017, 5, 1), "Z"), ("8", "mum", d(2017, 6, 1), "Y"), ("9", "kid", d(2017, 6, 1), "Y"),
        ("10", "lodger", d(2013, 1, 1), "Z"),
    ]
    tokens = pl.DataFrame({"source": "housing", "record_id": [r[0] for r in rows],
                           "event_date": [r[2] for r in rows], "tok_uprn": [r[3] for r in rows]})
    links = pl.DataFrame({"source": "housing", "record_id": [r[0] for r in rows], "person_id": [r[1] for r in rows]})
    h = households(tokens, links)
    m = h.membership

    def hh(person: str, on: date) -> str | None:
        x = m.filter((pl.col("person_id") == person) & (pl.col("valid_from") <= on)
                     & (pl.col("valid_to").is_null() | (pl.col("valid_to") > on)))
        return x["household_id"].item() if x.height else None

    family = hh("mum", d(2015, 6, 1))
    assert family is not None
    assert hh("dad", d(2015, 6, 1)) == hh("kid", d(2015, 6, 1)) == family
    assert hh("mum", d(2016, 8, 1)) == hh("kid", d(2016, 8, 1)) == hh("dad", d(2016, 8, 1)) == family  # moved
    assert hh("dad", d(2017, 8, 1)) not in (None, family)  # left
    assert hh("mum", d(2017, 8, 1)) == family
    assert hh("lodger", d(2013, 6, 1)) != family
    # ids persist across a refresh
    h2 = households(tokens, links, previous=m)
    assert h2.membership.sort("person_id", "valid_from")["household_id"].equals(
        m.sort("person_id", "valid_from")["household_id"])


def test_a_household_keeps_its_id_when_a_late_record_moves_its_start_earlier():
    """A back-dated record (a housing application sent late) at the place a family already lived moves every
    member's stay to start earlier: the household is the same one and keeps its id, with no crosswalk row."""
    d = date
    rows = [("1", "mum", d(2016, 3, 1), "X"), ("2", "kid", d(2016, 3, 5), "X"), ("3", "solo", d(2016, 1, 1), "Y"),
            ("4", "mum", d(2017, 1, 1), "X"), ("5", "solo", d(2017, 2, 1), "Y")]

    def frames(rows):
        tokens = pl.DataFrame({"source": "housing", "record_id": [r[0] for r in rows],
                               "event_date": [r[2] for r in rows], "tok_uprn": [r[3] for r in rows]})
        return tokens, pl.DataFrame({"source": "housing", "record_id": [r[0] for r in rows],
                                     "person_id": [r[1] for r in rows]})

    first = households(*frames(rows)).membership
    late = [("6", "mum", d(2015, 11, 1), "X"), ("7", "kid", d(2015, 11, 1), "X"), ("8", "solo", d(2015, 6, 1), "Y")]
    again = households(*frames(rows + late), previous=first)
    before = dict(first.select("person_id", "household_id").iter_rows())
    after = dict(again.membership.select("person_id", "household_id").iter_rows())
    assert again.membership.filter(pl.col("person_id") == "solo")["valid_from"].to_list() == [d(2015, 6, 1)]
    assert after == before
    assert again.crosswalk.height == 0


def test_residence_spells_are_the_runs_of_each_persons_observations_at_one_place():
    import random

    from ed_pipeline.linkage.households import residence_spells

    rng = random.Random(3)
    # few places and days, so that a person is seen twice a day, at two places a day, and the same row twice
    obs = [(f"p{rng.randrange(30)}", date(2015, 1, 1 + rng.randrange(20)), f"x{rng.randrange(3)}")
           for _ in range(600)]
    got = residence_spells(pl.DataFrame(obs, schema=["person_id", "date", "place"], orient="row"))
    expected = []
    for person in sorted({p for p, _, _ in obs}):
        runs = []  # [place, first date, last date]
        for _, day, place in sorted({o for o in obs if o[0] == person}, key=lambda o: (o[1], o[2])):
            if runs and runs[-1][0] == place:
                runs[-1][2] = day
            else:
                runs.append([place, day, day])
        kept = [r for i, r in enumerate(runs) if i + 1 == len(runs) or runs[i + 1][1] > r[1]]
        expected += [(person, place, start, kept[i + 1][1] if i + 1 < len(kept) else None, last)
                     for i, (place, start, last) in enumerate(kept)]
    assert got.rows() == expected


def test_occupancy_episodes_join_the_spells_that_overlap_at_each_place():
    import random

    from ed_pipeline.linkage.households import occupancy_episodes

    rng = random.Random(7)
    rows = []
    for i in range(400):  # places with few and many spells, dates from before 1970, open-ended spells
        start = date(1965, 1, 1).toordinal() + rng.randrange(25_000)
        length = rng.randrange(1, 900)
        end = date.fromordinal(start + length) if rng.random() < 0.7 else None
        rows.append((f"p{i}", f"place{rng.randrange(60)}", date.fromordinal(start), end,
                     date.fromordinal(start + rng.randrange(length))))
    spells = pl.DataFrame(rows, schema=["person_id", "place", "valid_from", "valid_to", "last_seen"], orient="row")
    got = occupancy_episodes(spells, open_spell_days=100)
    # reference: per place, in (valid_from, person_id) order, a spell starts an episode unless it begins before
    # the latest end of the spells before it there
    same = []
    for (_,), group in got.sort("place", "valid_from", "person_id").group_by("place", maintain_order=True):
        reach = None
        for r in group.iter_rows(named=True):
            end = r["valid_to"] or date.fromordinal(r["last_seen"].toordinal() + 100)
            same.append(reach is not None and r["valid_from"] < reach)
            reach = end if reach is None else max(reach, end)
    ordered = got.sort("place", "valid_from", "person_id")
    assert ordered.select(pl.col("episode") == pl.col("episode").shift(1))["episode"].fill_null(False).to_list() \
        == same
    assert got.group_by("episode").agg(pl.col("place").n_unique())["place"].max() == 1


def test_a_table_written_by_difference_keeps_its_unchanged_rows_and_ends_as_if_replaced(tmp_path):
    """write_tables(by_difference=...): only the rows that went are deleted and only the new ones inserted (a
    month's persons and households: the whole history was rewritten every month), to the same contents as
    replacing the table; a row the table holds twice, or other columns, are written whole instead."""
    db = tmp_path / "warehouse.duckdb"
    schema = {"person_id": pl.String, "records": pl.UInt32, "born": pl.Date}
    first = pl.DataFrame({"person_id": ["a", "b", "c", "d"], "records": [1, 2, None, 4],
                          "born": [date(2014, 1, 1), None, date(2015, 2, 1), date(2016, 3, 1)]}, schema=schema)
    write_tables(db, {"person": first})
    with duckdb.connect(str(db)) as con:
        rowids = dict(con.execute("select person_id, rowid from linked.person").fetchall())
    then = pl.concat([first.filter(pl.col("person_id") != "d").with_columns(
        pl.when(pl.col("person_id") == "b").then(3).otherwise(pl.col("records")).cast(pl.UInt32).alias("records")),
        pl.DataFrame({"person_id": ["e"], "records": [1], "born": [None]}, schema=schema)])
    twice = pl.concat([first, first.head(1)])
    wider = first.with_columns(pl.lit(1).alias("n"))
    for before, after in ((first, then), (then, then), (twice, first), (first, wider)):
        write_tables(db, {"person": before})
        write_tables(db, {"person": after}, by_difference=("person",))
        with duckdb.connect(str(db)) as con:
            assert con.execute("select * from linked.person order by all").pl().equals(after.sort(pl.all())), after
    write_tables(db, {"person": first})
    write_tables(db, {"person": then}, by_difference=("person",))
    with duckdb.connect(str(db)) as con:
        kept = dict(con.execute("select person_id, rowid from linked.person where person_id in ('a', 'c')").fetchall())
    assert kept == {p: rowids[p] for p in ("a", "c")}  # unchanged rows, a null among their values, stay in place


def test_an_address_without_uprn_takes_the_uprn_most_often_seen_with_it_the_smallest_of_a_tie():
    """households.observations: a record with only an address token is placed at the UPRN most often seen with
    that address elsewhere (the smallest of a tie, whatever the rows' order), else at its street's, else at the
    address itself."""
    rows = [("a", "u2", "addr1"), ("b", "u1", "addr1"), ("c", "u2", "addr1"), ("d", "u3", "addr2"),
            ("e", "u1", "addr2"), ("f", None, "addr1"), ("g", None, "addr2"), ("h", None, "addr3")]
    tokens = pl.DataFrame({"source": ["housing"] * len(rows), "record_id": [r[0] for r in rows],
                           "event_date": [date(2017, 1, 1)] * len(rows), "tok_uprn": [r[1] for r in rows],
                           "tok_address": [r[2] for r in rows], "tok_address_street": [None] * len(rows)},
                          schema_overrides={"tok_address_street": pl.String})
    links = tokens.select("source", "record_id", pl.col("record_id").alias("person_id"))
    for order in (tokens, tokens.reverse()):
        places = dict(observations(order, links).select("person_id", "place").iter_rows())
        assert (places["f"], places["g"], places["h"]) == ("u:u2", "u:u1", "a:addr3")


def test_linked_tables_written_to_duckdb(world, linked, tmp_path):
    _, tokens, _, _ = world
    h = households(tokens, linked.links)
    tables = linked_tables(linked, tokens, h, review_pairs(linked))
    db = tmp_path / "warehouse.duckdb"
    write_tables(db, tables)
    write_tables(db, tables)  # crosswalks append, the rest are replaced
    con = duckdb.connect(str(db))
    names = {r[0] for r in con.execute(
        "SELECT table_name FROM information_schema.tables WHERE table_schema = 'linked'").fetchall()}
    assert {"person_link", "person", "household_membership", "cohort", "person_crosswalk",
            "review_pair"} <= names
    cols = [r[0] for r in con.execute("DESCRIBE linked.person_link").fetchall()]
    assert cols == ["source", "record_id", "person_id", "match_probability"]
    assert con.execute("SELECT count(*) FROM linked.person_link").fetchone()[0] == tokens.height
    cols = [r[0] for r in con.execute("DESCRIBE linked.household_membership").fetchall()]
    assert cols == ["household_id", "person_id", "valid_from", "valid_to"]
    assert con.execute("SELECT count(*) FROM linked.cohort WHERE household_id IS NOT NULL").fetchone()[0] > 0


def test_clear_text_upper_bound_runs_the_same_model_with_jaro_winkler(world):
    records, tokens, truth, _ = world
    clear = link(clear_tokens(records), config=FAST, keep_pairs=False, train_kwargs={"similarity": "clear"})
    assert "jaro_winkler" in str(clear.model.settings)
    assert evaluate_links(clear.links, truth)["f1"] >= 0.98


def test_a_persons_row_takes_the_most_common_valid_birth_and_sex_of_their_records():
    """Most common value, the smallest of a tie, unknown ('U') and missing values left out; each record once."""
    from ed_pipeline.linkage.tables import person_table

    tokens = pl.DataFrame({
        "source": ["housing", "benefits", "police_incidents", "housing", "benefits", "social_care"],
        "record_id": ["H1", "B1", "P1", "H2", "B2", "S1"],
        "event_date": [date(2016, 1, 5), date(2017, 3, 1), date(2015, 7, 9), None, date(2018, 2, 2), date(2014, 1, 1)],
        "birth_year": [2015, 2016, 2016, 2014, 2016, None],
        "birth_month": [4, 5, 4, 1, 3, 2],
        "sex": ["U", "F", "F", "M", "U", "U"],
    })
    links = pl.DataFrame({"source": ["housing", "benefits", "police_incidents", "housing", "benefits", "social_care",
                                     "housing"],
                          "record_id": ["H1", "B1", "P1", "H2", "B2", "S1", "H1"],  # H1 listed twice
                          "person_id": ["p1", "p1", "p1", "p2", "p2", "p3", "p1"]})
    persons = {r["person_id"]: r for r in person_table(links, tokens).iter_rows(named=True)}
    assert persons["p1"] == {"person_id": "p1", "records": 3, "sources": "benefits,housing,police_incidents",
                             "first_seen": date(2015, 7, 9), "last_seen": date(2017, 3, 1), "birth_year": 2016,
                             "birth_month": 4, "sex": "F"}
    assert (persons["p2"]["birth_year"], persons["p2"]["birth_month"], persons["p2"]["sex"]) == (2014, 1, "M")
    assert (persons["p3"]["birth_year"], persons["p3"]["sex"], persons["p3"]["records"]) == (None, None, 1)


def _tied_records(records: pl.DataFrame) -> pl.DataFrame:
    """Brothers of one housing application with one date of birth (a cannot-link pair), and a treatment record
    (initials, the date of birth, the district) that matches each of them with exactly the same probability."""
    def rec(source, record_id, given, family, postcode, uprn, group):
        return {"source": source, "record_id": record_id, "given_name": given, "family_name": family,
                "date_of_birth": date(1990, 5, 17), "sex": "M", "nhs_number": None,
                "address": "1 elm close, basildon" if uprn else None, "postcode": postcode, "uprn": uprn,
                "event_date": date(2017, 1, 10), "extract_month": "2017-01", "group_ref": group, "role": "x",
                "upn": None}

    return make_tokens(pl.DataFrame([
        rec("housing", "x-a", "john", "zzyzx", "SS14 1AB", "999999001", "hx"),
        rec("housing", "x-b", "jake", "zzyzx", "SS14 1AB", "999999001", "hx"),
        rec("drugs_alcohol", "x-c", "j", "z", "SS14", None, "dx"),
    ], schema=records.schema))


def test_a_tie_between_two_persons_is_broken_by_record_keys_not_row_order(world, model):
    """A record that links to two people of one group equally well joins the same one (full and monthly link)
    whatever order the rows come in: the order is the frame's, not the records'."""
    records, tokens, _, _ = world
    tied = _tied_records(records)

    def person_of_c(result) -> str:
        p = dict(result.links.select("record_id", "person_id").iter_rows())
        return {p["x-a"]: "a", p["x-b"]: "b"}.get(p["x-c"])

    full = {person_of_c(link(pl.concat([tokens, tied], how="diagonal_relaxed").sort("record_id",
                                                                                     descending=desc),
                             model, keep_pairs=False)) for desc in (False, True)}
    assert len(full) == 1 and full != {None}, full
    previous = person_link_table(link(tokens, model, keep_pairs=False))
    monthly = {person_of_c(link_incremental(previous, tokens, tied.sort("record_id", descending=desc), model,
                                            keep_pairs=False)) for desc in (False, True)}
    assert monthly == full, (monthly, full)


def test_a_records_match_probability_is_that_of_a_link_inside_its_person(world, model):
    """The brother the treatment record did not join is a person of one record: no link holds him in it, so his
    match probability is null, not that of the pair the cannot-link repair cut (full and monthly link)."""
    records, tokens, _, _ = world
    tied = _tied_records(records)
    previous = person_link_table(link(tokens, model, keep_pairs=False))
    for result in (link(pl.concat([tokens, tied], how="diagonal_relaxed"), model, keep_pairs=False),
                   link_incremental(previous, tokens, tied, model, keep_pairs=False)):
        links = result.links.unique(["source", "record_id"])
        alone = links.join(links.group_by("person_id").len().filter(pl.col("len") == 1), on="person_id")
        assert alone.filter(pl.col("record_id").str.starts_with("x-")).height == 1
        assert alone["match_probability"].null_count() == alone.height
        assert links.join(alone, on=["source", "record_id"], how="anti")["match_probability"].null_count() == 0


def test_a_household_keeps_its_id_when_its_person_is_merged_into_another():
    """A full relink finds that the one person of a household is also a school record's person, and the school
    record's id wins (the person crosswalk says so): the stay is the same one, and so is its household."""
    d = date
    tokens = pl.DataFrame({"source": "housing", "record_id": ["1", "2", "3"],
                           "event_date": [d(2016, 1, 1), d(2016, 6, 1), d(2016, 2, 1)], "tok_uprn": ["X", "X", "Y"]})

    def links(person: str) -> pl.DataFrame:
        return pl.DataFrame({"source": "housing", "record_id": ["1", "2", "3"], "person_id": [person, person, "PZ"]})

    first = households(tokens, links("PX")).membership
    merged = pl.DataFrame({"old_id": ["PX"], "new_id": ["PA"], "change": ["merge"], "records": [2]})
    again = households(tokens, links("PA"), previous=first, renamed=merged)
    assert set(again.membership["household_id"]) == set(first["household_id"])
    assert again.crosswalk.height == 0


def test_a_person_split_in_two_halves_keeps_its_id_in_the_same_half_whatever_the_cluster_numbers():
    """Cluster numbers mean nothing from one run to the next (connected components, Spark, row order): a tie
    for an old id's home goes to the cluster holding the smaller record key, not the smaller cluster number."""
    prev = pl.DataFrame({"source": "s", "record_id": ["1", "2", "3", "4"], "person_id": "A"})

    def ids(labels: list[str]) -> dict[str, str]:
        clusters = pl.DataFrame({"source": "s", "record_id": ["1", "2", "3", "4"], "cluster_id": labels})
        return dict(assign_stable_ids(prev, clusters)[0].select("record_id", "person_id").iter_rows())

    for labels in (["9", "9", "10", "10"], ["10", "10", "9", "9"]):
        got = ids(labels)
        assert got["1"] == got["2"] == "A" and got["3"] == got["4"] != "A", labels
