"""The boundary editor in a real Chromium, against ``python app.py`` serving the demo community.

A planner opens ``/layers/micro_grid/edit``, drags a corner two micro-grids share, splits a unit
with a drawn line, saves the draft, looks at the preview, commits, and finds the new version in
the history with its incidents reassigned.  Every request must stay on the gridmap server and the
console must stay clean.  The page's state is read through ``window.gridmapEditor``; what the
server stored is read outside the browser (``LiveServer.get_json``).

The grids stay the parents of the micro-grids: a micro-grid corner on a grid's line moves the grid's
line with it, a corner added on such a line goes into the grid too, Undo restores both levels, and
the save sends the edited grids along.  Labels show only where they fit on screen; the code of a
unit too small for one shows on hover.

UI text is never matched (the toolbar is translated); elements are found by id.
Screenshots: ``artifacts/screenshots/editor-*.png``.
"""
from __future__ import annotations

import json
import math
import urllib.error
import urllib.request
from collections import Counter, defaultdict
from typing import Any, Iterator
from urllib.parse import urlsplit

import pytest
import shapely
from shapely.geometry import Point, shape

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
PARENT = "() => window.gridmapEditor.parentCollection()"
SUMMARY = "() => ({...document.getElementById('summary').dataset})"
SET_VIEW = "([lat, lng, zoom]) => window.gridmapEditor.map.setView([lat, lng], zoom, {animate: false})"
LABELS = "#editor-map .leaflet-tooltip.unit-label"
HOVER_TIP = "#editor-map .leaflet-tooltip.unit-tip"
FADED = "(selector) => [...document.querySelectorAll(selector)].every(e => e.style.opacity !== '0')"
# A micro-grid inside its grid leaves less than 0.01 m² outside it.  Near 34.74° N a degree of
# latitude is 110.9 km and one of longitude 91.5 km, so 1 deg² ≈ 1.01e10 m² and 0.01 m² ≈ 1e-12 deg².
OUTSIDE_DEG2 = 1e-12
# On a line: the demo's shared corners are exact copies, so a billionth of a degree (0.1 mm) is plenty.
ON_LINE_DEG = 1e-9


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

    def parents(self) -> dict[str, dict[str, Any]]:
        """The page's parent level (the grids) as edited, by code."""
        return {f["properties"]["code"]: f for f in self.page.evaluate(PARENT)["features"]}

    def on_screen(self, xy: tuple[float, float], margin: float = 80) -> bool:
        box = self.page.locator("#editor-map").bounding_box()
        x, y = self.to_screen(*xy)
        return box["x"] + margin < x < box["x"] + box["width"] - margin \
            and box["y"] + margin < y < box["y"] + box["height"] - margin

    def set_view(self, lon: float, lat: float, zoom: int) -> None:
        self.page.evaluate(SET_VIEW, [lat, lon, zoom])
        self.page.wait_for_function(SETTLED)

    def labels(self) -> list[str]:
        """The codes on permanent labels, once the ones closed have faded out (Leaflet takes 200 ms)."""
        self.page.wait_for_function(FADED, arg=LABELS)
        return sorted(self.page.locator(LABELS).all_inner_texts())

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


def grid_corner(micro: dict[str, dict[str, Any]], grids: dict[str, dict[str, Any]],
                tab: Tab) -> tuple[tuple[float, float], list[str], list[str]]:
    """A micro-grid corner on the line between two or more grids, well inside the map: the corner,
    the micro-grids that have it and the grids whose line passes through it."""
    lines = {code: shape(f["geometry"]).boundary for code, f in grids.items()}
    owners: dict[tuple[float, float], set[str]] = defaultdict(set)
    for code, feature in micro.items():
        for xy in corners(feature):
            owners[xy].add(code)
    for xy, codes in sorted(owners.items()):
        parents = sorted(g for g, line in lines.items() if line.distance(Point(xy)) < ON_LINE_DEG)
        if len(parents) >= 2 and tab.on_screen(xy):
            return xy, sorted(codes), parents
    raise AssertionError("no micro-grid corner on a line between two grids lies inside the map")


def grid_edge(micro: dict[str, dict[str, Any]], grids: dict[str, dict[str, Any]],
              tab: Tab) -> tuple[str, tuple[tuple[float, float], tuple[float, float]], list[str]]:
    """A micro-grid edge that is also a whole grid edge, both ends inside the map and at least 80 px
    apart: the micro-grid (the first by code), the edge's ends and the grids that have that edge."""
    def edges(feature: dict[str, Any]) -> set[frozenset]:
        ring = corners(feature)
        return {frozenset(pq) for pq in zip(ring, ring[1:])}
    grid_edges = {code: edges(f) for code, f in grids.items()}
    for code, feature in sorted(micro.items()):
        for edge in sorted(edges(feature), key=sorted):
            p, q = sorted(edge)
            (px, py), (qx, qy) = tab.to_screen(*p), tab.to_screen(*q)
            holders = sorted(g for g, e in grid_edges.items() if edge in e)
            if holders and tab.on_screen(p) and tab.on_screen(q) and math.hypot(qx - px, qy - py) > 80:
                return code, (p, q), holders
    raise AssertionError("no micro-grid edge is a whole grid edge inside the map")


def cut_on_grid_edge(micro: dict[str, dict[str, Any]], grids: dict[str, dict[str, Any]],
                     tab: Tab) -> tuple[str, tuple[float, float], list[str]]:
    """A micro-grid (the first by code) whose cut by ``draw_line_across`` ends inside the map in the
    middle of an edge between two grids: its code, that end and those grids."""
    lines = {code: shape(f["geometry"]).boundary for code, f in grids.items()}
    grid_corners = {xy for f in grids.values() for xy in corners(f)}
    for code, feature in sorted(micro.items()):
        geometry = shape(feature["geometry"])
        minx, _, maxx, _ = geometry.bounds
        y = geometry.representative_point().y
        ends = geometry.boundary.intersection(shapely.LineString([(minx - 1, y), (maxx + 1, y)]))
        for end in sorted(tuple(xy) for xy in shapely.get_coordinates(ends).tolist()):
            parents = sorted(g for g, line in lines.items() if line.distance(Point(end)) < ON_LINE_DEG)
            if len(parents) >= 2 and all(Point(end).distance(Point(xy)) > 1e-6 for xy in grid_corners) \
                    and tab.on_screen(end):
                return code, end, parents
    raise AssertionError("no micro-grid cut ends in the middle of an edge between two grids")


def drag_towards_middle(tab: Tab, unit: dict[str, Any], xy: tuple[float, float], share: float) -> None:
    """Drag the corner at ``xy`` ``share`` of the way to the middle of ``unit`` (on screen)."""
    middle = shape(unit["geometry"]).centroid
    start, goal = tab.to_screen(*xy), tab.to_screen(middle.x, middle.y)
    drag(tab, start, (goal[0] - start[0]) * share, (goal[1] - start[1]) * share)


def outside_parent(micro: dict[str, dict[str, Any]], grids: dict[str, dict[str, Any]]) -> dict[str, float]:
    """Each micro-grid's area (deg²) outside the grid named by its parent_code."""
    return {code: shape(f["geometry"]).difference(shape(grids[f["properties"]["parent_code"]]["geometry"])).area
            for code, f in micro.items()}


def mercator_px(lon: float, lat: float, zoom: int) -> tuple[float, float]:
    """Web Mercator pixel coordinates at ``zoom`` (256 px tiles), as Leaflet's EPSG:3857 computes them."""
    scale = 256 * 2 ** zoom
    y = math.log(math.tan(math.pi / 4 + math.radians(lat) / 2))
    return (lon + 180) / 360 * scale, (1 - y / math.pi) / 2 * scale


def box_px(feature: dict[str, Any], zoom: int) -> tuple[float, float]:
    """Width and height in pixels of a unit's bounding box at ``zoom``."""
    west, south, east, north = shape(feature["geometry"]).bounds
    (x0, y0), (x1, y1) = mercator_px(west, south, zoom), mercator_px(east, north, zoom)
    return x1 - x0, y0 - y1


def post_json(server: LiveServer, path: str, body: Any) -> dict[str, Any]:
    """POST JSON outside the browser; the answer's status and body, also for a 4xx."""
    request = server.request(path, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"})
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


def test_a_corner_on_a_grid_line_moves_the_grids_with_it_and_undo_restores_both(
        server: LiveServer, tab: Tab) -> None:
    grid_layer = server.get_json("/api/layers/grid")
    grids, micro = by_code(grid_layer), by_code(server.get_json("/api/layers/micro_grid"))
    tab.open_editor(server)
    original, original_parent = tab.page.evaluate(EDITED), tab.page.evaluate(PARENT)
    assert original_parent == {"type": "FeatureCollection", "features": grid_layer["features"]}, \
        "an untouched parent level must round-trip exactly, properties and all"
    assert max(outside_parent(micro, grids).values()) < OUTSIDE_DEG2, "the demo starts nested"

    # drag a corner on the line between two grids a quarter of the way into one of its micro-grids
    old, owners, parents = grid_corner(micro, grids, tab)
    a = owners[0]
    tab.select(a)
    drag_towards_middle(tab, micro[a], old, 0.25)
    edited, after = tab.edited(), tab.parents()
    new = next(xy for xy in corners(edited[a]) if xy not in corners(micro[a]))
    assert new != old
    for code in owners:
        assert new in corners(edited[code]) and old not in corners(edited[code]), code
    for code, grid in grids.items():
        if code in parents:
            # the grid's corner moved with it (a grid edge through it would have got one corner more)
            assert new in corners(after[code]) and old not in corners(after[code]), code
            assert len(corners(after[code])) == len(corners(grid)) + (old not in corners(grid)), code
            assert after[code]["properties"] == grid["properties"], code
        else:
            assert after[code] == grid, code
    assert all(shape(f["geometry"]).is_valid for f in [*edited.values(), *after.values()])
    outside = outside_parent(edited, after)
    assert max(outside.values()) < OUTSIDE_DEG2, outside
    # against the grids as they were, the micro-grids that grew stick out: the check has teeth
    assert max(outside_parent(edited, grids).values()) > 100 * OUTSIDE_DEG2
    assert tab.page.evaluate(SUMMARY) == {"changed": str(len(owners)), "added": "0", "removed": "0",
                                          "parentChanged": str(len(parents))}
    screenshot(tab.page, "editor-nested.png")

    tab.page.click("#tool-undo")
    assert tab.page.evaluate(EDITED) == original
    assert tab.page.evaluate(PARENT) == original_parent
    assert tab.page.evaluate(SUMMARY)["parentChanged"] == "0"
    tab.assert_clean(server)


def test_a_corner_added_on_a_grid_line_goes_into_the_grid_and_removing_it_takes_it_out(
        server: LiveServer, tab: Tab) -> None:
    grids, micro = open_both_levels(server, tab)
    original, original_parent = tab.page.evaluate(EDITED), tab.page.evaluate(PARENT)
    a, (p, q), holders = grid_edge(micro, grids, tab)
    tab.select(a)
    # drag the mid-point handle of the edge a fifth of the way to the middle of the micro-grid
    (px, py), (qx, qy) = tab.to_screen(*p), tab.to_screen(*q)
    middle = shape(micro[a]["geometry"]).centroid
    cx, cy = tab.to_screen(middle.x, middle.y)
    mx, my = (px + qx) / 2, (py + qy) / 2
    drag(tab, (mx, my), (cx - mx) / 5, (cy - my) / 5)
    edited, after = tab.edited(), tab.parents()
    added = [xy for xy in corners(edited[a]) if xy not in corners(micro[a])]
    assert len(added) == 1, added
    for code, grid in grids.items():
        if code in holders:
            assert corners(after[code]) == between(corners(grid), p, q, added[0]), code
        else:
            assert after[code] == grid, code
    outside = outside_parent(edited, after)
    assert max(outside.values()) < OUTSIDE_DEG2, outside
    assert tab.page.evaluate(SUMMARY)["parentChanged"] == str(len(holders))
    with_corner = (tab.page.evaluate(EDITED), tab.page.evaluate(PARENT))

    # a right-click on the new corner takes it out of the micro-grid and of the grid again
    tab.page.mouse.click(*tab.to_screen(*added[0]), button="right")
    assert tab.page.evaluate(EDITED) == original
    assert tab.page.evaluate(PARENT) == original_parent
    assert tab.page.evaluate(SUMMARY) == {"changed": "0", "added": "0", "removed": "0", "parentChanged": "0"}

    tab.page.click("#tool-undo")
    assert (tab.page.evaluate(EDITED), tab.page.evaluate(PARENT)) == with_corner
    tab.page.click("#tool-undo")
    assert (tab.page.evaluate(EDITED), tab.page.evaluate(PARENT)) == (original, original_parent)
    tab.assert_clean(server)


def test_a_corner_cut_on_a_grid_edge_puts_a_corner_into_the_grids_when_it_is_dragged(
        server: LiveServer, tab: Tab) -> None:
    grids, micro = open_both_levels(server, tab)
    original_parent = tab.page.evaluate(PARENT)
    # a micro-grid that a horizontal cut (draw_line_across) leaves with a corner in the middle of an
    # edge between two grids: no grid has a corner there, so the drag must put one in first
    code, cut, parents = cut_on_grid_edge(micro, grids, tab)
    tab.select(code)
    draw_line_across(tab, micro[code])
    after_split = tab.page.evaluate(EDITED)
    pieces = by_code(after_split)
    # the line was drawn through screen pixels (a pixel is about 1e-5° here): the cut lies within one
    # of the planned point, on the same grid edge
    corner = min((xy for xy in corners(pieces[f"{code}-1"]) if xy not in corners(micro[code])),
                 key=lambda xy: Point(xy).distance(Point(cut)))
    assert Point(corner).distance(Point(cut)) < 1e-5
    assert all(shape(grids[g]["geometry"]).boundary.distance(Point(corner)) < ON_LINE_DEG for g in parents)
    assert tab.page.evaluate(PARENT) == original_parent, "a split leaves the grids alone"

    tab.select(f"{code}-1")
    drag_towards_middle(tab, pieces[f"{code}-1"], corner, 0.25)
    edited, after = tab.edited(), tab.parents()
    new = next(xy for xy in corners(edited[f"{code}-1"]) if xy not in corners(pieces[f"{code}-1"]))
    for grid_code, grid in grids.items():
        if grid_code in parents:
            assert new in corners(after[grid_code]), grid_code
            assert len(corners(after[grid_code])) == len(corners(grid)) + 1, grid_code
        else:
            assert after[grid_code] == grid, grid_code
    outside = outside_parent(edited, after)
    assert max(outside.values()) < OUTSIDE_DEG2, outside
    assert max(outside_parent(edited, grids).values()) > 100 * OUTSIDE_DEG2
    screenshot(tab.page, "editor-nested-cut.png")

    tab.page.click("#tool-undo")
    assert tab.page.evaluate(EDITED) == after_split
    assert tab.page.evaluate(PARENT) == original_parent
    tab.assert_clean(server)


def test_labels_show_only_where_they_fit_and_small_units_show_their_code_on_hover(
        server: LiveServer, tab: Tab) -> None:
    micro = by_code(server.get_json("/api/layers/micro_grid"))
    tab.open_editor(server)
    west, south, east, north = shapely.union_all([shape(f["geometry"]) for f in micro.values()]).bounds
    lon, lat = (west + east) / 2, (south + north) / 2
    # A label is 15 px tall with 4 px to spare above and below: it needs a box 23 px tall, and one
    # at least 8 + 8 px wider than its text.  At zoom 13 the tallest micro-grid box is 12.9 px
    # (G04-4), so no label fits; at zoom 17 the smallest box is 105.0 × 94.9 px (G04-4
    # wide, G04-1 tall), more than a 5-character code needs (8 + 8 + 5 × 11 = 71 px at most).
    assert round(max(box_px(f, 13)[1] for f in micro.values()), 1) == 12.9
    assert round(min(box_px(f, 17)[0] for f in micro.values()), 1) == 105.0
    assert round(min(box_px(f, 17)[1] for f in micro.values()), 1) == 94.9
    big = max(micro, key=lambda c: box_px(micro[c], 13)[0])      # G02-4, 15.5 px wide at zoom 13
    small = min(micro, key=lambda c: box_px(micro[c], 13)[0])    # G04-4, 6.6 px wide at zoom 13
    assert (big, small) == ("G02-4", "G04-4")

    # zoom 13: no permanent label; the code shows on hover
    tab.set_view(lon, lat, 13)
    assert tab.labels() == []
    inside = shape(micro[big]["geometry"]).representative_point()
    tab.page.mouse.move(*tab.to_screen(inside.x, inside.y))
    tip = tab.page.locator(HOVER_TIP)
    tip.wait_for(state="visible")
    assert tip.inner_text() == big
    assert tab.labels() == []
    screenshot(tab.page, "editor-labels-hover.png")
    tab.page.mouse.move(5, 5)
    tip.wait_for(state="detached")

    # the selected unit is always labelled, however small
    tab.select(small)
    assert tab.page.evaluate("() => window.gridmapEditor.map.getZoom()") == 13
    assert tab.labels() == [small]

    # zoom 15: a label wherever the box is wide enough for the page's own label width (Leaflet rounds
    # pixels, so units within 1.5 px of their threshold are left out of the comparison)
    tab.set_view(lon, lat, 15)
    widths = tab.page.evaluate("() => Object.fromEntries(window.gridmapEditor.state.units"
                               ".map(u => [u.properties.code, u.labelWidth]))")
    labelled = set(tab.labels())
    clear = {c for c in micro if abs(box_px(micro[c], 15)[0] - (widths[c] + 8)) > 1.5}
    fits = {c for c in micro if box_px(micro[c], 15)[0] >= widths[c] + 8 and box_px(micro[c], 15)[1] >= 23}
    assert labelled & clear == (fits | {small}) & clear
    assert big in labelled and "G04-1" not in labelled  # 61.9 px and 31.4 px wide
    screenshot(tab.page, "editor-labels-15.png")

    # zoom 17: every unit is labelled; far away, only the selected one
    tab.set_view(lon, lat, 17)
    assert tab.labels() == sorted(micro)
    tab.set_view(lon + 0.05, lat, 17)
    assert tab.labels() == [small]
    tab.assert_clean(server)


def test_the_grid_editor_has_no_parent_level_to_keep(server: LiveServer, tab: Tab) -> None:
    tab.page.goto(server.url + "/layers/grid/edit", wait_until="load")
    tab.page.wait_for_function(LOADED)
    assert tab.page.evaluate(PARENT) is None
    assert tab.page.locator("#derive-parent").count() == 0
    assert tab.page.locator("#editor-map path.leaflet-interactive").count() == 5
    assert tab.page.locator("#editor-map path:not(.leaflet-interactive)").count() == 0
    tab.assert_clean(server)


def test_the_save_sends_the_grids_only_when_they_changed_and_the_redraw_choice(
        server: LiveServer, tab: Tab) -> None:
    grid_layer, micro_layer = server.get_json("/api/layers/grid"), server.get_json("/api/layers/micro_grid")
    grids, micro = by_code(grid_layer), by_code(micro_layer)
    tab.open_editor(server)
    bodies: list[Any] = []

    def refuse(route: Any) -> None:  # the body as sent; a conflict, so the page keeps the edits
        bodies.append(route.request.post_data_json)
        route.fulfill(status=409, content_type="application/json", body=json.dumps({"error": "stale base"}))

    tab.page.route("**/api/layers/micro_grid/edit/save", refuse)
    loaded = {code: {**f, "properties": outgoing(f["properties"])} for code, f in micro.items()}

    # 1. only a name changed: that unit alone (by the code it was loaded as), no parent member, no
    # derive_parent
    code = sorted(micro)[0]
    tab.select(code)
    tab.page.fill("#f-name", "新名称")
    tab.page.fill("#author", "规划员丙")
    tab.page.click("#save")
    tab.page.locator("#messages").wait_for(state="visible")
    assert tab.page.inner_text("#message-title") == "stale base"
    assert bodies == [{"units": {"type": "FeatureCollection", "features": [{**tab.edited()[code], "id": code}]},
                       "removed": [], "base_version": micro_layer["version"],
                       "mode": "draft", "author": "规划员丙", "note": "", "tolerance_m2": 1.0}]   # as v1 was saved
    assert bodies[0]["units"]["features"][0]["properties"] == {**loaded[code]["properties"], "name": "新名称"}

    # 2. a corner on a grid line moved and "redraw each grid" ticked: both members, exactly
    old, owners, parents = grid_corner(micro, grids, tab)
    tab.select(owners[0])
    drag_towards_middle(tab, micro[owners[0]], old, 0.25)
    tab.page.check("#derive-parent")
    tab.page.fill("#note", "move a grid corner")
    tab.page.click("#save")
    tab.page.wait_for_function("() => !window.gridmapEditor.state.busy")
    assert len(bodies) == 2
    edited, after = tab.edited(), tab.parents()
    assert bodies[1] == {
        "units": {"type": "FeatureCollection", "features": [
            {**f, "id": c} for c, f in edited.items() if f != loaded[c]]},
        "removed": [], "base_version": micro_layer["version"],
        "mode": "draft", "author": "规划员丙", "note": "move a grid corner", "tolerance_m2": 1.0,
        "parent": {"units": {"type": "FeatureCollection", "features": [
            {"type": "Feature", "id": c, "properties": outgoing(f["properties"]), "geometry": f["geometry"]}
            for c, f in after.items() if f != grids[c]]}, "removed": [], "base_version": grid_layer["version"]},
        "derive_parent": True}
    assert sorted(f["id"] for f in bodies[1]["units"]["features"]) == sorted({code, *owners})
    assert sorted(f["id"] for f in bodies[1]["parent"]["units"]["features"]) == parents
    # Chromium logs the refused saves (409) as failed loads; those are expected.
    tab.errors = [e for e in tab.errors if not ("status of 409" in e and "/api/layers/micro_grid/edit/save" in e)]
    tab.assert_clean(server)


def test_a_grid_line_moved_in_the_micro_grid_editor_is_committed_with_the_grids(
        server: LiveServer, tab: Tab) -> None:
    grid_layer, micro_layer = server.get_json("/api/layers/grid"), server.get_json("/api/layers/micro_grid")
    grids, micro = by_code(grid_layer), by_code(micro_layer)
    tab.open_editor(server)
    old, owners, parents = grid_corner(micro, grids, tab)
    tab.select(owners[0])
    drag_towards_middle(tab, micro[owners[0]], old, 0.25)
    new = next(xy for xy in corners(tab.edited()[owners[0]]) if xy not in corners(micro[owners[0]]))

    # save: the review page of the new micro-grid draft; commit: both levels are committed
    tab.page.fill("#author", "规划员乙")
    tab.page.fill("#note", "move a corner on a grid line")
    tab.page.click("#save")
    tab.page.wait_for_function("() => !location.pathname.endsWith('/edit') || "
                               "!document.getElementById('messages').hidden", timeout=30000)
    assert "/versions/" in tab.page.url, tab.page.inner_text("#messages")
    tab.page.wait_for_load_state("load")
    version = int(tab.page.url.rsplit("/", 1)[1])
    screenshot(tab.page, "editor-nested-review.png")
    # the draft's checks ran against the grids as edited: no micro-grid sticks out of its grid (the
    # grids as they were would give two outside_parent warnings here)
    draft = server.get_json(f"/api/layers/micro_grid/versions/{version}")
    assert draft["status"] == "draft"
    assert "outside_parent" not in [w["kind"] for w in draft["report"]["warnings"]], draft["report"]
    with tab.page.expect_navigation(url="**/layers/micro_grid/history"):
        tab.page.click("#commit")

    stored = server.get_json(f"/api/layers/micro_grid/versions/{version}")
    assert stored["status"] == "committed"
    assert "outside_parent" not in [w["kind"] for w in stored["report"]["warnings"]], stored["report"]
    assert server.get_json("/api/layers/micro_grid")["version"] == version
    new_grid_versions = [v for v in server.get_json("/api/layers/grid/versions")["versions"]
                         if v["version"] > grid_layer["version"]]
    assert [(v["status"], v["based_on"]) for v in new_grid_versions] == [("committed", grid_layer["version"])]
    grids_now = server.get_json("/api/layers/grid")
    assert grids_now["version"] == new_grid_versions[0]["version"]
    stored_grids = by_code(grids_now)
    for code, grid in grids.items():
        if code in parents:
            assert new in corners(stored_grids[code]) and old not in corners(stored_grids[code]), code
        else:
            assert stored_grids[code]["geometry"] == grid["geometry"], code
    outside = outside_parent(by_code(server.get_json("/api/layers/micro_grid")), stored_grids)
    assert max(outside.values()) < OUTSIDE_DEG2, outside
    tab.assert_clean(server)


def outgoing(properties: dict[str, Any]) -> dict[str, Any]:
    """A unit's properties as the editor sends them: without those the server computes."""
    return {k: v for k, v in properties.items() if k not in ("area_m2", "level")}


def by_code(layer: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {f["properties"]["code"]: f for f in layer["features"]}


def open_both_levels(server: LiveServer, tab: Tab) -> tuple[dict[str, Any], dict[str, Any]]:
    """The stored grids and micro-grids by code (read outside the browser), and the micro-grid editor open."""
    grids = by_code(server.get_json("/api/layers/grid"))
    micro = by_code(server.get_json("/api/layers/micro_grid"))
    tab.open_editor(server)
    return grids, micro


def between(ring: list[tuple[float, float]], p: tuple[float, float], q: tuple[float, float],
            corner: tuple[float, float]) -> list[tuple[float, float]]:
    """A closed ring's corners with ``corner`` put into the edge p–q."""
    i = next(i for i in range(len(ring) - 1) if {ring[i], ring[i + 1]} == {p, q})
    return ring[:i + 1] + [corner] + ring[i + 1:]
