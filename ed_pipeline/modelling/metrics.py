"""Measures of a risk score against outcomes: discrimination, calibration, the top of the list, by subgroup.

All take `y` (0/1 or bool) and `p` (predicted probability of the outcome, here *not* reaching GLD).

- ECE (expected calibration error): predictions in `bins` equal-width bins over [0, 1] (the last bin
  closed), ECE = sum over non-empty bins of (n_bin / n) * |observed rate - mean prediction|.
- Precision / recall in the top `share` of risk: the ceil(share * n) highest-risk children; precision =
  outcomes among them / their number, recall = outcomes among them / all outcomes. Where the cut falls inside
  a group of equal risks, the places left are filled at that group's outcome rate (the mean over every order
  of the tied children, as sklearn's ndcg_score averages ties): never by row order, which is arbitrary.
- ECE noise floor: the ECE a perfectly calibrated score with these same predictions would show on
  average (outcomes drawn from the predictions themselves); with ~1,300 children a cohort it is about
  0.01-0.02, so an ECE goal of 0.02 sits close to what sampling alone produces.
"""

from __future__ import annotations

import math
import re

import numpy as np
import polars as pl
from sklearn.metrics import average_precision_score, roc_auc_score

from ed_pipeline.privacy.disclosure import DEFAULT_THRESHOLD, is_primary, mask_derived, suppress_counts

# A subgroup needs this many children for any figure but its size: a smaller one's outcomes, rates and flags are
# noise, and tell near-individual outcomes (3 children, 1 outcome); AUC-type metrics need both outcomes too.
MIN_GROUP_AUC = 30
# The figures of a subgroup that are counts of its children, or tell them with its size
COUNT_FIGURES = ("outcomes", "outcome_rate", "flagged", "precision_top10", "recall_top10")
SUBGROUP_SCHEMA = {
    "group": pl.Utf8, "value": pl.Utf8, "n": pl.Int64, "outcomes": pl.Int64, "outcome_rate": pl.Float64,
    "mean_risk": pl.Float64, "roc_auc": pl.Float64, "pr_auc": pl.Float64, "brier": pl.Float64,
    "ece": pl.Float64, "flagged": pl.Int64, "precision_top10": pl.Float64, "recall_top10": pl.Float64,
}


def _arrays(y, p) -> tuple[np.ndarray, np.ndarray]:
    y = np.asarray(y, dtype=np.float64)
    p = np.asarray(p, dtype=np.float64)
    if y.shape != p.shape:
        raise ValueError(f"y and p differ in shape: {y.shape} vs {p.shape}")
    return y, p


def roc_auc(y, p) -> float:
    y, p = _arrays(y, p)
    return float(roc_auc_score(y, p)) if 0 < y.sum() < len(y) else math.nan


def pr_auc(y, p) -> float:
    """Area under the precision-recall curve, as average precision."""
    y, p = _arrays(y, p)
    return float(average_precision_score(y, p)) if 0 < y.sum() < len(y) else math.nan


def brier(y, p) -> float:
    y, p = _arrays(y, p)
    return float(np.mean((p - y) ** 2)) if len(y) else math.nan


def _bin_index(p: np.ndarray, bins: int) -> np.ndarray:
    return np.clip((p * bins).astype(np.int64), 0, bins - 1)


def ece(y, p, bins: int = 10) -> float:
    y, p = _arrays(y, p)
    if not len(y):
        return math.nan
    idx = _bin_index(p, bins)
    sum_y = np.bincount(idx, weights=y, minlength=bins)
    sum_p = np.bincount(idx, weights=p, minlength=bins)
    return float(np.sum(np.abs(sum_y - sum_p)) / len(y))


def ece_noise_floor(p, bins: int = 10, draws: int = 200, seed: int = 0) -> float:
    """Mean ECE of outcomes drawn from p itself: what a perfectly calibrated score would show by chance."""
    p = np.asarray(p, dtype=np.float64)
    rng = np.random.default_rng(seed)
    return float(np.mean([ece(rng.random(len(p)) < p, p, bins) for _ in range(draws)])) if len(p) else math.nan


def top_places(p, share: float = 0.1) -> np.ndarray:
    """Each child's share of a place among the ceil(share * n) highest predictions: 1 above the cut, 0 below, and
    to each of a tie at the cut an equal part of the places left (they go in no particular order); sums to k."""
    p = np.asarray(p, dtype=np.float64)
    if not len(p):
        return np.zeros(0)
    k = max(1, math.ceil(share * len(p) - 1e-9))
    cut = np.sort(p)[::-1][k - 1]
    above, tied = p > cut, p == cut
    return np.where(above, 1.0, np.where(tied, (k - above.sum()) / tied.sum(), 0.0))


def top_share(y, p, share: float = 0.1) -> tuple[float, float]:
    """(precision, recall) among the ceil(share * n) highest predictions, ties at the cut averaged."""
    y, p = _arrays(y, p)
    if not len(y):
        return math.nan, math.nan
    places = top_places(p, share)
    hits = (places * y).sum()
    return float(hits / places.sum()), float(hits / y.sum()) if y.sum() else math.nan


def share_threshold(p, share: float) -> float:
    """The risk at or above which the highest `share` of `p` falls, as near as ties allow: children of equal risk
    share a band, so the cut goes to whichever edge of the tie at the ceil(share * n)-th place is nearer (on the
    default world a tie of 140 children at the 70th percentile had put 29% of the cohort, not 20%, in 'medium')."""
    p = np.sort(np.asarray(p, dtype=np.float64))[::-1]
    k = min(len(p), max(1, math.ceil(share * len(p) - 1e-9)))
    cut = p[k - 1]
    above = int(np.searchsorted(-p, -cut, side="left"))  # children strictly above the tie
    with_tie = int(np.searchsorted(-p, -cut, side="right"))
    return float(p[above - 1]) if above and k - above < with_tie - k else float(cut)


def calibration_curve(y, p, bins: int = 10) -> pl.DataFrame:
    """Per equal-width bin: its range, children, mean prediction, observed rate (empty bins dropped)."""
    y, p = _arrays(y, p)
    idx = _bin_index(p, bins)
    n = np.bincount(idx, minlength=bins)
    keep = n > 0
    return pl.DataFrame({
        "bin_lower": (np.arange(bins) / bins)[keep],
        "bin_upper": (np.arange(1, bins + 1) / bins)[keep],
        "n": n[keep].astype(np.int64),
        "mean_predicted": (np.bincount(idx, weights=p, minlength=bins)[keep] / n[keep]),
        "observed_rate": (np.bincount(idx, weights=y, minlength=bins)[keep] / n[keep]),
    })


def published_calibration_curve(y, p, bins: int = 10) -> pl.DataFrame:
    """`calibration_curve` as the model's run publishes it (MLflow's calibration_curve.csv and plot), under the
    disclosure control of `outputs.community_risk`: a bin's size withheld at 1-4 children, its observed rate
    where 0-4 of its children did, or did not, have the outcome (a rate of 0 or 1 tells each child's), its mean
    prediction with its size; and one more bin with each where the test cohort's size or outcomes less the other
    bins' would give it back. A withheld figure is null, with `<column>_suppressed` true."""
    curve = calibration_curve(y, p, bins)
    hidden = ("_outcomes", "_others")
    counts = curve.with_columns(_outcomes=(pl.col("n") * pl.col("observed_rate")).round().cast(pl.Int64)
                                ).with_columns(_others=pl.col("n") - pl.col("_outcomes"))
    safe = suppress_counts(counts, ["n", *hidden], rounding=1,
                           also_suppress={c: counts[c] == 0 for c in hidden})  # one outcome for all
    safe = mask_derived(safe, {"mean_predicted": ["n"], "observed_rate": ["n", *hidden]})
    return safe.drop(*hidden, *(f"{c}_suppressed" for c in hidden))


def published_rank_curve(y, p, points: int = 20) -> pl.DataFrame:
    """The ROC and precision-recall curves as the model's run publishes them (MLflow's roc.png and pr.png): one
    row per cut `risk >= threshold`, at most `points` of them at the score's quantiles (every 5% of the cohort),
    with the children flagged, the outcomes among them, and fpr, tpr, precision, recall; the last row flags
    every child. Each band between two cuts, and the first, holds at least 5 children with the outcome and 5
    without (a cut too close to the one before is dropped, the rest of the cohort joins the last band), as
    `outputs.community_risk` withholds counts of 0-4: the full curve steps at each child, in rank order (its first
    point told the outcome of the child at the top, one a withheld calibration bin hid)."""
    y, p = _arrays(y, p)
    cuts = np.unique(np.quantile(p, np.arange(points) / points))[::-1] if len(p) else np.zeros(0)
    flags = p[None, :] >= cuts[:, None]
    flagged, outcomes = flags.sum(axis=1), (flags * y).sum(axis=1).round().astype(np.int64)
    kept, last = [], (0, 0)
    for i, (n, hits) in enumerate(zip(flagged, outcomes, strict=True)):
        if min(hits - last[1], n - hits - (last[0] - last[1])) >= DEFAULT_THRESHOLD:
            kept.append(i)
            last = (n, hits)
    kept = [*kept[:-1], len(cuts) - 1] if len(cuts) else []  # the rest of the cohort joins the last band
    positives, negatives = y.sum(), len(y) - y.sum()
    curve = pl.DataFrame({"threshold": cuts[kept], "flagged": flagged[kept].astype(np.int64),
                          "outcomes": outcomes[kept]})
    return curve.with_columns(
        fpr=(pl.col("flagged") - pl.col("outcomes")) / negatives, tpr=pl.col("outcomes") / positives,
        precision=pl.col("outcomes") / pl.col("flagged"), recall=pl.col("outcomes") / positives)


def score_metrics(y, p, *, top: float = 0.1, bins: int = 10) -> dict[str, float]:
    """roc_auc, pr_auc, brier, ece, precision/recall in the top share, n, outcome rate and mean risk."""
    y, p = _arrays(y, p)
    precision, recall = top_share(y, p, top)
    return {
        "roc_auc": roc_auc(y, p), "pr_auc": pr_auc(y, p), "brier": brier(y, p), "ece": ece(y, p, bins),
        "precision_top10": precision, "recall_top10": recall,
        "n": float(len(y)), "outcome_rate": float(y.mean()) if len(y) else math.nan,
        "mean_risk": float(p.mean()) if len(p) else math.nan,
    }


def subgroup_metrics(frame: pl.DataFrame, y, p, groups: tuple[str, ...], *, top: float = 0.1,
                     bins: int = 10) -> pl.DataFrame:
    """One row per (group, value): n, outcomes, outcome rate, mean risk, AUCs, Brier, ECE, and how many of the
    group are flagged in the overall top `top` share, with precision and recall of that flag within the group, by
    `top_places` as the overall figures are (a tie at the cut counted at its share of the places left, so the
    groups' flags add up to the cohort's as near as rounding allows). A group under MIN_GROUP_AUC
    children has its size only (counts null, metrics NaN); a group whose counts would tell 1-4 children
    (`_tells_few`) has no count (COUNT_FIGURES), and the next smallest, while those withheld add up to fewer than
    MIN_GROUP_AUC children or are one group alone, has none either; a size of 1-4 is null, with one more of its
    grouping (`privacy.disclosure.suppress_counts`). AUC-type metrics are NaN for a group with one outcome only.
    Null values form their own group 'unknown'.
    """
    y, p = _arrays(y, p)
    flagged = top_places(p, top)
    rows = []
    for g in groups:
        values = frame[g].cast(pl.Utf8).fill_null("unknown").to_numpy()
        sizes = {v: int((values == v).sum()) for v in sorted(set(values.tolist()))}
        few = {v for v, n in sizes.items() if n >= MIN_GROUP_AUC and _tells_few(y[values == v], flagged[values == v])}
        counts_hidden = _counts_hidden(sizes, few)
        for v in sizes:
            sel = values == v
            ys, ps, fs = y[sel], p[sel], flagged[sel]
            if sizes[v] < MIN_GROUP_AUC:
                rows.append({"group": g, "value": v, "n": int(sel.sum())})
                continue
            row = {
                "group": g, "value": v, "n": int(sel.sum()), "outcomes": int(ys.sum()),
                "outcome_rate": float(ys.mean()), "mean_risk": float(ps.mean()),
                "roc_auc": roc_auc(ys, ps), "pr_auc": pr_auc(ys, ps), "brier": brier(ys, ps), "ece": ece(ys, ps, bins),
                "flagged": int(round(float(fs.sum()))),
                "precision_top10": float((fs * ys).sum() / fs.sum()) if fs.any() else math.nan,
                "recall_top10": float((fs * ys).sum() / ys.sum()) if ys.sum() else math.nan,
            }
            rows.append({k: x for k, x in row.items() if k not in COUNT_FIGURES} if v in counts_hidden else row)
    metrics = [c for c, t in SUBGROUP_SCHEMA.items() if t == pl.Float64]
    out = pl.DataFrame(rows, schema=SUBGROUP_SCHEMA).with_columns(pl.col(metrics).fill_null(math.nan))
    # sizes of 1-4 withheld, and one more in their group, or the cohort's size less the others would tell them
    return suppress_counts(out, ["n"], group_total_by="group", rounding=1).drop("n_suppressed")


def _tells_few(y: np.ndarray, places: np.ndarray) -> bool:
    """Whether a group's counts would tell 1-4 of its children, as `outputs.community_risk` withholds them: the
    children who did, or did not, have the outcome (0 too: a rate of 0 or 1 tells every child's outcome), the
    children flagged (`places`, from `top_places`), and the flagged who did, or did not, have the outcome."""
    flagged = round(float(places.sum()))
    hits = round(float((places * y).sum()))
    sides = [y.sum(), len(y) - y.sum(), *((hits, flagged - hits) if flagged else ())]
    return is_primary(flagged) or min(sides) < DEFAULT_THRESHOLD


def _counts_hidden(sizes: dict[str, int], few: set[str] = frozenset()) -> set[str]:
    """The values of one grouping whose counts (COUNT_FIGURES) are withheld: those under MIN_GROUP_AUC children,
    those whose counts would tell 1-4 children (`few`) and, while the withheld add up to fewer than MIN_GROUP_AUC
    children or are one value alone, the next smallest (the cohort's counts less the others' would tell theirs)."""
    hidden = {v for v, n in sizes.items() if n < MIN_GROUP_AUC} | few
    shown = sorted((n, v) for v, n in sizes.items() if v not in hidden)
    while hidden and shown and (sum(sizes[v] for v in hidden) < MIN_GROUP_AUC or len(hidden) == 1):
        hidden.add(shown.pop(0)[1])
    return hidden


def metric_key(*parts: str) -> str:
    """An MLflow-safe metric name: 'test_roc_auc', 'ward', "St Martin's" -> 'test_roc_auc__ward_St_Martin_s'."""
    head, *rest = parts
    tail = "_".join(re.sub(r"[^A-Za-z0-9]+", "_", s).strip("_") for s in rest)
    return f"{head}__{tail}" if tail else head
