"""Editing boundaries: split a unit along a line, merge two neighbours, and their HTTP endpoints."""
from __future__ import annotations

import io
import json
import re

import numpy as np
import pytest
import shapely
import shapely.affinity
from shapely import LineString, MultiPoint, Polygon, box
from shapely.geometry import mapping, shape

from gridmap import editing
from gridmap.editing import complete_level, insert_cut_points, merge_units, read_geometries, split_unit
from gridmap.errors import InvalidInput
from gridmap.levels import Level
from tests.conftest import CELLS, feature_collection, grid_file, micro_file

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
    assert response.get_json()["error"] == ("the JSON body could not be read: Expecting property name enclosed "
                                            "in double quotes: line 1 column 2 (char 1)")
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
    assert {k: config[k] for k in ("level", "version", "baseVersion", "scope", "unitsUrl", "openUrl", "areasUrl",
                                   "open", "saveUrl", "splitUrl", "mergeUrl", "basemap")} == {
        "level": "micro_grid", "version": None, "baseVersion": 1, "scope": "all",
        "unitsUrl": "/api/layers/micro_grid/edit/units?version=1",
        "openUrl": "/api/layers/micro_grid/edit/units?version=1",
        "areasUrl": None, "open": None, "saveUrl": "/api/layers/micro_grid/edit/save", "splitUrl": "/api/edit/split",
        "mergeUrl": "/api/edit/merge", "basemap": None}
    assert config["strings"]["splitDone"] == "{unit} was split into {count} pieces; give each its code and name."
    scripts = re.findall(r'<(?:script|link)[^>]+(?:src|href)="([^"]+)"', html)
    ours = ["/static/vendor/leaflet/leaflet.js", "/static/vendor/leaflet-geoman/leaflet-geoman.min.js",
            "/static/basemap.js", "/static/editor.js"]
    assert [s for s in scripts if s in ours] == ours  # Leaflet, then Geoman, then the basemap and the editor
    assert not [s for s in scripts if "//" in s]
    for path in scripts:
        if path.startswith("/static/"):
            with block_client.get(path) as asset:
                assert asset.status_code == 200, path


def test_the_editor_starts_from_a_chosen_version_and_a_top_level_has_no_parent(block_client):
    config = page_config(block_client.get("/layers/grid/edit?version=1"))
    assert (config["unitsUrl"], config["version"], config["scope"]) == (
        "/api/layers/grid/edit/units?version=1", 1, "all")
    units = block_client.get(config["unitsUrl"]).get_json()
    assert (units["version"], units["parent"]) == (1, None)
    assert [f["properties"]["code"] for f in units["features"]] == ["W", "E"]


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


# -- a large level, an area at a time: the units loaded and the level completed from an edit ------

def feature(code: str, geometry, **properties) -> dict:
    return {"type": "Feature", "properties": {"code": code, **properties}, "geometry": as_json(geometry)}


def stored(code: str, parent: str) -> dict:
    """A micro-grid of the block as a completed level keeps it: stored properties, no computed ones."""
    return {"type": "Feature", "properties": {"staff": f"worker {code}", "code": code, "name": f"微网格{code}",
                                              "parent_code": parent},
            "geometry": as_json(shapely.orient_polygons(CELLS[code]))}


def test_a_partial_edit_replaces_removes_and_adds_units_and_keeps_the_rest_exactly(block):
    base = block.layer(Level.MICRO_GRID)
    grown = Polygon([(0.01, 0.01), (0.02, 0.01), (0.02, 0.02), (0.01, 0.02), (0.005, 0.015)])
    edit = {"type": "FeatureCollection", "features": [
        {**feature("E-N2", grown, name="改名", area_m2=5.0, level="micro_grid"), "id": "E-N"},
        feature("X", box(0.02, 0.0, 0.03, 0.01), name="新"),
    ]}
    completed = complete_level(base, edit, ["W-S"])
    assert completed == {"type": "FeatureCollection", "features": [
        stored("W-N", "W"), stored("E-S", "E"),
        # in the place of the unit it replaces, its computed properties and its id left out
        {"type": "Feature", "properties": {"code": "E-N2", "name": "改名"}, "geometry": as_json(grown)},
        {"type": "Feature", "properties": {"code": "X", "name": "新"}, "geometry": as_json(box(0.02, 0.0, 0.03, 0.01))},
    ]}


def test_a_partial_edit_with_mistakes_reports_every_one(block):
    base = block.layer(Level.MICRO_GRID)
    edit = {"type": "FeatureCollection", "features": [
        {**feature("A", CELLS["W-S"]), "id": "nope"}, {**feature("B", CELLS["W-N"]), "id": "W-N"},
        {**feature("C", CELLS["W-N"]), "id": "W-N"}, {**feature("D", CELLS["E-S"]), "id": "E-S"}, "junk"]}
    with pytest.raises(InvalidInput) as error:
        complete_level(base, edit, ["E-S", "gone"])
    assert str(error.value.summary) == "the edit has 5 problem(s); nothing was changed"
    assert [str(d) for d in error.value.details] == [
        "units.features[0].id: 'nope' is not a unit of Micro-grid version 1",
        "units.features[2].id: unit 'W-N' is changed or removed more than once",
        "units.features[3].id: unit 'E-S' is changed or removed more than once",
        'expected a GeoJSON Feature in units.features[4], got "junk"',
        "units.removed: 'gone' is not a unit of Micro-grid version 1"]
    with pytest.raises(InvalidInput, match='expected "units": a GeoJSON FeatureCollection; got nothing'):
        complete_level(base, None, [])


def test_units_around_are_those_that_touch_even_at_a_corner(block):
    units = block.layer(Level.MICRO_GRID).units   # W-S, W-N, E-S, E-N
    assert editing.units_around(units, np.array([0])).tolist() == [1, 2, 3]
    far = units.set_geometry([shapely.affinity.translate(g, xoff=k // 2) for k, g in enumerate(units.geometry)])
    assert editing.units_around(far, np.array([0])).tolist() == [1]
    assert editing.units_in(units, box(0.0, 0.0, 0.01, 0.02), "W").tolist() == [0, 1]
    assert editing.units_in_box(units, (0.015, 0.015, 0.03, 0.03)).tolist() == [3]


@pytest.fixture
def area_client(block_client, monkeypatch):
    """The block as a "large" level: edited a grid at a time."""
    from gridmap.web import editor
    monkeypatch.setattr(editor, "WHOLE_LIMIT", 2)
    return block_client


def test_a_large_level_opens_on_its_areas_and_loads_one_with_the_units_around_it(area_client):
    config = page_config(area_client.get("/layers/micro_grid/edit?unit=W"))
    assert (config["scope"], config["areasUrl"], config["open"]) == (
        "area", "/api/layers/micro_grid/edit/areas", {"code": [], "area": ["W"]})
    assert config["openUrl"] == "/api/layers/micro_grid/edit/units?version=1&area=W"
    assert ('<link rel="preload" as="fetch" crossorigin="anonymous" href="/api/layers/micro_grid/edit/units?'
            'version=1&amp;area=W">') in area_client.get("/layers/micro_grid/edit?unit=W").get_data(as_text=True)
    assert page_config(area_client.get("/layers/micro_grid/edit?unit=E-N"))["open"] == {"code": ["E-N"], "area": []}
    assert page_config(area_client.get("/layers/micro_grid/edit"))["openUrl"] is None   # the areas only
    assert area_client.get("/layers/micro_grid/edit?unit=Q").status_code == 404
    areas = area_client.get(config["areasUrl"]).get_json()
    assert [(f["properties"], shape(f["geometry"]).equals(box(*b))) for f, b in zip(areas["features"], [
        (0, 0, 0.01, 0.02), (0.01, 0, 0.02, 0.02)])] == [({"code": "W", "name": "网格W"}, True),
                                                          ({"code": "E", "name": "网格E"}, True)]
    assert area_client.get(config["unitsUrl"]).status_code == 400   # the whole level: too many units

    body = area_client.get(config["unitsUrl"] + "&area=W").get_json()
    assert [(f["properties"]["code"], f["editable"]) for f in body["features"]] == [
        ("W-S", True), ("W-N", True), ("E-S", False), ("E-N", False)]
    assert body["features"][0]["geometry"] == json.loads(shapely.to_geojson(shapely.orient_polygons(CELLS["W-S"])))
    assert (body["version"], body["parent"]["version"]) == (1, 1)
    assert [f["properties"]["code"] for f in body["parent"]["features"]] == ["W", "E"]
    one = area_client.get(config["unitsUrl"] + "&code=E-N&bbox=0.001,0.001,0.002,0.002").get_json()
    assert [(f["properties"]["code"], f["editable"]) for f in one["features"]] == [
        ("W-S", True), ("E-N", True), ("W-N", False), ("E-S", False)]
    assert area_client.get(config["unitsUrl"] + "&area=Q").status_code == 404
    assert area_client.get(config["unitsUrl"] + "&code=Q").status_code == 404
    assert area_client.get(config["unitsUrl"] + "&bbox=1,2").status_code == 400


def test_a_large_level_with_no_level_above_loads_the_units_in_view(area_client, monkeypatch):
    from gridmap.web import editor
    monkeypatch.setattr(editor, "WHOLE_LIMIT", 1)
    config = page_config(area_client.get("/layers/grid/edit"))
    assert (config["scope"], config["bounds"], config["areasUrl"], config["openUrl"]) == (
        "view", [0.0, 0.0, 0.02, 0.02], None, None)
    east = area_client.get(config["unitsUrl"] + "&bbox=0.015,0.005,0.03,0.01").get_json()
    assert [(f["properties"]["code"], f["editable"]) for f in east["features"]] == [("E", True), ("W", False)]
    monkeypatch.setattr(editor, "BOX_LIMIT", 1)
    both = area_client.get(config["unitsUrl"] + "&bbox=-1,-1,1,1").get_json()   # zoom in: nothing loaded
    assert (both["features"], both["too_many"], both["limit"]) == ([], 2, 1)


def test_the_editor_save_completes_the_level_and_its_parent_from_the_edited_units(block_client):
    """The corner (0.01, 0) of W-S and E-S, on the line between grids W and E, moves east to
    (0.012, 0): the page sends those two micro-grids and the two grids, nothing else."""
    ws = Polygon([(0.0, 0.0), (0.012, 0.0), (0.01, 0.01), (0.0, 0.01)])
    es = Polygon([(0.012, 0.0), (0.02, 0.0), (0.02, 0.01), (0.01, 0.01)])
    w = Polygon([(0.0, 0.0), (0.012, 0.0), (0.01, 0.01), (0.01, 0.02), (0.0, 0.02)])
    e = Polygon([(0.012, 0.0), (0.02, 0.0), (0.02, 0.02), (0.01, 0.02), (0.01, 0.01)])
    before = {f["properties"]["code"]: f for f in block_client.get("/api/layers/micro_grid").get_json()["features"]}
    body = {"units": {"type": "FeatureCollection", "features": [
                {**feature("W-S", ws, name="微网格W-S", staff="worker W-S", parent_code="W"), "id": "W-S"},
                {**feature("E-S", es, name="微网格E-S", staff="worker E-S", parent_code="E"), "id": "E-S"}]},
            "removed": [], "base_version": 1, "mode": "draft", "author": "规划员", "note": "corner",
            "tolerance_m2": 1.0,
            "parent": {"units": {"type": "FeatureCollection", "features": [
                {**feature("W", w, name="网格W", staff="staff W", phone="139****0001"), "id": "W"},
                {**feature("E", e, name="网格E", staff="staff E", phone="139****0001"), "id": "E"}]},
                "removed": [], "base_version": 1}}
    response = block_client.post("/api/layers/micro_grid/edit/save", json=body)
    assert response.status_code == 201, response.get_json()
    answer = response.get_json()
    assert (answer["status"], answer["version"], answer["url"]) == ("draft", 2, "/layers/micro_grid/versions/2")
    assert answer["report"]["errors"] == [] and answer["report"]["warnings"] == []
    assert sorted(c["code"] for c in answer["diff"]["reshaped"]) == ["E-S", "W-S"]
    assert (answer["diff"]["added"], answer["diff"]["removed"], answer["diff"]["unchanged"]) == ([], [], 2)
    assert sorted(c["code"] for c in answer["parent"]["diff"]["reshaped"]) == ["E", "W"]
    draft = {f["properties"]["code"]: f for f in
             block_client.get("/api/layers/micro_grid?version=2").get_json()["features"]}
    assert [draft[c]["geometry"] for c in ("W-S", "E-S")] == [json.loads(shapely.to_geojson(g)) for g in (ws, es)]
    assert [draft[c] == {**before[c], "properties": {**before[c]["properties"], "area_m2": draft[c]["properties"]
                                                     ["area_m2"]}} for c in ("W-N", "E-N")] == [True, True]
    grids = {f["properties"]["code"]: shape(f["geometry"]) for f in
             block_client.get("/api/layers/grid?version=2").get_json()["features"]}
    assert grids["W"].equals(w) and grids["E"].equals(e)

    # a version that does not exist is not found; once another planner has committed a version, an
    # edit of version 1 is a conflict, and nothing is saved
    assert block_client.post("/api/layers/micro_grid/edit/save", json={**body, "base_version": 7}).status_code == 404
    block_client.application.extensions["gridmap"].import_layer(Level.MICRO_GRID, micro_file())
    stale = block_client.post("/api/layers/micro_grid/edit/save", json=body)
    assert stale.status_code == 409, stale.get_json()
    versions = block_client.get("/api/layers/micro_grid/versions").get_json()["versions"]
    assert [v["version"] for v in versions] == [3, 2, 1]


@pytest.mark.parametrize(("body", "error"), [
    ({"units": {"type": "FeatureCollection", "features": []}}, 'expected "base_version": the version the edit '
                                                               'started from'),
    ({"units": {"type": "FeatureCollection", "features": []}, "base_version": 1, "removed": "W-S"},
     'expected "removed": a list of unit codes; got "W-S"'),
    ({"units": [], "base_version": 1}, 'expected "units": a GeoJSON FeatureCollection; got []'),
    ({"units": {"type": "FeatureCollection", "features": []}, "base_version": 1, "parent": {"units": None}},
     'expected "parent.base_version": the version the edit started from'),
])
def test_a_bad_editor_save_gets_a_400_that_names_the_problem(block_client, body, error):
    response = block_client.post("/api/layers/micro_grid/edit/save", json=body)
    assert response.status_code == 400
    assert response.get_json()["error"] == error
