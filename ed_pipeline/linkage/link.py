"""Linking pseudonymised person records into persons: scoring pairs, clustering, stable ids, incremental months.

`link_people(tokens)` is the public entry point (DESIGN.md): one row per input
record, `source, record_id, person_id`. `link(...)` returns the same with the
scored pairs and the model, for the warehouse tables and clerical review.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import polars as pl

from ed_pipeline.linkage import comparisons as cmp
from ed_pipeline.linkage.clustering import cannot_link_sql, cluster, duplicate_like_sql, greedy_constrained
from ed_pipeline.linkage.engine import TF_COMPANIONS, Session, hash_tokens, tf_columns
from ed_pipeline.linkage.ids import CROSSWALK_SCHEMA, TakenIds, assign_stable_ids, id_candidate, new_person_id
from ed_pipeline.linkage.model import LinkageModel, TrainingConfig, train_model
from ed_pipeline.linkage.spec import TokenColumns, to_internal

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


DECISION_SCHEMA = {"source_l": pl.String, "record_id_l": pl.String, "source_r": pl.String,
                   "record_id_r": pl.String, "decision": pl.String}


def _load_decisions(s: Session, decisions: pl.DataFrame | None, records_table: str) -> str | None:
    """Reviewers' decisions (source_l, record_id_l, source_r, record_id_r, decision: match / non_match) as a
    table of unique-id pairs (u, v, is_match) over the records at hand; None when there are none."""
    if decisions is None or decisions.height == 0:
        return None
    d = decisions.select(list(DECISION_SCHEMA)).cast(DECISION_SCHEMA).with_columns(
        is_match=pl.col("decision").str.to_lowercase().is_in(["match", "same", "yes", "y", "true"]))
    s.con.register("ed_decisions_in", d.to_arrow())
    s.con.execute(f"""
        CREATE OR REPLACE TABLE ed_decisions AS
        SELECT DISTINCT least(l.unique_id, r.unique_id) AS u, greatest(l.unique_id, r.unique_id) AS v, d.is_match
        FROM ed_decisions_in d
        JOIN {records_table} l ON l.source = d.source_l AND l.record_id = d.record_id_l
        JOIN {records_table} r ON r.source = d.source_r AND r.record_id = d.record_id_r
        WHERE l.unique_id <> r.unique_id
    """)
    s.con.unregister("ed_decisions_in")
    return "ed_decisions"


def edges_sql(predictions_table: str, records_table: str, model: LinkageModel,
              decisions_table: str | None = None) -> str:
    """The clustering edges (pairs at the threshold) as one query, in DuckDB's dialect (transpiled for Spark).

    With `separate_group_members`, a pair of records from one row-group (a claim's claimant and partner) is
    never an edge unless it looks like a re-sent duplicate (see clustering.duplicate_like_sql). Rows sent again
    under one key (status updates, corrections) are always one person. Reviewers' decisions override the model:
    a match is an edge, a non-match never is."""
    constraint = "TRUE"
    if model.separate_group_members:
        dup = duplicate_like_sql(model.sql_context, model.fields)
        constraint = (f"NOT (l.source = r.source AND l.group_ref = r.group_ref AND l.record_id <> r.record_id "
                      f"AND NOT coalesce({dup}, FALSE))")
    veto, forced = "", ""
    if decisions_table:
        veto = (f"AND NOT EXISTS (SELECT 1 FROM {decisions_table} d WHERE NOT d.is_match "
                f"AND d.u = least(p.unique_id_l, p.unique_id_r) AND d.v = greatest(p.unique_id_l, p.unique_id_r))")
        forced = f"UNION ALL SELECT u, v, 1.0 FROM {decisions_table} WHERE is_match"
    return f"""
        SELECT p.unique_id_l, p.unique_id_r, p.match_probability
        FROM {predictions_table} p
        JOIN {records_table} l ON l.unique_id = p.unique_id_l
        JOIN {records_table} r ON r.unique_id = p.unique_id_r
        WHERE p.match_probability >= {model.threshold} AND coalesce({constraint}, TRUE) {veto}
        UNION ALL
        SELECT first AS unique_id_l, unique_id AS unique_id_r, 1.0 AS match_probability
        FROM (SELECT unique_id, min(unique_id) OVER (PARTITION BY source, record_id) AS first FROM {records_table}) t
        WHERE unique_id <> first
        {forced}
    """


def _edges(s: Session, predictions_table: str, records_table: str, model: LinkageModel,
           decisions_table: str | None = None) -> str:
    """Materialise `edges_sql` as a table; returns its name."""
    query = edges_sql(predictions_table, records_table, model, decisions_table)
    s.con.execute(f"CREATE OR REPLACE TABLE ed_edges AS {query}")
    return "ed_edges"


def best_probability_sql(edges_table: str, clusters_table: str) -> str:
    """unique_id, match_probability: the best edge inside the record's cluster (the cannot-link repair cuts some
    edges: one to a record of another person holds nothing in this one). DuckDB's dialect (transpiled for
    Spark); `clusters_table` holds unique_id, cluster_id."""
    return f"""
        SELECT e.unique_id, max(e.match_probability) AS match_probability FROM (
            SELECT unique_id_l AS unique_id, unique_id_r AS other, match_probability FROM {edges_table}
            UNION ALL SELECT unique_id_r, unique_id_l, match_probability FROM {edges_table}) e
        JOIN {clusters_table} a ON a.unique_id = e.unique_id JOIN {clusters_table} b ON b.unique_id = e.other
        WHERE a.cluster_id = b.cluster_id
        GROUP BY e.unique_id
    """


def _best_probability(s: Session, edges_table: str, clusters: pl.DataFrame) -> pl.DataFrame:
    s.con.register("ed_best_cc", clusters.select("unique_id", "cluster_id").to_arrow())
    try:
        return s.query(best_probability_sql(edges_table, "ed_best_cc"))
    finally:
        s.con.unregister("ed_best_cc")


def pairs_sql(predictions_table: str, records_table: str, prediction_columns: list[str]) -> str:
    """Scored pairs with the records' keys, levels (gamma_*) and partial weights (mw_*), never token values:
    of the predictions' `prediction_columns`, those. DuckDB's dialect (transpiled for Spark)."""
    cols = [c for c in prediction_columns
            if c.startswith(("gamma_", "mw_")) or c in ("match_weight", "match_probability", "match_key")]
    select = ", ".join(f'p."{c}"' for c in cols)
    return f"""
        SELECT p.unique_id_l, p.unique_id_r, l.source AS source_l, l.record_id AS record_id_l,
               r.source AS source_r, r.record_id AS record_id_r, {select}
        FROM {predictions_table} p
        JOIN {records_table} l ON l.unique_id = p.unique_id_l
        JOIN {records_table} r ON r.unique_id = p.unique_id_r
    """


def _pairs_frame(s: Session, predictions_table: str, records_table: str) -> pl.DataFrame:
    columns = s.query(f"SELECT * FROM {predictions_table} LIMIT 0").columns
    return s.query(pairs_sql(predictions_table, records_table, columns))


def predict_settings(model: LinkageModel, keep_pairs: bool) -> dict[str, Any]:
    settings = dict(model.settings)
    # gamma_* (Splink only outputs them with the matching columns) and mw_* for clerical review
    settings["retain_intermediate_calculation_columns"] = keep_pairs
    settings["retain_matching_columns"] = keep_pairs
    return settings


def link(
    tokens: pl.DataFrame,
    model: LinkageModel | None = None,
    *,
    spec: TokenColumns | None = None,
    previous: pl.DataFrame | None = None,
    retired: set[str] | None = None,
    decisions: pl.DataFrame | None = None,
    config: TrainingConfig | None = None,
    keep_pairs: bool = True,
    train_kwargs: dict[str, Any] | None = None,
) -> LinkResult:
    """Link every record of `tokens` (train a model first if none is given); see link_people.

    `previous` (source, record_id, person_id) are the ids of the last refresh:
    they are carried over (assign_stable_ids) and the crosswalk says what merged
    and split; `retired` ids (every one the crosswalk ever named) are never issued
    again. `decisions` are clerical reviewers' verdicts on pairs
    (review.DECISION columns), applied as must-link / cannot-link constraints.
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
        # unique ids in record-key order, not the frame's: they break ties (pairs of one probability in the
        # cannot-link repair, cluster numbers), so the same records link the same whatever order they come in
        df = model.prepare(_in_key_order(tokens, spec))
        sdf = s.register(df)
        records_table = sdf.physical_name
        timings["load"] = time.perf_counter() - t
        t = time.perf_counter()
        linker = s.linker(sdf, predict_settings(model, keep_pairs), tf_source=df)
        floor = min(model.review_band[0], model.threshold)
        predictions = linker.inference.predict(threshold_match_probability=floor, warning_mode="never")
        timings["predict"] = time.perf_counter() - t
        t = time.perf_counter()
        decisions_table = _load_decisions(s, decisions, records_table)
        edges = _edges(s, predictions.physical_name, records_table, model, decisions_table)
        clusters, repaired = cluster(s, records_table, edges, cannot_link=model.separate_group_members,
                                     duplicate_like=duplicate_like_sql(model.sql_context, model.fields),
                                     decisions_table=decisions_table)
        best = _best_probability(s, edges, clusters)
        timings["cluster"] = time.perf_counter() - t
        pairs = _pairs_frame(s, predictions.physical_name, records_table) if keep_pairs else pl.DataFrame()
        n_edges = s.query(f"SELECT count(*) AS n FROM {edges}").item()
    return link_result(df, clusters, best, pairs, model, previous=previous, retired=retired, timings=timings,
                       started=t0, edges=n_edges, repaired=repaired)


def link_result(df: pl.DataFrame, clusters: pl.DataFrame, best: pl.DataFrame, pairs: pl.DataFrame,
                model: LinkageModel, *, previous: pl.DataFrame | None, retired: set[str] | None,
                timings: dict[str, float], started: float, edges: int, repaired: int) -> LinkResult:
    """A whole link's result from what the engine (DuckDB or Spark) computed: the records as linked (`df`), their
    clusters (unique_id, cluster_id; a record in none is a person of its own), each record's best edge in its
    cluster and the scored pairs; ids carried over from `previous`, never one of `retired`."""
    t = time.perf_counter()
    recs = df.select("unique_id", "source", "record_id", "group_ref")
    clustered = recs.join(clusters, on="unique_id", how="left").with_columns(
        pl.coalesce(pl.col("cluster_id").cast(pl.String), pl.col("unique_id").cast(pl.String)).alias("cluster_id"))
    ids, crosswalk = assign_stable_ids(previous, clustered, retired=retired)
    links = (
        clustered.join(ids, on=["source", "record_id"], how="left")
        .join(best, on="unique_id", how="left")
        .select(*LINK_SCHEMA, "unique_id")
    )
    timings["ids"] = time.perf_counter() - t
    timings["total"] = time.perf_counter() - started
    model.metadata["last_link"] = {"records": df.height, "edges": edges, "components_repaired": repaired,
                                  "persons": links["person_id"].n_unique(), "timings": timings}
    return LinkResult(links=links, pairs=pairs, model=model, crosswalk=crosswalk, records=recs, timings=timings)


def _in_key_order(tokens: pl.DataFrame, spec: TokenColumns) -> pl.DataFrame:
    """The frame sorted by (source, record_id); rows of one key keep their order."""
    return tokens.sort(spec.source, pl.col(spec.record_id).cast(pl.String), maintain_order=True)


def candidate_keys(model: LinkageModel) -> list[tuple[tuple[str, str], ...]]:
    """Per key a new record pairs on (the model's prediction blocking rules), the (existing record's column, new
    record's column) pairs that must be equal, by the spec's column names. And, where members of one group are
    kept apart, the record's group (source, group_ref): an existing member of a new record's group must be there
    for the cannot-link (`cannot_link_sql`) even when it shares no blocking key, or a month could join the new
    record to that member's person, which linking every record at once keeps apart."""
    mapping, spec = model.spec.mapping(), model.spec
    keys = [tuple((mapping[f], mapping[f]) for f in r.fields)
            for r in cmp.blocking_rules(cmp.PREDICTION_BLOCKING, model.fields)]
    if model.separate_group_members and spec.group_ref:
        keys.append(((spec.source, spec.source), (spec.group_ref, spec.group_ref)))
    return keys


def _candidates(existing_tokens: pl.DataFrame, new_tokens: pl.DataFrame, model: LinkageModel) -> pl.DataFrame:
    """The existing records that share some blocking key with a new record (all predict_between could pair), or its
    group (`candidate_keys`)."""
    keep = pl.lit(False)
    for pairs in candidate_keys(model):
        names = [f"_k{i}" for i in range(len(pairs))]
        keys = new_tokens.select(pl.col(new).alias(n) for (_, new), n in zip(pairs, names, strict=True))
        keys = keys.drop_nulls().unique()
        mine = [pl.col(old).alias(n) for (old, _), n in zip(pairs, names, strict=True)]
        keep = keep | (mine[0].is_in(keys[names[0]].implode()) if len(pairs) == 1
                       else pl.struct(mine).is_in(keys.select(pl.struct(names)).to_series().implode()))
    return existing_tokens.filter(keep)


def link_incremental(
    existing: pl.DataFrame,
    existing_tokens: pl.DataFrame,
    new_tokens: pl.DataFrame,
    model: LinkageModel,
    *,
    decisions: pl.DataFrame | None = None,
    keep_pairs: bool = True,
    find_candidates: Callable[[pl.DataFrame], pl.DataFrame] | None = None,
) -> LinkResult:
    """Link a new month against the persons already linked, without re-training and without touching them.

    `existing` (source, record_id, person_id) are the current links,
    `existing_tokens` the token frame they were made from, `new_tokens` the
    new records. `find_candidates(fresh)`, when given, returns the existing
    records (every column) that share a blocking key with the `fresh` ones
    (those not linked yet), found elsewhere (`tokens.read_candidates`: in the
    warehouse); `existing_tokens` then needs only the term-frequency columns
    of `tokens.monthly_link_columns`. New records are scored against the
    existing records that share a blocking key with them (predict_between)
    and against each other
    (predict_within), with the model's parameters and term frequencies counted
    over both. Each group of new records joins the existing person it links
    to best, or becomes a new person; existing persons are never merged or
    split here (so every existing id persists), which a full `link` with
    `previous=` does when asked (after re-training, say). A record already
    linked (same source and record_id, re-sent) keeps its person.

    Cost: one pass over existing tokens to find candidates (a hash semi-join),
    term frequencies over every record, then work in proportion to the new
    records and their candidates.
    """
    t0 = time.perf_counter()
    timings: dict[str, float] = {}
    spec = model.spec
    key = ["source", "record_id"]
    ex_links = existing.select(*key, pl.col("person_id").cast(pl.String)).unique(subset=key, keep="first")
    new_keys = new_tokens.select(pl.col(spec.source).alias("source"), pl.col(spec.record_id).cast(pl.String)
                                 .alias("record_id"))
    known = new_keys.with_row_index("_i").join(ex_links, on=key, how="inner")
    fresh_mask = ~pl.Series(range(new_tokens.height)).is_in(known["_i"].implode())
    fresh = _in_key_order(new_tokens.filter(fresh_mask), spec)  # new records' ids break ties: see link
    candidates = find_candidates(fresh) if find_candidates else _candidates(existing_tokens, fresh, model)
    timings["candidates"] = time.perf_counter() - t0

    t = time.perf_counter()
    with Session() as s:
        ex_df = model.prepare(candidates)
        new_df = model.prepare(fresh, id_offset=ex_df.height)
        ex_sdf, new_sdf = s.register(ex_df, "existing"), s.register(new_df, "new")
        all_table = "ed_all_records"
        s.con.execute(f"CREATE TABLE {all_table} AS SELECT * FROM {ex_sdf.physical_name} UNION ALL BY NAME "
                      f"SELECT * FROM {new_sdf.physical_name}")
        # term frequencies over every existing record (not only the candidates) and the new ones
        tf_source = pl.concat([
            to_internal(existing_tokens, spec, model.fields).select(_tf_input_columns(model)),
            to_internal(fresh, spec, model.fields).select(_tf_input_columns(model)),
        ])
        if model.hashed:
            tf_source = hash_tokens(tf_source)
        settings = predict_settings(model, keep_pairs)
        linker = s.linker(new_sdf, settings, tf_source=tf_source)
        floor = min(model.review_band[0], model.threshold)
        between = linker.inference.predict_between(ex_sdf, new_sdf, threshold_match_probability=floor,
                                                   warning_mode="never")
        within = linker.inference.predict_within(new_sdf, threshold_match_probability=floor, warning_mode="never")
        s.con.execute(f"CREATE TABLE ed_predictions AS SELECT * FROM {between.physical_name} UNION ALL BY NAME "
                      f"SELECT * FROM {within.physical_name}")
        timings["predict"] = time.perf_counter() - t
        t = time.perf_counter()
        decisions_table = _load_decisions(s, decisions, all_table)
        edges = s.query(f"SELECT * FROM {_edges(s, 'ed_predictions', all_table, model, decisions_table)}")
        dup = duplicate_like_sql(model.sql_context, model.fields)
        cannot = s.query(cannot_link_sql(all_table, dup if model.separate_group_members else "TRUE",
                                         decisions_table))
        pairs = _pairs_frame(s, "ed_predictions", all_table) if keep_pairs else pl.DataFrame()
    n_ex = ex_df.height
    ex_person = ex_df.select("unique_id", "source", "record_id").join(ex_links, on=key, how="left")
    assigned = _attach(new_df.select("unique_id", "source", "record_id"), ex_person, edges, cannot, n_ex,
                       existing_ids=ex_links["person_id"])
    timings["cluster"] = time.perf_counter() - t

    # a new record's best edge inside the person it joined (not one to a person it could not join)
    person = pl.concat([ex_person.select("unique_id", "person_id"), assigned.select("unique_id", "person_id")])
    best = (pl.concat([
        edges.select(pl.col("unique_id_l").alias("unique_id"), pl.col("unique_id_r").alias("other"),
                     "match_probability"),
        edges.select(pl.col("unique_id_r").alias("unique_id"), pl.col("unique_id_l").alias("other"),
                     "match_probability")])
            .filter(pl.col("unique_id") >= n_ex)
            .join(person, on="unique_id").join(person.rename({"unique_id": "other", "person_id": "_p"}), on="other")
            .filter(pl.col("person_id") == pl.col("_p"))
            .group_by("unique_id").agg(pl.col("match_probability").max()))
    new_links = assigned.join(best, on="unique_id", how="left")
    resent = known.select(*key, "person_id", pl.lit(None, dtype=pl.Float64).alias("match_probability"))
    # each existing record's first row, its probability with it (a join of the history with itself took 0.3 s)
    probability = pl.col("match_probability") if "match_probability" in existing.columns else pl.lit(
        None, dtype=pl.Float64).alias("match_probability")
    old = existing.select(*key, pl.col("person_id").cast(pl.String), probability).unique(subset=key, keep="first")
    links = pl.concat([
        old.select(list(LINK_SCHEMA)).cast(LINK_SCHEMA),
        resent.select(list(LINK_SCHEMA)).cast(LINK_SCHEMA),
        new_links.select(list(LINK_SCHEMA)).cast(LINK_SCHEMA),
    ])
    timings["total"] = time.perf_counter() - t0
    model.metadata["last_incremental"] = {"new_records": new_tokens.height, "fresh_records": fresh.height,
                                         "candidates": candidates.height, "timings": timings}
    crosswalk = pl.DataFrame(schema=CROSSWALK_SCHEMA)
    return LinkResult(links=links, pairs=pairs, model=model, crosswalk=crosswalk,
                      records=new_df.select("unique_id", "source", "record_id", "group_ref"), timings=timings)


def _tf_input_columns(model: LinkageModel) -> list[str]:
    cols: list[str] = []
    for c in tf_columns(model.settings):
        cols += [c, *TF_COMPANIONS.get(c, ())]
    return list(dict.fromkeys(cols))


def _attach(new: pl.DataFrame, ex_person: pl.DataFrame, edges: pl.DataFrame, cannot: pl.DataFrame, n_ex: int,
            existing_ids: pl.Series) -> pl.DataFrame:
    """Person ids for new records: greedy constrained clustering over new records and existing persons (one
    node each; two existing persons are never joined); a new person's id is not one of `existing_ids`."""
    persons = ex_person["person_id"].unique().sort().to_list()
    node_of_person = {p: -(i + 1) for i, p in enumerate(persons)}
    ex_node = dict(zip(ex_person["unique_id"].to_list(),
                       [node_of_person[p] for p in ex_person["person_id"].to_list()], strict=True))

    def node(u: int) -> int:
        return u if u >= n_ex else ex_node[u]

    e = edges.select("unique_id_l", "unique_id_r", "match_probability")
    mapped = pl.DataFrame({
        "unique_id_l": [node(u) for u in e["unique_id_l"].to_list()],
        "unique_id_r": [node(u) for u in e["unique_id_r"].to_list()],
        "match_probability": e["match_probability"],
    }, schema={"unique_id_l": pl.Int64, "unique_id_r": pl.Int64, "match_probability": pl.Float64})
    mapped = mapped.filter(pl.col("unique_id_l") != pl.col("unique_id_r"))
    cannot_pairs = {(node(u), node(v)) for u, v in zip(cannot["u"].to_list(), cannot["v"].to_list(), strict=True)}
    cannot_pairs = {p for p in cannot_pairs if p[0] != p[1] and (p[0] >= 0 or p[1] >= 0)}
    touched = set(mapped["unique_id_l"].to_list()) | set(mapped["unique_id_r"].to_list())
    nodes = sorted(set(new["unique_id"].to_list()) | {n for n in touched if n < 0})
    exclusive = {n for n in nodes if n < 0}
    root = greedy_constrained(nodes, mapped, cannot_pairs, exclusive)
    # each cluster: the existing person in it, else a new id seeded by its smallest member key
    person_of_node = {v: k for k, v in node_of_person.items()}
    members: dict[int, list[int]] = {}
    for n in nodes:
        members.setdefault(root[n], []).append(n)
    keys = dict(zip(new["unique_id"].to_list(),
                    (new["source"] + "\x1f" + new["record_id"]).to_list(), strict=True))
    pid_of_root: dict[int, str] = {}
    clusters = sorted(members.items(), key=lambda kv: min(keys.get(m, "") for m in kv[1] if m >= 0) if any(
        m >= 0 for m in kv[1]) else "")
    seeds = {r: min(keys[m] for m in ms) for r, ms in clusters if all(m >= 0 for m in ms)}
    taken = TakenIds(existing_ids, [id_candidate(seed, "P") for seed in seeds.values()])
    for r, ms in clusters:
        ex = [m for m in ms if m < 0]
        if ex:
            pid_of_root[r] = person_of_node[ex[0]]
        else:
            pid_of_root[r] = new_person_id(seeds[r], "P", taken)
    return new.with_columns(pl.Series("person_id", [pid_of_root[root[u]] for u in new["unique_id"].to_list()],
                                      dtype=pl.String))


def link_people(tokens: pl.DataFrame, model: LinkageModel | None = None, *, spec: TokenColumns | None = None,
                **kwargs: Any) -> pl.DataFrame:
    """Pseudonymised canonical person records in; one row per record out: source, record_id, person_id.

    Works on any tokenised person records: name the columns with `spec`
    (TokenColumns; defaults are the privacy package's). Without a `model` one
    is trained on `tokens` (unsupervised: u by random sampling, m by EM).
    """
    result = link(tokens, model, spec=spec, keep_pairs=False, **kwargs)
    return result.links.select("source", "record_id", "person_id")
