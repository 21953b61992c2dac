"""Storage behind one interface (a repository with a unit of work, as in Cosmic Python).

The domain and the web layer talk only to :class:`Store`.  Reads are plain methods; every
write happens inside :meth:`Store.writing`, one transaction that holds the store's write lock
from its first statement, so the domain can read the current versions (or the external ids
already stored), apply its rule and write, without another writer slipping in between.  The
rules themselves (which base version a save may have, which repeated report is the same
report) live in the domain (:mod:`gridmap.service`, :mod:`gridmap.incidents`): a store only
stores and answers queries.

``open_store(url)`` picks the implementation from the database URL: ``sqlite:///…`` (the
embedded default, WAL) or ``memory://`` (a fake kept in this process, for the contract tests);
a PostGIS store implements the same methods and passes the same contract suite.
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from contextlib import AbstractContextManager
from dataclasses import dataclass, field, replace
from datetime import datetime
from enum import Enum
from typing import Any, Sequence

import numpy as np
import pandas as pd

from ..accounts import Account, AuditEntry
from ..errors import N_, InvalidInput, message
from ..incidents import IncidentColumns, KnownReport
from ..layer import Layer
from ..levels import Level


class VersionStatus(str, Enum):
    DRAFT = "draft"              # stored for review, not current
    COMMITTED = "committed"      # was (or is) the current version


@dataclass(frozen=True)
class IncidentQuery:
    """Filters for listing incidents; None means "any"."""

    categories: tuple[str, ...] = ()     # any of these category codes; () means any category
    statuses: tuple[str, ...] = ()       # any of these statuses
    sources: tuple[str, ...] = ()        # any of these sources (where the report came from)
    date_from: datetime | None = None
    date_to: datetime | None = None   # exclusive
    unit: str | None = None            # a unit code of any level
    ids: tuple[int, ...] | None = None
    bbox: tuple[float, float, float, float] | None = None   # west, south, east, north (WGS84), inclusive
    # (lon, lat) coordinates whose incidents are left out (stacked: a geocoder's placeholder)
    exclude_points: tuple[tuple[float, float], ...] = ()


#: What an incident's lifecycle adds to its row (:mod:`gridmap.lifecycle`): how a close ended, when,
#: the satisfaction rating, the original of a duplicate, how far it was escalated (0: its worker),
#: and its own deadline when a file gave one (else the category's hours hold).
LIFECYCLE_COLUMNS = ("resolution", "closed_at", "rating", "duplicate_of", "escalation", "due_at")


@dataclass(frozen=True)
class IncidentState:
    """What the lifecycle needs to know of a stored incident."""

    id: int
    status: str
    escalation: int
    category: str
    reported_at: datetime


@dataclass(frozen=True)
class IncidentEvent:
    """One step of an incident's lifecycle, as stored: when (wall-clock time in the service's
    zone, like report times), who, the action, the states before and after, and what the
    action carried."""

    incident_id: int
    at: datetime
    actor: str
    action: str
    from_status: str | None
    to_status: str
    note: str = ""
    resolution: str | None = None
    rating: int | None = None
    duplicate_of: int | None = None
    escalation: int | None = None
    id: int | None = None         # given by the store

    def changes(self) -> dict[str, Any]:
        """What the step does to its incident's row (:meth:`Writer.add_event`), the same in every store."""
        values: dict[str, Any] = {"status": self.to_status}
        if self.action == "close":
            values.update(resolution=self.resolution, closed_at=self.at)
        elif self.action == "rate":
            values.update(rating=self.rating)
        elif self.action == "duplicate":
            values.update(duplicate_of=self.duplicate_of)
        elif self.action == "escalate":
            values.update(escalation=self.escalation)
        elif self.action == "reopen":
            values.update(resolution=None, closed_at=None, rating=None, duplicate_of=None)
        elif self.action == "import":          # a later export says where the case is now
            values.update(closed_at=self.at if self.to_status in ("closed", "rated") else None)
        return values


#: The roles of the staff registry (网格员, 网格长, 社区联系人), in the order an escalation climbs.
STAFF_ROLES = ("grid_worker", "grid_leader", "community")


@dataclass(frozen=True)
class StaffMember:
    """A person who answers for a unit: attached to a unit code of a level (codes outlive boundary
    versions), with a role of :data:`STAFF_ROLES`; ``active`` False once they have left."""

    level: str
    unit_code: str
    role: str
    name: str
    phone: str = ""
    active: bool = True
    id: int | None = None         # given by the store


#: What incidents can be counted by (:meth:`Store.counts`).
COUNT_BY = ("category", "source", "day", "month", "weekday_hour")


@dataclass(frozen=True)
class HeatCells:
    """Incidents counted on a lon/lat grid of ``cell_deg`` (the heat map's data): for each
    non-empty cell the mean position of its incidents and how many there are."""

    lon: np.ndarray      # float64
    lat: np.ndarray      # float64
    count: np.ndarray    # int64
    cell_deg: float
    total: int           # incidents matching the filters in the box: count.sum()


@dataclass(frozen=True)
class VersionMeta:
    """One stored version of a level: who made it, from what, and what committing it did.
    Times are UTC; the edge shows them in the deployment's time zone."""

    level: Level
    version: int
    status: VersionStatus
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
    change: int | None = None     # versions of several levels saved as one change share this number


@dataclass(frozen=True)
class VersionRecord:
    """What a version was saved with, as JSON-safe records: the options it was read and checked
    with, the read-time problems (re-checked at commit), and the report and diff the planner
    was shown (at saving; replaced by the ones of the commit when a draft is committed)."""

    options: dict[str, Any] = field(default_factory=dict)
    problems: tuple[dict, ...] = ()
    report: dict[str, Any] | None = None
    diff: dict[str, Any] | None = None


@dataclass(frozen=True)
class VersionInfo:
    """Who saves a version, why, which committed version the work started from, and the record
    of what was shown."""

    author: str = ""
    note: str = ""
    based_on: int | None = None
    restored_from: int | None = None
    change: int | None = None
    record: VersionRecord = field(default_factory=VersionRecord)


@dataclass(frozen=True)
class Assignments:
    """What committing a version writes besides the units: every stored incident's unit for
    the level and for each level below whose assignment changed (``(incident ids, codes)``),
    new parent codes of a child level whose parents are derived spatially, and counts."""

    units: dict[Level, tuple[np.ndarray, np.ndarray]]
    relinked: dict[Level, dict[str, str | None]] = field(default_factory=dict)
    assigned: int = 0
    moved: int = 0


@dataclass(frozen=True)
class ImportRun:
    """One file import: what it was, what it did, and every row it refused (``{"row": n,
    "reasons": [message records]}``, rendered in the reader's language when shown)."""

    filename: str
    rows: int
    created: int
    existing: int
    errors: tuple[dict[str, Any], ...] = ()
    id: int | None = None
    created_at: datetime | None = None


def heat_cells(lon: np.ndarray, lat: np.ndarray, cell_deg: float) -> HeatCells:
    """Points counted per cell of a ``cell_deg`` grid anchored at lon -180, lat -90, each cell at
    the mean position of its points (numpy: a million points in about 0.1 s, five times SQLite's
    GROUP BY over the same rows)."""
    columns = np.floor((lon + 180.0) / cell_deg).astype(np.int64)
    rows = np.floor((lat + 90.0) / cell_deg).astype(np.int64)
    keys = rows * (int(360.0 / cell_deg) + 2) + columns
    _, which, count = np.unique(keys, return_inverse=True, return_counts=True)
    which = which.ravel()
    return HeatCells(lon=np.bincount(which, lon) / count if len(count) else np.empty(0),
                     lat=np.bincount(which, lat) / count if len(count) else np.empty(0),
                     count=count.astype(np.int64), cell_deg=cell_deg, total=int(count.sum()))


class Writer(ABC):
    """The writes of one transaction, and the reads a rule needs inside it."""

    def expect_incidents(self, count: int) -> None:  # noqa: B027 - a hint a store may ignore
        """About ``count`` incidents are coming in this transaction (a big import): a store may
        prepare for them (SQLite sets an index aside and builds it once, as the transaction ends)."""

    @abstractmethod
    def heads(self) -> dict[Level, VersionMeta]:
        """The current (latest committed) version of every level, as of this transaction."""

    @abstractmethod
    def version_meta(self, level: Level, version: int) -> VersionMeta:
        """One version's line; NotFound if there is none."""

    @abstractmethod
    def change_versions(self, change: int) -> list[VersionMeta]:
        """Every version saved as part of one change, from the largest level to the smallest."""

    @abstractmethod
    def new_change(self) -> int:
        """A fresh change number, for versions of several levels saved together."""

    @abstractmethod
    def add_version(self, layer: Layer, info: VersionInfo) -> int:
        """Store ``layer`` as a new draft version of its level; returns its number."""

    @abstractmethod
    def commit(self, level: Level, version: int, *, author: str, commit: Assignments,
               record: VersionRecord) -> None:
        """Make a stored draft the current version: write ``commit`` (assignments, relinked
        parents, counts) and keep ``record`` as what the commit showed."""

    @abstractmethod
    def set_units(self, level: Level, version: int, ids: np.ndarray, codes: np.ndarray) -> None:
        """Replace the units stored for incidents ``ids`` (unique) under a level's version with
        ``codes`` (None: outside every unit), leaving its other rows as they are: a reassignment
        written back a batch at a time.  ValueError when an id names no stored incident."""

    @abstractmethod
    def add_import(self, run: ImportRun) -> int:
        """Keep the record of a file import; returns its id."""

    @abstractmethod
    def known_reports(self, external_ids: Sequence[str]) -> dict[str, KnownReport]:
        """The stored incidents with these external ids."""

    @abstractmethod
    def replay(self, key: str) -> tuple[np.ndarray, np.ndarray] | None:
        """The rows and incident ids a request with this idempotency key stored, or None."""

    @abstractmethod
    def remember(self, key: str, rows: np.ndarray, ids: np.ndarray) -> None:
        """Keep what a request with an idempotency key stored, in its transaction."""

    @abstractmethod
    def points_after(self, after: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The incidents with ids above ``after`` (stored since a commit read the others): ids
        (int64), lon, lat, by id."""

    @abstractmethod
    def add_photo(self, incident_id: int, content_type: str, data: bytes) -> None:
        """Keep a photo with an incident (one each; a second replaces the first)."""

    @abstractmethod
    def add_staff(self, member: StaffMember) -> int:
        """Register a person; their id."""

    @abstractmethod
    def update_staff(self, member: StaffMember) -> None:
        """Replace a registered person's entry (``member.id``); NotFound if there is none."""

    @abstractmethod
    def has_accounts(self) -> bool:
        """Whether any account is stored (read under the write lock)."""

    @abstractmethod
    def add_account(self, account: Account) -> int:
        """A new account; Conflict when its name is taken (names are compared as given)."""

    @abstractmethod
    def update_account(self, account: Account) -> None:
        """Change a stored account (by id); NotFound if there is none."""

    @abstractmethod
    def add_token(self, account_id: int, token_hash: str, label: str) -> int:
        """Keep a bearer token (its hash) for an account."""

    @abstractmethod
    def add_audit(self, entry: AuditEntry) -> None:
        """Record a change someone made."""

    @abstractmethod
    def incident_state(self, incident_id: int) -> IncidentState:
        """The stored incident's state; NotFound if there is none."""

    @abstractmethod
    def add_event(self, event: IncidentEvent) -> int:
        """Store one lifecycle step and apply it to its incident: the status becomes ``to_status``;
        a close sets the resolution and the close time (``at``), a rating the rating, a duplicate
        the original, an escalation the escalation level; a reopen clears the resolution, close
        time, rating and original; an ``import`` (a later export of the source system) sets the
        close time to ``at`` when it closes the case, else clears it.  The step's id."""

    def add_events(self, events: Sequence[IncidentEvent]) -> None:
        """:meth:`add_event` for many steps, in order (a store may write them in bulk)."""
        for event in events:
            self.add_event(event)

    @abstractmethod
    def add_incidents(self, incidents: IncidentColumns, units: dict[Level, np.ndarray]) -> np.ndarray:
        """Insert every incident with its unit per current level (``units[level][i]`` for incident i);
        returns the new ids (int64) in order."""


class Store(ABC):
    """Everything gridmap keeps: boundary layers with their versions, incidents, assignments."""

    @abstractmethod
    def writing(self) -> AbstractContextManager[Writer]:
        """One all-or-nothing write transaction that holds the store's write lock from the start
        (other processes too): what it reads stays true until it commits."""

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
    def version_record(self, level: Level, version: int) -> VersionRecord:
        """What a version was saved with and showed; NotFound if there is none."""

    @abstractmethod
    def layer_version(self, level: Level, version: int) -> Layer:
        """Any stored version of a level, draft or committed; NotFound if there is none."""

    @abstractmethod
    def assignments(self, level: Level, version: int) -> tuple[np.ndarray, np.ndarray]:
        """(incident ids, unit codes) of the incidents assigned under one version of a level."""

    @abstractmethod
    def moves(self, level: Level, old: int | None, new: int) -> list[tuple[str | None, str | None, int]]:
        """(unit under ``old``, unit under ``new``, how many) for the incidents assigned under version
        ``new`` whose unit differs from the one they had under ``old`` (None: no unit, or no ``old``
        assignment; ``old`` None: the level had no version before)."""

    @abstractmethod
    def incident_table(self, after: int = 0, limit: int | None = None) -> dict[str, np.ndarray]:
        """The (first ``limit``) incidents with an id above ``after``, by id, as the columns the map filters on:
        id (int64), lon, lat (float64), category, status, source (object), reported_at (datetime64[us])."""

    @abstractmethod
    def incidents(self, query: IncidentQuery = IncidentQuery(), *,
                  at: dict[Level, int] | None = None) -> pd.DataFrame:
        """Matching incidents: id, external_id, category, category_raw, lon, lat, reported_at,
        status, description, source, and one column per current level with the unit code —
        under the versions named in ``at`` instead of the current ones where given (None for
        an incident that was not assigned under that version)."""

    @abstractmethod
    def incident_page(self, query: IncidentQuery = IncidentQuery(), *, after: int = 0,
                      limit: int = 1000) -> pd.DataFrame:
        """Like :meth:`incidents` (current versions), but only the first ``limit`` matching incidents
        with an id above ``after``, by id: a page of an export that never holds them all."""

    @abstractmethod
    def heat(self, query: IncidentQuery, *, cell_deg: float, at: dict[Level, int] | None = None) -> HeatCells:
        """Matching incidents counted per cell of a ``cell_deg`` grid anchored at lon -180, lat -90."""

    @abstractmethod
    def unit_counts(self, level: Level, version: int, query: IncidentQuery = IncidentQuery()) -> dict[str, int]:
        """How many matching incidents each unit of a version holds (units holding none are absent);
        ``query.unit`` is read under the current versions."""

    def unit_counts_in(self, level: Level, version: int, query: IncidentQuery,
                       bounds: Sequence[datetime]) -> list[dict[str, int]]:
        """:meth:`unit_counts` of each period ``bounds[k] <= reported_at < bounds[k + 1]`` (within
        the query's own dates)."""
        return [self.unit_counts(level, version, replace(
            query, date_from=max(start, query.date_from) if query.date_from else start,
            date_to=min(end, query.date_to) if query.date_to else end)) for start, end in zip(bounds, bounds[1:])]

    @abstractmethod
    def counts(self, query: IncidentQuery, by: str) -> dict[str, int]:
        """How many matching incidents per category (``by="category"``), per source (``"source"``), per day (``"day"``,
        keys YYYY-MM-DD) or per month (``"month"``, YYYY-MM) of their report time, or per hour of
        the week (``"weekday_hour"``, keys ``D-HH``: D the ISO weekday, 1 Monday to 7 Sunday, HH
        the hour 00–23: the rhythm a patrol plan follows)."""

    @abstractmethod
    def totals(self, query: IncidentQuery = IncidentQuery(), *,
               at: dict[Level, int] | None = None) -> tuple[int, int]:
        """(matching incidents, of them outside a unit of some current level — or of the version
        in ``at`` for its level)."""

    @abstractmethod
    def outside_points(self, query: IncidentQuery, *, limit: int,
                       at: dict[Level, int] | None = None) -> tuple[np.ndarray, np.ndarray]:
        """lon, lat of up to ``limit`` matching incidents outside a unit of some level (lowest ids first)."""

    @abstractmethod
    def lifecycle_columns(self, level: Level, version: int,
                          query: IncidentQuery = IncidentQuery()) -> dict[str, np.ndarray]:
        """The matching incidents' lifecycle as columns, for the figures of
        :mod:`gridmap.performance`: ``unit`` (the code under ``level``'s ``version``, None outside),
        ``category``, ``status``, ``resolution`` (object), ``rating`` (float64, NaN: none),
        ``reported_at``, ``closed_at`` and ``due_at`` (datetime64[us], NaT: none)."""

    @abstractmethod
    def photo(self, incident_id: int) -> tuple[str, bytes] | None:
        """The incident's photo (content type, bytes), or None."""

    @abstractmethod
    def staff_members(self) -> list[StaffMember]:
        """Everyone registered, active or not, by id."""

    @abstractmethod
    def accounts(self) -> list[Account]:
        """Every account, by id."""

    @abstractmethod
    def account(self, *, account_id: int | None = None, name: str | None = None,
                token_hash: str | None = None) -> Account | None:
        """The account with this id, name or token (an active token's), or None."""

    @abstractmethod
    def audit_entries(self, *, limit: int, before: int | None = None) -> list[AuditEntry]:
        """The latest ``limit`` audit entries (before entry id ``before``), newest first."""

    @abstractmethod
    def lifecycle_values(self) -> dict[str, np.ndarray]:
        """Every incident with a resolution, rating, close time, deadline of its own or escalation, by
        id: ``id`` (int64), ``resolution`` (object), ``rating`` (float64, NaN: none), ``closed_at``
        and ``due_at`` (datetime64[us], NaT: none), ``escalation`` (int64) — beside the columns a
        server keeps in memory."""

    @abstractmethod
    def incident_events(self, incident_id: int) -> list[IncidentEvent]:
        """The incident's lifecycle steps, oldest first (none for an incident only reported)."""

    @abstractmethod
    def status_changes(self, after: int = 0) -> tuple[int, np.ndarray, np.ndarray]:
        """The steps stored after step id ``after``: (the last step's id, or ``after`` when there are
        none; their incident ids (int64); the status each left its incident in), in the order taken —
        so a copy of the statuses can follow the store without reading every incident again."""

    @abstractmethod
    def import_run(self, run_id: int) -> ImportRun:
        """A file import's record; NotFound if there is none."""

    @abstractmethod
    def count_incidents(self) -> int:
        """How many incidents are stored."""

    def changes(self) -> int | None:
        """A number that changes whenever anything is committed to the store, by this process or
        another (cheap: no table is read), so caches can tell they are still current; None where
        the store cannot tell (then callers ask for what they cache)."""
        return None

    def is_empty(self) -> bool:
        return not self.versions() and self.count_incidents() == 0

    def close(self) -> None:
        """Release connections."""


def open_store(url: str) -> Store:
    """The store for a database URL."""
    if url.startswith(("sqlite:", "postgresql:", "postgresql+psycopg:", "postgres:")):
        from .sql import SqlStore
        return SqlStore(url.replace("postgres:", "postgresql:", 1) if url.startswith("postgres:") else url)
    if url == "memory://":
        from .memory import MemoryStore
        return MemoryStore()
    raise InvalidInput(message(N_("unsupported database URL {url!r}; expected sqlite:///path or postgresql://user@host/database"),
                               url=url.split("@")[-1]))
