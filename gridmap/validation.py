"""The layer checks of the validation report: coverage and nesting.

Feature problems (geometry, codes, names) are found while reading the file
(:mod:`gridmap.feature_checks`); the checks here look at whole layers: coverage (gaps and
overlaps between the units of a level) and nesting (children crossing their parent,
parent land no child covers).  All areas are measured in an equal-area projection.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
from pyproj import CRS
from shapely.geometry.base import BaseGeometry

from .coordinates import equal_area_crs
from .errors import N_, message
from .layer import Layer
from .levels import Level
from .problems import Problem, Severity

log = logging.getLogger(__name__)

DEFAULT_TOLERANCE_M2 = 1.0

# ---------------------------------------------------------------------------------------------
# Layer checks: coverage (one level) and nesting (a level inside the level above)
# ---------------------------------------------------------------------------------------------

_NEAR_M = 0.001          # metres: closer than this is touching (see _touching)
LAYER_KINDS = ("overlap", "gap", "outside_parent", "uncovered_parent", "unknown_parent", "no_parent")


def check_coverage(layer: Layer, *, tolerance_m2: float = DEFAULT_TOLERANCE_M2) -> list[Problem]:
    """Overlaps (errors) and gaps (warnings) between the units of one level (按线划分、不漏一地).

    An ``overlap`` is land two units both claim, one problem per pair; a ``gap`` is land
    enclosed by the units that none covers (a hole in their union; a concave outline is not
    a gap).  A hole enclosed by a single unit, such as a lake that unit's ring goes around or a
    ring left by make_valid, is that unit's own shape and not a gap between units: whether
    the land must be covered is a question for the level above, where :func:`check_nesting`
    reports it as ``uncovered_parent`` land, so it is not reported twice.  Pieces of
    ``tolerance_m2`` or less are ignored; problems come by kind, then feature index and code.
    """
    if layer.units.empty:
        return []
    metric = _Metric.around(layer.units)
    units = _Units.of(layer.units, metric)
    valid = bool(shapely.coverage_is_valid(units.shapes))    # a valid coverage has no overlap
    union = _union(units.shapes, valid=valid)
    problems = ([] if valid else _overlaps(units, metric, tolerance_m2)) + _gaps(units, union, metric, tolerance_m2)
    log.info("coverage of %d %s units: %d problem(s)", len(units.codes), layer.level.value, len(problems))
    return _ordered(problems)


def check_nesting(child: Layer, parent: Layer, *, tolerance_m2: float = DEFAULT_TOLERANCE_M2) -> list[Problem]:
    """How the child units sit in the parent units their ``parent_code`` names.

    Warnings: a child crossing its parent's line (``outside_parent``), parent land none of its
    own children covers (``uncovered_parent``, the whole unit when it has no child), a child
    with no parent (``no_parent``).  Error: a child naming a code the parent layer lacks
    (``unknown_parent``).  Pieces of ``tolerance_m2`` or less are ignored; problems come by
    kind (in the order above), then feature index and code.
    """
    metric = _Metric.around(child.units, parent.units)
    kids, dads = _Units.of(child.units, metric), _Units.of(parent.units, metric)
    named = child.units["parent_code"].to_numpy(dtype=object)
    of = _positions(dads.codes, named)
    problems = _outside(kids, dads, of, metric, tolerance_m2) + _uncovered(kids, dads, of, metric, tolerance_m2)
    problems += _unknown(kids, named, of, parent.level) + _orphans(kids, named, child, parent.level)
    log.info("nesting of %d %s units in %d %s units: %d problem(s)", len(kids.codes), child.level.value,
             len(dads.codes), parent.level.value, len(problems))
    return _ordered(problems)


def _union(shapes: np.ndarray, *, valid: bool) -> BaseGeometry:
    """The land the units cover.  A valid coverage has a fast exact union; but GEOS can call a
    coverage valid whose edges do not quite match (a corner a hair off a neighbour's edge) and
    then fails or drops a gap, so that union is trusted only when its area is the units' total."""
    if valid:
        try:
            union = shapely.coverage_union_all(shapes)
        except shapely.errors.GEOSException:
            union = None
        if union is not None and abs(shapely.area(union) - shapely.area(shapes).sum()) <= _UNION_SLACK_M2:
            return union
        log.info("coverage union of %d units disagreed with their areas; using a full union", len(shapes))
    return shapely.union_all(shapes)


_UNION_SLACK_M2 = 0.01


@dataclass(frozen=True)
class _Metric:
    """The one equal-area projection a check measures in, and the way back to lon/lat."""

    crs: CRS

    @classmethod
    def around(cls, *frames: gpd.GeoDataFrame) -> _Metric:
        shapes = np.concatenate([frame.geometry.to_numpy() for frame in frames])
        return cls(equal_area_crs(gpd.GeoDataFrame(geometry=gpd.GeoSeries(shapes, crs=4326))))

    def project(self, frame: gpd.GeoDataFrame) -> np.ndarray:
        shapes = frame.geometry.to_crs(self.crs).to_numpy()
        broken = ~shapely.is_valid(shapes)          # projecting can make a near-touching ring cross
        shapes[broken] = _polygonal(shapely.make_valid(shapes[broken]))
        return shapes

    def lonlat(self, shapes: np.ndarray) -> np.ndarray:
        return gpd.GeoSeries(shapes, crs=self.crs).to_crs(4326).to_numpy()


@dataclass(frozen=True)
class _Units:
    """A layer's codes, file indexes and shapes in metres, as parallel arrays."""

    codes: np.ndarray
    features: np.ndarray
    shapes: np.ndarray

    @classmethod
    def of(cls, frame: gpd.GeoDataFrame, metric: _Metric) -> _Units:
        return cls(frame["code"].to_numpy(dtype=object), frame.index.to_numpy(), metric.project(frame))


@dataclass(frozen=True)
class _Piece:
    """A piece of land a check found: its size, a point on it (lon, lat) and its shape (WGS84)."""

    size_m2: float
    location: tuple[float, float]
    geometry: BaseGeometry


def _pieces(metric: _Metric, shapes: np.ndarray, tolerance_m2: float) -> tuple[np.ndarray, list[_Piece]]:
    """The shapes (in metres) larger than the tolerance: their positions, and each as a piece."""
    sizes = shapely.area(shapes)
    keep = np.flatnonzero(sizes > tolerance_m2)
    outlines = metric.lonlat(_polygonal(shapes[keep]))
    points = shapely.point_on_surface(outlines)
    lons, lats = np.round(shapely.get_x(points), 7), np.round(shapely.get_y(points), 7)
    return keep, [_Piece(float(size), (float(lon), float(lat)), outline)
                  for size, lon, lat, outline in zip(sizes[keep], lons, lats, outlines)]


def _polygonal(shapes: np.ndarray) -> np.ndarray:
    """Each shape's polygonal parts only: an intersection also holds the edges and corners shared."""
    parts, owner = shapely.get_parts(shapes, return_index=True)
    parts, within = shapely.get_parts(parts, return_index=True)    # a collection may hold multipolygons
    owner = owner[within]
    keep = shapely.get_type_id(parts) == 3
    out = np.full(len(shapes), shapely.Polygon(), dtype=object)
    shapely.multipolygons(parts[keep], indices=owner[keep], out=out)
    single = shapely.get_num_geometries(out) == 1
    out[single] = shapely.get_geometry(out[single], 0)
    return out


def _located(kind: str, severity: Severity, template: str, piece: _Piece, *, feature: int | None,
             code: str | None, codes: tuple[str, ...], **params: Any) -> Problem:
    """A problem about a piece of land; its message names the size and where it is."""
    lon, lat = piece.location
    text = message(template, code=code, area=round(piece.size_m2, 1), lon=round(lon, 6), lat=round(lat, 6),
                   **params)
    return Problem(kind, severity, text, feature=feature, code=code, location=piece.location,
                   size_m2=piece.size_m2, geometry=piece.geometry, codes=codes)


def _ordered(problems: list[Problem]) -> list[Problem]:
    """By kind (in the order of LAYER_KINDS), then feature index, code and the codes involved."""
    return sorted(problems, key=lambda p: (LAYER_KINDS.index(p.kind), p.feature is None, p.feature or 0,
                                           p.code or "", p.codes, p.location or ()))


def _overlaps(units: _Units, metric: _Metric, tolerance_m2: float) -> list[Problem]:
    """Every pair of units whose interiors share more than the tolerance, named first by file order."""
    first, second = _overlapping_pairs(units)
    keep, pieces = _pieces(metric, shapely.intersection(units.shapes[first], units.shapes[second]), tolerance_m2)
    return [_located("overlap", Severity.ERROR, N_("units {a} and {b} overlap by {area} m² near {lon}, {lat}"),
                     piece, feature=int(units.features[i]), code=units.codes[i],
                     codes=(units.codes[i], units.codes[j]), a=units.codes[i], b=units.codes[j])
            for i, j, piece in zip(first[keep], second[keep], pieces)]


def _overlapping_pairs(units: _Units) -> tuple[np.ndarray, np.ndarray]:
    """Candidates from an STRtree, each pair once, kept where the interiors meet in an area."""
    a, b = shapely.STRtree(units.shapes).query(units.shapes, predicate="intersects")
    once = units.features[a] < units.features[b]
    a, b = a[once], b[once]
    inner = shapely.relate_pattern(units.shapes[a], units.shapes[b], "2********")
    return a[inner], b[inner]


def _gaps(units: _Units, union: BaseGeometry, metric: _Metric, tolerance_m2: float) -> list[Problem]:
    """The holes of the union, one problem each, except holes enclosed by a single unit."""
    holes = _holes(union)
    around = _touching(units, holes)
    between = np.flatnonzero([len(codes) > 1 for codes in around])
    keep, pieces = _pieces(metric, holes[between], tolerance_m2)
    template = N_("a gap of {area} m² between units {units} near {lon}, {lat}: no unit covers it")
    return [_located("gap", Severity.WARNING, template, piece, feature=None, code=None,
                     codes=around[i], units=", ".join(around[i]))
            for i, piece in zip(between[keep], pieces)]


def _holes(union: BaseGeometry) -> np.ndarray:
    """The land inside each interior ring of the union, less the islands of the union inside it."""
    parts = shapely.get_parts(union)
    rings, owner = shapely.get_rings(parts, return_index=True)
    interior = np.r_[False, owner[1:] == owner[:-1]]           # each polygon's first ring is its shell
    holes = shapely.polygons(rings[interior])
    hole, island = shapely.STRtree(parts).query(holes, predicate="contains")
    filled = shapely.polygons(shapely.get_exterior_ring(parts[island]))   # an island's own holes are gaps of their own
    for h in np.unique(hole):
        holes[h] = shapely.difference(holes[h], shapely.union_all(filled[hole == h]))
    return holes


def _touching(units: _Units, shapes: np.ndarray) -> list[tuple[str, ...]]:
    """For each shape, the sorted codes of the units that touch it.

    Touching is taken within a millimetre: a hole's ring, noded from several units' edges,
    can miss the very edge it came from by float noise, so ``intersects`` would drop that unit.
    """
    shape, unit = shapely.STRtree(units.shapes).query(shapes, predicate="dwithin", distance=_NEAR_M)
    codes: list[list[str]] = [[] for _ in range(len(shapes))]
    for s, u in zip(shape, unit):
        codes[s].append(units.codes[u])
    return [tuple(sorted(found)) for found in codes]


def _outside(kids: _Units, dads: _Units, of: np.ndarray, metric: _Metric, tolerance_m2: float) -> list[Problem]:
    """The part of each child outside the parent it names."""
    linked = np.flatnonzero(of >= 0)
    keep, pieces = _pieces(metric, shapely.difference(kids.shapes[linked], dads.shapes[of[linked]]), tolerance_m2)
    template = N_("unit {code} lies {area} m² outside its parent {parent} near {lon}, {lat}")
    return [_located("outside_parent", Severity.WARNING, template, piece, feature=int(kids.features[i]),
                     code=kids.codes[i], codes=(kids.codes[i], dads.codes[of[i]]), parent=dads.codes[of[i]])
            for i, piece in zip(linked[keep], pieces)]


def _uncovered(kids: _Units, dads: _Units, of: np.ndarray, metric: _Metric, tolerance_m2: float) -> list[Problem]:
    """The land of each parent that none of its own children covers (不漏一地)."""
    groups = _children(of, len(dads.codes))
    covered = np.array([shapely.union_all(kids.shapes[group]) for group in groups], dtype=object)
    keep, pieces = _pieces(metric, shapely.difference(dads.shapes, covered), tolerance_m2)
    some = N_("{area} m² of unit {code} is covered by none of its child units, near {lon}, {lat}")
    none = N_("unit {code} has no child units: none of its {area} m² is covered (near {lon}, {lat})")
    return [_located("uncovered_parent", Severity.WARNING, some if len(groups[j]) else none, piece,
                     feature=int(dads.features[j]), code=dads.codes[j], codes=(dads.codes[j],))
            for j, piece in zip(keep, pieces)]


def _positions(codes: np.ndarray, named: np.ndarray) -> np.ndarray:
    """Each child's parent position, -1 for none or an unknown code.

    A code used twice (an error of its own, reported by the reader) names its first unit.
    """
    first: dict[str, int] = {}
    for position, code in enumerate(codes):
        first.setdefault(code, position)
    return np.array([first.get(code, -1) if isinstance(code, str) else -1 for code in named], dtype=np.intp)


def _children(of: np.ndarray, count: int) -> list[np.ndarray]:
    """The positions of each parent's children (``of`` holds each child's parent position)."""
    order = np.argsort(of, kind="stable")
    bounds = np.searchsorted(of[order], np.arange(count + 1))
    return [order[start:end] for start, end in zip(bounds[:-1], bounds[1:])]


def _unknown(kids: _Units, named: np.ndarray, of: np.ndarray, level: Level) -> list[Problem]:
    """Children naming a parent code the parent layer does not have: the link cannot be made."""
    template = N_("unit {code} names parent {parent}, which is not a {level} code")
    return [Problem("unknown_parent", Severity.ERROR, message(template, code=kids.codes[i], parent=named[i],
                                                                level=level.value),
                    feature=int(kids.features[i]), code=kids.codes[i], codes=(kids.codes[i], named[i]))
            for i in np.flatnonzero((of < 0) & pd.notna(named))]


def _orphans(kids: _Units, named: np.ndarray, child: Layer, level: Level) -> list[Problem]:
    """Children with no parent: outside every parent unit (spatial link) or named none (file)."""
    template = (N_("unit {code} lies outside every {level} unit and has no parent") if child.parent_source == "spatial"
                else N_("unit {code} names no parent {level} unit"))
    return [Problem("no_parent", Severity.WARNING, message(template, code=kids.codes[i], level=level.value),
                    feature=int(kids.features[i]), code=kids.codes[i], codes=(kids.codes[i],))
            for i in np.flatnonzero(pd.isna(named))]
