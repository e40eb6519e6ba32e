"""Clear-text identifiers shaped like tokens: the upper bound that pseudonymised linkage is measured against.

`clear_tokens(records)` takes canonical person records (agency zone: names,
dates of birth, addresses) and returns the columns of the privacy package's
token frame holding the *normalised clear values* instead of keyed tokens (and
no Bloom filters). Linking it with a model trained with `similarity="clear"`
uses the same comparisons and blocking, with Jaro-Winkler on the clear names
and address where the pseudonymised model uses Bloom-filter Dice. For
evaluation and benchmarks only: it never belongs in the shared warehouse.
"""

from __future__ import annotations

import jellyfish
import polars as pl

from ed_pipeline.privacy import normalise as nz


def _col(records: pl.DataFrame, name: str) -> pl.Expr:
    return pl.col(name).cast(pl.String) if name in records.columns else pl.lit(None, dtype=pl.String)


def _map_unique(values: pl.Series, fn) -> pl.Series:
    unique = values.drop_nulls().unique()
    mapped = pl.Series([fn(v) if len(v) >= 2 else None for v in unique.to_list()], dtype=pl.String)
    return values.replace_strict(unique, mapped, default=None, return_dtype=pl.String)


def clear_tokens(records: pl.DataFrame) -> pl.DataFrame:
    given, family = _col(records, "given_name"), _col(records, "family_name")
    g, f = nz.compact_name(given), nz.compact_name(family)
    dob = nz.parse_date(pl.col("date_of_birth"), records.schema["date_of_birth"]) \
        if "date_of_birth" in records.columns else pl.lit(None, dtype=pl.Date)
    postcode = nz.normalise_postcode(_col(records, "postcode"))
    passthrough = [c for c in ("source", "record_id", "group_ref", "role", "extract_month", "event_date")
                   if c in records.columns]
    out = records.select(
        *passthrough,
        sex=_col(records, "sex"),
        _dob=dob,
        tok_nhs_number=nz.normalise_digits(_col(records, "nhs_number")),
        tok_upn=nz.normalise_code(_col(records, "upn")),
        tok_given_name=g,
        tok_first_given_name=nz.first_name_word(given),
        tok_family_name=f,
        tok_name_pair=pl.when(g <= f).then(pl.concat_str([g, f], separator="|"))
        .otherwise(pl.concat_str([f, g], separator="|")),
        tok_initials=pl.concat_str([g.str.slice(0, 1), f.str.slice(0, 1)]),
        _postcode=postcode,
        tok_uprn=nz.normalise_uprn(_col(records, "uprn")),
        tok_address=nz.normalise_address(_col(records, "address")),
        tok_address_street=nz.address_without_town(_col(records, "address")),
    )
    d = pl.col("_dob")
    day, month = d.dt.day(), d.dt.month()
    out = out.with_columns(
        birth_year=d.dt.year().cast(pl.Int32),
        birth_month=month.cast(pl.Int32),
        name_is_initials=(pl.col("tok_given_name").str.len_chars() == 1)
        & (pl.col("tok_family_name").str.len_chars() == 1),
        tok_dob=d.dt.strftime("%Y-%m-%d"),
        tok_dob_month_day=pl.when((month != 2) | (day != 29)).then(d.dt.strftime("%m-%d")),
        tok_postcode=pl.when(nz.postcode_is_full(pl.col("_postcode"))).then(pl.col("_postcode")),
        tok_postcode_district=nz.postcode_district(pl.col("_postcode")),
    ).with_columns(
        tok_name_dob=pl.concat_str([pl.col("tok_name_pair"), pl.col("tok_dob")], separator="|"),
    )
    first = out["tok_first_given_name"]
    return out.with_columns(
        tok_given_nysiis=_map_unique(first, jellyfish.nysiis),
        tok_family_nysiis=_map_unique(out["tok_family_name"], jellyfish.nysiis),
    ).drop("_dob", "_postcode")
