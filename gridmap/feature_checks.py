"""Feature checks: the problems of single features in a boundary file, each found and named.

Geometry that cannot be used (undecodable, empty, not a polygon, non-finite coordinates,
swapped lat/lon) is an error and the feature is left out; what can be fixed without
guessing (3D coordinates, ring orientation, self-intersections) is fixed and reported as a
warning, never silently.  Codes and names are checked here too.  The result is the usable
features in EPSG:4326, indexed by their position in the file.

GEOS's checks and repairs grow faster than the vertices they are given: a 200-vertex star takes
100 s to repair, a 64,000-vertex comb 75 s to check.  So before any geometry work each feature
is measured from its coordinates alone (vertices, rings, pairs of edges whose extents overlap)
and one beyond the ``MAX_*`` caps is an error, left out; a polygon is repaired only when it
crosses itself a bounded number of times, within a budget for the whole file.
"""
from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
from shapely.errors import GEOSException

from .coordinates import WGS84, ServiceArea, areas_m2, looks_like_lonlat, parse_crs, to_wgs84
from .errors import N_, Message, message
from .formats import SourceFile
from .problems import Problem, Severity

log = logging.getLogger(__name__)

CW_DRIVERS = ("ESRI Shapefile",)       # the Shapefile spec winds outer rings clockwise; the others CCW
_POINT_IN_REASON = re.compile(r"\[\s*([-+\d.eE]+)\s+([-+\d.eE]+)")

#: What one feature, and one file, may cost GEOS.  Real boundaries have fewer than 5 pairs of
#: overlapping edge extents per vertex and a handful of self-crossings (Boston's wards: 3.3, 1).
MAX_VERTICES_PER_FEATURE = 200_000
MAX_RINGS_PER_FEATURE = 1_000           # outer rings and holes
MAX_OVERLAPS_PER_FEATURE = 1_000_000    # pairs of edges or rings whose extents overlap, beyond 16 per vertex
MAX_OVERLAPS = 10_000_000               # the same, all features together (about 2 s of checking)
MAX_REPAIR_CROSSINGS = 1_000            # a star crossing itself 1,000 times takes 0.6 s to repair
MAX_REPAIR_WORK = 5_000_000             # vertices + rings² + crossings² of the polygons repaired in one file
_OVERLAPS_PER_VERTEX = 16
_PAIRS_PER_QUERY = 1_000_000            # edge pairs looked at per spatial-index query while counting crossings
_VERTICES_PER_PASS = 2_000_000         # vertices whose edge extents are sorted at once


@dataclass
class CheckedFeatures:
    frame: gpd.GeoDataFrame          # usable features in EPSG:4326, index = feature index
    problems: list[Problem]


def where(index: int | None, code: str | None) -> Message:
    """How a message names a feature: its index in the file and its code when it has one."""
    if code is None:
        return message(N_("feature {index}"), index=index)
    return message(N_('feature {index} (code "{code}")'), index=index, code=code)


def feature_problem(kind: str, severity: Severity, template: str, index: int, code: str | None, *,
                    location: tuple[float, float] | None = None, size_m2: float | None = None,
                    **params: object) -> Problem:
    return Problem(kind=kind, severity=severity, message=message(template, where=where(index, code), code=code,
                                                                 **params),
                   feature=index, code=code, codes=(code,) if code else (), location=location, size_m2=size_m2)


def check_features(source: SourceFile, *, codes: list[str | None], names: list[str | None] | None, crs: str | None,
                   service_area: ServiceArea | None, filename: str) -> CheckedFeatures:
    """Check every feature; return the usable ones, reprojected and normalised, with all problems.
    ``names`` is None when the file has no name property at all (one warning, not one per unit)."""
    problems = _code_problems(codes, names)
    measured, found = _measured(source.geometry, codes)
    problems += found
    usable, found = _unusable_geometry(source, codes, measured)
    problems += found
    usable &= np.array([c is not None for c in codes], dtype=bool)
    keep = np.flatnonzero(usable)
    frame = gpd.GeoDataFrame(geometry=gpd.GeoSeries(source.geometry[usable], crs=source.crs, index=keep), index=keep)
    if frame.empty:
        return CheckedFeatures(frame.set_crs(4326, allow_override=True), problems)
    for check in (_swapped, _out_of_range):
        frame, found = check(frame, codes, crs=crs, area=service_area)
        problems += found
    if frame.empty:
        return CheckedFeatures(frame.set_crs(4326, allow_override=True), problems)
    frame = to_wgs84(frame, crs=crs, source=filename)
    for step in (_flattened, _oriented(source.driver), _repaired):
        frame, found = step(frame, codes)
        problems += found
    frame = frame.set_geometry(shapely.orient_polygons(frame.geometry.to_numpy()), crs=4326)   # RFC 7946
    return CheckedFeatures(frame, problems + _outside_service_area(frame, service_area))


def _code_problems(codes: list[str | None], names: list[str | None] | None) -> list[Problem]:
    problems: list[Problem] = []
    first: dict[str, int] = {}
    if names is None:
        problems.append(Problem(kind="missing_name", severity=Severity.WARNING, message=message(N_(
            "the file has no name property; the codes are shown as names"))))
        names = list(codes)
    for i, (code, name) in enumerate(zip(codes, names)):
        if code is None:
            problems.append(feature_problem("missing_code", Severity.ERROR,
                                            N_("{where} has no code; every unit needs one"), i, None))
        elif code in first:
            problems.append(feature_problem("duplicate_code", Severity.ERROR, N_(
                "{where}: code {code!r} is already used by feature {first}; codes must be unique"),
                i, code, first=first[code]))
        else:
            first[code] = i
        if code is not None and name is None:
            problems.append(feature_problem("missing_name", Severity.WARNING,
                                            N_("{where} has no name; the code is shown instead"), i, code))
    return problems


def _unusable_geometry(source: SourceFile, codes: list[str | None],
                       measured: np.ndarray) -> tuple[np.ndarray, list[Problem]]:
    """Undecodable, empty, non-polygonal and non-finite geometries: errors, left out.  Only the
    ``measured`` features (within the caps) are checked by GEOS."""
    geometry = source.geometry.copy()
    geometry[~measured] = None
    usable = measured.copy()
    problems = []
    finite = _finite(geometry)
    reasons = _fatal_reasons(geometry)
    for i, geom in enumerate(geometry):
        code = codes[i]
        if not measured[i]:
            continue
        if i in source.undecodable:
            why = source.undecodable[i]
            kind = "too_few_points" if isinstance(why, str) and "points" in why.lower() else "bad_geometry"
            problems.append(feature_problem(kind, Severity.ERROR, N_("{where}: the geometry cannot be read: "
                                                                     "{reason}"), i, code,
                                            reason=source.undecodable[i]))
        elif geom is None or geom.is_empty:
            problems.append(feature_problem("empty_geometry", Severity.ERROR, N_(
                "expected Polygon or MultiPolygon, got an empty geometry in {where}"), i, code))
        elif geom.geom_type not in ("Polygon", "MultiPolygon"):
            problems.append(feature_problem("not_polygon", Severity.ERROR, N_(
                "expected Polygon or MultiPolygon, got {got} in {where}"), i, code, got=geom.geom_type))
        elif not finite[i]:
            problems.append(feature_problem("non_finite", Severity.ERROR, N_(
                "{where} has coordinates that are not numbers (NaN or infinity)"), i, code))
        elif (reason := reasons[i]) is not None:
            problems.append(feature_problem("too_few_points", Severity.ERROR, N_(
                "{where}: a ring has too few points ({reason}); a ring needs at least 4 positions, the last "
                "repeating the first"), i, code, location=_reason_point(reason), reason=reason))
        else:
            continue
        usable[i] = False
    return usable, problems


def _fatal_reasons(geometry: np.ndarray) -> list[str | None]:
    """GEOS's reason where a polygon is beyond repair (a ring with fewer than 4 positions)."""
    polygons = np.array([g is not None and g.geom_type in ("Polygon", "MultiPolygon") for g in geometry], dtype=bool)
    reasons: list[str | None] = [None] * len(geometry)
    for i in np.flatnonzero(polygons & ~shapely.is_valid(geometry)):
        reason = shapely.is_valid_reason(geometry[i])
        reasons[i] = reason if reason and reason.startswith("Too few points") else None
    return reasons


def _finite(geometry: np.ndarray) -> np.ndarray:
    coords, index = shapely.get_coordinates(geometry, return_index=True)   # x, y (a 2D z reads as NaN)
    finite = np.ones(len(geometry), dtype=bool)
    finite[np.unique(index[~np.isfinite(coords).all(axis=1)])] = False
    return finite


def _swapped(frame: gpd.GeoDataFrame, codes: list[str | None], *, crs: str | None,
             area: ServiceArea | None) -> tuple[gpd.GeoDataFrame, list[Problem]]:
    """Features in lon/lat whose coordinates only make sense read as (lat, lon): errors, left out."""
    if crs or (frame.crs is not None and not frame.crs.is_geographic):
        return frame, []
    bounds = frame.geometry.bounds.to_numpy()
    fits = (lambda b: area.contains(b)) if area else looks_like_lonlat
    swapped = [i for i, b in zip(frame.index, bounds) if not fits(b) and fits(b[[1, 0, 3, 2]])]
    problems = []
    for i in swapped:
        point = frame.geometry.loc[i].representative_point()
        problems.append(feature_problem(
            "swapped_coordinates", Severity.ERROR, N_("{where} reads ({x}, {y}), which looks like (latitude, "
                                                      "longitude): swap the coordinates so longitude comes first"),
            int(i), codes[i], location=(round(point.y, 7), round(point.x, 7)), x=round(point.x, 6),
            y=round(point.y, 6)))
    return frame.drop(index=swapped), problems


def _out_of_range(frame: gpd.GeoDataFrame, codes: list[str | None], *, crs: str | None,
                  area: ServiceArea | None) -> tuple[gpd.GeoDataFrame, list[Problem]]:
    """In a geographic CRS, features beyond longitude ±180 or latitude ±90: errors, left out.  When
    every feature is, the file is most likely projected without saying so, which
    :func:`~gridmap.coordinates.to_wgs84` says for the whole file instead."""
    geographic = parse_crs(crs).is_geographic if crs else (frame.crs if frame.crs is not None else WGS84).is_geographic
    if not geographic:
        return frame, []
    bounds = frame.geometry.bounds.to_numpy()
    outside = np.array([not looks_like_lonlat(b) for b in bounds], dtype=bool)
    if outside.all():
        return frame, []
    problems = [feature_problem(
        "out_of_range", Severity.ERROR, N_("{where} lies at ({minx}, {miny}) – ({maxx}, {maxy}), beyond longitude "
                                           "-180…180 or latitude -90…90; check its coordinates"), int(i), codes[i],
        minx=_shown_number(b[0]), miny=_shown_number(b[1]), maxx=_shown_number(b[2]), maxy=_shown_number(b[3]))
        for i, b in zip(frame.index[outside], bounds[outside])]
    return frame[~outside], problems


def _shown_number(value: float) -> float:
    return round(float(value), 6)


def _flattened(frame: gpd.GeoDataFrame, codes: list[str | None]) -> tuple[gpd.GeoDataFrame, list[Problem]]:
    has_z = shapely.has_z(frame.geometry.to_numpy())
    if not has_z.any():
        return frame, []
    problems = [feature_problem("z_dropped", Severity.WARNING, N_(
        "{where} has 3D coordinates; the heights were dropped (boundaries are 2D)"), int(i), codes[i],
        location=_point(frame.geometry.loc[i])) for i in frame.index[has_z]]
    return frame.set_geometry(shapely.force_2d(frame.geometry.to_numpy()), crs=4326), problems


def _oriented(driver: str):
    """Valid polygons whose rings are wound against the file format's own rule (Shapefile: outer
    rings clockwise; GeoJSON RFC 7946, KML, GeoPackage: counter-clockwise) are reported; every
    polygon is stored counter-clockwise.  (An invalid ring has no meaningful winding.)"""
    expect_cw = driver in CW_DRIVERS

    def step(frame: gpd.GeoDataFrame, codes: list[str | None]) -> tuple[gpd.GeoDataFrame, list[Problem]]:
        geometry = frame.geometry.to_numpy()
        wrong = shapely.is_valid(geometry) & ~shapely.equals_exact(
            geometry, shapely.orient_polygons(geometry, exterior_cw=expect_cw))
        rule = message(N_("clockwise")) if expect_cw else message(N_("counter-clockwise"))
        problems = [feature_problem("orientation", Severity.WARNING, N_(
            "{where}: rings are wound against the {fmt} rule (outer rings {rule}); normalised"), int(i),
            codes[i], location=_point(frame.geometry.loc[i]), fmt=driver, rule=rule)
            for i in frame.index[wrong]]
        return frame, problems
    return step


def _repaired(frame: gpd.GeoDataFrame, codes: list[str | None]) -> tuple[gpd.GeoDataFrame, list[Problem]]:
    """Invalid polygons (real files have self-touching rings) made valid, keeping polygonal parts.

    Never silent: each repair is a warning with GEOS's reason, where it is, and the area before
    and after (GEOS's area of the invalid ring, which cancels out across a self-intersection).
    A polygon that crosses itself too often, or beyond the file's repair budget, is an error."""
    geometry = frame.geometry.to_numpy()
    invalid = np.flatnonzero(~shapely.is_valid(geometry))
    if len(invalid) == 0:
        return frame, []
    fixed, refused, problems = geometry.copy(), [], []
    for pos, refusal in zip(invalid, _repair_refusals(geometry[invalid], frame.index[invalid], codes)):
        if refusal is None:
            try:
                parts = shapely.get_parts(shapely.make_valid(geometry[pos]))
                fixed[pos] = shapely.union_all(parts[shapely.get_type_id(parts) >= 3])   # (multi)polygons only
                continue
            except GEOSException as exc:
                refusal = _not_repaired(N_("{where}: invalid geometry ({reason}) that GEOS cannot repair: {error}"),
                                        geometry[pos], int(frame.index[pos]), codes, error=str(exc).strip())
        refused.append(pos)
        problems.append(refusal)
    repaired = np.setdiff1d(invalid, refused)
    before = areas_m2(gpd.GeoDataFrame(geometry=gpd.GeoSeries(geometry[repaired], crs=4326)))
    after = areas_m2(gpd.GeoDataFrame(geometry=gpd.GeoSeries(fixed[repaired], crs=4326)))
    for pos, area_before, area_after in zip(repaired, before, after):
        i, reason = int(frame.index[pos]), shapely.is_valid_reason(geometry[pos])
        problems.append(feature_problem(
            "invalid_geometry", Severity.WARNING, N_("{where}: invalid geometry ({reason}); repaired with "
                                                     "make_valid, area {before} m² → {after} m²"), i, codes[i],
            location=_reason_point(reason) or _point(geometry[pos]),
            size_m2=round(float(area_after - area_before), 1) + 0.0,   # + 0.0: no "-0.0"
            reason=reason, before=round(float(area_before), 1), after=round(float(area_after), 1)))
    log.info("repaired %d invalid geometries, refused %d", len(repaired), len(refused))
    keep = np.ones(len(frame), dtype=bool)
    keep[refused] = False
    return frame[keep].set_geometry(fixed[keep], crs=4326), problems


def _repair_refusals(geometry: np.ndarray, index: pd.Index, codes: list[str | None]) -> list[Problem | None]:
    """Per invalid polygon, why it is not repaired (None: it is): it crosses itself more than
    :data:`MAX_REPAIR_CROSSINGS` times, or the polygons before it used up :data:`MAX_REPAIR_WORK`."""
    refusals: list[Problem | None] = []
    spent = 0
    for geom, i in zip(geometry, index):
        crossings = _crossings(geom, MAX_REPAIR_CROSSINGS)
        rings = int(_ring_counts(np.array([geom], dtype=object))[0])
        work = int(shapely.get_num_coordinates(geom)) + rings ** 2 + crossings ** 2
        if crossings > MAX_REPAIR_CROSSINGS:
            refusals.append(_not_repaired(N_(
                "{where}: invalid geometry ({reason}) crossing itself at least {count} times; at most {limit} "
                "crossings are repaired automatically. Fix it in QGIS (Vector ▸ Geometry Tools ▸ Fix Geometries) or "
                "redraw it"), geom, int(i), codes, count=crossings, limit=MAX_REPAIR_CROSSINGS))
        elif spent + work > MAX_REPAIR_WORK:
            refusals.append(_not_repaired(N_(
                "{where}: invalid geometry ({reason}) not repaired: the invalid features before it used up what "
                "one file may spend on repairs. Fix them in QGIS (Vector ▸ Geometry Tools ▸ Fix Geometries) and "
                "upload the file again"), geom, int(i), codes))
        else:
            spent += work
            refusals.append(None)
    return refusals


def _not_repaired(template: str, geom: shapely.Geometry, i: int, codes: list[str | None], **params: Any) -> Problem:
    reason = shapely.is_valid_reason(geom)
    return feature_problem("not_repaired", Severity.ERROR, template, i, codes[i],
                           location=_reason_point(reason) or _point(geom), reason=reason, **params)


# --- how much GEOS work a feature is --------------------------------------------------------------

def _measured(geometry: np.ndarray, codes: list[str | None]) -> tuple[np.ndarray, list[Problem]]:
    """Which features GEOS may check (True) and, for the others, why not: more vertices, rings or
    overlapping edge extents than the caps.  Counted from coordinates alone: nothing here is
    quadratic, whatever the file holds."""
    vertices = shapely.get_num_coordinates(geometry)
    rings = _ring_counts(geometry)
    overlaps = np.maximum(_overlap_counts(geometry, vertices) - _OVERLAPS_PER_VERTEX * vertices, 0)
    measured = np.ones(len(geometry), dtype=bool)
    problems, spent = [], 0
    for i in map(int, np.flatnonzero((vertices > MAX_VERTICES_PER_FEATURE) | (rings > MAX_RINGS_PER_FEATURE)
                                     | (overlaps > 0))):
        if vertices[i] > MAX_VERTICES_PER_FEATURE:
            found = _too_complex(N_("{where} has {count} vertices; at most {limit} are accepted in one feature. "
                                    "Simplify it (QGIS: Vector ▸ Geometry Tools ▸ Simplify) or split it"),
                                 i, codes, count=int(vertices[i]), limit=MAX_VERTICES_PER_FEATURE)
        elif rings[i] > MAX_RINGS_PER_FEATURE:
            found = _too_complex(N_("{where} has {count} rings (outer rings and holes); at most {limit} are accepted "
                                    "in one feature. Remove the small holes and parts (QGIS: Vector ▸ Geometry Tools "
                                    "▸ Delete Holes) or split it"), i, codes, count=int(rings[i]),
                                 limit=MAX_RINGS_PER_FEATURE)
        elif overlaps[i] > MAX_OVERLAPS_PER_FEATURE:
            found = _too_complex(N_("{where} is too intricate to check: {count} pairs of its edges overlap each "
                                    "other's extent, more than {limit}. Simplify it (QGIS: Vector ▸ Geometry Tools ▸ "
                                    "Simplify) or redraw it"), i, codes, count=int(overlaps[i]),
                                 limit=MAX_OVERLAPS_PER_FEATURE)
        elif spent + overlaps[i] > MAX_OVERLAPS:
            found = _too_complex(N_("{where} was not checked: with the features before it, the file has more than "
                                    "{limit} pairs of edges overlapping each other's extent. Simplify the file (QGIS: "
                                    "Vector ▸ Geometry Tools ▸ Simplify) or split it"), i, codes, limit=MAX_OVERLAPS)
        else:
            spent += int(overlaps[i])
            continue
        measured[i] = False
        problems.append(found)
    return measured, problems


def _too_complex(template: str, i: int, codes: list[str | None], **params: Any) -> Problem:
    return feature_problem("too_complex", Severity.ERROR, template, i, codes[i], **params)


def _ring_counts(geometry: np.ndarray) -> np.ndarray:
    """Outer rings and holes of each (multi)polygon; 0 for anything else."""
    parts, index = shapely.get_parts(geometry, return_index=True)
    rings = np.where(shapely.get_type_id(parts) == 3, shapely.get_num_interior_rings(parts) + 1, 0)
    return np.bincount(index, weights=rings, minlength=len(geometry)).astype(int)


def _edges(geometry: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The edges of the polygons' rings: start and end points, the geometry and the ring each is in."""
    polygonal = np.flatnonzero(np.isin(shapely.get_type_id(geometry), (3, 6)))
    parts, part_of = shapely.get_parts(geometry[polygonal], return_index=True)
    rings, ring_of = shapely.get_rings(parts, return_index=True)
    coords, coord_of = shapely.get_coordinates(rings, return_index=True)
    same = coord_of[:-1] == coord_of[1:]
    start, end, ring = coords[:-1][same], coords[1:][same], coord_of[:-1][same]
    finite = np.isfinite(start).all(axis=1) & np.isfinite(end).all(axis=1)
    start, end, ring = start[finite], end[finite], ring[finite]
    return start, end, polygonal[part_of[ring_of[ring]]], ring


def _overlap_counts(geometry: np.ndarray, vertices: np.ndarray) -> np.ndarray:
    """Per feature, an upper bound on the pairs of its edges, and of its rings, whose extents overlap:
    the pairs GEOS's validity check compares.  Every such pair overlaps on the x axis and on the y
    axis, so each axis's count of overlapping pairs bounds it; sorting makes that O(n log n).
    Features over the vertex cap are left at 0 (they are refused anyway); the rest go a few
    million vertices at a time, so that the arrays stay small."""
    counts = np.zeros(len(geometry))
    small = np.flatnonzero(vertices <= MAX_VERTICES_PER_FEATURE)
    cuts = np.searchsorted(np.cumsum(vertices[small]), np.arange(1, 1 + vertices[small].sum() // _VERTICES_PER_PASS)
                           * _VERTICES_PER_PASS)
    for chunk in np.split(small, cuts):
        if len(chunk):
            counts[chunk] = _chunk_overlaps(geometry[chunk])
    return counts


def _chunk_overlaps(geometry: np.ndarray) -> np.ndarray:
    counts = np.zeros(len(geometry))
    start, end, feature, _ = _edges(geometry)
    if len(feature):
        lo, hi = np.minimum(start, end), np.maximum(start, end)
        counts += _fewer(_overlaps(lo[:, 0], hi[:, 0], feature), _overlaps(lo[:, 1], hi[:, 1], feature), feature,
                         len(geometry))
    parts, part_of = shapely.get_parts(geometry, return_index=True)
    rings, ring_of = shapely.get_rings(parts, return_index=True)
    bounds = shapely.bounds(rings)
    known = np.isfinite(bounds).all(axis=1)
    if known.any():
        owner, bounds = part_of[ring_of[known]], bounds[known]
        counts += _fewer(_overlaps(bounds[:, 0], bounds[:, 2], owner), _overlaps(bounds[:, 1], bounds[:, 3], owner),
                         owner, len(geometry))
    return counts


def _fewer(x: np.ndarray, y: np.ndarray, owner: np.ndarray, count: int) -> np.ndarray:
    """Per owner, the smaller of its x-axis and y-axis totals."""
    return np.minimum(np.bincount(owner, weights=x, minlength=count), np.bincount(owner, weights=y, minlength=count))


def _overlaps(lo: np.ndarray, hi: np.ndarray, group: np.ndarray) -> np.ndarray:
    """For each interval [lo, hi], how many later intervals of its group (sorted by lo) start inside it."""
    order = np.lexsort((lo, group))
    g, low, high = group[order], lo[order], hi[order]
    first = np.flatnonzero(np.r_[True, g[1:] != g[:-1]])
    which = np.repeat(np.arange(len(first)), np.diff(np.r_[first, len(g)]))
    origin, span = low[first][which], (np.maximum.reduceat(high, first) - low[first])[which]
    with np.errstate(all="ignore"):       # a span beyond what a double holds reads as one point
        place = lambda v: which + 0.5 * np.clip(np.nan_to_num((v - origin) / np.where(span > 0, span, 1.0),
                                                              nan=1.0, posinf=1.0), 0.0, 1.0)
        starts, ends = place(low), place(high)
    counts = np.searchsorted(starts, ends, side="right") - np.arange(len(g)) - 1
    found = np.empty(len(g), dtype=np.int64)
    found[order] = counts
    return found


def _crossings(geometry: shapely.Geometry, most: int) -> int:
    """How many pairs of non-adjacent edges of one polygon meet (crossings and touches), counted
    until there are more than ``most``."""
    start, end, _, ring = _edges(np.array([geometry], dtype=object))
    if len(start) == 0:
        return 0
    lines = shapely.linestrings(np.stack([start, end], axis=1))
    tree, found = shapely.STRtree(lines), 0
    first = np.r_[0, np.flatnonzero(ring[1:] != ring[:-1]) + 1]
    ring_start = np.repeat(first, np.diff(np.r_[first, len(ring)]))
    ring_size = np.repeat(np.diff(np.r_[first, len(ring)]), np.diff(np.r_[first, len(ring)]))
    step = max(1, _PAIRS_PER_QUERY // len(lines))
    for begin in range(0, len(lines), step):
        a, b = tree.query(lines[begin:begin + step], predicate="intersects")
        a = a + begin
        later = a < b
        a, b = a[later], b[later]
        adjacent = (ring[a] == ring[b]) & ((b - a == 1) | ((a == ring_start[a]) & (b == a + ring_size[a] - 1)))
        found += int(np.count_nonzero(~adjacent))
        if found > most:
            break
    return found


def _outside_service_area(frame: gpd.GeoDataFrame, area: ServiceArea | None) -> list[Problem]:
    if area is None or frame.empty or area.intersects(frame.total_bounds):
        return []
    minx, miny, maxx, maxy = (round(float(v), 4) for v in frame.total_bounds)
    return [Problem(kind="outside_service_area", severity=Severity.WARNING, message=message(N_(
        "the file lies at ({minx}, {miny}) – ({maxx}, {maxy}), outside the service area {area}; check its "
        "coordinate reference system"), minx=minx, miny=miny, maxx=maxx, maxy=maxy, area=str(area)),
        location=_point(shapely.box(*frame.total_bounds)))]


def _point(geometry: shapely.Geometry) -> tuple[float, float]:
    point = shapely.point_on_surface(geometry)
    return (round(point.x, 7), round(point.y, 7))


def _reason_point(reason: str) -> tuple[float, float] | None:
    found = _POINT_IN_REASON.search(reason)
    return (round(float(found[1]), 7), round(float(found[2]), 7)) if found else None
