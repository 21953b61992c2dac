"""Accounts and roles at the web edge: who may do what, sessions with CSRF, tokens, the audit trail."""
from __future__ import annotations

import io
import re
from typing import Any

import pytest

from gridmap.accounts import Role

from .conftest import build_app, grid_file, micro_file

PASSWORD = "correct horse"


@pytest.fixture
def app(tmp_path):
    application = build_app(tmp_path, GRIDMAP_LANG="en")
    admin = application.test_client()
    for level, data in (("grid", grid_file()), ("micro_grid", micro_file())):
        assert admin.post(f"/api/layers/{level}", data={"file": (io.BytesIO(data), "f.geojson")},
                          content_type="multipart/form-data").status_code == 201
    # incident 1 in micro-grid W-S, incident 2 in E-N
    assert admin.post("/api/incidents", json=[{"category": "litter", "lon": 0.005, "lat": 0.005},
                                              {"category": "litter", "lon": 0.015, "lat": 0.015}]).status_code == 201
    assert admin.post("/api/staff", json={"level": "micro_grid", "unit": "W-S", "role": "grid_worker",
                                          "name": "王网格员"}).status_code == 201
    yield application
    application.extensions["gridmap"].store.close()


def token_for(app, name: str, role: Role, **kw: Any) -> str:
    _, token = app.extensions["gridmap"].access.create(name, role, password=PASSWORD, token_label="t", **kw)
    return token


def as_role(app, role: Role, **kw: Any):
    """A client of a new account of ``role`` (the first one of a role is named e.g. "planner-1")."""
    taken = sum(a.role is role for a in app.extensions["gridmap"].access.all() if a.name != "tester")
    return app.test_client(token=token_for(app, f"{role.value}-{taken + 1}", role, **kw))


def visitor(app):
    return app.test_client(token=None)


def test_without_credentials_reads_are_401_for_the_api_and_a_sign_in_page_for_people(app):
    anonymous = visitor(app)
    response = anonymous.get("/api/layers")
    assert (response.status_code, response.headers["WWW-Authenticate"]) == (401, 'Bearer realm="gridmap"')
    assert response.get_json()["error"].startswith("Sign in first")
    page = anonymous.get("/dashboard?month=2026-03")
    assert (page.status_code, page.headers["Location"]) == (302, "/login?next=/dashboard?month%3D2026-03")
    assert anonymous.post("/api/incidents", json={"category": "litter", "lon": 0.005, "lat": 0.005}).status_code == 401
    assert anonymous.get("/health").get_json() == {"status": "ok"}
    assert app.extensions["gridmap"].store.count_incidents() == 2


def test_public_read_opens_reading_but_not_writing(tmp_path):
    application = build_app(tmp_path, GRIDMAP_LANG="en", GRIDMAP_PUBLIC_READ="1")
    anonymous = visitor(application)
    assert anonymous.get("/api/layers").get_json() == {"layers": []}
    assert anonymous.get("/").status_code == 200
    assert anonymous.post("/api/incidents", json={"category": "litter", "lon": 0, "lat": 0}).status_code == 401
    assert anonymous.get("/upload").status_code == 302            # a planner's page still asks who you are
    application.extensions["gridmap"].store.close()


def test_a_bad_or_disabled_token_is_401(app):
    assert app.test_client(token="gm_not-a-token").get("/api/layers").status_code == 401
    token = token_for(app, "leaver", Role.VIEWER)
    assert app.test_client(token=token).get("/api/layers").status_code == 200
    account = app.extensions["gridmap"].access.all()[-1]
    app.extensions["gridmap"].access.change(account.id, active=False)
    assert app.test_client(token=token).get("/api/layers").status_code == 401
    basic = visitor(app).get("/api/layers", headers={"Authorization": "Basic dXNlcjpwYXNz"})
    assert basic.status_code == 401


def csrf_of(html: str) -> str:
    return re.search(r'name="csrf_token" value="([^"]+)"', html).group(1)


def signed_in(app, name: str, password: str = PASSWORD):
    browser = visitor(app)
    form = browser.get("/login?next=/statistics")
    assert form.status_code == 200 and 'name="password"' in form.text
    done = browser.post("/login?next=/statistics", data={"name": name, "password": password,
                                                         "csrf_token": csrf_of(form.text)})
    return browser, done


def test_signing_in_starts_a_session_and_its_writes_need_the_csrf_token(app):
    token_for(app, "ann", Role.WORKER)
    browser, wrong = signed_in(app, "ann", "wrong password")
    assert wrong.status_code == 200 and "The name or the password is wrong" in wrong.text
    browser, done = signed_in(app, "ann")
    assert (done.status_code, done.headers["Location"]) == (302, "/statistics")
    page = browser.get("/statistics")
    assert page.status_code == 200 and '<span id="signed-in" title="grid worker">ann</span>' in page.text
    report = {"category": "litter", "lon": 0.005, "lat": 0.015}
    refused = browser.post("/api/incidents", json=report)
    assert refused.status_code == 400 and "CSRF token" in refused.get_json()["error"]
    assert app.extensions["gridmap"].store.count_incidents() == 2
    token = re.search(r'<meta name="csrf-token" content="([^"]+)"', page.text).group(1)
    assert browser.post("/api/incidents", json=report, headers={"X-CSRFToken": token}).status_code == 201
    assert app.extensions["gridmap"].store.count_incidents() == 3


def test_a_login_form_without_its_csrf_token_is_refused(app):
    token_for(app, "ann", Role.WORKER)
    response = visitor(app).post("/login", data={"name": "ann", "password": PASSWORD})
    assert response.status_code == 400


def test_next_after_sign_in_never_leaves_the_site(app):
    token_for(app, "ann", Role.VIEWER)
    browser = visitor(app)
    form = browser.get("/login")
    for target in ("//evil.example/x", "https://evil.example/", "/\\evil.example"):
        done = browser.post(f"/login?next={target}", data={"name": "ann", "password": PASSWORD,
                                                           "csrf_token": csrf_of(form.text)})
        assert done.headers["Location"] == "/"
        browser.post("/logout", data={"csrf_token": csrf_of(browser.get("/").text)})


def test_a_new_password_ends_the_old_sessions(app):
    token_for(app, "ann", Role.VIEWER)
    browser, _ = signed_in(app, "ann")
    assert browser.get("/api/layers").status_code == 200
    account = next(a for a in app.extensions["gridmap"].access.all() if a.name == "ann")
    app.extensions["gridmap"].access.change(account.id, password="another secret")
    assert browser.get("/api/layers").status_code == 401


def test_a_worker_takes_steps_only_on_the_incidents_of_their_own_unit(app):
    worker = as_role(app, Role.WORKER, staff_id=1)            # 王网格员, micro-grid W-S
    mine = worker.post("/api/incidents/1/steps", json={"action": "dispatch"})
    assert mine.status_code == 200
    assert mine.get_json()["properties"]["history"][-1]["actor"] == "worker-1"
    assert worker.post("/api/incidents/2/steps", json={"action": "dispatch"}).status_code == 403
    unlinked = app.test_client(token=token_for(app, "drifter", Role.WORKER))
    assert unlinked.post("/api/incidents/1/steps", json={"action": "start"}).status_code == 403
    planner = as_role(app, Role.PLANNER)
    assert planner.post("/api/incidents/2/steps", json={"action": "dispatch"}).status_code == 403
    assert app.test_client().post("/api/incidents/2/steps", json={"action": "dispatch"}).status_code == 200


def test_an_incident_file_needs_a_planner_a_report_needs_a_worker(app):
    def csv() -> dict[str, Any]:
        return {"file": (io.BytesIO(b"category,lon,lat,reported_at\nlitter,0.005,0.005,2026-03-05 08:12\n"), "x.csv")}
    worker, planner = as_role(app, Role.WORKER), as_role(app, Role.PLANNER)
    assert worker.post("/api/incidents", data=csv(), content_type="multipart/form-data").status_code == 403
    assert planner.post("/api/incidents", data=csv(), content_type="multipart/form-data").status_code == 201
    assert planner.post("/api/incidents", json={"category": "litter", "lon": 0, "lat": 0}).status_code == 403
    assert worker.post("/api/incidents", json={"category": "litter", "lon": 0, "lat": 0}).status_code == 201


def test_every_write_by_an_account_is_in_the_audit_trail(app):
    planner = as_role(app, Role.PLANNER)
    response = planner.post("/api/layers/grid", data={"file": (io.BytesIO(grid_file()), "g.geojson"),
                                                      "mode": "draft"}, content_type="multipart/form-data")
    assert response.status_code == 201
    refused = as_role(app, Role.VIEWER).post("/api/layers/grid/versions/2/commit")
    assert refused.status_code == 403
    entries = app.test_client().get("/api/audit?limit=2").get_json()["entries"]
    assert [(e["actor"], e["action"], e["target"], e["status"]) for e in entries] == [
        ("viewer-1", "api.commit_version", "/api/layers/grid/versions/2/commit", 403),
        ("planner-1", "api.upload_layer", "/api/layers/grid", 201)]
    assert app.test_client().get("/api/layers/grid/versions").get_json()["versions"][0]["author"] == "planner-1"
    assert as_role(app, Role.PLANNER).get("/api/audit").status_code == 403


def test_accounts_api_makes_accounts_and_tokens_for_admins_only(app):
    admin = app.test_client()
    made = admin.post("/api/accounts", json={"name": "kiosk", "role": "viewer", "token": True})
    body = made.get_json()
    assert made.status_code == 201 and body["account"]["role"] == "viewer" and body["token"].startswith("gm_")
    assert app.test_client(token=body["token"]).get("/api/layers").status_code == 200
    again = admin.post("/api/accounts", json={"name": "kiosk", "role": "viewer"})
    assert (again.status_code, again.get_json()["error"]) == (409, "there is already an account named kiosk")
    bad = admin.post("/api/accounts", json={"name": "a b", "role": "boss", "password": "short"})
    assert bad.status_code == 400 and bad.get_json()["error"] == "role='boss' is not valid; expected one of viewer, " \
                                                                 "worker, planner, admin"
    bad = admin.post("/api/accounts", json={"name": "a b", "role": "viewer", "password": "short"})
    assert bad.get_json()["details"] == [
        "name='a b' is not valid; expected 1 to 100 letters, digits or . _ - @",
        "the password is too short: expected at least 8 characters"]
    changed = admin.patch(f"/api/accounts/{body['account']['id']}", json={"role": "planner"})
    assert changed.get_json()["role"] == "planner"
    assert as_role(app, Role.PLANNER).post("/api/accounts", json={"name": "x", "role": "admin"}).status_code == 403
    assert visitor(app).get("/api/accounts").status_code == 401


def test_demo_accounts_are_made_and_printed_once(tmp_path, capsys):
    from app import create_app

    from .conftest import make_settings
    settings = make_settings(tmp_path, GRIDMAP_LOAD_DEMO="1")
    first = create_app({"TESTING": True, "GRIDMAP_SETTINGS": settings})
    printed = capsys.readouterr().out.splitlines()
    assert printed[0] == "gridmap demo accounts (name, role, password; shown only now):"
    rows = [line.split() for line in printed[1:]]
    assert [(name, role) for name, role, _ in rows] == [("admin", "admin"), ("planner", "planner"),
                                                        ("worker", "worker"), ("viewer", "viewer")]
    access = first.extensions["gridmap"].access
    assert [access.sign_in(name, password).role.value for name, _, password in rows] == [
        "admin", "planner", "worker", "viewer"]
    first.extensions["gridmap"].store.close()
    second = create_app({"TESTING": True, "GRIDMAP_SETTINGS": settings})
    assert capsys.readouterr().out == ""
    second.extensions["gridmap"].store.close()


# Each endpoint × each role: (method, path, JSON body or None, the roles allowed — V viewer,
# W worker of micro-grid W-S, P planner, A admin).  Bodies are mostly wrong on purpose: an allowed
# request then fails its own checks (400, 404, 409) instead of changing much.
MATRIX = [
    *[("GET", path, None, "VWPA") for path in (
        "/", "/dashboard", "/statistics", "/layers/grid/history", "/layers/grid/versions/1",
        "/layers/grid/versions/1/compare?with=1", "/api/layers", "/api/layers/grid", "/api/layers/grid/versions",
        "/api/layers/grid/versions/1", "/api/layers/grid/versions/1/compare?with=1", "/api/layers/grid/export",
        "/api/layers/grid/versions/1/diff", "/api/layers/grid/versions/1/problems", "/api/imports/1",
        "/api/incidents", "/api/incidents/1", "/api/incidents/counts", "/api/incidents/1/photo", "/api/categories",
        "/api/staff", "/api/lookup?lon=0.005&lat=0.005", "/api/heat?bbox=0,0,0.02,0.02&zoom=14",
        "/api/outlines/grid", "/api/outlines/grid/counts", "/api/layers/micro_grid/edit/areas", "/api/openapi.json",
        "/api/layers/micro_grid/edit/units?version=1", "/api/hotspots", "/api/hotspots/emerging",
        "/api/hotspots/hexagons", "/api/choropleth", "/api/quality", "/api/rankings", "/api/statistics",
        "/api/report-map?overlay=nothing", "/open311/v2/discovery.json", "/open311/v2/services.json",
        "/open311/v2/services/litter.json", "/open311/v2/requests.json", "/open311/v2/requests/1.json",
        "/open311/v2/", "/open311/v2/nothing")],
    ("POST", "/open311/v2/nothing", {}, "VWPA"),           # a 404, whoever asks
    ("GET", "/upload", None, "PA"), ("GET", "/layers/grid/edit", None, "PA"),
    ("GET", "/report", None, "WA"), ("GET", "/report/1", None, "WA"),
    *[("POST", path, {}, "PA") for path in (
        "/api/layers/grid", "/api/layers/grid/versions/1/commit", "/api/layers/grid/versions/1/restore",
        "/api/layers/grid/versions/1/clean", "/api/layers/grid/edit/save", "/api/edit/split", "/api/edit/merge",
        "/upload", "/layers/grid/versions/1/commit", "/layers/grid/versions/1/restore",
        "/layers/grid/versions/1/clean", "/api/staff")],
    ("PATCH", "/api/staff/1", {}, "PA"),
    ("POST", "/api/incidents", {}, "WA"), ("POST", "/report", {}, "WA"),
    ("POST", "/open311/v2/requests.json", {}, "WA"),
    ("POST", "/api/incidents/1/steps", {"action": "nonsense"}, "WA"),
    ("POST", "/api/incidents/2/steps", {"action": "nonsense"}, "A"),         # not the worker's unit
    ("GET", "/api/accounts", None, "A"), ("POST", "/api/accounts", {}, "A"), ("PATCH", "/api/accounts/1", {}, "A"),
    ("POST", "/api/accounts/1/tokens", {}, "A"), ("GET", "/api/audit", None, "A"), ("GET", "/accounts", None, "A"),
    ("GET", "/login", None, "VWPA"), ("GET", "/health", None, "VWPA"),
]
ROLES = {"V": Role.VIEWER, "W": Role.WORKER, "P": Role.PLANNER, "A": Role.ADMIN}


def test_each_endpoint_allows_exactly_the_roles_it_should(app):
    clients = {letter: as_role(app, role, **({"staff_id": 1} if role is Role.WORKER else {}))
               for letter, role in ROLES.items()}
    wrong = []
    for method, path, body, allowed in MATRIX:
        for letter, client in clients.items():
            kwargs: dict[str, Any] = {"json": body} if body is not None else {}
            status = client.open(path, method=method, **kwargs).status_code
            if (status not in (401, 403)) != (letter in allowed) or status >= 500:
                wrong.append((method, path, letter, status))
    assert wrong == []


def test_the_matrix_covers_every_endpoint_and_method(app):
    adapter = app.url_map.bind("localhost")
    covered = {(adapter.match(path.split("?")[0], method=method)[0], method) for method, path, _, _ in MATRIX}
    every = {(rule.endpoint, method) for rule in app.url_map.iter_rules() for method in rule.methods
             if method not in ("HEAD", "OPTIONS") and rule.endpoint not in ("static", "auth.logout")
             and not (rule.endpoint == "open311.missing" and method in ("PUT", "PATCH", "DELETE", "POST"))
             and not (rule.endpoint == "auth.login" and method == "POST")}
    assert every - covered == set()


def test_open311_takes_the_api_key_as_a_token(app):
    form = {"service_code": "litter", "lat": "0.005", "long": "0.005"}
    assert visitor(app).post("/open311/v2/requests.json", data=form).status_code == 401
    viewer = token_for(app, "screen", Role.VIEWER)
    assert visitor(app).post("/open311/v2/requests.json", data={**form, "api_key": viewer}).status_code == 403
    worker = token_for(app, "phone", Role.WORKER)
    made = visitor(app).post("/open311/v2/requests.json", data={**form, "api_key": worker})
    assert made.status_code == 200 and app.extensions["gridmap"].store.count_incidents() == 3


def test_a_store_with_data_gets_no_demo_accounts(tmp_path, capsys):
    from app import create_app
    from gridmap.levels import Level
    from gridmap.service import Gridmap
    from gridmap.storage import open_store

    from .conftest import make_settings
    settings = make_settings(tmp_path, GRIDMAP_LOAD_DEMO="1")
    existing = Gridmap(open_store(settings.database_url))
    existing.import_layer(Level.GRID, grid_file())
    existing.store.close()
    app = create_app({"TESTING": True, "GRIDMAP_SETTINGS": settings})
    assert capsys.readouterr().out == "" and app.extensions["gridmap"].access.all() == []
    app.extensions["gridmap"].store.close()
