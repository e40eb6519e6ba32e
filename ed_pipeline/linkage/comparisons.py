"""The Fellegi-Sunter comparisons, as small composable objects, and the Splink settings made from them.

Each `Comparison` is a list of `Level`s in order of decreasing agreement. A
level is a DuckDB SQL condition over the left and right records (`x_l`,
`x_r`), the internal fields it needs (see `spec.py`), and optionally a
term-frequency column. Levels whose fields a token frame lacks are dropped, and
a comparison left with nothing to say is dropped whole, so the same catalogue
serves the privacy package's tokens, someone else's tokens and clear text.

Bloom-filter levels use the Dice coefficient computed in SQL
(`ed_pipeline.privacy.bloom.dice_sql`: bit counts over `blob::BIT`).

All SQL here is DuckDB's dialect, and the trained model stores it so. For
Splink's Spark backend, `ed_pipeline.linkage.spark.spark_settings` transpiles
it in one place (sqlglot, plus the few functions that differ); nothing here
needs to know about Spark.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

# In clear-text mode (the upper-bound benchmark) a Bloom level compares the clear value instead.
CLEAR_COUNTERPART = {"bf_given_name": "tok_given_name", "bf_family_name": "tok_family_name",
                     "bf_name": "tok_name_pair", "bf_address": "tok_address"}
_DICE = re.compile(r"DICE\((\w+)\)")


@dataclass(frozen=True)
class SqlContext:
    """What the SQL of a level depends on besides its fields: how Bloom filters are laid out (64-bit words per
    filter, see engine.bloom_words), or, for clear text, Jaro-Winkler on the clear value."""

    bloom_words: dict[str, int] = field(default_factory=dict)
    similarity: Literal["bloom", "clear"] = "bloom"

    def has(self, name: str, fields_: frozenset[str]) -> bool:
        if name.startswith("bf_"):
            if self.similarity == "clear":
                return CLEAR_COUNTERPART.get(name) in fields_
            return name in fields_ and self.bloom_words.get(name, 0) > 0
        return name in fields_

    def expand(self, sql: str) -> str:
        return _DICE.sub(lambda m: self.similarity_sql(m.group(1)), sql)

    def similarity_sql(self, col: str, left: str = '"{}_l"', right: str = '"{}_r"') -> str:
        """Similarity of field `col` between two records; `left`/`right` format a column name into SQL (Splink's
        `"x_l"` by default; `'l."{}"'` for a join of two aliased tables)."""
        L, R = left.format, right.format
        if self.similarity == "clear":
            c = CLEAR_COUNTERPART[col]
            return f"jaro_winkler_similarity({L(c)}, {R(c)})"
        words = self.bloom_words[col]
        inter = " + ".join(f"bit_count({L(f'{col}_w{i}')} & {R(f'{col}_w{i}')})::INTEGER" for i in range(words))
        return f"(2.0 * ({inter}) / nullif({L(col + '_pc')} + {R(col + '_pc')}, 0))"


def eq(col: str) -> str:
    return f'"{col}_l" = "{col}_r"'


def dice(col: str, at_least: float) -> str:
    """Dice similarity of a Bloom filter field at least `at_least` (expanded per SqlContext; the same value as
    ed_pipeline.privacy.bloom.dice_sql on the BLOBs)."""
    return f"DICE({col}) >= {at_least}"


def either_null(cols: Sequence[str]) -> str:
    """True when, on either side, every one of `cols` is null."""
    left = " AND ".join(f'"{c}_l" IS NULL' for c in cols)
    right = " AND ".join(f'"{c}_r" IS NULL' for c in cols)
    return f"({left}) OR ({right})"


@dataclass(frozen=True)
class Level:
    label: str
    sql: str
    requires: frozenset[str]
    tf_column: str | None = None
    tf_weight: float = 1.0
    unless: frozenset[str] = frozenset()  # a fallback level: left out when all of these fields are present

    def available(self, fields_: frozenset[str], ctx: SqlContext) -> bool:
        if self.unless and self.unless <= fields_:
            return False
        return all(ctx.has(f, fields_) for f in self.requires) and (
            self.tf_column is None or self.tf_column in fields_)

    def to_splink(self, ctx: SqlContext) -> dict[str, Any]:
        d: dict[str, Any] = {"sql_condition": ctx.expand(self.sql), "label_for_charts": self.label}
        if self.tf_column:
            d["tf_adjustment_column"] = self.tf_column
            d["tf_adjustment_weight"] = self.tf_weight
            d["tf_minimum_u_value"] = 1e-6
        return d


def level(label: str, sql: str, *requires: str, tf: str | None = None, tf_weight: float = 1.0,
          unless: tuple[str, ...] = ()) -> Level:
    return Level(label, sql, frozenset(requires), tf, tf_weight, frozenset(unless))


@dataclass(frozen=True)
class Comparison:
    """One comparison: null when every field in `null_fields` (that the frame has) is null on either side."""

    name: str
    description: str
    null_fields: tuple[str, ...]
    levels: tuple[Level, ...]
    min_levels: int = 1  # fewer usable agreement levels than this: the comparison is dropped
    extra_null_sql: tuple[tuple[str, frozenset[str]], ...] = field(default=())

    def usable_levels(self, fields_: frozenset[str], ctx: SqlContext) -> list[Level]:
        return [lv for lv in self.levels if lv.available(fields_, ctx)]

    def to_splink(self, fields_: frozenset[str], ctx: SqlContext) -> dict[str, Any] | None:
        nulls = [c for c in self.null_fields if c in fields_]
        levels = self.usable_levels(fields_, ctx)
        if not nulls or len(levels) < self.min_levels:
            return None
        null_sql = either_null(nulls)
        for sql, req in self.extra_null_sql:
            if req <= fields_:
                null_sql = f"({null_sql}) OR ({sql})"
        return {
            "output_column_name": self.name,
            "comparison_description": self.description,
            "comparison_levels": [
                {"sql_condition": null_sql, "label_for_charts": "null", "is_null_level": True},
                *(lv.to_splink(ctx) for lv in levels),
                {"sql_condition": "ELSE", "label_for_charts": "all other"},
            ],
        }


# ---------------------------------------------------------------------------------------------- the catalogue

G, FG, F, NP, INI = "tok_given_name", "tok_first_given_name", "tok_family_name", "tok_name_pair", "tok_initials"
GP, FP, ISINI = "tok_given_nysiis", "tok_family_nysiis", "name_is_initials"
BFG, BFF, BFN = "bf_given_name", "bf_family_name", "bf_name"
_INITIALS_ONLY = f'coalesce("{ISINI}_l", false) OR coalesce("{ISINI}_r", false)'
_FULL_NAMES = f'NOT ({_INITIALS_ONLY})'

NAME = Comparison(
    name="name",
    description="Given and family name tokens, phonetic codes and Bloom-filter Dice; initials-only records "
    "(data-minimised sources) are compared on initials alone",
    null_fields=(INI, G, F, NP),
    levels=(
        level("initials agree (initials-only record)", f"({_INITIALS_ONLY}) AND {eq(INI)}", INI, ISINI),
        level("initials differ (initials-only record)", _INITIALS_ONLY, INI, ISINI),
        # Splink's term-frequency adjustment is relative to the u of the level that is an exact match on the
        # tf column, so the exact level *is* name-pair equality (order-free: swapped names count as exact).
        level("exact (either order)", eq(NP), NP, tf=NP),
        level("family exact, given fuzzy",
              f"{eq(F)} AND ({eq(FG)} OR {eq(GP)} OR {dice(BFG, 0.7)})", F, FG, GP, BFG),
        level("given exact, family fuzzy", f"{eq(G)} AND ({eq(FP)} OR {dice(BFF, 0.7)})", G, FP, BFF),
        level("both names fuzzy", dice(BFN, 0.75), BFN),
        level("family exact, given differs", eq(F), F),
        level("given exact, family differs", eq(G), G),
        level("given phonetic, family fuzzy", f"{eq(GP)} AND {dice(BFF, 0.5)}", GP, BFF),
    ),
)

# No "day and month swapped" or "day and year" level: birth year and month are in clear, and a token that ties a
# day to a month or to another month's day gives the exact date back (privacy/pseudonymise.py)
D, DMD = "tok_dob", "tok_dob_month_day"

DATE_OF_BIRTH = Comparison(
    name="date_of_birth",
    description="Date of birth: exact (token), the birthday in another year (token), year and month, year within 1",
    null_fields=(D, "birth_year"),
    levels=(
        level("exact", eq(D), D, tf=D),
        level("birthday, year differs", eq(DMD), DMD),
        level("year and month", f'{eq("birth_year")} AND {eq("birth_month")}', "birth_year", "birth_month"),
        level("year within 1", 'abs("birth_year_l" - "birth_year_r") <= 1', "birth_year"),
    ),
)

SEX = Comparison(
    name="sex",
    description="Sex (clear M/F; U is missing)",
    null_fields=("sex",),
    extra_null_sql=(("\"sex_l\" = 'U' OR \"sex_r\" = 'U'", frozenset({"sex"})),),
    levels=(level("same", eq("sex"), "sex"),),
)

NHS = Comparison(
    name="nhs_number",
    description="NHS number token",
    null_fields=("tok_nhs_number",),
    levels=(level("exact", eq("tok_nhs_number"), "tok_nhs_number"),),
)

UPN = Comparison(
    name="upn",
    description="Unique pupil number token",
    null_fields=("tok_upn",),
    levels=(level("exact", eq("tok_upn"), "tok_upn"),),
)

U, A, AS, PC, PD, BFA = "tok_uprn", "tok_address", "tok_address_street", "tok_postcode", "tok_postcode_district", \
    "bf_address"

LOCATION = Comparison(
    name="location",
    description="Where the person lived: UPRN, address and postcode tokens, address Bloom Dice, district "
    "(one comparison, since these are far from independent)",
    null_fields=(U, A, PC, PD),
    levels=(
        level("same UPRN", eq(U), U),
        level("same address", f"{eq(A)} OR {eq(AS)}", A, AS),
        level("same postcode", eq(PC), PC),
        level("similar address", dice(BFA, 0.9), BFA),
        level("same district", eq(PD), PD),
    ),
)

DEFAULT_COMPARISONS: tuple[Comparison, ...] = (NAME, DATE_OF_BIRTH, SEX, NHS, UPN, LOCATION)


# ---------------------------------------------------------------------------------------------- blocking

@dataclass(frozen=True)
class Rule:
    """A blocking rule: an equi-join, records agree on every field (all non-null)."""

    fields: tuple[str, ...]

    def available(self, fields_: frozenset[str]) -> bool:
        return set(self.fields) <= fields_

    def sql(self) -> str:
        return " AND ".join(f'l."{c}" = r."{c}"' for c in self.fields)

    def to_splink(self) -> dict[str, Any]:
        return {"blocking_rule": self.sql(), "sql_dialect": "duckdb"}


def rule(*fields_: str) -> Rule:
    return Rule(tuple(fields_))


# Blocking for prediction: every pair that shares an identifier or a date of birth with one more cue.
PREDICTION_BLOCKING: tuple[Rule, ...] = (
    rule("tok_nhs_number"),
    rule("tok_upn"),
    rule(D, INI),
    rule(D, FP),
    rule(D, GP),
    rule(D, PD),
    rule(NP, "birth_year"),
    rule(NP, PD),
    rule(U, FG),
)

# EM training rounds: each round blocks on one field, so the others are estimated.
TRAINING_BLOCKING: tuple[Rule, ...] = (rule(D), rule(NP))

# Near-certain matches, for the prior (probability that two random records match).
DETERMINISTIC_RULES: tuple[Rule, ...] = (rule("tok_nhs_number"), rule("tok_name_dob"), rule(G, F, D))


def blocking_rules(rules: Iterable[Rule], fields_: frozenset[str]) -> list[Rule]:
    return [r for r in rules if r.available(fields_)]


def settings_dict(
    fields_: frozenset[str],
    ctx: SqlContext,
    comparisons: Sequence[Comparison] = DEFAULT_COMPARISONS,
    blocking: Sequence[Rule] = PREDICTION_BLOCKING,
    probability_two_random_records_match: float = 1e-4,
) -> dict[str, Any]:
    """A Splink 5 settings dictionary (dedupe over one table, unique_id an integer) for the fields at hand."""
    comps = [c.to_splink(fields_, ctx) for c in comparisons]
    comps = [c for c in comps if c is not None]
    if not comps:
        raise ValueError("the token frame has no field that any comparison can use")
    rules = blocking_rules(blocking, fields_)
    if not rules:
        raise ValueError("the token frame has no field that any blocking rule can use")
    return {
        "link_type": "dedupe_only",
        "unique_id_column_name": "unique_id",
        "comparisons": comps,
        "blocking_rules_to_generate_predictions": [r.to_splink() for r in rules],
        "probability_two_random_records_match": probability_two_random_records_match,
        "retain_matching_columns": False,
        "retain_intermediate_calculation_columns": False,
        "em_convergence": 0.001,
        "max_iterations": 20,
    }
