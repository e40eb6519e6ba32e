"""Re-identification for human review, agency-side only (`ed-pipeline reidentify --source S --top N`).

A prediction is never acted on by itself (UK GDPR Article 22): a practitioner of the agency that holds a
child's records reviews every flag. The shared warehouse holds no names, so the agency re-identifies its own
children, in its own zone, with the pseudonymisation key:

1. From the warehouse (opened read-only; nothing is ever written to it): the scored children of
   `outputs.child_risk` (the latest prediction per child, ranked by risk, 1 = highest), the agency's records
   of them (`linked.person_link`), and those records' name-and-date-of-birth tokens (`pseudonymised.<source>`).
2. In the agency zone: the agency's own validated records with those record ids, re-hashed with the key
   (`pseudonymise_people`). A record is listed only if its tokens still match the warehouse's (the same
   record id *and* the same name + date of birth), and every version of it there carries the same identity,
   so a record corrected or re-used since it was linked is never shown against somebody else's score.
3. The N highest-risk matching children, with their names, dates of birth and the agency's record ids, are
   returned for the screen, and **before that** one row is appended to `audit.reidentification` in the
   agency zone: when (UTC), the operating-system user and the named reviewer, the source, N, how many
   children were listed, the stated purpose, their pseudonymous person ids (never names), the key's
   fingerprint and the outcome. A refused call (unknown source, no model output yet) is recorded as well, and
   so is one that failed (its error's class only).
"""

from __future__ import annotations

import getpass
import os
from dataclasses import dataclass, field
from datetime import UTC, datetime

import duckdb
import polars as pl

from ed_pipeline.privacy import key_fingerprint, pseudonymise_people
from ed_pipeline.settings import Settings
from ed_pipeline.sources import SOURCES

AUDIT_SCHEMA = "audit"
AUDIT_TABLE = f"{AUDIT_SCHEMA}.reidentification"
MATCH_TOKENS = ("tok_name_dob", "tok_dob")  # both must still match (null matching null) for a record to be listed
LISTING_COLUMNS = ("rank", "person_id", "risk", "band", "top_factors", "given_name", "family_name",
                   "date_of_birth", "record_ids")
_AUDIT_DDL = f"""
create schema if not exists {AUDIT_SCHEMA};
create table if not exists {AUDIT_TABLE} (
    called_at timestamp,        -- UTC
    os_user varchar,
    reviewer varchar,
    source varchar,
    top integer,
    rows_listed integer,
    purpose varchar,
    person_ids varchar[],       -- pseudonymous ids of the children listed, in the order shown
    key_fingerprint varchar,
    outcome varchar             -- 'listed' or 'refused: <reason>'
)
"""


class ReidentifyError(RuntimeError):
    """A re-identification request that cannot be served (the message says why and what to do)."""


class UnknownSourceError(ReidentifyError):
    pass


class MissingOutputError(ReidentifyError):
    pass


class WrongKeyError(ReidentifyError):
    pass


@dataclass(frozen=True)
class Review:
    """What a practitioner sees: `listing` (LISTING_COLUMNS, highest risk first) and what was recorded."""

    listing: pl.DataFrame
    flagged_children: int  # scored children of whom the agency holds a record
    unmatched_records: int  # records whose identity no longer matches their warehouse tokens, or whose versions
    # there carry more than one identity: not listed
    audit: dict = field(default_factory=dict)


def _os_user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return os.environ.get("USER") or os.environ.get("USERNAME") or "unknown"


def _exists(conn: duckdb.DuckDBPyConnection, schema: str, table: str) -> bool:
    return conn.execute("select count(*) from information_schema.tables where table_schema=? and table_name=?",
                        [schema, table]).fetchone()[0] > 0


def _columns(conn: duckdb.DuckDBPyConnection, schema: str, table: str) -> set[str]:
    return {c for (c,) in conn.execute(
        "select column_name from information_schema.columns where table_schema=? and table_name=?",
        [schema, table]).fetchall()}


def flagged_records(settings: Settings, source: str) -> pl.DataFrame:
    """From the warehouse (read-only): every scored child with a record of `source`, one row per record.

    Columns: rank, person_id, risk, band, top_factors, record_id and the MATCH_TOKENS of the record.
    """
    if not settings.warehouse_path.exists():
        raise MissingOutputError(f"no warehouse at {settings.warehouse_path}: run `ed-pipeline refresh` first")
    with duckdb.connect(str(settings.warehouse_path), read_only=True) as wh:
        if not _exists(wh, "outputs", "child_risk"):
            raise MissingOutputError(
                f"outputs.child_risk does not exist yet in {settings.warehouse_path}: run `ed-pipeline refresh` "
                "first (the model scores the children)")
        for schema, table in (("linked", "person_link"), ("pseudonymised", source)):
            if not _exists(wh, schema, table):
                raise MissingOutputError(f"{schema}.{table} does not exist in {settings.warehouse_path}: "
                                         "run `ed-pipeline refresh` first")
        risk_columns = _columns(wh, "outputs", "child_risk")
        factors = "top_factors" if "top_factors" in risk_columns else "null as top_factors"
        latest = ("qualify row_number() over (partition by person_id order by prediction_date desc nulls last) = 1"
                  if "prediction_date" in risk_columns else "")
        return wh.execute(f"""
            with latest as (
                select person_id, risk, band, {factors} from outputs.child_risk {latest}
            ), ranked as (
                select rank() over (order by risk desc) as rank, * from latest
            )
            select distinct r.rank, r.person_id, r.risk, r.band, r.top_factors, l.record_id,
                   {', '.join(f'p.{t}' for t in MATCH_TOKENS)}
            from ranked r
            join linked.person_link l on l.person_id = r.person_id and l.source = ?
            join pseudonymised.{source} p on p.record_id = l.record_id
            order by r.rank, r.person_id, l.record_id
        """, [source]).pl()


def _match(flagged: pl.DataFrame, agency: duckdb.DuckDBPyConnection, source: str, key: bytes) -> pl.DataFrame:
    """The agency's validated records of the flagged children whose re-hashed tokens still match."""
    if not _exists(agency, "validated", source):
        raise MissingOutputError(f"validated.{source} does not exist in the agency zone: run `ed-pipeline refresh`")
    agency.register("_flagged_record_ids", flagged.select("record_id").unique().to_arrow())
    try:
        records = agency.execute(
            f"select * from validated.{source} where record_id in (select record_id from _flagged_record_ids)").pl()
    finally:
        agency.unregister("_flagged_record_ids")
    if records.is_empty():
        return records.with_columns(*(pl.lit(None, dtype=pl.String).alias(t) for t in MATCH_TOKENS))
    tokens = pseudonymise_people(records, key)
    return records.with_columns(*(tokens[t] for t in MATCH_TOKENS))


def _check_key(flagged: pl.DataFrame, records: pl.DataFrame, source: str, key: bytes) -> None:
    """Refuse when not one version of any flagged record re-hashes to its warehouse tokens: under the key that made
    the warehouse every unchanged version does (a record changed since keeps its old version in both zones), so
    this is a key other than that one. Without this, every record read as 'identity changed, look it up by hand'."""
    if flagged.is_empty() or records.is_empty():
        return
    if flagged.join(records, on=["record_id", *MATCH_TOKENS], how="semi").is_empty():  # nulls never match here
        raise WrongKeyError(
            f"none of the {flagged['record_id'].n_unique()} {source} records of scored children re-hashes to its "
            f"tokens in the warehouse under this key (fingerprint {key_fingerprint(key)}): it is not the key the "
            "warehouse was made with. Set ED_PSEUDO_KEY to the key custodian's key; nothing was listed")


def _record_audit(settings: Settings, row: dict) -> None:
    with duckdb.connect(str(settings.agency_zone_path)) as agency:
        _append_audit(agency, row)


def _append_audit(agency: duckdb.DuckDBPyConnection, row: dict) -> None:
    agency.execute(_AUDIT_DDL)
    columns = list(row)
    agency.execute(f"insert into {AUDIT_TABLE} ({', '.join(columns)}) values ({', '.join('?' * len(columns))})",
                   [row[c] for c in columns])


def reidentify(
    settings: Settings,
    source: str,
    top: int,
    key: bytes,
    *,
    reviewer: str | None = None,
    purpose: str | None = None,
    os_user: str | None = None,
) -> Review:
    """List the `top` highest-risk children of whom `source` holds a record, by name, for human review.

    Reads the warehouse read-only and the agency zone's `validated.<source>`; appends one row to
    `audit.reidentification` in the agency zone before returning (and for a refused call). See the module
    docstring.
    """
    audit = {
        "called_at": datetime.now(UTC).replace(tzinfo=None),
        "os_user": os_user or _os_user(),
        "reviewer": reviewer,
        "source": source,
        "top": top,
        "rows_listed": 0,
        "purpose": purpose,
        "person_ids": [],
        "key_fingerprint": key_fingerprint(key),
        "outcome": "listed",
    }
    if not settings.agency_zone_path.exists():
        raise MissingOutputError(f"no agency zone at {settings.agency_zone_path}: run `ed-pipeline refresh` first")
    try:
        if source not in {s.name for s in SOURCES}:
            raise UnknownSourceError(f"unknown source {source!r}; one of: {', '.join(s.name for s in SOURCES)}")
        if top < 1:
            raise ReidentifyError(f"--top must be at least 1, not {top}")
        flagged = flagged_records(settings, source)
        with duckdb.connect(str(settings.agency_zone_path)) as agency:
            records = _match(flagged, agency, source, key)
            _check_key(flagged, records, source, key)
            listing, unmatched = _listing(flagged, records, top)
            audit.update(rows_listed=listing.height, person_ids=listing["person_id"].to_list())
            _append_audit(agency, audit)  # recorded before anything is shown
    except Exception as exc:  # every call is recorded, a refused or failed one too (and nothing is shown)
        outcome = f"refused: {exc}" if isinstance(exc, ReidentifyError) else f"failed: {type(exc).__name__}"
        _record_unserved(settings, {**audit, "rows_listed": 0, "person_ids": [], "outcome": outcome}, exc)
        raise
    return Review(listing, flagged["person_id"].n_unique(), unmatched, audit)


def _listing(flagged: pl.DataFrame, records: pl.DataFrame, top: int) -> tuple[pl.DataFrame, int]:
    """The `top` highest-risk children whose records match, and how many flagged records do not. A record whose
    versions in the warehouse carry more than one identity (corrected since, or its id re-used) does not match:
    the link was made with one of them, and which one is not kept."""
    identities = flagged.group_by("record_id").agg(pl.struct(*MATCH_TOKENS).n_unique().alias("identities"))
    one_identity = flagged.join(identities.filter(pl.col("identities") == 1), on="record_id", how="semi")
    matched = one_identity.join(records, on=["record_id", *MATCH_TOKENS], how="inner", nulls_equal=True)
    unmatched = flagged["record_id"].n_unique() - matched["record_id"].n_unique()
    order = "event_date" if "event_date" in matched.columns else "extract_month"
    # then by extract: two versions of a record on one date whose names differ only as the tokens fold them away
    # (case, punctuation) list the later one's, whichever order the agency zone stores them in
    then = ["extract_month"] if order != "extract_month" and "extract_month" in matched.columns else []
    listing = (
        matched.sort(["rank", "person_id", order, "record_id", *then], nulls_last=True)
        .group_by("person_id", maintain_order=True)
        .agg(
            pl.col("rank", "risk", "band", "top_factors").first(),
            pl.col("given_name", "family_name", "date_of_birth").last(),  # as on the latest record
            record_ids=pl.col("record_id").unique().sort().str.join(", "),
        )
        .head(top)
        .select(LISTING_COLUMNS)
    )
    return listing, unmatched


def _record_unserved(settings: Settings, row: dict, exc: Exception) -> None:
    """Record a refused or failed call; if even that fails (the agency zone locked or full), the caller's error
    still propagates, with a note that the call went unrecorded."""
    try:
        _record_audit(settings, row)
    except Exception as failure:  # any failure to record is said on the error raised
        exc.add_note(f"this call could not be recorded in {AUDIT_TABLE}: {type(failure).__name__}: {failure}")


def read_audit(settings: Settings) -> pl.DataFrame:
    """The audit trail, oldest first (empty if no call was ever made)."""
    with duckdb.connect(str(settings.agency_zone_path), read_only=True) as agency:
        if not _exists(agency, AUDIT_SCHEMA, "reidentification"):
            return pl.DataFrame()
        return agency.execute(f"select * from {AUDIT_TABLE} order by called_at").pl()
