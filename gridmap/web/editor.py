"""The boundary editor: the page where a planner redraws a level, the units it works on, its save,
and the two geometry helpers it calls.

The page (``static/editor.js``, Leaflet + Geoman) asks ``GET /api/layers/<level>/edit/units`` for the
units it edits: the whole level when it is small (:data:`WHOLE_LIMIT`), else one area at a time
(``area=``: a unit of the level above and its units, chosen on an overview of those areas from
``…/edit/areas``), a unit (``code=``) or a box (``bbox=``, a level with no level above).  Every
answer brings the units touching those, read-only, and the units of the level above near them,
exact and unsimplified: its size follows the area, not the level.

``POST /api/layers/<level>/edit/save`` takes only what changed and completes the level from the
version the edit started from (:func:`gridmap.editing.complete_level`), then saves it through
the same service call and answer as ``POST /api/layers/<level>``.  Splitting and merging need
exact geometry, so the page asks ``POST /api/edit/split`` and ``POST /api/edit/merge``.
"""
from __future__ import annotations

from dataclasses import replace
from typing import Any

import numpy as np
import shapely
from flask import Blueprint, render_template, request, url_for
from shapely.geometry import mapping

from .. import editing
from ..boundaries import to_geojson
from ..changes import ParentEdit, SaveMode, level_above
from ..errors import N_, InvalidInput, Message, NotFound, message
from ..layer import Layer
from ..levels import ORDER, Level
from ..options import opt, parse_version
from . import basemap_config, json_object, level_title, parse_bbox, service, signed_options, version_arg
from .api import geojson_bytes, if_match, layer_result, precondition, save_mode

bp = Blueprint("editor", __name__)

POLYGON = ("Polygon",)
AREAL = ("Polygon", "MultiPolygon")

#: A level of at most this many units is edited whole; a larger one an area at a time.
WHOLE_LIMIT = 1000
#: At most this many units in a box (``bbox=``) are loaded for editing: zoom in for more.
BOX_LIMIT = 1500
#: The overview of the areas is simplified to this share of its extent (a pixel or two on screen).
OVERVIEW_SHARE = 1 / 2000


@bp.get("/layers/<level>/edit")
def edit_page(level: str):
    lv = Level.parse(level)
    version = version_arg("version")
    service().layer(lv)  # NotFound (a readable page) when the level has never been uploaded
    parent = _parent_level(lv)
    edited = version if version is not None else service().store.versions()[lv]
    config = {
        "level": lv.value, "version": version, "baseVersion": edited,
        # an edit is checked with the tolerance the version it starts from was saved with
        "tolerance": service().store.version_record(lv, edited).options.get("tolerance_m2"),
        **_loading(lv, version, edited, parent),
        "saveUrl": url_for("editor.save", level=lv.value),
        "splitUrl": url_for("editor.split"), "mergeUrl": url_for("editor.merge"),
        # on GCJ-02 tiles every corner is drawn shifted and shifted back when saved (static/editor.js)
        "basemap": basemap_config(),
    }
    return render_template("editor.html", config=config, level=lv.value, title=level_title(lv),
                           parent_title=level_title(parent) if parent is not None else None)


@bp.get("/api/layers/<level>/edit/units")
def units(level: str) -> dict[str, Any]:
    """The units to edit (``area=``, ``code=``, ``bbox=``, or the whole small level), the units
    touching them (``"editable": false``) and the units of the level above near them.  A box with
    more than :data:`BOX_LIMIT` units answers none, saying how many (``"too_many"``): zoom in."""
    lv = Level.parse(level)
    layer = service().layer_at(lv, version_arg("version"))
    chosen = _chosen(layer)
    if len(chosen) > BOX_LIMIT and opt(request.args, "bbox"):
        return {**_features(layer, chosen[:0], chosen[:0]), "parent": None, "too_many": len(chosen),
                "limit": BOX_LIMIT}
    around = editing.units_around(layer.units, chosen)
    body = {**_features(layer, chosen, around), "parent": None}
    parent = _parent_level(lv)
    if parent is not None:
        above = service().layer(parent)
        near = editing.units_near(above.units, layer.units.geometry.to_numpy()[chosen])
        body["parent"] = _features(above, near, np.empty(0, dtype=int))
    return body


@bp.get("/api/layers/<level>/edit/areas")
def areas(level: str) -> dict[str, Any]:
    """The outlines of the level above, simplified, to choose an area to edit."""
    parent = _parent_level(Level.parse(level))
    if parent is None:
        raise NotFound(message(N_("the {level} level has no level above it to choose an area from"),
                               level=Level.parse(level).noun))
    above = service().layer(parent)
    west, south, east, north = above.units.total_bounds
    outlines = shapely.simplify(above.units.geometry.to_numpy(), max(east - west, north - south) * OVERVIEW_SHARE,
                                preserve_topology=True)
    return {"level": parent.value, "version": above.version, "type": "FeatureCollection", "features": [
        {"type": "Feature", "properties": {"code": code, "name": name}, "geometry": mapping(g)}
        for code, name, g in zip(above.units["code"], above.units["name"], outlines)]}


@bp.post("/api/layers/<level>/edit/save")
def save(level: str):
    """The editor's save: ``{"units": FC, "removed": [codes], "base_version": N, …, "parent": {"units":
    FC, "removed": [codes], "base_version": M}}``; each feature's ``id`` is the code of the unit it
    replaces.  Answers as ``POST /api/layers/<level>`` does."""
    lv = Level.parse(level)
    body = json_object()
    options = if_match(signed_options(body, filename="edit.geojson"))
    data = _completed(lv, body, options.base_version, "")
    parent = _parent_edit(lv, body.get("parent"))
    mode = save_mode(body, default=SaveMode.DRAFT)
    with precondition():
        result = service().save_layer(lv, data, options, mode=mode, parent=parent)
    return layer_result(result), 200 if mode is SaveMode.PREVIEW else 201


@bp.post("/api/edit/split")
def split() -> dict[str, Any]:
    body = json_object()
    polygon, line, *neighbours = editing.read_geometries(
        [("geometry", body.get("geometry"), POLYGON), ("line", body.get("line"), ("LineString",))]
        + _neighbour_fields(body))
    pieces = editing.split_unit(polygon, line)
    answer: dict[str, Any] = {"geometries": [mapping(p) for p in pieces]}
    if body.get("neighbours") is not None:
        answer["neighbours"] = [mapping(n) for n in editing.insert_cut_points(neighbours, polygon, pieces)]
    return answer


@bp.post("/api/edit/merge")
def merge() -> dict[str, Any]:
    body = json_object()
    pair = body.get("geometries")
    if not isinstance(pair, list):
        raise InvalidInput(message(N_("expected \"geometries\": a list of two GeoJSON Polygons, got {got}"),
                                   got=editing.preview(pair)))
    if len(pair) != 2:
        raise InvalidInput(message(N_("expected \"geometries\": a list of two GeoJSON Polygons, got {count} "
                                      "item(s)"), count=len(pair)))
    a, b = editing.read_geometries([(f"geometries[{i}]", g, POLYGON) for i, g in enumerate(pair)])
    return {"geometry": mapping(editing.merge_units(a, b))}


# -- helpers -----------------------------------------------------------------------------------

def _parent_level(level: Level) -> Level | None:
    """The level above, when it has a version (the editor keeps the levels nested)."""
    parent = ORDER[level.depth - 1] if level.depth > 0 else None
    return parent if parent is not None and parent in service().layers() else None


def _loading(level: Level, version: int | None, edited: int, parent: Level | None) -> dict[str, Any]:
    """How the page loads the level (``scope``), what it opens with and where it asks for units:
    always at the version edited, even when another is committed meanwhile."""
    scope = _scope(service().store.version_meta(level, edited).unit_count, parent)
    opened = _opened(level, version, parent) if scope != "all" else None
    first: dict[str, Any] = dict(opened or {})
    return {
        "scope": scope, "open": opened,
        "unitsUrl": url_for("editor.units", level=level.value, version=edited),
        # what the page loads first; the template has the browser fetch it while the scripts load
        "openUrl": url_for("editor.units", level=level.value, version=edited, **first)
        if scope == "all" or any(first.values()) else None,
        "areasUrl": url_for("editor.areas", level=level.value) if scope == "area" else None,
        "bounds": _bounds(service().layers()[level]) if scope == "view" else None,
    }


def _scope(count: int, parent: Level | None) -> str:
    """How the page loads the level: "all" of a small one, an "area" (a unit of the level above)
    at a time, or the units in "view" when there is no level above."""
    if count <= WHOLE_LIMIT:
        return "all"
    return "area" if parent is not None else "view"


def _opened(level: Level, version: int | None, parent: Level | None) -> dict[str, list[str]]:
    """``?unit=CODE`` (repeatable): what the page opens with, a unit of this level (``code``) or an
    area of the level above (``area``)."""
    wanted = [c.strip() for c in request.args.getlist("unit") if c.strip()]
    own = set(service().layer_at(level, version).codes)
    above = set(service().layer(parent).codes) if parent is not None else set()
    unknown = [c for c in wanted if c not in own and c not in above]
    if unknown:
        raise NotFound(message(N_("unit={code!r}: no {level} or level above it has that code"),
                               code=unknown[0], level=level.noun))
    return {"code": [c for c in wanted if c in own], "area": [c for c in wanted if c not in own]}


def _bounds(layer: Layer) -> list[float]:
    return [float(v) for v in layer.units.total_bounds]


def _chosen(layer: Layer) -> np.ndarray:
    """Positions of the units asked for: ``area=`` and ``code=`` (repeatable), ``bbox=``, or all."""
    areas, codes, bbox = request.args.getlist("area"), request.args.getlist("code"), opt(request.args, "bbox")
    if not (areas or codes or bbox):
        if len(layer.units) > WHOLE_LIMIT:
            raise InvalidInput(message(N_("the {level} level has {count} units: ask for an area (area=), units "
                                          "(code=) or a box (bbox=) to edit"), level=layer.level.noun,
                                       count=len(layer.units)))
        return np.arange(len(layer.units))
    positions = [_by_code(layer, codes), *(_area(layer, code) for code in areas)]
    if bbox:
        positions.append(_in_box(layer, bbox))
    return np.unique(np.concatenate(positions)).astype(int)


def _by_code(layer: Layer, codes: list[str]) -> np.ndarray:
    found = layer.units["code"].isin(codes).to_numpy()
    missing = sorted(set(codes) - set(layer.units["code"][found]))
    if missing:
        raise NotFound(message(N_("no {level} unit has the code {code!r}"), level=layer.level.noun, code=missing[0]))
    return np.flatnonzero(found)


def _area(layer: Layer, code: str) -> np.ndarray:
    parent = _parent_level(layer.level)
    above = service().layer(parent) if parent is not None else None
    if above is None or code not in above.codes:
        raise NotFound(message(N_("area={code!r}: no unit of the level above has that code"), code=code))
    area = above.units.geometry.to_numpy()[above.codes.index(code)]
    return editing.units_in(layer.units, area, code)


def _in_box(layer: Layer, bbox: str) -> np.ndarray:
    problems: list[Message] = []
    box = parse_bbox(bbox, problems)
    if box is None:
        raise InvalidInput(problems[0])
    return editing.units_in_box(layer.units, box)


def _features(layer: Layer, editable: np.ndarray, around: np.ndarray) -> dict[str, Any]:
    """Those units as GeoJSON (exact geometry), each marked ``"editable"``; the level and version."""
    order = np.concatenate([editable, around]).astype(int)
    body = to_geojson(replace(layer, units=layer.units.iloc[order]))
    for k, feature in enumerate(body["features"]):
        feature["editable"] = k < len(editable)
    return body


def _completed(level: Level, body: Any, base_version: int | None, prefix: str) -> bytes:
    """The level from the version the edit started from, with the edit's units put in."""
    if not base_version:
        raise InvalidInput(message(N_("expected \"{key}\": the version the edit started from"),
                                   key=f"{prefix}base_version"))
    removed = body.get("removed") or []
    if not isinstance(removed, list) or not all(isinstance(c, str) for c in removed):
        raise InvalidInput(message(N_("expected \"{key}\": a list of unit codes; got {got}"),
                                   key=f"{prefix}removed", got=editing.preview(removed)))
    base = service().layer_at(level, base_version)
    completed = editing.complete_level(base, body.get("units"), removed, field=f"{prefix}units")
    return geojson_bytes(completed, f"{prefix}units")


def _parent_edit(level: Level, parent: Any) -> ParentEdit | None:
    """``"parent": {"units": …, "removed": […], "base_version": M}``: the level above, edited along."""
    if parent is None:
        return None
    if not isinstance(parent, dict):
        raise InvalidInput(message(N_("expected \"parent\": an object with \"units\" and \"base_version\"; "
                                      "got {got}"), got=type(parent).__name__))
    above = level_above(level)
    base_version = parse_version(opt(parent, "base_version"), "parent.base_version")
    return ParentEdit(_completed(above, parent, base_version, "parent."), base_version or 0)


def _neighbour_fields(body: dict[str, Any]) -> list[editing.GeometryField]:
    """The optional units around the one being split: they get the new border vertices too."""
    value = body.get("neighbours")
    if value is None:
        return []
    if not isinstance(value, list):
        raise InvalidInput(message(N_("expected \"neighbours\": a list of GeoJSON Polygons, got {got}"),
                                   got=editing.preview(value)))
    return [(f"neighbours[{i}]", g, AREAL) for i, g in enumerate(value)]
