"""The review page in a real Chromium: a planner uploads through the form, reads the report on the
map, and commits from the review page (templates/review.html, static/review.js).

Offline first: every request goes to the gridmap server itself.  Each test has its own server
(no demo data, no service area) and starts from empty.  UI strings relied on are the zh ones of
the existing catalog only where noted; everything else is matched on ids, data attributes and
the page script's state (``window.gridmap_review``).  The screenshot of the Boston page lands in
``artifacts/screenshots/review-boston-cleaned.png``.
"""
from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any, Iterator

import pytest
from shapely import Polygon, box

from tests.browser import LiveServer, Tab, launch_chromium, screenshot, tab_in
from tests.conftest import CELLS, SHARED, feature_collection, grid_file

pytestmark = pytest.mark.browser

VIEWPORT = {"width": 1400, "height": 900}
BOSTON = SHARED / "data" / "boston-2015"
# E-S reaches 1.1 m into W-S over 110.6 m of their line: a 123.1 m² overlap (tests/test_review.py)
E_S_BUMPED = Polygon([(0.01, 0), (0.02, 0), (0.02, 0.01), (0.01, 0.01), (0.01, 0.005), (0.00999, 0.005),
                      (0.00999, 0.004), (0.01, 0.004)])
READY = "() => window.gridmap_review && window.gridmap_review.loaded.after !== undefined"
PANE_PATHS = "(pane) => document.querySelectorAll(`.leaflet-${pane}-pane path.leaflet-interactive`).length"
PROBLEM_PATHS = """() => Array.from(document.querySelectorAll('.leaflet-review-problems-pane path')).map(p => ({
  selected: p.classList.contains('problem-selected'), dimmed: p.classList.contains('problem-dimmed'),
  opacity: p.getAttribute('stroke-opacity')}))"""


def micro_cells(changed: dict[str, Any]) -> bytes:
    """The four micro-grids, some of them redrawn."""
    cells = {**CELLS, **changed}
    return feature_collection([({"code": c, "name": f"微网格{c}"}, g) for c, g in cells.items()])


@pytest.fixture(scope="module")
def chromium() -> Iterator[Any]:
    yield from launch_chromium()


@pytest.fixture
def tab(chromium: Any) -> Iterator[Tab]:
    yield from tab_in(chromium, Tab, VIEWPORT)


@pytest.fixture
def server(chromium: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    live = LiveServer(tmp_path_factory.mktemp("gridmap-review"),
                      env={"GRIDMAP_LOAD_DEMO": "0", "GRIDMAP_SERVICE_AREA": "none"}).start()
    try:
        yield live
    finally:
        live.stop()


def upload(tab: Tab, server: LiveServer, level: str, path: Path, *, clean: bool = False, **options: str) -> Any:
    """Fill the upload form as a planner does and submit it; the response to the POST."""
    page = tab.page
    page.goto(server.url + "/upload")
    page.select_option("#f-level", level)
    page.set_input_files("#f-file", str(path))
    if clean:
        page.check("#f-clean")
    if options:
        page.click("#upload details > summary")
        for key, value in options.items():
            page.fill(f"#f-{key}", value)
    with page.expect_navigation(timeout=60000) as navigation:
        page.click("#f-submit")
    return navigation.value


def commit_here(tab: Tab) -> None:
    """Click the review page's commit button; the history of the level comes next."""
    with tab.page.expect_navigation(url="**/history", timeout=60000):
        tab.page.click("#commit")


def history_row(tab: Tab, version: int) -> dict[str, str | None]:
    row = tab.page.locator(f"#history tr[data-version='{version}']")
    return {"status": row.get_attribute("data-status"), "class": row.get_attribute("class")}


def written(tmp_path: Path, name: str, data: bytes) -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


def expect_refusal(tab: Tab) -> None:
    """Chromium logs the 400 answer to the form's POST as a failed load; that one is expected."""
    tab.errors = [e for e in tab.errors if not ("status of 400" in e and e.endswith("/upload)"))]


# -- (a) a tolerance accepts a small overlap; the planner commits from the review page -------------------

def test_upload_with_a_tolerance_then_commit_from_the_review_page(server: LiveServer, tab: Tab,
                                                                  tmp_path: Path) -> None:
    upload(tab, server, "grid", written(tmp_path, "grids.geojson", grid_file()))
    assert tab.page.url == server.url + "/layers/grid/versions/1"
    commit_here(tab)

    response = upload(tab, server, "micro_grid", written(tmp_path, "micro.geojson", micro_cells({"E-S": E_S_BUMPED})),
                      tolerance_m2="150", author="规划员甲")
    assert response.status == 200 and tab.page.url == server.url + "/layers/micro_grid/versions/1"
    tab.page.wait_for_function(READY)
    assert tab.page.inner_text("#status") == "草稿"
    assert tab.page.locator("#report .ok").inner_text() == "没有错误。"       # the overlap is under 150 m²
    assert tab.page.locator("#problems").count() == 0
    assert tab.page.is_enabled("#commit")
    options = tab.page.locator("#options tr").evaluate_all(
        "rows => rows.map(r => [r.cells[0].textContent, r.cells[1].textContent])")
    assert ["报告面积大于此值的缝隙和重叠（平方米）", "150"] in options
    # the map: the four new outlines (no micro-grid before), and no problem shape
    assert tab.page.evaluate("() => window.gridmap_review.loaded") == {"after": 4}
    assert tab.page.evaluate(PANE_PATHS, "review-after") == 4
    assert tab.page.evaluate(PROBLEM_PATHS) == []

    commit_here(tab)
    assert history_row(tab, 1) == {"status": "committed", "class": "current"}
    layer = server.get_json("/api/layers/micro_grid")
    assert layer["version"] == 1 and len(layer["features"]) == 4
    tab.assert_clean(server)


# -- (b) Boston with cleaning: the review page shows what cleaning changed ----------------------------

boston = pytest.mark.skipif(not (BOSTON / "precincts.geojson").is_file(),
                            reason=f"Boston 2015 wards/precincts not found at {BOSTON} "
                                   "(they live in ../shared beside the repository)")


@boston
def test_boston_cleaned_upload_review_and_commit(server: LiveServer, tab: Tab) -> None:
    upload(tab, server, "grid", BOSTON / "wards.geojson", clean=True, code_field="WARD")
    assert tab.page.url == server.url + "/layers/grid/versions/1", tab.page.inner_text("main")[:2000]
    wards = server.get_json("/api/layers/grid/versions/1")["report"]["cleaning"]["changes"]
    assert tab.page.locator("#cleaned tr[data-code]").count() == len(wards) == 15
    commit_here(tab)

    # as published, the precincts overlap: refused, with the report on the map and nothing stored
    response = upload(tab, server, "micro_grid", BOSTON / "precincts.geojson", crs="EPSG:2249",
                      code_field="WARD_PRECINCT")
    assert response.status == 400
    tab.page.wait_for_function(READY, timeout=60000)
    assert tab.page.evaluate("() => window.gridmap_review.loaded") == {"after": 255}       # embedded outlines
    assert tab.page.evaluate("() => window.gridmap_review.selected") == "error-overlap"
    assert sum(p["selected"] for p in tab.page.evaluate(PROBLEM_PATHS)) == 44              # all in the page
    units = tab.page.locator("#units-diff tr[data-change=added]")
    assert units.count() == 20
    tab.page.click("#units-diff button.more")                 # the rest of a refused upload rides in the page
    units.nth(69).wait_for()
    features = json.loads((BOSTON / "precincts.geojson").read_text())["features"]      # in file order
    assert units.count() == 70 and units.nth(69).locator("td").nth(1).inner_text() == \
        features[69]["properties"]["WARD_PRECINCT"]
    # a page that cannot fetch more carries 200 of a list's rows and says how many it leaves out
    assert re.findall(r"\d+", tab.page.locator("#units-diff tr.unlisted").inner_text()) == ["55"]
    assert [m["level"] for m in server.get_json("/api/layers")["layers"]] == ["grid"]     # nothing stored

    # "upload again with cleaning": the form comes back with the file's options and cleaning ticked
    with tab.page.expect_navigation():
        tab.page.click("#clean-again")
    assert tab.page.is_checked("#f-clean")
    assert (tab.page.input_value("#f-crs"), tab.page.input_value("#f-code_field")) == ("EPSG:2249", "WARD_PRECINCT")
    tab.page.set_input_files("#f-file", str(BOSTON / "precincts.geojson"))
    with tab.page.expect_navigation(timeout=60000):
        tab.page.click("#f-submit")
    assert tab.page.url == server.url + "/layers/micro_grid/versions/1", tab.page.inner_text("main")[:2000]
    tab.page.wait_for_function(READY, timeout=60000)
    stored = server.get_json("/api/layers/micro_grid/versions/1")
    changes = stored["report"]["cleaning"]["changes"]
    rows = tab.page.locator("#cleaned tr[data-code]")
    assert rows.count() == len(changes) == 68
    largest = max(changes, key=lambda c: abs(c["change_m2"]))
    assert rows.first.get_attribute("data-code") == largest["code"] == "1810"
    assert rows.first.locator("td").nth(3).inner_text() == f"{largest['change_m2']:+,.1f}" == "-370.2"
    assert tab.page.locator("#cleaned tr[data-code]:not([hidden])").count() == 20
    tab.page.evaluate("() => document.getElementById('cleaning').scrollIntoView({block: 'start'})")
    screenshot(tab.page, "review-boston-cleaned.png")
    tab.page.click("#cleaned button.more")
    assert tab.page.locator("#cleaned tr[data-code]:not([hidden])").count() == 68
    # the map: every precinct drawn, the cleaned ones again on top, no overlap left to report
    assert tab.page.evaluate("() => window.gridmap_review.loaded") == {"after": 255, "cleaned": 68}
    assert tab.page.evaluate(PANE_PATHS, "review-after") == 255
    assert tab.page.evaluate(PANE_PATHS, "review-cleaned") == 68
    assert tab.page.locator("#problems details[data-kind=overlap]").count() == 0

    # (c) on real data: opening a group of 177 loads its other 157 shapes and draws them all prominently
    total = server.get_json("/api/layers/micro_grid/versions/1/problems?kind=outside_parent&limit=0")["total"]
    assert total == 177
    tab.page.click("#problems details[data-kind=outside_parent] > summary")
    tab.page.wait_for_function("() => window.gridmap_review.groups['warning-outside_parent'].complete")
    paths = tab.page.evaluate(PROBLEM_PATHS)
    assert sum(p["selected"] for p in paths) == total
    assert all(p["dimmed"] for p in paths if not p["selected"]) and any(p["dimmed"] for p in paths)
    tab.page.click("#problems details[data-kind=outside_parent] button.more")
    group = tab.page.locator("#problems details[data-kind=outside_parent] tr[data-kind]")
    group.nth(69).wait_for()
    assert group.count() == 70
    page_two = server.get_json("/api/layers/micro_grid/versions/1/problems?kind=outside_parent&offset=20&limit=50")
    assert group.nth(20).locator("td").first.inner_text() == page_two["problems"][0]["message"]
    assert group.nth(69).locator("td").first.inner_text() == page_two["problems"][49]["message"]

    commit_here(tab)
    assert history_row(tab, 1) == {"status": "committed", "class": "current"}
    assert server.get_json("/api/layers/micro_grid")["version"] == 1
    expect_refusal(tab)
    tab.assert_clean(server)


# -- (c) opening a group highlights its shapes ---------------------------------------------------------

def test_opening_a_group_highlights_its_shapes_and_dims_the_others(server: LiveServer, tab: Tab,
                                                                    tmp_path: Path) -> None:
    upload(tab, server, "grid", written(tmp_path, "grids.geojson", grid_file()))
    commit_here(tab)
    # E-S's bump overlaps W-S (an error) and lies outside grid E; E-N reaches 11 m north out of grid E
    north = box(0.01, 0.01, 0.02, 0.0201)
    response = upload(tab, server, "micro_grid",
                      written(tmp_path, "micro.geojson", micro_cells({"E-S": E_S_BUMPED, "E-N": north})))
    assert response.status == 400
    tab.page.wait_for_function(READY)
    def selected(key: str) -> None:        # a <details> reports its toggle in a task of its own
        tab.page.wait_for_function("(key) => window.gridmap_review.selected === key", arg=key, timeout=5000)

    state = "() => ({selected: gridmap_review.selected, bounds: gridmap_review.selected && " \
            "gridmap_review.groups[gridmap_review.selected].layer.getBounds().toBBoxString()})"

    # at first the errors are open and selected: the overlap prominent, the two outside_parent parts dimmed
    assert tab.page.evaluate(state) == {"selected": "error-overlap", "bounds": "0.00999,0.004,0.01,0.005"}
    assert sorted((p["selected"], p["dimmed"], p["opacity"]) for p in tab.page.evaluate(PROBLEM_PATHS)) == [
        (False, True, "0.3"), (False, True, "0.3"), (True, False, "1")]

    tab.page.click("#problems details[data-kind=outside_parent] > summary")
    selected("warning-outside_parent")
    now = tab.page.evaluate(state)
    west, south, east, north_edge = (float(v) for v in now["bounds"].split(","))
    # the bump's west edge and E-N's strip north of the block (the parts are computed in metres, so
    # E-S's also holds slivers of float noise along its edges, down to latitude 0)
    assert now["selected"] == "warning-outside_parent" and (west, east, north_edge) == (0.00999, 0.02, 0.0201)
    assert sorted((p["selected"], p["dimmed"], p["opacity"]) for p in tab.page.evaluate(PROBLEM_PATHS)) == [
        (False, True, "0.3"), (True, False, "1"), (True, False, "1")]
    assert tab.page.locator("#problems details.selected").get_attribute("data-kind") == "outside_parent"

    tab.page.click("#problems details[data-kind=outside_parent] > summary")       # closed again
    selected("error-overlap")
    assert tab.page.locator("#problems details.selected").get_attribute("data-kind") == "overlap"

    tab.page.click("#problems details[data-kind=overlap] a.zoom")
    tab.page.wait_for_function("() => gridmap_map.getZoom() === 18", timeout=5000)     # after the zoom animation
    assert tab.page.evaluate("() => gridmap_review.focus") == {"group": "error-overlap", "index": 0}
    center = tab.page.evaluate("() => gridmap_map.getCenter()")
    link = tab.page.locator("#problems details[data-kind=overlap] a.zoom")
    assert center["lat"] == pytest.approx(float(link.get_attribute("data-lat")), abs=1e-6)
    assert center["lng"] == pytest.approx(float(link.get_attribute("data-lon")), abs=1e-6)
    expect_refusal(tab)
    tab.assert_clean(server)
