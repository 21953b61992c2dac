"""Benchmark: "which micro-grid is this point in, and who is responsible" — in process and over HTTP.

    .venv/bin/python bench/lookup.py [--points 20000] [--requests 3000] [--dir /tmp/gridmap-lookup]

Over the synthetic district (10,000 micro-grids under 100 grids; bench/district.py), at incident
positions (clustered, 2 % outside every unit):

* in process: ``Gridmap.lookup(lon, lat)`` (after its index has built its raster), against the plain
  recipe — a shapely STRtree per level, ``query(point, predicate="covered_by")``, the first holder's
  row — and against the same with the unit's row read from the GeoDataFrame (what a lookup answers);
* over HTTP: ``GET /api/lookup`` on loopback under the production server (gunicorn, the README's
  ``scripts/serve-production`` with ``--worker-class gthread`` so one client keeps its connection),
  sequential requests on one connection, p50 and p95.
"""
from __future__ import annotations

import argparse
import http.client
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import shapely

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.assign_bench import machine, markdown_table  # noqa: E402
from bench.district import incident_points, make_district  # noqa: E402


def in_process(db: Path, points: int) -> list[list[str]]:
    from gridmap.service import Gridmap
    from gridmap.storage import open_store
    svc = Gridmap(open_store(f"sqlite:///{db}"))
    lon, lat = incident_points(points, seed=5)
    xy = list(zip(lon.tolist(), lat.tolist()))
    for x, y in xy:                      # the index builds its raster once lookups have paid for it
        svc.lookup(x, y)
    start = time.perf_counter()
    answers = [svc.lookup(x, y) for x, y in xy]
    ours = (time.perf_counter() - start) / len(xy) * 1e6

    layers = list(svc.layers().values())
    trees = [(shapely.STRtree(layer.units.geometry.to_numpy()), layer) for layer in layers]
    start = time.perf_counter()
    plain = []
    for x, y in xy:
        point = shapely.Point(x, y)
        plain.append([tree.query(point, predicate="covered_by")[:1] for tree, _ in trees])
    tree_us = (time.perf_counter() - start) / len(xy) * 1e6
    start = time.perf_counter()
    for x, y in xy:
        point = shapely.Point(x, y)
        for tree, layer in trees:
            found = tree.query(point, predicate="covered_by")
            if len(found):
                layer.units.iloc[int(found[0])].to_dict()
    row_us = (time.perf_counter() - start) / len(xy) * 1e6
    agree = sum(len([u for u in a]) == sum(len(p) for p in b) for a, b in zip(answers, plain))
    return [["gridmap `Gridmap.lookup` (units with staff)", f"{ours:.1f}", f"{agree:,} / {len(xy):,} same count"],
            ["shapely STRtree `query(covered_by)`, 2 levels (positions only)", f"{tree_us:.1f}", ""],
            ["… and the unit's row from the GeoDataFrame", f"{row_us:.1f}", ""]]


def over_http(url: str, requests: int) -> list[list[str]]:
    """p50 and p95 of ``GET /api/lookup`` under the production server on the store at ``url``."""
    port = 18000 + os.getpid() % 1000
    env = {**os.environ, "GRIDMAP_DATABASE_URL": url, "GRIDMAP_LOAD_DEMO": "0", "GRIDMAP_TILES": "none",
           "GRIDMAP_PUBLIC_READ": "1"}
    server = subprocess.Popen([str(ROOT / "scripts" / "serve-production"), "--workers", "2", "--worker-class",
                               "gthread", "--threads", "4", "--bind", f"127.0.0.1:{port}", "--access-logfile",
                               "/dev/null"], cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        lon, lat = incident_points(requests, seed=6)
        conn = _connect(port)
        times = []
        for round_ in range(2):          # the first round warms both workers' indexes
            for x, y in zip(lon.tolist(), lat.tolist()):
                start = time.perf_counter()
                conn.request("GET", f"/api/lookup?lon={x}&lat={y}")
                response = conn.getresponse()
                response.read()
                if round_:
                    times.append(time.perf_counter() - start)
                assert response.status == 200
        ms = np.array(times) * 1000
        return [["`GET /api/lookup`, gunicorn 2 workers (gthread), one keep-alive connection",
                 f"p50 {np.percentile(ms, 50):.2f} ms, p95 {np.percentile(ms, 95):.2f} ms", f"{len(ms):,} requests"]]
    finally:
        server.terminate()
        server.wait(timeout=30)


def _connect(port: int) -> http.client.HTTPConnection:
    deadline = time.monotonic() + 120
    while True:
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
            conn.request("GET", "/api/layers")
            conn.getresponse().read()
            return conn
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.3)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--points", type=int, default=20_000)
    parser.add_argument("--requests", type=int, default=3_000)
    parser.add_argument("--dir", type=Path, default=Path("/tmp/gridmap-lookup"))
    args = parser.parse_args()
    args.dir.mkdir(parents=True, exist_ok=True)
    db = args.dir / "district.db"
    if not db.exists():
        make_district(f"sqlite:///{db}", n=100, incidents=0).store.close()
    print(machine())
    markdown_table(["lookup, 10,000 micro-grids under 100 grids", "µs per point", "note"],
                   in_process(db, args.points))
    print()
    markdown_table(["lookup over HTTP", "time", "note"], over_http(f"sqlite:///{db}", args.requests))


if __name__ == "__main__":
    main()
