"""The service: the use cases the web pages, the API and the CLI share.

Each method reads as a recipe — read and check the input, compute on whole arrays,
store all or nothing — so the web layer stays a thin translation of HTTP.
"""
from __future__ import annotations

import logging
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Callable, Hashable, Iterable, Iterator, Mapping, Sequence
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd

from . import import_worker
from .access import Access
from .assignment import AssignmentIndex
from .boundaries import derive_parents, parent_from_children, read_layer, staff_of, to_geojson
from .changes import (
    LayerOptions,
    LayerResult,
    ParentEdit,
    Part,
    ResultStatus,
    SaveMode,
    already_committed,
    cannot_derive,
    check_base,
    level_above,
    linked,
    problems_of,
    record_of,
    refuse_errors,
    stale_base,
    still_drafts,
)
from .choropleth import Choropleth, choropleth
from .cleaning import CleanOptions
from .config import DEMO_DIR
from .coordinates import ServiceArea
from .errors import N_, Conflict, InvalidInput, Message, NotFound, message, message_record
from .formats import Export, export_layer
from .heat import STATUS_CODES, TableCache
from .hexagons import DEFAULT_RESOLUTION, HexHotspots, hexagon_hotspots
from .hotspots import EmergingHotspots, HotspotOptions, Hotspots, contiguity, emerging_hotspots, hotspots
from .import_worker import ImportWorker
from .incidents import (
    EARLIEST_TIME,
    LATEST_TIME,
    FileData,
    FileOptions,
    IncidentColumns,
    KnownReport,
    Outcomes,
    ParsedBatch,
    RowError,
    Status,
    file_encodings,
    incident_chunks,
    is_text_table,
    line_count,
    new_reports,
    not_text,
    outcomes,
    parse_records,
    read_ahead,
)
from .layer import Layer
from .league import LeagueRow, league
from .levels import ORDER, Level, deepest
from .lifecycle import ESCALATION_ROLES, OPEN, Action, Deadlines, Step, next_state
from .mapping import NO_DEADLINE
from .performance import UnitPerformance, performance
from .planning import Candidate, IncidentPoints, build_candidate, clean_layer, with_late_incidents, without_levels
from .problems import Report
from .quality import Stacks, ambiguous_points, edge_pairs, stacked_points
from .storage import (
    STAFF_ROLES,
    Assignments,
    HeatCells,
    ImportRun,
    IncidentEvent,
    IncidentQuery,
    StaffMember,
    Store,
    VersionInfo,
    VersionMeta,
    VersionRecord,
    VersionStatus,
    Writer,
)
from .validation import DEFAULT_TOLERANCE_M2, check_coverage
from .versions import LayerDiff, diff_layers, moves_of

log = logging.getLogger(__name__)

#: How long (seconds) the current versions are trusted before the store's change counter is read
#: again: another process's commit is seen within this time, this service's own at once.
FRESH_S = 0.05


@dataclass
class ReportItem:
    row: int
    id: int
    created: bool
    units: dict[str, str | None]


@dataclass
class ReportResult:
    """What storing a batch did, as columns: for each stored (or already stored) incident its row,
    id, whether it is new, and its unit per level; and every row refused, with why."""

    rows: np.ndarray                   # int64
    ids: np.ndarray                    # int64
    new: np.ndarray                    # bool
    units: dict[str, np.ndarray]       # level value -> object array of codes (None: no unit)
    errors: list[RowError]
    import_id: int | None = None       # the record of a file import (with every refused row)

    @classmethod
    def refused(cls, errors: list[RowError]) -> ReportResult:
        empty = np.empty(0, dtype=np.int64)
        return cls(empty, empty, np.empty(0, dtype=bool), {}, errors)

    @classmethod
    def concat(cls, parts: Sequence[ReportResult]) -> ReportResult:
        """The results of a file's chunks as one (their rows follow each other)."""
        if not parts:
            return cls.refused([])
        levels = [lv for lv in parts[0].units]
        return cls(np.concatenate([p.rows for p in parts]), np.concatenate([p.ids for p in parts]),
                   np.concatenate([p.new for p in parts]),
                   {lv: np.concatenate([p.units[lv] for p in parts]) for lv in levels},
                   [e for p in parts for e in p.errors])

    @property
    def created(self) -> int:
        return int(self.new.sum())

    @property
    def stored(self) -> int:
        """Incidents the batch names that are now stored: the new ones and the ones stored before."""
        return len(self.ids)

    @property
    def unassigned(self) -> np.ndarray:
        """Which incidents of the batch are outside every unit (all of them when no level has units)."""
        if not self.units:
            return np.ones(self.stored, dtype=bool)
        return np.all([pd.isna(codes) for codes in self.units.values()], axis=0)

    @property
    def items(self) -> list[ReportItem]:
        """One item per stored incident: for a batch small enough to echo, not for a million."""
        return [ReportItem(row=int(row), id=int(i), created=bool(new), units={lv: codes[k] for lv, codes in
                                                                                self.units.items()})
                for k, (row, i, new) in enumerate(zip(self.rows, self.ids, self.new))]


@dataclass(frozen=True)
class EdgePoints:
    """How many of the stored incidents sit within their coordinates' precision of an edge
    between units of ``level`` (of all ``incidents``), and the groups of units they sit between."""

    level: Level
    count: int
    incidents: int
    pairs: list[tuple[tuple[str | None, ...], int]]


class Gridmap:
    """One deployment's boundaries and incidents, over a :class:`Store`."""

    def __init__(self, store: Store, *, timezone: str = "Asia/Shanghai", service_area: ServiceArea | None = None,
                 tolerance_m2: float = DEFAULT_TOLERANCE_M2, deadlines: Deadlines = Deadlines()) -> None:
        self.store = store
        self.access = Access(store)          # accounts, tokens, the audit trail
        self.deadlines = deadlines
        self.service_area = service_area
        self.tolerance_m2 = tolerance_m2
        self.tz = ZoneInfo(timezone)
        self._lock = threading.Lock()
        self._cache: _Current | None = None
        self._table = TableCache(store)
        self._writes = 0           # this service's write transactions, so its own writes are seen at once
        self._loading = threading.Lock()
        self._stats_lock = threading.Lock()
        self._stacks: tuple[int, Stacks] | None = None              # (incidents when found, the stacks)
        self._graphs: dict[Level, tuple[int | None, Any]] = {}      # level → (version, its contiguity)
        self._edges: tuple[tuple[Level, int | None], int, EdgePoints] | None = None  # (level/version, incidents, found)

    # -- boundaries ----------------------------------------------------------------------
    def save_layer(self, level: Level, data: bytes, options: LayerOptions = LayerOptions(), *,
                   mode: SaveMode = SaveMode.COMMIT, parent: ParentEdit | None = None) -> LayerResult:
        """Read a boundary file and preview it, save it as a draft, or commit it as the level's
        new version (reassigning every stored incident) — with the level above when ``parent``
        brings its edit or ``options.derive_parent`` redraws it.  Errors in the validation report
        refuse a draft or a commit with the whole report; nothing is stored then."""
        layer = self._read(level, data, options)
        return self._save(self._with_parent(layer, options, parent), mode, author=options.author, note=options.note)

    def import_layer(self, level: Level, data: bytes, options: LayerOptions = LayerOptions()) -> LayerResult:
        """Commit a boundary file as the level's new version (the CLI's and the demo's path)."""
        return self.save_layer(level, data, options, mode=SaveMode.COMMIT)

    def restore(self, level: Level, version: int, options: LayerOptions = LayerOptions(), *,
                mode: SaveMode = SaveMode.COMMIT) -> LayerResult:
        """Save an older version's units again, as a new version (history is never rewritten),
        checked with the options that version was saved with."""
        old, record = self._stored(level, version)
        layer = replace(old, version=None, problems=[], cleaning=None, units=old.units.reset_index(drop=True))
        # the history shows "restored from vN" in the reader's language from restored_from
        saved = replace(LayerOptions.from_record(record.options), clean=None, derive_parent=False,
                        base_version=options.base_version)
        return self._save([Part(layer, saved)], mode, author=options.author, note=options.note,
                          restored_from=version)

    def clean_version(self, level: Level, version: int, clean: CleanOptions, options: LayerOptions = LayerOptions(), *,
                      mode: SaveMode = SaveMode.DRAFT) -> LayerResult:
        """Clean a stored version's overlaps and gaps (the review page's button): the result is a
        new version, read-time problems and options kept, cleaning added."""
        old, record = self._stored(level, version)
        layer = clean_layer(replace(old, version=None, problems=problems_of(record.problems)), clean)
        saved = replace(LayerOptions.from_record(record.options), clean=clean, derive_parent=False,
                        base_version=options.base_version)
        return self._save([Part(layer, saved)], mode, author=options.author, note=options.note)

    def commit_draft(self, level: Level, version: int, *, author: str = "") -> LayerResult:
        """Commit a stored draft — with every other draft of its change — checked again, with the
        options each was saved with, against what is current now."""
        meta = self.store.version_meta(level, version)
        if meta.status is not VersionStatus.DRAFT:
            raise already_committed(level, version)
        members = self._change_members(meta)
        parts = [self._stored_part(m) for m in members]
        candidates = self._candidates(parts)          # no lock: reports go on meanwhile
        refuse_errors(candidates)
        with self._lock, self._writing() as tx:
            still_drafts(tx, meta)
            heads = tx.heads()
            for m, part, candidate in zip(members, parts, candidates):
                check_base(heads, m.level, m.based_on, tz=self.tz)
                tx.commit(m.level, m.version, author=author or m.author, commit=self._with_late(tx, candidate),
                          record=record_of(part, candidate))
        return linked([LayerResult.of(c, ResultStatus.COMMITTED, m.version, m.based_on)
                        for m, c in zip(members, candidates)], level)

    @contextmanager
    def _writing(self) -> Iterator[Writer]:
        """The store's write transaction; once it ends, this service's caches ask the store again."""
        try:
            with self.store.writing() as tx:
                yield tx
        finally:
            self._writes += 1

    def _read(self, level: Level, data: bytes, options: LayerOptions) -> Layer:
        layer = read_layer(data, level=level, filename=options.filename,
                           options=replace(options, service_area=self.service_area))
        return clean_layer(layer, options.clean) if options.clean is not None else layer

    def _with_parent(self, layer: Layer, options: LayerOptions, edit: ParentEdit | None) -> list[Part]:
        """The layers of the change, largest level first: the upload, and the level above when it
        was edited along with it or is to be redrawn from it."""
        part = Part(layer, replace(options, derive_parent=False))
        if edit is None and not options.derive_parent:
            return [part]
        level = level_above(layer.level)
        parent_options = LayerOptions(filename=f"{level.value}.geojson", tolerance_m2=options.tolerance_m2)
        if edit is not None:
            parent = self._read(level, edit.data, parent_options)
            return [Part(parent, replace(parent_options, base_version=edit.base_version)), part]
        template = self.layers().get(level)
        if layer.parent_source != "field":
            if template is None:
                raise cannot_derive(layer.level, level)
            layer = derive_parents(layer, template)
        derived = parent_from_children(layer, level, template)
        return [Part(derived, replace(parent_options, filename="", derive_parent=True)), replace(part, layer=layer)]

    def _save(self, parts: list[Part], mode: SaveMode, *, author: str, note: str,
              restored_from: int | None = None, then: Callable[[Writer, Candidate], Any] | None = None) -> LayerResult:
        parts = [replace(p, options=self._in_force(p.options)) for p in parts]
        for _ in range(SAVE_ATTEMPTS):
            # checked and reassigned without any lock: reports and other saves go on meanwhile
            current = self.store.versions()
            bases = [self._base(current, p.layer.level, p.options.base_version) for p in parts]
            candidates = self._candidates(parts)
            preview = linked([LayerResult.of(c, ResultStatus.PREVIEW, None, b) for c, b in zip(candidates, bases)],
                              parts[-1].layer.level)
            if mode is SaveMode.PREVIEW:
                return preview
            refuse_errors(candidates, preview)
            try:
                versions = self._write(parts, candidates, bases, current, mode, author=author, note=note,
                                       restored_from=restored_from, then=then)
            except _HeadsMoved:
                log.info("the boundaries changed while a save without a base was checked; checking it again")
                continue
            status = ResultStatus.COMMITTED if mode is SaveMode.COMMIT else ResultStatus.DRAFT
            return linked([LayerResult.of(c, status, v, b) for c, v, b in zip(candidates, versions, bases)],
                          preview.level)
        raise Conflict(message(N_("the boundaries changed {count} times while this save was being checked; "
                                  "save it again"), count=SAVE_ATTEMPTS))

    def _write(self, parts: list[Part], candidates: list[Candidate], bases: list[int | None],
               current: dict[Level, int], mode: SaveMode, *, author: str, note: str,
               restored_from: int | None, then: Callable[[Writer, Candidate], Any] | None = None) -> list[int]:
        """Store a checked change in one write transaction.  A part without a base was checked
        against ``current``: when another save has moved any level since, it is checked again
        (:class:`_HeadsMoved`) rather than refused.  Incidents stored after the candidates were
        computed are assigned under the new versions too."""
        with self._lock, self._writing() as tx:
            heads = tx.heads()
            if {lv: m.version for lv, m in heads.items()} != current and any(
                    p.options.base_version is None for p in parts):
                raise _HeadsMoved
            change = tx.new_change() if len(parts) > 1 else None
            records = [record_of(part, candidate) for part, candidate in zip(parts, candidates)]
            versions = []
            for part, candidate, base, record in zip(parts, candidates, bases, records):
                check_base(heads, part.layer.level, base, tz=self.tz)
                versions.append(tx.add_version(candidate.layer, VersionInfo(
                    author=author, note=note, based_on=base, restored_from=restored_from, change=change,
                    record=record)))
            if mode is SaveMode.COMMIT:
                for part, candidate, version, record in zip(parts, candidates, versions, records):
                    tx.commit(part.layer.level, version, author=author, record=record,
                              commit=self._with_late(tx, candidate))
            if then is not None:             # more writes of the same transaction (the demo's incidents)
                then(tx, candidates[-1])
        return versions

    @staticmethod
    def _with_late(tx: Writer, candidate: Candidate) -> Assignments:
        """The candidate's assignments and those of the incidents stored since it read them."""
        known = [ids for ids, _ in candidate.commit.units.values() if len(ids)]
        if candidate.index is None or not candidate.commit.units:
            return candidate.commit
        late = tx.points_after(max((int(ids.max()) for ids in known), default=0))
        if len(late[0]):
            log.info("%d incidents stored while the commit was computed: assigned under it too", len(late[0]))
        return with_late_incidents(candidate.commit, candidate.index, *late)

    def _base(self, current: dict[Level, int], level: Level, base_version: int | None) -> int | None:
        """The base version of a save: the one given, which must still be current, or the current one."""
        if base_version is None:
            return current.get(level)
        based_on = base_version or None
        if based_on != current.get(level):
            head = current.get(level)
            raise stale_base(level, based_on, self.store.version_meta(level, head) if head else None, tz=self.tz)
        return based_on

    def _candidates(self, parts: list[Part]) -> list[Candidate]:
        """Each layer of a change checked and reassigned against the current layers, the larger
        levels of the change already in place of their current versions."""
        current = dict(self.layers())
        heads = {lv: layer.version for lv, layer in current.items() if layer.version is not None}
        table = self._table.table()        # every stored incident, from the columns this process keeps
        ids, lon, lat = table.ids, table.lon, table.lat
        candidates = []
        with ThreadPoolExecutor(1) as reader:      # the store reads the current units meanwhile
            assigned = [reader.submit(self.store.assignments, p.layer.level, heads[p.layer.level])
                        if p.layer.level in heads else _ready(None) for p in parts]
            for i, part in enumerate(parts):
                level, later = part.layer.level, {p.layer.level for p in parts[i + 1:]}
                points = IncidentPoints(ids, lon, lat, assigned[i])
                # the levels saved after this one in the change replace their stored versions:
                # neither checked against it nor reassigned with it
                context = {lv: layer for lv, layer in current.items() if lv not in later}
                candidate = build_candidate(part.layer, context, points, tolerance_m2=self._tolerance(part.options))
                candidate.commit = without_levels(candidate.commit, {p.layer.level for p in parts} - {level})
                current[level] = candidate.layer
                candidates.append(candidate)
        return candidates

    def _tolerance(self, options: LayerOptions) -> float:
        return self.tolerance_m2 if options.tolerance_m2 is None else options.tolerance_m2

    def _in_force(self, options: LayerOptions) -> LayerOptions:
        """The options with the tolerance that applies filled in (the deployment's when not given),
        as they are checked and recorded."""
        return replace(options, tolerance_m2=self._tolerance(options))

    def _stored(self, level: Level, version: int) -> tuple[Layer, VersionRecord]:
        return self.store.layer_version(level, version), self.store.version_record(level, version)

    def _stored_part(self, meta: VersionMeta) -> Part:
        """A stored draft as it was saved: its read-time problems, cleaning and options."""
        layer, record = self._stored(meta.level, meta.version)
        cleaning = Report.from_record(record.report).cleaning if record.report else None
        options = self._in_force(LayerOptions.from_record(record.options))
        return Part(replace(layer, problems=problems_of(record.problems), cleaning=cleaning), options)

    def _change_members(self, meta: VersionMeta) -> list[VersionMeta]:
        if meta.change is None:
            return [meta]
        return [m for lv in ORDER for m in self.store.history(lv) if m.change == meta.change]

    # -- versions ------------------------------------------------------------------------
    def history(self, level: Level) -> list[VersionMeta]:
        return self.store.history(level)

    def version(self, level: Level, version: int) -> VersionView:
        """One stored version with the report and diff shown when it was saved (for a committed
        draft: when it was committed), against the version it was based on."""
        meta = self.store.version_meta(level, version)
        layer, record = self._stored(level, version)
        before = self.store.layer_version(level, meta.based_on) if meta.based_on else None
        if record.report is None or record.diff is None:        # saved by a gridmap that kept neither
            return self._recomputed(meta, replace(layer, problems=problems_of(record.problems)), before)
        members = [m for m in self._change_members(meta) if m.level != level]
        return VersionView(meta, layer, Report.from_record(record.report), LayerDiff.from_dict(record.diff), before,
                           options=record.options, members=members)

    def saved_review(self, level: Level, version: int) -> tuple[Report, LayerDiff]:
        """A version's report and diff as stored, without loading its units (the review page's
        "show more"); worked out again only for a version saved before gridmap kept them."""
        record = self.store.version_record(level, version)
        if record.report is None or record.diff is None:
            view = self.version(level, version)
            return view.report or Report(), view.diff
        return Report.from_record(record.report), LayerDiff.from_dict(record.diff)

    def _recomputed(self, meta: VersionMeta, layer: Layer, before: Layer | None) -> VersionView:
        if meta.status is VersionStatus.DRAFT:
            candidate = self._candidates([Part(layer, LayerOptions())])[0]
            return VersionView(meta, candidate.layer, candidate.report, candidate.diff, before)
        report = Report(list(layer.problems))
        report.add(check_coverage(layer, tolerance_m2=self.tolerance_m2))
        return VersionView(meta, layer, report, self._diff(before, layer, committed=True), before)

    def compare(self, level: Level, old: int, new: int) -> VersionView:
        """Version ``new`` against version ``old``: units, and incident moves from their stored
        assignments when ``new`` is committed.  The view has no report."""
        meta = self.store.version_meta(level, new)
        before, after = self.store.layer_version(level, old), self.store.layer_version(level, new)
        committed = meta.status is VersionStatus.COMMITTED
        return VersionView(meta, after, None, self._diff(before, after, committed=committed), before)

    def _diff(self, before: Layer | None, after: Layer, *, committed: bool) -> LayerDiff:
        diff = diff_layers(before, after)
        if committed and after.version is not None:
            old = before.version if before is not None else None
            diff.moves = moves_of(self.store.moves(after.level, old, after.version))
        return diff

    def layer_at(self, level: Level, version: int | None = None) -> Layer:
        """A level as of one of its versions (the current one when None, or when named: it is kept)."""
        current = self.layers().get(level)
        if version is None or (current is not None and current.version == version):
            return self.layer(level)
        return self.store.layer_version(level, version)

    def export(self, level: Level, version: int | None, fmt: str) -> Export:
        return export_layer(self.layer_at(level, version), fmt)

    def layers(self) -> dict[Level, Layer]:
        """The current layers, read from the store only when a version has changed."""
        return self._current().layers

    def index(self) -> AssignmentIndex:
        return self._current().index

    def _current(self) -> _Current:
        """Layers and their index, cached and keyed by the stored versions, so a boundary
        upload by this or any other process is seen, and nothing is reloaded (geometries decoded,
        trees built) while the versions stay the same.  The store's change counter says when the
        versions need asking for again; it is read at most every :data:`FRESH_S` seconds, and at
        once after a write through this service."""
        cached, now = self._cache, time.monotonic()
        if cached is not None and now < cached.checked + FRESH_S and cached.writes == self._writes:
            return cached
        with self._loading:            # threads arriving together wait for one read of the layers
            if self._cache is not cached and self._cache is not None:
                return self._cache
            changes, writes = self.store.changes(), self._writes
            if cached is None or changes is None or changes != cached.changes:
                versions = self.store.versions()
                if cached is None or versions != {lv: lay.version for lv, lay in cached.layers.items()}:
                    layers = self.store.layers()
                    index = AssignmentIndex(list(layers.values()))
                    index.ready_for_threads()          # shared by the server's threads
                    cached = _Current(layers, index)
                staff = tuple(m for m in self.store.staff_members() if m.active)
                if staff != cached.staff:              # the lookup answers name them: made again
                    cached = replace(cached, staff=staff, infos={})
            cached = self._cache = replace(cached, changes=changes, checked=now, writes=writes)
            return cached

    def deepest_level(self) -> Level:
        """The smallest level that has a version (what ``version=`` means without ``level=``)."""
        return deepest(self.layers()) or Level.MICRO_GRID

    def layer(self, level: Level) -> Layer:
        layer = self.layers().get(level)
        if layer is None:
            raise NotFound(message(N_("no {level} layer has been uploaded yet"), level=level.noun))
        return layer

    def layer_geojson(self, level: Level, version: int | None = None) -> dict[str, Any]:
        return to_geojson(self.layer_at(level, version))

    # -- incidents -----------------------------------------------------------------------
    def report(self, records: Sequence[Any], *, crs: str | None = None,
               photo: tuple[str, bytes] | None = None, key: str | None = None) -> ReportResult:
        """Store incidents sent as JSON objects; errors name the list index.  A record's ``crs``
        (default ``crs``, else WGS84) says its coordinates' system; ``photo`` (content type,
        bytes) is kept with the first one, in the same transaction.  ``key`` (an idempotency key)
        makes a retry of the same request answer with the incidents the first one stored."""
        batch = parse_records(records, tz=self.tz, now=self._now(), crs=crs)
        if not len(batch.incidents):
            return ReportResult.refused(batch.errors)
        return self._store([batch], photo=photo, key=key)

    def photo(self, incident_id: int) -> tuple[str, bytes] | None:
        return self.store.photo(incident_id)

    def import_incidents(self, data: FileData, *, filename: str, options: FileOptions = FileOptions(),
                         progress: Callable[[str, int], None] | None = None, lines: int | None = None) -> ReportResult:
        """Store the good rows of a CSV/GeoJSON file (its bytes, or its path: a CSV is then read from
        the disk) and report each bad row by number.  The file is read, assigned and stored a chunk at
        a time, all in one transaction (the whole file or nothing), and the import is recorded with
        every row it refused; ``filename`` says its format, ``lines`` its :func:`line_count` when the
        caller has counted them (a path's file is read once more otherwise).  ``progress`` hears
        ("read", rows) and ("stored", rows) as each chunk is.  A file of :data:`~gridmap.import_worker.PROCESS_FROM`
        lines or more is read in another process (:mod:`gridmap.import_worker`)."""
        if not is_text_table(filename):
            lines = 0
        elif lines is None:
            lines = line_count(data)
        if not import_worker.wanted(lines):
            import_worker.drop_spare()       # one started for the command line (python -m gridmap) goes unused
        for encoding in file_encodings(filename):
            now = self._now()
            batches: Iterable[ParsedBatch] | ImportWorker | None = None
            if import_worker.wanted(lines):
                batches = ImportWorker.start(data, filename=filename, options=options, tz=self.tz, now=now,
                                             encoding=encoding)
            if batches is None:
                batches = read_ahead(incident_chunks(data, filename=filename, options=options, tz=self.tz, now=now,
                                                     encoding=encoding))
            try:
                return self._store(batches, progress=progress, filename=filename, expected=lines)
            except UnicodeDecodeError:
                continue
            finally:
                if isinstance(batches, ImportWorker):
                    batches.close()
        raise not_text(filename)

    def _store(self, batches: Iterable[ParsedBatch] | ImportWorker,
               progress: Callable[[str, int], None] | None = None, *,
               filename: str | None = None, expected: int = 0,
               photo: tuple[str, bytes] | None = None, key: str | None = None) -> ReportResult:
        """Assign and store parsed incidents in one transaction, batch by batch; a repeat of a stored
        report (earlier batches included) keeps the stored one and its units; a different report
        under a known external id is refused.  A file import (``filename``, of about ``expected``
        rows) is recorded with every row it refused, in the same transaction, its batches read and
        assigned ahead (in a thread, or by an :class:`ImportWorker` process for a big file) while the
        one before is written; a file whose every row is refused stores nothing."""
        with self._lock, self._writing() as tx:
            stored_before = tx.replay(key) if key is not None else None
            if stored_before is None:
                result = self._store_in(tx, batches, progress, filename=filename, expected=expected)
                if key is not None:
                    tx.remember(key, result.rows, result.ids)
                if photo is not None and len(result.ids):
                    tx.add_photo(int(result.ids[0]), *photo)
        if stored_before is not None:
            return self._replayed(*stored_before)
        self._use_stored_units(result)
        log.info("stored %d incidents (%d already known, %d refused)", result.created,
                 result.stored - result.created, len(result.errors))
        return result

    def _store_in(self, tx: Writer, batches: Iterable[ParsedBatch] | ImportWorker,
                  progress: Callable[[str, int], None] | None, *, filename: str | None, expected: int,
                  index: AssignmentIndex | None = None) -> ReportResult:
        """``batches`` assigned here with ``index`` (default: the current layers'), or by the worker
        process reading them, which is sent the current layers."""
        parts: list[ReportResult] = []
        assigned: Iterator[tuple[ParsedBatch, dict[Level, np.ndarray]]]
        if isinstance(batches, ImportWorker):
            assigned = read_ahead(batches.assigned(list(self._current_of(tx).layers.values())))
        else:
            index = index or self._current_of(tx).index
            assigned = ((batch, index.assign(batch.incidents.lon, batch.incidents.lat)) for batch in batches)
            if filename is not None:
                assigned = read_ahead(assigned)
        if filename is not None:
            tx.expect_incidents(expected)
        for batch, units in assigned:
            if progress is not None:
                progress("read", len(batch.rows) + len(batch.errors))
            parts.append(self._store_part(tx, batch, units, source=filename))
            if progress is not None:
                progress("stored", len(batch.rows))
        result = ReportResult.concat(parts)
        if filename is None:
            self._dispatch_new(tx, result)
        elif result.stored:
            result.import_id = tx.add_import(ImportRun(
                filename=filename, rows=len(result.rows) + len(result.errors), created=result.created,
                existing=result.stored - result.created,
                errors=tuple({"row": e.row, "reasons": [message_record(r) for r in e.reasons]}
                             for e in result.errors)))
        return result

    def _replayed(self, rows: np.ndarray, ids: np.ndarray) -> ReportResult:
        """A retried request: the incidents its first try stored, none new, with their units now."""
        result = ReportResult(rows, ids, np.zeros(len(ids), dtype=bool),
                              {lv.value: np.full(len(ids), None, dtype=object) for lv in self.layers()}, [])
        self._use_stored_units(result)
        log.info("a retried request: %d incidents already stored", len(ids))
        return result

    def _dispatch_new(self, tx: Writer, result: ReportResult) -> None:
        """派单: each new report (not a file's: those say their own status) goes at once to the
        registered grid worker of its micro-grid, or of the grid above when the micro-grid has none."""
        workers = _workers(self.store.staff_members())
        if not workers:
            return
        now = self._now()
        for i in np.flatnonzero(result.new):
            units = {lv: codes[i] for lv, codes in result.units.items()}
            worker = _responsible(workers, units, escalation=0)
            # a record that says its own status (already dispatched, closed …) keeps it
            if worker is not None and tx.incident_state(int(result.ids[i])).status == Status.REPORTED.value:
                tx.add_event(IncidentEvent(
                    incident_id=int(result.ids[i]), at=now, actor="gridmap", action=Action.DISPATCH.value,
                    from_status=Status.REPORTED.value, to_status=Status.DISPATCHED.value,
                    note=f"{worker.name} {worker.phone}".strip()))

    # -- the staff registry -----------------------------------------------------------------
    def staff(self) -> list[StaffMember]:
        """Everyone registered, active or not."""
        return self.store.staff_members()

    def register_staff(self, member: StaffMember) -> StaffMember:
        """Attach a person to a unit code of a level (the unit must be in the level's current version)."""
        self._check_staff(member)
        with self._lock, self._writing() as tx:
            member_id = tx.add_staff(member)
        return replace(member, id=member_id)

    def update_staff(self, member: StaffMember, *, moved: bool = True) -> StaffMember:
        """Change a registered person; their unit is checked against the current version only when
        ``moved`` (a unit a boundary change dropped keeps its people until they are moved or leave)."""
        self._check_staff(member, unit=moved)
        with self._lock, self._writing() as tx:
            tx.update_staff(member)
        return member

    def _check_staff(self, member: StaffMember, *, unit: bool = True) -> None:
        problems: list[Message] = []
        if member.role not in STAFF_ROLES:
            problems.append(message(N_("role={value!r} is not valid; expected one of {choices}"), value=member.role,
                                    choices=", ".join(STAFF_ROLES)))
        if not member.name.strip() or len(member.name) > 200 or len(member.phone) > 50:
            problems.append(message(N_("expected a name (at most 200 characters) and a phone (at most 50)")))
        layer = self.layers().get(Level.parse(member.level))
        if unit and (layer is None or member.unit_code not in set(layer.codes)):
            problems.append(message(N_("{level} has no unit {code} in its current version"),
                                    level=Level.parse(member.level).noun, code=member.unit_code))
        if problems:
            raise InvalidInput(message(N_("the staff entry is not valid")), problems)

    def _current_of(self, tx: Writer) -> _Current:
        """The layers and index of the versions current in ``tx``: the cached ones are trusted for a
        moment (and another process may commit meanwhile), so under the write lock they are checked
        against the heads, which cannot change until ``tx`` ends, and read again when they differ."""
        heads = {level: meta.version for level, meta in tx.heads().items()}
        current = self._current()
        if heads != {level: layer.version for level, layer in current.layers.items()}:
            self._cache = None
            current = self._current()
        return current

    def _store_part(self, tx: Writer, batch: ParsedBatch, units: dict[Level, np.ndarray], *,
                    source: str | None = None) -> ReportResult:
        incidents = batch.incidents
        named = incidents.external_id[pd.notna(incidents.external_id)]
        known = tx.known_reports(list(named)) if len(named) else {}    # earlier batches of this transaction too
        fresh = new_reports(incidents, known)
        ids = tx.add_incidents(incidents.take(fresh), {lv: codes[fresh] for lv, codes in units.items()})
        stored = outcomes(incidents, known, fresh, ids)
        if source is not None and batch.status_given and known:
            self._advance(tx, incidents, known, stored, source)
        keep = ~stored.conflict
        return ReportResult(rows=batch.rows[keep], ids=stored.ids[keep], new=stored.created[keep],
                            units={lv.value: codes[keep] for lv, codes in units.items()},
                            errors=sorted(batch.errors + _conflicts(batch, stored), key=lambda e: e.row))

    def _advance(self, tx: Writer, incidents: IncidentColumns, known: Mapping[str, KnownReport], stored: Outcomes,
                 source: str) -> None:
        """A later export of the source system: each case stored before whose status moved on is
        moved on too (closed when the export says, at its close time), a step ``import`` in its
        history — never a second incident, never a conflict."""
        now = self._now()
        moved: dict[int, str] = {}
        for i in np.flatnonzero(~stored.created & ~stored.conflict):
            report = known.get(incidents.external_id[i])
            status = incidents.status[i]
            if report is None or moved.get(report.id, report.status) == status:
                continue
            closed = incidents.closed_at[i]
            tx.add_event(IncidentEvent(
                incident_id=report.id, at=now if np.isnat(closed) else closed.astype("datetime64[us]").item(),
                actor=f"import {source}", action="import", from_status=moved.get(report.id, report.status),
                to_status=status))
            moved[report.id] = status
        if moved:
            log.info("%s moved %d stored incidents on", source, len(moved))

    def import_run(self, run_id: int) -> ImportRun:
        return self.store.import_run(run_id)

    def _use_stored_units(self, result: ReportResult) -> None:
        """An incident that was already stored keeps (and reports) the units it has."""
        known = np.flatnonzero(~result.new)
        if not len(known):
            return
        frame = self.store.incidents(IncidentQuery(ids=tuple(int(i) for i in set(result.ids[known])))).set_index("id")
        for level, codes in result.units.items():
            if level in frame.columns:
                codes[known] = [_none(v) for v in frame[level].reindex(result.ids[known]).to_numpy()]

    # -- the lifecycle (gridmap.lifecycle) ----------------------------------------------------
    def take_step(self, incident_id: int, step: Step) -> dict[str, Any]:
        """Take ``step`` on an incident (409 when its state does not allow it), stored with the time
        and actor; the incident as :meth:`incident` gives it."""
        with self._lock, self._writing() as tx:
            state = tx.incident_state(incident_id)
            after = next_state(incident_id, Status(state.status), step)
            escalation = None
            if step.action is Action.ESCALATE:
                escalation = state.escalation + 1
                if escalation >= len(ESCALATION_ROLES):
                    raise Conflict(message(N_("incident {id} is already escalated to the community"),
                                           id=incident_id))
            if step.duplicate_of is not None and step.action is Action.DUPLICATE:
                try:
                    tx.incident_state(step.duplicate_of)
                except NotFound:
                    raise InvalidInput(message(N_("duplicate_of={value}: there is no incident {value}"),
                                               value=step.duplicate_of)) from None
            tx.add_event(IncidentEvent(
                incident_id=incident_id, at=self._now(), actor=step.actor, action=step.action.value,
                from_status=state.status, to_status=after.value, note=step.note,
                resolution=step.resolution.value if step.resolution else None,
                rating=step.rating if step.action is Action.RATE else None,
                duplicate_of=step.duplicate_of if step.action is Action.DUPLICATE else None, escalation=escalation))
        log.info("incident %d: %s by %s (%s → %s)", incident_id, step.action.value, step.actor, state.status,
                 after.value)
        return self.incident(incident_id)

    def escalate_overdue(self) -> int:
        """升级: every dispatched or in-progress incident past its deadline goes up to the grid
        leader, and past it by a second deadline's length to the community (ESCALATION_ROLES), a
        step ``escalate`` by ``gridmap`` each; run it from cron (``gridmap escalate-overdue``).  The
        candidates come from the columns this process keeps (a million in a second), read under the
        write lock, so no step another server takes can slip between the reading and the writing.
        How many steps were taken."""
        now = np.datetime64(self._now(), "us")
        escalable = [STATUS_CODES.index(s) for s in (Status.DISPATCHED.value, Status.IN_PROGRESS.value)]
        with self._lock, self._writing() as tx:
            table = self._table.table()
            keep = np.flatnonzero(np.isin(table.status, escalable))     # as the transition table allows
            ids, reported = table.ids[keep], table.reported_at[keep]
            values = self.store.lifecycle_values()
            due = self.deadlines.due_array(reported, table.category_names(keep),
                                           _at(ids, values["id"], values["due_at"], np.datetime64("NaT", "us")))
            escalation = _at(ids, values["id"], values["escalation"], 0)
            late = (due < np.datetime64(NO_DEADLINE, "us")) & (now > due)
            span = np.maximum(due - reported, np.timedelta64(1, "h"))
            target = np.minimum(len(ESCALATION_ROLES) - 1, 1 + (now - due) // span)
            status = table.status_names(keep)
            events = [IncidentEvent(incident_id=int(ids[i]), at=now.item(), actor="gridmap",
                                    action=Action.ESCALATE.value, from_status=status[i], to_status=status[i],
                                    escalation=level,
                                    note=f"overdue since {due[i].item():%Y-%m-%d %H:%M}")
                      for i in np.flatnonzero(late & (target > escalation))
                      for level in range(int(escalation[i]) + 1, int(target[i]) + 1)]
            tx.add_events(events)
        log.info("escalated overdue incidents: %d steps", len(events))
        return len(events)

    def incident(self, incident_id: int) -> dict[str, Any]:
        """One incident as a GeoJSON Feature, with its units, deadline (``due_at``), whether it is
        ``overdue`` (open past its deadline) or was closed ``on_time``, who answers for it now
        (``responsible``: its escalation's role) and its ``history`` (the report, then every step)."""
        frame = self.store.incidents(IncidentQuery(ids=(incident_id,)))
        if not len(frame):
            raise NotFound(message(N_("there is no incident {id}"), id=incident_id))
        feature = _incident_features(frame)[0]
        props = feature["properties"]
        row = frame.iloc[0]
        due = self.deadlines.due(row["reported_at"].to_pydatetime(), row["category"],
                                 None if pd.isna(row["due_at"]) else row["due_at"].to_pydatetime())
        closed = row["closed_at"]
        props["due_at"] = None if due >= NO_DEADLINE else due.isoformat(sep=" ")
        props["overdue"] = Status(row["status"]) in OPEN and self._now() > due
        props["on_time"] = None if pd.isna(closed) else bool(closed.to_pydatetime() <= due)
        props["responsible"] = ESCALATION_ROLES[int(row["escalation"])]
        person = _responsible(_workers(self._current().staff), props["units"], escalation=int(row["escalation"]))
        props["assignee"] = None if person is None else {"name": person.name, "phone": person.phone,
                                                         "role": person.role, "unit": person.unit_code}
        props["history"] = [{"at": props["reported_at"], "action": "report", "actor": row["source"] or None,
                             "from": None, "to": Status.REPORTED.value, "note": ""}] + [
            {"at": e.at.isoformat(sep=" "), "action": e.action, "actor": e.actor, "from": e.from_status,
             "to": e.to_status, "note": e.note,
             **{k: v for k, v in (("resolution", e.resolution), ("rating", e.rating),
                                  ("duplicate_of", e.duplicate_of), ("escalation", e.escalation)) if v is not None}}
            for e in self.store.incident_events(incident_id)]
        return feature

    def incidents(self, query: IncidentQuery = IncidentQuery(), *,
                  at: dict[Level, int] | None = None) -> pd.DataFrame:
        return self.store.incidents(query, at=at)

    def heat(self, query: IncidentQuery, *, bbox: tuple[float, float, float, float] | None, cell_deg: float,
             at: dict[Level, int] | None = None) -> HeatCells:
        """The matching incidents in ``bbox`` counted on a ``cell_deg`` grid (the heat map's data):
        from the columns this process keeps in memory, or from the store for a unit's incidents."""
        query = replace(query, bbox=bbox or query.bbox)
        found = self._table.heat(query, cell_deg)
        return found if found is not None else self.store.heat(query, cell_deg=cell_deg, at=at)

    def unit_counts(self, level: Level, query: IncidentQuery = IncidentQuery(), *,
                    version: int | None = None) -> dict[str, int]:
        """Matching incidents per unit code of ``level`` under ``version`` (default: the current one)."""
        if version is None:
            version = self.store.versions().get(level)
            if version is None:
                return {}
        return self.store.unit_counts(level, version, query)

    def stacked_points(self) -> Stacks:
        """The coordinates holding a placeholder's pile of incidents (:mod:`gridmap.quality`),
        among every stored incident.  Found again (0.16 s at a million) once the incidents have
        grown by :data:`RESTACK_GROWTH` since, or been replaced: not on every new report, since a
        heat map asks for them with every view."""
        table = self._table.table()
        with self._stats_lock:
            kept = self._stacks
            if kept is None or not (kept[0] <= len(table.ids) < kept[0] * (1 + RESTACK_GROWTH) + 1):
                self._stacks = kept = (len(table.ids), stacked_points(table.lon, table.lat))
            return kept[1]

    def edge_points(self) -> EdgePoints | None:
        """The stored incidents within their coordinates' precision of an edge between units of
        the deepest level (:func:`gridmap.quality.ambiguous_points`: which unit holds them is
        uncertain), and the units they sit between; None without boundaries.  Found again (about
        a second at a million) once the incidents grew by :data:`RESTACK_GROWTH` or the level has
        a new version."""
        layers = self.layers()
        level = deepest(layers)
        if level is None:
            return None
        layer = layers[level]
        table = self._table.table()
        with self._stats_lock:
            kept = self._edges
            if (kept is not None and kept[0] == (level, layer.version)
                    and kept[1] <= len(table.ids) < kept[1] * (1 + RESTACK_GROWTH) + 1):
                return kept[2]
        found = ambiguous_points(table.lon, table.lat, layer)
        edges = EdgePoints(level=level, count=len(found), incidents=len(table.ids), pairs=edge_pairs(found))
        with self._stats_lock:
            self._edges = ((level, layer.version), len(table.ids), edges)
        return edges

    def hotspots(self, level: Level, query: IncidentQuery = IncidentQuery(),
                 options: HotspotOptions = HotspotOptions(), *, stacked: bool = False) -> tuple[Hotspots, Stacks]:
        """Gi* hotspots of the matching incidents per unit of ``level``'s current version, and the
        stacked coordinates; their incidents are left out of the counts unless ``stacked``."""
        layer = self.layer(level)
        stacks = self.stacked_points()
        if not stacked:
            query = self.without_stacks(query)
        counts = self.unit_counts(level, query, version=layer.version)
        return hotspots(layer, counts, options, graph=self._contiguity(level, layer)), stacks

    def hexagon_hotspots(self, query: IncidentQuery = IncidentQuery(), options: HotspotOptions = HotspotOptions(),
                         *, resolution: int = DEFAULT_RESOLUTION, stacked: bool = False) -> tuple[HexHotspots, Stacks]:
        """Gi* hot spots of the matching incidents on H3 hexagons (:mod:`gridmap.hexagons`), for
        places without micro-grids, and the stacked coordinates, left out unless ``stacked``."""
        stacks = self.stacked_points()
        if not stacked:
            query = self.without_stacks(query)
        lon, lat = self.incident_points(query)
        return hexagon_hotspots(lon, lat, options, resolution=resolution), stacks

    def incident_points(self, query: IncidentQuery) -> tuple[np.ndarray, np.ndarray]:
        """lon, lat of the matching incidents: from the columns this process keeps where they tell
        (a million in milliseconds), else from the store."""
        table = self._table.table()
        if table.answers(query):
            keep = table.matching(query)
            return table.lon[keep], table.lat[keep]
        frame = self.store.incidents(query)
        return frame["lon"].to_numpy(dtype=float), frame["lat"].to_numpy(dtype=float)

    def emerging_hotspots(self, level: Level, query: IncidentQuery = IncidentQuery(),
                          options: HotspotOptions = HotspotOptions(permutations=0), *, by: str = "month",
                          periods: int = 12,
                          stacked: bool = False) -> EmergingHotspots:
        """Gi* of each of the last ``periods`` months or weeks (``by``) up to the one holding the
        latest matching incident (or the ``date_to`` of ``query``), and each unit's trend
        (:func:`gridmap.hotspots.emerging_hotspots`)."""
        layer = self.layer(level)
        if not stacked:
            query = self.without_stacks(query)
        spans = time_periods(by, periods, last=self._last_time(query))
        counts = self.store.unit_counts_in(level, layer.version or 0, query,
                                           [start for _, start, _ in spans] + [spans[-1][2]])
        return emerging_hotspots(layer, counts, [label for label, _, _ in spans], options,
                                 graph=self._contiguity(level, layer))

    def _last_time(self, query: IncidentQuery) -> datetime:
        """When the last period ends: the day the query ends, or the day of its latest incident."""
        if query.date_to is not None:
            last = query.date_to - timedelta(microseconds=1)
            if not EARLIEST_TIME <= last <= LATEST_TIME:       # the periods before it would leave the calendar
                raise InvalidInput(message(
                    N_("{field}: {value!r} is outside the accepted time range; expected a time from {earliest} to "
                       "{latest}"), field="to", value=last.date().isoformat(),
                    earliest=EARLIEST_TIME.isoformat(sep=" ", timespec="minutes"),
                    latest=LATEST_TIME.isoformat(sep=" ", timespec="minutes")))
            return last
        days = self.store.counts(query, "day")
        return datetime.fromisoformat(max(days)) if days else self._now()

    def choropleth(self, level: Level, query: IncidentQuery = IncidentQuery(), *, measure: str = "count",
                   scheme: str = "quantiles", k: int = 5, stacked: bool = False) -> Choropleth:
        """A number per unit of ``level``'s current version in ``k`` classes (:mod:`gridmap.choropleth`),
        incidents on stacked coordinates left out unless ``stacked``."""
        layer = self.layer(level)
        if not stacked:
            query = self.without_stacks(query)
        counts = self.unit_counts(level, query, version=layer.version)
        closed = None
        if measure == "closed":        # closed and fixed, of the incidents accepted (docs/statistics.md)
            figures = self.performance(level, query)
            counts = {f.code: f.accepted - f.passed_on for f in figures}
            closed = {f.code: f.closed for f in figures}
        return choropleth(layer, counts, measure=measure, scheme=scheme, k=k, closed=closed)

    def league(self, level: Level, query: IncidentQuery = IncidentQuery(), *,
               month: str | None = None) -> tuple[str, str, list[LeagueRow]]:
        """The monthly league table (:mod:`gridmap.league`) of ``level``'s current units for
        ``month`` (YYYY-MM; default: the month of the latest matching incident), with each unit's
        rank the month before: (month, the month before, the rows)."""
        layer = self.layer(level)
        if month is None:
            months = self.store.counts(query, "month")
            month = max(months) if months else f"{self._now():%Y-%m}"
        spans = time_periods("month", 2, last=_month_start(month))
        counts, figures = [], {}
        for _, start, end in spans:        # the month before, then the month
            figures = {f.code: f for f in self.performance(level, replace(query, date_from=start, date_to=end))}
            counts.append(({code: f.accepted - f.passed_on for code, f in figures.items()},
                           {code: f.closed for code, f in figures.items()}))
        return spans[1][0], spans[0][0], league(layer, *counts[1], previous=counts[0], figures=figures,
                                                shown={code: f.incidents for code, f in figures.items()})

    def performance(self, level: Level, query: IncidentQuery = IncidentQuery()) -> list[UnitPerformance]:
        """The figures of docs/statistics.md (closure, on-time and satisfaction rates, time to
        close, overdue …) of each unit of ``level``'s current version over the matching incidents."""
        layer = self.layer(level)
        table = self._table.table()
        if not table.answers(query):
            return performance(layer, self.store.lifecycle_columns(level, layer.version or 0, query), self.deadlines,
                               self._now())
        # the columns this process keeps, each incident's unit, and the few values steps have set:
        # a million incidents in about a second (their rows read from the store: 3-4 s)
        keep = table.matching(query)
        ids = table.ids[keep]
        assigned, codes = self.store.assignments(level, layer.version or 0)
        values = self.store.lifecycle_values()
        return performance(layer, {
            "unit": _at(ids, assigned, codes, None),
            "category": table.category_names(keep), "status": table.status_names(keep),
            "reported_at": table.reported_at[keep],
            "resolution": _at(ids, values["id"], values["resolution"], None),
            "rating": _at(ids, values["id"], values["rating"], np.nan).astype(float),
            "closed_at": _at(ids, values["id"], values["closed_at"], np.datetime64("NaT", "us")),
            "due_at": _at(ids, values["id"], values["due_at"], np.datetime64("NaT", "us")),
        }, self.deadlines, self._now())

    def without_stacks(self, query: IncidentQuery) -> IncidentQuery:
        """``query`` leaving out the incidents on stacked coordinates (the heat map's and the
        hotspots' default)."""
        stacks = self.stacked_points()
        return replace(query, exclude_points=query.exclude_points + tuple(zip(stacks.lon.tolist(),
                                                                              stacks.lat.tolist())))

    def _contiguity(self, level: Level, layer: Layer) -> Any:
        """The layer's queen contiguity, built once per version (0.6 s for 10,000 micro-grids)."""
        with self._stats_lock:
            kept = self._graphs.get(level)
            if kept is not None and kept[0] == layer.version:
                return kept[1]
        graph = contiguity(layer)
        with self._stats_lock:
            self._graphs[level] = (layer.version, graph)
        return graph

    def incident_counts(self, query: IncidentQuery, by: str) -> dict[str, int]:
        """Matching incidents per category, day, month or hour of the week (:data:`storage.COUNT_BY`),
        by key: counted in the columns this process keeps where they tell (milliseconds at a
        million; the store's GROUP BY takes a third of a second), else by the store."""
        table = self._table.table()
        found = table.counts(query, by) if table.answers(query) else None
        return dict(sorted((found if found is not None else self.store.counts(query, by)).items()))

    def incident_totals(self, query: IncidentQuery = IncidentQuery(), *,
                        at: dict[Level, int] | None = None) -> tuple[int, int]:
        """(matching incidents, of them outside a unit of some level)."""
        return self.store.totals(query, at=at)

    def outside_points(self, query: IncidentQuery, *, bbox: tuple[float, float, float, float] | None, limit: int,
                       at: dict[Level, int] | None = None) -> tuple[np.ndarray, np.ndarray, int]:
        """lon, lat of up to ``limit`` matching incidents outside every unit in ``bbox``, and how many
        there are in all."""
        query = replace(query, bbox=bbox or query.bbox)
        lon, lat = self.store.outside_points(query, limit=limit, at=at)
        total = len(lon) if len(lon) < limit else self.store.totals(query, at=at)[1]
        return lon, lat, total

    def incident_page(self, query: IncidentQuery = IncidentQuery(), *, after: int = 0,
                      limit: int = 1000) -> tuple[list[dict[str, Any]], int | None]:
        """Up to ``limit`` matching incidents with ids above ``after`` as GeoJSON features, by id, and
        the cursor of the next page (None when this page is the last)."""
        frame = self.store.incident_page(query, after=after, limit=limit + 1)
        more = len(frame) > limit
        frame = frame.iloc[:limit]
        features = _incident_features(frame)
        return features, int(frame["id"].iloc[-1]) if more else None

    def incident_stream(self, query: IncidentQuery = IncidentQuery(), *,
                        page: int = 10_000) -> Iterator[list[dict[str, Any]]]:
        """Every matching incident as GeoJSON features, a page at a time (an export that never
        holds them all)."""
        after: int | None = 0
        while after is not None:
            features, after = self.incident_page(query, after=after, limit=page)
            yield features

    # -- lookup --------------------------------------------------------------------------
    def lookup(self, lon: float, lat: float, *, level: Level | None = None,
               version: int | None = None) -> list[dict[str, Any]]:
        """The units holding a point, deepest level first, each with its responsible staff —
        as of ``version`` of ``level`` (default: the deepest level) when a version is given."""
        if not (-180 <= lon <= 180 and -90 <= lat <= 90):
            raise InvalidInput(message(N_("lon={lon}, lat={lat} is not a WGS84 position; expected longitude "
                                          "-180..180 and latitude -90..90"), lon=lon, lat=lat))
        if version is None:
            current = self._current()
            codes = current.index.locate(lon, lat)          # largest level first
            return [current.unit_info(lv, code) for lv, code in reversed(codes.items()) if code is not None]
        layers = dict(self.layers())
        level = level or self.deepest_level()
        layers[level] = self.store.layer_version(level, version)
        found = AssignmentIndex(list(layers.values())).locate(lon, lat)
        return [_unit_infos(layers[lv])[code] for lv, code in sorted(found.items(), key=lambda item: -item[0].depth)
                if code is not None]

    def warm(self) -> None:
        """Read what the first map and lookup would otherwise wait for: the current layers with their
        index and its raster, and the heat map's table of incidents (a few seconds at a million)."""
        self.index().build_raster()
        self._table.table()

    def count_summary(self) -> str:
        layers = self.store.layer_meta()
        parts = [f"{m.level.value} v{m.version} ({m.unit_count} units)" for m in layers]
        return ", ".join(parts + [f"{self.store.count_incidents()} incidents"])

    # -- demo ----------------------------------------------------------------------------
    def load_demo(self, directory: Path = DEMO_DIR) -> dict[str, int]:
        """Load the demo community through the same readers, checks and writers users' files go
        through, in one transaction: a server stopped half-way leaves an empty store, which loads
        the demo again on its next start."""
        parts = []
        for level in (Level.GRID, Level.MICRO_GRID):
            path = directory / f"{level.value}.geojson"
            options = self._in_force(LayerOptions(filename=path.name, author="demo", note="demo data"))
            parts.append(Part(self._read(level, path.read_bytes(), options), options))
        incidents = directory / "incidents.csv"
        stored: list[ReportResult] = []

        def store_incidents(tx: Writer, last: Candidate) -> None:
            batches = incident_chunks(incidents.read_bytes(), filename=incidents.name, options=FileOptions(),
                                      tz=self.tz, now=self._now(), encoding="utf-8")
            stored.append(self._store_in(tx, batches, None, filename=incidents.name, expected=0, index=last.index))
        micro = self._save(parts, SaveMode.COMMIT, author="demo", note="demo data", then=store_incidents)
        grid = micro.parent
        return {Level.GRID.value: grid.count if grid is not None else 0, Level.MICRO_GRID.value: micro.count,
                "incidents": stored[0].created}

    def _now(self) -> datetime:
        return datetime.now(self.tz).replace(tzinfo=None, microsecond=0)


class _HeadsMoved(Exception):
    """Another save committed while a save without a base was being checked."""


#: How many times a save without a base is checked again when other saves keep committing meanwhile.
SAVE_ATTEMPTS = 3


@dataclass
class VersionView:
    meta: VersionMeta
    layer: Layer
    report: Report | None      # None for a comparison of two stored versions
    diff: LayerDiff
    before: Layer | None       # what the diff compares against
    options: dict[str, Any] = field(default_factory=dict)     # what the version was saved with
    members: list[VersionMeta] = field(default_factory=list)  # the other levels saved in the same change


def time_periods(by: str, count: int, *, last: datetime) -> list[tuple[str, datetime, datetime]]:
    """``count`` consecutive months or ISO weeks ending with the one holding ``last``: (label,
    start, end), oldest first (``2026-03``, ``2026-W10``)."""
    if by not in ("month", "week") or not 2 <= count <= MAX_PERIODS:
        raise InvalidInput(message(N_("by={by!r}, periods={count} is not valid; expected by=month or week and "
                                      "from 2 to {most} periods"), by=by, count=count, most=MAX_PERIODS))
    spans = []
    if by == "month":
        year, month = last.year, last.month
        for _ in range(count):
            start = datetime(year, month, 1)
            end = datetime(year + (month == 12), month % 12 + 1, 1)
            spans.append((f"{year:04d}-{month:02d}", start, end))
            year, month = (year - 1, 12) if month == 1 else (year, month - 1)
    else:
        monday = datetime.combine(last.date() - timedelta(days=last.weekday()), datetime.min.time())
        for k in range(count):
            start = monday - timedelta(weeks=k)
            iso = start.isocalendar()
            spans.append((f"{iso.year:04d}-W{iso.week:02d}", start, start + timedelta(weeks=1)))
    return spans[::-1]


def _at(ids: np.ndarray, keys: np.ndarray, values: np.ndarray, missing: Any) -> np.ndarray:
    """``values`` (by sorted ``keys``) for each of ``ids``; ``missing`` for an id not among them."""
    out = np.full(len(ids), missing, dtype=values.dtype)
    if len(keys):
        at = np.minimum(np.searchsorted(keys, ids), len(keys) - 1)
        found = keys[at] == ids
        out[found] = values[at[found]]
    return out


def _month_start(month: str) -> datetime:
    """``YYYY-MM`` as the first moment of that month."""
    try:
        start = datetime.strptime(month.strip(), "%Y-%m")
    except ValueError:
        start = None
    if start is None or not month.strip().isascii() or not EARLIEST_TIME <= start < LATEST_TIME:
        raise InvalidInput(message(N_("month={value!r} is not a month; expected YYYY-MM, e.g. 2026-03"),
                                   value=month))
    return start


#: Growth of the stored incidents after which the stacked coordinates are found again.
RESTACK_GROWTH = 0.01
#: The most periods an emerging-hotspot analysis compares (five years of months).
MAX_PERIODS = 60


def _ready(value: Any) -> Future:
    done: Future = Future()
    done.set_result(value)
    return done


def _conflicts(batch: ParsedBatch, stored: Outcomes) -> list[RowError]:
    return [RowError(int(batch.rows[i]), (message(
        N_("external id {external_id!r} is already incident {id}, with a different category, position or "
           "time; this row was not stored"), external_id=batch.incidents.external_id[i], id=int(stored.ids[i])),))
        for i in np.flatnonzero(stored.conflict)]


@dataclass(frozen=True)
class _Current:
    """The current layers with their index, the store's change counter they were checked at, and
    the lookup answers made so far (by level, then code)."""

    layers: dict[Level, Layer]
    index: AssignmentIndex
    changes: int | None = None
    checked: float = 0.0          # time.monotonic() when the change counter was read
    writes: int = 0               # the service's own writes counted then
    infos: dict[Level, dict[str, dict[str, Any]]] = field(default_factory=dict)
    staff: tuple[StaffMember, ...] = ()        # the registry, active members

    def unit_info(self, level: Level, code: str) -> dict[str, Any]:
        """A current unit's lookup answer (the level's answers are made at its first lookup)."""
        infos = self.infos.get(level)
        if infos is None:
            infos = self.infos[level] = _unit_infos(self.layers[level], self.staff)
        return infos[code]


def _unit_infos(layer: Layer, registry: Sequence[StaffMember] = ()) -> dict[str, dict[str, Any]]:
    """Each unit's lookup answer: its name, parent, area, the staff its boundary file names
    (``staff``, ``phone``) and the people registered for it (``staff_members``)."""
    units = layer.units
    members: dict[str, list[dict[str, Any]]] = {}
    for m in registry:
        if m.level == layer.level.value and m.active:
            members.setdefault(m.unit_code, []).append({"id": m.id, "name": m.name, "phone": m.phone, "role": m.role})
    return {code: {"level": layer.level.value, "code": code, "name": name, "parent_code": parent,
                   "area_m2": round(float(area), 1), **staff_of(props), "staff_members": members.get(code, []),
                   "properties": props, "version": layer.version}
            for code, name, parent, area, props in zip(units["code"], units["name"], units["parent_code"],
                                                        units["area_m2"], units["properties"])}


def _workers(registry: Sequence[StaffMember]) -> dict[tuple[str, str, str], StaffMember]:
    """The first active member of each (level, unit code, role)."""
    found: dict[tuple[str, str, str], StaffMember] = {}
    for m in registry:
        if m.active:
            found.setdefault((m.level, m.unit_code, m.role), m)
    return found


def _responsible(workers: Mapping[tuple[str, str, str], StaffMember], units: Mapping[str, Any], *,
                 escalation: int) -> StaffMember | None:
    """Who answers for an incident in ``units`` (unit code by level) at an escalation level: its
    micro-grid's grid worker, else its grid's (0); its grid's leader (1); the community contact of
    its community, or of its grid (2)."""
    role = STAFF_ROLES[escalation]
    levels = {0: (Level.MICRO_GRID, Level.GRID), 1: (Level.GRID, Level.MICRO_GRID),
              2: (Level.COMMUNITY, Level.GRID, Level.STREET)}[escalation]
    for level in levels:
        code = units.get(level.value)
        if code is not None and (level.value, code, role) in workers:
            return workers[level.value, code, role]
    return None


def _incident_features(frame: pd.DataFrame) -> list[dict[str, Any]]:
    levels = [c for c in frame.columns if c in {lv.value for lv in ORDER}]
    return [_incident_feature(row, levels) for row in frame.to_dict("records")]


def _incident_feature(row: Mapping[Hashable, Any], levels: list[str]) -> dict[str, Any]:
    props = {k: _none(v) for k, v in row.items() if k not in ("lon", "lat") and k not in levels
             and k not in _ORIGINAL}
    crs = _none(row.get("original_crs"))     # the coordinates as given, when not in WGS84
    props["original"] = None if crs is None else {"crs": crs, "x": row["original_x"], "y": row["original_y"]}
    props["reported_at"] = row["reported_at"].isoformat(sep=" ")
    props["closed_at"] = None if pd.isna(row["closed_at"]) else row["closed_at"].isoformat(sep=" ")
    # its own deadline, as a file gave it (none: the category's hours; NO_DEADLINE: never late)
    props["due_at"] = (None if pd.isna(row["due_at"]) or row["due_at"] >= NO_DEADLINE
                       else row["due_at"].isoformat(sep=" "))
    props["no_deadline"] = not pd.isna(row["due_at"]) and row["due_at"] >= NO_DEADLINE     # never late
    props["units"] = {lv: _none(row[lv]) for lv in levels}
    props["unassigned"] = any(v is None for v in props["units"].values()) if levels else True
    return {"type": "Feature", "id": int(row["id"]), "properties": props,
            "geometry": {"type": "Point", "coordinates": [row["lon"], row["lat"]]}}


_ORIGINAL = ("original_x", "original_y", "original_crs")


def _none(value: Any) -> Any:
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return None
    if isinstance(value, np.integer):
        return int(value)
    return value
