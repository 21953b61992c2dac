"""The pages in a real Chromium, against ``python app.py`` serving the demo community.

Offline first: every request of every page must go to the gridmap server itself.
Screenshots land in ``artifacts/screenshots/`` (git-ignored) for a person to look at.

UI strings relied on: the overlay titles 网格, 微网格 (gridmap/levels.py) and 事件热力图,
不在任何网格内 (translations/zh of "Incident heatmap", "Outside every unit"); the nav
地图 / 上传边界 ("Map" / "Upload boundaries"); in English also the upload page's
"Upload a boundary file" heading, the level option "Grid" and the switch link 中文.
Error texts are matched only on what no translation changes: a feature's code and
its geometry type.
"""
from __future__ import annotations

import json
from datetime import date, timedelta
from pathlib import Path
from typing import Any, Iterator
from urllib.parse import parse_qs, urlencode, urlsplit

import pytest
from shapely.geometry import mapping, shape

from tests.browser import LiveServer, launch_chromium, screenshot, serving, tab_in
from tests.browser import Tab as BaseTab

pytestmark = pytest.mark.browser

DEMO_GRIDS, DEMO_MICRO_GRIDS, DEMO_INCIDENTS = 5, 20, 1200
ZH_NAV = ["地图", "数据看板", "统计", "上报", "上传边界", "编辑边界", "版本管理"]
ZH_OVERLAYS = ["网格", "微网格", "事件热力图", "不在任何网格内", "热点分析（Getis-Ord Gi*）", "新兴热点（12 个月）",
               "六边形热点（H3）", "分级设色图"]
EN_OVERLAYS = ["Grid", "Micro-grid", "Incident heatmap", "Outside every unit", "Hotspots (Getis-Ord Gi*)",
               "Emerging hot spots (12 months)", "Hexagon hot spots (H3)", "Choropleth"]
XSS_NAME = '<img src=x onerror="window.__xss=1">'
VIEWPORT = {"width": 1280, "height": 800}

# Counts every interactive SVG path: each polygon is one path, and each unassigned
# incident is one L.CircleMarker, which Leaflet's SVG renderer also draws as a path.
COUNT_PATHS = "() => document.querySelectorAll('#gridmap_map path.leaflet-interactive').length"
HEAT_STATE = """() => {
  const c = document.querySelector('#gridmap_map canvas.leaflet-heatmap-layer');
  if (!c) return null;
  const box = c.getBoundingClientRect();
  const data = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
  let painted = 0;
  for (let i = 3; i < data.length; i += 4) if (data[i] > 0) painted++;
  return {width: c.width, height: c.height, boxWidth: box.width, boxHeight: box.height, painted};
}"""
OVERLAY_LABELS = """() => Array.from(document.querySelectorAll(
  '.leaflet-control-layers-overlays label')).map(l => ({
    text: l.textContent.trim(), checked: l.querySelector('input').checked}))"""


# static/map.js has drawn every level's outlines, had its counts and an answer for the heat.
MAP_LOADED = """() => { const s = window.gridmap_mapdata;
  return s && s.heatAnswers > 0 && Object.values(s.levels).every((l) => l.units && l.counts); }"""


class Tab(BaseTab):
    def open_map(self, url: str) -> Any:
        """Go to a map page and wait until the overlays are loaded and the heat is drawn."""
        response = self.page.goto(url, wait_until="load")
        self.page.wait_for_function("() => window.gridmap_map instanceof L.Map")
        self.page.wait_for_function(MAP_LOADED)
        self.page.wait_for_function(f"() => {{ const h = ({HEAT_STATE})(); return h && h.painted > 0; }}")
        return response

    def paths(self) -> int:
        return self.page.evaluate(COUNT_PATHS)

# -- fixtures --------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def chromium() -> Iterator[Any]:
    yield from launch_chromium()


@pytest.fixture(scope="module")
def server(chromium: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    """The demo community on its own database; only the XSS test changes data, on its own server."""
    yield from serving(tmp_path_factory.mktemp("gridmap-browser"))


@pytest.fixture
def tab(chromium: Any) -> Iterator[Tab]:
    yield from tab_in(chromium, Tab, VIEWPORT)


def demo_counts(server: LiveServer) -> tuple[int, int, int]:
    """(grids, micro-grids, unassigned incidents) as the API sees them, outside the browser."""
    grids = len(server.get_json("/api/layers/grid")["features"])
    micro = len(server.get_json("/api/layers/micro_grid")["features"])
    incidents = server.get_json("/api/incidents")["features"]
    assert len(incidents) == DEMO_INCIDENTS
    return grids, micro, len(incidents)


def hover_unit(tab: Tab, feature: dict[str, Any]) -> str:
    """Move the mouse over a point inside ``feature`` and return the tooltip's text."""
    point = shape(feature["geometry"]).representative_point()
    x, y = tab.page.evaluate(
        """([lat, lon]) => {
             const p = window.gridmap_map.latLngToContainerPoint([lat, lon]);
             const box = document.getElementById('gridmap_map').getBoundingClientRect();
             return [box.left + p.x, box.top + p.y];
           }""", [point.y, point.x])
    hit = tab.page.evaluate("([x, y]) => { const e = document.elementFromPoint(x, y);"
                            " return e && e.tagName.toLowerCase() + '.' + e.getAttribute('class'); }", [x, y])
    assert hit and hit.startswith("path.") and "leaflet-interactive" in hit, \
        f"{feature['properties']} at ({x:.0f}, {y:.0f}) is covered by {hit}"
    tab.page.mouse.move(x - 3, y - 3)
    tab.page.mouse.move(x, y)
    tooltip = tab.page.locator(".leaflet-tooltip")
    tooltip.wait_for(state="visible", timeout=5000)
    return tooltip.inner_text()


def inner_feature(tab: Tab, features: list[dict[str, Any]]) -> dict[str, Any]:
    """The first feature whose inside point is on screen and clear of the layer control."""
    control = tab.page.locator(".leaflet-control-layers").bounding_box()
    mapbox = tab.page.locator("#gridmap_map").bounding_box()
    for feature in features:
        point = shape(feature["geometry"]).representative_point()
        x, y = tab.page.evaluate(
            """([lat, lon]) => { const p = window.gridmap_map.latLngToContainerPoint([lat, lon]);
                                 return [p.x, p.y]; }""", [point.y, point.x])
        x, y = x + mapbox["x"], y + mapbox["y"]
        inside_map = mapbox["x"] + 60 < x < mapbox["x"] + mapbox["width"] - 20 \
            and mapbox["y"] + 20 < y < mapbox["y"] + mapbox["height"] - 30
        under_control = control["x"] - 20 < x < control["x"] + control["width"] + 20 \
            and control["y"] - 20 < y < control["y"] + control["height"] + 20
        if inside_map and not under_control:
            return feature
    raise AssertionError("no micro-grid lies in the visible part of the map")


def upload(tab: Tab, server: LiveServer, level: str, path: Path) -> Any:
    """Submit the /upload form in the browser; returns the response to the POST."""
    tab.page.goto(server.url + "/upload")
    tab.page.select_option("#upload select[name=level]", level)
    tab.page.set_input_files("#upload input[name=file]", str(path))
    with tab.page.expect_navigation() as navigation:
        tab.page.click("#upload button[type=submit]")
    return navigation.value


# -- tests -----------------------------------------------------------------------------------------

def test_map_page_draws_every_layer_offline(server: LiveServer, tab: Tab) -> None:
    grids, micro, _ = demo_counts(server)
    assert (grids, micro) == (DEMO_GRIDS, DEMO_MICRO_GRIDS)
    response = tab.open_map(server.url + "/")
    assert response.status == 200
    unassigned = int(tab.page.inner_text("#unassigned"))
    assert int(tab.page.inner_text("#total")) == DEMO_INCIDENTS
    assert unassigned == 6
    # 5 grid polygons + 20 micro-grid polygons + 6 red circle markers = 31 paths.
    assert tab.paths() == grids + micro + unassigned == 31

    heat = tab.page.evaluate(HEAT_STATE)
    assert heat is not None, "no heat canvas"
    assert heat["width"] > 0 and heat["height"] > 0 and heat["boxWidth"] > 0 and heat["boxHeight"] > 0, heat
    assert heat["painted"] > 1000, f"the heat canvas is blank: {heat}"

    overlays = tab.page.evaluate(OVERLAY_LABELS)
    assert [o["text"] for o in overlays] == ZH_OVERLAYS
    assert [o["checked"] for o in overlays] == [True] * 4 + [False] * 4, overlays      # the statistics: when asked
    assert tab.page.locator("#gridmap_map .leaflet-tile").count() == 0  # GRIDMAP_TILES=none

    features = server.get_json("/api/layers/micro_grid")["features"]
    feature = inner_feature(tab, features)
    text = hover_unit(tab, feature)
    assert feature["properties"]["name"] in text, text
    assert feature["properties"]["code"] in text, text
    screenshot(tab.page, "map.png")
    tab.assert_clean(server)
    assert any(urlsplit(u).path.endswith("/leaflet.js") for u in tab.requests)


def test_filter_form_redraws_for_two_categories_and_a_source(server: LiveServer, tab: Tab) -> None:
    asked = "/api/incidents?" + urlencode({"limit": 1000, "category": ["flying_cable", "clutter"],
                                           "source": "12345热线"}, doseq=True)
    expected = len(server.get_json(asked)["features"])
    assert 0 < expected < DEMO_INCIDENTS
    tab.open_map(server.url + "/")
    for name in ("category", "source"):
        tab.page.click(f"#filter-{name} > summary")          # the folded list opens
    tab.page.check("#filters input[name=category][value=flying_cable]")
    tab.page.check("#filters input[name=category][value=clutter]")
    tab.page.check("#filters input[name=source][value='12345热线']")
    with tab.page.expect_navigation():
        tab.page.click("#filters button[type=submit]")
    tab.page.wait_for_function("() => window.gridmap_map instanceof L.Map")
    tab.page.wait_for_function(MAP_LOADED)
    query = parse_qs(urlsplit(tab.page.url).query)
    assert (query.get("category"), query.get("source")) == (["flying_cable", "clutter"], ["12345热线"]), tab.page.url
    assert tab.page.is_checked("#filters input[name=category][value=clutter]")
    assert "、" in tab.page.inner_text("#filter-category .chosen")      # both named in the folded summary
    assert int(tab.page.inner_text("#total")) == expected
    unassigned = int(tab.page.inner_text("#unassigned"))
    assert tab.paths() == DEMO_GRIDS + DEMO_MICRO_GRIDS + unassigned
    assert [o["text"] for o in tab.page.evaluate(OVERLAY_LABELS)] == ZH_OVERLAYS
    tab.page.click("#filter-category > summary")
    screenshot(tab.page, "filters.png")
    tab.assert_clean(server)


def frame_is(key: str) -> str:
    """JS: whether the heat drawn is of the frame ``key`` ("month:2026-03", "week:<monday>", "" for all time)."""
    return f"() => {{ const s = window.gridmap_mapdata; return s.heat !== null && s.heat.frame === '{key}'; }}"


def test_the_heat_plays_a_month_or_a_week_at_a_time(server: LiveServer, tab: Tab) -> None:
    months = {c["key"]: c["count"] for c in server.get_json("/api/incidents/counts?by=month")["counts"]}
    days = {c["key"]: c["count"] for c in server.get_json("/api/incidents/counts?by=day")["counts"]}
    assert len(months) >= 3
    tab.open_map(server.url + "/")
    page = tab.page
    assert page.is_hidden(".timeline-slider")                     # all time until a period is chosen
    page.select_option("select[name=timeline-by]", "month")
    first, third = sorted(months)[0], sorted(months)[2]
    page.wait_for_function(frame_is(f'month:{first}'))
    # each frame is the heat of its month alone: every matching incident of it (the demo is small: scope=all)
    assert page.evaluate("() => window.gridmap_mapdata.heat.total") == months[first]
    assert page.inner_text(".timeline-label") == f"{first} · {months[first]} 件事件"
    page.fill(".timeline-slider", "2")
    page.wait_for_function(frame_is(f'month:{third}'))
    assert page.evaluate("() => window.gridmap_mapdata.heat.total") == months[third]
    screenshot(page, "heat-by-month.png")
    page.click(".timeline-play")                                 # plays on from the third month
    page.wait_for_function("() => window.gridmap_mapdata.timeline.index >= 4", timeout=20_000)
    page.click(".timeline-play")                                 # and stops
    page.select_option("select[name=timeline-by]", "week")
    monday = min(date.fromisoformat(d) - timedelta(days=date.fromisoformat(d).weekday()) for d in days)
    page.wait_for_function(frame_is(f'week:{monday}'))
    week = sum(n for d, n in days.items() if monday <= date.fromisoformat(d) <= monday + timedelta(days=6))
    assert page.evaluate("() => window.gridmap_mapdata.heat.total") == week
    page.select_option("select[name=timeline-by]", "")
    page.wait_for_function(frame_is(""))
    assert page.evaluate("() => window.gridmap_mapdata.heat.total") == DEMO_INCIDENTS
    tab.assert_clean(server)


def test_language_switch_sticks(server: LiveServer, tab: Tab) -> None:
    tab.open_map(server.url + "/")
    assert tab.page.get_attribute("html", "lang") == "zh-CN"
    assert tab.page.locator("header nav a").all_inner_texts() == ZH_NAV

    with tab.page.expect_navigation():
        tab.page.click("#lang-switch")
    assert parse_qs(urlsplit(tab.page.url).query).get("lang") == ["en"]
    tab.page.wait_for_function("() => window.gridmap_map instanceof L.Map")
    assert tab.page.get_attribute("html", "lang") == "en"
    assert tab.page.locator("header nav a").all_inner_texts() == [
        "Map", "Dashboard", "Statistics", "Report", "Upload boundaries", "Edit boundaries", "Versions"]
    assert tab.page.inner_text("#lang-switch") == "中文"
    assert [o["text"] for o in tab.page.evaluate(OVERLAY_LABELS)] == EN_OVERLAYS
    assert {c["name"]: c["value"] for c in tab.context.cookies()}.get("lang") == "en"

    tab.page.click("header nav a[href='/upload']")  # no ?lang= any more: the cookie decides
    tab.page.wait_for_url(server.url + "/upload")
    assert tab.page.get_attribute("html", "lang") == "en"
    assert tab.page.inner_text("h1") == "Upload a boundary file"
    assert tab.page.locator("#upload select[name=level] option[value=grid]").inner_text() == "Grid"

    with tab.page.expect_navigation():
        tab.page.click("#lang-switch")
    assert tab.page.get_attribute("html", "lang") == "zh-CN"
    tab.page.goto(server.url + "/upload")
    assert tab.page.locator("header nav a").all_inner_texts() == ZH_NAV
    tab.assert_clean(server)


def test_bad_upload_lists_the_problem_and_changes_nothing(server: LiveServer, tab: Tab,
                                                           tmp_path: Path) -> None:
    before = server.get_json("/api/layers")
    bad = tmp_path / "bad.geojson"
    bad.write_text(json.dumps({"type": "FeatureCollection", "features": [
        {"type": "Feature", "properties": {"code": "ROAD-7", "name": "一条路"},
         "geometry": {"type": "LineString", "coordinates": [[111.87, 34.743], [111.88, 34.745]]}},
    ]}, ensure_ascii=False), encoding="utf-8")
    response = upload(tab, server, "grid", bad)
    assert response.status == 400
    errors = tab.page.locator(".errors")
    assert errors.is_visible()
    assert tab.page.locator(".success").count() == 0
    items = errors.locator("li").all_inner_texts()
    assert any("ROAD-7" in item and "LineString" in item for item in items), items
    screenshot(tab.page, "upload-error.png")

    tab.open_map(server.url + "/")
    assert tab.paths() == DEMO_GRIDS + DEMO_MICRO_GRIDS + int(tab.page.inner_text("#unassigned")) == 31
    assert server.get_json("/api/layers") == before
    # Chromium logs the 400 answer to the form's POST as a failed load; that one is expected.
    tab.errors = [e for e in tab.errors if not ("status of 400" in e and e.endswith("/upload)"))]
    tab.assert_clean(server)


def test_unit_names_are_text_not_html(chromium: Any, tab: Tab, tmp_path_factory: pytest.TempPathFactory,
                                      tmp_path: Path) -> None:
    """A micro-grid named like an <img> tag shows as text in the tooltip and runs nothing.

    Uses its own server: the upload replaces the micro-grid layer.
    """
    live = LiveServer(tmp_path_factory.mktemp("gridmap-xss")).start()
    try:
        demo = live.get_json("/api/layers/micro_grid")["features"][0]
        evil = tmp_path / "evil.geojson"
        evil.write_text(json.dumps({"type": "FeatureCollection", "features": [
            {"type": "Feature", "properties": {"code": "XSS-1", "name": XSS_NAME},
             "geometry": mapping(shape(demo["geometry"]))}]}), encoding="utf-8")
        response = upload(tab, live, "micro_grid", evil)       # a draft: the review page, after a 303
        assert response.status == 200 and "/layers/micro_grid/versions/" in tab.page.url, tab.page.inner_text("main")
        assert XSS_NAME in tab.page.locator("#units-diff").inner_text()          # shown as text
        assert tab.page.evaluate("() => typeof window.__xss") == "undefined"
        with tab.page.expect_navigation():
            tab.page.click("#commit")
        assert tab.page.url.endswith("/layers/micro_grid/history")

        tab.open_map(live.url + "/")
        assert tab.paths() == DEMO_GRIDS + 1 + int(tab.page.inner_text("#unassigned"))
        ranking = tab.page.locator(".ranking").inner_text()
        assert XSS_NAME in ranking, ranking
        text = hover_unit(tab, live.get_json("/api/layers/micro_grid")["features"][0])
        assert "<img" in text and "XSS-1" in text, text
        assert tab.page.evaluate("() => typeof window.__xss") == "undefined"
        assert tab.page.locator("#gridmap_map img[src=x], .leaflet-tooltip img").count() == 0
        assert not [u for u in tab.requests if urlsplit(u).path == "/x"], "the <img> was inserted"
        tab.assert_clean(live)
    finally:
        live.stop()


def test_an_incident_whose_coordinates_cannot_tell_its_unit_is_named(chromium: Any, tab: Tab,
                                                                     tmp_path_factory: pytest.TempPathFactory) -> None:
    """Reports written with 2 decimals (a box of ±0.005°, some 500 m) inside the demo community
    cross micro-grid edges: the panel says so (found again once the incidents grew by 1 %: 13 of
    them on the demo's 1,200).  Its own server: the reports change the data."""
    live = LiveServer(tmp_path_factory.mktemp("gridmap-edges")).start()
    try:
        tab.open_map(live.url + "/")
        assert tab.page.is_hidden("#edge-note")                     # the demo's 6 decimals tell
        posted = tab.page.request.post(live.url + "/api/incidents", data=[{
            "category": "clutter", "lon": 111.87, "lat": 34.75, "reported_at": "2026-03-05 10:00"}] * 13)
        assert posted.status == 201, posted.text()
        quality = live.get_json("/api/quality")["ambiguous"]
        assert quality["count"] == 13 and len(quality["between"][0]["codes"]) >= 2
        tab.open_map(live.url + "/")
        note = tab.page.locator("#edge-note")
        note.wait_for(state="visible")
        assert note.inner_text().startswith("13 件事件（1.1%）"), note.inner_text()
        tab.assert_clean(live)
    finally:
        live.stop()
