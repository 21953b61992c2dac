"""The OpenAPI description (``GET /api/openapi.json``) against the app itself: Schemathesis sends
every /api/ operation generated requests, valid and invalid, and checks that none is a server error
and that every answer has a status and a body the description gives it."""
from __future__ import annotations

import io

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.config import SchemathesisConfig
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from gridmap.accounts import Role
from gridmap.web.openapi import description

from .conftest import build_app, grid_file, micro_file

CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]


@pytest.fixture(scope="module")
def app(tmp_path_factory):
    """The 2×2 block with a draft of its micro-grids, four incidents (one outside every unit, one from a
    file import that refused a row) and a grid worker: something for every GET to find."""
    application = build_app(tmp_path_factory.mktemp("openapi"), GRIDMAP_LANG="en")
    admin = application.test_client()
    for level, data in (("grid", grid_file()), ("micro_grid", micro_file())):
        assert admin.post(f"/api/layers/{level}", data={"file": (io.BytesIO(data), "f.geojson")},
                          content_type="multipart/form-data").status_code == 201
    assert admin.post("/api/layers/micro_grid", data={"file": (io.BytesIO(micro_file()), "f.geojson"),
                                                      "mode": "draft"},
                      content_type="multipart/form-data").status_code == 201
    assert admin.post("/api/incidents", json=[{"category": "litter", "lon": 0.005, "lat": 0.005},
                                              {"category": "clutter", "lon": 0.015, "lat": 0.015,
                                               "reported_at": "2026-03-05 08:12"},
                                              {"category": "litter", "lon": 0.5, "lat": 0.5}]).status_code == 201
    csv = b"category,lon,lat,reported_at\nlitter,0.005,0.015,2026-02-01 10:00\nlitter,x,0,\n"
    assert admin.post("/api/incidents", data={"file": (io.BytesIO(csv), "incidents.csv")},
                      content_type="multipart/form-data").status_code == 201
    assert admin.post("/api/staff", json={"level": "micro_grid", "unit": "W-S", "role": "grid_worker",
                                          "name": "王网格员"}).status_code == 201
    yield application
    application.extensions["gridmap"].store.close()


def _auth(app) -> dict[str, str]:
    # identity: the WSGI transport hands over the body as sent, gzipped or not (an HTTP client would unzip it)
    return {"Authorization": f"Bearer {app.config['ADMIN_TOKEN']}", "Accept-Encoding": "identity"}


# The description is data: loaded here, so that pytest lists an item per operation; the app it is
# sent to is the module's (test_the_app_serves_this_description says it serves the same).
schema = schemathesis.openapi.from_dict(description(), config=SchemathesisConfig.from_dict({
    # the token is sent as given (generated ones would all be 401s); every operation 30 examples of
    # fuzzing on top of the description's examples and the boundary values of each parameter
    "generation": {"max-examples": 30, "with-security-parameters": False},
    # a report map is a second's drawing: fewer of them, and no boundary values (dpi 600 × every overlay)
    "operations": [{"include-path": "/api/report-map", "generation": {"max-examples": 8},
                    "phases": {"coverage": {"enabled": False}}}]}))


def test_the_app_serves_this_description(app):
    served = schemathesis.openapi.from_wsgi("/api/openapi.json", app, headers=_auth(app))
    assert served.raw_schema == description()
    assert app.test_client(token=None).get("/api/openapi.json").status_code == 401


@pytest.mark.slow
# a filter's text the CJK font has no glyph for (unit=Ǫ) is drawn as a box on the report map: matplotlib says so
@pytest.mark.filterwarnings("ignore:Glyph .* missing from font:UserWarning")
# snap_m=1e307 overflows GEOS's coverage cleaning: it says so, and every unit is reported as cleaned away
@pytest.mark.filterwarnings("ignore:(overflow|invalid value) encountered in coverage_clean:RuntimeWarning")
@schema.parametrize()
@settings(deadline=None, suppress_health_check=list(HealthCheck))
def test_every_operation_answers_as_described(case, app):
    case.call_and_validate(app=app, headers=_auth(app), checks=CHECKS)
    # the fuzzer may demote or disable any account, its own too: it stays an administrator
    access = app.extensions["gridmap"].access
    tester = next(a for a in access.all() if a.name == "tester")
    if tester.role is not Role.ADMIN or not tester.active:
        access.change(tester.id, role=Role.ADMIN, active=True)
