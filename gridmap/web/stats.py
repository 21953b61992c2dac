"""Statistics other systems (and the map) can use:

* ``GET /api/hotspots?level=&<filters>&per=count|km2&fdr=1|0&stacked=0|1&geometry=1|0`` — Getis-Ord
  Gi* hotspots of the matching incidents per unit of a level (default the deepest), as GeoJSON:
  each unit with ``code``, ``name``, ``count``, ``value`` (what was tested), ``z``, ``p``,
  ``class`` and its ``label``; the outlines simplified as the map draws them, or none with
  ``geometry=0``.  Incidents on stacked coordinates (geocoder placeholders) are left out unless
  ``stacked=1``; the answer says how many were.
* ``GET /api/quality`` — the stacked coordinates (``lon``, ``lat``, ``count``) and the threshold
  they passed.

The filters are the map's (``category``, ``from``, ``to``, ``status``, ``unit``).
"""
from __future__ import annotations

import json
import math
from typing import Any

import shapely
from flask import Blueprint, Response, request
from flask_babel import gettext

from ..hotspots import HotspotOptions
from ..levels import Level
from ..outlines import TOLERANCE_DEG
from . import flag, parse_query, service

bp = Blueprint("stats", __name__)


@bp.get("/api/hotspots")
def hotspots() -> Response:
    args = request.args
    svc = service()
    level = Level.parse(args["level"]) if args.get("level") else svc.deepest_level()
    options = HotspotOptions(per=(args.get("per") or "count").strip(), fdr=flag(args, "fdr", True))
    include_stacked, with_geometry = flag(args, "stacked", False), flag(args, "geometry", True)
    found, stacks = svc.hotspots(level, parse_query(args), options, stacked=include_stacked)
    layer = svc.layer(level)
    shapes = (shapely.to_geojson(shapely.coverage_simplify(layer.units.geometry.to_numpy(), TOLERANCE_DEG))
              if with_geometry else [None] * len(found.codes))
    properties = [
        {"code": code, "name": name, "count": int(count), "value": _number(value), "z": _number(z), "p": _number(p),
         "class": spot.value, "label": gettext(spot.label)}
        for code, name, count, value, z, p, spot in zip(found.codes.tolist(), layer.units["name"].tolist(),
                                                       found.counts.tolist(), found.values.tolist(),
                                                       found.z.tolist(), found.p.tolist(), found.classes)]
    head = {"type": "FeatureCollection", "level": level.value, "version": layer.version,
            "options": {"per": options.per, "fdr": options.fdr, "permutations": options.permutations,
                        "seed": options.seed, "stacked": "included" if include_stacked else "excluded"},
            "cutoffs": {f"{c:.2f}": p for c, p in found.cutoffs.items()},
            "stacked": {"coordinates": len(stacks), "incidents": int(stacks.count.sum())}}
    # the features are written as text: shapely's GeoJSON geometry as it is, not parsed and dumped again
    features = ",".join(
        f'{{"type":"Feature","geometry":{shape or "null"},"properties":{_dumps(props)}}}'
        for shape, props in zip(shapes, properties))
    body = _dumps(head)[:-1] + f',"features":[{features}]}}'
    return Response(body, mimetype="application/geo+json")


@bp.get("/api/quality")
def quality() -> Response:
    stacks = service().stacked_points()
    return Response(_dumps({"stacked": {
        "threshold": stacks.threshold,
        "points": [{"lon": x, "lat": y, "count": n}
                   for x, y, n in zip(stacks.lon.tolist(), stacks.lat.tolist(), stacks.count.tolist())]}}),
        mimetype="application/json")


def _number(value: float) -> float | None:
    return value if math.isfinite(value) else None


def _dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))
