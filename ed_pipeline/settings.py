"""Every path and environment setting of the project, in one place.

`ED_DATA_DIR` (default `./data`) moves every file the project writes; each
location below can also be overridden on its own.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import sys
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlparse
from urllib.request import url2pathname

from ed_pipeline.sources import SOURCES_BY_NAME

if TYPE_CHECKING:
    import duckdb

DBT_PROJECT_DIR = Path(__file__).resolve().parents[1] / "dbt_project"
# The dbt project's own files (not what dbt writes): a change to one calls for a new manifest, and a new analysis
DBT_PROJECT_INPUTS = ("dbt_project.yml", "profiles.yml", "models", "macros", "tests")
FIRST_MONTH = "2013-01"  # the first year of the current EYFSP
DEFAULT_LAST_MONTH = "2018-07"
# what a landing file must be called to be ingested (`is_partition_month`), as the reports of misnamed ones say
LANDING_NAME_RULE = f"<source>/<YYYY-MM>.csv for a month from {FIRST_MONTH} to last month"
# The entries a data directory holds at its top (`Settings` lays every location out under one of them): what
# marks a path as a data directory's wherever it was (the privacy audit leaves earlier ones out of its texts).
DATA_DIR_LAYOUT = ("agency_zone.duckdb", "warehouse.duckdb", "ops.duckdb", "landing", "truth", "reference",
                   "gx_docs", "linkage", "audit", "dagster", "mlflow", "models", "outputs", "secrets", "evaluation")


@dataclass(frozen=True)
class Settings:
    data_dir: Path

    @classmethod
    def from_env(cls) -> Settings:
        return cls(data_dir=Path(os.environ.get("ED_DATA_DIR", "data")).resolve())

    @property
    def landing_dir(self) -> Path:
        return self.data_dir / "landing"

    @property
    def truth_dir(self) -> Path:
        """Ground truth of the synthetic world: read only by synth and evaluation."""
        return self.data_dir / "truth"

    @property
    def postcode_directory(self) -> Path:
        """Public postcode -> ward, LSOA lookup (ONS's NSPL in real life; synth writes the world's own)."""
        return Path(os.environ.get("ED_POSTCODE_DIRECTORY", self.data_dir / "reference" / "postcode_directory.parquet"))

    @property
    def agency_zone_path(self) -> Path:
        return Path(os.environ.get("ED_AGENCY_ZONE_DB", self.data_dir / "agency_zone.duckdb"))

    @property
    def warehouse_path(self) -> Path:
        return Path(os.environ.get("ED_WAREHOUSE_DB", self.data_dir / "warehouse.duckdb"))

    @property
    def gx_docs_dir(self) -> Path:
        return self.data_dir / "gx_docs"

    @property
    def linkage_dir(self) -> Path:
        """The trained linkage model (JSON) and its match-weights chart, replaced by each refresh that trains."""
        return self.data_dir / "linkage"

    @property
    def evaluation_dir(self) -> Path:
        """Where `ed-pipeline evaluate` builds the true-linkage features (dbt's target kept there)."""
        return self.data_dir / "evaluation"

    @property
    def ops_db_path(self) -> Path:
        """Operational status (run failures): its own DuckDB file, so recording a failure never waits on a lock."""
        return self.data_dir / "ops.duckdb"

    @property
    def audit_state_path(self) -> Path:
        """What the last passing privacy audit scanned (fingerprints only), for the next one to scan what is new."""
        return self.data_dir / "audit" / "privacy_audit_state.json"

    @property
    def dagster_home(self) -> Path:
        return Path(os.environ.get("DAGSTER_HOME", self.data_dir / "dagster"))

    @property
    def mlflow_tracking_uri(self) -> str:
        return os.environ.get("MLFLOW_TRACKING_URI", f"sqlite:///{self.data_dir / 'mlflow' / 'mlflow.db'}")

    @property
    def mlflow_artifact_root(self) -> Path:
        return self.data_dir / "mlflow" / "artifacts"

    @property
    def models_dir(self) -> Path:
        """The latest trained model object (pickle), handed from the model asset to the output assets."""
        return self.data_dir / "models"

    @property
    def outputs_dir(self) -> Path:
        """Published charts (the ward ranking), beside the outputs.* tables."""
        return self.data_dir / "outputs"

    @property
    def secrets_dir(self) -> Path:
        return self.data_dir / "secrets"

    @property
    def demo_key_file(self) -> Path:
        """Where `ed-pipeline keygen` puts a random demo key; ED_PSEUDO_KEY takes precedence over it."""
        return self.secrets_dir / "pseudo.key"

    def landing_file(self, source: str, month: str) -> Path:
        return self.landing_dir / source / f"{month}.csv"

    def landing_files(self, source: str | None = None) -> list[Path]:
        """Every CSV file in landing/<source>/ (or in every source's folder), whatever its name."""
        roots = [self.landing_dir / source] if source else sorted(p for p in self.landing_dir.glob("*") if p.is_dir())
        return sorted(path for root in roots for path in root.glob("*.csv"))

    def landed_months(self, source: str | None = None) -> list[str]:
        """Months (YYYY-MM) with a landing file, for one source or for any: only months that can be ingested
        (`is_partition_month`); `misnamed_landing_files` lists the files left out."""
        return sorted({p.stem for p in self.landing_files(source) if is_partition_month(p.stem)})

    def landing_name(self, path: Path) -> str:
        """A landing file as `<source>/<name>.csv`: how the sensor's cursor and the reports name it."""
        return path.relative_to(self.landing_dir).as_posix()

    def misnamed_landing_files(self) -> list[Path]:
        """Landing files whose name is not a month that can be ingested (`2017-6.csv`, `housing_2017-06.csv`, a
        month before FIRST_MONTH, this month or a later one), or not `.csv` (`2017-06.CSV`, `2017-06.xlsx`), or not
        in a registry source's folder (a misspelt folder, landing/ itself): never ingested, so they are reported.
        Hidden files (`.DS_Store`, rsync's `.2017-06.csv.XXXXXX` while it copies) are not."""
        if not self.landing_dir.is_dir():
            return []
        files = [p for p in self.landing_dir.rglob("*") if p.is_file()
                 and not any(part.startswith(".") for part in p.relative_to(self.landing_dir).parts)]
        return sorted(p for p in files if not (
            p.suffix == ".csv" and is_partition_month(p.stem)
            and p.parent.parent == self.landing_dir and p.parent.name in SOURCES_BY_NAME))


def local_path(uri: str) -> Path | None:
    """The path on this machine that an artifact location names (`file:///...` or a bare path), or None for one
    that is not on its file system (`s3://...`, `mlflow-artifacts:/...`, a file URI of another host)."""
    parsed = urlparse(uri)
    if parsed.scheme == "file" and parsed.netloc in ("", "localhost"):
        return Path(url2pathname(parsed.path))
    return Path(uri) if parsed.scheme == "" else None


def is_within(uri: str, directory: Path) -> bool:
    """Whether the artifact location `uri` lies in `directory` (both resolved: a link or `..` counts where it
    leads)."""
    path = local_path(uri)
    return path is not None and path.resolve().is_relative_to(directory.resolve())


# DuckDB's own default memory limit is 80% of the machine's memory: a county's linkage session or privacy audit
# fills it before anything spills. Past this limit DuckDB spills to disk (same results, a little slower).
DEFAULT_DUCKDB_MEMORY_LIMIT = "2GB"


def duckdb_memory_limit(variable: str) -> str:
    """The DuckDB memory limit that environment `variable` sets (DuckDB's units, e.g. '4GB'), else
    DEFAULT_DUCKDB_MEMORY_LIMIT."""
    return os.environ.get(variable) or DEFAULT_DUCKDB_MEMORY_LIMIT


@contextlib.contextmanager
def memory_limited(connections: Iterable[duckdb.DuckDBPyConnection], limit: str) -> Iterator[None]:
    """Each connection's database held to `limit` while inside, then to DuckDB's default again: the limit is the
    database's, which every connection of the process to that file shares (DuckDB reports a limit rounded, so
    one set before could not be put back exactly; nothing here sets another)."""
    connections = list(connections)
    for con in connections:
        con.execute("SET memory_limit = ?", [limit])
    try:
        yield
    finally:
        for con in connections:
            con.execute("RESET memory_limit")


def under_artifact_root(uri: str, experiment_location: str | None, artifact_root: Path) -> Path | None:
    """Where the local artifact location `uri` of an experiment made at `experiment_location` lies under
    `artifact_root`: at the same place relative to the artifact root the experiment was made in (its folder's
    parent: `ensure_experiment` makes each at <artifact root>/<name>). A data directory moved since (`mv data
    /srv/ed_data`) keeps its MLflow store, which still names the old root. None when either is not a local path
    or `uri` lies out of that root. Whether anything is there is the caller's to check."""
    path = local_path(uri)
    experiment_at = local_path(experiment_location) if experiment_location else None
    if path is None or experiment_at is None or not path.is_relative_to(experiment_at.parent):
        return None
    return Path(artifact_root).resolve() / path.relative_to(experiment_at.parent)


# The Data Docs index lists (and GX reads back, ~3 ms each) only the latest validations: by default a year of
# monthly extracts from every source. Unbounded, every validate step of every month read back every result ever
# stored (a month's seven builds: 7.1 s after four years, 2.6 s with this limit). Older results and their pages
# stay on disk.
GX_DOCS_INDEX_RESULTS = 12 * len(SOURCES_BY_NAME)
GX_DOCS_INDEX_VARIABLE = "ED_GX_DOCS_INDEX_RESULTS"


def gx_docs_index_results() -> int:
    """How many of the latest validations the Data Docs index lists: ED_GX_DOCS_INDEX_RESULTS (0: every one),
    else GX_DOCS_INDEX_RESULTS."""
    value = os.environ.get(GX_DOCS_INDEX_VARIABLE, "").strip()
    if not value:
        return GX_DOCS_INDEX_RESULTS
    if not value.isdigit():
        raise ValueError(f"{GX_DOCS_INDEX_VARIABLE}={value!r}: give a whole number of validations (0 lists every one)")
    return int(value)


# Where a link of every record runs (the first link, a retrain, `full_relink`): DuckDB on this machine, or Splink's
# Spark backend with the same trained model and the same persons (docs/scaling.md, "Spark for linkage"). A
# month's incremental link runs on DuckDB either way.
LINKAGE_BACKEND_VARIABLE = "ED_LINKAGE_BACKEND"
LINKAGE_BACKENDS = ("duckdb", "spark")
SPARK_MASTER_VARIABLE = "ED_SPARK_MASTER"


def linkage_backend() -> str:
    """ED_LINKAGE_BACKEND: 'duckdb' (the default) or 'spark'."""
    value = os.environ.get(LINKAGE_BACKEND_VARIABLE, "").strip().lower() or LINKAGE_BACKENDS[0]
    if value not in LINKAGE_BACKENDS:
        raise ValueError(f"{LINKAGE_BACKEND_VARIABLE}={value!r}: give one of {', '.join(LINKAGE_BACKENDS)}")
    return value


def spark_master() -> str:
    """The Spark master a Spark link runs on: ED_SPARK_MASTER (a cluster's URL), else local[2] (this machine).
    Spark's other settings (driver memory, executors) come from its own spark-defaults.conf (SPARK_CONF_DIR)."""
    return os.environ.get(SPARK_MASTER_VARIABLE, "").strip() or "local[2]"


def dbt_target_path() -> Path:
    """dbt's target directory (the manifest, the partial parse, each run's artifacts), relative to the dbt
    project: `DBT_TARGET_PATH`, which dbt and dagster-dbt read too, else target/. Processes that build against
    different warehouses at once (the parallel test processes) each need one: dbt parses partially only with the
    profile of the last parse in it."""
    return Path(os.environ.get("DBT_TARGET_PATH", "target"))


def dbt_project_files(project_dir: Path = DBT_PROJECT_DIR) -> list[Path]:
    """Every file of `DBT_PROJECT_INPUTS` in the project, in order."""
    files: list[Path] = []
    for name in DBT_PROJECT_INPUTS:
        path = project_dir / name
        files += [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())  # none if absent
    return files


def dbt_executable() -> str:
    """The dbt beside this Python (the project's venv) even when its bin/ is not on PATH; else `dbt` on PATH."""
    beside = Path(sys.executable).parent / "dbt"
    return str(beside) if beside.exists() else (shutil.which("dbt") or "dbt")


_MONTH_RE = re.compile(r"[0-9]{4}-(0[1-9]|1[0-2])")


def is_month(text: str) -> bool:
    """'2014-03' is; '2014-3', '2014-13', '+014-03', '2014-03 ' are not."""
    return bool(_MONTH_RE.fullmatch(text))


def is_partition_month(text: str, today: date | None = None) -> bool:
    """A month the pipeline's monthly partitions have: from FIRST_MONTH to the last month that has ended (UTC,
    as Dagster's partitions: this month's extract is not due before it ends)."""
    today = today or datetime.now(UTC).date()
    return is_month(text) and FIRST_MONTH <= text < f"{today.year:04d}-{today.month:02d}"


def month_start(month: str) -> date:
    """'2014-03' -> date(2014, 3, 1); raises ValueError on anything else."""
    if not is_month(month):
        raise ValueError(f"not a YYYY-MM month: {month!r}")
    return date(int(month[:4]), int(month[5:]), 1)


def month_end(month: str) -> date:
    start = month_start(month)
    following = date(start.year + start.month // 12, start.month % 12 + 1, 1)
    return date.fromordinal(following.toordinal() - 1)


def file_state(path: Path) -> str:
    """What is kept of a landed file to tell a new delivery from one already loaded (the landing sensor's cursor,
    raw's record of each month it read): its modification time and size. A file that differs in either (or was not
    there) is new or replaced; a file copied with its times kept (rsync -a, cp -p, a move from a staging folder)
    can be older than others already seen, so no single newest time will do."""
    stat = path.stat()
    return f"{stat.st_mtime}:{stat.st_size}"


def month_range(first: str, last: str) -> list[str]:
    """Inclusive list of YYYY-MM months from first to last."""
    start, stop = month_start(first), month_start(last)
    months = []
    year, month = start.year, start.month
    while (year, month) <= (stop.year, stop.month):
        months.append(f"{year:04d}-{month:02d}")
        year, month = (year + 1, 1) if month == 12 else (year, month + 1)
    return months
