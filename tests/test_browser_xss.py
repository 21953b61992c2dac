"""Classic payloads in every field a user controls — unit codes, names, staff and phone of a
boundary file, incident descriptions, sources, external ids and raw categories, staff registry
names, a version's note and author — shown on every page that shows them, in a real Chromium:
no script runs (``alert`` and friends hooked, each payload would set ``window.__xss``), no
element a payload describes appears, and no page's HTML holds a payload unescaped."""
from __future__ import annotations

import json
import re
import urllib.request
from typing import Any, Iterator

import pytest
from shapely.geometry import mapping, shape

from tests.browser import LiveServer, Tab, launch_chromium, screenshot, tab_in

pytestmark = pytest.mark.browser

PAYLOADS = [
    '<img src=x onerror="window.__xss=\'img\'">',
    "</script><script>window.__xss='script'</script>",
    '"><svg onload="window.__xss=\'svg\'">',
    "`${window.__xss='template'}`",
    "'-alert(1)-'",
    "<a href=\"javascript:window.__xss='href'\">click</a>",
    "{{7*7}}<iframe srcdoc='<script>parent.__xss=1</script>'>",
]
HOOK = """() => {
  window.__xss = undefined;
  for (const name of ['alert', 'confirm', 'prompt']) window[name] = () => { window.__xss = name; };
}"""
# What would show that a payload became markup rather than text.
INJECTED = "img[src=x], svg[onload], script:not([src]):not([type='application/json']):not([nonce]), " \
           "iframe[srcdoc], a[href^='javascript:']"


@pytest.fixture(scope="module")
def chromium() -> Iterator[Any]:
    yield from launch_chromium()


@pytest.fixture
def tab(chromium: Any) -> Iterator[Tab]:
    yield from tab_in(chromium, Tab, {"width": 1280, "height": 900})


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    server = LiveServer(tmp_path_factory.mktemp("gridmap-xss-all")).start()
    units = server.get_json("/api/layers/micro_grid")["features"]
    features = [{"type": "Feature", "geometry": mapping(shape(u["geometry"])), "properties": {
        "code": f"X{i}-{PAYLOADS[i % len(PAYLOADS)]}"[:90], "name": PAYLOADS[(i + 1) % len(PAYLOADS)],
        "staff": PAYLOADS[(i + 2) % len(PAYLOADS)], "phone": PAYLOADS[(i + 3) % len(PAYLOADS)],
        "parent_code": u["properties"]["parent_code"]}} for i, u in enumerate(units)]
    boundary = "xss-boundary"
    body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"x.geojson\"\r\n\r\n"
            + json.dumps({"type": "FeatureCollection", "features": features}) + f"\r\n--{boundary}\r\n"
            f"Content-Disposition: form-data; name=\"note\"\r\n\r\n{PAYLOADS[0]}\r\n--{boundary}\r\n"
            f"Content-Disposition: form-data; name=\"author\"\r\n\r\n{PAYLOADS[1]}\r\n--{boundary}--\r\n").encode()
    post(server, "/api/layers/micro_grid", body, f"multipart/form-data; boundary={boundary}")
    first = shape(units[0]["geometry"]).representative_point()
    post(server, "/api/staff", json.dumps({"level": "micro_grid", "unit": features[0]["properties"]["code"],
                                           "role": "grid_worker", "name": PAYLOADS[2][:200],
                                           "phone": PAYLOADS[3][:50]}).encode(), "application/json")
    post(server, "/api/incidents", json.dumps([
        {"category": payload if i % 2 else "litter", "lon": first.x, "lat": first.y, "description": payload,
         "source": payload[:100], "external_id": f"{i}{payload}"[:200], "reported_at": "2025-06-01 10:00"}
        for i, payload in enumerate(PAYLOADS)] + [{"category": "litter", "lon": 0.5, "lat": 0.5,
                                                   "description": PAYLOADS[0]}]).encode(), "application/json")
    yield server
    server.stop()


def post(server: LiveServer, path: str, body: bytes, content_type: str) -> Any:
    request = server.request(path, data=body, headers={"Content-Type": content_type}, method="POST")
    with urllib.request.urlopen(request, timeout=60) as response:
        assert response.status in (200, 201)
        return json.load(response)


def raw_html(server: LiveServer, path: str) -> str:
    with urllib.request.urlopen(server.request(path), timeout=60) as response:
        return response.read().decode()


def unescaped(html: str) -> list[str]:
    """The payloads found as markup in ``html``: whole, or their attributes with raw quotes (escaped,
    a quote is ``&#34;`` in HTML and ``\\"`` in a script's JSON, and ``<`` is ``&lt;`` or ``\\u003c``)."""
    found = [payload for payload in PAYLOADS if "<" in payload and payload in html]
    return found + [m for m in ('onerror="window', 'onload="window', "srcdoc='<script", 'href="javascript:')
                    if m in html]


def pages(live: LiveServer) -> list[str]:
    version = live.get_json("/api/layers/micro_grid/versions")["versions"][0]["version"]
    incident = live.get_json("/api/incidents?limit=1")["features"][0]["id"]
    return ["/", "/?lang=en", "/dashboard", "/statistics", "/layers/micro_grid/history",
            f"/layers/micro_grid/versions/{version}", f"/layers/micro_grid/versions/{version}/compare?with=1",
            "/layers/micro_grid/edit", "/report", f"/report/{incident}", "/accounts", "/upload"]


def test_payloads_everywhere_run_nothing_and_stay_text(live: LiveServer, tab: Tab) -> None:
    page = tab.page
    page.add_init_script(f"({HOOK})()")
    scripts_in_html = 0
    for path in pages(live):
        html = raw_html(live, path)
        assert unescaped(html) == [], path
        scripts_in_html += len(re.findall(r"<script[ >]", html))
        page.goto(live.url + path)
        page.wait_for_load_state("networkidle")
        if path.startswith("/?") or path == "/":
            page.wait_for_function("() => window.gridmap_mapdata && window.gridmap_mapdata.heatAnswers > 0")
            for feature in live.get_json("/api/layers/micro_grid")["features"][:3]:
                point = shape(feature["geometry"]).representative_point()
                spot = page.evaluate("([lat, lon]) => { const p = window.gridmap_map.latLngToContainerPoint("
                                     "[lat, lon]); const b = document.getElementById('gridmap_map')"
                                     ".getBoundingClientRect(); return [b.left + p.x, b.top + p.y]; }",
                                     [point.y, point.x])
                page.mouse.move(*spot)
                page.wait_for_timeout(150)
                page.mouse.click(*spot)
                page.wait_for_timeout(150)
            screenshot(page, "xss-map.png")      # a tooltip open on a unit named like markup
        assert page.evaluate("() => window.__xss") is None, path
        assert page.locator(INJECTED).count() == 0, path
    assert scripts_in_html > 0
    tab.assert_clean(live)


def test_the_payloads_are_shown_as_text(live: LiveServer, tab: Tab) -> None:
    version = live.get_json("/api/layers/micro_grid/versions")["versions"][0]["version"]
    tab.page.goto(live.url + f"/layers/micro_grid/versions/{version}")
    text = tab.page.inner_text("main")
    assert PAYLOADS[0] in text and PAYLOADS[1] in text          # the note and the author, as typed
    assert PAYLOADS[2] in tab.page.inner_text("#units-diff")    # units' names in the list of changes
    incident = live.get_json("/api/incidents?limit=1")["features"][0]["id"]
    tab.page.goto(live.url + f"/report/{incident}")
    assert PAYLOADS[0] in tab.page.inner_text("main")           # the description, as typed
    tab.assert_clean(live)
