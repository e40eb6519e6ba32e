"""The warehouse-wide privacy audit: no agency-zone identifier anywhere outside the agency zone.

Each pseudonymised partition is already scanned against its own records; this
check, run after linking, scans every table of warehouse.duckdb and everything
Dagster recorded (event metadata, check results, log messages of recent runs)
against every identifier held in the agency zone's validated tables.
"""

import dagster as dg
from dagster_duckdb import DuckDBResource

from ed_pipeline.defs.linked import linked_key
from ed_pipeline.privacy import identifiers_from_duckdb, scan_duckdb, scan_texts

RECENT_RUNS = 100


def dagster_texts(instance: dg.DagsterInstance, runs: int = RECENT_RUNS) -> list[tuple[str, str]]:
    """(location, text) for every event of the most recent runs: metadata, check results, log messages."""
    texts = []
    for run in instance.get_runs(limit=runs):
        for entry in instance.all_logs(run.run_id):
            event = entry.dagster_event
            payload = repr(event.event_specific_data) if event is not None else ""
            texts.append((f"dagster run {run.run_id[:8]} {entry.step_key or ''}", f"{entry.user_message}\n{payload}"))
    return texts


@dg.asset_check(
    asset=linked_key("person_link"),
    name="no_identifiers_anywhere",
    blocking=True,
    description="No name, date of birth, NHS number, UPN, postcode, address or UPRN of the agency zone appears "
    "in any table of warehouse.duckdb or in Dagster's event metadata and logs.",
)
def no_identifiers_anywhere(context: dg.AssetCheckExecutionContext, warehouse: DuckDBResource,
                            agency_zone: DuckDBResource) -> dg.AssetCheckResult:
    with agency_zone.get_connection() as conn:
        identifiers = identifiers_from_duckdb(conn)
    with warehouse.get_connection() as conn:
        leaks = scan_duckdb(conn, identifiers)
    texts = dagster_texts(context.instance)
    leaks += scan_texts(texts, identifiers)
    return dg.AssetCheckResult(
        passed=not leaks,
        metadata={
            "dagster_events_scanned": len(texts),
            "leaks": dg.MetadataValue.md("\n".join(f"- {leak}" for leak in leaks) or "none"),
        },
    )
