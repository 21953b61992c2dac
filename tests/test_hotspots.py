"""Gi* hotspots on tiny blocks of squares: the numbers are esda's own (computed here directly,
with libpysal's classic queen weights), and one z-score is worked out by hand."""
from __future__ import annotations

import math
import warnings

import esda
import geopandas as gpd
import libpysal
import numpy as np
import pytest
import scipy.stats
from shapely.geometry import box

from gridmap.errors import InvalidInput
from gridmap.hotspots import HotspotOptions, SpotClass, contiguity, emerging_hotspots, gi_star, hotspots, trends_of
from gridmap.layer import Layer
from gridmap.levels import Level


def squares(n: int, *, sizes: list[float] | None = None) -> Layer:
    """An n×n block of 0.01° squares, codes r{row}c{col} row by row from the south-west."""
    codes = [f"r{r}c{c}" for r in range(n) for c in range(n)]
    shapes = [box(c * 0.01, r * 0.01, (c + 1) * 0.01, (r + 1) * 0.01) for r in range(n) for c in range(n)]
    units = gpd.GeoDataFrame({"code": codes, "name": codes, "parent_code": [None] * len(codes),
                              "area_m2": sizes or [1e6] * len(codes), "properties": [{}] * len(codes)},
                             geometry=shapes, crs=4326)
    return Layer(level=Level.MICRO_GRID, units=units)


def test_gi_star_and_fdr_equal_a_direct_esda_computation():
    layer = squares(6)
    rng = np.random.default_rng(7)
    y = rng.poisson(3, 36).astype(float)
    y[[0, 1, 6, 7]] += 25                             # a cluster in the south-west corner
    counts = dict(zip(layer.units["code"], y.astype(int).tolist()))
    found = hotspots(layer, counts)

    w = libpysal.weights.Queen.from_dataframe(layer.units, use_index=False, silence_warnings=True)
    with warnings.catch_warnings():          # esda's notice that its default alternative will change
        warnings.simplefilter("ignore", DeprecationWarning)
        direct = esda.G_Local(y, w, transform="B", star=True, permutations=999, seed=12345)
    p = np.minimum(1, 2 * direct.p_z_sim)            # two-sided
    np.testing.assert_allclose(found.z, direct.Zs, rtol=1e-12)
    np.testing.assert_allclose(found.p, p, rtol=1e-12)
    cutoffs = {c: esda.fdr(p, a) for c, a in ((0.99, 0.01), (0.95, 0.05), (0.90, 0.10))}
    assert found.cutoffs == pytest.approx(cutoffs, rel=1e-15)
    expected = np.full(36, "none", dtype=object)
    for confidence, alpha in ((0.90, 0.10), (0.95, 0.05), (0.99, 0.01)):
        significant = p < esda.fdr(p, alpha)
        expected[significant & (direct.Zs > 0)] = f"hot_{round(confidence * 100)}"
        expected[significant & (direct.Zs < 0)] = f"cold_{round(confidence * 100)}"
    assert [c.value for c in found.classes] == expected.tolist()
    assert found.classes[0] is SpotClass.HOT_99 and found.classes[35] is SpotClass.NONE


def test_without_permutations_p_is_the_normal_approximation():
    layer = squares(6)
    y = (np.arange(36) % 5).astype(float)
    y[[0, 1, 6, 7]] += 12
    found = hotspots(layer, dict(zip(layer.units["code"], y.astype(int).tolist())), HotspotOptions(permutations=0))
    w = libpysal.weights.Queen.from_dataframe(layer.units, use_index=False, silence_warnings=True)
    direct = esda.G_Local(y, w, transform="B", star=True, permutations=0)
    np.testing.assert_allclose(found.z, direct.Zs, rtol=1e-12)
    np.testing.assert_allclose(found.p, np.minimum(1, 2 * direct.p_norm), rtol=1e-12)
    with pytest.raises(InvalidInput, match="permutations=50 is not valid"):
        HotspotOptions(permutations=50)


def test_without_the_correction_the_levels_are_the_plain_ones():
    layer = squares(6)
    y = np.arange(36) % 7
    found = hotspots(layer, dict(zip(layer.units["code"], y.tolist())), HotspotOptions(fdr=False))
    assert found.cutoffs == {0.99: 0.01, 0.95: 0.05, 0.90: 0.1}
    # every unit's class from its p-value and the sign of z, by the plain levels
    level = np.select([found.p < 0.01, found.p < 0.05, found.p < 0.1], ["99", "95", "90"], "")
    expected = [f"{'hot' if z > 0 else 'cold'}_{lv}" if lv else "none" for z, lv in zip(found.z, level)]
    assert [c.value for c in found.classes] == expected
    assert {c.value for c in found.classes} == {"hot_95", "hot_90", "cold_90", "none"}     # several levels met


def test_a_corner_z_score_worked_out_by_hand():
    # 3×3 squares, 9 incidents in the centre and 1 in each other unit.  The south-west corner's
    # queen neighbourhood with itself: itself, its two edge neighbours and the centre (W* = 4).
    layer = squares(3)
    counts = {code: (9 if code == "r1c1" else 1) for code in layer.units["code"]}
    found = hotspots(layer, counts)
    n, total, squares_sum = 9, 17, 81 + 8
    mean, local, weights = total / n, 1 + 1 + 1 + 9, 4
    s = math.sqrt(squares_sum / n - mean**2)
    z = (local - weights * mean) / (s * math.sqrt((n * weights - weights**2) / (n - 1)))
    assert found.z[0] == pytest.approx(z, rel=1e-12)              # 1.1180...
    assert found.values.tolist() == [1, 1, 1, 1, 9, 1, 1, 1, 1]


def test_density_divides_by_each_units_area():
    layer = squares(3, sizes=[2e6, 1e6, 1e6, 1e6, 4e6, 1e6, 1e6, 1e6, 0.5e6])
    counts = {"r0c0": 4, "r1c1": 8, "r2c2": 1}
    found = hotspots(layer, counts, HotspotOptions(per="km2"))
    assert found.values.tolist() == [2, 0, 0, 0, 2, 0, 0, 0, 2]
    assert found.counts.tolist() == [4, 0, 0, 0, 8, 0, 0, 0, 1]


def test_no_test_without_incidents_or_with_equal_counts():
    layer = squares(3)
    for counts in ({}, {code: 2 for code in layer.units["code"]}):
        found = hotspots(layer, counts)
        assert np.isnan(found.z).all() and np.isnan(found.p).all()
        assert set(found.classes) == {SpotClass.NONE} and found.cutoffs == {}


def test_an_unknown_measure_is_refused_with_the_choices():
    with pytest.raises(InvalidInput, match="per=.people. is not valid; expected one of: count, km2, households"):
        HotspotOptions(per="people")


def test_the_core_builds_the_graph_only_when_the_test_can_run():
    layer = squares(3)
    built = []

    def graph():
        built.append(layer)
        return contiguity(layer)

    untested = gi_star(np.full(9, 2.0), graph, HotspotOptions())
    assert built == [] and untested.cutoffs == {} and np.isnan(untested.z).all()
    y = np.array([1, 1, 1, 1, 9, 1, 1, 1, 1])
    tested = gi_star(y.astype(float), graph, HotspotOptions())
    assert len(built) == 1
    through_layer = hotspots(layer, dict(zip(layer.units["code"], y.tolist())))
    np.testing.assert_array_equal(tested.z, through_layer.z)
    np.testing.assert_array_equal(tested.p, through_layer.p)
    assert tested.classes.tolist() == through_layer.classes.tolist() and tested.cutoffs == through_layer.cutoffs


# -- emerging hot spots ---------------------------------------------------------------------------

def test_trends_by_hand():
    # ten periods; z rises steadily (Kendall's tau 1: p = 5.5e-7), falls, or wanders
    rising, falling = np.arange(10.0), -np.arange(10.0)
    wander = np.array([3, 1, 4, 1, 5, 9, 2, 6, 5, 3.0])
    z = np.vstack([rising, falling, wander, wander, wander, wander, rising])
    every = np.ones(10, dtype=bool)
    hot = np.vstack([every, every, every,
                     np.arange(10) == 9,                    # hot now only
                     np.arange(10) % 2 == 1,                # every other period, now too
                     np.arange(10) < 9,                     # hot until the period before now
                     np.arange(10) != 3])                   # 9 of 10 periods, now too
    trends, tau, p = trends_of(z, hot)
    assert [t.value for t in trends] == ["intensifying", "diminishing", "persistent", "new", "sporadic", "none",
                                         "intensifying"]
    assert tau.tolist()[:2] == pytest.approx([1.0, -1.0], abs=1e-12)
    assert p[0] == pytest.approx(2 / math.factorial(10), rel=1e-9)        # exact: one ordering of 10! is as extreme
    assert p[2] > 0.05
    assert np.isnan(tau[3:6]).all() and np.isnan(p[3:6]).all()      # not lasting hot spots: no trend asked


def test_emerging_hot_spots_equal_gi_star_per_period_and_kendalls_tau():
    layer = squares(6)
    rng = np.random.default_rng(3)
    counts, periods = [], [f"2026-0{m}" for m in range(1, 7)]
    for t in range(6):
        y = dict(zip(layer.units["code"], rng.poisson(2, 36).tolist()))
        y.update({code: 10 + 5 * t for code in ("r0c0", "r0c1", "r1c0", "r1c1")})   # a growing cluster
        counts.append(y)
    found = emerging_hotspots(layer, counts, periods)
    assert found.periods == periods and found.counts[0].tolist() == [10, 15, 20, 25, 30, 35]

    w = libpysal.weights.Queen.from_dataframe(layer.units, use_index=False, silence_warnings=True)
    z, hot = np.zeros((36, 6)), np.zeros((36, 6), dtype=bool)
    for t, y in enumerate(counts):
        values = np.array([y.get(code, 0) for code in layer.units["code"]], dtype=float)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            g = esda.G_Local(values, w, transform="B", star=True, permutations=999, seed=12345)
        p = np.minimum(1, 2 * g.p_z_sim)
        z[:, t], hot[:, t] = g.Zs, (p < esda.fdr(p, 0.10)) & (g.Zs > 0)
    np.testing.assert_allclose(found.z, z, rtol=1e-12)
    np.testing.assert_array_equal(found.hot, hot)
    lasting = hot[:, -1] & (hot.mean(axis=1) >= 0.9)
    assert lasting[[0, 1, 6]].all()                        # three of the cluster's four units
    for i in range(36):                                    # the trend is tested where it decides the class
        test = scipy.stats.kendalltau(np.arange(6), z[i]) if lasting[i] else None
        np.testing.assert_allclose([found.tau[i], found.trend_p[i]],
                                   [test.statistic, test.pvalue] if test else [np.nan, np.nan], rtol=1e-12)
    assert [t.value for t in found.trends] == [t.value for t in trends_of(z, hot)[0]]
    assert found.hot[0].all() and found.trends[0].value in ("persistent", "intensifying")


def test_emerging_hot_spots_need_two_periods():
    with pytest.raises(InvalidInput, match="at least two periods; got 1"):
        emerging_hotspots(squares(3), [{}], ["2026-01"])


def test_per_households_is_gi_star_of_incidents_per_1000_households():
    layer = squares(4)
    homes = [200 + 50 * i for i in range(16)]
    layer.units["properties"] = [{"户数": h} for h in homes]
    rng = np.random.default_rng(3)
    y = rng.poisson(4, 16).astype(float)
    y[[0, 1, 4, 5]] += 30
    found = hotspots(layer, dict(zip(layer.units["code"], y.astype(int).tolist())),
                     HotspotOptions(per="households"))
    rate = 1000 * y / np.array(homes, dtype=float)
    np.testing.assert_allclose(found.values, rate, rtol=1e-15)
    w = libpysal.weights.Queen.from_dataframe(layer.units, use_index=False, silence_warnings=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        direct = esda.G_Local(rate, w, transform="B", star=True, permutations=999, seed=12345)
    np.testing.assert_allclose(found.z, direct.Zs, rtol=1e-12)
    layer.units["properties"] = [{"户数": h} for h in homes[:-2]] + [{}, {"户数": ""}]
    with pytest.raises(InvalidInput, match=r"needs the households \(户数\) of every unit; 2 units of the level have "
                                           r"none \(first: r3c2, r3c3\)"):
        hotspots(layer, {}, HotspotOptions(per="households"))
