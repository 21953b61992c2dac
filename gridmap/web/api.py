"""The JSON API.  Every view: parse the request → call the service → shape the answer."""
from __future__ import annotations

from typing import Any

from flask import Blueprint, request
from flask_babel import gettext
from werkzeug.datastructures import FileStorage

from .. import categories
from ..errors import N_, InvalidInput, message
from ..incidents import FileOptions
from ..levels import Level
from ..service import LayerOptions, LayerSummary, ReportResult
from . import parse_query, service, tr

bp = Blueprint("api", __name__, url_prefix="/api")


@bp.post("/layers/<level>")
def upload_layer(level: str):
    upload = _file()
    form = request.form
    summary = service().import_layer(Level.parse(level), upload.read(), LayerOptions(
        filename=upload.filename or "upload.geojson", crs=_opt(form, "crs"), code_field=_opt(form, "code_field"),
        name_field=_opt(form, "name_field"), parent_field=_opt(form, "parent_field"),
        author=_opt(form, "author") or "", note=_opt(form, "note") or ""))
    return layer_summary(summary), 201


@bp.get("/layers/<level>")
def get_layer(level: str):
    return service().layer_geojson(Level.parse(level))


@bp.get("/layers")
def list_layers():
    return {"layers": [{"level": m.level.value, "version": m.version, "units": m.unit_count,
                        "created_at": m.created_at.isoformat(timespec="seconds"), "author": m.author,
                        "note": m.note} for m in service().store.layer_meta()]}


@bp.post("/incidents")
def post_incidents():
    if request.files:
        upload = _file()
        form = request.form
        result = service().import_incidents(upload.read(), filename=upload.filename or "upload.csv",
                                            options=FileOptions(lon_field=_opt(form, "lon_field"),
                                                                lat_field=_opt(form, "lat_field"),
                                                                category=_opt(form, "category")))
    else:
        result = service().report(_json_records())
    if not result.items:
        raise InvalidInput(message(N_("no incident was stored: every record has a problem")),
                           [message(N_("row {row}: {reason}"), row=e.row, reason=e.as_dict(gettext)["error"])
                            for e in result.errors])
    return report_body(result), 201


@bp.get("/incidents")
def get_incidents():
    return service().incidents_geojson(parse_query(request.args))


@bp.get("/categories")
def list_categories():
    return {"categories": [{"code": c.code, "zh": c.label_zh, "en": c.label_en} for c in categories.CATEGORIES]}


@bp.get("/lookup")
def lookup():
    lon, lat = _float("lon"), _float("lat")
    units = service().lookup(lon, lat)
    return {"lon": lon, "lat": lat, "assigned": bool(units), "units": units}


def layer_summary(summary: LayerSummary) -> dict[str, Any]:
    return {"level": summary.level.value, "version": summary.version, "count": summary.count,
            "area_m2": round(summary.area_m2, 1), "parent_source": summary.parent_source,
            "reassigned": summary.reassigned, "unassigned": summary.unassigned,
            "warnings": [tr(w) for w in summary.warnings]}


def report_body(result: ReportResult) -> dict[str, Any]:
    return {"created": result.created,
            "items": [{"row": i.row, "id": i.id, "created": i.created, "units": i.units,
                       "assigned": any(v is not None for v in i.units.values())} for i in result.items],
            "errors": [e.as_dict(gettext) for e in result.errors]}


def _file() -> FileStorage:
    upload = request.files.get("file")
    if upload is None or not upload.filename:
        raise InvalidInput(message(N_("expected a multipart upload with a field named 'file'; got fields: {got}"),
                                   got=", ".join(request.files) or "none"))
    return upload


def _opt(form: Any, key: str) -> str | None:
    value = (form.get(key) or "").strip()
    return value or None


def _json_records() -> list[Any]:
    payload = request.get_json(silent=True)
    if payload is None:
        raise InvalidInput(message(N_("expected a JSON object or list of objects (Content-Type: "
                                      "application/json) or a multipart 'file'; got {got}"),
                                   got=request.content_type or "no body"))
    records = payload if isinstance(payload, list) else [payload]
    if not records:
        raise InvalidInput(message(N_("the list of incidents is empty")))
    return records


def _float(key: str) -> float:
    value = request.args.get(key, "").strip()
    try:
        return float(value)
    except ValueError:
        raise InvalidInput(message(N_("{key}={value!r} is not a number; expected decimal degrees (WGS84)"),
                                   key=key, value=value)) from None
