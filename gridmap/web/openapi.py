"""The OpenAPI 3.1 description of the JSON API, served at ``GET /api/openapi.json``.

It describes every ``/api/…`` endpoint: its path and query parameters as the views parse them
(the same enums and ranges), its request bodies (JSON, and multipart where a file is sent), the
statuses it answers and the JSON it answers with.  Open311 (``/open311/v2``) is left out: it
follows the GeoReport v2 specification, not this one.  ``tests/test_openapi.py`` runs
Schemathesis against the app with it, so the description and the views do not drift apart.

Built as data here (not a YAML file) so it shares the views' own constants: the categories,
statuses, levels, page sizes and limits.
"""
from __future__ import annotations

from typing import Any

from flask import Blueprint

from .. import categories
from ..changes import ResultStatus, SaveMode
from ..choropleth import MEASURES, SCHEMES
from ..hexagons import RESOLUTIONS
from ..hotspots import PER, SpotClass, Trend
from ..incidents import Status
from ..levels import ORDER
from ..lifecycle import Action, Resolution
from ..options import MAX_WHOLE
from ..problems import Severity
from ..service import MAX_PERIODS
from ..storage import COUNT_BY, STAFF_ROLES
from .accounts import AUDIT_PAGE
from .api import ERRORS_MAX, PAGE_MAX
from .mapdata import MAX_ZOOM, OUTSIDE_LIMIT
from .review import MAX_LIMIT, PARTS
from .stats import XLSX

bp = Blueprint("openapi", __name__)

Schema = dict[str, Any]


@bp.get("/api/openapi.json")
def openapi_json() -> Schema:
    """This API's description (OpenAPI 3.1), for client generators and Schemathesis."""
    return description()


def description() -> Schema:
    return {"openapi": "3.1.0", "info": INFO, "servers": [{"url": "/"}], "security": [{"bearer": []}],
            "tags": TAGS, "paths": PATHS,
            "components": {"securitySchemes": {"bearer": {"type": "http", "scheme": "bearer",
                                                          "description": "an account's API token (gm_…)"}},
                           "schemas": SCHEMAS, "responses": RESPONSES, "parameters": PARAMETERS}}


INFO = {"title": "gridmap", "version": "1",
        "description": "Boundaries of a community's grids and micro-grids, and the incidents reported in them. "
                       "Every request needs an account's bearer token (reads are open to everyone only where "
                       "GRIDMAP_PUBLIC_READ=1). Errors are {\"error\", \"details\"} with a 4xx status; a refused "
                       "request changes nothing. Messages follow ?lang=zh|en. Open311 GeoReport v2 is served at "
                       "/open311/v2 and described by that specification, not here."}
TAGS = [{"name": name} for name in ("boundaries", "editor", "incidents", "map", "statistics", "staff", "accounts",
                                              "meta")]


# -- schema helpers ------------------------------------------------------------------------------

def ref(name: str) -> Schema:
    return {"$ref": f"#/components/schemas/{name}"}


def null(schema: Schema) -> Schema:
    """``schema`` or null."""
    if set(schema) == {"type"} and isinstance(schema["type"], str):
        return {"type": [schema["type"], "null"]}
    return {"anyOf": [schema, {"type": "null"}]}


def array(items: Schema, **extra: Any) -> Schema:
    return {"type": "array", "items": items, **extra}


def obj(required: dict[str, Schema], optional: dict[str, Schema] | None = None, **extra: Any) -> Schema:
    """An object with these members, those of ``required`` always there."""
    body: Schema = {"type": "object", "properties": {**required, **(optional or {})}, **extra}
    if required:
        body["required"] = list(required)
    return body


def enum(values: Any) -> Schema:
    return {"type": "string", "enum": [getattr(v, "value", v) for v in values]}


STR, INT, NUM, BOOL = {"type": "string"}, {"type": "integer"}, {"type": "number"}, {"type": "boolean"}
COUNT = {"type": "integer", "minimum": 0}
ID = {"type": "integer", "minimum": 0, "maximum": 10**18 - 1}
VERSION = {"type": "integer", "minimum": 1, "maximum": MAX_WHOLE}
TIME = {"type": "string", "description": "ISO 8601 with the deployment's UTC offset"}
LEVEL = enum(ORDER)
CATEGORY = enum(c.code for c in categories.CATEGORIES)
STATUS = enum(Status)
ANY_OBJECT: Schema = {"type": "object"}
FILE = {"type": "string", "format": "binary"}


# -- schemas -------------------------------------------------------------------------------------

GEOMETRY = obj({"type": enum(("Point", "MultiPoint", "LineString", "MultiLineString", "Polygon", "MultiPolygon",
                              "GeometryCollection"))})
POSITION = array(NUM, minItems=2, maxItems=3)
RING = array(POSITION, minItems=4)
POLYGON = obj({"type": {"const": "Polygon"}, "coordinates": array(RING, minItems=1)})
LINE = obj({"type": {"const": "LineString"}, "coordinates": array(POSITION, minItems=2)})
FEATURE = obj({"type": {"const": "Feature"}, "geometry": null(ref("Geometry")), "properties": null(ANY_OBJECT)})
FEATURES = obj({"type": {"const": "FeatureCollection"}, "features": array(ref("Feature"))})

PROBLEM = obj({"kind": STR, "severity": enum(Severity), "message": STR, "feature": null(INT), "code": null(STR),
               "codes": array(STR), "location": null(array(NUM)), "size_m2": null(NUM)})
CLEANING = obj({"gap_width_m": NUM, "snap_m": NUM, "changes": array(obj({
    "feature": INT, "code": STR, "before_m2": NUM, "after_m2": NUM, "change_m2": NUM, "moved_m2": NUM}))})
REPORT = obj({"ok": BOOL, "errors": array(ref("Problem")), "warnings": array(ref("Problem"))},
             {"cleaning": ref("Cleaning")})
UNIT_CHANGE = obj({"code": STR}, {"name": STR, "old_name": STR, "area_m2": NUM, "old_area_m2": NUM, "changed_m2": NUM},
                  description="a unit added, removed, renamed or reshaped; what it lacks is left out")
MOVE_ROW = obj({"source": null(STR), "target": null(STR), "count": COUNT},
               description="incidents that would go from one unit to another (null: outside every unit)")
DIFF = obj({part: array(ref("UnitChange")) for part in ("added", "removed", "renamed", "reshaped")}
           | {"unchanged": COUNT, "moved": COUNT, "moves": array(obj({"from": null(STR), "to": null(STR),
                                                                      "count": COUNT})),
              "incidents": null(COUNT), "assigned": null(COUNT)})
LAYER_RESULT = obj({
    "level": LEVEL, "status": enum(ResultStatus), "version": null(VERSION), "based_on": null(INT),
    "url": null(STR), "count": COUNT, "area_m2": NUM, "parent_source": null(STR), "reassigned": COUNT,
    "assigned": COUNT, "unassigned": INT, "report": ref("Report"), "diff": ref("Diff")},
    {"parent": ref("LayerResult")})
META: dict[str, Schema] = {
    "level": LEVEL, "version": VERSION, "status": enum(("draft", "committed")), "author": STR, "note": STR,
    "created_at": null(TIME), "committed_at": null(TIME), "committed_by": null(STR), "units": COUNT,
    "based_on": null(INT), "restored_from": null(INT), "assigned": null(COUNT), "moved": null(COUNT)}
VERSION_META = obj({**META, "change": null({**INT, "description": "the change it was saved in, with other levels"})})
VERSION_VIEW = obj({**META, "report": null(ref("Report")), "diff": ref("Diff"), "against": null(INT),
                    "options": ANY_OBJECT, "change": array(ref("VersionMeta"), description="the other levels' "
                                                                                            "versions saved with it")})
LAYER = {"allOf": [ref("FeatureCollection"), obj({"level": LEVEL, "version": null(INT)})]}

UNITS = {"type": "object", "additionalProperties": null(STR), "description": "each level's unit code, or null"}
INCIDENT_PROPERTIES = obj({
    "id": ID, "external_id": null(STR), "category": STR, "category_raw": null(STR), "reported_at": STR,
    "status": STATUS, "description": null(STR), "source": null(STR), "resolution": null(enum(Resolution)),
    "closed_at": null(STR), "rating": null(INT), "duplicate_of": null(INT), "escalation": COUNT,
    "due_at": null(STR), "original": null(obj({"crs": STR, "x": NUM, "y": NUM})), "no_deadline": BOOL,
    "units": UNITS, "unassigned": BOOL})
INCIDENT = obj({"type": {"const": "Feature"}, "id": ID, "properties": ref("IncidentProperties"),
                "geometry": obj({"type": {"const": "Point"}, "coordinates": POSITION})})
INCIDENT_DETAIL = {"allOf": [ref("Incident"), obj({"properties": obj({
    "overdue": BOOL, "on_time": null(BOOL), "responsible": STR,
    "assignee": null(obj({"name": STR, "phone": null(STR), "role": enum(STAFF_ROLES), "unit": STR})),
    "history": array(obj({"at": STR, "action": STR, "actor": null(STR), "from": null(STR), "to": null(STR),
                          "note": null(STR)}))})})]}
INCIDENT_PAGE = obj({"type": {"const": "FeatureCollection"}, "features": array(ref("Incident")),
                     "numberReturned": COUNT}, {"next": STR})
ROW_ERROR = obj({"row": INT, "error": STR})
REPORTED = obj({"created": COUNT, "existing": COUNT, "refused": COUNT, "outside": COUNT,
                "errors": array(ref("RowError"), maxItems=ERRORS_MAX)},
               {"items": array(obj({"row": INT, "id": ID, "created": BOOL, "units": UNITS, "assigned": BOOL})),
                "import_id": ID, "import_url": STR})
IMPORT_RUN = obj({"id": ID, "filename": STR, "rows": COUNT, "created": COUNT, "existing": COUNT, "refused": COUNT,
                  "offset": COUNT, "errors": array(ref("RowError")), "created_at": null(TIME)})
STAFF = obj({"id": ID, "level": LEVEL, "unit_code": STR, "role": enum(STAFF_ROLES), "name": STR, "phone": STR,
             "active": BOOL})
LOOKUP_UNIT = obj({"level": LEVEL, "code": STR, "name": null(STR), "parent_code": null(STR), "area_m2": null(NUM),
                   "staff": null(STR), "phone": null(STR), "properties": ANY_OBJECT, "version": null(INT),
                   "staff_members": array(obj({"id": ID, "name": STR, "phone": null(STR), "role": STR}))})
ACCOUNT = obj({"id": ID, "name": STR, "role": enum(("viewer", "worker", "planner", "admin")), "active": BOOL,
               "staff_id": null(INT), "has_password": BOOL, "created_at": null(STR)})
AUDIT_ENTRY = obj({"id": ID, "at": STR, "actor": STR, "action": STR, "target": STR, "status": INT})

SPOT = {"class": enum(SpotClass), "label": STR, "z": null(NUM), "p": null(NUM), "value": null(NUM), "count": COUNT}
STACKED = obj({"coordinates": COUNT, "incidents": COUNT})
HOTSPOT_OPTIONS = obj({"per": enum(PER), "fdr": BOOL, "permutations": COUNT, "seed": INT,
                       "stacked": enum(("included", "excluded"))})
CUTOFFS = {"type": "object", "additionalProperties": NUM}


def collection(head: Schema, properties: Schema) -> Schema:
    """A FeatureCollection of the units of a level with ``properties`` per unit and ``head`` beside."""
    feature = obj({"type": {"const": "Feature"}, "geometry": null(ref("Geometry")), "properties": properties})
    return obj({"type": {"const": "FeatureCollection"}, **head, "features": array(feature)})


UNIT_HEAD = {"level": LEVEL, "version": null(INT)}
HOTSPOTS = collection({**UNIT_HEAD, "cutoffs": CUTOFFS, "stacked": STACKED, "options": ref("HotspotOptions")},
                      obj({"code": STR, "name": null(STR), **SPOT}))
HEXAGONS = collection({"resolution": INT, "cells": COUNT, "cutoffs": CUTOFFS, "stacked": STACKED,
                       "options": ref("HotspotOptions")}, obj({"cell": STR, **SPOT}))
EMERGING = collection({**UNIT_HEAD, "periods": array(STR), "options": ref("HotspotOptions")},
                      obj({"code": STR, "name": null(STR), "trend": enum(Trend), "label": STR, "tau": null(NUM),
                           "p": null(NUM), "z": array(null(NUM)), "hot": array(BOOL), "counts": array(COUNT)}))
CHOROPLETH = collection({**UNIT_HEAD, "bins": array(NUM), "options": obj({"measure": enum(MEASURES),
                                                                          "scheme": enum(SCHEMES)}),
                         "classes": array(obj({"class": INT, "from": NUM, "to": NUM}))},
                        obj({"code": STR, "name": null(STR), "value": null(NUM), "class": INT}))
RATE = null(NUM)
RANKING_ROW = obj({"rank": null(INT), "code": STR, "name": null(STR), "staff": null(STR), "incidents": COUNT,
                   "closed": COUNT, "closure_rate": RATE, "closure_shrunk": RATE, "closure_low": RATE,
                   "closure_high": RATE, "per_1000_households": RATE, "per_km2": RATE, "previous_rank": null(INT),
                   "change": null(INT), "on_time_rate": RATE, "median_hours": RATE, "satisfaction_rate": RATE,
                   "overdue": COUNT})
STATISTICS_ROW = obj({"code": STR, "name": null(STR), **{k: COUNT for k in (
    "incidents", "accepted", "closed", "passed_on", "not_fixed", "timed", "on_time", "overdue", "rated",
    "satisfied")}, **{k: RATE for k in ("closure_rate", "on_time_rate", "median_hours", "satisfaction_rate",
                                        "feedback_rate")}})
#: Polygons as lists of rings, each polyline-encoded (lat, lon at 1e-6°: Google's format).
SHAPE = array(array(STR))
HEAT = obj({"zoom": INT, "scope": enum(("all", "bbox")), "cell_deg": NUM, "total": COUNT, "max": COUNT,
            "cells": array(array(NUM, minItems=3, maxItems=3), description="[lat, lon, count] per cell"),
            "outside": obj({"points": array(array(NUM, minItems=2, maxItems=2), maxItems=OUTSIDE_LIMIT),
                            "total": COUNT, "limit": COUNT})})
OUTLINES = obj({"level": LEVEL, "version": null(INT), "format": INT, "tolerance_deg": NUM, "precision": NUM,
                "bounds": null(array(NUM, minItems=4, maxItems=4)), "code": array(STR), "name": array(STR),
                "staff": array(STR), "shape": array(null(SHAPE), description="each unit's polygons")})
EDIT_FEATURES = {"allOf": [ref("Layer"), obj({"features": array({"allOf": [ref("Feature"), obj({
    "editable": BOOL})]})})]}
QUALITY = obj({"stacked": obj({"threshold": NUM, "points": array(obj({"lon": NUM, "lat": NUM, "count": COUNT}))}),
               "ambiguous": null(obj({"level": LEVEL, "count": COUNT, "incidents": COUNT, "between": array(obj({
                   "codes": array(null(STR)), "count": COUNT}))}))})

ERROR = obj({"error": STR, "details": array(STR)}, {"report": ref("Report")},
            description="A refusal: what is wrong and every detail; a refused boundary upload also has its "
                        "validation report.")

# -- request bodies --------------------------------------------------------------------------------

#: How a boundary change is read, checked and saved: form fields or JSON members alike.
LAYER_OPTIONS: dict[str, Schema] = {
    "crs": STR, "code_field": STR, "name_field": STR, "parent_field": STR, "layer": STR, "encoding": STR,
    "tolerance_m2": {"type": "number", "minimum": 0}, "clean": BOOL,
    "gap_width_m": {"type": "number", "minimum": 0}, "snap_m": {"type": "number", "minimum": 0},
    "derive_parent": BOOL, "author": STR, "note": STR,
    "base_version": {"type": "integer", "minimum": 0, "maximum": MAX_WHOLE,
                     "description": "the version the work started from; 0 for a new level"},
    "mode": enum(SaveMode)}
SIGNED = {k: LAYER_OPTIONS[k] for k in ("author", "note", "base_version", "mode")}
INCIDENT_RECORD = obj({"category": STR, "lon": NUM, "lat": NUM}, {
    "reported_at": STR, "external_id": STR, "description": STR, "status": STR, "source": STR, "crs": STR},
    description="One report; category is a code of GET /api/categories (other words are kept as \"other\").")
REPORTS = {"oneOf": [ref("IncidentRecord"), array(ref("IncidentRecord"), minItems=1)]}
IMPORT = obj({"file": {**FILE, "description": "CSV, GeoJSON or XLSX"}}, {
    "mapping": {**FILE, "description": "a TOML file naming the export's columns and words"},
    "lon_field": STR, "lat_field": STR, "category": STR, "crs": STR})
EDITED_LEVEL = obj({"geojson": ref("FeatureCollection")}, {**LAYER_OPTIONS, "parent": obj(
    {"geojson": ref("FeatureCollection")}, {"base_version": LAYER_OPTIONS["base_version"]},
    description="the level above, edited along: both are saved as one change")})
STAFF_ID = {"type": "integer", "minimum": 1, "maximum": 2**62 - 1, "description": "a staff member's id"}
STAFF_NAME = {"type": "string", "minLength": 1, "maxLength": 200}
PHONE = {"type": "string", "maxLength": 50}
ACCOUNT_NAME = {"type": "string", "pattern": r"^[\w.@-]{1,100}$", "description": "letters, digits or . _ - @"}
EDIT = obj({"units": ref("FeatureCollection"), "base_version": {**VERSION, "description": "the version edited"}},
           {"removed": array(STR)})


SQUARE = [[[114.30, 30.59], [114.31, 30.59], [114.31, 30.60], [114.30, 30.60], [114.30, 30.59]]]
EXAMPLES = {
    "layer": {"geojson": {"type": "FeatureCollection", "features": [{
        "type": "Feature", "properties": {"code": "G01", "name": "裴村网格"},
        "geometry": {"type": "Polygon", "coordinates": SQUARE}}]}, "mode": "preview", "note": "a first look"},
    "incidents": [{"category": "illegal_parking", "lon": 114.305, "lat": 30.595, "description": "电动车堵住消防通道",
                   "reported_at": "2026-03-05 08:12"}],
    "step": {"action": "dispatch", "note": "派给网格员"},
    "staff": {"level": "grid", "unit": "G01", "role": "grid_worker", "name": "王网格员", "phone": "13900000000"},
    "account": {"name": "wang.planner", "role": "planner", "password": "correct horse battery", "token": True},
    "split": {"geometry": {"type": "Polygon", "coordinates": SQUARE},
              "line": {"type": "LineString", "coordinates": [[114.305, 30.58], [114.305, 30.61]]}},
    "merge": {"geometries": [{"type": "Polygon", "coordinates": SQUARE}, {"type": "Polygon", "coordinates": [
        [[114.31, 30.59], [114.32, 30.59], [114.32, 30.60], [114.31, 30.60], [114.31, 30.59]]]}]},
}


# -- parameters and responses --------------------------------------------------------------------

def query(name: str, schema: Schema, *, required: bool = False, description: str = "",
          explode: bool = True) -> Schema:
    param: Schema = {"name": name, "in": "query", "schema": schema, "required": required}
    if schema.get("type") == "array":
        param |= {"style": "form", "explode": explode}
    if description:
        param["description"] = description
    return param


def path(name: str, schema: Schema, example: Any) -> Schema:
    return {"name": name, "in": "path", "required": True, "schema": schema, "example": example}


def header(name: str, description: str) -> Schema:
    return {"name": name, "in": "header", "required": False, "schema": STR, "description": description}


def param(name: str) -> Schema:
    return {"$ref": f"#/components/parameters/{name}"}


PARAMETERS = {
    "level": path("level", LEVEL, "grid"), "version": path("version", ID, 1), "id": path("id", ID, 1),
    "levelQuery": query("level", LEVEL, description="default: the deepest level that has a version"),
    "versionQuery": query("version", VERSION, description="a stored version instead of the current one"),
    "category": query("category", array(CATEGORY), description="repeated or comma-separated: any of them"),
    "status": query("status", array(STATUS), description="repeated or comma-separated: any of them"),
    "source": query("source", array({"type": "string", "maxLength": 100})),
    "from": query("from", {"type": "string", "format": "date"}),
    "to": query("to", {"type": "string", "format": "date"}, description="inclusive"),
    "unit": query("unit", STR, description="a unit code of any level"),
    "bbox": query("bbox", array(NUM, minItems=4, maxItems=4), explode=False,
                  description="west,south,east,north in WGS84 degrees"),
    "stacked": query("stacked", BOOL, description="count incidents on stacked coordinates (default: not)"),
    "per": query("per", enum(PER)), "fdr": query("fdr", BOOL),
    "geometry": query("geometry", BOOL, description="0: leave the outlines out"),
    "offset": query("offset", {"type": "integer", "minimum": 0, "maximum": MAX_WHOLE}),
    "IfMatch": header("If-Match", 'the ETag of GET /api/layers/<level> ("grid-v3"): the base version'),
}
FILTERS = [param(name) for name in ("category", "status", "source", "from", "to", "unit", "bbox")]


def refusal(description: str) -> Schema:
    return {"description": description, "content": {"application/json": {"schema": ref("Error")}}}


RESPONSES = {
    "400": refusal("The request is not valid (every problem listed)"),
    "401": refusal("No account, or a bad token"),
    "403": refusal("The account's role does not allow this"),
    "404": refusal("No such thing (a level with no version, an unknown id)"),
    "409": refusal("The request contradicts the stored state (a stale base version, a step not allowed)"),
    "412": refusal("If-Match names a version that is no longer the current one"),
    "413": refusal("The body is larger than the service accepts (GRIDMAP_MAX_UPLOAD_MB)"),
}


def op(summary: str, tag: str, answer: Schema | None, *, params: list[Schema] | None = None,
       body: Schema | None = None, errors: str = "400 404", ok: int = 200, media: str = "application/json",
       optional: bool = False, files: tuple[str, ...] = (), etag: bool = False,
       more: dict[str, Any] | None = None) -> Schema:
    """An operation answering ``answer`` as ``media`` (or one of the ``files`` types) with ``ok``, or
    one of ``errors`` (401 and 403 always, 413 with a ``body``, which may be left out if ``optional``)."""
    content = {**({media: {"schema": answer}} if answer is not None else {}), **{m: {} for m in files}}
    responses: Schema = {str(ok): {"description": "OK", "content": content}, **(more or {})}
    if etag:
        responses[str(ok)]["headers"] = {"ETag": {"schema": STR, "description": "names the level and version"}}
    codes = errors.split() + ["401", "403"] + (["413"] if body is not None else [])
    for code in sorted(codes):
        responses[code] = {"$ref": f"#/components/responses/{code}"}
    operation: Schema = {"summary": summary, "tags": [tag], "parameters": params or [], "responses": responses}
    if body is not None:
        operation["requestBody"] = {"required": not optional, "content": body}
    return operation


def json_body(schema: Schema, example: Any = None) -> Schema:
    return {"application/json": {"schema": schema, **({"example": example} if example is not None else {})}}


def fields(schema: Schema) -> Schema:
    """A JSON body that may come as form fields too."""
    return {**json_body(schema), "application/x-www-form-urlencoded": {"schema": schema}}


def saved(answer: str = "LayerResult") -> dict[str, Any]:
    """A save's other answer: 201 when stored (200 is a preview)."""
    return {"201": {"description": "Stored", "content": {"application/json": {"schema": ref(answer)}}}}


LEVEL_PATH = [param("level")]
VERSION_PATH = [param("level"), param("version")]
PAGE_LIMIT = {"type": "integer", "minimum": 0, "maximum": PAGE_MAX}

PATHS: dict[str, dict[str, Schema]] = {
    "/api/openapi.json": {"get": op("This description (OpenAPI 3.1)", "meta", ANY_OBJECT, errors="")},
    "/api/layers": {"get": op("The current version of each level", "boundaries",
                              obj({"layers": array(ref("VersionMeta"))}), errors="")},
    "/api/layers/{level}": {
        "get": op("The level's units as GeoJSON (current or version N), with an ETag", "boundaries", ref("Layer"),
                  params=[*LEVEL_PATH, param("versionQuery")], etag=True),
        "post": op("Preview, draft or commit a boundary file (multipart) or an edited level (JSON)", "boundaries",
                   ref("LayerResult"), errors="400 409 412", more=saved(),
                   params=[*LEVEL_PATH, param("IfMatch")],
                   body={"multipart/form-data": {"schema": obj({"file": FILE}, LAYER_OPTIONS)},
                         **json_body(EDITED_LEVEL, EXAMPLES["layer"])})},
    "/api/layers/{level}/versions": {
        "get": op("The level's history", "boundaries", obj({"level": LEVEL, "versions": array(ref("VersionMeta"))}),
                  params=LEVEL_PATH)},
    "/api/layers/{level}/versions/{version}": {
        "get": op("One version with the report and diff it was saved with", "boundaries", VERSION_VIEW,
                  params=VERSION_PATH)},
    "/api/layers/{level}/versions/{version}/problems": {
        "get": op("A page of the version's stored problems", "boundaries", obj({
            "level": LEVEL, "version": VERSION, "kind": null(STR), "severity": null(enum(Severity)),
            "total": COUNT, "offset": COUNT, "limit": COUNT, "problems": array(obj({"i": COUNT, "message": STR}, {
                "feature": INT, "code": STR, "size_m2": NUM, "location": array(NUM), "shape": SHAPE}))}),
            params=[*VERSION_PATH, query("kind", STR), query("severity", enum(Severity)), param("offset"),
                    query("limit", {"type": "integer", "minimum": 0, "maximum": MAX_LIMIT})])},
    "/api/layers/{level}/versions/{version}/diff": {
        "get": op("A page of one part of the version's stored diff", "boundaries", obj({
            "level": LEVEL, "version": VERSION, "part": enum(PARTS), "total": COUNT, "offset": COUNT,
            "limit": COUNT, "rows": array({"anyOf": [ref("UnitChange"), MOVE_ROW]})}),
            params=[*VERSION_PATH, query("part", enum(PARTS), required=True), param("offset"),
                    query("limit", {"type": "integer", "minimum": 0, "maximum": MAX_LIMIT})])},
    "/api/layers/{level}/versions/{version}/compare": {
        "get": op("The diff from version `with` to this one", "boundaries", obj({
            "level": LEVEL, "from": VERSION, "to": VERSION, "diff": ref("Diff")}),
            params=[*VERSION_PATH, query("with", VERSION, required=True)])},
    "/api/layers/{level}/versions/{version}/commit": {
        "post": op("Commit a draft (and the other drafts of its change)", "boundaries", ref("LayerResult"),
                   errors="400 404 409 412", params=VERSION_PATH, body=fields(obj({}, {"author": STR})),
                   optional=True)},
    "/api/layers/{level}/versions/{version}/restore": {
        "post": op("Save version N again as a new version", "boundaries", ref("LayerResult"),
                   errors="400 404 409 412", more=saved(), params=[*VERSION_PATH, param("IfMatch")],
                   body=fields(obj({}, SIGNED)), optional=True)},
    "/api/layers/{level}/versions/{version}/clean": {
        "post": op("Clean version N's overlaps and gaps into a new version (a draft by default)", "boundaries",
                   ref("LayerResult"), errors="400 404 409 412", more=saved(),
                   params=[*VERSION_PATH, param("IfMatch")],
                   body=fields(obj({}, {**SIGNED, "gap_width_m": LAYER_OPTIONS["gap_width_m"],
                                        "snap_m": LAYER_OPTIONS["snap_m"]})), optional=True)},
    "/api/layers/{level}/export": {
        "get": op("The level as a file for GIS tools", "boundaries", None,
                  files=("application/geo+json", "application/geopackage+sqlite3", "application/zip"),
                  params=[*LEVEL_PATH, param("versionQuery"), query("format", enum(("geojson", "gpkg", "shp")))])},
    "/api/layers/{level}/edit/units": {
        "get": op("The units to edit, those around them and the level above near them", "editor",
                  {"allOf": [ref("EditFeatures"), obj({"parent": null(ref("EditFeatures"))},
                                                      {"too_many": COUNT, "limit": COUNT})]},
                  params=[*LEVEL_PATH, param("versionQuery"), query("area", array(STR)), query("code", array(STR)),
                          param("bbox")])},
    "/api/layers/{level}/edit/areas": {
        "get": op("The outlines of the level above, to choose an area to edit", "editor", ref("Layer"),
                  params=LEVEL_PATH)},
    "/api/layers/{level}/edit/save": {
        "post": op("The editor's save: the changed units, completed from the version edited", "editor",
                   ref("LayerResult"), errors="400 404 409 412", more=saved(),
                   params=[*LEVEL_PATH, param("IfMatch")],
                   body=json_body({"allOf": [ref("Edit"), obj({}, {**SIGNED, "parent": ref("Edit")})]}))},
    "/api/edit/split": {
        "post": op("Split a polygon along a line", "editor", obj({"geometries": array(ref("Geometry"))},
                                                                 {"neighbours": array(ref("Geometry"))}),
                   errors="400", body=json_body(obj({"geometry": POLYGON, "line": LINE},
                                                    {"neighbours": array(POLYGON)}), EXAMPLES["split"]))},
    "/api/edit/merge": {
        "post": op("Merge two polygons", "editor", obj({"geometry": ref("Geometry")}), errors="400",
                   body=json_body(obj({"geometries": array(POLYGON, minItems=2, maxItems=2)}), EXAMPLES["merge"]))},
    "/api/incidents": {
        "get": op("A page of matching incidents (GeoJSON), or every one as NDJSON", "incidents",
                  ref("IncidentPage"), errors="400",
                  params=[*FILTERS, query("format", enum(("geojson", "ndjson"))), query("limit", PAGE_LIMIT),
                          query("after", {"type": "integer", "minimum": 0, "maximum": MAX_WHOLE})],
                  files=("application/x-ndjson",)),
        "post": op("Report incidents (JSON) or import a file of them (multipart)", "incidents", ref("Reported"),
                   ok=201, errors="400",
                   params=[query("crs", STR), header("Idempotency-Key", "a retry with the same key stores nothing "
                                                                        "again (at most 200 printable ASCII)")],
                   body={**json_body(REPORTS, EXAMPLES["incidents"]), "multipart/form-data": {"schema": IMPORT}})},
    "/api/incidents/counts": {
        "get": op("Matching incidents per category, source, day, month or hour of the week", "incidents", obj({
            "by": enum(COUNT_BY), "total": COUNT, "counts": array(obj({"key": STR, "count": COUNT}))}),
            errors="400", params=[*FILTERS, query("by", enum(COUNT_BY))])},
    "/api/incidents/{id}": {
        "get": op("One incident with its deadline, who answers for it and its history", "incidents",
                  ref("IncidentDetail"), params=[param("id")])},
    "/api/incidents/{id}/steps": {
        "post": op("A lifecycle step", "incidents", ref("IncidentDetail"), errors="400 404 409",
                   params=[param("id")], body=json_body(obj({"action": enum(Action)}, {
                       "actor": {"type": "string", "maxLength": 200, "description": "default: the account"},
                       "note": {"type": "string", "maxLength": 2000},
                       "resolution": enum(Resolution), "rating": {"type": "integer", "minimum": 1, "maximum": 5},
                       "duplicate_of": ID}), EXAMPLES["step"]))},
    "/api/incidents/{id}/photo": {
        "get": op("The photo sent with a report", "incidents", None,
                  files=("image/jpeg", "image/png", "image/webp"), params=[param("id")])},
    "/api/imports/{id}": {
        "get": op("A file import: its counts and the rows it refused", "incidents", ref("ImportRun"),
                  params=[param("id"), param("offset"), query("limit", PAGE_LIMIT)])},
    "/api/categories": {
        "get": op("The category codes with their labels", "incidents", obj({"categories": array(obj({
            "code": CATEGORY, "zh": STR, "en": STR}))}), errors="")},
    "/api/lookup": {
        "get": op("The units holding a WGS84 point, deepest first", "map", obj({
            "lon": NUM, "lat": NUM, "assigned": BOOL, "units": array(ref("LookupUnit"))}),
            params=[query("lon", {"type": "number", "minimum": -180, "maximum": 180}, required=True),
                    query("lat", {"type": "number", "minimum": -90, "maximum": 90}, required=True),
                    param("levelQuery"), param("versionQuery")])},
    "/api/heat": {
        "get": op("The map's heat cells and the incidents outside every unit", "map", ref("Heat"),
                  params=[query("zoom", {"type": "number", "minimum": 0, "maximum": MAX_ZOOM}, required=True),
                          query("scope", enum(("all", "bbox"))), *FILTERS, param("stacked"), param("levelQuery"),
                          param("versionQuery")])},
    "/api/outlines/{level}": {
        "get": op("The level's outlines simplified for display (ETag; 304 when unchanged)", "map",
                  ref("Outlines"), etag=True, params=[*LEVEL_PATH, param("versionQuery"),
                                                      header("If-None-Match", "the ETag of outlines held")],
                  more={"304": {"description": "Not modified"}})},
    "/api/outlines/{level}/counts": {
        "get": op("Incidents per unit of the level", "map", obj({
            "level": LEVEL, "version": null(INT), "counts": {"type": "object", "additionalProperties": COUNT}}),
            params=[*LEVEL_PATH, *FILTERS, param("versionQuery")])},
    "/api/hotspots": {
        "get": op("Getis-Ord Gi* hot spots per unit", "statistics", ref("Hotspots"), media="application/geo+json",
                  params=[param("levelQuery"), *FILTERS, param("per"), param("fdr"), param("stacked"),
                          param("geometry")])},
    "/api/hotspots/hexagons": {
        "get": op("Gi* hot spots on H3 hexagons", "statistics", ref("Hexagons"), media="application/geo+json",
                  params=[query("resolution", {"type": "integer", "minimum": RESOLUTIONS[0],
                                               "maximum": RESOLUTIONS[-1]}), *FILTERS, param("per"), param("fdr"),
                          param("stacked"), query("significant", BOOL)])},
    "/api/hotspots/emerging": {
        "get": op("Emerging hot spots over the last months or weeks", "statistics", ref("Emerging"),
                  media="application/geo+json",
                  params=[param("levelQuery"), query("by", enum(("month", "week"))),
                          query("periods", {"type": "integer", "minimum": 2, "maximum": MAX_PERIODS}), *FILTERS,
                          param("per"), param("fdr"), param("stacked"), param("geometry")])},
    "/api/choropleth": {
        "get": op("One number per unit in classes", "statistics", ref("Choropleth"), media="application/geo+json",
                  params=[param("levelQuery"), query("measure", enum(MEASURES)), query("scheme", enum(SCHEMES)),
                          query("k", {"type": "integer", "minimum": 2, "maximum": 9}), *FILTERS, param("stacked"),
                          param("geometry")])},
    "/api/rankings": {
        "get": op("The monthly league table (JSON, or XLSX)", "statistics", obj({
            "level": LEVEL, "month": STR, "previous_month": STR, "min_sample": COUNT, "rows": array(
                ref("RankingRow"))}), files=(XLSX,),
            params=[param("levelQuery"), query("month", {"type": "string", "pattern": r"^[0-9]{4}-[0-9]{2}$"},
                          description="1970-01 to 2100-12; default: the month of the latest matching incident"),
                    query("format", enum(("json", "xlsx"))), *FILTERS])},
    "/api/statistics": {
        "get": op("Each unit's lifecycle figures (JSON, or XLSX)", "statistics", obj({
            "level": LEVEL, "rows": array(ref("StatisticsRow"))}), files=(XLSX,),
            params=[param("levelQuery"), query("format", enum(("json", "xlsx"))), *FILTERS])},
    "/api/report-map": {
        "get": op("The map for the monthly report, as a PNG or PDF page", "statistics", None,
                  files=("image/png", "application/pdf"),
                  params=[query("overlay", enum(("hotspots", "emerging", "choropleth"))),
                          query("format", enum(("png", "pdf"))), param("levelQuery"),
                          query("measure", enum(MEASURES)), param("per"), param("fdr"), param("stacked"),
                          query("periods", {"type": "integer", "minimum": 2, "maximum": MAX_PERIODS}),
                          query("dpi", {"type": "integer", "minimum": 50, "maximum": 600}), *FILTERS])},
    "/api/quality": {
        "get": op("Stacked coordinates and incidents near an edge between units", "statistics", ref("Quality"),
                  errors="")},
    "/api/staff": {
        "get": op("The staff registry", "staff", obj({"staff": array(ref("StaffMember"))}), errors=""),
        "post": op("Register a person for a unit", "staff", ref("StaffMember"), ok=201, errors="400",
                   body=json_body(obj({"level": LEVEL, "unit": STR, "role": enum(STAFF_ROLES), "name": STAFF_NAME},
                                      {"phone": PHONE}), EXAMPLES["staff"]))},
    "/api/staff/{id}": {
        "patch": op("Change a registered person", "staff", ref("StaffMember"), params=[param("id")],
                    body=json_body(obj({}, {"level": LEVEL, "unit": STR, "role": enum(STAFF_ROLES),
                                            "name": STAFF_NAME, "phone": PHONE, "active": BOOL})))},
    "/api/accounts": {
        "get": op("Every account", "accounts", obj({"accounts": array(ref("Account"))}), errors=""),
        "post": op("A new account (its first token in the answer, once)", "accounts",
                   obj({"account": ref("Account"), "token": null(STR)}), ok=201, errors="400 404 409",
                   body=json_body(obj({"name": ACCOUNT_NAME, "role": ACCOUNT["properties"]["role"]}, {
                       "password": {"type": "string", "minLength": 8}, "token": BOOL, "token_label": STR,
                       "staff_id": STAFF_ID}), EXAMPLES["account"]))},
    "/api/accounts/{id}": {
        "patch": op("Change an account's role, active, password or staff entry", "accounts", ref("Account"),
                    errors="400 404 409", params=[param("id")],
                    body=json_body(obj({}, {"role": ACCOUNT["properties"]["role"], "active": BOOL,
                                            "password": {"type": "string", "minLength": 8},
                                            "staff_id": STAFF_ID})))},
    "/api/accounts/{id}/tokens": {
        "post": op("A further bearer token (shown once)", "accounts", obj({"token": STR}), ok=201,
                   params=[param("id")], body=json_body(obj({}, {"label": STR})), optional=True)},
    "/api/audit": {
        "get": op("The latest changes, newest first", "accounts", obj({"entries": array(ref("AuditEntry"))}),
                  errors="400", params=[query("limit", {"type": "integer", "minimum": 0, "maximum": AUDIT_PAGE}),
                                        query("before", {"type": "integer", "minimum": 1, "maximum": MAX_WHOLE})])},
}

SCHEMAS = {
    "Error": ERROR, "Geometry": GEOMETRY, "Feature": FEATURE, "FeatureCollection": FEATURES, "Layer": LAYER,
    "Problem": PROBLEM, "Cleaning": CLEANING, "Report": REPORT, "UnitChange": UNIT_CHANGE, "Diff": DIFF,
    "LayerResult": LAYER_RESULT, "VersionMeta": VERSION_META, "IncidentProperties": INCIDENT_PROPERTIES,
    "Incident": INCIDENT, "IncidentDetail": INCIDENT_DETAIL, "IncidentPage": INCIDENT_PAGE, "RowError": ROW_ERROR,
    "Reported": REPORTED, "ImportRun": IMPORT_RUN, "IncidentRecord": INCIDENT_RECORD, "StaffMember": STAFF,
    "LookupUnit": LOOKUP_UNIT, "Account": ACCOUNT, "AuditEntry": AUDIT_ENTRY, "HotspotOptions": HOTSPOT_OPTIONS,
    "Hotspots": HOTSPOTS, "Hexagons": HEXAGONS, "Emerging": EMERGING, "Choropleth": CHOROPLETH,
    "RankingRow": RANKING_ROW, "StatisticsRow": STATISTICS_ROW, "Heat": HEAT, "Outlines": OUTLINES,
    "EditFeatures": EDIT_FEATURES, "Quality": QUALITY, "Edit": EDIT,
}
