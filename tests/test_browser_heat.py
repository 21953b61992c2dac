"""The map page's heat layer in a real Chromium: painted where the incidents are after every pan
and zoom, asked for again (debounced, stale answers dropped), and — for a filtered view of at
most 10,000 incidents — the same picture as folium's heat map of the raw points.

The data is bench/district.py's synthetic district (400 micro-grids, 30,000 incidents with hot
spots, 2 % outside every unit): more than the page sends at once, so the unfiltered map asks for
each view's cells, while one category (about 2,000 incidents) comes whole.
Screenshots land in artifacts/screenshots/ (heat-*.png).
"""
from __future__ import annotations

import base64
from pathlib import Path
from typing import Any, Iterator
from urllib.parse import parse_qs, urlsplit

import numpy as np
import pytest

from bench.district import STEP, bounds, incident_points
from gridmap.maps import MapLabels, build_map
from tests.browser import AUTH_HEADERS, LiveServer, Tab, launch_chromium, screenshot, serving_district, tab_in

pytestmark = pytest.mark.browser

N, INCIDENTS = 20, 30_000
VIEWPORT = {"width": 960, "height": 640}
# Playwright polls on animation frames by default, which headless Chromium here runs about once a
# second while a page is busy drawing; a timer is steadier.
POLL_MS = 50
# static/map.js has drawn every level's outlines, had their counts, and drawn an answer for the heat.
LOADED = """() => { const s = window.gridmap_mapdata;
  return s && s.drawnAnswers > 0 && Object.values(s.levels).every((l) => l.units && l.counts); }"""
# The heat canvas's pixels as base64 RGBA rows (getImageData, as Leaflet.heat left them).
CANVAS_RGBA = """() => { const c = document.querySelector('#gridmap_map canvas.leaflet-heatmap-layer');
  const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
  let s = '';
  for (let i = 0; i < d.length; i += 0x8000) s += String.fromCharCode.apply(null, d.subarray(i, i + 0x8000));
  return {width: c.width, height: c.height, data: btoa(s)}; }"""
# The last heat answer without its cells (Playwright moves big arrays slowly: seconds for 20,000).
LAST_HEAT = """() => { const h = window.gridmap_mapdata.heat;
  return {zoom: h.zoom, scope: h.scope, total: h.total, cell_deg: h.cell_deg, cells: h.cells.length,
          outside: {total: h.outside.total, points: h.outside.points.length}}; }"""
VIEW = """() => { const m = window.gridmap_map, c = m.getCenter(), s = m.getSize();
  return {lat: c.lat, lng: c.lng, zoom: m.getZoom(), width: s.x, height: s.y, pane: m._getMapPanePos()}; }"""


# -- fixtures --------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def chromium() -> Iterator[Any]:
    yield from launch_chromium()


@pytest.fixture(scope="module")
def server(chromium: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    yield from serving_district(tmp_path_factory.mktemp("gridmap-heat"), n=N, incidents=INCIDENTS)


@pytest.fixture
def tab(chromium: Any) -> Iterator[Tab]:
    yield from tab_in(chromium, Tab, VIEWPORT)


@pytest.fixture
def wide_tab(chromium: Any) -> Iterator[Tab]:
    """Room beside the district for a place with no heat."""
    yield from tab_in(chromium, Tab, {"width": 1280, "height": 800})


# -- helpers ---------------------------------------------------------------------------------------

def hottest_spot() -> tuple[float, float]:
    """(lat, lon) of the busiest 0.001° square of the district's incidents, from the generator."""
    lon, lat = incident_points(INCIDENTS, N)
    counts, xs, ys = np.histogram2d(lon, lat, bins=int(N * STEP / 0.001), range=[[b, b + N * STEP] for b in
                                                                               bounds(N)[:2]])
    i, j = np.unravel_index(np.argmax(counts), counts.shape)
    return float((ys[j] + ys[j + 1]) / 2), float((xs[i] + xs[i + 1]) / 2)


def rgba(tab: Tab) -> np.ndarray:
    found = tab.page.evaluate(CANVAS_RGBA)
    pixels = np.frombuffer(base64.b64decode(found["data"]), dtype=np.uint8)
    return pixels.reshape(found["height"], found["width"], 4).astype(np.int16)


def alpha_at(tab: Tab, lat: float, lon: float) -> int:
    """The heat canvas's opacity (0–255) where ``lat, lon`` is on screen (the canvas covers the map
    from its top-left corner once redrawn)."""
    found = tab.page.evaluate("""([lat, lon]) => {
        const p = window.gridmap_map.latLngToContainerPoint([lat, lon]);
        const c = document.querySelector('#gridmap_map canvas.leaflet-heatmap-layer');
        const [x, y] = [Math.round(p.x), Math.round(p.y)];
        if (x < 0 || y < 0 || x >= c.width || y >= c.height) return {x, y, alpha: null};
        return {x, y, alpha: c.getContext('2d').getImageData(x, y, 1, 1).data[3]}; }""", [lat, lon])
    assert found["alpha"] is not None, f"({lat}, {lon}) is off screen at {found['x']}, {found['y']}"
    return int(found["alpha"])


def heat_urls(tab: Tab) -> list[str]:
    return [u for u in tab.requests if urlsplit(u).path == "/api/heat"]


def moved(tab: Tab, move: str, *args: Any) -> dict[str, Any]:
    """Run ``move`` on the map and wait for the heat answer it leads to and for the redraw."""
    answers = tab.page.evaluate("() => window.gridmap_mapdata.heatAnswers")
    tab.page.evaluate(move, *args)
    tab.page.wait_for_function(f"() => window.gridmap_mapdata.drawnAnswers > {answers}", polling=POLL_MS)
    heat = tab.page.evaluate(LAST_HEAT)
    assert heat["zoom"] == tab.page.evaluate("() => window.gridmap_map.getZoom()")
    return heat


def open_page(tab: Tab, server: LiveServer, query: str = "") -> None:
    tab.page.goto(server.url + "/" + query, wait_until="load")
    tab.page.wait_for_function(LOADED, polling=POLL_MS)


# -- tests -----------------------------------------------------------------------------------------

def test_heat_is_painted_where_the_incidents_are_after_every_pan_and_zoom(server: LiveServer, wide_tab: Tab) -> None:
    tab = wide_tab
    lat, lon = hottest_spot()
    # 140 px east of the district at zoom 14: beyond the outside margin (70 px) and a blob (35 px)
    empty = (lat, bounds(N)[2] + 0.012)
    open_page(tab, server)
    first = tab.page.evaluate(LAST_HEAT)
    assert first["scope"] == "bbox" and first["total"] == INCIDENTS      # the view holds them all
    assert alpha_at(tab, lat, lon) > 200 and alpha_at(tab, *empty) == 0
    screenshot(tab.page, "heat-start.png")

    pan = moved(tab, "() => window.gridmap_map.panBy([150, -100], {animate: false})")
    assert pan["zoom"] == first["zoom"]
    assert alpha_at(tab, lat, lon) > 200 and alpha_at(tab, *empty) == 0

    zoom = moved(tab, "([lat, lon, z]) => window.gridmap_map.setView([lat, lon], z, {animate: false})",
                 [lat, lon, first["zoom"] + 2])
    assert zoom["cell_deg"] == pytest.approx(first["cell_deg"] / 4)
    assert zoom["total"] < INCIDENTS                      # only the view (and a margin) this time
    assert alpha_at(tab, lat, lon) > 200
    screenshot(tab.page, "heat-zoomed.png")

    out = moved(tab, "() => window.gridmap_map.zoomOut(3, {animate: false})")
    assert out["zoom"] == first["zoom"] - 1 and out["total"] == INCIDENTS
    assert alpha_at(tab, lat, lon) > 200

    # each request's box holds the view it was asked for
    url = heat_urls(tab)[-1]
    west, south, east, north = (float(v) for v in parse_qs(urlsplit(url).query)["bbox"][0].split(","))
    view = tab.page.evaluate("() => window.gridmap_map.getBounds().toBBoxString()").split(",")
    vw, vs, ve, vn = (float(v) for v in view)
    assert west < vw and south < vs and east > ve and north > vn
    tab.assert_clean(server)


def test_incidents_outside_every_unit_are_red_points_and_counted(server: LiveServer, tab: Tab) -> None:
    open_page(tab, server)
    heat = tab.page.evaluate(LAST_HEAT)
    expected = int(tab.page.inner_text("#unassigned"))          # the page's total: all in view
    assert expected >= INCIDENTS * 0.02 and heat["outside"]["total"] == expected
    assert heat["outside"]["points"] == expected               # under the limit: every one drawn
    circles = tab.page.evaluate("() => document.querySelectorAll('.leaflet-gridmap-outside-pane path').length")
    assert circles == expected
    assert tab.page.locator("#map-note").is_hidden()
    tab.assert_clean(server)


def test_quick_moves_ask_once_and_a_stale_answer_is_dropped(server: LiveServer, tab: Tab) -> None:
    open_page(tab, server)
    before = len(heat_urls(tab))
    tab.page.evaluate("""() => { const m = window.gridmap_map;
        for (let i = 0; i < 3; i++) m.panBy([10, 0], {animate: false}); }""")
    tab.page.wait_for_timeout(600)
    assert len(heat_urls(tab)) == before + 1                    # debounced: one request for three moves

    held: list[Any] = []
    tab.page.route("**/api/heat?*", lambda route: held.append(route))
    zoom = tab.page.evaluate("() => window.gridmap_map.getZoom()")
    tab.page.evaluate("() => window.gridmap_map.setZoom(window.gridmap_map.getZoom() + 1, {animate: false})")
    while len(held) < 1:
        tab.page.wait_for_timeout(50)
    failed: list[str] = []
    tab.page.on("requestfailed", lambda request: failed.append(request.url))
    tab.page.evaluate("() => window.gridmap_map.setZoom(window.gridmap_map.getZoom() + 1, {animate: false})")
    while len(held) < 2:
        tab.page.wait_for_timeout(50)
    held[1].continue_()
    tab.page.wait_for_function(f"() => window.gridmap_mapdata.heat.zoom === {zoom + 2}", polling=POLL_MS)
    try:
        held[0].continue_()                                     # aborted by the page already
    except Exception:
        pass
    tab.page.wait_for_timeout(300)
    assert tab.page.evaluate("() => window.gridmap_mapdata.heat.zoom") == zoom + 2
    assert "zoom=%d" % (zoom + 1) in failed[0]
    tab.page.unroute("**/api/heat?*")


def raw_heat_page(points_lonlat: np.ndarray) -> str:
    """folium's heat map of the raw points, as the map page drew it before (the same plugin,
    radius, blur and minimum opacity), filling its window."""
    fmap = build_map([], points_lonlat, unassigned=np.empty((0, 2)), tiles=None,
                     labels=MapLabels(name="n", code="c", staff="s", incidents="i", heat="h", unassigned="u"))
    return fmap.get_root().render()


def test_a_filtered_view_looks_like_the_heat_map_of_its_raw_points(server: LiveServer, tab: Tab, chromium: Any,
                                                                   tmp_path: Path) -> None:
    """Same points, same map size, centre and zoom, both canvases laid out from the same pane
    origin: the pictures differ by < 1 level in 255 on average per channel.

    Why that threshold: the raw heat map itself is not pixel-stable. Leaflet.heat sums points in
    17.5-pixel bins aligned to the map pane, so the same view reached by a reset or by a few pixels
    of panning bins differently: measured on this data, 5–12 levels per channel.  Cells of 1.5
    pixels differ from the raw points only where a cell straddles a bin edge: measured 0.02–0.05.
    """
    open_page(tab, server, "?category=litter")
    heat = tab.page.evaluate(LAST_HEAT)
    points = np.array([f["geometry"]["coordinates"] for f in
                       server.get_json("/api/incidents?category=litter")["features"]])
    assert heat["scope"] == "all" and heat["total"] == len(points) <= 10_000
    view = tab.page.evaluate(VIEW)
    context = chromium.new_context(viewport={"width": view["width"], "height": view["height"]},
                                   extra_http_headers=AUTH_HEADERS)
    try:
        raw = Tab(context)
        html = raw_heat_page(points)
        raw.page.route(server.url + "/raw-heat.html", lambda route: route.fulfill(body=html, content_type="text/html"))
        raw.page.goto(server.url + "/raw-heat.html", wait_until="load")
        raw.page.wait_for_function("() => window.gridmap_map instanceof L.Map", polling=POLL_MS)
        for zoom in (view["zoom"], view["zoom"] + 2):
            if zoom != view["zoom"]:
                moved(tab, "([lat, lon, z]) => window.gridmap_map.setView([lat, lon], z, {reset: true})",
                      [view["lat"], view["lng"] + 0.004, zoom])
            here = tab.page.evaluate(VIEW)
            assert here["pane"] == {"x": 0, "y": 0}
            raw.page.evaluate("(v) => window.gridmap_map.setView([v.lat, v.lng], v.zoom, {reset: true})", here)
            ours, theirs = rgba(tab), rgba(raw)
            assert ours.shape == theirs.shape
            difference = np.abs(ours - theirs).mean(axis=(0, 1))
            painted = (ours[..., 3] > 0).mean(), (theirs[..., 3] > 0).mean()
            assert painted[1] > 0.05 and abs(painted[0] - painted[1]) < 0.002, painted
            assert (difference < 1.0).all(), f"zoom {zoom}: mean |difference| per RGBA channel {difference}"
            screenshot(tab.page, f"heat-cells-z{zoom}.png")
            screenshot(raw.page, f"heat-raw-z{zoom}.png")
        raw.assert_clean(server)
    finally:
        context.close()
    tab.assert_clean(server)
