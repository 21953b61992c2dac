"""Editing boundaries: split a unit along a line, merge two neighbours, and the working set of a
large level — the units a planner edits, the units around them, and the level completed from
the few units that changed.

The browser editor (``gridmap/web/editor.py``) moves vertices itself; what needs real geometry
— cutting a polygon, dissolving a shared border — happens here, on shapely, so the pieces
and the union are exact.  Everything is in longitude/latitude (EPSG:4326).

At 10,000 micro-grids the editor holds one area (a grid's micro-grids) and the units that touch
it, read-only: :func:`units_around` finds those, so that a corner shared across the edge of the
area is still one corner.  Its save sends only what changed, and :func:`complete_level` puts
that into the version the edit started from.

Coordinates that lie within :data:`TOLERANCE_DEG` of each other are one point: the editor
treats vertices that close as shared, and the functions here snap within the same distance
so that a line ending on a border, or two borders a rounding error apart, behave as meant.
"""
from __future__ import annotations

import json
import logging
from typing import Any, Mapping, Sequence

import geopandas as gpd
import numpy as np
import shapely
import shapely.ops
from shapely.geometry import LineString, MultiPoint, Polygon, shape
from shapely.geometry.base import BaseGeometry

from .boundaries import to_geojson
from .errors import N_, InvalidInput, Message, message
from .layer import Layer

log = logging.getLogger(__name__)

#: Two positions closer than this (degrees, about 0.1 mm) are the same point.
TOLERANCE_DEG = 1e-9

#: Units within this distance (degrees, about 0.1 m) of an edited unit are loaded with it: they
#: share its corners and borders (the editor's own "same corner" is 1e-9°, its "on a grid line" 0.05 m).
AROUND_DEG = 1e-6

#: Properties the server works out itself: a completed level leaves them out, as the editor does.
COMPUTED = ("area_m2", "level")

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


# -- the working set of a large level ----------------------------------------------------------

def units_near(units: gpd.GeoDataFrame, geometries: Any) -> np.ndarray:
    """Positions (0, 1, …) in ``units`` of every unit within :data:`AROUND_DEG` of one of
    ``geometries``, in order."""
    geometries = np.asarray(geometries, dtype=object)
    if not len(units) or not len(geometries):
        return np.empty(0, dtype=int)
    hits = units.sindex.query(geometries, predicate="dwithin", distance=AROUND_DEG)[1]
    return np.unique(hits)


def units_around(units: gpd.GeoDataFrame, chosen: np.ndarray) -> np.ndarray:
    """Positions of the units that touch the ``chosen`` ones (or lie within :data:`AROUND_DEG`),
    the chosen left out: every unit that may share a corner with them."""
    near = units_near(units, units.geometry.to_numpy()[chosen])
    return np.setdiff1d(near, chosen)


def units_in(units: gpd.GeoDataFrame, area: BaseGeometry, code: str) -> np.ndarray:
    """Positions of the units of an area (a unit of the level above): those naming it as their
    parent, and those whose inside point lies in it (a level read without parent codes)."""
    named = np.flatnonzero((units["parent_code"] == code).to_numpy())
    candidates = units.sindex.query(area, predicate="intersects")
    inside = candidates[shapely.contains(area, shapely.point_on_surface(units.geometry.to_numpy()[candidates]))]
    return np.union1d(named, inside).astype(int)


def units_in_box(units: gpd.GeoDataFrame, bbox: tuple[float, float, float, float]) -> np.ndarray:
    """Positions of the units that reach into a west, south, east, north box."""
    return np.sort(units.sindex.query(shapely.box(*bbox), predicate="intersects"))


def complete_level(base: Layer, edit: Mapping[str, Any], removed: Sequence[str], *,
                   field: str = "units") -> dict[str, Any]:
    """The level as the planner left it, from the version the edit started from (``base``).

    ``edit`` is a FeatureCollection of the units that changed: a feature whose ``id`` is the
    code of a unit of ``base`` takes that unit's place (its code may have changed too); one
    without ``id`` is a new unit, put after the others.  ``removed`` are codes of ``base`` to take
    out.  Every other unit is kept exactly as stored, so the diff shows only what was edited.
    Mistakes (an unknown code, a unit replaced twice or replaced and removed) are reported all
    at once; the completed level is checked as a whole when it is saved.
    """
    features = _edit_features(edit, field)
    position = {code: i for i, code in enumerate(base.units["code"].tolist())}
    replaced, added, problems = _placed(features, position, set(removed), base, field)
    gone = {position[c] for c in removed if c in position}
    problems += [message(N_("{field}: {code!r} is not a unit of {level} version {version}"),
                         field=f"{field}.removed", code=c, level=base.level.noun, version=base.version)
                 for c in removed if c not in position]
    if problems:
        raise InvalidInput(message(N_("the edit has {count} problem(s); nothing was changed"),
                                   count=len(problems)), problems)
    stored = to_geojson(base)["features"]
    kept = [replaced.get(i) or _as_edited(f) for i, f in enumerate(stored) if i not in gone]
    log.info("completed a %s edit: %d replaced, %d added, %d removed", base.level.value, len(replaced),
             len(added), len(gone))
    return {"type": "FeatureCollection", "features": kept + added}


def _edit_features(edit: Mapping[str, Any], field: str) -> list[Any]:
    if not isinstance(edit, Mapping) or edit.get("type") != "FeatureCollection" \
            or not isinstance(edit.get("features"), list):
        raise InvalidInput(message(N_("expected \"{key}\": a GeoJSON FeatureCollection; got {got}"), key=field,
                                   got=preview(edit) if edit is not None else "nothing"))
    return edit["features"]


def _placed(features: list[Any], position: dict[str, int], removed: set[str], base: Layer,
            field: str) -> tuple[dict[int, dict[str, Any]], list[dict[str, Any]], list[Message]]:
    """Which stored unit each edited feature replaces (by its ``id``), and the new ones."""
    replaced: dict[int, dict[str, Any]] = {}
    added: list[dict[str, Any]] = []
    problems: list[Message] = []
    for k, feature in enumerate(features):
        name = f"{field}.features[{k}]"
        if not isinstance(feature, Mapping):
            problems.append(message(N_("expected a GeoJSON Feature in {field}, got {got}"), field=name,
                                    got=preview(feature)))
            continue
        origin = feature.get("id")
        if origin is None:
            added.append(_as_edited(feature))
        elif str(origin) not in position:
            problems.append(message(N_("{field}: {code!r} is not a unit of {level} version {version}"),
                                    field=f"{name}.id", code=str(origin), level=base.level.noun,
                                    version=base.version))
        elif str(origin) in removed or position[str(origin)] in replaced:
            problems.append(message(N_("{field}: unit {code!r} is changed or removed more than once"),
                                    field=f"{name}.id", code=str(origin)))
        else:
            replaced[position[str(origin)]] = _as_edited(feature)
    return replaced, added, problems


def _as_edited(feature: Mapping[str, Any]) -> dict[str, Any]:
    """A feature as the editor sends it: its properties without the computed ones, no id."""
    properties = feature.get("properties")
    if isinstance(properties, Mapping):
        properties = {k: v for k, v in properties.items() if k not in COMPUTED}
    return {"type": "Feature", "properties": properties, "geometry": feature.get("geometry")}
