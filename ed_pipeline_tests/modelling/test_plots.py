"""The evaluation figures: what the SHAP summary draws."""

from __future__ import annotations

import numpy as np
import polars as pl
from matplotlib.axes import Axes

from ed_pipeline.modelling.features import CATEGORICAL, FEATURES
from ed_pipeline.modelling.plots import shap_summary_plot


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
