"""The JSON API.  Every view: parse the request → call the service → shape the answer."""
from __future__ import annotations

import json
import re
import tempfile
from contextlib import contextmanager
from dataclasses import asdict, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterator

import shapely
from flask import Blueprint, Response, abort, g, jsonify, request, stream_with_context, url_for
from flask_babel import gettext
from shapely.geometry import mapping, shape
from werkzeug.datastructures import FileStorage

from .. import categories
from ..accounts import covers_incident
from ..changes import LayerOptions, LayerResult, ParentEdit, SaveMode
from ..errors import N_, Conflict, InvalidInput, NotFound, PreconditionFailed, message, message_from_record
from ..incidents import FileOptions
from ..levels import Level
from ..lifecycle import Step
from ..mapping import ImportMapping
from ..options import clean_options, opt, parse_choice, parse_count, parse_version
from ..service import ReportResult
from ..storage import COUNT_BY, StaffMember, VersionMeta
from . import (
    author,
    compared_with,
    idempotency_key,
    json_object,
    json_payload,
    parse_query,
    service,
    signed_options,
    tr,
    version_arg,
)

bp = Blueprint("api", __name__, url_prefix="/api")


@bp.post("/layers/<level>")
def upload_layer(level: str):
    """A boundary file (multipart ``file``) or an edited level (JSON ``{"geojson": …}``, with
    ``"parent": {"geojson": …, "base_version": N}`` when the level above was edited along): preview
    it, save it as a draft or commit it (``mode``), based on ``base_version`` / ``If-Match``."""
    lv = Level.parse(level)
    parent = None
    if request.is_json:
        body = json_object()
        data, options = geojson_bytes(body.get("geojson")), signed_options(body, filename="edit.geojson")
        parent = _parent_edit(body)
    else:
        upload = _file()
        data, options = upload.read(), signed_options(request.form, filename=upload.filename or "upload.geojson")
        body = request.form
    mode = save_mode(body)
    with precondition():
        result = service().save_layer(lv, data, if_match(options), mode=mode, parent=parent)
    return layer_result(result), 200 if mode is SaveMode.PREVIEW else 201


@bp.get("/layers/<level>")
def get_layer(level: str):
    body = service().layer_geojson(Level.parse(level), version_arg("version"))
    response = jsonify(body)
    response.headers["ETag"] = f'"{body["level"]}-v{body["version"]}"'
    return response


@bp.get("/layers/<level>/versions")
def list_versions(level: str):
    return {"level": Level.parse(level).value,
            "versions": [version_meta(m) for m in service().history(Level.parse(level))]}


@bp.get("/layers/<level>/versions/<id:version>")
def get_version(level: str, version: int):
    """One version with the report and diff it was saved (or committed) with, and its options."""
    view = service().version(Level.parse(level), version)
    return {**version_meta(view.meta), "report": view.report.as_dict(gettext) if view.report else None,
            "diff": view.diff.as_dict(), "against": view.before.version if view.before is not None else None,
            "options": view.options, "change": [version_meta(m) for m in view.members]}


@bp.get("/layers/<level>/versions/<id:version>/compare")
def compare_versions(level: str, version: int):
    other, lv = compared_with(version), Level.parse(level)
    view = service().compare(lv, other, version)
    return {"level": lv.value, "from": other, "to": version, "diff": view.diff.as_dict()}


@bp.post("/layers/<level>/versions/<id:version>/commit")
def commit_version(level: str, version: int):
    body = json_object() if request.is_json else request.form
    with precondition():
        result = service().commit_draft(Level.parse(level), version, author=author(body))
    return layer_result(result), 200


@bp.post("/layers/<level>/versions/<id:version>/restore")
def restore_version(level: str, version: int):
    body = json_object() if request.is_json else request.form
    mode = save_mode(body)
    with precondition():
        result = service().restore(Level.parse(level), version, if_match(signed_options(body, filename="")),
                                   mode=mode)
    return layer_result(result), 200 if mode is SaveMode.PREVIEW else 201


@bp.post("/layers/<level>/versions/<id:version>/clean")
def clean_version(level: str, version: int):
    """Clean a stored version's overlaps and gaps (``gap_width_m``, ``snap_m``) into a new version
    (``mode``: a draft by default)."""
    body = json_object() if request.is_json else request.form
    mode = save_mode(body, default=SaveMode.DRAFT)
    with precondition():
        result = service().clean_version(Level.parse(level), version, clean_options(body),
                                         if_match(signed_options(body, filename="")), mode=mode)
    return layer_result(result), 200 if mode is SaveMode.PREVIEW else 201


@bp.get("/layers/<level>/export")
def export_layer(level: str):
    fmt = (request.args.get("format") or "geojson").strip().lower()
    export = service().export(Level.parse(level), version_arg("version"), fmt)
    return Response(export.data, mimetype=export.media_type,
                    headers={"Content-Disposition": f'attachment; filename="{export.filename}"'})


@bp.get("/layers")
def list_layers():
    return {"layers": [version_meta(m) for m in service().store.layer_meta()]}


@bp.post("/incidents")
def post_incidents():
    if request.files:
        upload = _file()
        form = request.form
        mapping = request.files.get("mapping")
        options = FileOptions(lon_field=opt(form, "lon_field"), lat_field=opt(form, "lat_field"),
                              category=opt(form, "category"), crs=opt(form, "crs"),
                              mapping=ImportMapping.parse(mapping.read(), name=mapping.filename or "mapping")
                              if mapping else None)
        # on the disk, not in this process: a CSV is read from there a chunk at a time (by the import
        # worker, for a big one), so a file of any size never sits whole in the server's memory
        with tempfile.TemporaryDirectory(prefix="gridmap-upload-") as folder:
            path = Path(folder) / "upload"
            upload.save(path)
            result = service().import_incidents(path, filename=upload.filename or "upload.csv", options=options)
    else:
        result = service().report(_json_records(), crs=opt(request.args, "crs"), key=idempotency_key())
    if not result.items:
        raise InvalidInput(message(N_("no incident was stored: every record has a problem")),
                           [message(N_("row {row}: {reason}"), row=e.row, reason=e.as_dict(gettext)["error"])
                            for e in result.errors])
    return report_body(result), 201


#: ``GET /api/incidents``: features per page unless ``limit`` says otherwise, and the most a page may have.
PAGE_DEFAULT, PAGE_MAX = 5_000, 10_000


@bp.get("/incidents")
def get_incidents() -> Response | dict[str, Any]:
    """A page of matching incidents (``limit``, ``after`` = the last id of the previous page, ``bbox``),
    with a ``next`` link while there are more; ``format=ndjson`` streams every one, a Feature a line."""
    query = parse_query(request.args)
    fmt = parse_choice((request.args.get("format") or "geojson").strip().lower(), "format", ["geojson", "ndjson"])
    if fmt == "ndjson":
        pages = service().incident_stream(query)
        lines = (json.dumps(f, ensure_ascii=False, default=str) + "\n" for page in pages for f in page)
        return Response(stream_with_context(lines), mimetype="application/x-ndjson",
                        headers={"Content-Disposition": 'attachment; filename="incidents.ndjson"'})
    limit = parse_count(opt(request.args, "limit"), "limit", default=PAGE_DEFAULT, maximum=PAGE_MAX) or PAGE_DEFAULT
    after = parse_count(opt(request.args, "after"), "after", default=0)
    features, cursor = service().incident_page(query, after=after, limit=limit)
    body: dict[str, Any] = {"type": "FeatureCollection", "features": features, "numberReturned": len(features)}
    if cursor is not None:
        args: dict[str, Any] = {**request.args.to_dict(), "after": cursor, "limit": limit}
        body["next"] = url_for("api.get_incidents", **args)
    return body


@bp.get("/incidents/<id:incident_id>")
def get_incident(incident_id: int) -> dict[str, Any]:
    """One incident with its units, deadline, whether it is overdue, who answers for it and its
    history (the report, then every lifecycle step)."""
    return _translated(service().incident(incident_id))


@bp.post("/incidents/<id:incident_id>/steps")
def take_step(incident_id: int) -> dict[str, Any]:
    """A lifecycle step (``action``, ``actor``, ``note``; ``resolution`` to close, ``rating`` 1–5 to
    rate, ``duplicate_of`` for a duplicate): 409 naming the allowed actions when the incident's
    state does not allow it.  The incident as ``GET /api/incidents/<id>`` gives it."""
    account = g.account
    units = service().incident(incident_id)["properties"]["units"]
    if not covers_incident(account, service().access.staff_unit(account), units):
        abort(403)
    body = json_object()
    body["actor"] = str(body.get("actor") or "").strip() or account.name    # the audit trail has the account
    return _translated(service().take_step(incident_id, Step.parse(body)))


def _translated(feature: dict[str, Any]) -> dict[str, Any]:
    feature["properties"]["responsible"] = gettext(feature["properties"]["responsible"])
    return feature


@bp.get("/incidents/counts")
def count_incidents() -> dict[str, Any]:
    """Matching incidents per ``by=category|day|month`` (counted in the store), with the same filters
    as ``GET /api/incidents``."""
    by = parse_choice((request.args.get("by") or "category").strip().lower(), "by", COUNT_BY) or "category"
    counts = service().incident_counts(parse_query(request.args), by)
    return {"by": by, "total": sum(counts.values()), "counts": [{"key": k, "count": n} for k, n in counts.items()]}


@bp.get("/categories")
def list_categories():
    return {"categories": [{"code": c.code, "zh": c.label_zh, "en": c.label_en} for c in categories.CATEGORIES]}


@bp.get("/staff")
def list_staff() -> dict[str, Any]:
    """The staff registry: everyone attached to a unit, active or not."""
    return {"staff": [asdict(m) for m in service().staff()]}


@bp.post("/staff")
def add_staff() -> tuple[dict[str, Any], int]:
    """Register a person for a unit: JSON ``level``, ``unit``, ``role`` (grid_worker, grid_leader,
    community), ``name``, ``phone``."""
    body = json_object()
    member = service().register_staff(StaffMember(
        level=Level.parse(str(body.get("level") or "")).value, unit_code=str(body.get("unit") or "").strip(),
        role=str(body.get("role") or "").strip(), name=str(body.get("name") or "").strip(),
        phone=str(body.get("phone") or "").strip()))
    return asdict(member), 201


@bp.patch("/staff/<id:member_id>")
def change_staff(member_id: int) -> dict[str, Any]:
    """Change a registered person: any of ``name``, ``phone``, ``role``, ``level``, ``unit``, ``active``."""
    body = json_object()
    known = {m.id: m for m in service().staff()}
    if member_id not in known:
        raise NotFound(message(N_("there is no staff member {id}"), id=member_id))
    was = known[member_id]
    active = body.get("active", was.active)
    if not isinstance(active, bool):
        raise InvalidInput(message(N_("active={value!r} is not valid; expected true or false"), value=active))
    def given(key: str, now: str) -> str:          # absent or null: unchanged
        value = body.get(key)
        return now if value is None else str(value).strip()
    member = replace(was, level=Level.parse(given("level", was.level)).value, unit_code=given("unit", was.unit_code),
                     role=given("role", was.role), name=given("name", was.name), phone=given("phone", was.phone),
                     active=active)
    return asdict(service().update_staff(member, moved=(member.level, member.unit_code) != (was.level, was.unit_code)))


@bp.get("/lookup")
def lookup():
    lon, lat = _float("lon"), _float("lat")
    level = request.args.get("level")
    units = service().lookup(lon, lat, level=Level.parse(level) if level else None, version=version_arg("version"))
    return {"lon": lon, "lat": lat, "assigned": bool(units), "units": units}


def version_time(utc: datetime | None) -> str | None:
    """A stored UTC time with the deployment's UTC offset (as the pages show it)."""
    return None if utc is None else utc.replace(tzinfo=timezone.utc).astimezone(service().tz).isoformat(
        timespec="seconds")


def layer_result(result: LayerResult) -> dict[str, Any]:
    url = url_for("review.version_page", level=result.level.value, version=result.version) if result.version else None
    body = {"level": result.level.value, "status": result.status.value, "version": result.version,
            "based_on": result.based_on, "url": url, "count": result.count, "area_m2": round(result.area_m2, 1),
            "parent_source": result.parent_source, "reassigned": result.reassigned, "assigned": result.assigned,
            "unassigned": result.unassigned, "report": result.report.as_dict(gettext),
            "diff": result.diff.as_dict()}
    if result.parent is not None:
        body["parent"] = layer_result(result.parent)
    return body


def version_meta(meta: VersionMeta) -> dict[str, Any]:
    """A version's line; times with the deployment's UTC offset (as the pages show them)."""
    return {"level": meta.level.value, "version": meta.version, "status": meta.status.value, "author": meta.author,
            "note": meta.note, "created_at": version_time(meta.created_at),
            "committed_at": version_time(meta.committed_at),
            "committed_by": meta.committed_by, "units": meta.unit_count, "based_on": meta.based_on,
            "restored_from": meta.restored_from, "assigned": meta.assigned, "moved": meta.moved,
            "change": meta.change}


#: A batch with more stored incidents than this is answered with counts, not an item per row; and
#: an answer lists at most this many row errors (all of them are at the import's ``errors_url``).
ITEMS_MAX, ERRORS_MAX = 1_000, 100


def report_body(result: ReportResult) -> dict[str, Any]:
    """What a batch did: counts, then an item per stored incident (in row order) when there are at
    most :data:`ITEMS_MAX`, and the first :data:`ERRORS_MAX` refused rows with a link to the rest."""
    body: dict[str, Any] = {"created": result.created, "existing": result.stored - result.created,
                            "refused": len(result.errors), "outside": int(result.unassigned.sum())}
    if result.stored <= ITEMS_MAX:
        body["items"] = [{"row": i.row, "id": i.id, "created": i.created, "units": i.units,
                          "assigned": any(v is not None for v in i.units.values())} for i in result.items]
    body["errors"] = [e.as_dict(gettext) for e in result.errors[:ERRORS_MAX]]
    if result.import_id is not None:
        body["import_id"] = result.import_id
        body["import_url"] = url_for("api.get_import", run_id=result.import_id)
    return body


@bp.get("/imports/<id:run_id>")
def get_import(run_id: int) -> dict[str, Any]:
    """A file import: its counts and every row it refused (``offset``, ``limit``: a page of them)."""
    run = service().import_run(run_id)
    offset = parse_count(opt(request.args, "offset"), "offset", default=0)
    limit = parse_count(opt(request.args, "limit"), "limit", default=PAGE_DEFAULT, maximum=PAGE_MAX)
    errors = [{"row": e["row"], "error": "; ".join(tr(message_from_record(r)) for r in e["reasons"])}
              for e in run.errors[offset:offset + limit]]
    return {"id": run.id, "filename": run.filename, "rows": run.rows, "created": run.created,
            "existing": run.existing, "refused": len(run.errors), "offset": offset, "errors": errors,
            "created_at": version_time(run.created_at)}


def _file() -> FileStorage:
    upload = request.files.get("file")
    if upload is None or not upload.filename:
        raise InvalidInput(message(N_("expected a multipart upload with a field named 'file'; got fields: {got}"),
                                   got=", ".join(request.files) or "none"))
    return upload


def save_mode(form: Any, default: SaveMode = SaveMode.COMMIT) -> SaveMode:
    value = (opt(form, "mode") or default.value).lower()
    return SaveMode(parse_choice(value, "mode", [m.value for m in SaveMode]))


def if_match(options: LayerOptions) -> LayerOptions:
    """``If-Match: "grid-v3"`` (the ETag of GET /api/layers/grid) is the base version too."""
    header = request.headers.get("If-Match")
    if not header:
        return options
    found = re.fullmatch(r'(?:W/)?"?(?:[a-z_]+-v)?([0-9]{1,9})"?', header.strip())
    if found is None:
        raise InvalidInput(message(N_("If-Match: {value!r} is not a version; expected the ETag of the layer "
                                      "(e.g. \"grid-v3\")"), value=header))
    return replace(options, base_version=int(found[1]))


@contextmanager
def precondition() -> Iterator[None]:
    """A stale If-Match is 412 Precondition Failed; a stale base_version stays 409 Conflict."""
    try:
        yield
    except Conflict as error:
        if request.headers.get("If-Match") and error.report is None:
            raise PreconditionFailed(error.summary, error.details) from None
        raise


def geojson_bytes(geojson: Any, key: str = "geojson") -> bytes:
    if not isinstance(geojson, dict) or geojson.get("type") != "FeatureCollection":
        raise InvalidInput(message(N_("expected \"{key}\": a GeoJSON FeatureCollection; got {got}"), key=key,
                                   got=type(geojson).__name__ if geojson is not None else "nothing"))
    return json.dumps(_wound(geojson), ensure_ascii=False).encode()


def _parent_edit(body: dict[str, Any]) -> ParentEdit | None:
    """``"parent": {"geojson": …, "base_version": N}``: the level above, edited along."""
    parent = body.get("parent")
    if parent is None:
        return None
    if not isinstance(parent, dict):
        raise InvalidInput(message(N_("expected \"parent\": an object with \"geojson\" and \"base_version\"; "
                                      "got {got}"), got=type(parent).__name__))
    return ParentEdit(geojson_bytes(parent.get("geojson"), "parent.geojson"),
                      parse_version(opt(parent, "base_version"), "parent.base_version", minimum=0))


def _wound(collection: dict[str, Any]) -> dict[str, Any]:
    """An edit from the map has no winding rule (Leaflet keeps the planner's click order), so its
    rings are wound the RFC 7946 way here rather than reported as wrongly oriented."""
    if not isinstance(collection.get("features"), list):
        return collection                  # not a list of features: the reader says so
    features = []
    for feature in collection["features"]:
        try:
            geometry = shapely.orient_polygons(shape(feature["geometry"]))
            feature = {**feature, "geometry": mapping(geometry)}
        except Exception:  # noqa: BLE001 - a malformed geometry is left for the reader to report
            pass
        features.append(feature)
    return {**collection, "features": features}


def _json_records() -> list[Any]:
    payload = json_payload()
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
        if not value.isascii():
            raise ValueError(value)        # float() also reads other scripts' digits
        return float(value)
    except ValueError:
        raise InvalidInput(message(N_("{key}={value!r} is not a number; expected decimal degrees (WGS84)"),
                                   key=key, value=value)) from None
