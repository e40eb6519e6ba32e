"""What the last passing privacy audit scanned, so that the next one scans in proportion to what is new.

The whole-system audit (`no_identifiers_anywhere`) looks for every agency-zone identifier in the warehouse,
Dagster's events and MLflow. Run incrementally it scans

- what is new or changed since the last passing audit (warehouse partitions and tables whose content
  fingerprint differs, Dagster runs with new events, MLflow runs, model versions and artifact files that are
  new or changed) against **all** identifiers, and
- what that audit already scanned (unchanged content) against only the identifiers that are **new** since
  then: those of agency-zone partitions that are new or changed, less the phrases other records already had.

Both halves together find everything a full scan finds: content already scanned was clean of every older
identifier (the state is written only after a passing audit).

The state is small and holds no identifier, token or content: per scanned unit a fingerprint (row count and an
order-independent hash sum of a table's or partition's rows; a SHA-256 of a text group or file; a run's last
event id), when it was taken, and a fingerprint of the scanning rules (the scanner's code, less comments and
docstrings). A full rescan happens when the state is missing or unreadable, of another version, older than
`max_age_days`, made under other rules, or when asked for.

So that each half costs in proportion to what is new (docs/privacy.md lists what is kept where):
- a ledger of DuckDB's hashes of the warehouse rows scanned: a rewritten table's rows that are listed count as
  already scanned;
- a token index (per warehouse column, hashes of the tokens of its values): content already scanned is read
  against the new identifiers only in the columns holding a key token of a new phrase;
- the identifier phrases of each agency-zone partition, cached in the agency zone itself, made only for new
  or changed partitions.
"""

from __future__ import annotations

import ast
import contextlib
import hashlib
import json
import os
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import duckdb
import polars as pl

from ed_pipeline.privacy.leak_scan import (
    DOB_CONTEXT_WORDS,
    TABLE_SUFFIXES,
    IdentifierSet,
    Leak,
    Local,
    assemble_identifiers,
    file_texts,
    identifier_records,
    identifier_sets_of,
    partition_condition,
    record_identifiers,
    registered,
    scan_duckdb,
    scan_files,
    scan_texts,
    table_fingerprints,
    text_entries_needed,
    text_index_entries,
    without_local,
)
from ed_pipeline.settings import local_path, under_artifact_root

STATE_VERSION = 1
DEFAULT_MAX_AGE_DAYS = 31
Parts = dict[str, dict[str, str]]  # unit (table, run, file group) -> part (partition, "*") -> fingerprint


def rules_fingerprint() -> str:
    """A fingerprint of the scanning rules: the code of the modules that decide what is an identifier and how
    it is matched (a changed rule, stopword or registry entry makes the next audit a full one). Their code, not
    their text: an edited comment, docstring or line break changes nothing the audit does, and a full audit is
    minutes at Essex scale."""
    from ed_pipeline import sources
    from ed_pipeline.privacy import leak_scan, normalise

    return code_digest([leak_scan.__file__, normalise.__file__, sources.__file__, __file__])


def code_digest(paths: Iterable[str | Path]) -> str:
    """A short fingerprint of the code of the Python files `paths`, in order (`code_fingerprint` of each)."""
    digest = hashlib.sha256()
    for path in paths:
        digest.update(code_fingerprint(Path(path).read_text(encoding="utf-8")).encode())
    return digest.hexdigest()[:16]


def code_fingerprint(source: str) -> str:
    """The syntax tree of Python `source` without its docstrings, as text: the same for two sources that differ
    only in comments, docstrings and layout (string constants other than docstrings count)."""
    tree = ast.parse(source)
    for node in ast.walk(tree):
        body = getattr(node, "body", None)
        if (isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef) and body
                and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant)
                and isinstance(body[0].value.value, str)):
            node.body = body[1:] or [ast.Pass()]
    return ast.dump(tree)


@dataclass
class AuditState:
    audited_at: str  # ISO 8601, UTC
    rules: str  # rules_fingerprint() of the audit that wrote it
    identifiers: Parts = field(default_factory=dict)  # agency-zone tables whose identifiers were looked for
    warehouse: Parts = field(default_factory=dict)  # warehouse tables and views scanned
    texts: Parts = field(default_factory=dict)  # Dagster runs and MLflow runs / model versions scanned
    files: Parts = field(default_factory=dict)  # MLflow artifact files scanned
    dagster_run_id: str | None = None
    rows_ledger: str | None = None  # the file beside the state listing the hashes of the warehouse rows scanned
    token_index: list[str] = field(default_factory=list)  # the files beside it listing (column, hash of a token)
    # of the values scanned: one per audit, merged when there are more than MAX_INDEX_FILES
    token_index_chars: int | None = None  # it indexes every value with a separator or at most this many characters
    text_index: str | None = None  # the file beside it listing (unit, hash of an entry) of the texts scanned
    version: int = STATE_VERSION

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=1, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> AuditState:
        data = json.loads(text)
        return cls(**{k: data[k] for k in cls.__dataclass_fields__ if k in data})

    def age(self, now: datetime | None = None) -> timedelta:
        return (now or datetime.now(UTC)) - datetime.fromisoformat(self.audited_at)


def load_state(path: Path, max_age_days: float = DEFAULT_MAX_AGE_DAYS, rules: str | None = None,
               now: datetime | None = None) -> tuple[AuditState | None, str]:
    """The state at `path` if it can be used for an incremental audit, else None; and why (for the metadata)."""
    if not path.exists():
        return None, "no audit state yet"
    try:
        state = AuditState.from_json(path.read_text())
        age = state.age(now)
    except (OSError, ValueError, TypeError, KeyError):
        return None, "the audit state could not be read"
    if state.version != STATE_VERSION:
        return None, f"the audit state is of version {state.version}, not {STATE_VERSION}"
    if rules is not None and state.rules != rules:
        return None, "the scanning rules changed since the last audit"
    if age > timedelta(days=max_age_days):
        return None, f"the audit state is {age.days} days old (more than {max_age_days:g})"
    return state, f"incremental since the audit of {state.audited_at}"


def save_state(path: Path, state: AuditState) -> None:
    """Write the state atomically (a killed audit leaves the previous state, or none)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(state.to_json())
    os.replace(tmp, path)


def changed(before: Mapping[str, Mapping[str, str]] | None, now: Mapping[str, Mapping[str, str]]
            ) -> dict[str, set[str]]:
    """unit -> its parts that are new or whose fingerprint differs from `before` (every part when `before` is
    None); units with nothing changed are left out."""
    out: dict[str, set[str]] = {}
    for unit, parts in now.items():
        old = (before or {}).get(unit, {})
        diff = {p for p, fp in parts.items() if old.get(p) != fp} if before is not None else set(parts)
        if diff:
            out[unit] = diff
    return out


def unchanged(before: Mapping[str, Mapping[str, str]] | None, now: Mapping[str, Mapping[str, str]]
              ) -> dict[str, set[str]]:
    """unit -> its parts whose fingerprint equals the one in `before` (already scanned, not changed since)."""
    if before is None:
        return {}
    out: dict[str, set[str]] = {}
    for unit, parts in now.items():
        old = before.get(unit, {})
        same = {p for p, fp in parts.items() if old.get(p) == fp}
        if same:
            out[unit] = same
    return out


def sha256_text(*texts: str) -> str:
    digest = hashlib.sha256()
    for text in texts:
        digest.update(text.encode("utf-8", errors="surrogatepass"))
        digest.update(b"\x00")
    return digest.hexdigest()[:32]


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()[:32]


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


# --- where MLflow's artifact files are ----------------------------------------------------------------------------

def mlflow_artifact_folders(artifact_root: Path, locations: Mapping[str, str | None]) -> tuple[list[Path], list[str]]:
    """The folders whose files the audit scans: `artifact_root` (the data directory's) and every artifact location
    the MLflow store names (its experiments', runs', model versions'; each with the location of its experiment,
    None where not known), wherever it lies: an experiment made before the data directory was copied keeps the
    old one, and so do its runs. Each folder once, none inside another. And the locations that cannot be read:
    not on this machine's file system, or not there (a run with no artifacts has no folder; one inside a folder
    scanned is not counted). A location not there whose experiment's folder is under `artifact_root`, as
    `tracking.artifacts_now` reads it after the data directory was moved, is read there (`under_artifact_root`)."""
    root = artifact_root.resolve()

    def where(uri: str, experiment: str | None) -> Path | None:
        path = local_path(uri)
        if path is None:
            return None
        if not path.exists() and experiment is not None:
            experiment_now = under_artifact_root(experiment, experiment, root)
            moved = under_artifact_root(uri, experiment, root)
            if moved is not None and experiment_now is not None and experiment_now.is_dir():
                return moved  # moved with the data directory (a run's folder not there has no artifacts)
        return path.resolve()

    resolved = {uri: where(uri, experiment) for uri, experiment in locations.items()}
    folders = {root, *(path for path in resolved.values() if path is not None)}
    roots: list[Path] = []
    for folder in sorted((f for f in folders if f.is_dir()), key=lambda f: len(f.parts)):
        if not any(folder.is_relative_to(r) for r in roots):
            roots.append(folder)
    unread = sorted(uri for uri, path in resolved.items()
                    if path is None or not any(path.is_relative_to(r) for r in roots))
    return sorted(roots), unread


# --- the audit ------------------------------------------------------------------------------------------------

TextReader = Callable[[set[str]], Mapping[str, list[tuple[str, str]]]]  # units -> unit -> its (location, text)


@dataclass
class AuditResult:
    leaks: list[Leak]
    mode: str  # "full: <why>" or "incremental since ..."
    identifiers: int
    new_identifiers: int  # the identifiers the content already audited was scanned against
    scanned: dict[str, tuple[int, int]]  # kind -> (parts scanned against all identifiers, against the new ones)
    state_written: bool
    warehouse_rows: tuple[int, int] = (0, 0)  # (rows scanned against all identifiers, rows the ledger listed)
    identifier_parts: tuple[int, int] = (0, 0)  # agency-zone partitions whose phrases were (made now, cached)
    old_columns: int | None = None  # columns already audited read against the new identifiers (None: all)
    texts_read_again: tuple[int, int] = (0, 0)  # (text units already audited read again, such units in all)
    files_read_again: tuple[int, int] = (0, 0)  # (artifact files already audited read again, such files in all)

    @property
    def passed(self) -> bool:
        return not self.leaks


def run_audit(agency: duckdb.DuckDBPyConnection, warehouse: duckdb.DuckDBPyConnection, state_path: Path, *,
              text_units: Parts | None = None, read_texts: TextReader | None = None,
              artifact_folders: Sequence[Path] = (), full: bool = False, max_age_days: float = DEFAULT_MAX_AGE_DAYS,
              identifier_schema: str = "validated", run_id: str | None = None,
              local: Local = ()) -> AuditResult:
    """Every identifier of `agency` (its `identifier_schema` tables) looked for in every table and view of
    `warehouse`, in the texts of `text_units` (unit -> {"*": fingerprint}; `read_texts(units)` gives their
    (location, text)) and in the files under `artifact_folders` (`mlflow_artifact_folders`), the `local`
    directories left out of all of them (`without_local`); incrementally from the state at `state_path` (see
    the module's docstring), which a passing audit then replaces."""
    rules = rules_fingerprint()
    if full:
        state, mode = None, "full rescan asked for"
    else:
        state, mode = load_state(state_path, max_age_days, rules)
        if state is None:
            mode = f"full: {mode}"
    before = (lambda kind: getattr(state, kind)) if state else (lambda kind: None)
    scanned: dict[str, tuple[int, int]] = {}

    def split(kind: str, now: Parts) -> tuple[dict[str, set[str]], dict[str, set[str]]]:
        fresh, kept = changed(before(kind), now), unchanged(before(kind), now)
        scanned[kind] = (sum(map(len, fresh.values())), sum(map(len, kept.values())))
        return fresh, kept

    id_parts = table_fingerprints(agency, [identifier_schema])
    new_parts = changed(before("identifiers"), id_parts)
    identifiers, new_ids, id_counts = cached_identifier_sets(agency, identifier_schema, id_parts, new_parts, rules)

    hashes: list[pl.DataFrame] = [pl.DataFrame(schema={"unit": pl.String, "h": pl.UInt64, "rid": pl.Int64})]
    tables = table_fingerprints(warehouse, row_hashes=hashes)
    fresh, _ = split("warehouse", tables)
    ledger = load_ledger(state_path, state)
    new_rows = unlisted_rows(hashes, set(fresh), ledger)
    rows = pl.concat(hashes).select("unit", "h")  # the rows of every table now (the ledger a passing audit leaves)
    del hashes
    by_rowid = set(new_rows.group_by("unit").agg(pl.col("rid").is_not_null().all()).filter("rid")["unit"])
    fresh_index: list[pl.DataFrame] = []
    with registered(warehouse, NEW_ROWS_VIEW, new_rows):
        leaks = scan_duckdb(warehouse, identifiers, token_index=fresh_index,
                            where=_conditions(fresh, tables, set(ledger["unit"].unique()) if ledger is not None
                                              else set(), set(new_rows["unit"].unique()), by_rowid))
    index_files, index_chars = usable_index(state_path, state)
    old_tables = {t: "TRUE" for t in tables if t in state.warehouse} if state is not None else {}
    old_columns = None  # the columns of content already audited read against the new identifiers (None: all)
    new_index = [*fresh_index]
    if old_tables and len(new_ids):
        # content already audited, new identifiers only: every row of a table the last audit scanned (its new
        # rows again too, at no risk: they were just scanned against every identifier)
        index = read_index(state_path, index_files) if index_files else None
        if index is not None and index_chars is not None and new_ids.max_single_token_chars <= index_chars:
            columns = flagged_columns(warehouse, index, new_ids)
            # the row-aligned check of old rows asks only about re-sent records with another date of birth: an
            # old row names a record the last audit knew, and was checked then against the date it had
            redated = redated_people(identifiers, new_ids)
            leaks += scan_duckdb(warehouse, new_ids, where=old_tables, prefilter=True, columns=columns,
                                 aligned=redated.select("source", "record_id", "dob") if redated.height else False)
            old_columns = len(columns)
        else:  # read it all, and index it on the way
            leaks += scan_duckdb(warehouse, new_ids, where=old_tables, prefilter=True, token_index=new_index)
            index_files, index_chars = [], new_ids.max_single_token_chars
    if state is None:
        index_files, index_chars = [], identifiers.max_single_token_chars
    elif not index_files and index_chars is None:
        new_index = []  # no index of the content already audited, and none made: a partial one would mislead
    index_chars = min(index_chars, identifiers.max_single_token_chars) if index_chars is not None else None

    texts = dict(text_units or {})
    fresh, kept = split("texts", texts)
    text_index = load_text_index(state_path, state)
    text_rows = [text_index.filter(pl.col("unit").is_in(list(kept)))] if text_index is not None else []
    texts_read_again = (0, len(kept))

    def read_local(units: set[str]) -> dict[str, list[tuple[str, str]]]:  # the `local` directories left out
        return {u: [(loc, without_local(t, local)) for loc, t in items] for u, items in read_texts(units).items()}

    if read_texts is not None:
        if fresh:
            read = read_local(set(fresh))
            leaks += scan_texts([t for u in sorted(read) for t in read[u]], identifiers)
            text_rows.append(text_index_of(read))
        if kept and len(new_ids):
            # the texts already audited that could hold a new identifier (all of them without an index)
            wanted = flagged_units(text_index, set(kept), new_ids)
            read = read_local(wanted) if wanted else {}
            leaks += scan_texts([t for u in sorted(read) for t in read[u]], new_ids, prefilter=True)
            unindexed = {u: v for u, v in read.items() if text_index is None or u not in set(text_index["unit"])}
            text_rows.append(text_index_of(unindexed))
            texts_read_again = (len(wanted), len(kept))

    # by absolute path: a file of another directory (a moved deployment's) is not one already audited here
    paths = sorted(p for root in artifact_folders for p in root.rglob("*")
                   if p.is_file() and not is_model_environment_file(p))
    files = {str(p): {"*": sha256_file(p)} for p in paths}
    fresh, kept = split("files", files)
    # the files read as text are in the text index too (by path): one already audited is read again only where
    # a new identifier could be, as a text unit is (every artifact file was read every month)
    text_files = {f for f in files if Path(f).suffix.lower() not in TABLE_SUFFIXES}
    if text_index is not None:
        text_rows.append(text_index.filter(pl.col("unit").is_in(list(set(kept) & text_files))))
    if fresh:
        leaks += scan_files([Path(f) for f in sorted(fresh)], identifiers, local=local)
        text_rows.append(file_index_of(set(fresh) & text_files, local))
    files_read_again = (0, len(kept))
    if kept and len(new_ids):
        # tables always; texts as the index says (all of them without one)
        wanted = (set(kept) - text_files) | flagged_units(text_index, set(kept) & text_files, new_ids)
        leaks += scan_files([Path(f) for f in sorted(wanted)], new_ids, prefilter=True, local=local)
        indexed = set(text_index["unit"]) if text_index is not None else set()
        text_rows.append(file_index_of((wanted & text_files) - indexed, local))
        files_read_again = (len(wanted), len(kept))

    leaks = _merge(leaks)
    if not leaks:  # the state says what a *passing* audit scanned: after a failure the next one rescans it all
        ledger_name = save_ledger(state_path, rows, "rows")
        index_files = save_index(state_path, index_files, new_index, set(tables), warehouse) if new_index \
            else index_files
        # a text unit is in the text index only if every one of its texts is: read all of it, or kept from before
        texts_name = save_ledger(state_path, pl.concat([_empty_text_index(), *text_rows]), "texts") \
            if read_texts is not None or files else None
        save_state(state_path, AuditState(audited_at=now_iso(), rules=rules, identifiers=id_parts, warehouse=tables,
                                          texts=texts, files=files, dagster_run_id=run_id, rows_ledger=ledger_name,
                                          token_index=index_files, token_index_chars=index_chars,
                                          text_index=texts_name))
        remove_other_ledgers(state_path, keep={ledger_name, *index_files, texts_name})
    return AuditResult(leaks, mode, len(identifiers), len(new_ids) if state else len(identifiers), scanned,
                       not leaks, (new_rows.height, rows.height - new_rows.height), id_counts, old_columns,
                       texts_read_again, files_read_again)


def _merge(leaks: list[Leak]) -> list[Leak]:
    """One leak per place, kind and rule: the two halves of a place (its new and its old partitions) added up."""
    counts: dict[tuple[str, str, str], int] = {}
    for leak in leaks:
        key = (leak.location, leak.kind, leak.how)
        counts[key] = counts.get(key, 0) + leak.count
    return [Leak(loc, kind, n, how) for (loc, kind, how), n in sorted(counts.items())]


def _conditions(parts: dict[str, set[str]], fingerprints: Parts, ledgered: set[str] = frozenset(),
                with_new_rows: set[str] = frozenset(), by_rowid: set[str] = frozenset()) -> dict[str, str]:
    """"schema.table" -> the SQL condition on its rows (`__t`) selecting these partitions; for a table in
    `ledgered`, only its rows the ledger does not list, which `NEW_ROWS_VIEW` holds (unit, h, rid), and not the
    table at all when it has none (in `with_new_rows`, the units that have some). Asking for the few new rows,
    not against the whole ledger: 10M hashes were filtered by table name once per table. By their rowid where
    they have one (`by_rowid`, the units whose rows all have one): the hash of every row of each changed table,
    made again to find them, was 1.7 s of the month's audit at 500k."""
    out = {}
    for t, p in parts.items():
        condition = "TRUE" if p == set(fingerprints[t]) else partition_condition(p)
        if t in ledgered:
            if t not in with_new_rows:
                continue  # rewritten, but every row of it was scanned before (rows removed, or only moved)
            unit = t.replace("'", "''")
            row = ("__t.rowid", "rid") if t in by_rowid else ("hash(__t)", "h")
            condition = f"({condition}) AND {row[0]} IN (SELECT {row[1]} FROM {NEW_ROWS_VIEW} WHERE unit = '{unit}')"
        out[t] = condition
    return out


# --- the ledger of rows scanned ---------------------------------------------------------------------------------
# A rewritten whole-history table (linked.person_link, dbt's models) changes its fingerprint on every refresh, but
# only a few of its rows change: the ledger keeps DuckDB's hash of every row a passing audit scanned, so that the
# next one scans against every identifier only the rows whose hash it does not list (a hash, never the content;
# a collision would let a new row pass as scanned with odds of about n^2 / 2^65 for n rows of one table).

NEW_ROWS_VIEW = "__leak_scan_new_rows"  # (unit, h) of the rows of changed tables that the ledger does not list


def _ledger_path(state_path: Path, name: str) -> Path:
    return state_path.with_name(name)


def load_ledger(state_path: Path, state: AuditState | None) -> pl.DataFrame | None:
    """(unit, h) of the rows the audit of `state` scanned, or None (no state, no ledger or an unreadable one:
    the changed tables are then scanned whole)."""
    if state is None or not state.rows_ledger:
        return None
    try:
        return pl.read_parquet(_ledger_path(state_path, state.rows_ledger)).select(
            pl.col("unit").cast(pl.String), pl.col("h").cast(pl.UInt64))
    except (OSError, pl.exceptions.PolarsError):
        return None


def unlisted_rows(hashes: list[pl.DataFrame], fresh: set[str], ledger: pl.DataFrame | None) -> pl.DataFrame:
    """(unit, h, rid) of the rows of the `fresh` units, in `hashes` (one frame per unit, as `table_fingerprints`
    gives them; rid null where not given), that `ledger` does not list. A join on the hash alone per unit: one
    join on (unit, h) over the 10.6M rows of a 1.5M-resident warehouse took 3.0 s, these 0.9 s."""
    listed = {key[0]: part for key, part in ledger.partition_by("unit", as_dict=True, include_key=False).items()} \
        if ledger is not None else {}
    out = [pl.DataFrame(schema={"unit": pl.String, "h": pl.UInt64, "rid": pl.Int64})]
    for frame in hashes:
        if "rid" not in frame.columns:
            frame = frame.with_columns(rid=pl.lit(None, dtype=pl.Int64))
        unit = frame["unit"][0] if frame.height else None
        if unit in fresh:
            part = listed.get(unit)
            out.append(frame if part is None else frame.join(part, on="h", how="anti"))
    return pl.concat(out)


def save_ledger(state_path: Path, frame: pl.DataFrame, kind: str) -> str:
    """Write the ledger (or token index) under a new name (the state names it: a killed audit leaves the old
    state and its files intact)."""
    state_path.parent.mkdir(parents=True, exist_ok=True)
    name = _new_ledger_name(state_path, kind)
    frame.write_parquet(_ledger_path(state_path, name), compression="lz4")
    return name


def _new_ledger_name(state_path: Path, kind: str) -> str:
    return f"{state_path.stem}.{kind}-{uuid.uuid4().hex[:12]}.parquet"


def remove_other_ledgers(state_path: Path, keep: set[str | None]) -> None:
    for path in state_path.parent.glob(f"{state_path.stem}.*-*.parquet"):
        if path.name not in keep:
            path.unlink(missing_ok=True)


# --- the token index -----------------------------------------------------------------------------------------
# Content already audited needs scanning against the new identifiers only where it could hold one: in a cell
# holding the key token of a new phrase (or a word saying "date of birth"). The index keeps, per column, DuckDB's
# hash of every token of the values scanned, so the columns without any of those tokens are not read at all. It
# is a superset: a deleted row's tokens stay until the next full rescan.


MAX_INDEX_FILES = 12


def usable_index(state_path: Path, state: AuditState | None) -> tuple[list[str], int | None]:
    """The index files of `state` and the value length they index up to, if all of them are there."""
    if state is None or not state.token_index or state.token_index_chars is None or not all(
            _ledger_path(state_path, name).is_file() for name in state.token_index):
        return [], None
    return list(state.token_index), state.token_index_chars


def read_index(state_path: Path, files: list[str]) -> pl.DataFrame | None:
    """(loc, tok) of every index file; None if one cannot be read (the content already audited is then read
    whole, and indexed again)."""
    try:
        return pl.concat([pl.read_parquet(_ledger_path(state_path, name)).select(
            pl.col("loc").cast(pl.String), pl.col("tok").cast(pl.UInt64)) for name in files])
    except (OSError, pl.exceptions.PolarsError):
        return None


def save_index(state_path: Path, files: list[str], new: list[pl.DataFrame], tables: set[str],
               conn: duckdb.DuckDBPyConnection) -> list[str]:
    """The index files after this audit: the earlier ones and one of the tokens it scanned; all merged into
    one, without the columns of tables gone, when there would be more than MAX_INDEX_FILES. The merge runs in
    `conn` (DuckDB, within its memory limit, spilling past it): in polars, the first full audit's 12.6M tokens
    and a year of months' took 8.9 s and raised the month's peak by 3.3 GB, to 7.3 GB at 1.5M residents."""
    frame = pl.concat([pl.DataFrame(schema={"loc": pl.String, "tok": pl.UInt64}),
                       *(f.select(pl.col("loc").cast(pl.String), pl.col("tok").cast(pl.UInt64)) for f in new)])
    if len(files) + 1 > MAX_INDEX_FILES:
        name = _new_ledger_name(state_path, "tokens")
        target = _ledger_path(state_path, name)
        try:
            with registered(conn, "__audit_new_tokens", frame):
                conn.execute(rf"""
                    COPY (SELECT DISTINCT loc, tok FROM (
                              SELECT CAST(loc AS VARCHAR) AS loc, CAST(tok AS UBIGINT) AS tok FROM read_parquet(?)
                              UNION ALL SELECT loc, tok FROM __audit_new_tokens)
                          WHERE regexp_extract(loc, '^([^.]+\.[^.]+)\.', 1) IN (SELECT unnest(?::VARCHAR[])))
                    TO '{str(target).replace("'", "''")}' (FORMAT parquet, COMPRESSION lz4)""",
                             [[str(_ledger_path(state_path, f)) for f in files], sorted(tables)])
            return [name]
        except duckdb.Error:  # an earlier file unreadable: kept as it is (the next audit reads the content whole)
            target.unlink(missing_ok=True)
    return [*files, save_ledger(state_path, frame, "tokens")]  # each scan's tokens are distinct


def flagged_columns(conn: duckdb.DuckDBPyConnection, index: pl.DataFrame, new_ids: IdentifierSet) -> set[str]:
    """The columns whose indexed tokens include every token of a new phrase other than a date of birth, or a word
    saying "date of birth": only there can the scan find one (a phrase is found as a run of a cell's tokens; a
    date of birth in context of such a word, or beside another new identifier of a person born that day). Every
    token, not the key token alone: a new NHS number's last four digits are some year, a new name's rarest word
    some ward's, and the ~32 columns so flagged (`birth_year`, `ward`) were read whole each month (0.5 s of the
    month's audit at 500k residents); every token leaves 4."""
    words = [w for w in DOB_CONTEXT_WORDS if " " not in w]
    phrases = new_ids.phrases.filter(pl.col("kind") != "date_of_birth").select(  # noqa: F841 (read by DuckDB)
        pl.int_range(pl.len(), dtype=pl.UInt32).alias("pid"), "phrase")
    need = conn.execute("SELECT DISTINCT pid, hash(tok) AS tok FROM (SELECT pid, unnest(string_split(phrase, ' ')) "
                        "AS tok FROM phrases) WHERE tok <> ''").pl().with_columns(pl.col("tok").cast(pl.UInt64))
    context = conn.execute("SELECT DISTINCT hash(w) AS h FROM (SELECT unnest(?::VARCHAR[]) AS w)", [words]
                           ).pl()["h"].cast(pl.UInt64)
    # each token once: the index files of several audits can list a column's token more than once
    found = (index.join(need, on="tok").group_by("loc", "pid").agg(n=pl.col("tok").n_unique())
             .join(need.group_by("pid").agg(needed=pl.len()), on="pid")
             .filter(pl.col("n") == pl.col("needed")))
    return set(found["loc"].unique()) | set(index.filter(pl.col("tok").is_in(context.implode()))["loc"].unique())


def redated_people(identifiers: IdentifierSet, new_ids: IdentifierSet) -> pl.DataFrame:
    """The new records that an earlier record already had, with another date of birth (a re-sent, corrected
    record): only those can make a row already audited line up with its record's date of birth."""
    old = identifiers.people.join(new_ids.people.select("pid"), on="pid", how="anti")
    pairs = new_ids.people.join(old, on=["source", "record_id"], suffix="_before")
    return pairs.filter(pl.col("dob").ne_missing(pl.col("dob_before")))


# --- the text index -------------------------------------------------------------------------------------------
# Texts already audited (the events of Dagster's recent runs, MLflow's params and tags) need reading against the
# new identifiers only where the prefiltered scan could find one: the index keeps, per text unit, a hash of each
# entry `text_index_entries` gives (tokens, pairs of consecutive tokens, the tokens after a date-of-birth word),
# so that the units that cannot hold any new phrase or date of birth are not read (reading 10 runs' events took
# 2.5 s, and up to 100 are kept). Pairs, not tokens alone: at 1.5M residents some new name's or address's words
# were somewhere in every run's events, and every run was read again every month.


def _entry_hash(entry: str) -> int:
    return int.from_bytes(hashlib.blake2b(entry.encode("utf-8", errors="surrogatepass"), digest_size=8).digest(),
                          "little")


def _empty_text_index() -> pl.DataFrame:
    return pl.DataFrame(schema={"unit": pl.String, "h": pl.UInt64})


def text_index_of(texts: Mapping[str, list[tuple[str, str]]]) -> pl.DataFrame:
    """(unit, h) of every entry of each unit's texts."""
    rows = [(unit, _entry_hash(e)) for unit, items in texts.items()
            for e in text_index_entries(text for _, text in items)]
    return pl.DataFrame(rows, schema={"unit": pl.String, "h": pl.UInt64}, orient="row") if rows \
        else _empty_text_index()


def file_index_of(paths: set[str], local: Local) -> pl.DataFrame:
    """(unit: the path, h) of every entry of the texts of each file, as `scan_files` reads them."""
    return text_index_of({p: file_texts([p], local) for p in sorted(paths)})


def load_text_index(state_path: Path, state: AuditState | None) -> pl.DataFrame | None:
    if state is None or not state.text_index:
        return None
    try:
        return pl.read_parquet(_ledger_path(state_path, state.text_index)).select(
            pl.col("unit").cast(pl.String), pl.col("h").cast(pl.UInt64))
    except (OSError, pl.exceptions.PolarsError):
        return None


def flagged_units(index: pl.DataFrame | None, units: set[str], ids: IdentifierSet) -> set[str]:
    """The `units` whose texts could hold one of `ids` as the prefiltered scan finds it: every entry of one of its
    phrases, or one of its dates of birth after a date-of-birth word; every unit the index does not cover."""
    needed = text_entries_needed(ids)
    if index is None or needed is None:
        return set(units)
    phrases, any_of = needed
    index = index.filter(pl.col("unit").is_in(list(units)))
    flagged = units - set(index["unit"])
    flagged |= set(index.filter(pl.col("h").is_in([_entry_hash(e) for e in any_of]))["unit"])
    hashes: dict[str, int] = {}
    rows = [(i, hashes.setdefault(t, _entry_hash(t))) for i, toks in enumerate(phrases) for t in set(toks)]
    need = pl.DataFrame(rows, schema={"phrase": pl.UInt32, "h": pl.UInt64}, orient="row")
    found = (index.join(need, on="h").group_by("unit", "phrase").len()
             .join(need.group_by("phrase").len(), on="phrase", suffix="_needed")
             .filter(pl.col("len") == pl.col("len_needed")))
    return flagged | set(found["unit"])


# Files MLflow writes beside every logged model (MLmodel) to rebuild its Python environment: package names and
# versions from the environment, never data, and a package's name can coincide with somebody's ("java", "rich").
MODEL_ENVIRONMENT_FILES = frozenset({"conda.yaml", "python_env.yaml", "requirements.txt", "pyproject.toml", "uv.lock"})


def is_model_environment_file(path: Path) -> bool:
    return path.name in MODEL_ENVIRONMENT_FILES and (path.parent / "MLmodel").is_file()


# --- the identifier phrases, per agency-zone partition ----------------------------------------------------------
# Making the phrases of 1.2M records takes ~20 s; a month brings a few thousand. They are kept in the agency zone
# itself (they are its identifiers, in scan form), per partition, with the partition's fingerprint and the rules'.

CACHE_SCHEMA = "leak_scan_cache"


def cached_identifier_sets(agency: duckdb.DuckDBPyConnection, schema: str, id_parts: Parts,
                           new_parts: Mapping[str, set[str]], rules: str
                           ) -> tuple[IdentifierSet, IdentifierSet, tuple[int, int]]:
    """Every identifier of `agency`'s `schema` tables and those of its `new_parts` (see `assemble_identifiers`),
    made only for the partitions whose fingerprint the cache does not hold (all of them on a read-only
    connection, where nothing is cached); and how many partitions were made and read from the cache."""
    wanted = {f"{t}|{p}": fp for t, parts in id_parts.items() for p, fp in parts.items()}
    new = {f"{t}|{p}" for t, parts in new_parts.items() for p in parts}
    cached = _cached_parts(agency, rules)
    stale = sorted(k for k, fp in wanted.items() if cached is None or cached.get(k) != fp)
    by_table: dict[str, set[str]] = {}
    for key in stale:
        table, part = key.split("|", 1)
        by_table.setdefault(table, set()).add(part)
    records = identifier_records(agency, schema, where={t: partition_condition(p) for t, p in by_table.items()})
    whole = {t for t, parts in id_parts.items() if set(parts) == {"*"}}
    keys = pl.Series("part", [f"{t}|{'*' if t in whole else (m or '')}"
                              for t, m in zip(records["__table"], records["extract_month"], strict=True)],
                     dtype=pl.String)
    people, phrases = record_identifiers(records)
    people = people.with_columns(part=keys)
    del records
    counts = (len(stale), len(wanted) - len(stale))
    if cached is not None:
        # everything made now (a full audit): the distinct phrases are kept too, of every part, so that the
        # month after it reads only its new parts' phrases (`_distinct_phrases`), as every later month does
        _store(agency, people, phrases, stale, [k for k in cached if k not in wanted], wanted, rules,
               distinct=len(stale) == len(wanted))
        if len(stale) < len(wanted):  # else everything was just made
            del people, phrases
            return *_identifiers_from_cache(agency, wanted, new, rules), counts
    return *assemble_identifiers(people, phrases, people["part"].is_in(list(new))), counts


def _cached_parts(agency: duckdb.DuckDBPyConnection, rules: str) -> dict[str, str] | None:
    """part -> fingerprint of what the cache holds (empty when it holds nothing made under these rules); None
    when it cannot be written (a read-only connection)."""
    try:
        agency.execute(f"CREATE SCHEMA IF NOT EXISTS {CACHE_SCHEMA}")
    except duckdb.Error:
        return None
    agency.execute(f"""
        CREATE TABLE IF NOT EXISTS {CACHE_SCHEMA}.parts (part VARCHAR PRIMARY KEY, fingerprint VARCHAR, rules VARCHAR);
        CREATE TABLE IF NOT EXISTS {CACHE_SCHEMA}.people (part VARCHAR, rid UINTEGER, source VARCHAR,
                                                         record_id VARCHAR, dob DATE);
        CREATE TABLE IF NOT EXISTS {CACHE_SCHEMA}.phrases (part VARCHAR, rid UINTEGER, phrase VARCHAR, kind VARCHAR);
        CREATE TABLE IF NOT EXISTS {CACHE_SCHEMA}.distinct_phrases (phrase VARCHAR, kind VARCHAR);
        CREATE TABLE IF NOT EXISTS {CACHE_SCHEMA}.distinct_parts (part VARCHAR, fingerprint VARCHAR, rules VARCHAR)""")
    rows = agency.execute(f"SELECT part, fingerprint FROM {CACHE_SCHEMA}.parts WHERE rules = ?", [rules]).fetchall()
    return dict(rows)


def _store(agency: duckdb.DuckDBPyConnection, people: pl.DataFrame, phrases: pl.DataFrame, stale: list[str],
           gone: list[str], wanted: Mapping[str, str], rules: str, distinct: bool = False) -> None:
    """Replace the cached phrases of the `stale` partitions (and drop those `gone` and any made under other rules),
    in one transaction: a killed audit leaves the cache as it was. `distinct` (the `stale` parts are every part
    `wanted`): the distinct phrases are replaced by theirs, and said to be of those parts (`_distinct_phrases`).
    Without it, the month after a full audit found the distinct phrases of every part again (1.2 s of its audit
    at 500k residents, the history's 3.4M phrases read, made distinct and matched against the month's)."""
    people_rows = people.select("part", rid="pid", source="source", record_id="record_id", dob="dob")  # noqa: F841
    phrase_rows = phrases.join(people.select("pid", "part"), on="pid").select(  # noqa: F841 (read by DuckDB)
        "part", rid="pid", phrase="phrase", kind="kind")
    stale_parts = pl.DataFrame({"part": stale + gone}, schema={"part": pl.String})  # noqa: F841
    fingerprints = pl.DataFrame({"part": stale, "fingerprint": [wanted[k] for k in stale]},  # noqa: F841
                                schema={"part": pl.String, "fingerprint": pl.String})
    with _one_transaction(agency):
        for table in ("people", "phrases", "parts"):
            agency.execute(f"DELETE FROM {CACHE_SCHEMA}.{table} WHERE part IN (SELECT part FROM stale_parts) OR "
                           f"part NOT IN (SELECT part FROM {CACHE_SCHEMA}.parts WHERE rules = ?)", [rules])
        agency.execute(f"INSERT INTO {CACHE_SCHEMA}.people SELECT * FROM people_rows")
        agency.execute(f"INSERT INTO {CACHE_SCHEMA}.phrases SELECT * FROM phrase_rows")
        agency.execute(f"INSERT INTO {CACHE_SCHEMA}.parts SELECT part, fingerprint, ? FROM fingerprints", [rules])
        if distinct:
            agency.execute(f"DELETE FROM {CACHE_SCHEMA}.distinct_phrases")
            agency.execute(f"INSERT INTO {CACHE_SCHEMA}.distinct_phrases SELECT DISTINCT phrase, kind FROM phrase_rows")
            agency.execute(f"DELETE FROM {CACHE_SCHEMA}.distinct_parts")
            agency.execute(f"INSERT INTO {CACHE_SCHEMA}.distinct_parts SELECT part, fingerprint, ? FROM fingerprints",
                           [rules])


@contextlib.contextmanager
def _one_transaction(agency: duckdb.DuckDBPyConnection) -> Iterator[None]:
    """The block's writes to the cache in one transaction: a killed or failed audit leaves the cache as it was."""
    agency.execute("BEGIN TRANSACTION")
    try:
        yield
        agency.execute("COMMIT")
    except BaseException:
        agency.execute("ROLLBACK")
        raise


def _identifiers_from_cache(agency: duckdb.DuckDBPyConnection, wanted: Mapping[str, str], new: set[str],
                            rules: str) -> tuple[IdentifierSet, IdentifierSet]:
    """`assemble_identifiers`' two sets from the cached `wanted` parts (part -> fingerprint; those in `new` are the
    new records'), the distinct and the new phrases found by DuckDB in the agency zone: only some 1.7M distinct
    phrases at 1.5M residents come into memory, not each record's 8.8M. Each record's own phrases, for the rare
    date-of-birth check that needs them, are read from the cache when asked for (`agency` must stay open
    meanwhile). The distinct phrases are kept too (`_distinct_phrases`), so that a month's audit finds only its
    new parts' phrases among them."""
    parts = list(wanted)
    frame = pl.DataFrame({"part": parts, "new": [p in new for p in parts]},
                         schema={"part": pl.String, "new": pl.Boolean})
    with registered(agency, "__leak_scan_wanted", frame):
        people = agency.execute(f"""
            SELECT CAST(row_number() OVER (ORDER BY part, rid) - 1 AS UINTEGER) AS pid, source, record_id, dob,
                   part, rid, w.new
            FROM {CACHE_SCHEMA}.people JOIN __leak_scan_wanted w USING (part) ORDER BY pid""").pl()
        phrases, new_phrases = _distinct_phrases(agency, wanted, new, rules)
    keys = people.select("pid", "part", "rid")

    def record_phrases(pids: pl.Series) -> pl.DataFrame:
        chosen = keys.filter(pl.col("pid").is_in(pids.implode()))
        with registered(agency, "__leak_scan_chosen", chosen):
            return agency.execute(f"SELECT c.pid, p.phrase FROM {CACHE_SCHEMA}.phrases p "
                                  "JOIN __leak_scan_chosen c USING (part, rid)").pl()

    return identifier_sets_of(people.drop("part", "rid", "new"), phrases, new_phrases, people["new"],
                              record_phrases)


def _distinct_phrases(agency: duckdb.DuckDBPyConnection, wanted: Mapping[str, str], new: set[str], rules: str
                      ) -> tuple[pl.DataFrame, pl.DataFrame]:
    """The distinct (phrase, kind) of the cached `wanted` parts (registered as `__leak_scan_wanted` (part, new)),
    and those of the `new` parts whose phrase no other part has. The cache keeps the distinct phrases of the parts
    `distinct_parts` lists (with their fingerprints): when those are exactly the parts not new now (a month after
    a passing audit), only the new parts' phrases are read and matched against them (finding 1.7M distinct
    phrases among 8.8M and matching the new ones against the rest was 2.4 s of the month's audit at 1.5M);
    otherwise (a part changed in place or gone, a failed audit before, other rules) they are found again from
    every part. Either way the cache then holds those of `wanted`, in one transaction: the distinct phrases
    depend only on the parts' phrases, whether the audit passes or not."""
    covered = dict(agency.execute(f"SELECT part, fingerprint FROM {CACHE_SCHEMA}.distinct_parts WHERE rules = ?",
                                  [rules]).fetchall())
    rest = {p: fp for p, fp in wanted.items() if p not in new}
    parts = pl.DataFrame({"part": list(wanted), "fingerprint": list(wanted.values())},
                         schema={"part": pl.String, "fingerprint": pl.String})
    phrases_of = f"SELECT phrase, kind FROM {CACHE_SCHEMA}.phrases WHERE part IN (SELECT part FROM __leak_scan_wanted"
    with registered(agency, "__leak_scan_parts", parts), _one_transaction(agency):
        if rest and covered == rest:  # the new parts' phrases alone
            agency.execute(f"CREATE OR REPLACE TEMP TABLE __leak_scan_month AS "
                           f"SELECT DISTINCT * FROM ({phrases_of} WHERE new))")
            new_phrases = agency.execute(f"SELECT * FROM __leak_scan_month ANTI JOIN "
                                         f"{CACHE_SCHEMA}.distinct_phrases USING (phrase)").pl()
            agency.execute(f"INSERT INTO {CACHE_SCHEMA}.distinct_phrases SELECT * FROM __leak_scan_month "
                           f"ANTI JOIN {CACHE_SCHEMA}.distinct_phrases USING (phrase, kind)")
            agency.execute("DROP TABLE __leak_scan_month")
        else:  # found again from every part; the new ones as `assemble_identifiers` finds them
            agency.execute(f"DELETE FROM {CACHE_SCHEMA}.distinct_phrases")
            agency.execute(f"INSERT INTO {CACHE_SCHEMA}.distinct_phrases SELECT DISTINCT * FROM ({phrases_of}))")
            new_phrases = agency.execute(f"SELECT DISTINCT * FROM ({phrases_of} WHERE new)) "
                                         f"ANTI JOIN ({phrases_of} WHERE NOT new)) USING (phrase)").pl() \
                if rest else None
        agency.execute(f"DELETE FROM {CACHE_SCHEMA}.distinct_parts")
        agency.execute(f"INSERT INTO {CACHE_SCHEMA}.distinct_parts SELECT part, fingerprint, ? "
                       "FROM __leak_scan_parts", [rules])
    phrases = agency.execute(f"SELECT phrase, kind FROM {CACHE_SCHEMA}.distinct_phrases").pl()
    return phrases, phrases if new_phrases is None else new_phrases
