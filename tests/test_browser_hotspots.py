"""The map's hotspot overlay in a real Chromium: off until the viewer ticks it in the layer
control, then the deepest level's units filled by their Gi* class (as GET /api/hotspots gives
them), with a legend in Chinese.  The data is bench/district.py's synthetic district (400
micro-grids, 30,000 incidents around hot spots).  Screenshot: artifacts/screenshots/hotspots.png.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Iterator

import pytest

from bench.district import bounds, make_district
from tests.browser import LiveServer, Tab, launch_chromium, screenshot, serving, tab_in

pytestmark = pytest.mark.browser

LOADED = """() => { const s = window.gridmap_mapdata;
  return s && s.drawnAnswers > 0 && Object.values(s.levels).every((l) => l.units && l.counts); }"""
DRAWN = "() => window.gridmap_mapdata.overlays.hotspots.drawn !== undefined"
TITLE = "热点分析（Getis-Ord Gi*）"
PILE = 300
HEAT_TOTAL = "() => window.gridmap_mapdata.heat.total"


@pytest.fixture(scope="module")
def chromium() -> Iterator[Any]:
    yield from launch_chromium()


@pytest.fixture(scope="module")
def server(chromium: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    """The district, and 300 reports a geocoder put on one spot inside it."""
    workdir = tmp_path_factory.mktemp("gridmap-hotspots")
    district = make_district(f"sqlite:///{workdir / 'gridmap.db'}", n=20, incidents=30_000)
    west, south, east, north = bounds(20)
    district.report([{"category": "litter", "lon": round((west + east) / 2, 6), "lat": round((south + north) / 2, 6),
                      "reported_at": "2026-03-05 10:00"}] * PILE)
    district.store.close()
    yield from serving(workdir, {"GRIDMAP_LOAD_DEMO": "0"})


@pytest.fixture
def tab(chromium: Any) -> Iterator[Tab]:
    yield from tab_in(chromium, Tab, {"width": 1100, "height": 760})


def test_the_hotspot_overlay_fills_the_units_the_api_classes_with_a_legend(server: LiveServer, tab: Tab) -> None:
    page = tab.page
    page.goto(server.url + "/")
    page.wait_for_function(LOADED, polling=50, timeout=60_000)
    assert page.evaluate("() => window.gridmap_mapdata.overlays.hotspots.drawn") is None     # off until asked
    assert page.locator(".hotspot-legend").count() == 0

    page.get_by_label(TITLE).check()
    page.wait_for_function(DRAWN, polling=50, timeout=60_000)
    answer = server.get_json("/api/hotspots?level=micro_grid&geometry=0")
    classes = [f["properties"]["class"] for f in answer["features"]]
    hot = sum(c.startswith("hot") for c in classes)
    assert len(classes) == 400 and hot > 0
    assert page.evaluate("() => window.gridmap_mapdata.overlays.hotspots.drawn") == sum(c != "none" for c in classes)

    legend = page.locator(".hotspot-legend")
    assert legend.is_visible()
    text = legend.inner_text()
    for label in ("热点（置信度 99%）", "热点（置信度 90%）", "冷点（置信度 99%）",
                  "置信度已按 400 次检验校正（错误发现率）", "已排除：1 个坐标上堆叠的 300 条事件（地理编码占位点）"):
        assert label in text
    assert legend.locator(".swatch").count() == 6
    # the same map for the report, from the legend's link: a PNG of the A4 page
    with page.expect_download() as download:
        legend.locator("a.report-png").click()
    saved = download.value
    assert saved.suggested_filename == "gridmap-hotspots-micro_grid.png"
    assert Path(saved.path()).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    page.get_by_label("事件热力图").uncheck()          # the classes alone, for the screenshot
    shot = screenshot(page, "hotspots.png")
    assert shot.stat().st_size > 20_000

    page.get_by_label(TITLE).uncheck()
    assert page.locator(".hotspot-legend").count() == 0
    tab.assert_clean(server)


def test_the_choropleth_overlay_follows_the_measure_chosen_in_its_legend(server: LiveServer, tab: Tab) -> None:
    page = tab.page
    page.goto(server.url + "/")
    page.wait_for_function(LOADED, polling=50, timeout=60_000)
    page.get_by_label("分级设色图").check()
    page.wait_for_function("() => window.gridmap_mapdata.overlays.choropleth.drawn !== undefined",
                           polling=50, timeout=60_000)
    answer = server.get_json("/api/choropleth?level=micro_grid&geometry=0&scheme=quantiles&k=5&measure=count")
    assert len(answer["features"]) == 400
    assert page.evaluate("() => window.gridmap_mapdata.overlays.choropleth.drawn") == 400     # every unit filled
    legend = page.locator(".choropleth-legend")
    assert legend.locator(".swatch").count() == len(answer["classes"]) == 5
    first = answer["classes"][0]
    assert f"{round(first['from'])} – {round(first['to'])}" in legend.inner_text()
    page.get_by_label("事件热力图").uncheck()
    screenshot(page, "choropleth.png")

    legend.locator("select[name=measure]").select_option("closed")     # the closure rate: asked again
    page.wait_for_function("() => { const o = window.gridmap_mapdata.overlays.choropleth;"
                           " return o.body && o.body.options.measure === 'closed' && !o.loading; }",
                           polling=50, timeout=60_000)
    closed = server.get_json("/api/choropleth?level=micro_grid&geometry=0&scheme=quantiles&k=5&measure=closed")
    assert "%" in legend.inner_text()
    assert legend.locator(".swatch").count() == len(closed["classes"]) + any(
        f["properties"]["class"] < 0 for f in closed["features"])
    legend.locator("select[name=level]").select_option("grid")        # another level
    page.wait_for_function("() => { const o = window.gridmap_mapdata.overlays.choropleth;"
                           " return o.body && o.body.level === 'grid' && !o.loading; }", polling=50, timeout=60_000)
    grids = server.get_json("/api/choropleth?level=grid&geometry=0&measure=closed")["features"]
    assert page.evaluate("() => window.gridmap_mapdata.overlays.choropleth.drawn") == len(grids) > 1
    tab.assert_clean(server)


def test_the_emerging_overlay_fills_the_units_with_a_trend(server: LiveServer, tab: Tab) -> None:
    page = tab.page
    page.goto(server.url + "/")
    page.wait_for_function(LOADED, polling=50, timeout=60_000)
    page.get_by_label("新兴热点（12 个月）").check()
    page.wait_for_function("() => window.gridmap_mapdata.overlays.emerging.drawn !== undefined",
                           polling=50, timeout=60_000)
    answer = server.get_json("/api/hotspots/emerging?level=micro_grid&geometry=0&by=month&periods=12")
    trends = [f["properties"]["trend"] for f in answer["features"]]
    assert page.evaluate("() => window.gridmap_mapdata.overlays.emerging.drawn") == sum(t != "none" for t in trends)
    text = page.locator(".emerging-legend").inner_text()
    assert f"{answer['periods'][0]} 至 {answer['periods'][-1]}" in text and "新增热点" in text
    tab.assert_clean(server)


def test_the_hexagon_overlay_draws_the_significant_cells_of_the_answer(server: LiveServer, tab: Tab) -> None:
    page = tab.page
    page.goto(server.url + "/")
    page.wait_for_function(LOADED, polling=50, timeout=60_000)
    page.get_by_label("六边形热点（H3）").check()
    page.wait_for_function("() => window.gridmap_mapdata.overlays.hexagons.drawn !== undefined",
                           polling=50, timeout=60_000)
    answer = server.get_json("/api/hotspots/hexagons?resolution=9")
    significant = [f for f in answer["features"] if f["properties"]["class"] != "none"]
    assert 0 < len(significant) < answer["cells"]
    assert page.evaluate("() => window.gridmap_mapdata.overlays.hexagons.drawn") == len(significant)
    assert f"检验了 {answer['cells']} 个" in page.locator(".hexagon-legend").inner_text()
    page.get_by_label("事件热力图").uncheck()
    screenshot(page, "hexagons.png")
    tab.assert_clean(server)


def test_the_pile_is_named_left_out_of_the_heat_and_counted_when_asked(server: LiveServer, tab: Tab) -> None:
    page = tab.page
    page.goto(server.url + "/")
    page.wait_for_function(LOADED, polling=50, timeout=60_000)
    note = page.locator("#quality-note")
    note.wait_for(state="visible")
    text = note.inner_text()
    assert "有 300 条事件落在同一坐标" in text and "热力图和统计分析（热点、分级设色图）已排除这些事件" in text
    assert page.evaluate(HEAT_TOTAL) == 30_000
    screenshot(page, "stacked-note.png")

    note.get_by_role("link", name="计入").click()
    page.wait_for_url("**/?stacked=1")
    page.wait_for_function(LOADED, polling=50, timeout=60_000)
    note.wait_for(state="visible")
    assert "热力图和统计分析（热点、分级设色图）已计入这些事件" in note.inner_text()
    assert page.evaluate(HEAT_TOTAL) == 30_000 + PILE
    note.get_by_role("link", name="排除").click()
    page.wait_for_url(server.url + "/")
    tab.assert_clean(server)


def test_the_dashboard_loads_offline_in_chinese(server: LiveServer, tab: Tab) -> None:
    page = tab.page
    page.goto(server.url + "/dashboard")
    assert page.locator("#dash-total").inner_text() == str(30_000 + PILE)
    assert "堆叠在 1 个坐标上" in page.locator("#dash-stacked").inner_text()
    assert page.locator("#league tbody tr").count() > 0
    assert page.locator("#hotspots li").count() > 0
    assert page.locator("#weekly polyline").count() >= 1
    assert page.locator("#rhythm td").count() == 7 * 24
    # the hot spot map, drawn on the server: an A4 page at 100 dpi
    page.wait_for_function("() => { const m = document.getElementById('hotspot-map');"
                           " return m.complete && m.naturalWidth > 0; }", timeout=60_000)
    assert page.evaluate("() => document.getElementById('hotspot-map').naturalWidth") == 1169
    screenshot(page, "dashboard.png")
    page.locator("#hotspots li a").first.click()
    page.wait_for_url("**/?unit=*")
    tab.assert_clean(server)
