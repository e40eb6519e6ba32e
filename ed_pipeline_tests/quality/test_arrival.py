"""The month each raw row arrived with: a month's first delivery, its rows again, and rows new or changed later; and
which months a source delivered, rows or none."""

from __future__ import annotations

import polars as pl

from ed_pipeline.quality.arrival import ARRIVED_MONTH, delivery_month, landed_extracts, late_months, stamp_arrival

CONTENT = ["id", "name", "postcode"]


def _rows(*rows: tuple) -> pl.DataFrame:
    return pl.DataFrame(rows, schema={"id": pl.String, "name": pl.String, "postcode": pl.String,
                                      "extract_month": pl.String, ARRIVED_MONTH: pl.String}, orient="row")


def test_rows_keep_the_arrival_they_had_and_new_or_changed_rows_of_a_month_held_arrive_with_the_delivery():
    held = _rows(("1", "Ann", None, "2016-03", "2016-03"),  # a blank cell: the same content when sent again
                 ("2", "Bob", "SS14", "2016-03", "2016-03"),
                 ("3", "Cy", "SS15", "2016-03", "2017-01"),  # brought by an earlier re-send
                 ("4", "Di", "SS16", "2016-03", None))  # held before arrivals were kept: its extract month
    now = _rows(("1", "Ann", None, "2016-03", "2016-03"),
                ("2", "Bob", "SS13", "2016-03", "2016-03"),  # changed
                ("5", "Eve", "SS16", "2016-03", "2016-03"),  # quarantined the first time, now corrected
                ("3", "Cy", "SS15", "2016-03", "2016-03"),
                ("4", "Di", "SS16", "2016-03", "2016-03"),
                ("9", "Fay", "SS17", "2016-04", "2016-04"))  # a month not held: its first delivery
    stamped = stamp_arrival(now, held, CONTENT, "2017-08")
    assert stamped.columns == now.columns
    assert stamped.select("id", ARRIVED_MONTH).rows() == [
        ("1", "2016-03"), ("2", "2017-08"), ("5", "2017-08"), ("3", "2017-01"), ("4", "2016-03"), ("9", "2016-04")]
    assert stamp_arrival(stamped, stamped, CONTENT, "2018-01").equals(stamped)  # the same rows again: no change


def test_a_month_first_delivered_after_a_later_one_arrives_with_its_delivery():
    """A source that had delivered up to 2017-05 sends 2016-03 for the first time (skipped, or unreadable when it
    landed): its rows were not there when 2016-04 to 2017-05 landed, so they arrive with the delivery. A month
    sent again, or a first one that is the newest, or a refresh from nothing, is not late."""
    assert late_months(["2016-03", "2017-06"], held={"2017-06"}, newest_held="2017-05") == ["2016-03"]
    assert late_months(["2016-03", "2017-06"], held=set(), newest_held=None) == []
    assert late_months(["2017-06"], held=set(), newest_held="2017-05") == []
    now = _rows(("1", "Ann", "SS14", "2016-03", "2016-03"), ("2", "Bob", "SS15", "2017-06", "2017-06"))
    stamped = stamp_arrival(now, _rows(), CONTENT, "2017-07", late=["2016-03"])
    assert stamped.select("id", ARRIVED_MONTH).rows() == [("1", "2017-07"), ("2", "2017-06")]


def test_a_delivery_arrives_in_the_month_after_the_newest_month_landed():
    """The newest month's files land at its end: what comes after them comes in the next month at the earliest,
    and counts from the first day of the month after that, never earlier."""
    assert delivery_month(["2016-03", "2017-08", "2017-07"], ["2016-03"]) == "2017-09"
    assert delivery_month(["2017-12"], ["2017-12"]) == "2018-01"
    assert delivery_month([], ["2016-03"]) == "2016-04"
    assert delivery_month([], []) is None


def test_a_month_is_delivered_with_its_file_rows_or_none_or_with_rows_whose_file_is_gone():
    records = pl.DataFrame({"extract_month": ["2016-01", "2016-01", "2016-03"]})
    # 2016-01: read with rows; 2016-02: a file with its header alone; 2016-03: rows kept, file gone; 2016-04: nothing
    landed = landed_extracts("housing", ["2016-04", "2016-03", "2016-02", "2016-01"], {"2016-01", "2016-02"}, records)
    assert landed.rows() == [("housing", "2016-01", 2), ("housing", "2016-02", 0), ("housing", "2016-03", 1)]
