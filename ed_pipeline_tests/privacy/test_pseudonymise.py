from __future__ import annotations

import hashlib
import hmac

import polars as pl

from ed_pipeline.privacy import (
    BLOOM_COLUMNS,
    DIRECT_IDENTIFIER_COLUMNS,
    TOKEN_FIELDS,
    Tokeniser,
    output_schema,
    pseudonymise_people,
)
from ed_pipeline.privacy.pseudonymise import TOKEN_HEX_CHARS
from ed_pipeline_tests.privacy.records import KEY, OTHER_KEY, records


def _row(out: pl.DataFrame, record_id: str) -> dict:
    return out.filter(pl.col("record_id") == record_id).row(0, named=True)


def test_token_fixed_vector_computed_independently() -> None:
    sub = hmac.new(KEY, b"ed_pipeline.privacy/v1/token/nhs_number", hashlib.sha256).digest()
    expected = hmac.new(sub, b"9434765919", hashlib.sha256).hexdigest()[:32]
    assert Tokeniser(KEY).token("nhs_number", "9434765919") == expected
    out = pseudonymise_people(records(), KEY)
    assert _row(out, "SC1")["tok_nhs_number"] == expected


def test_same_value_differs_across_keys_and_fields() -> None:
    t = Tokeniser(KEY)
    assert t.token("given_name", "morgan") != t.token("family_name", "morgan")
    assert t.token("given_name", "morgan") != Tokeniser(OTHER_KEY).token("given_name", "morgan")
    a = pseudonymise_people(records(), KEY)
    b = pseudonymise_people(records(), OTHER_KEY)
    for column in TOKEN_FIELDS:
        left = set(a[column].drop_nulls())
        assert not left & set(b[column].drop_nulls()), column
    # one value in two fields: "Zoe O'Brien" and "O'Brien Zoe" (swapped) give different given-name tokens
    assert _row(a, "SC1")["tok_given_name"] != _row(a, "PI1-1")["tok_family_name"]


def test_output_shape_columns_and_types() -> None:
    recs = records()
    out = pseudonymise_people(recs, KEY)
    assert out.height == recs.height
    assert out["record_id"].to_list() == recs["record_id"].to_list()  # same rows, same order
    assert not DIRECT_IDENTIFIER_COLUMNS & set(out.columns)
    for column, dtype in output_schema().items():
        assert out.schema[column] == dtype, column
    for column in ("source", "record_id", "group_ref", "role", "extract_month", "event_date", "gld",
                   "incident_type", "_row_number"):
        assert out[column].to_list() == recs[column].to_list(), column
    for column in TOKEN_FIELDS:
        assert out[column].drop_nulls().str.contains(f"^[0-9a-f]{{{TOKEN_HEX_CHARS}}}$").all(), column
    for column in BLOOM_COLUMNS:
        lengths = out[column].drop_nulls().bin.size().unique().to_list()
        assert len(lengths) == 1, column
    row = _row(out, "SC1")
    assert (row["sex"], row["birth_year"], row["birth_month"]) == ("F", 2014, 3)
    assert row["ward"] is None and row["lsoa"] is None


def test_nulls_stay_null() -> None:
    out = pseudonymise_people(records(), KEY)
    sr = _row(out, "SR1")
    assert sr["tok_nhs_number"] is None and sr["tok_address"] is None and sr["bf_address"] is None
    assert sr["tok_upn"] is not None
    assert _row(out, "SC1")["tok_upn"] is None


def test_normalisation_makes_tokens_agree() -> None:
    out = pseudonymise_people(records(), KEY)
    sc, sr, pi = _row(out, "SC1"), _row(out, "SR1"), _row(out, "PI1-1")
    # "Zoë O'Brien" / "zoe OBRIEN": case, accents, punctuation
    for column in ("tok_given_name", "tok_family_name", "tok_name_pair", "tok_name_dob", "tok_dob", "tok_postcode",
                   "tok_given_nysiis", "tok_family_soundex"):
        assert sc[column] == sr[column], column
    # "ss164ab" / "SS16 4AB" / "SS16  4AB"
    assert sc["tok_postcode"] == sr["tok_postcode"] == pi["tok_postcode"]
    # "12 Lavender Road" / "12 Lavender Rd"
    assert sc["tok_address"] == pi["tok_address"]
    # names swapped: the sorted pair and the combined filter still agree, the per-field tokens do not
    assert sc["tok_name_pair"] == pi["tok_name_pair"]
    assert sc["bf_name"] == pi["bf_name"]
    assert sc["tok_given_name"] != pi["tok_given_name"]
    # 05/03 against 03/05: no token of one matches a token of the other (see the test below)
    assert sc["tok_dob"] != pi["tok_dob"] and sc["birth_year"] == pi["birth_year"]


def test_no_token_ties_a_day_of_birth_to_another_month() -> None:
    """Birth year and month are in clear: a token shared by two dates of different months (the day alone, or a
    date with day and month swapped matching another's date) would give every day of birth back without the key
    (day tokens decoded from months; 47% of exact dates of birth in a review's attack). Dates of one month in
    different years share the birthday token; dates of different months share nothing."""
    import datetime as dt

    days = [dt.date(2014, 3, 7), dt.date(2014, 7, 3), dt.date(2015, 3, 7), dt.date(2014, 5, 7),
            dt.date(2016, 2, 29), dt.date(2015, 2, 28), dt.date(2014, 3, 8)]
    frame = pl.DataFrame({"source": "social_care", "record_id": [f"R{i}" for i in range(len(days))],
                          "given_name": [f"Name{chr(97 + i)}" for i in range(len(days))], "family_name": "Smith",
                          "date_of_birth": days, "sex": "F", "extract_month": "2018-01"})
    out = pseudonymise_people(frame, KEY)
    dob_tokens = [c for c in out.columns if c.startswith("tok_dob")]

    def tokens(i: int) -> set[str]:
        return {v for v in out.select(dob_tokens).row(i) if v is not None}

    for i, a in enumerate(days):
        for j, b in enumerate(days[:i]):
            shared = tokens(i) & tokens(j)
            assert bool(shared) == (a.month == b.month and a.day == b.day), (a, b)
    assert tokens(4) == {out["tok_dob"][4]}, "29 February alone tells a leap year's date: no birthday token"


def test_initials_first_given_name_and_districts() -> None:
    out = pseudonymise_people(records(), KEY)
    da, h = _row(out, "DA1"), _row(out, "H1-1")
    assert da["name_is_initials"] and not h["name_is_initials"]
    assert da["postcode_is_district"] and da["tok_postcode"] is None and da["tok_postcode_district"] is not None
    assert da["tok_given_nysiis"] is None  # no phonetic code of an initial
    t = Tokeniser(KEY)
    assert h["tok_first_given_name"] == t.token("given_name", "mary")
    assert h["tok_given_name"] == t.token("given_name", "maryann")
    assert h["tok_initials"] == t.token("initials", "mk")
    assert _row(out, "SC1")["tok_postcode_district"] == da["tok_postcode_district"]


def test_ward_and_lsoa_from_a_postcode_lookup() -> None:
    lookup = pl.DataFrame({"postcode": ["SS164AB", "ss13 1aa"], "ward": ["Vange", "Pitsea North West"],
                           "lsoa": ["E01021234", "E01021300"]})
    out = pseudonymise_people(records(), KEY, postcode_lookup=lookup)
    assert _row(out, "SC1")["ward"] == "Vange" and _row(out, "SR1")["lsoa"] == "E01021234"
    assert _row(out, "H1-1")["ward"] == "Pitsea North West"
    assert _row(out, "DA1")["ward"] is None and _row(out, "B1-C")["ward"] is None


def test_string_dates_of_birth_are_parsed() -> None:
    recs = records()
    as_text = recs.with_columns(pl.col("date_of_birth").dt.strftime("%d/%m/%Y"))
    a, b = pseudonymise_people(recs, KEY), pseudonymise_people(as_text, KEY)
    assert a["tok_dob"].to_list() == b["tok_dob"].to_list()


def test_empty_input() -> None:
    out = pseudonymise_people(records().head(0), KEY)
    assert out.height == 0 and "tok_nhs_number" in out.columns
