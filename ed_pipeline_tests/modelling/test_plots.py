"""The evaluation figures: what the SHAP summary draws, and that the others draw no figure of 1-4 children."""

from __future__ import annotations

import numpy as np
import polars as pl
from matplotlib.axes import Axes

from ed_pipeline.modelling import plots
from ed_pipeline.modelling.features import CATEGORICAL, FEATURES
from ed_pipeline.modelling.plots import shap_summary_plot
from ed_pipeline.modelling.tracking import _write_artifacts


def _children(n: int, seed: int = 1) -> tuple[np.ndarray, pl.DataFrame]:
    rng = np.random.default_rng(seed)
    frame = pl.DataFrame({f: rng.integers(0, 5, n) for f in FEATURES}).with_columns(
        pl.col(f).cast(pl.String) for f in CATEGORICAL if f in FEATURES)
    return rng.normal(size=(n, len(FEATURES) + 1)), frame  # LightGBM's last column: the bias


def test_the_shap_summary_draws_at_most_its_sample_of_children_on_every_feature(tmp_path, monkeypatch):
    drawn: list[int] = []
    scatter = Axes.scatter
    monkeypatch.setattr(Axes, "scatter", lambda self, x, *a, **k: drawn.append(len(x)) or scatter(self, x, *a, **k))
    contrib, frame = _children(300)
    path = shap_summary_plot(contrib, frame, tmp_path / "shap.png", top=5, max_children=120)
    assert path.stat().st_size > 0
    assert drawn == [120] * 5  # one row of points per feature shown, each of the same 120 children
    drawn.clear()
    shap_summary_plot(contrib[:80], frame.head(80), tmp_path / "small.png", top=5, max_children=120)
    assert drawn == [80] * 5  # a cohort smaller than the sample: every child


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
