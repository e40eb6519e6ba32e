"""The ward-ranking chart: wards by mean predicted risk, highest on top, withheld wards marked."""

from __future__ import annotations

import hashlib
import json
from importlib.metadata import version
from pathlib import Path

import polars as pl

BAR_COLOUR = "#c0504d"
TOP_COLOUR = "#7b1e1b"
DPI = 120
# The PNG's text chunk holding a digest of what it was drawn from (hex: one token of letters and digits, which is no
# name, nor a number the privacy audit could match: it reads images' text, and matches whole tokens)
DRAWN_FROM = "Drawn from"


def ward_ranking_chart(community: pl.DataFrame, path: Path | str, *, title: str | None = None,
                       highlight: int = 3, top: int | None = None) -> Path:
    """Write a PNG of horizontal bars of mean predicted risk by ward (`community_risk` rows of level 'ward').

    Highest risk on top; the `highlight` highest in a darker colour; each label carries the ward's 95% rank
    interval (`rank_low`-`rank_high`) where the table has one; a ward whose mean is withheld (too few
    children) is listed at the bottom, marked '*' and without a bar. `top`: only the `top` highest wards, and
    no withheld one (a preview small enough to embed; all of Essex is some 280 wards). Returns `path`.
    """
    wards = community.filter(pl.col("level") == "ward") if "level" in community.columns else community
    published = wards.filter(pl.col("mean_risk").is_not_null()).sort(["mean_risk", "area"], descending=[True, False])
    withheld = wards.filter(pl.col("mean_risk").is_null()).sort("area")
    if top is not None:
        title = title or (f"Top {min(top, published.height)} of {wards.height} wards by mean predicted risk "
                          "(rank, 95% interval)")
        published, withheld = published.head(top), withheld.clear()
    if {"rank", "rank_low", "rank_high"} <= set(published.columns):
        shown = [f"{a}  (rank {r}, {lo}-{hi})" if lo is not None else a for a, r, lo, hi in
                 published.select("area", "rank", "rank_low", "rank_high").iter_rows()]
    else:
        shown = published["area"].to_list()
    labels = shown + [f"{a} *" for a in withheld["area"].to_list()]
    values = published["mean_risk"].to_list() + [0.0] * withheld.height
    colours = [TOP_COLOUR if i < highlight else BAR_COLOUR for i in range(published.height)]
    colours += ["none"] * withheld.height
    title = title or "Wards by mean predicted risk (rank, 95% interval)"
    path = Path(path)
    # The Essex chart (181 wards) takes 1.7 s to draw, and a month without a new cohort leaves the table as it was
    drawn_from = _digest(labels, values, colours, published.height, title)
    if _drawn_from(path) == drawn_from:
        return path

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    height = 0.35 * max(len(labels), 3) + 1.4
    # whole or not at all: a chart cut short by a kill would carry its digest and never be drawn again
    partial = path.with_name(f".{path.name}.partial")
    fig, ax = plt.subplots(figsize=(8, height))
    try:
        positions = list(range(len(labels)))
        ax.barh(positions, values, color=colours, edgecolor=["none"] * published.height + ["grey"] * withheld.height)
        ax.set_yticks(positions, labels)
        ax.set_ylim(len(labels) - 0.5, -0.5)  # rank 1 on top, and no empty band above or below the bars
        for pos, value in zip(positions[: published.height], values, strict=False):
            ax.text(value, pos, f" {value:.0%}", va="center", fontsize=8)  # the mean is to 2 decimals
        for pos in positions[published.height:]:
            ax.text(0, pos, " withheld (small numbers)", va="center", fontsize=8, color="grey")
        ax.set_xlabel("mean predicted risk of not reaching a Good Level of Development")
        ax.xaxis.set_major_formatter(matplotlib.ticker.PercentFormatter(1.0))
        ax.set_xlim(0, max(values + [0.01]) * 1.2)
        ax.set_title(title, fontsize=11)
        # margins from the widest label, measured once: tight_layout laid out every tick label a second time
        # (a third of the 2.8-3.9 s the 180-ward chart of Essex took)
        renderer = fig.canvas.get_renderer()
        label_size = ax.yaxis.get_ticklabels()[0].get_fontsize() if labels else 10
        widths = (matplotlib.text.Text(text=label, fontsize=label_size, figure=fig).get_window_extent(renderer).width
                  for label in labels)
        widest = max(widths, default=0) / fig.dpi
        fig.subplots_adjust(left=min((widest + 0.25) / 8, 0.7), right=0.97,
                            top=1 - 0.45 / height, bottom=0.6 / height)
        path.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(partial, format="png", dpi=DPI, metadata={DRAWN_FROM: drawn_from})
        partial.replace(path)
    finally:
        plt.close(fig)
        partial.unlink(missing_ok=True)  # a failed write's
    return path


def _digest(labels: list[str], values: list[float], colours: list[str], bars: int, title: str) -> str:
    """What a chart is drawn from, the code drawing it and matplotlib's version (SHA-256, hex)."""
    payload = json.dumps([labels, values, colours, bars, title, DPI, version("matplotlib"),
                          Path(__file__).read_text(encoding="utf-8")])
    return hashlib.sha256(payload.encode()).hexdigest()


def _drawn_from(path: Path) -> str | None:
    """The digest a chart at `path` was drawn from (None: no file, not a PNG, or drawn before it was recorded)."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as image:
            return image.info.get(DRAWN_FROM)
    except (OSError, UnidentifiedImageError):
        return None
