"""Open311 GeoReport v2 (http://wiki.open311.org/GeoReport_v2), the API FixMyStreet and other
Open311 clients speak, over the same service as the JSON API: a *service* is one of our
categories (:mod:`gridmap.categories`), a *service request* one incident.

``/open311/v2/discovery.json``, ``services.json``, ``services/<code>.json``, ``requests.json``
(GET: a list; POST: a new request, form-encoded) and ``requests/<id>.json``.

Where the spec leaves a choice, or we differ from it:

* **JSON only.**  The spec requires XML, but the discovery document says which formats an endpoint
  has; ``.xml`` (or any other format) is refused with a 400 that says so.
* **``api_key`` is an account's bearer token** (as ``Authorization: Bearer``; gridmap.web.auth):
  a POST needs an account that may report.  ``jurisdiction_id`` is accepted and ignored: one
  deployment serves one jurisdiction.
* **A request is placed by ``lat``/``long``**: WGS84, or the system our extension ``crs`` names
  (GCJ02, BD09, EPSG:…), converted as any report is.  ``address_string`` or ``address_id`` alone is
  refused: nothing here geocodes.  Only the category, the position and the ``description`` (at most
  4,000 characters, as the spec says) are stored: the reporter's name, email, phone and device,
  ``address_string`` and ``media_url`` are not (there is no column for them).
* **A point outside every unit is stored and flagged**, as any report is; its ``service_notice``
  says so.
* **``services/<code>.json``**: no service has metadata, so a code we have is defined by no
  attributes (200, for clients that ask anyway); another is a 404.
* **Errors** are the spec's array of ``{"code", "description"}``, every problem of a request at
  once: 404 for what does not exist (a request, a path, and a POST's unknown ``service_code``, as
  the spec's POST section has it), 405 for a method a resource does not take, 400 for the rest.
  The HTTP status is the entries' code when they agree, else 400.
* **``GET requests.json``**: ``start_date``/``end_date`` bound the report time, both inclusive; a
  time without an offset is the deployment's wall-clock time and a date alone its whole day; they
  may be at most 90 days apart.  Without them the list covers the 90 days up to now (or from
  ``start_date``, or up to ``end_date``).  At most 1,000 requests, lowest ids first;
  ``service_request_id`` (ids, comma-separated) overrides every other filter.
* **A request object**: ``open`` while reported, dispatched or in progress, else ``closed``
  (closed, rated, rejected, duplicate); ``status_notes`` says how it ended and the last step's
  note; ``updated_datetime`` is the last step's time (a rating comes after the close);
  ``expected_datetime`` the category's deadline; ``agency_responsible`` the units holding it,
  smallest first; times carry the deployment's UTC offset.
"""
from __future__ import annotations

import logging
import math
import re
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any, Mapping

from flask import Blueprint, Response, current_app, jsonify, request, url_for
from flask_babel import gettext
from werkzeug.exceptions import HTTPException

from .. import categories
from ..chinacoords import PointCRS
from ..errors import N_, GridmapError, InvalidInput, Message, message
from ..incidents import Status
from ..levels import ORDER
from ..lifecycle import OPEN, Resolution
from ..options import opt
from ..storage import IncidentEvent, IncidentQuery
from . import idempotency_key, language, service, several, tr
from .handlers import STATUS

log = logging.getLogger(__name__)

bp = Blueprint("open311", __name__, url_prefix="/open311/v2")

SPECIFICATION = "http://wiki.open311.org/GeoReport_v2"
#: When the discovery document or the service list last changed: bump it when the categories do.
CHANGESET = "2026-11-30T00:00:00Z"
#: The most requests a list holds and the longest period it spans (the spec's limits), and the
#: longest description (the spec's too).
LIST_MAX, SPAN, DESCRIPTION_MAX = 1000, timedelta(days=90), 4000
#: Every service's group, as the categories name themselves: (Chinese, English).
GROUP = ("网格事件", "Grid incidents")
#: A request id: whole and small enough for the store's integers.
REQUEST_ID = re.compile(r"[0-9]{1,18}")
METHODS = ["GET", "POST", "PUT", "PATCH", "DELETE"]

RESOLUTION_NOTES = {Resolution.FIXED.value: N_("Fixed."), Resolution.NOT_FIXED.value: N_("Closed without being fixed."),
                    Resolution.NOT_OURS.value: N_("Passed on: not for the community to fix.")}


@dataclass(frozen=True)
class Problem:
    """One entry of the spec's error array: its code (400, 404, 405) and what went wrong."""

    code: int
    text: Message


class Refused(Exception):
    """An Open311 request refused, with every problem found in it."""

    def __init__(self, problems: list[Problem]) -> None:
        super().__init__("; ".join(str(p.text) for p in problems))
        self.problems = problems


# -- views -------------------------------------------------------------------------------
@bp.get("/discovery.<fmt>")
def discovery(fmt: str) -> Response:
    _json_only(fmt)
    base = url_for(".discovery", fmt="json", _external=True).rsplit("/", 1)[0]
    return jsonify({"changeset": CHANGESET, "contact": gettext("Ask the community grid office that runs this service."),
                    "key_service": gettext("api_key is a gridmap account's token; ask the administrator for one."),
                    "endpoints": [{"specification": SPECIFICATION, "url": base, "changeset": CHANGESET,
                                   "type": "production", "formats": ["application/json"]}]})


@bp.get("/services.<fmt>")
def services(fmt: str) -> Response:
    """Every category, named in the request's language."""
    _json_only(fmt)
    lang = language()
    return jsonify([{"service_code": c.code, "service_name": c.label(lang), "description": c.label(lang),
                     "metadata": False, "type": "realtime", "keywords": ", ".join(c.aliases),
                     "group": GROUP[1] if lang == "en" else GROUP[0]} for c in categories.CATEGORIES])


@bp.get("/services/<service_code>.<fmt>")
def service_definition(service_code: str, fmt: str) -> Response:
    _json_only(fmt)
    if service_code not in categories.BY_CODE:
        raise Refused([_unknown_service(service_code, 404)])
    return jsonify({"service_code": service_code, "attributes": []})


@bp.post("/requests.<fmt>")
def post_request(fmt: str) -> Response:
    """A new request (form-encoded, as the spec sends it), stored as a report from "open311"."""
    _json_only(fmt)
    record, crs = _parse_request(request.form)
    result = service().report([record], crs=crs, key=idempotency_key())
    if result.errors:
        raise Refused([Problem(400, reason) for error in result.errors for reason in error.reasons])
    created = _requests(IncidentQuery(ids=(int(result.ids[0]),)))[0]
    log.info("open311: request %s (%s) stored", created["service_request_id"], record["category"])
    return jsonify([{"service_request_id": created["service_request_id"],
                     "service_notice": created["service_notice"], "account_id": None}])


@bp.get("/requests.<fmt>")
def list_requests(fmt: str) -> Response:
    _json_only(fmt)
    return jsonify(_requests(_list_query(request.args)))


@bp.get("/requests/<request_id>.<fmt>")
def get_request(request_id: str, fmt: str) -> Response:
    _json_only(fmt)
    found = _requests(IncidentQuery(ids=(int(request_id),))) if REQUEST_ID.fullmatch(request_id) else []
    if not found:
        raise Refused([Problem(404, message(N_("there is no service request {id}"), id=request_id))])
    return jsonify(found)


@bp.route("/", defaults={"path": ""}, methods=METHODS)
@bp.route("/<path:path>", methods=METHODS)
def missing(path: str) -> Response:
    """Any other path or method under the prefix: the spec's 404 (or 405), not an HTML page."""
    if _allowed_methods():
        raise Refused([Problem(405, message(N_("This method is not allowed here.")))])
    raise Refused([Problem(404, message(N_("There is no such Open311 resource; {url} lists what this server has."),
                                        url=url_for(".discovery", fmt="json", _external=True)))])


# -- errors: the spec's array ------------------------------------------------------------------
@bp.errorhandler(Refused)
def _refused(error: Refused) -> tuple[Response, int]:
    codes = {p.code for p in error.problems}
    status = codes.pop() if len(codes) == 1 else 400
    log.info("%s %s refused (%d): %s", request.method, request.path, status, error)
    return _errors([(p.code, tr(p.text)) for p in error.problems], status)


@bp.errorhandler(GridmapError)
def _domain_error(error: GridmapError) -> tuple[Response, int]:
    status = next((code for cls, code in STATUS.items() if isinstance(error, cls)), 400)
    log.info("%s %s refused (%d): %s", request.method, request.path, status, error.summary)
    return _errors([(status, tr(m)) for m in (error.summary, *error.details)], status)


@bp.errorhandler(HTTPException)
def _http_error(error: HTTPException) -> tuple[Response, int]:
    status = error.code or 400
    return _errors([(status, error.description or error.name)], status)


def _errors(entries: list[tuple[int, str]], status: int) -> tuple[Response, int]:
    return jsonify([{"code": code, "description": text} for code, text in entries]), status


def _json_only(fmt: str) -> None:
    if fmt != "json":
        raise Refused([Problem(400, message(N_(".{format} is not supported: this server answers JSON only "
                                               "(application/json, as discovery.json lists); ask for .json"),
                                            format=fmt))])


def _unknown_service(code: str, status: int) -> Problem:
    return Problem(status, message(N_("unknown service_code {value!r}; expected one of {expected}"), value=code,
                                   expected=", ".join(categories.BY_CODE)))


def _allowed_methods() -> list[str]:
    """The methods another view of the requested path takes (so the method, not the path, is wrong)."""
    adapter = current_app.url_map.bind_to_environ(request.environ)
    allowed = []
    for method in ("GET", "POST"):
        try:
            endpoint, _ = adapter.match(method=method)
        except HTTPException:
            continue
        if endpoint != request.endpoint:
            allowed.append(method)
    return allowed


# -- a new request ----------------------------------------------------------------------------
def _parse_request(form: Mapping[str, str]) -> tuple[dict[str, Any], str | None]:
    """The record a POST stores and its coordinate system, or every problem of it."""
    problems: list[Problem] = []
    code = opt(form, "service_code")
    if code is None:
        problems.append(Problem(400, message(N_("service_code is missing; expected one of {expected}"),
                                             expected=", ".join(categories.BY_CODE))))
    elif code not in categories.BY_CODE:
        problems.append(_unknown_service(code, 404))
    lon, lat = _position(form, problems)
    description = (form.get("description") or "").strip()
    if len(description) > DESCRIPTION_MAX:
        problems.append(Problem(400, message(N_("description is {length} characters long; expected at most {limit}"),
                                             length=len(description), limit=DESCRIPTION_MAX)))
    crs = opt(form, "crs")
    try:
        PointCRS.parse(crs)
    except InvalidInput as refused:
        problems.append(Problem(400, refused.summary))
    if problems:
        raise Refused(problems)
    return {"category": code, "lon": lon, "lat": lat, "description": description, "source": "open311",
            "external_id": None}, crs


def _position(form: Mapping[str, str], problems: list[Problem]) -> tuple[float, float]:
    lat, lon = opt(form, "lat"), opt(form, "long")
    if lat is None or lon is None:
        given = [key for key in ("lat", "long", "address_string", "address_id") if opt(form, key)]
        problems.append(Problem(400, message(N_("expected lat and long: a request is placed by its coordinates "
                                                "(address_string and address_id are not looked up); given: {given}"),
                                             given=", ".join(given) or "none")))
        return math.nan, math.nan
    return _number(lon, "long", problems), _number(lat, "lat", problems)


def _number(text: str, key: str, problems: list[Problem]) -> float:
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not math.isfinite(value):
        problems.append(Problem(400, message(N_("{key}={value!r} is not a number; expected decimal degrees (or "
                                                "metres in a projected crs)"), key=key, value=text)))
    return value


# -- listing requests -------------------------------------------------------------------------
def _list_query(args: Mapping[str, str]) -> IncidentQuery:
    """The spec's filters as a query; ``service_request_id`` overrides the others."""
    problems: list[Problem] = []
    ids = _ids(args, problems)
    if ids is not None and not problems:
        return IncidentQuery(ids=ids)
    codes = several(args, "service_code")
    problems += [_unknown_service(code, 400) for code in codes if code not in categories.BY_CODE]
    wanted = several(args, "status")
    problems += [Problem(400, message(N_("status={value!r} is not valid; expected open or closed"), value=value))
                 for value in wanted if value not in ("open", "closed")]
    statuses = tuple(s.value for s in Status if _open_or_closed(s) in wanted) if wanted else ()
    start, end = _moment(args, "start_date", problems), _moment(args, "end_date", problems, end=True)
    date_from, date_to = _window(args, start, end, problems)
    if problems:
        raise Refused(problems)
    return IncidentQuery(categories=codes, statuses=statuses, date_from=date_from, date_to=date_to)


def _ids(args: Mapping[str, str], problems: list[Problem]) -> tuple[int, ...] | None:
    values = several(args, "service_request_id")
    if not values:
        return None
    problems += [Problem(400, message(N_("service_request_id={value!r} is not a request id; expected whole numbers "
                                         "separated by commas"), value=value))
                 for value in values if not REQUEST_ID.fullmatch(value)]
    if len(values) > LIST_MAX:
        problems.append(Problem(400, message(N_("service_request_id names {count} requests; expected at most {limit}"),
                                             count=len(values), limit=LIST_MAX)))
    return tuple(int(v) for v in values if REQUEST_ID.fullmatch(v))


def _moment(args: Mapping[str, str], key: str, problems: list[Problem], *, end: bool = False) -> datetime | None:
    """A date filter as the deployment's wall-clock time: the moment itself for ``start_date``, the
    first moment after it for ``end_date`` (the store's bound is exclusive); a date alone is its day."""
    text = opt(args, key)
    if text is None:
        return None
    try:
        if re.fullmatch(r"\d{4}-\d{2}-\d{2}", text):
            day = date.fromisoformat(text) + timedelta(days=1 if end else 0)
            return datetime.combine(day, datetime.min.time())
        moment = datetime.fromisoformat(text)
        if moment.tzinfo is not None:
            moment = moment.astimezone(service().tz).replace(tzinfo=None)
        return moment + timedelta(microseconds=1 if end else 0)
    except (ValueError, OverflowError):
        problems.append(Problem(400, message(N_("{key}={value!r} is not a date and time; expected ISO 8601 such as "
                                                "2010-05-24T00:00:00Z"), key=key, value=text)))
        return None


def _window(args: Mapping[str, str], start: datetime | None, end: datetime | None,
            problems: list[Problem]) -> tuple[datetime | None, datetime | None]:
    """The period listed: as given, at most :data:`SPAN` long; 90 days from one bound given alone;
    without either, the 90 days up to now."""
    if start is not None and end is not None:
        if start >= end:
            problems.append(Problem(400, message(N_("start_date={start!r} is after end_date={end!r}"),
                                                 start=args.get("start_date"), end=args.get("end_date"))))
        elif end - start > SPAN + timedelta(microseconds=1):
            problems.append(Problem(400, message(N_("start_date={start!r} and end_date={end!r} are more than 90 days "
                                                    "apart; expected at most 90 days"),
                                                 start=args.get("start_date"), end=args.get("end_date"))))
        return start, end
    if start is not None:
        return start, _shifted(start, SPAN)
    if end is not None:
        return _shifted(end, -SPAN), end
    return _shifted(datetime.now(service().tz).replace(tzinfo=None), -SPAN), None


def _shifted(moment: datetime, delta: timedelta) -> datetime | None:
    try:
        return moment + delta
    except OverflowError:       # beyond year 1 or 9999: no bound that side
        return None


# -- request objects ------------------------------------------------------------------------
def _requests(query: IncidentQuery) -> list[dict[str, Any]]:
    """The matching requests (at most :data:`LIST_MAX`) as the spec's objects.  An incident still
    reported has had no step; the others' last step is read for its time and note."""
    features, _ = service().incident_page(query, limit=LIST_MAX)
    steps = {f["id"]: events[-1] for f in features if f["properties"]["status"] != Status.REPORTED.value
             and (events := service().store.incident_events(f["id"]))}
    names = _unit_names()
    lang = language()
    return [_request(f, steps.get(f["id"]), names, lang) for f in features]


def _request(feature: dict[str, Any], step: IncidentEvent | None, names: dict[str, dict[str, Any]],
             lang: str) -> dict[str, Any]:
    props = feature["properties"]
    status = Status(props["status"])
    category = categories.BY_CODE.get(props["category"], categories.OTHER)
    reported = datetime.fromisoformat(props["reported_at"])
    own = props.get("due_at")          # an incident's own deadline, where it has one, else its category's
    due = None if props.get("no_deadline") else service().deadlines.due(
        reported, category.code, datetime.fromisoformat(own) if own else None)
    units = _chain(props["units"], names)
    lon, lat = feature["geometry"]["coordinates"]
    return {"service_request_id": str(feature["id"]), "status": _open_or_closed(status),
            "status_notes": _status_notes(status, props, step), "service_name": category.label(lang),
            "service_code": category.code, "description": props["description"] or None,
            "agency_responsible": " / ".join(units) or None,
            "service_notice": _notice(status, units, props["unassigned"], due),
            "requested_datetime": _w3(reported), "updated_datetime": _w3(step.at if step else reported),
            "expected_datetime": _w3(due) if due is not None else None,
            "address": None, "address_id": None, "zipcode": None,
            "lat": lat, "long": lon, "media_url": None}


def _open_or_closed(status: Status) -> str:
    return "open" if status in OPEN else "closed"


def _status_notes(status: Status, props: dict[str, Any], step: IncidentEvent | None) -> str | None:
    """How it ended (closed, rejected, a duplicate) and the last step's note; None before any step."""
    if step is None:
        return None
    parts = []
    if status in (Status.CLOSED, Status.RATED) and props.get("resolution") in RESOLUTION_NOTES:
        parts.append(gettext(RESOLUTION_NOTES[props["resolution"]]))
    elif status is Status.REJECTED:
        parts.append(gettext("Not accepted."))
    elif status is Status.DUPLICATE:
        parts.append(tr(message(N_("A duplicate of request {id}."), id=props.get("duplicate_of"))))
    if step.note:
        parts.append(step.note)
    return " ".join(parts) or None


def _notice(status: Status, units: list[str], unassigned: bool, due: datetime | None) -> str | None:
    """What happens next to an open request: who handles it by when, or that it waits to be assigned."""
    if status not in OPEN:
        return None
    if unassigned:
        return gettext("The position is outside the grid units, so the community office will assign it by hand.")
    if due is None:                    # a case its source system gave no deadline
        return None
    return tr(message(N_("{unit} will handle it by {due}."), unit=units[0], due=f"{due:%Y-%m-%d %H:%M}"))


def _unit_names() -> dict[str, dict[str, Any]]:
    """Each current level's unit names by code."""
    return {level.value: dict(zip(layer.units["code"], layer.units["name"]))
            for level, layer in service().layers().items()}


def _chain(units: dict[str, str | None], names: dict[str, dict[str, Any]]) -> list[str]:
    """The units holding a request, smallest first, by name (by code where a unit has none)."""
    chain = []
    for level in reversed(ORDER):
        code = units.get(level.value)
        if code is not None:
            name = names.get(level.value, {}).get(code)
            chain.append(name if isinstance(name, str) and name.strip() else code)
    return chain


def _w3(moment: datetime) -> str:
    """A stored wall-clock time with the deployment's UTC offset (the spec's w3 format)."""
    return moment.replace(tzinfo=service().tz).isoformat(timespec="seconds")
