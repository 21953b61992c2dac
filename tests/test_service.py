"""The service's use cases: linking levels, replacing a level, reassigning, lookup."""
from __future__ import annotations

import time

import pytest
from shapely import box

from gridmap.errors import InvalidInput, NotFound
from gridmap.levels import Level
from gridmap.service import FRESH_S, Gridmap
from gridmap.storage import open_store

from .conftest import database_url, feature_collection, grid_file, micro_file

POINTS = [  # lon, lat, expected grid, expected micro-grid
    (0.005, 0.005, "W", "W-S"), (0.015, 0.015, "E", "E-N"), (0.010, 0.005, "E", "E-S"), (0.5, 0.5, None, None)]


def report_points(service):
    return service.report([{"category": "litter", "lon": x, "lat": y} for x, y, _, _ in POINTS])


def test_micro_grids_get_parents_spatially_and_incidents_all_levels(block):
    assert block.store.layers()[Level.MICRO_GRID].units["parent_code"].tolist() == ["W", "W", "E", "E"]
    result = report_points(block)
    assert [item.units for item in result.items] == [{"grid": g, "micro_grid": m} for _, _, g, m in POINTS]
    assert result.created == 4 and result.errors == []


def test_replacing_a_level_reassigns_stored_incidents(block):
    report_points(block)
    # New grids: the W|E line moves east to x = 0.016.
    summary = block.import_layer(Level.GRID, feature_collection([
        ({"code": "W"}, box(0, 0, 0.016, 0.02)), ({"code": "E"}, box(0.016, 0, 0.02, 0.02))]))
    assert (summary.version, summary.reassigned, summary.unassigned) == (2, 4, 1)
    assert block.incidents()["grid"].tolist() == ["W", "W", "W", None]
    # Every micro-grid now lies under W, so the edge point goes to the smaller code, E-S.
    assert block.incidents()["micro_grid"].tolist() == ["W-S", "E-N", "E-S", None]
    # The micro-grids' parents were derived spatially, so they follow: E-S now lies 60 % in W.
    assert block.store.layers()[Level.MICRO_GRID].units["parent_code"].tolist() == ["W", "W", "W", "W"]


def test_named_parent_must_exist(service):
    service.import_layer(Level.GRID, grid_file())
    bad = feature_collection([({"code": "X-1", "parent_code": "X"}, box(0, 0, 0.01, 0.01))])
    with pytest.raises(InvalidInput) as caught:
        service.import_layer(Level.MICRO_GRID, bad)
    assert [str(d) for d in caught.value.details] == ["unit X-1 names parent X, which is not a grid code"]
    assert [(p.kind, p.feature, p.codes) for p in caught.value.report.errors] == [("unknown_parent", 0, ("X-1", "X"))]
    assert Level.MICRO_GRID not in service.store.layers()


def test_named_parents_are_kept(service):
    service.import_layer(Level.GRID, grid_file())
    summary = service.import_layer(Level.MICRO_GRID, micro_file(with_parent=True))
    assert summary.parent_source == "field"
    assert service.store.layers()[Level.MICRO_GRID].units["parent_code"].tolist() == ["W", "W", "E", "E"]


def test_lookup_deepest_first_with_staff(block):
    found = block.lookup(0.015, 0.005)
    assert [(u["level"], u["code"], u["staff"]) for u in found] == [
        ("micro_grid", "E-S", "worker E-S"), ("grid", "E", "staff E")]
    assert found[1]["phone"] == "139****0001"
    assert block.lookup(1.0, 1.0) == []
    with pytest.raises(InvalidInput, match="lon=200.0, lat=1.0 is not a WGS84 position"):
        block.lookup(200.0, 1.0)


def test_missing_layer_is_not_found(service):
    with pytest.raises(NotFound, match="no Grid layer has been uploaded yet"):
        service.layer(Level.GRID)


def test_incidents_reported_before_any_layer_are_assigned_when_one_arrives(service):
    report_points(service)
    assert service.incidents().columns.tolist()[-1] == "due_at"       # no level columns yet
    service.import_layer(Level.GRID, grid_file())
    assert service.incidents()["grid"].tolist() == ["W", "E", "E", None]


def test_demo_loads_through_the_importers(service):
    counts = service.load_demo()
    assert counts == {"grid": 5, "micro_grid": 20, "incidents": 1200}
    frame = service.incidents()
    assert int(frame["grid"].isna().sum()) == 6                        # the six reports outside the community
    micro = service.store.layers()[Level.MICRO_GRID].units
    assert micro["parent_code"].tolist() == [c.split("-")[0] for c in micro["code"]]
    grids = service.store.layers()[Level.GRID].units
    assert micro["area_m2"].sum() == pytest.approx(grids["area_m2"].sum(), abs=0.5)


def test_demo_loads_in_one_transaction(service, monkeypatch):
    def crash(*args, **kwargs):
        raise RuntimeError("the server stopped here")
    monkeypatch.setattr(Gridmap, "_store_in", crash)         # once both levels are written, before the incidents
    with pytest.raises(RuntimeError):
        service.load_demo()
    assert service.store.is_empty() and service.store.versions() == {}
    monkeypatch.undo()
    assert service.load_demo() == {"grid": 5, "micro_grid": 20, "incidents": 1200}
    assert [m.change for m in service.store.layer_meta()] == [1, 1]        # both levels saved as one change
    assert service.import_run(1).created == 1200


def test_micro_grids_uploaded_first_get_parents_when_the_grids_arrive(service):
    service.import_layer(Level.MICRO_GRID, micro_file())
    assert service.store.layers()[Level.MICRO_GRID].units["parent_code"].tolist() == [None] * 4
    service.import_layer(Level.GRID, grid_file())
    micro = service.store.layers()[Level.MICRO_GRID]
    assert micro.units["parent_code"].tolist() == ["W", "W", "E", "E"]
    assert micro.parent_source == "spatial"


def test_named_parents_missing_from_a_new_parent_layer_are_warned(service):
    service.import_layer(Level.GRID, grid_file())
    service.import_layer(Level.MICRO_GRID, micro_file(with_parent=True))
    summary = service.import_layer(Level.GRID, feature_collection([({"code": "W"}, box(0, 0, 0.02, 0.02))]))
    # The stored micro-grids' problems never block the grids: they are warnings naming their level.
    assert [str(w.message) for w in summary.report.warnings if w.kind == "unknown_parent"] == [
        "stored Micro-grid: unit E-S names parent E, which is not a grid code",
        "stored Micro-grid: unit E-N names parent E, which is not a grid code"]
    assert summary.status == "committed"


def test_replacing_grids_recomputes_micro_grids_on_shared_edges(block):
    block.report([{"category": "litter", "lon": 0.01, "lat": 0.005}])      # on the W|E edge: E, E-S
    assert block.incidents()[["grid", "micro_grid"]].values.tolist() == [["E", "E-S"]]
    # Same shapes, new codes: west "A", east "Z".  The edge now goes to A (smaller code), and the
    # micro-grid must follow: W-S, whose parent is A — not the stale E-S under Z.
    block.import_layer(Level.GRID, feature_collection([({"code": "A"}, box(0, 0, 0.01, 0.02)),
                                                       ({"code": "Z"}, box(0.01, 0, 0.02, 0.02))]))
    assert block.incidents()[["grid", "micro_grid"]].values.tolist() == [["A", "W-S"]]
    assert [u["code"] for u in block.lookup(0.01, 0.005)] == ["W-S", "A"]


def test_layers_are_loaded_once_and_reloaded_when_another_process_uploads(tmp_path, monkeypatch):
    url = database_url(tmp_path / "shared.db")
    writer, reader = Gridmap(open_store(url)), Gridmap(open_store(url))   # two processes, one database
    writer.import_layer(Level.GRID, grid_file())
    loads = []
    real_layers = reader.store.layers
    monkeypatch.setattr(reader.store, "layers", lambda: loads.append(1) or real_layers())
    assert [u["code"] for u in reader.lookup(0.015, 0.005)] == ["E"]
    assert [u["code"] for u in reader.lookup(0.005, 0.005)] == ["W"]
    assert len(loads) == 1                                  # the second lookup used the cache
    writer.import_layer(Level.GRID, feature_collection([({"code": "W"}, box(0, 0, 0.02, 0.02))]))
    time.sleep(FRESH_S * 2)                                 # another process's commit: seen within FRESH_S
    assert [u["code"] for u in reader.lookup(0.015, 0.005)] == ["W"]
    assert len(loads) == 2
    writer.store.close()
    reader.store.close()
