"""Assignment on the 2×2 block: inside, shared edge, shared vertex, gap, outside, tie-break; then the
label raster against the exact path on odd shapes and on a generated coverage."""
from __future__ import annotations

import numpy as np
import pytest
import shapely
from shapely import MultiPolygon, Polygon, box

from gridmap import assignment
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


# -- the label raster: the same answers as the exact path, point for point ----------------------

@pytest.fixture(params=["exact", "raster", "coarse raster"])
def mode(request, monkeypatch):
    """How the index answers: the exact path only, the default raster, or a raster so coarse
    that most cells are crossed and the regions between them are thin and oddly shaped."""
    if request.param == "coarse raster":
        monkeypatch.setattr(assignment, "_CROSSED_SHARE", 0.5)
        monkeypatch.setattr(assignment, "_MAX_CELLS", 1 << 12)
    return request.param


def index_for(layers, mode: str) -> AssignmentIndex:
    index = AssignmentIndex(layers, raster=mode != "exact")
    assert (index.raster_bytes > 0) == (mode != "exact")
    return index


@pytest.mark.parametrize("lon, lat, grid, micro", [
    (0.005, 0.01, "W", "W-N"),      # on the W-S|W-N edge
    (0.02, 0.01, "E", "E-N"),       # on the raster's outer edge, on the E-S|E-N edge
    (0.02, 0.02, "E", "E-N"),       # the raster's outer corner
    (0.0, 0.013, "W", "W-N"),       # on the raster's west edge
    (0.01, 0.0, "E", "E-S"),        # on the south edge, on the W|E line
    (0.02000001, 0.01, None, None),     # just beyond the outer edge
    (-0.5, 0.01, None, None),       # far beyond it
    (float("nan"), 0.01, None, None),
])
def test_block_points_in_every_mode(layers, mode, lon, lat, grid, micro):
    index = index_for(layers, mode)
    result = index.assign(np.array([lon]), np.array([lat]))
    assert (result[Level.GRID][0], result[Level.MICRO_GRID][0]) == (grid, micro)
    assert index.locate(lon, lat) == {Level.GRID: grid, Level.MICRO_GRID: micro}


def odd_layers():
    """Two grids G1 (x 0–0.02) and G2 (x 0.02–0.04), y 0–0.02, and messy micro-grids (parents
    named in the file): A; a sliver S 0.0000002° wide (far narrower than any cell); H, with a
    hole x 0.013–0.017, y 0.005–0.015; M, two parts with a gap y 0.009–0.011; C overlapping M
    and running out of the grids to x 0.05; B, a small box of G1 reaching over into G2."""
    grids = read_layer(feature_collection([({"code": "G1"}, box(0, 0, 0.02, 0.02)),
                                           ({"code": "G2"}, box(0.02, 0, 0.04, 0.02))]), level=Level.GRID)
    holed = Polygon(box(0.0100002, 0, 0.02, 0.02).exterior.coords, [box(0.013, 0.005, 0.017, 0.015).exterior.coords])
    micro = {"A": ("G1", box(0, 0, 0.01, 0.02)), "S": ("G1", box(0.01, 0, 0.0100002, 0.02)), "H": ("G1", holed),
             "M": ("G2", MultiPolygon([box(0.02, 0, 0.04, 0.009), box(0.02, 0.011, 0.04, 0.02)])),
             "C": ("G2", box(0.03, 0.005, 0.05, 0.015)), "B": ("G1", box(0.019, 0.002, 0.021, 0.004))}
    micro_layer = read_layer(feature_collection([({"code": c, "parent_code": p}, g) for c, (p, g) in micro.items()]),
                             level=Level.MICRO_GRID)
    return [grids, micro_layer]


ODD_POINTS = [
    (0.005, 0.01, "G1", "A"),
    (0.0100001, 0.01, "G1", "S"),       # inside the sliver
    (0.01, 0.01, "G1", "A"),            # on the A|S edge: A < S
    (0.0100002, 0.01, "G1", "H"),       # on the S|H edge: H < S
    (0.015, 0.01, "G1", None),          # in the hole
    (0.013, 0.01, "G1", "H"),           # on the hole's edge
    (0.025, 0.01, "G2", None),          # in the gap between M's parts
    (0.025, 0.005, "G2", "M"),          # in M's first part
    (0.025, 0.015, "G2", "M"),          # in its second part
    (0.025, 0.011, "G2", "M"),          # on its second part's edge
    (0.035, 0.007, "G2", "C"),          # in the C/M overlap: same parent, C < M
    (0.045, 0.01, None, "C"),           # outside the grids, in C
    (0.0205, 0.003, "G2", "M"),         # B (G1) and M (G2) hold it, the grid is G2: M, though B < M
    (0.0195, 0.003, "G1", "B"),         # B and H, both of G1: B < H
    (0.02, 0.003, "G1", "B"),           # on the G1|G2 line: G1; then B and H (G1), M (G2): B
    (0.02, 0.01, "G1", "H"),            # on the G1|G2 line, in M's gap: H
    (0.05, 0.015, None, "C"),           # C's corner, on the raster's outer edge
    (0.05, 0.0, None, None),            # the extent's corner, held by nobody
    (0.04, 0.02, "G2", "M"),            # the grids' outer corner
    (0.0, 0.0, "G1", "A"),
    (0.06, 0.01, None, None),
]


@pytest.mark.parametrize("lon, lat, grid, micro", ODD_POINTS)
def test_sliver_hole_multipolygon_overlap_in_every_mode(mode, lon, lat, grid, micro):
    index = index_for(odd_layers(), mode)
    result = index.assign(np.array([lon]), np.array([lat]))
    assert (result[Level.GRID][0], result[Level.MICRO_GRID][0]) == (grid, micro)
    assert index.locate(lon, lat) == {Level.GRID: grid, Level.MICRO_GRID: micro}


def test_positions_are_rows_of_the_units(mode):
    layers = odd_layers()
    lon, lat = np.array([p[0] for p in ODD_POINTS]), np.array([p[1] for p in ODD_POINTS])
    positions = index_for(layers, mode).positions(lon, lat)
    for layer, column in zip(layers, (2, 3)):
        codes = layer.units["code"].to_numpy()
        expected = [p[column] for p in ODD_POINTS]
        assert [codes[i] if i >= 0 else None for i in positions[layer.level]] == expected


def test_no_layers_no_units(mode):
    lon = np.linspace(0, 1, 30_000)
    assert AssignmentIndex([], raster=mode != "exact").assign(lon, lon) == {}


def test_no_points(mode, layers):
    result = index_for(layers, mode).assign(np.array([]), np.array([]))
    assert [len(codes) for codes in result.values()] == [0, 0]


@pytest.fixture(scope="module")
def district():
    """A generated coverage: 20 × 20 jittered micro-grids under 4 × 4 grids (bench/district.py)."""
    from bench.district import district_geojson
    grid_bytes, micro_bytes = district_geojson(20, 5)
    grids = read_layer(grid_bytes, level=Level.GRID, filename="grid.geojson")
    micro = read_layer(micro_bytes, level=Level.MICRO_GRID, filename="micro_grid.geojson")
    assert micro.parent_source == "field"
    return [grids, micro]


def district_points(layers, n: int = 60_000, seed: int = 3) -> tuple[np.ndarray, np.ndarray]:
    """Random points over the extent and beyond it, every boundary vertex, points on the edges
    (midpoints, rounded to the float grid), and points on the extent's own edges."""
    geometries = np.concatenate([layer.units.geometry.to_numpy() for layer in layers])
    minx, miny, maxx, maxy = shapely.total_bounds(geometries)
    rng = np.random.default_rng(seed)
    pad = 0.05 * (maxx - minx)
    xs, ys = rng.uniform(minx - pad, maxx + pad, n), rng.uniform(miny - pad, maxy + pad, n)
    vertices = shapely.get_coordinates(geometries)
    middles = (vertices[:-1] + vertices[1:]) / 2
    t = rng.uniform(0, 1, 200)
    rims = np.concatenate([np.c_[minx + t * (maxx - minx), np.full(200, miny)],
                           np.c_[np.full(200, maxx), miny + t * (maxy - miny)]])
    xy = np.concatenate([np.c_[xs, ys], vertices, middles, rims])
    return xy[:, 0], xy[:, 1]


@pytest.mark.parametrize("mode", ["raster", "coarse raster"], indirect=True)
def test_raster_answers_equal_the_exact_path_on_a_generated_coverage(district, mode):
    lon, lat = district_points(district)
    exact = AssignmentIndex(district, raster=False).positions(lon, lat)
    index = index_for(district, mode)
    fast = index.positions(lon, lat)
    assert (index._raster.faces(lon, lat) > 0).mean() > 0.3      # most answers come from the table
    for level in exact:
        np.testing.assert_array_equal(fast[level], exact[level])
    codes = index.assign(lon, lat)
    for k in range(0, len(lon), 97):      # locate, point by point, on a sample
        assert index.locate(lon[k], lat[k]) == {level: codes[level][k] for level in codes}


def test_exact_path_follows_the_rule_point_by_point(district):
    """The exact path against the rule written out with plain shapely, one point at a time."""
    lon, lat = district_points(district, n=300)
    lon, lat = lon[::23], lat[::23]
    result = AssignmentIndex(district, raster=False).assign(lon, lat)
    grids, micro = (layer.units for layer in district)
    for x, y, got_grid, got_micro in zip(lon, lat, result[Level.GRID], result[Level.MICRO_GRID]):
        point = shapely.Point(x, y)
        grid = min((c for c, g in zip(grids["code"], grids.geometry) if g.covers(point)), default=None)
        holders = [(p != grid, c) for c, p, g in zip(micro["code"], micro["parent_code"], micro.geometry)
                   if g.covers(point)]
        assert (got_grid, got_micro) == (grid, min(holders)[1] if holders else None)


def test_the_raster_is_built_once_enough_points_have_been_asked_for(layers):
    index = AssignmentIndex(layers)
    index.assign(np.array([0.005]), np.array([0.005]))
    assert index.raster_bytes == 0                     # a few points: the exact path, no raster
    lon, lat = np.random.default_rng(1).uniform(0, 0.02, (2, 200_000))
    result = index.assign(lon, lat)
    assert index.raster_bytes > 0
    exact = AssignmentIndex(layers, raster=False).assign(lon, lat)
    assert all((result[level] == exact[level]).all() for level in exact)


def test_a_server_builds_the_raster_at_once_and_answers_the_same(layers):
    index = AssignmentIndex(layers)
    assert index.raster_bytes == 0
    index.build_raster()
    assert index.raster_bytes > 0
    lon, lat = np.random.default_rng(2).uniform(-0.001, 0.021, (2, 5_000))
    exact = AssignmentIndex(layers, raster=False)
    assert [index.locate(x, y) for x, y in zip(lon, lat)] == [exact.locate(x, y) for x, y in zip(lon, lat)]
    never = AssignmentIndex(layers, raster=False)
    never.build_raster()                               # an index told never to build one stays without
    assert never.raster_bytes == 0
