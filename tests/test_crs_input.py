"""Incident coordinates in China's systems (WGS84, GCJ-02, BD-09, EPSG codes) through the API and
the CLI: stored in WGS84, the coordinates as given kept and returned.  A system PROJ reads but
cannot use is refused, for incident points and boundary files alike, and a point or feature that
comes out of a conversion without a position is refused, never stored."""
from __future__ import annotations

import io

import geopandas as gpd
import pytest
from click.testing import CliRunner
from hypothesis import given, settings
from hypothesis import strategies as st
from pyproj import CRS
from shapely import Point, box

from gridmap.cli import cli
from gridmap.coordinates import parse_crs, to_wgs84, usable
from gridmap.errors import InvalidInput

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


UNUSABLE = ("is a coordinate reference system PROJ reads but cannot convert to longitude/latitude; expected one "
            "such as EPSG:4547 or EPSG:4490")


def test_a_request_whose_system_proj_cannot_use_is_refused_and_a_records_is_its_row_error(client):
    refused = post(client, [{"category": "litter", "lon": 1, "lat": 2}], query="?crs=%2Bproj%3Dtmerc+%2Bk%3D1e308")
    assert refused.status_code == 400
    assert refused.get_json()["error"] == f"crs: '+proj=tmerc +k=1e308' {UNUSABLE}"
    response = post(client, [
        {"category": "litter", "lon": 500000.0, "lat": 4400000.0, "crs": "+proj=tmerc +lon_0=1e308"},
        {"category": "litter", "lon": 500000.0, "lat": 4400000.0, "crs": "+proj=longlat +a=1e308"},
        {"category": "litter", "lon": 500000.0, "lat": 4419000.0, "crs": "EPSG:4547"}])
    assert response.status_code == 201
    assert [(e["row"], e["error"]) for e in response.get_json()["errors"]] == [
        (0, f"crs: '+proj=tmerc +lon_0=1e308' {UNUSABLE}"), (1, f"crs: '+proj=longlat +a=1e308' {UNUSABLE}")]
    everything_bad = post(client, [{"category": "litter", "lon": 1e300, "lat": 0.0, "crs": "EPSG:4547"}])
    assert everything_bad.status_code == 400 and everything_bad.get_json()["details"] == [
        "row 0: coordinates (1e+300, 0.0) in EPSG:4547 cannot be converted to WGS84: they are outside what that "
        "system covers"]


# --- a boundary file's CRS (gridmap.coordinates) ----------------------------------------------------

@pytest.mark.parametrize("text, expected", [
    ("EPSG:999999", "crs: unknown coordinate reference system 'EPSG:999999'; expected a code such as EPSG:4547"),
    ("Massachusetts Mainland", "crs: unknown coordinate reference system 'Massachusetts Mainland'; expected a code "
                               "such as EPSG:4547"),
    ("+init=epsg:2249", "crs: unknown coordinate reference system '+init=epsg:2249'; expected a code such as "
                        "EPSG:4547"),
    ("x" * 100, f"crs: unknown coordinate reference system {'x' * 80 + '…'!r}; expected a code such as EPSG:4547"),
    ("x" * 10_240, "crs: the coordinate reference system is 10240 characters long; expected at most 10000 (a code "
                   "such as EPSG:4547, a PROJ string or a WKT)"),
    ("+proj=tmerc +lon_0=1e308", f"crs: '+proj=tmerc +lon_0=1e308' {UNUSABLE}"),
    ("+proj=longlat +a=1e308", f"crs: '+proj=longlat +a=1e308' {UNUSABLE}"),
])
def test_a_boundary_files_crs_is_refused_naming_the_option(text, expected):
    with pytest.raises(InvalidInput) as refused:
        parse_crs(text)
    assert str(refused.value) == expected and refused.value.summary.params["option"] == "crs"


@pytest.mark.parametrize("text", ["EPSG:2249", "2249", "epsg:4547", "CGCS2000", "cgcs-2000", "ESRI:102100",
                                  "urn:ogc:def:crs:EPSG::4547", "http://www.opengis.net/def/crs/EPSG/0/4547",
                                  "+proj=tmerc +lon_0=114 +x_0=500000 +ellps=GRS80", CRS.from_epsg(2249).to_wkt(),
                                  CRS.from_epsg(4547).to_wkt("WKT1_ESRI"), CRS.from_epsg(4490).to_json(pretty=True)])
def test_codes_proj_strings_wkt_and_projjson_are_read(text):
    assert usable(parse_crs(text))


def test_features_that_come_out_without_a_position_refuse_the_file():
    ortho = "+proj=ortho +lat_0=30 +lon_0=114"   # a view of one hemisphere: nothing beyond its rim
    frame = gpd.GeoDataFrame(geometry=[box(0, 0, 1000, 1000), box(7e6, 0, 7.1e6, 1000), Point(8e6, 8e6)])
    with pytest.raises(InvalidInput) as refused:
        to_wgs84(frame, crs=ortho, source="grid.geojson")
    assert str(refused.value) == (
        "grid.geojson: 2 features cannot be converted from +proj=ortho +lat_0=30 +lon_0=114 +type=crs to "
        "longitude/latitude (the first: feature 1): their coordinates lie outside what that system covers; check "
        "the crs option, for example EPSG:4547")
    inside = to_wgs84(frame.iloc[:1], crs=ortho, source="grid.geojson")
    assert inside.crs == CRS.from_epsg(4326) and inside.total_bounds == pytest.approx([114, 30, 114.0104, 30.0091],
                                                                                       abs=1e-4)


def test_a_files_own_crs_proj_cannot_use_asks_for_the_option():
    frame = gpd.GeoDataFrame(geometry=[box(0, 0, 1000, 1000)], crs=CRS.from_user_input("+proj=tmerc +lon_0=1e308"))
    with pytest.raises(InvalidInput) as refused:
        to_wgs84(frame, crs=None, source="grid.shp")
    assert str(refused.value) == (
        "grid.shp: the file's coordinate reference system +proj=tmerc +lon_0=1e308 +type=crs cannot be converted "
        "to longitude/latitude; upload it again with its CRS in the crs option, for example EPSG:4547")


@settings(max_examples=200, deadline=None, database=None)
@given(st.one_of(st.text(), st.from_regex(r"\+proj=(tmerc|longlat|merc) \+(lon_0|k|x_0|a|pm)=-?[0-9.e]{1,6}",
                                          fullmatch=True),
                 st.integers(0, 10**10).map(str), st.integers(0, 10**6).map("EPSG:{}".format)))
def test_any_text_is_a_usable_crs_or_refused_naming_the_option(text):
    try:
        crs = parse_crs(text, option="crs_field")
    except InvalidInput as refused:
        assert refused.summary.params["option"] == "crs_field"
        return
    assert (crs.is_geographic or crs.is_projected) and usable(crs)
