"""Benchmark: the validation report's layer checks against the same figures from plain geopandas.

    .venv/bin/python bench/validate_bench.py [--size 100] [--repeat 3] [--seed 2015]

Data: Boston 2015 (22 wards + 255 precincts from ../shared, read and linked as in assign_bench.py)
and a synthetic street: --size N gives an N×N coverage of jittered micro-grids near 114°E 30°N with
N//10 deliberate overlaps, N//10 gaps and 2 children naming the wrong parent, under (N/5)² grids.
Times are best of --repeat, methods interleaved, projection to an equal-area CRS included:

* gridmap: ``check_coverage(layer)`` for each level, ``check_nesting(child, parent)``;
* overlay (the plain recipe): ``overlay(units, units, "intersection")`` pairs i < j; per parent,
  ``overlay(kids, parent, "difference")`` and ``overlay(parent, kids, "difference")``;
* vectorised: ``sjoin`` + one ``intersection`` per pair i < j; each child ``difference`` its parent,
  each parent ``difference`` its ``dissolve``d children, in one call each.
Gaps (both baselines): the holes of ``union_all()`` less the union, kept where ``sjoin(dwithin 1 mm)``
finds two or more units (a hole inside one unit is not a gap). Pieces of 1 m² or less are dropped;
*agree* wants the same count for each kind and total areas within 0.5 %.
"""
from __future__ import annotations

import argparse
import gc
import sys
import time
from pathlib import Path
from typing import Callable

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.assign_bench import BOSTON, load_boston, machine, markdown_table  # noqa: E402
from gridmap.layer import Layer, texts  # noqa: E402
from gridmap.levels import Level  # noqa: E402
from gridmap.problems import Problem  # noqa: E402
from gridmap.validation import check_coverage, check_nesting  # noqa: E402

TOL_M2 = 1.0
Figures = dict[str, tuple[int, float]]          # kind -> (count, total m²)


def figures(problems: list[Problem]) -> Figures:
    return {kind: (sum(p.kind == kind for p in problems), sum(p.size_m2 or 0.0 for p in problems if p.kind == kind))
            for kind in {p.kind for p in problems}}


def _kept(kind: str, areas: pd.Series | np.ndarray) -> Figures:
    big = np.asarray(areas)[np.asarray(areas) > TOL_M2]
    return {kind: (len(big), float(big.sum()))} if len(big) else {}


def metric(*frames: gpd.GeoDataFrame) -> list[gpd.GeoDataFrame]:
    """The frames in one Lambert azimuthal equal-area CRS centred on them all (as gridmap measures)."""
    minx, miny, maxx, maxy = np.array([f.total_bounds for f in frames]).T
    lon0, lat0 = (minx.min() + maxx.max()) / 2, (miny.min() + maxy.max()) / 2
    crs = f"+proj=laea +lat_0={lat0:.6f} +lon_0={lon0:.6f} +datum=WGS84 +units=m +no_defs"
    return [f[["code", "parent_code", "geometry"]].to_crs(crs).reset_index(drop=True) for f in frames]


def baseline_coverage(layer: Layer, vectorised: bool) -> Figures:
    (units,) = metric(layer.units)
    units["pos"] = np.arange(len(units))
    if vectorised:                          # sjoin, then one intersection per pair i < j
        pairs = gpd.sjoin(units, units, predicate="intersects")
        pairs = pairs[pairs.index < pairs["index_right"]]
        other = gpd.GeoSeries(units.geometry.to_numpy()[pairs["index_right"]], index=pairs.index, crs=units.crs)
        overlaps = pairs.geometry.intersection(other, align=False).area
    else:                                   # overlay: every intersecting pair, both ways and with itself
        pairs = gpd.overlay(units, units, how="intersection", keep_geom_type=True)
        overlaps = pairs[pairs["pos_1"] < pairs["pos_2"]].area
    union = units.union_all()
    polys = gpd.GeoSeries([union], crs=units.crs).explode(index_parts=False)
    holes = gpd.GeoSeries([shapely.Polygon(ring) for rings in polys.interiors for ring in rings], crs=units.crs)
    holes = gpd.GeoDataFrame(geometry=holes.difference(union))
    near = gpd.sjoin(holes, units, predicate="dwithin", distance=0.001)
    between = holes.loc[near.groupby(level=0)["pos"].nunique().loc[lambda s: s > 1].index]
    return {**_kept("overlap", overlaps), **_kept("gap", between.area)}


def baseline_nesting(child: Layer, parent: Layer, vectorised: bool) -> Figures:
    kids, dads = metric(child.units, parent.units)
    known = kids["parent_code"].isin(dads["code"])
    if vectorised:                          # each child less its parent; each parent less its dissolved children
        by_code = dads.set_index("code").geometry
        linked = kids[known]
        theirs = gpd.GeoSeries(by_code.loc[linked["parent_code"]].to_numpy(), index=linked.index, crs=dads.crs)
        outside = linked.geometry.difference(theirs, align=False).area
        covered = linked.dissolve("parent_code").geometry.reindex(by_code.index)
        uncovered = by_code.difference(covered.fillna(shapely.Polygon()), align=False).area
    else:                                   # overlay difference, parent by parent
        outsides, uncovereds = [], []
        for code, dad in dads.groupby("code", sort=False):
            own = kids[kids["parent_code"] == code]
            outsides.append(gpd.overlay(own, dad, how="difference").area if len(own) else own.area)
            uncovereds.append(gpd.overlay(dad, own, how="difference").area if len(own) else dad.area)
        outside, uncovered = pd.concat(outsides), pd.concat(uncovereds)
    orphans = {"unknown_parent": int((~known & kids["parent_code"].notna()).sum()),
               "no_parent": int(kids["parent_code"].isna().sum())}
    return {**_kept("outside_parent", outside), **_kept("uncovered_parent", uncovered),
            **{kind: (count, 0.0) for kind, count in orphans.items() if count}}


def synthetic(n: int, seed: int, block: int = 5) -> list[Layer]:
    """N×N jittered cells, 8-vertex rings sharing corners and edge midpoints so they tile exactly; the
    grids are block×block cells through the corners only (so edge cells cross their grid's line)."""
    rng = np.random.default_rng(seed)
    step, lon0, lat0 = 0.002, 114.0, 30.0

    def jittered(rows: int, cols: int, dx: float, dy: float, amount: float) -> np.ndarray:
        y, x = np.meshgrid(np.arange(rows) + dy, np.arange(cols) + dx, indexing="ij")
        return np.stack([x, y], axis=-1) + rng.uniform(-amount, amount, (rows, cols, 2))
    corner = jittered(n + 1, n + 1, 0, 0, 0.25)
    corner[[0, -1], :, 1], corner[:, [0, -1], 0] = [[0], [n]], [0, n]      # a straight outline
    across, up = jittered(n + 1, n, 0.5, 0, 0.15), jittered(n, n + 1, 0, 0.5, 0.15)
    across[[0, -1], :, 1], up[:, [0, -1], 0] = [[0], [n]], [0, n]
    i, j = np.meshgrid(np.arange(n), np.arange(n), indexing="ij")
    ring = np.stack([corner[i, j], across[i, j], corner[i, j + 1], up[i, j + 1], corner[i + 1, j + 1],
                     across[i + 1, j], corner[i + 1, j], up[i, j], corner[i, j]], axis=2).reshape(n * n, 9, 2)
    spaced = np.flatnonzero(((i % 3 == 1) & (j % 3 == 1) & (j < n - 1)).ravel())
    picked = rng.choice(spaced, size=2 * max(1, n // 10), replace=False)
    ring[picked[: len(picked) // 2], 3, 0] += 0.3       # right edge midpoint into the neighbour
    ring[picked[len(picked) // 2:], 3, 0] -= 0.3        # … or back from it
    cells = shapely.polygons(ring * step + [lon0, lat0])
    assert shapely.is_valid(cells).all()
    across_blocks = -(-n // block)
    blocks = (i // block * across_blocks + j // block).ravel()
    parent_codes = np.array([f"G{b:04d}" for b in blocks], dtype=object)
    wrong = rng.choice(np.flatnonzero((j < (across_blocks - 1) * block).ravel()), size=2, replace=False)
    parent_codes[wrong] = [f"G{b + 1:04d}" for b in blocks[wrong]]
    clean = shapely.polygons(np.stack([corner[i, j], corner[i, j + 1], corner[i + 1, j + 1], corner[i + 1, j]],
                                      axis=2).reshape(n * n, 4, 2) * step + [lon0, lat0])
    codes = np.unique(blocks)
    grids = [shapely.union_all(clean[blocks == b]) for b in codes]   # parent lines follow the corners only
    return [_layer(Level.GRID, [f"G{b:04d}" for b in codes], [None] * len(codes), grids),
            _layer(Level.MICRO_GRID, [f"M{k:06d}" for k in range(n * n)], list(parent_codes), list(cells))]


def _layer(level: Level, codes: list[str], parents: list[str | None], shapes: list) -> Layer:
    units = gpd.GeoDataFrame({"code": texts(codes), "name": texts(codes), "parent_code": texts(parents),
                              "area_m2": 0.0, "properties": [{} for _ in codes]}, geometry=shapes, crs=4326)
    return Layer(level=level, units=units, parent_source="field" if level is Level.MICRO_GRID else None)


def best(methods: list[Callable[[], Figures | list[Problem]]], repeat: int) -> list[tuple[float, Figures]]:
    """Each method's best time, runs interleaved, collector off (as timeit does), and its figures."""
    times: list[list[float]] = [[] for _ in methods]
    found: list[Figures | list[Problem]] = [[] for _ in methods]
    for _ in range(repeat):
        for k, measure in enumerate(methods):
            gc.collect()
            gc.disable()
            try:
                t0 = time.perf_counter()
                found[k] = measure()
                times[k].append(time.perf_counter() - t0)
            finally:
                gc.enable()
    return [(min(t), figures(f) if isinstance(f, list) else f) for t, f in zip(times, found)]


def agree(ours: Figures, ref: Figures) -> str:
    none = (0, 0.0)
    bad = [k for k in sorted(set(ours) | set(ref)) if ours.get(k, none)[0] != ref.get(k, none)[0]
           or abs(ours.get(k, none)[1] - ref.get(k, none)[1]) > 0.005 * max(ours.get(k, none)[1], ref.get(k, none)[1])]
    return "yes" if not bad else "NO: " + ", ".join(f"{k} {ref.get(k, none)[0]} / {ref.get(k, none)[1]:,.0f} m²"
                                                    for k in bad)


def bench(name: str, layers: list[Layer], repeat: int) -> list[list[str]]:
    parent, child = layers
    checks: list[tuple[str, list[Callable[[], Figures | list[Problem]]]]] = [
        (f"coverage {lay.level.value}", [lambda lay=lay: check_coverage(lay, tolerance_m2=TOL_M2)]
         + [lambda lay=lay, v=v: baseline_coverage(lay, v) for v in (False, True)]) for lay in layers]
    checks.append((f"nesting {child.level.value} in {parent.level.value}",
                   [lambda: check_nesting(child, parent, tolerance_m2=TOL_M2)]
                   + [lambda v=v: baseline_nesting(child, parent, v) for v in (False, True)]))
    units = " + ".join(f"{len(layer.units):,} {layer.level.value}" for layer in layers)
    rows = []
    for check, methods in checks:
        (t_ours, f_ours), (t_ov, f_ov), (t_vec, f_vec) = best(methods, repeat)
        found = "; ".join(f"{k} {c} / {a:,.0f} m²" for k, (c, a) in sorted(f_ours.items())) or "none"
        rows.append([name, units, check, f"{t_ours:.3f}", f"{t_ov:.3f}", f"{t_ov / t_ours:.1f}×", f"{t_vec:.3f}",
                     f"{t_vec / t_ours:.1f}×", found, f"{agree(f_ours, f_ov)} / {agree(f_ours, f_vec)}"])
        print(" | ".join(rows[-1]), file=sys.stderr)
    return rows


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=100, help="the synthetic street is SIZE×SIZE micro-grids")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--seed", type=int, default=2015)
    args = parser.parse_args(argv)
    print(f"machine: {machine()}\nbest of {args.repeat}, interleaved; collector off while timing; "
          f"pieces over {TOL_M2:g} m² counted\n")
    rows = []
    if (BOSTON / "wards.geojson").is_file():
        rows += bench("Boston 2015", load_boston(), args.repeat)
    else:
        print(f"skipping Boston: no data at {BOSTON} (it lives in ../shared beside the repository)\n")
    rows += bench(f"synthetic {args.size}×{args.size}", synthetic(args.size, args.seed), args.repeat)
    header = ["data set", "units", "check", "gridmap s", "overlay s", "speed-up", "vectorised s", "speed-up",
              "found (gridmap; count / total area)", "agree: overlay / vectorised"]
    markdown_table(header, rows, right=range(3, 8))


if __name__ == "__main__":
    main()
