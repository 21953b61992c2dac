"""Incident coordinates in China's systems (WGS84, GCJ-02, BD-09, EPSG codes) through the API and
the CLI: stored in WGS84, the coordinates as given kept and returned."""
from __future__ import annotations

import io

import pytest
from click.testing import CliRunner

from gridmap.cli import cli

# wandergis/coordtransform's test point: WGS84 (116.404, 39.915) is GCJ-02 (116.41024449916938,
# 39.91640428150164) and BD-09 (116.41036949371029 ... via GCJ-02), as tests/test_chinacoords.py checks
GCJ = (116.41024449916938, 39.91640428150164)
WGS = (116.404, 39.915)


def post(client, records, query=""):
    return client.post("/api/incidents" + query, json=records)


def stored(client, incident_id):
    feature = client.get(f"/api/incidents/{incident_id}").get_json()
    return feature["geometry"]["coordinates"], feature["properties"]["original"]


def test_a_record_in_gcj02_is_stored_in_wgs84_with_what_was_given(client):
    response = post(client, [
        {"category": "litter", "lon": GCJ[0], "lat": GCJ[1], "crs": "GCJ02"},
        {"category": "litter", "lon": WGS[0], "lat": WGS[1], "crs": "WGS84"},          # WGS84: nothing kept
        {"category": "litter", "lon": GCJ[0], "lat": GCJ[1]}], query="?crs=gcj-02")   # the request's default
    assert response.status_code == 201, response.get_json()
    for incident_id in (1, 3):
        (lon, lat), original = stored(client, incident_id)
        assert lon == pytest.approx(WGS[0], abs=1e-8) and lat == pytest.approx(WGS[1], abs=1e-8)
        assert original == {"crs": "GCJ02", "x": GCJ[0], "y": GCJ[1]}
    assert stored(client, 2) == ([WGS[0], WGS[1]], None)


def test_epsg_codes_and_bad_systems(client):
    response = post(client, [
        {"category": "litter", "lon": 500000.0, "lat": 4419000.0, "crs": "EPSG:4547"},    # CGCS2000 3° zone, 114°E
        {"category": "litter", "lon": 114.0, "lat": 30.0, "crs": "EPSG:4490"},
        {"category": "litter", "lon": 114.0, "lat": 30.0, "crs": "mars"}])
    assert response.status_code == 201
    body = response.get_json()
    assert body["created"] == 2 and [e["row"] for e in body["errors"]] == [2]
    assert body["errors"][0]["error"].startswith("crs: unknown coordinate system 'mars'; expected WGS84, GCJ02")
    (lon, lat), original = stored(client, 1)
    assert lon == pytest.approx(114.0, abs=1e-9) and 39.9 < lat < 40.0
    assert original == {"crs": "EPSG:4547", "x": 500000.0, "y": 4419000.0}
    assert stored(client, 2) == ([114.0, 30.0], {"crs": "EPSG:4490", "x": 114.0, "y": 30.0})


def test_a_file_in_bd09_through_the_form_and_the_cli(client, app, tmp_path, monkeypatch):
    csv = f"category,lon,lat,reported_at\nlitter,{GCJ[0]},{GCJ[1]},2026-03-05 10:00\n".encode()
    response = client.post("/api/incidents", data={"file": (io.BytesIO(csv), "gcj.csv"), "crs": "GCJ02"},
                           content_type="multipart/form-data")
    assert response.status_code == 201, response.get_json()
    (lon, lat), original = stored(client, 1)
    assert (lon, lat) == pytest.approx(list(WGS), abs=1e-8) and original["crs"] == "GCJ02"
    refused = client.post("/api/incidents", data={"file": (io.BytesIO(csv), "gcj.csv"), "crs": "GCJ03"},
                          content_type="multipart/form-data")
    assert refused.status_code == 400 and "unknown coordinate system 'GCJ03'" in refused.get_json()["error"]
    path = tmp_path / "bd.csv"
    path.write_bytes(csv)
    monkeypatch.setenv("GRIDMAP_DATABASE_URL", app.config["GRIDMAP_SETTINGS"].database_url)
    result = CliRunner().invoke(cli, ["import-incidents", str(path), "--crs", "GCJ02"])
    assert result.exit_code == 0, result.output
    (lon, lat), original = stored(client, 2)
    assert (lon, lat) == pytest.approx(list(WGS), abs=1e-8) and original["crs"] == "GCJ02"
