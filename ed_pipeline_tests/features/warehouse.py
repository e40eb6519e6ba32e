"""A hand-made warehouse: a few pseudonymised records and linked tables whose features are known by hand.

The data window is 2014-01 .. 2018-06. The main child, C, was born in March 2015: prediction date
D = 2018-03-01 (12 months back: 2017-03-01; 24 months back: 2016-03-01). At D, C lives in household H with
mother M (born 1990), father F (born 1988) and brother S (born 2003, 14 at D); X lived in H until 2017-06-01.
C moved into H on 2016-08-01 from H0 (a move within 24 months).

Z and Y are adults nobody lives with. Two more children: C2 (born 2012-11, D = 2015-11-01, no household, EYFSP 2017
not GLD) and C3 (born 2009-07, D = 2012-07-01, before the data starts: history 0 months, EYFSP 2014).

Every agency that sends a monthly extract has a record in the window's last month, 2018-06 (Z's police incident,
Y's others), so the data are complete to 2018-07-01; the EYFSP return is annual (July): its last, 2017-07, does
not hold the window back.
"""

from __future__ import annotations

import atexit
import functools
import hashlib
import os
import shutil
import subprocess
import tempfile
from datetime import date
from pathlib import Path

import duckdb
import polars as pl

from ed_pipeline.resilience import copy_database
from ed_pipeline.settings import DBT_PROJECT_DIR, dbt_executable

COMMON = {
    "source": pl.String, "record_id": pl.String, "group_ref": pl.String, "role": pl.String,
    "extract_month": pl.String, "event_date": pl.Date, "sex": pl.String, "birth_year": pl.Int16,
    "birth_month": pl.Int8, "ward": pl.String, "lsoa": pl.String, "tok_dob": pl.String,
    "_row_number": pl.Int64,  # the row's line in its extract file (lineage kept from raw)
    "_arrived_month": pl.String,  # the month whose landing brought the row (null: its extract month)
}
ATTRIBUTES = {
    "social_care": {"referral_source": pl.String, "category": pl.String, "primary_need": pl.String},
    "school_readiness": {"school_urn": pl.String, "gld": pl.Boolean, "fsm": pl.Boolean, "eal": pl.Boolean,
                         "sen": pl.String, "ethnicity": pl.String},
    "youth_offending": {"offence_type": pl.String, "outcome": pl.String},
    "drugs_alcohol": {"substance": pl.String, "lives_with_children": pl.Boolean},
    "housing": {"status": pl.String, "band": pl.String, "bedrooms_needed": pl.Int64, "bedrooms_current": pl.Int64},
    "benefits": {"claim_type": pl.String, "weekly_award": pl.Float64},
    "police_incidents": {"incident_type": pl.String, "domestic_abuse": pl.Boolean},
}
BORN = {"C": (2015, 3, "F"), "M": (1990, 5, "F"), "F": (1988, 1, "M"), "S": (2003, 6, "M"), "X": (1985, 2, "M"),
        "C2": (2012, 11, "M"), "C3": (2009, 7, "F"), "Z": (1970, 1, "M"), "Y": (1975, 4, "F")}
D = date(2018, 3, 1)
LSOA = {"Vange": "E01021300", "Pitsea North West": "E01021280", "Fryerns": "E01021250",
        "Laindon Park": "E01021260", "Crouch": "E01021240"}

# (source, record_id, person, group_ref, role, extract_month, event_date, ward, attributes)
Record = tuple[str, str, str, str, str, str, date, str | None, dict]


def base_records() -> list[Record]:
    vange, pitsea = "Vange", "Pitsea North West"
    return [
        # police: a domestic-abuse incident in the last 12 months naming three of the household (counts once)
        ("police_incidents", "INC1-1", "M", "INC1", "Victim", "2017-10", date(2017, 10, 10), pitsea,
         {"incident_type": "Domestic abuse", "domestic_abuse": True}),
        ("police_incidents", "INC1-2", "F", "INC1", "Suspect", "2017-10", date(2017, 10, 10), pitsea,
         {"incident_type": "Domestic abuse", "domestic_abuse": True}),
        ("police_incidents", "INC1-3", "C", "INC1", "Child present", "2017-10", date(2017, 10, 10), vange,
         {"incident_type": "Domestic abuse", "domestic_abuse": True}),
        # 13-24 months before D
        ("police_incidents", "INC2-1", "F", "INC2", "Suspect", "2016-06", date(2016, 6, 1), None,
         {"incident_type": "Anti-social behaviour", "domestic_abuse": False}),
        # first sent as "Other", corrected to domestic abuse in a later extract that landed before D
        ("police_incidents", "INC4-1", "M", "INC4", "Victim", "2017-08", date(2017, 7, 20), None,
         {"incident_type": "Other", "domestic_abuse": False}),
        ("police_incidents", "INC4-1", "M", "INC4", "Victim", "2017-11", date(2017, 7, 20), None,
         {"incident_type": "Domestic abuse", "domestic_abuse": True}),
        # X left the household before D: X's incident does not count for C
        ("police_incidents", "INC3-1", "X", "INC3", "Suspect", "2017-12", date(2017, 12, 1), None,
         {"incident_type": "Violence", "domestic_abuse": False}),
        # an incident more than 24 months before D
        ("police_incidents", "INC5-1", "M", "INC5", "Victim", "2015-01", date(2015, 1, 5), None,
         {"incident_type": "Theft", "domestic_abuse": False}),
        # social care: the brother referred, then child in need
        ("social_care", "SC1", "S", "SC1", "child", "2017-05", date(2017, 5, 1), None,
         {"referral_source": "School", "category": "Referral", "primary_need": "N1"}),
        # the same referral sent again under a new key (a duplicate row of the agency's): still one referral
        ("social_care", "SC1D", "S", "SC1D", "child", "2017-05", date(2017, 5, 1), None,
         {"referral_source": "School", "category": "Referral", "primary_need": "N1"}),
        ("social_care", "SC2", "S", "SC2", "child", "2017-06", date(2017, 6, 12), None,
         {"referral_source": "School", "category": "Child in need", "primary_need": "N1"}),
        # an old referral of C (before the 24 months)
        ("social_care", "SC3", "C", "SC3", "child", "2015-12", date(2015, 12, 1), None,
         {"referral_source": "Health", "category": "Referral", "primary_need": "N2"}),
        # youth offending: the father as a youth, the brother recently
        ("youth_offending", "YO1", "F", "YO1", "offender", "2014-01", date(2014, 1, 3), None,
         {"offence_type": "Theft and handling", "outcome": "Youth caution"}),
        ("youth_offending", "YO2", "S", "YO2", "offender", "2017-09", date(2017, 9, 9), None,
         {"offence_type": "Criminal damage", "outcome": "Referral order"}),
        # the mother in treatment within 24 months
        ("drugs_alcohol", "DA1", "M", "DA1", "client", "2017-01", date(2017, 1, 15), None,
         {"substance": "Alcohol", "lives_with_children": True}),
        # housing: registered overcrowded, then the same record re-sent in temporary accommodation
        ("housing", "A1-1", "M", "A1", "Applicant", "2016-09", date(2016, 9, 1), pitsea,
         {"status": "Registered", "band": "B", "bedrooms_needed": 3, "bedrooms_current": 2}),
        ("housing", "A1-2", "C", "A1", "Child", "2016-09", date(2016, 9, 1), pitsea,
         {"status": "Registered", "band": "B", "bedrooms_needed": 3, "bedrooms_current": 2}),
        ("housing", "A1-1", "M", "A1", "Applicant", "2017-02", date(2017, 2, 1), pitsea,
         {"status": "Temporary accommodation", "band": "A", "bedrooms_needed": 3, "bedrooms_current": 3}),
        # benefits: a claim started more than 24 months before D, re-sent at a change within them (running then)
        ("benefits", "B1-C", "F", "B1", "Claimant", "2014-05", date(2014, 5, 1), None,
         {"claim_type": "HB", "weekly_award": 95.0}),
        ("benefits", "B1-C", "F", "B1", "Claimant", "2016-06", date(2014, 5, 1), None,
         {"claim_type": "HB+CTR", "weekly_award": 104.0}),
        # a claim already running when the data begin, sent in their first extract: recent as of its start (2012),
        # not of that extract (which would make it recent for C2's prediction date, 2015-11-01)
        ("benefits", "B0-D1", "C2", "B0", "Dependant", "2014-01", date(2012, 9, 1), None,
         {"claim_type": "CTR", "weekly_award": 20.0}),
        # someone else entirely, in the last extract of the window
        ("police_incidents", "INC9-1", "Z", "INC9", "Witness", "2018-06", date(2018, 6, 2), None,
         {"incident_type": "Theft", "domestic_abuse": False}),
        # and someone else again in every other monthly source's last extract
        ("social_care", "SC9", "Y", "SC9", "child", "2018-06", date(2018, 6, 4), None,
         {"referral_source": "Health", "category": "Referral", "primary_need": "N3"}),
        ("youth_offending", "YO9", "Y", "YO9", "offender", "2018-06", date(2018, 6, 5), None,
         {"offence_type": "Theft and handling", "outcome": "Youth caution"}),
        ("drugs_alcohol", "DA9", "Y", "DA9", "client", "2018-06", date(2018, 6, 6), None,
         {"substance": "Cannabis", "lives_with_children": False}),
        ("housing", "A9-1", "Y", "A9", "Applicant", "2018-06", date(2018, 6, 7), None,
         {"status": "Registered", "band": "C", "bedrooms_needed": 1, "bedrooms_current": 1}),
        ("benefits", "B9-C", "Y", "B9", "Claimant", "2018-06", date(2018, 6, 8), None,
         {"claim_type": "CTR", "weekly_award": 15.0}),
        # EYFSP returns
        ("school_readiness", "R1", "C2", "R1", "child", "2017-07", date(2017, 6, 20), "Fryerns",
         {"school_urn": "115000", "gld": False, "fsm": False, "eal": True, "sen": "K", "ethnicity": "ASIA"}),
        ("school_readiness", "R2", "C3", "R2", "child", "2014-07", date(2014, 6, 18), "Vange",
         {"school_urn": "115001", "gld": True, "fsm": True, "eal": False, "sen": "N", "ethnicity": "NOBT"}),
    ]


def planted_records() -> list[Record]:
    """Records that must not change C's features at D: late, future, or a correction that landed after D."""
    return [
        # late: happened before D, but in the March 2018 extract, which lands at the end of March (after D)
        ("police_incidents", "LATE1-1", "M", "LATE1", "Victim", "2018-03", date(2018, 1, 15), None,
         {"incident_type": "Domestic abuse", "domestic_abuse": True}),
        ("social_care", "LATE2", "C", "LATE2", "child", "2018-03", date(2018, 2, 20), "Laindon Park",
         {"referral_source": "Police", "category": "Child protection plan", "primary_need": "N1"}),
        ("benefits", "LATE3-C", "M", "LATE3", "Claimant", "2018-04", date(2018, 2, 1), None,
         {"claim_type": "HB+CTR", "weekly_award": 120.0}),
        # future: happened after D
        ("police_incidents", "FUT1-1", "C", "FUT1", "Child present", "2018-04", date(2018, 4, 10), "Crouch",
         {"incident_type": "Domestic abuse", "domestic_abuse": True}),
        ("drugs_alcohol", "FUT2", "F", "FUT2", "client", "2018-05", date(2018, 5, 2), None,
         {"substance": "Opiates", "lives_with_children": True}),
        # a correction landing after D: INC2 re-classified as domestic abuse in the May 2018 extract
        ("police_incidents", "INC2-1", "F", "INC2", "Suspect", "2018-05", date(2016, 6, 1), None,
         {"incident_type": "Domestic abuse", "domestic_abuse": True}),
    ]


HOUSEHOLDS = [  # household_id, person_id, valid_from, valid_to (exclusive)
    ("H0", "C", date(2015, 3, 10), date(2016, 8, 1)),
    ("H", "C", date(2016, 8, 1), None),
    ("H", "M", date(2014, 1, 1), None),
    ("H", "F", date(2014, 1, 1), None),
    ("H", "S", date(2014, 1, 1), None),
    ("H", "X", date(2014, 1, 1), date(2017, 6, 1)),
]


def write_warehouse(path: Path, records: list[Record]) -> None:
    """pseudonymised.<source> for every source (empty where no records), linked.person_link, person,
    household_membership, written as the pipeline writes them. `_row_number` numbers each extract's records
    (source, extract_month) in the order given; a record's attributes may set its `_arrived_month`."""
    with duckdb.connect(str(path)) as conn:
        for schema in ("pseudonymised", "linked"):
            conn.execute(f"create schema if not exists {schema}")
        links, lines = [], {}
        for source, attributes in ATTRIBUTES.items():
            schema = {**COMMON, **attributes}
            rows = []
            for (src, record_id, person, group_ref, role, month, event_date, ward, attrs) in records:
                if src != source:
                    continue
                year, mon, sex = BORN[person]
                lines[src, month] = lines.get((src, month), 0) + 1
                rows.append({"source": src, "record_id": record_id, "group_ref": group_ref, "role": role,
                             "extract_month": month, "event_date": event_date, "sex": sex, "birth_year": year,
                             "birth_month": mon, "ward": ward, "lsoa": LSOA.get(ward), "tok_dob": "not-a-real-token",
                             "_row_number": lines[src, month], "_arrived_month": None, **attrs})
                links.append({"source": src, "record_id": record_id, "person_id": person, "match_probability": 1.0})
            frame = pl.DataFrame(rows, schema=schema)  # noqa: F841 (read by DuckDB by name)
            conn.execute(f"create or replace table pseudonymised.{source} as select * from frame")
        link = pl.DataFrame(links).unique(subset=["source", "record_id"])  # noqa: F841
        conn.execute("create or replace table linked.person_link as select * from link")
        person = pl.DataFrame(  # noqa: F841
            [{"person_id": p, "records": 1, "sources": "", "first_seen": date(2014, 1, 1), "last_seen": D,
              "birth_year": y, "birth_month": m, "sex": s} for p, (y, m, s) in BORN.items()],
            schema_overrides={"birth_year": pl.Int32, "birth_month": pl.Int32})
        conn.execute("create or replace table linked.person as select * from person")
        membership = pl.DataFrame(  # noqa: F841
            HOUSEHOLDS, schema={"household_id": pl.String, "person_id": pl.String, "valid_from": pl.Date,
                                "valid_to": pl.Date}, orient="row")
        conn.execute("create or replace table linked.household_membership as select * from membership")


@functools.cache
def _builds_dir() -> Path:
    """This test process's dbt builds, each project's warehouses under the same paths from build to build."""
    path = Path(tempfile.mkdtemp(prefix="ed-dbt-builds-"))
    atexit.register(shutil.rmtree, path, ignore_errors=True)
    return path


def dbt_build(warehouse: Path, work: Path, project: Path = DBT_PROJECT_DIR, *args: str
              ) -> subprocess.CompletedProcess:
    """`dbt build` of the project against `warehouse`, with logs under `work` (the repo's untouched).

    dbt builds a copy of the warehouse kept at one path per project and file name (the file name names the
    database its views refer to), with a target there too, and the copy comes back: dbt does not parse partially
    after a parse made with another profile, which holds the warehouse's path (two of the features test files
    took 143 s in place of 160 s)."""
    home = _builds_dir() / hashlib.sha256(str(Path(project).resolve()).encode()).hexdigest()[:16]
    home.mkdir(exist_ok=True)
    built = home / warehouse.name
    copy_database(warehouse, built)
    env = {**os.environ, "ED_WAREHOUSE_DB": str(built), "DBT_SEND_ANONYMOUS_USAGE_STATS": "false"}
    try:
        return subprocess.run(
            [dbt_executable(), "build", "--project-dir", str(project), "--profiles-dir", str(project),
             "--target-path", str(home / f"target-{warehouse.stem}"), "--log-path", str(work / "logs"), *args],
            env=env, capture_output=True, text=True, timeout=300)
    finally:
        copy_database(built, warehouse)
