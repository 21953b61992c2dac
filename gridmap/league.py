"""The monthly league table (月评比): the units of a level ranked by how they close their incidents,
fair to small units.

A unit with two incidents, both closed, has a closure rate of 100 %; ranking it above a unit
that closed 95 of 100 rewards luck.  So the table ranks by the closure rate *shrunk toward the
level's average* (empirical Bayes, beta-binomial): each unit's rate is the mean of a beta
posterior whose prior is the level's average with a strength fitted to how much units really
differ (method of moments), so a unit with few incidents sits near the average and one with
many keeps its own rate; the 90 % credible interval says how sure the table is.  A unit with
fewer than :data:`MIN_SAMPLE` incidents is listed and not ranked.  Beside it: incidents, per
1,000 households (where the boundary file gives households: 户数) and per km², and the rank
last month.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Mapping

import numpy as np

from .boundaries import staff_of
from .layer import Layer, find_field
from .performance import UnitPerformance
from .rankings import counts_in_order

#: The fewest incidents a unit needs in the month to be ranked.
MIN_SAMPLE = 10
#: The credible interval shown with each shrunk rate.
CREDIBLE = 0.90
HOUSEHOLD_FIELDS = ("households", "户数", "household", "住户数")


@dataclass(frozen=True)
class LeagueRow:
    rank: int | None                     # None: fewer than MIN_SAMPLE incidents, not ranked
    code: str
    name: str
    staff: str
    incidents: int
    closed: int
    per_1000_households: float | None    # None: the file gives no households
    per_km2: float
    closure_rate: float | None           # closed / incidents; None without incidents
    closure_shrunk: float | None         # toward the level's average (the posterior mean)
    closure_low: float | None
    closure_high: float | None
    previous_rank: int | None = None
    change: int | None = None            # places gained since last month (negative: lost)
    # from the lifecycle (docs/statistics.md), as they are: not shrunk, not ranked on
    on_time_rate: float | None = None
    median_hours: float | None = None    # from report to close
    satisfaction_rate: float | None = None
    overdue: int = 0
    # those two shrunk toward the level's average with their 90 % interval, as the closure rate is
    on_time_shrunk: float | None = None
    on_time_low: float | None = None
    on_time_high: float | None = None
    satisfaction_shrunk: float | None = None
    satisfaction_low: float | None = None
    satisfaction_high: float | None = None

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass(frozen=True)
class Prior:
    """The level's average closure rate and how many incidents' worth of weight it carries."""

    mean: float
    strength: float

    @property
    def alpha(self) -> float:
        return self.mean * self.strength

    @property
    def beta(self) -> float:
        return (1 - self.mean) * self.strength


def closure_prior(incidents: np.ndarray, closed: np.ndarray) -> Prior | None:
    """The beta prior of the units' closure rates: mean, the level's rate (all closed / all
    incidents); strength m(1-m)/s² - 1 (method of moments), with s² the variance of the units'
    rates less their binomial noise (units with incidents, each counted once).  When the rates
    vary no more than noise would make them, the strength is capped at the level's incidents (all
    units as the average).  None without incidents."""
    held = incidents > 0
    total = float(incidents[held].sum())
    if total == 0:
        return None
    mean = float(closed[held].sum()) / total
    if mean in (0.0, 1.0):
        return Prior(mean, total)
    rates = closed[held] / incidents[held]
    between = float(np.var(rates)) - float(np.mean(mean * (1 - mean) / incidents[held]))
    strength = mean * (1 - mean) / between - 1 if between > 0 else math.inf
    return Prior(mean, float(min(max(strength, 1.0), total)))


def league(layer: Layer, incidents: Mapping[str, int], closed: Mapping[str, int], *,
           previous: tuple[Mapping[str, int], Mapping[str, int]] | None = None,
           min_sample: int = MIN_SAMPLE, figures: Mapping[str, UnitPerformance] | None = None,
           shown: Mapping[str, int] | None = None) -> list[LeagueRow]:
    """The table for one month: ``incidents`` and ``closed`` per unit code; ``previous`` the same
    for the month before (for each unit's rank then); ``figures`` each unit's lifecycle figures
    for the on-time rate, time to close, satisfaction and overdue columns; ``shown`` the incidents
    the table shows (and counts per household and km²) when they are not the closure rate's
    denominator ``incidents`` (the accepted ones, docs/statistics.md).  Ranked units first, best first."""
    units = layer.units
    n = counts_in_order(layer, incidents).astype(float)
    done = counts_in_order(layer, closed).astype(float)
    prior = closure_prior(n, done)
    ranks = _ranks(n, done, prior, min_sample)
    before: list[int | None] = [None] * len(n)
    if previous is not None:
        prev_n, prev_done = (counts_in_order(layer, c).astype(float) for c in previous)
        before = _ranks(prev_n, prev_done, closure_prior(prev_n, prev_done), min_sample)
    households = households_of(units["properties"])
    area_km2 = units["area_m2"].to_numpy(dtype=float) / 1e6
    closure = _posteriors(n, done)
    codes = units["code"].tolist()
    # the on-time and satisfaction rates shrunk the same way, each toward its own level average
    lifecycle = {name: _posteriors(*(np.array([getattr((figures or {}).get(c), k, 0) or 0 for c in codes],
                                              dtype=float) for k in keys))
                 for name, keys in (("on_time", ("timed", "on_time")), ("satisfaction", ("rated", "satisfied")))}
    rows = []
    names, properties = units["name"].tolist(), units["properties"].tolist()
    total = counts_in_order(layer, shown).astype(float) if shown is not None else n
    for i, code in enumerate(codes):
        now, then = ranks[i], before[i]
        shrunk, low, high = closure[i]
        extra: dict[str, Any] = {f"{name}_{part}": value for name, found in lifecycle.items()
                 for part, value in zip(("shrunk", "low", "high"), found[i])}
        rows.append(LeagueRow(
            rank=now, code=code, name=names[i], staff=staff_of(properties[i])["staff"] or "",
            incidents=int(total[i]), closed=int(done[i]),
            per_1000_households=float(1000 * total[i] / households[i]) if households[i] else None,
            per_km2=float(total[i] / area_km2[i]) if area_km2[i] > 0 else math.nan,
            closure_rate=float(done[i] / n[i]) if n[i] else None, closure_shrunk=shrunk, closure_low=low,
            closure_high=high,
            previous_rank=then, change=then - now if now is not None and then is not None else None,
            **_lifecycle((figures or {}).get(code)), **extra))
    return sorted(rows, key=lambda r: (r.rank is None, r.rank or 0, -r.incidents, r.code))


def _posteriors(n: np.ndarray, done: np.ndarray) -> list[tuple[float | None, float | None, float | None]]:
    """Each unit's rate ``done / n`` shrunk toward the level's (the posterior mean) and its
    credible interval, all units at once; None for a unit with nothing to rate."""
    from scipy.stats import beta  # where used, like esda (gridmap.hotspots): 0.7 s to import
    prior = closure_prior(n, done)
    rated = n > 0 if prior is not None else np.zeros(len(n), dtype=bool)
    shrunk, low, high = (np.full(len(n), np.nan) for _ in range(3))
    if rated.any() and prior is not None:
        a, b = prior.alpha + done[rated], prior.beta + n[rated] - done[rated]
        shrunk[rated] = a / (a + b)
        # a level whose every unit did none (or all): the posterior sits on 0 (or 1)
        low[rated] = np.where(a == 0, 0.0, np.where(b == 0, 1.0, beta.ppf((1 - CREDIBLE) / 2, a, b)))
        high[rated] = np.where(a == 0, 0.0, np.where(b == 0, 1.0, beta.ppf((1 + CREDIBLE) / 2, a, b)))
    return [(float(shrunk[i]), float(low[i]), float(high[i])) if rated[i] else (None, None, None)
            for i in range(len(n))]


def _lifecycle(figures: UnitPerformance | None) -> dict[str, Any]:
    if figures is None:
        return {}
    return {"on_time_rate": figures.on_time_rate, "median_hours": figures.median_hours,
            "satisfaction_rate": figures.satisfaction_rate, "overdue": figures.overdue}


def _ranks(n: np.ndarray, done: np.ndarray, prior: Prior | None, min_sample: int) -> list[int | None]:
    """1 for the best shrunk closure rate among units with at least ``min_sample`` incidents (ties:
    more incidents first, then code order as given)."""
    if prior is None:
        return [None] * len(n)
    shrunk = (prior.alpha + done) / (prior.alpha + prior.beta + n)
    ranked = [i for i in np.lexsort((-n, -shrunk)) if n[i] >= min_sample]
    ranks: list[int | None] = [None] * len(n)
    for place, i in enumerate(ranked, start=1):
        ranks[i] = place
    return ranks


def households_of(properties: Any) -> list[float | None]:
    """Households per unit, from whichever property names the file used (absent, blank or not a
    positive number: None)."""
    found = []
    for props in properties:
        key = find_field(props.keys(), HOUSEHOLD_FIELDS)
        try:
            value = float(props[key]) if key else math.nan
        except (TypeError, ValueError):
            value = math.nan
        found.append(value if math.isfinite(value) and value > 0 else None)
    return found
