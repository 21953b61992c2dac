"""Coverage cleaning: overlaps resolved, thin gaps filled, wide gaps kept, every change recorded.

The small cases are drawn in metres with ``box()`` in a local frame at 30°N 114°E (a transverse
Mercator with scale exactly 1 at its origin, as in test_validation.py), converted to lon/lat and
read by gridmap's own reader, so every area is worked out by hand: a 0.2 m × 6 m strip is 1.2 m².
The module cleans in UTM zone 50 and measures in its own Lambert equal-area projection; within
40 m of the origin both agree with the hand-drawn figures to better than 1e-6 m², so areas are
compared to ``EXACT`` and outlines to ``MM``.

The Boston cases check the result independently: pairwise overlaps with an STRtree in
Massachusetts State Plane (EPSG:26986), areas in a Lambert equal-area projection written here
by hand (centre 42.3°N 71.1°W).  Why not EPSG:6933: it is equal-area too, but a straight edge in
lon/lat bends there by centimetres over a kilometre at 42°N, so where cleaning puts a vertex on a
long edge its 6933 area moves by up to 2.5 m² that no other projection sees.  In the local LAEA
the module's figures agree to 1e-8 relative (0.012 m² on 2 km²) before and after, to 5e-4 m² on
each change and to 2e-5 relative on the land moved; the tolerances below leave ten times that.
"""
from __future__ import annotations

import json
import math
from dataclasses import replace
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import shapely
from pyproj import Transformer
from shapely import GeometryCollection, LineString, MultiPolygon, Polygon, box
from shapely.geometry.base import BaseGeometry

from gridmap.boundaries import read_layer
from gridmap.cleaning import (
    DEFAULT_GAP_WIDTH_M,
    DEFAULT_SNAP_M,
    AreaChange,
    Cleaning,
    CleanOptions,
    clean_units,
)
from gridmap.coordinates import areas_m2
from gridmap.levels import Level
from gridmap.validation import check_coverage

from .conftest import feature_collection

LOCAL = "+proj=tmerc +lat_0=30 +lon_0=114 +k=1 +datum=WGS84 +units=m +no_defs"
TO_LONLAT = Transformer.from_crs(LOCAL, "EPSG:4326", always_xy=True)
TO_LOCAL = Transformer.from_crs("EPSG:4326", LOCAL, always_xy=True)
EXACT = 1e-4        # m²
MM = 0.001          # m


def lonlat(shape: BaseGeometry) -> BaseGeometry:
    return shapely.transform(shape, lambda xy: np.column_stack(TO_LONLAT.transform(xy[:, 0], xy[:, 1])))


def local(shape: BaseGeometry) -> BaseGeometry:
    return shapely.transform(shape, lambda xy: np.column_stack(TO_LOCAL.transform(xy[:, 0], xy[:, 1])))


def read(units: dict[str, BaseGeometry], *, metres: bool = True):
    """A micro-grid layer as gridmap's reader makes it from these shapes (local metres or lon/lat)."""
    features = [({"code": code, "name": code}, lonlat(shape) if metres else shape) for code, shape in units.items()]
    return read_layer(feature_collection(features), level=Level.MICRO_GRID)


def clean(layer, **options):
    units, cleaning = clean_units(layer.units, CleanOptions(**options))
    return replace(layer, units=units), cleaning


def outline(layer, code: str) -> BaseGeometry:
    """A unit's cleaned outline in local metres."""
    return local(layer.units.set_index("code").geometry[code])


def same_shape(shape: BaseGeometry, expected: BaseGeometry) -> bool:
    return shapely.symmetric_difference(shape, expected).area < MM * expected.length


def areas(layer) -> dict[str, float]:
    return dict(zip(layer.units["code"], layer.units["area_m2"]))


def assert_changes(cleaning: Cleaning, expected: list[tuple[int, str, float, float, float]]) -> None:
    """``cleaning.changes`` are ``(feature, code, before, after, moved)``, areas to EXACT."""
    assert [(c.feature, c.code) for c in cleaning.changes] == [(f, code) for f, code, *_ in expected]
    for change, (_, _, before, after, moved) in zip(cleaning.changes, expected):
        assert (change.before_m2, change.after_m2, change.moved_m2) == pytest.approx((before, after, moved),
                                                                                      abs=EXACT)
        assert change.change_m2 == pytest.approx(after - before, abs=EXACT)


def kinds(layer, tolerance_m2: float = 0.0) -> list[tuple[str, tuple[str, ...], float]]:
    return [(p.kind, p.codes, round(p.size_m2, 2)) for p in check_coverage(layer, tolerance_m2=tolerance_m2)]


# ---------------------------------------------------------------------------------------------
# Small cases, drawn by hand
# ---------------------------------------------------------------------------------------------

def test_an_overlapping_strip_goes_to_the_unit_with_the_longest_border_around_it():
    # B (x 9.8–20, y 2–8) overlaps A by the strip x 9.8–10, y 2–8: 0.2 m × 6 m = 1.2 m².  A runs
    # round the strip on three sides (6 + 0.2 + 0.2 = 6.4 m), B along one (6 m): A keeps it.
    layer = read({"A": box(0, 0, 10, 10), "B": box(9.8, 2, 20, 8)})
    assert kinds(layer) == [("overlap", ("A", "B"), 1.2)]
    cleaned, cleaning = clean(layer)
    assert shapely.coverage_is_valid(cleaned.units.geometry.to_numpy())
    assert kinds(cleaned) == []
    assert same_shape(outline(cleaned, "A"), box(0, 0, 10, 10))
    assert same_shape(outline(cleaned, "B"), box(10, 2, 20, 8))
    assert areas(cleaned) == pytest.approx({"A": 100.0, "B": 60.0}, abs=EXACT)     # 100 + 60: the union, 160 m²
    assert_changes(cleaning, [(1, "B", 61.2, 60.0, 1.2)])


# A (x, y 0–10) sits in the notch of a C-shaped B (22 m × 14 m less x 0–10 + w, y 0–10) that leaves
# a slot w wide between them: a gap enclosed by A (one side, 10 m) and B (three sides, 10 + 2w m).
# B has vertices at A's corners (10, 0) and (10, 10), as a planner's file would.
def slot(width: float) -> dict[str, BaseGeometry]:
    c_shape = Polygon([(0, -2), (22, -2), (22, 12), (0, 12), (0, 10), (10, 10), (10 + width, 10), (10 + width, 0),
                       (10, 0), (0, 0)])
    return {"A": box(0, 0, 10, 10), "B": c_shape}


def test_a_gap_narrower_than_the_gap_width_is_given_to_the_neighbour_with_the_longest_border():
    layer = read(slot(0.5))                    # the slot: 0.5 m × 10 m = 5 m²; B borders it 11 m, A 10 m
    assert kinds(layer) == [("gap", ("A", "B"), 5.0)]
    cleaned, cleaning = clean(layer)
    assert kinds(cleaned) == []
    assert same_shape(outline(cleaned, "B"), box(0, -2, 22, 12).difference(box(0, 0, 10, 10)))
    assert areas(cleaned) == pytest.approx({"A": 100.0, "B": 208.0}, abs=EXACT)
    assert_changes(cleaning, [(1, "B", 308 - 105, 308 - 100, 5.0)])


def test_a_gap_wider_than_the_gap_width_stays_and_is_still_reported():
    layer = read(slot(5.0))                    # 5 m × 10 m = 50 m², 5 m wide: more than the default 2 m
    cleaned, cleaning = clean(layer)
    assert cleaning.changes == ()
    assert kinds(cleaned, tolerance_m2=1.0) == [("gap", ("A", "B"), 50.0)]
    assert areas(cleaned) == pytest.approx({"A": 100.0, "B": 158.0}, abs=EXACT)
    wider, cleaning = clean(layer, gap_width_m=6.0)
    assert kinds(wider) == []
    assert_changes(cleaning, [(1, "B", 158.0, 208.0, 50.0)])


def test_nearly_coincident_vertices_are_snapped_into_one_shared_edge():
    # B's west edge runs from (10.04, 0) to (9.97, 10): 4 cm and 3 cm off A's corners, crossing
    # A's east edge at y = 0.04 / 0.007 = 40/7.  B is the trapezoid of mean width 9.995 m (99.95 m²);
    # snapped onto A's corners (A comes first) it is the box x 10–20: it gains the triangle
    # ½ · 0.04 · 40/7 south of the crossing and gives up ½ · 0.03 · 30/7 north of it.
    trapezoid = Polygon([(10.04, 0), (20, 0), (20, 10), (9.97, 10)])
    layer = read({"A": box(0, 0, 10, 10), "B": trapezoid})
    assert not shapely.coverage_is_valid(layer.units.geometry.to_numpy())
    cleaned, cleaning = clean(layer)
    assert shapely.coverage_is_valid(cleaned.units.geometry.to_numpy())
    assert same_shape(outline(cleaned, "A"), box(0, 0, 10, 10))
    assert same_shape(outline(cleaned, "B"), box(10, 0, 20, 10))
    assert shapely.get_num_coordinates(cleaned.units.geometry).tolist() == [5, 5]
    gained, lost = 0.5 * 0.04 * 40 / 7, 0.5 * 0.03 * 30 / 7
    assert_changes(cleaning, [(1, "B", 99.95, 100.0, gained + lost)])


def test_without_snapping_the_edges_are_only_noded_where_they_cross():
    trapezoid = Polygon([(10.04, 0), (20, 0), (20, 10), (9.97, 10)])
    cleaned, cleaning = clean(read({"A": box(0, 0, 10, 10), "B": trapezoid}), snap_m=0.0)
    # The overlap north of the crossing goes to A; the sliver south of it is open to the outside
    # (not a gap), so B keeps its corner at (10.04, 0).
    crossing = (10.0, 40 / 7)
    assert same_shape(outline(cleaned, "B"), Polygon([(10.04, 0), (20, 0), (20, 10), (10, 10), crossing]))
    assert_changes(cleaning, [(1, "B", 99.95, 99.95 - 0.5 * 0.03 * 30 / 7, 0.5 * 0.03 * 30 / 7)])


def test_a_unit_wholly_under_its_neighbour_comes_out_empty_and_is_listed():
    layer = read({"A": box(0, 0, 10, 10), "B": box(2, 2, 4, 4)})
    cleaned, cleaning = clean(layer)
    assert cleaned.units.index.tolist() == [0, 1]
    gone = cleaned.units.geometry[1]
    assert (gone.geom_type, gone.is_empty, cleaned.units.at[1, "area_m2"]) == ("Polygon", True, 0.0)
    assert_changes(cleaning, [(1, "B", 4.0, 0.0, 4.0)])


def test_a_units_own_hole_no_wider_than_the_gap_width_is_filled_a_wider_one_stays():
    # R: a 30 m square with a 1 m × 10 m hole (10 m²) and a 5 m × 10 m hole (50 m²).
    ring = box(0, 0, 30, 30).difference(box(10, 10, 11, 20)).difference(box(15, 10, 20, 20))
    cleaned, cleaning = clean(read({"R": ring, "E": box(30, 0, 40, 30)}))
    assert same_shape(outline(cleaned, "R"), box(0, 0, 30, 30).difference(box(15, 10, 20, 20)))
    assert_changes(cleaning, [(0, "R", 840.0, 850.0, 10.0)])


def test_a_multipolygon_keeps_both_parts_and_wins_the_strips_it_surrounds():
    # N (x 9.8–20.2, y 2–8) overlaps each part of M by a 0.2 m × 6 m strip that M runs round.
    parts = MultiPolygon([box(0, 0, 10, 10), box(20, 0, 30, 10)])
    cleaned, cleaning = clean(read({"M": parts, "N": box(9.8, 2, 20.2, 8)}))
    assert outline(cleaned, "M").geom_type == "MultiPolygon"
    assert same_shape(outline(cleaned, "M"), parts)
    assert same_shape(outline(cleaned, "N"), box(10, 2, 20, 8))
    assert_changes(cleaning, [(1, "N", 62.4, 60.0, 2.4)])


def test_only_the_polygonal_parts_are_cleaned_and_kept():
    # The reader never gives a collection, but a repaired shape can be one: its line is dropped.
    layer = read({"A": box(0, 0, 10, 10), "B": box(10, 0, 20, 10)})
    units = layer.units.copy()
    units.loc[0, "geometry"] = GeometryCollection([lonlat(box(0, 0, 10, 10)), lonlat(LineString([(10, 0), (15, 5)]))])
    cleaned, cleaning = clean(replace(layer, units=units))
    assert cleaned.units.geometry.geom_type.tolist() == ["Polygon", "Polygon"]
    assert same_shape(outline(cleaned, "A"), box(0, 0, 10, 10))
    assert cleaning.changes == ()


def test_the_result_keeps_the_frame_and_its_untouched_units_exactly():
    layer = read({"A": box(0, 0, 10, 10), "B": box(9.8, 2, 20, 8), "C": box(0, 10, 10, 20)})
    cleaned, _ = clean(layer)
    assert cleaned.units.index.equals(layer.units.index) and cleaned.units.crs == layer.units.crs
    pd.testing.assert_frame_equal(cleaned.units.drop(columns=["geometry", "area_m2"]),
                                  layer.units.drop(columns=["geometry", "area_m2"]))
    assert cleaned.units["area_m2"].tolist() == areas_m2(cleaned.units).tolist()
    # C touches nothing that moved: it keeps the very coordinates it was read with.
    assert shapely.equals_exact(shapely.normalize(cleaned.units.geometry[2]),
                                shapely.normalize(layer.units.geometry[2]), tolerance=0.0)
    exteriors = shapely.get_exterior_ring(cleaned.units.geometry.to_numpy())
    assert shapely.is_ccw(exteriors).all()                  # RFC 7946: exterior rings anticlockwise


def test_an_overlap_that_projecting_back_to_lonlat_recreates_is_settled_in_lonlat():
    # P and Q share the diagonal B–A (1.47 km).  Q's edge detours through C, 1 cm across the
    # lon/lat diagonal into P: in lon/lat a sliver overlap.  The diagonal drawn straight in UTM
    # bows 2.4 cm the other way, so in metres C lies on Q's side and the sliver is a gap, which a
    # gap width of 0 keeps.  Back in lon/lat it would be an overlap again.
    b, a, c = (114.50, 30.50), (114.51, 30.51), (114.505 - 1e-7, 30.505 + 1e-7)
    layer = read({"P": Polygon([b, a, (114.50, 30.51)]), "Q": Polygon([b, (114.51, 30.50), a, c])}, metres=False)
    shapes = layer.units.geometry
    assert not shapely.coverage_is_valid(shapes.to_numpy())
    assert shapely.coverage_is_valid(shapes.to_crs(layer.units.estimate_utm_crs()).to_numpy())
    cleaned, cleaning = clean(layer, gap_width_m=0.0, snap_m=0.0)
    assert shapely.coverage_is_valid(cleaned.units.geometry.to_numpy())
    assert kinds(cleaned) == []
    # The sliver, bordered by P along B–C–A (longer than B–A), goes to P: Q's edge becomes B–A,
    # Q alone changed, by the sliver (8.1 m²), and the two now add up to their union.
    laea = "+proj=laea +lat_0=30.505 +lon_0=114.505 +datum=WGS84 +units=m +no_defs"
    union, p_area, sliver = gpd.GeoSeries([shapes.union_all(), shapes[0], shapes[0].intersection(shapes[1])],
                                          crs=4326).to_crs(laea).area
    [change] = cleaning.changes
    assert (change.code, change.after_m2, change.moved_m2) == ("Q", pytest.approx(union - p_area, abs=EXACT),
                                                              pytest.approx(sliver, abs=EXACT))
    assert round(sliver, 1) == 8.1
    assert cleaned.units["area_m2"].sum() == pytest.approx(union, abs=EXACT)


def test_units_in_metres_are_refused_and_no_units_is_no_change():
    units = read({"A": box(0, 0, 10, 10)}).units
    with pytest.raises(ValueError, match="units must be in EPSG:4326, got EPSG:32650"):
        clean_units(units.to_crs(32650))
    none, cleaning = clean_units(units.iloc[:0])
    assert (len(none), cleaning) == (0, Cleaning(CleanOptions(), ()))


# ---------------------------------------------------------------------------------------------
# Options and records
# ---------------------------------------------------------------------------------------------

def test_options_default_and_refuse_what_is_not_metres():
    assert CleanOptions() == CleanOptions(gap_width_m=DEFAULT_GAP_WIDTH_M, snap_m=DEFAULT_SNAP_M)
    assert (DEFAULT_GAP_WIDTH_M, DEFAULT_SNAP_M) == (2.0, 0.1)
    assert CleanOptions.from_dict({"snap_m": 0}) == CleanOptions(gap_width_m=2.0, snap_m=0.0)
    for bad in (-1.0, math.nan, math.inf, True, "2"):
        with pytest.raises(ValueError, match=f"gap_width_m must be a number of metres ≥ 0, got {bad!r}"):
            CleanOptions(gap_width_m=bad)


def test_records_round_trip_exactly():
    options = CleanOptions(gap_width_m=1.5, snap_m=0.05)
    assert options.as_dict() == {"gap_width_m": 1.5, "snap_m": 0.05}
    assert CleanOptions.from_dict(options.as_dict()) == options
    change = AreaChange(feature=7, code="0113", before_m2=702611.24, after_m2=702698.66, moved_m2=2122.449)
    assert change.as_dict() == {"feature": 7, "code": "0113", "before_m2": 702611.2, "after_m2": 702698.7,
                                "change_m2": 87.4, "moved_m2": 2122.4}
    assert AreaChange.from_dict(change.as_dict()) == AreaChange(7, "0113", 702611.2, 702698.7, 2122.4)
    cleaning = Cleaning(options, (AreaChange(1, "B", 61.2, 60.0, 1.2), AreaChange(3, "D", 4.0, 0.0, 4.0)))
    record = json.loads(json.dumps(cleaning.as_dict()))
    assert record == {"gap_width_m": 1.5, "snap_m": 0.05, "changes": [
        {"feature": 1, "code": "B", "before_m2": 61.2, "after_m2": 60.0, "change_m2": -1.2, "moved_m2": 1.2},
        {"feature": 3, "code": "D", "before_m2": 4.0, "after_m2": 0.0, "change_m2": -4.0, "moved_m2": 4.0}]}
    assert Cleaning.from_dict(record) == cleaning


def test_a_real_cleaning_record_survives_json():
    _, cleaning = clean(read({"A": box(0, 0, 10, 10), "B": box(9.8, 2, 20, 8)}))
    record = json.loads(json.dumps(cleaning.as_dict()))
    assert Cleaning.from_dict(record).as_dict() == record
    assert record["changes"][0] == {"feature": 1, "code": "B", "before_m2": 61.2, "after_m2": 60.0,
                                    "change_m2": -1.2, "moved_m2": 1.2}


# ---------------------------------------------------------------------------------------------
# Boston's 2015 wards and precincts
# ---------------------------------------------------------------------------------------------

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "boston-2015"
STATE_PLANE = "EPSG:26986"
BOSTON_LAEA = "+proj=laea +lat_0=42.3 +lon_0=-71.1 +datum=WGS84 +units=m +no_defs"
FILES = {"wards": ("wards.geojson", Level.GRID, None, "WARD"),
         "precincts": ("precincts.geojson", Level.MICRO_GRID, "EPSG:2249", "WARD_PRECINCT")}
# Largest overlap of one pair before cleaning, in EPSG:26986 (also what test_validation_boston sees).
LARGEST_OVERLAP_M2 = {"wards": 111.7, "precincts": 956.2}

boston = pytest.mark.skipif(
    not all((DATA / name).is_file() for name, *_ in FILES.values()),
    reason=f"Boston 2015 wards/precincts not found at {DATA} (they live in ../shared beside the repository)")


@pytest.fixture(scope="module", params=list(FILES))
def boston_level(request):
    """(name, layer as read, layer cleaned with the defaults, the cleaning record)."""
    filename, level, crs, code_field = FILES[request.param]
    layer = read_layer((DATA / filename).read_bytes(), level=level, filename=filename, crs=crs, code_field=code_field)
    units, cleaning = clean_units(layer.units)
    return request.param, layer, replace(layer, units=units), cleaning


def pairwise_overlaps(units: gpd.GeoDataFrame) -> np.ndarray:
    """The area each pair of units shares, in State Plane, found with an STRtree."""
    shapes = units.geometry.to_crs(STATE_PLANE).to_numpy()
    first, second = shapely.STRtree(shapes).query(shapes, predicate="intersects")
    once = first < second
    return shapely.area(shapely.intersection(shapes[first[once]], shapes[second[once]]))


@boston
def test_boston_cleaned_has_no_overlap_left(boston_level):
    name, layer, cleaned, _ = boston_level
    assert pairwise_overlaps(layer.units).max() == pytest.approx(LARGEST_OVERLAP_M2[name], abs=0.05)
    assert shapely.coverage_is_valid(cleaned.units.geometry.to_numpy())
    assert pairwise_overlaps(cleaned.units).max() <= 0.01
    # Every gap between Boston's units is a sliver under 1.84 m wide, so none is left either.
    assert check_coverage(cleaned, tolerance_m2=1.0) == []


@boston
def test_boston_every_change_is_listed_and_measured_right(boston_level):
    _, layer, cleaned, cleaning = boston_level
    old = layer.units.geometry.to_crs(BOSTON_LAEA).to_numpy()
    new = cleaned.units.geometry.to_crs(BOSTON_LAEA).to_numpy()
    before, after = shapely.area(old), shapely.area(new)
    moved = shapely.area(shapely.symmetric_difference(old, new))
    changed = (moved > 0.01) | (np.abs(after - before) > 0.01)
    assert [c.feature for c in cleaning.changes] == layer.units.index[changed].tolist()
    assert [c.code for c in cleaning.changes] == layer.units["code"][changed].tolist()
    for change, b, a, m in zip(cleaning.changes, before[changed], after[changed], moved[changed]):
        assert (change.before_m2, change.after_m2) == pytest.approx((b, a), rel=1e-7), change.code
        assert change.change_m2 == pytest.approx(a - b, abs=0.005), change.code
        assert change.moved_m2 == pytest.approx(m, rel=1e-4), change.code
    # The units not listed did not change: less than 0.001 m² either way, far under the 0.01 m² line.
    assert moved[~changed].max() < 0.001 and np.abs(after - before)[~changed].max() < 0.001
    assert cleaned.units["area_m2"].tolist() == areas_m2(cleaned.units).tolist()
