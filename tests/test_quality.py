"""Stacked coordinates (geocoder placeholders) found from the points alone; points whose coordinates
are too coarse to tell which of two units holds them (ambiguous points)."""
from __future__ import annotations

import geopandas as gpd
import numpy as np
import pytest
import shapely
from pyproj import Geod
from shapely import box

from gridmap.boundaries import read_layer
from gridmap.layer import Layer
from gridmap.levels import Level
from gridmap.quality import ambiguous_points, coordinate_decimals, coordinate_precision, stacked_points

from .conftest import feature_collection


def spread(n: int, start: float = 0.0) -> tuple[list[float], list[float]]:
    """n points on distinct coordinates."""
    return [start + i * 1e-4 for i in range(n)], [0.0] * n


def test_a_pile_far_above_the_datas_own_spread_is_stacked():
    lon, lat = spread(200)
    lon += [1.5] * 60 + [2.5] * 49 + [3.5] * 120
    lat += [1.0] * 60 + [2.0] * 49 + [3.0] * 120
    found = stacked_points(np.array(lon), np.array(lat))
    # 203 coordinates: 200 hold one point; the 99th percentile (the 200th smallest count) is 1 and
    # the threshold max(50, 10 × 1) = 50: the piles of 120 and 60 are stacked, the 49 is not
    assert found.threshold == 50
    assert (found.lon.tolist(), found.lat.tolist(), found.count.tolist()) == ([3.5, 1.5], [3.0, 1.0], [120, 60])


def test_a_busy_block_in_busy_data_is_not_a_placeholder():
    # every coordinate holds 20 (rounded coordinates on a busy street): the threshold is 10 × 20
    lon, lat = spread(300)
    lon, lat = lon * 20 + [9.0] * 199, lat * 20 + [9.0] * 199
    found = stacked_points(np.array(lon), np.array(lat))
    assert found.threshold == 200 and len(found) == 0
    found = stacked_points(np.array(lon + [9.0]), np.array(lat + [9.0]))
    assert found.count.tolist() == [200]


def test_missing_coordinates_are_left_out_and_nothing_is_no_stack():
    # one coordinate left: nothing to compare it with, so the threshold is its own count × 10
    found = stacked_points(np.array([np.nan] * 80 + [1.0] * 60), np.array([np.nan] * 80 + [1.0] * 60))
    assert (found.count.tolist(), found.threshold) == ([], 600)
    empty = stacked_points(np.empty(0), np.empty(0))
    assert (len(empty), empty.threshold) == (0, 50)


def test_a_service_finds_its_stacks_again_once_the_incidents_grew_by_a_hundredth(service):
    spread = [{"category": "litter", "lon": 0.001 * i, "lat": 0.0} for i in range(240)]
    service.report(spread + [{"category": "litter", "lon": 1.0, "lat": 1.0}] * 60)         # 300 incidents
    first = service.stacked_points()
    assert (first.lon.tolist(), first.count.tolist()) == ([1.0], [60])
    service.report([{"category": "litter", "lon": 2.0, "lat": 2.0}] * 3)      # 303: under 300 × 1.01 + 1
    assert service.stacked_points() is first
    service.report([{"category": "litter", "lon": 2.0, "lat": 2.0}] * 57)     # 360: found again
    again = service.stacked_points()
    assert (again.lon.tolist(), again.count.tolist()) == ([1.0, 2.0], [60, 60])


# -- points near an edge, within the coordinates' precision ---------------------------------
# Two unit squares sharing the edge x = 1: A (x 0–1) and B (x 1–2), y 0–1.

def two_squares(edge: float = 1.0, west: float = 0.0) -> Layer:
    return read_layer(feature_collection([({"code": "A"}, box(west, 0, edge, 1)), ({"code": "B"}, box(edge, 0, 2, 1))]),
                      level=Level.MICRO_GRID)


def touched(lon: list[float], lat: list[float], layer: Layer, **options: float) -> dict[int, tuple[str | None, ...]]:
    found = ambiguous_points(np.array(lon), np.array(lat), layer, **options)
    return {int(found.index[i]): found.touched(i) for i in range(len(found))}


def test_decimals_are_those_of_the_shortest_text_and_full_precision_is_exact():
    values = [114.12, 114.1225, 30.0544, 0.1 + 0.2, 114.0, -71.0587, 0.00005, 0.0,
              114.12345678901, 114.123456789012, 42.35872900138512, 1e16, np.nan, np.inf]
    # 114.12345678901 has 14 significant digits (11 decimals); one more digit is a computed float
    decimals = coordinate_decimals(values)
    assert decimals[:-2].tolist() == [2, 4, 4, np.inf, 0, 4, 5, 0, 11, np.inf, np.inf, np.inf]
    assert np.isnan(decimals[-2:]).all()


def test_decimals_agree_with_numpys_shortest_text():
    rng = np.random.default_rng(3)
    values = np.concatenate([np.round(rng.uniform(-180, 180, 100), d) for d in range(12)])
    text = [np.format_float_positional(v, unique=True, trim="-").partition(".")[2] for v in values]
    assert coordinate_decimals(values).tolist() == [len(t) for t in text]


def test_a_point_has_the_decimals_of_its_more_precise_coordinate_on_both_axes():
    # 30.0500 lost its trailing zeros; the point keeps 4 decimals: ±0.00005° either way
    dx, dy = coordinate_precision([114.1225, 114.12345678901234, np.nan], [30.05, 30.1, 30.1])
    assert dx[:2].tolist() == dy[:2].tolist() == [0.00005, 0.0] and np.isnan([dx[2], dy[2]]).all()


def test_an_explicit_precision_in_metres_replaces_the_decimals():
    # pyproj's geodesic 50 m east and north of (0.9996, 0.5) as the independent measure
    dx, dy = coordinate_precision([0.9996], [0.5], precision_m=50)
    geod = Geod(ellps="WGS84")
    assert dx[0] == pytest.approx(geod.fwd(0.9996, 0.5, 90, 50)[0] - 0.9996, rel=1e-6)   # 0.00044917°
    assert dy[0] == pytest.approx(geod.fwd(0.9996, 0.5, 0, 50)[1] - 0.5, rel=1e-6)        # 0.00045218°
    with pytest.raises(ValueError, match="expected a precision in metres of 0 or more, got -1"):
        coordinate_precision([1.0], [0.5], precision_m=-1)


def test_a_box_across_the_shared_edge_is_ambiguous_between_both_units():
    layer = two_squares()
    # (1.0, 0.437): 3 decimals (from the lat), box x 0.9995–1.0005 across x = 1
    # (1.0004, 0.4372): 4 decimals, box x 1.00035–1.00045, all in B
    # (1.000004, 0.437201): 6 decimals, box x 1.0000035–1.0000045, all in B
    # (0.5, 0.5): 1 decimal, box 0.45–0.55 both ways, well inside A
    assert touched([1.0, 1.0004, 1.000004, 0.5], [0.437, 0.4372, 0.437201, 0.5], layer) == {0: ("A", "B")}


def test_the_same_point_is_ambiguous_only_with_a_precision_reaching_the_edge():
    # 0.9996 is 0.0004° (44.5 m at lat 0.5) west of the edge: 4 decimals (±0.00005°) keep it in A,
    # ±50 m (±0.000449°) reaches B, ±40 m (±0.000359°) does not
    layer = two_squares()
    assert touched([0.9996], [0.5], layer) == {}
    assert touched([0.9996], [0.5], layer, precision_m=50) == {0: ("A", "B")}
    assert touched([0.9996], [0.5], layer, precision_m=40) == {}


def test_a_box_across_the_outer_edge_is_ambiguous_between_a_unit_and_outside():
    # (0.0, 0.437): box x -0.0005–0.0005; (-0.0003, 0.437): box x -0.00035 to -0.00025, all outside
    assert touched([0.0, -0.0003], [0.437, 0.437], two_squares()) == {0: ("A", None)}


def test_a_point_on_a_corner_touches_every_unit_meeting_there_and_outside():
    # 0 decimals: boxes of ±0.5°; (1, 1) is the corner A and B share on the outer edge
    assert touched([1.0, 0.0], [1.0, 0.0], two_squares()) == {0: ("A", "B", None), 1: ("A", None)}
    assert touched([1.0], [1.0], two_squares(), precision_m=10) == {0: ("A", "B", None)}
    # an exact point has no box: on the corner it is held by the tie-break, not ambiguous
    assert touched([1.0], [1.0], two_squares(), precision_m=0) == {}


def test_touching_a_shared_edge_from_one_side_counts_and_the_outer_edge_from_inside_does_not():
    # the shared edge at x = 1.0005 and A's outer edge at x = -0.0005: the boxes of (1.0, 0.437)
    # and (0.0, 0.437), x 0.9995–1.0005 and -0.0005–0.0005, end exactly on them.  On the shared
    # edge both units hold the points and the tie-break decides; on the outer edge only A does.
    assert touched([1.0, 0.0], [0.437, 0.437], two_squares(edge=1.0005, west=-0.0005)) == {0: ("A", "B")}


def test_points_written_alike_share_one_box_and_codes_are_in_plain_string_order():
    layer = read_layer(feature_collection([({"code": "10"}, box(0, 0, 1, 1)), ({"code": "9"}, box(1, 0, 2, 1))]),
                       level=Level.MICRO_GRID)
    found = ambiguous_points(np.array([0.5, 1.0, 1.0]), np.array([0.5, 0.437, 0.437]), layer)
    assert (found.index.tolist(), found.box.tolist(), found.offsets.tolist()) == ([1, 2], [0, 0], [0, 2])
    assert found.touched(1) == ("10", "9") and found.mask.tolist() == [False, True, True]
    assert (found.dx.tolist(), found.precision_m) == ([0.05, 0.0005, 0.0005], None)


def test_missing_coordinates_are_skipped_and_nothing_is_no_ambiguity():
    found = ambiguous_points(np.array([np.nan, 1.0, 1.0]), np.array([0.437, np.nan, 0.437]), two_squares())
    assert found.index.tolist() == [2] and np.isnan(found.dx[:2]).all()
    empty = ambiguous_points(np.empty(0), np.empty(0), two_squares())
    assert (len(empty), empty.mask.tolist(), empty.codes.tolist()) == (0, [], [])
    nobody = Layer(level=Level.MICRO_GRID, units=gpd.GeoDataFrame({"code": []}, geometry=[], crs="EPSG:4326"))
    assert len(ambiguous_points(np.array([1.0]), np.array([0.437]), nobody)) == 0


def test_the_raster_rules_out_only_points_whose_box_meets_no_edge():
    # A 10 × 10 grid of 0.0137° cells (edges at uneven places) with a gap; points of 1–7 decimals
    # all over it and beyond, and as many within a few units of their last decimal of an edge.
    # Every answer is checked against boxes tested on every unit, one point at a time.
    edges = 0.0031 + 0.0137 * np.arange(11)
    cells = [(f"C{i}{j}", box(edges[i], edges[j], edges[i + 1], edges[j + 1]))
             for i in range(10) for j in range(10) if (i, j) != (4, 4)]
    layer = read_layer(feature_collection([({"code": c}, g) for c, g in cells]), level=Level.MICRO_GRID)
    rng = np.random.default_rng(5)
    lon, lat = rng.uniform(-0.01, 0.15, 3000), rng.uniform(-0.01, 0.15, 3000)
    decimals = rng.integers(1, 8, 3000)
    near = rng.integers(0, 4, 3000)       # 0: anywhere; 1: by a vertical edge; 2: horizontal; 3: both
    unit = 10.0 ** -decimals.astype(float)
    lon = np.where(near % 2 == 1, rng.choice(edges, 3000) + rng.uniform(-2, 2, 3000) * unit, lon)
    lat = np.where(near >= 2, rng.choice(edges, 3000) + rng.uniform(-2, 2, 3000) * unit, lat)
    lon, lat = (np.array([round(v, d) for v, d in zip(values, decimals)]) for values in (lon, lat))
    geometries, codes = np.array([g for _, g in cells]), np.array([c for c, _ in cells], dtype=object)
    union = shapely.union_all(geometries)
    for precision_m in (None, 2.0):
        dx, dy = coordinate_precision(lon, lat, precision_m=precision_m)
        expected = {}
        for k in range(len(lon)):
            b = box(lon[k] - dx[k], lat[k] - dy[k], lon[k] + dx[k], lat[k] + dy[k])
            touching = shapely.intersects(geometries, b)
            if (touching & ~shapely.covers(geometries, b)).any():
                expected[k] = (*sorted(codes[touching]), *([None] if not union.covers(b) else []))
        options = {} if precision_m is None else {"precision_m": precision_m}
        assert len(expected) > 600 and touched(lon.tolist(), lat.tolist(), layer, **options) == expected


def test_the_edge_check_prepares_copies_never_the_layers_shared_polygons():
    # GEOS builds a prepared polygon's indexes lazily and unlocked: the layer's own polygons are
    # shared with the assignment index and other requests (two requests at once segfaulted)
    from gridmap.quality import _units
    layer = read_layer(feature_collection([({"code": "A"}, box(0, 0, 1, 1)), ({"code": "B"}, box(1, 0, 2, 1))]),
                       level=Level.MICRO_GRID)
    own = layer.units.geometry.to_numpy()
    copies = _units(layer)
    assert [c is g for c, g in zip(copies, own)] == [False, False]
    assert shapely.equals_exact(copies, own, tolerance=0).tolist() == [True, True]
    assert shapely.is_prepared(copies).tolist() == [True, True] and shapely.is_prepared(own).tolist() == [False, False]
