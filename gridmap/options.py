"""Options of a boundary change as people give them — form fields, JSON members, query
parameters, command-line flags — read by one set of parsers, so the API, the pages, the editor
and the CLI accept and refuse exactly the same values.  A refusal names the option by its key
in a parameter called ``option``, which each edge shows its own way (:meth:`Message.relabel`).
"""
from __future__ import annotations

import math
import re
from typing import Any, Sequence

from .changes import LayerOptions
from .cleaning import CleanOptions
from .errors import N_, InvalidInput, message

#: The largest whole number an option takes (a version, an offset, a limit): nine digits, far inside
#: SQLite's and numpy's int64, so nothing computed from it overflows.
MAX_WHOLE = 999_999_999
# A decimal number as people type one, in ASCII: float() also takes "١٢", "1_000", "nan" and "infinity".
_DECIMAL = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")


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
    number = float(value) if _DECIMAL.fullmatch(value) else math.nan
    if not (number >= minimum and math.isfinite(number)):
        raise InvalidInput(message(N_("{option}: {value!r} is not valid; expected a number >= {minimum}"),
                                   option=key, value=value, minimum=minimum))
    return number


def parse_version(value: str | None, key: str, *, minimum: int = 1) -> int | None:
    """A version number (``version=``, ``with=``, ``base_version=``; 0 only where it means "none"),
    ``minimum`` to :data:`MAX_WHOLE` in ASCII digits."""
    if value is None or (minimum == 0 and value.lower() in ("none", "null")):
        return None
    if not (_whole(value) and int(value) >= minimum):
        raise InvalidInput(message(N_("{option}: {value!r} is not a version number; expected {expected}"),
                                   option=key, value=value,
                                   expected="0, 1, 2, … (0: the level had none)" if minimum == 0 else "1, 2, 3, …"))
    return int(value)


def parse_count(value: str | None, key: str, *, default: int, maximum: int = MAX_WHOLE) -> int:
    """A whole number from 0 to ``maximum`` (``offset=``, ``limit=``); absent is ``default``."""
    if value is None:
        return default
    if not (_whole(value) and int(value) <= maximum):
        raise InvalidInput(message(N_("{option}: {value!r} is not valid; expected a whole number from 0 to {maximum}"),
                                   option=key, value=value, maximum=maximum))
    return int(value)


def parse_choice(value: str | None, key: str, choices: Sequence[str]) -> str | None:
    """One of ``choices`` (``mode=``, ``part=``, ``severity=``); absent is None."""
    if value is None:
        return None
    if value not in choices:
        raise InvalidInput(message(N_("{option}: {value!r} is not known; expected one of {expected}"), option=key,
                                   value=value, expected=", ".join(choices)))
    return value


def _whole(value: str) -> bool:
    """ASCII digits only (``²`` passes str.isdigit but not int; ``٣`` and ``３`` pass both, but are not what
    anyone types) and at most nine of them, so at most :data:`MAX_WHOLE`."""
    return value.isascii() and value.isdigit() and len(value) <= len(str(MAX_WHOLE))
