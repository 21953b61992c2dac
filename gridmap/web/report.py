"""The report form for grid workers (``GET /report``, ``POST /report``): a phone-sized page to put
a point on the map (a tap, or the phone's position), pick the category, describe it and add a
photo; the answer says at once which micro-grid the report fell in and who is responsible.

The photo is checked by what it is (its first bytes: JPEG, PNG or WebP), not by its name, and by
size (:data:`PHOTO_MAX_BYTES`), and stored with the incident in the same transaction
(``GET /api/incidents/<id>/photo`` serves it).  Positions come from the browser in WGS84 (the
Geolocation API's system), so nothing is shifted here.
"""
from __future__ import annotations

import math
import uuid
from typing import Any

from flask import Blueprint, Response, redirect, render_template, request, url_for
from flask_babel import gettext

from .. import categories
from ..errors import N_, GridmapError, InvalidInput, NotFound, message
from ..levels import Level, deepest
from . import STATUS_LABELS, basemap_config, idempotency_key, language, level_title, service, tr

bp = Blueprint("report", __name__)

#: The largest photo accepted (a phone's photo is 2–5 MB).
PHOTO_MAX_BYTES = 8 * 1024 * 1024
#: What a photo may be, by its first bytes.
PHOTO_TYPES = ((b"\xff\xd8\xff", "image/jpeg"), (b"\x89PNG\r\n\x1a\n", "image/png"))


@bp.get("/report")
def form() -> str:
    return _form(request.args)


@bp.post("/report")
def submit() -> Any:
    form = request.form
    try:
        reporter = (form.get("reporter") or "").strip()[:100]
        description = (form.get("description") or "").strip()[:2000]
        # the source says where reports come from (a filter offers each): the form; who used it goes with the text
        by = gettext("reported by {name}").format(name=reporter)
        record = {"category": (form.get("category") or "").strip(), "lon": _coordinate(form, "lon"),
                  "lat": _coordinate(form, "lat"), "source": gettext("report form"),
                  "description": f"{description} ({by})" if reporter else description}
        photo = _photo()
        result = service().report([record], photo=photo, key=idempotency_key(form.get("idempotency_key") or ""))
        if not result.items:
            raise InvalidInput(message(N_("the report was not stored")), [e.reasons[0] for e in result.errors])
    except GridmapError as error:
        return _form(form, error=(tr(error.summary), [tr(d) for d in error.details])), 400
    return redirect(url_for("report.done", incident_id=result.items[0].id), 303)


@bp.get("/report/<id:incident_id>")
def done(incident_id: int) -> str:
    """What became of a report: its number, the units it fell in, who answers for it."""
    svc = service()
    feature = svc.incident(incident_id)
    lon, lat = feature["geometry"]["coordinates"]
    units = svc.lookup(lon, lat)
    return render_template("report_done.html", incident=feature["properties"], incident_id=incident_id,
                           units=[{**u, "title": level_title_of(u["level"])} for u in units],
                           photo=url_for("report.photo", incident_id=incident_id) if svc.photo(incident_id) else None,
                           lon=lon, lat=lat, status_label=gettext(STATUS_LABELS.get(feature["properties"]["status"],
                                                                                    feature["properties"]["status"])))


@bp.get("/api/incidents/<id:incident_id>/photo")
def photo(incident_id: int) -> Response:
    found = service().photo(incident_id)
    if found is None:
        raise NotFound(message(N_("incident {id} has no photo"), id=incident_id))
    content_type, data = found
    return Response(data, mimetype=content_type, headers={"Cache-Control": "private, max-age=86400",
                                                           "X-Content-Type-Options": "nosniff"})


def level_title_of(value: str) -> str:
    return level_title(Level.parse(value))


def _form(values: Any, error: tuple[str, list[str]] | None = None) -> str:
    svc = service()
    layers = svc.layers()
    level = deepest(layers)
    config = {
        "basemap": basemap_config(),
        "outlines": url_for("mapdata.level_outlines", level=level.value) if level else None,
        "bounds": [float(v) for v in layers[level].units.total_bounds] if level else None,
        "labels": {"placed": gettext("Position: {lat}, {lon}"), "locating": gettext("Finding your position…"),
                   "noLocation": gettext("Your position is not available here; tap the map instead."),
                   "pick": gettext("Tap the map where the problem is.")}}
    # a double tap or a resent form stores the report once
    key = values.get("idempotency_key") or uuid.uuid4().hex
    return render_template("report.html", values=values, error=error, config=config, key=key,
                           categories=[(c.code, c.label(language())) for c in categories.CATEGORIES])


def _coordinate(form: Any, key: str) -> float:
    text = (form.get(key) or "").strip()
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not math.isfinite(value):
        raise InvalidInput(message(N_("no position: tap the map where the problem is, or use your position")))
    return value


def _photo() -> tuple[str, bytes] | None:
    upload = request.files.get("photo")
    if upload is None or not upload.filename:
        return None
    data = upload.read(PHOTO_MAX_BYTES + 1)
    if len(data) > PHOTO_MAX_BYTES:
        raise InvalidInput(message(N_("the photo is larger than {limit} MB; send a smaller one"),
                                   limit=PHOTO_MAX_BYTES // (1024 * 1024)))
    for magic, content_type in PHOTO_TYPES:
        if data.startswith(magic):
            return content_type, data
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp", data
    raise InvalidInput(message(N_("{file} is not a photo; expected a JPEG, PNG or WebP image"),
                               file=upload.filename))
