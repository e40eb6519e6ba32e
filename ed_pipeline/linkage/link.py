"""Linking pseudonymised person records into persons: scoring pairs, clustering, stable ids, incremental months.

`link_people(tokens)` is the public entry point (DESIGN.md): one row per input
record, `source, record_id, person_id`. `link(...)` returns the same with the
scored pairs and the model, for the warehouse tables and clerical review.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Any

import polars as pl

from ed_pipeline.linkage.clustering import cluster, duplicate_like_sql
from ed_pipeline.linkage.engine import Session
from ed_pipeline.linkage.ids import assign_stable_ids
from ed_pipeline.linkage.model import LinkageModel, TrainingConfig, train_model
from ed_pipeline.linkage.spec import TokenColumns

logger = logging.getLogger(__name__)

LINK_SCHEMA = {"source": pl.String, "record_id": pl.String, "person_id": pl.String, "match_probability": pl.Float64}


@dataclass
class LinkResult:
    """links: source, record_id, person_id, match_probability (the best link holding the record in its person;
    null for a person of one record). pairs: scored pairs at or above the review band's floor (unique ids,
    match weight and probability, comparison levels gamma_*), for clerical review. crosswalk: id changes."""

    links: pl.DataFrame
    pairs: pl.DataFrame
    model: LinkageModel
    crosswalk: pl.DataFrame
    records: pl.DataFrame  # source, record_id, unique_id, group_ref (the frame as linked)
    timings: dict[str, float] = field(default_factory=dict)

    def person_links(self) -> pl.DataFrame:
        return self.links.select(*LINK_SCHEMA)


def _edges(s: Session, predictions_table: str, records_table: str, model: LinkageModel) -> str:
    """Materialise the clustering edges (pairs at the threshold) as a table; returns its name.

    With `separate_group_members`, a pair of records from one row-group (a claim's claimant and partner) is
    never an edge unless it looks like a re-sent duplicate (see clustering.duplicate_like_sql)."""
    constraint = "TRUE"
    if model.separate_group_members:
        dup = duplicate_like_sql(model.sql_context, model.fields)
        constraint = (f"NOT (l.source = r.source AND l.group_ref = r.group_ref AND l.record_id <> r.record_id "
                      f"AND NOT coalesce({dup}, FALSE))")
    # rows sent again under the same key (status updates, corrections) are one record: always one person
    s.con.execute(f"""
        CREATE OR REPLACE TABLE ed_edges AS
        SELECT p.unique_id_l, p.unique_id_r, p.match_probability
        FROM {predictions_table} p
        JOIN {records_table} l ON l.unique_id = p.unique_id_l
        JOIN {records_table} r ON r.unique_id = p.unique_id_r
        WHERE p.match_probability >= {model.threshold} AND coalesce({constraint}, TRUE)
        UNION ALL
        SELECT first AS unique_id_l, unique_id AS unique_id_r, 1.0 AS match_probability
        FROM (SELECT unique_id, min(unique_id) OVER (PARTITION BY source, record_id) AS first FROM {records_table})
        WHERE unique_id <> first
    """)
    return "ed_edges"


def _best_probability(s: Session, edges_table: str) -> pl.DataFrame:
    return s.query(f"""
        SELECT unique_id, max(match_probability) AS match_probability FROM (
            SELECT unique_id_l AS unique_id, match_probability FROM {edges_table}
            UNION ALL SELECT unique_id_r, match_probability FROM {edges_table})
        GROUP BY unique_id
    """)


def link(
    tokens: pl.DataFrame,
    model: LinkageModel | None = None,
    *,
    spec: TokenColumns | None = None,
    previous: pl.DataFrame | None = None,
    config: TrainingConfig | None = None,
    keep_pairs: bool = True,
    train_kwargs: dict[str, Any] | None = None,
) -> LinkResult:
    """Link every record of `tokens` (train a model first if none is given); see link_people.

    `previous` (source, record_id, person_id) are the ids of the last refresh:
    they are carried over (assign_stable_ids) and the crosswalk says what merged
    and split.
    """
    timings: dict[str, float] = {}
    t0 = time.perf_counter()
    if model is not None and spec is not None and spec != model.spec:
        raise ValueError("give the token column spec either in the model or as spec=, not both differently")
    spec = model.spec if model is not None else (spec or TokenColumns())
    with Session() as s:
        if model is None:
            t = time.perf_counter()
            model = train_model(tokens, spec=spec, config=config, session=s, **(train_kwargs or {}))
            timings["train"] = time.perf_counter() - t
        t = time.perf_counter()
        df = model.prepare(tokens)
        sdf = s.register(df)
        records_table = sdf.physical_name
        timings["load"] = time.perf_counter() - t
        t = time.perf_counter()
        linker = s.linker(sdf, model.settings, tf_source=df)
        floor = min(model.review_band[0], model.threshold)
        predictions = linker.inference.predict(threshold_match_probability=floor, warning_mode="never")
        timings["predict"] = time.perf_counter() - t
        t = time.perf_counter()
        edges = _edges(s, predictions.physical_name, records_table, model)
        clusters, repaired = cluster(s, records_table, edges, cannot_link=model.separate_group_members,
                                     duplicate_like=duplicate_like_sql(model.sql_context, model.fields))
        best = _best_probability(s, edges)
        timings["cluster"] = time.perf_counter() - t
        pairs = s.query(f"SELECT * FROM {predictions.physical_name}") if keep_pairs else pl.DataFrame()
        n_edges = s.query(f"SELECT count(*) AS n FROM {edges}").item()

    t = time.perf_counter()
    recs = df.select("unique_id", "source", "record_id", "group_ref")
    clustered = recs.join(clusters, on="unique_id", how="left").with_columns(
        pl.coalesce(pl.col("cluster_id").cast(pl.String), pl.col("unique_id").cast(pl.String)).alias("cluster_id"))
    ids, crosswalk = assign_stable_ids(previous, clustered)
    links = (
        clustered.join(ids, on=["source", "record_id"], how="left")
        .join(best, on="unique_id", how="left")
        .select(*LINK_SCHEMA, "unique_id")
    )
    timings["ids"] = time.perf_counter() - t
    timings["total"] = time.perf_counter() - t0
    model.metadata["last_link"] = {"records": df.height, "edges": n_edges, "components_repaired": repaired,
                                  "persons": links["person_id"].n_unique(), "timings": timings}
    return LinkResult(links=links, pairs=pairs, model=model, crosswalk=crosswalk, records=recs, timings=timings)


def link_people(tokens: pl.DataFrame, model: LinkageModel | None = None, *, spec: TokenColumns | None = None,
                **kwargs: Any) -> pl.DataFrame:
    """Pseudonymised canonical person records in; one row per record out: source, record_id, person_id.

    Works on any tokenised person records: name the columns with `spec`
    (TokenColumns; defaults are the privacy package's). Without a `model` one
    is trained on `tokens` (unsupervised: u by random sampling, m by EM).
    """
    result = link(tokens, model, spec=spec, keep_pairs=False, **kwargs)
    return result.links.select("source", "record_id", "person_id")
