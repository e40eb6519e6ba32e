"""Evaluation of person links and household assignments against a labelled truth.

Only evaluation code (benchmarks, tests, `ed-pipeline evaluate`) passes truth
here; nothing in the pipeline reads `data/truth/`.

Pairs are counted from cluster sizes, never enumerated: a cluster of n records
holds n*(n-1)/2 pairs, and the pairs that are both predicted and true are the
pairs inside the intersections of a predicted cluster with a true cluster. The
cost is one join and two group-bys, whatever the size of the clusters.
"""

from __future__ import annotations

from collections.abc import Sequence

import polars as pl

KEY = ("source", "record_id")


def _pairs(expr: pl.Expr) -> pl.Expr:
    n = expr.cast(pl.Int64)
    return n * (n - 1) // 2


def _ratio(num: int, den: int) -> float:
    return float(num) / den if den else 1.0


def pair_counts(
    predicted: pl.DataFrame,
    truth: pl.DataFrame,
    *,
    key: Sequence[str] = KEY,
    predicted_id: str = "person_id",
    true_id: str = "person_id",
) -> dict[str, int]:
    """Counts of predicted, true and correctly predicted pairs over the records present in both frames."""
    # a record sent twice under one key (an update, a correction) is one record
    p = predicted.lazy().select(*key, pl.col(predicted_id).alias("_p")).unique(subset=list(key), keep="first")
    t = truth.lazy().select(*key, pl.col(true_id).alias("_t")).unique(subset=list(key), keep="first")
    joined = p.join(t, on=list(key), how="inner").select("_p", "_t").collect()
    n_records = joined.height
    if n_records == 0:
        return {"records": 0, "predicted_pairs": 0, "true_pairs": 0, "true_positive_pairs": 0}

    def total(by: list[str]) -> int:
        return int(joined.group_by(by).len().select(_pairs(pl.col("len")).sum()).item() or 0)

    return {
        "records": n_records,
        "predicted_pairs": total(["_p"]),
        "true_pairs": total(["_t"]),
        "true_positive_pairs": total(["_p", "_t"]),
    }


def pairwise_metrics(
    predicted: pl.DataFrame,
    truth: pl.DataFrame,
    *,
    key: Sequence[str] = KEY,
    predicted_id: str = "person_id",
    true_id: str = "person_id",
) -> dict[str, float | int]:
    """Pairwise precision, recall and F1 of a clustering against true clusters (see the module docstring).

    precision = correct pairs / predicted pairs, recall = correct pairs / true
    pairs, over the records that appear in both frames. With no predicted pairs
    precision is 1.0 (nothing claimed, nothing wrong); likewise recall with no
    true pairs.
    """
    c = pair_counts(predicted, truth, key=key, predicted_id=predicted_id, true_id=true_id)
    precision = _ratio(c["true_positive_pairs"], c["predicted_pairs"])
    recall = _ratio(c["true_positive_pairs"], c["true_pairs"])
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {
        **c,
        "false_positive_pairs": c["predicted_pairs"] - c["true_positive_pairs"],
        "false_negative_pairs": c["true_pairs"] - c["true_positive_pairs"],
        "precision": precision,
        "recall": recall,
        "f1": f1,
    }


def _as_of(membership: pl.DataFrame, probes: pl.DataFrame, person_col: str, out: str) -> pl.DataFrame:
    """The household of each probe's person on the probe's date (null when none covers the date).

    A membership row covers `date` when valid_from <= date and (valid_to is null
    or date < valid_to). If several rows cover the date, the latest-starting wins.
    """
    m = membership.select(
        pl.col("person_id").alias(person_col),
        pl.col("household_id").alias(out),
        pl.col("valid_from").cast(pl.Date),
        pl.col("valid_to").cast(pl.Date),
    )
    j = probes.join(m, on=person_col, how="left")
    covers = (pl.col("valid_from") <= pl.col("date")) & (
        pl.col("valid_to").is_null() | (pl.col("date") < pl.col("valid_to"))
    )
    j = j.with_columns(pl.when(covers).then(pl.col(out)).otherwise(None).alias(out))
    return (
        j.sort(["_probe", pl.col(out).is_not_null(), "valid_from"], nulls_last=False)
        .group_by("_probe", maintain_order=True)
        .last()
        .select("_probe", out)
    )


def household_metrics(
    predicted_links: pl.DataFrame,
    predicted_membership: pl.DataFrame,
    truth_links: pl.DataFrame,
    truth_membership: pl.DataFrame,
    probes: pl.DataFrame,
    *,
    key: Sequence[str] = KEY,
) -> dict[str, float | int]:
    """Household assignment accuracy.

    Definition. A *probe* is a record (source, record_id) with a date, normally
    the record's event date: "where did the person this record is about live
    on that day, and with whom?". For each probe we look up

    - its predicted household: the record's predicted person (`predicted_links`)
      and that person's predicted membership row covering the date
      (`predicted_membership`: household_id, person_id, valid_from, valid_to,
      valid_to exclusive and null for "still there"), and
    - its true household the same way through `truth_links` and `truth_membership`.

    Household ids are arbitrary labels on both sides, so they are compared as
    two clusterings of the probes, not by name: a *co-residence pair* is a pair
    of probes that fall in the same household (each on its own date). Reported:

    - `household_precision`, `household_recall`, `household_f1`: pairwise
      measures of the predicted household clustering of probes against the true
      one, counted from cluster intersections as for persons;
    - `household_accuracy`: the share of probes whose predicted household is
      *the* household that the majority of the probes of its true household were
      assigned to (each true household mapped to its most frequent predicted
      household), i.e. cluster purity seen from the truth; probes with no
      predicted household count as wrong. This is the headline figure.
    - `household_coverage`: the share of probes with a true household that got
      any predicted household.

    Probes whose true household is unknown (no truth membership covers the
    date) are left out of every measure.
    """
    probes = probes.select(*key, pl.col("date").cast(pl.Date)).with_row_index("_probe")
    pred = probes.join(predicted_links.select(*key, pl.col("person_id").alias("_pp")), on=list(key), how="left")
    true = probes.join(truth_links.select(*key, pl.col("person_id").alias("_tp")), on=list(key), how="left")
    ph = _as_of(predicted_membership, pred.select("_probe", "_pp", "date"), "_pp", "_ph")
    th = _as_of(truth_membership, true.select("_probe", "_tp", "date"), "_tp", "_th")
    both = th.join(ph, on="_probe", how="left").filter(pl.col("_th").is_not_null())
    n = both.height
    if n == 0:
        return {"household_probes": 0, "household_accuracy": 1.0, "household_coverage": 1.0,
                "household_precision": 1.0, "household_recall": 1.0, "household_f1": 1.0}
    covered = both.filter(pl.col("_ph").is_not_null())
    # majority predicted household per true household
    best = (
        covered.group_by("_th", "_ph").len()
        .sort(["_th", "len", "_ph"], descending=[False, True, False])
        .group_by("_th", maintain_order=True).first()
        .select("_th", pl.col("_ph").alias("_best"))
    )
    correct = covered.join(best, on="_th").filter(pl.col("_ph") == pl.col("_best")).height
    # pairwise over probes: a probe with no predicted household is a singleton
    clusters = both.with_columns(
        pl.coalesce(pl.col("_ph").cast(pl.String), pl.format("__none_{}", pl.col("_probe"))).alias("_ph")
    ).with_columns(pl.col("_probe").cast(pl.String).alias("record_id"), pl.lit("").alias("source"))
    pm = pairwise_metrics(
        clusters.select("source", "record_id", pl.col("_ph").alias("person_id")),
        clusters.select("source", "record_id", pl.col("_th").alias("person_id")),
    )
    return {
        "household_probes": n,
        "household_accuracy": correct / n,
        "household_coverage": covered.height / n,
        "household_precision": pm["precision"],
        "household_recall": pm["recall"],
        "household_f1": pm["f1"],
    }


def evaluate_links(
    predicted: pl.DataFrame,
    truth: pl.DataFrame,
    *,
    predicted_membership: pl.DataFrame | None = None,
    truth_membership: pl.DataFrame | None = None,
    probes: pl.DataFrame | None = None,
) -> dict[str, float | int]:
    """Pairwise precision, recall and F1 of person links, and household accuracy when memberships are given.

    `predicted` and `truth` hold one row per record: source, record_id,
    person_id (the truth's person_id is the synthetic world's, unrelated to the
    predicted one). Person measures are counted over the records present in
    both (see `pairwise_metrics`); `records_missing_from_prediction` says how
    many truth records had no prediction.

    Households (see `household_metrics` for the definition of household
    assignment accuracy) are evaluated when `predicted_membership` and
    `truth_membership` (household_id, person_id, valid_from, valid_to) are both
    given; `probes` (source, record_id, date) default to every predicted record
    on its `event_date` if `predicted` carries one.
    """
    result: dict[str, float | int] = dict(pairwise_metrics(predicted, truth))
    result["records_missing_from_prediction"] = truth.select(pl.struct(*KEY).n_unique()).item() - result["records"]
    result["predicted_persons"] = predicted.select(pl.col("person_id").n_unique()).item()
    result["true_persons"] = truth.select(pl.col("person_id").n_unique()).item()
    if predicted_membership is not None and truth_membership is not None:
        if probes is None:
            if "event_date" not in predicted.columns:
                raise ValueError("give probes (source, record_id, date) or an event_date column in predicted")
            probes = predicted.select(*KEY, pl.col("event_date").alias("date"))
        result.update(household_metrics(predicted, predicted_membership, truth, truth_membership, probes))
    return result
