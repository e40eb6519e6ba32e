"""Normalisation of identifiers before they are tokenised, as polars expressions.

Two agencies must produce the same token for the same person, so every value is
brought to one canonical form first: lower case, accents and ligatures folded
to ASCII, punctuation and runs of white space removed, postcodes reformatted
(`ss164ab`, `SS16 4AB` -> `SS16 4AB`), dates of birth parsed from the formats
agencies use. Each function takes and returns a `pl.Expr`, so a whole column is
normalised in one vectorised pass; `normalise_value` runs one on a scalar.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Callable
from functools import cache

import polars as pl
from anyascii import anyascii

# Letters that Unicode NFKD does not decompose into ASCII + combining marks.
_FOLD_FROM = ["ß", "æ", "ø", "ł", "đ", "œ", "þ", "ð", "ı"]
_FOLD_TO = ["ss", "ae", "o", "l", "d", "oe", "th", "d", "i"]

POSTCODE_FULL_RE = r"^([A-Z]{1,2}[0-9][A-Z0-9]?)([0-9][A-Z]{2})$"
POSTCODE_DISTRICT_RE = r"^[A-Z]{1,2}[0-9][A-Z0-9]?$"

# Street-type abbreviations expanded in addresses, so "12 Some Rd" and "12 Some Road" agree.
# ("St" is left alone: "St Martin's Road" is a saint, not a street.)
_ADDRESS_ABBREVIATIONS = {
    "rd": "road", "ave": "avenue", "av": "avenue", "cl": "close", "cres": "crescent", "cresc": "crescent",
    "dr": "drive", "ln": "lane", "gdns": "gardens", "ct": "court", "sq": "square", "pl": "place",
    "gr": "grove", "pk": "park", "tce": "terrace", "wy": "way", "hse": "house",
}

DATE_FORMATS = ("%Y-%m-%d", "%d/%m/%Y", "%d-%m-%Y", "%Y%m%d", "%d.%m.%Y", "%Y/%m/%d")


# Scripts written without spaces between names: each of their letters is a syllable, made a word of its own
# ("欧阳芳" -> "ou yang fang"), so that a family name written before the given name is still found as a name.
_SYLLABLE_LETTERS = ("CJK UNIFIED IDEOGRAPH", "CJK COMPATIBILITY IDEOGRAPH", "HANGUL SYLLABLE", "HIRAGANA",
                     "KATAKANA")


@cache
def _letter_in_ascii(ch: str) -> str:
    """A letter or digit that accent folding leaves outside ASCII in ASCII letters ("Ж" -> "Zh", "ħ" -> "h",
    "王" -> " Wang "); any other character (accented Latin letters, symbols, punctuation) as it is."""
    if ch.isascii() or ch in _FOLD_FROM or unicodedata.category(ch)[0] not in "LN":
        return ch
    if "".join(c for c in unicodedata.normalize("NFKD", ch) if not unicodedata.combining(c)).isascii():
        return ch  # "é", "ﬁ": folded below as they always were (tokens made before must not change)
    latin = "".join(c for c in anyascii(ch) if c.isalnum())  # "ь" -> "'" leaves nothing
    return f" {latin} " if unicodedata.name(ch, "").startswith(_SYLLABLE_LETTERS) else latin


def transliterate(text: str) -> str:
    """Letters of other scripts in ASCII letters ("Ольга" -> "Olga"), so that a name an agency wrote in its own
    script gets tokens and is found by the leak scan; Latin text is left to `fold_text`."""
    return text if text.isascii() else "".join(_letter_in_ascii(ch) for ch in text)


def _transliterate_series(s: pl.Series) -> pl.Series:
    # only the distinct values holding a character outside ASCII go through Python (a few in a million), written
    # back by `replace`: with Series.scatter, polars 2.1's eager group-by n_unique()/unique() counted the equal
    # long strings written as different (performance-history.md, session 21)
    foreign = s.filter(s.str.contains(r"[^\x00-\x7F]").fill_null(False)).unique()
    if foreign.len() == 0:
        return s
    return s.replace(foreign, pl.Series([transliterate(v) for v in foreign], dtype=pl.String))


def fold_text(e: pl.Expr) -> pl.Expr:
    """Lower case with other scripts transliterated and accents and ligatures folded to ASCII letters ("Zoë" ->
    "zoe", "Æsir" -> "aesir", "Ольга" -> "olga")."""
    return (
        e.map_batches(_transliterate_series, return_dtype=pl.String, is_elementwise=True)
        .str.normalize("NFKD")
        .str.replace_all(r"\p{M}", "")
        .str.to_lowercase()
        .str.replace_many(_FOLD_FROM, _FOLD_TO)
    )


def _null_if_empty(e: pl.Expr) -> pl.Expr:
    return pl.when(e.str.len_chars() > 0).then(e).otherwise(None)


def normalise_name(e: pl.Expr) -> pl.Expr:
    """A name as lower-case ASCII words separated by single spaces.

    Apostrophes vanish ("O'Brien" -> "obrien"), hyphens, dots and other
    punctuation become word breaks ("Smith-Jones" -> "smith jones"), digits and
    anything outside a-z are dropped. Empty results are null.
    """
    e = fold_text(e).str.replace_all(r"['’‘`´]", "").str.replace_all(r"[^a-z]+", " ").str.strip_chars()
    return _null_if_empty(e)


def compact_name(e: pl.Expr) -> pl.Expr:
    """A normalised name without its spaces, the form that is tokenised ("Smith-Jones" == "Smith Jones")."""
    return _null_if_empty(normalise_name(e).str.replace_all(" ", "", literal=True))


def first_name_word(e: pl.Expr) -> pl.Expr:
    """The first word of a normalised name ("Mary-Ann" -> "mary"): the first given name."""
    return normalise_name(e).str.split(" ").list.first()


def normalise_postcode(e: pl.Expr) -> pl.Expr:
    """A UK postcode in its canonical form "SS16 4AB"; a district alone ("ss16") as "SS16"; otherwise null."""
    compact = e.str.to_uppercase().str.replace_all(r"[^A-Z0-9]", "")
    full = compact.str.replace(POSTCODE_FULL_RE, "$1 $2")
    return (
        pl.when(compact.str.contains(POSTCODE_FULL_RE))
        .then(full)
        .when(compact.str.contains(POSTCODE_DISTRICT_RE))
        .then(compact)
        .otherwise(None)
    )


def postcode_is_full(normalised: pl.Expr) -> pl.Expr:
    return normalised.str.contains(" ", literal=True)


def postcode_district(normalised: pl.Expr) -> pl.Expr:
    """The outward code ("SS16 4AB" -> "SS16", "SS16" -> "SS16") of a normalised postcode."""
    return normalised.str.split(" ").list.first()


def normalise_address(e: pl.Expr) -> pl.Expr:
    """An address as lower-case ASCII words: punctuation removed, street-type abbreviations expanded,
    a trailing postcode removed ("12, Some Rd., BASILDON SS16 4AB" -> "12 some road basildon")."""
    e = fold_text(e).str.replace_all(r"['’‘`]", "").str.replace_all(r"[^a-z0-9]+", " ").str.strip_chars()
    e = e.str.replace(r"\s*\b[a-z]{1,2}[0-9][a-z0-9]? ?[0-9][a-z]{2}$", "")
    e = _expand_abbreviations(e)
    return _null_if_empty(e.str.strip_chars())


def _expand_abbreviations(e: pl.Expr) -> pl.Expr:
    words = e.str.split(" ")
    expanded = words.list.eval(pl.element().replace(_ADDRESS_ABBREVIATIONS))
    return expanded.list.join(" ")


def address_without_town(e: pl.Expr) -> pl.Expr:
    """The normalised address less its last comma-separated part, the town, when it has two or more parts
    ("Flat 3, 12 Some Rd, Basildon" -> "flat 3 12 some road"), so that sources which add or omit the town agree."""
    parts = e.str.split(",")
    head = pl.when(parts.list.len() > 1).then(parts.list.slice(0, parts.list.len() - 1).list.join(" ")).otherwise(e)
    return normalise_address(head)


def normalise_digits(e: pl.Expr) -> pl.Expr:
    """Digits only ("943 476 5919" -> "9434765919"); null when none are left."""
    return _null_if_empty(e.cast(pl.String).str.replace_all(r"[^0-9]", ""))


def normalise_uprn(e: pl.Expr) -> pl.Expr:
    """A UPRN as digits without leading zeros."""
    digits = normalise_digits(e)
    return _null_if_empty(digits.str.strip_chars_start("0"))


def normalise_code(e: pl.Expr) -> pl.Expr:
    """An alphanumeric reference (UPN and the like) in upper case without spaces or punctuation."""
    return _null_if_empty(fold_text(e.cast(pl.String)).str.to_uppercase().str.replace_all(r"[^A-Z0-9]", ""))


def parse_date(e: pl.Expr, dtype: pl.DataType) -> pl.Expr:
    """A date from a Date, Datetime or String column (ISO, dd/mm/yyyy, dd-mm-yyyy, yyyymmdd, dd.mm.yyyy)."""
    if dtype == pl.Date:
        return e
    if isinstance(dtype, pl.Datetime):
        return e.dt.date()
    text = e.cast(pl.String).str.strip_chars()
    return pl.coalesce([text.str.strptime(pl.Date, fmt, strict=False) for fmt in DATE_FORMATS])


def normalise_value(fn: Callable[[pl.Expr], pl.Expr], value: str | None) -> str | None:
    """Apply one of the expression builders above to a single value (tests, ad-hoc checks)."""
    return pl.select(fn(pl.lit(value, dtype=pl.String))).item()
