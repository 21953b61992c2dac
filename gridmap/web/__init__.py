"""The Flask side of gridmap: API and page blueprints, the one error handler.

The only package under ``gridmap`` allowed to import Flask.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, replace
from datetime import timedelta
from typing import Any, Mapping
from urllib.parse import urlsplit

from flask import abort, current_app, g, request
from flask_babel import get_locale, gettext
from markupsafe import escape
from werkzeug.routing import IntegerConverter

from .. import categories
from ..changes import LayerOptions
from ..coordinates import shown
from ..errors import N_, InvalidInput, Message, message
from ..filters import SOURCE_MAX, _all, parse_bbox, parse_query, several  # noqa: F401 - the blueprints take them from here
from ..incidents import Status
from ..layer import nul_path
from ..levels import Level
from ..options import layer_options, opt, parse_version
from ..service import Gridmap
from ..storage import IncidentQuery


class IdConverter(IntegerConverter):
    """``<id:…>`` in a route: a whole number of at most 18 digits (a database id), so that a longer
    one is a 404, not a number too big for the database."""

    regex = r"\d{1,18}"


def service() -> Gridmap:
    return current_app.extensions["gridmap"]


def author(form: Any) -> str:
    """Who a version says made it: the name given (``author``: a planner may sign with their full
    name), else the account's.  The audit trail records the account either way."""
    account = g.get("account")
    return opt(form, "author") or (account.name if account is not None else "")


def idempotency_key(value: str | None = None) -> str | None:
    """The request's idempotency key (the ``Idempotency-Key`` header, or ``value`` from a form),
    kept per account: a retry of the same request by the same account stores nothing again."""
    key = value if value is not None else request.headers.get("Idempotency-Key")
    if not key:
        return None
    if len(key) > 200 or not key.isascii() or not key.isprintable():
        raise InvalidInput(message(N_("Idempotency-Key: expected at most 200 printable ASCII characters "
                                      "(e.g. a UUID); got {length} characters"), length=len(key)))
    account = g.get("account")
    return f"{account.name if account is not None else ''}:{key}"


def signed_options(form: Any, *, filename: str) -> LayerOptions:
    """A boundary change's options from a form or JSON body (:func:`gridmap.options.layer_options`),
    with :func:`author`."""
    return replace(layer_options(form, filename=filename), author=author(form))


def tr(msg: Message, labels: Mapping[str, str] | None = None) -> str:
    """A domain message in the request's language; ``labels`` names the request options it
    mentions the way the page's form labels them."""
    return (msg.relabel(labels) if labels else msg).render(gettext)


def flag(args: Mapping[str, str], key: str, default: bool) -> bool:
    """``key=1`` or ``key=0`` (also true/false, yes/no); absent is ``default``."""
    value = (args.get(key) or "").strip().lower()
    if not value:
        return default
    if value in ("1", "true", "yes"):
        return True
    if value in ("0", "false", "no"):
        return False
    raise InvalidInput(message(N_("{key}={value!r} is not valid; expected 1 or 0"), key=key, value=value))


#: Query parameters that filter incidents (:func:`parse_query`): every map, chart and table takes them.
FILTER_KEYS = ("category", "from", "to", "status", "source", "unit", "stacked")
def filter_args(args: Mapping[str, str]) -> dict[str, list[str]]:
    """The request's filters, every value of each (``category=a&category=b``), for building the
    URLs of a page's other views (``url_for`` and ``urlencode(..., doseq=True)`` repeat them)."""
    return {key: values for key in FILTER_KEYS if (values := [v for v in _all(args, key) if v.strip()])}


#: How the filter form names each status.
STATUS_LABELS = {Status.REPORTED.value: N_("Reported"), Status.DISPATCHED.value: N_("Dispatched"),
                 Status.IN_PROGRESS.value: N_("In progress"), Status.CLOSED.value: N_("Closed"),
                 Status.RATED.value: N_("Rated"), Status.REJECTED.value: N_("Rejected"),
                 Status.DUPLICATE.value: N_("Duplicate")}


@dataclass(frozen=True)
class Choice:
    """One option of the filter form: its value, how it is named, whether the request chose it,
    and (for sources) how many stored incidents name it."""

    value: str
    label: str
    chosen: bool
    count: int | None = None


def filter_choices(args: Mapping[str, str]) -> dict[str, list[Choice]]:
    """What the filter form offers: the categories, the statuses, and the sources the stored
    incidents name (from the in-memory counts: milliseconds at a million incidents)."""
    chosen = {key: set(several(args, key, split=key != "source")) for key in ("category", "status", "source")}
    sources = service().incident_counts(IncidentQuery(), "source")
    return {"category": [Choice(c.code, c.label(language()), c.code in chosen["category"])
                         for c in categories.CATEGORIES],
            "status": [Choice(value, gettext(label), value in chosen["status"])
                       for value, label in STATUS_LABELS.items()],
            "source": [Choice(value, value, value in chosen["source"], n) for value, n in sources.items() if value]}


def describe_filters(query: IncidentQuery, *, stacked: bool = False) -> str:
    """The filters in words, for a page that leaves the browser (the report map): the
    categories, statuses and sources chosen (or "all"), the period, the unit, and whether
    incidents on stacked coordinates count."""
    labels = {c.code: c.label(language()) for c in categories.CATEGORIES}
    parts = ["、".join(labels.get(c, c) for c in query.categories) if query.categories else gettext("All categories"),
             "、".join(gettext(STATUS_LABELS.get(s, s)) for s in query.statuses) if query.statuses
             else gettext("All statuses")]
    if query.sources:
        parts.append("、".join(query.sources))
    if query.date_from or query.date_to:
        last = query.date_to - timedelta(days=1) if query.date_to else None
        parts.append(gettext("{start} to {end}").format(start=f"{query.date_from:%Y-%m-%d}" if query.date_from else "…",
                                                        end=f"{last:%Y-%m-%d}" if last else "…"))
    if query.unit:
        parts.append(query.unit)
    parts.append(gettext("stacked coordinates counted") if stacked else gettext("stacked coordinates left out"))
    return " · ".join(parts)


def error_body(summary: Message, details: list[Message]) -> dict[str, Any]:
    return {"error": tr(summary), "details": [tr(d) for d in details]}


def version_arg(key: str) -> int | None:
    """A version number from the query string (``version=``, ``with=``); absent is None."""
    return parse_version(opt(request.args, key), key)


def compared_with(version: int) -> int:
    """``with=N``: the version another one is compared with."""
    other = version_arg("with")
    if other is None:
        raise InvalidInput(message(N_("expected with=<version number> to compare version {version} with"),
                                   version=version))
    return other


def json_payload() -> Any:
    """The request's JSON body, None when it is not JSON.  Refused, saying why: text that is not
    JSON, ``NaN`` and ``Infinity`` (not JSON, though Python reads them), nesting too deep to read."""
    if not request.is_json:
        return None
    data = request.get_data(cache=True)
    limit = current_app.config.get("MAX_CONTENT_LENGTH")
    if request.content_length is None and limit and len(data) >= limit:
        abort(413)             # a chunked body is cut at the limit, not refused: refuse it here
    try:
        payload = json.loads(data, parse_constant=_no_constant)
    except RecursionError:
        raise InvalidInput(message(N_("the JSON body is nested too deeply to read"))) from None
    except ValueError as error:        # JSONDecodeError, UnicodeDecodeError, the constants
        raise InvalidInput(message(N_("the JSON body could not be read: {reason}"), reason=str(error)[:200])) from None
    if b"\\u0000" in data:           # JSON text can hold a NUL only written this way
        where = nul_path(payload, "body")
        if where is not None:
            raise InvalidInput(nul_refused(where))
    return payload


def nul_refused(where: str) -> Message:
    """Why a value holding a NUL character is refused, and where it was."""
    return message(N_("{field} holds a NUL character (\\u0000), which text may not hold; remove it and send "
                      "again"), field=shown(where))


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number; send a number or null")


def json_object() -> dict[str, Any]:
    """The request's JSON object body; anything else is refused saying what arrived."""
    payload = json_payload()
    if not isinstance(payload, dict):
        raise InvalidInput(message(N_("expected a JSON object (Content-Type: application/json); got {got}"),
                                   got=type(payload).__name__ if payload is not None else
                                   request.content_type or "no body"))
    return payload


def basemap_config() -> dict[str, Any] | None:
    """The tiles a page draws under its layers (static/basemap.js), or None for a plain background:
    their URL, attribution, system (GCJ02 tiles: every layer shifted onto them) and subdomains,
    and what the page says when they cannot be reached."""
    settings = current_app.config["GRIDMAP_SETTINGS"]
    if settings.tiles is None:
        return None
    host = urlsplit(settings.tiles).netloc or settings.tiles
    return {"url": settings.tiles, "attribution": settings.tiles_attribution or escape(host),
            "crs": settings.tiles_crs, "subdomains": settings.tiles_subdomains,
            "unavailable": gettext("The basemap ({host}) cannot be reached: the map shows a plain background.")
            .format(host=host)}


def language() -> str:
    """The request's UI language, "zh" or "en"."""
    locale = get_locale()
    return locale.language if locale else "zh"


def level_title(level: Level) -> str:
    """A level's name in the request's language (微网格 / Micro-grid)."""
    return level.label_en if language() == "en" else level.label_zh
