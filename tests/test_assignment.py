"""Assignment on the 2×2 block: inside, shared edge, shared vertex, gap, outside, tie-break."""
from __future__ import annotations

import numpy as np
import pytest
from shapely import box

from gridmap.assignment import AssignmentIndex
from gridmap.boundaries import derive_parents, read_layer
from gridmap.levels import Level

from .conftest import CELLS, feature_collection, grid_file, micro_file


@pytest.fixture
def layers():
    grids = read_layer(grid_file(), level=Level.GRID)
    micro = derive_parents(read_layer(micro_file(), level=Level.MICRO_GRID), grids)
    return [grids, micro]


@pytest.mark.parametrize("lon, lat, grid, micro", [
    (0.005, 0.005, "W", "W-S"),     # inside
    (0.015, 0.015, "E", "E-N"),     # inside
    (0.010, 0.005, "E", "E-S"),     # on the W|E edge: both cover it; smallest code E wins
    (0.005, 0.010, "W", "W-N"),     # on the W-S|W-N edge inside grid W
    (0.010, 0.010, "E", "E-N"),     # the vertex all four cells share
    (0.000, 0.000, "W", "W-S"),     # outer corner
    (0.020, 0.020, "E", "E-N"),     # outer corner
    (0.030, 0.005, None, None),     # outside
])
def test_one_point(layers, lon, lat, grid, micro):
    result = AssignmentIndex(layers).assign(np.array([lon]), np.array([lat]))
    assert (result[Level.GRID][0], result[Level.MICRO_GRID][0]) == (grid, micro)


def test_point_in_a_gap_has_a_grid_but_no_micro_grid():
    grids = read_layer(grid_file(), level=Level.GRID)
    three = read_layer(feature_collection([({"code": c}, g) for c, g in CELLS.items() if c != "E-N"]),
                       level=Level.MICRO_GRID)
    result = AssignmentIndex([grids, derive_parents(three, grids)]).assign(np.array([0.015]), np.array([0.015]))
    assert (result[Level.GRID][0], result[Level.MICRO_GRID][0]) == ("E", None)


def test_tie_break_prefers_the_child_of_the_chosen_parent_over_the_smaller_code():
    # Grid codes: west "2", east "1".  West cells "0-w" (smaller code), east cells "9-e".
    grids = read_layer(feature_collection([({"code": "2"}, box(0, 0, 0.01, 0.02)),
                                           ({"code": "1"}, box(0.01, 0, 0.02, 0.02))]), level=Level.GRID)
    micro = read_layer(feature_collection([({"code": "0-w"}, box(0, 0, 0.01, 0.02)),
                                           ({"code": "9-e"}, box(0.01, 0, 0.02, 0.02))]), level=Level.MICRO_GRID)
    result = AssignmentIndex([grids, derive_parents(micro, grids)]).assign(np.array([0.01]), np.array([0.005]))
    assert (result[Level.GRID][0], result[Level.MICRO_GRID][0]) == ("1", "9-e")


def test_many_points_each_counted_once(layers):
    # A 201 × 201 lattice over the block at 0.0001° steps: 40401 points, many on edges.
    xs, ys = np.meshgrid(np.linspace(0, 0.02, 201), np.linspace(0, 0.02, 201))
    lon, lat = xs.ravel(), ys.ravel()
    result = AssignmentIndex(layers).assign(lon, lat)
    grid = result[Level.GRID]
    assert (grid != None).all()                                  # noqa: E711 - numpy elementwise
    # Hand rule: x < 0.01 → W, x ≥ 0.01 → E (the edge goes to E, the smaller code).
    expected = np.where(np.round(lon, 6) < 0.01, "W", "E")
    assert (grid == expected).all()
    micro = result[Level.MICRO_GRID]
    expected_micro = np.char.add(np.char.add(expected, "-"), np.where(
        np.round(lat, 6) >= 0.01, "N", "S"))
    assert (micro == expected_micro).all()
    assert {code: int((micro == code).sum()) for code in CELLS} == {
        "W-S": 100 * 100, "W-N": 100 * 101, "E-S": 101 * 100, "E-N": 101 * 101}
