"""The Flask side of gridmap: API and page blueprints, the one error handler.

The only package under ``gridmap`` allowed to import Flask.
"""
from __future__ import annotations

from datetime import date, datetime, timedelta
from typing import Any, Mapping

from flask import current_app, request
from flask_babel import gettext

from .. import categories
from ..errors import N_, InvalidInput, Message, message
from ..incidents import Status
from ..service import Gridmap, LayerOptions
from ..storage import IncidentQuery


def service() -> Gridmap:
    return current_app.extensions["gridmap"]


def tr(msg: Message) -> str:
    """A domain message in the request's language."""
    return msg.render(gettext)


def parse_query(args: Mapping[str, str]) -> IncidentQuery:
    """Incident filters from query parameters; ``to`` is a whole day, inclusive."""
    problems: list[Message] = []
    category = (args.get("category") or "").strip() or None
    if category and category not in categories.BY_CODE:
        problems.append(message(N_("unknown category {value!r}; expected one of {expected}"), value=category,
                                expected=", ".join(categories.BY_CODE)))
    status = (args.get("status") or "").strip() or None
    if status and status not in {s.value for s in Status}:
        problems.append(message(N_("unknown status {value!r}; expected one of {expected}"), value=status,
                                expected=", ".join(s.value for s in Status)))
    start = _date(args, "from", problems)
    end = _date(args, "to", problems)
    if problems:
        raise InvalidInput(message(N_("the filters are not valid")), problems)
    return IncidentQuery(category=category, status=status, unit=(args.get("unit") or "").strip() or None,
                         date_from=datetime.combine(start, datetime.min.time()) if start else None,
                         date_to=datetime.combine(end + timedelta(days=1), datetime.min.time())
                         if end and end < date.max else None)


def _date(args: Mapping[str, str], key: str, problems: list[Message]) -> date | None:
    value = (args.get(key) or "").strip()
    if not value:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        problems.append(message(N_("{key}={value!r} is not a date; expected YYYY-MM-DD"), key=key, value=value))
        return None


def error_body(summary: Message, details: list[Message]) -> dict[str, Any]:
    return {"error": tr(summary), "details": [tr(d) for d in details]}


def opt(form: Any, key: str) -> str | None:
    """A form, JSON or query value as stripped text; blank is None."""
    value = form.get(key)
    value = "" if value is None else str(value).strip()
    return value or None


def layer_options(form: Any, *, filename: str) -> LayerOptions:
    """How to read and save a boundary upload, from a form or a JSON body (the API and the pages)."""
    return LayerOptions(filename=filename, crs=opt(form, "crs"), code_field=opt(form, "code_field"),
                        name_field=opt(form, "name_field"), parent_field=opt(form, "parent_field"),
                        layer=opt(form, "layer"), encoding=opt(form, "encoding"),
                        tolerance_m2=_number(form, "tolerance_m2", minimum=0.0),
                        author=opt(form, "author") or "", note=opt(form, "note") or "",
                        base_version=_base(form))


def _number(form: Any, key: str, *, minimum: float) -> float | None:
    value = opt(form, key)
    if value is None:
        return None
    try:
        number = float(value)
    except ValueError:
        number = float("nan")
    if not number >= minimum:
        raise InvalidInput(message(N_("{key}={value!r} is not valid; expected a number >= {minimum}"),
                                   key=key, value=value, minimum=minimum))
    return number


def _base(form: Any) -> int | None:
    value = opt(form, "base_version")
    if value is None or value.lower() in ("none", "null"):
        return None
    if not value.isdigit():
        raise InvalidInput(message(N_("base_version={value!r} is not a version number; expected the number of "
                                      "the version the edit started from (0 for a level with none)"), value=value))
    return int(value)


def version_arg(key: str) -> int | None:
    """A version number from the query string (``version=``, ``with=``); absent is None."""
    value = (request.args.get(key) or "").strip()
    if not value:
        return None
    if not value.isdigit():
        raise InvalidInput(message(N_("{key}={value!r} is not a version number"), key=key, value=value))
    return int(value)


def compared_with(version: int) -> int:
    """``with=N``: the version another one is compared with."""
    other = version_arg("with")
    if other is None:
        raise InvalidInput(message(N_("expected with=<version number> to compare version {version} with"),
                                   version=version))
    return other
