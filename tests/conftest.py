"""Shared fixtures: tiny hand-made geometries, a service on a temporary store, the web app."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Iterable

import pytest
from flask.testing import FlaskClient
from pyproj import Geod
from shapely import box
from shapely.geometry import mapping

from gridmap.accounts import Role
from gridmap.config import Settings
from gridmap.service import Gridmap
from gridmap.storage import open_store

SHARED = Path(__file__).resolve().parents[2] / "shared"
ADMIN = object()      # TokenClient's default: the test administrator's token


def feature_collection(features: Iterable[tuple[dict[str, Any], Any]], **extra: Any) -> bytes:
    """GeoJSON bytes from (properties, shapely geometry) pairs."""
    return json.dumps({"type": "FeatureCollection", **extra, "features": [
        {"type": "Feature", "properties": props, "geometry": mapping(geom) if geom is not None else None}
        for props, geom in features]}, ensure_ascii=False).encode()


# A 2×2 block of 0.01° cells: grids W (west, x 0–0.01) and E (east, x 0.01–0.02), each split
# into a south and a north micro-grid.  y runs 0–0.02.
CELLS = {
    "W-S": box(0.00, 0.00, 0.01, 0.01), "W-N": box(0.00, 0.01, 0.01, 0.02),
    "E-S": box(0.01, 0.00, 0.02, 0.01), "E-N": box(0.01, 0.01, 0.02, 0.02),
}
GRIDS = {"W": box(0.00, 0.00, 0.01, 0.02), "E": box(0.01, 0.00, 0.02, 0.02)}


def geodesic_m2(geometry: Any) -> float:
    """A lon/lat polygon's area on the WGS84 ellipsoid (pyproj.Geod): an independent measure of
    what gridmap measures in an equal-area projection.  A 0.01° × 0.02° cell at the equator is
    2,461,814.37 m²; gridmap's projection agrees to a few hundredths of a m²."""
    return abs(Geod(ellps="WGS84").geometry_area_perimeter(geometry)[0])


def grid_file() -> bytes:
    return feature_collection([({"code": c, "name": f"网格{c}", "staff": f"staff {c}", "phone": "139****0001"}, g)
                               for c, g in GRIDS.items()])


def micro_file(*, with_parent: bool = False) -> bytes:
    return feature_collection([({"code": c, "name": f"微网格{c}", "staff": f"worker {c}",
                                 **({"parent_code": c[0]} if with_parent else {})}, g)
                               for c, g in CELLS.items()])


@pytest.fixture
def service(tmp_path: Path) -> Gridmap:
    svc = Gridmap(open_store(f"sqlite:///{tmp_path / 'test.db'}"))
    yield svc
    svc.store.close()


@pytest.fixture
def block(service: Gridmap) -> Gridmap:
    """The service with the 2×2 block loaded: grids W, E; micro-grids W-S, W-N, E-S, E-N."""
    from gridmap.levels import Level
    service.import_layer(Level.GRID, grid_file())
    service.import_layer(Level.MICRO_GRID, micro_file())
    return service


def make_settings(tmp_path: Path, **overrides: Any) -> Settings:
    env = {"GRIDMAP_DATABASE_URL": f"sqlite:///{tmp_path / 'web.db'}", "GRIDMAP_TILES": "none",
           "GRIDMAP_LOAD_DEMO": "0", "GRIDMAP_SERVICE_AREA": "none", **overrides}
    return Settings.from_env(env, instance_dir=tmp_path)


class TokenClient(FlaskClient):
    """A test client that sends a bearer token: the app's test administrator's unless ``token``
    says otherwise (``token=None``: a visitor who has not signed in)."""

    def __init__(self, *args: Any, token: str | None | object = ADMIN, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if token is ADMIN:
            token = self.application.config.get("ADMIN_TOKEN")
        if token is not None:
            self.environ_base["HTTP_AUTHORIZATION"] = f"Bearer {token}"


def build_app(tmp_path: Path, **env: str):
    """The app on a temporary store, with an administrator ("tester") whose token every test
    client sends unless told otherwise."""
    from app import create_app
    app = create_app({"TESTING": True, "GRIDMAP_SETTINGS": make_settings(tmp_path, **env)})
    app.test_client_class = TokenClient
    _, app.config["ADMIN_TOKEN"] = app.extensions["gridmap"].access.create("tester", Role.ADMIN, token_label="tests")
    return app


@pytest.fixture
def app(tmp_path: Path):
    """The app on an empty temporary store, English by default so messages read as in the code."""
    application = build_app(tmp_path, GRIDMAP_LANG="en")
    yield application
    application.extensions["gridmap"].store.close()


@pytest.fixture
def client(app):
    return app.test_client()
