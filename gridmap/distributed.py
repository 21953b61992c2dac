"""Reassignment: every stored incident's unit under the current version of a level, worked out
again and written back — in this process, or on a Dask cluster for histories that outgrow one machine.

Both engines apply the service's own index: :class:`AssignmentIndex` over every current layer,
as :meth:`gridmap.service.Gridmap._current` builds it (the tie-break on a shared edge depends on
the levels above), so each incident gets the unit a commit would give it now.  The local engine
reads the incidents a page at a time and assigns them here.  The dask engine exports them (id and
position) as a folder of GeoParquet files (:func:`gridmap.exports.export_points`), ships the
current layers to the workers once (as the unit export's GeoParquet bytes; each worker process
builds the index once and keeps it), reads the folder with ``dask_geopandas.read_parquet`` and
assigns it partition by partition with ``map_partitions``; the results come back as unit
positions, partition by partition.  Either way only the incidents whose stored unit differs are
written back, in batches, inside one write transaction that first checks that no level's version
changed meanwhile (the computation itself holds no lock: reports go on).

Running it on a cluster of several machines::

    dask scheduler --host 10.0.0.1 --port 8786 --no-dashboard          # one machine
    dask worker tcp://10.0.0.1:8786 --nworkers 4 --nthreads 1           # each worker machine
    python -m gridmap reassign --level micro_grid --engine dask \\
        --scheduler tcp://10.0.0.1:8786 --workdir /mnt/shared/gridmap-reassign

* every worker needs gridmap, the same version, installed with its requirements: a task is
  ``gridmap.distributed._assign_partition``, imported on the worker;
* every worker needs read access to ``--workdir`` at the same path: a shared filesystem (NFS,
  CephFS) mounted alike on all machines; the client writes the export there and removes it after;
* the store is read and written only by the client (the process running ``gridmap reassign``,
  with ``GRIDMAP_DATABASE_URL``); workers never connect to the database;
* without ``--scheduler`` a LocalCluster of 2 worker processes starts on this machine, with no
  dashboard (intranets allow no more than loopback).
"""
from __future__ import annotations

import hashlib
import io
import logging
import shutil
import tempfile
import threading
import time
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Iterator, Mapping

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely

from .assignment import AssignmentIndex
from .errors import N_, Conflict, message
from .exports import GEOPARQUET_VERSION, export_points, units_frame, versions_text
from .layer import Layer
from .levels import ORDER, Level
from .options import parse_choice
from .storage import Store

if TYPE_CHECKING:
    from distributed import Client

    from .service import Gridmap

log = logging.getLogger(__name__)

ENGINES = ("local", "dask")
#: Incidents per GeoParquet file of the dask engine's export (a partition of the work).
PARTITION_ROWS = 200_000
#: Incidents the local engine reads and assigns at a time.
PAGE = 200_000
#: Incidents per ``Writer.set_units`` call.
BATCH = 100_000


@dataclass(frozen=True)
class Reassignment:
    """What a reassignment found: every incident read (by id) with its unit under the level's
    current version (None: outside every unit), how many had another unit stored (and were
    written), and how long each stage took."""

    level: Level
    version: int
    ids: np.ndarray
    codes: np.ndarray
    changed: int
    seconds: dict[str, float]

    @property
    def read(self) -> int:
        return len(self.ids)


def reassign(service: Gridmap, level: Level, *, engine: str = "local", scheduler: str | None = None,
             partition_rows: int = PARTITION_ROWS, workdir: Path | None = None, batch: int = BATCH) -> Reassignment:
    """Recompute every stored incident's unit under ``level``'s current version with ``engine``
    ("local" or "dask"; ``scheduler``: a cluster's address, else a LocalCluster) and write back the
    ones that differ.  NotFound when the level has no version; Conflict, with nothing written,
    when a version changed meanwhile."""
    parse_choice(engine, "engine", ENGINES)
    layers = service.layers()
    version = service.layer(level).version
    assert version is not None, "a stored layer has a version"
    seconds: dict[str, float] = {}
    if engine == "local":
        ids, codes = _assign_here(service, level, seconds)
    else:
        ids, codes = _assign_on_dask(service.store, layers, level, seconds, scheduler=scheduler,
                                     partition_rows=partition_rows, workdir=workdir)
    with _timed(seconds, "compare"):
        changed = _changed(service.store.assignments(level, version), ids, codes)
    with _timed(seconds, "write"):
        _write_back(service.store, level, {lv: layer.version for lv, layer in layers.items()},
                    ids[changed], codes[changed], batch=batch)
    log.info("reassigned %d incidents under %s v%d (%s engine): %d changed unit; %s", len(ids), level.value,
             version, engine, int(changed.sum()), ", ".join(f"{k} {v:.2f} s" for k, v in seconds.items()))
    return Reassignment(level, version, ids, codes, int(changed.sum()), seconds)


def _assign_here(service: Gridmap, level: Level, seconds: dict[str, float]) -> tuple[np.ndarray, np.ndarray]:
    """The local engine: the service's index over the incidents, a page at a time."""
    index = service.index()
    ids, codes = [], []
    after = 0
    while True:
        with _timed(seconds, "read"):
            page = service.store.incident_table(after=after, limit=PAGE)
        if not len(page["id"]):
            break
        with _timed(seconds, "assign"):
            codes.append(index.assign(page["lon"], page["lat"])[level])
        ids.append(page["id"])
        after = int(page["id"][-1])
    return _joined(ids, np.int64), _joined(codes, object)


def _assign_on_dask(store: Store, layers: Mapping[Level, Layer], level: Level, seconds: dict[str, float], *,
                    scheduler: str | None, partition_rows: int,
                    workdir: Path | None) -> tuple[np.ndarray, np.ndarray]:
    """The dask engine: export the points, then assign them on the cluster."""
    with _workspace(workdir) as folder, ExitStack() as stack:
        with _timed(seconds, "export"):
            export_points(store, folder / "points", partition_rows=partition_rows)
        with _timed(seconds, "cluster"):
            client = stack.enter_context(dask_client(scheduler))
        with _timed(seconds, "assign"):
            ids, units = assign_partitions(client, folder / "points", layers)
    return ids, units[level]


@contextmanager
def dask_client(scheduler: str | None = None) -> Iterator[Client]:
    """A client of the cluster at ``scheduler`` (``tcp://host:8786``) or, without one, of a
    LocalCluster of 2 single-threaded worker processes here, without a dashboard."""
    from distributed import Client, LocalCluster
    with ExitStack() as stack:
        if scheduler:
            client = stack.enter_context(Client(scheduler))
        else:
            # no dashboard; the scheduler's own HTTP routes (health, metrics) on a free loopback port,
            # not 8787, which a second cluster on the machine would find taken (and warn)
            cluster = stack.enter_context(LocalCluster(
                n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1", dashboard_address=None,
                scheduler_kwargs={"dashboard_address": "127.0.0.1:0"}))
            client = stack.enter_context(Client(cluster))
        yield client


def assign_partitions(client: Client, points: Path, layers: Mapping[Level, Layer]) -> tuple[np.ndarray,
                                                                                              dict[Level, np.ndarray]]:
    """Assign every point of a GeoParquet folder (``id``, ``geometry``) on the cluster with the index
    of ``layers``: the ids, sorted, and each level's unit codes for them."""
    import dask_geopandas
    from distributed import as_completed
    shipped = client.scatter(ShippedLayers.of(layers), broadcast=True)
    levels = [lv for lv in ORDER if lv in layers]
    meta = pd.DataFrame({"id": pd.Series(dtype=np.int64), **{lv.value: pd.Series(dtype=np.int32) for lv in levels}})
    parts = dask_geopandas.read_parquet(str(points)).map_partitions(_assign_partition, shipped, meta=meta)
    ids: list[np.ndarray] = []
    positions: dict[Level, list[np.ndarray]] = {lv: [] for lv in levels}
    for future in as_completed(client.compute(parts.to_delayed())):
        part = future.result()
        future.release()
        ids.append(part["id"].to_numpy())
        for lv in levels:
            positions[lv].append(part[lv.value].to_numpy())
    order = np.argsort(_joined(ids, np.int64), kind="stable")
    return _joined(ids, np.int64)[order], {lv: _codes(layers[lv], _joined(positions[lv], np.int32)[order])
                                           for lv in levels}


@dataclass(frozen=True)
class ShippedLayers:
    """The current layers as the workers get them: each level's units as the unit export's
    GeoParquet bytes, and a digest of them all (a worker builds one index per digest)."""

    token: str
    parts: tuple[tuple[str, bytes], ...]        # (level, GeoParquet bytes)

    @classmethod
    def of(cls, layers: Mapping[Level, Layer]) -> ShippedLayers:
        parts = tuple((lv.value, _geoparquet_bytes(layers[lv])) for lv in ORDER if lv in layers)
        digest = hashlib.sha256()
        for name, data in parts:
            digest.update(name.encode() + b"\0" + data)
        return cls(digest.hexdigest(), parts)

    def layers(self) -> list[Layer]:
        """The layers back, with what the index reads of them: code, parent_code (None for none), outline."""
        layers = []
        for name, data in self.parts:
            units = gpd.read_parquet(io.BytesIO(data))
            units["parent_code"] = pd.Series([None if pd.isna(p) else p for p in units["parent_code"]], dtype=object)
            layers.append(Layer(level=Level(name), units=units))
        return layers


def _geoparquet_bytes(layer: Layer) -> bytes:
    buffer = io.BytesIO()
    units_frame(layer).to_parquet(buffer, index=False, schema_version=GEOPARQUET_VERSION)
    return buffer.getvalue()


_INDEXES: dict[str, AssignmentIndex] = {}
_INDEX_LOCK = threading.Lock()


def _worker_index(shipped: ShippedLayers) -> AssignmentIndex:
    """The index of the shipped layers, built once per worker process (the latest layers only)."""
    with _INDEX_LOCK:
        index = _INDEXES.get(shipped.token)
        if index is None:
            _INDEXES.clear()
            index = _INDEXES[shipped.token] = AssignmentIndex(shipped.layers())
            index.ready_for_threads()
        return index


def _assign_partition(part: gpd.GeoDataFrame, shipped: ShippedLayers) -> pd.DataFrame:
    """On a worker: one partition's ids and, per level, the position of the unit holding each point
    among the layer's units (-1: none) — small numbers travel back, not code strings."""
    xy = shapely.get_coordinates(part.geometry.to_numpy())
    found = _worker_index(shipped).positions(xy[:, 0], xy[:, 1])
    return pd.DataFrame({"id": part["id"].to_numpy(dtype=np.int64),
                         **{lv.value: rows.astype(np.int32) for lv, rows in found.items()}})


def _codes(layer: Layer, positions: np.ndarray) -> np.ndarray:
    """Unit codes from positions among the layer's units (-1: None)."""
    named = np.concatenate([np.array([None], dtype=object), layer.units["code"].to_numpy(dtype=object)])
    return named[positions + 1]


def _changed(stored: tuple[np.ndarray, np.ndarray], ids: np.ndarray, codes: np.ndarray) -> np.ndarray:
    """Which of ``ids`` have no row stored under the version, or another unit there."""
    stored_ids, stored_codes = stored
    if not len(stored_ids):
        return np.ones(len(ids), dtype=bool)
    order = np.argsort(stored_ids, kind="stable")
    ordered = stored_ids[order]
    at = np.minimum(np.searchsorted(ordered, ids), len(order) - 1)
    return (ordered[at] != ids) | (np.asarray(stored_codes, dtype=object)[order][at] != codes)


def _write_back(store: Store, level: Level, versions: dict[Level, int | None], ids: np.ndarray, codes: np.ndarray,
                *, batch: int) -> None:
    """Write the new units in batches, in one transaction, if every version is still the one read."""
    if not len(ids):
        return
    with store.writing() as tx:
        heads = {lv: meta.version for lv, meta in tx.heads().items()}
        if heads != versions:
            raise Conflict(message(N_("the boundaries changed while {level} was being reassigned ({before} then, "
                                      "{after} now); nothing was written: run the reassignment again"),
                                   level=level.noun, before=versions_text(versions), after=versions_text(heads)))
        version = heads[level]
        for start in range(0, len(ids), batch):
            tx.set_units(level, version, ids[start:start + batch], codes[start:start + batch])


@contextmanager
def _workspace(workdir: Path | None) -> Iterator[Path]:
    """A fresh folder for the export, inside ``workdir`` (which the workers must be able to read;
    default: the system's temporary folder), removed afterwards."""
    if workdir is not None:
        workdir.mkdir(parents=True, exist_ok=True)
    folder = Path(tempfile.mkdtemp(prefix="gridmap-reassign-", dir=workdir))
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


@contextmanager
def _timed(seconds: dict[str, float], stage: str) -> Iterator[None]:
    start = time.perf_counter()
    try:
        yield
    finally:
        seconds[stage] = seconds.get(stage, 0.0) + time.perf_counter() - start


def _joined(parts: list[np.ndarray], dtype: type) -> np.ndarray:
    return np.concatenate(parts).astype(dtype, copy=False) if parts else np.empty(0, dtype=dtype)
