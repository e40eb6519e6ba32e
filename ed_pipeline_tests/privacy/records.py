"""Small canonical person records for the privacy tests (validated-layer shape)."""

from __future__ import annotations

import datetime as dt

import polars as pl

KEY = bytes(range(32))
OTHER_KEY = bytes(range(1, 33))

ROWS = [
    # source, record_id, given, family, dob, sex, nhs, address, postcode, uprn, upn
    ("social_care", "SC1", "Zoë", "O'Brien", dt.date(2014, 3, 5), "F", "9434765919",
     "12 Lavender Road, Basildon", "ss164ab", None, None),
    ("school_readiness", "SR1", "zoe", "OBRIEN", dt.date(2014, 3, 5), "F", None, None, "SS16 4AB", None,
     "A123456789012"),
    ("police_incidents", "PI1-1", "O'Brien", "Zoe", dt.date(2014, 5, 3), "F", None,
     "12 Lavender Rd, Basildon", "SS16  4AB", None, None),
    ("drugs_alcohol", "DA1", "J", "S", dt.date(1985, 1, 1), "M", None, None, "SS16", None, None),
    ("housing", "H1-1", "Mary-Ann", "Kowalczyk", dt.date(1990, 12, 25), "F", None,
     "Flat 3, 4 Honeysuckle Close, Pitsea", "SS13 1AA", "100012345678", None),
    ("benefits", "B1-C", "Jonathon", "Pemberton-Smythe", dt.date(1979, 7, 14), "M", None,
     "27 Wrexham Avenue, Laindon", "SS15 6XY", "100098765432", None),
    ("benefits", "B1-D1", "Tobias", "Pemberton-Smythe", dt.date(2013, 11, 2), "U", None,
     "27 Wrexham Avenue, Laindon", "SS15 6XY", "100098765432", None),
]


def records() -> pl.DataFrame:
    cols = ["source", "record_id", "given_name", "family_name", "date_of_birth", "sex", "nhs_number", "address",
            "postcode", "uprn", "upn"]
    df = pl.DataFrame([dict(zip(cols, row, strict=True)) for row in ROWS], schema={
        "source": pl.String, "record_id": pl.String, "given_name": pl.String, "family_name": pl.String,
        "date_of_birth": pl.Date, "sex": pl.String, "nhs_number": pl.String, "address": pl.String,
        "postcode": pl.String, "uprn": pl.String, "upn": pl.String})
    n = df.height
    return df.with_columns(
        event_date=pl.Series([dt.date(2018, 1, 10 + i) for i in range(n)]),
        extract_month=pl.lit("2018-01"),
        group_ref=pl.Series([f"G{i}" for i in range(n)]),
        role=pl.Series(["child", "child", "Victim", "client", "Applicant", "Claimant", "Dependant"]),
        gld=pl.Series([None, True, None, None, None, None, None], dtype=pl.Boolean),
        incident_type=pl.Series([None, None, "Domestic abuse", None, None, None, None], dtype=pl.String),
        _source_file=pl.lit("data/landing/x/2018-01.csv"),
        _row_number=pl.int_range(n, eager=True),
    )
