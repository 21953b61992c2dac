"""Editing boundaries: split a unit along a line, merge two neighbours.

The browser editor (``gridmap/web/editor.py``) moves vertices itself; what needs real geometry
— cutting a polygon, dissolving a shared border — happens here, on shapely, so the pieces
and the union are exact.  Everything is in longitude/latitude (EPSG:4326).

Coordinates that lie within :data:`TOLERANCE_DEG` of each other are one point: the editor
treats vertices that close as shared, and the functions here snap within the same distance
so that a line ending on a border, or two borders a rounding error apart, behave as meant.
"""
from __future__ import annotations

import json
import logging
from typing import Any, Sequence

import numpy as np
import shapely
import shapely.ops
from shapely.geometry import LineString, MultiPoint, Polygon, shape
from shapely.geometry.base import BaseGeometry

from .errors import N_, InvalidInput, Message, message

log = logging.getLogger(__name__)

#: Two positions closer than this (degrees, about 0.1 mm) are the same point.
TOLERANCE_DEG = 1e-9

#: What each request field may hold: (field name, GeoJSON value, accepted geometry types).
GeometryField = tuple[str, Any, tuple[str, ...]]


def read_geometries(fields: Sequence[GeometryField]) -> list[BaseGeometry]:
    """Read GeoJSON geometries from a request, checking type, coordinates and validity.

    Every problem of every field is collected and reported at once.
    """
    geometries: list[BaseGeometry] = []
    problems: list[Message] = []
    for name, value, expected in fields:
        geometry, problem = _read_geometry(name, value, expected)
        if problem is not None:
            problems.append(problem)
        else:
            geometries.append(geometry)
    if problems:
        raise InvalidInput(message(N_("the edit has {count} problem(s); nothing was changed"),
                                   count=len(problems)), problems)
    return geometries


def split_unit(polygon: Polygon, line: LineString) -> list[Polygon]:
    """Cut ``polygon`` along ``line`` into two or more pieces, ordered west to east, south to north.

    The line must cross the unit from outside to outside (or from border to border); one that
    misses the unit or stops inside it is refused, because it would cut nothing.
    """
    target = shapely.snap(polygon, line, TOLERANCE_DEG)  # a line ending on the border ends on a vertex
    pieces = [g for g in shapely.ops.split(target, line).geoms if isinstance(g, Polygon) and g.area > 0]
    if len(pieces) < 2:
        raise InvalidInput(_why_no_cut(polygon, line))
    pieces = list(shapely.orient_polygons(pieces))
    centres = shapely.get_coordinates(shapely.centroid(pieces))
    order = np.lexsort((centres[:, 1], centres[:, 0]))
    log.info("split a unit into %d pieces", len(pieces))
    return [pieces[i] for i in order]


def _why_no_cut(polygon: Polygon, line: LineString) -> Message:
    if not shapely.intersects(polygon, line):
        return message(N_("the line does not cross the unit; draw it across the unit, from outside one "
                          "side to outside the other"))
    return message(N_("the line does not cut the unit into two or more pieces; it must start and end "
                      "outside the unit (it may not stop inside)"))


def insert_cut_points(neighbours: Sequence[BaseGeometry], original: Polygon,
                      pieces: Sequence[Polygon]) -> list[BaseGeometry]:
    """The neighbours with the new corners of ``pieces`` added where they lie on their borders.

    A split adds vertices where the line crosses the unit's border; a neighbour on that border
    gets the same vertex, so the border stays shared vertex for vertex (and moves together later).
    """
    old = {tuple(xy) for xy in shapely.get_coordinates(original)}
    new = [xy for xy in shapely.get_coordinates(pieces).tolist() if tuple(xy) not in old]
    if not new:
        return list(neighbours)
    return list(shapely.snap(np.asarray(neighbours, dtype=object), MultiPoint(new), TOLERANCE_DEG))


def merge_units(a: Polygon, b: Polygon) -> Polygon:
    """Dissolve the border between two neighbours into one polygon.

    They must share a border of positive length (or overlap); units that touch only at a
    corner, or not at all, would make two pieces, which is not one unit.
    """
    b = shapely.snap(b, a, TOLERANCE_DEG)  # borders a rounding error apart are one border
    if shapely.length(shapely.intersection(a.boundary, b)) <= 0:
        raise InvalidInput(message(N_("these two units do not share a border: they touch only at a corner")
                                   if shapely.intersects(a, b) else
                                   N_("these two units do not share a border: they do not touch at all")))
    merged = shapely.union_all([a, b])
    if not isinstance(merged, Polygon):  # snapping could only make this happen on degenerate input
        raise InvalidInput(message(N_("merging these two units does not give one polygon, got {got}"),
                                   got=merged.geom_type))
    log.info("merged two units")
    return shapely.orient_polygons(merged)


def _read_geometry(name: str, value: Any, expected: tuple[str, ...]) -> tuple[BaseGeometry | None, Message | None]:
    """One field's geometry, or the sentence that says what is wrong with it."""
    wanted = " or ".join(expected)
    if not isinstance(value, dict) or not isinstance(value.get("type"), str):
        return None, message(N_("expected a GeoJSON {expected} in {field}, got {got}"), expected=wanted,
                             field=name, got=preview(value))
    if value["type"] not in expected:
        return None, message(N_("expected a GeoJSON {expected} in {field}, got {got}"), expected=wanted,
                             field=name, got=value["type"])
    try:
        geometry = shape(value)
    except Exception as exc:  # shapely raises KeyError, TypeError, ValueError, GEOSException, …
        return None, message(N_("{field} is not a valid GeoJSON {kind}: {reason}"), field=name,
                             kind=value["type"], reason=_reason(exc))
    return geometry, _geometry_problem(name, geometry)


def _geometry_problem(name: str, geometry: BaseGeometry) -> Message | None:
    coords = shapely.get_coordinates(geometry)
    if geometry.is_empty:
        return message(N_("{field} is an empty {kind}"), field=name, kind=geometry.geom_type)
    if not (np.isfinite(coords).all() and (np.abs(coords[:, 0]) <= 180).all()
            and (np.abs(coords[:, 1]) <= 90).all()):
        return message(N_("{field} has coordinates outside longitude -180..180, latitude -90..90"), field=name)
    if not shapely.is_valid(geometry):
        return message(N_("{field} is not a valid {kind}: {reason}"), field=name, kind=geometry.geom_type,
                       reason=shapely.is_valid_reason(geometry))
    return None


def preview(value: Any) -> str:
    """What arrived, as a short JSON text (no translation needed): null, 12, "abc", {"coordinates": …"""
    try:
        text = json.dumps(value, ensure_ascii=False, allow_nan=True)
    except (TypeError, ValueError):
        text = type(value).__name__
    return text if len(text) <= 60 else text[:59] + "…"


def _reason(exc: Exception) -> str:
    if isinstance(exc, KeyError):
        return f"missing {exc.args[0]!r}"
    text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return text.removeprefix("IllegalArgumentException: ")
