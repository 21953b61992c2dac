"""How well each unit's incidents were handled: the figures grid offices publish (docs/statistics.md).

Over the matching incidents of each unit of a level, from the lifecycle (:mod:`gridmap.lifecycle`):

* **incidents**: every matching report; **accepted** (受理): all but the rejected and the
  duplicates — a report nobody had to handle does not count for or against a unit;
* **办结率 closure rate** = closed (closed or rated) *and fixed* ÷ accepted.  A close says how it
  ended; one closed as not fixed does not count, one closed as not ours to fix is counted apart
  (``passed_on``) and left out of both sides, so passing work on neither helps nor hurts.  A
  close with no resolution (imported from a file that only says "closed") counts as fixed: the
  source system called it 办结;
* **按时办结率 on-time rate** = closed by the deadline ÷ closed with a known close time (the
  category's hours from the report, :class:`~gridmap.lifecycle.Deadlines`);
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
    ``category``, ``status``, ``resolution``, ``rating`` (float, NaN: none), ``reported_at`` and
    ``closed_at`` (datetime64, NaT: none)."""
    frame = pd.DataFrame({name: columns[name] for name in ("unit", "category", "status", "resolution", "rating",
                                                           "reported_at", "closed_at")})
    frame = frame[frame["unit"].notna()]
    hours = np.array([deadlines.hours.get(c, deadlines.default_hours) for c in frame["category"].tolist()], dtype=float)
    due = frame["reported_at"].to_numpy(dtype="datetime64[us]") + (hours * 3.6e9).astype("timedelta64[us]")
    closed_at = frame["closed_at"].to_numpy(dtype="datetime64[us]")
    done = frame["status"].isin(_DONE).to_numpy()
    resolution = frame["resolution"].to_numpy(dtype=object)
    timed = done & ~np.isnat(closed_at)
    close_hours = (closed_at - frame["reported_at"].to_numpy(dtype="datetime64[us]")).astype(float) / 3.6e9
    flags = pd.DataFrame({
        "unit": frame["unit"].to_numpy(dtype=object),
        "incidents": 1,
        "accepted": ~frame["status"].isin(_NOT_ACCEPTED).to_numpy(),
        "closed": done & ((resolution == Resolution.FIXED.value) | pd.isna(resolution)),
        "passed_on": done & (resolution == Resolution.NOT_OURS.value),
        "not_fixed": done & (resolution == Resolution.NOT_FIXED.value),
        "timed": timed,
        "on_time": timed & (closed_at <= due),
        "overdue": frame["status"].isin(_OPEN).to_numpy() & (np.datetime64(now, "us") > due),
        "rated": frame["status"].eq(Status.RATED.value).to_numpy() & frame["rating"].notna().to_numpy(),
        "satisfied": frame["rating"].to_numpy(dtype=float) >= SATISFIED_FROM,
        "hours": np.where(timed, close_hours, np.nan),
    })
    sums = flags.drop(columns="hours").groupby("unit").sum()
    medians = flags.groupby("unit")["hours"].median()
    rows = []
    for code, name in zip(layer.units["code"].tolist(), layer.units["name"].tolist()):
        n = sums.loc[code].astype(int).to_dict() if code in sums.index else dict.fromkeys(sums.columns, 0)
        judged = n["accepted"] - n["passed_on"]
        median = medians.get(code, np.nan)
        rows.append(UnitPerformance(
            code=code, name=name, incidents=n["incidents"], accepted=n["accepted"], closed=n["closed"],
            passed_on=n["passed_on"], not_fixed=n["not_fixed"], closure_rate=_rate(n["closed"], judged),
            timed=n["timed"], on_time=n["on_time"], on_time_rate=_rate(n["on_time"], n["timed"]),
            median_hours=None if pd.isna(median) else round(float(median), 2), overdue=n["overdue"],
            rated=n["rated"], satisfied=n["satisfied"], satisfaction_rate=_rate(n["satisfied"], n["rated"]),
            feedback_rate=_rate(n["rated"], n["closed"] + n["passed_on"] + n["not_fixed"])))
    return rows


def _rate(part: int, whole: int) -> float | None:
    return part / whole if whole > 0 else None
