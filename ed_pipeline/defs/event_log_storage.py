"""Dagster's SQLite event log, keeping its database engines instead of making one per event.

Dagster's `SqliteEventLogStorage` (one SQLite file per run, plus an index file) creates an SQLAlchemy engine,
opens a connection, and closes and disposes of both for every event it writes or reads: some 15 ms an event on
this machine, where an analyse run writes about 500 events (a materialisation and a check evaluation per dbt model
and test, each mirrored into the index) and the full refresh thousands. This subclass keeps the engines of the few
databases last used (the index and the current runs), each with one connection, so that an event costs one
insert and its commit. It also remembers the index's tables it has found: Dagster asks whether one exists, making
an engine to ask, for every asset event with tags (every partition's). The files, schema and semantics are
Dagster's own (WAL journal, busy timeout, the storage's lock around every connection). `dagster.yaml` (written by
`ed_pipeline.refresh.ensure_dagster_home`) selects it.
"""

from __future__ import annotations

import os
from collections import OrderedDict
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import dagster._check as check
import sqlalchemy as db
from dagster import Field, StringSource
from dagster._core.storage.event_log import SqliteEventLogStorage
from dagster._core.storage.event_log.sqlite.sqlite_event_log import SQLITE_BUSY_TIMEOUT_SECONDS
from dagster._serdes import ConfigurableClassData
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.pool import StaticPool

# the index and a few runs: a process writes one run at a time; the UI, reading many, keeps its latest few
KEPT_ENGINES = 4


def default_base_dir() -> str:
    """Where Dagster's default sqlite storage keeps the event logs: $DAGSTER_HOME/history/runs."""
    home = os.environ.get("DAGSTER_HOME")
    if not home:
        raise RuntimeError(
            "DAGSTER_HOME is not set: open the instance with DAGSTER_HOME=<its directory> and "
            "DagsterInstance.get() (PooledSqliteEventLogStorage finds its files there), or give it a base_dir")
    return os.path.join(home, "history", "runs")


class PooledSqliteEventLogStorage(SqliteEventLogStorage):
    """`SqliteEventLogStorage` with an engine (and its one connection) kept per database, for the last
    `KEPT_ENGINES` databases used. Configured in dagster.yaml as

        event_log_storage:
          module: ed_pipeline.defs.event_log_storage
          class: PooledSqliteEventLogStorage
          config:
            base_dir: /path/to/dir   # optional: $DAGSTER_HOME/history/runs, where Dagster's default keeps them

    Without a base_dir it follows DAGSTER_HOME, not the yaml's own path (which a storage is not told): a copied
    instance directory opened with DAGSTER_HOME pointing at it uses its own event logs.
    """

    def __init__(self, base_dir: str | None = None, inst_data: ConfigurableClassData | None = None):
        self._engines: OrderedDict[str, Engine] = OrderedDict()
        self._engines_pid = os.getpid()
        self._tables_found: set[str] = set()
        super().__init__(base_dir or default_base_dir(), inst_data)

    @classmethod
    def config_type(cls) -> dict[str, Any]:
        return {"base_dir": Field(StringSource, is_required=False)}

    @classmethod
    def from_config_value(cls, inst_data: ConfigurableClassData | None, config_value: Any
                          ) -> PooledSqliteEventLogStorage:
        return cls(inst_data=inst_data, **dict(config_value or {}))

    def _engine(self, shard: str) -> Engine:
        if os.getpid() != self._engines_pid:  # a forked child must not share its parent's connections
            self._engines = OrderedDict()
            self._engines_pid = os.getpid()
        engine = self._engines.get(shard)
        if engine is not None:
            self._engines.move_to_end(shard)
            return engine
        # one connection per engine, used only under the storage's lock (held for every connection's lifetime)
        engine = db.create_engine(
            self.conn_string_for_shard(shard),
            poolclass=StaticPool,
            connect_args={"timeout": SQLITE_BUSY_TIMEOUT_SECONDS, "check_same_thread": False},
        )
        self._engines[shard] = engine
        while len(self._engines) > KEPT_ENGINES:
            self._engines.popitem(last=False)[1].dispose()
        return engine

    @contextmanager
    def _connect(self, shard: str) -> Iterator[Connection]:
        with self._db_lock:
            check.str_param(shard, "shard")
            engine = self._engine(shard)
            if shard not in self._initialized_dbs:
                self._initdb(engine)
                self._initialized_dbs.add(shard)
            with engine.connect() as conn, conn.begin():
                yield conn

    def has_table(self, table_name: str) -> bool:
        # a table of the index, once there, stays (Dagster's migrations add tables; a wipe forgets them)
        if table_name in self._tables_found:
            return True
        found = super().has_table(table_name)
        if found:
            self._tables_found.add(table_name)
        return found

    def close_engines(self) -> None:
        with self._db_lock:
            while self._engines:
                self._engines.popitem()[1].dispose()

    def wipe(self) -> None:
        self.close_engines()  # the run files are deleted: no connection may write into them afterwards
        self._tables_found.clear()
        super().wipe()

    def dispose(self) -> None:
        self.close_engines()
        super().dispose()
