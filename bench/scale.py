"""Scaling curves: time and peak memory of import, map, commit and lookup as incidents and units grow.

    .venv/bin/python bench/scale.py                       # the curves in docs/benchmarks.md (~15 min)
    .venv/bin/python bench/scale.py --incidents 10000,100000 --units 25,2500   # a quick look

Two curves over the synthetic district of ``bench/district.py`` (micro-grids under grids of 10×10):
incidents 10k → 1M → 5M at 10,000 micro-grids, and micro-grids 25 → 10,000 → ~100,000 at 1M
incidents.  Each point builds a fresh SQLite store in --dir, then runs every phase in its own
process, so "peak MB" is that phase's own peak resident memory (ru_maxrss), the interpreter and
libraries included (about 150 MB of it):

* import: the CSV (as grid offices export it) through ``Gridmap.import_incidents`` — the CLI's path;
* map: the server's start (it reads the layers and the heat map's table of incidents), then the
  heat-map page and what it asks for, through the Flask app: ``GET /``, ``GET /api/heat``
  for the district at zoom 13, and ``GET /api/outlines/micro_grid`` (simplified once per version);
* lookup: 20,000 ``Gridmap.lookup`` calls in process at incident positions, twice (µs per call the
  second time; the first 20,000 include building the index's raster once they have paid for it);
* commit: the micro-grid level redrawn (other jitter) and committed: read, checks, every incident
  reassigned, the assignments written.
"""
from __future__ import annotations

import argparse
import json
import logging
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.assign_bench import machine, markdown_table  # noqa: E402
from bench.district import bounds, district_geojson, incident_points, incidents_csv  # noqa: E402

PHASES = ("import", "map", "lookup", "commit")


def _block(n: int) -> int:
    return 10 if n % 10 == 0 else n


def peak_mb() -> float:
    """This process's peak resident memory (VmHWM): not ``ru_maxrss``, which after ``exec`` keeps the
    peak of the process it was forked from (here: the bench, holding the generated CSV)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _service(db: Path):
    from gridmap.service import Gridmap
    from gridmap.storage import open_store
    return Gridmap(open_store(f"sqlite:///{db}"), service_area=None)


def run_phase(phase: str, db: Path, n: int, incidents: int, csv: Path) -> dict:
    """One phase in this process; returns its figures."""
    from gridmap.changes import LayerOptions, SaveMode
    from gridmap.levels import Level
    if phase == "layers":
        svc = _service(db)
        grids, micro = district_geojson(n, _block(n))
        start = time.perf_counter()
        svc.import_layer(Level.GRID, grids, LayerOptions(filename="grid.geojson"))
        svc.import_layer(Level.MICRO_GRID, micro, LayerOptions(filename="micro_grid.geojson"))
        return {"s": time.perf_counter() - start}
    if phase == "import":
        svc = _service(db)
        data = csv.read_bytes()
        start = time.perf_counter()
        result = svc.import_incidents(data, filename=csv.name)
        elapsed = time.perf_counter() - start
        assert result.created == incidents and not result.errors, (result.created, result.errors[:3])
        return {"s": elapsed, "per_s": incidents / elapsed}
    if phase == "map":
        import os
        os.environ.update({"GRIDMAP_DATABASE_URL": f"sqlite:///{db}", "GRIDMAP_LOAD_DEMO": "0", "GRIDMAP_TILES": "none",
                           "GRIDMAP_SERVICE_AREA": "none"})
        from app import _warm, create_app
        start = time.perf_counter()
        app = create_app()
        _warm(app, logging.getLogger("bench"))          # what a server does in a thread as it starts
        client = app.test_client()
        west, south, east, north = bounds(n)
        figures = {"warm_s": time.perf_counter() - start}
        for name, url in (("page", "/"), ("heat", f"/api/heat?bbox={west},{south},{east},{north}&zoom=13"),
                          ("outlines", "/api/outlines/micro_grid"), ("outlines_again", "/api/outlines/micro_grid")):
            start = time.perf_counter()
            response = client.get(url)
            figures[f"{name}_s"] = time.perf_counter() - start
            figures[f"{name}_kb"] = len(response.data) / 1024
            assert response.status_code == 200, (url, response.status_code, response.data[:300])
        return figures
    if phase == "lookup":
        svc = _service(db)
        lon, lat = incident_points(20_000, n, seed=99)
        points = list(zip(lon.tolist(), lat.tolist()))
        start = time.perf_counter()
        svc.lookup(*points[0])
        first = time.perf_counter() - start
        start = time.perf_counter()
        for x, y in points:          # the index builds its raster once lookups have paid for it
            svc.lookup(x, y)
        warming = time.perf_counter() - start
        start = time.perf_counter()
        for x, y in points:
            svc.lookup(x, y)
        return {"first_s": first, "warming_us": warming / len(points) * 1e6,
                "us": (time.perf_counter() - start) / len(points) * 1e6}
    if phase == "commit":
        svc = _service(db)
        svc.warm()                          # as a running server has it
        _, micro = district_geojson(n, _block(n), seed=9)
        start = time.perf_counter()
        preview = svc.save_layer(Level.MICRO_GRID, micro, LayerOptions(filename="m.geojson"), mode=SaveMode.PREVIEW)
        middle = time.perf_counter()
        svc.save_layer(Level.MICRO_GRID, micro, LayerOptions(filename="m.geojson"), mode=SaveMode.COMMIT)
        return {"preview_s": middle - start, "s": time.perf_counter() - middle, "moved": preview.diff.moved}
    raise ValueError(phase)


def point(n: int, incidents: int, workdir: Path) -> dict[str, dict]:
    """Every phase for one district size and incident count, each in a fresh process."""
    db = workdir / f"u{n * n}_i{incidents}.db"
    for stale in workdir.glob(db.name + "*"):
        stale.unlink()
    csv = workdir / f"incidents_{n}_{incidents}.csv"
    if not csv.exists():
        incidents_csv(incidents, csv, n)
    out: dict[str, dict] = {}
    for phase in ("layers", *PHASES):
        done = subprocess.run([sys.executable, __file__, "--phase", phase, "--db", str(db), "--n", str(n),
                               "--count", str(incidents), "--csv", str(csv)], capture_output=True, text=True)
        if done.returncode != 0:
            raise SystemExit(f"{phase} at {n * n} units, {incidents} incidents failed:\n{done.stderr[-3000:]}")
        out[phase] = json.loads(done.stdout.strip().splitlines()[-1])
        print(f"  {n * n:>7,} units {incidents:>9,} incidents  {phase:<7} {out[phase]}", file=sys.stderr)
    return out


def rows_of(results: list[tuple[int, int, dict]]) -> list[list[str]]:
    rows = []
    for units, incidents, r in results:
        imp, page, look, com = r["import"], r["map"], r["lookup"], r["commit"]
        rows.append([f"{units:,}", f"{incidents:,}",
                     f"{imp['s']:.1f} s ({imp['per_s'] / 1000:,.0f}k/s), {imp['peak_mb']:.0f} MB",
                     f"start {page['warm_s']:.1f} s; {page['page_s']:.2f} s / {page['page_kb']:.0f} kB; "
                     f"heat {page['heat_s']:.2f} s / "
                     f"{page['heat_kb']:.0f} kB; outlines {page['outlines_s']:.2f} s / {page['outlines_kb']:.0f} kB "
                     f"(again {page['outlines_again_s'] * 1000:.0f} ms); {page['peak_mb']:.0f} MB",
                     f"{look['us']:.1f} µs (first {look['first_s']:.2f} s, first 20k {look['warming_us']:.0f} µs), "
                     f"{look['peak_mb']:.0f} MB",
                     f"preview {com['preview_s']:.1f} s, commit {com['s']:.1f} s, {com['peak_mb']:.0f} MB"])
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--incidents", default="10000,1000000,5000000", help="the incident curve, at --base-units")
    parser.add_argument("--units", default="25,10000,99856", help="the unit curve (n×n), at --base-incidents")
    parser.add_argument("--base-units", type=int, default=10_000)
    parser.add_argument("--base-incidents", type=int, default=1_000_000)
    parser.add_argument("--dir", type=Path, default=None, help="where stores and CSVs go (default: a temp dir)")
    parser.add_argument("--phase", help=argparse.SUPPRESS)
    parser.add_argument("--db", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--n", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--count", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--csv", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.phase:
        figures = run_phase(args.phase, args.db, args.n, args.count, args.csv)
        print(json.dumps({**figures, "peak_mb": peak_mb()}))
        return
    side = lambda units: round(units ** 0.5)      # noqa: E731 - units are n×n micro-grids
    curve = [(side(args.base_units), int(c)) for c in args.incidents.split(",")]
    curve += [(side(int(u)), args.base_incidents) for u in args.units.split(",")
              if (side(int(u)), args.base_incidents) not in curve]
    with tempfile.TemporaryDirectory() as tmp:
        workdir = args.dir or Path(tmp)
        workdir.mkdir(parents=True, exist_ok=True)
        results = [(n * n, count, point(n, count, workdir)) for n, count in curve]
    print(machine())
    markdown_table(["micro-grids", "incidents", "import", "map (page; heat; outlines)", "lookup",
                    "preview and commit"], rows_of(results))


if __name__ == "__main__":
    main()
