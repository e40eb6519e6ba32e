"""Unit tests of the row rules: the derived values they look at and the suite the registry declares."""

from __future__ import annotations

import re

import polars as pl
import pytest

from ed_pipeline.quality import build_suite, plan_for, suite_name
from ed_pipeline.quality.rules import (
    NAME_CHARACTERS,
    POSTCODE_DISTRICT,
    POSTCODE_FULL,
    _mod11_valid,
    split_full_name,
)
from ed_pipeline.sources import SOURCES, get_source
from ed_pipeline_tests.quality.valid_rows import nhs_number


@pytest.mark.parametrize(
    ("number", "valid"),
    [
        ("9434765919", True),  # the NHS's published example
        ("4010232137", True),
        ("9434765918", False),  # check digit off by one
        ("0000000000", True),  # sum 0 -> 11 -> check 0
        ("1000000001", True),  # 11 - (10 mod 11) = 1
        ("943476591", None),  # not ten digits: the format rule's business, not this one
        (None, None),
    ],
)
def test_nhs_modulus_11(number, valid):
    got = pl.select(_mod11_valid(pl.lit(number, pl.String))).item()
    assert got is valid


def test_nhs_check_digit_ten_is_never_valid():
    # weights 10..2 over 000000001 give 2: 11 - 2 = 9; find a base whose check would be 10 and try every last digit
    base = next(f"{n:09d}" for n in range(1, 100) if (11 - sum(int(d) * (10 - i) for i, d in enumerate(f"{n:09d}"))
                                                         % 11) == 10)
    numbers = [base + str(d) for d in range(10)]
    assert pl.select(_mod11_valid(pl.Series(numbers))).to_series().to_list() == [False] * 10


def test_fixture_nhs_numbers_are_valid():
    numbers = [nhs_number(i) for i in range(200)]
    assert all(pl.select(_mod11_valid(pl.Series(numbers))).to_series().to_list())


@pytest.mark.parametrize("name", ["O'Brien", "Zoë", "Mary-Jane", "St. John", "Seán", "D\u2019Arcy", "Nguyễn", "Łukasz"])
def test_plausible_names_pass(name):
    assert re.match(NAME_CHARACTERS, name)


@pytest.mark.parametrize("name", ["Robert'); DROP TABLE children;--", '" OR 1=1 --', "J0hn", "Smith_2", "<b>x</b>",
                                  "a@b", "Ann\tMarie"])
def test_implausible_names_fail(name):
    assert not re.match(NAME_CHARACTERS, name)


@pytest.mark.parametrize("postcode", ["SS16 4AB", "ss16 4ab", "CM11 2QX", "W1A 1AA", "EC1A 1BB", "M1 1AE", "SS164AB"])
def test_full_postcodes(postcode):
    assert re.match(POSTCODE_FULL, postcode)


@pytest.mark.parametrize("postcode", ["SS16", "SS16 4A", "4AB", "SS16  4AB", "S S16 4AB", "SS16 4AB X"])
def test_not_full_postcodes(postcode):
    assert not re.match(POSTCODE_FULL, postcode)


def test_district_postcodes():
    assert re.match(POSTCODE_DISTRICT, "SS16") and re.match(POSTCODE_DISTRICT, "CM11")
    assert not re.match(POSTCODE_DISTRICT, "SS16 4AB")


def test_split_surname_comma_forename_and_initials():
    names = pl.DataFrame({"n": ["SMITH, John", "O'BRIEN,Zoë", "DE LA CRUZ , Ana Maria", "SMITH John"]})
    given, family = split_full_name(pl.col("n"), "surname_comma_forename")
    out = names.select(given.alias("g"), family.alias("f"))
    assert out.rows() == [("John", "SMITH"), ("Zoë", "O'BRIEN"), ("Ana Maria", "DE LA CRUZ"), (None, "SMITH John")]
    given, family = split_full_name(pl.col("n"), "initials")
    assert pl.DataFrame({"n": ["JS", "JAS"]}).select(given, family.alias("f")).rows() == [("J", "S"), ("JA", "S")]


@pytest.mark.parametrize("source", SOURCES, ids=lambda s: s.name)
def test_one_suite_per_source_declared_by_the_registry(source):
    plan = plan_for(source)
    suite = build_suite(source)
    assert suite.name == suite_name(source) == f"{source.name}_suite"
    assert len(suite.expectations) == len(plan.checks)
    rules = [e.meta["rule"] for e in suite.expectations]
    assert rules[:2] == ["row_parses", "record_id_unique"]
    for column in source.key:
        assert ("required", column) in {(e.meta["rule"], e.meta["column"]) for e in suite.expectations}
    required = {e.meta["column"] for e in suite.expectations if e.meta["rule"] == "required"}
    assert source.event_date in required
    assert {ef.raw for ef in source.event_fields if ef.required} <= required
    assert {p.date_of_birth for p in source.people} <= required
    assert ("nhs_number_check_digit" in rules) == (source.nhs_number is not None)
    assert ("postcode_format" in rules) == (source.postcode is not None)
    domains = {e.meta["column"] for e in suite.expectations if e.meta["rule"] == "value_in_domain"}
    assert {ef.raw for ef in source.event_fields if ef.domain} <= domains
    assert {p.sex for p in source.people if p.sex} <= domains


def test_optional_people_are_checked_only_when_present():
    benefits = get_source("benefits")
    suite = build_suite(benefits)
    required = {e.meta["column"]: e for e in suite.expectations if e.meta["rule"] == "required"}
    partner, claimant = [required["partner_surname"]], [required["claimant_surname"]]
    assert partner[0].column == "partner_surname__if_present" and claimant[0].column == "claimant_surname"
