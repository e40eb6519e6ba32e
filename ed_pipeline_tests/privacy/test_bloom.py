from __future__ import annotations

import duckdb
import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ed_pipeline.privacy import (
    FAMILY_NAME_BLOOM,
    BloomEncoder,
    BloomSpec,
    dice,
    dice_series,
    dice_sql,
    pseudonymise_people,
    splink_dice_sql,
)
from ed_pipeline_tests.privacy.records import KEY, OTHER_KEY, records

TYPO_PAIRS = [
    ("smith", "smyth"), ("johnson", "jonson"), ("williams", "wiliams"), ("brown", "browne"), ("taylor", "tailor"),
    ("thompson", "thomson"), ("robinson", "robinsen"), ("wright", "wrigth"), ("walker", "walkr"),
    ("edwards", "edwads"), ("hughes", "hughs"), ("green", "greene"), ("mitchell", "mitchel"), ("phillips", "philips"),
    ("harrison", "harisson"), ("clarke", "clark"), ("jackson", "jakson"), ("stevenson", "stephenson"),
    ("macdonald", "mcdonald"), ("obrien", "obrian"), ("catherine", "katherine"), ("jonathon", "jonathan"),
    ("mohammed", "muhammad"), ("stephen", "steven"), ("isabelle", "isabel"), ("sophie", "sofie"),
    ("kowalczyk", "kowalcyk"), ("pemberton", "pembertom"), ("alexander", "alexandr"), ("elizabeth", "elisabeth"),
]
OTHERS = ["patel", "nguyen", "oyelaran", "fitzgerald", "quinn", "zielinski", "begum", "okafor", "dubois",
          "yamamoto", "castillo", "abubakar"]


@pytest.mark.parametrize("hardening", ["xor_fold", "balance", "none"])
def test_dice_higher_for_typos_than_for_non_matches(hardening: str) -> None:
    encoder = BloomEncoder(KEY, BloomSpec("family_name", bits=256, hashes=10, hardening=hardening))
    typo = [dice(*encoder.encode([a, b])) for a, b in TYPO_PAIRS]
    non = [dice(*encoder.encode([a, other])) for a, _ in TYPO_PAIRS for other in OTHERS if other != a]
    assert min(typo) > sum(non) / len(non)
    assert sum(typo) / len(typo) > max(sum(non) / len(non) + 0.25, 0.5 if hardening == "balance" else 0.55)
    # ranking: for each name, its typo is more similar than most non-matches
    wins = sum(t > n for t in typo for n in non) / (len(typo) * len(non))
    assert wins > 0.97


def test_filters_are_keyed_and_balanced_filters_have_constant_weight() -> None:
    a = BloomEncoder(KEY, FAMILY_NAME_BLOOM).encode(["smith"])[0]
    b = BloomEncoder(OTHER_KEY, FAMILY_NAME_BLOOM).encode(["smith"])[0]
    assert a != b and len(a) == FAMILY_NAME_BLOOM.nbytes
    balanced = BloomEncoder(KEY, BloomSpec("x", bits=256, hashes=10, hardening="balance"))
    weights = {int.from_bytes(f, "big").bit_count() for f in balanced.encode(["al", "smith", "pemberton smythe"])}
    assert weights == {128}


names = st.text(alphabet="abcdefghijklmnopqrstuvwxyz", min_size=5, max_size=12)


@settings(max_examples=60, deadline=None)
@given(name=names, position=st.integers(min_value=0, max_value=20), data=st.data())
def test_single_edit_keeps_dice_high(name: str, position: int, data) -> None:
    encoder = BloomEncoder(KEY, FAMILY_NAME_BLOOM)
    i = position % len(name)
    letter = data.draw(st.sampled_from("abcdefghijklmnopqrstuvwxyz"))
    typo = name[:i] + letter + name[i + 1:]
    same, edited = encoder.encode([name, name]), encoder.encode([name, typo])
    assert dice(*same) == 1.0
    assert dice(*edited) >= 0.45  # one substitution changes at most two bigrams


def test_dice_edge_cases() -> None:
    assert dice(None, b"\x01") is None
    assert dice(b"\x00\x00", b"\x00\x00") is None
    assert dice(b"\xff\x00", b"\xff\x00") == 1.0
    assert dice(b"\xf0", b"\x0f") == 0.0
    with pytest.raises(ValueError):
        dice(b"\x00", b"\x00\x00")


def test_duckdb_dice_equals_python_dice() -> None:
    out = pseudonymise_people(records(), KEY)
    left = out.select("record_id", "bf_given_name", "bf_family_name", "bf_name", "bf_address")
    pairs = left.join(left, how="cross", suffix="_r").rename(
        {c: f"{c}_l" for c in left.columns})
    conn = duckdb.connect()
    conn.register("pairs", pairs)
    columns = ("bf_given_name", "bf_family_name", "bf_name", "bf_address")
    sql = ", ".join(f"{splink_dice_sql(c)} AS {c}" for c in columns)
    from_duckdb = conn.sql(f"SELECT record_id_l, record_id_r, {sql} FROM pairs").pl()
    for c in columns:
        expected = [dice(a, b) for a, b in zip(pairs[f"{c}_l"], pairs[f"{c}_r"], strict=True)]
        assert from_duckdb[c].to_list() == pytest.approx(expected, nan_ok=True), c
        assert dice_series(pairs[f"{c}_l"], pairs[f"{c}_r"]).to_list() == pytest.approx(expected), c


def test_duckdb_dice_in_a_splink_style_comparison() -> None:
    """The documented use: a custom comparison level over BLOB filter columns in DuckDB SQL."""
    encoder = BloomEncoder(KEY, FAMILY_NAME_BLOOM)
    df = pl.DataFrame({"id": [1, 2, 3], "bf_family_name": pl.Series(encoder.encode(["smith", "smyth", "patel"]))})
    conn = duckdb.connect()
    conn.register("df", df)
    conn.execute("CREATE TABLE people AS SELECT * FROM df")
    level = dice_sql("l.bf_family_name", "r.bf_family_name")
    rows = conn.execute(f"""
        SELECT l.id, r.id, {level} AS dice, {level} >= 0.6 AS fuzzy_match
        FROM people l JOIN people r ON l.id < r.id ORDER BY 1, 2""").fetchall()
    assert [(a, b, m) for a, b, _, m in rows] == [(1, 2, True), (1, 3, False), (2, 3, False)]
