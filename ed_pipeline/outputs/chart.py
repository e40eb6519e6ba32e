"""The ward-ranking chart: wards by mean predicted risk, highest on top, withheld wards marked."""

from __future__ import annotations

from pathlib import Path

import polars as pl

BAR_COLOUR = "#c0504d"
TOP_COLOUR = "#7b1e1b"


def ward_ranking_chart(community: pl.DataFrame, path: Path | str, *, title: str | None = None,
                       highlight: int = 3, top: int | None = None) -> Path:
    """Write a PNG of horizontal bars of mean predicted risk by ward (`community_risk` rows of level 'ward').

    Highest risk on top; the `highlight` highest in a darker colour; each label carries the ward's 95% rank
    interval (`rank_low`-`rank_high`) where the table has one; a ward whose mean is withheld (too few
    children) is listed at the bottom, marked '*' and without a bar. `top`: only the `top` highest wards, and
    no withheld one (a preview small enough to embed; all of Essex is some 280 wards). Returns `path`.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

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

    height = 0.35 * max(len(labels), 3) + 1.4
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
        ax.set_title(title or "Wards by mean predicted risk (rank, 95% interval)", fontsize=11)
        # margins from the widest label, measured once: tight_layout laid out every tick label a second time
        # (a third of the 2.8-3.9 s the 180-ward chart of Essex took)
        renderer = fig.canvas.get_renderer()
        label_size = ax.yaxis.get_ticklabels()[0].get_fontsize() if labels else 10
        widths = (matplotlib.text.Text(text=label, fontsize=label_size, figure=fig).get_window_extent(renderer).width
                  for label in labels)
        widest = max(widths, default=0) / fig.dpi
        fig.subplots_adjust(left=min((widest + 0.25) / 8, 0.7), right=0.97,
                            top=1 - 0.45 / height, bottom=0.6 / height)
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(path, dpi=120)
    finally:
        plt.close(fig)
    return path
