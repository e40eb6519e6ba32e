"""Storage maintenance: each zone's DuckDB file compacted when due (ed_pipeline/storage.py).

The pipeline's writes do not merge DuckDB's row groups, so that a month's write does not rewrite the tables' last
groups; the groups a year of months adds, and the rows the linked and feature tables delete, are merged by the
`compact_storage` job: on the 1st of each month at 03:00 (before the month's extracts are ingested on the 5th), and
when a data engineer launches it. It does nothing unless a table of the file is due (`storage.CompactionPolicy`).
The instance runs one run at a time, so no other run writes the files meanwhile; `ed-pipeline refresh` compacts
at its end itself.
"""

from pathlib import Path

import dagster as dg

from ed_pipeline.defs.resources import ZoneConnection
from ed_pipeline.storage import compact_if_due


@dg.op(out={},  # no output, so no IO manager
       description="Merge the partly filled row groups and deleted rows of the agency zone and the warehouse, "
       "each only when one of its tables is due (more than 12 small row groups, or a tenth of its rows deleted).")
def compact_zone_files(context: dg.OpExecutionContext, agency_zone: ZoneConnection,
                       warehouse: ZoneConnection):
    for compaction in compact_if_due([Path(agency_zone.database), Path(warehouse.database)]):
        context.log.info(compaction.summary())


@dg.job(description="Compact the DuckDB files when due: what a year of monthly writes leaves, merged.")
def compact_storage():
    compact_zone_files()


compact_storage_schedule = dg.ScheduleDefinition(
    name="compact_storage_schedule",
    job=compact_storage,
    cron_schedule="0 3 1 * *",
    description="On the 1st at 03:00, before the month's ingestion on the 5th: compact each DuckDB file if due.",
)
