"""Evaluation figures as PNG files, drawn on matplotlib's Agg canvas (no pyplot, no global backend state)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import polars as pl
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from ed_pipeline.modelling.features import FEATURES
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


def shap_summary_plot(contrib: np.ndarray, path: Path, top: int = 12) -> Path:
    """Per feature (the `top` by it), the mean |log-odds contribution| over every child of the test cohort, as
    bars. Means over the whole cohort only: a beeswarm draws each child's contribution coloured by their value,
    which shows a rare value's children one by one (MLflow's artifacts are published figures, docs/privacy.md)."""
    contrib = contrib[:, : len(FEATURES)]
    mean_abs = np.abs(contrib).mean(axis=0) if len(contrib) else np.zeros(len(FEATURES))
    order = np.argsort(-mean_abs)[:top][::-1]
    fig = _figure(7, 0.4 * len(order) + 1.5)
    ax = fig.add_subplot()
    ax.barh(range(len(order)), mean_abs[order], color="tab:blue")
    ax.set_yticks(range(len(order)), [FEATURES[j] for j in order])
    ax.set_xlabel("mean |contribution| to log-odds of not reaching GLD (pred_contrib)")
    ax.set_title(f"Feature contributions, test cohort ({len(contrib):,} children)", fontsize=10)
    return _save(fig, path)
