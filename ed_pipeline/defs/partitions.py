"""Monthly partitions: one agency extract a month, history from the first year of the current EYFSP."""

import dagster as dg

from ed_pipeline.settings import FIRST_MONTH

monthly_partitions = dg.MonthlyPartitionsDefinition(start_date=FIRST_MONTH, fmt="%Y-%m")

# Whole-history backfills run as one run per asset, not one per month.
single_run = dg.BackfillPolicy.single_run()

# Transient failures (a DuckDB file briefly locked, a slow disk) are retried; a bad extract is not transient:
# it fails a blocking check instead of raising, so it is not retried.
transient_retry = dg.RetryPolicy(max_retries=2, delay=5, backoff=dg.Backoff.EXPONENTIAL)
