"""The evaluation figures: what the SHAP summary draws, and that the others draw no figure of 1-4 children."""

from __future__ import annotations

import numpy as np
import polars as pl
from matplotlib.axes import Axes

from ed_pipeline.modelling import plots
from ed_pipeline.modelling.features import CATEGORICAL, FEATURES
from ed_pipeline.modelling.plots import pr_plot, roc_plot, shap_summary_plot
from ed_pipeline.modelling.tracking import _write_artifacts


def _children(n: int, seed: int = 1) -> tuple[np.ndarray, pl.DataFrame]:
    rng = np.random.default_rng(seed)
    frame = pl.DataFrame({f: rng.integers(0, 5, n) for f in FEATURES}).with_columns(
        pl.col(f).cast(pl.String) for f in CATEGORICAL if f in FEATURES)
    return rng.normal(size=(n, len(FEATURES) + 1)), frame  # LightGBM's last column: the bias


def test_the_shap_summary_draws_means_over_the_cohort_not_each_child(tmp_path, monkeypatch):
    """A beeswarm drew each child's contribution coloured by their value: a rare value's children one by one."""
    scattered, bars = [], []
    monkeypatch.setattr(Axes, "scatter", lambda self, x, *a, **k: scattered.append(len(x)))
    barh = Axes.barh
    monkeypatch.setattr(Axes, "barh", lambda self, y, width, *a, **k: bars.append(np.asarray(width)) or
                        barh(self, y, width, *a, **k))
    contrib, _ = _children(300)
    path = shap_summary_plot(contrib, tmp_path / "shap.png", top=5)
    assert path.stat().st_size > 0
    assert scattered == []
    [widths] = bars
    expected = np.sort(np.abs(contrib[:, : len(FEATURES)]).mean(axis=0))[-5:]
    assert np.allclose(widths, expected)  # the five largest means, smallest at the bottom


def _small_cohort() -> tuple[np.ndarray, np.ndarray]:
    """500 children and, at the top, one alone in the 0.6-0.7 calibration bin, which withholds it: with the outcome."""
    rng = np.random.default_rng(0)
    p = np.concatenate([rng.uniform(0.1, 0.4, 500), [0.65]])
    y = (rng.random(len(p)) < p).astype(np.int64)
    y[-1] = 1
    return y, p


def _drawn(monkeypatch) -> list[tuple[np.ndarray, np.ndarray]]:
    lines: list[tuple[np.ndarray, np.ndarray]] = []
    plot = Axes.plot
    monkeypatch.setattr(Axes, "plot", lambda self, x, y, *a, **k: lines.append(
        (np.asarray(x, dtype=float), np.asarray(y, dtype=float))) or plot(self, x, y, *a, **k))
    return lines


def _smallest_band(outcomes: np.ndarray, others: np.ndarray) -> int:
    """The fewest children with, or without, the outcome between two points of a curve (from none flagged)."""
    flagged = outcomes + others
    points = np.column_stack([outcomes, others])[np.argsort(flagged)][np.sort(flagged) > 0]
    return int(np.round(np.diff(np.vstack([[0, 0], points]), axis=0)).min())


def test_roc_and_pr_curves_step_at_no_fewer_than_five_children_either_way(tmp_path, monkeypatch):
    """The full curves stepped at each child in rank order: the first point of the PR curve, precision 1 at
    recall 1/outcomes, told the outcome of the child at the top, whom the calibration curve withholds."""
    y, p = _small_cohort()
    positives, negatives = y.sum(), len(y) - y.sum()
    lines = _drawn(monkeypatch)
    roc_plot(y, {"model": p}, tmp_path / "roc.png", "ROC")
    fpr, tpr = lines[0]
    assert _smallest_band(tpr * positives, fpr * negatives) >= 5
    lines.clear()
    pr_plot(y, {"model": p}, tmp_path / "pr.png", "PR")
    recall, precision = (v[lines[0][0] > 0] for v in lines[0])
    outcomes = recall * positives
    assert _smallest_band(outcomes, outcomes / precision - outcomes) >= 5


def test_the_calibration_figure_draws_only_published_points_and_no_bar_of_one_to_four_children(
        trained, tmp_path, monkeypatch):
    """The histogram below the curve had bars of one child (the curve's CSV withheld such bins)."""
    figures = {}
    monkeypatch.setattr(plots, "_save", lambda fig, path: figures.setdefault(path.name, fig) and path)
    _write_artifacts(trained, tmp_path, {}, "school_readiness_risk")
    curve, bars = figures["calibration.png"].axes
    heights = [round(bar.get_height()) for bar in bars.patches]
    assert heights and not any(1 <= h <= 4 for h in heights)
    assert sum(heights) == trained.calibration["n"].sum() < trained.test_frame.height
    published = {(x, y) for c in (trained.calibration, trained.baseline_calibration)
                 for x, y in c.select("mean_predicted", "observed_rate").drop_nulls().iter_rows()}
    points = {(x, y) for line in curve.lines[:-1] for x, y in line.get_xydata() if not np.isnan(y)}
    assert points and points <= published
