"""Exports for analysts: incidents and units as GeoParquet, for geopandas, DuckDB, QGIS and Dask.

GeoParquet (geoparquet.org) is Parquet with a ``geo`` entry in the file's metadata naming the
geometry column (WKB), its geometry types and its CRS.  These files say version 1.0.0, the one
every GeoParquet reader knows (GDAL 3.5 and later, so QGIS; geopandas; DuckDB); they use nothing
1.1.0 added.  The CRS is EPSG:4326 written out as PROJJSON rather than left to the spec's
OGC:CRS84 default, so no reader has to guess; coordinates are longitude first, as WKB always is
in GeoParquet whatever the CRS's axis order says.

Incidents leave the store a page at a time (:meth:`Store.incident_page`, by id) and go into the
file as a row group per page, so memory stays flat at a million incidents.  With
``partition_rows`` they go into a folder of files (``part-00000.parquet`` …), each a GeoParquet
file of its own, which ``dask_geopandas.read_parquet(folder)`` reads as one frame of partitions
(:mod:`gridmap.distributed` reads the incidents that way).  Report times are the wall-clock times
the store keeps (the deployment's zone, named in the file's ``gridmap`` metadata with the versions
the unit columns come from).  A file or folder appears only when complete: it is written beside
its place and moved there at the end.
"""
from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Mapping

import geopandas as gpd
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from pyproj import CRS

from .errors import N_, Conflict, InvalidInput, message
from .layer import Layer
from .levels import ORDER, Level
from .storage import IncidentQuery, Store

log = logging.getLogger(__name__)

GEOPARQUET_VERSION = "1.0.0"
#: Incidents read from the store, and written as one row group, at a time.
PAGE = 50_000
#: A folder export's file names: part-00000.parquet, part-00001.parquet, …
PART = "part-{:05d}.parquet"

_TEXT, _TIME = pa.string(), pa.timestamp("us")
#: The incident columns before the unit columns (one per level, the unit's code) and the geometry.
INCIDENT_FIELDS = (pa.field("id", pa.int64(), nullable=False), pa.field("external_id", _TEXT),
                   pa.field("category", _TEXT), pa.field("category_raw", _TEXT), pa.field("status", _TEXT),
                   pa.field("source", _TEXT), pa.field("description", _TEXT), pa.field("reported_at", _TIME),
                   pa.field("closed_at", _TIME), pa.field("due_at", _TIME), pa.field("resolution", _TEXT),
                   pa.field("rating", pa.int32()), pa.field("escalation", pa.int32()))
GEOMETRY = pa.field("geometry", pa.binary(), nullable=False)
_WKB_POINT = np.dtype([("order", "u1"), ("kind", "<u4"), ("x", "<f8"), ("y", "<f8")])   # packed: 21 bytes


@dataclass(frozen=True)
class Written:
    """What an export wrote: how many rows, into which files, and the versions its unit columns
    come from."""

    rows: int
    files: list[Path]
    versions: dict[Level, int] = field(default_factory=dict)


def geo_metadata(geometry_types: list[str]) -> dict[str, Any]:
    """The ``geo`` metadata of a file whose ``geometry`` column holds WKB in EPSG:4326."""
    return {"version": GEOPARQUET_VERSION, "primary_column": "geometry",
            "columns": {"geometry": {"encoding": "WKB", "geometry_types": geometry_types,
                                     "crs": CRS.from_epsg(4326).to_json_dict()}}}


#: What a reassignment on a cluster needs of each incident: its id and position.
POINT_SCHEMA = pa.schema([INCIDENT_FIELDS[0], GEOMETRY], metadata={"geo": json.dumps(geo_metadata(["Point"]))})


def incident_schema(levels: Iterable[Level], **metadata: Any) -> pa.Schema:
    """The incident export's columns, a unit column per level in ``levels`` (largest first), with
    the GeoParquet metadata and ``metadata`` under the ``gridmap`` key."""
    units = [pa.field(level.value, _TEXT) for level in ORDER if level in set(levels)]
    return pa.schema([*INCIDENT_FIELDS, *units, GEOMETRY], metadata={
        "geo": json.dumps(geo_metadata(["Point"])), "gridmap": json.dumps(metadata, ensure_ascii=False)})


def export_incidents(store: Store, out: Path, query: IncidentQuery = IncidentQuery(), *,
                     partition_rows: int | None = None, page: int = PAGE, timezone: str = "") -> Written:
    """Write the incidents matching ``query`` as GeoParquet: one file, or a folder of files of at
    most ``partition_rows`` rows.  Conflict, with nothing written, when a level's version changes
    meanwhile (the unit columns would mix two versions)."""
    versions = store.versions()
    schema = incident_schema(versions, versions={lv.value: v for lv, v in versions.items()}, timezone=timezone)
    pages = (incident_table(frame, schema) for frame in incident_pages(store, query, page=page))
    written = write_geoparquet(pages, out, schema, partition_rows=partition_rows,
                               check=lambda: _same_versions(store, versions))
    log.info("exported %d incidents into %d file(s)", written.rows, len(written.files))
    return Written(written.rows, written.files, versions)


def export_points(store: Store, out: Path, *, partition_rows: int, page: int = 200_000) -> Written:
    """Every stored incident's id and position, as a folder of GeoParquet files of at most
    ``partition_rows`` rows: the input of a reassignment on a cluster."""
    return write_geoparquet(_point_pages(store, page), out, POINT_SCHEMA, partition_rows=partition_rows)


def incident_pages(store: Store, query: IncidentQuery, *, page: int = PAGE) -> Iterator[pd.DataFrame]:
    """The matching incidents, ``page`` at a time, by id (never all of them at once)."""
    after = 0
    while len(frame := store.incident_page(query, after=after, limit=page)):
        yield frame
        after = int(frame["id"].iloc[-1])


def _point_pages(store: Store, page: int) -> Iterator[pa.Table]:
    after = 0
    while len((columns := store.incident_table(after=after, limit=page))["id"]):
        yield point_table(columns["id"], columns["lon"], columns["lat"])
        after = int(columns["id"][-1])


def incident_table(frame: pd.DataFrame, schema: pa.Schema) -> pa.Table:
    """A page of :meth:`Store.incident_page` as the export's columns (a level the page lacks: null)."""
    columns = [_column(frame, f) for f in schema if f.name != GEOMETRY.name]
    return pa.Table.from_arrays([*columns, points_wkb(frame["lon"].to_numpy(), frame["lat"].to_numpy())],
                                schema=schema)


def point_table(ids: np.ndarray, lon: np.ndarray, lat: np.ndarray) -> pa.Table:
    """Incidents' ids and positions in :data:`POINT_SCHEMA`."""
    return pa.Table.from_arrays([pa.array(np.asarray(ids, dtype=np.int64)), points_wkb(lon, lat)],
                                schema=POINT_SCHEMA)


def points_wkb(lon: np.ndarray, lat: np.ndarray) -> pa.Array:
    """Points as little-endian WKB (21 bytes each: byte order, type 1, x, y), laid out in numpy:
    ten times faster than shapely.to_wkb and pyarrow over a million points, and the same bytes."""
    records = np.empty(len(lon), dtype=_WKB_POINT)
    records["order"], records["kind"], records["x"], records["y"] = 1, 1, lon, lat
    offsets = np.arange(len(lon) + 1, dtype=np.int64) * _WKB_POINT.itemsize
    return pa.Array.from_buffers(pa.large_binary(), len(lon), [None, pa.py_buffer(offsets),
                                                               pa.py_buffer(records.view(np.uint8))]).cast(pa.binary())


def _column(frame: pd.DataFrame, target: pa.Field) -> pa.Array:
    if target.name not in frame.columns:
        return pa.nulls(len(frame), target.type)
    return pa.array(frame[target.name].to_numpy(), type=target.type, from_pandas=True)


def _same_versions(store: Store, versions: dict[Level, int]) -> None:
    now = store.versions()
    if now != versions:
        raise Conflict(message(N_("the boundaries changed while the incidents were being exported ({before} "
                                  "then, {after} now); nothing was written: export them again"),
                               before=versions_text(versions), after=versions_text(now)))


def versions_text(versions: Mapping[Level, int | None]) -> str:
    """Versions as people read them: ``grid v2, micro_grid v5``."""
    return ", ".join(f"{lv.value} v{v}" for lv, v in versions.items()) or "no layers"


def export_units(layer: Layer, out: Path) -> Written:
    """Write a layer version's units as GeoParquet: code, name, parent_code, area_m2 (m²),
    properties (the free properties as JSON text) and the outline in EPSG:4326."""
    frame = units_frame(layer)
    _check_target(out, partitioned=False)
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=f".{out.name}.", dir=out.parent) as staging:
        frame.to_parquet(Path(staging) / "out", index=False, schema_version=GEOPARQUET_VERSION, compression="zstd")
        os.replace(Path(staging) / "out", out)
    log.info("exported %d %s units of version %s", len(frame), layer.level.value, layer.version)
    return Written(len(frame), [out], {layer.level: layer.version} if layer.version is not None else {})


def units_frame(layer: Layer) -> gpd.GeoDataFrame:
    """A layer's units as the unit export's columns, in the layer's order."""
    units = layer.units
    text = lambda column: pd.Series([None if pd.isna(v) else str(v) for v in units[column]], dtype=object)
    properties = [json.dumps(p if isinstance(p, dict) else {}, ensure_ascii=False) for p in units["properties"]]
    geometry = units.geometry.set_crs(4326) if units.crs is None else units.geometry.to_crs(4326)
    return gpd.GeoDataFrame({"code": text("code"), "name": text("name"), "parent_code": text("parent_code"),
                             "area_m2": units["area_m2"].to_numpy(dtype=float),
                             "properties": pd.Series(properties, dtype=object)},
                            geometry=gpd.GeoSeries(geometry.to_numpy(), crs=4326))


# -- writing ---------------------------------------------------------------------------------------

def write_geoparquet(tables: Iterable[pa.Table], out: Path, schema: pa.Schema, *, partition_rows: int | None = None,
                     check: Callable[[], None] | None = None) -> Written:
    """Write ``tables`` (each a row group) into the GeoParquet file ``out``, or, with
    ``partition_rows``, into the folder ``out`` as files of at most that many rows.  An earlier
    export at ``out`` is replaced; anything else there is refused.  ``check`` runs once every
    row is written, before the result is moved into place: it may refuse the whole export."""
    _check_target(out, partitioned=partition_rows is not None)
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        target = staging / "out"
        with _Parts(target, schema, partition_rows) as parts:
            for table in tables:
                parts.write(table)
        if check is not None:
            check()
        files = _move_into_place(target, out, [p.relative_to(target) for p in parts.files],
                                 partitioned=partition_rows is not None)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return Written(parts.rows, files)


class _Parts:
    """Row groups into one file, or into numbered files of at most ``limit`` rows each (the last
    one possibly shorter; one empty file when there are no rows, so the export still reads)."""

    def __init__(self, target: Path, schema: pa.Schema, limit: int | None) -> None:
        self.target, self.schema, self.limit = target, schema, limit
        self.files: list[Path] = []
        self.rows = 0
        self._writer: pq.ParquetWriter | None = None
        self._in_file = 0
        if limit is not None:
            target.mkdir()

    def __enter__(self) -> _Parts:
        return self

    def __exit__(self, *exc: object) -> None:
        if not self.files:
            self._open()
        self._close()

    def write(self, table: pa.Table) -> None:
        while table.num_rows:
            if self._writer is None or (self.limit is not None and self._in_file >= self.limit):
                self._close()
                self._open()
            room = table.num_rows if self.limit is None else self.limit - self._in_file
            assert self._writer is not None
            self._writer.write_table(table.slice(0, room))
            taken = min(room, table.num_rows)
            self._in_file, self.rows, table = self._in_file + taken, self.rows + taken, table.slice(taken)

    def _open(self) -> None:
        path = self.target if self.limit is None else self.target / PART.format(len(self.files))
        self._writer = pq.ParquetWriter(path, self.schema, compression="zstd")
        self.files.append(path)
        self._in_file = 0

    def _close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None


def _check_target(out: Path, *, partitioned: bool) -> None:
    """An export replaces a file, or a folder holding only an earlier export's parts, and nothing else."""
    if not partitioned and out.is_dir():
        raise InvalidInput(message(N_("{path} is a folder; expected the name of a .parquet file to write (or "
                                      "{option} to write a folder of parts)"), path=str(out),
                                   option="partition_rows"))
    if partitioned and out.exists():
        others = [p.name for p in out.iterdir() if not _is_part(p.name)] if out.is_dir() else [out.name]
        if others:
            raise InvalidInput(message(N_("{path} holds other files than an earlier export's parts ({names}); "
                                          "expected a new folder, or an earlier export's folder to replace"),
                                       path=str(out), names=", ".join(sorted(others)[:5])))


def _is_part(name: str) -> bool:
    return name.startswith("part-") and name.endswith(".parquet") and name[5:-8].isdigit()


def _move_into_place(target: Path, out: Path, names: list[Path], *, partitioned: bool) -> list[Path]:
    if partitioned and out.is_dir():
        shutil.rmtree(out)
    os.replace(target, out)
    return [out / name for name in names] if partitioned else [out]
