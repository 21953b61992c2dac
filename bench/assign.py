"""Benchmark: assignment at scale — gridmap's label raster against geopandas.sjoin, the exact
path and the floor of a bare raster lookup, side by side in one run.

    .venv/bin/python bench/assign.py [--points 1000000] [--repeat 3] [--seed 2015] [--json]

Unit sets: the synthetic district (bench/district.py: 10,000 micro-grids under 100 grids, with
``incident_points``: clustered like real reports, 2 % outside), Boston 2015 (22 wards + 255
precincts from ../shared, points uniform in the bounding box) and the demo (5 grids + 20
micro-grids, uniform).  Methods, best of --repeat, interleaved, garbage collector off:

* gridmap: ``AssignmentIndex(layers, raster=True)`` (build: trees and label raster), then
  ``.assign(lon, lat)`` (both levels: codes from lon/lat arrays, table lookups and the exact
  path for points in boundary cells, on every core);
* exact path: ``AssignmentIndex(layers, raster=False).assign`` — STRtree query, ``covers`` on
  the prepared polygons, tie-break — the reference every other answer is checked against;
* geopandas.sjoin: the points GeoDataFrame, then ``sjoin(points, units, predicate="within")``
  per level (as bench/assign_bench.py does it);
* raster floor: ``cells[iy, ix]`` on gridmap's prebuilt raster, cell indexes computed from
  lon/lat (clipped): what any lookup must at least do; "× floor" is a method's time over it.

``differs`` counts points whose unit (grid/micro-grid) differs from the exact path; for gridmap
it must be 0 and the script exits 1 otherwise.  sjoin differs on boundaries (``within`` is not
``covers``) and in overlaps (it returns a row for every unit).  ``--json`` prints the district's
figures only, as one JSON object.
"""
from __future__ import annotations

import argparse
import gc
import json
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.assign_bench import (  # noqa: E402
    BOSTON,
    Timing,
    _linked,
    best_of,
    load_boston,
    load_demo,
    machine,
    markdown_table,
    random_points,
    time_sjoin,
    timed,
)
from bench.district import district_geojson, incident_points  # noqa: E402
from gridmap.assignment import AssignmentIndex  # noqa: E402
from gridmap.boundaries import read_layer  # noqa: E402
from gridmap.layer import Layer  # noqa: E402
from gridmap.levels import Level  # noqa: E402

METHODS = {"gridmap": "gridmap (label raster + exact path)", "exact": "exact path (STRtree + covers)",
           "geopandas_sjoin": "geopandas.sjoin, per level", "raster_floor": "floor: cells[iy, ix]",
           "raster_floor_lonlat": "floor from lon/lat: cells[iy, ix] with iy, ix"}


def load_district() -> list[Layer]:
    grids, micro = district_geojson(100, 10)
    return _linked(read_layer(grids, level=Level.GRID, filename="grid.geojson"),
                   read_layer(micro, level=Level.MICRO_GRID, filename="micro_grid.geojson"))


def time_gridmap(layers: list[Layer], lon: np.ndarray, lat: np.ndarray) -> Timing:
    t0 = time.perf_counter()
    index = AssignmentIndex(layers, raster=True)
    t1 = time.perf_counter()
    codes = index.assign(lon, lat)
    t2 = time.perf_counter()
    return Timing(METHODS["gridmap"], t1 - t0, t2 - t1, codes)


def time_exact(layers: list[Layer], lon: np.ndarray, lat: np.ndarray) -> Timing:
    t0 = time.perf_counter()
    index = AssignmentIndex(layers, raster=False)
    t1 = time.perf_counter()
    codes = index.assign(lon, lat)
    t2 = time.perf_counter()
    return Timing(METHODS["exact"], t1 - t0, t2 - t1, codes)


def cell_indexes(index: AssignmentIndex, lon: np.ndarray, lat: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    raster = index._raster
    assert raster is not None
    ny, nx = raster.cells.shape
    return (np.clip((lat - raster.y0) * raster.scale, 0, ny - 1).astype(np.intp),
            np.clip((lon - raster.x0) * raster.scale, 0, nx - 1).astype(np.intp))


def time_floor(index: AssignmentIndex, lon: np.ndarray, lat: np.ndarray, *, from_lonlat: bool) -> Timing:
    """The bare lookup on gridmap's raster: ``cells[iy, ix]``, the indexes given or computed (clipped)."""
    cells, (iy, ix) = index._raster.cells, cell_indexes(index, lon, lat)    # type: ignore[union-attr]
    t0 = time.perf_counter()
    if from_lonlat:
        iy, ix = cell_indexes(index, lon, lat)
    faces = cells[iy, ix]
    t1 = time.perf_counter()
    key = "raster_floor_lonlat" if from_lonlat else "raster_floor"
    return Timing(METHODS[key], 0.0, t1 - t0, {"faces": faces})   # type: ignore[dict-item]


def locate_us(index: AssignmentIndex, lon: np.ndarray, lat: np.ndarray, *, repeat: int) -> float:
    """Mean µs per ``locate`` call over the points, one Python call each (best of ``repeat``)."""
    pairs = list(zip(lon.tolist(), lat.tolist()))

    def run() -> float:
        gc.collect()
        gc.disable()
        try:
            t0 = time.perf_counter()
            for x, y in pairs:
                index.locate(x, y)
            return (time.perf_counter() - t0) / len(pairs) * 1e6
        finally:
            gc.enable()
    return min(run() for _ in range(repeat))


def differs(codes: dict, ref: dict, levels: list[Level]) -> list[int]:
    """Points per level whose code differs from the reference's (a missing code is None for both)."""
    return [int((np.where(pd.isna(codes[level]), None, codes[level]) != ref[level]).sum()) for level in levels]


def bench(name: str, layers: list[Layer], lon: np.ndarray, lat: np.ndarray, *, repeat: int) -> dict:
    """Every method on one unit set, best of ``repeat`` (interleaved); figures by method."""
    index = AssignmentIndex(layers, raster=True)
    methods = {"gridmap": lambda: time_gridmap(layers, lon, lat), "exact": lambda: time_exact(layers, lon, lat),
               "geopandas_sjoin": lambda: time_sjoin(layers, lon, lat),
               "raster_floor": lambda: time_floor(index, lon, lat, from_lonlat=False),
               "raster_floor_lonlat": lambda: time_floor(index, lon, lat, from_lonlat=True)}
    runs: dict[str, list[Timing]] = {key: [] for key in methods}
    for _ in range(repeat):
        for key, method in methods.items():
            runs[key].append(timed(method, keep_gc=False))
    best = {key: best_of(kept) for key, kept in runs.items()}
    levels = [layer.level for layer in layers]
    ref, floor, n = best["exact"].codes, best["raster_floor"].run, len(lon)
    crossed = float((index._raster.faces(lon, lat) == 0).mean()) if index._raster is not None else 1.0
    sample = np.random.default_rng(7).integers(0, n, min(n, 100_000))
    figures = {key: {"build_s": t.build, "run_s": t.run, "points_per_s": n / t.run,
                     "points_per_s_with_build": n / (t.build + t.run), "x_floor": t.run / floor,
                     **({"differs": differs(t.codes, ref, levels)} if "floor" not in key else {})}
               for key, t in best.items()}
    figures["gridmap"].update(raster_mib=index.raster_bytes / 2**20, crossed_share=crossed,
                              raster_shape=list(index._raster.cells.shape) if index._raster is not None else None,
                              locate_us=locate_us(index, lon[sample], lat[sample], repeat=repeat))
    units = " + ".join(f"{len(layer.units)} {layer.level.value}" for layer in layers)
    return {"name": f"{name} ({units})", "points": n, "units": len(layers[-1].units), "methods": figures}


def rows(result: dict) -> list[list[str]]:
    out = []
    for key, f in result["methods"].items():
        check = "/".join(str(d) for d in f["differs"]) if "differs" in f else ""
        out.append([result["name"], METHODS[key], f"{f['build_s']:.3f}", f"{f['run_s']:.3f}",
                    f"{f['points_per_s']:,.0f}", f"{f['points_per_s_with_build']:,.0f}", f"{f['x_floor']:.1f}",
                    "(reference)" if key == "exact" else check])
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--points", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--seed", type=int, default=2015)
    parser.add_argument("--json", action="store_true", help="print the district's figures as JSON")
    args = parser.parse_args(argv)
    lon, lat = incident_points(args.points)
    results = [bench("district", load_district(), lon, lat, repeat=args.repeat)]
    if args.json:
        district = results[0]
        print(json.dumps({"points": district["points"], "units": district["units"], "methods": district["methods"]}))
        return 1 if any(district["methods"]["gridmap"]["differs"]) else 0
    sets = [("demo", load_demo())] + ([("Boston", load_boston())] if (BOSTON / "wards.geojson").is_file() else [])
    for name, layers in sets:
        results.append(bench(name, layers, *random_points(layers, args.points, args.seed), repeat=args.repeat))
    print(f"machine: {machine()}")
    print(f"points: {args.points:,} (district: incident_points, clustered; demo and Boston: uniform in the "
          f"bounding box, seed {args.seed}); best of {args.repeat}, interleaved, garbage collector off\n")
    markdown_table(["units", "method", "build s", "assign s", "points/s", "points/s with build", "× floor",
                    "differs grid/micro"], [row for result in results for row in rows(result)], right=range(2, 8))
    print()
    for result in results:
        g = result["methods"]["gridmap"]
        print(f"{result['name']}: raster {g['raster_shape']} cells, {g['raster_mib']:.1f} MiB, "
              f"{g['crossed_share']:.1%} of the points in boundary cells; locate {g['locate_us']:.1f} µs/point")
    bad = [r["name"] for r in results if any(r["methods"]["gridmap"]["differs"])]
    if bad:
        print(f"MISMATCH against the exact path: {', '.join(bad)}", file=sys.stderr)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
