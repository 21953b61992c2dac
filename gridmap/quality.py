"""Data-quality guards: incidents stacked on one exact coordinate.

When a report's address cannot be geocoded, many systems put it on a placeholder — a city-hall
or district-office centroid.  Boston's 2015 requests hold 1,557 of 20,981 on one coordinate (the
next busiest holds 47).  Such a pile is not where problems are: drawn, it is the brightest spot
of the heat map and the strongest hot spot.  A coordinate is *stacked* when it holds at least
:data:`STACK_MIN` incidents and :data:`STACK_FACTOR` times what the 99th percentile of
coordinates holds — a rule on the data's own spread, so a block that really gets many reports
(or a file whose coordinates are rounded to a few metres) is not taken for a placeholder.

Points near an edge, within the coordinates' precision: *ambiguous* points.  A coordinate written
with few decimals says only that the incident lies in a small box: ``114.1225, 30.0544`` (4
decimals) is anywhere within ±0.00005° (±4.8 m of longitude, ±5.5 m of latitude there).  When a
unit edge passes through that box, the assignment (``covers`` plus the tie-break, see
:mod:`gridmap.assignment`) could have gone either way, and a planner comparing two neighbouring
micro-grids should know how many of their incidents sit on the line between them.  Precision
varies by source: a street office's phones often round to 5–6 decimals (±0.05–0.5 m), Boston's
2015 311 file writes 4 (its ``LATITUDE`` column: 91 % of values show 4 decimals, the rest fewer,
the trailing zeros dropped), a geocoder or a projection writes full-precision floats.

* The decimals of a coordinate are the fewest that give back the same float: those of its
  shortest round-trip text (``repr``), found on whole arrays by rounding, see
  :func:`coordinate_decimals`.  A float needing :data:`EXACT_DIGITS` significant digits or more
  was computed, not typed, and counts as exact (``0.1 + 0.2``; a reprojected point).
* A point's box is half a unit of its last decimal either way, in degrees, with the *more*
  decimals of its lon and lat on both axes: a source writes both with the same decimals, and a
  coordinate that happens to end in zero (one in ten at 4 decimals) would otherwise get a box ten
  times too wide; with the max, only a point whose lon and lat both end in zero does (one in a
  hundred).  A file padding every value with zeros, or one whose decimals say nothing (integers),
  is given an explicit precision in metres instead (``precision_m``), which replaces inference.
* A point is ambiguous when the units covering a point are not the same all over its box: some
  unit touches the box without covering all of it.  Its codes are every unit the (closed) box
  touches, and ``None`` where part of the box lies outside every unit.  A box touching a shared
  edge from one side counts (the points on the edge go by the tie-break, not by where they are);
  a box touching the layer's outer edge from inside does not (every point of it is in the one
  unit); an exact point has no box and is never ambiguous, even on an edge.

A point far from every edge is ruled out without a geometry: a raster of the cells within reach
of a boundary answers for most points by a lookup; only the points in those cells are tested
exactly, as boxes, against the units (shapely STRtree, ``intersects`` and ``covers``).
"""
from __future__ import annotations

import logging
import math
from dataclasses import dataclass

import numpy as np
import shapely
from numpy.typing import ArrayLike

from .layer import Layer

log = logging.getLogger(__name__)

#: The fewest incidents a stacked coordinate holds.
STACK_MIN = 50
#: How many times the 99th percentile of incidents per coordinate a stacked one holds.
STACK_FACTOR = 10
QUANTILE = 0.99


@dataclass(frozen=True)
class Stacks:
    """The stacked coordinates, busiest first, and the threshold they passed."""

    lon: np.ndarray
    lat: np.ndarray
    count: np.ndarray
    threshold: int

    def __len__(self) -> int:
        return len(self.count)


def stacked_points(lon: np.ndarray, lat: np.ndarray, *, minimum: int = STACK_MIN,
                   factor: float = STACK_FACTOR) -> Stacks:
    """The coordinates (exactly equal lon and lat) holding at least ``minimum`` incidents and
    ``factor`` times the 99th percentile of incidents per coordinate."""
    x, y = np.asarray(lon, dtype=float), np.asarray(lat, dtype=float)
    known = np.isfinite(x) & np.isfinite(y)
    if not known.any():
        return Stacks(np.empty(0), np.empty(0), np.empty(0, dtype=np.int64), minimum)
    # each coordinate as one complex number: one sort (5× faster than unique rows of a 2-column array)
    found, counts = np.unique(x[known] + 1j * y[known], return_counts=True)
    where = np.column_stack([found.real, found.imag])
    # the count at or below the 99th percentile (not interpolated up towards the piles themselves)
    threshold = max(minimum, int(np.ceil(factor * np.quantile(counts, QUANTILE, method="lower"))))
    busy = np.flatnonzero(counts >= threshold)
    order = busy[np.lexsort((where[busy, 1], where[busy, 0], -counts[busy]))]
    return Stacks(where[order, 0], where[order, 1], counts[order].astype(np.int64), threshold)


# -- points near an edge, within the coordinates' precision ---------------------------------

#: Significant digits from which a coordinate counts as exact: a computed float, not a typed one.
EXACT_DIGITS = 15
_MOST_DECIMALS = 17           # a double's shortest text never needs more digits than this
_POWERS = 10.0 ** np.arange(-18, 17)      # integer digits of |x| by lookup: 10^(k-18) for index k
_WGS84_A, _WGS84_E2 = 6_378_137.0, 0.006_694_379_990_14
_CELLS_ACROSS = 4096          # raster cells along its longer side at most (≤ 16 MiB of booleans)
_MAX_SAMPLES = 1 << 21        # boundary samples at most: a longer boundary gets larger cells
_REACH_CELLS = 8              # boxes up to this many cells across are ruled out by the raster
_REACH_SHARE = 0.95           # the share of the boxes (the narrowest) the raster answers for
_PAIRS_PER_RUN = 1 << 20      # (box, unit) pairs, about, worked out together


@dataclass(frozen=True)
class Ambiguous:
    """The points whose precision box meets a unit edge, and the unit codes each box touches.

    ``index``: the ambiguous points' positions in the input, ascending.  Points written alike
    share one box (at 3 decimals a city has some tens of thousands at most): ``box[i]`` is
    the box of ``index[i]``, and box ``k`` touches the units ``codes[offsets[k]:offsets[k + 1]]``,
    in plain string order with ``None`` (outside every unit) last; :meth:`touched` reads them.
    ``dx`` and ``dy``: every input point's box, half its width in degrees of longitude and of
    latitude (0: exact; NaN: no coordinate); ``precision_m``: the explicit precision that replaced
    inference, if one did.
    """

    index: np.ndarray
    box: np.ndarray
    offsets: np.ndarray
    codes: np.ndarray
    dx: np.ndarray
    dy: np.ndarray
    precision_m: float | None = None

    def __len__(self) -> int:
        return len(self.index)

    def touched(self, i: int) -> tuple[str | None, ...]:
        """The codes that the box of the ``i``-th ambiguous point (``index[i]``) touches."""
        k = self.box[i]
        return tuple(self.codes[self.offsets[k]:self.offsets[k + 1]])

    @property
    def mask(self) -> np.ndarray:
        """True for each input point that is ambiguous."""
        mask = np.zeros(len(self.dx), dtype=bool)
        mask[self.index] = True
        return mask


def coordinate_decimals(values: ArrayLike) -> np.ndarray:
    """How many decimals each value was written with: the fewest giving back the same float.

    ``inf`` for a value needing :data:`EXACT_DIGITS` significant digits or more (exact), NaN for
    a missing one.  The same count as the decimals of ``np.format_float_positional(x,
    unique=True)``: ``rint(x·10^d) / 10^d`` is the float nearest a d-decimal number, so it equals
    ``x`` only when d decimals give ``x`` back, and it does whenever they do and ``x`` has fewer
    than 15 significant digits (``x·10^d`` is then within 0.2 of the integer it rounds to).
    """
    x = np.asarray(values, dtype=float)
    decimals = np.where(np.isfinite(x), np.inf, np.nan)
    flat = x.ravel()
    todo = np.flatnonzero(np.abs(flat) < 1e15)          # NaN compares False; larger ones are exact
    for d in range(_MOST_DECIMALS + 1):
        scale = 10.0 ** d
        value = flat[todo]
        found = np.rint(value * scale) / scale == value
        decimals.flat[todo[found]] = d
        todo = todo[~found]
        if len(todo) == 0:
            break
    digits = np.searchsorted(_POWERS, np.abs(x), side="right") - 18 + decimals   # NaN stays NaN
    return np.where(digits >= EXACT_DIGITS, np.inf, decimals)


def coordinate_precision(lon: ArrayLike, lat: ArrayLike, *,
                         precision_m: float | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Each point's box, as half its width in degrees of longitude and of latitude.

    Inferred: half a unit of the last decimal of the lon or lat written with more decimals, on
    both axes (0 for an exact point).  ``precision_m`` replaces inference: that many metres either
    way on the WGS84 ellipsoid at the point's latitude.  NaN where a coordinate is missing.
    """
    x, y = np.asarray(lon, dtype=float), np.asarray(lat, dtype=float)
    known = np.isfinite(x) & np.isfinite(y)
    if precision_m is None:
        half = np.where(known, 0.5 * 10.0 ** -np.maximum(coordinate_decimals(x), coordinate_decimals(y)), np.nan)
        return half, half.copy()
    if not (math.isfinite(precision_m) and precision_m >= 0):
        raise ValueError(f"expected a precision in metres of 0 or more, got {precision_m!r}")
    phi = np.radians(np.where(known, y, np.nan))
    w = np.sqrt(1 - _WGS84_E2 * np.sin(phi) ** 2)       # meridian radius a(1-e²)/w³, normal a/w
    per_degree_lat = math.radians(_WGS84_A * (1 - _WGS84_E2)) / w ** 3
    per_degree_lon = math.radians(_WGS84_A) * np.cos(phi) / w
    return precision_m / per_degree_lon, precision_m / per_degree_lat


def ambiguous_points(lon: ArrayLike, lat: ArrayLike, layer: Layer, *,
                     precision_m: float | None = None) -> Ambiguous:
    """The points whose precision box (:func:`coordinate_precision`) meets an edge of the
    layer's units so that another point of the box would be held by other units; with the codes
    of the units each box touches (``None`` for outside every unit).  Missing coordinates and
    exact points are never ambiguous."""
    x, y = np.asarray(lon, dtype=float).ravel(), np.asarray(lat, dtype=float).ravel()
    dx, dy = (half.ravel() for half in coordinate_precision(x, y, precision_m=precision_m))
    units = _units(layer)
    boxed = np.flatnonzero((dx > 0) & (dy > 0))          # NaN compares False: missing points drop out
    boxed = boxed[_near_edges(units, x[boxed], y[boxed], np.maximum(dx[boxed], dy[boxed]))]
    # points written alike have one box (and one answer): each distinct coordinate is tested once
    where, first, alike = np.unique(x[boxed] + 1j * y[boxed], return_index=True, return_inverse=True)
    box, unit, boxes = _uneven(units, where.real, where.imag, dx[boxed][first], dy[boxed][first])
    outside = ~shapely.covers(_union(units, unit), boxes)
    log.debug("%d points, %d tested as %d boxes, %d boxes ambiguous", len(x), len(boxed), len(where), len(boxes))
    return _assemble(layer, boxed, alike.ravel(), box, unit, outside, dx, dy, precision_m)


def _units(layer: Layer) -> np.ndarray:
    """Copies of the units' geometries, prepared; a missing or empty one as None (it holds no point).
    Copies: GEOS builds a prepared polygon's indexes lazily and not thread-safely, and the layer's own
    geometries are shared with the assignment index and other requests (two requests at once for a
    district's edge points segfaulted in ``intersects``).  A WKB round trip is exact."""
    geometries = shapely.from_wkb(shapely.to_wkb(np.array(layer.units.geometry.values, dtype=object)))
    geometries[shapely.is_missing(geometries) | shapely.is_empty(geometries)] = None
    shapely.prepare(geometries)
    return geometries


def _uneven(units: np.ndarray, x: np.ndarray, y: np.ndarray, dx: np.ndarray,
            dy: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(box, unit) for every unit touching a box that some unit touches without covering all of
    it, and those boxes, in order.  Done in runs of boxes that reach about ``_PAIRS_PER_RUN`` units
    together, so that wide boxes (2 decimals: ±500 m, dozens of units each) take bounded memory."""
    tree = shapely.STRtree(units)
    found = []
    for run in _runs(units, dx, dy):
        boxes = shapely.box(x[run] - dx[run], y[run] - dy[run], x[run] + dx[run], y[run] + dy[run])
        box, unit = tree.query(boxes)
        touching = shapely.intersects(units[unit], boxes[box])
        box, unit = box[touching], unit[touching]
        uneven = np.zeros(len(boxes), dtype=bool)
        uneven[box[~shapely.covers(units[unit], boxes[box])]] = True
        keep = uneven[box]
        found.append((box[keep] + run.start, unit[keep], boxes[uneven]))
    if not found:
        return np.empty(0, dtype=np.intp), np.empty(0, dtype=np.intp), np.empty(0, dtype=object)
    box, unit, boxes = (np.concatenate(part) for part in zip(*found))
    return box, unit, boxes


def _runs(units: np.ndarray, dx: np.ndarray, dy: np.ndarray) -> list[slice]:
    """Runs of boxes reaching about ``_PAIRS_PER_RUN`` units together, judged by the median unit."""
    if len(dx) == 0:
        return []
    bounds = shapely.bounds(units[~shapely.is_missing(units)])
    width, height = (np.median(bounds[:, 2 + axis] - bounds[:, axis]) if len(bounds) else 1.0 for axis in (0, 1))
    reached = np.cumsum((1 + 2 * dx / max(width, 1e-12)) * (1 + 2 * dy / max(height, 1e-12)))
    cuts = np.searchsorted(reached, np.arange(_PAIRS_PER_RUN, reached[-1], _PAIRS_PER_RUN)) + 1
    edges = np.unique(np.concatenate([[0], cuts, [len(dx)]]))
    return [slice(int(a), int(b)) for a, b in zip(edges[:-1], edges[1:])]


def _union(units: np.ndarray, unit: np.ndarray) -> shapely.Geometry:
    """The union of the units touching an ambiguous box: where it misses part of a box, that part
    lies outside every unit (the others do not reach the box)."""
    union = shapely.union_all(units[np.unique(unit)])
    shapely.prepare(union)
    return union


def _assemble(layer: Layer, boxed: np.ndarray, alike: np.ndarray, box: np.ndarray, unit: np.ndarray,
              outside: np.ndarray, dx: np.ndarray, dy: np.ndarray, precision_m: float | None) -> Ambiguous:
    """The ambiguous points with their box, and the codes each ambiguous box touches as one run
    in plain string order (``None`` last).  ``alike``: each boxed point's distinct coordinate;
    ``box``: the distinct coordinate of each (box, unit) pair."""
    found, order = np.unique(layer.units["code"].to_numpy(dtype=object).astype(str), return_inverse=True)
    named = np.array([*found.tolist(), None], dtype=object)
    ambiguous = np.unique(box)
    renumbered = np.full(int(alike.max(initial=-1)) + 1, -1, dtype=np.int64)
    renumbered[ambiguous] = np.arange(len(ambiguous))
    group = renumbered[alike]
    point = np.concatenate([renumbered[box], np.flatnonzero(outside)])
    rank = np.concatenate([order.ravel()[unit], np.full(int(outside.sum()), len(found))])
    pair = np.unique(point * (len(found) + 1) + rank)          # sorted by box, then code; once each
    point, rank = np.divmod(pair, len(found) + 1)
    offsets = np.searchsorted(point, np.arange(len(ambiguous) + 1), side="left").astype(np.int64)
    return Ambiguous(index=boxed[group >= 0], box=group[group >= 0], offsets=offsets, codes=named[rank],
                     dx=dx, dy=dy, precision_m=precision_m)


# -- the raster of cells near a boundary ----------------------------------------------------

def _near_edges(units: np.ndarray, x: np.ndarray, y: np.ndarray, reach: np.ndarray) -> np.ndarray:
    """False for each point whose box (``reach`` degrees either way) cannot meet a unit boundary;
    True for the rest, to be tested exactly.

    The boundaries are sampled every cell's width (``h``) along each segment and the cells
    holding a sample are marked, then widened by ``r`` cells.  A box meeting a boundary at ``q``
    has its centre within ``reach`` of ``q`` (per axis) and ``q`` lies within ``h / 2`` of a
    sample, so the centre's cell is at most ``ceil((reach + h/2) / h) ≤ r`` cells from a marked
    one.  Cells are at least 1e-7 of the largest coordinate wide, so the arithmetic errors
    (< 1e-8 cells) stay far below the 1e-6 cells kept in hand.
    """
    start, end = _segments(units)
    if len(x) == 0 or len(start) == 0:
        return np.zeros(len(x), dtype=bool)
    low, high = np.minimum(start.min(axis=0), end.min(axis=0)), np.maximum(start.max(axis=0), end.max(axis=0))
    span = np.maximum(high - low, 1e-9)
    length = float(np.abs(end - start).max(axis=1).sum())
    h = max(float(span.max()) / _CELLS_ACROSS, length / _MAX_SAMPLES, 1e-7 * max(1.0, float(np.abs(high).max()),
                                                                               float(np.abs(low).max())))
    # the raster answers for all but the widest boxes: the one point in a hundred whose lon and lat
    # both end in zero would otherwise widen the band for every point
    within = reach <= min(float(np.quantile(reach, _REACH_SHARE, method="higher")), _REACH_CELLS * h)
    if not within.any():
        return np.ones(len(x), dtype=bool)
    r = int((float(reach[within].max()) + h / 2) / h + 1e-6) + 1
    origin = low - (r + 1) * h
    shape = (int(span[1] / h) + 2 * r + 4, int(span[0] / h) + 2 * r + 4)
    return ~within | _lookup(_widened(_marked(start, end, origin, h, shape), r), origin, h, x, y)


def _segments(units: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Start and end of every segment of every ring of the units."""
    present = units[~shapely.is_missing(units)]
    coords, ring = shapely.get_coordinates(shapely.get_rings(shapely.get_parts(present)), return_index=True)
    same = ring[1:] == ring[:-1]
    return coords[:-1][same], coords[1:][same]


def _marked(start: np.ndarray, end: np.ndarray, origin: np.ndarray, h: float, shape: tuple[int, int]) -> np.ndarray:
    """The cells holding a sample of a segment, samples at most ``h`` apart along each axis."""
    delta = end - start
    pieces = np.maximum(np.ceil(np.abs(delta).max(axis=1) / h), 1).astype(np.intp)
    segment = np.repeat(np.arange(len(start)), pieces + 1)
    step = np.arange(len(segment)) - np.repeat(np.cumsum(pieces + 1) - (pieces + 1), pieces + 1)
    t = step / pieces[segment]
    col = ((start[segment, 0] + delta[segment, 0] * t - origin[0]) / h).astype(np.intp)
    row = ((start[segment, 1] + delta[segment, 1] * t - origin[1]) / h).astype(np.intp)
    marked = np.zeros(shape, dtype=bool)
    marked[row, col] = True
    return marked


def _widened(marked: np.ndarray, r: int) -> np.ndarray:
    """The cells within ``r`` cells (on each axis) of a marked one, by shifted copies: rows, then
    columns (15× faster than ``ndimage.maximum_filter`` for the usual r of 1 or 2)."""
    rows = marked.copy()
    for k in range(1, r + 1):
        rows[k:] |= marked[:-k]
        rows[:-k] |= marked[k:]
    wide = rows.copy()
    for k in range(1, r + 1):
        wide[:, k:] |= rows[:, :-k]
        wide[:, :-k] |= rows[:, k:]
    return wide


def _lookup(near: np.ndarray, origin: np.ndarray, h: float, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """The raster's answer for each point; False beyond it (no boundary within reach)."""
    u, v = (x - origin[0]) / h, (y - origin[1]) / h
    inside = (u >= 0) & (u < near.shape[1]) & (v >= 0) & (v < near.shape[0])
    answer = np.zeros(len(x), dtype=bool)
    answer[inside] = near[v[inside].astype(np.intp), u[inside].astype(np.intp)]
    return answer


def edge_pairs(found: Ambiguous, *, top: int = 20) -> list[tuple[tuple[str | None, ...], int]]:
    """The units the ambiguous points sit between (the codes their boxes touch), with how many
    points each such group holds, the largest first (then by codes): where a boundary runs along a
    street the geocoder puts reports on."""
    per_box = np.bincount(found.box, minlength=len(found.offsets) - 1) if len(found) else np.empty(0, dtype=int)
    groups: dict[tuple[str | None, ...], int] = {}
    for k in np.flatnonzero(per_box).tolist():
        codes = tuple(found.codes[found.offsets[k]:found.offsets[k + 1]])
        groups[codes] = groups.get(codes, 0) + int(per_box[k])
    ranked = sorted(groups.items(), key=lambda item: (-item[1], [str(c) for c in item[0]]))
    return ranked[:top]
