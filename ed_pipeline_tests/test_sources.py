"""The registry is data: check it is internally consistent, so every generated asset and suite is well-formed."""

import polars as pl
import pytest

from ed_pipeline.sources import SOURCES, get_source


@pytest.mark.parametrize("source", SOURCES, ids=lambda s: s.name)
def test_registry_entry_is_consistent(source):
    columns = set(source.columns)
    assert len(columns) == len(source.columns), "duplicate column in header"
    referenced = {*source.key, source.event_date, *source.identifier_columns, *(f.raw for f in source.event_fields)}
    referenced |= {c for c in (source.role_column,) if c}
    referenced |= {p.sex for p in source.people if p.sex}
    assert referenced <= columns, f"registry refers to columns not in the header: {referenced - columns}"
    for person in source.people:
        assert person.full_name or (person.given_name and person.family_name)
        assert person.role or source.role_column, "every person needs a role"
    assert len({p.suffix for p in source.people}) == len(source.people), "record ids would collide"
    assert set(source.sex_codes.values()) <= {"M", "F", "U"}


def test_seven_agencies_and_lookup():
    assert [s.name for s in SOURCES] == [
        "social_care", "school_readiness", "youth_offending", "drugs_alcohol", "housing", "benefits",
        "police_incidents",
    ]
    assert get_source("housing").uprn == "uprn"
    with pytest.raises(KeyError, match="unknown source 'nhs'"):
        get_source("nhs")


def test_multi_person_rows_get_one_record_id_per_person():
    benefits = get_source("benefits")
    row_key = pl.DataFrame({"claim_ref": ["B0001"]}).select(benefits.row_key()).item()
    ids = [f"{row_key}{p.suffix}" for p in benefits.people]  # as validation and synth make them
    assert ids[:3] == ["B0001-C", "B0001-P", "B0001-D1"] and len(set(ids)) == len(ids)
