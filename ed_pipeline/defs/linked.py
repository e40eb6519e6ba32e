"""linked.*: people and households across agencies, by Splink over pseudonymised tokens (warehouse).

A whole-history asset: each refresh reads every pseudonymised record, links the
records it has not seen before against the persons already known with the saved
model (no re-training: the cost follows what is new), and keeps every id that
existed. `retrain` or `full_relink` in the run config re-trains or re-clusters
everything; ids still carry over, and the crosswalk tables say what merged and split.
A link of every record runs on Splink's Spark backend instead of DuckDB with
`ED_LINKAGE_BACKEND=spark` (same model, same persons; `ED_SPARK_MASTER`).
"""

import json
from pathlib import Path

import dagster as dg
import duckdb
import polars as pl
from dagster_duckdb import DuckDBResource

from ed_pipeline.defs.automation import follows_upstream
from ed_pipeline.defs.metadata import bar_chart, counts_by, histogram, preview, size_histogram, table_metadata
from ed_pipeline.defs.partitions import transient_retry
from ed_pipeline.defs.pseudonymised import pseudonymised_key
from ed_pipeline.linkage import LinkageModel, TokenColumns, id_stability, link
from ed_pipeline.linkage.households import households
from ed_pipeline.linkage.ids import ids_ever_named
from ed_pipeline.linkage.link import LINK_SCHEMA, link_incremental
from ed_pipeline.linkage.review import (
    accumulate_decisions,
    among,
    carry_review,
    decisions_from_review,
    review_pairs,
    undecided,
    unmet_decisions,
)
from ed_pipeline.linkage.tables import (
    APPENDED_TABLES,
    added_links,
    linked_tables,
    person_table_update,
    replace_rows,
    save_model_artifacts,
    write_tables,
)
from ed_pipeline.linkage.tokens import (
    monthly_link_columns,
    read_candidates,
    read_records,
    read_tokens,
    version_digests,
)
from ed_pipeline.resilience import table_digest
from ed_pipeline.settings import Settings, linkage_backend, spark_master
from ed_pipeline.sources import SOURCES

LINKED_TABLES = {
    "person_link": "One row per pseudonymised record: the person it belongs to and the match probability.",
    "person": "One row per linked person: record count, sources, first and last seen, birth year/month, sex.",
    "household_membership": "Who lived in which household, when (valid_to exclusive; null = still there).",
    "cohort": "Children aged five or under in the window, with their household spells.",
    "person_crosswalk": "History of person-id merges and splits, one row per change per refresh.",
    "household_crosswalk": "History of household-id merges and splits.",
    "review_pair": "Borderline pairs for clerical review: comparison levels and weights only, never tokens. "
    "Reviewers fill `decision` ('match' / 'non_match'); the next refresh applies it.",
    "review_decision": "Every reviewer decision so far, applied as must-link / cannot-link on every refresh.",
}
ID_STABILITY_CHECK = "ids_stable"
MIN_ID_STABILITY = 0.999
MODEL_FILE = "linkage_model.json"
# what linked.person was last built from: under linkage_dir, in a folder of its own (the directory's own files
# go to MLflow, as the model's inputs; this one does not)
PERSON_STATE = Path("state") / "linked_person.json"


class LinkageConfig(dg.Config):
    retrain: bool = False  # train a new Fellegi-Sunter model instead of reusing the saved one
    full_relink: bool = False  # score and cluster every record again (ids still carry over)


def linked_key(table: str) -> dg.AssetKey:
    return dg.AssetKey(["linked", table])


def read_table(conn: duckdb.DuckDBPyConnection, table: str) -> pl.DataFrame | None:
    schema, name = table.split(".")
    exists = conn.execute("select count(*) from information_schema.tables where table_schema=? and table_name=?",
                          [schema, name]).fetchone()[0]
    return conn.execute(f"select * from {table}").pl() if exists else None


def _digest(conn: duckdb.DuckDBPyConnection, table: str) -> str | None:
    """`table`'s rows and content, every column, as the state keeps them."""
    digest = table_digest(conn, *table.split("."), left_out=frozenset())
    return None if digest is None else f"{digest[0]}:{digest[1]:x}"


def _months_new_to_person(conn: duckdb.DuckDBPyConnection, state_path: Path, digests: dict[str, str]
                          ) -> list[str] | None:
    """The pseudonymised months ("<source>/<extract_month>") that linked.person has not read, when it read every
    other month as it is now (each with the digest it had): the persons of their records are the only ones whose
    row can differ from the table's. None when that is not known: no state saved, a table not the one the state
    was saved with (restored, written by another version), or a month read before that changed or went."""
    try:
        saved = json.loads(state_path.read_text())
    except (OSError, ValueError):
        return None
    if (saved.get("person") != _digest(conn, "linked.person")
            or saved.get("person_link") != _digest(conn, "linked.person_link")):
        return None
    before = saved.get("months", {})
    if any(digests.get(month) != digest for month, digest in before.items()):
        return None
    return sorted(set(digests) - set(before))


def _save_person_state(conn: duckdb.DuckDBPyConnection, state_path: Path, digests: dict[str, str]) -> None:
    state_path.parent.mkdir(parents=True, exist_ok=True)
    partial = state_path.with_suffix(".partial")
    partial.write_text(json.dumps({"months": digests, "person": _digest(conn, "linked.person"),
                                   "person_link": _digest(conn, "linked.person_link")}, sort_keys=True))
    partial.replace(state_path)


def _table_metadata(table: str, frame: pl.DataFrame | None) -> dict:
    """Row count, column schema, a preview without ids, and the table's own plot (warehouse zone, no token)."""
    if frame is None:
        return {"unchanged": True}
    metadata = {**table_metadata(frame), "preview": preview(frame)}
    if table == "person_link" and frame.height:
        sizes = frame.group_by("person_id").len()["len"]
        metadata["cluster_sizes"] = bar_chart(size_histogram(sizes, label="records per person", value="persons"))
        metadata["match_probability"] = bar_chart(histogram(
            frame["match_probability"].fill_null(1.0), [0, 0.5, 0.8, 0.9, 0.95, 0.99, 1.0],
            label="match probability", value="records"))
    elif table == "person" and frame.height:
        counts = frame["sources"].cast(pl.String).str.split(",").list.len()  # "benefits,housing"
        metadata["persons_by_number_of_sources"] = bar_chart(size_histogram(counts, cap=7, label="sources",
                                                                            value="persons"))
    elif table == "household_membership" and frame.height:
        current = frame.filter(pl.col("valid_to").is_null())
        sizes = current.group_by("household_id").agg(pl.col("person_id").n_unique())["person_id"]
        metadata["household_sizes"] = bar_chart(size_histogram(sizes, label="members now", value="households"))
    elif table in ("person_crosswalk", "household_crosswalk") and frame.height:
        metadata["changes"] = bar_chart(counts_by(frame, "change", value="ids", by_count=True))
    return metadata


@dg.multi_asset(
    name="link_people_and_households",
    retry_policy=transient_retry,
    specs=[
        dg.AssetSpec(
            linked_key(table),
            description=description,
            deps=[pseudonymised_key(s) for s in SOURCES],
            group_name="linked",
            kinds={"splink", "duckdb", "polars"},
            owners=["team:data-science"],
            tags={"zone": "warehouse"},
            # Re-link once new months have been pseudonymised (the monthly schedule only ingests).
            automation_condition=follows_upstream(),
        )
        for table, description in LINKED_TABLES.items()
    ],
    check_specs=[
        dg.AssetCheckSpec(
            ID_STABILITY_CHECK,
            asset=linked_key("person_link"),
            description=f"At least {MIN_ID_STABILITY:.1%} of already-linked records keep their person id.",
        )
    ],
)
def link_people_and_households(context: dg.AssetExecutionContext, config: LinkageConfig, warehouse: DuckDBResource):
    settings = Settings.from_env()
    model_path = settings.linkage_dir / MODEL_FILE
    spec = TokenColumns()
    model = None if config.retrain or not model_path.exists() else LinkageModel.load(model_path)
    if model is not None and model.fields - set(spec.mapping()):
        # a model saved by an earlier version compares columns the warehouse no longer has: trained again
        context.log.info(f"the saved linkage model uses {len(model.fields - set(spec.mapping()))} column(s) "
                         "this version no longer has: training a new one")
        model = None
    with warehouse.get_connection() as conn:
        previous = read_table(conn, "linked.person_link")
        previous_households = read_table(conn, "linked.household_membership")
        retired = {kind: ids_ever_named(read_table(conn, f"linked.{kind}_crosswalk"))
                   for kind in ("person", "household")}
        reviewed = read_table(conn, "linked.review_pair")
        decisions = accumulate_decisions(read_table(conn, "linked.review_decision"), reviewed)
        # reviewers' new decisions that persons already linked do not meet: a month's link cannot split or join
        # them, so every record is linked again this once (ids carry over, the crosswalk says what changed)
        unmet = unmet_decisions(decisions_from_review(reviewed) if reviewed is not None else None, previous)
        incremental = previous is not None and model is not None and not config.full_relink and not unmet
        if unmet:
            context.log.info(f"{unmet} new reviewer decision(s) split or merge persons already linked: linking "
                             "every record again")
        # a month's link reads every token only of its new records and their candidates; of the rest, the few
        # columns that households, linked.person and the term frequencies need
        tokens = read_tokens(conn, spec, columns=monthly_link_columns(spec, model) if incremental else None)
        digests = version_digests(conn, spec)
        state_path = settings.linkage_dir / PERSON_STATE
        withdrawn = 0
        new_months = prior_persons = None
        if incremental:
            key = ["source", "record_id"]
            # a record no longer in the warehouse (its month sent again without it) is linked no longer, as in a
            # full link; person_link is then written whole, not appended to
            withdrawn = previous.join(tokens.select(key), on=key, how="anti").height
            if withdrawn:
                previous = previous.join(tokens.select(key), on=key, how="semi")
            known = tokens.join(previous.select(key), on=key, how="semi")
            new = read_records(conn, spec, tokens.join(previous.select(key), on=key, how="anti"))
            if not withdrawn:
                new_months = _months_new_to_person(conn, state_path, digests)
                prior_persons = read_table(conn, "linked.person") if new_months is not None else None
            context.log.info(f"linking {new.height} new records against {known.height} already linked")
            result = link_incremental(previous, known, new, model, decisions=decisions,
                                      find_candidates=lambda fresh: read_candidates(conn, model, known, fresh))
    backend = linkage_backend()
    if not incremental:
        context.log.info(f"linking all {tokens.height} records ({'saved' if model else 'newly trained'} model, "
                         f"on {backend})")
        if backend == "spark":
            from ed_pipeline.linkage.spark import link_every_record_on_spark

            result = link_every_record_on_spark(tokens, model, spark_master(), spec=spec, previous=previous,
                                                retired=retired["person"], decisions=decisions)
        else:
            result = link(tokens, model, previous=previous, retired=retired["person"], decisions=decisions)
    household = households(tokens, result.links, previous=previous_households, retired=retired["household"],
                           renamed=result.crosswalk)
    # always a table, empty when no pair is borderline: a full link's review must not leave the last one's pairs
    review = review_pairs(result)
    if incremental:
        review = carry_review(reviewed, review)
        if withdrawn:
            review = among(review, tokens)  # a pending pair of a record no longer in the warehouse: gone with it
    review = undecided(review, decisions)
    # An incremental link keeps every link there was: person_link gains only the records new to it, appended
    # (rewriting the 1.2M rows of Essex and sorting them again was some 2 s of a month)
    added = added_links(result, previous) if incremental else None
    person_link = pl.concat([previous.select(list(LINK_SCHEMA)).cast(LINK_SCHEMA), added]) if incremental else None
    persons = fresh_persons = None
    if prior_persons is not None:
        # linked.person is that of the last link but for the persons of the records new to it (added) or whose
        # month it has not read (a record sent again in a new month): only theirs are built and written again
        key = ["source", "record_id"]
        changed = tokens.filter(pl.concat_str(pl.col(spec.source), pl.lit("/"), pl.col("extract_month").cast(pl.String))
                                .is_in(new_months)).select(
            pl.col(spec.source).alias("source"), pl.col(spec.record_id).cast(pl.String).alias("record_id"))
        touched = pl.concat([person_link.join(changed, on=key, how="semi")["person_id"], added["person_id"]])
        persons, fresh_persons = person_table_update(prior_persons, person_link, tokens, touched, spec)
    tables = linked_tables(result, tokens, household, review=review, person_link=person_link, persons=persons)
    tables["review_decision"] = decisions
    with warehouse.get_connection() as conn:
        state_path.unlink(missing_ok=True)  # saved again once the tables it describes are written
        conn.begin()
        # a month changes few rows of the whole history's persons, households and cohort: written by difference
        by_difference = ("person", "household_membership", "cohort") if incremental else ()
        written = {name: frame for name, frame in tables.items() if name != "person" or fresh_persons is None}
        if incremental and not withdrawn:
            write_tables(conn, {**written, "person_link": added}, append=(*APPENDED_TABLES, "person_link"),
                         by_difference=by_difference)
        else:
            write_tables(conn, written, by_difference=by_difference)
        if fresh_persons is not None:
            replace_rows(conn, "linked.person", "person_id", touched.cast(pl.String).unique(), fresh_persons)
        conn.commit()
        _save_person_state(conn, state_path, digests)
    artifacts = save_model_artifacts(result, settings.linkage_dir)

    links = tables["person_link"]
    # measured on what linking returned, not on the table written (which keeps the old links by construction)
    stability = id_stability(previous, result.links) if previous is not None else 1.0
    stats = {
        "mode": "incremental" if incremental else "full",
        "backend": "duckdb" if incremental else backend,  # a month's link is DuckDB's whatever ED_LINKAGE_BACKEND says
        "records": links.height,
        "persons": links["person_id"].n_unique(),
        "households": tables["household_membership"]["household_id"].n_unique(),
        "cohort_children": tables["cohort"]["person_id"].n_unique(),
        "review_pairs": tables["review_pair"].height,
        "review_decisions": decisions.height,
        "seconds": round(result.timings.get("total", 0.0), 2),
        # incremental: the records read whole, in proportion to the month (of the rest, only a few columns)
        **({"new_records": new.height, "candidate_records": result.model.metadata["last_incremental"]["candidates"]}
           if incremental else {}),
    }
    context.log.info(f"linked: {stats}")
    for table in LINKED_TABLES:
        frame = tables.get(table)
        extra = {"model": dg.MetadataValue.path(str(artifacts["model"])),
                 "match_weights_chart": dg.MetadataValue.path(str(artifacts["match_weights_chart"])),
                 **stats} if table == "person_link" else {}
        yield dg.MaterializeResult(
            asset_key=linked_key(table),
            metadata={**_table_metadata(table, frame), **extra},
        )
    yield dg.AssetCheckResult(
        check_name=ID_STABILITY_CHECK,
        asset_key=linked_key("person_link"),
        passed=stability >= MIN_ID_STABILITY,
        metadata={"kept_share": round(stability, 6), "previously_linked": 0 if previous is None else previous.height},
    )


linked_assets = [link_people_and_households]
