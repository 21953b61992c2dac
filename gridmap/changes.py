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

from dataclasses import dataclass, fields, replace
from datetime import datetime, timezone, tzinfo
from enum import Enum
from typing import Any, Mapping, Sequence

from .boundaries import ReadOptions
from .cleaning import CleanOptions
from .errors import N_, Conflict, InvalidInput, message
from .layer import Layer
from .levels import ORDER, Level
from .planning import Candidate
from .problems import Problem, Report
from .storage import VersionMeta, VersionRecord, VersionStatus, Writer
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

    def record(self) -> dict[str, Any]:
        """What decides the outcome of a save, as stored with its version (the tolerance in force
        is filled in by then: see :meth:`Gridmap._in_force`)."""
        kept = {f.name: getattr(self, f.name) for f in fields(self)
                if f.name not in _NOT_RECORDED and getattr(self, f.name) not in (None, False, "")}
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


@dataclass(frozen=True)
class Part:
    """One layer of a change and the options it is read, checked and saved with."""

    layer: Layer
    options: LayerOptions


def record_of(part: Part, candidate: Candidate) -> VersionRecord:
    """What a version is stored with: its options, read-time problems, and the report and diff shown."""
    return VersionRecord(options=part.options.record(),
                         problems=tuple(p.as_record() for p in part.layer.problems),
                         report=candidate.report.as_record(), diff=candidate.diff.as_dict())


def refuse_errors(candidates: list[Candidate], preview: LayerResult | None = None) -> None:
    """Errors in any layer of a change refuse all of it, with one report naming each level (and
    the preview of the change, so that a page can show it without working it out again)."""
    main = candidates[-1].layer.level
    report = Report([p if c.layer.level == main else replace(p, message=message(
        N_("{level}: {problem}"), level=c.layer.level.noun, problem=p.message))
        for c in candidates for p in c.report.problems], cleaning=candidates[-1].report.cleaning)
    if not report.ok:
        raise InvalidInput(message(N_("the boundaries have {count} error(s); nothing was saved"),
                                   count=len(report.errors)), [p.message for p in report.errors], report=report,
                           preview=preview)


def linked(results: list[LayerResult], main: Level) -> LayerResult:
    """The result of the change's main level, with the level above it attached."""
    result = next(r for r in results if r.level == main)
    result.parent = next((r for r in results if r.level != main), None)
    return result


def problems_of(records: Sequence[dict[str, Any]]) -> list[Problem]:
    return [Problem.from_record(r) for r in records]


def still_drafts(tx: Writer, meta: VersionMeta) -> None:
    """Inside the commit's transaction: no other process committed the change meanwhile."""
    for member in tx.change_versions(meta.change) if meta.change is not None else [tx.version_meta(meta.level,
                                                                                                  meta.version)]:
        if member.status is not VersionStatus.DRAFT:
            raise already_committed(member.level, member.version)


def already_committed(level: Level, version: int) -> Conflict:
    return Conflict(message(N_("{level} version {version} is already committed"), level=level.noun,
                            version=version))


def level_above(level: Level) -> Level:
    if level.depth == 0:
        raise InvalidInput(message(N_("{level} is the largest level; there is no level above it to edit or derive"),
                                   level=level.noun))
    return ORDER[level.depth - 1]


def cannot_derive(level: Level, parent: Level) -> InvalidInput:
    return InvalidInput(message(N_("cannot redraw the {parent} level from the {level} units: the file names no "
                                   "parent codes and there is no {parent} version to find them in. Upload the "
                                   "{parent} level first, or name the parent code property in the {option} option."),
                                level=level.noun, parent=parent.noun, option="parent_field"))
