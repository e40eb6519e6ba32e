"""The cost model of docs/scaling.md, fitted to the full-refresh benchmark's figures at several scales.

    .venv/bin/python benchmarks/full_refresh.py --people 100000     # and 500000, 1500000: the figures
    .venv/bin/python benchmarks/scaling_fit.py                       # reads data/benchmarks/full_refresh/*/
    .venv/bin/python benchmarks/scaling_fit.py --at 56 a.json b.json c.json

For each stage of a refresh (the full refresh and the one-month refresh), CPU seconds and wall seconds are
fitted by least squares as `c0 + c1 * n`, n in millions of residents, over every scale measured (each scale's
`figures.json`, as `full_refresh.py` writes it), and extrapolated to `--at` millions (England: 56). The fit is
linear: it cannot show linkage's growth in pairs past one county (docs/scaling.md, "Linkage"), nor a stage that
stops fitting on one machine. Each row says how far the line misses its own points (the largest miss, as a
share of the measured figure), so a stage the line does not describe is seen as such.

Only refreshes of one kind are fitted together: full refreshes over the same landed months, and months that are
the same month refreshed the same way (by the landing sensor or by `ed-pipeline refresh`). A world's
`figures.json` is that of its last benchmark run, so a `--months 12`, `--hold-back` or `--month-by cli` run at one
scale would otherwise be fitted with the single Julys of the others (a year's run holds back twelve months and
its month is the first of them): the fit names the files that differ and what in them, and leaves out what it
cannot fit.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

DEFAULT_GLOB = "data/benchmarks/full_refresh/*/figures.json"
ENGLAND_MILLIONS = 56.0
# stage groups, in the order of a refresh: the prefix of the benchmark's stage name -> the group's name
GROUPS = (
    ("raw", "raw"),
    ("validated + quarantine", "validated + quarantine (GX)"),
    ("pseudonymised", "pseudonymised (+ partition leak scan)"),
    ("linked", "linked (Splink, households)"),
    ("features", "features (dbt build)"),
    ("model", "model (LightGBM + MLflow)"),
    ("outputs", "outputs"),
    ("no_identifiers_anywhere", "privacy audit"),
)
OVERHEAD = "start-up, run set-up, Dagster events"


def full_kind(figures: dict) -> str:
    """What the full refresh of `figures` covered: the months landed, up to the month held back."""
    world = figures.get("world") or {}
    return f"{world.get('landed_months', '?')} months landed, {world.get('held_back_month', '?')} on held back"


def month_kind(figures: dict) -> str:
    """Which month `figures`' one-month refresh released, and how it was run (figures of before
    `month_by` was recorded: from the command line)."""
    month = (figures.get("incremental") or {}).get("month") or (figures.get("world") or {}).get("held_back_month")
    how = figures.get("month_by") or ("cli" if "--month-by cli" in figures.get("command", "") else "sensor")
    return f"the month {month or '?'} by the {'command' if how == 'cli' else 'landing sensor'}"


def code_of(figures: dict) -> str:
    """The code `figures` measured (recorded since session 33): its commit, marked where the checkout differed."""
    code = figures.get("code") or {}
    if not code.get("commit"):
        return "code not recorded"
    return f"code {code['commit'][:12]}{' with changes' if code.get('dirty') else ''}"


def one_kind(figures: list[dict], paths: list[Path], kind) -> str | None:
    """None when every one of `figures` is of one `kind`; else a message naming each file's."""
    kinds = [kind(f) for f in figures]
    if len(set(kinds)) == 1:
        return None
    return "\n".join(f"  {path} ({f['people']:,} residents): {k}" for f, path, k in
                     zip(figures, paths, kinds, strict=True))


def group_of(stage: str) -> str:
    for prefix, name in GROUPS:
        if stage.startswith(prefix):
            return name
    return OVERHEAD


def stage_totals(refresh: dict) -> dict[str, dict[str, float]]:
    """{group: {"cpu": s, "wall": s}} summed over every run and step of one refresh (subtotal rows left out)."""
    out: dict[str, dict[str, float]] = {}
    for row in refresh["stages"]:
        if row.get("subtotal"):
            continue
        totals = out.setdefault(group_of(row["stage"]), {"cpu": 0.0, "wall": 0.0})
        totals["cpu"] += row.get("cpu_s") or 0.0
        totals["wall"] += row.get("wall_s") or 0.0
    return out


def fit_line(xs: list[float], ys: list[float]) -> tuple[float, float]:
    """Least-squares intercept and slope (the line through both points when there are two), the slope at least
    0: a stage that measured cheaper at a larger scale is a fixed cost with noise (its mean), not one that a
    larger county makes free."""
    n = len(xs)
    mx, my = sum(xs) / n, sum(ys) / n
    sxx = sum((x - mx) ** 2 for x in xs)
    if sxx == 0:
        raise ValueError("the figures are all of one scale: measure at least two")
    slope = sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / sxx
    return (my, 0.0) if slope < 0 else (my - slope * mx, slope)


def worst_miss(xs: list[float], ys: list[float], c0: float, c1: float) -> float:
    """The largest |fitted - measured| / measured over the points (0 when every point is 0)."""
    return max((abs(c0 + c1 * x - y) / y for x, y in zip(xs, ys, strict=True) if y), default=0.0)


def fit(figures: list[dict], refresh: str, at: float) -> list[dict]:
    """One row per stage group (and the total): measured CPU and wall per scale, the fitted lines, the
    extrapolation to `at` millions of residents."""
    figures = sorted(figures, key=lambda f: f["people"])
    xs = [f["people"] / 1e6 for f in figures]
    per_scale = [stage_totals(f[refresh]) for f in figures]
    names = [name for _, name in GROUPS] + [OVERHEAD]
    rows = []
    for name in [*names, "total"]:
        row: dict = {"stage": name, "people": [f["people"] for f in figures]}
        for measure in ("cpu", "wall"):
            if name == "total":
                ys = [sum(t[measure] for t in totals.values()) for totals in per_scale]
            else:
                ys = [totals.get(name, {}).get(measure, 0.0) for totals in per_scale]
            c0, c1 = fit_line(xs, ys)
            row[measure] = {"measured": ys, "c0": c0, "c1": c1, "miss": worst_miss(xs, ys, c0, c1),
                            "at": c0 + c1 * at}
        rows.append(row)
    return rows


def table(rows: list[dict], figures: list[dict], refresh: str, at: float) -> str:
    scales = [f"{f['people'] / 1e6:g}M" for f in sorted(figures, key=lambda f: f["people"])]
    head = (f"| stage | CPU s at {', '.join(scales)} | c0 (s) | c1 (s per M) | worst miss | CPU s at {at:g}M "
            f"| CPU-hours | wall s at {', '.join(scales)} | wall s at {at:g}M |")
    lines = [f"{refresh} refresh", "", head, "|---|---|---:|---:|---:|---:|---:|---|---:|"]
    for r in rows:
        cpu, wall = r["cpu"], r["wall"]
        bold = "**" if r["stage"] == "total" else ""
        lines.append(
            f"| {bold}{r['stage']}{bold} | {' / '.join(f'{y:,.1f}' for y in cpu['measured'])} | {cpu['c0']:,.1f} "
            f"| {cpu['c1']:,.1f} | {cpu['miss']:.0%} | {bold}{cpu['at']:,.0f}{bold} | {cpu['at'] / 3600:,.2f} "
            f"| {' / '.join(f'{y:,.1f}' for y in wall['measured'])} | {wall['at']:,.0f} |")
    return "\n".join(lines)


def month_share(full: dict, month: dict) -> str:
    """The one-month refresh as a share of the full refresh (two rows of `fit`): measured at each scale that has
    both (wall), and where the fitted lines take it as the county grows (their slopes' ratio, CPU and wall)."""
    full_wall = dict(zip(full["people"], full["wall"]["measured"], strict=True))
    measured = ", ".join(f"{wall / full_wall[n]:.1%} at {n / 1e6:g}M"
                         for n, wall in zip(month["people"], month["wall"]["measured"], strict=True) if n in full_wall)
    limit = {k: month[k]["c1"] / full[k]["c1"] for k in ("cpu", "wall") if full[k]["c1"]}
    return (f"month / full refresh (wall): {measured}; as residents grow it tends to "
            + ", ".join(f"{v:.0%} ({k})" for k, v in limit.items()))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("figures", nargs="*", type=Path, help=f"figures.json files (default: {DEFAULT_GLOB})")
    p.add_argument("--at", type=float, default=ENGLAND_MILLIONS, help="millions of residents to extrapolate to")
    args = p.parse_args(argv)
    paths = args.figures or sorted(Path().glob(DEFAULT_GLOB))
    figures = [json.loads(path.read_text()) for path in paths]
    if len({f["people"] for f in figures}) < 2:
        print(f"need figures at two scales or more, found {[str(p) for p in paths]}", file=sys.stderr)
        return 2
    if differ := one_kind(figures, paths, full_kind):
        print(f"the full refreshes are not of one kind, so no line fits them:\n{differ}\nmeasure each scale with "
              "the same options, or name the figures.json files of one kind", file=sys.stderr)
        return 2
    for f, path in zip(figures, paths, strict=True):
        print(f"{path}: {f['people']:,} residents, measured {f.get('measured_at')}, {code_of(f)}, {f.get('command')}")
    if differ := one_kind(figures, paths, code_of):  # fitted all the same: close commits often measure alike
        print(f"the figures measured different code, so the lines mix its changes with the scales':\n{differ}",
              file=sys.stderr)
    totals = {}
    for refresh in ("full", "incremental"):
        usable = [(f, path) for f, path in zip(figures, paths, strict=True) if f.get(refresh)
                  and f[refresh].get("stages")]
        if len({f["people"] for f, _ in usable}) < 2:
            continue
        if refresh == "incremental" and (differ := one_kind([f for f, _ in usable], [p for _, p in usable],
                                                             month_kind)):
            print(f"\nthe months are not one month refreshed one way, so they are not fitted:\n{differ}",
                  file=sys.stderr)
            continue
        rows = fit([f for f, _ in usable], refresh, args.at)
        totals[refresh] = rows[-1]
        print()
        print(table(rows, [f for f, _ in usable], refresh, args.at))
    if len(totals) == 2:
        print()
        print(month_share(totals["full"], totals["incremental"]))
    peaks = sorted((f["people"] / 1e6, f["full"]["peak_process_rss_bytes"] / 1e9) for f in figures)
    c0, c1 = fit_line(*map(list, zip(*peaks, strict=True)))
    print(f"\npeak memory of the full refresh (GB, largest process): "
          f"{', '.join(f'{y:.2f} at {x:g}M' for x, y in peaks)}; fitted {c0:.2f} + {c1:.2f} * n: "
          f"{c0 + c1 * args.at:,.0f} GB at {args.at:g}M in one process")
    return 0


if __name__ == "__main__":
    sys.exit(main())
