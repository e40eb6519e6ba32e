"""Which column of a token frame holds what: one small spec object.

The linkage model is written against fixed *internal* column names (the
privacy package's output names, `ed_pipeline.privacy.pseudonymise`).
`TokenColumns` maps them to the columns of someone else's tokenised records: a
data engineer with their own labelled sample passes
`TokenColumns(dob="dob_hash", given="fn_hash", ...)`, or `None` for a field they
do not have. Comparisons, levels and blocking rules that need a missing field
are left out of the model, so link_people works on any subset of identifiers
(at the cost of precision and recall, of course).

Tokens are compared for equality only, so any deterministic encoding works
(keyed HMAC hex, integers, even clear text for the clear-text upper bound).
Bloom filters (`bf_*`) must be equal-length BLOBs (polars Binary); their Dice
similarity is computed in DuckDB SQL (`ed_pipeline.privacy.bloom.dice_sql`).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields

import polars as pl

# internal name -> polars dtype that the model expects (values are cast to it)
INTERNAL_DTYPES: dict[str, pl.DataType] = {
    "source": pl.String(),
    "record_id": pl.String(),
    "group_ref": pl.String(),
    "role": pl.String(),
    "event_date": pl.Date(),
    "extract_month": pl.String(),
    "sex": pl.String(),
    "birth_year": pl.Int32(),
    "birth_month": pl.Int32(),
    "name_is_initials": pl.Boolean(),
    "tok_nhs_number": pl.String(),
    "tok_upn": pl.String(),
    "tok_given_name": pl.String(),
    "tok_first_given_name": pl.String(),
    "tok_family_name": pl.String(),
    "tok_name_pair": pl.String(),
    "tok_initials": pl.String(),
    "tok_given_nysiis": pl.String(),
    "tok_family_nysiis": pl.String(),
    "tok_name_dob": pl.String(),
    "tok_dob": pl.String(),
    "tok_dob_month_day": pl.String(),
    "tok_postcode": pl.String(),
    "tok_postcode_district": pl.String(),
    "tok_uprn": pl.String(),
    "tok_address": pl.String(),
    "tok_address_street": pl.String(),
    "bf_given_name": pl.Binary(),
    "bf_family_name": pl.Binary(),
    "bf_name": pl.Binary(),
    "bf_address": pl.Binary(),
}


@dataclass(frozen=True)
class TokenColumns:
    """Column names of a token frame, by role. `None` = the frame has no such field.

    Defaults are the columns written by `ed_pipeline.privacy.pseudonymise_people`.
    `source` and `record_id` are required; everything else is optional.
    """

    source: str = "source"
    record_id: str = "record_id"
    group_ref: str | None = "group_ref"  # agency row-group (claim, incident): two people in one are distinct
    role: str | None = "role"
    event_date: str | None = "event_date"
    extract_month: str | None = "extract_month"
    sex: str | None = "sex"  # clear M / F / U
    birth_year: str | None = "birth_year"  # clear
    birth_month: str | None = "birth_month"  # clear
    name_is_initials: str | None = "name_is_initials"  # True where only initials are known
    nhs: str | None = "tok_nhs_number"
    upn: str | None = "tok_upn"
    given: str | None = "tok_given_name"
    first_given: str | None = "tok_first_given_name"
    family: str | None = "tok_family_name"
    name_pair: str | None = "tok_name_pair"  # order-independent given+family
    initials: str | None = "tok_initials"
    given_phonetic: str | None = "tok_given_nysiis"
    family_phonetic: str | None = "tok_family_nysiis"
    name_dob: str | None = "tok_name_dob"  # name pair + full date of birth
    dob: str | None = "tok_dob"
    dob_month_day: str | None = "tok_dob_month_day"  # the birthday (month and day), null on 29 February
    postcode: str | None = "tok_postcode"  # full postcode only
    district: str | None = "tok_postcode_district"
    uprn: str | None = "tok_uprn"
    address: str | None = "tok_address"
    address_street: str | None = "tok_address_street"
    bf_given: str | None = "bf_given_name"
    bf_family: str | None = "bf_family_name"
    bf_name: str | None = "bf_name"  # both names in one filter (swap-robust)
    bf_address: str | None = "bf_address"

    def mapping(self) -> dict[str, str]:
        """internal name -> this spec's column name, for the fields it has."""
        internal = _INTERNAL_BY_FIELD
        return {internal[f.name]: getattr(self, f.name) for f in fields(self) if getattr(self, f.name)}

    def to_dict(self) -> dict[str, str | None]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, str | None]) -> TokenColumns:
        return cls(**{k: v for k, v in d.items() if k in {f.name for f in fields(cls)}})


_INTERNAL_BY_FIELD: dict[str, str] = {
    "source": "source", "record_id": "record_id", "group_ref": "group_ref", "role": "role",
    "event_date": "event_date", "extract_month": "extract_month", "sex": "sex", "birth_year": "birth_year",
    "birth_month": "birth_month", "name_is_initials": "name_is_initials", "nhs": "tok_nhs_number",
    "upn": "tok_upn", "given": "tok_given_name", "first_given": "tok_first_given_name",
    "family": "tok_family_name", "name_pair": "tok_name_pair", "initials": "tok_initials",
    "given_phonetic": "tok_given_nysiis", "family_phonetic": "tok_family_nysiis", "name_dob": "tok_name_dob",
    "dob": "tok_dob", "dob_month_day": "tok_dob_month_day", "postcode": "tok_postcode",
    "district": "tok_postcode_district",
    "uprn": "tok_uprn", "address": "tok_address", "address_street": "tok_address_street",
    "bf_given": "bf_given_name", "bf_family": "bf_family_name", "bf_name": "bf_name", "bf_address": "bf_address",
}
assert set(_INTERNAL_BY_FIELD.values()) == set(INTERNAL_DTYPES)


def available_fields(tokens: pl.DataFrame | pl.LazyFrame, spec: TokenColumns) -> frozenset[str]:
    """Internal names of the fields the spec names and the frame has."""
    cols = set(tokens.collect_schema().names())
    return frozenset(internal for internal, col in spec.mapping().items() if col in cols)


def to_internal(tokens: pl.DataFrame, spec: TokenColumns, fields_: frozenset[str] | None = None) -> pl.DataFrame:
    """The frame with internal column names and types; fields outside `fields_` (or absent) become nulls.

    Passing the model's field set keeps a frame's shape identical between
    training and prediction, even if a later frame carries an extra column.
    """
    mapping = spec.mapping()
    for required in ("source", "record_id"):
        if mapping.get(required) not in tokens.columns:
            raise ValueError(f"the token frame has no {required!r} column ({mapping.get(required)!r} in the spec)")
    present = available_fields(tokens, spec) if fields_ is None else fields_
    exprs = []
    for name, dtype in INTERNAL_DTYPES.items():
        col = mapping.get(name)
        if name in present and col in tokens.columns:
            e = pl.col(col)
            if tokens.schema[col] != dtype:
                e = e.cast(pl.String).cast(dtype, strict=False) if dtype != pl.Binary() else e.cast(dtype)
            if dtype == pl.String():
                e = pl.when(e.str.len_chars() > 0).then(e)  # empty strings are missing values
            exprs.append(e.alias(name))
        else:
            exprs.append(pl.lit(None, dtype=dtype).alias(name))
    return tokens.select(exprs)
