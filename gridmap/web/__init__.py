"""The Flask side of gridmap: API and page blueprints, the one error handler.

The only package under ``gridmap`` allowed to import Flask.
"""
from __future__ import annotations

import math
from datetime import date, datetime, timedelta
from typing import Any, Mapping

from flask import current_app, request
from flask_babel import get_locale, gettext

from .. import categories
from ..changes import LayerOptions
from ..cleaning import CleanOptions
from ..errors import N_, InvalidInput, Message, message
from ..incidents import Status
from ..levels import Level
from ..service import Gridmap
from ..storage import IncidentQuery


def service() -> Gridmap:
    return current_app.extensions["gridmap"]


def tr(msg: Message, labels: Mapping[str, str] | None = None) -> str:
    """A domain message in the request's language; ``labels`` names the request options it
    mentions the way the page's form labels them."""
    return (msg.relabel(labels) if labels else msg).render(gettext)


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
    """How to read, check and save a boundary upload, from a form or a JSON body (the API, the
    pages and the editor alike)."""
    return LayerOptions(filename=filename, crs=opt(form, "crs"), code_field=opt(form, "code_field"),
                        name_field=opt(form, "name_field"), parent_field=opt(form, "parent_field"),
                        layer=opt(form, "layer"), encoding=opt(form, "encoding"),
                        tolerance_m2=_number(form, "tolerance_m2", minimum=0.0),
                        clean=clean_options(form) if flag(form, "clean") else None,
                        derive_parent=flag(form, "derive_parent"),
                        author=opt(form, "author") or "", note=opt(form, "note") or "",
                        base_version=parse_version(opt(form, "base_version"), "base_version", minimum=0))


def clean_options(form: Any) -> CleanOptions:
    """Coverage cleaning's widths in metres (``gap_width_m``, ``snap_m``); the defaults where not given."""
    gap, snap = _number(form, "gap_width_m", minimum=0.0), _number(form, "snap_m", minimum=0.0)
    defaults = CleanOptions()
    return CleanOptions(gap_width_m=defaults.gap_width_m if gap is None else gap,
                        snap_m=defaults.snap_m if snap is None else snap)


def flag(form: Any, key: str) -> bool:
    """A checkbox or a JSON boolean: on for ``1``, ``true``, ``on``, ``yes`` (and JSON ``true``)."""
    value = form.get(key)
    if isinstance(value, bool):
        return value
    text = opt(form, key)
    if text is None or text.lower() in ("0", "false", "off", "no"):
        return False
    if text.lower() in ("1", "true", "on", "yes"):
        return True
    raise InvalidInput(message(N_("{option}: {value!r} is not a yes/no value; expected 1 or 0"), option=key,
                               value=text))


def _number(form: Any, key: str, *, minimum: float) -> float | None:
    value = opt(form, key)
    if value is None:
        return None
    try:
        number = float(value)
    except ValueError:
        number = float("nan")
    if not (number >= minimum and math.isfinite(number)):
        raise InvalidInput(message(N_("{option}: {value!r} is not valid; expected a number >= {minimum}"),
                                   option=key, value=value, minimum=minimum))
    return number


def parse_version(value: str | None, key: str, *, minimum: int = 1) -> int | None:
    """A version number (``version=``, ``with=``, ``base_version=``; 0 only where it means "none")."""
    if value is None or (minimum == 0 and value.lower() in ("none", "null")):
        return None
    if not (value.isascii() and value.isdigit() and len(value) <= 9 and int(value) >= minimum):
        raise InvalidInput(message(N_("{option}: {value!r} is not a version number; expected {expected}"),
                                   option=key, value=value,
                                   expected="0, 1, 2, … (0: the level had none)" if minimum == 0 else "1, 2, 3, …"))
    return int(value)


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


def json_object() -> dict[str, Any]:
    """The request's JSON object body; anything else is refused saying what arrived."""
    payload = request.get_json(silent=True)
    if not isinstance(payload, dict):
        raise InvalidInput(message(N_("expected a JSON object (Content-Type: application/json); got {got}"),
                                   got=type(payload).__name__ if payload is not None else
                                   request.content_type or "no body"))
    return payload


def language() -> str:
    """The request's UI language, "zh" or "en"."""
    locale = get_locale()
    return locale.language if locale else "zh"


def level_title(level: Level) -> str:
    """A level's name in the request's language (微网格 / Micro-grid)."""
    return level.label_en if language() == "en" else level.label_zh
