"""Disclosure control: examples, and properties of suppression over random tables (hypothesis)."""

from __future__ import annotations

import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ed_pipeline.privacy import display_suppressed, flag_column, mask_derived, suppress_counts
from ed_pipeline.privacy.disclosure import round_count

PROPERTY = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# small numbers are what matters, so draw them often; large ones too
counts = st.one_of(st.integers(0, 6), st.integers(0, 400))
groups = st.lists(st.lists(counts, min_size=1, max_size=8), min_size=1, max_size=6)


def table_of(cells: list[list[int]]) -> pl.DataFrame:
    rows = [(f"g{g}", f"g{g}c{c}", v) for g, values in enumerate(cells) for c, v in enumerate(values)]
    return pl.DataFrame(rows, schema={"group": pl.String, "cell": pl.String, "n": pl.Int64}, orient="row")


def suppressed_per_group(result: pl.DataFrame, by: list[str]) -> pl.DataFrame:
    keyed = result.with_columns(_all=pl.lit(0)) if not by else result
    return keyed.group_by(by or ["_all"]).agg(cells=pl.len(), hidden=pl.col("n_suppressed").sum())


@pytest.mark.parametrize(("value", "rounded"), [(0, 0), (5, 5), (7, 5), (8, 10), (12, 10), (13, 15), (102, 100)])
def test_rounding_to_the_nearest_five(value, rounded):
    assert round_count(value) == rounded


def test_a_hand_made_table():
    table = pl.DataFrame({"ward": ["a", "a", "a", "b", "b", "c"], "n": [3, 12, 40, 0, 7, 2]})
    result = suppress_counts(table, ["n"], group_total_by="ward")
    # a: 3 is primary, 12 the smallest other one goes too; b: nothing small; c: alone, its total is itself
    assert result["n"].to_list() == [None, None, 40, 0, 5, None]
    assert result["n_suppressed"].to_list() == [True, True, False, False, False, True]
    assert display_suppressed(result)["n"].to_list() == ["*", "*", "40", "0", "5", "*"]


def test_zero_is_published_and_complements_are_non_zero_cells_first():
    table = pl.DataFrame({"n": [0, 4, 0, 9, 6]})
    result = suppress_counts(table, ["n"])
    assert result["n"].to_list() == [0, None, 0, 10, None]


def test_forced_cells_and_derived_figures():
    table = pl.DataFrame({"lsoa": ["x", "y", "z"], "ward": ["a", "a", "a"], "children": [30, 40, 50],
                          "mean_risk": [0.1, 0.2, 0.3]})
    result = suppress_counts(table, ["children"], group_total_by="ward",
                             also_suppress={"children": pl.col("lsoa") == "z"})
    assert result["children_suppressed"].to_list() == [True, False, True]  # 30 protects the forced 50
    result = mask_derived(result, {"mean_risk": ["children"]})
    assert result["mean_risk"].to_list() == [None, 0.2, None]
    assert result["mean_risk_suppressed"].to_list() == [True, False, True]


def test_refuses_what_is_not_a_count():
    with pytest.raises(TypeError):
        suppress_counts(pl.DataFrame({"n": [1.5]}), ["n"])
    with pytest.raises(ValueError):
        suppress_counts(pl.DataFrame({"n": [-1]}), ["n"])


@PROPERTY
@given(groups)
def test_published_counts_are_never_small_and_close_to_the_truth(cells):
    table = table_of(cells)
    result = suppress_counts(table, ["n"], group_total_by="group")
    assert result.select("group", "cell").equals(table.select("group", "cell"))  # same rows, same order
    for true, shown, hidden in zip(table["n"], result["n"], result["n_suppressed"], strict=True):
        assert hidden == (shown is None)
        if hidden:
            continue
        assert not 1 <= shown <= 4
        assert shown % 5 == 0
        assert abs(shown - true) <= 2  # integers never sit on a half: remainders 0-2 down, 3-4 up
        assert (shown == 0) == (true == 0)
        if 1 <= true <= 4:
            pytest.fail("a count of 1-4 was published")


@PROPERTY
@given(groups, st.booleans())
def test_no_group_with_a_published_total_has_exactly_one_suppressed_cell(cells, with_table_total):
    by = [["group"], []] if with_table_total else ["group"]
    result = suppress_counts(table_of(cells), ["n"], group_total_by=by)
    for grouping in ([["group"], []] if with_table_total else [["group"]]):
        per_group = suppressed_per_group(result, grouping)
        assert per_group.filter((pl.col("cells") >= 2) & (pl.col("hidden") == 1)).is_empty()


@PROPERTY
@given(groups)
def test_no_suppressed_value_can_be_recovered_from_a_published_total(cells):
    # without rounding, the published total minus the published cells is exactly the sum of the hidden ones
    table = table_of(cells)
    result = suppress_counts(table, ["n"], group_total_by="group", rounding=1)
    joined = table.with_columns(shown=result["n"], hidden=result["n_suppressed"])
    for _, group in joined.group_by("group"):
        total = group["n"].sum()
        if 1 <= total <= 4:
            continue  # the total itself is not published
        difference = total - group["shown"].fill_null(0).sum()
        hidden_values = group.filter("hidden")["n"].to_list()
        if hidden_values:
            assert difference not in hidden_values, (group, difference)


@PROPERTY
@given(groups, st.sampled_from([None, "group"]))
def test_suppression_is_idempotent(cells, by):
    once = suppress_counts(table_of(cells), ["n"], group_total_by=by)
    twice = suppress_counts(once, ["n"], group_total_by=by)
    assert twice.equals(once)


@PROPERTY
@given(st.lists(st.lists(st.one_of(st.just(0), st.integers(1, 80).map(lambda k: 5 * k)), min_size=1, max_size=8),
                min_size=1, max_size=6))
def test_already_safe_tables_pass_through_unchanged(cells):
    table = table_of(cells)
    result = suppress_counts(table, ["n"], group_total_by="group")
    assert result["n"].to_list() == table["n"].to_list()
    assert not result[flag_column("n")].any()
