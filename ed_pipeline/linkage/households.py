"""Households from linked persons and their UPRN / address tokens over time: who lived where, and with whom, when.

1. Places. A record's place is its UPRN token; a record with only an address
   token takes the UPRN most often seen with that address (or street address)
   elsewhere, else the address itself. Records with no address (school
   returns, youth offending, data-minimised treatment records) say nothing
   about where someone lived.
2. Residence spells. Each person's observations are ordered by event date; a
   spell is a run at one place, from its first observation to the first
   observation somewhere else (exclusive), open-ended (null) for the last.
3. Occupancy episodes. At each place, spells that overlap in time form one
   episode: the people who lived there together. For this, an open-ended
   spell is taken to last `open_spell_days` past its last observation, so
   that a family that moved away unobserved is not merged with the next one.
4. Households over time. An episode continues an earlier one elsewhere (a
   household moving house) when at least half the members of each are the
   same people and the earlier one had ended: nobody stayed behind. One
   earlier episode has at most one continuation (the one taking most of its
   members). Chained episodes are one household.

`household_membership` has one row per person and household spell:
household_id, person_id, valid_from, valid_to (exclusive; null = still there as
far as the records say). Household ids are stable across refreshes
(ids.stable_cluster_ids over each person's stays, known by person and start
date, or by the period they overlap when a late record moved a start), with
their own crosswalk (`records` there counts stays).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

import polars as pl

from ed_pipeline.linkage.ids import CROSSWALK_SCHEMA, stable_cluster_ids
from ed_pipeline.linkage.spec import TokenColumns

MEMBERSHIP_SCHEMA = {"household_id": pl.String, "person_id": pl.String, "valid_from": pl.Date, "valid_to": pl.Date}
OPEN_SPELL_DAYS = 365


@dataclass
class HouseholdResult:
    membership: pl.DataFrame  # household_id, person_id, valid_from, valid_to
    crosswalk: pl.DataFrame  # old_id, new_id, change, records (records = shared persons)
    spells: pl.DataFrame  # person_id, place, valid_from, valid_to, last_seen, episode (one row per spell)


def observations(tokens: pl.DataFrame, links: pl.DataFrame, spec: TokenColumns | None = None) -> pl.DataFrame:
    """person_id, date, place for every record that says where its person lived."""
    spec = spec or TokenColumns()
    cols = {"source": spec.source, "record_id": spec.record_id, "date": spec.event_date, "uprn": spec.uprn,
            "address": spec.address, "street": spec.address_street}
    have = {k: v for k, v in cols.items() if v and v in tokens.columns}
    if "date" not in have or not ({"uprn", "address", "street"} & set(have)):
        return pl.DataFrame(schema={"person_id": pl.String, "date": pl.Date, "place": pl.String})
    t = tokens.select(**{k: pl.col(v) for k, v in have.items()}).with_columns(
        pl.col("record_id").cast(pl.String), pl.col("date").cast(pl.Date))
    for k in ("uprn", "address", "street"):
        if k not in t.columns:
            t = t.with_columns(pl.lit(None, dtype=pl.String).alias(k))
        else:
            t = t.with_columns(pl.col(k).cast(pl.String))
    t = t.join(links.select("source", pl.col("record_id").cast(pl.String), "person_id").unique(
        subset=["source", "record_id"]), on=["source", "record_id"], how="inner")

    def uprn_of(col: str) -> pl.DataFrame:
        """The UPRN seen most often with each value of `col` (the smallest of a tie), by two group-bys instead
        of a sort by the address tokens."""
        counts = t.filter(pl.col("uprn").is_not_null() & pl.col(col).is_not_null()).group_by(col, "uprn").len()
        return (counts.filter(pl.col("len") == pl.col("len").max().over(col))
                .group_by(col).agg(pl.col("uprn").min().alias(f"_u_{col}")))

    t = t.join(uprn_of("address"), on="address", how="left").join(uprn_of("street"), on="street", how="left")
    place = pl.coalesce(
        pl.concat_str([pl.lit("u:"), pl.col("uprn")]),
        pl.concat_str([pl.lit("u:"), pl.col("_u_address")]),
        pl.concat_str([pl.lit("u:"), pl.col("_u_street")]),
        pl.concat_str([pl.lit("a:"), pl.col("street")]),
        pl.concat_str([pl.lit("a:"), pl.col("address")]),
    )
    return t.select("person_id", "date", place.alias("place")).drop_nulls()


def residence_spells(obs: pl.DataFrame) -> pl.DataFrame:
    """person_id, place, valid_from, valid_to (exclusive, null when last), last_seen."""
    # on frames sorted by person, "the previous/next row of the same person" is a plain shift where the person
    # is the same: much cheaper than a window over a string key at a million rows
    o = obs.sort("person_id", "date", "place")
    # a run of observations at one place is a spell: from its first row's date to its last row's, in person and
    # date order as the rows are (no unique, group-by and sort again: 2.0 -> 0.8-1.2 s for 970k observations)
    starts = (~_same_person(1) | (pl.col("place") != pl.col("place").shift(1))).fill_null(True)
    ends = (~_same_person(-1) | (pl.col("place") != pl.col("place").shift(-1))).fill_null(True)
    o = o.with_columns(starts.alias("_start"), ends.alias("_end"))
    spells = o.filter("_start").select("person_id", "place", pl.col("date").alias("valid_from")).with_columns(
        o.filter("_end")["date"].alias("last_seen"))
    spells = _with_next_start(spells)
    # a run that starts on the same day as the next one (two places seen one day) would be empty: drop it
    spells = spells.filter(pl.col("valid_to").is_null() | (pl.col("valid_to") > pl.col("valid_from")))
    spells = _with_next_start(spells)
    return spells.select("person_id", "place", "valid_from", "valid_to", "last_seen")


def _same_person(offset: int) -> pl.Expr:
    """Whether the row `offset` rows away is the same person's (on a frame sorted by person; null past an end)."""
    return pl.col("person_id") == pl.col("person_id").shift(offset)


def _with_next_start(spells: pl.DataFrame) -> pl.DataFrame:
    """valid_to: the start of the person's next spell (the frame sorted by person), null for the last."""
    return spells.with_columns(pl.when(_same_person(-1)).then(pl.col("valid_from").shift(-1)).alias("valid_to"))


def occupancy_episodes(spells: pl.DataFrame, open_spell_days: int = OPEN_SPELL_DAYS) -> pl.DataFrame:
    """The spells with an `episode` id: overlapping spells at one place share it."""
    end = pl.coalesce(pl.col("valid_to"), pl.col("last_seen") + pl.duration(days=open_spell_days))
    s = spells.with_columns(end.alias("_end")).sort("place", "valid_from", "person_id")
    # _reach: the latest end of the place's earlier spells. A running max over the whole frame with each place's
    # days lifted above every place before it gives the running max per place, without a window over the string
    # key (0.4-0.5 s for 550k spells, where the window took 1.1-1.2 s)
    same_place = pl.col("place") == pl.col("place").shift(1)
    days = s["_end"].cast(pl.Int64)
    low, width = (days.min() or 0), (days.max() or 0) - (days.min() or 0) + 1
    lift = (~same_place).fill_null(True).cum_sum().cast(pl.Int64) * width
    running = (lift + pl.col("_end").cast(pl.Int64) - low).cum_max() - lift + low
    s = s.with_columns(pl.when(same_place).then(running.shift(1)).cast(pl.Int32).cast(pl.Date).alias("_reach"))
    new_episode = pl.col("_reach").is_null() | (pl.col("valid_from") >= pl.col("_reach"))
    s = s.with_columns(new_episode.cast(pl.Int64).cum_sum().alias("episode"))
    return s.drop("_reach")


def _find(parent: dict[int, int], x: int) -> int:
    while parent[x] != x:
        parent[x] = parent[parent[x]]
        x = parent[x]
    return x


def chain_episodes(spells: pl.DataFrame) -> dict[int, int]:
    """episode -> household root episode (see the module docstring, step 4)."""
    s = spells.sort("person_id", "valid_from")
    s = s.with_columns(pl.when(_same_person(1)).then(pl.col("episode").shift(1)).alias("_prev"))
    size = s.group_by("episode").agg(pl.col("person_id").n_unique().alias("n"),
                                     pl.col("valid_from").min().alias("start"),
                                     pl.col("_end").max().alias("end"),
                                     pl.col("valid_to").is_null().any().alias("open"))
    moves = (s.filter(pl.col("_prev").is_not_null() & (pl.col("_prev") != pl.col("episode")))
             .group_by("_prev", "episode").agg(pl.col("person_id").n_unique().alias("shared")))
    moves = (moves.join(size.select(pl.col("episode").alias("_prev"), pl.col("n").alias("n_prev"),
                                    pl.col("open").alias("prev_open")), on="_prev")
             .join(size.select("episode", "n", "start"), on="episode"))
    # which earlier episodes had ended by the time the later one began (nobody left behind)
    stayed = (s.join(moves.select("_prev", "episode", "start").unique(), left_on="episode", right_on="_prev",
                     suffix="_next")
              .filter(pl.col("valid_to").is_null() | (pl.col("valid_to") > pl.col("start") + pl.duration(days=183)))
              .select("episode", "episode_next").unique()
              .rename({"episode": "_prev", "episode_next": "episode"}))
    moves = moves.join(stayed.with_columns(pl.lit(True).alias("_stayed")), on=["_prev", "episode"], how="left")
    ok = moves.filter(
        (2 * pl.col("shared") >= pl.col("n")) & (2 * pl.col("shared") >= pl.col("n_prev"))
        & pl.col("_stayed").is_null()
    )
    best_next = (ok.sort(["_prev", "shared", "start", "episode"], descending=[False, True, False, False])
                 .group_by("_prev", maintain_order=True).first())
    best = (best_next.sort(["episode", "shared", "_prev"], descending=[False, True, False])
            .group_by("episode", maintain_order=True).first())
    episodes = size["episode"].to_list()
    parent = {e: e for e in episodes}
    for a, b in zip(best["_prev"].to_list(), best["episode"].to_list(), strict=True):
        ra, rb = _find(parent, a), _find(parent, b)
        if ra != rb:
            parent[max(ra, rb)] = min(ra, rb)
    return {e: _find(parent, e) for e in episodes}


def households(
    tokens: pl.DataFrame,
    links: pl.DataFrame,
    *,
    spec: TokenColumns | None = None,
    previous: pl.DataFrame | None = None,
    retired: set[str] | None = None,
    open_spell_days: int = OPEN_SPELL_DAYS,
    renamed: pl.DataFrame | None = None,
) -> HouseholdResult:
    """Household membership over time from tokens (places, event dates) and person links; see the module
    docstring. `previous` (household_id, person_id, ...) keeps household ids stable across refreshes; `retired`
    ids (every one the crosswalk ever named) are never issued again. `renamed`: the person crosswalk of the
    links (old_id, new_id, change): a person merged into another keeps their stays, under the new id."""
    obs = observations(tokens, links, spec)
    if obs.height == 0:
        empty = pl.DataFrame(schema=MEMBERSHIP_SCHEMA)
        return HouseholdResult(empty, pl.DataFrame(schema=CROSSWALK_SCHEMA), pl.DataFrame())
    spells = occupancy_episodes(residence_spells(obs), open_spell_days)
    root = chain_episodes(spells)
    roots = pl.DataFrame({"episode": list(root), "_hh": list(root.values())},
                         schema={"episode": pl.Int64, "_hh": pl.Int64})
    spells = spells.join(roots, on="episode", how="left").sort("person_id", "valid_from")
    # one membership row per stay in a household (moving house with it does not end the membership)
    spells = spells.with_columns(
        (~_same_person(1) | (pl.col("_hh") != pl.col("_hh").shift(1))).fill_null(True).cum_sum().alias("_stay"))
    stays = (spells.group_by("person_id", "_hh", "_stay")
             .agg(pl.col("valid_from").min(), pl.col("valid_to").sort_by("valid_from").last()))
    # a stay is known across refreshes by its person and start: ids follow the stays they held before
    current = stays.select(_stay_key.alias("member"), pl.col("_hh").cast(pl.String).alias("cluster"))
    prev = None
    if previous is not None and previous.height:
        prev = _previous_stays(_renamed_persons(previous, renamed), stays)
    assigned, crosswalk = stable_cluster_ids(prev, current, prefix="H", retired=retired)
    ids = assigned.select(pl.col("cluster").cast(pl.Int64).alias("_hh"), pl.col("id").alias("household_id"))
    membership = (stays.join(ids, on="_hh", how="left").select(list(MEMBERSHIP_SCHEMA)).cast(MEMBERSHIP_SCHEMA)
                  .sort("household_id", "valid_from", "person_id"))
    spells = spells.join(ids, on="_hh", how="left")
    return HouseholdResult(membership=membership, crosswalk=crosswalk,
                           spells=spells.select("person_id", "place", "valid_from", "valid_to", "last_seen",
                                                "episode", "household_id"))


def _renamed_persons(previous: pl.DataFrame, renamed: pl.DataFrame | None) -> pl.DataFrame:
    """The previous membership with the ids of persons merged away replaced by those they were merged into: a
    stay is known by its person's id, and without this a household of merged persons only lost its id."""
    if renamed is None or renamed.height == 0:
        return previous
    merged = renamed.filter(pl.col("change") == "merge").select(
        pl.col("old_id").alias("person_id"), pl.col("new_id").alias("_into")).unique("person_id")
    return previous.join(merged, on="person_id", how="left").with_columns(
        pl.coalesce("_into", "person_id").alias("person_id")).drop("_into")


_stay_key = pl.concat_str([pl.col("person_id"), pl.col("valid_from").cast(pl.String)], separator="|")


def _previous_stays(previous: pl.DataFrame, stays: pl.DataFrame) -> pl.DataFrame:
    """member (the key of the current stay it is), old: the previous refresh's stays. A previous stay whose start
    no current stay has (a late record moved it earlier, a corrected one later) is the person's current stay it
    overlaps most, so that its household keeps its id; one that overlaps none keeps its own key."""
    prev = previous.select("person_id", "valid_from", "valid_to", pl.col("household_id").alias("old"))
    moved = prev.join(stays, on=["person_id", "valid_from"], how="anti")
    if moved.height:
        far = date(9999, 12, 31)
        unmatched = stays.join(prev, on=["person_id", "valid_from"], how="anti").select(
            "person_id", pl.col("valid_from").alias("_from"), pl.col("valid_to").alias("_to"))
        overlap = (pl.min_horizontal(pl.col("valid_to").fill_null(far), pl.col("_to").fill_null(far))
                   - pl.max_horizontal("valid_from", "_from"))
        best = (moved.join(unmatched, on="person_id").with_columns(overlap.alias("_days"))
                .filter(pl.col("_days") > pl.duration(days=0))
                .sort("person_id", "valid_from", "_days", "_from", descending=[False, False, True, False])
                .unique(subset=["person_id", "valid_from"], keep="first", maintain_order=True))
        prev = prev.join(best.select("person_id", "valid_from", "_from"), on=["person_id", "valid_from"],
                         how="left").with_columns(pl.coalesce("_from", "valid_from").alias("valid_from"))
    return prev.select(_stay_key.alias("member"), "old")


def household_at(membership: pl.DataFrame, person_id: str, on: date) -> str | None:
    """The household of a person on a day (None if unknown)."""
    m = membership.filter(
        (pl.col("person_id") == person_id) & (pl.col("valid_from") <= on)
        & (pl.col("valid_to").is_null() | (pl.col("valid_to") > on)))
    return m.sort("valid_from")["household_id"][-1] if m.height else None
