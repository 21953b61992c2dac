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
from shapely.geometry import box

from gridmap.errors import InvalidInput
from gridmap.hotspots import HotspotOptions, SpotClass, hotspots
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


def test_without_the_correction_the_levels_are_the_plain_ones():
    layer = squares(6)
    y = np.arange(36) % 7
    found = hotspots(layer, dict(zip(layer.units["code"], y.tolist())), HotspotOptions(fdr=False))
    assert found.cutoffs == {0.99: 0.01, 0.95: 0.05, 0.90: 0.1}
    hot90 = (found.p < 0.1) & (found.p >= 0.05) & (found.z > 0)
    assert all(c is SpotClass.HOT_90 for c in found.classes[hot90])


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
    with pytest.raises(InvalidInput, match="per='people' is not valid; expected one of: count, km2"):
        HotspotOptions(per="people")
