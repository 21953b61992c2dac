"""The map page's data API: heat cells, outside points, outlines (ETag, 304) and unit counts,
on the 2×2 block with a handful of hand-placed incidents."""
from __future__ import annotations

import gzip
import io
import json

import pytest
from shapely import box

from gridmap.web import mapdata

from .conftest import CELLS, feature_collection, grid_file, micro_file

# lon, lat.  At zoom 10 a cell is 1.5 · 360 / 2¹⁸ = 0.0020599365234375°, counted from lon -180,
# lat -90: A and B share cell (87383, 43693), C is in (87388, 43693), D in (87395, 43705).
# At zoom 12 (a quarter of that) A and B fall in cells (349535, 174772) and (349535, 174773).
A, B, C, D = (0.0051, 0.0051), (0.0053, 0.0055), (0.0151, 0.0052), (0.03, 0.03)
EVERYWHERE = "-1,-1,1,1"
ZOOM10_CELL = 1.5 * 360 / 2 ** 18


def upload(client, level: str, data: bytes):
    response = client.post(f"/api/layers/{level}", data={"file": (io.BytesIO(data), "units.geojson")},
                           content_type="multipart/form-data")
    assert response.status_code == 201, response.get_json()
    return response


@pytest.fixture
def block(client):
    """The 2×2 block with A, B (litter, in W-S), C (illegal parking, in E-S), D (litter, outside)."""
    upload(client, "grid", grid_file())
    upload(client, "micro_grid", micro_file())
    incidents = [("litter", A), ("litter", B), ("illegal_parking", C), ("litter", D)]
    assert client.post("/api/incidents", json=[{"category": c, "lon": p[0], "lat": p[1],
                                                "reported_at": "2026-03-0%d 10:00" % (i + 1)}
                                               for i, (c, p) in enumerate(incidents)]).status_code == 201
    return client


def heat(client, query: str) -> dict:
    response = client.get("/api/heat?" + query)
    assert response.status_code == 200, response.get_json()
    body = response.get_json()
    body["cells"].sort()
    return body


def test_heat_counts_incidents_per_cell_at_their_mean_position(block):
    body = heat(block, f"bbox={EVERYWHERE}&zoom=10")
    assert body == {"zoom": 10, "scope": "bbox", "cell_deg": ZOOM10_CELL, "total": 4, "max": 2,
                    "cells": [[0.0052, 0.0151, 1], [0.0053, 0.0052, 2], [0.03, 0.03, 1]],
                    "outside": {"points": [[0.03, 0.03]], "total": 1, "limit": 2000}}


def test_a_closer_zoom_has_smaller_cells(block):
    body = heat(block, f"bbox={EVERYWHERE}&zoom=12")
    assert body["cell_deg"] == ZOOM10_CELL / 4
    assert body["cells"] == [[0.0051, 0.0051, 1], [0.0052, 0.0151, 1], [0.0055, 0.0053, 1], [0.03, 0.03, 1]]


def test_heat_keeps_to_the_box_and_the_filters(block):
    inside = heat(block, "bbox=0,0,0.02,0.02&zoom=10")
    assert (inside["cells"], inside["total"]) == ([[0.0052, 0.0151, 1], [0.0053, 0.0052, 2]], 3)
    assert inside["outside"] == {"points": [], "total": 0, "limit": 2000}
    litter = heat(block, f"bbox={EVERYWHERE}&zoom=10&category=litter")
    assert (litter["cells"], litter["total"]) == ([[0.0053, 0.0052, 2], [0.03, 0.03, 1]], 3)
    march2 = heat(block, f"bbox={EVERYWHERE}&zoom=10&from=2026-03-02&to=2026-03-03")     # B and C
    assert march2["cells"] == [[0.0052, 0.0151, 1], [0.0055, 0.0053, 1]]
    in_e = heat(block, f"bbox={EVERYWHERE}&zoom=10&unit=E")
    assert (in_e["cells"], in_e["outside"]["total"]) == ([[0.0052, 0.0151, 1]], 0)


def test_scope_all_holds_every_matching_incident_whatever_the_box(block):
    body = heat(block, "bbox=0,0,0.02,0.02&zoom=10&scope=all")
    assert body["scope"] == "all" and body["total"] == 4
    assert body["cells"] == [[0.0052, 0.0151, 1], [0.0053, 0.0052, 2], [0.03, 0.03, 1]]
    assert body["outside"]["points"] == [[0.03, 0.03]]


def test_scope_all_falls_back_to_the_box_when_there_are_too_many_cells(block, monkeypatch):
    monkeypatch.setattr(mapdata, "MAX_CELLS", 2)
    body = heat(block, "bbox=0,0,0.02,0.02&zoom=10&scope=all")
    assert body["scope"] == "bbox" and body["total"] == 3 and len(body["cells"]) == 2


def test_too_many_cells_are_merged_into_larger_ones(block, monkeypatch):
    monkeypatch.setattr(mapdata, "MAX_CELLS", 3)
    body = heat(block, f"bbox={EVERYWHERE}&zoom=12")                  # 4 cells: A and B merge
    assert body["cell_deg"] == ZOOM10_CELL / 2
    assert body["cells"] == [[0.0052, 0.0151, 1], [0.0053, 0.0052, 2], [0.03, 0.03, 1]]


def test_outside_points_are_capped_and_counted(block, monkeypatch):
    block.post("/api/incidents", json={"category": "litter", "lon": -0.02, "lat": 0.01})
    monkeypatch.setattr(mapdata, "OUTSIDE_LIMIT", 1)
    body = heat(block, f"bbox={EVERYWHERE}&zoom=10")
    assert body["outside"] == {"points": [[0.03, 0.03]], "total": 2, "limit": 1}       # lowest id first


def test_an_older_version_decides_what_is_outside(block):
    west = feature_collection([({"code": c, "name": c}, CELLS[c]) for c in ("W-S", "W-N")])
    upload(block, "micro_grid", west)                                 # version 2: C is outside now
    now = heat(block, f"bbox={EVERYWHERE}&zoom=10")
    assert now["outside"] == {"points": [[0.0052, 0.0151], [0.03, 0.03]], "total": 2, "limit": 2000}
    then = heat(block, f"bbox={EVERYWHERE}&zoom=10&level=micro_grid&version=1")
    assert then["outside"] == {"points": [[0.03, 0.03]], "total": 1, "limit": 2000}


@pytest.mark.parametrize("query, detail", [
    ("bbox=1,2,3&zoom=10", "bbox='1,2,3' is not a box; expected west,south,east,north in degrees "
                           "(e.g. 114.0,30.0,114.2,30.2)"),
    ("bbox=3,0,1,1&zoom=10", "bbox='3,0,1,1' is not a box; expected west ≤ east within -180..180 and "
                             "south ≤ north within -90..90"),
    (f"bbox={EVERYWHERE}&zoom=10&category=cats", None),
])
def test_bad_boxes_and_filters_are_refused_as_on_every_incident_query(block, query, detail):
    response = block.get("/api/heat?" + query)
    assert response.status_code == 400 and response.get_json()["error"] == "the filters are not valid"
    if detail:
        assert response.get_json()["details"] == [detail]


@pytest.mark.parametrize("zoom", ["", "x", "25", "-1", "nan"])
def test_a_zoom_is_a_number_from_0_to_24(block, zoom):
    response = block.get(f"/api/heat?bbox={EVERYWHERE}&zoom={zoom}")
    assert response.status_code == 400
    assert response.get_json()["error"] == f"zoom={zoom!r} is not valid; expected a number from 0 to 24"


def test_a_fractional_zoom_is_rounded_down_and_no_box_is_everywhere(block):
    body = heat(block, "zoom=10.7")
    assert body["zoom"] == 10 and body["total"] == 4 and body["scope"] == "all"


def test_answers_are_gzipped_for_browsers_that_take_it(block, monkeypatch):
    monkeypatch.setattr(mapdata, "GZIP_MIN_BYTES", 10)
    response = block.get(f"/api/heat?bbox={EVERYWHERE}&zoom=10", headers={"Accept-Encoding": "gzip, br"})
    assert response.headers["Content-Encoding"] == "gzip" and "Accept-Encoding" in response.headers["Vary"]
    assert json.loads(gzip.decompress(response.data))["total"] == 4
    plain = block.get(f"/api/heat?bbox={EVERYWHERE}&zoom=10")
    assert "Content-Encoding" not in plain.headers and plain.get_json()["total"] == 4


# -- outlines -------------------------------------------------------------------------------------

def test_outlines_come_with_an_etag_and_a_304_for_the_same_version(block):
    first = block.get("/api/outlines/micro_grid")
    assert first.status_code == 200 and first.mimetype == "application/json"
    body = first.get_json()
    assert (body["level"], body["version"], body["code"]) == ("micro_grid", 1, ["W-S", "W-N", "E-S", "E-N"])
    etag = first.headers["ETag"]
    assert etag.startswith('"outlines-micro_grid-v1-') and first.headers["Cache-Control"] == "no-cache"
    again = block.get("/api/outlines/micro_grid?version=1", headers={"If-None-Match": etag})
    assert again.status_code == 304 and again.data == b"" and again.headers["ETag"] == etag
    grid = block.get("/api/outlines/grid", headers={"If-None-Match": etag})
    assert grid.status_code == 200 and grid.headers["ETag"] != etag


def test_a_new_version_has_a_new_etag(block):
    etag = block.get("/api/outlines/micro_grid").headers["ETag"]
    upload(block, "micro_grid", micro_file())
    current = block.get("/api/outlines/micro_grid", headers={"If-None-Match": etag})
    assert current.status_code == 200 and current.get_json()["version"] == 2 and current.headers["ETag"] != etag
    assert block.get("/api/outlines/micro_grid?version=1", headers={"If-None-Match": etag}).status_code == 304


def test_outlines_are_built_once_per_version(block, monkeypatch):
    built = []
    real = mapdata.outlines
    monkeypatch.setattr(mapdata, "outlines", lambda layer, **kw: built.append(layer.version) or real(layer, **kw))
    for _ in range(3):
        block.get("/api/outlines/micro_grid")
        block.get("/api/outlines/micro_grid?version=1")
    assert built == [1]


def test_outlines_gzipped(block):
    response = block.get("/api/outlines/micro_grid", headers={"Accept-Encoding": "gzip"})
    assert response.headers["Content-Encoding"] == "gzip"
    assert json.loads(gzip.decompress(response.data))["code"] == ["W-S", "W-N", "E-S", "E-N"]


def test_missing_outlines_are_404_and_a_bad_level_400(client):
    assert client.get("/api/outlines/grid").status_code == 404
    upload(client, "grid", grid_file())
    assert client.get("/api/outlines/grid?version=7").status_code == 404
    assert client.get("/api/outlines/grid?version=x").status_code == 400
    assert client.get("/api/outlines/parish").status_code == 400


def test_names_in_outlines_are_json_text_not_html(client):
    evil = "<img src=x onerror=alert(1)>"
    upload(client, "grid", feature_collection([({"code": "X1", "name": evil}, box(0, 0, 0.01, 0.01))]))
    response = client.get("/api/outlines/grid")
    assert response.mimetype == "application/json" and response.get_json()["name"] == [evil]


# -- counts ---------------------------------------------------------------------------------------

def test_counts_per_unit_follow_the_filters_and_the_version(block):
    assert block.get("/api/outlines/grid/counts").get_json() == {"level": "grid", "version": 1,
                                                                 "counts": {"W": 2, "E": 1}}
    assert block.get("/api/outlines/micro_grid/counts?category=illegal_parking").get_json()["counts"] == {"E-S": 1}
    west = feature_collection([({"code": c, "name": c}, CELLS[c]) for c in ("W-S", "W-N")])
    upload(block, "micro_grid", west)
    assert block.get("/api/outlines/micro_grid/counts").get_json() == {"level": "micro_grid", "version": 2,
                                                                       "counts": {"W-S": 2}}
    assert block.get("/api/outlines/micro_grid/counts?version=1").get_json()["counts"] == {"W-S": 2, "E-S": 1}


def test_counts_of_a_level_without_units_are_empty(client):
    assert client.get("/api/outlines/community/counts").get_json() == {"level": "community", "version": None,
                                                                      "counts": {}}
