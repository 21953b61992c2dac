"""How well each unit's incidents were handled: the figures grid offices publish (docs/statistics.md).

Over the matching incidents of each unit of a level, from the lifecycle (:mod:`gridmap.lifecycle`):

* **incidents**: every matching report; **accepted** (受理): all but the rejected and the
  duplicates — a report nobody had to handle does not count for or against a unit;
* **办结率 closure rate** = closed (closed or rated) *and fixed* ÷ accepted.  A close says how it
  ended; one closed as not fixed does not count, one closed as not ours to fix is counted apart
  (``passed_on``) and left out of both sides, so passing work on neither helps nor hurts.  A
  close with no resolution (imported from a file that only says "closed") counts as fixed: the
  source system called it 办结;
* **按时办结率 on-time rate** = closed by the deadline ÷ closed with a known close time (the case's
  own deadline where its file gave one, else the category's hours from the report,
  :class:`~gridmap.lifecycle.Deadlines`);
* **median hours to close**, over the closes with a known time;
* **overdue**: still open past the deadline (at ``now``);
* **满意率 satisfaction rate** = rated 4 or 5 ÷ rated; **反馈率 feedback rate** = rated ÷ closed.

A rate with nothing to divide by is None (not 0): a unit with no closed incident has no on-time
rate.  Pure arithmetic over arrays (one row per incident, as the store gives them).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any, Mapping

import numpy as np
import pandas as pd

from .incidents import Status
from .layer import Layer
from .lifecycle import Deadlines, Resolution

#: A rating counted as satisfied (满意): 4 or 5 of 5.
SATISFIED_FROM = 4
_DONE = [Status.CLOSED.value, Status.RATED.value]
_OPEN = [Status.REPORTED.value, Status.DISPATCHED.value, Status.IN_PROGRESS.value]
_NOT_ACCEPTED = [Status.REJECTED.value, Status.DUPLICATE.value]


@dataclass(frozen=True)
class UnitPerformance:
    """One unit's figures (None: nothing to divide by)."""

    code: str
    name: str
    incidents: int
    accepted: int
    closed: int               # closed or rated, fixed (or without a resolution)
    passed_on: int            # closed as not ours to fix
    not_fixed: int            # closed as not fixed
    closure_rate: float | None
    timed: int                # closes with a known close time
    on_time: int
    on_time_rate: float | None
    median_hours: float | None
    overdue: int
    rated: int
    satisfied: int
    satisfaction_rate: float | None
    feedback_rate: float | None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def performance(layer: Layer, columns: Mapping[str, np.ndarray], deadlines: Deadlines,
                now: datetime) -> list[UnitPerformance]:
    """The figures of every unit of ``layer`` (in layer order) over ``columns``: one entry per
    matching incident — ``unit`` (its code under the layer's version, None when outside),
    ``category``, ``status``, ``resolution``, ``rating`` (float, NaN: none), ``reported_at``,
    ``closed_at`` and ``due_at`` (datetime64, NaT: none; a missing ``due_at`` is the category's
    hours).  Counted with ``bincount`` per unit (a million incidents in well under a second)."""
    codes = layer.units["code"].tolist()
    unit = pd.Categorical(columns["unit"], categories=codes).codes.astype(np.int64)     # -1: outside
    held = unit >= 0
    unit = unit[held]
    status = pd.Series(columns["status"][held], dtype=object)
    resolution = pd.Series(columns["resolution"][held], dtype=object)
    reported = np.asarray(columns["reported_at"][held], dtype="datetime64[us]")
    closed_at = np.asarray(columns["closed_at"][held], dtype="datetime64[us]")
    rating = np.asarray(columns["rating"][held], dtype=float)
    due = deadlines.due_array(reported, columns["category"][held],
                              columns["due_at"][held] if "due_at" in columns else None)
    done = status.isin(_DONE).to_numpy()
    timed = done & ~np.isnat(closed_at)
    rated = status.eq(Status.RATED.value).to_numpy() & ~np.isnan(rating)
    flags = {
        "incidents": np.ones(len(unit), dtype=bool),
        "accepted": ~status.isin(_NOT_ACCEPTED).to_numpy(),
        "closed": done & (resolution.isna() | resolution.eq(Resolution.FIXED.value)).to_numpy(),
        "passed_on": done & resolution.eq(Resolution.NOT_OURS.value).to_numpy(),
        "not_fixed": done & resolution.eq(Resolution.NOT_FIXED.value).to_numpy(),
        "timed": timed,
        "on_time": timed & (closed_at <= due),
        "overdue": status.isin(_OPEN).to_numpy() & (np.datetime64(now, "us") > due),
        "rated": rated,
        "satisfied": rated & (rating >= SATISFIED_FROM),
    }
    n = {name: np.bincount(unit[flag], minlength=len(codes)).tolist() for name, flag in flags.items()}
    close_hours = (closed_at[timed] - reported[timed]).astype(np.int64) / 3.6e9
    medians = pd.Series(close_hours).groupby(unit[timed]).median()
    median = np.full(len(codes), np.nan)
    median[medians.index.to_numpy(dtype=np.int64)] = medians.to_numpy()
    rows = []
    for i, (code, name) in enumerate(zip(codes, layer.units["name"].tolist())):
        closes = n["closed"][i] + n["passed_on"][i] + n["not_fixed"][i]
        rows.append(UnitPerformance(
            code=code, name=name, incidents=n["incidents"][i], accepted=n["accepted"][i], closed=n["closed"][i],
            passed_on=n["passed_on"][i], not_fixed=n["not_fixed"][i],
            closure_rate=_rate(n["closed"][i], n["accepted"][i] - n["passed_on"][i]), timed=n["timed"][i],
            on_time=n["on_time"][i], on_time_rate=_rate(n["on_time"][i], n["timed"][i]),
            median_hours=None if np.isnan(median[i]) else round(float(median[i]), 2), overdue=n["overdue"][i],
            rated=n["rated"][i], satisfied=n["satisfied"][i],
            satisfaction_rate=_rate(n["satisfied"][i], n["rated"][i]), feedback_rate=_rate(n["rated"][i], closes)))
    return rows


def _rate(part: int, whole: int) -> float | None:
    return part / whole if whole > 0 else None
