"""The service: the use cases the web pages, the API and the CLI share.

Each method reads as a recipe — read and check the input, compute on whole arrays,
store all or nothing — so the web layer stays a thin translation of HTTP.
"""
from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Sequence
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd

from .assignment import AssignmentIndex
from .boundaries import Layer, derive_parents, missing_parents, read_layer, staff_of, to_geojson
from .config import DEMO_DIR
from .errors import N_, InvalidInput, Message, NotFound, message
from .incidents import FileOptions, ParsedBatch, RowError, parse_records, read_incident_file
from .levels import ORDER, Level
from .storage import IncidentQuery, Store

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class LayerOptions:
    filename: str = "upload.geojson"
    crs: str | None = None
    code_field: str | None = None
    name_field: str | None = None
    parent_field: str | None = None
    author: str = ""
    note: str = ""


@dataclass
class LayerSummary:
    level: Level
    version: int
    count: int
    area_m2: float
    parent_source: str | None
    reassigned: int
    unassigned: int
    warnings: list[Message] = field(default_factory=list)


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

    def __init__(self, store: Store, *, timezone: str = "Asia/Shanghai") -> None:
        self.store = store
        self.tz = ZoneInfo(timezone)
        self._lock = threading.Lock()
        self._cache: tuple[dict[Level, Layer], AssignmentIndex] | None = None

    # -- boundaries ----------------------------------------------------------------------
    def import_layer(self, level: Level, data: bytes, options: LayerOptions = LayerOptions()) -> LayerSummary:
        """Read a boundary file, link it to the level above, store it as the level's new
        version and reassign every stored incident against it."""
        layer = read_layer(data, level=level, filename=options.filename, crs=options.crs,
                           code_field=options.code_field, name_field=options.name_field,
                           parent_field=options.parent_field)
        with self._lock:
            current = self.store.layers()
            layer = self._link_parent(layer, current)
            child = self._relinked_child(layer, current)
            candidate = {**current, layer.level: layer, **({child.level: child} if child else {})}
            ids, lon, lat = self.store.incident_points()
            units = AssignmentIndex(list(candidate.values())).assign(lon, lat)
            affected = {lv: (ids, codes) for lv, codes in units.items() if lv.depth >= layer.level.depth}
            version = self.store.save_layer(layer, author=options.author, note=options.note, assignments=affected,
                                            relinked={child.level: _parents(child)} if child else None)
        codes = units[layer.level]
        return LayerSummary(level=level, version=version, count=len(layer.units),
                            area_m2=float(layer.units["area_m2"].sum()), parent_source=layer.parent_source,
                            reassigned=len(ids), unassigned=int(sum(c is None for c in codes)),
                            warnings=layer.warnings)

    @staticmethod
    def _link_parent(layer: Layer, current: dict[Level, Layer]) -> Layer:
        parent = _nearest(current, layer.level, above=True)
        if parent is None:
            return layer
        if layer.parent_source == "field":
            problems = missing_parents(layer, parent)
            if problems:
                raise InvalidInput(message(N_("{count} unit(s) name a parent that does not exist; nothing "
                                              "was imported"), count=len(problems)), problems)
            return layer
        return derive_parents(layer, parent)

    @staticmethod
    def _relinked_child(layer: Layer, current: dict[Level, Layer]) -> Layer | None:
        """The level below, re-linked to ``layer`` when its parents were derived spatially (or never
        set, because it came first); one whose file named its parents is only checked (warnings)."""
        child = _nearest(current, layer.level, above=False)
        if child is None:
            return None
        if child.parent_source in (None, "spatial"):
            return derive_parents(child, layer)
        layer.warnings += missing_parents(child, layer)
        return None

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

    def layer(self, level: Level) -> Layer:
        layer = self.layers().get(level)
        if layer is None:
            raise NotFound(message(N_("no {level} layer has been uploaded yet"), level=level.value))
        return layer

    def layer_geojson(self, level: Level) -> dict[str, Any]:
        return to_geojson(self.layer(level))

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

    def incidents(self, query: IncidentQuery = IncidentQuery()) -> pd.DataFrame:
        return self.store.incidents(query)

    def incidents_geojson(self, query: IncidentQuery = IncidentQuery()) -> dict[str, Any]:
        frame = self.store.incidents(query)
        levels = [c for c in frame.columns if c in {lv.value for lv in ORDER}]
        features = [_incident_feature(row, levels) for row in frame.to_dict("records")]
        return {"type": "FeatureCollection", "features": features}

    # -- lookup --------------------------------------------------------------------------
    def lookup(self, lon: float, lat: float) -> list[dict[str, Any]]:
        """The units holding a point, deepest level first, each with its responsible staff."""
        if not (-180 <= lon <= 180 and -90 <= lat <= 90):
            raise InvalidInput(message(N_("lon={lon}, lat={lat} is not a WGS84 position; expected longitude "
                                          "-180..180 and latitude -90..90"), lon=lon, lat=lat))
        layers, index = self._current()
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


def _parents(layer: Layer) -> dict[str, str | None]:
    return dict(zip(layer.units["code"], layer.units["parent_code"]))


def _nearest(current: dict[Level, Layer], level: Level, *, above: bool) -> Layer | None:
    levels = [lv for lv in current if (lv.depth < level.depth if above else lv.depth > level.depth)]
    if not levels:
        return None
    return current[max(levels, key=lambda lv: lv.depth) if above else min(levels, key=lambda lv: lv.depth)]


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
