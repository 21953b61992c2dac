"""The review page: what a version (or a refused upload) is, as the planner saw it at saving —
its validation report and its diff against the version it was based on, with the old and new
outlines and the problems on a map."""
from __future__ import annotations

import geopandas as gpd
from flask import Blueprint, current_app, render_template
from flask_babel import gettext
from shapely import Point

from ..changes import LayerResult
from ..layer import Layer
from ..levels import Level
from ..maps import ReviewLabels, build_review_map, render_parts
from ..problems import Problem, Report
from ..service import VersionView
from ..storage import VersionMeta
from ..versions import LayerDiff
from . import compared_with, service, tr

bp = Blueprint("review", __name__)


@bp.get("/layers/<level>/versions/<int:version>")
def version_page(level: str, version: int):
    view = service().version(Level.parse(level), version)
    return _review(view.layer, view.before, view.report, view.diff, meta=view.meta, view=view)


@bp.get("/layers/<level>/versions/<int:version>/compare")
def compare_page(level: str, version: int):
    lv, other = Level.parse(level), compared_with(version)
    view = service().compare(lv, other, version)
    return _review(view.layer, view.before, None, view.diff, meta=view.meta, compared_with=other)


def review_page(result: LayerResult, *, filename: str, form_url: str) -> str:
    """The report of an upload that was refused (nothing stored), with the way back to the form."""
    before = service().layers().get(result.level)
    return _review(result.layer, before, result.report, result.diff, meta=None, filename=filename, form_url=form_url)


def _review(layer: Layer, before: Layer | None, report: Report | None, diff: LayerDiff, *,
            meta: VersionMeta | None, filename: str | None = None, compared_with: int | None = None,
            form_url: str | None = None, view: VersionView | None = None) -> str:
    settings = current_app.config["GRIDMAP_SETTINGS"]
    problems = report.problems if report is not None else []
    fmap = build_review_map(before.units if before is not None else None, layer.units, _problem_frame(problems),
                            labels=_review_labels(before, meta), tiles=settings.tiles,
                            tiles_attribution=settings.tiles_attribution)
    current = service().store.versions().get(layer.level)
    return render_template("review.html", parts=render_parts(fmap), level=layer.level,
                           meta=meta, filename=filename, report=report,
                           errors=[tr(p.message) for p in report.errors] if report else [],
                           problems=[(p, tr(p.message)) for p in problems], diff=diff, before=before,
                           current=current, compared_with=compared_with, units=len(layer.units),
                           form_url=form_url, view=view)


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



