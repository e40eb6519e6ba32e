"""The Fellegi-Sunter linkage model: training (u by random sampling, m by EM) and persistence as JSON."""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import polars as pl

from ed_pipeline.linkage import comparisons as cmp
from ed_pipeline.linkage.engine import Session, bloom_widths, empty_internal_frame, internal_frame
from ed_pipeline.linkage.spec import TokenColumns, available_fields, to_internal

logger = logging.getLogger(__name__)

MODEL_FORMAT = "ed_pipeline.linkage/1"
DEFAULT_THRESHOLD = 0.95  # match probability at or above which two records are one person
DEFAULT_REVIEW_BAND = (0.5, 0.95)  # pairs in [low, high) go to clerical review


@dataclass
class TrainingConfig:
    """How the model is trained; the defaults suit anything from a few thousand to a few million records."""

    u_max_pairs: float = 2e6
    em_max_pairs: float = 2e6
    deterministic_recall: float = 0.8
    seed: int = 42
    m_floor: float = 1e-4
    u_floor: float = 1e-6
    training_rules: tuple[cmp.Rule, ...] = cmp.TRAINING_BLOCKING
    deterministic_rules: tuple[cmp.Rule, ...] = cmp.DETERMINISTIC_RULES


@dataclass
class LinkageModel:
    """A trained model: the Splink settings with their m and u parameters, and how to use them.

    `settings` is Splink's own model JSON (`linker.misc.save_model_to_json`), so
    it can be loaded straight into a Splink `Linker` for inspection. `spec` says
    which columns of a token frame hold which field, `fields` which internal
    fields the model was built over (a later frame is shaped to exactly these).
    """

    settings: dict[str, Any]
    spec: TokenColumns = field(default_factory=TokenColumns)
    fields: frozenset[str] = frozenset()
    threshold: float = DEFAULT_THRESHOLD
    review_band: tuple[float, float] = DEFAULT_REVIEW_BAND
    separate_group_members: bool = True
    bloom_words: dict[str, int] = field(default_factory=dict)
    similarity: str = "bloom"  # "clear": fuzzy levels use Jaro-Winkler on clear values (upper-bound benchmark)
    trained_at: str = ""
    training_records: int = 0
    training_seconds: float = 0.0
    metadata: dict[str, Any] = field(default_factory=dict)

    # ------------------------------------------------------------------ persistence
    def to_dict(self) -> dict[str, Any]:
        return {
            "format": MODEL_FORMAT,
            "splink_settings": self.settings,
            "token_columns": self.spec.to_dict(),
            "fields": sorted(self.fields),
            "threshold": self.threshold,
            "review_band": list(self.review_band),
            "separate_group_members": self.separate_group_members,
            "bloom_words": self.bloom_words,
            "similarity": self.similarity,
            "trained_at": self.trained_at,
            "training_records": self.training_records,
            "training_seconds": self.training_seconds,
            "metadata": self.metadata,
        }

    def to_json(self, indent: int | None = 2) -> str:
        return json.dumps(self.to_dict(), indent=indent, default=str)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> LinkageModel:
        if d.get("format") != MODEL_FORMAT:
            raise ValueError(f"not a linkage model ({d.get('format')!r}, expected {MODEL_FORMAT!r})")
        return cls(
            settings=d["splink_settings"],
            spec=TokenColumns.from_dict(d.get("token_columns", {})),
            fields=frozenset(d["fields"]),
            threshold=float(d["threshold"]),
            review_band=tuple(d.get("review_band", DEFAULT_REVIEW_BAND)),
            separate_group_members=bool(d.get("separate_group_members", True)),
            bloom_words={k: int(v) for k, v in d.get("bloom_words", {}).items()},
            similarity=d.get("similarity", "bloom"),
            trained_at=d.get("trained_at", ""),
            training_records=int(d.get("training_records", 0)),
            training_seconds=float(d.get("training_seconds", 0.0)),
            metadata=d.get("metadata", {}),
        )

    @classmethod
    def from_json(cls, text: str) -> LinkageModel:
        return cls.from_dict(json.loads(text))

    def save(self, path: Path | str) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(self.to_json())
        return path

    @classmethod
    def load(cls, path: Path | str) -> LinkageModel:
        return cls.from_json(Path(path).read_text())

    @property
    def sql_context(self) -> cmp.SqlContext:
        return cmp.SqlContext(bloom_words=self.bloom_words, similarity=self.similarity)  # type: ignore[arg-type]

    @property
    def hashed(self) -> bool:
        return self.similarity != "clear"

    def prepare(self, tokens: pl.DataFrame, id_offset: int = 0) -> pl.DataFrame:
        """A token frame in the model's internal shape, with integer unique ids from `id_offset`."""
        return internal_frame(tokens, self.spec, self.fields, self.bloom_words, id_offset, hashed=self.hashed)

    # ------------------------------------------------------------------ explanation
    def _linker(self, session: Session):
        sdf = session.register(empty_internal_frame(self.bloom_words, self.hashed), stem="empty")
        return session.linker(sdf, self.settings)

    def match_weights_chart(self, path: Path | str) -> Path:
        """Save Splink's match-weights chart (Altair). `.html` or `.json` (Vega-Lite spec); `.png`/`.svg` need
        vl-convert, which is not installed, so those fall back to `.html` beside the requested name."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        with Session() as s:
            chart = self._linker(s).visualisations.match_weights_chart()
        if path.suffix == ".json":
            path.write_text(json.dumps(chart.to_dict(), indent=1, default=str))
            return path
        if path.suffix in (".png", ".svg"):
            try:
                chart.save(str(path))
                return path
            except Exception as exc:  # vl-convert missing
                logger.warning("cannot write %s (%s); writing HTML instead", path.suffix, exc)
                path = path.with_suffix(".html")
        chart.save(str(path.with_suffix(".html")) if path.suffix != ".html" else str(path))
        return path if path.suffix == ".html" else path.with_suffix(".html")

    def parameters(self) -> pl.DataFrame:
        """One row per comparison level: m, u, match weight (log2 Bayes factor), for reports and MLflow."""
        rows = []
        for comp in self.settings["comparisons"]:
            for i, lv in enumerate(comp["comparison_levels"]):
                if lv.get("is_null_level"):
                    continue
                m, u = lv.get("m_probability"), lv.get("u_probability")
                weight = None
                if m and u:
                    import math

                    weight = math.log2(m / u)
                rows.append({
                    "comparison": comp["output_column_name"], "level": i, "label": lv.get("label_for_charts"),
                    "m_probability": m, "u_probability": u, "match_weight": weight,
                    "tf_adjusted": bool(lv.get("tf_adjustment_column")),
                })
        return pl.DataFrame(rows, schema={"comparison": pl.String, "level": pl.Int32, "label": pl.String,
                                          "m_probability": pl.Float64, "u_probability": pl.Float64,
                                          "match_weight": pl.Float64, "tf_adjusted": pl.Boolean})


def floor_parameters(settings: dict[str, Any], m_floor: float, u_floor: float) -> dict[str, Any]:
    """No level's m below `m_floor` (nor u below `u_floor`): EM drives the m of a level it never sees among
    matches towards zero (a match weight of -30 or -60 bits), which would let one disagreement veto any amount
    of agreement; a u of zero (never seen in the random sample) would make one agreement decisive."""
    for comp in settings["comparisons"]:
        for lv in comp["comparison_levels"]:
            if lv.get("is_null_level"):
                continue
            for k, floor in (("m_probability", m_floor), ("u_probability", u_floor)):
                if lv.get(k) is not None:
                    lv[k] = max(float(lv[k]), floor)
    return settings


PARAMETER_DIGITS = 10


def round_parameters(settings: dict[str, Any], digits: int = PARAMETER_DIGITS) -> dict[str, Any]:
    """m, u and the prior to `digits` significant digits. DuckDB sums EM's expectations in parallel, in an order
    that varies from run to run, so the same records give parameters that differ in the last bits; rounded, the
    model (and every match probability and cluster downstream) is the same on every run."""
    def rounded(x: Any) -> Any:
        return float(f"{float(x):.{digits}g}") if x is not None else None

    if "probability_two_random_records_match" in settings:
        settings["probability_two_random_records_match"] = rounded(settings["probability_two_random_records_match"])
    for comp in settings["comparisons"]:
        for lv in comp["comparison_levels"]:
            for k in ("m_probability", "u_probability"):
                if lv.get(k) is not None:
                    lv[k] = rounded(lv[k])
    return settings


def _train_linker(linker, fields: frozenset[str], config: TrainingConfig) -> None:
    det = cmp.blocking_rules(config.deterministic_rules, fields)
    if det:
        linker.training.estimate_probability_two_random_records_match(
            [r.sql() for r in det], recall=config.deterministic_recall
        )
    linker.training.estimate_u_using_random_sampling(max_pairs=config.u_max_pairs, seed=config.seed)
    for r in cmp.blocking_rules(config.training_rules, fields):
        linker.training.estimate_parameters_using_expectation_maximisation(
            r.sql(), max_pairs=config.em_max_pairs, estimate_without_term_frequencies=True
        )


def train_model(
    tokens: pl.DataFrame,
    *,
    spec: TokenColumns | None = None,
    config: TrainingConfig | None = None,
    threshold: float = DEFAULT_THRESHOLD,
    comparisons: tuple[cmp.Comparison, ...] = cmp.DEFAULT_COMPARISONS,
    blocking: tuple[cmp.Rule, ...] = cmp.PREDICTION_BLOCKING,
    similarity: str = "bloom",
    session: Session | None = None,
    prepared: Any = None,
) -> LinkageModel:
    """Train a model on pseudonymised person records (no labels needed).

    The prior comes from near-deterministic rules (NHS number; name and date of
    birth), u from random sampling, m by expectation maximisation in rounds
    blocked on date of birth, then on name pair (each round estimates the
    comparisons it does not block on).
    """
    spec = spec or TokenColumns()
    config = config or TrainingConfig()
    start = time.perf_counter()
    fields = available_fields(tokens, spec)
    widths = bloom_widths(to_internal(tokens.head(0) if tokens.height == 0 else tokens.select(
        [c for c in tokens.columns if c in {spec.bf_given, spec.bf_family, spec.bf_name, spec.bf_address,
                                            spec.source, spec.record_id}]), spec))
    ctx = cmp.SqlContext(bloom_words=widths, similarity=similarity)
    settings = cmp.settings_dict(fields, ctx, comparisons, blocking)
    model = LinkageModel(settings=settings, spec=spec, fields=fields, threshold=threshold, bloom_words=widths,
                         similarity=similarity)
    own = session is None
    s = session or Session()
    try:
        if prepared is None:
            df = model.prepare(tokens)
            sdf = s.register(df)
        else:
            df, sdf = prepared
        linker = s.linker(sdf, settings, tf_source=df)
        _train_linker(linker, fields, config)
        model.settings = round_parameters(
            floor_parameters(linker.misc.save_model_to_json(), config.m_floor, config.u_floor))
    finally:
        if own:
            s.close()
    model.trained_at = datetime.now(UTC).isoformat(timespec="seconds")
    model.training_records = tokens.height
    model.training_seconds = round(time.perf_counter() - start, 2)
    return model
