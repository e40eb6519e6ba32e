"""Clerical review: borderline pairs shown as agreement patterns (never identifiers), and reviewers' decisions.

`review_pairs(result)` lists the pairs whose match probability falls in the
model's review band (by default 0.5 to the clustering threshold): each with the
two records' source and record id (so a reviewer with access can open them in
the agency's own system), the current person ids, the match probability and
weight, and for every comparison the *level* it reached ("family exact, given
fuzzy", "day and month swapped", "same district") with its partial weight.
No token, Bloom filter or clear value appears.

Reviewers fill `decision` ("match" / "non_match"). `decisions_from_review`
keeps the decided rows in the shape `link(..., decisions=...)` and
`link_incremental(..., decisions=...)` take: a match becomes a must-link edge,
a non-match a cannot-link constraint, on every later refresh (keep them in
`linked.review_decision`).
"""

from __future__ import annotations

import hashlib

import polars as pl

from ed_pipeline.linkage.link import DECISION_SCHEMA, LinkResult
from ed_pipeline.linkage.model import LinkageModel

REVIEW_DECISIONS = ("match", "non_match")


def level_labels(model: LinkageModel) -> dict[str, dict[int, str]]:
    """comparison -> gamma value -> level label (Splink numbers non-null levels from the top down; null is -1)."""
    out: dict[str, dict[int, str]] = {}
    for comp in model.settings["comparisons"]:
        levels = comp["comparison_levels"]
        non_null = [lv for lv in levels if not lv.get("is_null_level")]
        labels = {-1: "null"}
        for i, lv in enumerate(non_null):
            labels[len(non_null) - 1 - i] = lv.get("label_for_charts") or lv["sql_condition"]
        out[comp["output_column_name"]] = labels
    return out


def _pair_id(a: str, b: str) -> str:
    x, y = sorted((a, b))
    return hashlib.sha256(f"{x}\x1e{y}".encode()).hexdigest()[:16]


def review_pairs(result: LinkResult, *, band: tuple[float, float] | None = None, limit: int | None = None
                 ) -> pl.DataFrame:
    """Borderline pairs for clerical review (see the module docstring), most uncertain first; none (an empty
    table of the same columns) when the link scored no pair."""
    model = result.model
    low, high = band or model.review_band
    pairs = result.pairs
    if "match_probability" not in pairs.columns:
        raise ValueError("the link result kept no scored pairs: link(..., keep_pairs=True)")
    p = pairs.filter((pl.col("match_probability") >= low) & (pl.col("match_probability") < high))
    # the persons of the pairs' records only: a month's links are the whole history's
    key = ["source", "record_id"]
    paired = pl.concat([p.select(pl.col(f"{c}_{side}").alias(c) for c in key) for side in ("l", "r")]).unique()
    ids = result.links.select(*key, "person_id").join(paired, on=key, how="semi").unique(subset=key)
    p = p.join(ids.rename({"source": "source_l", "record_id": "record_id_l", "person_id": "person_id_l"}),
               on=["source_l", "record_id_l"], how="left")
    p = p.join(ids.rename({"source": "source_r", "record_id": "record_id_r", "person_id": "person_id_r"}),
               on=["source_r", "record_id_r"], how="left")
    labels = level_labels(model)
    pattern_cols = []
    for comp, mapping in labels.items():
        g = f"gamma_{comp}"
        if g not in p.columns:
            continue
        keys = list(mapping)
        p = p.with_columns(pl.col(g).replace_strict(keys, [mapping[k] for k in keys], default=None,
                                                    return_dtype=pl.String).alias(comp))
        pattern_cols.append(comp)
        mw = f"mw_{comp}"
        tf = f"mw_tf_adj_{comp}"
        if mw in p.columns:
            w = pl.col(mw) + (pl.col(tf) if tf in p.columns else 0.0)
            p = p.with_columns(w.round(2).alias(f"{comp}_weight"))
            pattern_cols.append(f"{comp}_weight")
    pair_id = pl.struct("source_l", "record_id_l", "source_r", "record_id_r").map_elements(
        lambda r: _pair_id(f"{r['source_l']}\x1f{r['record_id_l']}", f"{r['source_r']}\x1f{r['record_id_r']}"),
        return_dtype=pl.String)
    out = p.select(
        pair_id.alias("pair_id"),
        "source_l", "record_id_l", "source_r", "record_id_r",
        "person_id_l", "person_id_r",
        (pl.col("person_id_l") == pl.col("person_id_r")).alias("same_person_now"),
        pl.col("match_probability").round(4), pl.col("match_weight").round(2),
        *pattern_cols,
        pl.lit(None, dtype=pl.String).alias("decision"),
        pl.lit(None, dtype=pl.String).alias("reviewer"),
    ).with_columns((pl.col("match_probability") - 0.5).abs().alias("_u")).sort("_u", "pair_id").drop("_u")
    return out.head(limit) if limit else out


def undecided(review: pl.DataFrame | None, decisions: pl.DataFrame | None) -> pl.DataFrame | None:
    """The review table less the pairs reviewers have decided, whichever way round (a full link scores every
    pair again, and a pair the model still finds borderline must not come back for a second decision)."""
    if review is None or decisions is None or decisions.height == 0:
        return review
    decided = [_pair_id(f"{sl}\x1f{rl}", f"{sr}\x1f{rr}") for sl, rl, sr, rr in
               decisions.select("source_l", "record_id_l", "source_r", "record_id_r").iter_rows()]
    return review.filter(~pl.col("pair_id").is_in(decided))


def decisions_from_review(reviewed: pl.DataFrame) -> pl.DataFrame:
    """The decided rows of a review table, as constraints for link(decisions=...)."""
    bad = reviewed.filter(pl.col("decision").is_not_null() & ~pl.col("decision").is_in(REVIEW_DECISIONS))
    if bad.height:
        raise ValueError(f"decisions must be one of {REVIEW_DECISIONS}: got {bad['decision'].unique().to_list()}")
    return reviewed.filter(pl.col("decision").is_not_null()).select(list(DECISION_SCHEMA)).cast(DECISION_SCHEMA)


def accumulate_decisions(kept: pl.DataFrame | None, reviewed: pl.DataFrame | None) -> pl.DataFrame:
    """Every decision ever made (`linked.review_decision`): those kept so far plus new ones from the review
    table; a later decision on the same pair replaces an earlier one."""
    frames = [f for f in (kept, decisions_from_review(reviewed) if reviewed is not None else None)
              if f is not None and f.height]
    if not frames:
        return pl.DataFrame(schema=DECISION_SCHEMA)
    pair = ["source_l", "record_id_l", "source_r", "record_id_r"]
    decisions = pl.concat([f.select(list(DECISION_SCHEMA)).cast(DECISION_SCHEMA) for f in frames])
    # each pair in one orientation (the smaller record first): a monthly review lists the known record on the
    # left, a full one in record order, and a later decision must replace an earlier one either way round
    swap = (pl.concat_str("source_l", pl.lit("\x1f"), "record_id_l")
            > pl.concat_str("source_r", pl.lit("\x1f"), "record_id_r"))
    sides = {f"{c}_{a}": pl.when(swap).then(pl.col(f"{c}_{b}")).otherwise(pl.col(f"{c}_{a}"))
             for a, b in (("l", "r"), ("r", "l")) for c in ("source", "record_id")}
    return decisions.with_columns(**sides).unique(subset=pair, keep="last", maintain_order=True)


def unmet_decisions(decisions: pl.DataFrame | None, links: pl.DataFrame | None) -> int:
    """How many `decisions` the `links` (a person_link table) do not meet: a match between two persons, a
    non-match inside one. A monthly link only attaches new records to persons: meeting these takes linking every
    record again."""
    if decisions is None or links is None or decisions.height == 0:
        return 0
    key = ["source", "record_id"]
    person = links.select(*key, "person_id").unique(subset=key)
    sides = decisions.join(person.rename({"source": "source_l", "record_id": "record_id_l", "person_id": "l"}),
                           on=["source_l", "record_id_l"], how="inner"
                           ).join(person.rename({"source": "source_r", "record_id": "record_id_r", "person_id": "r"}),
                                  on=["source_r", "record_id_r"], how="inner")
    together = pl.col("l") == pl.col("r")
    return sides.filter(pl.when(pl.col("decision") == "match").then(~together).otherwise(together)).height


def among(review: pl.DataFrame, records: pl.DataFrame) -> pl.DataFrame:
    """The review pairs both of whose records are among `records` (source, record_id): a record withdrawn from
    the warehouse takes its pairs with it."""
    keys = records.select("source", pl.col("record_id").cast(pl.String)).unique()
    for side in ("l", "r"):
        review = review.join(keys.rename({"source": f"source_{side}", "record_id": f"record_id_{side}"}),
                             on=[f"source_{side}", f"record_id_{side}"], how="semi")
    return review


def carry_review(previous: pl.DataFrame | None, current: pl.DataFrame | None) -> pl.DataFrame | None:
    """The review table after an incremental refresh: pairs still awaiting a decision, plus the new ones."""
    pending = previous.filter(pl.col("decision").is_null()) if previous is not None else None
    frames = [f for f in (pending, current) if f is not None and f.height]
    if not frames:
        return current if current is not None else pending
    return pl.concat(frames, how="diagonal_relaxed").unique(subset="pair_id", keep="last", maintain_order=True)
