from __future__ import annotations

import datetime as dt

import polars as pl
import pytest

from ed_pipeline.privacy import normalise as nz
from ed_pipeline.privacy.normalise import normalise_value


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("Zoë", "zoe"),
        ("ZOË", "zoe"),
        ("  zoe  ", "zoe"),
        ("O'Brien", "obrien"),
        ("O’Brien", "obrien"),
        ("OBRIEN", "obrien"),
        ("Smith-Jones", "smith jones"),
        ("Smith  Jones", "smith jones"),
        ("José-María", "jose maria"),
        ("Łukasz", "lukasz"),
        ("Strauß", "strauss"),
        ("St. John", "st john"),
        ("J", "j"),
        ("J.", "j"),
        ("123", None),
        ("", None),
        (None, None),
    ],
)
def test_normalise_name(raw: str | None, expected: str | None) -> None:
    assert normalise_value(nz.normalise_name, raw) == expected


def test_compact_and_first_given_name() -> None:
    assert normalise_value(nz.compact_name, "Smith-Jones") == normalise_value(nz.compact_name, "smith jones")
    assert normalise_value(nz.compact_name, "O'Brien") == "obrien"
    assert normalise_value(nz.first_name_word, "Mary-Ann") == "mary"
    assert normalise_value(nz.first_name_word, " mary ann ") == "mary"


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("ss164ab", "SS16 4AB"),
        ("SS16 4AB", "SS16 4AB"),
        (" ss16  4ab ", "SS16 4AB"),
        ("SS16-4AB", "SS16 4AB"),
        ("cm120ab", "CM12 0AB"),
        ("EC1A 1BB", "EC1A 1BB"),
        ("M1 1AA", "M1 1AA"),
        ("SS16", "SS16"),
        ("ss16", "SS16"),
        ("not a postcode", None),
        ("", None),
    ],
)
def test_normalise_postcode(raw: str, expected: str | None) -> None:
    assert normalise_value(nz.normalise_postcode, raw) == expected


def test_postcode_district() -> None:
    df = pl.DataFrame({"p": ["SS16 4AB", "SS16", None]})
    out = df.select(nz.postcode_district(nz.normalise_postcode(pl.col("p")))).to_series().to_list()
    assert out == ["SS16", "SS16", None]


def test_normalise_address() -> None:
    a = normalise_value(nz.normalise_address, "12, Lavender Rd., BASILDON SS16 4AB")
    b = normalise_value(nz.normalise_address, "12 Lavender Road, Basildon")
    assert a == b == "12 lavender road basildon"
    assert normalise_value(nz.address_without_town, "Flat 3, 4 Honeysuckle Cl, Pitsea") == "flat 3 4 honeysuckle close"
    assert normalise_value(nz.address_without_town, "4 Honeysuckle Close") == "4 honeysuckle close"


def test_identifier_numbers() -> None:
    assert normalise_value(nz.normalise_digits, "943 476 5919") == "9434765919"
    assert normalise_value(nz.normalise_uprn, "000100012345678") == "100012345678"
    assert normalise_value(nz.normalise_code, " a123 456 789012 ") == "A123456789012"


def test_parse_date_formats() -> None:
    df = pl.DataFrame({"d": ["2014-03-05", "05/03/2014", "05-03-2014", "20140305", "05.03.2014", "nonsense"]})
    out = df.select(nz.parse_date(pl.col("d"), pl.String())).to_series().to_list()
    assert out == [dt.date(2014, 3, 5)] * 5 + [None]


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("Ольга Иванова", "olga ivanova"),  # the soft sign leaves no apostrophe behind
        ("Αλέξανδρος", "alexandros"),
        ("王芳", "wang fang"),  # written without spaces: each syllable a word ("欧阳芳" is Ouyang Fang)
        ("Nguyễn Thị", "nguyen thi"),
        ("Ħal-Farrug", "hal farrug"),  # a Latin letter NFKD leaves whole
        ("Zoë × 2", "zoe"),  # symbols are still word breaks, not letters
    ],
)
def test_names_in_other_scripts_are_written_in_ascii_letters(raw: str, expected: str) -> None:
    """An agency that records a name in its own script must not leave the person without name tokens (nothing
    to link on) nor make the name invisible to the leak scan, which matches in the same folded form."""
    assert normalise_value(nz.normalise_name, raw) == expected


def test_a_name_in_its_own_script_and_in_latin_letters_agree() -> None:
    assert normalise_value(nz.compact_name, "Ольга") == normalise_value(nz.compact_name, "Olga")
    assert normalise_value(nz.compact_name, "欧阳") == "ouyang"
    assert normalise_value(nz.normalise_address, "12 Улица Ленина") == "12 ulitsa lenina"


def test_names_written_in_ascii_letters_count_as_they_read_when_grouped() -> None:
    """The transliterated names, equal and longer than 12 bytes, in a column that held no such string: an eager
    group-by counts them as they read. (Written in with Series.scatter, polars 2.1 counted the three as three.)"""
    names = nz._transliterate_series(pl.Series(["Щщщщщ", "Щщщщщ", "Щщщщщ", "Ann"]))
    assert names.to_list() == ["Shchshchshchshchshch"] * 3 + ["Ann"]
    grouped = pl.DataFrame({"everyone": [1] * 4, "name": names}).group_by("everyone").agg(
        pl.col("name").n_unique().alias("names"), pl.col("name").unique().len().alias("u"))
    assert grouped.rows() == [(1, 2, 2)]
