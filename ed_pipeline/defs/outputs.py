"""outputs.*: child-level risk for human review, and community risk safe to publish (warehouse).

`outputs.child_risk` holds pseudonymous ids only; practitioners see names solely through
`ed-pipeline reidentify`, agency-side. `outputs.community_risk` applies small-number suppression.
"""

import base64
from pathlib import Path

import dagster as dg
import polars as pl
from dagster_duckdb import DuckDBResource

from ed_pipeline.defs.automation import follows_upstream
from ed_pipeline.defs.features import MART_KEY
from ed_pipeline.defs.metadata import bar_chart, counts_by, histogram, preview
from ed_pipeline.defs.model import MODEL_KEY, load_latest_model
from ed_pipeline.defs.resources import WAREHOUSE
from ed_pipeline.mart import MART, read_mart
from ed_pipeline.outputs import community_risk, ward_ranking_chart
from ed_pipeline.settings import Settings, is_within

CHILD_AREA_KEY = dg.AssetKey(["features", "child_area"])
CHILD_RISK_KEY = dg.AssetKey(["outputs", "child_risk"])
COMMUNITY_RISK_KEY = dg.AssetKey(["outputs", "community_risk"])
INLINE_WARDS = 20  # wards in the chart embedded in the materialisation's metadata
# Children with no EYFSP result whose assessment is still to come: the profile is taken in the summer of the
# school year in which a child turns five (born September to August), so a child whose year's returns have landed
# and who is not in them has left the area or their return did not link: not someone early help can still reach.
NOT_YET_ASSESSED = (
    "not_gld is null and birth_year + case when birth_month >= 9 then 6 else 5 end > "
    f"(select coalesce(max(assessment_year), 0) from features.{MART} where not_gld is not null)"
)


def _attach_to_run(context: dg.AssetExecutionContext, settings: Settings, run_id: str, chart: Path) -> None:
    """Log the chart to the model's MLflow run, unless that run keeps its artifacts out of the data directory (a
    run made before the directory was moved or copied: the champion's, when this refresh's candidate was refused):
    nothing is written out of it."""
    from mlflow.tracking import MlflowClient  # here: see defs/model.py

    client = MlflowClient(settings.mlflow_tracking_uri)
    if is_within(client.get_run(run_id).info.artifact_uri, settings.mlflow_artifact_root):
        client.log_artifact(run_id, str(chart), artifact_path="outputs")
    else:
        context.log.info(f"the ward ranking chart is kept in outputs only: MLflow run {run_id} has its artifacts "
                         "at an earlier data path")


def _scored(warehouse: DuckDBResource, assessed: bool, area: str = "prediction_date") -> pl.DataFrame:
    """Children of the mart scored by the latest model: those not yet assessed, with their top factors, or the
    latest assessed cohort, without (community risk does not read them).

    `area` "prediction_date": ward and LSOA as the model saw them (features.child_features, point in time);
    "latest": where the child lives as far as the warehouse knows now (features.child_area), for attribution.
    """
    from ed_pipeline.modelling import score_children  # here: see defs/model.py

    model = load_latest_model(Settings.from_env())
    where = (NOT_YET_ASSESSED if not assessed
             else f"not_gld is not null and assessment_year = {int(model.cohorts.test)}")
    with warehouse.get_connection() as conn:
        children = read_mart(conn, where)
        places = (conn.execute("select person_id, ward, lsoa from features.child_area").pl()
                  if area == "latest" else None)
    # scored on the features as they were at the prediction date, the model's ward included; the area the child
    # is attributed to (where they live now) is joined after scoring and never reaches the model
    factors = not assessed
    scores = score_children(model, children, factors=factors) if children.height else pl.DataFrame(
        schema={"person_id": pl.String, "prediction_date": pl.Date, "risk": pl.Float64, "band": pl.String,
                **({"top_factors": pl.List(pl.String)} if factors else {})})
    if places is not None:
        children = children.drop("ward", "lsoa").join(places, on="person_id", how="left")
    return scores.join(children.select("person_id", "prediction_date", "ward", "lsoa", "not_gld"),
                       on=["person_id", "prediction_date"], how="left")


@dg.asset(
    key=CHILD_RISK_KEY,
    deps=[MODEL_KEY, MART_KEY],
    group_name="outputs",
    io_manager_key=WAREHOUSE,
    kinds={"lightgbm", "duckdb", "polars"},
    owners=["team:data-science"],
    automation_condition=follows_upstream(),
    description="Children not yet assessed: pseudonymous person id, calibrated risk, band, and the three "
    "features pushing their risk up most. Every flag is reviewed by a person; no decision is automated.",
)
def child_risk(context: dg.AssetExecutionContext, warehouse: DuckDBResource) -> pl.DataFrame:
    scored = _scored(warehouse, assessed=False).sort("risk", descending=True)
    # top_factors stays a list (VARCHAR[]): the labels are separate values, not one text
    out = scored.select("person_id", "prediction_date", "ward", "lsoa", "risk", "band", "top_factors")
    context.add_output_metadata({
        "children": out.height, "high_band": out.filter(pl.col("band") == "high").height,
        # one row per child: counts and the risk distribution only, no row
        "children_by_band": bar_chart(counts_by(out, "band", value="children", by_count=True)),
        "risk_distribution": bar_chart(histogram(out["risk"], [i / 10 for i in range(11)], label="risk",
                                                 value="children")),
    })
    return out


@dg.asset(
    key=COMMUNITY_RISK_KEY,
    deps=[CHILD_RISK_KEY, MODEL_KEY, CHILD_AREA_KEY],
    group_name="outputs",
    io_manager_key=WAREHOUSE,
    kinds={"duckdb", "polars"},
    owners=["team:data-science"],
    automation_condition=follows_upstream(),
    description="Risk by ward and LSOA for the latest assessed cohort (every child of it, on the EYFSP "
    "return, attributed to where the return says they live), predicted at each child's third birthday by the "
    "latest model (out of sample) beside the observed not-GLD rate; ranked, with a bootstrap 95% interval of "
    "each rank, and small-number suppression (1-4 hidden, others rounded to 5, secondary suppression). "
    "Children not yet assessed are left out: the warehouse knows them only if an agency recorded them, a "
    "minority that differs by area (see outputs.child_risk for them).",
)
def community_risk_by_area(context: dg.AssetExecutionContext, warehouse: DuckDBResource) -> pl.DataFrame:
    settings = Settings.from_env()
    # The latest assessed cohort only, attributed by where each child lives (features.child_area: the EYFSP
    # return's area). It is the one population the warehouse holds whole: a child not yet assessed is in it
    # only if an agency recorded them, and the model's point-in-time ward is known for fewer than a third of
    # children, mostly those known to an agency by three; a ranking over either measures agency contact as
    # much as risk.
    scores = _scored(warehouse, assessed=True, area="latest")
    community = community_risk(scores, "both")
    chart = ward_ranking_chart(community, settings.outputs_dir / "ward_ranking.png")
    run_id = load_latest_model(settings).extra.get("mlflow_run_id")
    if run_id:
        _attach_to_run(context, settings, run_id, chart)
    wards = community.filter(pl.col("level") == "ward").sort("rank", nulls_last=True)
    # ranked wards only: a withheld ward (no rank, no mean) read "None. <ward> (None; rank None-None)" among them
    top = wards.filter(pl.col("rank").is_not_null()).head(5).select(
        "rank", "rank_low", "rank_high", "area", "mean_risk").to_dicts()
    # The UI shows the top wards inline; every ward is in the file and MLflow. All of Essex embedded was 1.5 MB
    # of metadata in two events of every refresh, which each later privacy audit read again.
    shown = ward_ranking_chart(community, settings.outputs_dir / "ward_ranking_top.png", top=INLINE_WARDS)
    image = base64.b64encode(shown.read_bytes()).decode()
    context.add_output_metadata({
        "top_wards": dg.MetadataValue.md("\n".join(
            f"{r['rank']}. {r['area']} ({r['mean_risk']}; rank {r['rank_low']}-{r['rank_high']})" for r in top)),
        "ward_ranking": dg.MetadataValue.md(f"![ward ranking](data:image/png;base64,{image})"),
        "chart_path": dg.MetadataValue.path(str(chart)),
        "preview": preview(wards.select("rank", "rank_low", "rank_high", "area", "children", "mean_risk",
                                        *[c for c in ("observed_not_gld_rate",) if c in wards.columns]), rows=10),
    })
    return community


output_assets = [child_risk, community_risk_by_area]
