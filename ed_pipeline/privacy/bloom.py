"""Hardened Bloom-filter encodings of names and addresses, and their Dice similarity.

Encoding (per field)
--------------------
A normalised value is padded ("_john_" for "john"; spaces become "_") and cut
into q-grams (bigrams by default). Each distinct q-gram sets `hashes` bit
positions in a raw filter. Positions come from keyed *random hashing*: the
positions of q-gram g are drawn from HMAC-SHA256(field sub-key, g || counter),
not from the linear double-hashing scheme that pattern-mining attacks exploit,
and without the key nobody can compute the filter of a guessed name.

Hardening against frequency attacks (`BloomSpec.hardening`):
- "xor_fold" (the default): the raw filter is twice the stored length and its
  two halves are XOR-ed together. A stored bit no longer says which q-gram set
  it, so frequent bit patterns cannot be aligned with frequent q-grams, while
  Dice similarities stay close to those of the raw filters (Schnell, Borgs &
  Encheva 2016).
- "balance": the raw filter is half the stored length, concatenated with its
  complement and permuted with a keyed permutation, so that every stored filter
  has exactly half its bits set and the Hamming weight reveals nothing about the
  length or frequency of the value (Berger & Schnell 2017).
- "none": for comparison in tests only.
The filters of given and family names are also combined into one swap-robust
record-level filter (`bf_name`), another defence: one name cannot be attacked
on its own in that column.

Storage and comparison
----------------------
A filter is stored as fixed-length bytes (`pl.Binary`, DuckDB `BLOB`) of
`bits / 8` bytes, bit i of the filter in byte i // 8 (most significant first).
In DuckDB, `blob::BIT` turns it into a bit string and the Dice coefficient
    2 * |A AND B| / (|A| + |B|)
is `2.0 * bit_count(a::BIT & b::BIT) / (bit_count(a::BIT) + bit_count(b::BIT))`,
built by `dice_sql`. It is NULL when either side is NULL (or both are empty), as
`dice` is None in Python.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
import polars as pl

from ed_pipeline.privacy.keys import Hmac, derive_key

Hardening = Literal["xor_fold", "balance", "none"]
PAD = "_"


@dataclass(frozen=True)
class BloomSpec:
    name: str  # the field; its Bloom sub-key is derived from it
    bits: int  # stored length in bits (a multiple of 64)
    hashes: int  # bit positions per q-gram
    q: int = 2
    hardening: Hardening = "xor_fold"

    def __post_init__(self) -> None:
        if self.bits % 64 or self.bits <= 0:
            raise ValueError(f"Bloom filter length must be a positive multiple of 64 bits, not {self.bits}")
        if not 1 <= self.hashes <= 64:
            raise ValueError(f"hashes per q-gram must be between 1 and 64, not {self.hashes}")

    @property
    def raw_bits(self) -> int:
        """Length of the filter before hardening."""
        return {"xor_fold": 2 * self.bits, "balance": self.bits // 2, "none": self.bits}[self.hardening]

    @property
    def nbytes(self) -> int:
        return self.bits // 8


# Defaults for the people table. Names are short (5-8 bigrams), addresses long (20-35).
GIVEN_NAME_BLOOM = BloomSpec("given_name", bits=256, hashes=10)
FAMILY_NAME_BLOOM = BloomSpec("family_name", bits=256, hashes=10)
NAME_BLOOM = BloomSpec("name", bits=512, hashes=10)
ADDRESS_BLOOM = BloomSpec("address", bits=512, hashes=8)


def qgrams(text: str, q: int = 2) -> list[str]:
    """The distinct padded q-grams of a normalised value, in first-seen order."""
    padded = PAD + text.replace(" ", PAD) + PAD
    seen: dict[str, None] = {}
    for i in range(max(len(padded) - q + 1, 1)):
        seen.setdefault(padded[i : i + q], None)
    return list(seen)


class BloomEncoder:
    """Encodes normalised values of one field under one key. Work is done per distinct value."""

    def __init__(self, key: bytes, spec: BloomSpec):
        self.spec = spec
        sub = derive_key(key, f"bloom/{spec.name}")
        self._hmac = Hmac(sub)
        self._positions: dict[str, np.ndarray] = {}
        self._permutation: np.ndarray | None = None
        if spec.hardening == "balance":
            seed = int.from_bytes(self._hmac.digest(b"\x00permutation"), "big")
            self._permutation = np.random.Generator(np.random.PCG64(seed)).permutation(spec.bits)

    def positions(self, gram: str) -> np.ndarray:
        """The raw-filter bit positions set by one q-gram (keyed random hashing)."""
        pos = self._positions.get(gram)
        if pos is None:
            raw_bits = self.spec.raw_bits
            needed = self.spec.hashes
            stream = b""
            counter = 0
            while len(stream) < 4 * needed:
                stream += self._hmac.digest(gram.encode("utf-8") + b"\x00" + counter.to_bytes(2, "big"))
                counter += 1
            words = np.frombuffer(stream[: 4 * needed], dtype=">u4").astype(np.int64)
            pos = words % raw_bits
            self._positions[gram] = pos
        return pos

    def encode_raw(self, values: Sequence[str]) -> np.ndarray:
        """Packed raw filters, one row of `raw_bits / 8` bytes per value (values must not be null)."""
        n = len(values)
        raw_bits = self.spec.raw_bits
        out = np.zeros((n, raw_bits // 8), dtype=np.uint8)
        if n == 0:
            return out
        q = self.spec.q
        grams = (
            pl.DataFrame({"v": pl.Series(values, dtype=pl.String)})
            .with_row_index("row")
            .with_columns(p=PAD + pl.col("v").str.replace_all(" ", PAD, literal=True) + PAD)
            .with_columns(off=pl.int_ranges(0, (pl.col("p").str.len_chars() - q + 1).clip(lower_bound=1)))
            .explode("off")
            .select("row", g=pl.col("p").str.slice(pl.col("off"), q))
            .unique()
        )
        vocab = grams["g"].unique().sort()
        table = np.stack([self.positions(g) for g in vocab.to_list()])
        gid = grams["g"].replace_strict(vocab, pl.int_range(len(vocab), eager=True)).to_numpy()
        rows = grams["row"].to_numpy().astype(np.int64)
        order = np.argsort(rows, kind="stable")
        rows, gid = rows[order], gid[order]
        chunk = max(1, (1 << 24) // raw_bits)
        for start in range(0, n, chunk):
            stop = min(n, start + chunk)
            lo, hi = np.searchsorted(rows, [start, stop])
            bits = np.zeros((stop - start, raw_bits), dtype=bool)
            bits[(rows[lo:hi] - start)[:, None], table[gid[lo:hi]]] = True
            out[start:stop] = np.packbits(bits, axis=1)
        return out

    def harden(self, raw: np.ndarray) -> np.ndarray:
        """Stored filters (`bits / 8` bytes a row) from packed raw filters."""
        hardening = self.spec.hardening
        if hardening == "none":
            return raw
        if hardening == "xor_fold":
            half = raw.shape[1] // 2
            return raw[:, :half] ^ raw[:, half:]
        bits = np.unpackbits(raw, axis=1).astype(bool)
        balanced = np.concatenate([bits, ~bits], axis=1)[:, self._permutation]
        return np.packbits(balanced, axis=1)

    def encode(self, values: Sequence[str]) -> list[bytes]:
        """Stored filters of normalised values, as bytes."""
        return rows_to_bytes(self.harden(self.encode_raw(values)))


def rows_to_bytes(matrix: np.ndarray) -> list[bytes]:
    data = np.ascontiguousarray(matrix).tobytes()
    width = matrix.shape[1]
    return [data[i : i + width] for i in range(0, len(data), width)] if width else [b""] * matrix.shape[0]


def encode_series(values: pl.Series, encoder: BloomEncoder) -> pl.Series:
    """Filters of a String series (null stays null), computed once per distinct value and mapped back."""
    unique = values.drop_nulls().unique()
    filters = pl.Series(encoder.encode(unique.to_list()), dtype=pl.Binary)
    return values.replace_strict(unique, filters, default=None, return_dtype=pl.Binary).alias(values.name)


def dice(a: bytes | None, b: bytes | None) -> float | None:
    """Dice coefficient 2|A∩B| / (|A|+|B|) of two stored filters; None when either is None or both are empty."""
    if a is None or b is None:
        return None
    if len(a) != len(b):
        raise ValueError(f"cannot compare Bloom filters of {len(a)} and {len(b)} bytes")
    x, y = int.from_bytes(a, "big"), int.from_bytes(b, "big")
    total = x.bit_count() + y.bit_count()
    if total == 0:
        return None
    return 2.0 * (x & y).bit_count() / total


def dice_series(a: pl.Series, b: pl.Series) -> pl.Series:
    """Row-wise Dice of two Binary series of equal-length filters (vectorised)."""
    if len(a) != len(b):
        raise ValueError("series differ in length")
    valid = (a.is_not_null() & b.is_not_null()).to_numpy()
    out = np.full(len(a), np.nan)
    if valid.any():
        left, right = a.filter(pl.Series(valid)).to_list(), b.filter(pl.Series(valid)).to_list()
        width = len(left[0])
        x = np.frombuffer(b"".join(left), dtype=np.uint8).reshape(-1, width)
        y = np.frombuffer(b"".join(right), dtype=np.uint8).reshape(-1, width)
        both = np.unpackbits(x & y, axis=1).sum(axis=1)
        total = np.unpackbits(x, axis=1).sum(axis=1) + np.unpackbits(y, axis=1).sum(axis=1)
        with np.errstate(invalid="ignore", divide="ignore"):
            out[valid] = np.where(total > 0, 2.0 * both / np.maximum(total, 1), np.nan)
    return pl.Series("dice", out).fill_nan(None)


def dice_sql(left: str, right: str) -> str:
    """A DuckDB SQL expression for the Dice coefficient of two BLOB filter columns (or expressions).

    Example, as a Splink custom comparison level over `bf_family_name`:
        dice_sql('"bf_family_name_l"', '"bf_family_name_r"') + " >= 0.8"
    """
    a, b = f"CAST({left} AS BIT)", f"CAST({right} AS BIT)"
    return f"(2.0 * bit_count({a} & {b}) / NULLIF(bit_count({a}) + bit_count({b}), 0))"


def splink_dice_sql(column: str) -> str:
    """Dice between the left and right records of a Splink comparison (`column_l`, `column_r`).

    Filters are only comparable within one field: each field has its own key. Swapped given and family
    names are compared through `bf_name`, which holds both.
    """
    return dice_sql(f'"{column}_l"', f'"{column}_r"')
