"""Editing boundaries: split a unit along a line, merge two neighbours, and their HTTP endpoints."""
from __future__ import annotations

import io
import json
import re

import pytest
import shapely
from shapely import LineString, MultiPoint, Polygon, box
from shapely.geometry import mapping, shape

from gridmap.editing import insert_cut_points, merge_units, read_geometries, split_unit
from gridmap.errors import InvalidInput
from gridmap.levels import Level
from tests.conftest import feature_collection, grid_file, micro_file

UNIT = box(0.0, 0.0, 0.02, 0.01)  # 0.02° wide, 0.01° high


def coords(geometry) -> list[tuple[float, float]]:
    return [tuple(xy) for xy in shapely.get_coordinates(geometry).tolist()]


def as_json(geometry) -> dict:
    """A shapely geometry as plain GeoJSON (lists, as a client sends it)."""
    return shapely.geometry.mapping(shapely.from_geojson(shapely.to_geojson(geometry)))


# -- split_unit ------------------------------------------------------------------------------------

def test_a_straight_cut_gives_the_two_exact_halves_west_first():
    pieces = split_unit(UNIT, LineString([(0.005, -0.01), (0.005, 0.02)]))
    assert [p.geom_type for p in pieces] == ["Polygon", "Polygon"]
    assert pieces[0].equals(box(0.0, 0.0, 0.005, 0.01))
    assert pieces[1].equals(box(0.005, 0.0, 0.02, 0.01))
    assert [round(p.area, 12) for p in pieces] == [0.00005, 0.00015]
    assert shapely.union_all(pieces).equals(UNIT)
    # RFC 7946: exterior rings counter-clockwise
    assert all(p.exterior.is_ccw for p in pieces)


def test_a_zigzag_cut_gives_three_pieces_in_west_to_east_order():
    line = LineString([(0.005, -0.01), (0.005, 0.02), (0.015, 0.02), (0.015, -0.01)])
    pieces = split_unit(UNIT, line)
    assert [p.bounds for p in pieces] == [(0.0, 0.0, 0.005, 0.01), (0.005, 0.0, 0.015, 0.01),
                                          (0.015, 0.0, 0.02, 0.01)]
    assert sum(p.area for p in pieces) == pytest.approx(UNIT.area, rel=1e-12)


def test_a_cut_from_border_to_border_works_when_the_ends_are_on_the_edges():
    pieces = split_unit(UNIT, LineString([(0.01, 0.0), (0.01, 0.01)]))
    assert [p.equals(b) for p, b in zip(pieces, [box(0, 0, 0.01, 0.01), box(0.01, 0, 0.02, 0.01)])] == [True, True]


def test_a_line_that_misses_the_unit_is_refused():
    with pytest.raises(InvalidInput, match="does not cross the unit"):
        split_unit(UNIT, LineString([(0.03, -0.01), (0.03, 0.02)]))


def test_a_line_that_stops_inside_the_unit_is_refused():
    with pytest.raises(InvalidInput, match="must start and end outside the unit"):
        split_unit(UNIT, LineString([(0.005, -0.01), (0.005, 0.005)]))


def test_a_line_along_the_border_cuts_nothing():
    with pytest.raises(InvalidInput, match="does not cut the unit into two or more pieces"):
        split_unit(UNIT, LineString([(-0.01, 0.0), (0.03, 0.0)]))


def test_the_neighbour_gets_the_new_corner_where_the_cut_meets_the_shared_border():
    north = box(0.0, 0.01, 0.02, 0.02)
    far = box(0.05, 0.05, 0.06, 0.06)
    pieces = split_unit(UNIT, LineString([(0.005, -0.01), (0.005, 0.02)]))
    north_after, far_after = insert_cut_points([north, far], UNIT, pieces)
    assert (0.005, 0.01) in coords(north_after) and (0.005, 0.01) not in coords(north)
    assert north_after.equals(north)  # same shape, one more vertex
    assert coords(far_after) == coords(far)
    # the corner is exactly the one in the pieces: the border stays shared vertex for vertex
    assert (0.005, 0.01) in coords(pieces[0]) and (0.005, 0.01) in coords(pieces[1])


# -- merge_units -----------------------------------------------------------------------------------

def test_two_boxes_sharing_an_edge_merge_into_their_exact_union():
    west, east = box(0.0, 0.0, 0.01, 0.01), box(0.01, 0.0, 0.02, 0.01)
    merged = merge_units(west, east)
    assert merged.geom_type == "Polygon"
    assert merged.equals(box(0.0, 0.0, 0.02, 0.01))
    assert merged.area == pytest.approx(0.0002, rel=1e-12)
    assert merged.exterior.is_ccw
    # the ends of the old border stay corners: other neighbours may share them
    assert {(0.01, 0.0), (0.01, 0.01)} <= set(coords(merged))
    assert shapely.normalize(merged).equals_exact(shapely.normalize(Polygon(
        [(0, 0), (0.01, 0), (0.02, 0), (0.02, 0.01), (0.01, 0.01), (0, 0.01)])), 0)


def test_neighbours_sharing_part_of_an_edge_merge_into_an_l_shape():
    merged = merge_units(box(0, 0, 2, 1), box(1, 1, 2, 2))
    assert merged.equals(Polygon([(0, 0), (2, 0), (2, 2), (1, 2), (1, 1), (0, 1)]))


def test_two_boxes_touching_at_a_corner_are_refused():
    with pytest.raises(InvalidInput, match="touch only at a corner"):
        merge_units(box(0, 0, 1, 1), box(1, 1, 2, 2))


def test_two_boxes_apart_are_refused():
    with pytest.raises(InvalidInput, match="do not touch at all"):
        merge_units(box(0, 0, 1, 1), box(3, 0, 4, 1))


def test_a_border_a_rounding_error_apart_still_merges_into_one_polygon_without_a_sliver():
    west = box(0.0, 0.0, 0.01, 0.01)
    east = Polygon([(0.01 + 1e-12, 0.0), (0.02, 0.0), (0.02, 0.01), (0.01 - 1e-12, 0.01)])
    merged = merge_units(west, east)
    assert merged.geom_type == "Polygon" and not merged.interiors
    assert merged.equals(box(0.0, 0.0, 0.02, 0.01))


# -- reading the request's geometries --------------------------------------------------------------

def test_every_bad_geometry_is_reported_at_once():
    bowtie = {"type": "Polygon", "coordinates": [[[0, 0], [1, 1], [1, 0], [0, 1], [0, 0]]]}
    with pytest.raises(InvalidInput) as info:
        read_geometries([("geometry", bowtie, ("Polygon",)), ("line", {"type": "Point", "coordinates": [0, 0]},
                                                                  ("LineString",)),
                         ("neighbours[0]", "abc", ("Polygon",))])
    details = [str(d) for d in info.value.details]
    assert str(info.value.summary) == "the edit has 3 problem(s); nothing was changed"
    assert details[0].startswith("geometry is not a valid Polygon: Self-intersection")
    assert details[1] == "expected a GeoJSON LineString in line, got Point"
    assert details[2] == 'expected a GeoJSON Polygon in neighbours[0], got "abc"'


@pytest.mark.parametrize(("value", "expected"), [
    (None, "expected a GeoJSON Polygon in geometry, got null"),
    ({"coordinates": []}, 'expected a GeoJSON Polygon in geometry, got {"coordinates": []}'),
    ({"type": "Polygon"}, "geometry is not a valid GeoJSON Polygon: missing 'coordinates'"),
    ({"type": "Polygon", "coordinates": [[1, 2]]}, "geometry is not a valid GeoJSON Polygon: "
                                                    "'int' object is not iterable"),
    ({"type": "Polygon", "coordinates": []}, "geometry is an empty Polygon"),
    ({"type": "Polygon", "coordinates": [[[0, 0], [200, 0], [0, 1], [0, 0]]]},
     "geometry has coordinates outside longitude -180..180, latitude -90..90"),
])
def test_malformed_geojson_says_what_arrived(value, expected):
    with pytest.raises(InvalidInput) as info:
        read_geometries([("geometry", value, ("Polygon",))])
    assert [str(d) for d in info.value.details] == [expected]


# -- the HTTP endpoints ----------------------------------------------------------------------------

def test_split_endpoint_answers_the_exact_pieces(client):
    response = client.post("/api/edit/split", json={
        "geometry": mapping(UNIT), "line": {"type": "LineString", "coordinates": [[0.005, -0.01], [0.005, 0.02]]}})
    assert response.status_code == 200, response.get_json()
    pieces = [shape(g) for g in response.get_json()["geometries"]]
    assert len(pieces) == 2
    assert shapely.normalize(pieces[0]).equals_exact(shapely.normalize(box(0.0, 0.0, 0.005, 0.01)), 0)
    assert shapely.normalize(pieces[1]).equals_exact(shapely.normalize(box(0.005, 0.0, 0.02, 0.01)), 0)
    assert "neighbours" not in response.get_json()


def test_split_endpoint_adds_the_new_corners_to_the_neighbours_it_was_sent(client):
    north = box(0.0, 0.01, 0.02, 0.02)
    response = client.post("/api/edit/split", json={
        "geometry": as_json(UNIT), "line": {"type": "LineString", "coordinates": [[0.005, -0.01], [0.005, 0.02]]},
        "neighbours": [as_json(north)]})
    assert response.status_code == 200, response.get_json()
    [after] = response.get_json()["neighbours"]
    assert after["coordinates"] == [[[0.02, 0.01], [0.02, 0.02], [0.0, 0.02], [0.0, 0.01], [0.005, 0.01],
                                     [0.02, 0.01]]]


def test_split_endpoint_refuses_a_line_that_does_not_cut(client):
    response = client.post("/api/edit/split", json={
        "geometry": mapping(UNIT), "line": {"type": "LineString", "coordinates": [[0.005, -0.01], [0.005, 0.005]]}})
    assert response.status_code == 400
    body = response.get_json()
    assert "must start and end outside the unit" in body["error"]
    assert body["details"] == []


def test_merge_endpoint_answers_the_union(client):
    response = client.post("/api/edit/merge", json={"geometries": [as_json(box(0, 0, 0.01, 0.01)),
                                                                   as_json(box(0.01, 0, 0.02, 0.01))]})
    assert response.status_code == 200, response.get_json()
    merged = shape(response.get_json()["geometry"])
    assert merged.equals(box(0, 0, 0.02, 0.01))
    assert MultiPoint([(0.01, 0), (0.01, 0.01)]).within(merged.boundary)


def test_merge_endpoint_refuses_corner_neighbours_with_a_clear_message(client):
    response = client.post("/api/edit/merge", json={"geometries": [as_json(box(0, 0, 0.01, 0.01)),
                                                                   as_json(box(0.01, 0.01, 0.02, 0.02))]})
    assert response.status_code == 400
    assert response.get_json() == {
        "error": "these two units do not share a border: they touch only at a corner", "details": []}


@pytest.mark.parametrize(("path", "body", "error", "details"), [
    ("/api/edit/merge", {"geometries": [mapping(box(0, 0, 1, 1))]},
     "expected \"geometries\": a list of two GeoJSON Polygons, got 1 item(s)", []),
    ("/api/edit/merge", {"geometries": "both"},
     "expected \"geometries\": a list of two GeoJSON Polygons, got \"both\"", []),
    ("/api/edit/merge", {"geometries": [{"type": "Polygon"}, {"type": "LineString", "coordinates": [[0, 0], [1, 1]]}]},
     "the edit has 2 problem(s); nothing was changed",
     ["geometries[0] is not a valid GeoJSON Polygon: missing 'coordinates'",
      "expected a GeoJSON Polygon in geometries[1], got LineString"]),
    ("/api/edit/split", {"geometry": mapping(UNIT)},
     "the edit has 1 problem(s); nothing was changed", ["expected a GeoJSON LineString in line, got null"]),
    ("/api/edit/split", {"geometry": mapping(UNIT), "line": {"type": "LineString", "coordinates": [[0, 0], [1, 1]]},
                         "neighbours": {"type": "Polygon"}},
     'expected "neighbours": a list of GeoJSON Polygons, got {"type": "Polygon"}', []),
])
def test_bad_edit_requests_get_a_400_that_names_the_problem(client, path, body, error, details):
    response = client.post(path, json=body)
    assert response.status_code == 400
    assert response.get_json() == {"error": error, "details": details}


def test_a_body_that_is_not_json_is_refused(client):
    response = client.post("/api/edit/split", data="{not json", content_type="application/json")
    assert response.status_code == 400
    assert response.get_json()["error"] == ("expected a JSON object (Content-Type: application/json); "
                                            "got application/json")
    response = client.post("/api/edit/merge", data="a=1")
    assert response.status_code == 400
    assert "expected a JSON object" in response.get_json()["error"]


# -- the editor page -------------------------------------------------------------------------------

@pytest.fixture
def block_client(app):
    """The web client with the 2×2 block stored: grids W, E; micro-grids W-S, W-N, E-S, E-N."""
    service = app.extensions["gridmap"]
    service.import_layer(Level.GRID, grid_file())
    service.import_layer(Level.MICRO_GRID, micro_file())
    return app.test_client()


def page_config(response) -> dict:
    html = response.get_data(as_text=True)
    match = re.search(r'<script type="application/json" id="editor-config">(.*?)</script>', html, re.S)
    assert match, html[:2000]
    return json.loads(match.group(1))


def test_the_editor_page_loads_the_level_its_parent_and_only_local_scripts(block_client):
    response = block_client.get("/layers/micro_grid/edit")
    assert response.status_code == 200
    html = response.get_data(as_text=True)
    config = page_config(response)
    assert {k: config[k] for k in ("level", "version", "layerUrl", "parentUrl", "saveUrl", "splitUrl",
                                   "mergeUrl", "tiles")} == {
        "level": "micro_grid", "version": None, "layerUrl": "/api/layers/micro_grid",
        "parentUrl": "/api/layers/grid", "saveUrl": "/api/layers/micro_grid", "splitUrl": "/api/edit/split",
        "mergeUrl": "/api/edit/merge", "tiles": None}
    assert config["strings"]["splitDone"] == "{unit} was split into {count} pieces; give each its code and name."
    scripts = re.findall(r'<(?:script|link)[^>]+(?:src|href)="([^"]+)"', html)
    ours = ["/static/vendor/leaflet/leaflet.js", "/static/vendor/leaflet-geoman/leaflet-geoman.min.js",
            "/static/editor.js"]
    assert [s for s in scripts if s in ours] == ours  # Leaflet, then Geoman, then the editor
    assert not [s for s in scripts if "//" in s]
    for path in scripts:
        if path.startswith("/static/"):
            with block_client.get(path) as asset:
                assert asset.status_code == 200, path


def test_the_editor_starts_from_a_chosen_version_and_a_top_level_has_no_parent(block_client):
    config = page_config(block_client.get("/layers/grid/edit?version=1"))
    assert (config["layerUrl"], config["version"], config["parentUrl"]) == ("/api/layers/grid?version=1", 1, None)


def test_a_level_never_uploaded_cannot_be_edited(client):
    response = client.get("/layers/micro_grid/edit")
    assert response.status_code == 404
    assert "no Micro-grid layer has been uploaded yet" in response.get_data(as_text=True)


def test_the_editor_page_needs_a_known_level_and_a_version_number(block_client):
    response = block_client.get("/layers/parish/edit")
    assert response.status_code == 400
    assert "unknown level" in response.get_data(as_text=True)
    response = block_client.get("/layers/micro_grid/edit?version=two")
    assert response.status_code == 400
    assert "version: &#39;two&#39; is not a version number; expected 1, 2, 3, …" in response.get_data(as_text=True)


def test_an_edit_is_checked_with_the_tolerance_its_version_was_saved_with(client):
    """A level committed with a tolerance that accepts its slivers can be edited and saved again as
    it is: the editor sends the tolerance of the version it opened (Boston's precincts, 44 overlaps
    under 1,000 m², could not be saved unchanged from the editor before)."""
    overlapping = feature_collection([({"code": "A", "name": "a"}, box(0, 0, 0.01, 0.01)),
                                      ({"code": "B", "name": "b"}, box(0.00999, 0, 0.02, 0.01))])
    assert client.post("/api/layers/grid", data={"file": (io.BytesIO(overlapping), "g.geojson"),
                                                 "tolerance_m2": "2000"},
                       content_type="multipart/form-data").status_code == 201
    config = page_config(client.get("/layers/grid/edit"))
    assert config["tolerance"] == 2000.0
    level = client.get("/api/layers/grid").get_json()
    unchanged = {"geojson": level, "base_version": 1, "mode": "draft"}
    assert client.post("/api/layers/grid", json=unchanged).status_code == 400          # at the default 1 m²
    saved = client.post("/api/layers/grid", json={**unchanged, "tolerance_m2": config["tolerance"]})
    assert saved.status_code == 201 and saved.get_json()["report"]["errors"] == []
