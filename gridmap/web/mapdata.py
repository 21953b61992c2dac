"""The map page's data, fetched by ``static/map.js`` after the page has loaded, so that the page
itself stays the same size however many incidents and units there are:

* ``GET /api/heat?bbox=w,s,e,n&zoom=z&<filters>`` — the matching incidents in ``bbox`` (parsed
  with the filters; absent: everywhere) counted in cells of about 1.5 screen pixels at that zoom
  (mean position and count per cell), and those outside every unit (up to :data:`OUTSIDE_LIMIT`
  points, and how many there are); ``scope=all`` asks for every matching incident's cells, not
  only those in ``bbox`` (the page asks when the filters match few enough, so the heat map never
  rescales while panning; more than :data:`MAX_CELLS` cells and the answer keeps to ``bbox``);
* ``GET /api/outlines/<level>[?version=N]`` — a level's outlines simplified for display, built
  once per version and answered 304 to a browser that holds them (ETag);
* ``GET /api/outlines/<level>/counts?<filters>[&version=N]`` — incidents per unit, for tooltips:
  apart from the outlines, since they change with every report and every filter.

The filters are the page's (:data:`gridmap.web.FILTER_KEYS`: several categories, statuses and
sources, the period, a unit), and
``level`` + ``version`` to show a version of one level instead of the current one.  The heat
leaves out incidents on stacked coordinates (a geocoder's placeholder: ``GET /api/quality``)
unless ``stacked=1``.
"""
from __future__ import annotations

import gzip
import json
import math
from dataclasses import replace
from typing import Any, Mapping

from flask import Blueprint, Flask, Response, current_app, request

from ..errors import N_, InvalidInput, message
from ..levels import Level
from ..maps import MAX_CELLS, coarsen, heat_cell_deg, heat_cells
from ..outlines import OutlineCache, Outlines, outlines
from ..service import Gridmap
from . import flag, parse_query, service, version_arg

bp = Blueprint("mapdata", __name__)

#: Query parameters that pick a version (those that filter incidents: ``FILTER_KEYS``).
VERSION_KEYS = ("level", "version")
#: Incidents outside every unit drawn as points in one answer; the rest are counted.
OUTSIDE_LIMIT = 2000
MAX_ZOOM = 24
#: Answers larger than this are gzipped for browsers that accept it.
GZIP_MIN_BYTES = 2048


@bp.record_once
def _setup(state: Any) -> None:
    state.app.extensions["gridmap.outlines"] = OutlineCache()


def shown_version(args: Mapping[str, str]) -> tuple[Level, int | None]:
    """``?level=…&version=N``: show that version of the level (default the deepest level)."""
    level = Level.parse(args["level"]) if args.get("level") else None
    return level or service().deepest_level(), version_arg("version")


def shown_at(args: Mapping[str, str]) -> dict[Level, int] | None:
    """The versions to show instead of the current ones (``at=`` of the service), or None."""
    level, version = shown_version(args)
    return {level: version} if version is not None else None


@bp.get("/api/heat")
def heat() -> Response:
    args = request.args
    query, at, zoom = parse_query(args), shown_at(args), parse_zoom(args.get("zoom"))
    svc = service()
    if not flag(args, "stacked", False):       # a geocoder's placeholder pile is no place to patrol
        query = svc.without_stacks(query)
    view, everywhere = query.bbox, replace(query, bbox=None)      # no bbox: everywhere
    whole = args.get("scope") == "all" or view is None
    cells = svc.heat(everywhere, bbox=None if whole else view, cell_deg=heat_cell_deg(zoom), at=at)
    if whole and view is not None and len(cells.count) > MAX_CELLS:     # more than the page was told
        whole, cells = False, svc.heat(everywhere, bbox=view, cell_deg=heat_cell_deg(zoom), at=at)
    cells = coarsen(cells, max_cells=MAX_CELLS)
    lon, lat, outside = svc.outside_points(everywhere, bbox=None if whole else view, limit=OUTSIDE_LIMIT, at=at)
    return _json({"zoom": zoom, "scope": "all" if whole else "bbox", "cell_deg": cells.cell_deg,
                  "total": cells.total, "max": int(cells.count.max(initial=0)), "cells": heat_cells(cells),
                  "outside": {"points": [[round(y, 6), round(x, 6)] for x, y in zip(lon.tolist(), lat.tolist())],
                              "total": outside, "limit": OUTSIDE_LIMIT}})


@bp.get("/api/outlines/<level>")
def level_outlines(level: str) -> Response:
    lv = Level.parse(level)
    svc = service()
    version = version_arg("version") or svc.store.versions().get(lv)
    if version is None:
        svc.layer(lv)                                   # NotFound: no layer of this level yet
    assert version is not None
    return _outlines_response(_outlines_of(svc, current_app.extensions["gridmap.outlines"], lv, version))


def _outlines_of(svc: Gridmap, cache: OutlineCache, level: Level, version: int) -> Outlines:
    meta = svc.store.version_meta(level, version)       # NotFound for a version never stored
    stamp = f"{meta.created_at:%Y%m%dT%H%M%S%f}"
    return cache.get((level, version, stamp), lambda: outlines(svc.layer_at(level, version), stamp=stamp))


def warm_outlines(app: Flask) -> None:
    """Build the current levels' outlines ahead of the first map (0.4 s for 10,000 micro-grids)."""
    svc: Gridmap = app.extensions["gridmap"]
    for level, version in svc.store.versions().items():
        _outlines_of(svc, app.extensions["gridmap.outlines"], level, version)


@bp.get("/api/outlines/<level>/counts")
def unit_counts(level: str) -> Response:
    lv = Level.parse(level)
    query = parse_query(request.args)
    svc = service()
    version = version_arg("version") or svc.store.versions().get(lv)
    counts = svc.unit_counts(lv, query, version=version) if version is not None else {}
    return _json({"level": lv.value, "version": version, "counts": counts})


def parse_zoom(value: str | None) -> int:
    """``zoom=`` the map's zoom level, a whole number from 0 to :data:`MAX_ZOOM` (a fractional
    zoom is rounded down: cells a little smaller than asked)."""
    try:
        zoom = float(value or "")
    except ValueError:
        zoom = math.nan
    if not 0 <= zoom <= MAX_ZOOM:
        raise InvalidInput(message(N_("zoom={value!r} is not valid; expected a number from 0 to {maximum}"),
                                   value=value or "", maximum=MAX_ZOOM))
    return int(zoom)


def _outlines_response(found: Outlines) -> Response:
    """The outlines, or 304 when the browser holds this version already; always revalidated
    (``no-cache``), since the URL without ``version=`` names whatever version is current."""
    if request.if_none_match.contains(found.tag):
        response = Response(status=304)
    else:
        response = _body(found.body, found.gzipped)
    response.set_etag(found.tag)
    response.headers["Cache-Control"] = "no-cache"
    return response


def _json(payload: dict[str, Any]) -> Response:
    body = json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode()
    gzipped = gzip.compress(body, compresslevel=5, mtime=0) if len(body) >= GZIP_MIN_BYTES and _gzip_ok() else None
    return _body(body, gzipped)


def _body(body: bytes, gzipped: bytes | None) -> Response:
    if gzipped is not None and _gzip_ok():
        response = Response(gzipped, mimetype="application/json")
        response.headers["Content-Encoding"] = "gzip"
    else:
        response = Response(body, mimetype="application/json")
    response.vary.add("Accept-Encoding")
    return response


def _gzip_ok() -> bool:
    return "gzip" in request.accept_encodings
