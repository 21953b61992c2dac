"""The map as a file for the monthly report (月评比 / 月报):
``GET /api/report-map?overlay=hotspots|emerging|choropleth&format=png|pdf&level=&<filters>``
(with ``measure=`` for the choropleth, ``per=``/``fdr=``/``stacked=`` as the statistics take them,
``dpi=`` 50–600 for a PNG: 200 by default, an A4 page of 2339 × 1654 pixels).

The same classes the map's overlays show (:mod:`gridmap.web.stats` answers them as GeoJSON),
drawn by :func:`gridmap.mapimage.map_image` on an A4 landscape page: the units filled by class,
the level above outlined, the legend, and the filters written under the title, so the printed
page says what it counts.
"""
from __future__ import annotations

from datetime import datetime

from flask import Blueprint, Response, request
from flask_babel import gettext

from ..choropleth import NO_VALUE_COLOR, class_color
from ..errors import N_
from ..hotspots import HOTSPOT_COLORS, PERMUTATIONS, TREND_COLORS, SpotClass, Trend
from ..levels import ORDER
from ..mapimage import MapPage, map_image
from ..options import parse_choice
from . import describe_filters, level_title, parse_query, service
from .stats import _Asked, _hotspot_options, _whole

bp = Blueprint("reportmap", __name__)

OVERLAYS = ("hotspots", "emerging", "choropleth")
#: The fill of units in no class (not significant, no trend).
PLAIN = "#f7f7f7"
#: How the choropleth's measures are named, and how its values are written.
MEASURE_TITLES = {"count": N_("Incidents"), "km2": N_("Incidents per km²"),
                  "households": N_("Incidents per 1,000 households"), "closed": N_("Closure rate")}


@bp.get("/api/report-map")
def report_map() -> Response:
    args, svc = request.args, service()
    overlay = parse_choice((args.get("overlay") or "hotspots").strip(), "overlay", OVERLAYS) or "hotspots"
    fmt = parse_choice((args.get("format") or "png").strip().lower(), "format", ("png", "pdf")) or "png"
    asked, query = _Asked.of(args), parse_query(args)
    layer = svc.layer(asked.level)
    codes = layer.units["code"].tolist()
    fills: dict[str, str | None]
    legend: list[tuple[str | None, str]]
    if overlay == "hotspots":
        found, _ = svc.hotspots(asked.level, query, _hotspot_options(args, PERMUTATIONS), stacked=asked.stacked)
        fills = {code: HOTSPOT_COLORS.get(spot.value, PLAIN) for code, spot in zip(codes, found.classes)}
        legend = [(HOTSPOT_COLORS.get(spot.value, PLAIN), gettext(spot.label)) for spot in SpotClass]
        title = gettext("Hotspots (Getis-Ord Gi*)")
    elif overlay == "emerging":
        emerging = svc.emerging_hotspots(asked.level, query, _hotspot_options(args, 0), by="month",
                                         periods=_whole(args, "periods", 12), stacked=asked.stacked)
        fills = {code: TREND_COLORS.get(trend.value, PLAIN) for code, trend in zip(codes, emerging.trends)}
        legend = [(TREND_COLORS.get(trend.value, PLAIN), gettext(trend.label)) for trend in Trend]
        title = gettext("Emerging hot spots ({first} to {last})").format(first=emerging.periods[0],
                                                                        last=emerging.periods[-1])
    else:
        measure = parse_choice((args.get("measure") or "count").strip(), "measure", tuple(MEASURE_TITLES)) or "count"
        shaded = svc.choropleth(asked.level, query, measure=measure, stacked=asked.stacked)
        classes = len(shaded.bins)
        fills = {code: class_color(int(c), classes) for code, c in zip(codes, shaded.classes.tolist())}
        finite = [v for v in shaded.values.tolist() if v == v]
        lows = [min(finite)] + shaded.bins[:-1] if shaded.bins else []
        legend = [(class_color(i, classes), f"{_value(measure, low)} – {_value(measure, high)}")
                  for i, (low, high) in enumerate(zip(lows, shaded.bins))]
        if (shaded.classes < 0).any():
            legend.append((NO_VALUE_COLOR, gettext("no value")))
        title = gettext(MEASURE_TITLES[measure])
    parent = next((lv for lv in reversed(ORDER[:ORDER.index(asked.level)]) if lv in svc.layers()), None)
    page = MapPage(
        title=f"{level_title(asked.level)} · {title}", subtitle=describe_filters(query, stacked=asked.stacked),
        legend=legend, format=fmt, dpi=_whole(args, "dpi", MapPage.dpi),
        footer=gettext("Made with gridmap on {time}").format(time=f"{datetime.now(svc.tz):%Y-%m-%d %H:%M}"))
    body = map_image(layer.units, fills, page, parents=svc.layer(parent).units if parent else None)
    name = f"gridmap-{overlay}-{asked.level.value}.{fmt}"
    return Response(body, mimetype=page.media_type, headers={"Content-Disposition": f'attachment; filename="{name}"'})


def _value(measure: str, value: float) -> str:
    if measure == "closed":
        return f"{100 * value:.0f}%"
    if measure == "count":
        return f"{value:.0f}"
    return f"{value:.0f}" if value >= 100 else f"{value:.1f}"

