"""The boundary editor in a real Chromium, against ``python app.py`` serving the demo community.

A planner opens ``/layers/micro_grid/edit``, drags a corner two micro-grids share, splits a unit
with a drawn line, saves the draft, looks at the preview, commits, and finds the new version in
the history with its incidents reassigned.  Every request must stay on the gridmap server and the
console must stay clean.  The page's state is read through ``window.gridmapEditor``; what the
server stored is read outside the browser (``LiveServer.get_json``).

UI text is never matched (the toolbar is translated); elements are found by id.
Screenshots: ``artifacts/screenshots/editor-*.png``.
"""
from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections import Counter, defaultdict
from typing import Any, Iterator
from urllib.parse import urlsplit

import pytest
import shapely
from shapely.geometry import shape

from tests.browser import LiveServer, launch_chromium, screenshot, serving, tab_in
from tests.browser import Tab as BaseTab

pytestmark = pytest.mark.browser

VIEWPORT = {"width": 1280, "height": 800}
EDIT_URL = "/layers/micro_grid/edit"
XSS_NAME = '<img src=x onerror="window.__xss=1">'
LOADED = "() => window.gridmapEditor && window.gridmapEditor.state.loaded === true"
SETTLED = """() => { const m = window.gridmapEditor.map;
                     return !m._animatingZoom && !(m._panAnim && m._panAnim._inProgress); }"""
IDLE = "() => !window.gridmapEditor.state.busy && window.gridmapEditor.state.mode === 'select'"
TO_SCREEN = """([lat, lng]) => { const m = window.gridmapEditor.map;
  const p = m.latLngToContainerPoint([lat, lng]);
  const box = m.getContainer().getBoundingClientRect();
  return [box.left + p.x, box.top + p.y]; }"""
EDITED = "() => window.gridmapEditor.featureCollection()"


class Tab(BaseTab):
    def open_editor(self, server: LiveServer) -> Any:
        response = self.page.goto(server.url + EDIT_URL, wait_until="load")
        self.page.wait_for_function(LOADED)
        return response

    def to_screen(self, lon: float, lat: float) -> tuple[float, float]:
        self.page.wait_for_function(SETTLED)
        x, y = self.page.evaluate(TO_SCREEN, [lat, lon])
        return x, y

    def select(self, code: str) -> None:
        self.page.click(f"#units button[data-code='{code}']")
        self.page.wait_for_function(SETTLED)
        assert self.page.input_value("#f-code") == code

    def edited(self) -> dict[str, dict[str, Any]]:
        """The page's edited level, by code."""
        return {f["properties"]["code"]: f for f in self.page.evaluate(EDITED)["features"]}

# -- fixtures --------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def chromium() -> Iterator[Any]:
    yield from launch_chromium()


@pytest.fixture
def server(chromium: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    """The demo community on its own database, for each test (the editor saves and commits)."""
    yield from serving(tmp_path_factory.mktemp("gridmap-editor"))


@pytest.fixture
def tab(chromium: Any) -> Iterator[Tab]:
    yield from tab_in(chromium, Tab, VIEWPORT)


# -- helpers ---------------------------------------------------------------------------------------

def corners(feature: dict[str, Any]) -> list[tuple[float, float]]:
    return [tuple(xy) for xy in shapely.get_coordinates(shape(feature["geometry"])).tolist()]


def shared_corner(features: list[dict[str, Any]], tab: Tab) -> tuple[tuple[float, float], list[str]]:
    """A corner exactly two micro-grids share, well inside the map, and those two codes."""
    owners: dict[tuple[float, float], set[str]] = defaultdict(set)
    for feature in features:
        for xy in corners(feature):
            owners[xy].add(feature["properties"]["code"])
    box = tab.page.locator("#editor-map").bounding_box()
    for xy, codes in sorted(owners.items()):
        x, y = tab.to_screen(*xy)
        if len(codes) == 2 and box["x"] + 80 < x < box["x"] + box["width"] - 80 \
                and box["y"] + 80 < y < box["y"] + box["height"] - 80:
            return xy, sorted(codes)
    raise AssertionError("no corner shared by exactly two micro-grids lies inside the map")


def shared_edge(features: dict[str, dict[str, Any]]) -> tuple[str, str, tuple[tuple[float, float], ...]]:
    """Two micro-grids that share a whole edge (both corners), and that edge's ends."""
    edges: dict[frozenset, set[str]] = defaultdict(set)
    for code, feature in sorted(features.items()):
        ring = corners(feature)
        for p, q in zip(ring, ring[1:]):
            edges[frozenset((p, q))].add(code)
    for edge, codes in edges.items():
        if len(codes) == 2:
            a, b = sorted(codes)
            return a, b, tuple(sorted(edge))
    raise AssertionError("no two micro-grids share an edge")


def drag(tab: Tab, start: tuple[float, float], dx: float, dy: float) -> None:
    mouse = tab.page.mouse
    mouse.move(*start)
    mouse.down()
    for step in range(1, 11):
        mouse.move(start[0] + dx * step / 10, start[1] + dy * step / 10)
    mouse.up()


def draw_line_across(tab: Tab, feature: dict[str, Any]) -> None:
    """Split mode: a horizontal line through the unit, from outside its west side to outside its east."""
    geometry = shape(feature["geometry"])
    minx, _, maxx, _ = geometry.bounds
    y = geometry.representative_point().y
    west = tab.to_screen(minx - (maxx - minx) * 0.15, y)
    east = tab.to_screen(maxx + (maxx - minx) * 0.15, y)
    tab.page.click("#tool-split")
    tab.page.mouse.click(*west)
    tab.page.mouse.move(east[0] - 30, east[1])
    tab.page.mouse.click(*east)
    tab.page.mouse.click(*east)  # a click on the last point finishes the line
    tab.page.wait_for_function(IDLE)


def post_json(server: LiveServer, path: str, body: Any) -> dict[str, Any]:
    """POST JSON outside the browser; the answer's status and body, also for a 4xx."""
    request = urllib.request.Request(server.url + path, data=json.dumps(body).encode(),
                                     headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return {"status": response.status, "body": json.load(response)}
    except urllib.error.HTTPError as error:
        with error:
            return {"status": error.code, "body": json.load(error)}


def unit_of(incidents: dict[str, Any]) -> dict[int, str | None]:
    return {f["id"]: f["properties"]["units"].get("micro_grid") for f in incidents["features"]}


# -- tests -----------------------------------------------------------------------------------------

def test_editor_shows_every_unit_offline_with_the_grids_behind(server: LiveServer, tab: Tab) -> None:
    layer = server.get_json("/api/layers/micro_grid")
    response = tab.open_editor(server)
    assert response.status == 200
    assert tab.page.get_attribute("html", "lang") == "zh-CN"
    # 20 micro-grids (interactive) + 5 grid outlines behind them (not interactive)
    assert tab.page.locator("#editor-map path.leaflet-interactive").count() == len(layer["features"]) == 20
    assert tab.page.locator("#editor-map path:not(.leaflet-interactive)").count() == 5
    assert tab.page.locator("#units button.unit").count() == 20
    assert tab.edited() == {f["properties"]["code"]: {
        "type": "Feature", "geometry": f["geometry"],
        "properties": {k: v for k, v in f["properties"].items() if k not in ("area_m2", "level")}}
        for f in layer["features"]}, "an untouched level must round-trip exactly"
    assert tab.page.is_disabled("#tool-split") and tab.page.is_disabled("#tool-merge")
    assert tab.page.evaluate("() => window.gridmapEditor.state.version") == layer["version"]
    screenshot(tab.page, "editor-map.png")
    tab.assert_clean(server)
    assert any(urlsplit(u).path.endswith("/leaflet-geoman.min.js") for u in tab.requests)


def test_merging_units_that_only_touch_at_a_corner_is_refused_in_the_panel(server: LiveServer, tab: Tab) -> None:
    tab.open_editor(server)
    features = {f["properties"]["code"]: shape(f["geometry"]) for f in server.get_json(
        "/api/layers/micro_grid")["features"]}
    a, b = next((a, b) for a in sorted(features) for b in sorted(features)
                if a < b and features[a].touches(features[b])
                and features[a].intersection(features[b]).geom_type == "Point")
    tab.select(a)
    tab.page.click("#tool-merge")
    tab.page.click(f"#units button[data-code='{b}']")
    tab.page.wait_for_function(IDLE)
    assert tab.page.is_visible("#messages")
    answer = post_json(server, "/api/edit/merge", {"geometries": [tab.edited()[a]["geometry"],
                                                                  tab.edited()[b]["geometry"]]})
    assert answer["status"] == 400
    assert tab.page.inner_text("#message-title") == answer["body"]["error"]  # the server's words, translated
    assert set(tab.edited()) == set(features), "a refused merge changes nothing"
    # Chromium logs the refused request (a 400) as a failed load; that one is expected.
    tab.errors = [e for e in tab.errors if not ("status of 400" in e and "/api/edit/merge" in e)]
    tab.assert_clean(server)


def test_names_typed_in_the_panel_stay_text(server: LiveServer, tab: Tab) -> None:
    tab.open_editor(server)
    code = sorted(tab.edited())[0]
    tab.select(code)
    tab.page.fill("#f-name", XSS_NAME)
    item = tab.page.locator(f"#units button[data-code='{code}'] span")
    assert item.inner_text() == XSS_NAME
    assert tab.edited()[code]["properties"]["name"] == XSS_NAME
    assert tab.page.locator("#panel img, #editor-map img[src=x]").count() == 0
    assert tab.page.evaluate("() => typeof window.__xss") == "undefined"
    tab.page.click("#tool-undo")
    assert tab.edited()[code]["properties"]["name"] != XSS_NAME
    tab.assert_clean(server)


def test_a_corner_added_on_a_shared_border_goes_into_both_units_and_undo_takes_it_out(
        server: LiveServer, tab: Tab) -> None:
    tab.open_editor(server)
    original = tab.page.evaluate(EDITED)
    features = by_code(server.get_json("/api/layers/micro_grid"))
    a, b, (p, q) = shared_edge(features)
    tab.select(a)
    # Geoman puts a mid-point handle halfway (on screen) along each edge; dragging it adds a corner
    (px, py), (qx, qy) = tab.to_screen(*p), tab.to_screen(*q)
    middle = shape(features[a]["geometry"]).centroid
    cx, cy = tab.to_screen(middle.x, middle.y)
    mx, my = (px + qx) / 2, (py + qy) / 2
    drag(tab, (mx, my), (cx - mx) / 5, (cy - my) / 5)
    edited = tab.edited()
    added = [xy for xy in corners(edited[a]) if xy not in corners(features[a])]
    assert len(added) == 1, added
    assert added[0] in corners(edited[b])
    for code in (a, b):
        assert len(corners(edited[code])) == len(corners(features[code])) + 1
    assert {c for c in edited if edited[c]["geometry"] != features[c]["geometry"]} == {a, b}

    tab.page.click("#tool-undo")
    assert tab.page.evaluate(EDITED) == original
    assert tab.page.locator("#units button.unit.changed").count() == 0
    tab.assert_clean(server)


def test_planner_moves_a_shared_corner_splits_a_unit_saves_and_commits(server: LiveServer, tab: Tab) -> None:
    before = server.get_json("/api/layers/micro_grid")
    incidents_before = unit_of(server.get_json("/api/incidents"))
    tab.open_editor(server)

    # 1. drag a corner two micro-grids share: it moves in both, nothing else changes
    old, (a, b) = shared_corner(before["features"], tab)
    tab.select(a)
    # a quarter of the way to the middle of A: both units stay simple polygons
    middle = shape(by_code(before)[a]["geometry"]).centroid
    start, goal = tab.to_screen(*old), tab.to_screen(old[0] + (middle.x - old[0]) / 4, old[1] + (middle.y - old[1]) / 4)
    drag(tab, start, goal[0] - start[0], goal[1] - start[1])
    edited = tab.edited()
    assert all(shape(edited[c]["geometry"]).is_valid for c in (a, b))
    new = next(xy for xy in corners(edited[a]) if xy not in corners(by_code(before)[a]))
    assert new != old
    for code in (a, b):
        assert new in corners(edited[code]) and old not in corners(edited[code]), code
        assert len(corners(edited[code])) == len(corners(by_code(before)[code]))
    assert {c for c, f in edited.items() if f["geometry"] != by_code(before)[c]["geometry"]} == {a, b}
    assert tab.page.locator("#units button.unit.changed").count() == 2

    # 2. split another unit along a drawn line: two pieces with its name, codes <code>-1, <code>-2
    target = next(f for f in before["features"] if f["properties"]["code"] not in (a, b))
    code = target["properties"]["code"]
    tab.select(code)
    draw_line_across(tab, target)
    edited = tab.edited()
    assert code not in edited, tab.page.inner_text("#panel")
    pieces = [edited[f"{code}-1"], edited[f"{code}-2"]]
    assert [p["properties"]["name"] for p in pieces] == [target["properties"]["name"]] * 2
    assert [p["properties"]["staff"] for p in pieces] == [target["properties"].get("staff")] * 2
    union = shapely.union_all([shape(p["geometry"]) for p in pieces])
    assert union.symmetric_difference(shape(target["geometry"])).area < 1e-12
    assert len(edited) == len(before["features"]) + 1
    screenshot(tab.page, "editor-split.png")

    # 3. save the draft: the preview page of the new version
    tab.page.fill("#author", "规划员甲")
    tab.page.fill("#note", "move a corner, split " + code)
    tab.page.click("#save")
    tab.page.wait_for_function("() => !location.pathname.endsWith('/edit') || "
                               "!document.getElementById('messages').hidden", timeout=30000)
    assert "/versions/" in tab.page.url, tab.page.inner_text("#messages")
    tab.page.wait_for_load_state("load")
    version = int(tab.page.url.rsplit("/", 1)[1])
    assert version > before["version"]
    diff = tab.page.locator("#diff")
    assert diff.is_visible()
    changes = Counter(tab.page.locator("#units-diff tr[data-change]").evaluate_all(
        "rows => rows.map(r => r.dataset.change + ':' + r.children[1].textContent.trim())"))
    assert changes == Counter({f"added:{code}-1": 1, f"added:{code}-2": 1, f"removed:{code}": 1,
                               f"reshaped:{a}": 1, f"reshaped:{b}": 1}), changes
    diff.scroll_into_view_if_needed()
    screenshot(tab.page, "editor-diff.png")

    # 4. commit: the history lists the version as committed with its incident counts
    with tab.page.expect_navigation(url="**/layers/micro_grid/history"):
        tab.page.click("#commit")
    row = tab.page.locator(f"#history tr[data-version='{version}']")
    assert row.get_attribute("data-status") == "committed"
    moved, assigned = int(row.locator("td.moved").inner_text()), int(row.locator("td.assigned").inner_text())
    screenshot(tab.page, "editor-history.png")

    # 5. outside the browser: the stored level is the edited one and the incidents were reassigned
    after = server.get_json("/api/layers/micro_grid")
    assert after["version"] == version
    stored = by_code(after)
    assert set(stored) == set(edited)
    for c in (a, b):
        assert new in corners(stored[c]) and old not in corners(stored[c])
    incidents_after = unit_of(server.get_json("/api/incidents"))
    assert set(incidents_after) == set(incidents_before)
    assert not [i for i, unit in incidents_after.items() if unit == code]
    in_pieces = [i for i, unit in incidents_after.items() if unit in (f"{code}-1", f"{code}-2")]
    assert sorted(in_pieces) == sorted(i for i, unit in incidents_before.items() if unit == code)
    assert moved == sum(incidents_before[i] != incidents_after[i] for i in incidents_after) >= len(in_pieces) > 0
    assert assigned == sum(unit is not None for unit in incidents_after.values())
    tab.assert_clean(server)


def by_code(layer: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {f["properties"]["code"]: f for f in layer["features"]}
