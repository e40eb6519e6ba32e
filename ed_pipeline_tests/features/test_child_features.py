"""features.child_features from a hand-made warehouse (built through Dagster, see conftest): the contract, exact
feature values, and point-in-time correctness (late records, future events and late corrections change nothing)."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import duckdb

from ed_pipeline_tests.features.warehouse import BORN, D, base_records, dbt_build, planted_records, write_warehouse

CONTRACT = [
    "person_id", "prediction_date", "birth_year", "birth_month", "household_id", "history_months",
    "sex", "summer_born", "ward", "lsoa", "household_size",
    "police_incidents_12m", "police_incidents_24m", "domestic_abuse_12m", "domestic_abuse_24m",
    "social_care_referrals_24m", "child_in_need_ever", "child_protection_ever",
    "parent_youth_offending", "sibling_youth_offending", "parent_drug_alcohol_24m",
    "temporary_accommodation_24m", "overcrowded_24m", "housing_register_24m", "benefit_claim_24m", "moves_24m",
    "assessment_year", "not_gld", "fsm", "eal", "sen", "ethnicity_group",
]


def features(warehouse: Path) -> dict[str, dict]:
    with duckdb.connect(str(warehouse), read_only=True) as conn:
        cursor = conn.execute("select * from features.child_features")
        names = [d[0] for d in cursor.description]
        return {row[0]: dict(zip(names, row, strict=True)) for row in cursor.fetchall()}


def test_build_passes_its_tests_and_lands_the_contract(built):
    assert built.result.success
    checks = built.result.get_asset_check_evaluations()
    assert len(checks) > 100 and all(c.passed for c in checks)
    warehouse = built.warehouse
    with duckdb.connect(str(warehouse), read_only=True) as conn:
        columns = conn.execute(
            "select column_name, data_type from information_schema.columns "
            "where table_schema = 'features' and table_name = 'child_features' order by ordinal_position").fetchall()
        schemas = {s for (s,) in conn.execute("select distinct table_schema from information_schema.tables").fetchall()}
    assert [c for c, _ in columns] == CONTRACT
    types = dict(columns)
    assert types["person_id"] == "VARCHAR" and types["prediction_date"] == "DATE"
    assert {types[c] for c in ("birth_year", "birth_month", "household_size", "history_months", "moves_24m",
                               "police_incidents_12m", "parent_youth_offending", "assessment_year")} == {"INTEGER"}
    assert {types[c] for c in ("summer_born", "child_in_need_ever", "overcrowded_24m", "not_gld", "fsm")} == {"BOOLEAN"}
    # exactly the layer schemas: no `main_` prefixes
    assert {"staging", "intermediate", "features"} <= schemas and not any(s.startswith("main_") for s in schemas)


def test_feature_values_of_the_main_child(built):
    rows = features(built.warehouse)
    assert set(rows) == {"C", "C2", "C3"}  # the mother, father, brother and Z are not children in the window
    c = rows["C"]
    assert c["prediction_date"] == D == date(2018, 3, 1)
    assert (c["birth_year"], c["birth_month"], c["sex"], c["summer_born"]) == (2015, 3, "F", False)
    assert c["household_id"] == "H" and c["household_size"] == 4  # X left before D
    assert c["history_months"] == 50  # 2014-01 .. 2018-02 had landed by 2018-03-01
    assert (c["ward"], c["lsoa"]) == ("Vange", "E01021300")  # the child's own latest record
    # INC1 (once, though it names three of them) and INC4 (corrected to domestic abuse before D); INC2 in 24m only;
    # INC3 was X's (gone by D), INC5 is older than 24 months
    assert (c["police_incidents_12m"], c["police_incidents_24m"]) == (2, 3)
    assert (c["domestic_abuse_12m"], c["domestic_abuse_24m"]) == (2, 2)
    # the brother's (sent twice under two keys); C's own referral is older than 24 months
    assert c["social_care_referrals_24m"] == 1
    assert c["child_in_need_ever"] is True and c["child_protection_ever"] is False
    assert (c["parent_youth_offending"], c["sibling_youth_offending"]) == (1, 1)
    assert c["parent_drug_alcohol_24m"] is True
    # the housing record re-sent with a new status is a second event: overcrowded when registered, then in TA
    assert c["housing_register_24m"] and c["overcrowded_24m"] and c["temporary_accommodation_24m"]
    assert c["benefit_claim_24m"] is True  # started in 2014, re-sent at a change in June 2016: running then
    assert c["moves_24m"] == 1
    assert all(c[k] is None for k in ("assessment_year", "not_gld", "fsm", "eal", "sen", "ethnicity_group"))


def test_children_without_history_and_outcomes(built):
    rows = features(built.warehouse)
    c2, c3 = rows["C2"], rows["C3"]
    assert c2["prediction_date"] == date(2015, 11, 1) and c2["history_months"] == 22
    assert c2["household_id"] is None and c2["household_size"] is None and c2["ward"] is None
    # C2's claim came in the data's first extract, but started in 2012: not within 24 months of 2015-11-01
    assert c2["police_incidents_24m"] == 0 and c2["moves_24m"] == 0 and c2["benefit_claim_24m"] is False
    assert (c2["assessment_year"], c2["not_gld"], c2["fsm"], c2["eal"], c2["sen"], c2["ethnicity_group"]) == (
        2017, True, False, True, "K", "Asian")
    # predicted before the data starts: in the mart because assessed, with no history
    assert c3["prediction_date"] == date(2012, 7, 1) and c3["history_months"] == 0 and c3["summer_born"] is True
    assert (c3["assessment_year"], c3["not_gld"], c3["ethnicity_group"]) == (2014, False, "Unknown")


def test_late_records_future_events_and_late_corrections_change_nothing(built, tmp_path, dbt_built):
    assert built.result.success
    planted = tmp_path / "warehouse.duckdb"
    dbt_built(planted, base_records() + planted_records())  # plain dbt, as a person would run it

    # the planted records reached the events of the child's household: only the point-in-time rule keeps them out
    with duckdb.connect(str(planted), read_only=True) as conn:
        seen = {r for (r,) in conn.execute(
            "select distinct group_ref from intermediate.int_person_events "
            "where group_ref in ('LATE1', 'LATE2', 'LATE3', 'FUT1', 'FUT2')").fetchall()}
        inc2_versions = conn.execute(
            "select count(*) from intermediate.int_person_events where record_id = 'INC2-1'").fetchone()[0]
    assert seen == {"LATE1", "LATE2", "LATE3", "FUT1", "FUT2"} and inc2_versions == 2

    assert features(planted) == features(built.warehouse)


TA = "Temporary accommodation"
# Children on their own (no household: only their own records count), born 2015-03: D = 2018-03-01, the 24
# months from 2016-03-01. Housing re-sends a record only when its status changes, so a status lasts from its
# date until the record's next status known at D, or D: a stay, not a day. 'Registered' and TA are on the
# register; 'Housed' and 'Closed' end it.
# child -> its housing record's versions (extract_month, event_date, status, bedrooms needed with 2 held),
#          (temporary_accommodation_24m, housing_register_24m, overcrowded_24m)
HOUSING_STAYS = {
    "T1": ([("2015-12", date(2015, 12, 1), TA, 2)], (True, True, False)),  # placed 27 months before D, still there
    "T2": ([("2015-06", date(2015, 6, 1), TA, 2), ("2015-12", date(2015, 12, 1), "Housed", 2)],
           (False, False, False)),  # left before the 24 months
    "T3": ([("2015-06", date(2015, 6, 1), TA, 2), ("2016-09", date(2016, 9, 1), "Housed", 2)],
           (True, True, False)),  # left within them
    # housed before the 24 months, but that status arrived after D (in the April 2018 extract): at D still in TA
    "T4": ([("2015-06", date(2015, 6, 1), TA, 2), ("2018-04", date(2015, 12, 1), "Housed", 2)], (True, True, False)),
    "T5": ([("2015-06", date(2015, 6, 1), TA, 2), ("2018-04", date(2018, 4, 1), "Housed", 2)],
           (True, True, False)),  # housed after D
    # registered, then placed in TA, but the TA status arrived after D: on the register since 2015
    "T6": ([("2015-06", date(2015, 6, 1), "Registered", 2), ("2018-04", date(2015, 12, 1), TA, 2)],
           (False, True, False)),
    # registered 33 months before D in a home a bedroom short, still waiting: on the register, overcrowded
    "R1": ([("2015-06", date(2015, 6, 1), "Registered", 3)], (False, True, True)),
    "R2": ([("2015-06", date(2015, 6, 1), "Registered", 3), ("2015-12", date(2015, 12, 1), "Housed", 3)],
           (False, False, False)),  # housed before the 24 months: neither since (the Housed row's rooms are old)
    # housed, then the application closed within the 24 months: a status of the register in them, as before
    "R3": ([("2015-06", date(2015, 6, 1), "Housed", 3), ("2016-09", date(2016, 9, 1), "Closed", 3)],
           (False, True, True)),
}
HOUSING_FEATURES = ("temporary_accommodation_24m", "housing_register_24m", "overcrowded_24m")


def test_housing_statuses_last_until_the_next_status_known_at_d(tmp_path, monkeypatch):
    records = base_records()
    for n, (child, (versions, _)) in enumerate(HOUSING_STAYS.items()):
        monkeypatch.setitem(BORN, child, (2015, 3, "M"))
        records += [("housing", f"AT{n}-1", child, f"AT{n}", "Child", month, when, None,
                     {"status": status, "band": "A", "bedrooms_needed": needed, "bedrooms_current": 2})
                    for month, when, status, needed in versions]
    warehouse = tmp_path / "warehouse.duckdb"
    write_warehouse(warehouse, records)
    result = dbt_build(warehouse, tmp_path)
    assert result.returncode == 0, result.stdout[-4000:]
    rows = features(warehouse)
    got = {child: tuple(rows[child][f] for f in HOUSING_FEATURES) for child in HOUSING_STAYS}
    assert got == {child: expected for child, (_, expected) in HOUSING_STAYS.items()}
    assert rows["C"]["prediction_date"] == D and rows["C"]["temporary_accommodation_24m"] is True  # placed 2017-02


def test_a_row_a_month_re_sent_late_brought_counts_from_that_delivery_not_from_its_extract_month(tmp_path,
                                                                                                  monkeypatch):
    """June 2017's social care extract is sent again when April 2018 is the newest month landed, with a child
    protection plan quarantined the first time: the row arrived with that delivery (`_arrived_month`, ending
    2018-04), not with June 2017. C (D = 2018-03-01, between the two) does not see it; C4, born three months
    later (D = 2018-06-01), does. Versions of a record are superseded by the earliest arrival of a later one."""
    monkeypatch.setitem(BORN, "C4", (2015, 6, "F"))
    plan = {"referral_source": "Police", "category": "Child protection plan", "primary_need": "N1",
            "_arrived_month": "2018-04"}
    incident = {"incident_type": "Theft", "domestic_abuse": False}
    records = base_records() + [
        ("social_care", "CP1", "C", "CP1", "child", "2017-06", date(2017, 6, 10), None, plan),
        ("social_care", "CP4", "C4", "CP4", "child", "2017-06", date(2017, 6, 10), None, plan),
        # a record's versions: March, April (that month re-sent late, arriving 2018-05-01), May
        ("police_incidents", "V1-1", "Z", "V1", "Witness", "2017-03", date(2017, 3, 1), None, incident),
        ("police_incidents", "V1-1", "Z", "V1", "Witness", "2017-04", date(2017, 3, 1), None,
         {**incident, "_arrived_month": "2018-04"}),
        ("police_incidents", "V1-1", "Z", "V1", "Witness", "2017-05", date(2017, 3, 1), None, incident),
    ]
    warehouse = tmp_path / "warehouse.duckdb"
    write_warehouse(warehouse, records)
    result = dbt_build(warehouse, tmp_path)
    assert result.returncode == 0, result.stdout[-4000:]

    with duckdb.connect(str(warehouse), read_only=True) as conn:
        arrived = dict(conn.execute("select record_id, arrived_on from staging.stg_social_care "
                                    "where record_id in ('CP1', 'SC2')").fetchall())
        versions = conn.execute("select extract_month, arrived_on, superseded_on from staging.stg_police_incidents "
                                "where record_id = 'V1-1' order by extract_month").fetchall()
    assert arrived == {"CP1": date(2018, 5, 1), "SC2": date(2017, 7, 1)}  # SC2: its month's first delivery
    assert versions == [("2017-03", date(2017, 4, 1), date(2017, 6, 1)),
                        ("2017-04", date(2018, 5, 1), date(2017, 6, 1)),  # never the one that counts
                        ("2017-05", date(2017, 6, 1), None)]
    rows = features(warehouse)
    assert rows["C"]["prediction_date"] == D and rows["C"]["child_protection_ever"] is False
    assert rows["C4"]["prediction_date"] == date(2018, 6, 1) and rows["C4"]["child_protection_ever"] is True


def areas(warehouse: Path) -> dict[str, tuple]:
    with duckdb.connect(str(warehouse), read_only=True) as conn:
        return {p: (w, lsoa, school) for p, w, lsoa, school in conn.execute(
            "select person_id, ward, lsoa, from_school_return from features.child_area").fetchall()}


def test_child_area_is_where_the_child_lives_now_for_outputs(built, tmp_path, dbt_built):
    """features.child_area attributes children to areas in published outputs: the EYFSP return's area, else the
    child's latest record's, whenever it arrived. It is not a feature and not point in time by design; the
    mart's ward stays the one known at the prediction date (see the test above)."""
    got = areas(built.warehouse)
    assert set(got) == set(features(built.warehouse))  # one row per child of the mart
    assert got["C"] == ("Vange", "E01021300", False)  # INC1 (2017-10, Vange) is later than A1 (2016-09, Pitsea)
    assert got["C2"] == ("Fryerns", "E01021250", True)  # the EYFSP return's, though no record preceded D
    assert got["C3"] == ("Vange", "E01021300", True)

    planted = tmp_path / "warehouse.duckdb"
    dbt_built(planted, base_records() + planted_records())
    # FUT1 (2018-04, Crouch) is after C's prediction date: it moves where C is attributed now, not C's features
    assert areas(planted)["C"] == ("Crouch", "E01021240", False)
    assert features(planted)["C"]["ward"] == "Vange"
