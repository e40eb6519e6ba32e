"""outputs.community_risk and the ward chart on hand-made scores whose ranking and suppression are known."""

from __future__ import annotations

import itertools

import numpy as np
import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image  # matplotlib's own image library

from ed_pipeline.outputs import COMMUNITY_COUNT_COLUMNS, COMMUNITY_RISK_SCHEMA, community_risk, ward_ranking_chart
from ed_pipeline.outputs.community import rank_intervals


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
    assert (vange["children"], vange["mean_risk"], vange["rank"]) == (25, round(13.5 / 23, 2), 1)
    assert (fryerns["children"], fryerns["mean_risk"], fryerns["rank"]) == (45, round(16.5 / 43, 2), 2)
    assert (nether["children"], nether["rank"]) == (80, 3)
    assert wards["area"].to_list()[:3] == ["Vange", "Fryerns", "Nethermayne"]
    # 2 high in Crouch: primary; the smallest non-zero other ward (Fryerns, 8) is suppressed with it
    assert crouch["predicted_high_risk_suppressed"] and fryerns["predicted_high_risk_suppressed"]
    assert vange["predicted_high_risk"] == 20 and nether["predicted_high_risk"] == 0
    # observed rate, of the rounded counts: 11 (10) of Nethermayne's 50 assessed did not reach GLD; 5 of Billericay
    # East's 10 (its other counts are independent of its withheld number of children)
    assert (nether["assessed_children"], nether["observed_not_gld_rate"]) == (50, 0.2)
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


def test_a_withheld_lsoa_is_not_given_back_by_the_wards_an_lsoa_split_across_them_links():
    """L3 lives mostly in Laindon, so it is Laindon's; Pitsea's only LSOA is then P1, of 3 children, withheld with
    no other of Pitsea's to go with it. Pitsea's 10 (P1 and 7 of L3) and Laindon's 43 (13 of L3 and L4) add up
    to P1, L3 and L4: without rounding, the wards less L3 and L4 gave P1's 3 back."""
    scores = pl.DataFrame(children("Pitsea", "P1", 3, 0.2, "low") + children("Pitsea", "L3", 7, 0.3, "low")
                          + children("Laindon", "L3", 13, 0.35, "low") + children("Laindon", "L4", 30, 0.4, "low"))
    for rounding in (1, 5):
        table = community_risk(scores, rounding=rounding)
        assert row(table, "lsoa", "P1")["children_suppressed"] and row(table, "lsoa", "L3")["ward"] == "Laindon"
        assert not row(table, "ward", "Pitsea")["children_suppressed"]
        assert {row(table, "lsoa", a)["children_suppressed"] for a in ("L3", "L4")} == {True}


def test_a_rate_that_tells_every_assessed_childs_outcome_is_withheld():
    """An area where every assessed child did not reach GLD (or every one did) would publish a rate of 1 (or 0),
    each child's outcome; with one to four on the other side the rate is withheld, and so it is with none."""
    scores = pl.DataFrame(
        children("Vange", "V1", 7, 0.6, "high", [True] * 7)  # all seven did not reach GLD
        + children("Vange", "V2", 30, 0.5, "medium", [True] * 10 + [False] * 20)
        + children("Pitsea", "P1", 8, 0.2, "low", [False] * 8)  # all eight did
        + children("Pitsea", "P2", 30, 0.2, "low", [True] * 6 + [False] * 24)
        + children("Laindon", "L1", 30, 0.3, "medium", [False] * 30)  # a whole ward, every child reached GLD
        + children("Laindon", "L2", 9, 0.3, "medium", [None] * 9)  # nobody assessed: no rate
    )
    table = community_risk(scores)
    withheld = {(r["level"], r["area"]) for r in table.iter_rows(named=True) if r["observed_not_gld_rate_suppressed"]}
    # V2 too: with Vange's rate published, its rate would give V1's back
    assert {("lsoa", "V1"), ("lsoa", "V2"), ("lsoa", "P1"), ("lsoa", "L1"), ("ward", "Laindon")} <= withheld
    published = table.filter(pl.col("observed_not_gld_rate").is_not_null())
    assert published["area"].to_list() == ["Vange"]
    assert published["observed_not_gld_rate"].to_list() == [round(15 / 35, 2)]  # 17 of 37, rounded


def _exact_counts(row: dict, rate_of: str):
    """An attacker's candidates for one published row's true (children, not GLD): a rounded count c is c-2..c+2
    (5 at least); a rate, of children every one assessed, is k/n to 2 decimals with 5..n-5 on each side, k and n
    the true counts (`rate_of` "true counts") or the rounded ones ("rounded counts": k is then the rounded k +-2)."""
    c, rate = row["children"], row["observed_not_gld_rate"]
    for n in range(max(5, c - 2), c + 3):
        if rate is None:
            yield n, None
        elif rate_of == "true counts":
            yield from ((n, k) for k in range(5, n - 4) if abs(k / n - rate) <= 0.005 + 1e-9)
        else:
            k5 = round(rate * c / 5) * 5
            yield from ((n, k) for k in range(max(5, k5 - 2), min(k5 + 2, n - 5) + 1))


def attack(table: pl.DataFrame, wards: list[str], *, rate_of: str = "true counts", means: bool = True) -> set:
    """Every value of (children, not GLD) of each of `wards` less its published LSOAs (its withheld LSOAs and the
    parts of straddling LSOAs) that the published figures leave possible: the wards' true counts add up to their
    LSOAs'; with `means`, so do children times mean risk (to the means' decimals; a withheld child's risk is 0-1)."""
    lsoa = pl.col("level") == "lsoa"
    group = table.filter((~lsoa & pl.col("area").is_in(wards)) | (lsoa & pl.col("ward").is_in(wards)))
    ward_rows = group.filter(~lsoa).sort("area").to_dicts()
    shown = group.filter(lsoa & pl.col("children").is_not_null()).to_dicts()
    withheld = group.filter(lsoa).height - len(shown)
    half = 0.5 * 10 ** -max(len(str(m).split(".")[1]) for m in table["mean_risk"].drop_nulls())
    found = set()
    for combo in itertools.product(*(list(_exact_counts(r, rate_of)) for r in ward_rows + shown)):
        ward_n, lsoa_n = combo[: len(ward_rows)], combo[len(ward_rows):]
        left = sum(n for n, _ in ward_n) - sum(n for n, _ in lsoa_n)
        if left < withheld or (not withheld and left):
            continue
        if means:
            risk_left = (sum(n * r["mean_risk"] for (n, _), r in zip(ward_n, ward_rows, strict=True))
                         - sum(n * r["mean_risk"] for (n, _), r in zip(lsoa_n, shown, strict=True)))
            slack = half * sum(n for n, _ in combo) + 1e-9
            if not -slack <= risk_left <= left + slack:
                continue
        differences = []
        for (n, k), ward in zip(ward_n, ward_rows, strict=True):
            own = [c for c, r in zip(lsoa_n, shown, strict=True) if r["ward"] == ward["area"]]
            known = k is not None and all(c[1] is not None for c in own)
            differences.append((n - sum(c[0] for c in own), k - sum(c[1] for c in own) if known else None))
        found.add(tuple(differences))
    return found


def test_a_rate_gives_back_no_count_that_rounding_hides():
    """Vange's V2 and V3 (3 children, none reached GLD) are withheld; L3 is Laindon's, and 2 of its children, neither
    at GLD, live in Pitsea. A rate of the true counts to 2 decimals beside a rounded count (22 assessed, published
    20, rate 0.27: 6 of 22) told the exact counts of Vange, V1, Pitsea, P1, L3 and L4; their differences gave back
    V2 and V3's 3 children and L3's 2 in Pitsea, with their outcomes. Rates of the rounded counts tell nothing more
    than the rounded counts do."""
    scores = pl.DataFrame(
        children("Vange", "V1", 22, 0.5, "low", [True] * 6 + [False] * 16)
        + children("Vange", "V2", 2, 0.6, "low", [True] * 2) + children("Vange", "V3", 1, 0.7, "low", [True])
        + children("Pitsea", "P1", 20, 0.5, "low", [True] * 7 + [False] * 13)
        + children("Pitsea", "L3", 2, 0.5, "medium", [True] * 2)
        + children("Laindon", "L3", 13, 0.5, "low", [True] * 6 + [False] * 7)
        + children("Laindon", "L4", 30, 0.5, "low", [True] * 10 + [False] * 20)
    )
    table = community_risk(scores)
    assert row(table, "lsoa", "V2")["children_suppressed"] and row(table, "lsoa", "V3")["children_suppressed"]
    assert table.filter(pl.col("area").is_in(["V1", "P1", "L3", "L4"]))["observed_not_gld_rate"].is_not_null().all()
    truth = {"Vange": ((3, 3),), "Laindon, Pitsea": ((-2, -2), (2, 2))}
    for wards, exact in truth.items():
        assert attack(table, wards.split(", "), means=False) != {exact}, f"{wards}: the rates gave back {exact}"
    # an attacker who knows the rates are of the rounded counts is right, and left with many possibilities
    knowing = attack(table, ["Vange"], rate_of="rounded counts", means=False)
    assert truth["Vange"] in knowing and len(knowing) > 1
    for r in table.filter(pl.col("observed_not_gld_rate").is_not_null()).iter_rows(named=True):
        not_gld = r["observed_not_gld_rate"] * r["assessed_children"]
        assert abs(not_gld - 5 * round(not_gld / 5)) <= 0.005 * r["assessed_children"] + 1e-9  # of rounded counts


def test_a_mean_risk_gives_back_no_count_that_rounding_hides():
    """L3 is Laindon's; 4 of its children live in Pitsea. The rounded counts leave the part's size open, but the
    wards' children times their means add up to their LSOAs': with means to 3 decimals only one set of exact counts
    fitted, and Pitsea less P1 gave back the 4 children (and their mean risk). To 2 decimals, several fit."""
    scores = pl.DataFrame(
        children("Pitsea", "P1", 13, 0.2, "low") + children("Pitsea", "L3", 4, 0.86, "high")
        + children("Laindon", "L3", 17, 0.86, "medium") + children("Laindon", "L4", 6, 0.6, "medium"))
    table = community_risk(scores)
    assert table["children"].is_not_null().all()
    assert len(attack(table, ["Laindon", "Pitsea"], means=False)) > 1  # the rounded counts alone keep it
    found = attack(table, ["Laindon", "Pitsea"])
    assert ((-4, None), (4, None)) in found and len(found) > 1, "the means gave back the 4 children of L3 in Pitsea"


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


def test_a_ward_chart_is_drawn_again_only_when_what_it_shows_changed(scores, tmp_path, monkeypatch):
    """The Essex chart takes 1.7 s to draw and most months leave the table as it was: an unchanged table keeps
    the file (byte for byte, so the privacy audit need not read it again); a changed one, or a file the chart did
    not draw, is drawn again."""
    from matplotlib.figure import Figure

    drawn = []
    save = Figure.savefig
    monkeypatch.setattr(Figure, "savefig", lambda self, *a, **k: (drawn.append(1), save(self, *a, **k)))
    community = community_risk(scores)
    path = ward_ranking_chart(community, tmp_path / "wards.png")
    first = path.read_bytes()
    assert ward_ranking_chart(community, path) == path and len(drawn) == 1 and path.read_bytes() == first
    assert ward_ranking_chart(community, tmp_path / "top.png", top=2) and len(drawn) == 2  # another chart
    ward_ranking_chart(community, path, highlight=1)  # other colours
    assert len(drawn) == 3
    changed = community.with_columns(pl.when(pl.col("level") == "ward").then(pl.col("mean_risk") + 0.01)
                                     .otherwise(pl.col("mean_risk")).alias("mean_risk"))
    ward_ranking_chart(changed, path, highlight=1)
    assert len(drawn) == 4 and path.read_bytes() != first
    path.write_bytes(b"not a png")  # nor one this code drew
    ward_ranking_chart(changed, path, highlight=1)
    assert len(drawn) == 5 and path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not list(tmp_path.glob(".*.partial"))
    # the digest is hex, letters and digits: no word of it can be a name (test_vocabulary), nor a number
    digest = Image.open(path).info["Drawn from"]
    assert len(digest) == 64 and set(digest) <= set("0123456789abcdef") and not digest.isalpha()


def test_the_embedded_ward_chart_shows_only_the_top_wards(tmp_path):
    """All of Essex is some 280 wards: the chart embedded in Dagster's metadata keeps the top few."""
    wards = pl.DataFrame({"level": "ward", "area": [f"Ward {i:03d}" for i in range(280)],
                          "mean_risk": [None if i % 7 == 0 else 0.5 - i / 1000 for i in range(280)]})
    whole = ward_ranking_chart(wards, tmp_path / "all.png")
    top = ward_ranking_chart(wards, tmp_path / "top.png", top=20)
    # a bar is 0.35 inch at 120 dpi: 20 bars and the margins, against 280
    assert Image.open(top).height < 0.35 * 25 * 120 < Image.open(whole).height / 5
    assert top.stat().st_size < whole.stat().st_size / 4


def test_constant_risks_give_exact_rank_intervals(scores):
    """Every child of a hand-made area has the same risk, so every bootstrap draw ranks the areas alike."""
    both = community_risk(scores)
    ranked = both.filter(pl.col("rank").is_not_null())
    assert (ranked["rank_low"] == ranked["rank"]).all() and (ranked["rank_high"] == ranked["rank"]).all()
    withheld = both.filter(pl.col("rank").is_null())
    assert withheld["rank_low"].is_null().all() and withheld["rank_high"].is_null().all()


def noisy_wards(seed: int = 3) -> pl.DataFrame:
    """Six wards of 60 children: A well above the rest, B and C indistinguishable, F well below."""
    rng = np.random.default_rng(seed)
    means = {"A": 0.45, "B": 0.30, "C": 0.30, "D": 0.25, "E": 0.24, "F": 0.10}
    rows = [{"person_id": f"{w}{i}", "ward": w, "lsoa": f"{w}-L{i % 3}", "band": "medium",
             "risk": float(np.clip(m + rng.normal(0, 0.15), 0.01, 0.99)), "not_gld": None}
            for w, m in means.items() for i in range(60)]
    return pl.DataFrame(rows)


def test_rank_intervals_show_which_ranks_are_within_noise():
    wards = community_risk(noisy_wards(), "ward")
    got = {r["area"]: (r["rank"], r["rank_low"], r["rank_high"]) for r in wards.iter_rows(named=True)}
    assert got["A"] == (1, 1, 1) and got["F"] == (6, 6, 6)  # far from the rest: certain
    b, c = got["B"], got["C"]
    assert b[1] <= 2 and c[1] <= 2 and b[2] >= 3 and c[2] >= 3  # B and C may swap: both intervals hold 2 and 3
    for rank, low, high in got.values():
        assert 1 <= low <= rank <= high <= 6


def test_rank_intervals_are_seeded_and_ignore_row_order():
    frame = noisy_wards()
    first = community_risk(frame)
    assert first.equals(community_risk(frame.sample(fraction=1.0, shuffle=True, seed=7)))
    assert first.equals(community_risk(frame))
    other = community_risk(frame, seed=1)
    assert other.drop("rank_low", "rank_high").equals(first.drop("rank_low", "rank_high"))


def test_withheld_areas_take_no_part_in_the_intervals():
    frame = noisy_wards()
    tiny = pl.DataFrame([{"person_id": f"T{i}", "ward": "T", "lsoa": "T-L0", "band": "high", "risk": r,
                          "not_gld": None} for i, r in enumerate((0.31, 0.29))])
    other = tiny.with_columns(risk=pl.lit(0.99))
    with_tiny = community_risk(pl.concat([frame, tiny]), "ward")
    assert with_tiny.filter(pl.col("area") == "T")["rank_low"].is_null().all()  # 2 children: withheld
    # what the withheld ward's children look like changes nothing that is published
    assert with_tiny.equals(community_risk(pl.concat([frame, other]), "ward"))
    assert rank_intervals(frame, "ward", []).is_empty()


@st.composite
def random_scores(draw) -> pl.DataFrame:
    n_wards = draw(st.integers(1, 6))
    rows = []
    for w in range(n_wards):
        for lsoa in range(draw(st.integers(1, 3))):
            n = draw(st.integers(0, 14))
            risks = draw(st.lists(st.floats(0.0, 1.0), min_size=n, max_size=n))
            outcomes = draw(st.lists(st.sampled_from([True, False, None]), min_size=n, max_size=n))
            rows += [{"person_id": f"W{w}L{lsoa}-{i}", "ward": f"W{w}", "lsoa": f"W{w}L{lsoa}", "risk": r,
                      "band": "high" if r > 0.6 else "low", "not_gld": o}
                     for i, (r, o) in enumerate(zip(risks, outcomes, strict=True))]
    schema = {"person_id": pl.String, "ward": pl.String, "lsoa": pl.String, "risk": pl.Float64,
              "band": pl.String, "not_gld": pl.Boolean}
    return pl.DataFrame(rows, schema=schema)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(random_scores())
def test_property_suppression_holds_and_intervals_hold_their_rank(frame):
    table = community_risk(frame, bootstrap=200)
    for column in COMMUNITY_COUNT_COLUMNS:
        shown = table[column].drop_nulls()
        assert shown.is_between(1, 4).sum() == 0 and (shown % 5 == 0).all()
        assert table.filter(pl.col(column).is_null() != pl.col(f"{column}_suppressed")).is_empty()
    wards = table.filter(pl.col("level") == "ward")
    hidden = wards.filter(pl.col("children_suppressed"))
    assert hidden.height != 1 or wards.height == 1  # secondary suppression among the wards
    assert hidden["mean_risk"].is_null().all() and hidden["rank"].is_null().all()
    # no derived figure where a count it comes from is withheld, and none finer than the rounded counts allow
    assert table.filter(pl.col("children_suppressed") & pl.col("mean_risk").is_not_null()).is_empty()
    assert table.filter(pl.col("assessed_children_suppressed")
                        & pl.col("observed_not_gld_rate").is_not_null()).is_empty()
    assert (table["mean_risk"].drop_nulls() == table["mean_risk"].drop_nulls().round(2)).all()
    rated = table.filter(pl.col("observed_not_gld_rate").is_not_null())
    not_gld = rated["observed_not_gld_rate"] * rated["assessed_children"]
    assert ((not_gld - (not_gld / 5).round(0) * 5).abs() <= 0.005 * rated["assessed_children"] + 1e-9).all()
    assert (table["rank"].is_null() == table["rank_low"].is_null()).all()
    assert (table["rank"].is_null() == table["rank_high"].is_null()).all()
    ranked = table.filter(pl.col("rank").is_not_null())
    per_level = ranked.group_by("level").len()
    ranked = ranked.join(per_level, on="level")
    assert ((ranked["rank_low"] <= ranked["rank"]) & (ranked["rank"] <= ranked["rank_high"])
            & (ranked["rank_low"] >= 1) & (ranked["rank_high"] <= ranked["len"])).all()
