"""The dashboard (``GET /dashboard``): for a manager's monthly look, on one page and with the map's
filters in the URL — the totals, the month's league table (月评比, with its XLSX), the hot spots
with links to each unit on the map, incidents per week by category, and the hour × weekday rhythm.

Everything is counted in the store (per unit, per day, per hour of the week) and drawn on the
server as HTML and inline SVG: the page loads no script and its size does not grow with the
number of incidents.
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import date, timedelta
from typing import Any
from urllib.parse import urlencode

from flask import Blueprint, render_template, request, url_for
from flask_babel import gettext

from .. import categories
from ..errors import N_
from ..hotspots import HOTSPOT_COLORS
from ..league import LeagueRow
from ..levels import Level
from ..options import parse_count
from ..performance import UnitPerformance
from ..quality import Stacks
from ..service import Gridmap
from ..storage import IncidentQuery
from . import filter_args, filter_choices, flag, language, level_title, parse_query, service

bp = Blueprint("dashboard", __name__)

#: Rows of the league table and of the hot-spot list shown (the rest: the XLSX and the API).
SHOWN = 15
#: Categories drawn in the weekly chart (the busiest), and weeks.
SERIES, WEEKS = 5, 26
CHART_W, CHART_H = 640, 220
#: The hot spot map on the page: the report's A4 page at screen resolution (1169 × 827 pixels).
MAP_DPI = 100
SERIES_COLORS = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e")


@dataclass(frozen=True)
class Series:
    label: str
    color: str
    points: str              # SVG polyline points
    total: int


@bp.get("/dashboard")
def dashboard() -> str:
    args = request.args
    svc = service()
    query = parse_query(args)
    filters: dict[str, Any] = {k: v for k, v in filter_args(args).items() if k != "unit"}
    stacked = flag(args, "stacked", False)
    total, outside = svc.incident_totals(query)
    shown = query if stacked else svc.without_stacks(query)      # the charts' and the hot spots' incidents
    level = svc.deepest_level() if svc.layers() else None
    month: str | None = None
    previous: str | None = None
    table: list[LeagueRow] = []
    spots: list[dict[str, Any]] = []
    stacks: Stacks | None = None
    if level is not None:
        months = svc.incident_counts(shown, "month")      # by default the latest month of the charts
        month, previous, table = svc.league(level, query, month=(args.get("month") or "").strip()
                                            or (max(months) if months else None))
        found, stacks = svc.hotspots(level, query, stacked=stacked)
        names = svc.layer(level).units["name"].tolist()
        spots = sorted(({"code": code, "name": names[i], "z": found.z[i], "count": int(found.counts[i]),
                         "label": gettext(spot.label), "color": HOTSPOT_COLORS[spot.value],
                         "url": url_for("pages.index", **{**filters, "unit": code})}
                        for i, (code, spot) in enumerate(zip(found.codes.tolist(), found.classes))
                        if spot.value.startswith("hot")), key=lambda spot: -spot["z"])
    series, weeks = _weekly(svc, shown)
    rhythm = svc.incident_counts(shown, "weekday_hour")
    return render_template(
        "dashboard.html", args=args, total=total, outside=outside, level=level_title(level) if level else None,
        month=month, previous=previous, table=[r for r in table if r.rank is not None][:SHOWN],
        unranked=sum(r.rank is None for r in table), spots=spots[:SHOWN], hot=len(spots), stacks=stacks,
        series=series, weeks=weeks, chart=(CHART_W, CHART_H), rhythm=_rhythm(rhythm),
        xlsx=url_for("stats.rankings", **{**filters, **({"month": month} if month else {}), "format": "xlsx"}),
        map_url=url_for("pages.index") + ("?" + urlencode(filters, doseq=True) if filters else ""),
        hotspot_map={"png": url_for("reportmap.report_map", **filters, overlay="hotspots", dpi=MAP_DPI),
                     "print": url_for("reportmap.report_map", **filters, overlay="hotspots"),
                     "pdf": url_for("reportmap.report_map", **filters, overlay="hotspots", format="pdf")}
        if level is not None else None,
        choices=filter_choices(args))


def _weekly(svc: Gridmap, query: IncidentQuery) -> tuple[list[Series], list[str]]:
    """Incidents per ISO week of the busiest categories, over the last :data:`WEEKS` weeks up to the
    latest matching incident, as SVG polylines (one query per category, on the (category, time) index)."""
    busiest = sorted(svc.incident_counts(query, "category").items(), key=lambda item: -item[1])[:SERIES]
    if not busiest:
        return [], []
    days = svc.incident_counts(query, "day")
    last = date.fromisoformat(max(days))
    start = last - timedelta(days=last.weekday()) - timedelta(weeks=WEEKS - 1)
    weeks = [start + timedelta(weeks=k) for k in range(WEEKS)]
    counted = []
    for code, _ in busiest:
        per_week = [0] * WEEKS
        for day, n in svc.incident_counts(replace(query, categories=(code,)), "day").items():
            k = (date.fromisoformat(day) - start).days // 7
            if 0 <= k < WEEKS:
                per_week[k] += n
        counted.append((code, per_week))
    top = max((max(w) for _, w in counted), default=0) or 1
    series = [Series(label=categories.BY_CODE[code].label(language()) if code in categories.BY_CODE else code,
                     color=SERIES_COLORS[i % len(SERIES_COLORS)], total=sum(per_week),
                     points=" ".join(f"{40 + k * (CHART_W - 50) / (WEEKS - 1):.1f},"
                                     f"{CHART_H - 20 - n * (CHART_H - 40) / top:.1f}" for k, n in enumerate(per_week)))
              for i, (code, per_week) in enumerate(counted)]
    return series, [f"{w:%m-%d}" for w in weeks]


def _rhythm(counts: dict[str, int]) -> dict[str, Any]:
    """The hour × weekday table: rows Monday … Sunday, 24 cells each with its count and shade."""
    top = max(counts.values(), default=0) or 1
    rows = [[{"count": counts.get(f"{d}-{h:02d}", 0),
              "shade": round(counts.get(f"{d}-{h:02d}", 0) / top, 3)} for h in range(24)] for d in range(1, 8)]
    return {"rows": rows, "days": [gettext(name) for name in WEEKDAYS], "max": top}


#: The statistics page's columns (docs/statistics.md), and rows a page shows.
FIGURE_COLUMNS = (("incidents", N_("Incidents")), ("accepted", N_("Accepted")), ("closed", N_("Closed")),
                  ("closure_rate", N_("Closure rate")), ("on_time_rate", N_("On-time rate")),
                  ("median_hours", N_("Median hours to close")), ("overdue", N_("Overdue")),
                  ("satisfaction_rate", N_("Satisfaction rate")), ("feedback_rate", N_("Feedback rate")))
PAGE_ROWS = 100


@bp.get("/statistics")
def statistics() -> str:
    """Every unit's figures (docs/statistics.md) of any level, over the page's filters: a table
    sorted by any column, a hundred rows a page, the whole of it as XLSX."""
    args, svc = request.args, service()
    query = parse_query(args)
    layers = svc.layers()
    level = Level.parse(args["level"]) if args.get("level") else svc.deepest_level()
    rows = svc.performance(level, query) if level in layers else []
    names = dict(FIGURE_COLUMNS)
    sort = str(args.get("sort") or "incidents")
    sort = sort if sort in names else "incidents"
    rows.sort(key=lambda r: (getattr(r, sort) is None, -(getattr(r, sort) or 0), r.code))
    pages = max(1, -(-len(rows) // PAGE_ROWS))
    page = min(parse_count(args.get("page"), "page", default=1) or 1, pages)
    filters = filter_args(args)
    here: dict[str, Any] = {**filters, "level": level.value}
    return render_template(
        "statistics.html", args=args, choices=filter_choices(args), level=level.value,
        levels=[(lv.value, level_title(lv)) for lv in sorted(layers, key=lambda lv: lv.depth)],
        columns=[(key, gettext(label)) for key, label in FIGURE_COLUMNS], sort=sort, sort_label=gettext(names[sort]),
        rows=[_figures(r) for r in rows[(page - 1) * PAGE_ROWS:page * PAGE_ROWS]], total=len(rows), page=page,
        pages=pages, page_url=lambda p: url_for("dashboard.statistics", **here, sort=sort, page=p),
        sort_urls={key: url_for("dashboard.statistics", **here, sort=key) for key in names},
        xlsx=url_for("stats.statistics", **here, format="xlsx"))


def _figures(row: UnitPerformance) -> dict[str, Any]:
    """A row as the table writes it: rates in per cent, hours with one decimal, a dash for none."""
    out: dict[str, Any] = {"code": row.code, "name": row.name}
    for key, _ in FIGURE_COLUMNS:
        value = getattr(row, key)
        out[key] = ("–" if value is None else f"{100 * value:.0f}%" if key.endswith("rate")
                    else f"{value:.1f}" if key == "median_hours" else value)
    return out


WEEKDAYS = (N_("Mon"), N_("Tue"), N_("Wed"), N_("Thu"), N_("Fri"), N_("Sat"), N_("Sun"))
