from __future__ import annotations

import json

import duckdb
import polars as pl
import pytest

from ed_pipeline.privacy import pseudonymise_people
from ed_pipeline.privacy.leak_scan import (
    IdentifierSet,
    Leak,
    identifiers_from_duckdb,
    identifiers_from_records,
    scan_duckdb,
    scan_files,
    scan_texts,
)
from ed_pipeline_tests.privacy.records import KEY, ROWS, records


@pytest.fixture(scope="module")
def ids() -> IdentifierSet:
    return identifiers_from_records(records())


@pytest.fixture
def warehouse(tmp_path) -> duckdb.DuckDBPyConnection:
    """A warehouse holding the pseudonymised records, as the pipeline writes them."""
    conn = duckdb.connect(str(tmp_path / "warehouse.duckdb"))
    conn.execute("CREATE SCHEMA pseudonymised")
    out = pseudonymise_people(records(), KEY)
    conn.register("out", out)
    conn.execute("CREATE TABLE pseudonymised.people AS SELECT * FROM out")
    conn.unregister("out")
    yield conn
    conn.close()


def _kinds(leaks: list[Leak]) -> set[tuple[str, str]]:
    return {(leak.location, leak.kind) for leak in leaks}


def test_identifier_set_contents_and_filters(ids: IdentifierSet) -> None:
    phrases = dict(zip(ids.phrases["phrase"], ids.phrases["kind"], strict=True))
    assert phrases["kowalczyk"] == "name" and phrases["obrien"] == "name" and phrases["o brien"] == "name"
    assert phrases["pemberton smythe"] == "name" and phrases["pembertonsmythe"] == "name"
    assert phrases["9434765919"] == phrases["943 476 5919"] == "nhs_number"
    assert phrases["a123456789012"] == "upn"
    assert phrases["ss16 4ab"] == phrases["ss164ab"] == "postcode"
    assert phrases["100012345678"] == "uprn"
    assert phrases["12 lavender road basildon"] == phrases["4 honeysuckle close"] == "address"
    for dob in ("2014 03 05", "05 03 2014", "20140305", "05032014", "5 3 2014"):
        assert phrases[dob] == "date_of_birth"
    for short_or_common in ("zoe", "j", "s", "ss16", "road", "close", "basildon", "pitsea"):
        assert short_or_common not in phrases  # too short, an initial, a district, or a common word
    assert phrases["mary"] == "name"  # the first of two given names, 4 letters
    assert "kowalczyk" not in repr(ids)  # the set never prints its values


def test_what_is_derived_from_an_identifier_set_is_made_once(ids: IdentifierSet) -> None:
    # every scan reads these: made again each time, they cost an audit seconds at the size of Essex
    assert ids.starts is ids.starts and ids.key_tokens is ids.key_tokens
    assert ("mary", 1) in set(ids.starts.iter_rows()) and ids.max_single_token_chars >= len("pembertonsmythe")
    with pytest.raises(AttributeError):  # frozen: the phrases cannot change under what was made from them
        ids.phrases = ids.phrases.head(0)


def test_pseudonymised_output_holds_no_identifier(warehouse, ids) -> None:
    assert scan_duckdb(warehouse, ids) == []


def test_scan_of_a_database_file_path(warehouse, ids, tmp_path) -> None:
    warehouse.execute("CREATE TABLE pseudonymised.notes AS SELECT 'call from Mrs KOWALCZYK' AS note")
    warehouse.close()
    leaks = scan_duckdb(tmp_path / "warehouse.duckdb", ids)
    assert _kinds(leaks) == {("pseudonymised.notes.note", "name")}


def test_planted_identifiers_in_table_columns_are_found(warehouse, ids) -> None:
    warehouse.execute("""
        CREATE TABLE pseudonymised.leaky AS SELECT
            record_id, source,
            'Referral for Zoë O''Brien, 12 Lavender Road, Basildon' AS free_text,
            '943 476 5919' AS nhs_text,
            9434765919 AS nhs_int,
            'SS164AB' AS pc,
            '{"upn": "A123456789012", "uprn": 100012345678}' AS meta,
            9434765919.0::DOUBLE AS nhs_double,
            100012345678::DOUBLE AS uprn_double,
            0.2345::DOUBLE AS risk,
            encode('Kowalczyk, Mary-Ann') AS name_bytes,
            event_date
        FROM pseudonymised.people""")
    leaks = scan_duckdb(warehouse, ids)
    found = _kinds(leaks)
    assert {
        ("pseudonymised.leaky.free_text", "name"),
        ("pseudonymised.leaky.free_text", "address"),
        ("pseudonymised.leaky.nhs_text", "nhs_number"),
        ("pseudonymised.leaky.nhs_int", "nhs_number"),
        ("pseudonymised.leaky.pc", "postcode"),
        ("pseudonymised.leaky.meta", "upn"),
        ("pseudonymised.leaky.meta", "uprn"),
        ("pseudonymised.leaky.nhs_double", "nhs_number"),
        ("pseudonymised.leaky.uprn_double", "uprn"),
        ("pseudonymised.leaky.name_bytes", "name"),
    } <= found
    assert not any(leak.location.endswith("risk") for leak in leaks)
    assert not any(leak.location.startswith("pseudonymised.people") for leak in leaks)
    assert not any(leak.location.endswith("event_date") for leak in leaks)  # event dates are not birthdays
    # never the value itself
    report = " ".join(str(leak) for leak in leaks)
    for secret in ("9434765919", "brien", "lavender", "A123456789012", "SS16"):
        assert secret.lower() not in report.lower()


def test_dates_of_birth_carried_into_the_warehouse_are_found(warehouse, ids) -> None:
    recs = records().select("source", "record_id", "date_of_birth")
    warehouse.register("recs", recs)
    warehouse.execute("""
        CREATE TABLE pseudonymised.with_dob AS SELECT p.source, p.record_id, r.date_of_birth AS d,
               strftime(r.date_of_birth, '%d/%m/%Y') AS d_text, p.event_date
        FROM pseudonymised.people p JOIN recs r USING (source, record_id)""")
    warehouse.execute("CREATE TABLE pseudonymised.births AS SELECT date_of_birth AS dob FROM recs")
    warehouse.unregister("recs")
    leaks = scan_duckdb(warehouse, ids)
    found = {(leak.location, leak.kind, leak.how) for leak in leaks}
    assert ("pseudonymised.with_dob.d", "date_of_birth", "row-aligned") in found
    assert ("pseudonymised.with_dob.d_text", "date_of_birth", "row-aligned") in found
    assert ("pseudonymised.births.dob", "date_of_birth", "dob-named column") in found
    assert not any(leak.location.endswith("event_date") for leak in leaks)


def test_row_aligned_columns_are_checked_in_one_query_as_column_by_column(warehouse, ids, monkeypatch) -> None:
    """The row-aligned check reads all of a table's date and text columns at once when the rows checked are no
    more than the text sample (DATE_LIKE_SAMPLE); a larger table is sampled column by column. Both find the
    same columns: a date and a date as text, aligned with each row's record, a text column holding a date only
    in its last row (after nulls), and not a column of other text or of other dates."""
    from ed_pipeline.privacy import leak_scan

    recs = records().select("source", "record_id", "date_of_birth")  # noqa: F841 (read by DuckDB by name)
    warehouse.execute("""
        CREATE TABLE pseudonymised.mixed AS SELECT source, record_id, date_of_birth AS d,
               'ward ' || record_id AS label, date_of_birth + 400 AS seen,
               CASE WHEN row_number() OVER (ORDER BY record_id) > 0 THEN strftime(date_of_birth, '%Y-%m-%d') END
                   AS d_text,
               CASE WHEN record_id = max(record_id) OVER () THEN strftime(date_of_birth, '%d.%m.%Y') END AS late
        FROM recs""")
    aligned = {"pseudonymised.mixed.d", "pseudonymised.mixed.d_text", "pseudonymised.mixed.late"}

    def found() -> set[str]:
        return {leak.location for leak in scan_duckdb(warehouse, ids, where={"pseudonymised.mixed": "TRUE"})
                if leak.how == "row-aligned"}

    assert found() == aligned
    monkeypatch.setattr(leak_scan, "DATE_LIKE_SAMPLE", 1)  # column by column
    assert found() == aligned


def test_planted_identifier_in_json_metadata_is_found(ids) -> None:
    clean = json.dumps({"rows": 7, "partition": "2018-01", "max_event_date": "2018-01-16", "model": "lightgbm",
                        "params": {"learning_rate": 0.05, "num_leaves": 31}, "source": "social_care"})
    leaky = json.dumps({"rows": 7, "sample": {"family_name": "Kowalczyk", "postcode": "SS13 1AA"}},
                       ensure_ascii=True)
    accented = json.dumps({"preview": "O’Brien, Zoë"}, ensure_ascii=True)
    dob = json.dumps({"dob": "25/12/1990"})
    leaks = scan_texts([("dagster:asset/clean", clean), ("dagster:asset/leaky", leaky),
                        ("mlflow:tag/preview", accented), ("mlflow:param/dob", dob)], ids)
    assert _kinds(leaks) == {
        ("dagster:asset/leaky", "name"),
        ("dagster:asset/leaky", "postcode"),
        ("mlflow:tag/preview", "name"),
        ("mlflow:param/dob", "date_of_birth"),
    }


def test_identifiers_after_an_escaped_line_break_are_found(ids) -> None:
    """Dagster's event data is read as its repr, where a line break is the two characters \\n: the word after
    it is still a word of its own."""
    report = repr({"review": "Cases to review:\nKowalczyk\tSS13 1AA\r\n\x0bKowalczyk"})
    assert "\\nKowalczyk" in report
    assert _kinds(scan_texts([("dagster:asset/report", report)], ids)) == {
        ("dagster:asset/report", "name"), ("dagster:asset/report", "postcode")}


def test_names_in_other_scripts_are_found(tmp_path) -> None:
    """A name an agency wrote in Cyrillic or Chinese characters is folded to ASCII letters on both sides, in the
    identifier set and in the cells and texts scanned: found in its own script and in Latin letters."""
    people = records().head(2).with_columns(given_name=pl.Series(["Ольга", "芳"]),
                                            family_name=pl.Series(["Кузнецова", "欧阳"]))
    ids = identifiers_from_records(people)
    conn = duckdb.connect(str(tmp_path / "warehouse.duckdb"))
    conn.execute("CREATE SCHEMA pseudonymised")
    conn.execute("""CREATE TABLE pseudonymised.notes AS SELECT * FROM (VALUES
        ('visit: Ольга Кузнецова', 'met 欧阳芳', 'Olga Kuznetsova', 'Кузнецов', '欧')) t(a, b, c, fine1, fine2)""")
    found = _kinds(scan_duckdb(conn, ids))
    conn.close()
    assert found == {(f"pseudonymised.notes.{c}", "name") for c in "abc"}  # not a longer name, nor a part
    texts = [("dagster:asset/cyrillic", json.dumps({"preview": "Кузнецова"}, ensure_ascii=True)),
             ("mlflow:tag/chinese", "欧阳 芳"), ("mlflow:tag/fine", "Кузнецов")]
    assert _kinds(scan_texts(texts, ids)) == {("dagster:asset/cyrillic", "name"), ("mlflow:tag/chinese", "name")}


def test_date_of_birth_next_to_another_identifier_of_the_same_person(ids) -> None:
    texts = [
        ("same_person", "Kowalczyk 1990-12-25"),  # Mary-Ann Kowalczyk was born on 25/12/1990
        ("other_person", "Kowalczyk 2014-03-05"),  # a name and somebody else's birthday
        ("alone", "referral received 2014-03-05"),  # a date is not a leak on its own
    ]
    leaks = scan_texts(texts, ids)
    found = {(leak.location, leak.kind, leak.how) for leak in leaks}
    assert ("same_person", "date_of_birth", "dob with other identifier") in found
    assert not any(loc == "other_person" and kind == "date_of_birth" for loc, kind, _ in found)
    assert not any(loc == "alone" for loc, _, _ in found)


def test_no_false_positive_on_common_words_and_substrings(ids) -> None:
    texts = [
        ("words", "Road closed near Basildon; Grace Rose said the model is good; SS16 district; ward Vange; Zoe"),
        ("substrings", "Kowalczykowski obrienne 94347659190 ss164abc a1234567890123"),
        ("hex", "b7209acd8ebd3f0f9c1e0d2a55aa1234 and 100012345678abc"),
    ]
    assert scan_texts(texts, ids) == []


def test_planted_identifier_in_a_file_is_found(ids, tmp_path) -> None:
    artifacts = tmp_path / "mlruns" / "artifacts"
    artifacts.mkdir(parents=True)
    (artifacts / "feature_importance.json").write_text(json.dumps({"fsm": 0.3, "birth_month": 0.1}))
    (artifacts / "sample_predictions.csv").write_text("person_id,score\n1,0.3\nTobias Pemberton-Smythe,0.9\n")
    (artifacts / "model.bin").write_bytes(b"\x00\x01binary\xffUPRN=100098765432\x00")
    pl.DataFrame({"x": ["fine"], "y": ["27 Wrexham Avenue, Laindon"]}).write_parquet(artifacts / "frame.parquet")
    leaks = scan_files([tmp_path / "mlruns"], ids)
    found = _kinds(leaks)
    csv, model, parquet = (str(artifacts / n) for n in ("sample_predictions.csv", "model.bin", "frame.parquet"))
    assert (csv, "name") in found
    assert (model, "uprn") in found
    assert (f"{parquet}:y", "address") in found
    assert not any("feature_importance" in leak.location for leak in leaks)


def test_identifiers_from_the_agency_zone(tmp_path) -> None:
    conn = duckdb.connect(str(tmp_path / "agency_zone.duckdb"))
    conn.execute("CREATE SCHEMA validated")
    recs = records()
    for source in recs["source"].unique().to_list():
        part = recs.filter(pl.col("source") == source)
        conn.register("part", part)
        conn.execute(f"CREATE TABLE validated.{source} AS SELECT * FROM part")
        conn.unregister("part")
    from_db = identifiers_from_duckdb(conn, "validated")
    direct = identifiers_from_records(recs)
    assert set(from_db.phrases["phrase"]) == set(direct.phrases["phrase"])
    assert from_db.people.height == len(ROWS)


def test_file_cells_do_not_make_names_across_boundaries_but_image_text_is_read(tmp_path) -> None:
    from PIL import Image, PngImagePlugin

    # someone called Ward Lee: neither word alone is scanned (a common word; under four letters)
    recs = records().with_columns(
        given_name=pl.when(pl.col("record_id") == "H1-1").then(pl.lit("Ward")).otherwise(pl.col("given_name")),
        family_name=pl.when(pl.col("record_id") == "H1-1").then(pl.lit("Lee")).otherwise(pl.col("family_name")))
    ids = identifiers_from_records(recs)
    # a label in one CSV field and a value in the next do not make the name together...
    (tmp_path / "subgroups.csv").write_text("group,value,n\nward,Lee Chapel North,34\n")
    # ...a PNG's pixels hold no text, but its text chunks can carry a name
    clean, tagged = tmp_path / "clean.png", tmp_path / "tagged.png"
    Image.new("RGB", (4, 4)).save(clean)
    info = PngImagePlugin.PngInfo()
    info.add_text("Title", "risk of Jonathon Pemberton-Smythe")
    Image.new("RGB", (4, 4)).save(tagged, pnginfo=info)
    assert scan_texts([("line", "ward,Lee Chapel North,34")], ids) != [], "as one text the pair reads as a name"
    assert _kinds(scan_files([tmp_path], ids)) == {(str(tagged), "name")}


def test_embedded_images_are_scanned_for_their_text_not_their_base64_letters(ids) -> None:
    import base64
    import io

    from PIL import Image, PngImagePlugin

    def data_uri(info: PngImagePlugin.PngInfo | None) -> str:
        buffer = io.BytesIO()
        Image.new("RGB", (4, 4)).save(buffer, format="PNG", pnginfo=info)
        return f"![chart](data:image/png;base64,{base64.b64encode(buffer.getvalue()).decode()})"

    # base64 letters spelling a name by chance ("+Kowalczyk+") are not the name
    noise = base64.b64encode(base64.b64decode("AAAA+Kowalczyk+AAAAA")).decode()
    assert "+Kowalczyk+" in noise
    assert scan_texts([("noise", f"![x](data:image/png;base64,{noise})")], ids) == []
    assert scan_texts([("bare", f"blob {noise}")], ids) != [], "outside a data URI the letters are text"
    tagged = PngImagePlugin.PngInfo()
    tagged.add_text("Title", "risk of Jonathon Pemberton-Smythe")
    assert scan_texts([("clean", data_uri(None))], ids) == []
    assert _kinds(scan_texts([("tagged", data_uri(tagged))], ids)) == {("tagged", "name")}
    text = base64.b64encode(b"call Kowalczyk").decode()
    assert _kinds(scan_texts([("note", f"data:text/plain;base64,{text}")], ids)) == {("note", "name")}


def test_list_elements_are_cells_of_their_own() -> None:
    # someone called Ward Lee; a list of labels ["ward", "lee_chapel"] does not spell their name
    recs = records().with_columns(
        given_name=pl.when(pl.col("record_id") == "H1-1").then(pl.lit("Ward")).otherwise(pl.col("given_name")),
        family_name=pl.when(pl.col("record_id") == "H1-1").then(pl.lit("Lee")).otherwise(pl.col("family_name")))
    ids = identifiers_from_records(recs)
    conn = duckdb.connect()
    conn.execute("CREATE TABLE factors AS SELECT ['ward', 'lee_chapel'] AS labels, ['a', 'Ward Lee'] AS named")
    assert _kinds(scan_duckdb(conn, ids)) == {("main.factors.named", "name")}
