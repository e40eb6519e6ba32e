"""Outputs: what the pipeline publishes, made safe to publish. Dagster-free.

- `community_risk(scores, level)`: predicted risk by ward and by LSOA (children, mean predicted risk, predicted
  number at high risk, observed not-GLD rate, rank) with small-number suppression
  (`ed_pipeline.privacy.disclosure`).
- `ward_ranking_chart(community, path)`: a PNG of wards ranked by mean predicted risk.
"""

from ed_pipeline.outputs.chart import ward_ranking_chart
from ed_pipeline.outputs.community import (
    COMMUNITY_COUNT_COLUMNS,
    COMMUNITY_RISK_SCHEMA,
    HIGH_BAND,
    community_risk,
)

__all__ = [
    "COMMUNITY_COUNT_COLUMNS",
    "COMMUNITY_RISK_SCHEMA",
    "HIGH_BAND",
    "community_risk",
    "ward_ranking_chart",
]
