"""Boundary import: fields, CRS handling, refusals, areas in m², parent derivation."""
from __future__ import annotations

import json

import pytest
from shapely import LineString, Point, Polygon, box

from gridmap.boundaries import derive_parents, read_layer, to_geojson
from gridmap.errors import InvalidInput
from gridmap.levels import Level

from .conftest import GRIDS, feature_collection, grid_file

# A 100 m × 100 m square in CGCS2000 / 3-degree Gauss-Kruger CM 114E (EPSG:4547), centred
# on the central meridian (x = 500000), where the projection's scale is exactly 1.
SQUARE_4547 = box(499_950, 3_500_000, 500_050, 3_500_100)


def test_reads_codes_names_properties_and_area():
    layer = read_layer(grid_file(), level=Level.GRID)
    units = layer.units
    assert units["code"].tolist() == ["W", "E"]
    assert units["name"].tolist() == ["网格W", "网格E"]
    assert units["parent_code"].tolist() == [None, None]
    assert units["properties"].tolist() == [{"staff": "staff W", "phone": "139****0001"},
                                           {"staff": "staff E", "phone": "139****0001"}]
    # 0.01° × 0.02° at the equator on WGS84: 1113.19 m × 2211.5 m (independently, pyproj.Geod).
    from pyproj import Geod
    expected, _ = Geod(ellps="WGS84").geometry_area_perimeter(GRIDS["W"])
    assert units["area_m2"].iloc[0] == pytest.approx(abs(expected), rel=1e-6)


def test_projected_file_without_crs_is_refused_with_a_request_for_the_crs():
    data = feature_collection([({"code": "A"}, SQUARE_4547)])
    with pytest.raises(InvalidInput) as caught:
        read_layer(data, level=Level.GRID, filename="a.geojson")
    text = str(caught.value)
    assert "cannot be longitude/latitude" in text
    assert "(499950.0, 3500000.0) to (500050.0, 3500100.0)" in text
    assert "Upload it again with its CRS in the crs option, for example EPSG:4547" in text


def test_crs_option_is_honoured_and_area_is_in_square_metres():
    layer = read_layer(feature_collection([({"code": "A"}, SQUARE_4547)]), level=Level.GRID, crs="EPSG:4547")
    assert layer.units["area_m2"].iloc[0] == pytest.approx(10_000.0, abs=0.05)
    minx, _, maxx, _ = layer.units.total_bounds
    assert (minx + maxx) / 2 == pytest.approx(114.0, abs=1e-9)     # the zone's central meridian


def test_legacy_crs_member_is_read():
    legacy = {"type": "name", "properties": {"name": "urn:ogc:def:crs:EPSG::4547"}}
    layer = read_layer(feature_collection([({"code": "A"}, SQUARE_4547)], crs=legacy), level=Level.GRID)
    assert layer.units["area_m2"].iloc[0] == pytest.approx(10_000.0, abs=0.05)


def test_bare_epsg_number_is_accepted_and_unknown_crs_refused():
    data = feature_collection([({"code": "A"}, SQUARE_4547)])
    assert read_layer(data, level=Level.GRID, crs="4547").units["area_m2"].iloc[0] == pytest.approx(10_000, abs=0.05)
    with pytest.raises(InvalidInput, match="unknown coordinate reference system 'EPSG:999999'"):
        read_layer(data, level=Level.GRID, crs="EPSG:999999")


def test_every_feature_problem_is_reported_at_once_and_good_features_are_kept():
    data = feature_collection([
        ({"code": "A", "name": "a"}, box(0, 0, 1, 1)),
        ({"code": "B", "name": "b"}, LineString([(0, 0), (1, 1)])),
        ({"code": "C", "name": "c"}, Point(0, 0)),
        ({"code": None, "name": "d"}, box(1, 1, 2, 2)),
        ({"code": "A", "name": "e"}, box(2, 2, 3, 3)),
        ({"code": "E", "name": None}, None),
    ])
    layer = read_layer(data, level=Level.GRID)
    assert [(p.kind, p.severity.value, p.feature, p.code, str(p.message)) for p in layer.problems] == [
        ("not_polygon", "error", 1, "B", 'expected Polygon or MultiPolygon, got LineString in feature 1 (code "B")'),
        ("not_polygon", "error", 2, "C", 'expected Polygon or MultiPolygon, got Point in feature 2 (code "C")'),
        ("missing_code", "error", 3, None, "feature 3 has no code; every unit needs one"),
        ("duplicate_code", "error", 4, "A",
         "feature 4 (code \"A\"): code 'A' is already used by feature 0; codes must be unique"),
        ("empty_geometry", "error", 5, "E", 'expected Polygon or MultiPolygon, got an empty geometry in feature 5 '
                                            '(code "E")'),
        ("missing_name", "warning", 5, "E", 'feature 5 (code "E") has no name; the code is shown instead'),
    ]
    assert layer.units.index.tolist() == [0, 4]          # the usable features, by their index in the file
    assert layer.units["code"].tolist() == ["A", "A"]


def test_three_d_coordinates_are_dropped_and_wrong_winding_normalised_with_warnings():
    square_z = Polygon([(0, 0, 5), (0.01, 0, 5), (0.01, 0.01, 5), (0, 0.01, 5)])          # counter-clockwise
    clockwise = Polygon([(0.01, 0), (0.01, 0.01), (0.02, 0.01), (0.02, 0)])
    layer = read_layer(feature_collection([({"code": "Z", "name": "z"}, square_z),
                                           ({"code": "W", "name": "w"}, clockwise)]), level=Level.GRID)
    assert [(p.kind, p.feature, p.location) for p in layer.problems] == [
        ("z_dropped", 0, (0.005, 0.005)), ("orientation", 1, (0.015, 0.005))]
    assert not layer.units.geometry.has_z.any()
    assert layer.units.geometry.iloc[1].exterior.is_ccw
    assert layer.units.geometry.iloc[1].equals(clockwise)


def test_a_ring_with_too_few_points_is_an_error_naming_the_feature():
    text = json.dumps({"type": "FeatureCollection", "features": [
        {"type": "Feature", "properties": {"code": "OK", "name": "ok"},
         "geometry": {"type": "Polygon", "coordinates": [[[0, 0], [1, 0], [1, 1], [0, 0]]]}},
        {"type": "Feature", "properties": {"code": "T", "name": "t"},
         "geometry": {"type": "Polygon", "coordinates": [[[0, 0], [1, 0], [0, 0]]]}},
    ]})
    layer = read_layer(text.encode(), level=Level.GRID)
    (problem,) = layer.problems
    assert (problem.kind, problem.severity.value, problem.feature, problem.code) == ("too_few_points", "error", 1, "T")
    assert str(problem.message) == ('feature 1 (code "T"): a ring has too few points (Too few points in geometry '
                                    "component[0 0]); a ring needs at least 4 positions, the last repeating the first")
    assert layer.codes == ["OK"]


def test_coordinates_that_are_not_numbers_are_an_error():
    text = (b'{"type": "FeatureCollection", "features": ['
            b'{"type": "Feature", "properties": {"code": "N", "name": "n"}, "geometry": {"type": "Polygon", '
            b'"coordinates": [[[0, 0], [0.01, 0], [0.01, NaN], [0, 0]]]}},'
            b'{"type": "Feature", "properties": {"code": "OK", "name": "ok"}, "geometry": {"type": "Polygon", '
            b'"coordinates": [[[0, 0], [0.01, 0], [0.01, 0.01], [0, 0]]]}}]}')
    layer = read_layer(text, level=Level.GRID)
    assert [(p.kind, p.severity.value, p.feature, str(p.message)) for p in layer.problems] == [
        ("non_finite", "error", 0, 'feature 0 (code "N") has coordinates that are not numbers (NaN or infinity)')]
    assert layer.codes == ["OK"]


@pytest.mark.parametrize("lonlat, service_area, swapped", [
    ((116.39, 39.91), "73.4,18.1,135.1,53.6", False),
    ((39.91, 116.39), "73.4,18.1,135.1,53.6", True),      # latitude first: out of range as a latitude too
    ((39.91, 116.39), None, True),                        # even without a service area: latitude 116
    ((43.8, 87.6), "73.4,18.1,135.1,53.6", True),         # Ürümqi as (lat, lon): in range, but not in China
    ((43.8, 87.6), None, False),                          # without a service area it cannot be told apart
])
def test_swapped_latitude_and_longitude_are_errors(lonlat, service_area, swapped):
    from gridmap.coordinates import ServiceArea
    x, y = lonlat
    data = feature_collection([({"code": "S", "name": "s"}, box(x, y, x + 0.01, y + 0.01)),
                               ({"code": "OK", "name": "ok"}, box(116.0, 39.0, 116.01, 39.01))])
    area = ServiceArea.parse(service_area) if service_area else None
    layer = read_layer(data, level=Level.GRID, service_area=area)
    kinds = [(p.kind, p.feature) for p in layer.problems]
    if swapped:
        assert kinds == [("swapped_coordinates", 0)]
        assert layer.problems[0].location == (round(y + 0.005, 7), round(x + 0.005, 7))
        assert layer.codes == ["OK"]
    else:
        assert kinds == [] and layer.codes == ["S", "OK"]


def test_a_file_outside_the_service_area_is_warned_about():
    from gridmap.coordinates import CHINA
    layer = read_layer(grid_file(), level=Level.GRID, service_area=CHINA)
    assert [p.kind for p in layer.problems] == ["outside_service_area"]
    assert str(layer.problems[0].message).startswith("the file lies at (0.0, 0.0) – (0.02, 0.02), outside the "
                                                     "service area 73.4,18.1,135.1,53.6")


@pytest.mark.parametrize("data, expected", [
    (b"", "upload.geojson is empty; expected GeoJSON"),
    (b'{"type": "FeatureCollection", "features": []}', "upload.geojson has no features"),
    (b"{not json", "could not read upload.geojson as GeoJSON"),
])
def test_empty_and_unreadable_files_are_refused(data, expected):
    with pytest.raises(InvalidInput, match=expected):
        read_layer(data, level=Level.GRID)


def test_fields_are_detected_case_insensitively_or_given():
    data = feature_collection([({"编码": "G1", "名称": "一号", "上级编码": "S"}, box(0, 0, 1, 1))])
    units = read_layer(data, level=Level.GRID).units
    assert units[["code", "name", "parent_code"]].values.tolist() == [["G1", "一号", "S"]]
    data = feature_collection([({"WARD": 7.0, "Label": "x"}, box(0, 0, 1, 1))])
    assert read_layer(data, level=Level.GRID, code_field="WARD").units["code"].tolist() == ["7"]


def test_missing_code_property_asks_for_code_field():
    data = feature_collection([({"WARD": 7}, box(0, 0, 1, 1))])
    with pytest.raises(InvalidInput) as caught:
        read_layer(data, level=Level.GRID)
    assert "Say which one with the code_field option" in str(caught.value.details[0])
    with pytest.raises(InvalidInput) as caught:
        read_layer(data, level=Level.GRID, code_field="ward_no")
    assert str(caught.value.details[0]) == (
        "the file has no property 'ward_no' (given as the code_field option); it has: WARD")


def test_parent_is_the_unit_holding_the_largest_part():
    grids = read_layer(grid_file(), level=Level.GRID)
    children = read_layer(feature_collection([
        ({"code": "X"}, box(0.007, 0.0, 0.017, 0.01)),    # 30 % in W, 70 % in E
        ({"code": "Y"}, box(0.002, 0.0, 0.008, 0.005)),   # all in W
        ({"code": "Z"}, box(1.0, 1.0, 1.001, 1.001)),     # outside both
    ]), level=Level.MICRO_GRID)
    linked = derive_parents(children, grids)
    assert linked.units["parent_code"].tolist() == ["E", "W", None]
    assert linked.parent_source == "spatial"


def test_geojson_export_carries_properties_and_level():
    out = to_geojson(read_layer(grid_file(), level=Level.GRID))
    first = out["features"][0]
    assert first["properties"]["code"] == "W" and first["properties"]["staff"] == "staff W"
    assert first["properties"]["level"] == "grid"
    assert first["geometry"]["type"] == "Polygon"
    json.dumps(out)   # serialisable as is


def test_bow_tie_is_repaired_into_its_two_triangles_and_reported():
    # A bow-tie over the 0.01° cell W-S: make_valid gives two triangles, half the cell's area.
    bow_tie = Polygon([(0, 0), (0.01, 0.01), (0.01, 0), (0, 0.01), (0, 0)])
    layer = read_layer(feature_collection([({"code": "B"}, bow_tie)]), level=Level.MICRO_GRID)
    cell = read_layer(feature_collection([({"code": "C"}, box(0, 0, 0.01, 0.01))]), level=Level.GRID)
    assert layer.units.geometry.iloc[0].geom_type == "MultiPolygon"
    assert layer.units["area_m2"].iloc[0] == pytest.approx(cell.units["area_m2"].iloc[0] / 2, rel=1e-9)
    assert [(p.kind, p.location, round(p.size_m2, 1), str(p.message)) for p in layer.problems
            if p.kind != "missing_name"] == [
        ("invalid_geometry", (0.005, 0.005), 615453.6, 'feature 0 (code "B"): invalid geometry '
         "(Self-intersection[0.005 0.005]); repaired with make_valid, area 0.0 m² → 615453.6 m²")]
    assert derive_parents(layer, cell).units["parent_code"].tolist() == ["C"]


@pytest.mark.parametrize("crs", ["EPSG:5773", 'LOCAL_CS["x",UNIT["metre",1]]'])
def test_vertical_or_local_crs_is_refused(crs):
    with pytest.raises(InvalidInput, match="unknown coordinate reference system"):
        read_layer(feature_collection([({"code": "A"}, SQUARE_4547)]), level=Level.GRID, crs=crs)


def test_polygon_without_area_is_an_error_even_after_repair():
    flat = Polygon([(0, 0), (1, 1), (2, 2), (0, 0)])
    layer = read_layer(feature_collection([({"code": "OK", "name": "ok"}, box(0, 0, 1, 1)),
                                           ({"code": "F", "name": "f"}, flat)]), level=Level.GRID)
    assert [(p.kind, p.severity.value, str(p.message)) for p in layer.problems if p.kind != "invalid_geometry"] == [
        ("zero_area", "error", 'feature 1 (code "F") has no area (a degenerate polygon, e.g. all points on one line)')]
    assert layer.codes == ["OK"]
    with pytest.raises(InvalidInput, match="has no usable feature: 1 error"):
        read_layer(feature_collection([({"code": "F"}, flat)]), level=Level.GRID)
