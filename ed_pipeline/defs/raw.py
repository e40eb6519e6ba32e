"""raw.<source>: each agency's monthly CSV as it arrived, with lineage columns (agency zone)."""

import functools
import sys

import dagster as dg
import duckdb
import polars as pl
from dagster_duckdb import DuckDBResource

from ed_pipeline.defs.metadata import bar_chart, counts_by
from ed_pipeline.defs.partitions import monthly_partitions, single_run, transient_retry
from ed_pipeline.defs.resources import AGENCY_ZONE, MONTH_PARTITION_EXPR
from ed_pipeline.quality import empty_raw_frame, raw_schema, read_extract
from ed_pipeline.quality.arrival import delivery_month, late_months, stamp_arrival
from ed_pipeline.settings import Settings, file_state
from ed_pipeline.sources import SOURCES, Source

READABLE_CHECK = "extract_readable"
# Recorded with each month raw reads (per partition), so that `ed-pipeline refresh` ingests only what is new since:
# the state of the file read (`file_state`), and the fingerprint of the code that made the month's rows of every
# ingest layer (`ingest_fingerprint`).
LANDED_FILE = "landed_file"
INGEST_RULES = "ingest_rules"
KEPT_WARNING = ("file not there any more: the rows loaded before are kept (a file with only the header would empty "
                "the month)")


def raw_key(source: Source) -> dg.AssetKey:
    return dg.AssetKey(["raw", source.name])


def build_raw_asset(source: Source) -> dg.AssetsDefinition:
    key = raw_key(source)

    @dg.asset(
        key=key,
        description=f"{source.description} ({source.agency}): the monthly extract as landed, every value as text.",
        group_name="raw",
        partitions_def=monthly_partitions,
        backfill_policy=single_run,
        retry_policy=transient_retry,
        io_manager_key=AGENCY_ZONE,
        kinds={"duckdb", "polars", "csv"},
        owners=["team:data-engineering"],
        tags={"zone": "agency", "agency": source.agency.lower().replace(" ", "_")},
        metadata={"partition_expr": MONTH_PARTITION_EXPR, "landing": f"landing/{source.name}/<YYYY-MM>.csv"},
        output_required=False,  # not written when a file is unreadable: see below
        check_specs=[
            dg.AssetCheckSpec(
                READABLE_CHECK,
                asset=key,
                blocking=True,
                description="Every landed file decodes, has the registry's columns and the right delimiter.",
            )
        ],
    )
    def raw_extract(context: dg.AssetExecutionContext, agency_zone: DuckDBResource):
        settings = Settings.from_env()
        frames, problems, warnings, not_landed, states = [], [], [], [], {}
        for month in context.partition_keys:
            path = settings.landing_file(source.name, month)
            if not path.exists():
                not_landed.append(month)
                continue
            states[month] = file_state(path)  # before reading: a file replaced meanwhile differs from it next time
            extract = read_extract(path, source, month)
            frames.append(extract.frame)
            problems += extract.problems
            warnings += [f"{path.name}: {w}" for w in extract.warnings]
        frame = pl.concat(frames, how="vertical") if frames else empty_raw_frame(source)
        held = _held_rows(agency_zone, source, context.partition_keys)
        read = [month for month in context.partition_keys if month not in not_landed]
        if read:  # a month sent again: its rows new or changed since arrived with this delivery, not with the month;
            # so do the rows of a month sent for the first time after a later one
            newest = _newest_month(agency_zone, source)
            frame = stamp_arrival(frame, held.filter(pl.col("extract_month").is_in(read)), source.columns,
                                  delivery_month([*settings.landed_months(), *([newest] if newest else [])], read),
                                  late=late_months(read, set(held["extract_month"]), newest))
        # A month loaded before whose file is gone (moved away, or deleted once loaded) keeps its rows as they
        # were: a missing file is not a withdrawal. A month is emptied by a file with its header and no rows.
        kept = held.filter(pl.col("extract_month").is_in(not_landed))
        kept_months = sorted(set(kept["extract_month"]))
        warnings += [f"{month}.csv: {KEPT_WARNING}" for month in kept_months]
        frame = pl.concat([frame, kept], how="vertical")
        context.log.info(f"{source.name}: {frame.height} rows from {len(frames)} file(s); {len(problems)} unreadable")

        # An unreadable file writes nothing: writing would replace its month's slice (an earlier, good delivery of
        # it) with nothing, while the month's validated rows stayed. The blocking check below stops what follows;
        # the refresh runs the source's other months again without it.
        if not problems:
            rules = ingest_fingerprint()
            for month, state in states.items():
                context.add_asset_metadata({LANDED_FILE: state, INGEST_RULES: rules}, partition_key=month)
            yield dg.Output(
                frame,
                metadata={
                    "months": len(context.partition_keys),
                    "files_read": len(frames),
                    "files_not_landed": len(not_landed) - len(kept_months),
                    "months_kept_without_file": len(kept_months),
                    "warnings": dg.MetadataValue.md("\n".join(f"- {w}" for w in warnings) or "none"),
                    # agency zone: counts only, never a row
                    "rows_by_month": bar_chart(counts_by(frame.rename({"extract_month": "month"}), "month")),
                },
            )
        yield dg.AssetCheckResult(
            check_name=READABLE_CHECK,
            passed=not problems,
            severity=dg.AssetCheckSeverity.ERROR,
            description="; ".join(p.message for p in problems) or None,
            metadata={
                "unreadable_files": len(problems),
                "problems": dg.MetadataValue.md("\n".join(f"- {p.message}" for p in problems) or "none"),
            },
        )

    return raw_extract


@functools.cache
def ingest_fingerprint() -> str:
    """A fingerprint of the code that decides a month's raw, validated, quarantine and pseudonymised rows: the
    source registry, the reading and validation rules and pseudonymisation, by their code (`code_fingerprint`: a
    comment or docstring changes nothing). A month loaded under another fingerprint is loaded again by the next
    `ed-pipeline refresh`."""
    from ed_pipeline import sources
    from ed_pipeline.defs import pseudonymised, validated
    from ed_pipeline.privacy import bloom, normalise, pseudonymise
    from ed_pipeline.privacy.audit import code_digest
    from ed_pipeline.quality import arrival, gx_runtime, reading, rules, validation

    return code_digest(module.__file__ for module in (sources, reading, rules, validation, arrival, gx_runtime,
                                                      normalise, pseudonymise, bloom, pseudonymised, validated,
                                                      sys.modules[__name__]))


def _held_rows(agency_zone: DuckDBResource, source: Source, months: list[str]) -> pl.DataFrame:
    """Every row raw.<source> holds of `months` from earlier deliveries, whole (lineage and arrival as they were),
    in raw's schema (a column the table predates is null)."""
    schema = raw_schema(source)
    with agency_zone.get_connection() as conn:
        try:
            have = _columns(conn, source)
            columns = ", ".join(f'"{c}"' if c in have else f'null as "{c}"' for c in schema)
            rows = conn.execute(f"select {columns} from raw.{source.name} where extract_month in (select unnest(?)) "
                                "order by extract_month, _row_number", [months]).pl()
        except duckdb.CatalogException:  # no table yet: nothing delivered before
            return empty_raw_frame(source)
    return rows.cast(schema)  # type: ignore[arg-type]


def _newest_month(agency_zone: DuckDBResource, source: Source) -> str | None:
    """The newest month raw.<source> holds rows of (before this delivery); None if none."""
    with agency_zone.get_connection() as conn:
        try:
            return conn.execute(f"select max(extract_month) from raw.{source.name}").fetchone()[0]
        except duckdb.CatalogException:
            return None


def _columns(conn: duckdb.DuckDBPyConnection, source: Source) -> set[str]:
    return {c for (c,) in conn.execute(
        "select column_name from information_schema.columns where table_schema = 'raw' and table_name = ?",
        [source.name]).fetchall()}


raw_assets = [build_raw_asset(source) for source in SOURCES]
