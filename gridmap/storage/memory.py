"""The memory store: everything kept in this process, answering exactly as :mod:`.sql` does.

It is the contract suite's second backend (``open_store("memory://")``) and the plainest
statement of what a store keeps.  Data is held the way the SQL store holds it: units as
columns with properties as JSON text and geometries as WKB, records as JSON text, so what
comes back is always a fresh copy and round-trips exactly as it would through a database.

A write transaction works on a copy of the data while holding the store's lock, and swaps the
copy in only when its block ends without an exception: a failed block leaves nothing behind,
and a reader always sees one whole state (it never waits, as with SQLite's WAL).
"""
from __future__ import annotations

import json
import logging
import threading
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, replace
from datetime import datetime, timezone
from typing import Any, Iterable, Iterator, Sequence

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely

from ..accounts import Account, AuditEntry
from ..errors import N_, Conflict, NotFound, message
from ..incidents import IncidentColumns, KnownReport, optional_time
from ..layer import Layer, texts
from ..levels import ORDER, Level
from . import (
    LIFECYCLE_COLUMNS,
    Assignments,
    HeatCells,
    ImportRun,
    IncidentEvent,
    IncidentQuery,
    IncidentState,
    StaffMember,
    Store,
    VersionInfo,
    VersionMeta,
    VersionRecord,
    VersionStatus,
    Writer,
    heat_cells,
)

log = logging.getLogger(__name__)

INCIDENT_COLUMNS = ["id", "external_id", "category", "category_raw", "lon", "lat", "reported_at",
                    "status", "description", "source", "original_x", "original_y", "original_crs"]
_STORED_COLUMNS = INCIDENT_COLUMNS + list(LIFECYCLE_COLUMNS) + ["created_at"]
_KNOWN_COLUMNS = ("id", "category", "category_raw", "lon", "lat", "reported_at", "status")


@dataclass
class _Version:
    """One stored version: its line, its units as columns, what it was saved with (JSON text)
    and the unit every incident assigned under it got (incident id → code)."""

    meta: VersionMeta
    parent_source: str | None
    units: dict[str, np.ndarray]
    record: str
    assignments: dict[int, str | None] = field(default_factory=dict)

    def copy(self) -> _Version:
        """A copy whose containers a transaction may change (their items are immutable)."""
        return replace(self, units={name: column.copy() for name, column in self.units.items()},
                       assignments=dict(self.assignments))

    def layer(self) -> Layer:
        """The units as a fresh Layer, built as sql.py builds it."""
        units = self.units
        frame = gpd.GeoDataFrame({
            "code": texts(units["code"]), "name": texts(units["name"]), "parent_code": texts(units["parent_code"]),
            "area_m2": units["area_m2"].copy(),
            "properties": [json.loads(p) for p in units["properties"]],
        }, geometry=gpd.GeoSeries(shapely.from_wkb(units["geometry"]), crs=4326))
        return Layer(level=self.meta.level, units=frame, parent_source=self.parent_source,
                     version=self.meta.version)

    def relink(self, parents: dict[str, str | None]) -> None:
        """New parent codes by child code; the parents are now derived spatially."""
        for code, parent in parents.items():
            self.units["parent_code"][self.units["code"] == code] = parent
        self.parent_source = "spatial"


@dataclass
class _Data:
    """Everything the store keeps: versions in the order they were saved, incidents as columns."""

    versions: list[_Version] = field(default_factory=list)
    incidents: dict[str, list[Any]] = field(default_factory=lambda: {name: [] for name in _STORED_COLUMNS})
    imports: list[ImportRun] = field(default_factory=list)
    events: list[IncidentEvent] = field(default_factory=list)
    staff: list[StaffMember] = field(default_factory=list)
    photos: dict[int, tuple[str, bytes]] = field(default_factory=dict)
    accounts: list[Account] = field(default_factory=list)
    tokens: dict[str, int] = field(default_factory=dict)          # token hash → account id
    audit: list[AuditEntry] = field(default_factory=list)
    keys: dict[str, tuple[np.ndarray, np.ndarray]] = field(default_factory=dict)    # idempotency key → rows, ids

    def copy(self) -> _Data:
        """A working copy for one transaction; the original is never changed after it is shared."""
        return _Data([v.copy() for v in self.versions], {name: list(c) for name, c in self.incidents.items()},
                     list(self.imports), list(self.events), list(self.staff), dict(self.photos),
                     list(self.accounts), dict(self.tokens), list(self.audit), dict(self.keys))

    def find(self, level: Level, version: int) -> _Version:
        for stored in self.versions:
            if stored.meta.level == level and stored.meta.version == version:
                return stored
        raise NotFound(message(N_("{level} has no version {version}"), level=level.noun, version=version))

    def current(self) -> dict[Level, _Version]:
        """The highest committed version of every level that has one, largest level first."""
        current: dict[Level, _Version] = {}
        for stored in self.versions:
            meta = stored.meta
            if meta.status == VersionStatus.COMMITTED and (
                    meta.level not in current or meta.version > current[meta.level].meta.version):
                current[meta.level] = stored
        return dict(sorted(current.items(), key=lambda item: item[0].depth))

    def columns(self) -> dict[str, np.ndarray]:
        """The incidents' listed columns (and their lifecycle's) as object arrays."""
        return {name: _objects(self.incidents[name]) for name in [*INCIDENT_COLUMNS, *LIFECYCLE_COLUMNS]}


class MemoryStore(Store):
    def __init__(self) -> None:
        self._data = _Data()
        self._lock = threading.RLock()
        self._writing = False   # read and set only while holding the lock
        self._changes = 0

    def changes(self) -> int | None:
        return self._changes

    @contextmanager
    def writing(self) -> Iterator[Writer]:
        # An RLock so that a transaction opened inside another one in the same thread is
        # refused at once; SQLite would wait for its own lock, then fail "database is locked".
        with self._lock:
            if self._writing:
                raise RuntimeError("a write transaction is already open on this store")
            self._writing = True
            try:
                work = self._data.copy()
                yield _MemoryWriter(work)
                self._data = work
                self._changes += 1
            finally:
                self._writing = False

    # -- layers --------------------------------------------------------------------------
    def layers(self) -> dict[Level, Layer]:
        return {level: stored.layer() for level, stored in self._data.current().items()}

    def versions(self) -> dict[Level, int]:
        return {level: stored.meta.version for level, stored in self._data.current().items()}

    def layer_meta(self) -> list[VersionMeta]:
        return [stored.meta for stored in self._data.current().values()]

    def history(self, level: Level) -> list[VersionMeta]:
        metas = [stored.meta for stored in self._data.versions if stored.meta.level == level]
        return sorted(metas, key=lambda meta: meta.version, reverse=True)

    def version_meta(self, level: Level, version: int) -> VersionMeta:
        return self._data.find(level, version).meta

    def version_record(self, level: Level, version: int) -> VersionRecord:
        return _record(self._data.find(level, version).record)

    def layer_version(self, level: Level, version: int) -> Layer:
        return self._data.find(level, version).layer()

    def assignments(self, level: Level, version: int) -> tuple[np.ndarray, np.ndarray]:
        assigned = self._data.find(level, version).assignments
        ids = sorted(assigned)
        return np.array(ids, dtype=np.int64), _objects(assigned[i] for i in ids)

    def moves(self, level: Level, old: int | None, new: int) -> list[tuple[str | None, str | None, int]]:
        after = self._data.find(level, new).assignments
        before = self._data.find(level, old).assignments if old is not None else {}
        counts: dict[tuple[str | None, str | None], int] = {}
        for incident_id, code in after.items():
            was = before.get(incident_id)
            if was != code:
                counts[was, code] = counts.get((was, code), 0) + 1
        return [(was, code, n) for (was, code), n in counts.items()]

    # -- incidents -----------------------------------------------------------------------
    def import_run(self, run_id: int) -> ImportRun:
        if not 1 <= run_id <= len(self._data.imports):
            raise NotFound(message(N_("there is no import {id}"), id=run_id))
        return self._data.imports[run_id - 1]

    def incident_table(self, after: int = 0, limit: int | None = None) -> dict[str, np.ndarray]:
        columns = self._data.columns()
        keep = np.flatnonzero(columns["id"].astype(np.int64) > after)[:limit]
        return {"id": columns["id"][keep].astype(np.int64), "lon": columns["lon"][keep].astype(float),
                "lat": columns["lat"][keep].astype(float), "category": columns["category"][keep],
                "status": columns["status"][keep], "source": columns["source"][keep],
                "reported_at": columns["reported_at"][keep].astype("datetime64[us]")}

    def count_incidents(self) -> int:
        return len(self._data.incidents["id"])

    def lifecycle_columns(self, level: Level, version: int,
                          query: IncidentQuery = IncidentQuery()) -> dict[str, np.ndarray]:
        assigned = self._data.find(level, version).assignments
        columns, keep = self._matching(query, None)
        return {"unit": _objects(assigned.get(i) for i in columns["id"][keep]),
                **{name: columns[name][keep] for name in ("category", "status", "resolution")},
                "rating": pd.to_numeric(pd.Series(columns["rating"][keep], dtype=object)).to_numpy(dtype=float),
                "reported_at": columns["reported_at"][keep].astype("datetime64[us]"),
                **{name: _times(columns[name][keep]) for name in ("closed_at", "due_at")}}

    def photo(self, incident_id: int) -> tuple[str, bytes] | None:
        return self._data.photos.get(incident_id)

    def staff_members(self) -> list[StaffMember]:
        return list(self._data.staff)

    def accounts(self) -> list[Account]:
        return list(self._data.accounts)

    def account(self, *, account_id: int | None = None, name: str | None = None,
                token_hash: str | None = None) -> Account | None:
        if token_hash is not None:
            if token_hash not in self._data.tokens:
                return None
            account_id = self._data.tokens[token_hash] if account_id is None else account_id
        return next((a for a in self._data.accounts if (account_id is None or a.id == account_id)
                     and (name is None or a.name == name)), None)

    def audit_entries(self, *, limit: int, before: int | None = None) -> list[AuditEntry]:
        kept = [e for e in reversed(self._data.audit) if before is None or (e.id or 0) < before]
        return kept[:limit]

    def lifecycle_values(self) -> dict[str, np.ndarray]:
        columns = self._data.columns()
        keep = ~(pd.isna(columns["resolution"]) & pd.isna(columns["rating"]) & pd.isna(columns["closed_at"])
                 & pd.isna(columns["due_at"])) | (columns["escalation"].astype(np.int64) > 0)
        return {"id": columns["id"][keep].astype(np.int64), "resolution": columns["resolution"][keep],
                "escalation": columns["escalation"][keep].astype(np.int64),
                "rating": pd.to_numeric(pd.Series(columns["rating"][keep], dtype=object)).to_numpy(dtype=float),
                **{name: _times(columns[name][keep]) for name in ("closed_at", "due_at")}}

    def incident_events(self, incident_id: int) -> list[IncidentEvent]:
        return [event for event in self._data.events if event.incident_id == incident_id]

    def status_changes(self, after: int = 0) -> tuple[int, np.ndarray, np.ndarray]:
        later = self._data.events[after:]           # ids are positions + 1
        if not later:
            return after, np.empty(0, dtype=np.int64), np.empty(0, dtype=object)
        return (len(self._data.events), np.array([e.incident_id for e in later], dtype=np.int64),
                _objects(e.to_status for e in later))

    def incidents(self, query: IncidentQuery = IncidentQuery(), *,
                  at: dict[Level, int] | None = None) -> pd.DataFrame:
        columns, keep = self._matching(query, at)
        return _frame(columns, keep)

    def incident_page(self, query: IncidentQuery = IncidentQuery(), *, after: int = 0,
                      limit: int = 1000) -> pd.DataFrame:
        columns, keep = self._matching(query, None)
        keep = np.flatnonzero(keep & (columns["id"].astype(np.int64) > after))[:limit]   # ids ascend
        return _frame(columns, keep)

    def heat(self, query: IncidentQuery, *, cell_deg: float, at: dict[Level, int] | None = None) -> HeatCells:
        columns, keep = self._matching(query, at)
        return heat_cells(columns["lon"][keep].astype(float), columns["lat"][keep].astype(float), cell_deg)

    def unit_counts(self, level: Level, version: int, query: IncidentQuery = IncidentQuery()) -> dict[str, int]:
        assigned = self._data.find(level, version).assignments
        columns, keep = self._matching(query, None)
        counts: dict[str, int] = {}
        for incident_id in columns["id"][keep]:
            code = assigned.get(incident_id)
            if code is not None:
                counts[code] = counts.get(code, 0) + 1
        return counts

    def counts(self, query: IncidentQuery, by: str) -> dict[str, int]:
        columns, keep = self._matching(query, None)
        if by in ("category", "source"):
            keys = columns[by][keep]
        elif by == "weekday_hour":
            minutes = columns["reported_at"][keep].astype("datetime64[m]").astype(np.int64)
            days, hours = minutes // 1440, minutes % 1440 // 60
            keys = np.array([f"{(d + 3) % 7 + 1}-{h:02d}" for d, h in zip(days.tolist(), hours.tolist())], dtype=str)
        else:
            times = columns["reported_at"][keep].astype("datetime64[D]" if by == "day" else "datetime64[M]")
            keys = np.datetime_as_string(times)
        values, counts = np.unique(keys.astype(str), return_counts=True)
        return {str(k): int(n) for k, n in zip(values, counts)}

    def totals(self, query: IncidentQuery = IncidentQuery(), *,
               at: dict[Level, int] | None = None) -> tuple[int, int]:
        columns, keep = self._matching(query, at)
        return int(keep.sum()), int((keep & self._outside(columns, at)).sum())

    def outside_points(self, query: IncidentQuery, *, limit: int,
                       at: dict[Level, int] | None = None) -> tuple[np.ndarray, np.ndarray]:
        columns, keep = self._matching(query, at)
        chosen = np.flatnonzero(keep & self._outside(columns, at))[:limit]
        return columns["lon"][chosen].astype(float), columns["lat"][chosen].astype(float)

    def _shown(self, at: dict[Level, int] | None) -> dict[Level, _Version]:
        shown = self._data.current()
        shown.update({level: self._data.find(level, version) for level, version in (at or {}).items()})
        return {level: shown[level] for level in ORDER if level in shown}

    def _matching(self, query: IncidentQuery, at: dict[Level, int] | None) -> tuple[dict[str, np.ndarray], np.ndarray]:
        """The incidents' columns, with one per level shown, and which incidents pass the filters."""
        shown = self._shown(at)
        columns = self._data.columns()
        for level, stored in shown.items():
            columns[level.value] = _objects(stored.assignments.get(i) for i in columns["id"])
        return columns, _matches(columns, query, list(shown.values()))

    def _outside(self, columns: dict[str, np.ndarray], at: dict[Level, int] | None) -> np.ndarray:
        levels = [level.value for level in self._shown(at)]
        if not levels:
            return np.ones(len(columns["id"]), dtype=bool)
        return np.any([pd.isna(columns[name]) for name in levels], axis=0)


class _MemoryWriter(Writer):
    """The writes of one transaction, made on the store's working copy."""

    def __init__(self, data: _Data) -> None:
        self.data = data

    def heads(self) -> dict[Level, VersionMeta]:
        return {level: stored.meta for level, stored in self.data.current().items()}

    def version_meta(self, level: Level, version: int) -> VersionMeta:
        return self.data.find(level, version).meta

    def change_versions(self, change: int) -> list[VersionMeta]:
        metas = [stored.meta for stored in self.data.versions if stored.meta.change == change]
        return sorted(metas, key=lambda meta: meta.level.depth)

    def new_change(self) -> int:
        return max((s.meta.change for s in self.data.versions if s.meta.change is not None), default=0) + 1

    def add_version(self, layer: Layer, info: VersionInfo) -> int:
        level = layer.level
        version = max((s.meta.version for s in self.data.versions if s.meta.level == level), default=0) + 1
        meta = VersionMeta(level=level, version=version, status=VersionStatus.DRAFT, created_at=_now(),
                           author=info.author, note=info.note, unit_count=len(layer.units),
                           based_on=info.based_on, restored_from=info.restored_from, change=info.change)
        self.data.versions.append(_Version(meta, layer.parent_source, _unit_columns(layer.units),
                                           _record_text(info.record)))
        log.info("stored %s version %d (%d units)", level.value, version, len(layer.units))
        return version

    def commit(self, level: Level, version: int, *, author: str, commit: Assignments,
               record: VersionRecord) -> None:
        stored = set(self.data.incidents["id"])
        for ids, _ in commit.units.values():
            missing = len(set(map(int, ids)) - stored)
            if missing:
                raise ValueError(f"{missing} of {len(ids)} assignments name incidents that are not stored")
        target = self.data.find(level, version)
        current = self.data.current()   # as before this commit, as in sql.py
        target.meta = replace(target.meta, status=VersionStatus.COMMITTED, committed_at=_now(),
                              committed_by=author, assigned=commit.assigned, moved=commit.moved)
        target.record = _record_text(record)
        for lv, (ids, codes) in commit.units.items():
            (target if lv == level else current[lv]).assignments = dict(zip(map(int, ids), codes))
        for lv, parents in commit.relinked.items():
            current[lv].relink(parents)
        log.info("committed %s version %d", level.value, version)

    def set_units(self, level: Level, version: int, ids: np.ndarray, codes: np.ndarray) -> None:
        missing = len(set(map(int, ids)) - set(self.data.incidents["id"]))
        if missing:
            raise ValueError(f"{missing} of {len(ids)} assignments name incidents that are not stored")
        self.data.find(level, version).assignments.update(zip(map(int, ids), codes))

    def add_import(self, run: ImportRun) -> int:
        run_id = len(self.data.imports) + 1
        self.data.imports.append(replace(run, id=run_id, created_at=_now(), errors=tuple(run.errors)))
        return run_id

    def replay(self, key: str) -> tuple[np.ndarray, np.ndarray] | None:
        return self.data.keys.get(key)

    def remember(self, key: str, rows: np.ndarray, ids: np.ndarray) -> None:
        self.data.keys[key] = (np.array(rows, dtype=np.int64), np.array(ids, dtype=np.int64))

    def points_after(self, after: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        stored = self.data.incidents
        return (np.array(stored["id"][after:], dtype=np.int64), np.array(stored["lon"][after:], dtype=float),
                np.array(stored["lat"][after:], dtype=float))

    def known_reports(self, external_ids: Sequence[str]) -> dict[str, KnownReport]:
        stored = self.data.incidents
        where = {ext: pos for pos, ext in enumerate(stored["external_id"]) if ext is not None}
        return {ext: KnownReport(*(stored[name][where[ext]] for name in _KNOWN_COLUMNS))
                for ext in dict.fromkeys(external_ids) if ext in where}

    def add_photo(self, incident_id: int, content_type: str, data: bytes) -> None:
        if not 1 <= incident_id <= len(self.data.incidents["id"]):
            raise ValueError(f"there is no incident {incident_id} to keep a photo with")
        self.data.photos[incident_id] = (content_type, bytes(data))

    def add_staff(self, member: StaffMember) -> int:
        self.data.staff.append(replace(member, id=len(self.data.staff) + 1))
        return len(self.data.staff)

    def update_staff(self, member: StaffMember) -> None:
        if member.id is None or not 1 <= member.id <= len(self.data.staff):
            raise NotFound(message(N_("there is no staff member {id}"), id=member.id))
        self.data.staff[member.id - 1] = member

    def has_accounts(self) -> bool:
        return bool(self.data.accounts)

    def add_account(self, account: Account) -> int:
        if any(a.name == account.name for a in self.data.accounts):
            raise Conflict(message(N_("there is already an account named {name}"), name=account.name))
        self.data.accounts.append(replace(account, id=len(self.data.accounts) + 1,
                                          created_at=account.created_at or _now()))
        return len(self.data.accounts)

    def update_account(self, account: Account) -> None:
        if account.id is None or not 1 <= account.id <= len(self.data.accounts):
            raise NotFound(message(N_("there is no account {id}"), id=account.id))
        self.data.accounts[account.id - 1] = replace(account, created_at=self.data.accounts[account.id - 1].created_at)

    def add_token(self, account_id: int, token_hash: str, label: str) -> int:
        self.data.tokens[token_hash] = account_id
        return len(self.data.tokens)

    def add_audit(self, entry: AuditEntry) -> None:
        self.data.audit.append(replace(entry, id=len(self.data.audit) + 1))

    def incident_state(self, incident_id: int) -> IncidentState:
        stored = self.data.incidents
        if not 1 <= incident_id <= len(stored["id"]):
            raise NotFound(message(N_("there is no incident {id}"), id=incident_id))
        at = incident_id - 1                        # ids are positions + 1
        return IncidentState(id=incident_id, status=stored["status"][at], escalation=stored["escalation"][at],
                             category=stored["category"][at], reported_at=stored["reported_at"][at])

    def add_event(self, event: IncidentEvent) -> int:
        stored, at = self.data.incidents, event.incident_id - 1
        changes = event.changes()
        for name, value in changes.items():
            stored[name][at] = value
        self.data.events.append(replace(event, id=len(self.data.events) + 1))
        return len(self.data.events)

    def add_incidents(self, incidents: IncidentColumns, units_by_level: dict[Level, np.ndarray]) -> np.ndarray:
        stored = self.data.incidents
        _check_unique([*stored["external_id"], *incidents.external_id])
        first = len(stored["id"]) + 1
        ids = np.arange(first, first + len(incidents), dtype=np.int64)
        stored["id"] += ids.tolist()
        for name in INCIDENT_COLUMNS[1:]:
            stored[name] += getattr(incidents, name).tolist()
        stored["created_at"] += [_now()] * len(incidents)
        for name in LIFECYCLE_COLUMNS:
            if name in ("closed_at", "due_at"):          # as a file gave them (NaT: none)
                stored[name] += [optional_time(t) for t in getattr(incidents, name)]
            else:
                stored[name] += [0 if name == "escalation" else None] * len(incidents)
        current = self.data.current()
        for level, codes in units_by_level.items():
            if level in current:
                current[level].assignments.update(zip(ids.tolist(), codes))
        return ids


# -- helpers -----------------------------------------------------------------------------
def _objects(values: Iterable[Any]) -> np.ndarray:
    """Values as a one-dimensional object array (never a string array, never 2-D)."""
    items = list(values)
    column = np.empty(len(items), dtype=object)
    column[:] = items
    return column


def _matches(columns: dict[str, np.ndarray], query: IncidentQuery, shown: list[_Version]) -> np.ndarray:
    """Which incidents pass the filters (sql.py's ``_filters``); ``unit`` is a code of any shown level."""
    keep = np.ones(len(columns["id"]), dtype=bool)
    for name, values in (("category", query.categories), ("status", query.statuses), ("source", query.sources)):
        if values:
            keep &= np.isin(columns[name].astype(str), list(values))
    if query.date_from:
        keep &= columns["reported_at"] >= query.date_from
    if query.date_to:
        keep &= columns["reported_at"] < query.date_to
    ids = columns["id"].astype(np.int64)
    if query.ids is not None:
        keep &= np.isin(ids, np.array(query.ids, dtype=np.int64))
    if query.bbox is not None:
        west, south, east, north = query.bbox
        lon, lat = columns["lon"].astype(float), columns["lat"].astype(float)
        keep &= (lon >= west) & (lon <= east) & (lat >= south) & (lat <= north)
    if query.exclude_points:
        lon, lat = columns["lon"].astype(float), columns["lat"].astype(float)
        keep &= ~np.isin(lon + 1j * lat, [complex(x, y) for x, y in query.exclude_points])
    if query.unit:
        held = {i for stored in shown for i, code in stored.assignments.items() if code == query.unit}
        keep &= np.isin(ids, np.array(sorted(held), dtype=np.int64))
    return keep


def _frame(columns: dict[str, np.ndarray], keep: np.ndarray) -> pd.DataFrame:
    # object dtype keeps None as None in the text columns, as sql.py does
    frame = pd.DataFrame({name: column[keep] for name, column in columns.items()}, dtype=object)
    frame["closed_at"] = pd.to_datetime(frame["closed_at"])
    frame["due_at"] = pd.to_datetime(frame["due_at"])
    return frame.astype({"id": "int64", "lon": "float64", "lat": "float64", "reported_at": "datetime64[us]",
                         "closed_at": "datetime64[us]", "due_at": "datetime64[us]", "escalation": "int64",
                         "original_x": "float64", "original_y": "float64"})


def _times(values: np.ndarray) -> np.ndarray:
    """Stored times (datetime or None) as datetime64[us], NaT for none."""
    return pd.to_datetime(pd.Series(values, dtype=object)).to_numpy(dtype="datetime64[us]")


def _check_unique(external_ids: list[str | None]) -> None:
    """The database's unique external id: a repeat must have been sorted out by the domain."""
    given = [ext for ext in external_ids if ext is not None]
    if len(set(given)) < len(given):
        repeated = sorted({ext for ext in given if given.count(ext) > 1})
        raise ValueError(f"external ids stored twice: {', '.join(repeated)}")


def _unit_columns(frame: gpd.GeoDataFrame) -> dict[str, np.ndarray]:
    return {"code": _objects(frame["code"]), "name": _objects(frame["name"]),
            "parent_code": _objects(frame["parent_code"]), "area_m2": frame["area_m2"].to_numpy(dtype=float, copy=True),
            "properties": _objects(json.dumps(p, ensure_ascii=False) for p in frame["properties"]),
            "geometry": shapely.to_wkb(frame.geometry.to_numpy())}


def _record_text(record: VersionRecord) -> str:
    return json.dumps(asdict(record), ensure_ascii=False)


def _record(text: str) -> VersionRecord:
    saved = json.loads(text)
    return VersionRecord(options=saved["options"], problems=tuple(saved["problems"]), report=saved["report"],
                         diff=saved["diff"])


def _now() -> datetime:
    return datetime.now(timezone.utc).replace(tzinfo=None)
