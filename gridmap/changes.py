"""A change to the boundaries: new versions of one or more levels, saved together.

An upload, an edit in the browser, a restore, a cleaning and the commit of a draft are all
changes.  Most touch one level; an edit that moves a grid line from the micro-grid editor,
or an upload that redraws the grids as the union of their micro-grids, touches two, and
then both versions are checked, stored and committed as one (one transaction, one conflict
check, one history entry per level).  This module holds the nouns of a change and its
rules: the options it was made with (stored with every version, so that what the planner
saw is what is kept), which base version a save may have, and what a result says.
"""
from __future__ import annotations

from dataclasses import dataclass, fields
from datetime import datetime, timezone, tzinfo
from enum import Enum
from typing import Any, Mapping

from .boundaries import ReadOptions
from .cleaning import CleanOptions
from .errors import N_, Conflict, message
from .layer import Layer
from .levels import Level
from .planning import Candidate
from .problems import Report
from .storage import VersionMeta
from .versions import LayerDiff


@dataclass(frozen=True)
class LayerOptions(ReadOptions):
    """How to read an upload (the reader's options), check it, clean it and who saves it.

    ``base_version`` is the version the planner's work started from: None when not said
    (whatever is current), 0 when the level had none.  ``service_area`` is the deployment's,
    whatever is given here.  ``clean`` asks for coverage cleaning; ``derive_parent`` redraws the
    level above as the union of this level's units, saved with it as one change."""

    filename: str = "upload.geojson"
    tolerance_m2: float | None = None
    clean: CleanOptions | None = None
    derive_parent: bool = False
    author: str = ""
    note: str = ""
    base_version: int | None = None

    def record(self, *, tolerance_m2: float) -> dict[str, Any]:
        """What decides the outcome of a save, as stored with its version (the tolerance in force)."""
        kept = {f.name: getattr(self, f.name) for f in fields(self)
                if f.name not in _NOT_RECORDED and getattr(self, f.name) not in (None, False, "")}
        kept["tolerance_m2"] = tolerance_m2
        if self.clean is not None:
            kept["clean"] = self.clean.as_dict()
        return kept

    @classmethod
    def from_record(cls, record: Mapping[str, Any]) -> LayerOptions:
        known = {f.name for f in fields(cls)} - _NOT_RECORDED
        values = {k: v for k, v in record.items() if k in known}
        if values.get("clean") is not None:
            values["clean"] = CleanOptions.from_dict(values["clean"])
        return cls(**values)


_NOT_RECORDED = {"service_area", "author", "note", "base_version"}


@dataclass(frozen=True)
class ParentEdit:
    """The level above, edited along with a level (a grid line moved from the micro-grid editor)."""

    data: bytes
    base_version: int | None = None


class SaveMode(str, Enum):
    PREVIEW = "preview"     # report and diff only; nothing stored
    DRAFT = "draft"         # stored as a draft, committed later
    COMMIT = "commit"       # stored as the new current version


class ResultStatus(str, Enum):
    PREVIEW = "preview"
    DRAFT = "draft"
    COMMITTED = "committed"


@dataclass
class LayerResult:
    """What saving (or previewing) a version of a level did or would do; ``parent`` is the
    level above when it was saved in the same change."""

    level: Level
    status: ResultStatus
    version: int | None
    based_on: int | None
    count: int
    area_m2: float
    parent_source: str | None
    report: Report
    diff: LayerDiff
    assigned: int
    reassigned: int
    layer: Layer                 # the candidate, linked to its parent level
    parent: LayerResult | None = None

    @property
    def unassigned(self) -> int:
        return self.reassigned - self.assigned

    @classmethod
    def of(cls, candidate: Candidate, status: ResultStatus, version: int | None, based_on: int | None) -> LayerResult:
        units = candidate.layer.units
        return cls(level=candidate.layer.level, status=status, version=version, based_on=based_on,
                   count=len(units), area_m2=float(units["area_m2"].sum()),
                   parent_source=candidate.layer.parent_source, report=candidate.report,
                   diff=candidate.diff, assigned=candidate.commit.assigned, layer=candidate.layer,
                   reassigned=len(candidate.commit.units[candidate.layer.level][0]))


def check_base(heads: Mapping[Level, VersionMeta], level: Level, based_on: int | None, *, tz: tzinfo) -> None:
    """The rule of every save: the version the work started from must still be the current one
    (None: the level had none), else nothing is saved and the planner learns who changed what."""
    head = heads.get(level)
    if (head.version if head is not None else None) != based_on:
        raise stale_base(level, based_on, head, tz=tz)


def base_of(heads: Mapping[Level, VersionMeta], level: Level, base_version: int | None) -> int | None:
    """The base of a save: the version given (0: none), or whatever is current when not given."""
    if base_version is None:
        head = heads.get(level)
        return head.version if head is not None else None
    return base_version or None


def stale_base(level: Level, based_on: int | None, current: VersionMeta | None, *, tz: tzinfo) -> Conflict:
    """The refusal of a save whose base version is no longer the current one: who changed what."""
    if current is None:
        return Conflict(message(N_("this edit of the {level} layer is based on version {base}, but the "
                                   "layer has no committed version; nothing was saved. Save it with "
                                   "base_version=0."), level=level.noun, base=based_on))
    when = local_time(current.committed_at or current.created_at, tz).strftime("%Y-%m-%d %H:%M")
    who = current.committed_by or current.author or "?"
    return Conflict(message(N_("{who} committed {level} version {version} at {when} (note: {note!r}) after "
                               "version {base}, which this edit is based on; nothing was overwritten. Open "
                               "version {version}, redo the edit on it and save again."),
                            who=who, level=level.noun, version=current.version, when=when,
                            note=current.note, base=based_on if based_on is not None else "—"))


def local_time(utc: datetime, tz: tzinfo) -> datetime:
    """A stored (naive UTC) time as wall-clock time in the deployment's zone, like report times."""
    return utc.replace(tzinfo=timezone.utc).astimezone(tz).replace(tzinfo=None)
