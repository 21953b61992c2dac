"""Real data: the layer checks on Boston's 2015 wards (grids) and precincts (micro-grids).

Every figure the checks report is computed again here, independently, with plain geopandas
in Massachusetts State Plane (EPSG:26986, metres): overlaps with ``overlay``, the parts of
precincts outside their ward with ``difference``, gaps as the holes of ``union_all``.  The two
projections differ slightly, so areas must agree to 0.5 %.  Precincts are linked to the ward
their code names ("0113" → ward "1", "0502A" → ward "5"): the city's own link, made without
geometry, so crossings are measured against what the city says rather than against the ward
that happens to hold the most of each precinct (``derive_parents`` agrees for 254 of 255; the
Boston Harbor islands, 0115, lie outside every ward).

The data lives in ``../shared/data/boston-2015`` beside the repository; without it the module
is skipped.  Run with ``-s`` to see the figures.
"""
from __future__ import annotations

import re
import time
from dataclasses import dataclass, replace
from pathlib import Path

import geopandas
import pandas
import pytest
from shapely import Polygon

from gridmap.boundaries import read_layer
from gridmap.layer import Layer
from gridmap.levels import Level
from gridmap.problems import Problem
from gridmap.validation import DEFAULT_TOLERANCE_M2, check_coverage, check_nesting

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "boston-2015"
STATE_PLANE = "EPSG:26986"
RELATIVE = 0.005
NEAR_M = 0.001      # a unit within 1 mm of a hole touches it (rings noded from edges miss them by float noise)

pytestmark = pytest.mark.skipif(
    not (DATA / "wards.geojson").is_file() or not (DATA / "precincts.geojson").is_file(),
    reason=f"Boston 2015 wards/precincts not found at {DATA} (they live in ../shared beside the repository)")


@dataclass
class Checked:
    wards: Layer
    precincts: Layer
    problems: dict[str, list[Problem]]      # "wards", "precincts" (coverage), "nesting"
    seconds: dict[str, float]


def linked_to_wards(precincts: Layer) -> Layer:
    """Each precinct's parent is the ward its code names: "0113" → "1", "0502A" → "5"."""
    codes = precincts.units["code"]
    assert all(re.fullmatch(r"\d{4}[A-Z]?", c) for c in codes)
    units = precincts.units.copy()
    units["parent_code"] = pandas.Series([str(int(c[:2])) for c in codes], dtype=object, index=units.index)
    return replace(precincts, units=units, parent_source="field")


@pytest.fixture(scope="module")
def checked() -> Checked:
    wards = read_layer((DATA / "wards.geojson").read_bytes(), level=Level.GRID, filename="wards.geojson",
                       code_field="WARD")
    precincts = linked_to_wards(read_layer((DATA / "precincts.geojson").read_bytes(), level=Level.MICRO_GRID,
                                           filename="precincts.geojson", crs="EPSG:2249",
                                           code_field="WARD_PRECINCT"))
    runs = {"wards": lambda: check_coverage(wards), "precincts": lambda: check_coverage(precincts),
            "nesting": lambda: check_nesting(precincts, wards)}
    problems, seconds = {}, {}
    for name, run in runs.items():
        start = time.perf_counter()
        problems[name] = run()
        seconds[name] = time.perf_counter() - start
    return Checked(wards, precincts, problems, seconds)


def in_plane(layer: Layer) -> geopandas.GeoDataFrame:
    return layer.units[["code", "parent_code", "geometry"]].to_crs(STATE_PLANE)


def overlaps(frame: geopandas.GeoDataFrame) -> dict[frozenset[str], float]:
    """Every pair of units sharing more than the tolerance, by geopandas.overlay."""
    shared = geopandas.overlay(frame[["code", "geometry"]], frame[["code", "geometry"]], how="intersection",
                               keep_geom_type=True)
    shared = shared[(shared["code_1"] < shared["code_2"]) & (shared.area > DEFAULT_TOLERANCE_M2)]
    return {frozenset(pair): area for pair, area in zip(zip(shared["code_1"], shared["code_2"]), shared.area)}


def gaps(frame: geopandas.GeoDataFrame) -> list[float]:
    """Areas of the holes of the union that two or more units surround (one unit's own hole is not a gap)."""
    union = frame.union_all()
    holes = geopandas.GeoDataFrame(geometry=[Polygon(ring) for part in getattr(union, "geoms", [union])
                                             for ring in part.interiors], crs=frame.crs)
    around = geopandas.sjoin(holes, frame, predicate="dwithin", distance=NEAR_M).groupby(level=0)["code"].nunique()
    holes = holes[(around.reindex(holes.index, fill_value=0) > 1) & (holes.area > DEFAULT_TOLERANCE_M2)]
    return sorted(holes.area)


def outside(precincts: geopandas.GeoDataFrame, wards: geopandas.GeoDataFrame) -> dict[str, float]:
    """The area of each precinct outside the ward it names, where above the tolerance."""
    ward_of = wards.set_index("code").geometry
    named = geopandas.GeoSeries(ward_of.loc[precincts["parent_code"]].to_numpy(), index=precincts.index,
                                crs=wards.crs)
    area = precincts.geometry.difference(named).area
    return dict(zip(precincts["code"][area > DEFAULT_TOLERANCE_M2], area[area > DEFAULT_TOLERANCE_M2]))


def uncovered(precincts: geopandas.GeoDataFrame, wards: geopandas.GeoDataFrame) -> dict[str, float]:
    """The area of each ward that none of its own precincts covers, where above the tolerance."""
    covered = precincts.dissolve(by="parent_code").geometry
    area = wards.set_index("code").geometry.difference(covered, align=True).area
    return {code: value for code, value in area.items() if value > DEFAULT_TOLERANCE_M2}


def found(problems: list[Problem], kind: str) -> list[Problem]:
    return [p for p in problems if p.kind == kind]


def assert_areas_agree(ours: dict, theirs: dict) -> None:
    assert set(ours) == set(theirs)
    for key, area in theirs.items():
        assert ours[key] == pytest.approx(area, rel=RELATIVE), key


@pytest.mark.parametrize("level", ["wards", "precincts"])
def test_overlapping_pairs_agree_with_overlay(checked: Checked, level: str):
    ours = {frozenset(p.codes): p.size_m2 for p in found(checked.problems[level], "overlap")}
    assert_areas_agree(ours, overlaps(in_plane(getattr(checked, level))))


@pytest.mark.parametrize("level", ["wards", "precincts"])
def test_gaps_agree_with_the_holes_of_the_union(checked: Checked, level: str):
    ours = [p.size_m2 for p in found(checked.problems[level], "gap")]
    theirs = gaps(in_plane(getattr(checked, level)))
    assert len(ours) == len(theirs)
    assert sum(ours) == pytest.approx(sum(theirs), rel=RELATIVE)


def test_precincts_crossing_their_ward_agree_with_difference(checked: Checked):
    ours = {p.code: p.size_m2 for p in found(checked.problems["nesting"], "outside_parent")}
    assert_areas_agree(ours, outside(in_plane(checked.precincts), in_plane(checked.wards)))
    assert ours["0115"] == pytest.approx(checked.precincts.units.set_index("code").loc["0115", "area_m2"], rel=1e-3)


def test_ward_land_no_precinct_covers_agrees_with_dissolve(checked: Checked):
    ours = {p.code: p.size_m2 for p in found(checked.problems["nesting"], "uncovered_parent")}
    assert_areas_agree(ours, uncovered(in_plane(checked.precincts), in_plane(checked.wards)))


def test_every_precinct_names_a_ward(checked: Checked):
    assert found(checked.problems["nesting"], "unknown_parent") == []
    assert found(checked.problems["nesting"], "no_parent") == []


def test_summary(checked: Checked):
    """The figures, both ways (shown with -s)."""
    wards, precincts = in_plane(checked.wards), in_plane(checked.precincts)
    theirs = {("wards", "overlap"): list(overlaps(wards).values()), ("wards", "gap"): gaps(wards),
              ("precincts", "overlap"): list(overlaps(precincts).values()), ("precincts", "gap"): gaps(precincts),
              ("nesting", "outside_parent"): list(outside(precincts, wards).values()),
              ("nesting", "uncovered_parent"): list(uncovered(precincts, wards).values())}
    print(f"\n{'check':<10} {'kind':<17} {'ours':>5} {'geopandas':>9} {'ours m²':>12} {'geopandas m²':>12} {'s':>6}")
    for (name, kind), areas in theirs.items():
        ours = [p.size_m2 for p in found(checked.problems[name], kind)]
        print(f"{name:<10} {kind:<17} {len(ours):>5} {len(areas):>9} {sum(ours):>12.1f} {sum(areas):>12.1f} "
              f"{checked.seconds[name]:>6.3f}")
        assert len(ours) == len(areas)
