"""The storage contract: every backend must pass these (SQLite and the memory store; PostGIS
adds a param).  Tests named ``test_sqlite_…`` are about SQLite itself and run on it alone.

The geometries are conftest's 2×2 block: grids W (x 0–0.01) and E (x 0.01–0.02), micro-grids
W-S, W-N, E-S, E-N (y 0–0.01 south, 0.01–0.02 north).  A store does not assign incidents
itself, so each test says which unit every incident is in; the points are placed to match.
"""
from __future__ import annotations

import threading
import time
from datetime import datetime, timezone

import numpy as np
import pandas as pd
import pytest
import shapely
import sqlalchemy as sa
from geopandas.testing import assert_geodataframe_equal

from gridmap.boundaries import read_layer
from gridmap.errors import InvalidInput, NotFound
from gridmap.incidents import (
    IncidentColumns,
    IncidentDraft,
    KnownReport,
    Outcome,
    Status,
    Stored,
    new_reports,
    outcomes,
)
from gridmap.layer import Layer
from gridmap.levels import Level
from gridmap.storage import (
    Assignments,
    IncidentEvent,
    IncidentQuery,
    IncidentState,
    Store,
    VersionInfo,
    VersionRecord,
    VersionStatus,
    open_store,
    sql,
)

from .conftest import CELLS, GRIDS, database_url, grid_file, micro_file

GRID, MICRO = Level.GRID, Level.MICRO_GRID
COMMITTED, DRAFT = VersionStatus.COMMITTED, VersionStatus.DRAFT
MARCH_5 = datetime(2026, 3, 5, 8, 0)


@pytest.fixture(params=["sql", "memory"])
def store_url(request, tmp_path):
    """The SQL backend under test (SQLite, or PostGIS when GRIDMAP_TEST_POSTGIS is set) and the fake."""
    return database_url(tmp_path / "contract.db") if request.param == "sql" else "memory://"


@pytest.fixture
def store(store_url):
    s = open_store(store_url)
    yield s
    s.close()


# -- helpers: the writes the domain makes, one transaction each ----------------------------------
def grid_layer() -> Layer:
    return read_layer(grid_file(), level=GRID)


def micro_layer() -> Layer:
    """Micro-grids whose file names their grids: W-S, W-N in W; E-S, E-N in E."""
    return read_layer(micro_file(with_parent=True), level=MICRO)


def save(store: Store, layer: Layer, **info) -> int:
    with store.writing() as tx:
        return tx.add_version(layer, VersionInfo(**info))


def commit(store: Store, level: Level, version: int, units: dict | None = None, *, author: str = "",
           record: VersionRecord = VersionRecord(), **counts) -> None:
    with store.writing() as tx:
        tx.commit(level, version, author=author, record=record,
                  commit=Assignments({lv: (np.array(ids, dtype=np.int64), np.array(codes, dtype=object))
                                      for lv, (ids, codes) in (units or {}).items()}, **counts))


def save_committed(store: Store, layer: Layer, **info) -> int:
    version = save(store, layer, **info)
    commit(store, layer.level, version)
    return version


def draft(lon: float, lat: float, external_id: str | None = None, **kw) -> IncidentDraft:
    return IncidentDraft(category=kw.pop("category", "litter"), lon=lon, lat=lat,
                         reported_at=kw.pop("reported_at", MARCH_5), external_id=external_id, **kw)


def add(store: Store, drafts: list[IncidentDraft], units: dict[Level, list] | None = None) -> list[int]:
    with store.writing() as tx:
        ids = tx.add_incidents(IncidentColumns.of(drafts),
                               {lv: np.array(codes, dtype=object) for lv, codes in (units or {}).items()})
    assert ids.dtype == np.int64
    return ids.tolist()


def report(store: Store, drafts: list[IncidentDraft], units: dict[Level, list]) -> list[Stored]:
    """What the service does with a batch: the stored reports with these external ids, the
    domain's repeat rule, then only the new drafts written, all in one transaction."""
    incidents = IncidentColumns.of(drafts)
    with store.writing() as tx:
        known = tx.known_reports([d.external_id for d in drafts if d.external_id is not None])
        fresh = new_reports(incidents, known)
        ids = tx.add_incidents(incidents.take(fresh),
                               {lv: np.array(codes, dtype=object)[fresh] for lv, codes in units.items()})
        stored = outcomes(incidents, known, fresh, ids)
    return [stored[i] for i in range(len(stored))]


def block(store: Store) -> None:
    """Grids v1 and micro-grids v1, committed."""
    save_committed(store, grid_layer())
    save_committed(store, micro_layer())


def utc_now() -> datetime:
    return datetime.now(timezone.utc).replace(tzinfo=None)


# -- layers and versions -------------------------------------------------------------------------
def test_layer_round_trip_keeps_every_column_and_exact_geometry(store):
    saved = micro_layer()
    save_committed(store, saved)
    loaded = store.layers()[MICRO]
    assert (loaded.level, loaded.version, loaded.parent_source) == (MICRO, 1, "field")
    assert loaded.units.columns.tolist() == ["code", "name", "parent_code", "area_m2", "properties", "geometry"]
    assert loaded.units["code"].tolist() == ["W-S", "W-N", "E-S", "E-N"]
    assert loaded.units["name"].tolist() == ["微网格W-S", "微网格W-N", "微网格E-S", "微网格E-N"]
    assert loaded.units["parent_code"].tolist() == ["W", "W", "E", "E"]
    assert loaded.units["properties"].tolist() == [{"staff": f"worker {c}"} for c in ["W-S", "W-N", "E-S", "E-N"]]
    assert shapely.equals(loaded.units.geometry.to_numpy(), [CELLS[c] for c in loaded.units["code"]]).all()
    # exactly what was saved: same coordinates in the same order, same areas
    assert shapely.to_wkb(loaded.units.geometry.to_numpy()).tolist() == \
        shapely.to_wkb(saved.units.geometry.to_numpy()).tolist()
    assert_geodataframe_equal(loaded.units, saved.units.reset_index(drop=True))
    assert store.layer_version(MICRO, 1).units["code"].tolist() == ["W-S", "W-N", "E-S", "E-N"]


def test_a_layer_without_parents_round_trips_with_none(store):
    save_committed(store, grid_layer())
    loaded = store.layers()[GRID]
    assert loaded.parent_source is None
    assert loaded.units["parent_code"].tolist() == [None, None]
    assert loaded.units["properties"].tolist() == [{"staff": "staff W", "phone": "139****0001"},
                                                   {"staff": "staff E", "phone": "139****0001"}]
    assert shapely.equals(loaded.units.geometry.to_numpy(), [GRIDS["W"], GRIDS["E"]]).all()


def test_returned_layers_are_copies_and_saving_copies_the_layer(store):
    layer = grid_layer()
    save_committed(store, layer)
    layer.units.loc[0, "code"] = "changed after saving"
    layer.units["properties"].iloc[1]["phone"] = "changed after saving"
    loaded = store.layers()[GRID]
    loaded.units.loc[0, "name"] = "changed by a reader"
    loaded.units["properties"].iloc[0]["staff"] = "changed in place"
    loaded.units.loc[1, "geometry"] = shapely.box(5, 5, 6, 6)
    again = store.layer_version(GRID, 1).units
    assert again["code"].tolist() == ["W", "E"]
    assert again["name"].tolist() == ["网格W", "网格E"]
    assert again["properties"].tolist() == [{"staff": "staff W", "phone": "139****0001"},
                                            {"staff": "staff E", "phone": "139****0001"}]
    assert again.geometry.iloc[1].equals(GRIDS["E"])


def test_empty_store(store):
    assert (store.versions(), store.layers(), store.layer_meta(), store.history(GRID)) == ({}, {}, [], [])
    assert store.count_incidents() == 0
    assert store.is_empty()


def test_versions_are_numbered_per_level_and_drafts_are_not_current(store):
    assert save(store, grid_layer(), author="ann", note="first") == 1
    assert (store.versions(), store.layers(), store.layer_meta()) == ({}, {}, [])
    commit(store, GRID, 1)
    assert save(store, grid_layer(), author="bo", note="a draft", based_on=1) == 2
    assert store.versions() == {GRID: 1}
    assert store.layers()[GRID].version == 1
    assert save(store, micro_layer()) == 1          # its own sequence
    assert save(store, grid_layer(), based_on=1) == 3
    commit(store, GRID, 3)
    assert store.versions() == {GRID: 3}
    assert [(m.version, m.status) for m in store.history(GRID)] == [(3, COMMITTED), (2, DRAFT), (1, COMMITTED)]
    assert [(m.version, m.status) for m in store.history(MICRO)] == [(1, DRAFT)]
    assert store.history(Level.STREET) == []
    assert not store.is_empty()


def test_version_meta_says_who_when_and_what_the_commit_did(store):
    before = utc_now()
    save(store, micro_layer(), author="ann", note="micro first", change=7)
    commit(store, MICRO, 1, author="cy", assigned=5, moved=2)
    save(store, grid_layer(), author="bo", note="grids", based_on=4, restored_from=3)
    commit(store, GRID, 1, author="di")
    save(store, grid_layer(), author="ed", note="pending", based_on=1)
    after = utc_now()
    assert [m.level for m in store.layer_meta()] == [GRID, MICRO]   # by depth, not by the order saved
    grid, micro = store.layer_meta()
    assert (grid.level, grid.version, grid.author, grid.note, grid.unit_count) == (GRID, 1, "bo", "grids", 2)
    assert (grid.based_on, grid.restored_from, grid.committed_by, grid.change) == (4, 3, "di", None)
    assert (micro.level, micro.unit_count, micro.committed_by, micro.assigned, micro.moved, micro.change) == (
        MICRO, 4, "cy", 5, 2, 7)
    pending = store.version_meta(GRID, 2)
    assert (pending.status, pending.author, pending.note, pending.based_on, pending.unit_count) == (
        DRAFT, "ed", "pending", 1, 2)
    assert (pending.committed_at, pending.committed_by, pending.assigned, pending.moved) == (None, "", None, None)
    for meta in (grid, micro, pending):       # naive UTC
        assert before <= meta.created_at <= after and meta.created_at.tzinfo is None
    assert before <= micro.committed_at <= after and micro.committed_at.tzinfo is None
    assert store.history(GRID) == [pending, grid]


def test_version_record_is_what_was_saved_then_what_the_commit_showed(store):
    saved = VersionRecord(options={"tolerance_m": 0.5, "crs": None, "fields": ["code", "名称"]},
                          problems=({"template": "repaired {code}", "params": {"code": "W"}},),
                          report={"errors": 0, "warnings": 1, "gaps": []}, diff={"added": ["W", "E"], "removed": []})
    shown = VersionRecord(options={"tolerance_m": 1.0}, report={"errors": 0}, diff={"added": [], "moved": 3})
    with store.writing() as tx:
        tx.add_version(grid_layer(), VersionInfo(record=saved))
    assert store.version_record(GRID, 1) == saved
    commit(store, GRID, 1, record=shown)
    assert store.version_record(GRID, 1) == shown
    save(store, grid_layer())
    assert store.version_record(GRID, 2) == VersionRecord(options={}, problems=(), report=None, diff=None)


def test_versions_saved_as_one_change_are_found_together_largest_level_first(store):
    with store.writing() as tx:
        assert tx.new_change() == 1
        tx.add_version(micro_layer(), VersionInfo(change=1))
        tx.add_version(grid_layer(), VersionInfo(change=1))
        assert tx.new_change() == 2
        tx.add_version(grid_layer(), VersionInfo(change=2))
        tx.add_version(grid_layer(), VersionInfo())
    with store.writing() as tx:
        assert [(m.level, m.version) for m in tx.change_versions(1)] == [(GRID, 1), (MICRO, 1)]
        assert [(m.level, m.version) for m in tx.change_versions(2)] == [(GRID, 2)]
        assert tx.change_versions(3) == []
        assert tx.new_change() == 3
        assert tx.version_meta(GRID, 3).change is None


def test_heads_are_the_current_versions_inside_a_transaction(store):
    block(store)
    save(store, grid_layer())
    with store.writing() as tx:
        assert {lv: (m.version, m.status) for lv, m in tx.heads().items()} == {GRID: (1, COMMITTED),
                                                                              MICRO: (1, COMMITTED)}
        tx.commit(GRID, 2, author="", commit=Assignments({}), record=VersionRecord())
        assert tx.heads()[GRID].version == 2     # its own writes are seen


def test_a_missing_version_is_not_found(store):
    save_committed(store, grid_layer())
    for missing in [(GRID, 2), (MICRO, 1)]:
        for read in (store.version_meta, store.version_record, store.layer_version, store.assignments):
            with pytest.raises(NotFound) as refused:
                read(*missing)
            assert refused.value.summary.template == "{level} has no version {version}"
            assert refused.value.summary.params["version"] == missing[1]
    assert str(pytest.raises(NotFound, store.version_meta, GRID, 2).value) == "Grid has no version 2"
    with pytest.raises(NotFound):
        store.incidents(at={GRID: 2})
    with pytest.raises(NotFound), store.writing() as tx:
        tx.version_meta(MICRO, 1)
    with pytest.raises(NotFound), store.writing() as tx:
        tx.commit(GRID, 2, author="", commit=Assignments({}), record=VersionRecord())


# -- commits and assignments ---------------------------------------------------------------------
def test_a_commit_keeps_each_incidents_unit_under_every_version(store):
    save_committed(store, grid_layer())
    assert add(store, [draft(0.005, 0.005), draft(0.015, 0.005)], {GRID: ["W", "E"]}) == [1, 2]
    save(store, grid_layer(), based_on=1)
    commit(store, GRID, 2, {GRID: ([1, 2], ["E", None])}, assigned=1, moved=2)
    assert store.incidents()["grid"].tolist() == ["E", None]
    assert store.incidents(at={GRID: 1})["grid"].tolist() == ["W", "E"]
    ids, codes = store.assignments(GRID, 1)
    assert (ids.dtype, codes.dtype, ids.tolist(), codes.tolist()) == (np.int64, object, [1, 2], ["W", "E"])
    ids, codes = store.assignments(GRID, 2)
    assert (ids.tolist(), codes.tolist()) == ([1, 2], ["E", None])
    assert [(m.version, m.status, m.assigned, m.moved) for m in store.history(GRID)] == [
        (2, COMMITTED, 1, 2), (1, COMMITTED, 0, 0)]


def test_assignments_come_back_in_id_order_whatever_order_and_gaps_they_were_written_in(store):
    save_committed(store, grid_layer())
    add(store, [draft(0.005, 0.005)] * 250)
    save(store, grid_layer(), based_on=1)
    # two long runs of consecutive ids, the later first
    kept = [*range(151, 251), *range(1, 101)]
    commit(store, GRID, 2, {GRID: (kept, ["东" if i % 3 else None for i in kept])})
    ids, codes = store.assignments(GRID, 2)
    assert ids.tolist() == [*range(1, 101), *range(151, 251)]
    assert codes.tolist() == ["东" if i % 3 else None for i in ids.tolist()]
    # a few scattered ids
    save(store, grid_layer(), based_on=2)
    commit(store, GRID, 3, {GRID: ([9, 1, 5], ["E", None, "W"])})
    assert [a.tolist() for a in store.assignments(GRID, 3)] == [[1, 5, 9], [None, "W", "E"]]
    assert store.unit_counts(GRID, 3, IncidentQuery()) == {"E": 1, "W": 1}


def test_a_commit_naming_an_incident_that_is_not_stored_is_refused_and_changes_nothing(store):
    block(store)
    add(store, [draft(0.005, 0.005)] * 200)
    save(store, grid_layer(), based_on=1)
    before = snapshot(store)
    for ids in ([*range(1, 202)], [*range(1, 101), 150, 250], [0]):     # one run; scattered ids; one id
        with pytest.raises(ValueError, match="1 of .* assignments name incidents that are not stored"):
            commit(store, GRID, 2, {GRID: (ids, ["W"] * len(ids))})
    assert snapshot(store) == before
    commit(store, GRID, 2, {GRID: ([*range(1, 201)], ["W"] * 200)})
    assert store.unit_counts(GRID, 2, IncidentQuery()) == {"W": 200}


def test_a_commit_replaces_the_current_assignments_of_the_levels_below(store):
    block(store)
    add(store, [draft(0.005, 0.005), draft(0.015, 0.005)], {GRID: ["W", "E"], MICRO: ["W-S", "E-S"]})
    save(store, grid_layer(), based_on=1)
    commit(store, GRID, 2, {GRID: ([1, 2], ["W", "E"]), MICRO: ([1], ["W-N"])})
    ids, codes = store.assignments(MICRO, 1)     # the current micro-grid version, rewritten whole
    assert (ids.tolist(), codes.tolist()) == ([1], ["W-N"])
    assert store.incidents()[["grid", "micro_grid"]].values.tolist() == [["W", "W-N"], ["E", None]]
    assert store.versions() == {GRID: 2, MICRO: 1}


def test_set_units_replaces_only_the_named_incidents_rows_of_one_version(store):
    block(store)
    add(store, [draft(0.005, 0.005), draft(0.015, 0.005), draft(0.015, 0.015)],
        {GRID: ["W", "E", "E"], MICRO: ["W-S", "E-S", "E-N"]})
    with store.writing() as tx:         # two batches, the second out of order, one of them outside
        tx.set_units(MICRO, 1, np.array([3], dtype=np.int64), np.array(["W-N"], dtype=object))
        tx.set_units(MICRO, 1, np.array([2, 1], dtype=np.int64), np.array([None, "W-S"], dtype=object))
    assert [a.tolist() for a in store.assignments(MICRO, 1)] == [[1, 2, 3], ["W-S", None, "W-N"]]
    assert [a.tolist() for a in store.assignments(GRID, 1)] == [[1, 2, 3], ["W", "E", "E"]]
    assert store.unit_counts(MICRO, 1) == {"W-S": 1, "W-N": 1}
    before = snapshot(store)
    with pytest.raises(ValueError, match="1 of 2 assignments name incidents that are not stored"):
        with store.writing() as tx:
            tx.set_units(MICRO, 1, np.array([1, 9], dtype=np.int64), np.array(["E-N", "E-N"], dtype=object))
    assert snapshot(store) == before


def test_relinked_parents_change_the_current_child_version_in_place(store):
    block(store)
    save(store, grid_layer(), based_on=1)
    commit(store, GRID, 2, relinked={MICRO: {"W-S": "E", "E-N": None}})
    micro = store.layers()[MICRO]
    assert (micro.version, micro.parent_source) == (1, "spatial")
    assert micro.units["parent_code"].tolist() == ["E", "W", "E", None]
    assert store.layer_version(MICRO, 1).units["parent_code"].tolist() == ["E", "W", "E", None]
    assert store.layers()[GRID].units["parent_code"].tolist() == [None, None]


# -- incidents -----------------------------------------------------------------------------------
INCIDENT_DTYPES = {"id": "int64", "external_id": "object", "category": "object", "category_raw": "object",
                   "lon": "float64", "lat": "float64", "reported_at": "datetime64[us]", "status": "object",
                   "description": "object", "source": "object", "original_x": "float64", "original_y": "float64",
                   "original_crs": "object", "resolution": "object", "closed_at": "datetime64[us]",
                   "rating": "object", "duplicate_of": "object", "escalation": "int64", "due_at": "datetime64[us]"}
#: An incident only reported, in its lifecycle columns.
REPORTED_ONLY = {"resolution": None, "closed_at": pd.NaT, "rating": None, "duplicate_of": None, "escalation": 0,
                 "due_at": pd.NaT}


def test_incidents_get_ids_in_order_and_their_unit_per_current_level(store):
    block(store)
    save(store, grid_layer())                    # grid v2, a draft: incidents go under v1, the current one
    first = [draft(0.005, 0.005, "a", category="other", category_raw="井盖丢失", description="东门", source="app"),
             draft(0.015, 0.015, status=Status.CLOSED, reported_at=datetime(2026, 3, 6, 9, 30, 15, 250)),
             draft(5, 5, "c")]
    assert add(store, first, {GRID: ["W", "E", None], MICRO: ["W-S", "E-N", None], Level.STREET: ["S1"] * 3}) == [
        1, 2, 3]
    assert add(store, [draft(0.005, 0.015)], {GRID: ["W"], MICRO: ["W-N"]}) == [4]
    assert add(store, [], {}) == []
    frame = store.incidents()
    assert frame.dtypes.astype(str).to_dict() == {**INCIDENT_DTYPES, "grid": "object", "micro_grid": "object"}
    assert frame.index.tolist() == [0, 1, 2, 3]
    assert frame["original_x"].isna().all() and frame["original_crs"].isna().all()     # all given in WGS84
    assert frame.drop(columns=["original_x", "original_y", "original_crs"]).to_dict("records")[:2] == [
        {"id": 1, "external_id": "a", "category": "other", "category_raw": "井盖丢失", "lon": 0.005, "lat": 0.005,
         "reported_at": pd.Timestamp(MARCH_5), "status": "reported", "description": "东门", "source": "app",
         **REPORTED_ONLY, "grid": "W", "micro_grid": "W-S"},
        {"id": 2, "external_id": None, "category": "litter", "category_raw": None, "lon": 0.015, "lat": 0.015,
         "reported_at": pd.Timestamp(2026, 3, 6, 9, 30, 15, 250), "status": "closed", "description": "",
         "source": "", **REPORTED_ONLY, "grid": "E", "micro_grid": "E-N"}]
    assert frame[["id", "external_id", "grid", "micro_grid"]].values.tolist() == [
        [1, "a", "W", "W-S"], [2, None, "E", "E-N"], [3, "c", None, None], [4, None, "W", "W-N"]]
    assert store.count_incidents() == 4
    assert store.assignments(GRID, 1)[0].tolist() == [1, 2, 3, 4]
    assert store.assignments(GRID, 2)[0].tolist() == []
    table = store.incident_table()
    assert (table["id"].dtype, table["id"].tolist(), table["lon"].tolist(), table["lat"].tolist()) == (
        np.int64, [1, 2, 3, 4], [0.005, 0.015, 5.0, 0.005], [0.005, 0.015, 5.0, 0.015])
    assert (table["category"].tolist(), table["status"].tolist()) == (
        ["other", "litter", "litter", "litter"], ["reported", "closed", "reported", "reported"])
    assert table["reported_at"].tolist()[:2] == [MARCH_5, datetime(2026, 3, 6, 9, 30, 15, 250)]
    assert store.incident_table(after=1, limit=2)["id"].tolist() == [2, 3]


def test_incidents_before_any_layer_have_no_unit_columns(store):
    assert store.incidents().dtypes.astype(str).to_dict() == INCIDENT_DTYPES
    assert len(store.incidents()) == 0
    assert add(store, [draft(1, 2, "x")], {GRID: ["W"]}) == [1]
    frame = store.incidents()
    assert frame.columns.tolist() == list(INCIDENT_DTYPES)
    assert frame["external_id"].tolist() == ["x"]
    save_committed(store, grid_layer())
    assert store.incidents()["grid"].tolist() == [None]     # never assigned under this version


def test_filters(store):
    block(store)
    add(store, [
        draft(0.005, 0.005, category="litter", reported_at=datetime(2026, 1, 31, 23, 59)),
        draft(0.015, 0.005, category="clutter", reported_at=datetime(2026, 2, 1, 0, 0), status=Status.CLOSED),
        draft(0.015, 0.015, category="litter", reported_at=datetime(2026, 2, 2, 12, 0)),
    ], {GRID: ["W", "E", "E"], MICRO: ["W-S", "E-S", "E-N"]})

    def ids(query: IncidentQuery, **kw) -> list[int]:
        return store.incidents(query, **kw)["id"].tolist()
    assert ids(IncidentQuery()) == [1, 2, 3]
    assert ids(IncidentQuery(categories=("clutter",))) == [2]
    assert ids(IncidentQuery(statuses=("closed",))) == [2]
    assert ids(IncidentQuery(statuses=("reported",))) == [1, 3]
    assert ids(IncidentQuery(date_from=datetime(2026, 2, 1))) == [2, 3]            # from: inclusive
    assert ids(IncidentQuery(date_to=datetime(2026, 2, 1))) == [1]                 # to: exclusive
    assert ids(IncidentQuery(date_from=datetime(2026, 2, 1), date_to=datetime(2026, 2, 2, 12, 0))) == [2]
    assert ids(IncidentQuery(ids=(3, 1, 99))) == [1, 3]
    assert ids(IncidentQuery(ids=())) == []
    assert ids(IncidentQuery(unit="W")) == [1]                                     # a grid
    assert ids(IncidentQuery(unit="E-S")) == [2]                                   # a micro-grid
    assert ids(IncidentQuery(unit="E", categories=("litter",))) == [3]
    assert ids(IncidentQuery(unit="nowhere")) == []
    save(store, grid_layer(), based_on=1)
    commit(store, GRID, 2, {GRID: ([1, 2, 3], ["E", "E", "E"])})
    assert ids(IncidentQuery(unit="W")) == []
    assert ids(IncidentQuery(unit="W"), at={GRID: 1}) == [1]                       # the version shown



def four_incidents(store: Store) -> None:
    """W-S holds two (one closed), E-N one, and one lies outside both levels (west of the block)."""
    block(store)
    add(store, [
        draft(0.002, 0.002, category="litter"),
        draft(0.004, 0.003, category="litter", status=Status.CLOSED),
        draft(0.015, 0.015, category="clutter"),
        draft(-0.003, 0.005, category="litter"),
    ], {GRID: ["W", "W", "E", None], MICRO: ["W-S", "W-S", "E-N", None]})


def test_several_categories_statuses_and_sources_match_any_of_them(store):
    block(store)
    add(store, [
        draft(0.005, 0.005, category="litter", source="12345热线"),
        draft(0.015, 0.005, category="clutter", status=Status.CLOSED, source="网格员"),
        draft(0.015, 0.015, category="flying_cable", status=Status.DISPATCHED),
        draft(0.005, 0.015, category="litter", status=Status.CLOSED, source="网格员"),
    ], {GRID: ["W", "E", "E", "W"], MICRO: ["W-S", "E-S", "E-N", "W-N"]})

    def ids(query: IncidentQuery) -> list[int]:
        return store.incidents(query)["id"].tolist()
    assert ids(IncidentQuery(categories=("litter", "flying_cable"))) == [1, 3, 4]
    assert ids(IncidentQuery(statuses=("closed", "dispatched"))) == [2, 3, 4]
    assert ids(IncidentQuery(sources=("网格员",))) == [2, 4]
    assert ids(IncidentQuery(sources=("12345热线", "网格员"), categories=("litter",))) == [1, 4]
    assert ids(IncidentQuery(sources=("nobody",))) == []
    assert store.counts(IncidentQuery(), "source") == {"": 1, "12345热线": 1, "网格员": 2}
    assert store.counts(IncidentQuery(statuses=("closed",)), "source") == {"网格员": 2}
    assert store.unit_counts(GRID, 1, IncidentQuery(categories=("clutter", "flying_cable"))) == {"E": 2}


def test_lifecycle_steps_change_the_incident_and_are_kept_in_order(store):
    block(store)
    add(store, [draft(0.005, 0.005, category="clutter"), draft(0.015, 0.005)], {GRID: ["W", "E"]})
    at = datetime(2026, 3, 6, 9, 0)
    with store.writing() as tx:
        assert tx.incident_state(1) == IncidentState(id=1, status="reported", escalation=0, category="clutter",
                                                     reported_at=MARCH_5)
        with pytest.raises(NotFound):
            tx.incident_state(3)
        assert tx.add_event(IncidentEvent(1, at, "王", "dispatch", "reported", "dispatched")) == 1
        assert tx.add_event(IncidentEvent(1, at, "王", "escalate", "dispatched", "dispatched", escalation=1)) == 2
        tx.add_event(IncidentEvent(1, at, "李", "close", "dispatched", "closed", note="已清理", resolution="fixed"))
        tx.add_event(IncidentEvent(2, at, "李", "duplicate", "reported", "duplicate", duplicate_of=1))
    frame = store.incidents().set_index("id")
    assert frame.loc[1, ["status", "resolution", "closed_at", "escalation"]].tolist() == [
        "closed", "fixed", pd.Timestamp(at), 1]
    assert frame.loc[2, ["status", "duplicate_of"]].tolist() == ["duplicate", 1]
    assert [(e.id, e.action, e.from_status, e.to_status, e.note) for e in store.incident_events(1)] == [
        (1, "dispatch", "reported", "dispatched", ""), (2, "escalate", "dispatched", "dispatched", ""),
        (3, "close", "dispatched", "closed", "已清理")]
    last, ids, statuses = store.status_changes(after=1)
    assert (last, ids.tolist(), statuses.tolist()) == (4, [1, 1, 2], ["dispatched", "closed", "duplicate"])
    assert store.status_changes(after=4)[0] == 4 and not len(store.status_changes(after=4)[1])
    with store.writing() as tx:          # a reopen clears how it ended
        tx.add_event(IncidentEvent(1, at, "王", "reopen", "closed", "dispatched"))
    assert store.incidents().set_index("id").loc[1, ["status", "resolution", "escalation"]].tolist() == [
        "dispatched", None, 1]
    assert pd.isna(store.incidents().set_index("id").loc[1, "closed_at"])
    assert store.incidents(IncidentQuery(statuses=("dispatched",)))["id"].tolist() == [1]
    with store.writing() as tx:
        tx.add_event(IncidentEvent(1, at, "王", "close", "dispatched", "closed", resolution="not_fixed"))
        tx.add_event(IncidentEvent(1, at, "王", "rate", "closed", "rated", rating=2))
    columns = store.lifecycle_columns(GRID, 1)
    assert {k: v.tolist() for k, v in columns.items() if k not in ("rating", "closed_at", "due_at")} == {
        "unit": ["W", "E"], "category": ["clutter", "litter"], "status": ["rated", "duplicate"],
        "resolution": ["not_fixed", None], "reported_at": [MARCH_5, MARCH_5]}
    assert columns["rating"].dtype == float and columns["rating"][0] == 2 and np.isnan(columns["rating"][1])
    assert columns["closed_at"].dtype == np.dtype("datetime64[us]") and columns["closed_at"][0] == np.datetime64(at)
    assert np.isnat(columns["closed_at"][1])
    assert store.lifecycle_columns(GRID, 1, IncidentQuery(categories=("litter",)))["unit"].tolist() == ["E"]
    values = store.lifecycle_values()            # only incident 1 has a resolution, rating, close time, escalation
    assert (values["id"].tolist(), values["resolution"].tolist(), values["rating"].tolist(),
            values["escalation"].tolist()) == ([1], ["not_fixed"], [2.0], [1])
    with store.writing() as tx:                  # many steps at once, in order: the later one's values stand
        tx.add_events([IncidentEvent(2, at, "gridmap", "reopen", "duplicate", "dispatched"),
                       IncidentEvent(2, at, "gridmap", "escalate", "dispatched", "dispatched", escalation=1),
                       IncidentEvent(2, at, "gridmap", "escalate", "dispatched", "dispatched", escalation=2,
                                     note="超期")])
    assert store.incidents().set_index("id").loc[2, ["status", "escalation", "duplicate_of"]].tolist() == [
        "dispatched", 2, None]
    assert [(e.action, e.escalation, e.note) for e in store.incident_events(2)][-2:] == [
        ("escalate", 1, ""), ("escalate", 2, "超期")]
    assert store.incident_events(2)[-1].at == at
    assert values["closed_at"].tolist() == [at]


def test_bbox_filter_is_inclusive_on_every_side(store):
    four_incidents(store)
    assert store.incidents(IncidentQuery(bbox=(0.002, 0.002, 0.015, 0.015)))["id"].tolist() == [1, 2, 3]
    assert store.incidents(IncidentQuery(bbox=(0.0021, 0.0, 0.02, 0.02)))["id"].tolist() == [2, 3]
    assert store.incidents(IncidentQuery(bbox=(-1, -1, 1, 0.0029)))["id"].tolist() == [1]


def test_incident_pages_follow_ids_after_a_cursor(store):
    four_incidents(store)
    assert store.incident_page(limit=3)["id"].tolist() == [1, 2, 3]
    assert store.incident_page(after=3, limit=3)["id"].tolist() == [4]
    assert store.incident_page(after=4, limit=3)["id"].tolist() == []
    page = store.incident_page(IncidentQuery(categories=("litter",)), after=1, limit=1)
    assert page[["id", "grid", "micro_grid"]].values.tolist() == [[2, "W", "W-S"]]
    assert page.dtypes.astype(str).to_dict() == {**INCIDENT_DTYPES, "grid": "object", "micro_grid": "object"}


def test_heat_counts_incidents_per_cell_at_their_mean_position(store):
    four_incidents(store)
    # cells of 0.01° from lon -180 / lat -90: incidents 1 and 2 share cell (18000, 9000)
    heat = store.heat(IncidentQuery(), cell_deg=0.01)
    cells = sorted(zip(heat.count.tolist(), np.round(heat.lon, 9).tolist(), np.round(heat.lat, 9).tolist()))
    assert cells == [(1, -0.003, 0.005), (1, 0.015, 0.015), (2, 0.003, 0.0025)]
    assert (heat.total, heat.cell_deg, heat.count.dtype) == (4, 0.01, np.int64)
    closed = store.heat(IncidentQuery(statuses=("closed",), bbox=(0, 0, 0.01, 0.01)), cell_deg=0.001)
    assert (closed.count.tolist(), closed.lon.tolist(), closed.lat.tolist(), closed.total) == ([1], [0.004], [0.003], 1)
    assert store.heat(IncidentQuery(unit="E-N"), cell_deg=0.01).count.tolist() == [1]
    empty = store.heat(IncidentQuery(categories=("fire_hazard",)), cell_deg=0.01)
    assert (len(empty.count), len(empty.lon), empty.total) == (0, 0, 0)


def test_unit_counts_come_from_one_versions_assignments(store):
    four_incidents(store)
    assert store.unit_counts(MICRO, 1) == {"W-S": 2, "E-N": 1}
    assert store.unit_counts(GRID, 1) == {"W": 2, "E": 1}
    assert store.unit_counts(GRID, 1, IncidentQuery(statuses=("reported",))) == {"W": 1, "E": 1}
    assert store.unit_counts(MICRO, 1, IncidentQuery(unit="E")) == {"E-N": 1}
    save(store, grid_layer(), based_on=1)
    commit(store, GRID, 2, {GRID: ([1, 2, 3, 4], ["E", "E", "E", "E"])})
    assert (store.unit_counts(GRID, 2), store.unit_counts(GRID, 1)) == ({"E": 4}, {"W": 2, "E": 1})


def test_excluded_points_leave_out_exactly_the_incidents_on_those_coordinates(store):
    four_incidents(store)
    add(store, [draft(0.002, 0.002, category="litter")] * 3, {GRID: ["W"] * 3, MICRO: ["W-S"] * 3})
    query = IncidentQuery(exclude_points=((0.002, 0.002), (0.5, 0.5)))
    assert store.incidents(query)["id"].tolist() == [2, 3, 4]
    assert store.unit_counts(MICRO, 1, query) == {"W-S": 1, "E-N": 1}
    assert store.totals(query) == (3, 1)
    assert store.counts(query, "category") == {"litter": 2, "clutter": 1}
    cells = store.heat(query, cell_deg=1.0)
    assert (cells.total, sorted(cells.count.tolist())) == (3, [1, 2])
    # a coordinate a hair away is another coordinate
    assert store.totals(IncidentQuery(exclude_points=((0.002, 0.0020000001),))) == (7, 1)


def test_unit_counts_per_period_split_at_each_bound(store):
    four_incidents(store)                                  # all at 2026-03-05 08:00
    add(store, [draft(0.002, 0.002, reported_at=datetime(2026, 2, 28, 23, 59)),
                draft(0.015, 0.015, reported_at=datetime(2026, 4, 1))], {MICRO: ["W-S", "E-N"]})
    bounds = [datetime(2026, 2, 1), MARCH_5, datetime(2026, 4, 1), datetime(2026, 5, 1)]
    assert store.unit_counts_in(MICRO, 1, IncidentQuery(), bounds) == [{"W-S": 1}, {"W-S": 2, "E-N": 1}, {"E-N": 1}]
    assert store.unit_counts_in(MICRO, 1, IncidentQuery(categories=("litter",), date_from=datetime(2026, 3, 1)),
                                bounds) == [{}, {"W-S": 2}, {"E-N": 1}]
    assert store.unit_counts_in(MICRO, 1, IncidentQuery(), bounds[:1]) == []


def test_moves_count_incidents_whose_unit_changed_between_two_versions(store):
    four_incidents(store)
    save(store, micro_layer(), based_on=1)
    commit(store, MICRO, 2, {MICRO: ([1, 2, 3, 4], ["W-S", "W-N", None, "W-S"])})
    assert sorted(store.moves(MICRO, 1, 2), key=str) == sorted([("W-S", "W-N", 1), ("E-N", None, 1),
                                                               (None, "W-S", 1)], key=str)
    assert sorted(store.moves(MICRO, None, 1), key=str) == sorted([(None, "W-S", 2), (None, "E-N", 1)], key=str)
    assert store.moves(MICRO, 2, 2) == []

def test_counts_per_category_day_and_month(store):
    add(store, [draft(0.002, 0.002, category="litter", reported_at=datetime(2026, 1, 31, 23, 59, 59, 999999)),
                draft(0.004, 0.003, category="clutter", reported_at=datetime(2026, 2, 1), status=Status.CLOSED),
                draft(0.015, 0.015, category="litter", reported_at=datetime(2026, 2, 1, 12)),
                draft(0.016, 0.015, category="litter", reported_at=datetime(2026, 3, 2, 8))])
    assert store.counts(IncidentQuery(), "category") == {"litter": 3, "clutter": 1}
    assert store.counts(IncidentQuery(), "day") == {"2026-01-31": 1, "2026-02-01": 2, "2026-03-02": 1}
    assert store.counts(IncidentQuery(), "month") == {"2026-01": 1, "2026-02": 2, "2026-03": 1}
    assert store.counts(IncidentQuery(categories=("litter",), date_from=datetime(2026, 2, 1)), "month") == {
        "2026-02": 1, "2026-03": 1}
    assert store.counts(IncidentQuery(statuses=("closed",)), "category") == {"clutter": 1}
    assert store.counts(IncidentQuery(categories=("fire_hazard",)), "day") == {}
    # hours of the week: 31 January 2026 is a Saturday (6), 1 February a Sunday (7), 2 March a Monday (1)
    assert store.counts(IncidentQuery(), "weekday_hour") == {"6-23": 1, "7-00": 1, "7-12": 1, "1-08": 1}

def test_totals_and_points_outside_some_level(store):
    assert store.totals() == (0, 0)
    add(store, [draft(1, 1)], {})
    assert store.totals() == (1, 1)                   # no level has units: outside every one
    assert [a.tolist() for a in store.outside_points(IncidentQuery(), limit=5)] == [[1.0], [1.0]]
    block(store)
    assert store.totals() == (1, 1)                   # never assigned under these versions
    add(store, [draft(0.002, 0.002), draft(0.015, 0.015), draft(-0.003, 0.005)],
        {GRID: ["W", "E", None], MICRO: ["W-S", None, None]})
    assert store.totals() == (4, 3)                   # 3 is in a grid but in no micro-grid
    assert store.totals(IncidentQuery(bbox=(0, 0, 0.02, 0.02))) == (2, 1)
    lon, lat = store.outside_points(IncidentQuery(), limit=2)
    assert (lon.tolist(), lat.tolist()) == ([1.0, 0.015], [1.0, 0.015])
    save(store, micro_layer(), based_on=1)
    commit(store, MICRO, 2, {MICRO: ([1, 2, 3, 4], [None, "W-S", "E-N", None])})
    assert store.totals() == (4, 2)
    assert store.totals(at={MICRO: 1}) == (4, 3)      # as shown under the old micro-grids

def test_known_reports_are_the_stored_incidents_with_those_external_ids(store):
    add(store, [draft(0.005, 0.005, "a"), draft(0.015, 0.005),
                draft(0.015, 0.015, "b", category="other", category_raw="噪音", reported_at=datetime(2026, 2, 1))])
    with store.writing() as tx:
        assert tx.known_reports(["b", "zz", "a", "b"]) == {
            "a": KnownReport(1, "litter", None, 0.005, 0.005, MARCH_5),
            "b": KnownReport(3, "other", "噪音", 0.015, 0.015, datetime(2026, 2, 1))}
        assert tx.known_reports([]) == {}


@pytest.mark.parametrize("text", ["", "it's \\ 'quoted'", "飞线充电 🔌", "--; DROP TABLE incidents"])
def test_a_value_every_row_of_a_batch_shares_is_stored_exactly(store, text, monkeypatch):
    # SQLite is given such a column once, as a literal in the statement (not bound row by row),
    # in a batch of LITERALS_FROM rows or more
    monkeypatch.setattr(sql, "LITERALS_FROM", 3)
    closed = datetime(2026, 3, 6, 9, 30, 0, 123456)
    drafts = [draft(0.005 + i / 1000, 0.005, f"e{i}", description=text, source=text, category_raw=text,
                    status=Status.CLOSED, closed_at=closed, original_crs=None) for i in range(3)]
    assert add(store, drafts) == [1, 2, 3]
    frame = store.incidents()
    assert frame["description"].tolist() == frame["source"].tolist() == frame["category_raw"].tolist() == [text] * 3
    assert frame["status"].tolist() == ["closed"] * 3
    assert frame["external_id"].tolist() == ["e0", "e1", "e2"]
    assert frame["lon"].tolist() == [0.005, 0.006, 0.007]
    lifecycle = store.lifecycle_values()
    assert lifecycle["id"].tolist() == [1, 2, 3]
    assert lifecycle["closed_at"].tolist() == [closed] * 3
    assert lifecycle["due_at"].tolist() == [None] * 3          # NaT


def test_sqlite_text_with_a_nul_character_shared_by_a_batch_is_bound_not_written_as_a_literal(tmp_path, monkeypatch):
    monkeypatch.setattr(sql, "LITERALS_FROM", 2)
    # the domain refuses such text (PostgreSQL cannot store it); the SQLite writer still keeps it exactly
    store = open_store(f"sqlite:///{tmp_path / 'nul.db'}")
    add(store, [draft(0.005, 0.005, description="a\x00b"), draft(0.006, 0.005, description="a\x00b")])
    assert store.incidents()["description"].tolist() == ["a\x00b", "a\x00b"]


SHARED = {"category", "category_raw", "description", "source", "status", "reported_at"}


@pytest.mark.parametrize("literals_from, shared", [(3, SHARED), (4, set())])
def test_sqlite_a_big_batch_s_shared_values_go_into_the_statement_and_a_small_one_s_are_bound(
        tmp_path, monkeypatch, literals_from, shared):
    monkeypatch.setattr(sql, "LITERALS_FROM", literals_from)
    writes, insert_many = [], sql._insert_many

    def recorded(conn, table, columns, rows, *, same=None):
        writes.append((table.name, set(columns), dict(same or {})))
        insert_many(conn, table, columns, rows, same=same)

    monkeypatch.setattr(sql, "_insert_many", recorded)
    store = open_store(f"sqlite:///{tmp_path / 'literal.db'}")
    add(store, [draft(0.005 + i / 1000, 0.005, f"e{i}", description="三号楼") for i in range(3)])
    [(table, bound, same)] = writes
    assert (table, set(same) - {"created_at"}) == ("incidents", shared)
    assert bound == {"id", "external_id", "lon", "lat"} | (SHARED - shared)
    assert store.incidents()["description"].tolist() == ["三号楼"] * 3


def test_a_column_shared_by_some_rows_only_is_stored_row_by_row(store, monkeypatch):
    monkeypatch.setattr(sql, "LITERALS_FROM", 3)
    drafts = [draft(0.005, 0.005, None, description="x"), draft(0.006, 0.005, "b", description="x"),
              draft(0.007, 0.005, None, description="y", source="s")]
    add(store, drafts)
    frame = store.incidents()
    assert frame["external_id"].tolist() == [None, "b", None]
    assert frame["description"].tolist() == ["x", "x", "y"]
    assert frame["source"].tolist() == ["", "", "s"]


def test_known_reports_include_those_stored_earlier_in_the_same_transaction(store):
    add(store, [draft(0.005, 0.005)])          # the store holds no external id before the transaction
    with store.writing() as tx:
        assert tx.known_reports(["a", "b"]) == {}
        tx.add_incidents(IncidentColumns.of([draft(0.005, 0.005, "a"), draft(0.015, 0.005, "b", category="other")]),
                         {})
        assert tx.known_reports(["c", "b", "a"]) == {"a": KnownReport(2, "litter", None, 0.005, 0.005, MARCH_5),
                                                     "b": KnownReport(3, "other", None, 0.015, 0.005, MARCH_5)}
        assert tx.known_reports(["c"]) == {}


def test_repeated_external_ids_follow_the_domain_rule_within_and_across_batches(store):
    save_committed(store, grid_layer())
    first = report(store, [draft(0.005, 0.005, "a"), draft(0.015, 0.005, "b"), draft(0.005, 0.005, "a"),
                           draft(5, 5), draft(0.005, 0.005, "a", category="dispute")],
                   {GRID: ["W", "E", "W", None, "W"]})
    assert first == [Stored(1, Outcome.CREATED), Stored(2, Outcome.CREATED), Stored(1, Outcome.EXISTING),
                     Stored(3, Outcome.CREATED), Stored(1, Outcome.CONFLICT)]
    again = report(store, [draft(0.015, 0.005, "b"), draft(0.015, 0.0051, "b")], {GRID: ["E", "E"]})
    assert again == [Stored(2, Outcome.EXISTING), Stored(2, Outcome.CONFLICT)]
    # A draft whose time was defaulted (not given) matches on category and position alone.
    undated = draft(0.015, 0.005, "b", reported_at=datetime(2030, 1, 1), time_given=False)
    assert report(store, [undated], {}) == [Stored(2, Outcome.EXISTING)]
    frame = store.incidents()
    assert frame["id"].tolist() == [1, 2, 3]
    assert frame["grid"].tolist() == ["W", "E", None]
    assert store.count_incidents() == 3


# -- transactions --------------------------------------------------------------------------------
class Boom(Exception):
    pass


def snapshot(store: Store) -> dict:
    """Everything a reader can see, as plain values."""
    return {"versions": store.versions(), "layer_meta": store.layer_meta(),
            "history": {lv: store.history(lv) for lv in (GRID, MICRO)},
            "layers": {lv: (layer.version, layer.parent_source, layer.units.drop(columns="geometry").values.tolist(),
                            shapely.to_wkb(layer.units.geometry.to_numpy()).tolist())
                       for lv, layer in store.layers().items()},
            "records": {lv: store.version_record(lv, 1) for lv in (GRID, MICRO)},
            "assignments": {lv: [a.tolist() for a in store.assignments(lv, 1)] for lv in (GRID, MICRO)},
            # NaN and NaT as None: a missing value equals itself
            "incidents": store.incidents().astype(object).where(lambda f: f.notna(), None).to_dict("list"),
            "table": {k: v.tolist() for k, v in store.incident_table().items()}}


def test_a_failed_transaction_keeps_nothing(store):
    block(store)
    add(store, [draft(0.005, 0.005, "a")], {GRID: ["W"], MICRO: ["W-S"]})
    before = snapshot(store)
    with pytest.raises(Boom), store.writing() as tx:
        assert tx.add_version(grid_layer(), VersionInfo(based_on=1, change=tx.new_change())) == 2
        assert tx.add_incidents(IncidentColumns.of([draft(0.015, 0.005, "b")]),
                                {GRID: np.array(["E"], dtype=object)}).tolist() == [2]
        tx.commit(GRID, 2, author="x", record=VersionRecord(options={"x": 1}), commit=Assignments(
            {GRID: (np.array([1, 2]), np.array(["E", "E"], dtype=object)),
             MICRO: (np.array([1]), np.array(["E-S"], dtype=object))}, relinked={MICRO: {"W-S": None}}))
        assert tx.heads()[GRID].version == 2
        raise Boom
    assert snapshot(store) == before
    with pytest.raises(NotFound):
        store.layer_version(GRID, 2)
    with store.writing() as tx:          # nothing was used up either
        assert tx.new_change() == 1
        assert tx.add_version(grid_layer(), VersionInfo()) == 2
        assert tx.add_incidents(IncidentColumns.of([draft(0.015, 0.005, "b")]), {}).tolist() == [2]


def test_a_batch_repeating_a_stored_external_id_is_refused_whole(store):
    # The domain never asks for this (see new_reports); the store still refuses it, as a
    # unique column does, and the rows written before it in the transaction go too.
    with pytest.raises((sa.exc.IntegrityError, ValueError)), store.writing() as tx:
        tx.add_incidents(IncidentColumns.of([draft(1, 2, "ok"), draft(1, 2, "x")]), {})
        tx.add_incidents(IncidentColumns.of([draft(1, 2, "x")]), {})
    assert store.count_incidents() == 0


def test_transactions_of_two_threads_never_interleave(store):
    events: list[str] = []
    inside = threading.Event()

    def first() -> None:
        with store.writing() as tx:
            events.append("first in")
            inside.set()
            time.sleep(0.2)                 # the second thread is trying to start meanwhile
            tx.add_version(grid_layer(), VersionInfo())
            events.append("first out")

    def second() -> None:
        inside.wait()
        with store.writing() as tx:
            events.append("second in")
            events.append(f"second sees {tx.add_version(grid_layer(), VersionInfo())}")

    threads = [threading.Thread(target=first), threading.Thread(target=second)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert events == ["first in", "first out", "second in", "second sees 2"]


def test_unsupported_url_is_refused():
    with pytest.raises(InvalidInput, match="unsupported database URL 'mysql://host/db'"):
        open_store("mysql://host/db")


# -- one backend only ----------------------------------------------------------------------------
def test_sqlite_data_survives_reopening_and_runs_in_wal_mode(tmp_path):
    url = f"sqlite:///{tmp_path / 'reopen.db'}"
    first = open_store(url)
    save(first, grid_layer())
    commit(first, GRID, 1, record=VersionRecord(options={"kept": True}))
    add(first, [draft(1, 2, "keep")], {GRID: ["W"]})
    first.close()
    second = open_store(url)
    assert second.versions() == {GRID: 1}
    assert second.layers()[GRID].units["code"].tolist() == ["W", "E"]
    assert second.version_record(GRID, 1).options == {"kept": True}
    assert second.incidents()[["external_id", "grid"]].values.tolist() == [["keep", "W"]]
    with second.engine.connect() as conn:
        assert conn.execute(sa.text("PRAGMA journal_mode")).scalar_one() == "wal"
    second.close()


def test_sqlite_a_big_import_sets_the_secondary_indexes_aside_and_builds_them_again(tmp_path, monkeypatch):
    monkeypatch.setattr(sql, "SET_ASIDE_FROM", 3)
    store = open_store(f"sqlite:///{tmp_path / 'bulk.db'}")
    add(store, [draft(0.005, 0.005), draft(0.015, 0.005)])

    def indexes(conn: sa.Connection) -> set[str]:
        return {name for (name,) in conn.exec_driver_sql("SELECT name FROM sqlite_master WHERE type = 'index' "
                                                         "AND sql IS NOT NULL AND tbl_name IN ('incidents', "
                                                         "'assignments')")}
    both = {"ix_incidents_category_time", "ix_assignments_version_unit"}
    with store.writing() as tx:
        tx.expect_incidents(2)         # fewer than SET_ASIDE_FROM: kept
        assert indexes(tx.conn) == both
    with pytest.raises(Boom), store.writing() as tx:
        tx.expect_incidents(3)         # as many as stored, and enough
        assert indexes(tx.conn) == set()
        raise Boom
    with store.engine.connect() as conn:
        assert indexes(conn) == both      # the rollback kept it
    with store.writing() as tx:
        tx.expect_incidents(3)
        tx.add_incidents(IncidentColumns.of([draft(0.005, 0.015, category="other", reported_at=datetime(2026, 4, d))
                                             for d in (1, 2, 3)]), {})
    with store.engine.connect() as conn:
        assert indexes(conn) == both
        plan = conn.exec_driver_sql("EXPLAIN QUERY PLAN SELECT count(*) FROM incidents WHERE category = 'other' "
                                    "AND reported_at >= '2026-04-02'").all()
        assert "ix_incidents_category_time" in str(plan)
    assert store.counts(IncidentQuery(categories=("other",), date_from=datetime(2026, 4, 2)), "day") == {
        "2026-04-02": 1, "2026-04-03": 1}
    store.close()


def test_sqlite_a_big_import_keeps_the_assignment_index_when_stored_assignments_outnumber_it(tmp_path, monkeypatch):
    monkeypatch.setattr(sql, "SET_ASIDE_FROM", 2)
    store = open_store(f"sqlite:///{tmp_path / 'bulk.db'}")
    save_committed(store, grid_layer())
    add(store, [draft(0.005, 0.005), draft(0.015, 0.005)], {GRID: ["W", "E"]})
    # a commit of each of three more versions: 2 incidents x 4 versions = 8 assignment rows stored
    for _ in range(3):
        commit(store, GRID, save(store, grid_layer()), {GRID: ([1, 2], ["W", "E"])})
    with pytest.raises(Boom), store.writing() as tx:
        tx.expect_incidents(7)       # 7 incidents x 1 level < 8 rows: only the incidents' index goes
        assert {name for (name,) in tx.conn.exec_driver_sql(
            "SELECT name FROM sqlite_master WHERE type = 'index' AND sql IS NOT NULL")} >= {
            "ix_assignments_version_unit"}
        assert tx.conn.exec_driver_sql("SELECT count(*) FROM sqlite_master WHERE name = "
                                       "'ix_incidents_category_time'").scalar_one() == 0
        raise Boom
    store.close()


def test_memory_store_refuses_a_transaction_inside_another():
    store = open_store("memory://")
    with pytest.raises(RuntimeError, match="already open"), store.writing():
        with store.writing():
            pass
    assert save(store, grid_layer()) == 1      # the lock was released


def test_sqlite_a_database_keyed_the_old_way_is_rebuilt_keeping_every_assignment(tmp_path):
    url = f"sqlite:///{tmp_path / 'old.db'}"
    store = open_store(url)
    block(store)
    add(store, [draft(0.002, 0.002), draft(-1, 0.005)], {GRID: ["W", None], MICRO: ["W-S", None]})
    store.close()
    # the table as gridmap made it before assignments were keyed by version first
    with sa.create_engine(url).begin() as conn:
        conn.exec_driver_sql("DROP INDEX ix_assignments_version_unit")
        conn.exec_driver_sql("ALTER TABLE assignments RENAME TO new_way")
        conn.exec_driver_sql("CREATE TABLE assignments (incident_id INTEGER NOT NULL REFERENCES incidents (id), "
                             "version_id INTEGER NOT NULL REFERENCES layer_versions (id), unit_code VARCHAR(100), "
                             "PRIMARY KEY (incident_id, version_id))")
        conn.exec_driver_sql("INSERT INTO assignments SELECT incident_id, version_id, unit_code FROM new_way")
        conn.exec_driver_sql("DROP TABLE new_way")
        conn.exec_driver_sql("DROP INDEX ix_incidents_category_time")
        conn.exec_driver_sql("DROP TABLE alembic_version")        # made before there were migrations
    store = open_store(url)
    inspector = sa.inspect(store.engine)      # type: ignore[attr-defined]
    assert inspector.get_pk_constraint("assignments")["constrained_columns"] == ["version_id", "incident_id"]
    assert {i["name"] for i in inspector.get_indexes("incidents")} >= {"ix_incidents_category_time"}
    assert store.incidents()[["id", "grid", "micro_grid"]].values.tolist() == [[1, "W", "W-S"], [2, None, None]]
    assert store.unit_counts(MICRO, 1) == {"W-S": 1}
    store.close()
