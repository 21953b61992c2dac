"""The report form on a phone-sized screen in a real Chromium: a tap on the map (and the phone's
position) puts the point, a photo goes along, and the answer names the micro-grid and its worker.
Its own server on the demo (the reports change the data).  Screenshots: report-form.png,
report-done.png in artifacts/screenshots/."""
from __future__ import annotations

from typing import Any, Iterator

import pytest
from PIL import Image
from shapely.geometry import shape

from tests.browser import AUTH_HEADERS, LiveServer, Tab, launch_chromium, screenshot

pytestmark = pytest.mark.browser
PHONE = {"width": 390, "height": 844}


@pytest.fixture(scope="module")
def chromium() -> Iterator[Any]:
    yield from launch_chromium()


@pytest.fixture
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    server = LiveServer(tmp_path_factory.mktemp("gridmap-report")).start()
    yield server
    server.stop()


@pytest.fixture
def phone(chromium: Any) -> Iterator[Tab]:
    context = chromium.new_context(viewport=PHONE, locale="zh-CN", is_mobile=True, has_touch=True,
                                   device_scale_factor=2, extra_http_headers=AUTH_HEADERS)
    try:
        yield Tab(context)
    finally:
        context.close()


def test_a_worker_reports_from_a_phone_and_sees_where_it_went(live: LiveServer, phone: Tab, tmp_path) -> None:
    page = phone.page
    units = live.get_json("/api/layers/micro_grid")["features"]
    first, second = (shape(u["geometry"]).representative_point() for u in units[:2])
    code, name = units[0]["properties"]["code"], units[0]["properties"]["name"]
    registered = page.request.post(live.url + "/api/staff", data={
        "level": "micro_grid", "unit": code, "role": "grid_worker", "name": "王网格员", "phone": "13800000001"})
    assert registered.status == 201, registered.text()

    page.goto(live.url + "/report")
    page.wait_for_function("() => window.gridmap_report_outlines > 0")
    where = page.evaluate(f"() => window.gridmap_report.latLngToContainerPoint([{first.y}, {first.x}])")
    box = page.locator("#report-map").bounding_box()
    page.mouse.click(box["x"] + where["x"], box["y"] + where["y"])          # a tap where the problem is
    assert page.input_value("#lat") and "位置" in page.inner_text("#report-where")
    assert float(page.input_value("#lon")) == pytest.approx(first.x, abs=2e-4)      # a pixel or two
    page.select_option("select[name=category]", "flying_cable")
    page.fill("textarea[name=description]", "楼道里飞线充电")
    photo = tmp_path / "photo.png"
    Image.new("RGB", (40, 30), (200, 40, 40)).save(photo)
    page.set_input_files("input[name=photo]", str(photo))
    screenshot(page, "report-form.png")
    with page.expect_navigation():
        page.click("button[type=submit]")
    assert "/report/" in page.url
    done = page.inner_text("#report-done")
    assert name in done and code in done and "王网格员 13800000001" in done
    page.wait_for_function("() => { const i = document.querySelector('.report-photo');"
                           " return i && i.complete && i.naturalWidth === 40; }")
    screenshot(page, "report-done.png")
    incident_id = int(page.url.rstrip("/").rsplit("/", 1)[1])
    stored = live.get_json(f"/api/incidents/{incident_id}")["properties"]
    assert (stored["category"], stored["description"], stored["status"]) == ("flying_cable", "楼道里飞线充电",
                                                                             "dispatched")
    assert stored["assignee"]["name"] == "王网格员"

    # the phone's position instead of a tap
    phone.context.grant_permissions(["geolocation"], origin=live.url)
    phone.context.set_geolocation({"latitude": second.y, "longitude": second.x})
    page.goto(live.url + "/report")
    page.click("#locate")
    page.wait_for_function("() => document.getElementById('lat').value !== ''")
    assert float(page.input_value("#lat")) == pytest.approx(second.y, abs=1e-6)
    with page.expect_navigation():
        page.click("button[type=submit]")
    assert units[1]["properties"]["code"] in page.inner_text("#report-done")
    phone.assert_clean(live)


def test_a_bad_report_says_why_and_keeps_what_was_typed(live: LiveServer, phone: Tab, tmp_path) -> None:
    page = phone.page
    page.goto(live.url + "/report")
    page.fill("textarea[name=description]", "没点地图")
    fake = tmp_path / "photo.jpg"
    fake.write_bytes(b"MZ not a picture")
    page.set_input_files("input[name=photo]", str(fake))
    with page.expect_navigation():
        page.click("button[type=submit]")
    error = page.inner_text("#report-error")
    assert "没有位置" in error or "位置" in error, error
    assert page.input_value("textarea[name=description]") == "没点地图"
    total = live.get_json("/api/incidents/counts")["total"]
    assert total == 1200                                         # nothing stored
