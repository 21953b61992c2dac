"""Pages for people: the map with its filters, and the boundary upload form."""
from __future__ import annotations

import geopandas as gpd
import pandas as pd
from flask import Blueprint, current_app, render_template, request
from flask_babel import get_locale, gettext

from .. import categories
from ..boundaries import Layer, staff_of
from ..errors import GridmapError
from ..levels import ORDER, Level
from ..maps import MapLabels, MapLayer, build_map, render_parts
from ..service import LayerOptions
from . import parse_query, service, tr

bp = Blueprint("pages", __name__)


@bp.after_app_request
def remember_language(response):
    lang = request.args.get("lang")
    if lang in ("zh", "en"):
        response.set_cookie("lang", lang, max_age=365 * 24 * 3600, samesite="Lax")
    return response


@bp.app_context_processor
def language() -> dict[str, str]:
    return {"lang": _lang()}


@bp.get("/")
def index():
    query = parse_query(request.args)
    svc = service()
    layers = svc.layers()
    frame = svc.incidents(query)
    levels = [lv.value for lv in layers]
    outside = frame[levels].isna().any(axis=1) if levels else pd.Series(True, index=frame.index)
    settings = current_app.config["GRIDMAP_SETTINGS"]
    fmap = build_map([_map_layer(layer, frame) for layer in layers.values()],
                     frame[["lon", "lat"]].to_numpy(dtype=float),
                     unassigned=frame.loc[outside, ["lon", "lat"]].to_numpy(dtype=float),
                     labels=_labels(), tiles=settings.tiles, tiles_attribution=settings.tiles_attribution)
    return render_template("index.html", parts=render_parts(fmap), args=request.args,
                           categories=[(c.code, c.label(_lang())) for c in categories.CATEGORIES],
                           total=len(frame), unassigned=int(outside.sum()),
                           ranking=_ranking(layers, frame))


@bp.route("/upload", methods=["GET", "POST"])
def upload():
    levels = [(lv.value, _level_title(lv)) for lv in ORDER]
    if request.method == "GET":
        return render_template("upload.html", levels=levels, form={}, summary=None, errors=None)
    form = request.form
    upload_file = request.files.get("file")
    try:
        if upload_file is None or not upload_file.filename:
            return render_template("upload.html", levels=levels, form=form, summary=None,
                                   errors=(gettext("Choose a boundary file to upload."), [])), 400
        summary = service().import_layer(Level.parse(form.get("level", "")), upload_file.read(), LayerOptions(
            filename=upload_file.filename, crs=_opt("crs"), code_field=_opt("code_field"),
            name_field=_opt("name_field"), parent_field=_opt("parent_field"), author=_opt("author") or "",
            note=_opt("note") or ""))
    except GridmapError as error:
        return render_template("upload.html", levels=levels, form=form, summary=None,
                               errors=(tr(error.summary), [tr(d) for d in error.details])), 400
    return render_template("upload.html", levels=levels, form={}, errors=None, summary=summary,
                           level_title=_level_title(summary.level), warnings=[tr(w) for w in summary.warnings])


def _opt(key: str) -> str | None:
    return (request.form.get(key) or "").strip() or None


def _lang() -> str:
    locale = get_locale()
    return locale.language if locale else "zh"


def _level_title(level: Level) -> str:
    return level.label_en if _lang() == "en" else level.label_zh


def _labels() -> MapLabels:
    return MapLabels(name=gettext("Name"), code=gettext("Code"), staff=gettext("Staff"),
                     incidents=gettext("Incidents"), heat=gettext("Incident heatmap"),
                     unassigned=gettext("Outside every unit"))


def _map_layer(layer: Layer, frame: pd.DataFrame) -> MapLayer:
    counts = frame[layer.level.value].value_counts() if layer.level.value in frame else pd.Series(dtype=int)
    units = gpd.GeoDataFrame({
        "code": layer.units["code"], "name": layer.units["name"],
        "staff": [staff_of(p)["staff"] or "" for p in layer.units["properties"]],
        "incident_count": [int(counts.get(code, 0)) for code in layer.units["code"]],
    }, geometry=layer.units.geometry, crs=4326)
    return MapLayer(level=layer.level, title=_level_title(layer.level), units=units)


def _ranking(layers: dict[Level, Layer], frame: pd.DataFrame) -> list[dict]:
    """The ten units of the deepest level with the most incidents (月评比 at a glance)."""
    if not layers:
        return []
    deepest = max(layers, key=lambda lv: lv.depth)
    counts = frame[deepest.value].value_counts() if deepest.value in frame else pd.Series(dtype=int)
    units = layers[deepest].units.set_index("code")
    return [{"code": code, "name": units.at[code, "name"], "count": int(n),
             "staff": staff_of(units.at[code, "properties"])["staff"] or ""}
            for code, n in counts.head(10).items() if code in units.index]
