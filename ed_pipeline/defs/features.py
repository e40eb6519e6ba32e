"""features.*: point-in-time features per child, built by dbt over the pseudonymised and linked layers (warehouse).

The dbt project (`dbt_project/`: staging -> intermediate -> marts) is loaded with dagster-dbt: every dbt model
is an asset keyed `[schema, model]`, exactly the table it builds in warehouse.duckdb (`staging.stg_housing`,
`intermediate.int_child_events`, `features.child_features`), and every dbt test is an asset check on the model
it tests. dbt sources map to the assets that write them (`["pseudonymised", <source>]`, `["linked", <table>]`),
so the graph runs on from linkage into features.

The manifest is prepared when this module is imported, whenever it is missing or older than a file of the dbt
project (under `dagster dev` too, unlike `DbtProject.prepare_if_dev`, which parses on every import: in the code
server and again in every run's worker process, half a minute each on a busy machine; an edited model is newer
than the manifest, so Reload definitions picks it up all the same),
so a fresh clone, an in-process `ed-pipeline refresh` and the tests all find a current manifest.
"""

import contextlib
import filecmp
import importlib.metadata
import io
import os
import shutil
import sys
from collections.abc import Mapping
from functools import cached_property
from pathlib import Path
from typing import Any

import dagster as dg
import duckdb
from dagster._utils import run_with_concurrent_update_guard
from dagster_dbt import DagsterDbtTranslator, DagsterDbtTranslatorSettings, DbtCliResource, DbtProject, dbt_assets
from dagster_duckdb import DuckDBResource
from packaging import version

from ed_pipeline.defs.automation import follows_upstream
from ed_pipeline.defs.metadata import PREVIEW_ROWS, bar_chart, column_schema, preview
from ed_pipeline.resilience import ends_with_this_process
from ed_pipeline.settings import DBT_PROJECT_DIR, Settings, dbt_executable, dbt_project_files, dbt_target_path

# Every layer is in the Dagster group "features", so that selecting the group builds the mart and everything
# under it; the layer (staging / intermediate / marts) is a tag, and its schema the asset key's first part.
FEATURES_GROUP = "features"
MART_KEY = dg.AssetKey(["features", "child_features"])
# dagster-dbt's target directory per run is "<asset op name>-<run id>-<hash>": the newest few are kept for debugging
RUN_TARGET_PREFIX = "dbt_features-"
KEEP_RUN_TARGETS = 10


# Beside the partial parse (dagster-dbt copies it into each build's target): the warehouse it was made for. dbt
# parses partially only with the profile of the last parse ("profile has changed": the whole project again at every
# build after a parse for another warehouse), and the profile holds the warehouse's path.
PARSED_FOR = "parsed_for_warehouse.txt"
PARTIAL_PARSE = "partial_parse.msgpack"


def manifest_is_stale(project: DbtProject) -> bool:
    """Missing, or older than a file of the project. Not when it was parsed for another warehouse: the manifest
    (the asset graph) does not depend on the warehouse, and a new data directory's first build parses for its
    own and leaves that parse for the next (`adopt_partial_parse`), instead of a `dbt parse` of its own at load."""
    manifest = project.manifest_path
    if not manifest.exists():
        return True
    built = manifest.stat().st_mtime
    return any(f.stat().st_mtime > built for f in dbt_project_files(Path(project.project_dir)))


def adopt_partial_parse(project: DbtProject, run_target: Path) -> bool:
    """After a build for a warehouse other than the partial parse's, make the build's own parse (in its run target)
    the project's, so that the next build parses partially; returns whether it did."""
    stamp = project.manifest_path.with_name(PARSED_FOR)
    parsed, ours = run_target / PARTIAL_PARSE, project.manifest_path.with_name(PARTIAL_PARSE)
    if (stamp.is_file() and stamp.read_text() == _build_warehouse()) or not parsed.is_file() or (
            ours.is_file() and filecmp.cmp(parsed, ours, shallow=False)):  # unchanged: dbt did not parse again
        return False
    staged = ours.with_name(f"{PARTIAL_PARSE}.{os.getpid()}")
    shutil.copyfile(parsed, staged)
    os.replace(staged, ours)  # whole or not at all: another process may be copying it into its own build
    stamp.write_text(_build_warehouse())
    return True


def prepare_manifest(project: DbtProject, force: bool = False) -> Path:
    """`dbt parse` into the project's target/ when forced, or when the manifest is
    missing or stale; returns the manifest's path. dbt parse does not open the warehouse."""
    if force or manifest_is_stale(project):
        # with a lock, as dagster-dbt's own preparer: a second process waits and skips a parse just made
        run_with_concurrent_update_guard(project.manifest_path, _parse, project=project)
    return project.manifest_path


class DbtCli(DbtCliResource):
    """dagster-dbt's dbt resource, told the version of the dbt-core installed beside it rather than asking the
    executable: dagster-dbt runs `dbt --version` (a dbt start-up, ~3 s) once per resource instance, which is
    once per run that builds features. Another executable (dbt found on PATH) is still asked."""

    @cached_property
    def _cli_version(self) -> version.Version:
        if Path(self.dbt_executable).parent == Path(sys.executable).parent:
            return version.parse(importlib.metadata.version("dbt-core"))
        return DbtCliResource._cli_version.func(self)

    def _initialize_dbt_core_adapter(self, args):
        """No adapter: dagster-dbt loads the dbt project, its macros and a dbt adapter in the Dagster process
        (~2.5 s a run at 1.5M) only for `fetch_row_counts()` and `fetch_column_metadata()`, which `dbt_features`
        does not call (`model_metadata` reads the warehouse itself, once dbt has finished)."""
        return None


@contextlib.contextmanager
def _dbt_env_pointing_at_warehouse():
    """ED_WAREHOUSE_DB for the dbt process only: the absolute path Dagster's IO managers use (dbt runs in
    dbt_project/, where a relative ED_DATA_DIR would resolve elsewhere). dbt copies the environment when it starts;
    this process's environment is restored right after."""
    before = os.environ.get("ED_WAREHOUSE_DB")
    os.environ["ED_WAREHOUSE_DB"] = _build_warehouse()
    try:
        yield
    finally:
        if before is None:
            os.environ.pop("ED_WAREHOUSE_DB", None)
        else:
            os.environ["ED_WAREHOUSE_DB"] = before


def _build_warehouse() -> str:
    return str(Settings.from_env().warehouse_path.resolve())


def _parse(project: DbtProject) -> None:
    # with the build's profile (the warehouse's absolute path): a parse made with another one is not used for
    # partial parsing ("profile has changed"), so each build would parse the whole project again
    with _dbt_env_pointing_at_warehouse():
        DbtCli(project_dir=project, dbt_executable=dbt_executable()).cli(
            ["parse", "--quiet"], target_path=project.target_path).wait()
    project.manifest_path.with_name(PARSED_FOR).write_text(_build_warehouse())


dbt_project = DbtProject(project_dir=DBT_PROJECT_DIR, profiles_dir=DBT_PROJECT_DIR, target_path=dbt_target_path())
prepare_manifest(dbt_project)


def _layer(props: Mapping[str, Any]) -> str | None:
    path = Path(props.get("original_file_path") or props.get("path") or "")
    parts = path.parts
    return parts[1] if len(parts) > 2 and parts[0] == "models" else None


class FeaturesTranslator(DagsterDbtTranslator):
    """Asset keys = tables of warehouse.duckdb; one group; the dbt layer as a tag; dbt tests as asset checks."""

    def get_asset_key(self, props: Mapping[str, Any]) -> dg.AssetKey:
        if props["resource_type"] == "source":
            # sources are declared with the schema's name: pseudonymised.housing -> ["pseudonymised", "housing"]
            return dg.AssetKey([props["source_name"], props["name"]])
        return dg.AssetKey([props["schema"], props.get("alias") or props["name"]])

    def get_group_name(self, props: Mapping[str, Any]) -> str | None:
        return FEATURES_GROUP if props["resource_type"] != "source" else super().get_group_name(props)

    def get_tags(self, props: Mapping[str, Any]) -> Mapping[str, str]:
        layer = _layer(props)
        return {**super().get_tags(props), "zone": "warehouse", **({"layer": layer} if layer else {})}

    def get_owners(self, props: Mapping[str, Any]):
        return ["team:data-science"]

    def get_automation_condition(self, props: Mapping[str, Any]) -> dg.AutomationCondition | None:
        # Rebuilt after linking (or a newly pseudonymised month), in the same run as what follows them.
        return follows_upstream() if props["resource_type"] != "source" else None


translator = FeaturesTranslator(settings=DagsterDbtTranslatorSettings(enable_asset_checks=True))


class _LogWriter(io.TextIOBase):
    """A text stream that keeps the non-blank lines written to it, for one Dagster log entry at the end (an
    entry per line of dbt's console output was some 300 event-log writes per build)."""

    def __init__(self):
        self.lines: list[str] = []
        self._pending = ""

    def write(self, text: str) -> int:
        *lines, self._pending = (self._pending + text).split("\n")
        self.lines += [line for line in lines if line.strip()]
        return len(text)

    def text(self) -> str:
        return "\n".join([*self.lines, *([self._pending] if self._pending.strip() else [])])


@dbt_assets(
    manifest=dbt_project.manifest_path,
    project=dbt_project,
    dagster_dbt_translator=translator,
    name="dbt_features",
)
def dbt_features(context: dg.AssetExecutionContext, dbt: DbtCliResource, warehouse: DuckDBResource):
    """`dbt build` of the selected models and their tests (tests arrive as asset check results)."""
    with _dbt_env_pointing_at_warehouse():
        invocation = dbt.cli(["build"], context=context, raise_on_error=False)  # starts the dbt process
    # dbt's own log goes to the run's event log (debug level, one entry), not to the console of `ed-pipeline refresh`.
    output = _LogWriter()
    try:
        # dbt ends with this run worker, even SIGKILLed: not left writing the warehouse after its run has failed
        with ends_with_this_process(invocation.process), contextlib.redirect_stdout(output):
            events = list(invocation.stream())
    finally:
        context.log.debug(f"dbt build output:\n{output.text()}")
    # Only now, dbt gone, is the warehouse free to read (dagster-dbt's fetch_row_counts() would open it while dbt
    # still writes): each built model's row count, column schema and, for the mart, a preview without ids.
    with warehouse.get_connection() as conn:
        for event in events:
            if isinstance(event, dg.Output):
                key = context.asset_key_for_output(event.output_name)
                event = event.with_metadata({**event.metadata, **model_metadata(conn, key)})
            yield event
    adopt_partial_parse(dbt_project, invocation.target_path)
    prune_run_targets(invocation.target_path)
    if not invocation.is_successful():
        raise invocation.get_error() or RuntimeError("dbt build failed")


def prune_run_targets(target_path: Path, keep: int = KEEP_RUN_TARGETS) -> list[Path]:
    """Remove all but the `keep` newest of the target directories dagster-dbt makes, one per run, beside
    `target_path` (each holds a copy of the manifest, ~6 MB: a year of refreshes, tests and backfills filled
    gigabytes); returns those removed."""
    runs = sorted((p for p in target_path.parent.glob(f"{RUN_TARGET_PREFIX}*") if p.is_dir()),
                  key=lambda p: p.stat().st_mtime, reverse=True)
    old = [p for p in runs[keep:] if p.resolve() != target_path.resolve()]
    for path in old:
        shutil.rmtree(path, ignore_errors=True)  # a directory another process removed first is fine
    return old


def model_metadata(conn: duckdb.DuckDBPyConnection, key: dg.AssetKey) -> dict:
    schema, table = key.path[-2:]
    columns = conn.execute("select column_name, data_type from information_schema.columns "
                           "where table_schema = ? and table_name = ? order by ordinal_position",
                           [schema, table]).fetchall()
    if not columns:
        return {}
    rows = conn.execute(f'select count(*) from "{schema}"."{table}"').fetchone()[0]
    metadata = {"dagster/row_count": rows, "dagster/column_schema": column_schema(columns)}
    if key == MART_KEY:
        sample = conn.execute(f'select * from "{schema}"."{table}" using sample {PREVIEW_ROWS} rows (reservoir, 1)'
                              ).pl()
        metadata["preview"] = preview(sample)
        metadata["children_by_prediction_year"] = bar_chart(conn.execute(
            f'select year(prediction_date) as "prediction year", count(*) as children from "{schema}"."{table}" '
            "group by 1 order by 1").pl())
    return metadata


feature_assets = [dbt_features]
dbt_resource = DbtCli(project_dir=dbt_project, dbt_executable=dbt_executable())
