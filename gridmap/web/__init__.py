"""The Flask side of gridmap: API and page blueprints, the one error handler.

The only package under ``gridmap`` allowed to import Flask.
"""
from __future__ import annotations

from datetime import date, datetime, timedelta
from typing import Any, Mapping

from flask import current_app
from flask_babel import gettext

from .. import categories
from ..errors import N_, InvalidInput, Message, message
from ..incidents import Status
from ..service import Gridmap
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
