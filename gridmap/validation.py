"""The validation report: every problem of a boundary upload, found before anything is committed.

A :class:`Problem` names what is wrong, where (feature index, code, a lon/lat location), how
big (m²) and whether it blocks the commit (``error``) or is only reported (``warning``).
Feature problems (geometry, codes, names) are found while reading the file
(:mod:`gridmap.boundaries`); the checks here look at whole layers: coverage (gaps and
overlaps between the units of a level) and nesting (children crossing their parent,
parent land no child covers).  All areas are measured in an equal-area projection.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from enum import Enum
from typing import Any, Callable

from shapely.geometry.base import BaseGeometry

from .errors import Message

log = logging.getLogger(__name__)

DEFAULT_TOLERANCE_M2 = 1.0


class Severity(str, Enum):
    ERROR = "error"        # blocks the commit
    WARNING = "warning"    # reported, committed anyway


@dataclass(frozen=True)
class Problem:
    """One problem of an upload.

    ``kind`` is a stable machine name (see the table in DEVELOPERS.md); ``feature`` is the
    0-based index of the feature in the uploaded file (for a stored layer: the unit's row);
    ``location`` is a (lon, lat) point on the problem; ``geometry`` (WGS84) is what the
    report map draws: the gap, the overlap, the part outside the parent.
    """

    kind: str
    severity: Severity
    message: Message
    feature: int | None = None
    code: str | None = None
    location: tuple[float, float] | None = None
    size_m2: float | None = None
    geometry: BaseGeometry | None = None
    codes: tuple[str, ...] = ()          # every unit involved (both sides of an overlap, …)

    def as_dict(self, translate: Callable[[str], str] = lambda s: s) -> dict[str, Any]:
        return {"kind": self.kind, "severity": self.severity.value, "message": self.message.render(translate),
                "feature": self.feature, "code": self.code, "codes": list(self.codes),
                "location": list(self.location) if self.location else None,
                "size_m2": None if self.size_m2 is None else round(self.size_m2, 1)}


@dataclass
class Report:
    """Every problem found, errors first; the upload may be committed when there is no error."""

    problems: list[Problem] = field(default_factory=list)

    @property
    def errors(self) -> list[Problem]:
        return [p for p in self.problems if p.severity is Severity.ERROR]

    @property
    def warnings(self) -> list[Problem]:
        return [p for p in self.problems if p.severity is Severity.WARNING]

    @property
    def ok(self) -> bool:
        return not self.errors

    def add(self, problems: list[Problem]) -> None:
        self.problems.extend(problems)

    def as_dict(self, translate: Callable[[str], str] = lambda s: s) -> dict[str, Any]:
        return {"ok": self.ok, "errors": [p.as_dict(translate) for p in self.errors],
                "warnings": [p.as_dict(translate) for p in self.warnings]}
