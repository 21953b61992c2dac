"""Benchmark: Gi* hotspots of a district, side by side with the plain pandas + esda recipe.

    .venv/bin/python bench/hotspots.py [--db /tmp/gridmap-ingest/gridmap.db]

The store is bench/district.py's district (10,000 micro-grids under 100 grids) with a million
incidents (bench/ingest.py leaves one at the default path; made here when missing).  Timed:

* gridmap, ``Gridmap.hotspots`` as ``GET /api/hotspots`` calls it: the first call of a fresh
  service (the contiguity built, the incident table read for the stacked-coordinate check) and
  the next one (what a server answers once warm);
* the emerging analysis over 12 months, the month's league table, a choropleth, hexagon hot spots
  (H3 resolution 9) and ``GET /dashboard`` (all of it: totals, league table, hot spots, weekly
  series, rhythm) in a fresh app, then again; then the report map (``GET /api/report-map``: the
  hot spots as an A4 PNG at 200 and 100 dpi and as a PDF, a choropleth PNG) and the hexagons'
  API answer;
* plain: ``pandas.read_sql`` of the current micro-grid version's assignments, ``value_counts``,
  libpysal's classic ``Queen.from_dataframe``, ``esda.G_Local`` (the same options) and ``esda.fdr``.

Both must give the same z, p and classes (the district's incidents have no stacked coordinate, so
none are left out); the script exits non-zero if they differ.
"""
from __future__ import annotations

import argparse
import sqlite3
import sys
import time
import warnings
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.assign_bench import machine, markdown_table  # noqa: E402


def plain(db: Path, layer, version: int) -> tuple[dict, float]:
    import esda
    import libpysal
    import pandas as pd
    start = time.perf_counter()
    with sqlite3.connect(db) as conn:
        codes = pd.read_sql("SELECT a.unit_code FROM assignments a JOIN layer_versions v ON v.id = a.version_id "
                            "WHERE v.level = 'micro_grid' AND v.version = ?", conn, params=(version,))
    y = codes["unit_code"].value_counts().reindex(layer.units["code"], fill_value=0).to_numpy(dtype=float)
    w = libpysal.weights.Queen.from_dataframe(layer.units, use_index=False, silence_warnings=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        g = esda.G_Local(y, w, transform="B", star=True, permutations=999, seed=12345, n_jobs=1)
    p = np.minimum(1, 2 * g.p_z_sim)
    classes = np.full(len(y), "none", dtype=object)
    for confidence, alpha in ((0.90, 0.10), (0.95, 0.05), (0.99, 0.01)):
        significant = p < esda.fdr(p, alpha)
        classes[significant & (g.Zs > 0)] = f"hot_{round(confidence * 100)}"
        classes[significant & (g.Zs < 0)] = f"cold_{round(confidence * 100)}"
    return {"z": g.Zs, "p": p, "classes": classes, "counts": y}, time.perf_counter() - start


def dashboard_times(db: Path) -> dict[str, float]:
    """``GET /dashboard`` through the Flask test client of an app on ``db`` (as a server answers it):
    the first request of a fresh app, then again."""
    import os
    os.environ.update({"GRIDMAP_DATABASE_URL": f"sqlite:///{db}", "GRIDMAP_LOAD_DEMO": "0", "GRIDMAP_TILES": "none",
                       "GRIDMAP_SERVICE_AREA": "none"})
    from app import create_app
    client = create_app().test_client()
    times = {}
    for name in ("first", "again"):
        start = time.perf_counter()
        response = client.get("/dashboard")
        times[name] = time.perf_counter() - start
        assert response.status_code == 200, response.data[:300]
    times["kb"] = len(response.data) / 1024
    for name, url in (("map_png", "/api/report-map?overlay=hotspots"), ("map_small", "/api/report-map?dpi=100"),
                      ("map_pdf", "/api/report-map?overlay=hotspots&format=pdf"),
                      ("choropleth_png", "/api/report-map?overlay=choropleth&measure=km2"),
                      ("hexagons", "/api/hotspots/hexagons?significant=1")):
        start = time.perf_counter()
        response = client.get(url)
        times[name] = time.perf_counter() - start
        assert response.status_code == 200, response.data[:300]
        times[name + "_kb"] = len(response.data) / 1024
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--db", type=Path, default=Path("/tmp/gridmap-ingest/gridmap.db"))
    args = parser.parse_args()
    from gridmap.levels import Level
    from gridmap.service import Gridmap
    from gridmap.storage import open_store
    if not args.db.exists():
        from bench.district import make_district
        args.db.parent.mkdir(parents=True, exist_ok=True)
        make_district(f"sqlite:///{args.db}", n=100, incidents=1_000_000).store.close()
    svc = Gridmap(open_store(f"sqlite:///{args.db}"), service_area=None)
    layer = svc.layer(Level.MICRO_GRID)
    start = time.perf_counter()
    first, stacks = svc.hotspots(Level.MICRO_GRID)
    cold = time.perf_counter() - start
    start = time.perf_counter()
    found, _ = svc.hotspots(Level.MICRO_GRID)
    warm = time.perf_counter() - start
    start = time.perf_counter()
    emerging = svc.emerging_hotspots(Level.MICRO_GRID, periods=12)
    emerging_s = time.perf_counter() - start
    start = time.perf_counter()
    month, _, table = svc.league(Level.MICRO_GRID)
    league_s = time.perf_counter() - start
    start = time.perf_counter()
    svc.choropleth(Level.MICRO_GRID, scheme="natural_breaks")
    choropleth_s = time.perf_counter() - start
    start = time.perf_counter()
    hexagons, _ = svc.hexagon_hotspots()
    hexagons_s = time.perf_counter() - start
    dashboard = dashboard_times(args.db)
    reference, plain_s = plain(args.db, layer, layer.version)
    same = (np.array_equal(found.counts, reference["counts"]) and np.allclose(found.z, reference["z"], rtol=1e-12)
            and np.allclose(found.p, reference["p"], rtol=1e-12)
            and [c.value for c in found.classes] == reference["classes"].tolist())
    print(machine())
    print(f"{len(layer.units):,} micro-grids, {svc.store.count_incidents():,} incidents, {len(stacks)} stacked "
          f"coordinates; hot {sum(c.value.startswith('hot') for c in found.classes)}, cold "
          f"{sum(c.value.startswith('cold') for c in found.classes)}; same as plain: {same}")
    markdown_table(["method", "seconds"],
                   [["gridmap Gridmap.hotspots, first call (contiguity, incident table, counts, Gi*)", f"{cold:.2f}"],
                    ["gridmap Gridmap.hotspots, warm (counts in SQL, Gi*)", f"{warm:.2f}"],
                    ["plain: read_sql + value_counts + Queen.from_dataframe + G_Local + fdr", f"{plain_s:.2f}"],
                    [f"gridmap emerging hot spots, {len(emerging.periods)} months (counts in one pass, Gi* per "
                     "month without permutations, Mann-Kendall)", f"{emerging_s:.2f}"],
                    [f"gridmap league table of {month} ({len(table):,} rows, four per-unit counts in SQL)",
                     f"{league_s:.2f}"],
                    ["gridmap choropleth, natural breaks of the counts", f"{choropleth_s:.2f}"],
                    [f"gridmap hexagon hot spots, H3 resolution 9 ({len(hexagons.cells):,} cells, 999 permutations)",
                     f"{hexagons_s:.2f}"],
                    [f"GET /dashboard, a fresh server's first ({dashboard['kb']:.0f} kB)", f"{dashboard['first']:.2f}"],
                    ["GET /dashboard again", f"{dashboard['again']:.2f}"],
                    [f"GET /api/report-map, hot spots, A4 PNG at 200 dpi ({dashboard['map_png_kb']:.0f} kB)",
                     f"{dashboard['map_png']:.2f}"],
                    [f"the same at 100 dpi, the dashboard's image ({dashboard['map_small_kb']:.0f} kB)",
                     f"{dashboard['map_small']:.2f}"],
                    [f"the same as a PDF ({dashboard['map_pdf_kb']:.0f} kB)", f"{dashboard['map_pdf']:.2f}"],
                    [f"GET /api/report-map, choropleth per km², PNG ({dashboard['choropleth_png_kb']:.0f} kB)",
                     f"{dashboard['choropleth_png']:.2f}"],
                    [f"GET /api/hotspots/hexagons?significant=1 ({dashboard['hexagons_kb']:.0f} kB)",
                     f"{dashboard['hexagons']:.2f}"]],
                   right={1})
    trends: dict[str, int] = {}
    for trend in emerging.trends:
        trends[trend.value] = trends.get(trend.value, 0) + 1
    print(f"emerging: {trends}")
    svc.store.close()
    if not same:
        raise SystemExit("gridmap's hotspots differ from the plain esda computation")


if __name__ == "__main__":
    main()
