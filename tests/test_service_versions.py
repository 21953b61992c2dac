"""The planner's workflow through the service: preview, drafts, commits, stale bases, restore,
versions kept per incident, and every export format read back in."""
from __future__ import annotations

import multiprocessing
import threading
import time
from typing import Any

import pytest
from shapely import box

from gridmap.changes import LayerOptions, SaveMode
from gridmap.errors import Conflict, InvalidInput
from gridmap.levels import Level
from gridmap.service import FRESH_S, Gridmap
from gridmap.storage import open_store

from .conftest import CELLS, feature_collection, micro_file

# W-S grows north by 0.002° into W-N: incidents in that strip move from W-N to W-S.
RESHAPED = feature_collection([({"code": "W-S", "name": "微网格W-S"}, box(0, 0, 0.01, 0.012)),
                               ({"code": "W-N", "name": "微网格W-N"}, box(0, 0.012, 0.01, 0.02)),
                               ({"code": "E-S", "name": "微网格E-S"}, CELLS["E-S"]),
                               ({"code": "E-N", "name": "微网格E-N"}, CELLS["E-N"])])
STRIP = [{"category": "litter", "lon": 0.005, "lat": 0.011}, {"category": "litter", "lon": 0.002, "lat": 0.0115},
         {"category": "litter", "lon": 0.005, "lat": 0.015}]


@pytest.fixture
def reported(block: Gridmap) -> Gridmap:
    block.report(STRIP)
    assert block.incidents()["micro_grid"].tolist() == ["W-N", "W-N", "W-N"]
    return block


def test_preview_reports_and_diffs_but_stores_nothing(reported):
    before = reported.store.history(Level.MICRO_GRID)
    result = reported.save_layer(Level.MICRO_GRID, RESHAPED, mode=SaveMode.PREVIEW)
    assert (result.status, result.version, result.based_on) == ("preview", None, 1)
    assert [c.code for c in result.diff.reshaped] == ["W-S", "W-N"]
    assert [(m.source, m.target, m.count) for m in result.diff.moves] == [("W-N", "W-S", 2)]
    assert reported.store.history(Level.MICRO_GRID) == before


def test_a_draft_is_not_current_until_committed_then_incidents_move(reported):
    draft = reported.save_layer(Level.MICRO_GRID, RESHAPED, LayerOptions(author="ann", note="extend W-S"),
                                mode=SaveMode.DRAFT)
    assert (draft.status, draft.version) == ("draft", 2)
    assert reported.store.versions()[Level.MICRO_GRID] == 1
    assert reported.incidents()["micro_grid"].tolist() == ["W-N", "W-N", "W-N"]
    committed = reported.commit_draft(Level.MICRO_GRID, 2, author="bo")
    assert (committed.status, committed.version, committed.diff.moved) == ("committed", 2, 2)
    assert reported.incidents()["micro_grid"].tolist() == ["W-S", "W-S", "W-N"]
    # every incident keeps the unit it had under version 1
    assert reported.incidents(at={Level.MICRO_GRID: 1})["micro_grid"].tolist() == ["W-N", "W-N", "W-N"]
    assert [u["code"] for u in reported.lookup(0.005, 0.011)][0] == "W-S"
    assert [u["code"] for u in reported.lookup(0.005, 0.011, version=1)][0] == "W-N"
    (head, first) = [(m.version, m.status, m.author, m.committed_by, m.based_on, m.assigned, m.moved)
                     for m in reported.history(Level.MICRO_GRID)]
    assert head == (2, "committed", "ann", "bo", 1, 3, 2)
    assert first[:2] == (1, "committed")
    with pytest.raises(Conflict, match="Micro-grid version 2 is already committed"):
        reported.commit_draft(Level.MICRO_GRID, 2)


def test_a_save_based_on_an_old_version_is_refused_naming_who_committed(reported):
    reported.save_layer(Level.MICRO_GRID, RESHAPED, LayerOptions(author="ann", note="extend W-S", base_version=1))
    with pytest.raises(Conflict) as refused:
        reported.save_layer(Level.MICRO_GRID, micro_file(), LayerOptions(author="bo", base_version=1),
                            mode=SaveMode.DRAFT)
    text = str(refused.value.summary)
    assert text.startswith("ann committed Micro-grid version 2 at ")
    assert text.endswith("(note: 'extend W-S') after version 1, which this edit is based on; nothing was "
                         "overwritten. Open version 2, redo the edit on it and save again.")
    assert [m.version for m in reported.history(Level.MICRO_GRID)] == [2, 1]


def test_a_draft_whose_base_moved_on_cannot_be_committed_and_stays_a_draft(reported):
    reported.save_layer(Level.MICRO_GRID, micro_file(), LayerOptions(author="bo", base_version=1), mode=SaveMode.DRAFT)
    reported.save_layer(Level.MICRO_GRID, RESHAPED, LayerOptions(author="ann", base_version=1))
    with pytest.raises(Conflict, match="ann committed Micro-grid version 3"):
        reported.commit_draft(Level.MICRO_GRID, 2)
    assert [(m.version, m.status) for m in reported.history(Level.MICRO_GRID)] == [
        (3, "committed"), (2, "draft"), (1, "committed")]
    assert reported.incidents()["micro_grid"].tolist() == ["W-S", "W-S", "W-N"]


def test_restore_saves_an_old_version_again_as_a_new_one(reported):
    reported.save_layer(Level.MICRO_GRID, RESHAPED)
    result = reported.restore(Level.MICRO_GRID, 1, LayerOptions(author="ann"))
    assert (result.version, result.status) == (3, "committed")
    assert [(m.source, m.target, m.count) for m in result.diff.moves] == [("W-S", "W-N", 2)]
    meta = reported.store.version_meta(Level.MICRO_GRID, 3)
    assert (meta.restored_from, meta.note, meta.based_on) == (1, "", 2)
    assert reported.incidents()["micro_grid"].tolist() == ["W-N", "W-N", "W-N"]
    diff = reported.compare(Level.MICRO_GRID, 2, 3).diff
    assert [c.code for c in diff.reshaped] == ["W-S", "W-N"] and diff.moved == 2


def test_errors_refuse_draft_and_commit_with_the_whole_report(block):
    overlapping = feature_collection([({"code": "A", "name": "a"}, box(0, 0, 0.01, 0.01)),
                                      ({"code": "B", "name": "b"}, box(0.009, 0, 0.02, 0.01))])
    for mode in (SaveMode.DRAFT, SaveMode.COMMIT):
        with pytest.raises(InvalidInput) as refused:
            block.save_layer(Level.GRID, overlapping, mode=mode)
        assert [p.kind for p in refused.value.report.errors] == ["overlap"]
    assert [m.version for m in block.history(Level.GRID)] == [1]
    allowed = block.save_layer(Level.GRID, overlapping, LayerOptions(tolerance_m2=2_000_000), mode=SaveMode.PREVIEW)
    assert allowed.report.ok


@pytest.mark.parametrize("fmt", ["geojson", "gpkg", "shp"])
def test_every_export_format_reads_back_as_the_same_units(block, fmt):
    exported = block.export(Level.MICRO_GRID, 1, fmt)
    result = block.save_layer(Level.MICRO_GRID, exported.data, LayerOptions(filename=exported.filename),
                              mode=SaveMode.PREVIEW)
    original = block.layer(Level.MICRO_GRID).units
    again = result.layer.units
    assert again["code"].tolist() == original["code"].tolist()
    assert again["name"].tolist() == original["name"].tolist()
    assert again["parent_code"].tolist() == original["parent_code"].tolist()
    assert again["area_m2"].to_numpy() == pytest.approx(original["area_m2"].to_numpy(), abs=0.1)
    assert [p["staff"] for p in again["properties"]] == [p["staff"] for p in original["properties"]]
    assert not result.diff.changed and result.diff.moved == 0
    assert [p.kind for p in result.report.problems] == []


def _save_in_a_process(url: str, name: str, data: bytes, barrier: Any, outcomes: Any) -> None:
    """One planner's server process: save based on version 1, holding at the base check until the
    other process reaches it too (or 2 s pass: the other cannot, while this one holds the lock)."""
    import gridmap.service

    check = gridmap.service.check_base

    def check_when_both_have_read(*args: Any, **kwargs: Any) -> None:
        try:
            barrier.wait(timeout=2)
        except threading.BrokenBarrierError:
            pass
        check(*args, **kwargs)

    gridmap.service.check_base = check_when_both_have_read
    svc = Gridmap(open_store(url))
    try:
        outcomes.put((name, svc.save_layer(Level.MICRO_GRID, data, LayerOptions(author=name, base_version=1)).version))
    except Conflict as refused:
        outcomes.put((name, str(refused.summary)))
    except Exception as failed:  # noqa: BLE001 - what went wrong is the test's finding
        outcomes.put((name, f"{type(failed).__name__}: {failed}"))
    finally:
        svc.store.close()


def test_two_planners_saving_on_the_same_version_at_once_one_wins_nothing_is_lost(tmp_path):
    """Two server processes on one SQLite file commit at the same moment, both based on version 1,
    each reading the current version inside its write transaction before either writes: exactly
    one becomes version 2, the other is refused naming it.  Without the write lock taken at the
    start of the transaction (``BEGIN IMMEDIATE``), both read version 1 and this fails every time."""
    url = f"sqlite:///{tmp_path / 'race.db'}"
    first = Gridmap(open_store(url))
    first.import_layer(Level.MICRO_GRID, micro_file())
    first.report(STRIP)
    context = multiprocessing.get_context("fork")
    barrier, outcomes = context.Barrier(2), context.Queue()
    processes = [context.Process(target=_save_in_a_process, args=(url, name, data, barrier, outcomes))
                 for name, data in (("ann", RESHAPED), ("bo", micro_file()))]
    for process in processes:
        process.start()
    results = dict(outcomes.get(timeout=60) for _ in processes)
    for process in processes:
        process.join(timeout=30)
    winner = next(name for name, outcome in results.items() if outcome == 2)
    loser = "bo" if winner == "ann" else "ann"
    assert results[loser].startswith(f"{winner} committed Micro-grid version 2 at ")
    history = first.store.history(Level.MICRO_GRID)
    assert [(m.version, m.status, m.author) for m in history] == [(2, "committed", winner), (1, "committed", "")]
    expected = ["W-S", "W-S", "W-N"] if winner == "ann" else ["W-N", "W-N", "W-N"]
    assert first.incidents()["micro_grid"].tolist() == expected
    first.store.close()


def test_a_version_saved_before_reports_were_kept_is_checked_again_when_viewed(block):
    """Rows written by an older gridmap have no report or diff: the view works them out again."""
    import sqlalchemy as sa
    block.save_layer(Level.MICRO_GRID, RESHAPED, mode=SaveMode.DRAFT)
    with block.store.engine.begin() as conn:
        conn.execute(sa.text("UPDATE layer_versions SET report = NULL, diff = NULL, options = '{}'"))
    draft = block.version(Level.MICRO_GRID, 2)
    assert [c.code for c in draft.diff.reshaped] == ["W-S", "W-N"] and draft.report.ok
    committed = block.version(Level.MICRO_GRID, 1)
    assert committed.report.problems == [] and [c.code for c in committed.diff.added] == ["W-S", "W-N", "E-S", "E-N"]
    report, diff = block.saved_review(Level.MICRO_GRID, 2)
    assert report.ok and [c.code for c in diff.reshaped] == ["W-S", "W-N"]
    assert block.commit_draft(Level.MICRO_GRID, 2).version == 2            # and it commits, options recorded now
    assert block.version(Level.MICRO_GRID, 2).options == {"filename": "upload.geojson", "tolerance_m2": 1.0}


def test_a_commit_by_another_process_reaches_lookups_in_every_thread_of_this_one(tmp_path):
    """Two services on one file stand for two server processes.  The first caches its layers; once
    the second commits, a lookup from any thread of the first sees the new units (after at most
    FRESH_S), because the store's change counter is one connection's, whatever thread reads it."""
    url = f"sqlite:///{tmp_path / 'two.db'}"
    first, second = Gridmap(open_store(url)), Gridmap(open_store(url))
    first.import_layer(Level.MICRO_GRID, micro_file())
    point = (0.005, 0.011)                          # in the strip that moves from W-N to W-S

    def code_in_a_new_thread() -> str:
        found: list[str] = []
        thread = threading.Thread(target=lambda: found.append(first.lookup(*point)[0]["code"]))
        thread.start()
        thread.join()
        return found[0]
    assert [code_in_a_new_thread() for _ in range(3)] == ["W-N"] * 3
    assert second.lookup(*point)[0]["code"] == "W-N"
    second.import_layer(Level.MICRO_GRID, RESHAPED)
    assert second.lookup(*point)[0]["code"] == "W-S"       # its own commit: at once
    time.sleep(FRESH_S * 2)
    assert [code_in_a_new_thread() for _ in range(3)] == ["W-S"] * 3
    first.store.close()
    second.store.close()


def test_a_report_right_after_another_process_commits_gets_the_new_units(tmp_path, monkeypatch):
    """The first service trusts its cached index for FRESH_S; a report it takes in that moment
    must still be assigned under the versions current when it writes (checked under the write lock)."""
    monkeypatch.setattr("gridmap.service.FRESH_S", 3600.0)        # the moment, stretched
    url = f"sqlite:///{tmp_path / 'race.db'}"
    first, second = Gridmap(open_store(url)), Gridmap(open_store(url))
    first.import_layer(Level.MICRO_GRID, micro_file())
    assert first.lookup(0.005, 0.011)[0]["code"] == "W-N"          # cached: version 1
    second.import_layer(Level.MICRO_GRID, RESHAPED)                 # version 2: the strip is W-S now
    result = first.report([{"category": "litter", "lon": 0.005, "lat": 0.011}])
    assert result.items[0].units == {"micro_grid": "W-S"}
    assert first.incidents()["micro_grid"].tolist() == ["W-S"]
    first.store.close()
    second.store.close()
