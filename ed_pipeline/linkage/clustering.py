"""Clustering scored pairs into persons: connected components, then cannot-link repair.

Connected components (Splink's solver, in DuckDB) over the pairs at or above
the model's threshold is fast and what Splink recommends, but it is
transitive: twins who share a surname, a date of birth and an address can be
chained into one person through a single weak pair. Household sources name
several people in one row-group (a claim, an application, an incident), and
two people in one group are different people. So every component that holds
two records of one group which are not near-identical (a re-sent duplicate has
the same name and date of birth) is re-clustered greedily: its pairs are taken
from the most to the least likely, and two parts are joined only if that joins
no such cannot-link pair. Components without a conflict (nearly all) are left
exactly as connected components made them.
"""

from __future__ import annotations

import polars as pl
from splink.clustering import cluster_pairwise_predictions_at_threshold

from ed_pipeline.linkage.comparisons import SqlContext
from ed_pipeline.linkage.engine import Session


def duplicate_like_sql(ctx: SqlContext, fields: frozenset[str]) -> str:
    """Two records of one group (aliases l, r) are the same person only if they look like a re-sent duplicate:
    the same date of birth, and the same names or names a typo apart (Bloom Dice of both names >= 0.8).
    Twins (same date of birth and family name, different given names) do not pass; nor, alas, does a duplicate
    that shows a nickname, which the tokens cannot tell from a twin."""
    dob = "l.tok_dob IS NOT DISTINCT FROM r.tok_dob"
    names = "l.tok_name_pair IS NOT DISTINCT FROM r.tok_name_pair"
    if ctx.has("bf_name", fields):
        sim = ctx.similarity_sql("bf_name", 'l."{}"', 'r."{}"')
        names = f"({names} OR coalesce({sim} >= 0.8, FALSE))"
    return f"({dob} AND {names})"


def connected_components(s: Session, nodes_table: str, edges_table: str) -> pl.DataFrame:
    """unique_id, cluster_id (Int64: the smallest unique_id of the component)."""
    cc = cluster_pairwise_predictions_at_threshold(
        nodes_table, edges_table, s.db_api, node_id_column_name="unique_id",
        edge_id_column_name_left="unique_id_l", edge_id_column_name_right="unique_id_r",
    )
    out = s.query(f"""
        SELECT unique_id, min(unique_id) OVER (PARTITION BY cluster_id) AS cluster_id FROM {cc.physical_name}
    """)
    cc.drop_table_from_database_and_remove_from_cache()
    return out


def _find(parent: dict[int, int], x: int) -> int:
    root = x
    while parent[root] != root:
        root = parent[root]
    while parent[x] != root:
        parent[x], x = root, parent[x]
    return root


def greedy_constrained(nodes: list[int], edges: pl.DataFrame, cannot: set[tuple[int, int]],
                       exclusive: set[int] | None = None) -> dict[int, int]:
    """Greedy agglomeration: edges (unique_id_l, unique_id_r, match_probability) best first; a merge that would
    put a cannot-link pair (u, v) in one cluster, or two `exclusive` nodes (existing persons, in incremental
    linking), is skipped. Returns node -> smallest member node."""
    parent = {n: n for n in nodes}
    members = {n: [n] for n in nodes}
    exclusive = exclusive or set()
    locked = {n: n in exclusive for n in nodes}
    partners: dict[int, set[int]] = {}
    for u, v in cannot:
        partners.setdefault(u, set()).add(v)
        partners.setdefault(v, set()).add(u)
    ordered = edges.sort(["match_probability", "unique_id_l", "unique_id_r"], descending=[True, False, False])
    for a, b in zip(ordered["unique_id_l"].to_list(), ordered["unique_id_r"].to_list(), strict=True):
        ra, rb = _find(parent, a), _find(parent, b)
        if ra == rb:
            continue
        if locked[ra] and locked[rb]:
            continue
        small, big = (ra, rb) if len(members[ra]) <= len(members[rb]) else (rb, ra)
        big_set = None
        conflict = False
        for x in members[small]:
            px = partners.get(x)
            if px:
                if big_set is None:
                    big_set = set(members[big])
                if px & big_set:
                    conflict = True
                    break
        if conflict:
            continue
        parent[small] = big
        members[big].extend(members.pop(small))
        locked[big] = locked[big] or locked.pop(small)
    return {n: min(members[_find(parent, n)]) for n in nodes}


def cannot_link_sql(records_table: str, duplicate_like: str, decisions_table: str | None = None) -> str:
    """Pairs (u, v) of records that must not be one person: members of one group that are not duplicates, and
    pairs reviewers said are not a match."""
    sql = f"""
        SELECT l.unique_id AS u, r.unique_id AS v
        FROM {records_table} l
        JOIN {records_table} r ON l.source = r.source AND l.group_ref = r.group_ref AND l.unique_id < r.unique_id
            AND l.record_id <> r.record_id
        WHERE l.group_ref IS NOT NULL AND NOT coalesce({duplicate_like}, FALSE)"""
    if decisions_table:
        sql += f"""
        UNION ALL
        SELECT u, v FROM {decisions_table} WHERE NOT is_match"""
    return sql


def cluster(s: Session, records_table: str, edges_table: str, *, cannot_link: bool = True,
            duplicate_like: str = "FALSE", decisions_table: str | None = None) -> tuple[pl.DataFrame, int]:
    """unique_id, cluster_id for every record; and how many components needed cannot-link repair."""
    clusters = connected_components(s, records_table, edges_table)
    if not cannot_link and not decisions_table:
        return clusters, 0
    s.con.register("ed_cc", clusters.to_arrow())
    try:
        pairs = cannot_link_sql(records_table, duplicate_like if cannot_link else "TRUE", decisions_table)
        conflicts = s.query(f"""
            SELECT c.cluster_id, p.u, p.v FROM ({pairs}) p
            JOIN ed_cc c ON c.unique_id = p.u
            JOIN ed_cc c2 ON c2.unique_id = p.v AND c2.cluster_id = c.cluster_id
        """)
        if conflicts.height == 0:
            return clusters, 0
        bad = conflicts["cluster_id"].unique()
        s.con.register("ed_bad", pl.DataFrame({"cluster_id": bad}).to_arrow())
        sub_edges = s.query(f"""
            SELECT e.unique_id_l, e.unique_id_r, e.match_probability, c.cluster_id
            FROM {edges_table} e JOIN ed_cc c ON c.unique_id = e.unique_id_l
            WHERE c.cluster_id IN (SELECT cluster_id FROM ed_bad)
        """)
        s.con.unregister("ed_bad")
    finally:
        s.con.unregister("ed_cc")
    return repair_clusters(clusters, conflicts, sub_edges)


def repair_clusters(clusters: pl.DataFrame, conflicts: pl.DataFrame,
                    sub_edges: pl.DataFrame) -> tuple[pl.DataFrame, int]:
    """Re-cluster the components holding a cannot-link pair (`conflicts`: cluster_id, u, v) from their edges,
    greedily, keeping the pairs apart; returns the clusters and how many components were repaired."""
    bad = conflicts["cluster_id"].unique()
    nodes = clusters.filter(pl.col("cluster_id").is_in(bad.implode()))
    cannot = set(zip(conflicts["u"].to_list(), conflicts["v"].to_list(), strict=True))
    mapping = greedy_constrained(nodes["unique_id"].to_list(), sub_edges, cannot)
    fixed = pl.DataFrame({"unique_id": list(mapping), "_new": list(mapping.values())},
                         schema={"unique_id": pl.Int64, "_new": pl.Int64})
    clusters = clusters.join(fixed, on="unique_id", how="left").select(
        "unique_id", pl.coalesce("_new", "cluster_id").alias("cluster_id"))
    return clusters, len(bad)
