"""The lifecycle over HTTP: GET /api/incidents/<id> and POST /api/incidents/<id>/steps."""
from __future__ import annotations

import io

import pytest

from .conftest import build_app, grid_file, micro_file


@pytest.fixture
def client(tmp_path):
    app = build_app(tmp_path, GRIDMAP_LANG="en", GRIDMAP_DEADLINES="litter=24,*=72")
    client = app.test_client()
    for level, data in (("grid", grid_file()), ("micro_grid", micro_file())):
        response = client.post(f"/api/layers/{level}", data={"file": (io.BytesIO(data), "f.geojson")},
                               content_type="multipart/form-data")
        assert response.status_code == 201, response.get_json()
    created = client.post("/api/incidents", json=[
        {"category": "litter", "lon": 0.005, "lat": 0.005, "reported_at": "2026-03-05 10:00", "source": "12345热线"},
        {"category": "clutter", "lon": 0.015, "lat": 0.005, "reported_at": "2026-03-05 11:00"}])
    assert created.status_code == 201
    yield client
    app.extensions["gridmap"].store.close()


def step(client, incident_id: int, **body):
    return client.post(f"/api/incidents/{incident_id}/steps", json={"actor": "王网格员", **body})


def test_an_incident_goes_through_its_lifecycle_with_its_history(client):
    fresh = client.get("/api/incidents/1").get_json()["properties"]
    assert {k: fresh[k] for k in ("status", "due_at", "overdue", "on_time", "responsible", "units")} == {
        "status": "reported", "due_at": "2026-03-06 10:00:00", "overdue": True, "on_time": None,
        "responsible": "grid worker", "units": {"grid": "W", "micro_grid": "W-S"}}
    assert fresh["history"] == [{"at": "2026-03-05 10:00:00", "action": "report", "actor": "12345热线",
                                 "from": None, "to": "reported", "note": ""}]
    assert step(client, 1, action="dispatch").status_code == 200
    assert step(client, 1, action="escalate", note="超时").get_json()["properties"]["responsible"] == "grid leader"
    assert step(client, 1, action="start").get_json()["properties"]["status"] == "in_progress"
    closed = step(client, 1, action="close", resolution="fixed", note="已清理").get_json()["properties"]
    assert (closed["status"], closed["resolution"], closed["overdue"], closed["on_time"]) == (
        "closed", "fixed", False, False)                       # closed today: long past its 24 hours
    rated = step(client, 1, action="rate", rating=5).get_json()["properties"]
    assert (rated["status"], rated["rating"]) == ("rated", 5)
    history = rated["history"]
    assert [(h["action"], h["from"], h["to"]) for h in history] == [
        ("report", None, "reported"), ("dispatch", "reported", "dispatched"), ("escalate", "dispatched", "dispatched"),
        ("start", "dispatched", "in_progress"), ("close", "in_progress", "closed"), ("rate", "closed", "rated")]
    assert (history[2]["escalation"], history[4]["resolution"], history[4]["note"], history[5]["rating"]) == (
        1, "fixed", "已清理", 5)
    assert all(h["actor"] == "王网格员" for h in history[1:])
    # the statistics see the new status at once (the map's in-memory table follows the steps)
    assert client.get("/api/incidents/counts?by=category&status=rated").get_json()["counts"] == [
        {"key": "litter", "count": 1}]
    reopened = step(client, 1, action="reopen", note="又堆上了").get_json()["properties"]
    assert (reopened["status"], reopened["resolution"], reopened["rating"], reopened["closed_at"]) == (
        "dispatched", None, None, None)


def test_a_step_the_state_does_not_allow_is_409_and_changes_nothing(client):
    refused = step(client, 2, action="close", resolution="fixed")
    assert (refused.status_code, refused.get_json()["error"]) == (
        409, "incident 2 is reported: close is not allowed; allowed: dispatch, reject, duplicate")
    assert client.get("/api/incidents/2").get_json()["properties"]["history"][1:] == []
    bad = step(client, 2, action="close")
    assert (bad.status_code, bad.get_json()["details"]) == (
        400, ["a close needs a resolution: one of fixed, not_fixed, not_ours"])
    assert step(client, 9, action="dispatch").status_code == 404
    missing = step(client, 2, action="duplicate", duplicate_of=42)
    assert (missing.status_code, missing.get_json()["error"]) == (400, "duplicate_of=42: there is no incident 42")
    duplicate = step(client, 2, action="duplicate", duplicate_of=1).get_json()["properties"]
    assert (duplicate["status"], duplicate["duplicate_of"]) == ("duplicate", 1)
    assert client.post("/api/incidents/1/steps", data="x").status_code == 400


def test_escalation_goes_up_to_the_community_and_no_further(client):
    step(client, 1, action="dispatch")
    assert step(client, 1, action="escalate").get_json()["properties"]["responsible"] == "grid leader"
    assert step(client, 1, action="escalate").get_json()["properties"]["responsible"] == "community"
    refused = step(client, 1, action="escalate")
    assert (refused.status_code, refused.get_json()["error"]) == (
        409, "incident 1 is already escalated to the community")


def test_the_figures_follow_the_steps(client):
    from datetime import datetime

    import pandas as pd

    client.application.extensions["gridmap"]._now = lambda: datetime(2026, 3, 6, 10, 0)     # a day after the reports
    for body in ({"action": "dispatch"}, {"action": "close", "resolution": "fixed"}, {"action": "rate", "rating": 5}):
        assert step(client, 1, **body).status_code == 200
    rows = {r["code"]: r for r in client.get("/api/statistics?level=micro_grid").get_json()["rows"]}
    assert rows["W-S"] == {
        "code": "W-S", "name": rows["W-S"]["name"], "incidents": 1, "accepted": 1, "closed": 1, "passed_on": 0,
        "not_fixed": 0, "closure_rate": 1.0, "timed": 1, "on_time": 1, "on_time_rate": 1.0, "median_hours": 24.0,
        "overdue": 0, "rated": 1, "satisfied": 1, "satisfaction_rate": 1.0, "feedback_rate": 1.0}
    assert (rows["E-S"]["incidents"], rows["E-S"]["closure_rate"], rows["E-S"]["overdue"]) == (1, 0.0, 0)
    assert rows["W-N"]["closure_rate"] is None
    # a unit's incidents come from the store's rows, the rest from the columns each server keeps: the same figures
    within = {r["code"]: r for r in client.get("/api/statistics?level=micro_grid&unit=W").get_json()["rows"]}
    assert within["W-S"] == rows["W-S"] and within["E-S"]["incidents"] == 0
    grids = {r["code"]: r for r in client.get("/api/statistics?level=grid&category=litter").get_json()["rows"]}
    assert (grids["W"]["incidents"], grids["E"]["incidents"]) == (1, 0)
    xlsx = client.get("/api/statistics?level=micro_grid&format=xlsx")
    table = pd.read_excel(io.BytesIO(xlsx.data), sheet_name="统计", engine="calamine")
    assert list(table.columns)[:8] == ["编码", "名称", "事件数", "受理数", "办结数", "转办数", "未解决办结数", "办结率"]
    assert table.set_index("编码").loc["W-S", "办结时长中位数（小时）"] == 24.0


def test_overdue_incidents_go_up_a_level_per_deadline_overrun(client):
    from datetime import datetime

    from click.testing import CliRunner

    from gridmap.cli import cli

    svc = client.application.extensions["gridmap"]
    svc._now = lambda: datetime(2026, 3, 10, 0, 0)
    assert svc.escalate_overdue() == 0                         # reported, not dispatched: nobody to escalate from
    step(client, 1, action="dispatch")
    step(client, 2, action="dispatch")
    # litter: 24 h from 5 March 10h; clutter: 72 h from 5 March 11h
    svc._now = lambda: datetime(2026, 3, 6, 12, 0)           # litter 2 h over, clutter in time
    assert svc.escalate_overdue() == 1
    assert client.get("/api/incidents/1").get_json()["properties"]["escalation"] == 1
    assert svc.escalate_overdue() == 0                         # once per level
    svc._now = lambda: datetime(2026, 3, 7, 10, 0)             # litter a second 24 h over: the community
    assert svc.escalate_overdue() == 1
    first = client.get("/api/incidents/1").get_json()["properties"]
    assert (first["escalation"], first["responsible"]) == (2, "community")
    assert [h["action"] for h in first["history"]] == ["report", "dispatch", "escalate", "escalate"]
    assert first["history"][2]["note"] == "overdue since 2026-03-06 10:00"
    svc._now = lambda: datetime(2026, 3, 20, 0, 0)             # clutter: far over, straight to the community
    assert svc.escalate_overdue() == 2
    assert client.get("/api/incidents/2").get_json()["properties"]["escalation"] == 2
    assert svc.escalate_overdue() == 0                         # nothing higher than the community
    step(client, 1, action="close", resolution="fixed")        # a closed one stays closed
    assert svc.escalate_overdue() == 0 and client.get("/api/incidents/1").get_json()["properties"]["status"] == "closed"
    result = CliRunner().invoke(cli, ["escalate-overdue"], obj=svc)
    assert result.exit_code == 0 and result.output == "escalation steps taken: 0\n"


def test_an_id_too_long_for_the_database_is_not_found(client):
    huge = "9" * 20
    for response in (client.get(f"/api/incidents/{huge}"), client.post(f"/api/incidents/{huge}/steps", json={}),
                     client.get(f"/api/incidents/{huge}/photo"), client.get(f"/api/imports/{huge}"),
                     client.get(f"/api/layers/grid/versions/{huge}")):
        assert response.status_code == 404
