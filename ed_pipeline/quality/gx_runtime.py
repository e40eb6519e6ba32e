"""Great Expectations 1.x plumbing: one ephemeral context per process, one suite per source.

Great Expectations is imported lazily (it takes seconds), so importing
`ed_pipeline.quality` to read an extract stays cheap. Each source gets one
`ExpectationSuite` named `<source>_suite`, built by `build_suite` from the
registry entry, one pandas dataframe asset and one `ValidationDefinition`;
they are created on first use and reused for every later call.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Iterable
from copy import deepcopy
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ed_pipeline.quality.rules import Plan, plan_for
from ed_pipeline.settings import gx_docs_index_results
from ed_pipeline.sources import Source

if TYPE_CHECKING:
    import pandas as pd
    from great_expectations.core import ExpectationSuiteValidationResult
    from great_expectations.core.expectation_suite import ExpectationSuite

DATASOURCE = "ed_pipeline_extracts"
REDACTED = "<redacted>"
DOCS_SITE = "ed_pipeline"
RESULTS_SUBDIR = "_validation_results"

_lock = threading.RLock()
_context: Any = None
_registered: dict[str, _Registered] = {}


@dataclass
class _Registered:
    fingerprint: str
    validation_definition: Any


def _gx():
    import great_expectations as gx  # its usage reporting is off: ed_pipeline/__init__.py and the context

    return gx


def _new_context(docs_dir: Path | None = None, index_results: int = 0):
    """An ephemeral context; with `docs_dir`, one whose results and Data Docs site live there, the site's index
    listing the latest `index_results` validations (0: every one)."""
    gx = _gx()
    from great_expectations.data_context.types.base import (
        DataContextConfig,
        InMemoryStoreBackendDefaults,
        ProgressBarsConfig,
    )

    defaults = InMemoryStoreBackendDefaults()
    config = DataContextConfig(
        store_backend_defaults=defaults,
        progress_bars=ProgressBarsConfig(globally=False, metric_calculations=False),
        analytics_enabled=False,
    )
    if docs_dir is not None:
        # results kept (redacted) beside the site, so that its index lists every source's latest runs
        config.stores[defaults.validation_results_store_name]["store_backend"] = {
            "class_name": "TupleFilesystemStoreBackend",
            "base_directory": str(docs_dir / RESULTS_SUBDIR),
        }
        config.data_docs_sites = {
            DOCS_SITE: {
                "class_name": "SiteBuilder",
                "site_index_builder": {"class_name": "DefaultSiteIndexBuilder", "view": _view("CompiledIndexPageView"),
                                       "validation_results_limit": index_results or None},
                # merged into GX's defaults: only the pages' views differ (see gx_views)
                "site_section_builders": {section: {"view": _view("CompiledPageView")}
                                          for section in ("expectations", "validations", "profiling")},
                "store_backend": {"class_name": "TupleFilesystemStoreBackend", "base_directory": str(docs_dir)},
            }
        }
    return gx.get_context(project_config=config, mode="ephemeral")


def _view(class_name: str) -> dict[str, str]:
    return {"module_name": "ed_pipeline.quality.gx_views", "class_name": class_name}


def context():
    """The process's one GX context (created on first use)."""
    global _context
    with _lock:
        if _context is None:
            _context = _new_context()
            _context.data_sources.add_pandas(DATASOURCE)
        return _context


def suite_name(source: Source) -> str:
    return f"{source.name}_suite"


def build_suite(source: Source, plan: Plan | None = None) -> ExpectationSuite:
    """The expectation suite of one source, declared by its registry entry (not yet added to a context)."""
    gx = _gx()
    import great_expectations.expectations as gxe

    context()  # GX wants an active context even for a detached suite
    plan = plan or plan_for(source)
    expectations = [
        getattr(gxe, check.expectation)(**check.kwargs, meta={"rule": check.rule, "column": check.column, "order": n})
        for n, check in enumerate(plan.checks)
    ]
    # expectations given to the constructor: add_expectation on a detached suite would write through to a
    # stored suite of the same name
    return gx.ExpectationSuite(
        name=suite_name(source),
        expectations=expectations,
        meta={"source": source.name, "agency": source.agency, "description": source.description},
    )


def _fingerprint(source: Source) -> str:
    return hashlib.sha256(repr(source).encode()).hexdigest()


def _validation_definition(source: Source, plan: Plan):
    """The (cached) validation definition of `source`; rebuilt if the registry entry changed."""
    gx = _gx()
    ctx = context()
    fingerprint = _fingerprint(source)
    current = _registered.get(source.name)
    if current is not None and current.fingerprint == fingerprint:
        return current.validation_definition
    name = suite_name(source)
    datasource = ctx.data_sources.get(DATASOURCE)
    if current is not None:
        ctx.validation_definitions.delete(f"{source.name}_validation")
        ctx.suites.delete(name)
        datasource.delete_asset(source.name)
    asset = datasource.add_dataframe_asset(name=source.name)
    batch_definition = asset.add_batch_definition_whole_dataframe(f"{source.name}_extracts")
    suite = ctx.suites.add(build_suite(source, plan))
    vd = ctx.validation_definitions.add(
        gx.ValidationDefinition(name=f"{source.name}_validation", data=batch_definition, suite=suite)
    )
    _registered[source.name] = _Registered(fingerprint, vd)
    return vd


def run_suite(source: Source, plan: Plan, frame: pd.DataFrame, run_name: str) -> ExpectationSuiteValidationResult:
    """Run the source's suite over one pandas frame, COMPLETE results (every failing row index)."""
    from great_expectations.core.run_identifier import RunIdentifier

    with _lock:
        vd = _validation_definition(source, plan)
        run_id = RunIdentifier(run_name=run_name, run_time=datetime.now(UTC))
        result = vd.run(
            batch_parameters={"dataframe": frame},
            result_format={"result_format": "COMPLETE"},
            run_id=run_id,
        )
        store = context().validation_results_store
        for key in store.list_keys():  # results are handed back, not hoarded in memory
            store.remove_key(key)
    return result


def build_data_docs(results: Any, docs_dir: Path, *, redact: bool = True, index_results: int | None = None) -> Path:
    """Render GX Data Docs (HTML) for validation results into `docs_dir`; returns its index.html.

    `results` is one ExpectationSuiteValidationResult, a list of them, or Validation objects.
    Unexpected values (names, dates of birth...) are redacted unless `redact=False`: the
    HTML shows which rules failed and how often, the quarantine table holds the values.
    The index lists the latest `index_results` validations of the site (GX's
    `validation_results_limit`; default `settings.gx_docs_index_results()`, 0 lists every one);
    the pages of older ones stay where they were written.
    """
    from great_expectations.data_context.types.resource_identifiers import (
        ExpectationSuiteIdentifier,
        ValidationResultIdentifier,
    )

    docs_dir = Path(docs_dir).resolve()
    docs_dir.mkdir(parents=True, exist_ok=True)
    limit = gx_docs_index_results() if index_results is None else index_results
    ctx = _new_context(docs_dir, limit)  # a private one, whose results store and site live in docs_dir
    store = ctx.validation_results_store
    keys = []
    for result in _flatten(results):
        if redact:
            result = _redacted(result)
        batch = result.meta.get("active_batch_definition") or {}
        batch_id = f"{batch.get('datasource_name', DATASOURCE)}-{batch.get('data_asset_name', 'extract')}"
        key = ValidationResultIdentifier(
            expectation_suite_identifier=ExpectationSuiteIdentifier(name=result.suite_name),
            run_id=result.meta.get("run_id"),
            batch_identifier=batch_id,
        )
        store.set(key, result)
        keys.append(key)
    # render these results' pages and the index (which lists every stored result), not every page again: the
    # store keeps each run's results, so a whole-site build would grow with the history
    ctx.build_data_docs(site_names=[DOCS_SITE], resource_identifiers=keys)
    return docs_dir / "index.html"


def _flatten(results: Any) -> Iterable[Any]:
    if results is None:
        return
    if hasattr(results, "gx_results"):
        yield from _flatten(results.gx_results)
    elif isinstance(results, list | tuple):
        for r in results:
            yield from _flatten(r)
    else:
        yield results


def _redacted(result: Any) -> Any:
    copy = deepcopy(result)
    for er in copy.results:
        res = er.result or {}
        for key in ("unexpected_list", "partial_unexpected_list"):
            if key in res:
                res[key] = [REDACTED] * len(res[key])
        for key in ("partial_unexpected_counts", "unexpected_index_query", "partial_unexpected_index_list"):
            res.pop(key, None)
        if "unexpected_index_list" in res:
            res["unexpected_index_list"] = res["unexpected_index_list"][:20]
    return copy
