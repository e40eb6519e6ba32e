"""Dagster's SQLite event log against ed-pipeline's (engines kept): the events of one recorded run stored again.

    .venv/bin/python benchmarks/event_log.py data/benchmarks/full_refresh/1500000/dagster/history/runs/<run id>.db

Reads every event of the run's event log file, then stores them (under a new run id, into a new temporary storage)
with Dagster's `SqliteEventLogStorage` and with `PooledSqliteEventLogStorage`, twice each, alternating, and prints
the seconds and milliseconds per event of each.
"""

import argparse
import sqlite3
import tempfile
import time
import uuid

from dagster._core.storage.event_log import SqliteEventLogStorage
from dagster._serdes import deserialize_value

from ed_pipeline.defs.event_log_storage import PooledSqliteEventLogStorage


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run_db", help="a run's event log file (<DAGSTER_HOME>/history/runs/<run id>.db)")
    args = parser.parse_args()
    with sqlite3.connect(args.run_db) as conn:
        events = [deserialize_value(text) for (text,) in conn.execute("select event from event_logs order by id")]
    print(f"{len(events)} events")
    for storage_class in (SqliteEventLogStorage, PooledSqliteEventLogStorage) * 2:
        with tempfile.TemporaryDirectory() as base_dir:
            storage = storage_class(base_dir)
            run_id = str(uuid.uuid4())
            started = time.perf_counter()
            for event in events:
                storage.store_event(event._replace(run_id=run_id))
            seconds = time.perf_counter() - started
            assert len(storage.get_logs_for_run(run_id)) == len(events)
            storage.dispose()
        print(f"{storage_class.__name__:30s} {seconds:6.2f} s  {1000 * seconds / len(events):5.1f} ms an event")


if __name__ == "__main__":
    main()
