"""Statistics other systems (and the map) can use:

* ``GET /api/hotspots?level=&<filters>&per=count|km2&fdr=1|0&stacked=0|1&geometry=1|0`` — Getis-Ord
  Gi* hotspots of the matching incidents per unit of a level (default the deepest), as GeoJSON:
  each unit with ``code``, ``name``, ``count``, ``value`` (what was tested), ``z``, ``p``,
  ``class`` and its ``label``; the outlines simplified as the map draws them, or none with
  ``geometry=0``.  Incidents on stacked coordinates (geocoder placeholders) are left out unless
  ``stacked=1``; the answer says how many were.
* ``GET /api/hotspots/hexagons?resolution=9&<filters>&per=&fdr=&stacked=&significant=1|0`` — Gi*
  on H3 hexagons (:mod:`gridmap.hexagons`) for places without micro-grids: each cell of the study
  area with its ``cell`` id, ``count``, ``value``, ``z``, ``p``, ``class`` and ``label``, its
  hexagon as the geometry (``significant=1``: only the cells in some class, for drawing).
* ``GET /api/hotspots/emerging?level=&by=month|week&periods=12&<filters>…`` — Gi* of each of the
  last ``periods`` months or weeks up to the latest matching incident (or ``to``), and each
  unit's ``trend`` (new, intensifying, persistent, diminishing, sporadic, none) with the
  Mann-Kendall ``tau`` and ``p`` of its z-scores, and per period its ``z``, ``hot`` and ``counts``.
* ``GET /api/choropleth?level=&measure=count|km2|households|closed&scheme=quantiles|natural_breaks|
  equal_interval&k=5&<filters>`` — one number per unit (incidents, per km², per 1,000 households,
  or the share closed) in ``k`` classes (mapclassify),
  each unit's ``value`` and ``class`` (-1: no value), the ``bins`` and each class's range.
* ``GET /api/rankings?level=&month=YYYY-MM&<filters>[&format=xlsx]`` — the monthly league table
  (月评比, :mod:`gridmap.league`), as JSON or as an XLSX file with Chinese headers.
* ``GET /api/quality`` — the stacked coordinates (``lon``, ``lat``, ``count``) and the threshold
  they passed.

The filters are the map's (:data:`gridmap.web.FILTER_KEYS`: several categories, statuses and
sources, ``from``, ``to``, ``unit``).
"""
from __future__ import annotations

import io
import json
import math
from dataclasses import dataclass
from typing import Any, Mapping

import pandas as pd
import shapely
from flask import Blueprint, Response, request
from flask_babel import gettext

from ..errors import N_, InvalidInput, message
from ..hexagons import DEFAULT_RESOLUTION
from ..hotspots import PERMUTATIONS, HotspotOptions, SpotClass
from ..layer import Layer
from ..league import MIN_SAMPLE
from ..levels import Level
from ..outlines import TOLERANCE_DEG
from . import flag, parse_query, service

bp = Blueprint("stats", __name__)


@dataclass(frozen=True)
class _Asked:
    """What every statistics request says: the level (default the deepest), whether incidents on
    stacked coordinates count (``stacked=1``) and whether outlines come along (``geometry=0``: not)."""

    level: Level
    stacked: bool
    geometry: bool

    @classmethod
    def of(cls, args: Mapping[str, str]) -> _Asked:
        level = Level.parse(args["level"]) if args.get("level") else service().deepest_level()
        return cls(level, flag(args, "stacked", False), flag(args, "geometry", True))

    def answer(self, layer: Layer, properties: list[dict[str, Any]], options: dict[str, Any],
               **head: Any) -> Response:
        """The units as a FeatureCollection: the level, its version, ``head``, and the ``options``
        of the analysis with whether stacked coordinates counted."""
        return _collection({"type": "FeatureCollection", "level": self.level.value, "version": layer.version, **head,
                            "options": {**options, "stacked": "included" if self.stacked else "excluded"}},
                           _shapes(layer, self.geometry), properties)


def _hotspot_options(args: Mapping[str, str], permutations: int) -> HotspotOptions:
    return HotspotOptions(per=(args.get("per") or "count").strip(), fdr=flag(args, "fdr", True),
                          permutations=permutations)


@bp.get("/api/hotspots")
def hotspots() -> Response:
    args, svc = request.args, service()
    asked, options = _Asked.of(args), _hotspot_options(args, PERMUTATIONS)
    found, stacks = svc.hotspots(asked.level, parse_query(args), options, stacked=asked.stacked)
    layer = svc.layer(asked.level)
    properties = [
        {"code": code, "name": name, "count": int(count), "value": _number(value), "z": _number(z), "p": _number(p),
         "class": spot.value, "label": gettext(spot.label)}
        for code, name, count, value, z, p, spot in zip(found.codes.tolist(), layer.units["name"].tolist(),
                                                       found.counts.tolist(), found.values.tolist(),
                                                       found.z.tolist(), found.p.tolist(), found.classes)]
    return asked.answer(layer, properties, _options_record(options),
                        cutoffs={f"{c:.2f}": p for c, p in found.cutoffs.items()},
                        stacked={"coordinates": len(stacks), "incidents": int(stacks.count.sum())})


def _options_record(options: HotspotOptions) -> dict[str, Any]:
    return {"per": options.per, "fdr": options.fdr, "permutations": options.permutations, "seed": options.seed}


def _shapes(layer: Layer, with_geometry: bool) -> list[str | None]:
    """Each unit's outline as GeoJSON text, simplified as the map draws it (or None for all)."""
    if not with_geometry:
        return [None] * len(layer.units)
    return shapely.to_geojson(shapely.coverage_simplify(layer.units.geometry.to_numpy(), TOLERANCE_DEG)).tolist()


def _collection(head: dict[str, Any], shapes: list[str | None], properties: list[dict[str, Any]]) -> Response:
    """A FeatureCollection written as text: shapely's GeoJSON geometry as it is, not parsed and dumped again."""
    features = ",".join(
        f'{{"type":"Feature","geometry":{shape or "null"},"properties":{_dumps(props)}}}'
        for shape, props in zip(shapes, properties))
    return Response(_dumps(head)[:-1] + f',"features":[{features}]}}', mimetype="application/geo+json")


@bp.get("/api/hotspots/hexagons")
def hexagons() -> Response:
    args, svc = request.args, service()
    stacked, options = flag(args, "stacked", False), _hotspot_options(args, PERMUTATIONS)
    found, stacks = svc.hexagon_hotspots(parse_query(args), options, stacked=stacked,
                                         resolution=_whole(args, "resolution", DEFAULT_RESOLUTION))
    body = found.features()
    if flag(args, "significant", False):          # the cells of some class only: what a map draws
        body["features"] = [f for f in body["features"] if f["properties"]["class"] != SpotClass.NONE.value]
    labels = {spot.value: gettext(spot.label) for spot in SpotClass}
    for feature in body["features"]:
        feature["properties"]["label"] = labels[feature["properties"]["class"]]
    head = {"type": "FeatureCollection", "resolution": found.resolution, "cells": len(found.cells),
            "cutoffs": {f"{c:.2f}": p for c, p in found.cutoffs.items()},
            "options": {**_options_record(options), "stacked": "included" if stacked else "excluded"},
            "stacked": {"coordinates": len(stacks), "incidents": int(stacks.count.sum())}}
    return Response(_dumps({**head, "features": body["features"]}), mimetype="application/geo+json")


@bp.get("/api/hotspots/emerging")
def emerging() -> Response:
    args, svc = request.args, service()
    asked, options = _Asked.of(args), _hotspot_options(args, 0)      # each period: the normal approximation
    found = svc.emerging_hotspots(asked.level, parse_query(args), options, by=(args.get("by") or "month").strip(),
                                  periods=_whole(args, "periods", 12), stacked=asked.stacked)
    layer = svc.layer(asked.level)
    properties = [
        {"code": code, "name": name, "trend": trend.value, "label": gettext(trend.label), "tau": _number(tau),
         "p": _number(p), "z": [_number(v) for v in z], "hot": hot, "counts": counts}
        for code, name, trend, tau, p, z, hot, counts in zip(
            found.codes.tolist(), layer.units["name"].tolist(), found.trends, found.tau.tolist(),
            found.trend_p.tolist(), found.z.tolist(), found.hot.tolist(), found.counts.tolist())]
    return asked.answer(layer, properties, _options_record(options), periods=found.periods)


@bp.get("/api/choropleth")
def choropleth() -> Response:
    args, svc = request.args, service()
    asked = _Asked.of(args)
    found = svc.choropleth(asked.level, parse_query(args), measure=(args.get("measure") or "count").strip(),
                           scheme=(args.get("scheme") or "quantiles").strip(), k=_whole(args, "k", 5),
                           stacked=asked.stacked)
    layer = svc.layer(asked.level)
    properties = [{"code": code, "name": name, "value": _number(value), "class": int(cls)}
                  for code, name, value, cls in zip(found.codes.tolist(), layer.units["name"].tolist(),
                                                    found.values.tolist(), found.classes.tolist())]
    lows = [min(v for v in found.values.tolist() if math.isfinite(v))] + found.bins[:-1] if found.bins else []
    return asked.answer(layer, properties, {"measure": found.measure, "scheme": found.scheme}, bins=found.bins,
                        classes=[{"class": i, "from": low, "to": high}
                                 for i, (low, high) in enumerate(zip(lows, found.bins))])


#: The league table's columns in an XLSX export, with their Chinese headers.
LEAGUE_HEADERS = {"rank": "排名", "code": "编码", "name": "名称", "staff": "网格员", "incidents": "事件数",
                  "closed": "办结数", "closure_rate": "办结率", "closure_shrunk": "办结率（校正）",
                  "closure_low": "90%区间下限", "closure_high": "90%区间上限", "per_1000_households": "每千户事件数",
                  "per_km2": "每平方公里事件数", "previous_rank": "上月排名", "change": "名次变化",
                  "on_time_rate": "按时办结率", "on_time_shrunk": "按时办结率（校正）",
                  "on_time_low": "按时90%区间下限", "on_time_high": "按时90%区间上限",
                  "median_hours": "办结时长中位数（小时）", "satisfaction_rate": "满意率",
                  "satisfaction_shrunk": "满意率（校正）", "satisfaction_low": "满意率90%区间下限",
                  "satisfaction_high": "满意率90%区间上限", "overdue": "超期未办结"}
#: The lifecycle figures (docs/statistics.md) in an XLSX export, with their Chinese headers.
FIGURE_HEADERS = {"code": "编码", "name": "名称", "incidents": "事件数", "accepted": "受理数", "closed": "办结数",
                  "passed_on": "转办数", "not_fixed": "未解决办结数", "closure_rate": "办结率", "timed": "有办结时间数",
                  "on_time": "按时办结数", "on_time_rate": "按时办结率", "median_hours": "办结时长中位数（小时）",
                  "overdue": "超期未办结", "rated": "评价数", "satisfied": "满意数", "satisfaction_rate": "满意率",
                  "feedback_rate": "反馈率"}


@bp.get("/api/rankings")
def rankings() -> Response:
    args, svc = request.args, service()
    level = Level.parse(args["level"]) if args.get("level") else svc.deepest_level()
    month, previous, rows = svc.league(level, parse_query(args), month=(args.get("month") or "").strip() or None)
    fmt = (args.get("format") or "json").strip().lower()
    if fmt == "xlsx":
        return _xlsx([row.as_dict() for row in rows], LEAGUE_HEADERS, f"月评比 {month}",
                     f"rankings-{level.value}-{month}.xlsx")
    if fmt != "json":
        raise InvalidInput(message(N_("format={value!r} is not valid; expected json or xlsx"), value=fmt))
    return Response(_dumps({"level": level.value, "month": month, "previous_month": previous,
                            "min_sample": MIN_SAMPLE, "rows": [_finite(row.as_dict()) for row in rows]}),
                    mimetype="application/json")


XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


def _xlsx(records: list[dict[str, Any]], headers: dict[str, str], sheet: str, filename: str) -> Response:
    """Rows as an XLSX file with Chinese headers."""
    frame = pd.DataFrame(records, columns=list(headers)).rename(columns=headers)
    body = io.BytesIO()
    with pd.ExcelWriter(body, engine="openpyxl") as writer:
        frame.to_excel(writer, sheet_name=sheet, index=False)
    response = Response(body.getvalue(), mimetype=XLSX)
    response.headers["Content-Disposition"] = f'attachment; filename="{filename}"'
    return response


@bp.get("/api/statistics")
def statistics() -> Response:
    """Each unit's lifecycle figures (docs/statistics.md) over the matching incidents, with the
    level's totals; ``format=xlsx`` downloads them with Chinese headers."""
    args, svc = request.args, service()
    level = Level.parse(args["level"]) if args.get("level") else svc.deepest_level()
    rows = [row.as_dict() for row in svc.performance(level, parse_query(args))]
    fmt = (args.get("format") or "json").strip().lower()
    if fmt == "xlsx":
        return _xlsx(rows, FIGURE_HEADERS, "统计", f"statistics-{level.value}.xlsx")
    if fmt != "json":
        raise InvalidInput(message(N_("format={value!r} is not valid; expected json or xlsx"), value=fmt))
    return Response(_dumps({"level": level.value, "rows": [_finite(row) for row in rows]}),
                    mimetype="application/json")


def _finite(values: dict[str, Any]) -> dict[str, Any]:
    return {k: (_number(v) if isinstance(v, float) else v) for k, v in values.items()}


def _whole(args: Mapping[str, str], key: str, default: int) -> int:
    value = (args.get(key) or "").strip()
    if not value:
        return default
    if not value.isascii() or not value.isdigit() or len(value) > 6:
        raise InvalidInput(message(N_("{key}={value!r} is not valid; expected a whole number"), key=key, value=value))
    return int(value)


@bp.get("/api/quality")
def quality() -> Response:
    svc = service()
    stacks = svc.stacked_points()
    edges = svc.edge_points()
    return Response(_dumps({
        "stacked": {"threshold": stacks.threshold,
                    "points": [{"lon": x, "lat": y, "count": n}
                               for x, y, n in zip(stacks.lon.tolist(), stacks.lat.tolist(), stacks.count.tolist())]},
        "ambiguous": None if edges is None else {
            "level": edges.level.value, "count": edges.count, "incidents": edges.incidents,
            "between": [{"codes": list(codes), "count": n} for codes, n in edges.pairs]}}),
        mimetype="application/json")


def _number(value: float) -> float | None:
    return value if math.isfinite(value) else None


def _dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))
