"""pseudonymised.<source>: validated records with every direct identifier replaced by keyed tokens (warehouse)."""

import dagster as dg
import duckdb
import polars as pl
from dagster_duckdb import DuckDBResource

from ed_pipeline.defs.metadata import bar_chart, counts_by, markdown_table
from ed_pipeline.defs.partitions import monthly_partitions, single_run, transient_retry
from ed_pipeline.defs.resources import (
    LANDED_TABLE,
    MONTH_PARTITION_EXPR,
    WAREHOUSE,
    PseudonymisationKey,
    table_metadata,
    write_partition_together,
)
from ed_pipeline.defs.validated import validated_key
from ed_pipeline.privacy import identifiers_from_records, key_fingerprint, pseudonymise_people, scan_frame
from ed_pipeline.quality.arrival import landed_extracts
from ed_pipeline.settings import Settings
from ed_pipeline.sources import SOURCES, Source

NO_IDENTIFIERS_CHECK = "no_identifiers"
LANDED_KEY = dg.AssetKey(LANDED_TABLE.split("."))


def pseudonymised_key(source: Source) -> dg.AssetKey:
    return dg.AssetKey(["pseudonymised", source.name])


def read_postcode_directory(settings: Settings) -> pl.DataFrame | None:
    path = settings.postcode_directory
    return pl.read_parquet(path, columns=["postcode", "ward", "lsoa"]) if path.exists() else None


def aggregated_preview(tokens: pl.DataFrame) -> dg.MetadataValue:
    """Records by role and sex: what a preview of pseudonymised rows may show (no token, no single row)."""
    if not tokens.height or not {"role", "sex"} <= set(tokens.columns):
        return dg.MetadataValue.md("(no rows)")
    counts = (tokens.group_by("role", "sex").agg(pl.len().alias("records"))
              .sort("records", "role", "sex", descending=[True, False, False], nulls_last=True))
    return dg.MetadataValue.md(markdown_table(counts))


def build_pseudonymised_asset(source: Source) -> dg.AssetsDefinition:
    key = pseudonymised_key(source)

    @dg.asset(
        key=key,
        description=f"{source.name}: keyed HMAC tokens and hardened Bloom filters in place of identifiers; "
        "sex, birth year/month, ward, LSOA, event dates and attributes in clear.",
        ins={"validated": dg.AssetIn(key=validated_key(source))},
        # written by the asset, in one transaction with the record of the months delivered (LANDED_TABLE); the
        # IO manager reads it
        dagster_type=dg.Nothing,
        group_name="pseudonymised",
        partitions_def=monthly_partitions,
        backfill_policy=single_run,
        retry_policy=transient_retry,
        io_manager_key=WAREHOUSE,
        kinds={"duckdb", "polars"},
        owners=["team:data-engineering"],
        tags={"zone": "warehouse"},
        metadata={"partition_expr": MONTH_PARTITION_EXPR},
        check_specs=[
            dg.AssetCheckSpec(
                NO_IDENTIFIERS_CHECK,
                asset=key,
                blocking=True,
                description="None of the partition's names, dates of birth, NHS numbers, UPNs, postcodes, "
                "addresses or UPRNs appears anywhere in the pseudonymised rows.",
            )
        ],
    )
    def pseudonymise_source(context: dg.AssetExecutionContext, pseudo_key: PseudonymisationKey,
                            warehouse: DuckDBResource, validated: pl.DataFrame):
        secret = pseudo_key.key_bytes()
        other = _other_key(context, key_fingerprint(secret), warehouse, source)
        if other:
            raise dg.Failure(
                description=f"{source.name}: the key is not the one that made the table's other months (key "
                f"{key_fingerprint(secret)}, the table's {other}): values made under two keys never match. If the key "
                "was changed on purpose, drop the pseudonymised table of each source and run every month again "
                "under it (see the docs on a new key)", allow_retries=False)
        settings = Settings.from_env()
        lookup = read_postcode_directory(settings)
        if lookup is None:
            context.log.warning("no postcode directory: ward and LSOA will be null")
        tokens = pseudonymise_people(validated, secret, lookup)
        leaks = scan_frame(tokens, identifiers_from_records(validated), name=source.name) if tokens.height else []
        context.log.info(f"{source.name}: {tokens.height} records pseudonymised, {len(leaks)} leak(s) found")
        if leaks:
            # before the write: the rows would be in the warehouse whatever the check said
            raise dg.Failure(
                description=f"{source.name}: {len(leaks)} identifier leak(s) in the pseudonymised rows; none of "
                "them is in the warehouse (see the leaks: a column of the extract has identifiers in it)",
                metadata={"leaks": dg.MetadataValue.md("\n".join(f"- {leak}" for leak in leaks))},
                allow_retries=False,
            )
        # A month delivered with no rows (a file with its header alone) is recorded all the same: the data window
        # must not take it for a late one. Raw has read this run's files just before.
        months = context.partition_keys
        landed = landed_extracts(source.name, months,
                                 {m for m in months if settings.landing_file(source.name, m).exists()}, tokens)
        write_partition_together(context, warehouse, {key: tokens}, landed=landed)
        yield dg.Output(
            None,
            metadata={
                **table_metadata(tokens),
                "months_landed": landed.height,
                "key_fingerprint": key_fingerprint(secret),
                "ward_known_share": round(tokens["ward"].is_not_null().mean() or 0.0, 4) if tokens.height else 0.0,
                # tokens are never shown, nor single rows: aggregated counts of the columns in clear
                "records_by_month": bar_chart(counts_by(tokens.rename({"extract_month": "month"}), "month",
                                                        value="records")),
                "records_by_ward": bar_chart(counts_by(tokens, "ward", value="records", by_count=True)),
                "preview": aggregated_preview(tokens),
            },
        )
        yield dg.AssetCheckResult(check_name=NO_IDENTIFIERS_CHECK, passed=True,
                                  metadata={"leaks": dg.MetadataValue.md("none")})

    return pseudonymise_source


def _other_key(context: dg.AssetExecutionContext, fingerprint: str, warehouse: DuckDBResource,
               source: Source) -> str | None:
    """The fingerprint of the key that made the table's last materialisation, when it is another key and months
    it wrote are still in the table (a rotation drops them first)."""
    event = context.instance.get_latest_materialization_event(pseudonymised_key(source))
    before = event.asset_materialization.metadata.get("key_fingerprint") if event else None
    if before is None or before.value == fingerprint:
        return None
    months = [key[:7] for key in context.partition_keys]
    with warehouse.get_connection() as conn:
        try:
            kept = conn.execute(f"select count(*) from pseudonymised.{source.name} "
                                "where extract_month not in (select unnest(?))", [months]).fetchone()[0]
        except duckdb.CatalogException:  # no table (yet, or dropped for a rotation)
            return None
    return str(before.value) if kept else None


# Written by each source's asset with its months (a table that several assets write in part is not an asset of
# one of them): declared so that it is in the graph, under the assets that write it, as dbt's int_data_window
# reads it.
landed_extract = dg.AssetSpec(
    LANDED_KEY,
    description="The months each source delivered (its file landed and was loaded), with the records each holds: "
    "0 for a file with its header alone (a month without events). Read by the data window (int_data_window).",
    deps=[pseudonymised_key(source) for source in SOURCES],
    group_name="pseudonymised",
    kinds={"duckdb"},
    owners=["team:data-engineering"],
    tags={"zone": "warehouse"},
)

pseudonymised_assets = [build_pseudonymised_asset(source) for source in SOURCES]
