"""Reading agency extracts robustly and validating them with Great Expectations (no Dagster here).

    ex = read_extract(path, source, month)   # Extract: frame, problems (fatal), warnings
    v = validate(ex.frame, source)           # Validation: validated, quarantine, summary, gx_results
    build_data_docs(v.gx_results, docs_dir)  # -> docs_dir / "index.html"
"""

from ed_pipeline.quality.gx_runtime import build_data_docs, build_suite, suite_name
from ed_pipeline.quality.reading import Extract, TableProblem, empty_raw_frame, raw_schema, read_extract
from ed_pipeline.quality.rules import plan_for
from ed_pipeline.quality.validation import QUARANTINE_SCHEMA, SuiteError, Validation, validate, validated_schema

__all__ = [
    "QUARANTINE_SCHEMA",
    "Extract",
    "SuiteError",
    "TableProblem",
    "Validation",
    "build_data_docs",
    "build_suite",
    "empty_raw_frame",
    "plan_for",
    "raw_schema",
    "read_extract",
    "suite_name",
    "validate",
    "validated_schema",
]
