"""Stable person and household ids across refreshes, and the crosswalk of merges and splits.

A refresh re-clusters records; cluster numbers mean nothing from one run to
the next. `assign_stable_ids` carries the previous ids over:

1. Every previous id has a *home*: the new cluster that holds most of its
   records (ties: the cluster with the smaller member key).
2. Every new cluster inherits, among the previous ids whose home it is, the one
   with most records in it (ties: the smaller id). So each previous id lives on
   in at most one cluster, and a cluster that only gained records keeps its id.
3. A cluster that inherits nothing gets a new id, derived from its smallest
   member key (deterministic: linking the same records twice gives the same
   ids), salted if that id was ever used before.

The crosswalk says what happened to the ids that did not simply carry over:
`merge` (old id -> the id of the cluster it was absorbed into) and `split`
(old id -> the id of a cluster that took some of its records away). `records`
counts the old id's records involved.
"""

from __future__ import annotations

import hashlib

import polars as pl

CROSSWALK_SCHEMA = {"old_id": pl.String, "new_id": pl.String, "change": pl.String, "records": pl.Int64}


def new_person_id(seed: str, prefix: str, taken: set[str] | TakenIds) -> str:
    """A new id from a seed (a cluster's smallest member key), salted until it is not in `taken`; added to it."""
    salt = 0
    while True:
        candidate = id_candidate(seed, prefix, salt)
        if candidate not in taken:
            taken.add(candidate)
            return candidate
        salt += 1


def id_candidate(seed: str, prefix: str, salt: int = 0) -> str:
    """The id `new_person_id` tries for a seed with a salt (0: the first it tries)."""
    text = seed if salt == 0 else f"{seed}#{salt}"
    return f"{prefix}{hashlib.sha256(text.encode()).hexdigest()[:12]}"


class TakenIds:
    """The ids in use, as `new_person_id` asks of them: those of `existing`, and those added. The `expected`
    candidates are looked up among `existing` in one pass, any other (a salted retry) when asked: a month's
    link made a Python set of every person id of the history (0.14 CPU s at 500k residents) for a few
    thousand new ones."""

    def __init__(self, existing: pl.Series, expected: list[str]):
        self._existing = existing
        self._checked = set(expected)
        self._taken = set(existing.filter(existing.is_in(pl.Series(expected, dtype=pl.String).implode()))
                          .to_list())

    def __contains__(self, candidate: str) -> bool:
        if candidate not in self._checked:
            self._checked.add(candidate)
            if (self._existing == candidate).any():
                self._taken.add(candidate)
        return candidate in self._taken

    def add(self, candidate: str) -> None:
        self._checked.add(candidate)
        self._taken.add(candidate)


def stable_cluster_ids(
    previous: pl.DataFrame | None,
    current: pl.DataFrame,
    *,
    prefix: str,
    retired: set[str] | None = None,
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """The id of each current cluster, carried over from `previous` where it can be (see the module docstring).

    previous: member (String), old (String) - one row per member and previous id;
    current: member (String), cluster (String) - one row per member and current cluster.
    A member may sit in several clusters (a person in two households over time).
    Returns (cluster, id) and the crosswalk (old_id, new_id, change, records).
    """
    cl = current.select(pl.col("member").cast(pl.String), pl.col("cluster").cast(pl.String).alias("_c")).unique()
    seeds = cl.group_by("_c").agg(pl.col("member").min().alias("_seed"))
    in_use = [pl.Series(sorted(retired or ()), dtype=pl.String)]
    if previous is not None and previous.height:
        prev = previous.select(pl.col("member").cast(pl.String), pl.col("old").cast(pl.String).alias("_old")).unique()
        in_use.append(prev["_old"])
        overlap = cl.join(prev, on="member", how="inner").group_by("_c", "_old").len()
        # a tie goes to the cluster with the smaller member key: cluster numbers mean nothing across runs
        home = (
            overlap.join(seeds, on="_c").sort(["_old", "len", "_seed", "_c"], descending=[False, True, False, False])
            .group_by("_old", maintain_order=True).first().drop("_seed")
        )
        inherit = (
            home.sort(["_c", "len", "_old"], descending=[False, True, False])
            .group_by("_c", maintain_order=True).first()
            .select("_c", pl.col("_old").alias("_id"))
        )
    else:
        overlap = pl.DataFrame(schema={"_c": pl.String, "_old": pl.String, "len": pl.UInt32})
        home = overlap
        inherit = pl.DataFrame(schema={"_c": pl.String, "_id": pl.String})

    assigned = seeds.join(inherit, on="_c", how="left").sort("_seed", "_c")
    # New ids only for the clusters that inherit none, in seed order: a loop over every cluster of the history,
    # with a Python set of every id in use, took 0.2-0.3 s a month at 500k residents. Joined back, not written
    # into the column with Series.scatter: polars 2.1's eager group-by n_unique()/unique() miscount long strings
    # written so (test_ids_new_and_inherited_count_as_they_read_when_grouped), and callers group these ids.
    unnamed = assigned.filter(pl.col("_id").is_null())["_c", "_seed"]
    seeds_unnamed = unnamed["_seed"].to_list()
    taken = TakenIds(pl.concat(in_use), [id_candidate(seed, prefix) for seed in seeds_unnamed])
    named = unnamed.select("_c", pl.Series("_new", [new_person_id(seed, prefix, taken) for seed in seeds_unnamed],
                                           dtype=pl.String))
    assigned = assigned.join(named, on="_c", how="left", maintain_order="left").select(
        pl.col("_c").alias("cluster"), pl.coalesce("_id", "_new").alias("id"))

    if overlap.height:
        o = overlap.join(assigned.select(pl.col("cluster").alias("_c"), pl.col("id").alias("_id")), on="_c").join(
            home.select("_old", pl.col("_c").alias("_home")), on="_old"
        )
        merges = o.filter((pl.col("_c") == pl.col("_home")) & (pl.col("_old") != pl.col("_id"))).select(
            old_id="_old", new_id="_id", change=pl.lit("merge"), records=pl.col("len").cast(pl.Int64))
        splits = o.filter(pl.col("_c") != pl.col("_home")).select(
            old_id="_old", new_id="_id", change=pl.lit("split"), records=pl.col("len").cast(pl.Int64))
        crosswalk = pl.concat([merges, splits]).sort("old_id", "change", "new_id")
    else:
        crosswalk = pl.DataFrame(schema=CROSSWALK_SCHEMA)
    return assigned, crosswalk.cast(CROSSWALK_SCHEMA)


def ids_ever_named(crosswalk: pl.DataFrame | None) -> set[str]:
    """Every id a crosswalk table names: one merged away must never be issued again (its history would read as
    the same person or household coming back)."""
    if crosswalk is None:
        return set()
    return set(pl.concat([crosswalk["old_id"], crosswalk["new_id"]]).drop_nulls().cast(pl.String).to_list())


def assign_stable_ids(
    previous: pl.DataFrame | None,
    clusters: pl.DataFrame,
    *,
    key: tuple[str, ...] = ("source", "record_id"),
    id_column: str = "person_id",
    cluster_column: str = "cluster_id",
    prefix: str = "P",
    retired: set[str] | None = None,
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Ids for `clusters` (key..., cluster_id) that keep `previous` (key..., id_column) ids where they can.

    Returns (ids: key..., id_column, one row per clustered record; crosswalk:
    old_id, new_id, change, records). `retired` are ids used in the past that
    must never be reissued (the crosswalk's old ids, for instance).
    """
    key = tuple(key)
    member = pl.concat_str([pl.col(c).cast(pl.String) for c in key], separator="\x1f").alias("member")
    # one row per key (a record sent twice is one record, in one cluster)
    cl = clusters.select(*key, member, pl.col(cluster_column).cast(pl.String).alias("cluster")).unique(
        subset=list(key), keep="first")
    prev = None
    if previous is not None and previous.height:
        prev = previous.select(member, pl.col(id_column).cast(pl.String).alias("old")).unique(
            subset=["member"], keep="first")
    assigned, crosswalk = stable_cluster_ids(prev, cl.select("member", "cluster"), prefix=prefix, retired=retired)
    ids = cl.join(assigned, on="cluster", how="left").select(*key, pl.col("id").alias(id_column))
    return ids, crosswalk


def id_stability(previous: pl.DataFrame, current: pl.DataFrame, *, key=("source", "record_id"),
                 id_column: str = "person_id") -> float:
    """Share of previously identified records that keep their id (records absent now are left out)."""
    j = previous.select(*key, pl.col(id_column).alias("_a")).join(
        current.select(*key, pl.col(id_column).alias("_b")), on=list(key), how="inner")
    if j.height == 0:
        return 1.0
    return j.select((pl.col("_a") == pl.col("_b")).mean()).item()
