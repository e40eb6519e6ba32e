"""The model card: a Markdown page logged with every refresh run."""

from __future__ import annotations

import math

import polars as pl

from ed_pipeline.modelling.features import BASELINE_FEATURES, FEATURES
from ed_pipeline.modelling.train import TrainedModel


def _f(x: float, digits: int = 3) -> str:
    return "n/a" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.{digits}f}"


def _calibration_sentence(cfg) -> str:
    if cfg.calibration == "crossfit":
        return (f"Calibration is cross-fitted: {cfg.crossfit_folds}-fold out-of-fold scores of the training and "
                "validation cohorts fit the Platt scaling, and the final model is trained on both cohorts with the "
                "number of trees early stopping chose.")
    return "The model is trained on the training cohorts and calibrated on the validation cohort."


def model_card(result: TrainedModel, tags: dict | None = None, model_name: str = "school_readiness_risk") -> str:
    m, c, cfg = result.metrics, result.cohorts, result.config
    tags = tags or {}
    cohort_rows = "\n".join(
        f"| {y} | {c.sizes[y]:,} | {c.rates[y]:.3f} | {c.median_history[y]:.0f} | "
        f"{'train' if y in c.train else 'validation' if y == c.validation else 'test' if y == c.test else '-'} |"
        for y in sorted(c.sizes)
    )
    metric_rows = "\n".join(
        f"| {label} | {_f(m[f'test_{k}'])} | {_f(m[f'baseline_test_{k}'])} |"
        for label, k in [("ROC AUC", "roc_auc"), ("PR AUC", "pr_auc"), ("Brier score", "brier"),
                         ("expected calibration error", "ece"), ("precision, top 10%", "precision_top10"),
                         ("recall, top 10%", "recall_top10"), ("mean predicted risk", "mean_risk")]
    )
    sub = result.subgroups.filter(pl.col("group") != "ward")
    sub_rows = "\n".join(
        f"| {r['group']} | {r['value']} | {'*' if r['n'] is None else format(r['n'], ',')} | "
        f"{_f(r['outcome_rate'])} | {_f(r['mean_risk'])} | "
        f"{_f(r['roc_auc'])} | {_f(r['ece'])} | {_f(r['recall_top10'])} |"
        for r in sub.iter_rows(named=True)
    )
    wards = result.subgroups.filter(pl.col("group") == "ward")
    ward_auc = wards["roc_auc"].drop_nans().drop_nulls()
    top = ", ".join(result.importance["feature"].head(6).to_list())
    provenance = "\n".join(f"- {k}: `{v}`" for k, v in sorted(tags.items())) or "- (none given)"
    return f"""# Model card: {model_name}

## Intended use
Ranks children, at their third birthday, by the risk of **not** reaching a Good Level of Development (GLD)
at the Early Years Foundation Stage Profile (age 5), so that early-help teams in Essex can offer support
sooner. **Every flag is reviewed by a person, and no decision is automated**: the score informs a
practitioner's professional judgement (UK GDPR Article 22); it never by itself opens a case, withholds a
service or triggers contact. Not for use on individuals outside the linked Essex data, for any purpose
other than offering help, or as evidence about a family.

## Data
`features.child_features`: one row per child per prediction date (third birthday), built by dbt from
pseudonymised, linked records of social care, police, housing, benefits, youth offending and drug and
alcohol services; no direct identifier. Outcome: `not_gld` from the school-readiness return.
Model features ({len(FEATURES)}): {", ".join(FEATURES)}. Baseline (logistic regression):
{", ".join(BASELINE_FEATURES)}. Free school meals, EAL, SEN and ethnicity are known only from the school
return, after the prediction date: used to measure fairness, never as inputs.

## Cohorts (temporal validation)
Train on earlier assessed cohorts with at least {cfg.min_history_months} months of median data history
before the prediction date, stop early on the validation cohort, test on the latest; a latest cohort with
under {cfg.min_cohort_share:.0%} as many assessed children as the one before it is left out (its assessment data
are still to come).
{_calibration_sentence(cfg)}

| assessment year | children | not GLD | median months of history | role |
|---|---|---|---|---|
{cohort_rows}

## Model
LightGBM (binary, {result.best_iteration} trees after early stopping, {cfg.num_leaves} leaves,
{"monotone non-decreasing in every agency event feature" if cfg.monotone else "no monotone constraints"}),
calibrated by Platt scaling and shifted (label shift) to the expected outcome rate of
the test cohort ({_f(m.get("expected_test_outcome_rate", math.nan))}, from the trend of the last
{cfg.trend_cohorts} cohorts; observed {_f(m["test_outcome_rate"])}). Bands: high = risk >=
{result.band_thresholds["high"]:.3f} (the test cohort's top {cfg.top_share:.0%}), medium >=
{result.band_thresholds["medium"]:.3f} (the next {cfg.medium_share:.0%}), low below. Strongest features
(mean |contribution|): {top}.

## Metrics on the test cohort ({c.test}, {int(m["test_n"]):,} children)

| metric | model | baseline |
|---|---|---|
{metric_rows}

ECE uses {cfg.ece_bins} equal-width bins; a perfectly calibrated score would show about
{_f(m["test_ece_noise_floor"])} on this cohort by chance alone.

## Subgroups (test cohort)
Top-10% recall uses the overall top 10%, with a tie at the cut split as in the overall figures. Groups
under 30 children have their size only. A group whose rate or recall would show 1-4 children (with the
outcome or not, flagged or not) has none, and nor has the next group by size until those add up to 30 or more
in two groups or more (the whole cohort less the other groups would show them); sizes of 1-4, and one more of
the same group, are shown as *.

| group | value | children | not GLD | mean risk | ROC AUC | ECE | recall, top 10% |
|---|---|---|---|---|---|---|---|
{sub_rows}

Wards: {wards.height} wards, ROC AUC from {_f(ward_auc.min() if len(ward_auc) else math.nan)} to
{_f(ward_auc.max() if len(ward_auc) else math.nan)} (per ward in the run's metrics and `subgroups.csv`).

## Limitations
- Cohorts are small (about 1,300-1,500 children a year): AUC on the test cohort carries roughly +/-0.03 of
  sampling error, and subgroup figures for small groups more; a group under 30 children has its size only
  ("n/a" for the other figures): they would be noise, and would come close to the outcomes of single children.
- Features reflect only what agencies recorded: families that never met a service look like low risk. Much
  of what drives school readiness (development at home, health, special educational needs) is unrecorded.
- Children whose third birthday fell soon after the data begin have truncated 12/24-month windows; such
  cohorts are kept out of training.
- Linkage errors (missed or false matches) add noise to the features; see the linkage model's match
  weights attached to this run.
- The outcome rate changes year on year; calibration follows an extrapolated trend and is checked on each
  new cohort. Subgroup differences in calibration or recall must be reviewed before use.

## Provenance
{provenance}
"""
