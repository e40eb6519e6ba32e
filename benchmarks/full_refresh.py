"""A full refresh and a one-month incremental refresh, timed stage by stage: wall, CPU and peak memory.

    .venv/bin/python benchmarks/full_refresh.py --people 100000
    .venv/bin/python benchmarks/full_refresh.py --people 1500000                 # all Essex
    .venv/bin/python benchmarks/full_refresh.py --people 1500000 --json /tmp/essex.json
    .venv/bin/python benchmarks/full_refresh.py --people 1500000 --hold-back 2018-06 --work /tmp/fr   # a month
                                                 # without a new EYFSP cohort (the last, 2018-07, brings one)
    .venv/bin/python benchmarks/full_refresh.py --people 100000 --months 12     # a year of monthly refreshes,
                                                 # one after another: does the month cost more as months pass?
    .venv/bin/python benchmarks/full_refresh.py --people 1500000 --month-by cli --again   # the month as
                                                 # `ed-pipeline refresh` runs it, then every month again (--full)
    .venv/bin/python benchmarks/full_refresh.py --people 1500000 --incremental-only --nothing-new   # then the
                                                 # command twice with nothing new: what a refresh costs when idle
    .venv/bin/python benchmarks/full_refresh.py --people 1500000 --code 6485390   # an earlier commit's code on
                                                 # the same world, for a before/after in the same hour

The world is synthesised once into `--work/<people>/` (default `data/benchmarks/full_refresh/<people>/`,
used as ED_DATA_DIR, with its own Dagster instance, warehouse and MLflow store; never `data/` itself) and
reused by later runs with the same people and seed. Each world has a dbt target of its own too
(`dbt_project/target/benchmark-<people>-<hash of its path>/`, unless DBT_TARGET_PATH is set), so that tests or
`make run` in the same checkout do not make its next refresh parse the dbt project whole (nor it theirs); its
first refresh parses it, within that refresh's figures. Each run starts from an empty pipeline state and:

1. holds back the last landed month (its files move to `held_back/`; `--hold-back` a given month and every
   later one, which stay held back throughout);
2. runs `ed_pipeline.refresh.refresh(full=True)` (what `ed-pipeline refresh --full` runs, and a first
   `ed-pipeline refresh`: the ingest job over every landed month, a run for the sources that share their months,
   then the analyse job) in a child process;
3. releases the held-back month (with `--months N`, each of N months in turn) and runs the incremental
   refresh, what the automation does when a month lands: the `landing_sensor`'s run for that one partition
   of every source (raw -> validated -> pseudonymised), then the analyse job (`linked.*` links only the new
   records with the saved model; dbt, the model, the outputs and the privacy audit run over the whole
   history), in a child process of its own; then, untimed, what the daemon's `record_analyses` sensor does
   after a passing analysis (records the state it left). `--month-by cli` runs `ed-pipeline refresh` instead,
   as a user does when the month has landed: one run of what is new (the month of every source, checked),
   then the analyse job.

How it measures. Each refresh runs in its own process so that its figures are its own. A sampler thread in
this process reads /proc every `--interval` seconds for the child and every process under it (dbt runs as a
grandchild): resident memory (summed over the tree) and CPU time (user + system, including reaped children).
After the child ends, the start and end of every step of every run are read from the child's Dagster
instance (`instance.get_run_step_stats`), and each step gets: its wall time (Dagster's own), the CPU time
spent in its window, the peak resident memory of the tree in its window, and the rise of that peak over the
memory held when the step began (what the step itself added: a long-lived process keeps memory it freed).
"outside steps" is each run's time not inside a step (run start and end, plan, resource set-up, event
writes); "start-up" is the child's imports before it starts refreshing (the full refresh then loads the
definitions, dbt manifest included, in each stage's own process: inside "before the run" of the stage's first
run; the incremental child loads them here). The totals
are exact: wall time of the child, CPU time and peak RSS of its process from `wait4` (the kernel's ru_maxrss
of the largest single process), beside the sampled peak of the whole tree. A step shorter than the interval
may miss its memory peak in the sampled figures; the exact process peak bounds them all.

The machine is shared: the 1-minute load average is recorded before and after each refresh, and what the rest
of the machine used meanwhile (/proc/stat: CPU seconds busy outside the refresh's processes and this one, and
the hypervisor's steal). A refresh beside which others took more than a tenth of the machine is marked busy:
its timings are upper bounds. The machine's pace changes from hour to hour even when nothing else runs, so
each refresh is preceded by a fixed piece of pure Python (`pace`, ~1 s, the interpreter being what most of a
month's fixed cost runs on): its time is recorded beside the refresh's, to tell a slow hour from slower code.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

BENCHMARK_KEY = "6b" * 32  # a fixed benchmark pseudonymisation key: tokens never leave --work
GOALS = {"full_refresh_max_s": 600.0, "peak_memory_max_bytes": 8 * 10**9, "incremental_max_share": 0.10}
# Everything a refresh writes under ED_DATA_DIR: removed before each measured run (landing/, truth/ and
# reference/ are the synthetic world and stay).
PIPELINE_STATE = ("agency_zone.duckdb", "agency_zone.duckdb.wal", "warehouse.duckdb", "warehouse.duckdb.wal",
                  "ops.duckdb", "ops.duckdb.wal", "dagster", "mlflow", "linkage", "models", "outputs", "gx_docs",
                  "audit")
SNAPSHOT = "after_full"  # the pipeline state right after the full refresh, for --incremental-only
ENV_OVERRIDES = ("ED_AGENCY_ZONE_DB", "ED_WAREHOUSE_DB", "ED_POSTCODE_DIRECTORY", "MLFLOW_TRACKING_URI")
PAGE = os.sysconf("SC_PAGE_SIZE")
TICK = os.sysconf("SC_CLK_TCK")
MIB = 2**20


# --- the world -------------------------------------------------------------------------------------------

def prepare_world(root: Path, people: int, seed: int, month: str | None = None, months: int = 1) -> dict:
    """Synthesise the world once (reused when world.json says it is this one); hold back its last `months` months
    (or `month` and every month after it)."""
    marker = root / "world.json"
    world = json.loads(marker.read_text()) if marker.exists() else {}
    if world.get("people") != people or world.get("seed") != seed:
        from ed_pipeline.synth import SynthConfig, generate

        shutil.rmtree(root, ignore_errors=True)
        root.mkdir(parents=True)
        t0 = time.perf_counter()
        generate(SynthConfig(people=people, seed=seed), root / "landing", root / "truth",
                 progress=lambda msg: print(f"  synth [{time.perf_counter() - t0:6.1f}s] {msg}", file=sys.stderr,
                                            flush=True))
        world = {"people": people, "seed": seed, "synth_s": round(time.perf_counter() - t0, 1)}
        marker.write_text(json.dumps(world))
    release_month(root, everything=True)  # a previous run may have stopped half way
    for name in PIPELINE_STATE:
        path = root / name
        shutil.rmtree(path) if path.is_dir() else path.unlink(missing_ok=True)
    world["held_back_month"] = hold_back(root, month, months)
    world["held_back_months"] = len({p.stem for p in (root / "held_back").glob("*/*.csv")})
    landing = root / "landing"
    world["landed_months"] = len({p.stem for p in landing.glob("*/*.csv")})
    world["landing_mib"] = round(sum(p.stat().st_size for p in landing.glob("*/*.csv")) / MIB, 1)
    return world


def hold_back(root: Path, month: str | None = None, months: int = 1) -> str:
    """Move the files of `month` (default: the `months`-th last landed month) and of every later month out of
    landing/."""
    files = sorted((root / "landing").glob("*/*.csv"))
    landed = sorted({p.stem for p in files})
    if month is None and not 1 <= months <= len(landed) - 1:
        raise SystemExit(f"cannot hold back {months} of the {len(landed)} months landed in {root / 'landing'}: "
                         "the full refresh needs one")
    month = month or landed[-months]
    if not any(p.stem == month for p in files):
        raise SystemExit(f"no extract of {month} in {root / 'landing'}")
    for path in files:
        if path.stem >= month:
            target = root / "held_back" / path.parent.name / path.name
            target.parent.mkdir(parents=True, exist_ok=True)
            path.rename(target)
    return month


def release_month(root: Path, everything: bool = False) -> list[str]:
    """Move the held-back files of the first held-back month (every one with `everything`) into landing/, as if
    the agencies had just dropped them; their months."""
    held = sorted((root / "held_back").glob("*/*.csv"))
    first = min((p.stem for p in held), default=None)
    months = set()
    for path in held:
        if path.stem != first and not everything:
            continue
        target = root / "landing" / path.parent.name / path.name
        target.parent.mkdir(parents=True, exist_ok=True)
        path.rename(target)
        os.utime(target)  # a freshly landed file
        months.add(path.stem)
    return sorted(months)


def copy_state(source: Path, target: Path) -> None:
    """Copy the pipeline state (PIPELINE_STATE) found in `source` into `target`."""
    for name in PIPELINE_STATE:
        path = source / name
        if path.is_dir():
            shutil.copytree(path, target / name, symlinks=True)
        elif path.exists():
            shutil.copy2(path, target / name)


def save_snapshot(root: Path, full: dict) -> None:
    """Keep a copy of the pipeline state after the full refresh (and its figures) for `--incremental-only`."""
    snapshot = root / SNAPSHOT
    shutil.rmtree(snapshot, ignore_errors=True)
    snapshot.mkdir()
    copy_state(root, snapshot)
    (snapshot / "full.json").write_text(json.dumps(full))


def restore_snapshot(root: Path) -> dict:
    """The pipeline state and figures of the last full refresh, back in place of the current state."""
    snapshot = root / SNAPSHOT
    if not (snapshot / "full.json").exists():
        raise SystemExit(f"no saved full refresh in {snapshot}: run without --incremental-only first")
    copy_state(snapshot, root)
    return json.loads((snapshot / "full.json").read_text())


def zone_digests(root: Path) -> dict[str, tuple[int, int]]:
    """Every table of the agency zone and the warehouse, "<database>:<schema>.<table>" -> (rows, a hash of their
    content without the columns that say when or in which run a row was written), outside any timed window."""
    from ed_pipeline.resilience import table_digests

    return {f"{name}:{table}": digest for name in ("agency_zone", "warehouse")
            for table, digest in table_digests(root / f"{name}.duckdb").items()}


# --- measuring a child process ---------------------------------------------------------------------------

def _read(path: str) -> str | None:
    try:
        with open(path) as f:
            return f.read()
    except OSError:
        return None


def process_tree(pid: int) -> list[int]:
    """pid and every process under it (via /proc/<pid>/task/<tid>/children)."""
    found, todo = [], [pid]
    while todo:
        p = todo.pop()
        found.append(p)
        try:
            tids = os.listdir(f"/proc/{p}/task")
        except OSError:
            continue
        for tid in tids:
            text = _read(f"/proc/{p}/task/{tid}/children")
            if text:
                todo += [int(c) for c in text.split()]
    return found


PACE_LOOPS = 6_000_000


def pace(loops: int = PACE_LOOPS) -> float:
    """CPU seconds this process takes for a fixed piece of pure Python (dict and string work in a loop)."""
    started, table = time.process_time(), {}
    for i in range(loops):
        table[i % 1024] = f"{i:x}"
    return round(time.process_time() - started, 3)


def machine_cpu() -> tuple[float, float]:
    """(CPU seconds the whole machine has been busy since boot, every process and the kernel; seconds the
    hypervisor stole from it): /proc/stat's first line, (0.0, 0.0) where there is none."""
    line = (_read("/proc/stat") or "cpu").splitlines()[0].split()[1:]
    ticks = [int(x) for x in line] + [0] * (8 - len(line))
    user, nice, system, _idle, _iowait, irq, softirq, steal = ticks[:8]  # guest time is inside user and nice
    return (user + nice + system + irq + softirq) / TICK, steal / TICK


def tree_usage(pid: int) -> tuple[int, float]:
    """(resident bytes summed over the tree, CPU seconds of the tree including reaped children)."""
    rss, ticks = 0, 0
    for p in process_tree(pid):
        statm, stat = _read(f"/proc/{p}/statm"), _read(f"/proc/{p}/stat")
        if not statm or not stat:
            continue
        rss += int(statm.split()[1]) * PAGE
        fields = stat[stat.rindex(")") + 2:].split()  # after "pid (comm) "; utime is field 14 of the line
        ticks += sum(int(x) for x in fields[11:15])  # utime, stime, cutime, cstime
    return rss, ticks / TICK


class Sampler(threading.Thread):
    def __init__(self, pid: int, interval: float):
        super().__init__(daemon=True)
        self.pid, self.interval = pid, interval
        self.samples: list[tuple[float, int, float]] = []  # (epoch seconds, tree RSS bytes, tree CPU seconds)
        self.done = threading.Event()

    def run(self) -> None:
        while not self.done.is_set():
            rss, cpu = tree_usage(self.pid)
            if rss:
                self.samples.append((time.time(), rss, cpu))
            self.done.wait(self.interval)


def child_env(root: Path) -> dict[str, str]:
    """The environment of a refresh of the world at `root`: its data directory, Dagster instance and key, and a dbt
    target of its own (`DBT_TARGET_PATH`, unless set): dbt parses partially only with the profile of the last parse
    in a target, so a world that shared `target/` with tests, `make run` or another world would parse the project
    whole at its next refresh, inside the figures."""
    env = {k: v for k, v in os.environ.items() if k not in ENV_OVERRIDES}
    env.update(ED_DATA_DIR=str(root), DAGSTER_HOME=str(root / "dagster"), ED_PSEUDO_KEY=BENCHMARK_KEY,
               PYTHONUNBUFFERED="1")
    env.setdefault("DBT_TARGET_PATH", dbt_target(root))
    return env


def dbt_target(root: Path) -> str:
    """The world's dbt target, relative to the dbt project: named by the world's path."""
    path = str(root.resolve())
    return f"target/benchmark-{root.name}-{hashlib.sha256(path.encode()).hexdigest()[:8]}"


# --- the code measured ------------------------------------------------------------------------------------

CHECKOUT = Path(__file__).resolve().parents[1]
CODE_ENV = "ED_BENCHMARK_CODE"  # the commit held by a tree made by --code (it has no .git of its own)


def code_identity(checkout: Path = CHECKOUT) -> dict:
    """The code measured (figures.json's `code`): its commit, and whether the checkout's tracked files differ
    from it."""
    if os.environ.get(CODE_ENV):
        return {"commit": os.environ[CODE_ENV], "dirty": False, "tree": str(checkout)}
    try:
        return {"commit": _git(checkout, "rev-parse", "HEAD"),
                "dirty": bool(_git(checkout, "status", "--porcelain", "--untracked-files=no"))}
    except (OSError, subprocess.CalledProcessError):  # not a git checkout
        return {"commit": None, "dirty": None}


def _git(checkout: Path, *command: str) -> str:
    return subprocess.run(["git", "-C", str(checkout), *command], capture_output=True, text=True,
                          check=True).stdout.strip()


def code_tree(rev: str, work: Path, checkout: Path = CHECKOUT) -> tuple[str, Path]:
    """The commit `rev` of `checkout` as a tree of its own, `<work>/code/<commit>/` (made once, then reused):
    `git archive`, with its bytecode compiled (these machines set PYTHONDONTWRITEBYTECODE, and a tree without it
    compiles every import in every process: seconds of every refresh)."""
    found = subprocess.run(["git", "-C", str(checkout), "rev-parse", "--verify", "--quiet", f"{rev}^{{commit}}"],
                           capture_output=True, text=True)
    if found.returncode != 0:
        raise SystemExit(f"--code {rev}: not a commit of {checkout}")
    commit = found.stdout.strip()
    tree = (work / "code" / commit[:12]).resolve()
    if not (tree / "benchmarks" / "full_refresh.py").exists():
        partial = tree.with_name(f"{tree.name}.partial")
        shutil.rmtree(partial, ignore_errors=True)
        partial.mkdir(parents=True)
        archive = subprocess.Popen(["git", "-C", str(checkout), "archive", commit], stdout=subprocess.PIPE)
        try:
            untarred = subprocess.run(["tar", "-x", "-C", str(partial)], stdin=archive.stdout).returncode
        finally:
            archive.stdout.close()  # a tar that stopped early must not leave git blocked on a pipe no one reads
        if archive.wait() != 0 or untarred != 0:
            raise SystemExit(f"--code {rev}: could not unpack {commit[:12]} into {partial}")
        if not (partial / "benchmarks" / "full_refresh.py").exists():
            raise SystemExit(f"--code {rev}: {commit[:12]} has no benchmarks/full_refresh.py to run")
        subprocess.run([sys.executable, "-m", "compileall", "-q", "ed_pipeline", "benchmarks"], cwd=partial,
                       check=True, stdout=subprocess.DEVNULL)
        partial.rename(tree)
    return commit, tree


def argv_for_tree(argv: list[str], work: Path, json_path: Path | None) -> list[str]:
    """The arguments of this run for the benchmark of another tree: without --code, the paths made absolute
    (it runs from that tree)."""
    out, skip = [], False
    for arg in argv:
        if skip:
            skip = False
        elif arg in ("--code", "--work", "--json"):
            skip = True
        elif not arg.startswith(("--code=", "--work=", "--json=")):
            out.append(arg)
    return [*out, "--work", str(work), *(["--json", str(json_path)] if json_path else [])]


def run_code(args: argparse.Namespace, argv: list[str]) -> int:
    """This run, measured on the code of `args.code`: its benchmark from its own tree, with this checkout's
    interpreter and packages; the world, its dbt target (parsed partially as here) and its figures are the same
    as for this checkout's code."""
    work = args.work.resolve()
    json_path = args.json.resolve() if args.json else None
    commit, tree = code_tree(args.code, work)
    root = work / str(args.people)
    ours, theirs = CHECKOUT / "dbt_project" / dbt_target(root), tree / "dbt_project" / dbt_target(root)
    if ours.is_dir() and not theirs.exists():
        shutil.copytree(ours, theirs)
    print(f"code: {commit[:12]} ({args.code}) in {tree}", file=sys.stderr, flush=True)
    started = time.time()
    status = subprocess.run([sys.executable, str(tree / "benchmarks" / "full_refresh.py"),
                             *argv_for_tree(argv, work, json_path)], cwd=tree,
                            env={**os.environ, "PYTHONPATH": str(tree), CODE_ENV: commit}).returncode
    for path in {root / "figures.json", *([json_path] if json_path else [])}:
        # a commit from before figures recorded their code wrote none: recorded here, if this run wrote the file
        if path.exists() and path.stat().st_mtime >= started:
            figures = json.loads(path.read_text())
            if not figures.get("code"):
                figures["code"] = {"commit": commit, "dirty": False, "tree": str(tree)}
                path.write_text(json.dumps(figures, indent=2))
    return status


def run_child(mode: str, root: Path, interval: float, extra: list[str] | None = None) -> dict:
    """Run one refresh in a child process; its report, its samples, and its exact rusage."""
    env = child_env(root)
    report_path = root / f"child_{mode}.json"
    report_path.unlink(missing_ok=True)
    pace_s = pace()
    load_before, machine_before, own_before = os.getloadavg(), machine_cpu(), time.process_time()
    started = time.time()
    proc = subprocess.Popen([sys.executable, __file__, "--child", mode, "--report", str(report_path),
                             *(extra or [])], env=env)
    sampler = Sampler(proc.pid, interval)
    sampler.start()
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    ended = time.time()
    machine_after, own_after = machine_cpu(), time.process_time()
    sampler.done.set()
    sampler.join()
    if proc.returncode != 0 or not report_path.exists():
        raise SystemExit(f"the {mode} refresh failed (exit {proc.returncode}); see its output above")
    report = json.loads(report_path.read_text())
    return {"report": report, "samples": sampler.samples, "started": started, "ended": ended,
            "cpu_s": usage.ru_utime + usage.ru_stime, "max_rss_bytes": usage.ru_maxrss * 1024,
            "load_before": load_before, "load_after": os.getloadavg(),
            # the machine's busy CPU less the child's tree (its reaped descendants, dbt's, included) and this
            # process's sampler
            "others_cpu_s": machine_after[0] - machine_before[0] - (usage.ru_utime + usage.ru_stime)
            - (own_after - own_before),
            "steal_s": machine_after[1] - machine_before[1], "cores": os.cpu_count(), "pace_s": pace_s}


# --- the stage table -------------------------------------------------------------------------------------

def window(samples: list[tuple[float, int, float]], start: float, end: float) -> dict:
    """CPU seconds, peak RSS and RSS at the start for [start, end], from the samples around it."""
    if not samples:
        return {"cpu_s": None, "peak_rss_bytes": None, "start_rss_bytes": None}
    before = [s for s in samples if s[0] <= start] or samples[:1]
    after = [s for s in samples if s[0] >= end] or samples[-1:]
    inside = [s for s in samples if start <= s[0] <= end]
    first, last = before[-1], after[0]
    peak = max([first[1], last[1], *(s[1] for s in inside)])
    return {"cpu_s": round(max(0.0, last[2] - first[2]), 2), "peak_rss_bytes": peak, "start_rss_bytes": first[1]}


STAGE_NAMES = {"link_people_and_households": "linked (Splink)", "dbt_features": "features (dbt build)",
               "train_school_readiness_model": "model (LightGBM + MLflow)"}


def stage_name(step_key: str) -> str:
    if step_key.startswith("raw__"):
        return "raw"
    if step_key.startswith("validate_"):
        return "validated + quarantine (GX)"
    if step_key.startswith("pseudonymised__"):
        return "pseudonymised (+ leak scan)"
    if "no_identifiers_anywhere" in step_key:
        return "no_identifiers_anywhere check"
    if step_key.startswith("outputs__"):
        return "outputs " + step_key.removeprefix("outputs__")
    return STAGE_NAMES.get(step_key, step_key)


def stage_rows(measured: dict) -> list[dict]:
    """One row per step of every run, an "outside steps" row per run, start-up and the exact total."""
    from ed_pipeline.sources import SOURCES

    samples, report = measured["samples"], measured["report"]
    finished = report.get("finished", measured["ended"])
    rows = []
    runs = sorted(report["runs"], key=lambda r: r["start"])
    ready = report.get("ready", runs[0]["start"] if runs else measured["ended"])
    rows.append({"group": "process", "stage": "start-up (imports)",
                 "wall_s": round(ready - measured["started"], 2), **window(samples, measured["started"], ready)})
    previous_end = ready
    for run in runs:
        rows.append({"group": run["label"], "stage": "before the run (job subset, run set-up)",
                     "wall_s": round(run["start"] - previous_end, 2), **window(samples, previous_end, run["start"])})
        previous_end = run["end"]
        inside = 0.0
        for step in sorted(run["steps"], key=lambda s: s["start"] or 0):
            if step["start"] is None or step["end"] is None:
                continue
            inside += step["end"] - step["start"]
            stage = stage_name(step["step_key"])
            source = next((s.name for s in SOURCES if step["step_key"].endswith(s.name)), None)
            if source and source != run["label"]:  # a run of several sources (the landing sensor's month)
                stage = f"{stage}: {source}"
            rows.append({"group": run["label"], "stage": stage, "step_key": step["step_key"],
                         "status": step["status"], "wall_s": round(step["end"] - step["start"], 2),
                         **window(samples, step["start"], step["end"])})
        run_wall = run["end"] - run["start"]
        cpu = window(samples, run["start"], run["end"])["cpu_s"]
        step_cpu = sum(r["cpu_s"] or 0 for r in rows if r["group"] == run["label"] and "step_key" in r)
        rows.append({"group": run["label"], "stage": "outside steps (Dagster run, events)",
                     "wall_s": round(run_wall - inside, 2), "cpu_s": None if cpu is None else round(cpu - step_cpu, 2),
                     "peak_rss_bytes": None, "start_rss_bytes": None})
        rows.append({"group": run["label"], "stage": "run total", "subtotal": True, "wall_s": round(run_wall, 2),
                     **window(samples, run["start"], run["end"])})
    rows.append({"group": "process", "stage": "after the last run (checks read back)",
                 "wall_s": round(finished - previous_end, 2), **window(samples, previous_end, finished)})
    return rows


BUSY_SHARE = 0.10  # of the machine's CPU (cores x the child's wall time) used by others: the run was disturbed


def beside(measured: dict) -> dict:
    """What the rest of the machine used while the refresh ran (absent from measurements made before it was)."""
    if measured.get("others_cpu_s") is None:
        return {}
    capacity = (measured["ended"] - measured["started"]) * measured["cores"]
    share = max(measured["others_cpu_s"], 0.0) / capacity if capacity > 0 else 0.0
    return {"others_cpu_s": round(max(measured["others_cpu_s"], 0.0), 2), "steal_s": round(measured["steal_s"], 2),
            "others_share": round(share, 4), "busy": share > BUSY_SHARE, "pace_s": measured["pace_s"]}


def summarise(measured: dict) -> dict:
    samples = measured["samples"]
    # the child's work: from its start to the end of the refresh (not the benchmark's own read-back of step stats)
    finished = measured["report"].get("finished", measured["ended"])
    wall = finished - measured["started"]
    rows = stage_rows(measured)
    runs = measured["report"]["runs"]
    ingest = [r for r in runs if r["job"] == "ingest"]
    analyse = [r for r in runs if r["job"] != "ingest"]

    def span(selected):
        return round(sum(r["end"] - r["start"] for r in selected), 2)

    return {
        "wall_s": round(wall, 2),
        "cpu_s": round(window(samples, measured["started"], finished)["cpu_s"] or measured["cpu_s"], 2),
        "child_process_wall_s": round(measured["ended"] - measured["started"], 2),
        "child_process_cpu_s": round(measured["cpu_s"], 2),
        "peak_process_rss_bytes": measured["max_rss_bytes"],
        "peak_tree_rss_bytes": max((s[1] for s in samples), default=None),
        "ingest_runs_s": span(ingest),
        "analyse_runs_s": span(analyse),
        "success": measured["report"]["success"],
        "failed": measured["report"].get("failed", []),
        "audit_mode": measured["report"].get("audit_mode"),
        "load_before": [round(x, 2) for x in measured["load_before"]],
        "load_after": [round(x, 2) for x in measured["load_after"]],
        **beside(measured),
        "samples": len(samples),
        "stages": rows,
    }


def _mib(value) -> str:
    return "" if value is None else f"{value / MIB:,.0f}"


def format_table(title: str, summary: dict) -> str:
    lines = [title, f"{'group':<18}{'stage':<46}{'wall s':>9}{'CPU s':>9}{'peak MiB':>10}{'rise MiB':>10}"]
    last_group = None
    for r in summary["stages"]:
        group = r["group"] if r["group"] != last_group else ""
        last_group = r["group"]
        rise = None if r.get("peak_rss_bytes") is None else r["peak_rss_bytes"] - r["start_rss_bytes"]
        stage = f"= {r['stage']}" if r.get("subtotal") else r["stage"]
        cpu = "" if r.get("cpu_s") is None else f"{r['cpu_s']:.1f}"
        lines.append(f"{group:<18}{stage:<46}{r['wall_s']:>9.1f}{cpu:>9}{_mib(r.get('peak_rss_bytes')):>10}"
                     f"{_mib(rise):>10}")
    lines.append(f"{'TOTAL':<18}{'child start to end of its last run':<46}{summary['wall_s']:>9.1f}"
                 f"{summary['cpu_s']:>9.1f}{_mib(summary['peak_process_rss_bytes']):>10}")
    lines.append(f"{'':<18}{'peak of the process tree (sampled, incl. dbt)':<46}{'':>9}{'':>9}"
                 f"{_mib(summary['peak_tree_rss_bytes']):>10}")
    if summary.get("audit_mode"):
        lines.append(f"privacy audit: {summary['audit_mode']}")
    failed = "; failed: " + ", ".join(summary["failed"]) if summary["failed"] else ""
    lines.append(f"load average (1, 5, 15 min) before {summary['load_before']}, after {summary['load_after']}; "
                 f"success {summary['success']}{failed}")
    if "others_cpu_s" in summary:
        lines.append(f"beside it: other processes {summary['others_cpu_s']:.1f} CPU s ({summary['others_share']:.0%} "
                     f"of the machine), steal {summary['steal_s']:.1f} s; pace {summary['pace_s']:.2f} s before it"
                     + ("; BUSY: others took more than a tenth of the machine, so these timings are upper bounds"
                        if summary["busy"] else ""))
    return "\n".join(lines)


def markdown_table(summary: dict) -> str:
    """The stage table as Markdown (for docs/performance.md)."""
    lines = ["| group | stage | wall s | CPU s | peak MiB | rise MiB |", "|---|---|---:|---:|---:|---:|"]
    for r in summary["stages"]:
        rise = None if r.get("peak_rss_bytes") is None else r["peak_rss_bytes"] - r["start_rss_bytes"]
        cpu = "" if r.get("cpu_s") is None else f"{max(r['cpu_s'], 0.0):.1f}"
        stage = f"**{r['stage']}**" if r.get("subtotal") else r["stage"]
        lines.append(f"| {r['group']} | {stage} | {r['wall_s']:.1f} | {cpu} | {_mib(r.get('peak_rss_bytes'))} "
                     f"| {_mib(rise)} |")
    peak = max(summary["peak_process_rss_bytes"] or 0, summary["peak_tree_rss_bytes"] or 0)
    lines.append(f"| **total** | child start to end of its last run | **{summary['wall_s']:.1f}** "
                 f"| **{summary['cpu_s']:.1f}** | **{_mib(peak)}** | |")
    return "\n".join(lines)


MONTH_COLUMNS = {"linked_s": "linked (Splink)", "dbt_s": "features (dbt build)", "model_s": "model (LightGBM + MLflow)",
                 "audit_s": "no_identifiers_anywhere check"}


def month_row(summary: dict, full: dict) -> dict:
    """One month's line of the months table: its total, its ingest run, the analyse run's largest steps (outputs
    summed) and its share of the full refresh."""
    steps = [r for r in summary["stages"] if r["group"] == "analyse" and "step_key" in r]
    row = {"month": summary.get("month"), "wall_s": summary["wall_s"], "cpu_s": summary["cpu_s"],
           "ingest_s": summary["ingest_runs_s"]}
    for column, stage in MONTH_COLUMNS.items():
        row[column] = round(sum(r["wall_s"] for r in steps if r["stage"] == stage), 2)
    row["outputs_s"] = round(sum(r["wall_s"] for r in steps if r["stage"].startswith("outputs ")), 2)
    row["peak_rss_bytes"] = summary["peak_process_rss_bytes"]
    row["share"] = round(summary["wall_s"] / full["wall_s"], 4)
    return row


def drift(values: list[float]) -> float | None:
    """The least-squares slope of `values` against their position (seconds a month); None under three."""
    n = len(values)
    if n < 3:
        return None
    mean_x, mean_y = (n - 1) / 2, sum(values) / n
    return sum((i - mean_x) * (v - mean_y) for i, v in enumerate(values)) / sum((i - mean_x) ** 2 for i in range(n))


def format_months(months: list[dict], full: dict) -> str:
    """The months released one after another, a line each, and how the month's cost moved over them."""
    rows = [month_row(m, full) for m in months]
    header = (f"{'month':<9}{'total s':>9}{'CPU s':>8}{'ingest':>8}{'linked':>8}{'dbt':>7}{'model':>7}"
              f"{'outputs':>9}{'audit':>7}{'peak MiB':>10}{'share':>8}")
    lines = [f"{len(rows)} months, one incremental refresh each, in order", header]
    for r in rows:
        lines.append(f"{r['month']:<9}{r['wall_s']:>9.1f}{r['cpu_s']:>8.1f}{r['ingest_s']:>8.1f}{r['linked_s']:>8.1f}"
                     f"{r['dbt_s']:>7.1f}{r['model_s']:>7.1f}{r['outputs_s']:>9.1f}{r['audit_s']:>7.1f}"
                     f"{_mib(r['peak_rss_bytes']):>10}{r['share']:>8.1%}")
    if (slope := drift([r["wall_s"] for r in rows])) is not None:
        walls = sorted(r["wall_s"] for r in rows)
        lines.append(f"drift: {slope:+.2f} s a month (least squares over {len(rows)} months); median "
                     f"{walls[len(walls) // 2]:.1f} s, fastest {walls[0]:.1f} s, slowest {walls[-1]:.1f} s")
    return "\n".join(lines)


def markdown_months(months: list[dict], full: dict) -> str:
    lines = ["| month | total s | CPU s | ingest | linked | dbt | model | outputs | audit | peak MiB | month / full |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in (month_row(m, full) for m in months):
        lines.append(f"| {r['month']} | {r['wall_s']:.1f} | {r['cpu_s']:.1f} | {r['ingest_s']:.1f} "
                     f"| {r['linked_s']:.1f} | {r['dbt_s']:.1f} | {r['model_s']:.1f} | {r['outputs_s']:.1f} "
                     f"| {r['audit_s']:.1f} | {_mib(r['peak_rss_bytes'])} | {r['share']:.1%} |")
    return "\n".join(lines)


def goals(full: dict, incremental: dict | None) -> dict:
    peak = max(v for v in (full["peak_process_rss_bytes"], full["peak_tree_rss_bytes"],
                           *((incremental["peak_process_rss_bytes"], incremental["peak_tree_rss_bytes"])
                             if incremental else ())) if v is not None)
    out = {
        "full_refresh_s": {"value": full["wall_s"], "goal": f"<= {GOALS['full_refresh_max_s']:.0f} s",
                           "met": full["wall_s"] <= GOALS["full_refresh_max_s"]},
        "peak_memory_bytes": {"value": peak, "goal": f"< {GOALS['peak_memory_max_bytes'] / 1e9:.0f} GB",
                              "met": peak < GOALS["peak_memory_max_bytes"]},
    }
    if incremental:
        share = incremental["wall_s"] / full["wall_s"]
        out["incremental_share"] = {"value": round(share, 4), "goal": f"<= {GOALS['incremental_max_share']:.0%}",
                                    "met": share <= GOALS["incremental_max_share"],
                                    **({"month": incremental["month"]} if incremental.get("month") else {})}
    return out


def format_goals(result: dict) -> str:
    lines = ["goals"]
    for name, g in result.items():
        value = f"{g['value'] / 1e9:.2f} GB" if name == "peak_memory_bytes" else (
            f"{g['value']:.1%}" if name == "incremental_share" else f"{g['value']:.1f} s")
        month = f" ({g['month']}, the slowest month)" if g.get("month") else ""
        lines.append(f"  {name:<20}{value:>12}  goal {g['goal']:<10} {'met' if g['met'] else 'NOT met'}{month}")
    return "\n".join(lines)


# --- the child processes ---------------------------------------------------------------------------------

def _run_record(instance, run_id: str, label: str, job: str) -> dict:
    stats = instance.get_run_stats(run_id)
    return {"run_id": run_id, "label": label, "job": job, "start": stats.start_time, "end": stats.end_time,
            "steps": [{"step_key": s.step_key, "status": s.status.value if s.status else None,
                       "start": s.start_time, "end": s.end_time} for s in instance.get_run_step_stats(run_id)]}


def child_full(report: Path, month: str | None = None) -> None:
    """`ed-pipeline refresh --full` (every landed month ingested); with `month`, `ed-pipeline refresh` as a user
    runs it when that month has landed (only what is new is ingested: that month, checked)."""
    import dagster as dg

    # not ed_pipeline.definitions: refresh() loads them in each stage's own process, as `ed-pipeline refresh` does
    from ed_pipeline.refresh import refresh
    from ed_pipeline.settings import Settings

    t0 = time.time()
    result = refresh(Settings.from_env(), full=month is None)
    finished = time.time()
    if month is not None:
        ingested = {m for o in result.outcomes for m in o.months}
        if ingested != {month}:
            raise SystemExit(f"expected `ed-pipeline refresh` to ingest {month} alone, it ingested {sorted(ingested)}")
    with dg.DagsterInstance.get() as instance:
        runs = [r for r in instance.get_runs(dg.RunsFilter(tags={"ed_pipeline/trigger": "refresh"}))]
        records = []
        for run in runs:
            job = run.job_name
            steps = [s.step_key for s in instance.get_run_step_stats(run.run_id)]
            label = "analyse" if job != "ingest" else next(
                (k.removeprefix("raw__") for k in steps if k.startswith("raw__")), "ingest")
            record = _run_record(instance, run.run_id, label, job)
            if record["start"] and record["start"] >= t0 - 1:
                records.append(record)
    failed = [f"{o.source}: {', '.join(o.failed_checks) or 'run failed'}" for o in result.outcomes
              if not o.success or o.failed_checks]
    report.write_text(json.dumps({"success": result.success, "failed": failed, "runs": records, "ready": t0,
                                   "finished": finished}))


def child_idle(report: Path) -> None:
    """`ed-pipeline refresh` with nothing new landed: nothing is ingested (checked), and the analysis runs only if
    something it reads or keeps changed since its last passing run (`ed_pipeline.analysis_state`)."""
    from ed_pipeline.refresh import refresh
    from ed_pipeline.settings import Settings

    t0 = time.time()
    result = refresh(Settings.from_env())
    finished = time.time()
    ingested = sorted({o.source for o in result.outcomes if o.months})
    if ingested:
        raise SystemExit(f"expected `ed-pipeline refresh` to ingest nothing, it ingested {', '.join(ingested)}")
    analysis = next(o for o in result.outcomes if o.source == "analyse")
    report.write_text(json.dumps({"success": result.success, "runs": [], "ready": t0, "finished": finished,
                                  "analysed": not analysis.up_to_date, "why": analysis.reason}))


def child_incremental(report: Path, month: str) -> None:
    """What the automation does when a month lands: the landing sensor's run for that month (every source's file,
    in one run), then analyse."""
    import dagster as dg

    from ed_pipeline.definitions import defs
    from ed_pipeline.defs.automation import landing_requests, record_analyses
    from ed_pipeline.defs.raw import raw_key
    from ed_pipeline.refresh import ensure_dagster_home, provide_pseudo_key
    from ed_pipeline.settings import Settings
    from ed_pipeline.sources import SOURCES

    ready = time.time()
    settings = Settings.from_env()
    provide_pseudo_key(settings)
    ensure_dagster_home(settings)
    quiet = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}
    tags = {"ed_pipeline/trigger": "benchmark_incremental"}
    records, failed = [], []
    with dg.DagsterInstance.get() as instance:
        ingest = defs.resolve_job_def("ingest")
        # the sensor's first tick: every landed file whose partition was never materialised
        materialized = {s.name: set(instance.get_materialized_partitions(raw_key(s))) for s in SOURCES}
        requests = landing_requests(settings, None, materialized)[0]
        if [r.partition_key for r in requests] != [month]:
            raise SystemExit(f"expected one landing run for {month}, got {[r.partition_key for r in requests]}")
        for request in requests:
            result = ingest.execute_in_process(instance=instance, partition_key=request.partition_key,
                                               asset_selection=request.asset_selection,
                                               tags={**request.tags, **tags}, raise_on_error=False,
                                               run_config=quiet)
            failed += _failures(result, "ingest")
            records.append(_run_record(instance, result.run_id, "ingest", "ingest"))
        result = defs.resolve_job_def("analyse").execute_in_process(instance=instance, tags=tags,
                                                                    raise_on_error=False, run_config=quiet)
        failed += _failures(result, "analyse")
        records.append(_run_record(instance, result.run_id, "analyse", "analyse"))
        finished = time.time()
        if result.success:  # what the daemon's run status sensor does after the month (not part of its time)
            record_analyses(dg.build_run_status_sensor_context(
                sensor_name="record_analyses", dagster_instance=instance,
                dagster_run=instance.get_run_by_id(result.run_id), repository_def=defs.get_repository_def(),
                dagster_event=instance.get_records_for_run(
                    result.run_id, of_type=dg.DagsterEventType.RUN_SUCCESS).records[0].event_log_entry.dagster_event))
    report.write_text(json.dumps({"success": not failed, "failed": failed, "runs": records, "ready": ready,
                                  "finished": finished, "audit_mode": audit_mode(result)}))


def audit_mode(result) -> str | None:
    """How the run's privacy audit scanned: "incremental since ..." or "full: <why>" (None: it did not run)."""
    for evaluation in result.get_asset_check_evaluations():
        if evaluation.check_name == "no_identifiers_anywhere" and "mode" in evaluation.metadata:
            return str(evaluation.metadata["mode"].value)
    return None


def full_audit_warning(incremental: dict) -> str | None:
    """A warning when the month's privacy audit scanned everything: its figure is then not a month's. With
    --incremental-only the saved state was audited under the code of its full refresh; a change to the audit's
    rules since (its code, vocabulary or the registry) makes the next audit a full one."""
    mode = incremental.get("audit_mode") or ""
    if not mode.startswith("full"):
        return None
    return (f"warning: the month's privacy audit was a full one ({mode}), so the month's figures are not a month's: "
            "the audit's rules changed since the saved full refresh; run without --incremental-only")


def _failures(result, label: str) -> list[str]:
    import dagster as dg

    checks = [f"{'/'.join(e.asset_key.path)}:{e.check_name}" for e in result.get_asset_check_evaluations()
              if not e.passed and e.severity == dg.AssetCheckSeverity.ERROR]
    return [f"{label}: {', '.join(checks) or 'run failed'}"] if checks or not result.success else []


# --- main ------------------------------------------------------------------------------------------------

def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--people", type=int, default=100_000, help="residents (default 100,000)")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--work", type=Path, default=Path("data/benchmarks/full_refresh"),
                        help="worlds go to <work>/<people>/ (default data/benchmarks/full_refresh)")
    parser.add_argument("--json", type=Path, help="also write the figures here (always: <work>/<people>/figures.json)")
    parser.add_argument("--interval", type=float, default=0.05, help="memory/CPU sampling interval, seconds")
    parser.add_argument("--skip-incremental", action="store_true", help="only the full refresh")
    parser.add_argument("--incremental-only", action="store_true",
                        help=f"only the incremental refresh, from the state the last full refresh saved in "
                             f"<world>/{SNAPSHOT}/ (for iterating on the one-month refresh; the full refresh's "
                             "figures are then those recorded with that state; if the privacy audit's rules changed "
                             "since, the month's audit is a full one, which the benchmark warns of)")
    parser.add_argument("--again", action="store_true",
                        help="then the full refresh once more, over the state the refreshes left (what `ed-pipeline "
                             "refresh --full` does, and `ed-pipeline refresh` after an upgrade of the ingest code), "
                             "with the "
                             "warehouse's and the agency zone's tables compared before and after (the same: nothing "
                             "new landed)")
    parser.add_argument("--nothing-new", action="store_true",
                        help="then `ed-pipeline refresh` twice with nothing new landed: each finds the month's "
                             "analysis up to date (the command's own, or the sensor's as the daemon's "
                             "`record_analyses` records it) and runs nothing (tables compared)")
    parser.add_argument("--month-by", choices=["sensor", "cli"], default="sensor",
                        help="how each month is refreshed: as the automation does (sensor, the default: the "
                             "landing sensor's run of the month, then the analyse job) or by `ed-pipeline refresh` "
                             "(cli: one run of what is new, then the analyse job)")
    parser.add_argument("--child", choices=["full", "incremental", "cli", "idle"], help=argparse.SUPPRESS)
    parser.add_argument("--hold-back", metavar="YYYY-MM",
                        help="the month of the incremental refresh (default: the last landed); later months stay "
                             "held back throughout, so the full refresh ends the month before")
    parser.add_argument("--months", type=int, default=1,
                        help="incremental refreshes, one month each, one after another (default 1): the last N "
                             "months (or N from --hold-back) are held back from the full refresh, then released "
                             "in order; prints a line per month and the drift of the month's cost over them")
    parser.add_argument("--code", metavar="REV",
                        help="measure the code of this commit instead of the checkout's (for a before/after in the "
                             "same hour): its tree, made once under <work>/code/ by `git archive` with its bytecode "
                             "compiled, runs with this checkout's interpreter and packages; figures.json records it")
    parser.add_argument("--report", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--month", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.code:
        return run_code(args, sys.argv[1:] if argv is None else argv)
    if args.child:
        import warnings

        # Dagster flags beta parameters (backfill policies) on every import, as `ed-pipeline` silences too
        warnings.filterwarnings("ignore", message=".*is currently in beta")
    if args.child == "full":
        child_full(args.report)
        return 0
    if args.child == "incremental":
        child_incremental(args.report, args.month)
        return 0
    if args.child == "cli":
        child_full(args.report, args.month)
        return 0
    if args.child == "idle":
        child_idle(args.report)
        return 0

    root = (args.work / str(args.people)).resolve()
    if root in (Path("data").resolve(), Path.cwd().resolve()):
        raise SystemExit(f"refusing to use {root}: give a --work folder of its own")
    if args.months < 1:
        raise SystemExit("--months must be 1 or more")
    world = prepare_world(root, args.people, args.seed, args.hold_back, args.months)
    if world["held_back_months"] < args.months:
        raise SystemExit(f"--months {args.months}: only {world['held_back_months']} month(s) from "
                         f"{world['held_back_month']} on are held back")
    print(f"world: {args.people:,} residents (seed {args.seed}) in {root}; {world['landed_months']} months landed "
          f"({world['landing_mib']} MiB), {world['held_back_months']} held back from {world['held_back_month']}",
          file=sys.stderr, flush=True)

    if args.incremental_only:
        full = restore_snapshot(root)
        if full.get("held_back_month", world["held_back_month"]) != world["held_back_month"]:
            raise SystemExit(f"the saved full refresh held back {full['held_back_month']}, not "
                             f"{world['held_back_month']}: run without --incremental-only first")
    else:
        full = summarise(run_child("full", root, args.interval))
        full["held_back_month"] = world["held_back_month"]
        save_snapshot(root, full)
    print(format_table(f"\nfull refresh: {args.people:,} residents, {world['landed_months']} months", full))
    months = []
    for _ in range(0 if args.skip_incremental else args.months):
        month = release_month(root)[-1]
        child = "incremental" if args.month_by == "sensor" else "cli"
        summary = {**summarise(run_child(child, root, args.interval, ["--month", month])), "month": month}
        print(format_table(f"\nincremental refresh: month {month} released", summary))
        if warning := full_audit_warning(summary):
            print(warning, file=sys.stderr)
        months.append(summary)
    if len(months) > 1:
        print("\n" + format_months(months, full))
    incremental = months[0] if months else None  # the month after the full refresh, as with one month
    again = None
    if args.again:
        before = zone_digests(root)
        again = summarise(run_child("full", root, args.interval))
        changed = sorted(t for t, digest in zone_digests(root).items() if before.get(t) != digest)
        again["tables_changed"] = changed
        print(format_table(f"\nfull refresh again, over the state left ({len(before)} tables)", again))
        print(f"tables changed by it: {', '.join(changed) or 'none'}")
    idle = []
    for attempt in range(2 if args.nothing_new else 0):
        before = zone_digests(root)
        measured = run_child("idle", root, args.interval)
        report = measured["report"]
        changed = sorted(t for t, digest in zone_digests(root).items() if before.get(t) != digest)
        idle.append({"wall_s": round(report["finished"] - measured["started"], 2),
                     "cpu_s": round(measured["cpu_s"], 2), "peak_process_rss_bytes": measured["max_rss_bytes"],
                     "analysed": report["analysed"], "why": report["why"], "success": report["success"],
                     "tables_changed": changed, "load_before": [round(x, 2) for x in measured["load_before"]]})
        print(f"\n`ed-pipeline refresh` with nothing new ({attempt + 1} of 2): {idle[-1]['wall_s']:.1f} s, "
              f"{idle[-1]['cpu_s']:.1f} CPU s; linked onwards: {'yes, ' if report['analysed'] else 'no, '}"
              f"{report['why']}; tables changed: {len(changed)}")
    # several months: the goal is judged on the slowest
    met = goals(full, max(months, key=lambda m: m["wall_s"]) if len(months) > 1 else incremental)
    print("\n" + format_goals(met))
    figures = {"people": args.people, "seed": args.seed, "world": world, "cpus": os.cpu_count(),
               "memory_gib": round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1),
               "command": " ".join([Path(sys.executable).name, *sys.argv]), "code": code_identity(),
               "month_by": args.month_by,
               "measured_at": time.strftime(
                   "%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "full": full, "incremental": incremental,
               **({"months": months} if len(months) > 1 else {}), "again": again,
               **({"nothing_new": idle} if idle else {}), "goals": met}
    for path in {root / "figures.json", *([args.json] if args.json else [])}:
        path.write_text(json.dumps(figures, indent=2))
    (root / "figures.md").write_text("\n\n".join(
        [markdown_table(full), *(markdown_table(r) for r in (*months, again) if r),
         *([markdown_months(months, full)] if len(months) > 1 else [])]) + "\n")
    print(f"figures: {root / 'figures.json'}", file=sys.stderr)
    return 0 if all(r["success"] for r in (full, *months, again, *idle) if r) and not (again or {}).get(
        "tables_changed") and not (idle and (idle[-1]["analysed"] or idle[-1]["tables_changed"])) else 1


if __name__ == "__main__":
    raise SystemExit(main())
