"""The service: the use cases the web pages, the API and the CLI share.

Each method reads as a recipe — read and check the input, compute on whole arrays,
store all or nothing — so the web layer stays a thin translation of HTTP.
"""
from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, replace
from datetime import datetime
from enum import Enum
from pathlib import Path
from typing import Any, Sequence
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd

from .assignment import AssignmentIndex
from .boundaries import Layer, ReadOptions, read_layer, staff_of, to_geojson
from .config import DEMO_DIR
from .coordinates import ServiceArea
from .errors import N_, Conflict, InvalidInput, NotFound, message, message_from_record, message_record
from .formats import Export, export_layer
from .incidents import FileOptions, ParsedBatch, RowError, parse_records, read_incident_file
from .levels import ORDER, Level
from .planning import Candidate, IncidentPoints, build_candidate
from .storage import IncidentQuery, Store, VersionInfo, VersionMeta, stale_base
from .validation import DEFAULT_TOLERANCE_M2, Problem, Report, Severity, check_coverage
from .versions import LayerDiff, count_moves, diff_layers

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class LayerOptions(ReadOptions):
    """How to read an upload (the reader's options) and who saves it.  ``base_version`` is the
    version the planner's work started from: None when not said (whatever is current), 0 when the
    level had none.  ``service_area`` is the deployment's, whatever is given here."""

    filename: str = "upload.geojson"
    tolerance_m2: float | None = None
    author: str = ""
    note: str = ""
    base_version: int | None = None


class SaveMode(str, Enum):
    PREVIEW = "preview"     # report and diff only; nothing stored
    DRAFT = "draft"         # stored as a draft, committed later
    COMMIT = "commit"       # stored as the new current version


@dataclass
class LayerResult:
    """What saving (or previewing) a version of a level did or would do."""

    level: Level
    status: str                  # "preview", "draft" or "committed"
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

    @property
    def unassigned(self) -> int:
        return self.reassigned - self.assigned


@dataclass
class ReportItem:
    row: int
    id: int
    created: bool
    units: dict[str, str | None]


@dataclass
class ReportResult:
    items: list[ReportItem]
    errors: list[RowError]

    @property
    def created(self) -> int:
        return sum(item.created for item in self.items)


class Gridmap:
    """One deployment's boundaries and incidents, over a :class:`Store`."""

    def __init__(self, store: Store, *, timezone: str = "Asia/Shanghai", service_area: ServiceArea | None = None,
                 tolerance_m2: float = DEFAULT_TOLERANCE_M2) -> None:
        self.store = store
        self.service_area = service_area
        self.tolerance_m2 = tolerance_m2
        self.tz = ZoneInfo(timezone)
        self._lock = threading.Lock()
        self._cache: tuple[dict[Level, Layer], AssignmentIndex] | None = None

    # -- boundaries ----------------------------------------------------------------------
    def save_layer(self, level: Level, data: bytes, options: LayerOptions = LayerOptions(), *,
                   mode: SaveMode = SaveMode.COMMIT) -> LayerResult:
        """Read a boundary file and preview it, save it as a draft, or commit it as the level's
        new version (reassigning every stored incident).  Errors in the validation report
        refuse a draft or a commit with the whole report; nothing is stored then."""
        layer = read_layer(data, level=level, filename=options.filename,
                           options=replace(options, service_area=self.service_area))
        return self._save(layer, options, mode)

    def import_layer(self, level: Level, data: bytes, options: LayerOptions = LayerOptions()) -> LayerResult:
        """Commit a boundary file as the level's new version (the CLI's and the demo's path)."""
        return self.save_layer(level, data, options, mode=SaveMode.COMMIT)

    def restore(self, level: Level, version: int, options: LayerOptions = LayerOptions(), *,
                mode: SaveMode = SaveMode.COMMIT) -> LayerResult:
        """Save an older version's units again, as a new version (history is never rewritten)."""
        old = self.store.layer_version(level, version)
        layer = replace(old, version=None, problems=[], units=old.units.reset_index(drop=True))
        # the history shows "restored from vN" in the reader's language from restored_from
        return self._save(layer, options, mode, restored_from=version)

    def commit_draft(self, level: Level, version: int, *, author: str = "") -> LayerResult:
        """Commit a stored draft, checked again against what is current now."""
        with self._lock:
            meta = self.store.version_meta(level, version)
            if meta.status != "draft":
                raise Conflict(message(N_("{level} version {version} is already committed"),
                                       level=level.title, version=version))
            self._check_base(level, meta.based_on)
            layer = self.store.layer_version(level, version)
            candidate = self._candidate(replace(layer, problems=_problems(meta.problems)), self.tolerance_m2)
            _refuse_errors(candidate.report)
            self.store.commit_draft(level, version, author=author or meta.author, commit=candidate.commit)
        return self._result(candidate, "committed", version, meta.based_on)

    def _save(self, layer: Layer, options: LayerOptions, mode: SaveMode, *,
              restored_from: int | None = None) -> LayerResult:
        with self._lock:
            base = self._check_base(layer.level, options.base_version)
            candidate = self._candidate(layer, options.tolerance_m2)
            if mode is SaveMode.PREVIEW:
                return self._result(candidate, "preview", None, base)
            _refuse_errors(candidate.report)
            info = VersionInfo(author=options.author, note=options.note, based_on=base, restored_from=restored_from,
                               problems=tuple(_record(p) for p in layer.problems))
            version = self.store.save_layer(candidate.layer, info,
                                            candidate.commit if mode is SaveMode.COMMIT else None)
        return self._result(candidate, "committed" if mode is SaveMode.COMMIT else "draft", version, base)

    def _check_base(self, level: Level, base_version: int | None) -> int | None:
        """The base version of a save: the one given, which must still be current, or the current one."""
        current = self.store.versions().get(level)
        if base_version is None:
            return current
        based_on = base_version or None
        if based_on != current:
            raise stale_base(level, based_on, self.store.version_meta(level, current) if current else None)
        return based_on

    def _candidate(self, layer: Layer, tolerance_m2: float | None) -> Candidate:
        current = self.layers()
        ids, lon, lat = self.store.incident_points()
        head = current.get(layer.level)
        points = IncidentPoints(ids, lon, lat, self.store.assignments(layer.level, head.version) if head else None)
        return build_candidate(layer, current, points,
                               tolerance_m2=self.tolerance_m2 if tolerance_m2 is None else tolerance_m2)

    @staticmethod
    def _result(candidate: Candidate, status: str, version: int | None, based_on: int | None) -> LayerResult:
        units = candidate.layer.units
        return LayerResult(level=candidate.layer.level, status=status, version=version, based_on=based_on,
                           count=len(units), area_m2=float(units["area_m2"].sum()),
                           parent_source=candidate.layer.parent_source, report=candidate.report,
                           diff=candidate.diff, assigned=candidate.commit.assigned, layer=candidate.layer,
                           reassigned=len(candidate.commit.units[candidate.layer.level][0]))

    # -- versions ------------------------------------------------------------------------
    def history(self, level: Level) -> list[VersionMeta]:
        return self.store.history(level)

    def version(self, level: Level, version: int) -> VersionView:
        """One stored version with its report, and its diff: a draft against the current
        version (as committing it would do), a committed one against the version it replaced."""
        meta = self.store.version_meta(level, version)
        layer = replace(self.store.layer_version(level, version), problems=_problems(meta.problems))
        if meta.status == "draft":
            candidate = self._candidate(layer, self.tolerance_m2)
            return VersionView(meta, candidate.layer, candidate.report, candidate.diff, self.layers().get(level))
        earlier = [m.version for m in self.store.history(level) if m.status == "committed" and m.version < version]
        before = self.store.layer_version(level, earlier[0]) if earlier else None
        report = Report(list(layer.problems))
        report.add(check_coverage(layer, tolerance_m2=self.tolerance_m2))
        return VersionView(meta, layer, report, self._diff(before, layer, committed=True), before)

    def compare(self, level: Level, old: int, new: int) -> VersionView:
        """Version ``new`` against version ``old``: units, and incident moves from their stored
        assignments when ``new`` is committed.  The view has no report."""
        meta = self.store.version_meta(level, new)
        before, after = self.store.layer_version(level, old), self.store.layer_version(level, new)
        return VersionView(meta, after, None, self._diff(before, after, committed=meta.status == "committed"), before)

    def _diff(self, before: Layer | None, after: Layer, *, committed: bool) -> LayerDiff:
        diff = diff_layers(before, after)
        if committed:
            old = self.store.assignments(after.level, before.version) if before is not None else None
            diff.moves = count_moves(old, self.store.assignments(after.level, after.version))
        return diff

    def layer_at(self, level: Level, version: int | None = None) -> Layer:
        """A level as of one of its versions (the current one when None)."""
        return self.layer(level) if version is None else self.store.layer_version(level, version)

    def export(self, level: Level, version: int | None, fmt: str) -> Export:
        return export_layer(self.layer_at(level, version), fmt)

    def layers(self) -> dict[Level, Layer]:
        """The current layers, read from the store only when a version has changed."""
        return self._current()[0]

    def index(self) -> AssignmentIndex:
        return self._current()[1]

    def _current(self) -> tuple[dict[Level, Layer], AssignmentIndex]:
        """Layers and their index, cached and keyed by the stored versions, so a boundary
        upload by this or any other process is seen on the next call, and nothing is reloaded
        (geometries decoded, trees built) while the versions stay the same."""
        cached = self._cache
        if cached is None or self.store.versions() != {lv: lay.version for lv, lay in cached[0].items()}:
            layers = self.store.layers()
            cached = self._cache = (layers, AssignmentIndex(list(layers.values())))
        return cached

    def deepest_level(self) -> Level:
        """The smallest level that has a version (what ``version=`` means without ``level=``)."""
        return max(self.layers(), key=lambda lv: lv.depth, default=Level.MICRO_GRID)

    def layer(self, level: Level) -> Layer:
        layer = self.layers().get(level)
        if layer is None:
            raise NotFound(message(N_("no {level} layer has been uploaded yet"), level=level.title))
        return layer

    def layer_geojson(self, level: Level, version: int | None = None) -> dict[str, Any]:
        return to_geojson(self.layer_at(level, version))

    # -- incidents -----------------------------------------------------------------------
    def report(self, records: Sequence[Any]) -> ReportResult:
        """Store incidents sent as JSON objects; errors name the list index."""
        return self._store_batch(parse_records(records, tz=self.tz, now=self._now()))

    def import_incidents(self, data: bytes, *, filename: str, options: FileOptions = FileOptions()) -> ReportResult:
        """Store the good rows of a CSV/GeoJSON file and report each bad row by number."""
        batch = read_incident_file(data, filename=filename, options=options, tz=self.tz, now=self._now())
        return self._store_batch(batch)

    def _store_batch(self, batch: ParsedBatch) -> ReportResult:
        if not batch.drafts:
            return ReportResult(items=[], errors=batch.errors)
        drafts = [d for _, d in batch.drafts]
        with self._lock:
            units = self.index().assign(np.array([d.lon for d in drafts]), np.array([d.lat for d in drafts]))
            stored = self.store.add_incidents(drafts, units)
        items, errors = [], list(batch.errors)
        for i, ((row, draft), outcome) in enumerate(zip(batch.drafts, stored)):
            if outcome.outcome == "conflict":
                errors.append(RowError(row, (message(
                    N_("external id {external_id!r} is already incident {id}, with a different category, "
                       "position or time; this row was not stored"), external_id=draft.external_id,
                    id=outcome.id),)))
            else:
                items.append(ReportItem(row=row, id=outcome.id, created=outcome.outcome == "created",
                                        units={lv.value: units[lv][i] for lv in units}))
        self._use_stored_units(items)
        errors.sort(key=lambda e: e.row)
        log.info("stored %d incidents (%d already known, %d refused)", sum(i.created for i in items),
                 sum(not i.created for i in items), len(errors))
        return ReportResult(items=items, errors=errors)

    def _use_stored_units(self, items: list[ReportItem]) -> None:
        """An incident that was already stored keeps (and reports) the units it has."""
        known = [item for item in items if not item.created]
        if not known:
            return
        frame = self.store.incidents(IncidentQuery(ids=tuple({i.id for i in known}))).set_index("id")
        for item in known:
            item.units = {lv: _none(frame.at[item.id, lv]) for lv in item.units if lv in frame.columns}

    def incidents(self, query: IncidentQuery = IncidentQuery(), *,
                  at: dict[Level, int] | None = None) -> pd.DataFrame:
        return self.store.incidents(query, at=at)

    def incidents_geojson(self, query: IncidentQuery = IncidentQuery()) -> dict[str, Any]:
        frame = self.store.incidents(query)
        levels = [c for c in frame.columns if c in {lv.value for lv in ORDER}]
        features = [_incident_feature(row, levels) for row in frame.to_dict("records")]
        return {"type": "FeatureCollection", "features": features}

    # -- lookup --------------------------------------------------------------------------
    def lookup(self, lon: float, lat: float, *, level: Level | None = None,
               version: int | None = None) -> list[dict[str, Any]]:
        """The units holding a point, deepest level first, each with its responsible staff —
        as of ``version`` of ``level`` (default: the deepest level) when a version is given."""
        if not (-180 <= lon <= 180 and -90 <= lat <= 90):
            raise InvalidInput(message(N_("lon={lon}, lat={lat} is not a WGS84 position; expected longitude "
                                          "-180..180 and latitude -90..90"), lon=lon, lat=lat))
        layers, index = self._current()
        if version is not None:
            level = level or self.deepest_level()
            layers = {**layers, level: self.store.layer_version(level, version)}
            index = AssignmentIndex(list(layers.values()))
        codes = index.assign(np.array([lon]), np.array([lat]))
        found = []
        for level in sorted(codes, key=lambda lv: -lv.depth):
            code = codes[level][0]
            if code is not None:
                found.append(_unit_info(layers[level], code))
        return found

    def count_summary(self) -> str:
        layers = self.store.layer_meta()
        parts = [f"{m.level.value} v{m.version} ({m.unit_count} units)" for m in layers]
        return ", ".join(parts + [f"{self.store.count_incidents()} incidents"])

    # -- demo ----------------------------------------------------------------------------
    def load_demo(self, directory: Path = DEMO_DIR) -> dict[str, int]:
        """Load the demo community through the same importers users use."""
        counts: dict[str, int] = {}
        for level in (Level.GRID, Level.MICRO_GRID):
            path = directory / f"{level.value}.geojson"
            summary = self.import_layer(level, path.read_bytes(), LayerOptions(
                filename=path.name, author="demo", note="demo data"))
            counts[level.value] = summary.count
        path = directory / "incidents.csv"
        result = self.import_incidents(path.read_bytes(), filename=path.name)
        counts["incidents"] = result.created
        return counts

    def _now(self) -> datetime:
        return datetime.now(self.tz).replace(tzinfo=None, microsecond=0)


@dataclass
class VersionView:
    meta: VersionMeta
    layer: Layer
    report: Report | None      # None for a comparison of two stored versions
    diff: LayerDiff
    before: Layer | None       # what the diff compares against


def _refuse_errors(report: Report) -> None:
    if not report.ok:
        raise InvalidInput(message(N_("the boundaries have {count} error(s); nothing was saved"),
                                   count=len(report.errors)), [p.message for p in report.errors], report=report)


def _record(problem: Problem) -> dict[str, Any]:
    """A read-time problem as stored with a draft (its drawing geometry is not kept)."""
    return {"kind": problem.kind, "severity": problem.severity.value, "message": message_record(problem.message),
            "feature": problem.feature, "code": problem.code, "codes": list(problem.codes),
            "location": list(problem.location) if problem.location else None, "size_m2": problem.size_m2}


def _problems(records: Sequence[dict[str, Any]]) -> list[Problem]:
    return [Problem(kind=r["kind"], severity=Severity(r["severity"]), message=message_from_record(r["message"]),
                    feature=r["feature"], code=r["code"], codes=tuple(r["codes"]),
                    location=tuple(r["location"]) if r["location"] else None, size_m2=r["size_m2"])
            for r in records]


def _unit_info(layer: Layer, code: str) -> dict[str, Any]:
    row = layer.units.loc[layer.units["code"] == code].iloc[0]
    return {"level": layer.level.value, "code": code, "name": row["name"], "parent_code": row["parent_code"],
            "area_m2": round(float(row["area_m2"]), 1), **staff_of(row["properties"]),
            "properties": row["properties"], "version": layer.version}


def _incident_feature(row: dict[str, Any], levels: list[str]) -> dict[str, Any]:
    props = {k: _none(v) for k, v in row.items() if k not in ("lon", "lat") and k not in levels}
    props["reported_at"] = row["reported_at"].isoformat(sep=" ")
    props["units"] = {lv: _none(row[lv]) for lv in levels}
    props["unassigned"] = any(v is None for v in props["units"].values()) if levels else True
    return {"type": "Feature", "id": int(row["id"]), "properties": props,
            "geometry": {"type": "Point", "coordinates": [row["lon"], row["lat"]]}}


def _none(value: Any) -> Any:
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return None
    if isinstance(value, np.integer):
        return int(value)
    return value
