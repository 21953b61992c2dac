"""The index shared by threads: GEOS's prepared polygons are built lazily and not thread-safely.

A prepared polygon (GEOS 3.14) locates its first point with a throwaway ring scan and makes its
indexed point locator on the *second* use, unlocked.  Two threads making it at once each store
their own; the second store deletes the locator the first thread is still using, and the process
dies of heap corruption ("double free or corruption", "malloc(): unsorted double linked list
corrupted"), now or at exit.  :meth:`AssignmentIndex.ready_for_threads` has to use every polygon
often enough that no lazy structure is left for the threads to build.

The crash is a race, so the first test runs the threaded exact path on fresh indexes in a child
process and counts on probability: polygons with many vertices (the locator's index takes a while
to build, which brings the two threads back in step) visited in the same order by both threads.
With a single warm-up use per polygon (the old code) the child aborted 60 times in 60 runs on a
2-core machine; on one core it can pass without proving anything.  The second test pins the
cause deterministically: every polygon reaches GEOS's locator at least twice before threads run.
"""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import shapely

from gridmap import assignment
from gridmap.assignment import AssignmentIndex
from gridmap.boundaries import read_layer
from gridmap.levels import Level

from .conftest import feature_collection

ROOT = Path(__file__).resolve().parents[1]

CHILD = r"""
import sys
import geopandas as gpd
import numpy as np
import shapely
from gridmap import assignment
from gridmap.assignment import AssignmentIndex
from gridmap.layer import Layer, texts
from gridmap.levels import Level

K, V, PER, ROUNDS = 200, 1000, 4, 20     # polygons, vertices each, points per polygon, fresh indexes
assignment._WORKERS = 2                  # two threads even on a one-core machine
assignment._PARALLEL_MIN = 2             # ... for a few hundred points
side = int(np.ceil(np.sqrt(K)))
cx, cy = np.arange(K) % side * 1.0, np.arange(K) // side * 1.0
t = np.linspace(0, 2 * np.pi, V, endpoint=False)
r = 0.45 * (1 + 0.05 * np.cos(7 * t))                     # wavy circles: not rectangles, apart
wkb = shapely.to_wkb(shapely.polygons(np.stack([cx[:, None] + r * np.cos(t), cy[:, None] + r * np.sin(t)], axis=-1)))
codes = [f"u{i:05d}" for i in range(K)]
half = np.repeat(cx, PER) + np.tile(np.linspace(-0.2, 0.2, PER), K), np.repeat(cy, PER)
lon, lat = np.concatenate([half[0], half[0]]), np.concatenate([half[1], half[1]])   # each thread: every polygon
expect = np.tile(np.repeat(np.array(codes, dtype=object), PER), 2)
for _ in range(ROUNDS):                  # new geometries each round: nothing prepared or warmed yet
    units = gpd.GeoDataFrame({"code": texts(codes), "parent_code": texts([None] * K)},
                             geometry=gpd.GeoSeries(shapely.from_wkb(wkb)))
    index = AssignmentIndex([Layer(level=Level.MICRO_GRID, units=units)], raster=False)
    found = index.assign(lon, lat)[Level.MICRO_GRID]
    assert (found == expect).all(), "threaded answers differ"
print("ok")
"""


def test_threads_sharing_fresh_prepared_polygons_do_not_corrupt_the_heap():
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
           "MALLOC_PERTURB_": "165", "PYTHONFAULTHANDLER": "1"}     # freed memory scribbled: misuse shows
    run = subprocess.run([sys.executable, "-c", CHILD], cwd=ROOT, env=env, capture_output=True, text=True,
                         timeout=120)
    assert run.returncode == 0 and run.stdout.strip() == "ok", (
        f"child exited {run.returncode} (-6: abort, -11: segfault)\n{run.stderr[:3000]}")


def test_ready_for_threads_uses_every_polygon_twice_within_its_bounds(monkeypatch):
    """GEOS keeps a prepared polygon's indexed point locator from its second use of a point in
    the polygon's bounds (a point outside them is answered by the bounds alone)."""
    square = shapely.box(0, 0, 1, 1)
    ring = shapely.Polygon([(2, 0), (5, 0), (5, 3), (2, 3)], [[(3, 1), (4, 1), (4, 2), (3, 2)]])   # centre in the hole
    star = shapely.Polygon([(6 + np.cos(a) * (1 + (k % 2)), 1 + np.sin(a) * (1 + (k % 2)))
                            for k, a in enumerate(np.linspace(0, 2 * np.pi, 16, endpoint=False))])
    multi = shapely.MultiPolygon([shapely.box(9, 0, 10, 1), shapely.box(11, 2, 12, 3)])       # centre in neither
    layer = read_layer(feature_collection([({"code": c}, g) for c, g in
                                           zip("ABCD", [square, ring, star, multi])]), level=Level.MICRO_GRID)
    index = AssignmentIndex([layer], raster=False)
    geometries = index._levels[0].geometries
    assert len(geometries) == 4
    uses = {id(g): 0 for g in geometries}
    covers = shapely.covers

    def counting(a, b, **kw):
        for g, p in zip(*np.broadcast_arrays(np.asarray(a, dtype=object), np.asarray(b, dtype=object))):
            if g is not None and id(g) in uses:
                (x0, y0, x1, y1), ((x, y),) = shapely.bounds(g), shapely.get_coordinates(p)
                uses[id(g)] += bool(x0 <= x <= x1 and y0 <= y <= y1)
        return covers(a, b, **kw)

    monkeypatch.setattr(shapely, "covers", counting)
    index.ready_for_threads()
    assert min(uses.values()) >= 2, uses
    monkeypatch.undo()
    # and the threads' answers are the exact ones
    xs, ys = np.meshgrid(np.linspace(-0.5, 12.5, 131), np.linspace(-1.5, 3.5, 51))
    lon, lat = xs.ravel(), ys.ravel()
    monkeypatch.setattr(assignment, "_WORKERS", 2)
    monkeypatch.setattr(assignment, "_PARALLEL_MIN", 2)
    threaded = index.positions(lon, lat)[Level.MICRO_GRID]
    alone = np.array([assignment._exact_one(index._levels, x, y)[0] for x, y in zip(lon, lat)])
    assert (threaded == alone).all()
