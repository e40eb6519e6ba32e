"""After a refresh of a tiny world: outputs.community_risk is the latest assessed cohort, scored on point-in-time
features, attributed to areas by features.child_area, with rank intervals."""

from __future__ import annotations

import duckdb
import polars as pl

from ed_pipeline.defs.model import load_latest_model
from ed_pipeline.modelling import score_children
from ed_pipeline.outputs import community_risk
from ed_pipeline.settings import Settings


def test_community_risk_is_the_test_cohort_scored_point_in_time_and_attributed_where_children_live(
        refreshed_world):
    settings = Settings(data_dir=refreshed_world)
    model = load_latest_model(settings)
    with duckdb.connect(str(settings.warehouse_path), read_only=True) as conn:
        cohort = conn.execute("select * from features.child_features where not_gld is not null "
                              f"and assessment_year = {int(model.cohorts.test)} order by person_id").pl()
        area = conn.execute("select person_id, ward, lsoa, from_school_return from features.child_area").pl()
        published = conn.execute("select * from outputs.community_risk").pl()
    # (almost) every child of an assessed cohort has an area: the EYFSP return's (a mistyped postcode has none)
    attributed = cohort.select("person_id").join(area, on="person_id", how="left")
    assert attributed["ward"].is_not_null().mean() > 0.9 and attributed["from_school_return"].mean() > 0.9
    # the risk is the model's on the features at the prediction date (their own ward included), not on the
    # area the child is attributed to
    scores = score_children(model, cohort).join(
        attributed.select("person_id", "ward", "lsoa"), on="person_id").join(
        cohort.select("person_id", "not_gld"), on="person_id")
    expected = community_risk(scores)
    assert published.sort("level", "area").equals(expected.sort("level", "area"))
    ranked = published.filter(pl.col("rank").is_not_null())
    assert ranked.height and (ranked["rank_low"] <= ranked["rank"]).all() and (
        ranked["rank"] <= ranked["rank_high"]).all()


def test_the_top_wards_shown_in_the_ui_are_ranked_wards_only(tmp_path, monkeypatch):
    """With fewer than five wards published, the withheld ones were listed among the top wards as 'None. <ward>'."""
    import types

    import dagster as dg

    import ed_pipeline.defs.outputs as outputs

    def children(ward: str, n: int, risk: float) -> list[dict]:
        return [{"person_id": f"{ward}{i}", "ward": ward, "lsoa": f"{ward}-1", "risk": risk, "band": "low",
                 "not_gld": False} for i in range(n)]

    scores = pl.DataFrame(children("Vange", 20, 0.4) + children("Fryerns", 20, 0.3) + children("Crouch", 2, 0.5)
                          + children("Pitsea", 3, 0.2))
    monkeypatch.setenv("ED_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setattr(outputs, "_scored", lambda warehouse, assessed, area="prediction_date": scores)
    monkeypatch.setattr(outputs, "load_latest_model", lambda settings: types.SimpleNamespace(extra={}))
    context = dg.build_asset_context()
    outputs.community_risk_by_area(context, warehouse=None)
    top = context.get_output_metadata("result")["top_wards"].value
    assert top.splitlines() == ["1. Vange (0.4; rank 1-1)", "2. Fryerns (0.3; rank 2-2)"]
