"""Days as int32 since 1970-01-01, months as indexes into the world's month list."""

from __future__ import annotations

from datetime import date

import numpy as np

from ed_pipeline.settings import month_end, month_start

DAYS_PER_YEAR = 365.2425
EPOCH = date(1970, 1, 1)


def day_of(d: date) -> int:
    return (d - EPOCH).days


def years(y: float | np.ndarray) -> np.ndarray:
    """A number of years as whole days."""
    return np.round(np.asarray(y) * DAYS_PER_YEAR).astype(np.int64)


def ymd(days: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    d = np.asarray(days, dtype="int64").astype("datetime64[D]")
    y = d.astype("datetime64[Y]").astype(np.int64) + 1970
    m = d.astype("datetime64[M]").astype(np.int64) % 12 + 1
    dd = (d - d.astype("datetime64[M]").astype("datetime64[D]")).astype(np.int64) + 1
    return y, m, dd


def days_from_ymd(y: np.ndarray, m: np.ndarray, d: np.ndarray) -> np.ndarray:
    months = (np.asarray(y, dtype=np.int64) - 1970) * 12 + np.asarray(m, dtype=np.int64) - 1
    return months.astype("datetime64[M]").astype("datetime64[D]").astype(np.int64) + np.asarray(d) - 1


class Calendar:
    """The world's months: month index <-> first day, and the month a day falls in."""

    def __init__(self, months: list[str]):
        self.months = months
        self.starts = np.array([day_of(month_start(m)) for m in months], dtype=np.int64)
        self.start_day = int(self.starts[0])
        self.end_day = day_of(month_end(months[-1])) + 1  # exclusive
        self.years = (self.end_day - self.start_day) / DAYS_PER_YEAR

    def month_of(self, days: np.ndarray) -> np.ndarray:
        """Month index of each day (days before the first month give -1)."""
        return np.searchsorted(self.starts, np.asarray(days), side="right") - 1

    def month_end_day(self, month_idx: np.ndarray) -> np.ndarray:
        """The last day of each month index."""
        nxt = np.append(self.starts[1:], self.end_day)
        return nxt[np.asarray(month_idx)] - 1
