"""The heat map's data: the incidents' position, category, status and time kept in memory as
columns, so a view of a million incidents is filtered and counted per cell in numpy (about 0.1 s)
instead of read from the store on every pan.

The table follows the store: incidents are added with rising ids, so a refresh reads the rows
above the last id it holds; their statuses move by lifecycle steps, so it also reads the steps
taken since the last one it saw (:meth:`Store.status_changes`) and sets those incidents' statuses;
if the store then holds a different number of incidents than the table (rows removed), the table
is read again whole.
"""
from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass, replace

import numpy as np
import pandas as pd

from . import categories
from .incidents import Status
from .storage import HeatCells, IncidentQuery, Store, heat_cells

#: Rows read from the store per query when the table is filled.
READ_CHUNK = 100_000
#: Heat answers kept per process, and the most cells an answer kept may have (24 bytes a cell).
HEAT_ANSWERS, KEEP_CELLS = 4, 50_000


@dataclass(frozen=True)
class IncidentTable:
    """Columns of every stored incident, by id."""

    ids: np.ndarray          # int64
    lon: np.ndarray          # float64
    lat: np.ndarray          # float64
    category: np.ndarray     # int8: position in CATEGORY_CODES (-1: none of them)
    status: np.ndarray       # int8: position in STATUS_CODES
    reported_at: np.ndarray  # datetime64[us]
    source: np.ndarray       # int32: position in ``sources``
    sources: tuple[str, ...]    # the sources named (free text: whatever the reports said)

    @classmethod
    def of(cls, columns: dict[str, np.ndarray], sources: tuple[str, ...] = ()) -> IncidentTable:
        """The table of ``columns``; its sources are ``sources`` and then the new ones, in order of appearance."""
        named = pd.Series(columns["source"], dtype=object).fillna("")
        known = set(sources)
        sources += tuple(v for v in pd.unique(named) if v not in known)
        return cls(columns["id"], columns["lon"], columns["lat"], _codes(columns["category"], CATEGORY_CODES),
                   _codes(columns["status"], STATUS_CODES), columns["reported_at"],
                   pd.Categorical(named, categories=sources).codes.astype(np.int32), sources)

    def extended(self, columns: dict[str, np.ndarray]) -> IncidentTable:
        more = IncidentTable.of(columns, self.sources)      # the sources so far keep their positions
        joined = {f: np.concatenate([getattr(self, f), getattr(more, f)])
                  for f in self.__dataclass_fields__ if f != "sources"}
        return IncidentTable(**joined, sources=more.sources)

    def with_statuses(self, ids: np.ndarray, statuses: np.ndarray) -> IncidentTable:
        """The table with incident ``ids`` now in ``statuses`` (the later of repeats wins), as a copy."""
        if not len(ids):
            return self
        last = len(ids) - 1 - np.unique(ids[::-1], return_index=True)[1]        # each id's last change
        ids, codes = ids[last], _codes(statuses[last], STATUS_CODES)
        at = np.searchsorted(self.ids, ids)
        held = (at < len(self.ids)) & (self.ids[np.minimum(at, len(self.ids) - 1)] == ids)
        status = self.status.copy()
        status[at[held]] = codes[held]
        return replace(self, status=status)

    def category_names(self, rows: np.ndarray) -> np.ndarray:
        """The category codes (text) of ``rows``; "" for one outside :data:`CATEGORY_CODES`."""
        return np.array(CATEGORY_CODES + ("",), dtype=object)[self.category[rows]]

    def status_names(self, rows: np.ndarray) -> np.ndarray:
        return np.array(STATUS_CODES + ("",), dtype=object)[self.status[rows]]

    @property
    def last_id(self) -> int:
        return int(self.ids[-1]) if len(self.ids) else 0

    def answers(self, query: IncidentQuery) -> bool:
        """Whether the table can filter by ``query`` alone (a unit or a list of ids needs the store)."""
        return query.unit is None and query.ids is None

    def counts(self, query: IncidentQuery, by: str) -> dict[str, int] | None:
        """:meth:`Store.counts` from memory (keys as the store writes them); None when the table
        cannot tell (a category outside :data:`CATEGORY_CODES`)."""
        keep = self.matching(query)
        if by in ("category", "source"):
            codes, vocabulary = (self.category, CATEGORY_CODES) if by == "category" else (self.source, self.sources)
            if (codes[keep] < 0).any():
                return None
            held = np.bincount(codes[keep].astype(np.int64), minlength=len(vocabulary))
            return {vocabulary[i]: int(n) for i, n in enumerate(held.tolist()) if n}
        times = self.reported_at[keep]
        if by == "weekday_hour":
            minutes = times.astype("datetime64[m]").astype(np.int64)
            keys, held = np.unique(((minutes // 1440 + 3) % 7 + 1) * 100 + minutes % 1440 // 60, return_counts=True)
            return {f"{k // 100}-{k % 100:02d}": int(n) for k, n in zip(keys.tolist(), held.tolist())}
        keys, held = np.unique(times.astype("datetime64[D]" if by == "day" else "datetime64[M]"), return_counts=True)
        return {str(k): int(n) for k, n in zip(np.datetime_as_string(keys).tolist(), held.tolist())}

    def heat(self, query: IncidentQuery, cell_deg: float) -> HeatCells:
        keep = self.matching(query)
        return heat_cells(self.lon[keep], self.lat[keep], cell_deg)

    def matching(self, query: IncidentQuery) -> np.ndarray:
        """Which incidents pass the query's filters (the store's rules: ``date_to`` exclusive, bbox inclusive)."""
        keep = np.ones(len(self.ids), dtype=bool)
        for codes, vocabulary, asked in ((self.category, CATEGORY_CODES, query.categories),
                                         (self.status, STATUS_CODES, query.statuses),
                                         (self.source, self.sources, query.sources)):
            if asked:
                keep &= np.isin(codes, [_code(value, vocabulary) for value in asked])
        if query.date_from:
            keep &= self.reported_at >= np.datetime64(query.date_from, "us")
        if query.date_to:
            keep &= self.reported_at < np.datetime64(query.date_to, "us")
        if query.bbox is not None:
            west, south, east, north = query.bbox
            keep &= (self.lon >= west) & (self.lon <= east) & (self.lat >= south) & (self.lat <= north)
        for lon, lat in query.exclude_points:
            keep &= (self.lon != lon) | (self.lat != lat)
        return keep


#: The words a table keeps as small numbers (a million incidents: 2 MB instead of 16 MB of pointers).
CATEGORY_CODES = tuple(c.code for c in categories.CATEGORIES)
STATUS_CODES = tuple(s.value for s in Status)


def _codes(values: np.ndarray, vocabulary: tuple[str, ...]) -> np.ndarray:
    return pd.Categorical(values, categories=vocabulary).codes.astype(np.int8)


def _code(value: str, vocabulary: tuple[str, ...]) -> int:
    return vocabulary.index(value) if value in vocabulary else -2      # -2 matches no row


class TableCache:
    """One :class:`IncidentTable` per process, refreshed when the store's change counter moves, and
    its last few heat answers (every visitor of the map asks for the same first view)."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self._lock = threading.Lock()
        self._table: IncidentTable | None = None
        self._changes: int | None = None
        self._steps = 0               # the last lifecycle step the table's statuses hold
        self._answers: OrderedDict[tuple[int, IncidentQuery, float], HeatCells] = OrderedDict()

    def heat(self, query: IncidentQuery, cell_deg: float) -> HeatCells | None:
        """``table().heat(query, cell_deg)``, answered again from memory while the table is the same;
        None for a query the table cannot answer (see :meth:`IncidentTable.answers`)."""
        table = self.table()
        if not table.answers(query):
            return None
        key = (id(table), query, cell_deg)
        with self._lock:
            found = self._answers.get(key)
            if found is not None:
                self._answers.move_to_end(key)
                return found
        found = table.heat(query, cell_deg)
        with self._lock:
            if self._table is table and len(found.count) <= KEEP_CELLS:     # still current, and small
                self._answers[key] = found
                while len(self._answers) > HEAT_ANSWERS:
                    self._answers.popitem(last=False)
        return found

    def table(self) -> IncidentTable:
        with self._lock:
            changes = self.store.changes()
            table = self._table
            if table is not None and changes is not None and changes == self._changes:
                return table
            table = self._read(table)
            if len(table.ids) != self.store.count_incidents():
                table = self._read(None)
            self._steps, ids, statuses = self.store.status_changes(after=self._steps)
            table = table.with_statuses(ids, statuses)
            if table is not self._table:
                self._answers.clear()         # answers of the table before
            self._table, self._changes = table, changes
            return table

    def _read(self, table: IncidentTable | None) -> IncidentTable:
        """``table`` with the rows above its last id (all rows, for None), read a chunk at a time so
        the rows as Python tuples never all sit in memory at once."""
        while True:
            columns = self.store.incident_table(after=table.last_id if table is not None else 0, limit=READ_CHUNK)
            table = IncidentTable.of(columns) if table is None else table.extended(columns)
            if len(columns["id"]) < READ_CHUNK:
                return table
