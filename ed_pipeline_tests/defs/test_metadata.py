"""What the asset pages show: previews without identifiers, plots as text, and nothing of the agency zone."""

import datetime
import os
from unittest import mock

import dagster as dg
import duckdb
import polars as pl

from ed_pipeline.defs.metadata import bar_chart, counts_by, preview, shown_columns, size_histogram
from ed_pipeline.privacy import identifiers_from_duckdb, scan_texts
from ed_pipeline.settings import Settings
from ed_pipeline.sources import SOURCES


def test_previews_leave_out_tokens_ids_and_identifier_columns():
    frame = pl.DataFrame({
        "source": ["housing"], "record_id": ["H1"], "person_id": ["P1"], "record_id_l": ["H2"], "group_ref": ["G"],
        "tok_nhs_number": ["ab12"], "bf_name": ["0101"], "_row_number": [3], "given_name": ["Zoe"],
        "postcode": ["SS14 1AA"], "date_of_birth": [datetime.date(2015, 1, 2)], "reviewer": ["Ann"],
        "ward": ["Vange"], "match_probability": [0.93], "sex": ["F"],
    })
    assert shown_columns(frame.schema) == ["source", "ward", "match_probability", "sex"]
    # a comparison level named like an identifier is not one
    assert shown_columns(pl.Schema({"date_of_birth": pl.String, "name": pl.String})) == ["date_of_birth", "name"]
    text = preview(frame).value
    assert "Vange" in text and "0.93" in text
    assert not any(v in text for v in ("H1", "P1", "H2", "ab12", "0101", "Zoe", "SS14", "2015-01-02", "Ann"))


def test_previews_leave_out_quasi_identifiers_and_sensitive_attributes():
    child = pl.Schema({"birth_year": pl.Int32, "birth_month": pl.Int32, "sex": pl.String, "ward": pl.String,
                       "lsoa": pl.String, "ethnicity_group": pl.String, "fsm": pl.Boolean, "eal": pl.Boolean,
                       "sen": pl.String, "police_incidents_24m": pl.Int64})
    assert shown_columns(child) == ["sex", "ward", "police_incidents_24m"]


def test_plots_are_markdown_bars():
    chart = bar_chart(counts_by(pl.DataFrame({"rule": ["a", "b", "b", None]}), "rule", by_count=True)).value
    assert chart.splitlines()[:3] == ["| rule | rows | |", "|---|---:|---|", "| b | 2 | " + "█" * 30 + " |"]
    sizes = size_histogram(pl.Series("n", [1, 1, 2, 14]), label="records per person", value="persons")
    assert sizes.rows() == [("1", 2), ("2", 1), ("10+", 1)]


def latest_metadata(settings: Settings, keys: list[dg.AssetKey]) -> dict[str, dict]:
    # as Dagster opens an instance: from DAGSTER_HOME (its event log storage finds its files there)
    home = {"DAGSTER_HOME": str(settings.dagster_home)}
    with mock.patch.dict(os.environ, home), dg.DagsterInstance.get() as instance:
        out = {}
        for key in keys:
            event = instance.get_latest_materialization_event(key)
            if event is not None:
                out[key.to_user_string()] = {k: v.value for k, v in event.asset_materialization.metadata.items()}
    return out


def test_warehouse_previews_hold_no_identifier_token_or_id(refreshed_world):
    """The previews and plots of the pseudonymised, linked, features and outputs layers, after a refresh: no
    identifier of the agency zone (the leak scan), no token and no person id."""
    settings = Settings(data_dir=refreshed_world)
    keys = [dg.AssetKey(["pseudonymised", s.name]) for s in SOURCES] + [
        dg.AssetKey(["linked", t]) for t in ("person_link", "person", "household_membership", "cohort",
                                             "review_pair")] + [
        dg.AssetKey(["features", "child_features"]), dg.AssetKey(["outputs", "child_risk"]),
        dg.AssetKey(["outputs", "community_risk"])]
    metadata = latest_metadata(settings, keys)
    texts = [(f"{key} {name}", str(value)) for key, entries in metadata.items() for name, value in entries.items()
             if not name.startswith("dagster/")]
    assert {"pseudonymised/housing", "linked/person_link", "features/child_features"} <= set(metadata)
    assert all("preview" in metadata[k] for k in ("pseudonymised/housing", "linked/person", "linked/review_pair",
                                                  "features/child_features", "outputs/community_risk"))
    assert "cluster_sizes" in metadata["linked/person_link"] and "risk_distribution" in metadata["outputs/child_risk"]

    with duckdb.connect(str(settings.agency_zone_path), read_only=True) as agency:
        identifiers = identifiers_from_duckdb(agency)
    assert scan_texts(texts, identifiers) == []

    with duckdb.connect(str(settings.warehouse_path), read_only=True) as warehouse:
        tokens = warehouse.execute("select tok_family_name, tok_dob from pseudonymised.housing "
                                   "where tok_family_name is not null limit 50").fetchall()
        person_ids = [p for (p,) in warehouse.execute("select person_id from linked.person limit 200").fetchall()]
    blob = "\n".join(text for _, text in texts)
    assert tokens and not any(t in blob for row in tokens for t in row if t), "a token in Dagster's metadata"
    assert person_ids and not any(p in blob for p in person_ids), "a person id in Dagster's metadata"
