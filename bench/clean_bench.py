"""Benchmark: coverage cleaning of a level, gridmap's against plain geopandas + shapely.

    .venv/bin/python bench/clean_bench.py [--size 100] [--repeat 3] [--seed 2015]

Data: Boston 2015 (22 wards + 255 precincts from ../shared, read as uploads are) and the synthetic
street of validate_bench.py: --size N gives N×N jittered micro-grids near 114°E 30°N with N//10
overlaps and N//10 gaps.  Times are best of --repeat, methods interleaved, collector off:

* gridmap: ``clean_units(units, CleanOptions())`` — UTM projection, ``coverage_clean``, back to
  lon/lat keeping every untouched vertex exact, areas measured again and the record of every
  unit whose outline changed (before, after, land moved);
* plain: ``to_crs(estimate_utm_crs())``, ``shapely.coverage_clean`` with the same widths,
  ``to_crs(4326)``, and the areas before and after in an equal-area projection — what a GIS
  analyst would write, without the change record.
*valid* is ``shapely.coverage_is_valid`` on the result in lon/lat; *changed* counts units whose
area moved by more than 0.01 m².  Then the whole upload path at that size: ``Gridmap.save_layer``
in preview mode from GeoJSON bytes (read, check every feature, clean, check coverage and nesting,
diff), with and without cleaning.
"""
from __future__ import annotations

import argparse
import gc
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable

import geopandas as gpd
import numpy as np
import shapely
from shapely.geometry import mapping

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.assign_bench import BOSTON, load_boston, machine, markdown_table  # noqa: E402
from bench.validate_bench import synthetic  # noqa: E402
from gridmap.changes import LayerOptions, SaveMode  # noqa: E402
from gridmap.cleaning import CleanOptions, clean_units  # noqa: E402
from gridmap.coordinates import areas_m2  # noqa: E402
from gridmap.layer import Layer  # noqa: E402
from gridmap.levels import Level  # noqa: E402
from gridmap.service import Gridmap  # noqa: E402
from gridmap.storage import open_store  # noqa: E402

OPTIONS = CleanOptions()


def timed(run: Callable[[], tuple[np.ndarray, int]]) -> tuple[float, np.ndarray, int]:
    gc.collect()
    gc.disable()
    try:
        start = time.perf_counter()
        shapes, changed = run()
        return time.perf_counter() - start, shapes, changed
    finally:
        gc.enable()


def ours(units: gpd.GeoDataFrame) -> tuple[np.ndarray, int]:
    cleaned, record = clean_units(units, OPTIONS)
    return cleaned.geometry.to_numpy(), len(record.changes)


def plain(units: gpd.GeoDataFrame) -> tuple[np.ndarray, int]:
    frame = gpd.GeoDataFrame(geometry=units.geometry.to_numpy(), crs=4326)
    metric = frame.to_crs(frame.estimate_utm_crs())
    cleaned = shapely.coverage_clean(metric.geometry.to_numpy(), gap_width=OPTIONS.gap_width_m,
                                     snapping_distance=OPTIONS.snap_m)
    back = gpd.GeoDataFrame(geometry=gpd.GeoSeries(cleaned, crs=metric.crs).to_crs(4326))
    return back.geometry.to_numpy(), int((np.abs(areas_m2(back) - areas_m2(frame)) > 0.01).sum())


def bench_clean(name: str, layer: Layer, repeat: int) -> list[str]:
    runs: dict[str, list[tuple[float, np.ndarray, int]]] = {"gridmap": [], "plain": []}
    for _ in range(repeat):
        runs["gridmap"].append(timed(lambda: ours(layer.units)))
        runs["plain"].append(timed(lambda: plain(layer.units)))
    (t_ours, s_ours, c_ours), (t_plain, s_plain, c_plain) = (min(r, key=lambda x: x[0]) for r in runs.values())
    return [name, f"{len(layer.units):,} {layer.level.value}", f"{t_ours:.3f}", f"{t_plain:.3f}",
            f"{t_ours / t_plain:.2f}×", f"{c_ours} / {c_plain}",
            f"{bool(shapely.coverage_is_valid(s_ours))} / {bool(shapely.coverage_is_valid(s_plain))}"]


def geojson(layer: Layer) -> bytes:
    return json.dumps({"type": "FeatureCollection", "features": [
        {"type": "Feature", "properties": {"code": c, "name": c}, "geometry": mapping(g)}
        for c, g in zip(layer.units["code"], layer.units.geometry)]}).encode()


def bench_upload(name: str, layers: list[Layer], repeat: int) -> list[list[str]]:
    """Preview of the micro-grid upload, over the grids committed (overlaps allowed for the setup)."""
    grid, micro = layers
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        svc = Gridmap(open_store(f"sqlite:///{tmp}/bench.db"), service_area=None)
        svc.import_layer(Level.GRID, geojson(grid), LayerOptions(tolerance_m2=1e12))
        data = geojson(micro)
        for label, options in (("preview", LayerOptions()), ("preview, clean=1", LayerOptions(clean=OPTIONS))):
            times = []
            for _ in range(repeat):
                start = time.perf_counter()
                result = svc.save_layer(Level.MICRO_GRID, data, options, mode=SaveMode.PREVIEW)
                times.append(time.perf_counter() - start)
            kinds = sorted({p.kind for p in result.report.errors})
            rows.append([name, f"{len(micro.units):,} micro_grid, {len(data) / 1e6:.1f} MB", label,
                         f"{min(times):.2f}", ", ".join(kinds) or "none"])
        svc.store.close()
    return rows


def table(header: list[str], rows: list[list[str]]) -> None:
    markdown_table(header, rows)
    print()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=100, help="the synthetic street is SIZE×SIZE micro-grids")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--seed", type=int, default=2015)
    args = parser.parse_args(argv)
    print(f"machine: {machine()}\nbest of {args.repeat}, interleaved; collector off while timing\n")
    street = synthetic(args.size, args.seed)
    sets: list[tuple[str, Layer]] = []
    if (BOSTON / "wards.geojson").is_file():
        sets += [("Boston 2015", layer) for layer in load_boston()]
    else:
        print(f"skipping Boston: no data at {BOSTON} (it lives in ../shared beside the repository)\n")
    sets += [(f"synthetic {args.size}×{args.size}", layer) for layer in street]
    table(["data set", "units", "gridmap s", "plain s", "ratio", "changed: gridmap / plain",
           "valid: gridmap / plain"], [bench_clean(name, layer, args.repeat) for name, layer in sets])
    table(["data set", "upload", "path", "seconds (best)", "errors left"],
          bench_upload(f"synthetic {args.size}×{args.size}", street, args.repeat))


if __name__ == "__main__":
    main()
