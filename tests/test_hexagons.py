"""Hexagon hot spots on small H3 neighbourhoods near People's Square, Shanghai, built cell by cell
from h3's own answers: the cells, the study area and the neighbours are checked against h3
directly, and Gi* against esda run here on a graph built another way (h3's pairwise test)."""
from __future__ import annotations

import json
import warnings
from collections import Counter

import esda
import h3
import libpysal
import numpy as np
import pytest
from shapely.geometry import Point

from gridmap.errors import InvalidInput
from gridmap.hexagons import (
    DEFAULT_RESOLUTION,
    adjacency,
    cell_ids,
    cell_polygon,
    hexagon_hotspots,
    point_cells,
    study_area,
)
from gridmap.hotspots import HotspotOptions, SpotClass

#: The cell of People's Square at resolution 9, the centre of every fixture here.
CENTRE = h3.latlng_to_cell(31.2304, 121.4737, 9)


def points_at(counts: dict[str, int]) -> tuple[np.ndarray, np.ndarray]:
    """``count`` points at the centre of each cell, as lon and lat arrays."""
    centres = [h3.cell_to_latlng(cell) for cell, count in counts.items() for _ in range(count)]
    return np.array([lng for _, lng in centres]), np.array([lat for lat, _ in centres])


def disk_counts() -> dict[str, int]:
    """The 19 cells within two rings of the centre: one incident in each outer cell (so the hull's
    edge runs through their centres and no farther cell's centre is inside), more and none inside."""
    counts = {cell: 1 for cell in h3.grid_ring(CENTRE, 2)}
    counts[CENTRE] = 30
    counts.update(zip(h3.grid_ring(CENTRE, 1), [12, 8, 0, 0, 5, 0]))
    return counts


def test_points_land_in_the_cells_h3_gives_them():
    lat = np.array([31.2304, 31.2400, 31.2243, 37.769377, -33.8568, 0.0])
    lon = np.array([121.4737, 121.4903, 121.4450, -122.388903, 151.2153, 0.0])
    for resolution in (6, 9, 11):
        found = cell_ids(point_cells(lon, lat, resolution=resolution)).tolist()
        assert found == [h3.latlng_to_cell(y, x, resolution) for y, x in zip(lat, lon)]
    assert cell_ids(point_cells(lon, lat))[3] == "89283082e73ffff"        # h3's own documented example
    assert DEFAULT_RESOLUTION == 9


@pytest.mark.parametrize("resolution", [5, 12, -1, 9.0, True, "9"])
def test_a_resolution_outside_6_to_11_is_refused(resolution):
    with pytest.raises(InvalidInput, match=r"resolution=.* is not valid; expected a whole number from 6 \(hexagons "
                                           r"of about 36 km²\) to 11 \(about 0.002 km²\)"):
        hexagon_hotspots(np.array([121.47]), np.array([31.23]), resolution=resolution)


def test_a_tiny_study_area_and_its_neighbours_are_h3s():
    # incidents at the centres of three alternate cells around the centre: the hull is a triangle
    # holding the centre cell's centre, and no other cell's; the graph is a star
    ring = h3.grid_ring(CENTRE, 1)
    lon, lat = points_at({ring[0]: 1, ring[2]: 1, ring[4]: 1})
    area = study_area(lon, lat, point_cells(lon, lat), resolution=9)
    ids = cell_ids(area).tolist()
    assert ids == sorted([CENTRE, ring[0], ring[2], ring[4]])
    graph = adjacency(area)
    assert graph.unique_ids.tolist() == ids
    neighbours = {cell: sorted(graph[cell].index) for cell in ids}
    assert neighbours == {cell: sorted(set(h3.grid_ring(cell, 1)) & set(ids)) for cell in ids}
    assert neighbours[CENTRE] == sorted([ring[0], ring[2], ring[4]])
    assert all(neighbours[ring[i]] == [CENTRE] for i in (0, 2, 4))
    assert set(graph.adjacency.tolist()) == {1.0}


def test_gi_star_equals_a_direct_esda_run_on_an_independent_graph():
    counts = disk_counts()
    lon, lat = points_at(counts)
    found = hexagon_hotspots(lon, lat)

    cells = sorted(h3.grid_disk(CENTRE, 2))                   # the study area: the disk, and nothing past it
    assert found.cells.tolist() == cells and found.resolution == 9
    y = np.array([Counter(counts).get(cell, 0) for cell in cells], dtype=float)
    assert found.counts.tolist() == y.tolist() and found.values.tolist() == y.tolist()
    neighbours = {a: [b for b in cells if b != a and h3.are_neighbor_cells(a, b)] for a in cells}
    w = libpysal.weights.W(neighbours, id_order=cells)
    with warnings.catch_warnings():          # esda's notice that its default alternative will change
        warnings.simplefilter("ignore", DeprecationWarning)
        direct = esda.G_Local(y, w, transform="B", star=True, permutations=999, seed=12345)
    p = np.minimum(1, 2 * direct.p_z_sim)
    np.testing.assert_allclose(found.z, direct.Zs, rtol=1e-12)
    np.testing.assert_allclose(found.p, p, rtol=1e-12)
    assert found.cutoffs == pytest.approx({c: esda.fdr(p, a) for c, a in ((0.99, 0.01), (0.95, 0.05), (0.90, 0.1))},
                                          rel=1e-15)


def test_a_cluster_makes_its_cell_hot_and_not_a_far_one():
    # two incidents at the centre of each of the 127 cells within six rings; a cluster of 20 more
    # in one cell and 10 more in each of its neighbours
    counts = {cell: 2 for cell in h3.grid_disk(CENTRE, 6)}
    hot, far = h3.grid_ring(CENTRE, 3)[0], h3.grid_ring(CENTRE, 3)[9]       # six cells apart
    assert h3.grid_distance(hot, far) == 6
    counts[hot] += 20
    for cell in h3.grid_ring(hot, 1):
        counts[cell] += 10
    found = hexagon_hotspots(*points_at(counts))
    assert len(found.cells) == 127
    spot = dict(zip(found.cells.tolist(), found.classes))
    assert spot[hot] is SpotClass.HOT_99 and spot[far] is SpotClass.NONE
    assert found.p[found.cells.tolist().index(hot)] < found.cutoffs[0.99]
    assert {spot[cell] for cell in h3.grid_ring(hot, 3)} == {SpotClass.NONE}


def test_density_divides_by_each_cells_own_area():
    counts = disk_counts()
    found = hexagon_hotspots(*points_at(counts), HotspotOptions(per="km2"))
    areas = np.array([h3.cell_area(cell, unit="km^2") for cell in found.cells])
    np.testing.assert_allclose(found.values, found.counts / areas, rtol=1e-15)
    assert found.counts[found.cells.tolist().index(CENTRE)] == 30 and 0.07 < areas.min() < areas.max() < 0.09


def test_too_fine_a_resolution_is_refused_naming_a_coarser_one_that_fits():
    rng = np.random.default_rng(5)           # 2,000 incidents over about 4.8 × 5.6 km (27 km²)
    lon, lat = 121.45 + rng.uniform(0, 0.05, 2000), 31.2 + rng.uniform(0, 0.05, 2000)
    # at 11 (0.0016 km² here: some 17,000 cells) refused before listing them
    with pytest.raises(InvalidInput, match=r"^resolution 11 is too fine for the area the incidents span: about "
                                           r"\d+ hexagons, and at most 1500 are tested; resolution 9 would fit$"):
        hexagon_hotspots(lon, lat, resolution=11, max_cells=1500)
    assert len(hexagon_hotspots(lon, lat, resolution=9, max_cells=1500).cells) <= 1500
    # at 10 (some 2,300 cells) the estimate is within twice the cap: the cells are listed and counted exactly
    listed = len(study_area(lon, lat, point_cells(lon, lat, resolution=10), resolution=10, max_cells=10**6))
    assert 1500 < listed < 3000
    with pytest.raises(InvalidInput, match=f"^resolution 10 is too fine .*: about {listed} hexagons, .* resolution 9 "):
        hexagon_hotspots(lon, lat, resolution=10, max_cells=1500)


def test_an_area_too_large_even_at_resolution_6_is_refused():
    lon, lat = np.array([116.0, 118.0, 117.0]), np.array([39.0, 39.0, 41.0])
    with pytest.raises(InvalidInput, match=r"^the incidents span too large an area for hexagon hot spots: about "
                                           r"\d+ hexagons at resolution 7, and even at resolution 6 more than the "
                                           r"100 tested; choose the incidents of a smaller area$"):
        hexagon_hotspots(lon, lat, resolution=7, max_cells=100)


def test_wrong_coordinates_are_refused_all_counted():
    lon, lat = np.array([121.4, np.nan, 121.5, 200.0]), np.array([31.2, 31.2, 95.0, 31.2])
    with pytest.raises(InvalidInput, match=r"from -180 to 180 and latitudes from -90 to 90; 3 points are not, the "
                                           r"first \(number 2\) at nan, 31.2$"):
        hexagon_hotspots(lon, lat)
    with pytest.raises(InvalidInput, match="expected as many longitudes as latitudes; got 2 and 1"):
        point_cells(np.array([121.4, 121.5]), np.array([31.2]))


def test_no_incidents_no_cells_and_one_cell_no_test():
    empty = hexagon_hotspots(np.array([]), np.array([]))
    assert empty.cells.tolist() == [] and empty.cutoffs == {}
    one = hexagon_hotspots(np.array([121.4737] * 3), np.array([31.2304] * 3))
    assert one.cells.tolist() == [CENTRE] and one.counts.tolist() == [3]
    assert np.isnan(one.z).all() and one.classes.tolist() == [SpotClass.NONE]


def test_outlines_are_lon_lat_for_drawing():
    found = hexagon_hotspots(np.array([121.4737] * 3), np.array([31.2304] * 3))
    polygon = found.polygons()[0]
    boundary = h3.cell_to_boundary(CENTRE)
    assert list(polygon.exterior.coords) == [(lng, lat) for lat, lng in boundary + boundary[:1]]
    assert polygon.equals(cell_polygon(CENTRE))
    lat, lng = h3.cell_to_latlng(CENTRE)
    assert polygon.contains(Point(lng, lat)) and polygon.bounds[0] > 121                # lon first
    [feature] = json.loads(json.dumps(found.features(), allow_nan=False))["features"]   # no NaN in the JSON
    assert feature["geometry"]["coordinates"][0] == [[lng, lat] for lat, lng in boundary + boundary[:1]]
    assert feature["properties"] == {"cell": CENTRE, "count": 3, "value": 3.0, "z": None, "p": None,
                                     "class": "none"}


def test_hexagons_have_no_households_to_divide_by():
    with pytest.raises(InvalidInput, match="hexagons have no households; test per=count or per=km2"):
        hexagon_hotspots(np.array([114.0]), np.array([30.0]), HotspotOptions(per="households"))
