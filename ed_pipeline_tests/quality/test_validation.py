"""Happy paths of all seven sources from tiny hand-made files, benefits' expansion, reconciliation, Data Docs."""

from __future__ import annotations

import csv
import json
from datetime import date
from pathlib import Path

import polars as pl
import pytest

from ed_pipeline.quality import (
    QUARANTINE_SCHEMA,
    build_data_docs,
    raw_schema,
    read_extract,
    validate,
    validated_schema,
)
from ed_pipeline.sources import CANONICAL_COLUMNS, GROUP_COLUMNS, SOURCES, Source, get_source
from ed_pipeline_tests.quality.valid_rows import valid_rows

BLANK_DEPENDANTS = {f"dep{i}_{p}": "" for i in (3, 4) for p in ("forename", "surname", "dob", "sex")}

HAND_MADE: dict[str, tuple[str, list[dict[str, str]]]] = {
    "social_care": ("2014-03", [
        dict(referral_id="R1001", child_forename="Zoë", child_surname="O'Brien", dob="14/02/2012", gender="Female",
             nhs_no="943 476 5919", address_line_1="12 Vange Hill Drive, Basildon", postcode="ss16 4ab",
             referral_date="03/03/2014", referral_source="Police", category="Child in need", primary_need="N1"),
        dict(referral_id="R1002", child_forename=" Jack ", child_surname="Smith", dob="01/01/2013", gender="Not known",
             nhs_no="", address_line_1="", postcode="SS13 1AA", referral_date="31/03/2014", referral_source="",
             category="Referral", primary_need=""),
    ]),
    "school_readiness": ("2014-07", [
        dict(return_row_id="E1", upn="A123456789012", forename="Amelia", surname="Brown", date_of_birth="2008-09-01",
             sex="F", postcode="SS16 5XY", school_urn="115123", assessment_date="2014-06-30", gld="Y", fsm="N",
             eal="Y", sen="K", ethnicity="WBRI"),
    ]),
    "youth_offending": ("2014-03", [
        dict(yot_ref="Y77", name="SMITH, John", dob="05/06/2000", gender="M", offence_date="12/03/2014",
             offence_type="Theft and handling", outcome="Referral order"),
    ]),
    "drugs_alcohol": ("2014-03", [
        dict(episode_id="D5", initials="JS", dob="1985-04-02", sex="2", postcode_district="SS16",
             referral_date="2014-03-10", substance="Alcohol", lives_with_children="Y"),
    ]),
    "housing": ("2014-03", [
        dict(application_no="H9", member_no="1", relationship="Applicant", first_name="Kelly", last_name="Jones",
             dob="02/02/1990", sex="F", uprn="100090012345", address="Flat 2, 7 Clay Hill Road", postcode="SS16 4HB",
             status_date="01/03/2014", status="Registered", band="B", bedrooms_needed="3", bedrooms_current="2"),
        dict(application_no="H9", member_no="2", relationship="Child", first_name="Tom", last_name="Jones",
             dob="03/03/2012", sex="M", uprn="100090012345", address="Flat 2, 7 Clay Hill Road", postcode="SS16 4HB",
             status_date="01/03/2014", status="Registered", band="B", bedrooms_needed="3", bedrooms_current="2"),
    ]),
    "benefits": ("2014-03", [
        dict(claim_ref="B100", claim_type="HB+CTR", claim_start="2014-03-01", weekly_award="112.50",
             uprn="100090055555", address="3 Long Riding, Basildon", postcode="SS14 1QH",
             claimant_forename="Kelly", claimant_surname="Jones", claimant_dob="1990-02-02", claimant_sex="F",
             partner_forename="Dean", partner_surname="Jones", partner_dob="1988-08-08", partner_sex="M",
             dep1_forename="Tom", dep1_surname="Jones", dep1_dob="2012-03-03", dep1_sex="M",
             dep2_forename="Amy", dep2_surname="Jones", dep2_dob="2014-01-15", dep2_sex="F", **BLANK_DEPENDANTS),
        dict(claim_ref="B101", claim_type="CTR", claim_start="2014-03-02", weekly_award="", uprn="", address="",
             postcode="", claimant_forename="Sam", claimant_surname="Lee", claimant_dob="1970-01-01",
             claimant_sex="U"),
    ]),
    "police_incidents": ("2014-03", [
        dict(incident_ref="P1", person_seq="1", role="Victim", forename="Kelly", surname="Jones", dob="02/02/1990",
             address="3 Long Riding", postcode="SS14 1QH", incident_datetime="31/03/2014 23:59",
             incident_type="Domestic abuse", da_flag="Y"),
        dict(incident_ref="P1", person_seq="2", role="Suspect", forename="Dean", surname="Jones", dob="08/08/1988",
             address="3 Long Riding", postcode="SS14 1QH", incident_datetime="31/03/2014 23:59",
             incident_type="Domestic abuse", da_flag="Y"),
    ]),
}

EXPECTED: dict[str, list[dict]] = {
    "social_care": [
        dict(record_id="R1001", given_name="Zoë", family_name="O'Brien", date_of_birth=date(2012, 2, 14), sex="F",
             nhs_number="9434765919", address="12 Vange Hill Drive, Basildon", postcode="SS16 4AB", uprn=None,
             event_date=date(2014, 3, 3), group_ref="R1001", role="child", referral_source="Police",
             category="Child in need", primary_need="N1"),
        dict(record_id="R1002", given_name="Jack", family_name="Smith", sex="U", nhs_number=None, address=None,
             postcode="SS13 1AA", event_date=date(2014, 3, 31), referral_source=None, primary_need=None),
    ],
    "school_readiness": [
        dict(record_id="E1", given_name="Amelia", family_name="Brown", date_of_birth=date(2008, 9, 1), sex="F",
             upn="A123456789012", postcode="SS16 5XY", event_date=date(2014, 6, 30), extract_month="2014-07",
             role="child", gld=True, fsm=False, eal=True, sen="K", ethnicity="WBRI", school_urn="115123"),
    ],
    "youth_offending": [
        dict(record_id="Y77", given_name="John", family_name="SMITH", date_of_birth=date(2000, 6, 5), sex="M",
             role="offender", event_date=date(2014, 3, 12), offence_type="Theft and handling",
             outcome="Referral order", postcode=None),
    ],
    "drugs_alcohol": [
        dict(record_id="D5", given_name="J", family_name="S", date_of_birth=date(1985, 4, 2), sex="F",
             postcode="SS16", role="client", substance="Alcohol", lives_with_children=True),
    ],
    "housing": [
        dict(record_id="H9-1", group_ref="H9", role="Applicant", given_name="Kelly", uprn="100090012345",
             bedrooms_needed=3, bedrooms_current=2, band="B", status="Registered", event_date=date(2014, 3, 1)),
        dict(record_id="H9-2", group_ref="H9", role="Child", given_name="Tom", sex="M"),
    ],
    "benefits": [
        dict(record_id="B100-C", group_ref="B100", role="Claimant", given_name="Kelly", date_of_birth=date(1990, 2, 2),
             sex="F", uprn="100090055555", postcode="SS14 1QH", claim_type="HB+CTR", weekly_award=112.5),
        dict(record_id="B100-P", group_ref="B100", role="Partner", given_name="Dean", sex="M",
             date_of_birth=date(1988, 8, 8), event_date=date(2014, 3, 1), uprn="100090055555"),
        dict(record_id="B100-D1", group_ref="B100", role="Dependant", given_name="Tom", date_of_birth=date(2012, 3, 3)),
        dict(record_id="B100-D2", group_ref="B100", role="Dependant", given_name="Amy",
             date_of_birth=date(2014, 1, 15)),
        dict(record_id="B101-C", group_ref="B101", role="Claimant", given_name="Sam", family_name="Lee", sex="U",
             weekly_award=None, uprn=None, address=None, event_date=date(2014, 3, 2)),
    ],
    "police_incidents": [
        dict(record_id="P1-1", group_ref="P1", role="Victim", given_name="Kelly", sex="U",
             event_date=date(2014, 3, 31), incident_type="Domestic abuse", domestic_abuse=True, nhs_number=None),
        dict(record_id="P1-2", group_ref="P1", role="Suspect", given_name="Dean", date_of_birth=date(1988, 8, 8)),
    ],
}


def write_rows(path: Path, source: Source, rows: list[dict[str, str]]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=source.columns, restval="", lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
    return path


@pytest.mark.parametrize("source", SOURCES, ids=lambda s: s.name)
def test_happy_path(source: Source, tmp_path: Path):
    month, rows = HAND_MADE[source.name]
    path = write_rows(tmp_path / source.name / f"{month}.csv", source, rows)
    ex = read_extract(path, source, month)
    assert ex.problems == [] and ex.warnings == []
    assert ex.frame.schema == pl.Schema(raw_schema(source))
    assert ex.frame["_row_number"].to_list() == list(range(1, len(rows) + 1))
    assert ex.frame["_source_file"].unique().to_list() == [f"{path.parent.name}/{path.name}"]

    v = validate(ex.frame, source)
    assert v.quarantine.is_empty(), v.quarantine.to_dicts()
    assert v.quarantine.schema == pl.Schema(QUARANTINE_SCHEMA)
    assert v.validated.schema == pl.Schema(validated_schema(source))
    assert v.validated.columns[: len(CANONICAL_COLUMNS) + 2] == [*CANONICAL_COLUMNS, *GROUP_COLUMNS]
    assert set(v.validated["source"]) == {source.name}
    assert set(v.validated["extract_month"]) == {month}
    expected = EXPECTED[source.name]
    assert v.validated.height == len(expected)
    for got, want in zip(v.validated.to_dicts(), expected, strict=True):
        assert {k: got[k] for k in want} == want
    assert set(v.validated["sex"]) <= {"M", "F", "U"}
    people = {p.suffix: p for p in source.people}
    for record_id, row_number in v.validated.select("record_id", "_row_number").rows():  # ids as the registry says
        row = rows[row_number - 1]
        row_key = pl.DataFrame([{k: row[k] for k in source.key}]).select(source.row_key()).item()
        assert record_id in {f"{row_key}{p.suffix}" for p in people.values()}
    s = v.summary
    assert s["reconciled"] and s["rows_in"] == len(rows) == s["rows_validated_raw"]
    assert s["records_validated"] == len(expected) and s["rows_quarantined"] == 0
    assert s["months"] == {month: {"rows_in": len(rows), "rows_validated_raw": len(rows),
                                   "records_validated": len(expected), "rows_quarantined": 0, "reconciled": True}}
    assert v.gx_results[0].success and s["gx_success"]


def test_a_bad_dependant_quarantines_the_whole_claim(tmp_path: Path):
    source = get_source("benefits")
    month, rows = HAND_MADE["benefits"]
    rows = [dict(rows[0], dep2_dob="2014-04-01"), rows[1]]  # born after the extract month
    v = validate(read_extract(write_rows(tmp_path / "b.csv", source, rows), source, month).frame, source)
    assert v.quarantine.select("row_key", "rule", "column", "value").rows() == [
        ("B100", "date_of_birth_not_future", "dep2_dob", "2014-04-01")]
    assert v.validated["record_id"].to_list() == ["B101-C"]
    assert v.summary["rows_validated_raw"] == 1 and v.summary["records_validated"] == 1
    assert v.summary["reconciled"]


def test_quarantine_keeps_the_raw_row_as_written(tmp_path: Path):
    source = get_source("social_care")
    month, rows = HAND_MADE["social_care"]
    rows = [dict(rows[0], gender="female", postcode="SS16"), rows[1]]
    ex = read_extract(write_rows(tmp_path / "s.csv", source, rows), source, month)
    v = validate(ex.frame, source)
    assert v.quarantine.height == 1
    q = v.quarantine.row(0, named=True)
    assert (q["rule"], q["column"], q["value"], q["row_key"]) == ("value_in_domain", "gender", "female", "R1001")
    assert [(f["rule"], f["column"]) for f in json.loads(q["failures"])] == [
        ("value_in_domain", "gender"), ("postcode_format", "postcode")]
    raw_row = json.loads(q["raw_row"])
    assert raw_row == {c: (rows[0][c] or None) for c in source.columns}
    assert (q["source"], q["extract_month"], q["_row_number"]) == ("social_care", month, 1)
    assert v.summary["failures_by_rule"] == {"postcode_format": 1, "value_in_domain": 1}


def test_a_two_digit_year_does_not_parse(tmp_path: Path):
    """strptime's %Y reads '03/03/14' as the year 14: an event then precedes every prediction date, and a date of
    birth failed only as 'before 1900'. Both are quarantined as dates that do not parse."""
    source = get_source("social_care")
    month, rows = HAND_MADE["social_care"]
    rows = [dict(rows[0], referral_date="03/03/14"), dict(rows[1], dob="01/01/13")]
    v = validate(read_extract(write_rows(tmp_path / "s.csv", source, rows), source, month).frame, source)
    assert v.validated.is_empty()
    assert sorted(v.quarantine.select("rule", "column", "value").rows()) == [
        ("date_parses", "dob", "01/01/13"), ("date_parses", "referral_date", "03/03/14")]


def test_a_name_with_combining_accents_is_a_name(tmp_path: Path):
    """Zoë written as Zoe + U+0308 (macOS, some web forms) is validated, in one code point per letter (NFC)."""
    source = get_source("social_care")
    month, rows = HAND_MADE["social_care"]
    rows = [dict(rows[0], child_forename="Zoe\u0308", child_surname="Sea\u0301n")]
    v = validate(read_extract(write_rows(tmp_path / "s.csv", source, rows), source, month).frame, source)
    assert v.quarantine.is_empty(), v.quarantine.to_dicts()
    assert v.validated.select("given_name", "family_name").row(0) == ("Zo\u00eb", "Se\u00e1n")


def test_stray_quotes_that_take_in_whole_rows_are_quarantined_not_lost(tmp_path: Path):
    """Ditto marks (a lone `"`) in an unquoted export: csv reads from the first to the second as one value, and the
    rows between vanish into a record with the right number of fields. That record is quarantined, saying why."""
    source = get_source("housing")
    rows = valid_rows(source, 4, "2014-03", start=1)
    for row in rows:
        row["address"] = "7 Clay Hill Road"
    rows[1]["address"] = rows[3]["address"] = '"'
    path = tmp_path / "housing" / "2014-03.csv"
    path.parent.mkdir(parents=True)
    path.write_text(",".join(source.columns) + "\n" + "".join(",".join(r[c] for c in source.columns) + "\n"
                                                               for r in rows))
    ex = read_extract(path, source, "2014-03")
    assert ex.frame.height == 2 and any("hold whole lines inside a quoted value" in w for w in ex.warnings)
    v = validate(ex.frame, source)
    [(rule, error)] = v.quarantine.select("rule", "value").rows()
    assert rule == "row_parses" and "runs over 3 lines" in error
    assert v.summary["reconciled"] and v.summary["rows_in"] == 2


def test_only_a_file_that_ends_inside_quotes_is_called_truncated(tmp_path: Path):
    """A quote inside an unquoted value (`5" Vange`) leaves an odd number of quotes: csv reads it as written, and
    no row is blamed for a truncation that did not happen."""
    source = get_source("social_care")
    month, rows = HAND_MADE["social_care"]
    rows = [dict(rows[0], address_line_1='2 High Road 5" Vange'), rows[1]]
    path = tmp_path / "s.csv"
    path.write_text(",".join(source.columns) + "\n" + "".join(",".join(r[c] for c in source.columns) + "\n"
                                                               for r in rows))
    v = validate(read_extract(path, source, month).frame, source)
    assert v.quarantine.is_empty(), v.quarantine.to_dicts()
    assert v.validated["address"].to_list()[0] == '2 High Road 5" Vange'


def test_blank_lines_above_the_header_are_skipped(tmp_path: Path):
    """An export that starts with an empty line is read as it would be without it, not refused as a header of no
    columns."""
    source = get_source("social_care")
    month, rows = HAND_MADE["social_care"]
    path = write_rows(tmp_path / "s.csv", source, rows)
    path.write_text("\n\n" + path.read_text())
    ex = read_extract(path, source, month)
    assert ex.problems == [] and ex.warnings == ["2 blank line(s) above the header skipped"]
    assert ex.frame["_row_number"].to_list() == [1, 2]
    assert validate(ex.frame, source).quarantine.is_empty()


def test_many_months_in_one_call_duplicates_only_within_a_month(tmp_path: Path):
    source = get_source("social_care")
    frames = []
    for month in ("2014-03", "2014-04"):
        rows = valid_rows(source, 5, month)  # the same referral ids both months: fine
        rows.append(dict(rows[0]))  # a repeat inside the month: the later one is quarantined
        frames.append(read_extract(write_rows(tmp_path / f"{month}.csv", source, rows), source, month).frame)
    v = validate(pl.concat(frames), source)
    assert v.quarantine.select("extract_month", "_row_number", "rule").rows() == [
        ("2014-03", 6, "record_id_unique"), ("2014-04", 6, "record_id_unique")]
    assert v.summary["months"]["2014-04"] == {"rows_in": 6, "rows_validated_raw": 5, "records_validated": 5,
                                              "rows_quarantined": 1, "reconciled": True}
    assert v.validated["record_id"].n_unique() == 5 and v.validated.height == 10


def test_composite_keys_whose_parts_hold_a_dash_never_share_a_record_id(tmp_path: Path):
    """Housing's key is application and member: joined by "-", H9 + 1-2 and H9-1 + 2 both made H9-1-2, so one of
    two people was quarantined as a duplicate (or, a month apart, taken for the other's next status). A key without
    a "-" in its parts keeps the id it always had (ids of data already in the warehouse must not change)."""
    source = get_source("housing")
    keys = [("H9", "1-2"), ("H9-1", "2"), ("H9", "1"), ("H9-", "3"), ("H9", "-3"), ("H9%2D", "3")]
    rows = valid_rows(source, len(keys), "2014-03")
    for row, (application, member) in zip(rows, keys, strict=True):
        row["application_no"], row["member_no"] = application, member
    v = validate(read_extract(write_rows(tmp_path / "x.csv", source, rows), source, "2014-03").frame, source)
    assert v.quarantine.is_empty(), v.quarantine.select("_row_number", "rule").rows()
    ids = v.validated.sort("_row_number")["record_id"].to_list()
    assert len(set(ids)) == len(keys), ids
    assert ids[2] == "H9-1" and ids[5] == "H9%2D-3"


def test_date_of_birth_may_be_the_last_day_of_the_extract_month_not_later(tmp_path: Path):
    source = get_source("social_care")
    rows = valid_rows(source, 2, "2016-02")
    rows[0]["dob"], rows[1]["dob"] = "29/02/2016", "01/03/2016"
    v = validate(read_extract(write_rows(tmp_path / "x.csv", source, rows), source, "2016-02").frame, source)
    assert v.validated["date_of_birth"].to_list() == [date(2016, 2, 29)]
    assert v.quarantine["rule"].to_list() == ["date_of_birth_not_future"]


def test_validate_empty_and_bare_frames():
    source = get_source("housing")
    empty = validate(pl.DataFrame(schema=raw_schema(source)), source)
    assert empty.validated.is_empty() and empty.quarantine.is_empty() and empty.summary["reconciled"]
    assert empty.validated.schema == pl.Schema(validated_schema(source))
    bare = pl.DataFrame(valid_rows(source, 3, "2014-03")).with_columns(pl.lit("2014-03").alias("extract_month"))
    v = validate(bare, source)  # lineage columns absent: filled with nulls
    assert v.validated.height == 3 and v.summary["reconciled"]
    with pytest.raises(ValueError, match="lacks registry column"):
        validate(bare.drop("dob"), source)


def test_missing_file_is_a_table_problem(tmp_path: Path):
    ex = read_extract(tmp_path / "nope.csv", get_source("benefits"), "2014-03")
    assert [p.kind for p in ex.problems] == ["missing_file"]
    assert ex.problems[0].message == f"{tmp_path / 'nope.csv'}: the extract file does not exist; " \
                                     "ask Basildon Borough Council to deliver the 2014-03 extract."


def test_columns_read_by_name_in_any_order_and_case(tmp_path: Path):
    source = get_source("drugs_alcohol")
    header = [c.upper() if c == "dob" else c for c in reversed(source.columns)]
    rows = valid_rows(source, 3, "2014-03")
    path = tmp_path / "d.csv"
    with path.open("w", newline="") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(header)
        w.writerows([[r[c.lower() if c == "DOB" else c] for c in header] for r in rows])
    ex = read_extract(path, source, "2014-03")
    assert ex.problems == [] and len(ex.warnings) == 2
    assert ex.frame.select(source.columns).rows() == [tuple(r[c] for c in source.columns) for r in rows]


def test_data_docs_compile_gx_templates_once_per_process(tmp_path: Path, monkeypatch):
    """GX renders each page with an environment of its own; the site's views share compiled templates, so a
    later build (the next source of a refresh) compiles none."""
    import jinja2

    source = get_source("housing")
    v = validate(pl.DataFrame(valid_rows(source, 2, "2014-03")).with_columns(extract_month=pl.lit("2014-03")), source)
    build_data_docs(v.gx_results, tmp_path / "first")
    compiled = []
    original = jinja2.Environment.compile
    monkeypatch.setattr(jinja2.Environment, "compile",
                        lambda self, *a, **k: compiled.append(a[1] if len(a) > 1 else k.get("name"))
                        or original(self, *a, **k))
    index = build_data_docs(v.gx_results, tmp_path / "second")
    assert compiled == []
    assert "housing_suite" in index.read_text()
    (page,) = (tmp_path / "second" / "validations").rglob("*.html")
    assert "housing_suite" in page.read_text()


def test_data_docs_are_built_and_redacted(tmp_path: Path):
    source = get_source("youth_offending")
    rows = valid_rows(source, 3, "2014-03")
    rows[1]["name"] = "Zzyzx-Secretname"  # no comma: quarantined
    v = validate(read_extract(write_rows(tmp_path / "y.csv", source, rows), source, "2014-03").frame, source)
    assert not v.gx_results[0].success
    index = build_data_docs(v.gx_results, tmp_path / "docs")
    assert index == (tmp_path / "docs" / "index.html").resolve() and index.is_file()
    (first,) = (tmp_path / "docs" / "validations").rglob("*.html")
    first_written = first.stat().st_mtime_ns
    other = get_source("drugs_alcohol")
    w = validate(pl.DataFrame(valid_rows(other, 2, "2014-03")).with_columns(extract_month=pl.lit("2014-03")), other)
    assert build_data_docs(w, tmp_path / "docs") == index  # a later call adds to the same site
    html = index.read_text()
    assert "youth_offending_suite" in html and "drugs_alcohol_suite" in html
    pages = list((tmp_path / "docs" / "validations").rglob("*.html"))
    assert len(pages) == 2
    assert first.stat().st_mtime_ns == first_written, "a later build renders only its own results (and the index)"
    written = [p for p in (tmp_path / "docs").rglob("*") if p.is_file() and p.suffix in {".html", ".json"}]
    assert not any("Secretname" in p.read_text() for p in written)  # the value stays in the quarantine table
    assert v.quarantine["value"].to_list() == ["Zzyzx-Secretname"]


def test_the_data_docs_index_reads_back_only_the_latest_validations(tmp_path: Path, monkeypatch):
    """Each validate step of each month builds the index again: it lists, and GX reads back, only the latest
    results, so a month's cost does not grow with the months before it. Older pages stay on disk."""
    from great_expectations.data_context.data_context.abstract_data_context import AbstractDataContext

    source = get_source("housing")
    months = ["2014-03", "2014-04", "2014-05", "2014-06"]
    for month in months:
        v = validate(pl.DataFrame(valid_rows(source, 2, month)).with_columns(extract_month=pl.lit(month)), source)
        build_data_docs(v.gx_results, tmp_path, index_results=2)
    read = []
    original = AbstractDataContext.get_validation_result
    monkeypatch.setattr(AbstractDataContext, "get_validation_result",
                        lambda self, *a, **k: read.append(k.get("run_id")) or original(self, *a, **k))
    v = validate(pl.DataFrame(valid_rows(source, 2, "2014-07")).with_columns(extract_month=pl.lit("2014-07")), source)
    index = build_data_docs(v.gx_results, tmp_path, index_results=2)
    assert len(read) == 2, "the index read back more than the latest two results"
    assert len(list((tmp_path / "_validation_results").rglob("*.json"))) == 5  # every result is kept
    assert len(list((tmp_path / "validations").rglob("*.html"))) == 5  # and every page
    html = index.read_text()
    assert "2014-06_to_2014-06" in html and "2014-03_to_2014-03" not in html
    read.clear()
    monkeypatch.setenv("ED_GX_DOCS_INDEX_RESULTS", "0")  # a deployment that wants every result listed
    assert "2014-03_to_2014-03" in build_data_docs(v.gx_results, tmp_path).read_text() and len(read) == 5
    monkeypatch.setenv("ED_GX_DOCS_INDEX_RESULTS", "a year")
    with pytest.raises(ValueError, match="ED_GX_DOCS_INDEX_RESULTS='a year': give a whole number"):
        build_data_docs(v.gx_results, tmp_path)


def test_a_file_written_month_first_has_no_date_read_day_first(tmp_path: Path):
    """social_care writes dd/mm/yyyy; an extract re-saved in a US locale writes mm/dd/yyyy. The dates that cannot
    be day first are quarantined by date_parses; so must be those that read both ways (03/04/2014), which were
    validated as another day (or quarantined as in the future)."""
    from datetime import datetime

    source, month = get_source("social_care"), "2014-03"
    rows = valid_rows(source, 30, month, start=1)
    for row in rows:
        for column in ("dob", "referral_date"):
            row[column] = datetime.strptime(row[column], "%d/%m/%Y").strftime("%m/%d/%Y")
    v = validate(read_extract(write_rows(tmp_path / f"{month}.csv", source, rows), source, month).frame, source)
    assert v.reconciled
    assert set(v.quarantine["rule"]) == {"date_parses"}
    for record in v.validated.iter_rows(named=True):  # only dates that read the same both ways (03/03/2014)
        assert record["event_date"].day == record["event_date"].month
        assert record["date_of_birth"].day == record["date_of_birth"].month


@pytest.mark.parametrize("source", SOURCES, ids=lambda s: s.name)
def test_an_event_before_1980_is_quarantined_in_every_source(source: Source, tmp_path: Path):
    """An event dated 1901-01-01 or 1066-10-14 parsed and passed (only the month's end bounded it): it preceded
    every prediction date, so it counted in every point-in-time feature. No event these agencies record is older
    than 1980; 1980-01-01 itself is validated."""
    month = "2014-03"
    rows = valid_rows(source, 4, month, start=1)
    dates = (date(1980, 1, 1), date(1979, 12, 31), date(1901, 1, 1), date(1066, 10, 14))
    for row, day in zip(rows, dates, strict=True):
        row[source.event_date] = day.strftime(source.event_format.replace("%H", "09").replace("%M", "30"))
    v = validate(read_extract(write_rows(tmp_path / f"{month}.csv", source, rows), source, month).frame, source)
    assert v.reconciled
    assert v.quarantine.select("_row_number", "rule", "column", "value").rows() == [
        (n, "event_date_from_1980", source.event_date, rows[n - 1][source.event_date]) for n in (2, 3, 4)]
    assert set(v.validated["event_date"]) == {date(1980, 1, 1)}
