"""The storage contract: every backend must pass these (SQLite today; PostGIS adds a param)."""
from __future__ import annotations

from datetime import datetime

import numpy as np
import pytest
import sqlalchemy as sa

from gridmap.boundaries import read_layer
from gridmap.incidents import IncidentDraft, Status
from gridmap.levels import Level
from gridmap.storage import Assignments, IncidentQuery, Stored, VersionInfo, open_store

from .conftest import grid_file


@pytest.fixture(params=["sqlite"])
def store_url(request, tmp_path):
    return f"sqlite:///{tmp_path / 'contract.db'}"


@pytest.fixture
def store(store_url):
    s = open_store(store_url)
    yield s
    s.close()


def draft(lon: float, lat: float, external_id: str | None = None, **kw) -> IncidentDraft:
    return IncidentDraft(category=kw.pop("category", "litter"), lon=lon, lat=lat,
                         reported_at=kw.pop("reported_at", datetime(2026, 3, 5, 8, 0)),
                         external_id=external_id, **kw)


def test_layer_round_trip_and_versions(store):
    layer = read_layer(grid_file(), level=Level.GRID)
    assert store.save_layer(layer, VersionInfo(author="ann", note="first"), Assignments({})) == 1
    assert store.save_layer(layer, VersionInfo(author="bo", note="again", based_on=1), Assignments({})) == 2
    assert store.versions() == {Level.GRID: 2}
    loaded = store.layers()[Level.GRID]
    assert loaded.version == 2
    assert loaded.units["code"].tolist() == ["W", "E"]
    assert loaded.units["parent_code"].tolist() == [None, None]
    assert loaded.units["properties"].tolist() == layer.units["properties"].tolist()
    assert loaded.units.geometry.geom_equals(layer.units.geometry).all()
    assert loaded.units["area_m2"].tolist() == layer.units["area_m2"].tolist()
    (meta,) = store.layer_meta()
    assert (meta.level, meta.version, meta.author, meta.note, meta.unit_count) == (Level.GRID, 2, "bo", "again", 2)


def test_incidents_dedupe_by_external_id_within_and_across_batches(store):
    store.save_layer(read_layer(grid_file(), level=Level.GRID), VersionInfo(), Assignments({}))
    units = {Level.GRID: np.array(["W", "E", "W", None, "W"], dtype=object)}
    first = store.add_incidents([draft(0.005, 0.005, "a"), draft(0.015, 0.005, "b"), draft(0.005, 0.005, "a"),
                                 draft(5, 5), draft(0.005, 0.005, "a", category="dispute")], units)
    assert first == [Stored(1, "created"), Stored(2, "created"), Stored(1, "existing"), Stored(3, "created"),
                     Stored(1, "conflict")]
    again = store.add_incidents([draft(0.015, 0.005, "b"), draft(0.015, 0.0051, "b")],
                                {Level.GRID: np.array(["E", "E"], dtype=object)})
    assert again == [Stored(2, "existing"), Stored(2, "conflict")]
    # A draft whose time was defaulted (not given) matches on category and position alone.
    undated = draft(0.015, 0.005, "b", reported_at=datetime(2030, 1, 1), time_given=False)
    assert store.add_incidents([undated], {}) == [Stored(2, "existing")]
    frame = store.incidents()
    assert frame["id"].tolist() == [1, 2, 3]
    assert frame["grid"].tolist() == ["W", "E", None]
    assert store.count_incidents() == 3


def test_filters(store):
    store.save_layer(read_layer(grid_file(), level=Level.GRID), VersionInfo(), Assignments({}))
    store.add_incidents([
        draft(0.005, 0.005, category="litter", reported_at=datetime(2026, 1, 31, 23, 59)),
        draft(0.015, 0.005, category="clutter", reported_at=datetime(2026, 2, 1, 0, 0), status=Status.CLOSED),
    ], {Level.GRID: np.array(["W", "E"], dtype=object)})
    ids = lambda q: store.incidents(q)["id"].tolist()   # noqa: E731
    assert ids(IncidentQuery(category="clutter")) == [2]
    assert ids(IncidentQuery(status="closed")) == [2]
    assert ids(IncidentQuery(date_from=datetime(2026, 2, 1))) == [2]
    assert ids(IncidentQuery(date_to=datetime(2026, 2, 1))) == [1]
    assert ids(IncidentQuery(unit="W")) == [1]
    assert ids(IncidentQuery(ids=(2,))) == [2]


def test_new_layer_version_carries_every_incidents_new_unit(store):
    layer = read_layer(grid_file(), level=Level.GRID)
    store.save_layer(layer, VersionInfo(), Assignments({}))
    store.add_incidents([draft(0.005, 0.005), draft(0.015, 0.005)], {Level.GRID: np.array(["W", "E"], dtype=object)})
    store.save_layer(layer, VersionInfo(based_on=1), Assignments(
        {Level.GRID: (np.array([1, 2]), np.array(["E", None], dtype=object))}, assigned=1, moved=2))
    assert store.incidents()["grid"].tolist() == ["E", None]
    # each incident keeps the unit it had under each version it was assigned in
    assert store.incidents(at={Level.GRID: 1})["grid"].tolist() == ["W", "E"]
    ids, codes = store.assignments(Level.GRID, 1)
    assert (ids.tolist(), codes.tolist()) == ([1, 2], ["W", "E"])
    assert [(m.version, m.status, m.assigned, m.moved) for m in store.history(Level.GRID)] == [
        (2, "committed", 1, 2), (1, "committed", 0, 0)]


def test_data_survives_reopening_and_sqlite_runs_in_wal_mode(store_url):
    first = open_store(store_url)
    first.add_incidents([draft(1, 2, "keep")], {})
    first.close()
    second = open_store(store_url)
    assert second.incidents()["external_id"].tolist() == ["keep"]
    with second.engine.connect() as conn:
        assert conn.execute(sa.text("PRAGMA journal_mode")).scalar_one() == "wal"
    second.close()


def test_a_failed_batch_writes_nothing(store):
    bad = draft(1, 2, "x")
    bad.reported_at = None   # violates NOT NULL inside the transaction, after the first row went in
    with pytest.raises(sa.exc.IntegrityError):
        store.add_incidents([draft(1, 2, "ok"), bad], {})
    assert store.count_incidents() == 0


def test_unsupported_url_is_refused():
    from gridmap.errors import InvalidInput
    with pytest.raises(InvalidInput, match="unsupported database URL 'mysql://host/db'"):
        open_store("mysql://host/db")
