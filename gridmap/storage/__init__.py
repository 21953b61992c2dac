"""Storage behind one interface (a repository, as in Cosmic Python).

The domain and the web layer talk only to :class:`Store`.  ``open_store(url)`` picks the
implementation from the database URL: ``sqlite:///…`` (the embedded default, WAL) today;
a PostGIS store implements the same methods and passes the same contract tests.
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from datetime import datetime
from typing import Sequence

import numpy as np
import pandas as pd

from ..boundaries import Layer
from ..errors import N_, Conflict, InvalidInput, message
from ..incidents import IncidentDraft
from ..levels import Level


@dataclass(frozen=True)
class IncidentQuery:
    """Filters for listing incidents; None means "any"."""

    category: str | None = None
    status: str | None = None
    date_from: datetime | None = None
    date_to: datetime | None = None   # exclusive
    unit: str | None = None            # a unit code of any level
    ids: tuple[int, ...] | None = None


@dataclass(frozen=True)
class Stored:
    """What happened to one incident draft: ``created``, ``existing`` or ``conflict``."""

    id: int
    outcome: str


@dataclass(frozen=True)
class VersionMeta:
    """One stored version of a level: who made it, from what, and what committing it did."""

    level: Level
    version: int
    status: str                   # "draft" or "committed"
    created_at: datetime
    author: str
    note: str
    unit_count: int
    based_on: int | None          # the committed version the edit started from (None: the level had none)
    restored_from: int | None = None
    committed_at: datetime | None = None
    committed_by: str = ""
    assigned: int | None = None   # incidents inside a unit of this level when it was committed
    moved: int | None = None      # incidents whose unit changed against the version it replaced
    problems: tuple[dict, ...] = ()   # the warnings read from the file, kept for a draft's preview


@dataclass(frozen=True)
class VersionInfo:
    """Who saves a version, why, and which committed version the work started from."""

    author: str = ""
    note: str = ""
    based_on: int | None = None
    restored_from: int | None = None
    problems: tuple[dict, ...] = ()


@dataclass(frozen=True)
class Assignments:
    """What committing a version writes besides the units: every stored incident's unit for
    the level and for each level below whose assignment changed (``(incident ids, codes)``),
    new parent codes of a child level whose parents are derived spatially, and counts."""

    units: dict[Level, tuple[np.ndarray, np.ndarray]]
    relinked: dict[Level, dict[str, str | None]] = field(default_factory=dict)
    assigned: int = 0
    moved: int = 0


def stale_base(level: Level, based_on: int | None, current: VersionMeta | None) -> Conflict:
    """The refusal of a save whose base version is no longer the current one: who changed what."""
    if current is None:
        return Conflict(message(N_("this edit of the {level} layer is based on version {base}, but the "
                                   "layer has no committed version; nothing was saved. Save it with "
                                   "base_version=0."), level=level.title, base=based_on))
    when = (current.committed_at or current.created_at).strftime("%Y-%m-%d %H:%M")
    who = current.committed_by or current.author or "?"
    return Conflict(message(N_("{who} committed {level} version {version} at {when} (note: {note!r}) after "
                               "version {base}, which this edit is based on; nothing was overwritten. Open "
                               "version {version}, redo the edit on it and save again."),
                            who=who, level=level.title, version=current.version, when=when,
                            note=current.note, base=based_on if based_on is not None else "—"))


class Store(ABC):
    """Everything gridmap keeps: boundary layers with their versions, incidents, assignments."""

    @abstractmethod
    def layers(self) -> dict[Level, Layer]:
        """The current (latest committed) version of every level that has one."""

    @abstractmethod
    def versions(self) -> dict[Level, int]:
        """The current version number of every level that has one (cheap: no geometry)."""

    @abstractmethod
    def layer_meta(self) -> list[VersionMeta]:
        """One line per current layer: version, who, when, how many units."""

    @abstractmethod
    def history(self, level: Level) -> list[VersionMeta]:
        """Every stored version of ``level``, drafts included, newest first."""

    @abstractmethod
    def version_meta(self, level: Level, version: int) -> VersionMeta:
        """One version's line; NotFound if there is none."""

    @abstractmethod
    def layer_version(self, level: Level, version: int) -> Layer:
        """Any stored version of a level, draft or committed; NotFound if there is none."""

    @abstractmethod
    def save_layer(self, layer: Layer, info: VersionInfo, commit: Assignments | None) -> int:
        """Store ``layer`` as a new version of its level, all or nothing: a draft when
        ``commit`` is None, else the new current version with ``commit`` written alongside.
        Refused with :func:`stale_base`'s Conflict when ``info.based_on`` is not the current
        version at the moment of writing.  Returns the new version number."""

    @abstractmethod
    def commit_draft(self, level: Level, version: int, *, author: str, commit: Assignments) -> None:
        """Make a stored draft the current version, with the same base check as ``save_layer``."""

    @abstractmethod
    def assignments(self, level: Level, version: int) -> tuple[np.ndarray, np.ndarray]:
        """(incident ids, unit codes) of the incidents assigned under one version of a level."""

    @abstractmethod
    def add_incidents(self, drafts: Sequence[IncidentDraft], units: dict[Level, np.ndarray]) -> list[Stored]:
        """Insert incidents with their units, all or nothing.  A draft whose external id is
        already stored (or came earlier in the batch) is not inserted again: it is ``existing``
        when it is the same report (category, position, time) and ``conflict`` when it is not."""

    @abstractmethod
    def incident_points(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(ids, lon, lat) of every stored incident, for reassignment."""

    @abstractmethod
    def incidents(self, query: IncidentQuery = IncidentQuery(), *,
                  at: dict[Level, int] | None = None) -> pd.DataFrame:
        """Matching incidents: id, external_id, category, category_raw, lon, lat, reported_at,
        status, description, source, and one column per current level with the unit code —
        under the versions named in ``at`` instead of the current ones where given (None for
        an incident that was not assigned under that version)."""

    @abstractmethod
    def count_incidents(self) -> int:
        """How many incidents are stored."""

    def is_empty(self) -> bool:
        return not self.versions() and self.count_incidents() == 0

    def close(self) -> None:
        """Release connections."""


def open_store(url: str) -> Store:
    """The store for a database URL."""
    if url.startswith("sqlite:"):
        from .sql import SqlStore
        return SqlStore(url)
    raise InvalidInput(message(N_("unsupported database URL {url!r}; expected sqlite:///path"),
                               url=url.split("@")[-1]))
