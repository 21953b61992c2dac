"""Assignment: which unit of each level holds each incident (the spatial join).

The rule, applied level by level from the largest to the smallest:

1. a unit *holds* a point when it ``covers`` it (interior or boundary), so a point on
   an edge or a vertex is never lost;
2. when several units of one level hold the point (a shared edge or vertex, or an
   overlap in a messy file), the point goes to exactly one of them: first the one
   whose parent is the unit the point got at the level above (so the chain stays
   consistent), then the one with the smallest code in plain string order;
3. a point held by no unit of a level gets ``None`` there and is flagged unassigned.

The *exact path* applies the rule on whole arrays (shapely 2 STRtree, ``covers``, numpy), one
pass per level, split across the cores (shapely releases the GIL).  It is the reference, and it
answers every point while the index is new: a one-off index for a few points builds no raster.

For large batches a *label raster* answers most points by a table lookup: square lon/lat cells
over the layers' extent (plus one cell of margin); every cell that a boundary of any level crosses
is marked; each 4-connected region of unmarked cells avoids every boundary, so it lies in one face
of the boundaries' arrangement, where every unit's ``covers`` (and so the rule) has one answer.
One representative point per region goes through the exact path; a point in an unmarked cell
gets its region's answers, a point in a marked cell goes through the exact path, a point beyond
the raster is outside every unit's bounds.  Why it is exact, see :func:`_crossed_cells`.  The
raster is built (≈ 0.3 s and 32 MiB for 10,000 micro-grids) once the points asked for would have
cost about as much on the exact path; ``locate`` answers one point from it in a few µs.
"""
from __future__ import annotations

import logging
import math
import os
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np
import shapely
from scipy import ndimage

from .layer import Layer
from .levels import Level

log = logging.getLogger(__name__)

_MAX_CELLS = 1 << 24          # raster cells at most (a uint16 raster: 32 MiB)
_CROSSED_SHARE = 0.02         # aim: boundary cells about this share of the raster, if the cap allows
_STEP = 0.9                   # boundary pieces span at most this many cells per axis (so ≤ 2×2 cells)
_SLACK = 1e-3                 # cells; far above the rounding of the cell arithmetic (< 1e-8 cells)
_RASTER_AFTER = 10_000        # points asked for (a locate counting _LOCATE_COST) before a raster is
_CELLS_PER_POINT = 64         # weighed; built once they reach cells / this (its build ≈ their exact path)
_LOCATE_COST = 20
_PARALLEL_MIN = 20_000        # exact points worth splitting across threads
_WORKERS = max(1, min(4, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else 1))
_POLYGONAL = (3, 6)           # shapely type ids of Polygon and MultiPolygon
_WARM_USES = 3                # covers per polygon before threads share it (see ready_for_threads): GEOS
                              # 3.14 needs 2; the 3rd, ≈ 2.5 ms per 10,000 polygons, is a margin


@dataclass(frozen=True)
class _LevelIndex:
    level: Level
    geometries: np.ndarray
    codes: np.ndarray        # object array of str
    code_rank: np.ndarray    # position of each code in sorted order
    tree: shapely.STRtree
    code_ids: np.ndarray     # an id per distinct code, behind a -1 for "no unit": code_ids[position + 1]
    parent_ids: np.ndarray   # the id of each parent code at the level above; -1 None, -2 unknown
    named: np.ndarray        # codes with None in front: named[position + 1], -1 → None


@dataclass(frozen=True)
class _Raster:
    """Square cells of ``1 / scale`` degrees from (x0, y0); ``cells`` holds each cell's face, 0 where
    a boundary crosses the cell; ``answers[level, face]`` is the unit position (-1 none)."""

    x0: float
    y0: float
    scale: float
    cells: np.ndarray
    answers: np.ndarray
    nobody: int              # the face of points beyond the raster

    @property
    def nbytes(self) -> int:
        return int(self.cells.nbytes + self.answers.nbytes)

    def faces(self, lon: np.ndarray, lat: np.ndarray) -> np.ndarray:
        """The face of each point; 0 for a point in a crossed cell or with a non-finite coordinate."""
        ny, nx = self.cells.shape
        u, v = (lon - self.x0) * self.scale, (lat - self.y0) * self.scale   # the cell formula, see _cell
        beyond = ~((u >= 0) & (u < nx) & (v >= 0) & (v < ny))
        if beyond.any():
            u[beyond], v[beyond] = 0, 0
        faces = self.cells.ravel()[v.astype(np.intp) * nx + u.astype(np.intp)]
        if beyond.any():
            faces[beyond] = self.nobody
            faces[~(np.isfinite(lon) & np.isfinite(lat))] = 0
        return faces

    def face(self, lon: float, lat: float) -> int:
        """:meth:`faces` for one point, in plain Python floats (the same IEEE arithmetic)."""
        ny, nx = self.cells.shape
        u, v = (lon - self.x0) * self.scale, (lat - self.y0) * self.scale
        if 0 <= u < nx and 0 <= v < ny:
            return int(self.cells.item(int(v), int(u)))
        return self.nobody if math.isfinite(lon) and math.isfinite(lat) else 0


class AssignmentIndex:
    """Spatial indexes over a set of layers, built once and reused for every assignment.

    ``raster``: True builds the label raster now, False never; None (the default) builds it once
    enough points have been asked for to pay for it (about 0.3 s for 10,000 micro-grids), so a
    one-off index for a few points costs no more than its trees.
    """

    def __init__(self, layers: Sequence[Layer], *, raster: bool | None = None) -> None:
        ordered = sorted(layers, key=lambda layer: layer.level.depth)
        self._levels: list[_LevelIndex] = []
        for layer in ordered:
            self._levels.append(_index(layer, self._levels[-1] if self._levels else None))
        for index in self._levels:
            shapely.prepare(index.geometries)
        self._raster: _Raster | None = None
        self._frame: _Frame | None = None
        self._asked = 0 if raster is None else (1 << 62 if raster else -1)    # -1: no raster
        self._lock = threading.RLock()
        self._warm = False
        self._face_codes: list[dict[Level, str | None]] | None = None
        if raster:
            self._raster_for(0)

    @property
    def raster_bytes(self) -> int:
        """Memory held by the label raster (0 while there is none)."""
        return self._raster.nbytes if self._raster is not None else 0

    def assign(self, lon: np.ndarray, lat: np.ndarray) -> dict[Level, np.ndarray]:
        """The code of the unit holding each point, per level (``None`` where no unit does)."""
        found = self._positions(np.asarray(lon, dtype=float), np.asarray(lat, dtype=float))
        return {index.level: index.named[row + 1] for index, row in zip(self._levels, found)}

    def positions(self, lon: np.ndarray, lat: np.ndarray) -> dict[Level, np.ndarray]:
        """The row position (in the layer's ``units``) of the unit holding each point, -1 where none."""
        found = self._positions(np.asarray(lon, dtype=float), np.asarray(lat, dtype=float))
        return {index.level: row.astype(np.int64) for index, row in zip(self._levels, found)}

    def locate(self, lon: float, lat: float) -> dict[Level, str | None]:
        """One point's unit codes: ``assign`` for a single point, at the cost of a table lookup."""
        raster = self._raster_for(_LOCATE_COST)
        if raster is not None:
            face = raster.face(float(lon), float(lat))
            if face:
                return dict(self._codes_of_faces(raster)[face])
        found = _exact_one(self._levels, float(lon), float(lat))
        return {index.level: index.named[position + 1] for index, position in zip(self._levels, found)}

    def _positions(self, lon: np.ndarray, lat: np.ndarray) -> np.ndarray:
        """(levels, points) unit positions, -1 where no unit holds the point."""
        if lon.shape != lat.shape or lon.ndim != 1:
            lon, lat = np.broadcast_arrays(lon, lat)
            lon, lat = lon.ravel(), lat.ravel()
        if len(lon) >= _PARALLEL_MIN:
            self.ready_for_threads()
        raster = self._raster_for(len(lon))
        if raster is None:
            return _in_parallel(lambda s: _exact(self._levels, lon[s], lat[s]), len(lon), len(self._levels))
        faces = raster.faces(lon, lat)
        found = np.stack([row.take(faces) for row in raster.answers])    # 6× faster than answers[:, faces]
        crossed = np.flatnonzero(faces == 0)
        if len(crossed):
            found[:, crossed] = _in_parallel(lambda s: _exact(self._levels, lon[crossed[s]], lat[crossed[s]]),
                                             len(crossed), len(self._levels))
        return found

    def _raster_for(self, points: int) -> _Raster | None:
        """The raster, built first if the points asked for so far (with these) have earned it."""
        if self._raster is not None or self._asked < 0:
            return self._raster
        with self._lock:
            if self._raster is None and self._asked >= 0:
                self._asked += points
                if self._asked >= _RASTER_AFTER:
                    self._frame = self._frame or _frame(self._levels)
                    if self._frame is None:
                        self._asked = -1
                    elif self._asked >= self._frame.cells // _CELLS_PER_POINT:
                        self.ready_for_threads()
                        self._raster = _build_raster(self._levels, self._frame)
        return self._raster

    def build_raster(self) -> None:
        """Build the label raster now (a server that will answer many lookups: about 0.3 s and
        32 MiB for 10,000 micro-grids), whatever has been asked so far."""
        self._raster_for(1 << 62)

    def ready_for_threads(self) -> None:
        """Build, here and once, what GEOS builds lazily and not thread-safely (libgeos/geos#825)
        in a prepared polygon the threads will share.

        A prepared polygon's point locator comes in two steps (GEOS 3.14.1, shapely 2.2): the
        first ``covers`` of a point in its bounds makes a plain ring-scanning locator, the
        *second* makes the indexed locator (and its segment index); each is stored unlocked.  Two
        threads making one at once each store their own, and the second store deletes the
        locator the first thread is still using: heap corruption ("double free or corruption",
        "malloc(): unsorted double linked list corrupted"), now or at exit.  So every polygon is
        used :data:`_WARM_USES` times here, each time with a point in its bounds (a point outside
        them, or any point in a rectangle, is answered from the bounds and reaches no locator)."""
        with self._lock:
            if not self._warm:
                for index in self._levels:
                    box = shapely.bounds(index.geometries)
                    centres = shapely.points((box[:, 0] + box[:, 2]) / 2, (box[:, 1] + box[:, 3]) / 2)
                    for _ in range(_WARM_USES):
                        shapely.covers(index.geometries, centres)
                    index.tree.query(shapely.points(0.0, 0.0))
                self._warm = True

    def _codes_of_faces(self, raster: _Raster) -> list[dict[Level, str | None]]:
        if self._face_codes is None:
            columns = [index.named[row + 1] for index, row in zip(self._levels, raster.answers)]
            levels = [index.level for index in self._levels]
            self._face_codes = [dict(zip(levels, codes)) for codes in zip(*columns)]
        return self._face_codes


def _index(layer: Layer, above: _LevelIndex | None) -> _LevelIndex:
    geometries = layer.units.geometry.to_numpy()
    codes = layer.units["code"].to_numpy(dtype=object)
    ids: dict[object, int] = {}
    code_ids = np.array([-1] + [ids.setdefault(code, len(ids)) for code in codes], dtype=np.int64)
    known = {} if above is None else dict(zip(above.codes, above.code_ids[1:]))
    parent_ids = np.array([-1 if p is None else known.get(p, -2) for p in layer.units["parent_code"]], dtype=np.int64)
    return _LevelIndex(level=layer.level, geometries=geometries, codes=codes,
                       code_rank=np.argsort(np.argsort(codes.astype(str), kind="stable")),
                       tree=shapely.STRtree(geometries), code_ids=code_ids, parent_ids=parent_ids,
                       named=np.concatenate([np.array([None], dtype=object), codes]))


# -- the exact path ------------------------------------------------------------------------

def _exact(levels: Sequence[_LevelIndex], lon: np.ndarray, lat: np.ndarray) -> np.ndarray:
    """(levels, points) positions by the rule itself: ``covers`` on every candidate, then the tie-break."""
    points = shapely.points(lon, lat)
    found = np.empty((len(levels), len(points)), dtype=np.int64)
    for k, index in enumerate(levels):
        pt, unit = _holding_pairs(index, points)
        above = None if k == 0 else levels[k - 1].code_ids[found[k - 1] + 1]
        found[k] = _choose(index, pt, unit, len(points), above)
    return found


def _exact_one(levels: Sequence[_LevelIndex], lon: float, lat: float) -> list[int]:
    """:func:`_exact` for one point, without the array machinery a batch needs (5× faster)."""
    point = shapely.Point(lon, lat)
    found: list[int] = []
    above = None
    for index in levels:
        candidates = index.tree.query(point)
        held = candidates[shapely.covers(index.geometries[candidates], point)].tolist()
        if above is None:
            chosen = min(held, key=lambda u: index.code_rank[u], default=-1)
        else:
            chosen = min(held, key=lambda u: (index.parent_ids[u] != above, index.code_rank[u]), default=-1)
        found.append(chosen)
        above = index.code_ids[chosen + 1]
    return found


def _holding_pairs(index: _LevelIndex, points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """All (point, unit) pairs where the unit covers the point.

    The tree gives bounding-box candidates; ``covers`` then runs on the polygons, which are
    prepared once (a predicate in ``tree.query(points, …)`` would prepare each point instead).
    """
    pt, unit = index.tree.query(points)
    held = shapely.covers(index.geometries[unit], points[pt])
    return pt[held], unit[held]


def _choose(index: _LevelIndex, pt: np.ndarray, unit: np.ndarray, n: int,
            above: np.ndarray | None) -> np.ndarray:
    """One unit per point by the documented tie-break; -1 where no unit holds the point.

    ``above`` is the code id of the unit each point got at the level above (-1 none): a holder
    whose parent is that unit comes first (a None parent matches a point with no unit above).
    """
    chosen = np.full(n, -1, dtype=np.int64)
    several = np.bincount(pt, minlength=n)[pt] > 1
    chosen[pt[~several]] = unit[~several]
    pt, unit = pt[several], unit[several]
    if len(pt) == 0:
        return chosen
    stranger = np.zeros(len(pt), dtype=bool) if above is None else index.parent_ids[unit] != above[pt]
    order = np.lexsort((index.code_rank[unit], stranger, pt))
    pt, unit = pt[order], unit[order]
    first = np.ones(len(pt), dtype=bool)
    first[1:] = pt[1:] != pt[:-1]
    chosen[pt[first]] = unit[first]
    return chosen


def _in_parallel(work: Callable[[slice], np.ndarray], n: int, levels: int) -> np.ndarray:
    """``work`` over ``n`` points split across the cores (shapely and numpy release the GIL)."""
    if n < _PARALLEL_MIN or _WORKERS == 1:
        return work(slice(0, n)) if n else np.empty((levels, 0), dtype=np.int64)
    bounds = np.linspace(0, n, _WORKERS + 1).astype(int)
    with ThreadPoolExecutor(_WORKERS) as pool:
        parts = list(pool.map(work, [slice(a, b) for a, b in zip(bounds[:-1], bounds[1:])]))
    return np.concatenate(parts, axis=1)


# -- the label raster ----------------------------------------------------------------------

@dataclass(frozen=True)
class _Frame:
    """Where the raster lies: square cells of ``1 / scale`` degrees from (x0, y0), ``shape`` (rows,
    columns), over the bounds of every unit plus a margin; and the rings it is built from."""

    x0: float
    y0: float
    scale: float
    shape: tuple[int, int]
    rings: np.ndarray

    @property
    def cells(self) -> int:
        return self.shape[0] * self.shape[1]


def _frame(levels: Sequence[_LevelIndex]) -> _Frame | None:
    """The raster's frame, or None where a raster cannot help (no polygons, no area).

    The cell is as small as the cap allows, and no smaller than what leaves about
    ``_CROSSED_SHARE`` of the cells crossed by the boundaries.
    """
    geometries = np.concatenate([index.geometries for index in levels] or [np.empty(0, dtype=object)])
    geometries = geometries[~shapely.is_missing(geometries)]
    if len(geometries) == 0 or not np.isin(shapely.get_type_id(geometries), _POLYGONAL).all():
        return None
    rings = shapely.get_rings(shapely.get_parts(geometries))
    length = float(shapely.length(rings).sum())
    minx, miny, maxx, maxy = (float(b) for b in shapely.total_bounds(geometries))
    area = (maxx - minx) * (maxy - miny)
    if not (math.isfinite(area) and area > 0 and length > 0):
        return None
    cell = max(math.sqrt(area / _MAX_CELLS) * 1.001, _CROSSED_SHARE * area / (1.5 * length))
    scale = 1 / cell
    x0, y0 = minx - cell, miny - cell
    nx, ny = int((maxx - x0) * scale) + 2, int((maxy - y0) * scale) + 2
    return _Frame(x0=x0, y0=y0, scale=scale, shape=(ny, nx), rings=rings)


def _build_raster(levels: Sequence[_LevelIndex], frame: _Frame) -> _Raster:
    """Mark the crossed cells, label the regions between them, answer one point of each exactly."""
    x0, y0, scale, shape = frame.x0, frame.y0, frame.scale, frame.shape
    labels, count = ndimage.label(~_crossed_cells(*_segments(frame.rings), x0, y0, scale, shape))
    iy, ix = np.divmod(_first_cells(labels, count), shape[1])
    cx, cy = x0 + (ix + 0.5) / scale, y0 + (iy + 0.5) / scale
    answers = _in_parallel(lambda s: _exact(levels, cx[s], cy[s]), count, len(levels))
    exact = (_cell(cx, x0, scale) != ix) | (_cell(cy, y0, scale) != iy)   # never, at these cell sizes
    table, face = np.unique(np.column_stack([np.full(len(levels), -1), answers]), axis=1, return_inverse=True)
    face_of = np.concatenate([[0], face.ravel()[1:] + 1])          # label → face; label 0: crossed
    face_of[1:][exact] = 0
    face_of = face_of.astype(np.uint16 if table.shape[1] < 0xFFFF else np.uint32)
    raster = _Raster(x0=x0, y0=y0, scale=scale, cells=_rows_in_parallel(lambda rows: face_of[labels[rows]], shape[0]),
                     answers=np.column_stack([np.full(len(levels), -1), table]).astype(np.int32),
                     nobody=int(face.ravel()[0]) + 1)
    log.info("label raster %d×%d, %d regions, %d faces, %.1f MiB", shape[1], shape[0], count,
             table.shape[1], raster.nbytes / 2**20)
    return raster


def _cell(x: np.ndarray, origin: float, scale: float) -> np.ndarray:
    """The cell column (or row) of each coordinate: the one formula every lookup uses."""
    return np.floor((x - origin) * scale).astype(np.intp)


def _segments(rings: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Start and end of every ring segment, each shared edge once (neighbours share most edges)."""
    coords, ring = shapely.get_coordinates(rings, return_index=True)
    points, vertex = np.unique(coords.view(np.complex128).ravel(), return_inverse=True)
    same = ring[1:] == ring[:-1]
    a, b = vertex[:-1][same], vertex[1:][same]
    edge = np.unique(np.minimum(a, b) * len(points) + np.maximum(a, b))
    points = np.column_stack([points.real, points.imag])
    return points[edge // len(points)], points[edge % len(points)]


def _crossed_cells(start: np.ndarray, end: np.ndarray, x0: float, y0: float, scale: float,
                   shape: tuple[int, int]) -> np.ndarray:
    """Every cell that a segment touches, and a few more (marked from both cores).

    Exactness: let U(p) = (p - origin) * scale in exact arithmetic.  A query point's computed
    cell coordinate is U(q)(1 + e), |e| < 2.3e-16, so U(q) lies within η = 1e-8 cells of the
    cell it is looked up in (cells are < 1e7 across).  Each segment is cut into pieces at most
    ``_STEP`` cells long per axis, computed with errors of the same order; every cell meeting a
    piece's bounding box widened by ``_SLACK`` ≫ η is marked.  So no boundary point lies within η
    of an unmarked cell; neighbouring unmarked cells, each widened by η, overlap, and a region of
    them is a connected set that no boundary meets: one face, one answer per level.
    """
    u0, v0 = (start[:, 0] - x0) * scale, (start[:, 1] - y0) * scale
    du, dv = (end[:, 0] - x0) * scale - u0, (end[:, 1] - y0) * scale - v0
    crossed = np.zeros(shape[0] * shape[1], dtype=bool)

    def mark(part: slice) -> None:
        steps = np.maximum(np.ceil(np.maximum(np.abs(du[part]), np.abs(dv[part])) / _STEP), 1).astype(np.intp)
        piece = np.repeat(np.arange(part.start, part.stop), steps)
        j = np.arange(len(piece)) - np.repeat(np.cumsum(steps) - steps, steps)
        t0, t1 = j / steps[piece - part.start], (j + 1) / steps[piece - part.start]
        cols = _span(u0[piece], du[piece], t0, t1)
        rows = _span(v0[piece], dv[piece], t0, t1)
        for row in rows:
            for col in cols:
                crossed[row * shape[1] + col] = True

    bounds = np.linspace(0, len(start), _WORKERS + 1).astype(int)
    with ThreadPoolExecutor(_WORKERS) as pool:
        list(pool.map(mark, [slice(a, b) for a, b in zip(bounds[:-1], bounds[1:])]))
    return crossed.reshape(shape)


def _span(origin: np.ndarray, delta: np.ndarray, t0: np.ndarray, t1: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The first and last cell of each piece's extent along one axis, widened by ``_SLACK``."""
    a, b = origin + delta * t0, origin + delta * t1
    low = np.floor(np.minimum(a, b) - _SLACK).astype(np.intp)
    high = np.floor(np.maximum(a, b) + _SLACK).astype(np.intp)
    assert (high - low <= 1).all(), "a boundary piece spans more than two cells"
    return low, high


def _first_cells(labels: np.ndarray, count: int) -> np.ndarray:
    """The flat position of one cell of each region 1..count.

    ``ndimage.label`` numbers regions in scan order, so the cells of a row holding labels above
    every label of the rows before are the first rows of new regions: few cells to look at.
    """
    top = np.maximum.accumulate(labels.max(axis=1))
    before = np.concatenate([[0], top[:-1]]).astype(labels.dtype)
    fresh = np.flatnonzero(top > before)               # rows where some region starts
    rows, cols = np.nonzero(labels[fresh] > before[fresh, None])
    rows = fresh[rows]
    first = np.full(count + 1, -1, dtype=np.intp)
    first[labels[rows, cols][::-1]] = (rows * labels.shape[1] + cols)[::-1]
    if (first[1:] >= 0).all() and (labels.ravel()[first[1:]] == np.arange(1, count + 1)).all():
        return first[1:]
    flat = labels.ravel()                           # another numbering: one pass over every cell
    first[flat[::-1]] = np.arange(len(flat) - 1, -1, -1)
    return first[1:]


def _rows_in_parallel(work: Callable[[slice], np.ndarray], rows: int) -> np.ndarray:
    """``work`` over row ranges of the raster, from every core, stacked."""
    bounds = np.linspace(0, rows, _WORKERS + 1).astype(int)
    with ThreadPoolExecutor(_WORKERS) as pool:
        return np.vstack(list(pool.map(work, [slice(a, b) for a, b in zip(bounds[:-1], bounds[1:])])))
