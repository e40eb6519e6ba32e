"""Monthly partitions: one agency extract a month, history from the first year of the current EYFSP."""

import dagster as dg

from ed_pipeline.settings import FIRST_MONTH

monthly_partitions = dg.MonthlyPartitionsDefinition(start_date=FIRST_MONTH, fmt="%Y-%m")

# Whole-history backfills run as one run per asset, not one per month.
single_run = dg.BackfillPolicy.single_run()
