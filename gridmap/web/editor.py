"""The boundary editor: the page where a planner redraws a level, and the two geometry helpers it calls.

The page loads the level from ``GET /api/layers/<level>``, edits it in the browser (Leaflet +
Geoman, ``static/editor.js``) and saves the whole level through ``POST /api/layers/<level>``
as a draft.  Splitting and merging need exact geometry, so the page asks the server:
``POST /api/edit/split`` and ``POST /api/edit/merge`` (:mod:`gridmap.editing`).
"""
from __future__ import annotations

from typing import Any

from flask import Blueprint, current_app, render_template, url_for
from shapely.geometry import mapping

from .. import editing
from ..errors import N_, InvalidInput, message
from ..levels import ORDER, Level
from . import json_object, level_title, service, version_arg

bp = Blueprint("editor", __name__)

POLYGON = ("Polygon",)
AREAL = ("Polygon", "MultiPolygon")


@bp.get("/layers/<level>/edit")
def edit_page(level: str):
    lv = Level.parse(level)
    version = version_arg("version")
    layers = service().layers()
    service().layer(lv)  # NotFound (a readable page) when the level has never been uploaded
    parent = ORDER[lv.depth - 1] if lv.depth > 0 else None
    settings = current_app.config["GRIDMAP_SETTINGS"]
    edited = version if version is not None else service().store.versions()[lv]
    config = {
        "level": lv.value, "version": version,
        # an edit is checked with the tolerance the version it starts from was saved with
        "tolerance": service().store.version_record(lv, edited).options.get("tolerance_m2"),
        "layerUrl": url_for("api.get_layer", level=lv.value, version=version),
        "parentUrl": url_for("api.get_layer", level=parent.value) if parent is not None and parent in layers else None,
        "saveUrl": url_for("api.upload_layer", level=lv.value),
        "splitUrl": url_for("editor.split"), "mergeUrl": url_for("editor.merge"),
        "tiles": settings.tiles, "tilesAttribution": settings.tiles_attribution,
    }
    return render_template("editor.html", config=config, level=lv.value, title=level_title(lv),
                           parent_title=level_title(parent) if parent is not None and parent in layers else None)


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


def _neighbour_fields(body: dict[str, Any]) -> list[editing.GeometryField]:
    """The optional units around the one being split: they get the new border vertices too."""
    value = body.get("neighbours")
    if value is None:
        return []
    if not isinstance(value, list):
        raise InvalidInput(message(N_("expected \"neighbours\": a list of GeoJSON Polygons, got {got}"),
                                   got=editing.preview(value)))
    return [(f"neighbours[{i}]", g, AREAL) for i, g in enumerate(value)]
