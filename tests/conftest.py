"""Shared fixtures: tiny hand-made geometries, a service on a temporary store, the web app."""
from __future__ import annotations

import hashlib
import json
import os
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

#: A PostgreSQL server with PostGIS (``postgresql://user@host:port/db``): when set, every store
#: the tests open through :func:`database_url` is a fresh PostGIS database on it instead of a
#: SQLite file (scripts/test runs the storage, API and Boston tests this way a second time).
POSTGIS = os.environ.get("GRIDMAP_TEST_POSTGIS", "")
_made: list[str] = []


def database_url(path: Path) -> str:
    """The store URL of the backend under test for a test's file ``path``: that SQLite file, or
    the PostGIS database made for it (the same path, the same database)."""
    if not POSTGIS:
        return f"sqlite:///{path}"
    import sqlalchemy as sa
    name = "t_" + hashlib.sha1(str(path).encode()).hexdigest()[:20]
    server = sa.engine.make_url(POSTGIS).set(drivername="postgresql+psycopg")
    engine = sa.create_engine(server, isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as conn:
            names = set(conn.exec_driver_sql("SELECT datname FROM pg_database").scalars())
            if "gridmap_template" not in names:       # PostGIS made once, copied into each database
                conn.exec_driver_sql("CREATE DATABASE gridmap_template")
                template = sa.create_engine(server.set(database="gridmap_template"))
                with template.begin() as made:
                    made.exec_driver_sql("CREATE EXTENSION IF NOT EXISTS postgis")
                template.dispose()
            if name not in names:
                conn.exec_driver_sql(f"CREATE DATABASE {name} TEMPLATE gridmap_template")
                _made.append(name)
    finally:
        engine.dispose()
    return server.set(database=name).render_as_string(hide_password=False)


def _drop_databases(names: list[str]) -> None:
    import sqlalchemy as sa
    engine = sa.create_engine(sa.engine.make_url(POSTGIS).set(drivername="postgresql+psycopg"),
                              isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        for name in names:
            conn.exec_driver_sql(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
    engine.dispose()


@pytest.fixture(autouse=True)
def _fresh_postgis_databases():
    """The PostGIS databases a test made are dropped after it (those of wider fixtures at the end)."""
    before = len(_made)
    yield
    if POSTGIS and len(_made) > before:
        _drop_databases(_made[before:])
        del _made[before:]


def pytest_sessionfinish(session, exitstatus) -> None:   # noqa: ANN001 - pytest's hook
    if POSTGIS and _made:
        _drop_databases(_made)


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
    svc = Gridmap(open_store(database_url(tmp_path / "test.db")))
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
    env = {"GRIDMAP_DATABASE_URL": database_url(tmp_path / "web.db"), "GRIDMAP_TILES": "none",
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
