"""The staff registry: people attached to units, named by a lookup, and the one an incident goes to."""
from __future__ import annotations

import io

import pytest

from .conftest import CELLS, build_app, feature_collection, grid_file, micro_file


def upload(client, level: str, data: bytes):
    response = client.post(f"/api/layers/{level}", data={"file": (io.BytesIO(data), "f.geojson")},
                           content_type="multipart/form-data")
    assert response.status_code == 201, response.get_json()


@pytest.fixture
def client(tmp_path):
    app = build_app(tmp_path, GRIDMAP_LANG="en")
    client = app.test_client()
    upload(client, "grid", grid_file())
    upload(client, "micro_grid", micro_file())
    yield client
    app.extensions["gridmap"].store.close()


def register(client, level, unit, role, name, phone=""):
    response = client.post("/api/staff", json={"level": level, "unit": unit, "role": role, "name": name,
                                               "phone": phone})
    assert response.status_code == 201, response.get_json()
    return response.get_json()


def assignee(client, incident_id):
    return client.get(f"/api/incidents/{incident_id}").get_json()["properties"]["assignee"]


def test_a_lookup_names_the_people_of_each_unit_of_the_chain(client):
    worker = register(client, "micro_grid", "W-S", "grid_worker", "王网格员", "13800000001")
    assert worker == {"id": 1, "level": "micro_grid", "unit_code": "W-S", "role": "grid_worker",
                      "name": "王网格员", "phone": "13800000001", "active": True}
    register(client, "grid", "W", "grid_leader", "李网格长")
    units = client.get("/api/lookup?lon=0.005&lat=0.005").get_json()["units"]
    assert [(u["level"], u["code"], u["staff"], u["staff_members"]) for u in units] == [
        ("micro_grid", "W-S", "worker W-S", [{"id": 1, "name": "王网格员", "phone": "13800000001",
                                             "role": "grid_worker"}]),
        ("grid", "W", "staff W", [{"id": 2, "name": "李网格长", "phone": "", "role": "grid_leader"}])]
    assert client.patch("/api/staff/1", json={"active": False}).get_json()["active"] is False
    assert client.get("/api/lookup?lon=0.005&lat=0.005").get_json()["units"][0]["staff_members"] == []
    assert [m["active"] for m in client.get("/api/staff").get_json()["staff"]] == [False, True]


def test_a_new_report_is_dispatched_to_its_worker_and_follows_escalation_and_boundaries(client):
    register(client, "micro_grid", "W-S", "grid_worker", "王网格员", "13800000001")
    register(client, "grid", "W", "grid_worker", "周网格员")
    register(client, "grid", "W", "grid_leader", "李网格长")
    register(client, "grid", "W", "community", "赵社区")
    created = client.post("/api/incidents", json=[
        {"category": "litter", "lon": 0.005, "lat": 0.005, "reported_at": "2026-03-05 10:00"},   # W-S
        {"category": "litter", "lon": 0.015, "lat": 0.005, "reported_at": "2026-03-05 10:00"}])  # E-S: nobody
    assert created.status_code == 201
    first = client.get("/api/incidents/1").get_json()["properties"]
    assert first["status"] == "dispatched"
    assert [(h["action"], h["actor"], h["note"]) for h in first["history"][1:]] == [
        ("dispatch", "gridmap", "王网格员 13800000001")]
    assert first["assignee"] == {"name": "王网格员", "phone": "13800000001", "role": "grid_worker", "unit": "W-S"}
    second = client.get("/api/incidents/2").get_json()["properties"]
    assert (second["status"], second["assignee"]) == ("reported", None)
    stated = client.post("/api/incidents", json={"category": "litter", "lon": 0.005, "lat": 0.006, "status": "closed"})
    closed = client.get(f"/api/incidents/{stated.get_json()['items'][0]['id']}").get_json()["properties"]
    assert (closed["status"], [h["action"] for h in closed["history"]]) == ("closed", ["report"])   # kept as stated
    client.post("/api/incidents/1/steps", json={"action": "escalate", "actor": "王网格员"})
    assert assignee(client, 1)["name"] == "李网格长"
    client.post("/api/incidents/1/steps", json={"action": "escalate", "actor": "李网格长"})
    assert assignee(client, 1)["name"] == "赵社区"
    # the micro-grids redrawn: W-S is now W-X, without a worker of its own; a new report there goes to the grid's
    cells = {("W-X" if code == "W-S" else code): shape for code, shape in CELLS.items()}
    upload(client, "micro_grid", feature_collection([({"code": c, "name": c}, g) for c, g in cells.items()]))
    later = client.post("/api/incidents", json={"category": "litter", "lon": 0.004, "lat": 0.004}).get_json()
    assert assignee(client, later["items"][0]["id"]) == {"name": "周网格员", "phone": "", "role": "grid_worker",
                                                         "unit": "W"}


def test_bad_entries_say_what_is_wrong(client):
    bad = client.post("/api/staff", json={"level": "micro_grid", "unit": "Q-9", "role": "boss", "name": ""})
    assert (bad.status_code, bad.get_json()) == (400, {"error": "the staff entry is not valid", "details": [
        "role='boss' is not valid; expected one of grid_worker, grid_leader, community",
        "expected a name (at most 200 characters) and a phone (at most 50)",
        "Micro-grid has no unit Q-9 in its current version"]})
    assert client.patch("/api/staff/7", json={"name": "x"}).status_code == 404
    register(client, "grid", "E", "grid_worker", "孙")
    assert client.patch("/api/staff/1", json={"active": "no"}).status_code == 400


def test_a_change_leaves_out_what_it_does_not_name_and_a_dropped_units_people_can_leave(client):
    register(client, "micro_grid", "W-S", "grid_worker", "王网格员", "13800000001")
    changed = client.patch("/api/staff/1", json={"name": None, "phone": "13900000002"}).get_json()
    assert (changed["name"], changed["phone"]) == ("王网格员", "13900000002")             # null: unchanged
    cells = {("W-X" if code == "W-S" else code): shape for code, shape in CELLS.items()}
    upload(client, "micro_grid", feature_collection([({"code": c, "name": c}, g) for c, g in cells.items()]))
    assert client.patch("/api/staff/1", json={"active": False}).get_json()["active"] is False   # W-S is gone
    moved = client.patch("/api/staff/1", json={"unit": "W-Q"})                  # a move is checked
    assert moved.status_code == 400 and "has no unit W-Q" in moved.get_json()["details"][0]
    assert client.patch("/api/staff/1", json={"unit": "W-X"}).get_json()["unit_code"] == "W-X"
