"""Benchmark: gridmap's assignment (AssignmentIndex) against a plain geopandas.sjoin.

    .venv/bin/python bench/assign_bench.py [--points 1000000] [--repeat 3] [--seed 2015] [--gc]

For each unit set (the demo community, 5 grids + 20 micro-grids; Boston 2015, 22 wards +
255 precincts, read from ../shared beside the repository) it draws N random points, uniform
in the bounding box of the layers, and times, best of --repeat:

* gridmap: ``AssignmentIndex(layers)`` (build) then ``.assign(lon, lat)`` (both levels in one
  pass: bounding-box candidates from a tree over the polygons, then ``covers`` on the prepared
  polygons);
* geopandas: the points GeoDataFrame (construction) then ``sjoin(points, units,
  predicate="within")`` once per level.

The check columns count points where gridmap's unit differs from sjoin's, split into
``overlap`` (sjoin finds several units: overlapping polygons, where gridmap picks one by its
tie-break and sjoin returns a row for each), ``edge`` (sjoin finds none but gridmap finds one:
a point on a boundary is ``covered`` but not ``within``) and ``other`` (expected 0).
"""
from __future__ import annotations

import argparse
import gc
import os
import platform
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import geopandas
import numpy as np
import pandas as pd
import shapely

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from gridmap.assignment import AssignmentIndex  # noqa: E402
from gridmap.boundaries import derive_parents, read_layer  # noqa: E402
from gridmap.layer import Layer  # noqa: E402
from gridmap.levels import Level  # noqa: E402

DEMO = ROOT / "geodata" / "demo"
BOSTON = ROOT.parent / "shared" / "data" / "boston-2015"


@dataclass
class Timing:
    method: str
    build: float      # index build (gridmap) or points GeoDataFrame construction (sjoin)
    run: float        # assign (both levels) or sjoin (both levels)
    codes: dict[Level, np.ndarray]
    found: dict[Level, pd.Series] | None = None   # sjoin: the code of each (point, unit) pair, by point
    total: float = 0.0

    def __post_init__(self) -> None:
        self.total = self.total or self.build + self.run


def load_demo() -> list[Layer]:
    return _linked(read_layer((DEMO / "grid.geojson").read_bytes(), level=Level.GRID, filename="grid.geojson"),
                   read_layer((DEMO / "micro_grid.geojson").read_bytes(), level=Level.MICRO_GRID,
                              filename="micro_grid.geojson"))


def load_boston() -> list[Layer]:
    wards = read_layer((BOSTON / "wards.geojson").read_bytes(), level=Level.GRID, filename="wards.geojson",
                       code_field="WARD")
    precincts = read_layer((BOSTON / "precincts.geojson").read_bytes(), level=Level.MICRO_GRID,
                           filename="precincts.geojson", crs="EPSG:2249", code_field="WARD_PRECINCT")
    return _linked(wards, precincts)


def _linked(parent: Layer, child: Layer) -> list[Layer]:
    """The child keeps the parents its file names; otherwise they are derived, as the service does."""
    return [parent, child if child.parent_source == "field" else derive_parents(child, parent)]


def random_points(layers: list[Layer], n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    bounds = np.array([layer.units.total_bounds for layer in layers])
    minx, miny = bounds[:, :2].min(axis=0)
    maxx, maxy = bounds[:, 2:].max(axis=0)
    rng = np.random.default_rng(seed)
    return rng.uniform(minx, maxx, n), rng.uniform(miny, maxy, n)


def best_of(runs: list[Timing]) -> Timing:
    """The fastest run, with each column's best over the runs (so total may exceed build + run)."""
    best = min(runs, key=lambda t: t.total)
    return Timing(best.method, min(t.build for t in runs), min(t.run for t in runs), best.codes, best.found,
                  best.total)


def timed(measure: Callable[[], Timing], *, keep_gc: bool) -> Timing:
    """One measurement after a collection, with the garbage collector off (as timeit does) unless
    ``keep_gc``: creating a million point objects otherwise triggers collections mid-measurement."""
    gc.collect()
    if not keep_gc:
        gc.disable()
    try:
        return measure()
    finally:
        gc.enable()


def time_gridmap(layers: list[Layer], lon: np.ndarray, lat: np.ndarray) -> Timing:
    t0 = time.perf_counter()
    index = AssignmentIndex(layers)
    t1 = time.perf_counter()
    codes = index.assign(lon, lat)
    t2 = time.perf_counter()
    return Timing("gridmap AssignmentIndex, all levels in one pass", t1 - t0, t2 - t1, codes)


def time_sjoin(layers: list[Layer], lon: np.ndarray, lat: np.ndarray) -> Timing:
    units = [layer.units[["code", "geometry"]].copy() for layer in layers]   # no cached sindex
    t0 = time.perf_counter()
    points = geopandas.GeoDataFrame(geometry=geopandas.points_from_xy(lon, lat), crs=4326)
    t1 = time.perf_counter()
    found = {layer.level: geopandas.sjoin(points, u, predicate="within")["code"]
             for layer, u in zip(layers, units)}
    del points   # freeing the points is timed, as it is for gridmap, whose assign frees its own on return
    t2 = time.perf_counter()
    codes = {level: f[~f.index.duplicated()].reindex(pd.RangeIndex(len(lon))).to_numpy(dtype=object)
             for level, f in found.items()}
    return Timing("geopandas.sjoin, once per level", t1 - t0, t2 - t1, codes, found)


def disagreements(ours: np.ndarray, ref: Timing, level: Level) -> str:
    """overlap/edge/other: points sjoin puts in several units, gridmap in one of them (not an
    error: plain sjoin returns a row for each); points sjoin puts in none and gridmap in one (on
    a boundary: ``covers`` but not ``within``); any other difference (expected 0)."""
    found = ref.found[level]                                       # point position -> unit code
    codes = {code: i for i, code in enumerate(pd.unique(found.to_numpy()))}
    width = len(codes) + 1
    pairs = found.index.to_numpy() * width + found.map(codes).to_numpy()
    mine = np.arange(len(ours)) * width + np.array([codes.get(c, len(codes)) for c in ours])
    among = np.isin(mine, pairs)                                   # gridmap's unit is one sjoin found
    matches = np.bincount(found.index.to_numpy(), minlength=len(ours))
    assigned = pd.notna(ours)
    overlap, edge = (matches > 1) & among, (matches == 0) & assigned
    agree = ((matches == 0) & ~assigned) | ((matches == 1) & among)
    return f"{int(overlap.sum())}/{int(edge.sum())}/{int((~(agree | overlap | edge)).sum())}"


def machine() -> str:
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.processor() or "unknown CPU")
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return (f"{cpu}, {cores} cores usable; Python {platform.python_version()}, shapely {shapely.__version__} "
            f"(GEOS {shapely.geos_version_string}), geopandas {geopandas.__version__}, numpy {np.__version__}, "
            f"pandas {pd.__version__}")


def bench(name: str, layers: list[Layer], n: int, *, repeat: int, seed: int,
          keep_gc: bool) -> list[list[str]]:
    lon, lat = random_points(layers, n, seed)
    methods = [lambda: time_gridmap(layers, lon, lat), lambda: time_sjoin(layers, lon, lat)]
    runs: list[list[Timing]] = [[] for _ in methods]
    for _ in range(repeat):   # interleaved, so load from other processes hits every method alike
        for method, kept in zip(methods, runs):
            kept.append(timed(method, keep_gc=keep_gc))
    *timings, ref = [best_of(kept) for kept in runs]
    units = " + ".join(f"{len(layer.units)} {layer.level.value}" for layer in layers)
    rows = []
    for t in timings + [ref]:
        check = ([disagreements(t.codes[layer.level], ref, layer.level) for layer in layers]
                 if t is not ref else ["(reference)"] * len(layers))
        rows.append([f"{name} ({units})", t.method, f"{t.build:.3f}", f"{t.run:.3f}", f"{t.total:.3f}",
                     f"{n / t.total:,.0f}", f"{n / t.run:,.0f}", *check])
    return rows


def markdown_table(header: list[str], rows: list[list[str]], *, right: range | set[int] = frozenset()) -> None:
    """Print a Markdown table, the columns in ``right`` aligned right (the benches' shared output)."""
    print("| " + " | ".join(header) + " |")
    print("|" + "|".join("---:" if i in right else "---" for i in range(len(header))) + "|")
    for row in rows:
        print("| " + " | ".join(row) + " |")


def print_table(rows: list[list[str]]) -> None:
    header = ["units", "method", "build s", "assign/join s", "total s", "points/s (total)",
              "points/s (excl. build)", "check grid", "check micro_grid"]
    markdown_table(header, rows, right=range(2, len(header)))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--points", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--seed", type=int, default=2015)
    parser.add_argument("--gc", action="store_true", help="leave the garbage collector on while timing")
    args = parser.parse_args(argv)
    print(f"machine: {machine()}")
    print(f"points: {args.points:,} uniform in each set's bounding box (seed {args.seed}); best of "
          f"{args.repeat}, interleaved; garbage collector {'on' if args.gc else 'off'} while timing")
    print("build s: gridmap index build / sjoin points GeoDataFrame construction; "
          "check: points gridmap and sjoin disagree on, overlap/edge/other\n")
    options = {"repeat": args.repeat, "seed": args.seed, "keep_gc": args.gc}
    rows = bench("demo", load_demo(), args.points, **options)
    if (BOSTON / "wards.geojson").is_file():
        rows += bench("Boston", load_boston(), args.points, **options)
    else:
        print(f"skipping Boston: no data at {BOSTON} (it lives in ../shared beside the repository)\n")
    print_table(rows)


if __name__ == "__main__":
    main()
