"""Pages for people: the map with its filters, the boundary upload, history, commit, restore
and clean.  The review page of a version or an upload lives in :mod:`gridmap.web.review`."""
from __future__ import annotations

from datetime import datetime
from typing import Any
from urllib.parse import urlencode

import geopandas as gpd
import pandas as pd
from flask import Blueprint, current_app, redirect, render_template, request, url_for
from flask_babel import gettext

from .. import categories
from ..boundaries import staff_of
from ..changes import SaveMode, local_time
from ..errors import GridmapError
from ..layer import Layer
from ..levels import ORDER, Level
from ..maps import MapLabels, MapLayer, build_map, render_parts
from ..options import clean_options, layer_options, opt
from ..rankings import top_units, unit_counts
from . import language, level_title, parse_query, service, tr, version_arg
from .review import review_page

bp = Blueprint("pages", __name__)

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
    query = parse_query(request.args)
    svc = service()
    level, version = _version_args()
    layers = dict(svc.layers())
    if version is not None:
        layers[level] = svc.layer_at(level, version)
    frame = svc.incidents(query, at={level: version} if version is not None else None)
    levels = [lv.value for lv in layers]
    outside = frame[levels].isna().any(axis=1) if levels else pd.Series(True, index=frame.index)
    settings = current_app.config["GRIDMAP_SETTINGS"]
    fmap = build_map([_map_layer(layer, frame) for layer in layers.values()],
                     frame[["lon", "lat"]].to_numpy(dtype=float),
                     unassigned=frame.loc[outside, ["lon", "lat"]].to_numpy(dtype=float),
                     labels=_labels(), tiles=settings.tiles, tiles_attribution=settings.tiles_attribution)
    return render_template("index.html", parts=render_parts(fmap), args=request.args,
                           categories=[(c.code, c.label(language())) for c in categories.CATEGORIES],
                           total=len(frame), unassigned=int(outside.sum()),
                           ranking=top_units(layers, frame), shown_version=(level, version) if version else None)


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
        options = layer_options(form, filename=upload_file.filename)
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


@bp.post("/layers/<level>/versions/<int:version>/commit")
def commit_page(level: str, version: int):
    lv = Level.parse(level)
    service().commit_draft(lv, version, author=opt(request.form, "author") or "")
    return redirect(url_for("pages.history", level=lv.value), 303)


@bp.post("/layers/<level>/versions/<int:version>/restore")
def restore_page(level: str, version: int):
    lv = Level.parse(level)
    result = service().restore(lv, version, layer_options(request.form, filename=""), mode=SaveMode.DRAFT)
    return redirect(url_for("review.version_page", level=lv.value, version=result.version), 303)


@bp.post("/layers/<level>/versions/<int:version>/clean")
def clean_page(level: str, version: int):
    """The review page's "clean overlaps and gaps": a new draft, cleaned, and its review page."""
    lv = Level.parse(level)
    result = service().clean_version(lv, version, clean_options(request.form),
                                     layer_options(request.form, filename=""), mode=SaveMode.DRAFT)
    return redirect(url_for("review.version_page", level=lv.value, version=result.version), 303)


def _levels_with_versions() -> list[Level]:
    """The levels this deployment uses (those with a version), largest first; grid and micro-grid
    when none has one yet."""
    stored = service().store.versions()
    return [lv for lv in ORDER if lv in stored] or [Level.GRID, Level.MICRO_GRID]


def _version_args() -> tuple[Level, int | None]:
    """``?level=…&version=N``: show that version of the level (default the deepest level)."""
    level = Level.parse(request.args["level"]) if request.args.get("level") else None
    version = version_arg("version")
    return level or service().deepest_level(), version


def _labels() -> MapLabels:
    return MapLabels(name=gettext("Name"), code=gettext("Code"), staff=gettext("Staff"),
                     incidents=gettext("Incidents"), heat=gettext("Incident heatmap"),
                     unassigned=gettext("Outside every unit"))


def _map_layer(layer: Layer, frame: pd.DataFrame) -> MapLayer:
    units = gpd.GeoDataFrame({
        "code": layer.units["code"], "name": layer.units["name"],
        "staff": [staff_of(p)["staff"] or "" for p in layer.units["properties"]],
        "incident_count": unit_counts(layer, frame),
    }, geometry=layer.units.geometry, crs=4326)
    return MapLayer(level=layer.level, title=level_title(layer.level), units=units)
