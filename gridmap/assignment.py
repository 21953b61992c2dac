"""Assignment: which unit of each level holds each incident (the spatial join).

The rule, applied level by level from the largest to the smallest:

1. a unit *holds* a point when it ``covers`` it (interior or boundary), so a point on
   an edge or a vertex is never lost;
2. when several units of one level hold the point (a shared edge or vertex, or an
   overlap in a messy file), the point goes to exactly one of them: first the one
   whose parent is the unit the point got at the level above (so the chain stays
   consistent), then the one with the smallest code in plain string order;
3. a point held by no unit of a level gets ``None`` there and is flagged unassigned.

All of it runs on whole arrays (shapely 2 STRtree, numpy), one pass per level.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Sequence

import numpy as np
import shapely

from .layer import Layer
from .levels import Level

log = logging.getLogger(__name__)

@dataclass(frozen=True)
class _LevelIndex:
    level: Level
    geometries: np.ndarray
    codes: np.ndarray        # object array of str
    parents: np.ndarray      # object array of str | None
    code_rank: np.ndarray    # position of each code in sorted order
    tree: shapely.STRtree


class AssignmentIndex:
    """Spatial indexes over a set of layers, built once and reused for every assignment."""

    def __init__(self, layers: Sequence[Layer]) -> None:
        ordered = sorted(layers, key=lambda layer: layer.level.depth)
        self._levels = [self._index(layer) for layer in ordered]
        for index in self._levels:
            shapely.prepare(index.geometries)

    @staticmethod
    def _index(layer: Layer) -> _LevelIndex:
        geometries = layer.units.geometry.to_numpy()
        codes = layer.units["code"].to_numpy(dtype=object)
        return _LevelIndex(level=layer.level, geometries=geometries, codes=codes,
                           parents=layer.units["parent_code"].to_numpy(dtype=object),
                           code_rank=np.argsort(np.argsort(codes.astype(str), kind="stable")),
                           tree=shapely.STRtree(geometries))

    def assign(self, lon: np.ndarray, lat: np.ndarray) -> dict[Level, np.ndarray]:
        """The code of the unit holding each point, per level (``None`` where no unit does)."""
        points = shapely.points(np.asarray(lon, dtype=float), np.asarray(lat, dtype=float))
        result: dict[Level, np.ndarray] = {}
        above: np.ndarray | None = None
        for index in self._levels:
            pt, unit = _holding_pairs(index, points)
            chosen = _choose(index, pt, unit, len(points), above)
            codes = index.codes[chosen]              # object array: None where no unit holds the point
            codes[chosen < 0] = None
            result[index.level] = above = codes
        return result


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
    """One unit per point by the documented tie-break; -1 where no unit holds the point."""
    chosen = np.full(n, -1, dtype=np.int64)
    if len(pt) == 0:
        return chosen
    if above is None:
        stranger = np.zeros(len(pt), dtype=bool)
    else:
        stranger = index.parents[unit] != above[pt]
    order = np.lexsort((index.code_rank[unit], stranger, pt))
    pt, unit = pt[order], unit[order]
    first = np.ones(len(pt), dtype=bool)
    first[1:] = pt[1:] != pt[:-1]
    chosen[pt[first]] = unit[first]
    return chosen

