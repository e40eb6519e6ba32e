"""Evaluation figures as PNG files, drawn on matplotlib's Agg canvas (no pyplot, no global backend state)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import polars as pl
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from ed_pipeline.modelling.features import CATEGORICAL, FEATURES
from ed_pipeline.modelling.metrics import published_rank_curve
from ed_pipeline.privacy.disclosure import SUPPRESSED_MARK


def _figure(width: float = 5.5, height: float = 4.5) -> Figure:
    fig = Figure(figsize=(width, height), dpi=110)
    FigureCanvasAgg(fig)
    return fig


def _save(fig: Figure, path: Path) -> Path:
    fig.tight_layout()
    fig.savefig(path)
    return path


def roc_plot(y: np.ndarray, curves: dict[str, np.ndarray], path: Path, title: str) -> Path:
    """Each score's ROC curve at its published cuts (`published_rank_curve`: no step of 1-4 children)."""
    fig = _figure()
    ax = fig.add_subplot()
    for name, p in curves.items():
        curve = published_rank_curve(y, p)
        ax.plot([0.0, *curve["fpr"]], [0.0, *curve["tpr"]], marker=".", label=name)
    ax.plot([0, 1], [0, 1], color="grey", linestyle=":", linewidth=1)
    ax.set(xlabel="false positive rate", ylabel="true positive rate", title=title)
    ax.legend(loc="lower right")
    return _save(fig, path)


def pr_plot(y: np.ndarray, curves: dict[str, np.ndarray], path: Path, title: str) -> Path:
    """Each score's precision-recall curve at its published cuts (`published_rank_curve`)."""
    fig = _figure()
    ax = fig.add_subplot()
    for name, p in curves.items():
        curve = published_rank_curve(y, p)
        ax.plot(curve["recall"], curve["precision"], marker=".", label=name)
    ax.axhline(float(np.mean(y)), color="grey", linestyle=":", linewidth=1, label="outcome rate")
    ax.set(xlabel="recall", ylabel="precision", title=title, ylim=(0, 1))
    ax.legend(loc="upper right")
    return _save(fig, path)


def calibration_plot(curves: dict[str, pl.DataFrame], path: Path, title: str) -> Path:
    """The published calibration curves (`published_calibration_curve`: a withheld point is not drawn) and, below,
    the first curve's bin sizes as bars: the histogram of the test cohort's risk is that curve's own bins, so that
    a bar of 1-4 children, and the one more withheld with it, is not drawn but marked '*', as the CSV withholds
    it (a histogram of its own had bars of one child, and the cohort's size less the others' would tell them)."""
    fig = _figure(5.5, 6)
    ax, hist = fig.subplots(2, 1, gridspec_kw={"height_ratios": [3, 1]}, sharex=True)
    for name, curve in curves.items():
        ax.plot(curve["mean_predicted"].to_numpy(), curve["observed_rate"].to_numpy(), marker="o", label=name)
    ax.plot([0, 1], [0, 1], color="grey", linestyle=":", linewidth=1, label="perfect calibration")
    ax.set(ylabel="observed rate (not GLD)", title=title, xlim=(0, 1), ylim=(0, 1))
    ax.legend(loc="upper left")
    sizes = next(iter(curves.values()))
    shown, withheld = sizes.filter(pl.col("n").is_not_null()), sizes.filter(pl.col("n").is_null())
    hist.bar(shown["bin_lower"], shown["n"], width=shown["bin_upper"] - shown["bin_lower"], align="edge",
             color="tab:blue")
    for lower, upper in withheld.select("bin_lower", "bin_upper").iter_rows():
        hist.annotate(SUPPRESSED_MARK, ((lower + upper) / 2, 0), ha="center", va="bottom")
    hist.set(xlabel="predicted risk", ylabel="children")
    return _save(fig, path)


def shap_summary_plot(contrib: np.ndarray, frame: pl.DataFrame, path: Path, top: int = 12,
                      max_children: int = 5000) -> Path:
    """Beeswarm-style: per feature (by mean |contribution| over every child), each child's log-odds contribution,
    coloured by the feature's value (low blue -> high red; categorical features grey); at most `max_children`
    of them drawn, chosen at random (Essex's test cohort of ~19,000 made 230,000 points, a second to draw, and
    no clearer a picture)."""
    contrib = contrib[:, : len(FEATURES)]
    order = np.argsort(-np.abs(contrib).mean(axis=0))[:top][::-1]
    rng = np.random.default_rng(0)
    children = len(contrib)
    if children > max_children:
        drawn = np.sort(rng.choice(children, max_children, replace=False))
        contrib, frame = contrib[drawn], frame[drawn]
    fig = _figure(7, 0.4 * len(order) + 1.5)
    ax = fig.add_subplot()
    for row, j in enumerate(order):
        name = FEATURES[j]
        x = contrib[:, j]
        jitter = rng.uniform(-0.3, 0.3, len(x))
        if name in CATEGORICAL:
            ax.scatter(x, row + jitter, s=3, color="grey", alpha=0.5, linewidths=0)
        else:
            v = frame[name].cast(pl.Float64).fill_null(np.nan).to_numpy()
            lo, hi = np.nanmin(v) if np.isfinite(v).any() else 0, np.nanmax(v) if np.isfinite(v).any() else 1
            colour = (v - lo) / (hi - lo) if hi > lo else np.zeros_like(v)
            ax.scatter(x, row + jitter, s=3, c=np.nan_to_num(colour), cmap="coolwarm", vmin=0, vmax=1, alpha=0.6,
                       linewidths=0)
    ax.axvline(0, color="black", linewidth=0.6)
    ax.set_yticks(range(len(order)), [FEATURES[j] for j in order])
    ax.set_xlabel("contribution to log-odds of not reaching GLD (pred_contrib)")
    drawn_of = f" ({len(contrib):,} of {children:,} children)" if children > len(contrib) else ""
    ax.set_title(f"Feature contributions, test cohort{drawn_of}\ncolour: feature value, low blue, high red",
                 fontsize=10)
    return _save(fig, path)
