"""Open311 GeoReport v2 (gridmap.web.open311), as the spec's examples at wiki.open311.org/GeoReport_v2
have it: field names, arrays, open/closed, the error array."""
from __future__ import annotations

import io
import json
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from gridmap import categories
from gridmap.chinacoords import gcj02_to_wgs84
from gridmap.web import open311

from .conftest import build_app, grid_file, micro_file

V2 = "/open311/v2"
# The spec's POST example, byte for byte but for its service_code (001 is not one of ours): its
# point is in San Francisco, outside every unit here.
SPEC_EXAMPLE = ("api_key=xyz&jurisdiction_id=city.gov&service_code=road_damage&lat=37.76524078&long=-122.4212043"
                "&address_string=1234+5th+street&email=smit333%40sfgov.edu&device_id=tt222111&account_id=123456"
                "&first_name=john&last_name=smith&phone=111111111&description=A+large+sinkhole+is+destroying+the+street"
                "&media_url=http%3A%2F%2Ffarm3.static.flickr.com%2F2002%2F2212426634_5ed477a060.jpg"
                "&attribute[WHISPAWN]=123456&attribute[WHISDORN]=COISL001")
FORM = "application/x-www-form-urlencoded; charset=utf-8"
OUTSIDE = "The position is outside the grid units, so the community office will assign it by hand."
CODES = ", ".join(c.code for c in categories.CATEGORIES)


def open311_app(tmp_path, **env):
    app = build_app(tmp_path, **env)
    if "open311" not in app.blueprints:        # until app.py registers it
        app.register_blueprint(open311.bp)
    return app


@pytest.fixture
def client(tmp_path):
    app = open311_app(tmp_path, GRIDMAP_LANG="en", GRIDMAP_DEADLINES="litter=24,*=72")
    client = app.test_client()
    for level, data in (("grid", grid_file()), ("micro_grid", micro_file())):
        response = client.post(f"/api/layers/{level}", data={"file": (io.BytesIO(data), "f.geojson")},
                               content_type="multipart/form-data")
        assert response.status_code == 201, response.get_json()
    at(client, datetime(2026, 3, 5, 10, 0))
    yield client
    app.extensions["gridmap"].store.close()


def at(client, when: datetime) -> None:
    """Set the service's clock: report times and step times."""
    client.application.extensions["gridmap"]._now = lambda: when


def post(client, **form):
    return client.post(f"{V2}/requests.json", data=form)


def ids(response) -> list[str]:
    assert response.status_code == 200, response.get_json()
    return [r["service_request_id"] for r in response.get_json()]


def report(client, *records) -> None:
    """Incidents through the JSON API, with their report times."""
    assert client.post("/api/incidents", json=list(records)).status_code == 201


def test_discovery_lists_this_server_as_a_json_georeport_v2_endpoint(client):
    response = client.get(f"{V2}/discovery.json")
    assert (response.status_code, response.mimetype) == (200, "application/json")
    assert response.get_json() == {
        "changeset": "2026-11-30T00:00:00Z", "contact": "Ask the community grid office that runs this service.",
        "key_service": "api_key is a gridmap account's token; ask the administrator for one.",
        "endpoints": [{"specification": "http://wiki.open311.org/GeoReport_v2", "url": "http://localhost/open311/v2",
                       "changeset": "2026-11-30T00:00:00Z", "type": "production", "formats": ["application/json"]}]}


def test_the_services_are_our_categories_named_in_the_request_language(client, tmp_path):
    english = client.get(f"{V2}/services.json").get_json()
    assert [s["service_code"] for s in english] == [c.code for c in categories.CATEGORIES]
    assert english[0] == {"service_code": "illegal_parking", "service_name": "Illegal parking",
                          "description": "Illegal parking", "metadata": False, "type": "realtime",
                          "keywords": "车辆乱停, 乱停车, 违章停车, 违停", "group": "Grid incidents"}
    assert english[-1] == {"service_code": "other", "service_name": "Other", "description": "Other",
                           "metadata": False, "type": "realtime", "keywords": "", "group": "Grid incidents"}
    chinese = client.get(f"{V2}/services.json?lang=zh").get_json()
    assert (chinese[0]["service_name"], chinese[0]["description"], chinese[0]["group"]) == (
        "乱停乱放", "乱停乱放", "网格事件")
    # a deployment's default language is Chinese: what an Open311 client gets without asking
    app = open311_app(tmp_path / "zh")
    try:
        default = app.test_client().get(f"{V2}/services.json").get_json()
    finally:
        app.extensions["gridmap"].store.close()
    assert [s["service_name"] for s in default][:3] == ["乱停乱放", "飞线充电", "私拉电线"]


def test_a_service_definition_has_no_attributes_and_an_unknown_code_is_404(client):
    assert client.get(f"{V2}/services/litter.json").get_json() == {"service_code": "litter", "attributes": []}
    missing = client.get(f"{V2}/services/001.json")
    assert (missing.status_code, missing.get_json()) == (404, [
        {"code": 404, "description": f"unknown service_code '001'; expected one of {CODES}"}])


def test_the_spec_example_request_is_stored_and_read_back_by_id_and_in_the_list(client):
    created = client.post(f"{V2}/requests.json", data=SPEC_EXAMPLE, content_type=FORM)
    assert (created.status_code, created.mimetype) == (200, "application/json")
    assert created.get_json() == [{"service_request_id": "1", "service_notice": OUTSIDE, "account_id": None}]
    expected = {
        "service_request_id": "1", "status": "open", "status_notes": None, "service_name": "Road damage",
        "service_code": "road_damage", "description": "A large sinkhole is destroying the street",
        "agency_responsible": None, "service_notice": OUTSIDE, "requested_datetime": "2026-03-05T10:00:00+08:00",
        "updated_datetime": "2026-03-05T10:00:00+08:00", "expected_datetime": "2026-03-08T10:00:00+08:00",
        "address": None, "address_id": None, "zipcode": None, "lat": 37.76524078, "long": -122.4212043,
        "media_url": None}
    assert client.get(f"{V2}/requests/1.json").get_json() == [expected]
    listed = client.get(f"{V2}/requests.json?start_date=2026-03-05T02:00:00Z&end_date=2026-03-05T10:00:00%2B08:00"
                        "&service_code=road_damage&status=open&jurisdiction_id=city.gov")
    assert listed.get_json() == [expected]
    # stored as a report from open311 outside every unit (flagged, not refused), without the reporter's details
    stored = client.get("/api/incidents/1").get_json()["properties"]
    assert (stored["category"], stored["source"], stored["external_id"], stored["unassigned"], stored["units"]) == (
        "road_damage", "open311", None, True, {"grid": None, "micro_grid": None})
    kept = json.dumps(stored, ensure_ascii=False)
    given = ("john", "smith", "smit333", "111111111", "tt222111", "123456", "5th street", "flickr", "COISL001")
    assert [w for w in given if w in kept] == []


def test_a_request_inside_the_units_names_them_and_its_deadline(client):
    created = post(client, service_code="litter", lat="0.005", long="0.015", description="楼下垃圾\n没人收")
    assert created.get_json() == [{"service_request_id": "1", "service_notice": "微网格E-S will handle it by "
                                   "2026-03-06 10:00.", "account_id": None}]
    found = client.get(f"{V2}/requests/1.json").get_json()[0]
    assert {k: found[k] for k in ("description", "agency_responsible", "expected_datetime", "lat", "long")} == {
        "description": "楼下垃圾\n没人收", "agency_responsible": "微网格E-S / 网格E",
        "expected_datetime": "2026-03-06T10:00:00+08:00", "lat": 0.005, "long": 0.015}
    assert client.get(f"{V2}/requests/1.json?lang=zh").get_json()[0]["service_name"] == "乱扔垃圾"


def test_a_gcj02_request_is_stored_in_wgs84(client):
    assert post(client, service_code="fire_hazard", lat="39.916527", long="116.397128", crs="GCJ02").status_code == 200
    lon, lat = gcj02_to_wgs84(116.397128, 39.916527)
    found = client.get(f"{V2}/requests/1.json").get_json()[0]
    assert (found["long"], found["lat"]) == (float(lon), float(lat))
    assert client.get("/api/incidents/1").get_json()["properties"]["original"] == {
        "crs": "GCJ02", "x": 116.397128, "y": 39.916527}


def test_a_bad_request_gets_every_problem_in_the_spec_error_array_and_stores_nothing(client):
    unknown = post(client, service_code="001", lat="0.005", long="0.005")
    assert (unknown.status_code, unknown.get_json()) == (404, [
        {"code": 404, "description": f"unknown service_code '001'; expected one of {CODES}"}])
    several = post(client, service_code="001", address_string="1234 5th street")
    assert (several.status_code, several.get_json()) == (400, [
        {"code": 404, "description": f"unknown service_code '001'; expected one of {CODES}"},
        {"code": 400, "description": "expected lat and long: a request is placed by its coordinates (address_string "
                                     "and address_id are not looked up); given: address_string"}])
    numbers = post(client, lat="north", long="inf", description="x" * 4001, crs="EPSG:999999")
    assert (numbers.status_code, [e["description"] for e in numbers.get_json()]) == (400, [
        f"service_code is missing; expected one of {CODES}",
        "long='inf' is not a number; expected decimal degrees (or metres in a projected crs)",
        "lat='north' is not a number; expected decimal degrees (or metres in a projected crs)",
        "description is 4001 characters long; expected at most 4000",
        "crs: unknown coordinate system 'EPSG:999999'; expected WGS84, GCJ02 (Gaode/AMap, Tencent), BD09 (Baidu) "
        "or an EPSG code such as EPSG:4490 or EPSG:4547"])
    beyond = post(client, service_code="litter", lat="91", long="0.005")
    assert (beyond.status_code, beyond.get_json()) == (400, [
        {"code": 400, "description": "coordinates out of range: lon=0.005, lat=91.0; expected WGS84 longitude "
                                     "-180..180 and latitude -90..90"}])
    assert client.get("/api/incidents").get_json()["numberReturned"] == 0


def test_the_status_is_open_until_a_close_and_says_how_it_ended(client):
    post(client, service_code="litter", lat="0.005", long="0.005")
    post(client, service_code="clutter", lat="0.015", long="0.015")
    at(client, datetime(2026, 3, 5, 11, 0))
    assert client.post("/api/incidents/1/steps", json={"action": "dispatch", "actor": "x"}).status_code == 200
    dispatched = client.get(f"{V2}/requests/1.json").get_json()[0]
    assert {k: dispatched[k] for k in ("status", "status_notes", "updated_datetime", "service_notice")} == {
        "status": "open", "status_notes": None, "updated_datetime": "2026-03-05T11:00:00+08:00",
        "service_notice": "微网格W-S will handle it by 2026-03-06 10:00."}
    at(client, datetime(2026, 3, 5, 15, 30))
    closed = client.post("/api/incidents/1/steps", json={"action": "close", "actor": "x", "resolution": "fixed"})
    assert closed.status_code == 200
    assert client.post("/api/incidents/2/steps", json={"action": "reject", "actor": "x",
                                                       "note": "不属于网格事项"}).status_code == 200
    found = client.get(f"{V2}/requests.json?service_request_id=1,2").get_json()
    assert [{k: r[k] for k in ("service_request_id", "status", "status_notes", "updated_datetime", "service_notice")}
            for r in found] == [
        {"service_request_id": "1", "status": "closed", "status_notes": "Fixed.",
         "updated_datetime": "2026-03-05T15:30:00+08:00", "service_notice": None},
        {"service_request_id": "2", "status": "closed", "status_notes": "Not accepted. 不属于网格事项",
         "updated_datetime": "2026-03-05T15:30:00+08:00", "service_notice": None}]
    day = "start_date=2026-03-05&end_date=2026-03-05"
    assert ids(client.get(f"{V2}/requests.json?{day}&status=closed")) == ["1", "2"]
    assert ids(client.get(f"{V2}/requests.json?{day}&status=open")) == []
    assert client.post("/api/incidents/2/steps", json={"action": "reopen", "actor": "x"}).status_code == 200
    assert ids(client.get(f"{V2}/requests.json?{day}&status=open")) == ["2"]
    assert ids(client.get(f"{V2}/requests.json?{day}&status=open&status=closed")) == ["1", "2"]


def test_the_date_filters_bound_the_report_time_inclusively(client):
    report(client, *({"category": "litter", "lon": 0.005, "lat": 0.005, "reported_at": t} for t in (
        "2026-03-05 10:00:00", "2026-03-05 10:00:01", "2026-03-06 09:59:59", "2026-03-04 23:59:59")))

    def listed(query: str) -> list[str]:
        return ids(client.get(f"{V2}/requests.json?{query}"))

    assert listed("start_date=2026-03-05T02:00:00Z&end_date=2026-03-05T10:00:00%2B08:00") == ["1"]
    assert listed("start_date=2026-03-05T10:00:01&end_date=2026-03-06") == ["2", "3"]   # local time; a whole day
    assert listed("start_date=2026-03-05&end_date=2026-03-05") == ["1", "2"]
    assert listed("start_date=2026-03-05T10:00:00%2B08:00") == ["1", "2", "3"]          # and the 90 days after
    assert listed("end_date=2026-03-05T09:59:59%2B08:00") == ["4"]                      # and the 90 days before
    assert listed("start_date=2026-01-01&end_date=2026-03-31") == ["1", "2", "3", "4"]  # 90 days exactly
    assert listed("service_code=clutter,litter&start_date=2026-03-05&end_date=2026-03-05") == ["1", "2"]
    assert listed("service_code=clutter&start_date=2026-03-05&end_date=2026-03-05") == []
    refused = client.get(f"{V2}/requests.json?start_date=2026-01-01&end_date=2026-04-01")
    assert (refused.status_code, refused.get_json()) == (400, [
        {"code": 400, "description": "start_date='2026-01-01' and end_date='2026-04-01' are more than 90 days apart; "
                                     "expected at most 90 days"}])
    backwards = client.get(f"{V2}/requests.json?start_date=2026-03-06&end_date=2026-03-05T12:00:00Z")
    assert backwards.get_json() == [
        {"code": 400, "description": "start_date='2026-03-06' is after end_date='2026-03-05T12:00:00Z'"}]
    bad = client.get(f"{V2}/requests.json?start_date=yesterday&status=pending&service_code=001")
    assert (bad.status_code, [e["description"] for e in bad.get_json()]) == (400, [
        f"unknown service_code '001'; expected one of {CODES}",
        "status='pending' is not valid; expected open or closed",
        "start_date='yesterday' is not a date and time; expected ISO 8601 such as 2010-05-24T00:00:00Z"])


def test_the_list_covers_the_last_90_days_unless_ids_are_named(client):
    now = datetime.now(ZoneInfo("Asia/Shanghai")).replace(tzinfo=None, microsecond=0)
    report(client, *({"category": "litter", "lon": 0.005, "lat": 0.005, "reported_at": f"{now - timedelta(days=d)}"}
                     for d in (100, 10)))
    assert ids(client.get(f"{V2}/requests.json")) == ["2"]
    assert ids(client.get(f"{V2}/requests.json?service_request_id=2,1&status=closed")) == ["1", "2"]   # overrides
    bad = client.get(f"{V2}/requests.json?service_request_id=1,x")
    assert (bad.status_code, bad.get_json()) == (400, [
        {"code": 400, "description": "service_request_id='x' is not a request id; expected whole numbers separated "
                                     "by commas"}])


def test_a_list_holds_at_most_1000_requests(client):
    report(client, *({"category": "litter", "lon": 0.005, "lat": 0.005, "reported_at": "2026-03-05 10:00"}
                     for _ in range(1001)))
    listed = ids(client.get(f"{V2}/requests.json?start_date=2026-03-05&end_date=2026-03-05"))
    assert listed == [str(i) for i in range(1, 1001)]


def test_only_json_is_answered(client):
    json_only = ".xml is not supported: this server answers JSON only (application/json, as discovery.json lists); " \
                "ask for .json"
    for path in ("discovery.xml", "services.xml", "services/litter.xml", "requests.xml", "requests/1.xml"):
        response = client.get(f"{V2}/{path}")
        assert (response.status_code, response.get_json()) == (400, [{"code": 400, "description": json_only}]), path
    posted = client.post(f"{V2}/requests.xml", data=SPEC_EXAMPLE, content_type=FORM)
    assert (posted.status_code, posted.get_json()) == (400, [{"code": 400, "description": json_only}])
    assert client.get("/api/incidents").get_json()["numberReturned"] == 0


def test_unknown_requests_paths_and_methods_answer_the_spec_error_array(client):
    nowhere = ("There is no such Open311 resource; http://localhost/open311/v2/discovery.json lists what this server "
               "has.")
    for path, status, description in (
            ("requests/99.json", 404, "there is no service request 99"),
            ("requests/abc.json", 404, "there is no service request abc"),
            ("requests/99999999999999999999.json", 404, "there is no service request 99999999999999999999"),
            ("tokens/1.json", 404, nowhere), ("", 404, nowhere)):
        response = client.get(f"{V2}/{path}")
        assert (response.status_code, response.get_json()) == (status, [{"code": status, "description": description}])
    for method, path in (("post", "services.json"), ("delete", "requests.json"), ("put", "requests/1.json")):
        response = getattr(client, method)(f"{V2}/{path}")
        assert (response.status_code, response.get_json()) == (
            405, [{"code": 405, "description": "This method is not allowed here."}]), path
