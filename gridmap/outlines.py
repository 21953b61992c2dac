"""Unit outlines for the map page: each level's units simplified for display, as compact text the
browser draws, built once per stored version and kept.

The map page used to embed every outline as GeoJSON in the page itself; a district's 10,000
micro-grids are megabytes of it.  Here a level's outlines are simplified as a coverage
(``shapely.coverage_simplify``: an edge two neighbours share is simplified once, so it stays
shared: no slivers or gaps open between units on screen), encoded like Google's polyline format
(:func:`gridmap.maps.encoded_shapes`, the same encoding the review map reads) and serialised
once; a version never changes, so :class:`OutlineCache` keeps the bytes for the next request
(and the browser keeps them too, by their ETag).  Incident counts are not part of it: they
change with every report and with the filters, outlines only with a new version.
"""
from __future__ import annotations

import gzip
import json
import logging
import threading
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any, Callable, Hashable

import numpy as np
import shapely

from .boundaries import staff_of
from .layer import Layer
from .levels import Level
from .maps import SHAPE_PRECISION, encoded_shapes, plain_text

log = logging.getLogger(__name__)

#: Simplification tolerance in degrees.  GEOS simplifies a coverage the Visvalingam–Whyatt way: a
#: vertex goes when the triangle it makes with its neighbours is smaller than tolerance², so long
#: straight edges lose their needless vertices and nothing moves much: 1e-5° moved Boston's 255
#: precinct outlines by at most 1.03 m (a pixel at zoom 17), 2e-5° by 4.2 m, 5e-5° by 10.4 m.
TOLERANCE_DEG = 1e-5
#: Changes whenever the payload's format or the tolerance does, so cached copies (ours and the
#: browsers') of an older build are not taken for this one.
FORMAT = 1


@dataclass(frozen=True)
class Outlines:
    """One version of a level as the map draws it: ``body`` is the JSON (``gzipped`` the same,
    compressed once for every client that accepts gzip); ``tag`` names the level, the version
    and the format, for an HTTP ETag."""

    level: Level
    version: int | None
    body: bytes
    gzipped: bytes
    tag: str


def display_outlines(layer: Layer, *, tolerance_deg: float = TOLERANCE_DEG) -> dict[str, Any]:
    """The layer's units as the map page draws them: columns ``code``, ``name``, ``staff`` (plain
    text: the page writes it with ``textContent``) and ``shape`` (polygons of polyline-encoded
    rings at 1e-6°), simplified as a coverage by ``tolerance_deg`` degrees; ``bounds`` is
    [west, south, east, north] of them all (None when there are none)."""
    units = layer.units[~(layer.units.geometry.isna() | layer.units.geometry.is_empty)]
    geometries = simplify_coverage(units.geometry.to_numpy(), tolerance_deg)
    bounds = shapely.total_bounds(geometries) if len(geometries) else None
    return {"level": layer.level.value, "version": layer.version, "format": FORMAT,
            "tolerance_deg": tolerance_deg, "precision": SHAPE_PRECISION,
            "bounds": bounds.tolist() if bounds is not None else None,
            "code": [plain_text(c) for c in units["code"]], "name": [plain_text(n) for n in units["name"]],
            "staff": [plain_text(staff_of(p)["staff"]) for p in units["properties"]],
            "shape": encoded_shapes(geometries)}


def simplify_coverage(geometries: np.ndarray, tolerance_deg: float) -> np.ndarray:
    """Polygons simplified together so shared edges stay shared.  A level with overlaps the
    planner accepted is not a clean coverage, and GEOS may refuse it: then each unit is
    simplified on its own (topology kept within each unit)."""
    if not len(geometries) or tolerance_deg <= 0:
        return geometries
    try:
        return shapely.coverage_simplify(geometries, tolerance_deg)
    except shapely.errors.GEOSException as error:
        log.warning("coverage simplification failed (%s); simplifying unit by unit", error)
        return shapely.simplify(geometries, tolerance_deg, preserve_topology=True)


def outlines(layer: Layer, *, stamp: str = "", tolerance_deg: float = TOLERANCE_DEG) -> Outlines:
    """:func:`display_outlines` serialised (compact JSON, UTF-8) and gzipped; ``stamp`` tells this
    store's version apart from another store's of the same number (when it was stored)."""
    body = json.dumps(display_outlines(layer, tolerance_deg=tolerance_deg), ensure_ascii=False,
                      separators=(",", ":")).encode()
    return Outlines(level=layer.level, version=layer.version, body=body,
                    gzipped=gzip.compress(body, compresslevel=6, mtime=0),
                    tag=f"outlines-{layer.level.value}-v{layer.version}-{stamp}-f{FORMAT}")


class OutlineCache:
    """The last ``size`` outlines built, by a key naming one stored version (level, version and
    when it was stored): a stored version never changes, so its outlines are built once per
    process.  Safe across threads; a key is built once even when several requests ask at once."""

    def __init__(self, size: int = 8) -> None:
        self.size = size
        self._entries: OrderedDict[Hashable, Outlines] = OrderedDict()
        self._lock = threading.Lock()
        self._building: dict[Hashable, threading.Lock] = {}

    def get(self, key: Hashable, build: Callable[[], Outlines]) -> Outlines:
        """The outlines kept under ``key``, or ``build()``'s, kept."""
        with self._lock:
            found = self._hit(key)
            if found is not None:
                return found
            building = self._building.setdefault(key, threading.Lock())
        with building:
            with self._lock:
                found = self._hit(key)
            if found is None:
                found = build()
                self._keep(key, found)
        return found

    def _hit(self, key: Hashable) -> Outlines | None:
        found = self._entries.get(key)
        if found is not None:
            self._entries.move_to_end(key)
        return found

    def _keep(self, key: Hashable, value: Outlines) -> None:
        with self._lock:
            self._entries[key] = value
            self._building.pop(key, None)
            while len(self._entries) > self.size:
                self._entries.popitem(last=False)
