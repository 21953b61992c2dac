"""The review page: what a version (or a refused upload) is, as the planner saw it at saving —
its validation report grouped by kind, what cleaning changed, the options it was saved with and
its diff against the version it was based on, with the old and new outlines and the problems
on a map — and the two JSON endpoints the page pages its long lists from.

The page stays small whatever the size of the level (Boston's 255 precincts: 1.3 MB before):
each list shows its first :data:`PAGE` rows; the rest of a stored version's lists come from
``GET /api/layers/<level>/versions/<n>/problems`` and ``…/diff`` when the planner asks, and
its outlines from ``GET /api/outlines/<level>?version=N`` (simplified for display, built once).
A refused upload and a comparison are stored nowhere as they are shown, so their rest rides along
in the page, compactly.
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any, Mapping

import numpy as np
from flask import Blueprint, render_template, request, url_for
from flask_babel import gettext

from ..changes import LayerOptions, LayerResult
from ..cleaning import CleanOptions
from ..errors import N_
from ..layer import Layer
from ..levels import Level
from ..maps import ReviewLabels, build_review_map, render_parts, review_outlines, review_shape
from ..options import opt, parse_choice, parse_count
from ..problems import Problem, Report, Severity
from ..storage import VersionMeta, VersionStatus
from ..versions import LayerDiff
from . import basemap_config, compared_with, level_title, service, tr

bp = Blueprint("review", __name__)

PAGE = 20               # rows of a list the page shows at first
MAX_LIMIT = 1000        # rows one request for more may ask for
EMBED_MAX = 200         # rows of a list a page that cannot fetch more carries
OUTLINES_MAX = 2000     # beyond this many units, such a page draws only the units its problems name
PARTS = ("added", "removed", "renamed", "reshaped", "moves")
COVERAGE_KINDS = ("overlap", "gap")


@dataclass
class _Review:
    """Everything one review page shows; ``meta`` is None for a refused upload."""

    layer: Layer
    before: Layer | None
    report: Report | None
    diff: LayerDiff
    meta: VersionMeta | None = None
    members: list[VersionMeta] = field(default_factory=list)
    options: Mapping[str, Any] = field(default_factory=dict)
    filename: str | None = None
    form_url: str | None = None
    compared_with: int | None = None
    stored: bool = False          # the report and diff can be fetched again by version number


@bp.get("/layers/<level>/versions/<id:version>")
def version_page(level: str, version: int):
    view = service().version(Level.parse(level), version)
    return _render(_Review(view.layer, view.before, view.report, view.diff, meta=view.meta, members=view.members,
                           options=view.options, stored=True))


@bp.get("/layers/<level>/versions/<id:version>/compare")
def compare_page(level: str, version: int):
    lv, other = Level.parse(level), compared_with(version)
    view = service().compare(lv, other, version)
    return _render(_Review(view.layer, view.before, None, view.diff, meta=view.meta, compared_with=other))


def review_page(result: LayerResult, *, options: LayerOptions, form_url: str) -> str:
    """The report of an upload that was refused (nothing stored), with the way back to the form."""
    before = service().layers().get(result.level)
    filename = options.filename
    tolerance = options.tolerance_m2 if options.tolerance_m2 is not None else service().tolerance_m2
    return _render(_Review(result.layer, before, result.report, result.diff, filename=filename, form_url=form_url,
                           options=replace(options, tolerance_m2=tolerance).record()))


@bp.get("/api/layers/<level>/versions/<id:version>/problems")
def version_problems(level: str, version: int):
    """A page of a stored version's problems as the review page lists them (errors first, by
    kind): ``kind=`` and ``severity=`` pick a group, ``offset=`` and ``limit=`` the rows.  Each
    problem has its translated message and ``shape`` (see :func:`gridmap.maps.review_shape`)."""
    lv = Level.parse(level)
    kind, severity = opt(request.args, "kind"), _severity(opt(request.args, "severity"))
    offset, limit = _counts()
    report, _ = service().saved_review(lv, version)
    chosen = [p for g in report.groups() if kind in (None, g.kind) and severity in (None, g.severity)
              for p in g.problems]
    return {"level": lv.value, "version": version, "kind": kind, "severity": severity.value if severity else None,
            "total": len(chosen), "offset": offset, "limit": limit,
            "problems": [_problem_row(p, offset + i) for i, p in enumerate(chosen[offset:offset + limit])]}


@bp.get("/api/layers/<level>/versions/<id:version>/diff")
def version_diff(level: str, version: int):
    """A page of one part of a stored version's diff (``part=added|removed|renamed|reshaped|moves``),
    as saved with the version; ``offset=`` and ``limit=`` pick the rows."""
    lv = Level.parse(level)
    part = parse_choice(opt(request.args, "part") or "", "part", PARTS) or ""
    offset, limit = _counts()
    rows = _part_rows(service().saved_review(lv, version)[1], part)
    return {"level": lv.value, "version": version, "part": part, "total": len(rows), "offset": offset,
            "limit": limit, "rows": rows[offset:offset + limit]}


# -- the page ----------------------------------------------------------------------------------

def _render(review: _Review) -> str:
    fmap = build_review_map(_bounds(review), tiles=None)          # tiles: static/basemap.js
    groups = _groups(review.report, embed=not review.stored)
    parts = _parts(review.diff, embed=not review.stored)
    cleaning = _cleaning(review)
    return render_template("review.html", parts=render_parts(fmap), r=review, level=review.layer.level,
                           meta=review.meta, report=review.report, diff=review.diff, before=review.before,
                           groups=groups, diff_parts=parts, cleaning=cleaning, state=_state(review),
                           options=_option_rows(review.options), clean_defaults=CleanOptions(),
                           data=_page_data(review, groups, parts, cleaning))


def _bounds(review: _Review) -> list[float] | None:
    boxes = [layer.units.total_bounds for layer in (review.layer, review.before) if layer is not None]
    boxes = [b for b in boxes if np.isfinite(b).all()]
    if not boxes:
        return None
    stacked = np.vstack(boxes)
    return [*stacked[:, :2].min(axis=0).tolist(), *stacked[:, 2:].max(axis=0).tolist()]


def _groups(report: Report | None, *, embed: bool) -> list[dict[str, Any]]:
    """The report's groups, errors first: the first rows for the page, the rest embedded when
    they cannot be fetched later."""
    groups = []
    for group in report.groups() if report is not None else []:
        listed = group.problems[:EMBED_MAX] if embed else group.problems
        rows = [_problem_row(p, i) for i, p in enumerate(listed if embed else listed[:PAGE])]
        groups.append({"key": f"{group.severity.value}-{group.kind}", "kind": group.kind,
                       "severity": group.severity.value, "title": _kind_title(group.kind),
                       "total": len(group.problems), "listed": len(listed), "rows": rows[:PAGE],
                       "rest": rows[PAGE:] if embed else None})
    return groups


def _problem_row(problem: Problem, index: int) -> dict[str, Any]:
    """A problem as the page lists it (what is missing is left out: rows ride in the page)."""
    return _present({"i": index, "message": tr(problem.message), "feature": problem.feature, "code": problem.code,
                     "size_m2": None if problem.size_m2 is None else round(problem.size_m2, 1),
                     "location": [round(v, 7) for v in problem.location] if problem.location else None,
                     "shape": review_shape(problem.geometry)})


def _parts(diff: LayerDiff, *, embed: bool) -> list[dict[str, Any]]:
    parts = []
    for part in PARTS:
        rows = _part_rows(diff, part)
        listed = rows[:EMBED_MAX] if embed else rows
        parts.append({"part": part, "total": len(rows), "listed": len(listed), "rows": rows[:PAGE],
                      "rest": listed[PAGE:] if embed else None})
    return parts


def _part_rows(diff: LayerDiff, part: str) -> list[dict[str, Any]]:
    if part == "moves":
        return [{"source": m.source, "target": m.target, "count": m.count} for m in diff.moves]
    return [_present({"code": c.code, "name": c.name, "old_name": c.old_name, "area_m2": _m2(c.area_m2),
                      "old_area_m2": _m2(c.old_area_m2)}) for c in getattr(diff, part)]


def _m2(value: float | None) -> float | None:
    return None if value is None else round(value, 1)


def _present(row: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in row.items() if value is not None}


def _cleaning(review: _Review) -> dict[str, Any] | None:
    """What cleaning changed, the largest change of area first (then the most land moved)."""
    cleaning = review.report.cleaning if review.report is not None else None
    if cleaning is None:
        return None
    names = dict(zip(review.layer.units["code"], review.layer.units["name"]))
    changes = sorted(cleaning.changes, key=lambda c: (-abs(c.change_m2), -c.moved_m2, c.code))
    return {"options": cleaning.options, "total": len(changes), "changes": [
        {"code": c.code, "name": names.get(c.code, ""), "before_m2": c.before_m2, "after_m2": c.after_m2,
         "change_m2": c.change_m2, "moved_m2": c.moved_m2} for c in changes[:EMBED_MAX]]}


def _state(review: _Review) -> dict[str, Any]:
    """Whether the version is current, can be committed, and if not, why not."""
    meta = review.meta
    heads = service().store.versions()
    draft = meta is not None and meta.status is VersionStatus.DRAFT
    # a draft (and every version of its change) must still be based on the current version
    members = [meta, *review.members] if meta is not None and draft else []
    stale = [{"level": level_title(m.level), "version": heads[m.level]}
             for m in members if m.level in heads and m.based_on != heads[m.level]]
    errors = review.report is not None and not review.report.ok
    coverage = review.report is not None and any(p.kind in COVERAGE_KINDS for p in review.report.problems)
    return {"draft": draft, "committed": meta is not None and meta.status is VersionStatus.COMMITTED,
            "current": meta is not None and heads.get(meta.level) == meta.version, "stale": stale,
            "errors": errors, "can_commit": draft and not errors and not stale, "coverage": coverage,
            "can_clean": review.stored and (draft or coverage),
            "clean_again": _clean_again_url(review) if coverage and not review.stored else None}


def _clean_again_url(review: _Review) -> str | None:
    """The upload form again with cleaning ticked, unless it already was."""
    url = review.form_url
    if url is None or "clean" in review.options:
        return None
    return url + ("&" if "?" in url else "?") + "clean=1"


def _option_rows(options: Mapping[str, Any]) -> list[tuple[str, str]]:
    """The options a version was saved with, labelled as the upload form labels them."""
    from .pages import upload_labels  # pages imports this module: a top-level import would be circular
    labels = {**upload_labels(), "filename": gettext("File")}
    rows = []
    for key, value in options.items():
        if key == "clean":
            clean = CleanOptions.from_dict(value)
            value = gettext("gaps narrower than %(gap)s m filled, corners closer than %(snap)s m snapped",
                            gap=_number(clean.gap_width_m), snap=_number(clean.snap_m))
        elif isinstance(value, bool):
            value = gettext("yes") if value else gettext("no")
        elif isinstance(value, float):
            value = _number(value)
        rows.append((labels.get(key, key), str(value)))
    return rows


def _number(value: float) -> str:
    return f"{value:g}"


def _page_data(review: _Review, groups: list[dict[str, Any]], parts: list[dict[str, Any]],
               cleaning: dict[str, Any] | None) -> dict[str, Any]:
    """What static/review.js needs: where the outlines and the rest of each list come from, the
    shapes of the rows on the page, and the labels it writes."""
    level = review.layer.level.value
    api: dict[str, Any] | None = ({"level": level, "version": review.meta.version}
                                  if review.stored and review.meta else None)
    return {"basemap": basemap_config(),
        # stored versions' outlines come simplified for display, built once per version (as the map's)
        "after": {"url": url_for("mapdata.level_outlines", level=level, version=review.meta.version)} if review.meta
        else {"units": review_outlines(_drawn_units(review))},
        "before": {"url": url_for("mapdata.level_outlines", level=level, version=review.before.version)}
        if review.before is not None and review.before.version is not None else None,
        "problemsUrl": url_for("review.version_problems", **api) if api else None,
        "diffUrl": url_for("review.version_diff", **api) if api else None,
        "groups": {g["key"]: _group_data(g) for g in groups},
        "parts": {p["part"]: {"total": p["listed"], "rest": p["rest"]} for p in parts},
        "cleaned": [c["code"] for c in cleaning["changes"]] if cleaning else [],
        "labels": _script_labels(review),
    }


def _group_data(group: dict[str, Any]) -> dict[str, Any]:
    """A group for the script: the shapes of the rows on the page (their text is in the table)."""
    shapes = [_present({"i": row["i"], "shape": row.get("shape"), "location": row.get("location")})
              for row in group["rows"]]
    return {"kind": group["kind"], "severity": group["severity"], "total": group["listed"], "shapes": shapes,
            "rest": group["rest"]}


def _drawn_units(review: _Review) -> Any:
    """The outlines a page that carries them draws: every unit, or beyond :data:`OUTLINES_MAX` only
    those its listed problems name (10,000 outlines would be megabytes of page)."""
    units = review.layer.units
    if len(units) <= OUTLINES_MAX or review.report is None:
        return units
    named = {c for g in review.report.groups() for p in g.problems[:EMBED_MAX] for c in (p.code, *p.codes)}
    return units[units["code"].isin(named)]


def _script_labels(review: _Review) -> dict[str, str]:
    after = gettext("Version %(v)s", v=review.meta.version) if review.meta else gettext("Uploaded file")
    old = gettext("Version %(v)s", v=review.before.version) if review.before is not None else ""
    overlays = ReviewLabels(before=gettext("Before: %(name)s", name=old), after=gettext("After: %(name)s", name=after),
                            problems=gettext("Problems"), cleaned=gettext("Cleaned units"), name=gettext("Name"),
                            code=gettext("Code"))
    return {**overlays.as_dict(), "more": gettext("Show more (%(n)s not shown)", n="{n}"),
            "loading": gettext("Loading…"), "failed": gettext("Could not load the rest: %(reason)s", reason="{reason}"),
            "outside": gettext("outside every unit"), "show": gettext("Show on the map"),
            **{part: gettext(part) for part in ("added", "removed", "renamed", "reshaped")}}


def _severity(value: str | None) -> Severity | None:
    chosen = parse_choice(value, "severity", [s.value for s in Severity])
    return Severity(chosen) if chosen else None


def _counts() -> tuple[int, int]:
    """``offset=`` and ``limit=`` of a page of rows."""
    return (parse_count(opt(request.args, "offset"), "offset", default=0),
            parse_count(opt(request.args, "limit"), "limit", default=PAGE, maximum=MAX_LIMIT))


def _kind_title(kind: str) -> str:
    title = KIND_TITLES.get(kind)
    return gettext(title) if title else kind


#: A short title for each kind of problem (README.md, "What blocks a commit").
KIND_TITLES = {
    "not_polygon": N_("Not a polygon"), "empty_geometry": N_("Empty geometry"),
    "too_few_points": N_("Too few points"), "bad_geometry": N_("Unreadable geometry"),
    "non_finite": N_("Coordinates that are not numbers"), "missing_code": N_("Missing code"),
    "duplicate_code": N_("Duplicate code"), "swapped_coordinates": N_("Longitude and latitude swapped"),
    "zero_area": N_("No area"), "overlap": N_("Overlaps"), "unknown_parent": N_("Unknown parent code"),
    "cleaned_away": N_("No land left after cleaning"), "invalid_geometry": N_("Invalid geometry, repaired"),
    "z_dropped": N_("3D coordinates dropped"), "orientation": N_("Ring direction normalised"),
    "missing_name": N_("Missing name"), "gap": N_("Gaps"), "outside_parent": N_("Outside the parent unit"),
    "uncovered_parent": N_("Parent land no unit covers"), "no_parent": N_("No parent unit"),
    "outside_service_area": N_("Outside the service area"), "too_complex": N_("Too intricate to check"),
    "not_repaired": N_("Invalid geometry, not repaired"), "out_of_range": N_("Beyond longitude and latitude"),
    "file_note": N_("Notes on reading the file"),
}
