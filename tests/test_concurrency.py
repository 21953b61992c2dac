"""Saves and reports at the same time, as two server processes on one store do (a SQLite file, or
PostGIS when GRIDMAP_TEST_POSTGIS is set): a commit assigns the incidents stored while it was
computed, a save without a base is checked again instead of refused, a save with a base is
refused when another process committed first, and a preview holds no lock that a report waits for."""
from __future__ import annotations

import io
import multiprocessing
import re
import threading
from pathlib import Path

import numpy as np
import pytest
from shapely import box

from gridmap.changes import LayerOptions, SaveMode
from gridmap.errors import Conflict
from gridmap.levels import Level
from gridmap.service import Gridmap
from gridmap.storage import open_store

from .conftest import database_url, feature_collection, grid_file, micro_file

# W-S grows north by 0.002° into W-N.
RESHAPED = feature_collection([({"code": "W-S", "name": "微网格W-S"}, box(0, 0, 0.01, 0.012)),
                               ({"code": "W-N", "name": "微网格W-N"}, box(0, 0.012, 0.01, 0.02)),
                               ({"code": "E-S", "name": "微网格E-S"}, box(0.01, 0, 0.02, 0.01)),
                               ({"code": "E-N", "name": "微网格E-N"}, box(0.01, 0.01, 0.02, 0.02))])
IN_THE_STRIP = {"category": "litter", "lon": 0.005, "lat": 0.011, "reported_at": "2026-03-05 10:00"}


@pytest.fixture
def two(tmp_path: Path) -> tuple[Gridmap, Gridmap]:
    """Two services on one store file: two server processes."""
    url = database_url(tmp_path / "shared.db")
    first, second = Gridmap(open_store(url)), Gridmap(open_store(url))
    first.import_layer(Level.GRID, grid_file())
    first.import_layer(Level.MICRO_GRID, micro_file())
    yield first, second
    first.store.close()
    second.store.close()


def while_checking(service: Gridmap, meanwhile) -> None:
    """Run ``meanwhile`` once, after ``service`` has computed a save's candidates and before it writes."""
    original, done = service._candidates, []

    def candidates(parts):
        found = original(parts)
        if not done:
            done.append(meanwhile())
        return found
    service._candidates = candidates            # type: ignore[method-assign]


def units_under(service: Gridmap, version: int) -> dict[int, str]:
    ids, codes = service.store.assignments(Level.MICRO_GRID, version)
    return dict(zip(ids.tolist(), codes.tolist()))


def test_an_incident_reported_while_a_commit_is_computed_is_assigned_under_the_new_version(two):
    first, second = two
    early = second.report([IN_THE_STRIP]).ids.tolist()
    while_checking(first, lambda: second.report([IN_THE_STRIP]).ids.tolist())
    result = first.save_layer(Level.MICRO_GRID, RESHAPED)
    late = [i for i in range(1, 3) if i not in early]
    assert (result.version, early, late) == (2, [1], [2])
    # both in the strip that moved from W-N to W-S; the late one was assigned under version 1 when stored
    assert units_under(first, 1) == {1: "W-N", 2: "W-N"}
    assert units_under(first, 2) == {1: "W-S", 2: "W-S"}
    assert second.lookup(0.005, 0.011)[0]["code"] == "W-S"


def test_a_save_without_a_base_is_checked_again_when_another_commits_meanwhile(two):
    first, second = two
    while_checking(first, lambda: second.save_layer(Level.MICRO_GRID, micro_file()))     # version 2
    result = first.save_layer(Level.MICRO_GRID, RESHAPED)
    assert (result.status.value, result.version, result.based_on) == ("committed", 3, 2)
    assert [m.version for m in first.history(Level.MICRO_GRID)] == [3, 2, 1]


def test_a_save_with_a_base_is_refused_when_another_commits_meanwhile(two):
    first, second = two
    while_checking(first, lambda: second.save_layer(Level.MICRO_GRID, micro_file()))
    with pytest.raises(Conflict):
        first.save_layer(Level.MICRO_GRID, RESHAPED, LayerOptions(base_version=1))
    assert [m.version for m in first.history(Level.MICRO_GRID)] == [2, 1]


def _save_based_on_1(url: str, checked, go, outcome) -> None:    # noqa: ANN001 - multiprocessing's objects
    """A server process: checks a save based on version 1, then waits before writing it."""
    service = Gridmap(open_store(url))
    while_checking(service, lambda: (checked.set(), go.wait(60)))
    try:
        outcome.put(service.save_layer(Level.MICRO_GRID, RESHAPED, LayerOptions(base_version=1)).version)
    except Conflict as conflict:
        outcome.put(str(conflict.summary))
    finally:
        service.store.close()


def _save_without_a_base(url: str) -> None:
    service = Gridmap(open_store(url))
    service.save_layer(Level.MICRO_GRID, micro_file())
    service.store.close()


def test_a_save_with_a_base_is_refused_when_another_process_commits_meanwhile(two):
    first, _ = two
    spawn = multiprocessing.get_context("spawn")
    checked, go, outcome = spawn.Event(), spawn.Event(), spawn.Queue()
    url = first.store.url                       # type: ignore[attr-defined]  # a SqlStore
    slow = spawn.Process(target=_save_based_on_1, args=(url, checked, go, outcome))
    slow.start()
    assert checked.wait(60)
    other = spawn.Process(target=_save_without_a_base, args=(url,))      # commits version 2 meanwhile
    other.start()
    other.join(60)
    go.set()
    said = outcome.get(timeout=60)
    slow.join(60)
    assert (other.exitcode, slow.exitcode) == (0, 0)
    assert re.fullmatch(r"\? committed Micro-grid version 2 at \d{4}-\d\d-\d\d \d\d:\d\d \(note: ''\) after "
                        r"version 1, which this edit is based on; nothing was overwritten\. Open version 2, "
                        r"redo the edit on it and save again\.", said), said
    assert [m.version for m in first.history(Level.MICRO_GRID)] == [2, 1]


def test_a_preview_being_computed_does_not_hold_up_a_report(two):
    first, _ = two
    inside, release = threading.Event(), threading.Event()
    original = first._candidates

    def slow(parts):
        inside.set()
        assert release.wait(30)
        return original(parts)
    first._candidates = slow                    # type: ignore[method-assign]
    preview = threading.Thread(target=first.save_layer, args=(Level.MICRO_GRID, RESHAPED),
                               kwargs={"mode": SaveMode.PREVIEW})
    preview.start()
    try:
        assert inside.wait(30)
        stored = first.report([IN_THE_STRIP])   # the same service, while its preview is under way
        assert np.array_equal(stored.ids, [1])
    finally:
        release.set()
        preview.join(30)
    assert first.store.versions() == {Level.GRID: 1, Level.MICRO_GRID: 1}


def test_a_retried_report_with_the_same_idempotency_key_is_stored_once(client):
    client.post("/api/layers/grid", data={"file": (io.BytesIO(grid_file()), "g.geojson")},
                content_type="multipart/form-data")
    body = [{"category": "litter", "lon": 0.005, "lat": 0.005}, {"category": "litter", "lon": "east", "lat": 0.005}]
    first = client.post("/api/incidents", json=body, headers={"Idempotency-Key": "3f2c-retry"})
    again = client.post("/api/incidents", json=body, headers={"Idempotency-Key": "3f2c-retry"})
    other = client.post("/api/incidents", json=body, headers={"Idempotency-Key": "another"})
    assert (first.status_code, again.status_code, other.status_code) == (201, 201, 201)
    assert [(i["id"], i["units"]) for i in first.get_json()["items"]] == [(1, {"grid": "W"})]
    assert [(i["id"], i["units"]) for i in again.get_json()["items"]] == [(1, {"grid": "W"})]
    assert (first.get_json()["created"], again.get_json()["created"], again.get_json()["existing"]) == (1, 0, 1)
    assert [i["id"] for i in other.get_json()["items"]] == [2]
    bad = client.post("/api/incidents", json=body, headers={"Idempotency-Key": "x" * 201})
    assert bad.status_code == 400 and bad.get_json()["error"].startswith("Idempotency-Key: expected at most 200")
    assert client.application.extensions["gridmap"].store.count_incidents() == 2     # one a request
