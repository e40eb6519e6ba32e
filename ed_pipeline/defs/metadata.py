"""What an asset's page shows beyond its value: column schema, row count, previews and plots, never an identifier.

- Agency zone (raw, validated, quarantine): counts only (rows by month, quarantined rows by rule); no row of a
  person, not even a masked one, is ever shown.
- Shared warehouse: previews of a few rows with every token, Bloom encoding, id, agency reference, reviewer and
  lineage column left out (`shown_columns`), and the quasi-identifiers and sensitive attributes (birth year and
  month, LSOA, ethnicity, FSM, EAL, SEN); pseudonymised tables get aggregated counts only.
- Plots are Markdown tables with bars of block characters: the UI renders them, and unlike an embedded PNG
  (base64, whose letters can spell a name by chance) they are plain text that the identifier-leak scan reads
  exactly. `no_identifiers_anywhere` scans every one of them with the rest of Dagster's events.
"""

import re
from collections.abc import Sequence

import dagster as dg
import polars as pl

PREVIEW_ROWS = 5
BAR_WIDTH = 30
UNKNOWN = "(unknown)"
# Never previewed: tokens and encodings, ids and references (also of pairs: _l/_r), reviewers, lineage (_*),
# and, should one ever reach a previewed table, any column named like a direct identifier.
_HIDDEN = re.compile(r"^(tok_|bf_|_)|(^|_)(id|ids|ref|key|no|number|uprn|upn|reviewer)(_[lr])?$"
                     r"|(^|_)(given|family|first|last|sur|fore|full)_?names?$|address|postcode|^dob$")
# Named like a date of birth: hidden when it holds dates (review_pair's `date_of_birth` is a comparison level).
_DOB = re.compile(r"(^|_)(dob|birth_?date|date_?of_?birth)($|_)")
# Row-level quasi-identifiers and special-category attributes: birth year and month with sex and LSOA can
# single a child out, and ethnicity, SEN, FSM and EAL are sensitive; the UI reaches more people than the
# warehouse, so previews leave them out (aggregates in plots are fine).
_SENSITIVE = re.compile(r"^(birth_year|birth_month|lsoa|ethnicity\w*|fsm|eal|sen)$")


def column_schema(schema: pl.Schema | dict | Sequence[tuple[str, str]]) -> dg.TableSchema:
    items = schema.items() if hasattr(schema, "items") else schema
    return dg.TableSchema(columns=[dg.TableColumn(name=name, type=str(dtype)) for name, dtype in items])


def table_metadata(frame: pl.DataFrame) -> dict:
    """Dagster's standard row count and column schema of a table written as `frame`."""
    return {"dagster/row_count": frame.height, "dagster/column_schema": column_schema(frame.schema)}


def shown_columns(schema: pl.Schema | Sequence[str]) -> list[str]:
    """The columns a preview may show: none that holds or points at a person's identity."""
    dtypes = dict(schema.items()) if isinstance(schema, pl.Schema) else dict.fromkeys(schema, pl.String)
    return [c for c, t in dtypes.items()
            if not _HIDDEN.search(c.lower()) and not _SENSITIVE.match(c.lower())
            and not (_DOB.search(c.lower()) and t.is_temporal())]


def _cell(value) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, list | tuple):
        value = ", ".join(map(str, value))
    return str(value).replace("|", "\\|").replace("\n", " ")


def markdown_table(frame: pl.DataFrame) -> str:
    header = "| " + " | ".join(frame.columns) + " |\n|" + "---|" * len(frame.columns)
    rows = ["| " + " | ".join(_cell(v) for v in row) + " |" for row in frame.iter_rows()]
    return "\n".join([header, *rows])


def preview(frame: pl.DataFrame, rows: int = PREVIEW_ROWS) -> dg.MetadataValue:
    """A few rows of a warehouse table, without any identifying column (warehouse zone only)."""
    columns = shown_columns(frame.schema)
    if not columns or frame.height == 0:
        return dg.MetadataValue.md("(no rows)" if frame.height == 0 else "(no column safe to show)")
    hidden = len(frame.columns) - len(columns)
    note = f"\n\n{hidden} id, token, encoding or sensitive column(s) not shown." if hidden else ""
    return dg.MetadataValue.md(markdown_table(frame.select(columns).head(rows)) + note)


def bar_chart(counts: pl.DataFrame) -> dg.MetadataValue:
    """A bar chart of `counts` (a label column, then a count column, named as they should be), as Markdown."""
    if counts.height == 0:
        return dg.MetadataValue.md("(none)")
    label, value = counts.columns[:2]
    top = max(int(counts[value].max() or 0), 1)
    lines = [f"| {label} | {value} | |", "|---|---:|---|"]
    for name, n in counts.select(label, value).iter_rows():
        bar = "█" * max(round(BAR_WIDTH * n / top), 1 if n else 0)
        lines.append(f"| {_cell(UNKNOWN if name is None else name)} | {n:,} | {bar} |")
    return dg.MetadataValue.md("\n".join(lines))


def counts_by(frame: pl.DataFrame, column: str, value: str = "rows", by_count: bool = False,
              top: int | None = None) -> pl.DataFrame:
    """Rows of `frame` per value of `column`, in the column's order (or the largest first)."""
    if column not in frame.columns:
        return pl.DataFrame(schema={column: pl.String, value: pl.Int64})
    counts = frame.group_by(column).agg(pl.len().cast(pl.Int64).alias(value))
    counts = counts.sort(value, column, descending=[True, False], nulls_last=True) if by_count \
        else counts.sort(column, nulls_last=True)
    return counts.head(top) if top else counts


def histogram(values: pl.Series, edges: Sequence[float], value: str = "rows", label: str = "bin") -> pl.DataFrame:
    """Counts of `values` in [edges[i], edges[i+1]) (the last bin closed), labelled by their bounds."""
    labels, counts = [], []
    for i, (lo, hi) in enumerate(zip(edges[:-1], edges[1:], strict=True)):
        last = i == len(edges) - 2
        inside = (values >= lo) & ((values <= hi) if last else (values < hi))
        labels.append(f"{lo:g}–{hi:g}")
        counts.append(int(inside.sum()))
    return pl.DataFrame({label: labels, value: counts})


def size_histogram(sizes: pl.Series, cap: int = 10, label: str = "size", value: str = "count") -> pl.DataFrame:
    """How many groups have 1, 2, ... `cap`+ members (a cluster-size histogram)."""
    capped = sizes.clip(upper_bound=cap)
    counts = capped.value_counts(sort=False).sort(capped.name)
    return counts.select(
        pl.when(pl.col(capped.name) >= cap).then(pl.lit(f"{cap}+"))
        .otherwise(pl.col(capped.name).cast(pl.String)).alias(label),
        pl.col("count").cast(pl.Int64).alias(value),
    )
