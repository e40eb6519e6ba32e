"""`ed-pipeline evaluate`: the pipeline's results against the synthetic world's ground truth.

The only module outside synth that reads data/truth/: evaluation is its purpose.
"""

from __future__ import annotations

import duckdb
import polars as pl

from ed_pipeline.linkage import evaluate_links
from ed_pipeline.settings import Settings

# Goals of issue 3 on the default world.
LINKAGE_GOALS = {"f1": 0.99, "precision": 0.995}


def _probes(conn: duckdb.DuckDBPyConnection) -> pl.DataFrame:
    """Every pseudonymised record on its event date: where household assignment is judged."""
    tables = [t for (t,) in conn.execute(
        "select table_name from information_schema.tables where table_schema = 'pseudonymised'").fetchall()]
    union = " union all ".join(f"select source, record_id, event_date as date from pseudonymised.{t}"
                               for t in tables)
    return conn.execute(f"select distinct * from ({union})").pl()


def evaluate_linkage(settings: Settings) -> dict[str, float | int]:
    """Pairwise precision, recall, F1 of person links and household assignment accuracy, against truth."""
    truth_dir = settings.truth_dir
    missing = [p for p in ("person_records.parquet", "household_membership.parquet") if not (truth_dir / p).exists()]
    if missing:
        raise FileNotFoundError(f"no ground truth ({', '.join(missing)}) in {truth_dir}: "
                                "evaluation needs a synthetic world made by `ed-pipeline synth`")
    with duckdb.connect(str(settings.warehouse_path), read_only=True) as conn:
        predicted = conn.execute("select source, record_id, person_id from linked.person_link").pl()
        membership = conn.execute("select household_id, person_id, valid_from, valid_to "
                                  "from linked.household_membership").pl()
        probes = _probes(conn)
    return evaluate_links(
        predicted,
        pl.read_parquet(truth_dir / "person_records.parquet"),
        predicted_membership=membership,
        truth_membership=pl.read_parquet(truth_dir / "household_membership.parquet"),
        probes=probes,
    )
