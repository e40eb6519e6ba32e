"""The agency extract registry: every source declared once, as data.

Each entry says what an agency's monthly CSV looks like (its own header, date
format and codes), where each person's identifiers sit in a row (a benefit
claim names a claimant, a partner and dependants), and which event attributes
it carries. Raw and validated assets, their checks, the Great Expectations
suites and the synthetic extracts are all generated from this registry:
adding an agency is one more entry in SOURCES.

The canonical person record that every source maps to in the validated layer
is CANONICAL_COLUMNS, followed by GROUP_COLUMNS and the source's event fields.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import polars as pl

CANONICAL_COLUMNS: tuple[str, ...] = (
    "source",
    "record_id",
    "given_name",
    "family_name",
    "date_of_birth",  # Date
    "sex",  # M / F / U
    "nhs_number",  # nullable, modulus-11 valid
    "address",  # nullable
    "postcode",  # nullable; a district only ("SS16") where the source is data-minimised
    "uprn",  # nullable
    "event_date",  # Date
    "extract_month",  # YYYY-MM of the file the record came in
)
# Every validated record also says which agency row-group it came from (a claim,
# an incident, a housing application) and the person's role in it, so that later
# layers can tell who was seen together.
GROUP_COLUMNS: tuple[str, ...] = ("group_ref", "role")

NameStyle = Literal["separate", "surname_comma_forename", "initials"]
DType = Literal["str", "date", "int", "float", "bool"]
BOOL_CODES = {"Y": True, "N": False}


@dataclass(frozen=True)
class Person:
    """Where one person's identifiers sit in a raw row."""

    date_of_birth: str
    given_name: str | None = None
    family_name: str | None = None
    full_name: str | None = None  # one column holding both, read with the source's name_style
    sex: str | None = None
    role: str | None = None  # literal role when the source has no role column
    suffix: str = ""  # appended to the row key to make this person's record id
    optional: bool = False  # a slot that may be blank (partner, dependants): skipped when empty


@dataclass(frozen=True)
class EventField:
    """An event attribute carried into the validated table."""

    raw: str
    name: str
    dtype: DType = "str"
    domain: tuple[str, ...] | None = None  # allowed raw codes, for categorical fields
    required: bool = False


@dataclass(frozen=True)
class Source:
    name: str
    agency: str
    description: str
    columns: tuple[str, ...]  # the extract's header, in order
    key: tuple[str, ...]  # raw columns whose values identify a row: see row_key
    people: tuple[Person, ...]
    event_date: str
    date_format: str  # strptime format of dates of birth (and event dates unless overridden)
    name_style: NameStyle = "separate"
    event_date_format: str | None = None
    sex_codes: dict[str, str] = field(default_factory=lambda: {"M": "M", "F": "F", "U": "U"})
    role_column: str | None = None
    role_domain: tuple[str, ...] | None = None
    nhs_number: str | None = None
    address: str | None = None
    postcode: str | None = None
    postcode_granularity: Literal["full", "district"] = "full"
    uprn: str | None = None
    extra_identifiers: dict[str, str] = field(default_factory=dict)  # canonical name -> raw column
    event_fields: tuple[EventField, ...] = ()
    landing_month: int | None = None  # the calendar month the extract lands, if not every month

    def row_key(self) -> pl.Expr:
        """The row key of a frame of (stripped) raw values: the key's values joined by "-". Where one of them holds
        a "-" ("H9" + "1-2" and "H9-1" + "2" were both "H9-1-2"), every value has its "%" and "-" percent-encoded and
        they are joined by "--": no value then holds a "-" and the key twice the dashes of a plain join, so no two
        keys share a row key, and a key without a "-" in its values keeps the id it always had."""
        values = [pl.col(k) for k in self.key]
        plain = pl.concat_str(values, separator="-")
        if len(values) == 1:
            return plain
        encoded = [v.str.replace_all("%", "%25", literal=True).str.replace_all("-", "%2D", literal=True)
                   for v in values]
        has_dash = pl.any_horizontal([v.str.contains("-", literal=True) for v in values])
        return pl.when(has_dash).then(pl.concat_str(encoded, separator="--")).otherwise(plain)

    @property
    def event_format(self) -> str:
        return self.event_date_format or self.date_format

    @property
    def identifier_columns(self) -> tuple[str, ...]:
        """Raw columns that hold a direct identifier (names, dates of birth, numbers, addresses)."""
        cols: list[str] = []
        for p in self.people:
            cols += [c for c in (p.given_name, p.family_name, p.full_name, p.date_of_birth) if c]
        cols += [c for c in (self.nhs_number, self.address, self.postcode, self.uprn) if c]
        cols += list(self.extra_identifiers.values())
        return tuple(cols)


def _slot(prefix: str, role: str, suffix: str, optional: bool) -> Person:
    return Person(
        given_name=f"{prefix}_forename",
        family_name=f"{prefix}_surname",
        date_of_birth=f"{prefix}_dob",
        sex=f"{prefix}_sex",
        role=role,
        suffix=suffix,
        optional=optional,
    )


YES_NO = ("Y", "N")
MAX_BENEFIT_DEPENDANTS = 4
BENEFIT_SLOTS = ("claimant", "partner", *(f"dep{i}" for i in range(1, MAX_BENEFIT_DEPENDANTS + 1)))

SOURCES: tuple[Source, ...] = (
    Source(
        name="social_care",
        agency="Essex County Council",
        description="Children's social care: referrals, child in need, child protection plans",
        columns=(
            "referral_id", "child_forename", "child_surname", "dob", "gender", "nhs_no",
            "address_line_1", "postcode", "referral_date", "referral_source", "category", "primary_need",
        ),
        key=("referral_id",),
        people=(Person(given_name="child_forename", family_name="child_surname", date_of_birth="dob",
                       sex="gender", role="child"),),
        event_date="referral_date",
        date_format="%d/%m/%Y",
        sex_codes={"Male": "M", "Female": "F", "Not known": "U"},
        nhs_number="nhs_no",
        address="address_line_1",
        postcode="postcode",
        event_fields=(
            EventField("referral_source", "referral_source",
                       domain=("Police", "School", "Health", "Local authority", "Family", "Other")),
            EventField("category", "category", domain=("Referral", "Child in need", "Child protection plan"),
                       required=True),
            EventField("primary_need", "primary_need", domain=tuple(f"N{i}" for i in range(1, 10))),
        ),
    ),
    Source(
        name="school_readiness",
        agency="Essex County Council",
        description="EYFSP return: Good Level of Development per child, with FSM, EAL, SEN, ethnicity",
        columns=(
            "return_row_id", "upn", "forename", "surname", "date_of_birth", "sex", "postcode", "school_urn",
            "assessment_date", "gld", "fsm", "eal", "sen", "ethnicity",
        ),
        key=("return_row_id",),
        people=(Person(given_name="forename", family_name="surname", date_of_birth="date_of_birth", sex="sex",
                       role="child"),),
        event_date="assessment_date",
        date_format="%Y-%m-%d",
        sex_codes={"M": "M", "F": "F"},
        postcode="postcode",
        extra_identifiers={"upn": "upn"},
        landing_month=7,
        event_fields=(
            EventField("school_urn", "school_urn"),
            EventField("gld", "gld", dtype="bool", domain=YES_NO, required=True),
            EventField("fsm", "fsm", dtype="bool", domain=YES_NO),
            EventField("eal", "eal", dtype="bool", domain=YES_NO),
            EventField("sen", "sen", domain=("N", "K", "E")),  # none / SEN support / EHC plan
            EventField("ethnicity", "ethnicity",
                       domain=("WBRI", "WOTH", "MIXD", "ASIA", "BLAC", "CHIN", "AOEG", "REFU", "NOBT")),
        ),
    ),
    Source(
        name="youth_offending",
        agency="Essex County Council",
        description="Youth Offending Service: proven offences and their outcomes",
        columns=("yot_ref", "name", "dob", "gender", "offence_date", "offence_type", "outcome"),
        key=("yot_ref",),
        people=(Person(full_name="name", date_of_birth="dob", sex="gender", role="offender"),),
        event_date="offence_date",
        date_format="%d/%m/%Y",
        name_style="surname_comma_forename",
        sex_codes={"M": "M", "F": "F"},
        event_fields=(
            EventField("offence_type", "offence_type", required=True, domain=(
                "Violence against the person", "Theft and handling", "Criminal damage", "Drugs",
                "Public order", "Motoring", "Other")),
            EventField("outcome", "outcome", domain=(
                "Youth caution", "Youth conditional caution", "Referral order",
                "Youth rehabilitation order", "Custody")),
        ),
    ),
    Source(
        name="drugs_alcohol",
        agency="Essex County Council",
        description="Adult drug and alcohol treatment episodes (data-minimised, as in NDTMS)",
        columns=("episode_id", "initials", "dob", "sex", "postcode_district", "referral_date", "substance",
                 "lives_with_children"),
        key=("episode_id",),
        people=(Person(full_name="initials", date_of_birth="dob", sex="sex", role="client"),),
        event_date="referral_date",
        date_format="%Y-%m-%d",
        name_style="initials",
        sex_codes={"1": "M", "2": "F", "9": "U"},
        postcode="postcode_district",
        postcode_granularity="district",
        event_fields=(
            EventField("substance", "substance", required=True,
                       domain=("Opiates", "Crack", "Cocaine", "Cannabis", "Alcohol", "Other")),
            EventField("lives_with_children", "lives_with_children", dtype="bool", domain=YES_NO),
        ),
    ),
    Source(
        name="housing",
        agency="Basildon Borough Council",
        description="Housing register: applications and members, temporary accommodation, overcrowding",
        columns=("application_no", "member_no", "relationship", "first_name", "last_name", "dob", "sex", "uprn",
                 "address", "postcode", "status_date", "status", "band", "bedrooms_needed", "bedrooms_current"),
        key=("application_no", "member_no"),
        people=(Person(given_name="first_name", family_name="last_name", date_of_birth="dob", sex="sex"),),
        event_date="status_date",
        date_format="%d/%m/%Y",
        role_column="relationship",
        role_domain=("Applicant", "Partner", "Child", "Other relative", "Other"),
        address="address",
        postcode="postcode",
        uprn="uprn",
        event_fields=(
            EventField("status", "status", required=True,
                       domain=("Registered", "Temporary accommodation", "Housed", "Closed")),
            EventField("band", "band", domain=("A", "B", "C", "D")),
            EventField("bedrooms_needed", "bedrooms_needed", dtype="int"),
            EventField("bedrooms_current", "bedrooms_current", dtype="int"),
        ),
    ),
    Source(
        name="benefits",
        agency="Basildon Borough Council",
        description="Housing Benefit and Council Tax Reduction claims: claimant, partner and dependants",
        columns=(
            "claim_ref", "claim_type", "claim_start", "weekly_award", "uprn", "address", "postcode",
            *(f"{slot}_{part}" for slot in BENEFIT_SLOTS for part in ("forename", "surname", "dob", "sex")),
        ),
        key=("claim_ref",),
        people=(
            _slot("claimant", "Claimant", "-C", optional=False),
            _slot("partner", "Partner", "-P", optional=True),
            *(_slot(f"dep{i}", "Dependant", f"-D{i}", optional=True) for i in range(1, MAX_BENEFIT_DEPENDANTS + 1)),
        ),
        event_date="claim_start",
        date_format="%Y-%m-%d",
        address="address",
        postcode="postcode",
        uprn="uprn",
        event_fields=(
            EventField("claim_type", "claim_type", required=True, domain=("HB", "CTR", "HB+CTR")),
            EventField("weekly_award", "weekly_award", dtype="float"),
        ),
    ),
    Source(
        name="police_incidents",
        agency="Essex Police",
        description="Recorded incidents, including domestic abuse, with every person by role",
        columns=("incident_ref", "person_seq", "role", "forename", "surname", "dob", "address", "postcode",
                 "incident_datetime", "incident_type", "da_flag"),
        key=("incident_ref", "person_seq"),
        people=(Person(given_name="forename", family_name="surname", date_of_birth="dob"),),
        event_date="incident_datetime",
        date_format="%d/%m/%Y",
        event_date_format="%d/%m/%Y %H:%M",
        role_column="role",
        role_domain=("Victim", "Suspect", "Witness", "Child present", "Other"),
        address="address",
        postcode="postcode",
        event_fields=(
            EventField("incident_type", "incident_type", required=True, domain=(
                "Domestic abuse", "Violence", "Anti-social behaviour", "Theft", "Criminal damage", "Other")),
            EventField("da_flag", "domestic_abuse", dtype="bool", domain=YES_NO),
        ),
    ),
)

SOURCES_BY_NAME: dict[str, Source] = {s.name: s for s in SOURCES}


def get_source(name: str) -> Source:
    try:
        return SOURCES_BY_NAME[name]
    except KeyError:
        raise KeyError(f"unknown source {name!r}; the registry has: {', '.join(SOURCES_BY_NAME)}") from None
