"""Pseudonymisation of validated canonical person records.

`pseudonymise_people(records, key)` returns the same rows, in the same order,
with every direct identifier replaced by keyed tokens and Bloom-filter
encodings, and only coarse, analysis-ready attributes in clear.

Tokens are HMAC-SHA256 under a sub-key per field, HMAC(key, "token/<field>"),
over the normalised value, truncated to 128 bits and written as 32 lower-case
hex characters (`token_hex`). The same value in two fields gives two unrelated
tokens; the same value in one field gives the same token in every source and
every month, as long as the key is the same. A few token columns deliberately
share a field's sub-key so that they can be compared with each other:
`tok_first_given_name` with `tok_given_name` (first of several given names).

Birth year and month are in clear, so no token may tie a day of birth to a
month or to a day of another month: a token of the day alone (31 values) or of
the date with day and month swapped (equal to the token of another record's
date, whose month is in clear) gives the day back, hence the exact date of
birth, without the key. `tok_dob_month_day` (the birthday, null on 29 February,
which only leap years have) matches only dates of the same month.

Work is done per distinct value (names, postcodes and dates repeat heavily),
then mapped back onto the rows, so two million records take well under a
minute on two cores (see benchmarks/pseudonymise_benchmark.py).
"""

from __future__ import annotations

from collections.abc import Callable

import jellyfish
import polars as pl

from ed_pipeline.privacy import normalise as nz
from ed_pipeline.privacy.bloom import (
    ADDRESS_BLOOM,
    FAMILY_NAME_BLOOM,
    GIVEN_NAME_BLOOM,
    NAME_BLOOM,
    BloomEncoder,
    encode_series,
    rows_to_bytes,
)
from ed_pipeline.privacy.keys import Hmac, check_key, derive_key
from ed_pipeline.sources import SOURCES

TOKEN_BYTES = 16
TOKEN_HEX_CHARS = 2 * TOKEN_BYTES

# Extra direct identifiers declared by sources (school_readiness: upn), tokenised as tok_<name>.
EXTRA_IDENTIFIERS: tuple[str, ...] = tuple(sorted({name for s in SOURCES for name in s.extra_identifiers}))

# Columns of the canonical record that never reach the shared warehouse.
DIRECT_IDENTIFIER_COLUMNS: frozenset[str] = frozenset(
    {
        "given_name",
        "family_name",
        "date_of_birth",
        "nhs_number",
        "address",
        "postcode",
        "uprn",
        "_source_file",
        *EXTRA_IDENTIFIERS,
    }
)

PASSTHROUGH_FRONT: tuple[str, ...] = ("source", "record_id", "group_ref", "role", "extract_month", "event_date")

CLEAR_COLUMNS: dict[str, pl.DataType] = {
    "sex": pl.String(),
    "birth_year": pl.Int16(),
    "birth_month": pl.Int8(),
    "ward": pl.String(),
    "lsoa": pl.String(),
    "name_is_initials": pl.Boolean(),
    "postcode_is_district": pl.Boolean(),
}

# token column -> the field whose sub-key it is made under
TOKEN_FIELDS: dict[str, str] = {
    "tok_nhs_number": "nhs_number",
    **{f"tok_{name}": name for name in EXTRA_IDENTIFIERS},
    "tok_given_name": "given_name",
    "tok_first_given_name": "given_name",
    "tok_family_name": "family_name",
    "tok_name_pair": "name_pair",
    "tok_initials": "initials",
    "tok_given_nysiis": "given_nysiis",
    "tok_given_soundex": "given_soundex",
    "tok_family_nysiis": "family_nysiis",
    "tok_family_soundex": "family_soundex",
    "tok_name_dob": "name_dob",
    "tok_dob": "dob",
    "tok_dob_month_day": "dob_month_day",
    "tok_postcode": "postcode",
    "tok_postcode_district": "postcode_district",
    "tok_uprn": "uprn",
    "tok_address": "address",
    "tok_address_street": "address_street",
}
BLOOM_COLUMNS: tuple[str, ...] = ("bf_given_name", "bf_family_name", "bf_name", "bf_address")
# Columns earlier versions wrote and this one must not leave behind: with birth year and month in clear they gave
# the day of birth back (see the module docstring); the warehouse's IO manager drops them from every month.
RETIRED_COLUMNS = frozenset({"tok_dob_swapped", "tok_dob_year", "tok_dob_month", "tok_dob_day"})


def output_schema(extra: dict[str, pl.DataType] | None = None) -> dict[str, pl.DataType]:
    """Columns added by pseudonymise_people with their types (pass-through columns aside)."""
    schema: dict[str, pl.DataType] = dict(CLEAR_COLUMNS)
    schema.update({c: pl.String() for c in TOKEN_FIELDS})
    schema.update({c: pl.Binary() for c in BLOOM_COLUMNS})
    schema.update(extra or {})
    return schema


class Tokeniser:
    """Keyed tokens of normalised values, one HMAC per distinct value and field."""

    def __init__(self, key: bytes):
        self._key = check_key(key)
        self._hmacs: dict[str, Hmac] = {}

    def hmac(self, field: str) -> Hmac:
        h = self._hmacs.get(field)
        if h is None:
            h = self._hmacs[field] = Hmac(derive_key(self._key, f"token/{field}"))
        return h

    def token(self, field: str, value: str | None) -> str | None:
        """The token of one normalised value (None stays None)."""
        if value is None:
            return None
        return self.hmac(field).digest(value.encode("utf-8"))[:TOKEN_BYTES].hex()

    def series(self, values: pl.Series, field: str) -> pl.Series:
        """Tokens of a String series of normalised values; null stays null."""
        unique = values.drop_nulls().unique()
        digest = self.hmac(field).digest
        tokens = [digest(v.encode("utf-8"))[:TOKEN_BYTES].hex() for v in unique.to_list()]
        return values.replace_strict(unique, pl.Series(tokens, dtype=pl.String), default=None,
                                     return_dtype=pl.String)


def _map_unique(values: pl.Series, fn: Callable[[str], str | None]) -> pl.Series:
    unique = values.drop_nulls().unique()
    mapped = pl.Series([fn(v) or None for v in unique.to_list()], dtype=pl.String)
    return values.replace_strict(unique, mapped, default=None, return_dtype=pl.String)


def _phonetic(fn: Callable[[str], str]) -> Callable[[str], str | None]:
    def code(value: str) -> str | None:
        return fn(value) if len(value) >= 2 else None  # an initial has no useful sound

    return code


def _raw(records: pl.DataFrame, name: str) -> pl.Series:
    """A column as String, or all null when the records lack it."""
    if name in records.columns:
        return records[name].cast(pl.String)
    return pl.Series(name, [None] * records.height, dtype=pl.String)


def _per_unique(values: pl.Series, exprs: dict[str, pl.Expr]) -> pl.DataFrame:
    """Expressions over `pl.col("v")` evaluated once per distinct value, then spread back onto the rows.

    Names, postcodes and addresses repeat heavily, so regex and Unicode work runs on a fraction of the rows.
    """
    unique = values.drop_nulls().unique()
    codes = values.replace_strict(unique, pl.int_range(len(unique), eager=True, dtype=pl.UInt32), default=None,
                                  return_dtype=pl.UInt32)
    table = pl.DataFrame({"v": unique}).select(**exprs)
    return table.select(pl.all().gather(codes))


def _normalised(records: pl.DataFrame, postcode_lookup: pl.DataFrame | None) -> pl.DataFrame:
    """Every normalised identifier that is tokenised or encoded, one column each."""
    v = pl.col("v")
    given = _per_unique(_raw(records, "given_name"), {
        "given": nz.compact_name(v), "first_given": nz.first_name_word(v), "given_words": nz.normalise_name(v)})
    family = _per_unique(_raw(records, "family_name"), {
        "family": nz.compact_name(v), "family_words": nz.normalise_name(v)})
    address = _per_unique(_raw(records, "address"), {
        "address": nz.normalise_address(v), "address_street": nz.address_without_town(v)})
    postcode = _per_unique(_raw(records, "postcode"), {"postcode": nz.normalise_postcode(v)})
    if "date_of_birth" in records.columns:
        dob = records.select(dob=nz.parse_date(pl.col("date_of_birth"), records.schema["date_of_birth"]))
    else:
        dob = pl.DataFrame({"dob": pl.Series([None] * records.height, dtype=pl.Date)})
    numbers = pl.DataFrame({
        "nhs_number": _raw(records, "nhs_number"),
        "uprn": _raw(records, "uprn"),
        **{name: _raw(records, name) for name in EXTRA_IDENTIFIERS},
    }).select(
        nhs_number=nz.normalise_digits(pl.col("nhs_number")),
        uprn=nz.normalise_uprn(pl.col("uprn")),
        **{name: nz.normalise_code(pl.col(name)) for name in EXTRA_IDENTIFIERS},
    )
    out = pl.concat([given, family, address, postcode, dob, numbers], how="horizontal")
    g, f = pl.col("given"), pl.col("family")
    dob = pl.col("dob")
    day, month = dob.dt.day(), dob.dt.month()
    out = out.with_columns(
        name_pair=pl.when(g <= f).then(pl.concat_str([g, f], separator="|")).otherwise(
            pl.concat_str([f, g], separator="|")),
        initials=pl.concat_str([g.str.slice(0, 1), f.str.slice(0, 1)]),
        dob_iso=dob.dt.strftime("%Y-%m-%d"),
        dob_month_day=pl.when((month != 2) | (day != 29)).then(dob.dt.strftime("%m-%d")),
        postcode_full=pl.when(nz.postcode_is_full(pl.col("postcode"))).then(pl.col("postcode")),
        postcode_district=nz.postcode_district(pl.col("postcode")),
    ).with_columns(
        name_dob=pl.concat_str([pl.col("name_pair"), pl.col("dob_iso")], separator="|"),
    )
    if postcode_lookup is not None:
        lookup = (
            postcode_lookup.select(
                postcode=nz.normalise_postcode(pl.col("postcode").cast(pl.String)),
                ward=pl.col("ward").cast(pl.String),
                lsoa=pl.col("lsoa").cast(pl.String),
            )
            .drop_nulls("postcode")
            .unique("postcode", keep="first")
        )
        keys = out["postcode_full"]
        out = out.with_columns(
            ward=keys.replace_strict(lookup["postcode"], lookup["ward"], default=None, return_dtype=pl.String),
            lsoa=keys.replace_strict(lookup["postcode"], lookup["lsoa"], default=None, return_dtype=pl.String),
        )
    else:
        out = out.with_columns(ward=pl.lit(None, dtype=pl.String), lsoa=pl.lit(None, dtype=pl.String))
    return out


def _name_bloom(key: bytes, given: pl.Series, family: pl.Series) -> pl.Series:
    """The combined, order-free filter of both names: raw filters OR-ed, then hardened.

    Both names go through one encoder, so "John Smith" and "Smith John" get the same filter.
    """
    encoder = BloomEncoder(key, NAME_BLOOM)
    pairs = pl.DataFrame({"g": given, "f": family})
    unique = pairs.drop_nulls().unique()
    if unique.height == 0:
        return pl.Series("bf_name", [None] * len(given), dtype=pl.Binary)
    names = pl.concat([unique["g"], unique["f"]]).unique()
    raw = encoder.encode_raw(names.to_list())
    index = pl.int_range(len(names), eager=True)
    gi = unique["g"].replace_strict(names, index).to_numpy()
    fi = unique["f"].replace_strict(names, index).to_numpy()
    filters = pl.Series(rows_to_bytes(encoder.harden(raw[gi] | raw[fi])), dtype=pl.Binary)
    pair_key = unique.select(pl.concat_str(["g", "f"], separator="\x00")).to_series()
    row_key = pairs.select(pl.concat_str(["g", "f"], separator="\x00")).to_series()
    return row_key.replace_strict(pair_key, filters, default=None, return_dtype=pl.Binary).alias("bf_name")


def pseudonymise_people(
    records: pl.DataFrame, key: bytes, postcode_lookup: pl.DataFrame | None = None
) -> pl.DataFrame:
    """Validated canonical person records in; the same rows out, in order, without direct identifiers.

    Out: the pass-through columns (source, record_id, group_ref, role, extract_month, event_date), the
    coarse clear columns (sex, birth_year, birth_month, ward, lsoa from `postcode_lookup`, which has
    columns postcode, ward, lsoa; null without it; name_is_initials, postcode_is_district), one token
    column per entry of TOKEN_FIELDS (32 hex chars, null where the input is null), the Bloom filters in
    BLOOM_COLUMNS (Binary), then every other input column (event attributes, `_row_number`) unchanged.
    Dropped: DIRECT_IDENTIFIER_COLUMNS.
    """
    tokeniser = Tokeniser(key)  # refuses a short key before any work
    n = records.height
    norm = _normalised(records, postcode_lookup)

    columns: dict[str, pl.Series] = {}
    for name in PASSTHROUGH_FRONT:
        if name in records.columns:
            columns[name] = records[name]
    columns["sex"] = records["sex"].cast(pl.String) if "sex" in records.columns else pl.Series(
        [None] * n, dtype=pl.String)
    dob = norm["dob"]
    columns["birth_year"] = dob.dt.year().cast(pl.Int16)
    columns["birth_month"] = dob.dt.month().cast(pl.Int8)
    columns["ward"] = norm["ward"]
    columns["lsoa"] = norm["lsoa"]
    columns["name_is_initials"] = (norm["given"].str.len_chars() == 1) & (norm["family"].str.len_chars() == 1)
    columns["postcode_is_district"] = norm["postcode"].is_not_null() & norm["postcode_full"].is_null()

    sources = {
        "tok_nhs_number": norm["nhs_number"],
        **{f"tok_{name}": norm[name] for name in EXTRA_IDENTIFIERS},
        "tok_given_name": norm["given"],
        "tok_first_given_name": norm["first_given"],
        "tok_family_name": norm["family"],
        "tok_name_pair": norm["name_pair"],
        "tok_initials": norm["initials"],
        "tok_given_nysiis": _map_unique(norm["first_given"], _phonetic(jellyfish.nysiis)),
        "tok_given_soundex": _map_unique(norm["first_given"], _phonetic(jellyfish.soundex)),
        "tok_family_nysiis": _map_unique(norm["family"], _phonetic(jellyfish.nysiis)),
        "tok_family_soundex": _map_unique(norm["family"], _phonetic(jellyfish.soundex)),
        "tok_name_dob": norm["name_dob"],
        "tok_dob": norm["dob_iso"],
        "tok_dob_month_day": norm["dob_month_day"],
        "tok_postcode": norm["postcode_full"],
        "tok_postcode_district": norm["postcode_district"],
        "tok_uprn": norm["uprn"],
        "tok_address": norm["address"],
        "tok_address_street": norm["address_street"],
    }
    for column, field in TOKEN_FIELDS.items():
        columns[column] = tokeniser.series(sources[column], field)

    columns["bf_given_name"] = encode_series(norm["given_words"], BloomEncoder(key, GIVEN_NAME_BLOOM))
    columns["bf_family_name"] = encode_series(norm["family_words"], BloomEncoder(key, FAMILY_NAME_BLOOM))
    columns["bf_name"] = _name_bloom(key, norm["given_words"], norm["family_words"])
    columns["bf_address"] = encode_series(norm["address"], BloomEncoder(key, ADDRESS_BLOOM))

    for name in records.columns:
        if name not in columns and name not in DIRECT_IDENTIFIER_COLUMNS:
            columns[name] = records[name]
    return pl.DataFrame([s.alias(name) for name, s in columns.items()])
