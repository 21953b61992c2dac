"""Problems of a boundary upload and the report that collects them.

A :class:`Problem` names what is wrong, where (feature index, code, a lon/lat location), how
big (m²) and whether it blocks the commit (``error``) or is only reported (``warning``).
Feature problems are found while reading the file (:mod:`gridmap.feature_checks`), layer
problems by :mod:`gridmap.validation`.  A report is stored with the version it was made for
(:func:`Report.as_record`), so a planner later sees exactly what was shown at save time.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum
from typing import Any, Callable, Mapping

import shapely
from shapely.geometry.base import BaseGeometry

from .cleaning import Cleaning
from .errors import Message, message_from_record, message_record


class Severity(str, Enum):
    ERROR = "error"        # blocks the commit
    WARNING = "warning"    # reported, committed anyway


@dataclass(frozen=True)
class Problem:
    """One problem of an upload.

    ``kind`` is a stable machine name (see the table in README.md); ``feature`` is the
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

    def as_record(self) -> dict[str, Any]:
        """The problem as JSON-safe data, message untranslated and geometry as WKB (hex), to store."""
        return {"kind": self.kind, "severity": self.severity.value, "message": message_record(self.message),
                "feature": self.feature, "code": self.code, "codes": list(self.codes),
                "location": list(self.location) if self.location else None, "size_m2": self.size_m2,
                "geometry": None if self.geometry is None else shapely.to_wkb(self.geometry, hex=True)}

    @classmethod
    def from_record(cls, record: Mapping[str, Any]) -> Problem:
        geometry = record.get("geometry")
        return cls(kind=record["kind"], severity=Severity(record["severity"]),
                   message=message_from_record(record["message"]), feature=record["feature"], code=record["code"],
                   codes=tuple(record["codes"]), location=tuple(record["location"]) if record["location"] else None,
                   size_m2=record["size_m2"], geometry=shapely.from_wkb(geometry) if geometry else None)


@dataclass(frozen=True)
class ProblemGroup:
    """The problems of one kind and severity, as the report page lists them."""

    kind: str
    severity: Severity
    problems: list[Problem]


@dataclass
class Report:
    """Every problem found, errors first; the upload may be committed when there is no error."""

    problems: list[Problem] = field(default_factory=list)
    cleaning: Cleaning | None = None      # what coverage cleaning changed, when the upload asked for it

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

    def groups(self) -> list[ProblemGroup]:
        """The problems grouped by kind: errors first, then the largest groups, then by kind."""
        by_kind: dict[tuple[Severity, str], list[Problem]] = {}
        for problem in self.problems:
            by_kind.setdefault((problem.severity, problem.kind), []).append(problem)
        ordered = sorted(by_kind.items(), key=lambda item: (item[0][0] is not Severity.ERROR, -len(item[1]),
                                                             item[0][1]))
        return [ProblemGroup(kind, severity, problems) for (severity, kind), problems in ordered]

    def as_dict(self, translate: Callable[[str], str] = lambda s: s) -> dict[str, Any]:
        body: dict[str, Any] = {"ok": self.ok, "errors": [p.as_dict(translate) for p in self.errors],
                                "warnings": [p.as_dict(translate) for p in self.warnings]}
        if self.cleaning is not None:
            body["cleaning"] = self.cleaning.as_dict()
        return body

    def as_record(self) -> dict[str, Any]:
        """The whole report as JSON-safe data, stored with the version it was made for."""
        return {"problems": [p.as_record() for p in self.problems],
                "cleaning": self.cleaning.as_dict(exact=True) if self.cleaning is not None else None}

    @classmethod
    def from_record(cls, record: Mapping[str, Any]) -> Report:
        cleaning = record.get("cleaning")
        return cls([Problem.from_record(p) for p in record["problems"]],
                   Cleaning.from_dict(cleaning) if cleaning else None)
