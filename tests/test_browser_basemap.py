"""The basemap in a real Chromium: tiles that cannot be reached cost one request and one note,
not a flood of errors; GCJ-02 tiles (Gaode-style) get every layer shifted onto them, exactly as
gridmap.chinacoords computes the shift.  Each test has its own server (its tile settings)."""
from __future__ import annotations

import io
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Iterator
from urllib.parse import urlsplit

import numpy as np
import pytest
from PIL import Image
from shapely.geometry import shape

from gridmap.chinacoords import wgs84_to_gcj02
from tests.browser import LiveServer, Tab, free_port, launch_chromium, tab_in

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def chromium() -> Iterator[Any]:
    yield from launch_chromium()


@pytest.fixture
def tab(chromium: Any) -> Iterator[Tab]:
    yield from tab_in(chromium, Tab, {"width": 1100, "height": 760})


@pytest.fixture
def tiles() -> Iterator[tuple[str, list[str]]]:
    """A tile server on loopback answering every tile with a grey PNG; the paths it was asked for."""
    body = io.BytesIO()
    Image.new("RGB", (256, 256), (220, 220, 210)).save(body, format="PNG")
    asked: list[str] = []

    class Tiles(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - the http.server API
            asked.append(self.path)
            self.send_response(200)
            self.send_header("Content-Type", "image/png")
            self.end_headers()
            self.wfile.write(body.getvalue())

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", free_port()), Tiles)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_port}/{{z}}/{{x}}/{{y}}.png", asked
    server.shutdown()
    server.server_close()


LOADED = """() => { const s = window.gridmap_mapdata;
  return s && s.heatAnswers > 0 && Object.values(s.levels).every((l) => l.units && l.counts); }"""


def serve(tmp_path_factory: pytest.TempPathFactory, **env: str) -> LiveServer:
    return LiveServer(tmp_path_factory.mktemp("gridmap-basemap"), env=env).start()


def open_map(tab: Tab, url: str) -> None:
    tab.page.goto(url)
    tab.page.wait_for_function(LOADED, polling=50, timeout=60_000)


def test_tiles_out_of_reach_cost_one_request_and_one_note(tab: Tab, tmp_path_factory) -> None:
    dead = f"127.0.0.1:{free_port()}"                      # nothing listens there
    live = serve(tmp_path_factory, GRIDMAP_TILES=f"http://{dead}/{{z}}/{{x}}/{{y}}.png")
    try:
        open_map(tab, live.url + "/")
        note = tab.page.locator(".basemap-note")
        note.wait_for(state="visible")
        assert note.inner_text().startswith(f"底图（{dead}）无法访问")
        tab.page.mouse.wheel(0, -400)                      # a zoom: no new tile is asked for
        tab.page.wait_for_timeout(500)
        assert [u for u in tab.requests if urlsplit(u).netloc == dead] != []
        assert len([u for u in tab.requests if urlsplit(u).netloc == dead]) == 1
        assert tab.page.locator(".basemap-note").count() == 1
        assert tab.page.locator("#gridmap_map path").count() > 20      # the layers are drawn all the same
    finally:
        live.stop()


def test_gcj02_tiles_get_every_layer_shifted_onto_them(tab: Tab, tmp_path_factory, tiles) -> None:
    url, asked = tiles
    live = serve(tmp_path_factory, GRIDMAP_TILES=url, GRIDMAP_TILES_CRS="GCJ02")
    try:
        open_map(tab, live.url + "/")
        tab.page.wait_for_function("() => window.gridmap_basemap_loaded === true")
        assert asked and tab.page.locator(".leaflet-tile").count() > 0
        unit = live.get_json("/api/layers/micro_grid")["features"][0]
        code = unit["properties"]["code"]
        drawn = tab.page.evaluate("""(code) => {
            const entry = window.gridmap_mapdata.levels.micro_grid;
            const i = entry.units.code.indexOf(code);
            let found = null;
            entry.group.eachLayer((layer) => { if (layer.unitIndex === i) found = layer.getLatLngs(); });
            return found.flat(3).map((p) => [p.lat, p.lng]);
        }""", code)
        assert drawn, "no outline drawn"
        lats, lngs = np.array(drawn).T
        stored = shape(unit["geometry"]).exterior
        x, y = np.array(stored.xy[0]), np.array(stored.xy[1])
        gx, gy = wgs84_to_gcj02(x, y)
        # drawn off the stored outline by the GCJ-02 shift there (hundreds of metres) ...
        assert abs(float(np.mean(gx - x))) > 0.003 and abs(float(np.mean(lngs)) - float(np.mean(x))) > 0.003
        # ... each drawn corner onto a shifted stored corner (the outline is sent at 1e-6 degrees)
        nearest = np.min(np.hypot(lngs[:, None] - gx[None, :], lats[:, None] - gy[None, :]), axis=1)
        assert float(nearest.max()) < 2e-6, nearest
        assert not tab.errors, tab.errors
    finally:
        live.stop()


def test_the_editor_on_gcj02_tiles_draws_shifted_and_saves_what_was_stored(tab: Tab, tmp_path_factory,
                                                                           tiles) -> None:
    url, _ = tiles
    live = serve(tmp_path_factory, GRIDMAP_TILES=url, GRIDMAP_TILES_CRS="GCJ02")
    try:
        page = tab.page
        page.goto(live.url + "/layers/micro_grid/edit")
        page.wait_for_function("() => window.gridmapEditor && window.gridmapEditor.state.loaded === true",
                               timeout=60_000)
        unit = live.get_json("/api/layers/micro_grid")["features"][0]
        code = unit["properties"]["code"]
        drawn = np.array(page.evaluate("""(code) => window.gridmapEditor.unit(code).layer.getLatLngs()
            .flat(3).map((p) => [p.lng, p.lat])""", code))
        stored = np.array(shape(unit["geometry"]).exterior.coords)[:-1]
        gx, gy = wgs84_to_gcj02(stored[:, 0], stored[:, 1])
        assert np.abs(drawn[:, 0] - gx).max() < 1e-9 and np.abs(drawn[:, 1] - gy).max() < 1e-9    # shifted
        assert np.abs(drawn[:, 0] - stored[:, 0]).min() > 0.003
        # what the editor would save: the stored corners again (shifted back), not the drawn ones
        saved = page.evaluate("""(code) => window.gridmapEditor.featureCollection().features
            .find((f) => f.properties.code === code).geometry.coordinates[0]""", code)
        assert np.abs(np.array(saved)[:-1] - stored).max() < 1e-8
        assert not tab.errors, tab.errors
    finally:
        live.stop()
