"""validated.<source> and quarantine.<source>: canonical person records, and every rejected row with its reason."""

import dagster as dg
import polars as pl
from dagster_duckdb import DuckDBResource

from ed_pipeline.defs.metadata import bar_chart, counts_by
from ed_pipeline.defs.partitions import monthly_partitions, single_run, transient_retry
from ed_pipeline.defs.raw import raw_key
from ed_pipeline.defs.resources import AGENCY_ZONE, MONTH_PARTITION_EXPR, table_metadata, write_partition_together
from ed_pipeline.quality import build_data_docs, validate
from ed_pipeline.settings import Settings
from ed_pipeline.sources import SOURCES, Source

RECONCILED_CHECK = "reconciled"
EXPECTATIONS_CHECK = "expectations"
# A partition quarantining more than this share of its rows is worth a person's look.
QUARANTINE_ALERT_SHARE = 0.10


def validated_key(source: Source) -> dg.AssetKey:
    return dg.AssetKey(["validated", source.name])


def quarantine_key(source: Source) -> dg.AssetKey:
    return dg.AssetKey(["quarantine", source.name])


def build_validated_asset(source: Source) -> dg.AssetsDefinition:
    # Both tables are written by the asset, in one transaction (they must agree); the IO manager reads them.
    common = dict(
        dagster_type=dg.Nothing,
        io_manager_key=AGENCY_ZONE,
        group_name="validated",
        owners=["team:data-engineering"],
        tags={"zone": "agency"},
        metadata={"partition_expr": MONTH_PARTITION_EXPR},
    )

    @dg.multi_asset(
        name=f"validate_{source.name}",
        outs={
            "validated": dg.AssetOut(
                key=validated_key(source),
                description=f"{source.name} mapped to the canonical person record; only rows passing every rule.",
                kinds={"duckdb", "polars", "great_expectations"},
                **common,
            ),
            "quarantine": dg.AssetOut(
                key=quarantine_key(source),
                description=f"Rows of raw.{source.name} that failed a rule, with the rule, the value and the raw row.",
                kinds={"duckdb", "polars"},
                **common,
            ),
        },
        ins={"raw": dg.AssetIn(key=raw_key(source))},
        partitions_def=monthly_partitions,
        backfill_policy=single_run,
        retry_policy=transient_retry,
        check_specs=[
            dg.AssetCheckSpec(
                RECONCILED_CHECK,
                asset=validated_key(source),
                blocking=True,
                description="Nothing lost: raw rows = validated rows + quarantined rows.",
            ),
            dg.AssetCheckSpec(
                EXPECTATIONS_CHECK,
                asset=validated_key(source),
                description=f"The GX suite {source.name}_suite; warns when over "
                f"{QUARANTINE_ALERT_SHARE:.0%} of rows are quarantined.",
            ),
        ],
    )
    def validate_source(context: dg.AssetExecutionContext, agency_zone: DuckDBResource, raw: pl.DataFrame):
        validation = validate(raw, source)
        summary = validation.summary
        docs = build_data_docs(validation.gx_results, Settings.from_env().gx_docs_dir)
        rows_in = summary["rows_in"]
        share = summary["rows_quarantined"] / rows_in if rows_in else 0.0
        context.log.info(
            f"{source.name}: {rows_in} raw rows -> {summary['records_validated']} person records, "
            f"{summary['rows_quarantined']} rows quarantined"
        )
        failures = dict(summary.get("failures_by_rule", {}))
        write_partition_together(context, agency_zone, {validated_key(source): validation.validated,
                                                        quarantine_key(source): validation.quarantine})

        yield dg.Output(
            None,
            output_name="validated",
            metadata={
                **table_metadata(validation.validated),
                "raw_rows": rows_in,
                "raw_rows_validated": summary["rows_validated_raw"],
                "person_records": summary["records_validated"],
                "data_docs": dg.MetadataValue.url(docs.as_uri()),
                # agency zone: counts only, never a row
                "records_by_month": bar_chart(counts_by(validation.validated.rename({"extract_month": "month"}),
                                                        "month", value="records")),
            },
        )
        yield dg.Output(
            None,
            output_name="quarantine",
            metadata={
                **table_metadata(validation.quarantine),
                "rows_quarantined": summary["rows_quarantined"],
                "quarantined_share": round(share, 4),
                "failures_by_rule": dg.MetadataValue.json(failures),
                "quarantine_reasons": bar_chart(counts_by(validation.quarantine, "rule", by_count=True)),
                "quarantined_by_month": bar_chart(counts_by(validation.quarantine.rename({"extract_month": "month"}),
                                                            "month")),
            },
        )
        yield dg.AssetCheckResult(
            check_name=RECONCILED_CHECK,
            asset_key=validated_key(source),
            passed=bool(summary["reconciled"]),
            metadata={
                "raw_rows": rows_in,
                "validated_rows": summary["rows_validated_raw"],
                "quarantined_rows": summary["rows_quarantined"],
            },
        )
        yield dg.AssetCheckResult(
            check_name=EXPECTATIONS_CHECK,
            asset_key=validated_key(source),
            passed=share <= QUARANTINE_ALERT_SHARE,
            severity=dg.AssetCheckSeverity.WARN,
            metadata={
                "quarantined_share": round(share, 4),
                "failures_by_rule": dg.MetadataValue.json(failures),
                "data_docs": dg.MetadataValue.url(docs.as_uri()),
            },
        )

    return validate_source


validated_assets = [build_validated_asset(source) for source in SOURCES]
