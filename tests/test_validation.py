"""Layer checks: overlaps and gaps within a level, children against their parents.

The fixtures are drawn in metres with ``box()`` in a local frame at 30°N 114°E and converted
to lon/lat, so every answer is computed by hand: a 20 m × 5 m overlap is 100 m².  The frame
is a transverse Mercator with scale exactly 1 at its origin, so within 100 m of it lengths
and areas are true to 1e-9.  (Not a Lambert equal-area frame: PROJ 9.5's inverse LAEA shifts
northings by ~1.3 mm, its authalic-latitude series (OSGeo/PROJ#4440), which would spoil a
10 m box by 0.013 m².)  The checks measure in their own equal-area projection and bring the
shapes they report back to lon/lat through that inverse, so shapes are compared to 3 mm.
"""
from __future__ import annotations

from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import shapely
from pyproj import Transformer
from shapely import Point, box
from shapely.geometry.base import BaseGeometry

from gridmap.boundaries import read_layer
from gridmap.layer import Layer
from gridmap.levels import Level
from gridmap.problems import Problem, Severity
from gridmap.validation import check_coverage, check_nesting

LOCAL = "+proj=tmerc +lat_0=30 +lon_0=114 +k=1 +datum=WGS84 +units=m +no_defs"
TO_LONLAT = Transformer.from_crs(LOCAL, "EPSG:4326", always_xy=True)
TO_LOCAL = Transformer.from_crs("EPSG:4326", LOCAL, always_xy=True)
DEMO = Path(__file__).resolve().parents[1] / "geodata" / "demo"
EXACT = 0.01        # m²
MM = 0.003          # m: how far a reported shape may sit from the hand-drawn one (PROJ's ~1.3 mm)


def lonlat(shape: BaseGeometry) -> BaseGeometry:
    return shapely.transform(shape, lambda xy: np.column_stack(TO_LONLAT.transform(xy[:, 0], xy[:, 1])))


def local(shape: BaseGeometry) -> BaseGeometry:
    return shapely.transform(shape, lambda xy: np.column_stack(TO_LOCAL.transform(xy[:, 0], xy[:, 1])))


def layer(level: Level, units: dict[str, BaseGeometry], *, parents: dict[str, str | None] | None = None,
          index: list[int] | None = None, parent_source: str | None = "field") -> Layer:
    """A layer as read_layer makes it, from shapes in local metres; ``index`` = file indexes."""
    codes = list(units)
    frame = gpd.GeoDataFrame({
        "code": pd.Series(codes, dtype=object),
        "name": pd.Series(codes, dtype=object),
        "parent_code": pd.Series([(parents or {}).get(c) for c in codes], dtype=object),
        "area_m2": [units[c].area for c in codes],
        "properties": [{} for _ in codes],
    }, geometry=gpd.GeoSeries([lonlat(units[c]) for c in codes], crs=4326))
    frame.index = pd.Index(index if index is not None else range(len(codes)))
    return Layer(level=level, units=frame, parent_source=parent_source)


def grids(units: dict[str, BaseGeometry], **options) -> Layer:
    return layer(Level.GRID, units, **options)


def micro(units: dict[str, BaseGeometry], parents: dict[str, str | None], **options) -> Layer:
    return layer(Level.MICRO_GRID, units, parents=parents, **options)


def assert_piece(problem: Problem, *, size: float, shape: BaseGeometry) -> None:
    """Size to 0.01 m²; the reported shape is ``shape`` (local metres) to 3 mm; the location lies on it."""
    assert problem.size_m2 == pytest.approx(size, abs=EXACT)
    assert local(problem.geometry).symmetric_difference(shape).area < MM * shape.length
    lon, lat = problem.location
    assert (round(lon, 7), round(lat, 7)) == (lon, lat)
    assert shape.buffer(MM).contains(local(Point(lon, lat)))


def where(problem: Problem) -> str:
    return f"{round(problem.location[0], 6)}, {round(problem.location[1], 6)}"


# A 2×2 block of 10 m cells.
CELLS = {"SW": box(0, 0, 10, 10), "SE": box(10, 0, 20, 10), "NW": box(0, 10, 10, 20), "NE": box(10, 10, 20, 20)}


def test_a_clean_tiling_has_no_problem():
    assert check_coverage(grids(CELLS)) == []


def test_an_overlap_is_one_error_for_the_pair_named_by_file_order():
    # Z (feature 2) and A (feature 3) share x 10–30, y 5–10: 20 m × 5 m.  W only touches Z.
    layer_ = grids({"W": box(-20, 0, 0, 10), "Z": box(0, 0, 30, 10), "A": box(10, 5, 40, 15)}, index=[0, 2, 3])
    [problem] = check_coverage(layer_)
    assert (problem.kind, problem.severity) == ("overlap", Severity.ERROR)
    assert (problem.feature, problem.code, problem.codes) == (2, "Z", ("Z", "A"))
    assert_piece(problem, size=100.0, shape=box(10, 5, 30, 10))
    assert str(problem.message) == f"units Z and A overlap by 100.0 m² near {where(problem)}"
    assert problem.as_dict()["size_m2"] == 100.0


def test_a_unit_inside_another_overlaps_it():
    [problem] = check_coverage(grids({"BIG": box(0, 0, 30, 30), "IN": box(10, 10, 20, 20)}))
    assert (problem.kind, problem.codes) == ("overlap", ("BIG", "IN"))
    assert_piece(problem, size=100.0, shape=box(10, 10, 20, 20))


def test_an_overlap_under_the_tolerance_is_not_reported_unless_the_tolerance_is_lowered():
    sliver = grids({"A": box(0, 0, 10, 10), "B": box(9.95, 0, 20, 10)})      # 0.05 m × 10 m = 0.5 m²
    assert check_coverage(sliver) == []
    [problem] = check_coverage(sliver, tolerance_m2=0.1)
    assert problem.codes == ("A", "B")
    assert_piece(problem, size=0.5, shape=box(9.95, 0, 10, 10))


# Four units wound round a 10 m × 10 m courtyard (x, y 10–20) inside a 30 m square.
PINWHEEL = {"A": box(0, 0, 20, 10), "B": box(20, 0, 30, 20), "C": box(10, 20, 30, 30), "D": box(0, 10, 10, 30)}


def test_land_enclosed_by_units_and_covered_by_none_is_a_gap():
    [problem] = check_coverage(grids(PINWHEEL))
    assert (problem.kind, problem.severity) == ("gap", Severity.WARNING)
    assert (problem.feature, problem.code, problem.codes) == (None, None, ("A", "B", "C", "D"))
    assert_piece(problem, size=100.0, shape=box(10, 10, 20, 20))
    assert str(problem.message) == (f"a gap of 100.0 m² between units A, B, C, D near {where(problem)}: "
                                    "no unit covers it")


def test_when_the_fast_union_of_a_coverage_fails_the_full_union_finds_the_gap(monkeypatch):
    """GEOS can take units whose edges do not quite match for a valid coverage, and its coverage
    union then raises ("cannot process incorrectly noded inputs") or drops land: the check must
    fall back to a full union, never fail (a 500) or lose the gap."""
    def broken(shapes):
        raise shapely.errors.GEOSException("TopologyException: CoverageUnion cannot process incorrectly noded inputs")

    monkeypatch.setattr(shapely, "coverage_is_valid", lambda shapes: True)     # the fast path is taken
    monkeypatch.setattr(shapely, "coverage_union_all", broken)
    [problem] = check_coverage(grids(PINWHEEL))
    assert (problem.kind, problem.codes) == ("gap", ("A", "B", "C", "D"))
    assert_piece(problem, size=100.0, shape=box(10, 10, 20, 20))
    monkeypatch.setattr(shapely, "coverage_union_all", lambda shapes: shapely.union_all(shapes[:1]))   # drops land
    assert [p.kind for p in check_coverage(grids(PINWHEEL))] == ["gap"]


def test_a_notch_in_the_outline_is_not_a_gap():
    # A U shape: the 10 m × 20 m notch (x 10–20, y 10–30) is open to the north.
    assert check_coverage(grids({"W": box(0, 0, 10, 30), "S": box(10, 0, 20, 10), "E": box(20, 0, 30, 30)})) == []


# A unit shaped like a ring round a 10 m × 10 m lake (x, y 10–20) that no unit fills.
RING = box(0, 0, 30, 30).difference(box(10, 10, 20, 20))


def test_a_hole_in_one_unit_is_its_own_shape_not_a_gap_but_parent_land_it_leaves_is_reported():
    assert check_coverage(grids({"R": RING, "E": box(30, 0, 40, 30)})) == []
    children = micro({"R": RING}, parents={"R": "P"})
    [problem] = check_nesting(children, grids({"P": box(0, 0, 30, 30)}))
    assert (problem.kind, problem.codes) == ("uncovered_parent", ("P",))
    assert_piece(problem, size=100.0, shape=box(10, 10, 20, 20))


def test_a_hole_partly_filled_by_an_island_unit_is_a_gap_round_the_island():
    [problem] = check_coverage(grids({"R": RING, "I": box(13, 13, 17, 17)}))
    assert (problem.kind, problem.codes) == ("gap", ("I", "R"))
    assert_piece(problem, size=100.0 - 16.0, shape=box(10, 10, 20, 20).difference(box(13, 13, 17, 17)))


# Parents P (x 0–20), Q (x 20–40) and R (x 40–50), all y 0–10.
PARENTS = {"P": box(0, 0, 20, 10), "Q": box(20, 0, 40, 10), "R": box(40, 0, 50, 10)}


def test_cells_in_their_grids_nest_cleanly():
    parents = grids({"W": box(0, 0, 10, 20), "E": box(10, 0, 20, 20)})
    children = micro(CELLS, parents={c: "W" if c.endswith("W") else "E" for c in CELLS})
    assert check_nesting(children, parents) == []


def test_nesting_problems_each_reported_once_in_kind_order():
    children = micro({
        "P1": box(0, 0, 10, 10), "P2": box(10, 0, 20, 12),     # P2 crosses P's north line by 10 m × 2 m
        "Q1": box(23, 0, 40, 10),                               # leaves 3 m × 10 m of Q uncovered; R has no child
        "X": box(50, 0, 60, 10), "Y": box(60, 0, 70, 10),      # X names a code Q's layer lacks, Y none
    }, parents={"P1": "P", "P2": "P", "Q1": "Q", "X": "ZZ", "Y": None}, index=[0, 1, 4, 5, 7])
    problems = check_nesting(children, grids(PARENTS))
    assert [(p.kind, p.severity, p.feature, p.code, p.codes) for p in problems] == [
        ("outside_parent", Severity.WARNING, 1, "P2", ("P2", "P")),
        ("uncovered_parent", Severity.WARNING, 1, "Q", ("Q",)),
        ("uncovered_parent", Severity.WARNING, 2, "R", ("R",)),
        ("unknown_parent", Severity.ERROR, 5, "X", ("X", "ZZ")),
        ("no_parent", Severity.WARNING, 7, "Y", ("Y",)),
    ]
    outside, uncovered, childless, unknown, orphan = problems
    assert_piece(outside, size=20.0, shape=box(10, 10, 20, 12))
    assert_piece(uncovered, size=30.0, shape=box(20, 0, 23, 10))
    assert_piece(childless, size=100.0, shape=PARENTS["R"])
    assert str(outside.message) == f"unit P2 lies 20.0 m² outside its parent P near {where(outside)}"
    assert str(uncovered.message) == f"30.0 m² of unit Q is covered by none of its child units, near {where(uncovered)}"
    assert str(childless.message) == (f"unit R has no child units: none of its 100.0 m² is covered "
                                      f"(near {where(childless)})")
    assert str(unknown.message) == "unit X names parent ZZ, which is not a grid code"
    assert str(orphan.message) == "unit Y names no parent grid unit"
    assert (unknown.size_m2, unknown.location, orphan.size_m2, orphan.location) == (None, None, None, None)


def test_a_child_linked_spatially_without_parent_lies_outside_every_parent():
    children = micro({"P1": box(0, 0, 20, 10), "F": box(100, 0, 110, 10)}, parents={"P1": "P", "F": None},
                     parent_source="spatial")
    problems = check_nesting(children, grids({"P": PARENTS["P"]}))
    assert [str(p.message) for p in problems] == ["unit F lies outside every grid unit and has no parent"]


def test_only_a_parents_own_children_cover_it():
    # Q1 lies inside P but names Q: P is uncovered, Q1 lies wholly outside Q.
    children = micro({"Q1": box(0, 0, 20, 10)}, parents={"Q1": "Q"})
    problems = check_nesting(children, grids({"P": PARENTS["P"], "Q": PARENTS["Q"]}))
    assert [(p.kind, p.code) for p in problems] == [("outside_parent", "Q1"), ("uncovered_parent", "P"),
                                                    ("uncovered_parent", "Q")]
    assert [p.size_m2 for p in problems] == pytest.approx([200.0, 200.0, 200.0], abs=EXACT)


def test_the_demo_community_is_clean():
    grid = read_layer((DEMO / "grid.geojson").read_bytes(), level=Level.GRID, filename="grid.geojson")
    cells = read_layer((DEMO / "micro_grid.geojson").read_bytes(), level=Level.MICRO_GRID,
                       filename="micro_grid.geojson")
    assert cells.units["parent_code"].notna().all()
    assert check_coverage(grid) == []
    assert check_coverage(cells) == []
    assert check_nesting(cells, grid) == []
