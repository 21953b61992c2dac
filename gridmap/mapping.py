"""How an operations system's export maps to gridmap's incidents: a small TOML file.

Every city's 311 or grid platform exports its own columns and words: Boston's ``CASE_STATUS`` says
``Open``/``Closed``, its ``TYPE`` says ``Abandoned Vehicles``, and the close time and the deadline
are columns of their own (``CLOSED_DT``, ``TARGET_DT``).  A mapping file says which column is which
and which word means which of ours, so closed cases arrive closed, with their close time and their
deadline::

    [columns]                       # our field = the file's column (any left out: found by name)
    external_id = "CASE_ENQUIRY_ID"
    reported_at = "OPEN_DT"
    closed_at = "CLOSED_DT"         # the close time: closed cases are closed when they were
    due_at = "TARGET_DT"            # each case's own deadline
    status = "CASE_STATUS"
    category = "TYPE"
    lon = "LONGITUDE"
    lat = "LATITUDE"

    [status]                        # the file's word = ours (reported, dispatched, in_progress, closed …)
    Open = "dispatched"
    Closed = "closed"

    [category]                      # the file's word = our category code
    "Abandoned Vehicles" = "illegal_parking"

    [deadline]
    when_missing = "none"           # a case without a deadline is never late; "category": the category's hours

Words are matched without regard to case or surrounding spaces; a word the file uses that the
mapping does not name falls back to gridmap's own vocabulary (and a status it cannot read is a
row error, as without a mapping).
"""
from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Mapping

from . import categories
from .errors import N_, InvalidInput, Message, message

#: Our fields a mapping may name a column for.
FIELDS = ("external_id", "reported_at", "closed_at", "due_at", "status", "category", "lon", "lat",
          "description", "source")
#: The due time stored for a case the mapping says has no deadline: never late.
NO_DEADLINE = datetime(9999, 12, 31)
WHEN_MISSING = ("category", "none")


@dataclass(frozen=True)
class ImportMapping:
    columns: Mapping[str, str] = field(default_factory=dict)       # our field → the file's column
    status: Mapping[str, str] = field(default_factory=dict)        # the file's word (folded) → our Status value
    category: Mapping[str, str] = field(default_factory=dict)      # the file's word (folded) → our category code
    when_missing: str = "category"

    @classmethod
    def parse(cls, text: bytes | str, *, name: str = "mapping") -> ImportMapping:
        """The mapping in TOML ``text``; every problem named at once, with the way to fix it."""
        data = _toml(text, name)
        problems: list[Message] = []
        for section in sorted(set(data) - {"columns", "status", "category", "deadline"}):
            problems.append(message(N_("{name}: unknown section [{section}]; expected [columns], [status], "
                                       "[category] or [deadline]"), name=name, section=section))
        columns = _table(data, "columns", name, problems)
        for key in sorted(set(columns) - set(FIELDS)):
            problems.append(message(N_("{name}: [columns] names {key!r}, which is not one of ours: {choices}"),
                                    name=name, key=key, choices=", ".join(FIELDS)))
        from .incidents import Status  # here: incidents reads mappings, so it imports this module

        statuses = _table(data, "status", name, problems)
        known = {s.value for s in Status}
        for word, ours in statuses.items():
            if ours not in known:
                problems.append(message(N_("{name}: [status] maps {word!r} to {value!r}; expected one of {choices}"),
                                        name=name, word=word, value=ours, choices=", ".join(sorted(known))))
        codes = _table(data, "category", name, problems)
        for word, ours in codes.items():
            if ours not in categories.BY_CODE:
                problems.append(message(N_("{name}: [category] maps {word!r} to {value!r}; expected one of "
                                           "{choices}"), name=name, word=word, value=ours,
                                        choices=", ".join(categories.BY_CODE)))
        deadline = _table(data, "deadline", name, problems)
        for key in sorted(set(deadline) - {"when_missing"}):
            problems.append(message(N_("{name}: [deadline] names {key!r}; expected when_missing"), name=name, key=key))
        when_missing = str(deadline.get("when_missing", "category"))
        if when_missing not in WHEN_MISSING:
            problems.append(message(N_("{name}: [deadline] when_missing={value!r}; expected category or none"),
                                    name=name, value=when_missing))
        if problems:
            raise InvalidInput(message(N_("the mapping file is not valid")), problems)
        return cls(columns=dict(columns), status={_fold(k): v for k, v in statuses.items()},
                   category={_fold(k): v for k, v in codes.items()}, when_missing=when_missing)


def _toml(text: bytes | str, name: str) -> dict[str, Any]:
    """The TOML document in ``text``.  tomllib raises ValueError for bad text, bytes that are not UTF-8
    and integers of over 4,300 digits, and RecursionError for arrays or tables nested a thousand deep."""
    try:
        return tomllib.loads(text.decode("utf-8-sig") if isinstance(text, bytes) else text)   # -sig: Notepad's BOM
    except ValueError as error:
        raise InvalidInput(message(N_("{name} is not a TOML mapping file: {reason}"), name=name,
                                   reason=str(error))) from None
    except RecursionError:
        raise InvalidInput(message(N_("{name} is not a TOML mapping file: its values are nested too deeply; "
                                      "expected [section] tables of key = \"text\" lines"), name=name)) from None


def fold(word: Any) -> str:
    """A file's word as the mapping matches it: stripped, case folded."""
    return _fold(word)


def _fold(word: Any) -> str:
    return str(word).strip().casefold()


def _table(data: Mapping[str, Any], section: str, name: str, problems: list[Message]) -> dict[str, str]:
    table = data.get(section, {})
    if not isinstance(table, dict) or not all(isinstance(v, str) for v in table.values()):
        problems.append(message(N_("{name}: [{section}] must hold text values (key = \"value\")"), name=name,
                                section=section))
        return {}
    return table
