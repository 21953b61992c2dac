"""The monthly league table on a 2×2 block: shrinkage toward the level's average worked by hand."""
from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import beta

from gridmap.league import Prior, closure_prior, league

from .test_hotspots import squares

INCIDENTS = {"r0c0": 20, "r0c1": 10, "r1c0": 2, "r1c1": 12}
CLOSED = {"r0c0": 18, "r0c1": 5, "r1c0": 2, "r1c1": 6}


def block():
    layer = squares(2)
    layer.units["properties"] = [{"households": 200}, {"户数": "50"}, {}, {"households": "n/a"}]
    return layer


def test_closure_rates_shrink_toward_the_levels_average_and_small_units_are_not_ranked():
    # the level closed 31 of 44; the units' rates 0.9, 0.5, 1.0, 0.5 vary (population variance
    # 0.051875) more than binomial noise would make them (the mean of m(1-m)/n over the units)
    m = 31 / 44
    noise = (m * (1 - m) / 20 + m * (1 - m) / 10 + m * (1 - m) / 2 + m * (1 - m) / 12) / 4
    strength = m * (1 - m) / (0.051875 - noise) - 1                       # 14.18…
    assert closure_prior(*(np.array(list(d.values()), dtype=float) for d in (INCIDENTS, CLOSED))) == Prior(
        pytest.approx(m), pytest.approx(strength))
    rows = {r.code: r for r in league(block(), INCIDENTS, CLOSED)}
    shrunk = {code: (CLOSED[code] + m * strength) / (INCIDENTS[code] + strength) for code in INCIDENTS}
    for code, row in rows.items():
        assert row.closure_shrunk == pytest.approx(shrunk[code], rel=1e-12)
        a, b = CLOSED[code] + m * strength, INCIDENTS[code] - CLOSED[code] + (1 - m) * strength
        assert (row.closure_low, row.closure_high) == pytest.approx(tuple(beta.ppf([0.05, 0.95], a, b)), rel=1e-9)
    # r1c0 closed both of its two: 100 %, shrunk to 0.74, and with fewer than 10 incidents not ranked
    assert [(r.code, r.rank) for r in league(block(), INCIDENTS, CLOSED)] == [
        ("r0c0", 1), ("r0c1", 2), ("r1c1", 3), ("r1c0", None)]
    assert rows["r1c0"].closure_rate == 1.0 and rows["r1c0"].closure_shrunk < rows["r0c0"].closure_shrunk
    assert [rows[c].per_1000_households for c in ("r0c0", "r0c1", "r1c0", "r1c1")] == [100.0, 200.0, None, None]
    assert [rows[c].per_km2 for c in ("r0c0", "r0c1", "r1c0", "r1c1")] == pytest.approx([20, 10, 2, 12], rel=1e-3)


def test_change_since_last_month():
    previous = ({"r0c0": 10, "r0c1": 10, "r1c1": 10}, {"r0c0": 5, "r0c1": 9, "r1c1": 7})
    rows = {r.code: r for r in league(block(), INCIDENTS, CLOSED, previous=previous)}
    assert {c: (r.previous_rank, r.rank, r.change) for c, r in rows.items()} == {
        "r0c0": (3, 1, 2), "r0c1": (1, 2, -1), "r1c1": (2, 3, -1), "r1c0": (None, None, None)}


def test_no_incidents_no_rates_and_a_level_that_closed_everything():
    rows = league(block(), {}, {})
    assert {(r.rank, r.closure_rate, r.closure_shrunk) for r in rows} == {(None, None, None)}
    assert closure_prior(np.array([10.0, 4.0]), np.array([10.0, 4.0])) == Prior(1.0, 14.0)


def test_a_level_that_closed_nothing_has_its_intervals_at_zero():
    rows = league(block(), {"r0c0": 12, "r0c1": 10}, {})
    assert {(r.closure_shrunk, r.closure_low, r.closure_high) for r in rows if r.incidents} == {(0.0, 0.0, 0.0)}


def test_on_time_and_satisfaction_are_shrunk_the_same_way_with_their_intervals():
    from gridmap.performance import UnitPerformance

    def figures(timed: int, on_time: int, rated: int, satisfied: int) -> UnitPerformance:
        return UnitPerformance(code="", name="", incidents=0, accepted=0, closed=0, passed_on=0, not_fixed=0,
                               closure_rate=None, timed=timed, on_time=on_time,
                               on_time_rate=on_time / timed if timed else None, median_hours=None, overdue=0,
                               rated=rated, satisfied=satisfied,
                               satisfaction_rate=satisfied / rated if rated else None, feedback_rate=None)
    given = {"r0c0": figures(18, 15, 9, 8), "r0c1": figures(5, 1, 0, 0), "r1c0": figures(2, 2, 2, 1),
             "r1c1": figures(6, 3, 4, 2)}
    rows = {r.code: r for r in league(block(), INCIDENTS, CLOSED, figures=given)}
    timed = np.array([18, 5, 2, 6], dtype=float)
    on_time = np.array([15, 1, 2, 3], dtype=float)
    prior = closure_prior(timed, on_time)                 # the same empirical Bayes, on the on-time counts
    a, b = prior.alpha + 15, prior.beta + 18 - 15
    assert (rows["r0c0"].on_time_rate, rows["r0c0"].on_time_shrunk) == (15 / 18, pytest.approx(a / (a + b)))
    assert rows["r0c0"].on_time_low == pytest.approx(beta.ppf(0.05, a, b))
    assert rows["r0c0"].on_time_high == pytest.approx(beta.ppf(0.95, a, b))
    assert rows["r0c1"].satisfaction_shrunk is None and rows["r0c1"].satisfaction_rate is None   # nothing rated
    assert rows["r1c0"].on_time_low < rows["r1c0"].on_time_shrunk < 1.0 == rows["r1c0"].on_time_rate
