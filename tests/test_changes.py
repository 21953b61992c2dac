"""Boundary changes through the service: what the planner saw is what is stored (options, report,
diff), coverage cleaning on upload and on a stored version, and two levels saved as one change
(a parent derived from its children, a parent edited along with its children)."""
from __future__ import annotations

import pytest
import shapely
from pyproj import Geod
from shapely import box

from gridmap.changes import LayerOptions, ParentEdit, ResultStatus, SaveMode
from gridmap.cleaning import CleanOptions
from gridmap.errors import Conflict, InvalidInput
from gridmap.levels import Level
from gridmap.service import Gridmap
from gridmap.storage import VersionStatus, open_store

from .conftest import feature_collection

GEOD = Geod(ellps="WGS84")
# Two grids whose shared line runs 1.1 m apart: B reaches 0.00001° (1.11 m) into A for the whole
# height, an overlap of 0.00001° × 0.01° ≈ 1,237 m² — an error at the default 1 m² tolerance.
OVERLAPPING = feature_collection([({"code": "A", "name": "甲"}, box(0, 0, 0.01, 0.01)),
                                  ({"code": "B", "name": "乙"}, box(0.00999, 0, 0.02, 0.01))])
# The 2×2 block's W|E line moved east from x = 0.010 to x = 0.012, drawn at the micro-grid level.
MOVED = {"W-S": box(0, 0, 0.012, 0.01), "W-N": box(0, 0.01, 0.012, 0.02),
         "E-S": box(0.012, 0, 0.02, 0.01), "E-N": box(0.012, 0.01, 0.02, 0.02)}


def micro(cells: dict[str, shapely.Geometry]) -> bytes:
    return feature_collection([({"code": c, "name": f"微网格{c}"}, g) for c, g in cells.items()])


def geodesic_m2(geometry: shapely.Geometry) -> float:
    return abs(GEOD.geometry_area_perimeter(geometry)[0])


def test_a_draft_keeps_the_tolerance_it_was_saved_with_through_review_and_commit(service):
    saved = service.save_layer(Level.GRID, OVERLAPPING, LayerOptions(filename="ab.geojson", tolerance_m2=2000),
                               mode=SaveMode.DRAFT)
    assert (saved.status, saved.version, saved.report.ok) == (ResultStatus.DRAFT, 1, True)
    view = service.version(Level.GRID, 1)
    assert view.options == {"filename": "ab.geojson", "tolerance_m2": 2000.0}
    assert view.report.ok and view.report.problems == []           # not recomputed at the default 1 m²
    committed = service.commit_draft(Level.GRID, 1, author="ann")  # re-checked with the draft's 2,000 m²
    assert (committed.status, committed.version) == (ResultStatus.COMMITTED, 1)
    again = service.version(Level.GRID, 1)
    assert (again.meta.status, again.report.ok, again.options["tolerance_m2"]) == (VersionStatus.COMMITTED, True,
                                                                                   2000.0)


def test_the_same_file_at_the_default_tolerance_is_refused_naming_the_overlap(service):
    with pytest.raises(InvalidInput) as refused:
        service.save_layer(Level.GRID, OVERLAPPING, mode=SaveMode.DRAFT)
    assert [(p.kind, p.codes) for p in refused.value.report.errors] == [("overlap", ("A", "B"))]
    assert service.store.versions() == {}


def test_a_drafts_warnings_are_the_ones_shown_when_it_was_saved(service):
    unnamed = feature_collection([({"code": "A"}, box(0, 0, 0.01, 0.01)), ({"code": "B"}, box(0.01, 0, 0.02, 0.01))])
    saved = service.save_layer(Level.GRID, unnamed, mode=SaveMode.DRAFT)
    assert [p.kind for p in saved.report.warnings] == ["missing_name"]
    view = service.version(Level.GRID, saved.version)
    assert [(p.kind, str(p.message)) for p in view.report.warnings] == [
        ("missing_name", "the file has no name property; the codes are shown as names")]
    assert view.diff.as_dict() == saved.diff.as_dict()


def test_cleaning_on_upload_gives_the_overlap_to_one_unit_and_reports_every_area_change(service):
    result = service.save_layer(Level.GRID, OVERLAPPING, LayerOptions(clean=CleanOptions()), mode=SaveMode.COMMIT)
    assert result.report.ok and [p.kind for p in result.report.problems] == []
    units = service.layer(Level.GRID).units
    shapes = units.geometry.to_numpy()
    assert bool(shapely.coverage_is_valid(shapes))
    assert shapely.area(shapely.intersection(shapes[0], shapes[1])) == 0
    # the land is the same, shared once: the two areas add up to the union's (to 0.05 m² of 2.46 km²:
    # the cleaner works in metres, and a vertex it makes comes back to lon/lat rounded)
    assert geodesic_m2(shapes[0]) + geodesic_m2(shapes[1]) == pytest.approx(geodesic_m2(box(0, 0, 0.02, 0.01)),
                                                                             abs=0.05)
    changes = {c.code: c for c in result.report.cleaning.changes}
    before = {"A": geodesic_m2(box(0, 0, 0.01, 0.01)), "B": geodesic_m2(box(0.00999, 0, 0.02, 0.01))}
    after = dict(zip(units["code"], (geodesic_m2(g) for g in shapes)))
    changed = sorted(code for code in before if abs(after[code] - before[code]) > 0.01)
    assert sorted(changes) == changed and len(changed) == 1      # one of them lost the strip
    (code,) = changed
    assert changes[code].before_m2 == pytest.approx(before[code], rel=1e-6)
    assert changes[code].after_m2 == pytest.approx(after[code], rel=1e-6)
    assert changes[code].before_m2 - changes[code].after_m2 == pytest.approx(geodesic_m2(box(0.00999, 0, 0.01, 0.01)),
                                                                            rel=1e-4)
    view = service.version(Level.GRID, 1)
    assert view.options["clean"] == {"gap_width_m": 2.0, "snap_m": 0.1}
    assert [c.as_dict() for c in view.report.cleaning.changes] == [c.as_dict() for c in result.report.cleaning.changes]


def test_cleaning_a_stored_version_saves_a_cleaned_draft_with_its_options(service):
    service.save_layer(Level.GRID, OVERLAPPING, LayerOptions(crs="EPSG:4326", tolerance_m2=2000, author="ann"))
    cleaned = service.clean_version(Level.GRID, 1, CleanOptions(gap_width_m=1.0, snap_m=0.05),
                                    LayerOptions(author="bo", note="cleaned"))
    assert (cleaned.status, cleaned.version, cleaned.based_on) == (ResultStatus.DRAFT, 2, 1)
    (change,) = cleaned.report.cleaning.changes                # one of A, B gives up the 1.1 m strip
    assert change.code in ("A", "B")
    assert change.change_m2 == pytest.approx(-geodesic_m2(box(0.00999, 0, 0.01, 0.01)), rel=1e-4)
    view = service.version(Level.GRID, 2)
    assert view.options == {"crs": "EPSG:4326", "filename": "upload.geojson", "tolerance_m2": 2000.0,
                            "clean": {"gap_width_m": 1.0, "snap_m": 0.05}}
    assert (view.meta.author, view.meta.note) == ("bo", "cleaned")
    service.commit_draft(Level.GRID, 2)
    assert bool(shapely.coverage_is_valid(service.layer(Level.GRID).units.geometry.to_numpy()))


def test_deriving_the_grids_from_the_micro_grids_saves_both_levels_as_one_change(block):
    block.report([{"category": "litter", "lon": 0.011, "lat": 0.005}])
    assert block.incidents()[["grid", "micro_grid"]].values.tolist() == [["E", "E-S"]]
    result = block.save_layer(Level.MICRO_GRID, micro(MOVED), LayerOptions(derive_parent=True, author="ann"))
    assert (result.level, result.version, result.parent.level, result.parent.version) == (
        Level.MICRO_GRID, 2, Level.GRID, 2)
    grids = block.layer(Level.GRID).units.set_index("code")
    assert grids.geometry["W"].equals(box(0, 0, 0.012, 0.02)) and grids.geometry["E"].equals(box(0.012, 0, 0.02, 0.02))
    assert grids.loc["W", "name"] == "网格W" and grids.loc["W", "properties"]["staff"] == "staff W"   # kept
    assert block.incidents()[["grid", "micro_grid"]].values.tolist() == [["W", "W-S"]]
    grid_history, micro_history = block.history(Level.GRID), block.history(Level.MICRO_GRID)
    assert [(m.version, m.status, m.author) for m in grid_history][0] == (2, VersionStatus.COMMITTED, "ann")
    assert grid_history[0].change == micro_history[0].change is not None
    # 不漏一地 by construction: no micro-grid outside its grid, no grid land outside its micro-grids
    assert [p.kind for p in result.report.problems + result.parent.report.problems] == []
    assert block.version(Level.GRID, 2).options == {"derive_parent": True, "tolerance_m2": 1.0}


def test_a_two_level_draft_is_committed_whole_and_only_once(block):
    draft = block.save_layer(Level.MICRO_GRID, micro(MOVED), LayerOptions(derive_parent=True), mode=SaveMode.DRAFT)
    assert block.store.versions() == {Level.GRID: 1, Level.MICRO_GRID: 1}
    assert [m.version for m in block.version(Level.MICRO_GRID, 2).members] == [2]   # the grid draft
    block.commit_draft(Level.GRID, draft.parent.version, author="bo")               # from either level's page
    assert block.store.versions() == {Level.GRID: 2, Level.MICRO_GRID: 2}
    with pytest.raises(Conflict, match="Micro-grid version 2 is already committed"):
        block.commit_draft(Level.MICRO_GRID, 2)


def test_a_parent_edited_along_is_checked_against_its_own_base(block):
    grids = feature_collection([({"code": "W", "name": "网格W"}, box(0, 0, 0.012, 0.02)),
                                ({"code": "E", "name": "网格E"}, box(0.012, 0, 0.02, 0.02))])
    block.save_layer(Level.GRID, grids)            # someone committed grid version 2 meanwhile
    with pytest.raises(Conflict, match="committed Grid version 2 at .* after version 1, which this edit is based on"):
        block.save_layer(Level.MICRO_GRID, micro(MOVED), LayerOptions(base_version=1),
                         parent=ParentEdit(grids, base_version=1))
    assert block.store.versions() == {Level.GRID: 2, Level.MICRO_GRID: 1}
    result = block.save_layer(Level.MICRO_GRID, micro(MOVED), LayerOptions(base_version=1),
                              parent=ParentEdit(grids, base_version=2))
    assert (result.version, result.parent.version) == (2, 3)
    assert [p.kind for p in result.report.problems] == []     # nested in the edited grids


def test_errors_in_the_parent_refuse_the_whole_change_naming_its_level(block):
    overlapping_grids = feature_collection([({"code": "W", "name": "w"}, box(0, 0, 0.013, 0.02)),
                                            ({"code": "E", "name": "e"}, box(0.012, 0, 0.02, 0.02))])
    with pytest.raises(InvalidInput) as refused:
        block.save_layer(Level.MICRO_GRID, micro(MOVED), parent=ParentEdit(overlapping_grids))
    assert [str(p.message).split(" overlap by ")[0] for p in refused.value.report.errors] == ["Grid: units W and E"]
    assert block.store.versions() == {Level.GRID: 1, Level.MICRO_GRID: 1}


def test_deriving_needs_parent_codes_or_a_parent_level(service):
    with pytest.raises(InvalidInput, match="cannot redraw the Grid level from the Micro-grid units"):
        service.save_layer(Level.MICRO_GRID, micro(MOVED), LayerOptions(derive_parent=True))
    with pytest.raises(InvalidInput, match="Street is the largest level"):
        service.save_layer(Level.STREET, micro(MOVED), LayerOptions(derive_parent=True))


def test_the_tolerance_recorded_is_the_one_in_force(tmp_path):
    """A version saved without a tolerance records the deployment's (GRIDMAP_TOLERANCE_M2), which is
    the one its checks used, not the built-in 1 m²."""
    svc = Gridmap(open_store(f"sqlite:///{tmp_path / 't.db'}"), tolerance_m2=2000.0)
    saved = svc.save_layer(Level.GRID, OVERLAPPING, mode=SaveMode.DRAFT)      # its 1,237 m² overlap accepted
    assert saved.report.ok
    assert svc.version(Level.GRID, 1).options["tolerance_m2"] == 2000.0
    svc.store.close()
