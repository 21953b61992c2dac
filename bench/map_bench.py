"""Benchmark: the map page at a district's size — the page, its data API, the heat painted in
Chromium and the server's memory — side by side with folium's heat map of the raw points.

    .venv/bin/python bench/map_bench.py [--db /tmp/gridmap-map-bench.db] [--incidents 1000000] [--n 100]
                                        [--no-browser] [--no-raw]

The store (``--n``² micro-grids under (n/10)² grids, ``--incidents`` clustered incidents, from
bench/district.py through the service's own importers) is made once at ``--db`` and reused while
it exists.  A fresh ``python app.py`` serves it; every time is a request's wall time seen by a
client on the same machine (first = the first request of the process, which also reads the layers
from the store).  *heat painted* is Chromium's time from navigation to the first heat canvas with
painted pixels.  *raw folium* builds the page the way the map page did before: every point in a
folium HeatMap.
"""
from __future__ import annotations

import argparse
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.assign_bench import machine, markdown_table  # noqa: E402
from bench.district import make_district  # noqa: E402

TARGETS = {"page": 2_000_000, "server_s": 1.5, "painted_s": 2.5, "rss_mb": 600}
PAINTED = """() => { const c = document.querySelector('#gridmap_map canvas.leaflet-heatmap-layer');
  const s = window.gridmap_mapdata;
  if (!c || !s || !s.drawnAnswers) return false;
  const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
  for (let i = 3; i < d.length; i += 4) if (d[i] > 0) return performance.now();
  return false; }"""


def store(db: Path, n: int, incidents: int) -> str:
    url = f"sqlite:///{db}"
    if db.exists():
        print(f"store: reusing {db}")
        return url
    print(f"store: making {db} ({n}×{n} micro-grids, {incidents:,} incidents) …", flush=True)
    start = time.perf_counter()
    make_district(url, n=n, incidents=incidents).store.close()
    print(f"store: made in {time.perf_counter() - start:.0f} s")
    return url


def get(base: str, path: str, headers: dict[str, str] | None = None) -> tuple[int, bytes, float, dict[str, str]]:
    request = urllib.request.Request(base + path, headers={"Accept-Encoding": "gzip", **(headers or {})})
    start = time.perf_counter()
    try:
        with urllib.request.urlopen(request, timeout=600) as response:
            body = response.read()
            status, found = response.status, dict(response.headers)
    except urllib.error.HTTPError as error:      # 304 arrives as an "error"
        body, status, found = error.read(), error.code, dict(error.headers)
    return status, body, time.perf_counter() - start, found


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def painted(base: str, tmp: Path) -> tuple[float, str]:
    """Seconds from navigation to a painted heat canvas in Chromium, and the heat URL it asked for."""
    from playwright.sync_api import sync_playwright

    from tests.browser import CHROMIUM, CHROMIUM_ARGS
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        page = browser.new_context(viewport={"width": 1280, "height": 800}).new_page()
        heat_urls: list[str] = []
        page.on("request", lambda r: heat_urls.append(r.url) if "/api/heat" in r.url else None)
        page.goto(base + "/", wait_until="commit", timeout=600_000)
        at = page.wait_for_function(PAINTED, polling=20, timeout=600_000).json_value()
        page.screenshot(path=str(tmp / "map-bench.png"))
        browser.close()
    return at / 1000, heat_urls[0].removeprefix(base)


def raw_folium(db: str) -> tuple[float, int]:
    """Build and render folium's heat map of every incident, as the page did: seconds, bytes."""
    from gridmap.maps import MapLabels, build_map
    from gridmap.storage import open_store
    points_store = open_store(db)
    table = points_store.incident_table()
    lon, lat = table["lon"], table["lat"]
    points_store.close()
    start = time.perf_counter()
    html = build_map([], np.c_[lon, lat], unassigned=np.empty((0, 2)), tiles=None,
                     labels=MapLabels(name="n", code="c", staff="s", incidents="i", heat="h", unassigned="u")
                     ).get_root().render()
    return time.perf_counter() - start, len(html.encode())


def row(what: str, size: int | None, seconds: float | None, target: str, note: str = "") -> list[str]:
    return [what, f"{size:,}" if size is not None else "", f"{seconds:.3f}" if seconds is not None else "",
            target, note]


def run(args: Any) -> list[list[str]]:
    from tests.browser import LiveServer
    db = store(Path(args.db), args.n, args.incidents)
    workdir = Path(args.db).parent
    live = LiveServer(workdir, env={"GRIDMAP_DATABASE_URL": db, "GRIDMAP_LOAD_DEMO": "0"}).start()
    rows: list[list[str]] = []
    try:
        status, page, first, _ = get(live.url, "/")
        assert status == 200, page[:500]
        _, _, again, _ = get(live.url, "/")
        rows.append(row("GET / (first)", len(page), first, f"≤ {TARGETS['page']:,} B, ≤ {TARGETS['server_s']} s"))
        rows.append(row("GET / (again)", len(page), again, f"≤ {TARGETS['server_s']} s"))
        for level in ("grid", "micro_grid"):
            status, body, built, headers = get(live.url, f"/api/outlines/{level}")
            _, _, cached, _ = get(live.url, f"/api/outlines/{level}")
            code304, _, revalidated, _ = get(live.url, f"/api/outlines/{level}", {"If-None-Match": headers["ETag"]})
            rows.append(row(f"/api/outlines/{level} (first: simplify + encode)", len(body), built, "",
                            f"gzip; {headers.get('Content-Encoding', 'plain')}"))
            rows.append(row(f"/api/outlines/{level} (cached)", len(body), cached, ""))
            rows.append(row(f"/api/outlines/{level} (If-None-Match → {code304})", 0, revalidated, ""))
            _, counts, t_counts, _ = get(live.url, f"/api/outlines/{level}/counts?version=1")
            rows.append(row(f"/api/outlines/{level}/counts", len(counts), t_counts, ""))
        heat_url = None
        if not args.no_browser:
            seconds, heat_url = painted(live.url, workdir)
            rows.append(row("heat painted in Chromium (navigation → pixels)", None, seconds,
                            f"≤ {TARGETS['painted_s']} s", f"screenshot {workdir / 'map-bench.png'}"))
        heat_url = heat_url or "/api/heat?bbox=113.95,29.95,114.25,30.25&zoom=13"
        status, body, t_heat, headers = get(live.url, heat_url)
        assert status == 200, body[:500]
        rows.append(row(f"{heat_url.split('&')[0][:40]}… (initial view)", len(body), t_heat,
                        f"≤ {TARGETS['server_s']} s", f"gzip; {headers.get('Content-Encoding', 'plain')}"))
        rss = rss_mb(live.process.pid) if live.process else float("nan")
        rows.append(["server RSS after the page and its data", "", "", f"≤ {TARGETS['rss_mb']} MB", f"{rss:.0f} MB"])
    finally:
        live.stop()
    if not args.no_raw:
        seconds, size = raw_folium(db)
        rows.append(row("raw folium HeatMap of every point (build + render)", size, seconds, "(before)"))
    return rows


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--db", default="/tmp/gridmap-map-bench/gridmap.db")
    parser.add_argument("--incidents", type=int, default=1_000_000)
    parser.add_argument("--n", type=int, default=100)
    parser.add_argument("--no-browser", action="store_true", help="skip the Chromium paint time")
    parser.add_argument("--no-raw", action="store_true", help="skip folium's raw heat map")
    args = parser.parse_args(argv)
    Path(args.db).parent.mkdir(parents=True, exist_ok=True)
    print(f"machine: {machine()}")
    rows = run(args)
    markdown_table(["what", "bytes", "seconds", "target", "note"], rows, right={1, 2})


if __name__ == "__main__":
    main()
