"""Pages for people: the map with its filters, the boundary upload, review and history."""
from __future__ import annotations

import geopandas as gpd
import pandas as pd
from flask import Blueprint, current_app, redirect, render_template, request, url_for
from flask_babel import get_locale, gettext
from shapely import Point

from .. import categories
from ..boundaries import Layer, staff_of
from ..errors import GridmapError
from ..levels import ORDER, Level
from ..maps import MapLabels, MapLayer, ReviewLabels, build_map, build_review_map, render_parts
from ..service import SaveMode
from ..storage import VersionMeta
from ..validation import Problem, Report
from ..versions import LayerDiff
from . import compared_with, layer_options, opt, parse_query, service, tr, version_arg

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
                           categories=[(c.code, c.label(_lang())) for c in categories.CATEGORIES],
                           total=len(frame), unassigned=int(outside.sum()),
                           ranking=_ranking(layers, frame), shown_version=(level, version) if version else None)


@bp.route("/upload", methods=["GET", "POST"])
def upload():
    """Upload → validation report and diff.  A file without errors is saved as a draft and the
    planner lands on its review page; a file with errors gets the report drawn on a map, and
    nothing is stored."""
    levels = [(lv.value, _level_title(lv)) for lv in ORDER]
    if request.method == "GET":
        return render_template("upload.html", levels=levels, form={}, errors=None)
    form = request.form
    upload_file = request.files.get("file")
    try:
        if upload_file is None or not upload_file.filename:
            return render_template("upload.html", levels=levels, form=form,
                                   errors=(gettext("Choose a boundary file to upload."), [])), 400
        level, data = Level.parse(form.get("level", "")), upload_file.read()
        options = layer_options(form, filename=upload_file.filename)
        try:
            result = service().save_layer(level, data, options, mode=SaveMode.DRAFT)
        except GridmapError as error:
            if error.report is None:
                raise
            preview = service().save_layer(level, data, options, mode=SaveMode.PREVIEW)
            return _review(preview.layer, None, preview.report, preview.diff, meta=None,
                           filename=upload_file.filename), 400
    except GridmapError as error:
        return render_template("upload.html", levels=levels, form=form,
                               errors=(tr(error.summary), [tr(d) for d in error.details])), 400
    return redirect(url_for("pages.version_page", level=level.value, version=result.version), 303)


@bp.get("/layers/<level>/history")
def history(level: str):
    lv = Level.parse(level)
    versions = service().history(lv)
    current = service().store.versions().get(lv)
    return render_template("history.html", level=lv, level_title=_level_title(lv), versions=versions,
                           current=current)


@bp.get("/layers/<level>/versions/<int:version>")
def version_page(level: str, version: int):
    view = service().version(Level.parse(level), version)
    return _review(view.layer, view.before, view.report, view.diff, meta=view.meta)


@bp.get("/layers/<level>/versions/<int:version>/compare")
def compare_page(level: str, version: int):
    lv, other = Level.parse(level), compared_with(version)
    view = service().compare(lv, other, version)
    return _review(view.layer, view.before, None, view.diff, meta=view.meta, compared_with=other)


@bp.post("/layers/<level>/versions/<int:version>/commit")
def commit_page(level: str, version: int):
    lv = Level.parse(level)
    service().commit_draft(lv, version, author=opt(request.form, "author") or "")
    return redirect(url_for("pages.history", level=lv.value), 303)


@bp.post("/layers/<level>/versions/<int:version>/restore")
def restore_page(level: str, version: int):
    lv = Level.parse(level)
    result = service().restore(lv, version, layer_options(request.form, filename=""), mode=SaveMode.DRAFT)
    return redirect(url_for("pages.version_page", level=lv.value, version=result.version), 303)


def _review(layer: Layer, before: Layer | None, report: Report | None, diff: LayerDiff, *,
            meta: VersionMeta | None, filename: str | None = None, compared_with: int | None = None) -> str:
    """The review page: the report and the diff, the old and new outlines and the problems on a map."""
    settings = current_app.config["GRIDMAP_SETTINGS"]
    problems = report.problems if report is not None else []
    fmap = build_review_map(before.units if before is not None else None, layer.units, _problem_frame(problems),
                            labels=_review_labels(before, meta), tiles=settings.tiles,
                            tiles_attribution=settings.tiles_attribution)
    current = service().store.versions().get(layer.level)
    return render_template("review.html", parts=render_parts(fmap), level=layer.level,
                           level_title=_level_title(layer.level), meta=meta, filename=filename, report=report,
                           errors=[tr(p.message) for p in report.errors] if report else [],
                           problems=[(p, tr(p.message)) for p in problems], diff=diff, before=before,
                           current=current, compared_with=compared_with, units=len(layer.units))


def _problem_frame(problems: list[Problem]) -> gpd.GeoDataFrame:
    rows = [(p.severity.value, tr(p.message), p.geometry if p.geometry is not None else Point(p.location))
            for p in problems if p.geometry is not None or p.location is not None]
    return gpd.GeoDataFrame({"severity": [r[0] for r in rows], "message": [r[1] for r in rows]},
                            geometry=gpd.GeoSeries([r[2] for r in rows], crs=4326))


def _review_labels(before: Layer | None, meta: VersionMeta | None) -> ReviewLabels:
    after = gettext("Version %(v)s", v=meta.version) if meta else gettext("Uploaded file")
    old = gettext("Version %(v)s", v=before.version) if before is not None else ""
    return ReviewLabels(before=gettext("Before: %(name)s", name=old), after=gettext("After: %(name)s", name=after),
                        problems=gettext("Problems"), name=gettext("Name"), code=gettext("Code"),
                        problem=gettext("Problem"))


def _version_args() -> tuple[Level, int | None]:
    """``?level=…&version=N``: show that version of the level (default the deepest level)."""
    level = Level.parse(request.args["level"]) if request.args.get("level") else None
    version = version_arg("version")
    return level or service().deepest_level(), version




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
