"""Pages for people: the map with its filters, the boundary upload, history, commit, restore
and clean.  The review page of a version or an upload lives in :mod:`gridmap.web.review`."""
from __future__ import annotations

from datetime import datetime
from typing import Any
from urllib.parse import urlencode

import h3
import numpy
from flask import Blueprint, redirect, render_template, request, url_for
from flask_babel import gettext

from ..changes import SaveMode, local_time
from ..choropleth import NO_VALUE_COLOR, PALETTE
from ..errors import GridmapError
from ..hexagons import DEFAULT_RESOLUTION
from ..hotspots import HOTSPOT_COLORS, TREND_COLORS, SpotClass, Trend
from ..layer import Layer
from ..levels import ORDER, Level, deepest
from ..maps import HEAT_STYLE, MAX_FIT_ZOOM, OUTSIDE_STYLE, build_base_map, layer_style, render_parts
from ..options import clean_options
from ..rankings import RankedUnit, top_units
from ..storage import IncidentQuery
from . import (
    author,
    basemap_config,
    filter_args,
    filter_choices,
    flag,
    language,
    level_title,
    parse_query,
    service,
    signed_options,
    tr,
)
from .mapdata import VERSION_KEYS, shown_version
from .review import review_page

bp = Blueprint("pages", __name__)

#: Up to this many matching incidents the heat map gets them all at once (as cells), so, like a
#: heat map of the points themselves, it keeps one colour scale while panning; beyond, each view
#: gets its own cells and the colours scale to the busiest spot in and around it.
WHOLE_LIMIT = 10_000
#: How long the heat map's animation shows each month or week once drawn.
TIMELINE_STEP_MS = 1200

#: The upload form's fields that are options of the file (kept when the planner goes back to the form).
UPLOAD_FIELDS = ("level", "crs", "code_field", "name_field", "parent_field", "layer", "encoding", "tolerance_m2",
                 "clean", "gap_width_m", "snap_m", "derive_parent", "author", "note")


@bp.after_app_request
def remember_language(response):
    lang = request.args.get("lang")
    if lang in ("zh", "en"):
        response.set_cookie("lang", lang, max_age=365 * 24 * 3600, samesite="Lax")
    return response


@bp.app_context_processor
def page_context() -> dict[str, Any]:
    return {"lang": language(), "level_title": level_title, "levels_with_versions": _levels_with_versions}


@bp.app_template_filter("local")
def local(utc: datetime | None) -> str:
    """A stored UTC time as the deployment's wall-clock time (like incident times)."""
    return "" if utc is None else local_time(utc, service().tz).strftime("%Y-%m-%d %H:%M")


@bp.get("/")
def index():
    """The map: the base map, the filters, the totals and the ranking.  The overlays (outlines,
    heat, incidents outside every unit) are drawn by static/map.js from the data API
    (:mod:`gridmap.web.mapdata`), so the page's size does not depend on the data."""
    query = parse_query(request.args)
    svc = service()
    level, version = shown_version(request.args)
    at = {level: version} if version is not None else None
    layers = dict(svc.layers())
    if version is not None:
        layers[level] = svc.layer_at(level, version)
    total, outside = svc.incident_totals(query, at=at)
    fmap = build_base_map(_bounds(layers), tiles=None)          # tiles: static/basemap.js, once one has come
    return render_template("index.html", parts=render_parts(fmap), args=request.args,
                           choices=filter_choices(request.args),
                           total=total, unassigned=outside, ranking=_ranking(layers, query),
                           map_config=_map_config(layers, total), shown_version=(level, version) if version else None)


@bp.route("/upload", methods=["GET", "POST"])
def upload():
    """Upload → validation report and diff.  A file without errors is saved as a draft and the
    planner lands on its review page; a file with errors gets the report drawn on a map, and
    nothing is stored.  ``GET /upload?crs=…`` opens the form with those options filled in."""
    labels = upload_labels()
    names = {key: f"“{label}”" for key, label in labels.items()}     # how errors name a field
    if request.method == "GET":
        return _upload_form(request.args, labels)
    form = request.form
    upload_file = request.files.get("file")
    try:
        if upload_file is None or not upload_file.filename:
            return _upload_form(form, labels, (gettext("Choose a boundary file to upload."), [])), 400
        level, data = Level.parse(form.get("level", "")), upload_file.read()
        options = signed_options(form, filename=upload_file.filename)
        try:
            result = service().save_layer(level, data, options, mode=SaveMode.DRAFT)
        except GridmapError as error:
            if error.preview is None:
                raise
            return review_page(error.preview, options=options, form_url=_form_url(form)), 400
    except GridmapError as error:
        return _upload_form(form, labels, (tr(error.summary, names), [tr(d, names) for d in error.details])), 400
    return redirect(url_for("review.version_page", level=level.value, version=result.version), 303)


def upload_labels() -> dict[str, str]:
    """The upload form's field labels: the form shows them, and errors name fields by them."""
    return {"level": gettext("Level"), "author": gettext("Your name"), "note": gettext("Note"),
            "crs": gettext("CRS of the file, if it does not say (e.g. EPSG:4547)"),
            "code_field": gettext("Property holding the code"), "name_field": gettext("Property holding the name"),
            "parent_field": gettext("Property holding the parent code"),
            "layer": gettext("Layer of a GeoPackage or KML, or shapefile in the zip"),
            "encoding": gettext("Text encoding of a shapefile without .cpg (e.g. GBK)"),
            "tolerance_m2": gettext("Report gaps and overlaps larger than (m²)"),
            "clean": gettext("Clean overlaps and gaps"), "gap_width_m": gettext("Fill gaps narrower than (m)"),
            "snap_m": gettext("Snap corners closer than (m)"), "derive_parent":
            gettext("Redraw the level above as the union of these units")}


def _upload_form(form: Any, labels: dict[str, str], errors: tuple[str, list[str]] | None = None) -> str:
    return render_template("upload.html", levels=[(lv.value, level_title(lv)) for lv in ORDER], form=form,
                           errors=errors, labels=labels, defaults=clean_options({}))


def _form_url(form: Any) -> str:
    """The upload form again, with this upload's options filled in (the file must be chosen again)."""
    kept = {key: form.get(key) for key in UPLOAD_FIELDS if form.get(key)}
    return url_for("pages.upload") + ("?" + urlencode(kept) if kept else "")


@bp.get("/layers/<level>/history")
def history(level: str):
    lv = Level.parse(level)
    versions = service().history(lv)
    current = service().store.versions().get(lv)
    return render_template("history.html", level=lv, versions=versions, current=current)


@bp.post("/layers/<level>/versions/<id:version>/commit")
def commit_page(level: str, version: int):
    lv = Level.parse(level)
    service().commit_draft(lv, version, author=author(request.form))
    return redirect(url_for("pages.history", level=lv.value), 303)


@bp.post("/layers/<level>/versions/<id:version>/restore")
def restore_page(level: str, version: int):
    lv = Level.parse(level)
    result = service().restore(lv, version, signed_options(request.form, filename=""), mode=SaveMode.DRAFT)
    return redirect(url_for("review.version_page", level=lv.value, version=result.version), 303)


@bp.post("/layers/<level>/versions/<id:version>/clean")
def clean_page(level: str, version: int):
    """The review page's "clean overlaps and gaps": a new draft, cleaned, and its review page."""
    lv = Level.parse(level)
    result = service().clean_version(lv, version, clean_options(request.form),
                                     signed_options(request.form, filename=""), mode=SaveMode.DRAFT)
    return redirect(url_for("review.version_page", level=lv.value, version=result.version), 303)


def _levels_with_versions() -> list[Level]:
    """The levels this deployment uses (those with a version), largest first; grid and micro-grid
    when none has one yet."""
    stored = service().store.versions()
    return [lv for lv in ORDER if lv in stored] or [Level.GRID, Level.MICRO_GRID]


def _ranking(layers: dict[Level, Layer], query: IncidentQuery) -> list[RankedUnit]:
    """The deepest level's units with the most matching incidents."""
    level = deepest(layers)
    if level is None:
        return []
    layer = layers[level]
    return top_units(layer, service().unit_counts(level, query, version=layer.version))


def _bounds(layers: dict[Level, Layer]) -> list[float] | None:
    """[west, south, east, north] of every unit shown, None when there are none."""
    boxes = [b for b in (layer.units.total_bounds for layer in layers.values()) if numpy.isfinite(b).all()]
    if not boxes:
        return None
    stacked = numpy.vstack(boxes)
    return [*stacked[:, :2].min(axis=0).tolist(), *stacked[:, 2:].max(axis=0).tolist()]


def _url(endpoint: str, level: Level, params: dict[str, Any]) -> str:
    return url_for(endpoint, level=level.value) + "?" + urlencode(params, doseq=True)


def _hotspot_config(layers: dict[Level, Layer], filters: dict[str, list[str]]) -> dict[str, Any] | None:
    """The hotspot overlay of the deepest level (off until the viewer turns it on): where its
    classes come from, their colours, and the legend's words."""
    level = deepest(layers)
    if level is None:
        return None
    params = {**filters, "level": level.value, "geometry": "0"}
    return {"url": url_for("stats.hotspots") + "?" + urlencode(params, doseq=True),
            "level": level.value, "title": gettext("Hotspots (Getis-Ord Gi*)"), "colors": HOTSPOT_COLORS,
            "legend": [[spot.value, gettext(spot.label)] for spot in SpotClass if spot is not SpotClass.NONE],
            "leftOut": gettext("Left out: {incidents} incidents piled on {coordinates} coordinates "
                               "(geocoder placeholders)"),
            "corrected": gettext("Confidence corrected for {units} tests (false discovery rate)")}


def _choropleth_config(layers: dict[Level, Layer], filters: dict[str, list[str]]) -> dict[str, Any] | None:
    """The choropleth overlay (off until turned on): any level, any measure, chosen in its legend;
    quantile classes, so each colour holds as many units."""
    level = deepest(layers)
    if level is None:
        return None
    params = {**filters, "geometry": "0", "scheme": "quantiles", "k": str(len(PALETTE))}
    return {"url": url_for("stats.choropleth") + "?" + urlencode(params, doseq=True), "level": level.value,
            "levels": [[lv.value, level_title(lv)] for lv in sorted(layers, key=lambda lv: lv.depth)],
            "title": gettext("Choropleth"), "palette": PALETTE, "noValueColor": NO_VALUE_COLOR,
            "measures": [["count", gettext("Incidents")], ["km2", gettext("Incidents per km²")],
                         ["households", gettext("Incidents per 1,000 households")],
                         ["closed", gettext("Closure rate")]],
            "noValue": gettext("no value"), "measureLabel": gettext("Measure"), "levelLabel": gettext("Level")}


def _hexagon_config(filters: dict[str, list[str]]) -> dict[str, Any]:
    """The hexagon hot spot overlay (off until turned on): Gi* on H3 cells of about 0.1 km², for
    places without micro-grids; drawn from the answer's own hexagons."""
    params = {**filters, "resolution": str(DEFAULT_RESOLUTION), "significant": "1"}
    return {"url": url_for("stats.hexagons") + "?" + urlencode(params, doseq=True),
            "title": gettext("Hexagon hot spots (H3)"), "colors": HOTSPOT_COLORS,
            "legend": [[spot.value, gettext(spot.label)] for spot in SpotClass if spot is not SpotClass.NONE],
            "cells": gettext("{cells} hexagons of about {km2} km² tested"),
            "km2": round(h3.average_hexagon_area(DEFAULT_RESOLUTION, unit="km^2"), 2)}


def _emerging_config(layers: dict[Level, Layer], filters: dict[str, list[str]]) -> dict[str, Any] | None:
    """The emerging hot spot overlay of the deepest level, by month (off until turned on)."""
    level = deepest(layers)
    if level is None:
        return None
    params = {**filters, "level": level.value, "geometry": "0", "by": "month", "periods": "12"}
    return {"url": url_for("stats.emerging") + "?" + urlencode(params, doseq=True), "level": level.value,
            "title": gettext("Emerging hot spots (12 months)"), "colors": TREND_COLORS,
            "legend": [[trend.value, gettext(trend.label)] for trend in Trend if trend.value in TREND_COLORS],
            "periods": gettext("Months {first} to {last}")}


def _quality_config() -> dict[str, Any]:
    """The stacked-coordinate warning: where the coordinates come from, whether this view counts
    their incidents in the heat map and hotspots (``stacked=1``), and the page with the other choice."""
    included = flag(request.args, "stacked", False)
    other: dict[str, Any] = {k: v for k, v in request.args.to_dict(flat=False).items() if k != "stacked"}
    if not included:
        other["stacked"] = "1"
    return {"url": url_for("stats.quality"), "included": included, "toggle": url_for("pages.index", **other),
            "text": gettext("{count} incidents sit on one coordinate ({lon}, {lat}): probably a geocoder's "
                            "placeholder, not a place."),
            "more": gettext("{coordinates} such coordinates hold {count} incidents."),
            "left": gettext("They are left out of the heat map and the statistics (hotspots, choropleths)."),
            "kept": gettext("They are counted in the heat map and the statistics (hotspots, choropleths)."),
            "show": gettext("Count them"), "hide": gettext("Leave them out"),
            "ambiguous": gettext("{count} incidents ({share}) lie within their coordinates' precision of an edge "
                                 "between units: which unit holds them is uncertain; most between {codes} ({n})."),
            "outside": gettext("outside")}


def _map_config(layers: dict[Level, Layer], total: int) -> dict[str, Any]:
    """What static/map.js needs: where the data is (with the page's filters), how to draw it, and
    every UI string it shows, translated."""
    filters = filter_args(request.args)
    shown = {k: request.args[k] for k in VERSION_KEYS if request.args.get(k)}
    return {
        "levels": [{"level": lv.value, "title": level_title(lv), "version": layer.version,
                    "units": len(layer.units), "style": layer_style(lv),
                    "outlines": _url("mapdata.level_outlines", lv, {"version": layer.version}),
                    "counts": _url("mapdata.unit_counts", lv, {**filters, "version": layer.version})}
                   for lv, layer in sorted(layers.items(), key=lambda item: item[0].depth)],
        "heat": {"url": url_for("mapdata.heat") + "?" + urlencode({**filters, **shown}, doseq=True),
                 "style": HEAT_STYLE, "whole": total <= WHOLE_LIMIT},
        "outsideStyle": OUTSIDE_STYLE, "maxZoom": MAX_FIT_ZOOM,
        "hotspots": _hotspot_config(layers, filters) if not shown else None,
        "emerging": _emerging_config(layers, filters) if not shown else None,
        "hexagons": _hexagon_config(filters) if not shown else None,
        "choropleth": _choropleth_config(layers, filters) if not shown else None,
        "quality": _quality_config(), "basemap": basemap_config(),
        "timeline": {"counts": url_for("api.count_incidents") + "?" + urlencode(filters, doseq=True),
                     "modes": [["", gettext("All time")], ["month", gettext("By month")], ["week", gettext("By week")]],
                     "play": gettext("Play"), "count": gettext("{count} incidents"), "stepMs": TIMELINE_STEP_MS,
                     "from": request.args.get("from") or None, "to": request.args.get("to") or None},
        "report": {"url": url_for("reportmap.report_map") + "?" + urlencode(filters, doseq=True),
                   "label": gettext("For the report:")} if not shown else None,
        "labels": {"name": gettext("Name"), "code": gettext("Code"), "staff": gettext("Staff"),
                   "incidents": gettext("Incidents"), "heat": gettext("Incident heatmap"),
                   "outside": gettext("Outside every unit"), "loading": gettext("loading…"),
                   "outsideMore": gettext("Showing {shown} of the {total} incidents outside every unit in this view"),
                   "failed": gettext("The map data could not be loaded: {error}")},
    }
