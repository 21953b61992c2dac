"""Benchmark: SQLite and PostGIS side by side at district scale — import, map aggregation, lookup.

    .venv/bin/python bench/backends.py --postgis URL [--incidents 1000000] [--dir /tmp/gridmap-backends]

``URL`` is a PostgreSQL server with PostGIS (``scripts/postgis start DIR`` makes one and prints
it).  For N incidents (bench/district.py's CSV) over 10,000 micro-grids under 100 grids, on a
SQLite file and on a PostGIS database, in the same run:

* import: ``python -m gridmap import-incidents FILE`` in a fresh process (SQLite: executemany and
  json_each; PostGIS: COPY), with its peak memory;
* map aggregation, through the store (best of 3): every incident's columns as a server process
  loads them for the heat map (``incident_table``), the heat cells of the whole district computed by
  the store (a unit's incidents take this path), incidents per micro-grid (the choropleth), per month;
* lookup over HTTP: ``GET /api/lookup`` under the production server (bench/lookup.py's client).

Reassignment (single process, Dask, PostGIS in the database) is bench/reassign.py's.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Callable

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.assign_bench import machine, markdown_table  # noqa: E402
from bench.ingest import district_and_csv, fresh_store, gridmap_import, postgis_store  # noqa: E402
from bench.lookup import over_http  # noqa: E402


def best_of(work: Callable[[], object], times: int = 3) -> float:
    best = float("inf")
    for _ in range(times):
        start = time.perf_counter()
        work()
        best = min(best, time.perf_counter() - start)
    return best


def aggregation(url: str) -> dict[str, float]:
    from gridmap.levels import Level
    from gridmap.storage import IncidentQuery, open_store
    store = open_store(url)
    version = store.versions()[Level.MICRO_GRID]
    figures = {"columns": best_of(store.incident_table),
               "heat": best_of(lambda: store.heat(IncidentQuery(), cell_deg=0.002)),
               "units": best_of(lambda: store.unit_counts(Level.MICRO_GRID, version)),
               "months": best_of(lambda: store.counts(IncidentQuery(), "month"))}
    store.close()
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--postgis", metavar="URL", required=True)
    parser.add_argument("--incidents", type=int, default=1_000_000)
    parser.add_argument("--requests", type=int, default=2_000)
    parser.add_argument("--dir", type=Path, default=Path("/tmp/gridmap-backends"))
    args = parser.parse_args()
    template, csv = district_and_csv(args.dir, args.incidents)
    stores = {"SQLite": fresh_store(args.dir, "sqlite.db", template),
              "PostGIS": postgis_store(args.postgis, f"backends_{args.incidents}")}
    rows, aggregated, http = [], {}, {}
    for name, db in stores.items():
        url = db if isinstance(db, str) else f"sqlite:///{db}"
        done = gridmap_import(db, csv)
        rows.append([f"import {args.incidents:,} rows, CLI ({name})", f"{done['s']:.1f} s",
                     f"{args.incidents / done['s']:,.0f} rows/s, peak {done['peak_mb']:.0f} MB"])
        aggregated[name] = aggregation(url)
        http[name] = over_http(url, args.requests)[0][1]
    print(machine())
    print(f"{args.incidents:,} incidents over 10,000 micro-grids under 100 grids (bench/district.py)\n")
    markdown_table(["import", "time", "rate"], rows)
    print()
    labels = {"columns": "every incident's columns (a server's heat-map table)", "heat": "heat cells of the "
              "whole district, 0.002°, by the store", "units": "incidents per micro-grid (choropleth)",
              "months": "incidents per month"}
    markdown_table(["map aggregation (best of 3)", *stores],
                   [[label, *(f"{aggregated[name][key]:.2f} s" for name in stores)] for key, label in labels.items()],
                   right={1, 2})
    print()
    markdown_table(["lookup over HTTP (gunicorn 2 workers)", *stores], [["GET /api/lookup", *http.values()]])


if __name__ == "__main__":
    main()
