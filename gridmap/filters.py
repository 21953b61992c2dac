"""Incident filters, as every page, API call and command names them (``category``, ``status``,
``source``, ``from``, ``to``, ``unit``, ``bbox``): one parser for the web and the command line.

``args`` is a request's query (a MultiDict: repeated keys) or a plain mapping whose values are
text or sequences of text (the command line's repeated options).
"""
from __future__ import annotations

from datetime import date, datetime, timedelta
from typing import Any, Mapping

from . import categories
from .errors import N_, InvalidInput, Message, message
from .incidents import EARLIEST_TIME, LATEST_TIME, Status
from .storage import IncidentQuery

#: The longest source a filter may name (the stored column's width).
SOURCE_MAX = 100


def parse_query(args: Mapping[str, Any]) -> IncidentQuery:
    """Incident filters from query parameters; ``to`` is a whole day, inclusive.  ``category``,
    ``status`` and ``source`` may be given several times (categories and statuses also
    comma-separated; a source is free text): any of them matches."""
    problems: list[Message] = []
    chosen = several(args, "category")
    for value in chosen:
        if value not in categories.BY_CODE:
            problems.append(message(N_("unknown category {value!r}; expected one of {expected}"), value=value,
                                    expected=", ".join(categories.BY_CODE)))
    statuses = several(args, "status")
    for value in statuses:
        if value not in {s.value for s in Status}:
            problems.append(message(N_("unknown status {value!r}; expected one of {expected}"), value=value,
                                    expected=", ".join(s.value for s in Status)))
    sources = several(args, "source", split=False)
    for value in sources:
        if len(value) > SOURCE_MAX:
            problems.append(message(N_("source={value!r} is too long; expected at most {limit} characters"),
                                    value=value[:40] + "…", limit=SOURCE_MAX))
    start = _date(args, "from", problems)
    end = _date(args, "to", problems)
    bbox = parse_bbox(args.get("bbox"), problems)
    if problems:
        raise InvalidInput(message(N_("the filters are not valid")), problems)
    return IncidentQuery(categories=chosen, statuses=statuses, sources=sources,
                         unit=(args.get("unit") or "").strip() or None, bbox=bbox,
                         date_from=datetime.combine(start, datetime.min.time()) if start else None,
                         date_to=datetime.combine(end + timedelta(days=1), datetime.min.time())
                         if end and end < date.max else None)


def _all(args: Mapping[str, Any], key: str) -> list[str]:
    getlist = getattr(args, "getlist", None)          # a MultiDict (request.args) holds repeats
    if getlist is not None:
        return list(getlist(key))
    value = args.get(key)
    return [] if value is None else list(value) if isinstance(value, (list, tuple)) else [value]


def several(args: Mapping[str, Any], key: str, *, split: bool = True) -> tuple[str, ...]:
    """Every value of ``key``, repeated (or comma-separated, if ``split``), stripped, blanks and repeats left out."""
    values = (v.strip() for given in _all(args, key) for v in (given.split(",") if split else [given]))
    return tuple(dict.fromkeys(v for v in values if v))


def parse_bbox(value: str | None, problems: list[Message]) -> tuple[float, float, float, float] | None:
    """``bbox=west,south,east,north`` in WGS84 degrees (as OGC API Features has it); absent is None."""
    text = (value or "").strip()
    if not text:
        return None
    try:
        west, south, east, north = (float(v) for v in text.split(","))
    except ValueError:
        problems.append(message(N_("bbox={value!r} is not a box; expected west,south,east,north in degrees "
                                   "(e.g. 114.0,30.0,114.2,30.2)"), value=text))
        return None
    if not (-180 <= west <= east <= 180 and -90 <= south <= north <= 90):
        problems.append(message(N_("bbox={value!r} is not a box; expected west ≤ east within -180..180 and "
                                   "south ≤ north within -90..90"), value=text))
        return None
    return west, south, east, north


def _date(args: Mapping[str, Any], key: str, problems: list[Message]) -> date | None:
    value = (args.get(key) or "").strip()
    if not value:
        return None
    try:
        if not value.isascii():
            raise ValueError(value)
        found = date.fromisoformat(value)
    except ValueError:
        problems.append(message(N_("{key}={value!r} is not a date; expected YYYY-MM-DD"), key=key, value=value))
        return None
    # a date beyond what gridmap keeps (1970-2100) means "no bound": to=9999-12-31 is everything
    return min(max(found, EARLIEST_TIME.date()), LATEST_TIME.date())
