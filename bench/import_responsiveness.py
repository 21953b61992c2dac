"""Benchmark: how a server process answers lookups while it imports a big file.

    .venv/bin/python bench/import_responsiveness.py [--incidents 1000000] [--dir /tmp/gridmap-ingest]

One process holds a ``Gridmap`` on bench/ingest.py's district store (10,000 micro-grids, no
incidents) and imports bench/ingest.py's CSV in a thread, as a server thread does for an upload;
meanwhile its main thread calls ``Gridmap.lookup`` at random points of the district every 5 ms
and times each call.  Two ways of reading the file, each in a fresh process:

* worker: gridmap as it is (a file this big is read and assigned by gridmap.import_worker's process);
* thread: the baseline, the file read and assigned by a thread of the same process
  (``import_worker.PROCESS_FROM`` set beyond the file), as before the worker existed.

A lookup waits for the GIL whenever the importing threads hold it: the tail of the latencies is
what the other users of a server feel while someone uploads.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.assign_bench import machine, markdown_table  # noqa: E402
from bench.ingest import district_and_csv, fresh_store  # noqa: E402


def measure(db: Path, csv: Path, *, thread: bool) -> dict:
    """In this (child) process: import ``csv`` in a thread, timing lookups meanwhile."""
    import numpy as np

    from gridmap import import_worker
    from gridmap.service import Gridmap
    from gridmap.storage import open_store
    if thread:
        import_worker.PROCESS_FROM = 1 << 62
    service = Gridmap(open_store(f"sqlite:///{db}"), service_area=None)
    minx, miny, maxx, maxy = service.layers()[max(service.layers(), key=lambda lv: lv.depth)].units.total_bounds
    service.lookup((minx + maxx) / 2, (miny + maxy) / 2)           # the index and its raster, built first
    data = csv.read_bytes()
    took: list[float] = []

    def run() -> None:
        start = time.perf_counter()
        service.import_incidents(data, filename=csv.name)
        took.append(time.perf_counter() - start)

    importing = threading.Thread(target=run)
    importing.start()
    rng = np.random.default_rng(0)
    waits = []
    while importing.is_alive():
        x, y = minx + rng.random() * (maxx - minx), miny + rng.random() * (maxy - miny)
        start = time.perf_counter()
        service.lookup(x, y)
        waits.append(time.perf_counter() - start)
        time.sleep(0.005)
    importing.join()
    ms = np.array(waits) * 1000
    return {"import_s": took[0], "lookups": len(ms), "p50": float(np.percentile(ms, 50)),
            "p99": float(np.percentile(ms, 99)), "max": float(ms.max())}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--incidents", type=int, default=1_000_000)
    parser.add_argument("--dir", type=Path, default=Path("/tmp/gridmap-ingest"))
    parser.add_argument("--child", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        db, csv, how = args.child
        print(json.dumps(measure(Path(db), Path(csv), thread=how == "thread")))
        return
    template, csv = district_and_csv(args.dir, args.incidents)
    rows = []
    for how in ("worker", "thread"):
        db = fresh_store(args.dir, f"responsive_{how}.db", template)
        done = subprocess.run([sys.executable, __file__, "--child", str(db), str(csv), how],
                              capture_output=True, text=True)
        assert done.returncode == 0, done.stderr[-2000:]
        got = json.loads(done.stdout.strip().splitlines()[-1])
        rows.append([f"read by {'a worker process (gridmap)' if how == 'worker' else 'a thread (baseline)'}",
                     f"{got['import_s']:.1f}", f"{got['lookups']:,}", f"{got['p50']:.2f}", f"{got['p99']:.1f}",
                     f"{got['max']:.0f}"])
    print(machine())
    print(f"{args.incidents:,} rows imported in a thread of the process that answers the lookups")
    markdown_table(["file", "import s", "lookups meanwhile", "p50 ms", "p99 ms", "max ms"], rows,
                   right={1, 2, 3, 4, 5})


if __name__ == "__main__":
    main()
