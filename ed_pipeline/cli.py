"""The `ed-pipeline` command."""

from __future__ import annotations

import argparse
import logging
import sys
import time
import warnings

import duckdb
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from ed_pipeline.settings import DEFAULT_LAST_MONTH, FIRST_MONTH, LANDING_NAME_RULE, Settings, is_partition_month

console = Console(stderr=True)


def cmd_synth(args: argparse.Namespace, settings: Settings) -> int:
    from ed_pipeline.synth import ErrorRates, SynthConfig, generate

    errors = ErrorRates.none() if args.clean else ErrorRates()
    # months refresh would leave out (before FIRST_MONTH, this month or later) make a world it cannot ingest whole
    outside = [m for m in (args.first_month, args.last_month) if not is_partition_month(m)]
    if outside:
        _error(f"{', '.join(outside)}: months must be YYYY-MM from {FIRST_MONTH} to last month, the months "
               "`ed-pipeline refresh` ingests")
        return 2
    try:
        config = SynthConfig(people=args.people, seed=args.seed, first_month=args.first_month,
                             last_month=args.last_month, errors=errors)
    except ValueError as exc:  # too few people, or the last month before the first: said, not a traceback
        _error(exc)
        return 2
    console.print(f"[bold]Synthesising[/] {args.people:,} residents, seed {args.seed}, "
                  f"{args.first_month} to {args.last_month} -> {settings.landing_dir}")
    t0 = time.perf_counter()
    with console.status("generating...") as status:
        summary = generate(config, settings.landing_dir, settings.truth_dir,
                           progress=lambda msg: status.update(msg))
    kept = summary.files - summary.files_written
    console.print(f"done in {time.perf_counter() - t0:.1f}s: {summary.files_written} of {summary.files} extracts "
                  "written" + (f"; {kept} already held the same bytes and were left as they were (nothing new for "
                               "the refresh)" if kept else ""))
    console.print(vars(summary))
    return 0


def cmd_keygen(args: argparse.Namespace, settings: Settings) -> int:
    from ed_pipeline.privacy import ensure_key_file, key_fingerprint

    existed = settings.demo_key_file.exists()
    key = ensure_key_file(settings.demo_key_file)
    verb = "kept the existing" if existed else "created a random"
    console.print(f"{verb} demo pseudonymisation key at {settings.demo_key_file} (mode 0600, fingerprint "
                  f"{key_fingerprint(key)}). For real data set ED_PSEUDO_KEY from your key custodian instead.")
    return 0


def cmd_dagster_home(args: argparse.Namespace, settings: Settings) -> int:
    from ed_pipeline.refresh import ensure_dagster_home

    # stdout, the path alone: `make dagster` starts `dagster dev` with DAGSTER_HOME=$(ed-pipeline dagster-home), so
    # that the UI's instance runs one run at a time (DuckDB: one writer per file) even before the first refresh
    print(ensure_dagster_home(settings))
    return 0


def _reasons(count: int, why: dict[str, int]) -> str:
    """Why `count` months are ingested ({reason: months}, `refresh.months_to_ingest`): 'new' or '1 replaced, 1 new'."""
    return ", ".join(reason if count == 1 else f"{n} {reason}" for reason, n in why.items())


def _ingested(months: list[str], why: dict[str, int]) -> str:
    """What a source's ingest ran and why, as the refresh reports it: '2018-07: new', '2 months: 1 replaced, 1 new'
    or '66 months' (--full)."""
    what = months[0] if len(months) == 1 else f"{len(months)} months"
    reasons = _reasons(len(months), why)
    return f"{what}: {reasons}" if reasons else what


def _spans(months: list[str]) -> str:
    """Months (in order) as runs of consecutive ones: '2013-01 to 2018-06, 2018-08'."""
    from ed_pipeline.refresh import _ranges
    from ed_pipeline.settings import month_range

    runs = _ranges(months, month_range(months[0], months[-1])) if months else []
    return ", ".join(run[0] if len(run) == 1 else f"{run[0]} to {run[-1]}" for run in runs)


def _dry_run(settings: Settings) -> int:
    """`ed-pipeline refresh --dry-run`: what a refresh would ingest now and whether it would analyse, and why;
    nothing is run or written."""
    from collections import Counter

    from ed_pipeline.refresh import pending

    if not settings.landed_months():
        _error(f"no extracts found under {settings.landing_dir}; run `ed-pipeline synth` first or drop files there")
        return 2
    wanted, analyse = pending(settings)
    table = Table(title="what `ed-pipeline refresh` would run")
    for column in ("source", "months", "why"):
        table.add_column(column)
    for source, months in wanted.items():
        table.add_row(source, _spans(list(months)) or "-",
                      _reasons(len(months), Counter(months.values())) if months else "up to date")
    table.add_row("analyse (linking onwards)", "whole history" if analyse else "-", analyse or "up to date")
    Console().print(table)
    return 0


def _error(message: object) -> None:
    """An error on one line, never wrapped or read as markup (tests and log scrapers match it whole)."""
    console.print("[red]error:[/]", escape(str(message)), soft_wrap=True)


def _in_use(exc: duckdb.IOException) -> str:
    """A DuckDB file error as said to the user: a lock held by another process (a refresh, `dagster dev`) is the
    usual one, and waiting is its remedy."""
    hint = ("; another process is writing to it (a refresh, or `dagster dev`): run this again when it has finished"
            if "lock" in str(exc).lower() else "")
    return f"{exc}{hint}"


def cmd_refresh(args: argparse.Namespace, settings: Settings) -> int:
    from ed_pipeline.resilience import ChildProcessDied, DiskFullError, RefreshBusyError, refresh_lock

    try:  # before loading anything heavy: a second refresh on the same data directory is refused at once
        with refresh_lock(settings.data_dir):
            return _dry_run(settings) if args.dry_run else _refresh_locked(args, settings)
    except (RefreshBusyError, DiskFullError) as exc:
        _error(exc)
        return 2
    except ChildProcessDied as exc:  # killed from outside, or by the kernel for want of memory, or stopped
        from ed_pipeline.refresh import StageStopped

        cause = "" if isinstance(exc, StageStopped) else (
            ": killed, or out of memory (see `dmesg`; ED_LINKAGE_MEMORY_LIMIT bounds linkage's share)")
        _error(f"{exc}{cause}. What it committed stands: run `ed-pipeline refresh` again to finish")
        return 2


def _refresh_locked(args: argparse.Namespace, settings: Settings) -> int:
    from ed_pipeline.refresh import MissingKeyError, layer_counts, linkage_summary, model_summary, refresh

    def report(source: str, outcome) -> None:
        if outcome is None:
            console.print(f"  [cyan]>[/] {source} ...")
        elif outcome.success and not outcome.failed_checks:
            if outcome.up_to_date:
                why = f" ({outcome.reason})" if outcome.reason else ""
                console.print(f"  [green]ok[/] {source}: up to date{why}")
            elif outcome.months:
                console.print(f"  [green]ok[/] {source} ({_ingested(outcome.months, outcome.why)}; "
                              f"{outcome.seconds:.1f}s)")
            else:
                console.print(f"  [green]ok[/] {source} ({outcome.reason + '; ' if outcome.reason else ''}"
                              f"{outcome.seconds:.1f}s)")
        else:
            detail = ", ".join(outcome.failed_checks) or "run failed: see the run in the Dagster UI"
            console.print(f"  [red]FAILED[/] {source} ({outcome.seconds:.1f}s): {detail}", soft_wrap=True)
        if outcome is not None and outcome.unreadable_months:
            console.print(f"    {source}: unreadable file(s) for {', '.join(outcome.unreadable_months)} left out "
                          f"(named in raw/{source}:extract_readable); its other months were loaded", soft_wrap=True)
        if outcome is not None and outcome.kept_months:
            console.print(f"    {source}: no file in landing/ for {', '.join(outcome.kept_months)}: kept as loaded "
                          "before (a file with only the header would empty a month)", soft_wrap=True)

    try:
        months = settings.landed_months()
        stage = f" ({args.only} only)" if args.only else ""
        which = "" if args.only == "analyse" else (": every one ingested again" if args.full else
                                                   ": those new or changed since loaded are ingested")
        console.print(f"[bold]Refreshing[/]{stage} {len(months)} landed month(s) of extracts in "
                      f"{settings.landing_dir}{which}")
        misnamed = settings.misnamed_landing_files()
        if misnamed:  # never ingested: said, so that a file is not lost for want of a name
            names = ", ".join(settings.landing_name(p) for p in misnamed)
            console.print(f"[yellow]left out[/] (not named {LANDING_NAME_RULE}; rename or remove): {escape(names)}",
                          soft_wrap=True)
        result = refresh(settings, progress=report, only=args.only, full=args.full)
    except (FileNotFoundError, MissingKeyError) as exc:
        _error(exc)
        return 2

    table = Table(title=f"after refresh ({result.months[0]} to {result.months[-1]})")
    columns = {"raw": "raw rows", "validated": "validated records", "quarantine": "quarantined rows",
               "pseudonymised": "pseudonymised records"}
    table.add_column("source")
    for title in columns.values():
        table.add_column(title, justify="right")
    rows = layer_counts(settings)
    for row in rows:
        table.add_row(row["source"], *("-" if row.get(c) is None else f"{row[c]:,}" for c in columns))
    table.add_row("[bold]total", *(f"[bold]{sum(r.get(c) or 0 for r in rows):,}" for c in columns))
    Console().print(table)
    linkage = linkage_summary(settings)
    if linkage:
        Console().print("linked: " + ", ".join(f"{v:,} {k}" for k, v in linkage.items() if v is not None))
    metrics, wards = model_summary(settings)
    if metrics:
        Console().print("model (test cohort): " + ", ".join(f"{k} {v:.3f}" for k, v in sorted(metrics.items())))
    if wards:
        Console().print("highest-risk wards: " + "; ".join(f"{r}. {a} ({m:.3f})" for r, a, m in wards))
    console.print("Open the UIs: make dagster (http://localhost:3000), make mlflow (http://localhost:5000)")
    failed = [o for o in result.outcomes if not o.success or o.failed_checks]
    console.print(f"{len(result.outcomes) - len(failed)}/{len(result.outcomes)} steps succeeded "
                  f"in {result.seconds:.1f}s. Explore: dagster dev -w workspace.yaml")
    return 1 if failed else 0


def cmd_evaluate(args: argparse.Namespace, settings: Settings) -> int:
    """Linkage and model against the synthetic world's truth; reports, never gates (exit 0 unless it cannot run)."""
    from ed_pipeline.evaluation import LINKAGE_GOALS, evaluate_linkage, evaluate_model

    try:
        metrics = evaluate_linkage(settings)
    except (FileNotFoundError, duckdb.CatalogException) as exc:
        console.print(f"[red]error:[/] {exc}")
        return 2
    except duckdb.IOException as exc:  # the warehouse locked by a refresh: said, not a traceback
        _error(_in_use(exc))
        return 2
    table = Table(title="linkage against the synthetic world's truth")
    table.add_column("measure")
    table.add_column("value", justify="right")
    table.add_column("goal", justify="right")
    for name, value in metrics.items():
        goal = LINKAGE_GOALS.get(name)
        shown = f"{value:.4f}" if isinstance(value, float) else f"{value:,}"
        mark = "" if goal is None else (f"[green]>= {goal}[/]" if value >= goal else f"[red]>= {goal}[/]")
        table.add_row(name, shown, mark)
    Console().print(table)
    if args.linkage_only:
        return 0

    try:
        with console.status("training the same model on features built from the true linkage..."):
            model = evaluate_model(settings, dbt_command="build" if args.dbt_tests else "run")
    except (FileNotFoundError, ValueError, RuntimeError, duckdb.CatalogException) as exc:
        console.print(f"[red]error:[/] {exc}")
        return 2
    except duckdb.IOException as exc:
        _error(_in_use(exc))
        return 2
    table = Table(title=f"model on test cohort {model['test_cohort']} (MLflow run {model['mlflow_run_id']})")
    for col in ("", "children", "ROC AUC", "ECE"):
        table.add_column(col, justify="left" if not col else "right")

    def row(label: str, n, auc, ece) -> None:
        table.add_row(label, "" if n is None else f"{int(n):,}", f"{auc:.4f}", "" if ece is None else f"{ece:.4f}")

    row("oracle: the generator's true probabilities", model["oracle_test_n"], model["oracle_test_roc_auc"],
        model["oracle_test_ece"])
    row("same model, true linkage", model["truelink_test_n"], model["truelink_test_roc_auc"],
        model["truelink_test_ece"])
    row("[bold]this refresh's model[/]", model["test_n"], model["test_roc_auc"], model["test_ece"])
    row("baseline (logistic regression)", model["test_n"], model["baseline_test_roc_auc"], None)
    Console().print(table)
    goals = Table(title="model goals")
    for col in ("goal", "value", "target", "met"):
        goals.add_column(col, justify="left" if col == "goal" else "right")
    for name, g in model["goals"].items():
        goals.add_row(name, f"{g['value']:+.4f}" if name.startswith("auc") else f"{g['value']:.4f}", g["goal"],
                      "[green]yes[/]" if g["passed"] else "[red]no[/]")
    Console().print(goals)
    console.print(f"oracle and true-linkage figures logged to MLflow run {model['mlflow_run_id']} "
                  f"(true-linkage features {model['truelink_features_seconds']:.1f}s, "
                  f"training {model['truelink_training_seconds']:.1f}s)")
    return 0


def cmd_reidentify(args: argparse.Namespace, settings: Settings) -> int:
    """Agency-side: list this agency's highest-risk children by name for a practitioner; every call is audited."""
    import os

    from ed_pipeline.privacy import InvalidKeyError, load_key
    from ed_pipeline.refresh import MissingKeyError, provide_pseudo_key
    from ed_pipeline.reidentify import AUDIT_TABLE, ReidentifyError, reidentify

    try:
        provide_pseudo_key(settings)
        review = reidentify(settings, args.source, args.top, load_key(os.environ["ED_PSEUDO_KEY"]),
                            reviewer=args.reviewer, purpose=args.purpose)
    except (MissingKeyError, InvalidKeyError, ReidentifyError) as exc:
        console.print(f"[red]error:[/] {exc}")
        return 2
    except duckdb.IOException as exc:  # a zone locked by a refresh (the call is audited as failed)
        _error(_in_use(exc))
        return 2
    table = Table(title=f"{args.source}: the {args.top} highest-risk children it holds records of, for review")
    for col in ("rank", "risk", "band", "top factors", "name", "date of birth", "record id(s)"):
        # names and ids wrap rather than being cut short: a practitioner must read them whole
        table.add_column(col, justify="right" if col in ("rank", "risk") else "left", overflow="fold")
    for row in review.listing.iter_rows(named=True):
        factors = row["top_factors"]
        factors = ", ".join(map(str, factors)) if isinstance(factors, list) else (factors or "")
        table.add_row(str(row["rank"]), f"{row['risk']:.2f}", str(row["band"]), factors,
                      f"{row['given_name']} {row['family_name']}", str(row["date_of_birth"]), row["record_ids"])
    Console(width=max(Console().width, 160)).print(table)  # never cut a name short, even in a pipe
    note = (f" ({review.unmatched_records} record(s) not shown: their identity changed since they were linked, "
            "so the score may be somebody else's; look them up by hand)") if review.unmatched_records else ""
    console.print(f"{review.listing.height} of {review.flagged_children} scored children with {args.source} "
                  f"records listed{note}. This call is recorded in {AUDIT_TABLE} in the agency zone; "
                  "nothing was written to the warehouse. A practitioner reviews every flag before any action.")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="ed-pipeline", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    synth = sub.add_parser("synth", help="generate a synthetic Essex: agency extracts in landing/, truth in truth/")
    synth.add_argument("--people", type=int, default=100_000, help="residents (default 100,000)")
    synth.add_argument("--seed", type=int, default=42)
    synth.add_argument("--first-month", default=FIRST_MONTH)
    synth.add_argument("--last-month", default=DEFAULT_LAST_MONTH)
    synth.add_argument("--clean", action="store_true", help="no injected data-quality errors")
    synth.set_defaults(func=cmd_synth)

    keygen = sub.add_parser("keygen", help="create a random demo pseudonymisation key in secrets/ (if missing)")
    keygen.set_defaults(func=cmd_keygen)

    home = sub.add_parser("dagster-home", help="write the Dagster instance's dagster.yaml (one run at a time, "
                                               "the pooled event log, runs whose worker died marked failed) if "
                                               "missing or ours, and print DAGSTER_HOME")
    home.set_defaults(func=cmd_dagster_home)

    ev = sub.add_parser("evaluate", help="compare the linked layer and the model with the synthetic world's truth "
                                         "(logs the model's references to the refresh's MLflow run)")
    ev.add_argument("--linkage-only", action="store_true", help="only the linkage table (no model references)")
    ev.add_argument("--dbt-tests", action="store_true",
                    help="dbt build (models and their tests) for the true-linkage features instead of dbt run")
    ev.set_defaults(func=cmd_evaluate)

    ref = sub.add_parser("refresh", help="bring every asset up to date with the months in landing/: ingest what "
                                         "is new or changed, then link onwards (one refresh at a time per data "
                                         "directory)")
    ref.add_argument("--only", choices=("ingest", "analyse"),
                     help="only ingest (raw -> pseudonymised) or only analyse (linking onwards, over what the "
                          "warehouse holds), e.g. to finish a refresh that stopped after ingesting")
    ref.add_argument("--full", action="store_true",
                     help="ingest every landed month of every source again, not only the new or changed ones")
    ref.add_argument("--dry-run", action="store_true",
                     help="say which months of which sources a refresh would ingest now, whether it would link "
                          "onwards, and why; run nothing")
    ref.set_defaults(func=cmd_refresh)

    reid = sub.add_parser("reidentify", help="agency-side: list an agency's highest-risk children by name for "
                                             "human review (audited; nothing written to the warehouse)")
    reid.add_argument("--source", required=True, help="the agency's source, e.g. social_care")
    reid.add_argument("--top", type=int, default=50, help="how many children (default 50)")
    reid.add_argument("--reviewer", help="the practitioner reviewing (recorded in the audit)")
    reid.add_argument("--purpose", help="why (recorded in the audit)")
    reid.set_defaults(func=cmd_reidentify)
    return parser


def main(argv: list[str] | None = None) -> int:
    # Dagster flags beta parameters (backfill policies) on every import: noise for a user of this command.
    warnings.filterwarnings("ignore", message=".*is currently in beta")
    # Splink narrates training on the root logger; the model's own metadata keeps what matters.
    logging.getLogger("splink").setLevel(logging.ERROR)
    args = build_parser().parse_args(argv)
    return args.func(args, Settings.from_env())


if __name__ == "__main__":
    sys.exit(main())
