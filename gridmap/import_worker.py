"""A big incident file read and assigned in another process while this one stores it.

SQLite lets go of the GIL only inside each row's step, and pandas' parser and the assignment's
numpy and shapely calls hold it for much of their work, so a thread reading ahead (``read_ahead``)
overlapped the writes only in part, and held up every other thread of the process: a server's
lookups waited up to 0.8 s behind it during a million-row upload.  A process shares nothing: the
same import took 15.4–18.1 s against 17.8–19.3 s with the thread (alternating runs), and lookups
meanwhile waited at most 0.16 s (``bench/import_responsiveness.py``, docs/benchmarks.md).

The worker is a fresh interpreter (``python -m gridmap.import_worker``): never a fork, since a
server's other threads may hold locks, and not multiprocessing's spawn either, which runs the
parent's ``__main__`` again (``python -m gridmap`` would start the command a second time).  Its
imports take about 1 s, on the other core (``python -m gridmap import-incidents BIG.csv`` starts
it before the command's own imports: :func:`prestart`): it starts parsing at once, and assigns from the
layers the storing transaction sends once it holds the write lock, so the units are those of the
versions the rows are stored under.  Each chunk comes back pickled (about 25 ms for 100,000 rows);
an error raised in the worker (a refused file, an encoding that does not fit) is raised again
here, of the same type with the same message, after the chunks before it.
"""
from __future__ import annotations

import logging
import os
import queue
import subprocess
import sys
import threading
from dataclasses import dataclass, replace
from datetime import datetime
from multiprocessing.connection import Connection
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator, NamedTuple, Sequence
from zoneinfo import ZoneInfo

if TYPE_CHECKING:       # only the standard library here: ``python -m gridmap`` imports this module first
    import numpy as np

    from .incidents import FileData, FileOptions, ParsedBatch
    from .layer import Layer
    from .levels import Level

log = logging.getLogger(__name__)

#: Lines in a file from which it is read in another process: below, starting one (about 1.5 s
#: on the other core before its first chunk) costs more than reading in this one.
PROCESS_FROM = 200_000


#: Bytes in a file named on ``python -m gridmap import-incidents`` from which a worker is started
#: before the command's own imports (:func:`prestart`): no file of PROCESS_FROM lines is smaller.
PRESTART_BYTES = 2_000_000


def wanted(lines: int) -> bool:
    """Whether a file of about ``lines`` lines is worth reading in another process."""
    return lines >= PROCESS_FROM


class _Process(NamedTuple):
    """A started worker and this process's ends of its pipes."""
    process: subprocess.Popen
    results: Connection
    orders: Connection

    def discard(self) -> None:
        self.orders.close()
        self.results.close()
        self.process.kill()
        self.process.wait()


_spare: _Process | None = None       # started by prestart(), for the next ImportWorker


def prestart(args: Sequence[str]) -> None:
    """Start a worker for the command line ``args`` when it imports a big file: its imports (about
    1 s) then run on the other core while the command does its own, and the next
    :class:`ImportWorker` takes it.  Not one the command turns out not to need: :func:`drop_spare`."""
    global _spare
    if _spare is not None or not args or args[0] != "import-incidents":
        return
    if not any(_size(arg) >= PRESTART_BYTES for arg in args[1:]):
        return
    try:
        _spare = _spawn()
    except OSError:            # the command starts one later, or reads the file itself, and says why
        pass


def drop_spare() -> None:
    """Stop a worker started for a file that is read here after all (GeoJSON, a few lines)."""
    global _spare
    spare, _spare = _spare, None
    if spare is not None:
        spare.discard()


def _size(path: str) -> int:
    try:
        return os.stat(path).st_size
    except (OSError, ValueError):
        return 0


def _spawn() -> _Process:
    results_in, results_out = os.pipe()
    orders_in, orders_out = os.pipe()
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}
    try:
        process = subprocess.Popen(
            [sys.executable, "-m", "gridmap.import_worker", str(results_out), str(orders_in)],
            pass_fds=(results_out, orders_in), env=env, stdin=subprocess.DEVNULL)
    except BaseException:
        os.close(results_in)
        os.close(orders_out)
        raise
    finally:
        os.close(results_out)          # the worker's ends: this process keeps only its own
        os.close(orders_in)
    return _Process(process, Connection(results_in, writable=False), Connection(orders_out, readable=False))


@dataclass(frozen=True)
class _Job:
    path: str | None            # the file to read, or None: its bytes follow the job
    filename: str
    options: FileOptions
    tz: str
    now: datetime
    encoding: str | None
    chunk_rows: int             # this process's incidents.CHUNK_ROWS, which the worker reads by


class ImportWorker:
    """One file's chunks, parsed and assigned in another process, in order.

    Start it early (its start overlaps the caller's own work), then iterate :meth:`assigned`
    once with the layers to assign against; the iteration ending, whichever way, stops it.
    """

    def __init__(self, data: FileData, *, filename: str, options: FileOptions, tz: ZoneInfo, now: datetime,
                 encoding: str | None) -> None:
        from . import incidents

        global _spare
        started, _spare = _spare, None
        if started is not None and started.process.poll() is not None:
            started.discard()          # it stopped meanwhile
            started = None
        self._process, self._results, self._orders = started or _spawn()
        self._layers: queue.Queue[list[Layer] | None] = queue.Queue()
        self._finished = False          # the worker sent every chunk
        self._reading = False           # assigned() has begun: it closes the results pipe
        self._stopping = threading.Lock()
        # the file goes over in a thread: the worker takes it only once its imports are done
        path = None if isinstance(data, bytes) else str(data.absolute())
        job = _Job(path, filename, options, tz.key, now, encoding, incidents.CHUNK_ROWS)
        self._sender = threading.Thread(target=self._send, args=(job, data), name="gridmap-import-orders",
                                        daemon=True)
        self._sender.start()

    @classmethod
    def start(cls, data: FileData, **reading: Any) -> ImportWorker | None:
        """A worker reading ``data`` (the keywords as for the constructor), or None where no process
        can be started here (the caller reads the file itself)."""
        try:
            return cls(data, **reading)
        except OSError as error:
            log.warning("reading %s in this process: no worker process could be started (%s)",
                        reading.get("filename"), error)
            return None

    def assigned(self, layers: Sequence[Layer]) -> Iterator[tuple[ParsedBatch, dict[Level, np.ndarray]]]:
        """(chunk, the unit of each of its incidents per level) as the worker sends them."""
        self._reading = True
        try:
            self._layers.put([_slim(layer) for layer in layers])
            while True:
                kind, payload = self._receive()
                if kind == "done":
                    self._finished = True
                    return
                if kind == "error":
                    raise payload
                yield payload
        finally:
            self._stop()
            self._results.close()      # here, in the thread that reads it, never under its feet

    def close(self) -> None:
        """Stop the worker (at once, unless it has sent everything).  Its pipe is let go of by
        :meth:`assigned`, which may be reading it in another thread, or here if it never began."""
        self._stop()
        if not self._reading:
            self._results.close()

    def _stop(self) -> None:
        with self._stopping:
            if self._finished:
                try:
                    self._process.wait(timeout=10)       # it is leaving on its own
                except subprocess.TimeoutExpired:
                    pass
            if self._process.poll() is None:
                self._process.kill()         # a reader blocked on its pipe then hears the end of it
            self._process.wait()
            self._layers.put(None)
            self._sender.join()

    def _send(self, job: _Job, data: FileData) -> None:
        try:
            self._orders.send(job)
            if isinstance(data, bytes):           # else the worker reads the file from the disk
                self._orders.send_bytes(data)     # as it is: unpickled, it would be copied once more
            layers = self._layers.get()
            if layers is not None:
                self._orders.send(layers)
        except OSError:        # the worker stopped first (its error, if any, is in the results)
            pass
        finally:
            self._orders.close()

    def _receive(self) -> tuple[str, Any]:
        try:
            return self._results.recv()
        except EOFError:        # the worker died without a word (killed, out of memory)
            code = self._process.wait()
            raise RuntimeError(f"the import worker stopped unexpectedly (exit code {code})") from None


def _slim(layer: Layer) -> Layer:
    """What the assignment needs of a layer (codes, parents, geometries), and nothing else to pickle."""
    return replace(layer, units=layer.units[["code", "parent_code", "geometry"]], problems=[], cleaning=None)


def _work(results: Connection, orders: Connection) -> None:
    """The worker: parse the file a chunk at a time, assign each, send it."""
    # imported before the job comes, so that a prestarted worker is ready for it
    from . import incidents
    from .assignment import AssignmentIndex

    try:
        job: _Job = orders.recv()
    except EOFError:               # a prestarted worker that the command did not need
        return
    try:
        data = orders.recv_bytes() if job.path is None else Path(job.path)
        incidents.CHUNK_ROWS = job.chunk_rows
        index = None
        for batch in incidents.incident_chunks(data, filename=job.filename, options=job.options,
                                               tz=ZoneInfo(job.tz), now=job.now, encoding=job.encoding):
            if index is None:
                index = AssignmentIndex(orders.recv())
            results.send(("chunk", (batch, index.assign(batch.incidents.lon, batch.incidents.lat))))
        results.send(("done", None))
    except BaseException as error:  # noqa: BLE001 - every error goes to the caller, which raises it
        try:
            results.send(("error", error))
        except Exception:  # noqa: BLE001 - one that does not pickle goes as its text
            results.send(("error", RuntimeError(f"{type(error).__name__}: {error}")))


if __name__ == "__main__":
    _work(Connection(int(sys.argv[1]), readable=False), Connection(int(sys.argv[2]), writable=False))
