"""outputs.community_risk and the ward chart on hand-made scores whose ranking and suppression are known."""

from __future__ import annotations

import polars as pl
import pytest

from ed_pipeline.outputs import COMMUNITY_COUNT_COLUMNS, COMMUNITY_RISK_SCHEMA, community_risk, ward_ranking_chart


def children(ward: str, lsoa: str, n: int, risk: float, band: str, not_gld: list[bool | None] | None = None):
    not_gld = not_gld if not_gld is not None else [None] * n
    return [
        {"person_id": f"P{lsoa}{band}{risk}-{i}", "ward": ward, "lsoa": lsoa, "risk": risk, "band": band,
         "not_gld": not_gld[i]}
        for i in range(n)
    ]


@pytest.fixture
def scores() -> pl.DataFrame:
    rows = (
        children("Vange", "V1", 20, 0.6, "high")
        + children("Vange", "V2", 3, 0.5, "medium")
        + children("Fryerns", "F1", 30, 0.4, "medium")
        + children("Fryerns", "F1", 6, 0.4, "high")
        + children("Fryerns", "F2", 5, 0.3, "medium")
        + children("Fryerns", "F2", 2, 0.3, "high")
        + children("Billericay East", "B1", 10, 0.1, "low", [True] * 5 + [False] * 5)
        + children("Billericay East", "B2", 12, 0.2, "low")
        + children("Crouch", "C1", 2, 0.9, "high")
        + children("Nethermayne", "N1", 40, 0.3, "medium", [True] * 8 + [False] * 12 + [None] * 20)
        + children("Nethermayne", "N2", 40, 0.3, "medium", [True] * 3 + [False] * 27 + [None] * 10)
    )
    return pl.DataFrame(rows)


def row(table: pl.DataFrame, level: str, area: str) -> dict:
    return table.filter((pl.col("level") == level) & (pl.col("area") == area)).row(0, named=True)


def test_wards_are_ranked_and_small_numbers_suppressed(scores):
    wards = community_risk(scores, "ward")
    assert wards.schema == pl.Schema(COMMUNITY_RISK_SCHEMA)
    assert wards["level"].unique().to_list() == ["ward"]
    # Crouch (2 children) is primary; the next smallest ward, Billericay East (22), goes with it
    crouch, billericay = row(wards, "ward", "Crouch"), row(wards, "ward", "Billericay East")
    assert crouch["children"] is None and crouch["children_suppressed"]
    assert billericay["children"] is None and billericay["children_suppressed"]
    assert crouch["mean_risk"] is None and billericay["mean_risk"] is None and crouch["rank"] is None
    # published means, rounded counts, rank 1 = highest mean risk
    vange, fryerns, nether = row(wards, "ward", "Vange"), row(wards, "ward", "Fryerns"), row(wards, "ward",
                                                                                           "Nethermayne")
    assert (vange["children"], vange["mean_risk"], vange["rank"]) == (25, round(13.5 / 23, 3), 1)
    assert (fryerns["children"], fryerns["mean_risk"], fryerns["rank"]) == (45, round(16.5 / 43, 3), 2)
    assert (nether["children"], nether["rank"]) == (80, 3)
    assert wards["area"].to_list()[:3] == ["Vange", "Fryerns", "Nethermayne"]
    # 2 high in Crouch: primary; the smallest non-zero other ward (Fryerns, 8) is suppressed with it
    assert crouch["predicted_high_risk_suppressed"] and fryerns["predicted_high_risk_suppressed"]
    assert vange["predicted_high_risk"] == 20 and nether["predicted_high_risk"] == 0
    # observed rate: 11 of Nethermayne's 50 assessed did not reach GLD; 5 of Billericay East's 10 (its other
    # counts are independent of its withheld number of children)
    assert (nether["assessed_children"], nether["observed_not_gld_rate"]) == (50, 0.22)
    assert (billericay["assessed_children"], billericay["observed_not_gld_rate"]) == (10, 0.5)
    # nobody assessed: no rate, but nothing withheld either
    assert vange["observed_not_gld_rate"] is None and not vange["observed_not_gld_rate_suppressed"]


def test_lsoas_are_suppressed_within_their_ward(scores):
    lsoas = community_risk(scores, "lsoa")
    assert lsoas["level"].unique().to_list() == ["lsoa"]
    assert dict(zip(lsoas["area"], lsoas["ward"], strict=True))["V2"] == "Vange"
    # V2 has 3 children: primary; V1, the only other LSOA of Vange, would give it back from the ward's total
    assert row(lsoas, "lsoa", "V2")["children_suppressed"] and row(lsoas, "lsoa", "V1")["children_suppressed"]
    # Billericay East is suppressed at ward level, so its LSOAs may not add up to it
    assert row(lsoas, "lsoa", "B1")["children_suppressed"] and row(lsoas, "lsoa", "B2")["children_suppressed"]
    # Fryerns: F2's 2 high-risk children are primary, F1's 6 secondary; children counts are published
    f1, f2 = row(lsoas, "lsoa", "F1"), row(lsoas, "lsoa", "F2")
    assert f2["predicted_high_risk_suppressed"] and f1["predicted_high_risk_suppressed"]
    assert (f1["children"], f2["children"]) == (35, 5)
    # N2: 3 of 30 assessed did not reach GLD: withheld, and so is N1's 8 of 20, which would give it back
    n1, n2 = row(lsoas, "lsoa", "N1"), row(lsoas, "lsoa", "N2")
    assert (n1["assessed_children"], n2["assessed_children"]) == (20, 30)
    assert n1["observed_not_gld_rate_suppressed"] and n2["observed_not_gld_rate_suppressed"]
    assert n1["observed_not_gld_rate"] is None and n2["observed_not_gld_rate"] is None
    b1, b2 = row(lsoas, "lsoa", "B1"), row(lsoas, "lsoa", "B2")
    assert (b1["observed_not_gld_rate"], b2["observed_not_gld_rate"], b2["observed_not_gld_rate_suppressed"]) == (
        0.5, None, False)
    ranked = lsoas.filter(pl.col("rank").is_not_null())  # F2, N1 and N2 tie at 0.3 and share rank 2
    assert ranked["area"].to_list() == ["F1", "F2", "N1", "N2"] and ranked["rank"].to_list() == [1, 2, 2, 2]


def test_published_counts_are_safe(scores):
    both = community_risk(scores)
    assert both["level"].to_list() == sorted(both["level"].to_list(), key=["ward", "lsoa"].index)
    for column in COMMUNITY_COUNT_COLUMNS:
        shown = both[column].drop_nulls()
        assert shown.is_between(1, 4).sum() == 0 and (shown % 5 == 0).all()
        assert both.filter(pl.col(column).is_null() != pl.col(f"{column}_suppressed")).is_empty()
    # within every ward, no count column has exactly one suppressed LSOA
    lsoas = both.filter(pl.col("level") == "lsoa")
    for column in COMMUNITY_COUNT_COLUMNS:
        hidden = lsoas.group_by("ward").agg(n=pl.len(), k=pl.col(f"{column}_suppressed").sum())
        assert hidden.filter((pl.col("n") > 1) & (pl.col("k") == 1)).is_empty()


def test_latest_prediction_per_child_and_clear_errors(scores):
    older = scores.with_columns(prediction_date=pl.date(2017, 1, 1), risk=pl.lit(0.99))
    newer = scores.with_columns(prediction_date=pl.date(2017, 6, 1))
    assert community_risk(pl.concat([older, newer])).equals(community_risk(newer))
    with pytest.raises(ValueError, match="prediction_date"):
        community_risk(pl.concat([scores, scores]))
    with pytest.raises(ValueError, match="lsoa"):
        community_risk(scores.drop("lsoa"))
    # not_gld is optional
    assert community_risk(scores.drop("not_gld"))["assessed_children"].drop_nulls().max() == 0


def test_ward_ranking_chart(scores, tmp_path):
    path = ward_ranking_chart(community_risk(scores), tmp_path / "charts" / "wards.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and path.stat().st_size > 5_000
