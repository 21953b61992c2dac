"""The figures of docs/statistics.md, worked out by hand on a handful of incidents."""
from __future__ import annotations

from datetime import datetime

import numpy as np

from gridmap.lifecycle import Deadlines
from gridmap.performance import UnitPerformance, performance

from .test_hotspots import squares

NaT = np.datetime64("NaT")


def t(day: int, hour: int) -> np.datetime64:
    return np.datetime64(datetime(2026, 3, day, hour), "us")


#: (unit, category, status, resolution, rating, reported, closed)
ROWS = [
    ("r0c0", "clutter", "closed", "fixed", None, t(1, 8), t(1, 20)),        # 12 h, on time (72 h)
    ("r0c0", "clutter", "rated", "fixed", 5, t(1, 8), t(5, 8)),             # 96 h: late; satisfied
    ("r0c0", "clutter", "closed", "not_fixed", None, t(2, 8), t(2, 10)),    # 2 h: on time, not fixed
    ("r0c0", "litter", "dispatched", None, None, t(1, 8), NaT),             # due 2 March 8h (24 h): overdue
    ("r0c0", "litter", "rejected", None, None, t(1, 8), NaT),               # not accepted
    ("r0c0", "clutter", "closed", "not_ours", None, t(1, 8), t(3, 8)),      # 48 h: passed on
    ("r0c0", "clutter", "closed", None, None, t(1, 8), NaT),                # imported closed: fixed, no time
    ("r0c1", "litter", "reported", None, None, t(9, 20), NaT),              # due 10 March 20h: not yet
    (None, "clutter", "closed", "fixed", None, t(1, 8), t(1, 9)),           # outside every unit
]


def columns() -> dict[str, np.ndarray]:
    names = ("unit", "category", "status", "resolution", "rating", "reported_at", "closed_at")
    data = {name: np.array([row[i] for row in ROWS], dtype=object) for i, name in enumerate(names)}
    data["rating"] = np.array([np.nan if r[4] is None else r[4] for r in ROWS], dtype=float)
    data["reported_at"] = np.array([r[5] for r in ROWS], dtype="datetime64[us]")
    data["closed_at"] = np.array([r[6] for r in ROWS], dtype="datetime64[us]")
    return data


def test_each_figure_by_hand():
    rows = performance(squares(2), columns(), Deadlines.parse("litter=24"), now=datetime(2026, 3, 10, 0, 0))
    assert [r.code for r in rows] == ["r0c0", "r0c1", "r1c0", "r1c1"]
    assert rows[0] == UnitPerformance(
        code="r0c0", name="r0c0", incidents=7, accepted=6, closed=3, passed_on=1, not_fixed=1,
        closure_rate=3 / 5, timed=4, on_time=3, on_time_rate=3 / 4, median_hours=30.0, overdue=1, rated=1,
        satisfied=1, satisfaction_rate=1.0, feedback_rate=1 / 5)
    assert rows[1] == UnitPerformance(
        code="r0c1", name="r0c1", incidents=1, accepted=1, closed=0, passed_on=0, not_fixed=0, closure_rate=0.0,
        timed=0, on_time=0, on_time_rate=None, median_hours=None, overdue=0, rated=0, satisfied=0,
        satisfaction_rate=None, feedback_rate=None)
    assert rows[2].incidents == 0 and rows[2].closure_rate is None


def test_nothing_matching_gives_empty_figures():
    empty = {name: values[:0] for name, values in columns().items()}
    rows = performance(squares(1), empty, Deadlines(), now=datetime(2026, 3, 10))
    assert [(r.incidents, r.closure_rate, r.median_hours) for r in rows] == [(0, None, None)]
