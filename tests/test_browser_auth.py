"""Signing in with a real Chromium, and a page on another origin trying every write with the
signed-in person's cookies.  Its own server on the demo, with a worker and an admin who sign in
with passwords (the other browser tests send a token).  Screenshots: login-zh.png, login-en.png."""
from __future__ import annotations

import http.server
import json
import threading
from typing import Any, Iterator

import pytest
from shapely.geometry import shape

from gridmap.access import Access
from gridmap.accounts import Role
from gridmap.storage import StaffMember, open_store
from tests.browser import LiveServer, Tab, free_port, launch_chromium, screenshot

pytestmark = pytest.mark.browser
PASSWORD = "网格 correct horse"

# Every writing endpoint with a path that exists on the demo (the role matrix in test_auth.py
# checks that the list of endpoints is complete).
WRITES = [("POST", "/api/layers/micro_grid"), ("POST", "/api/layers/micro_grid/versions/1/commit"),
          ("POST", "/api/layers/micro_grid/versions/1/restore"), ("POST", "/api/layers/micro_grid/versions/1/clean"),
          ("POST", "/api/layers/micro_grid/edit/save"), ("POST", "/api/edit/split"), ("POST", "/api/edit/merge"),
          ("POST", "/upload"), ("POST", "/layers/micro_grid/versions/1/commit"),
          ("POST", "/layers/micro_grid/versions/1/restore"), ("POST", "/layers/micro_grid/versions/1/clean"),
          ("POST", "/api/staff"), ("PATCH", "/api/staff/1"), ("POST", "/api/incidents"), ("POST", "/report"),
          ("POST", "/open311/v2/requests.json"), ("POST", "/api/incidents/1/steps"), ("POST", "/api/accounts"),
          ("PATCH", "/api/accounts/1"), ("POST", "/api/accounts/1/tokens")]


@pytest.fixture(scope="module")
def chromium() -> Iterator[Any]:
    yield from launch_chromium()


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    workdir = tmp_path_factory.mktemp("gridmap-auth")
    store = open_store(f"sqlite:///{workdir / 'gridmap.db'}")
    with store.writing() as tx:
        tx.add_staff(StaffMember(level="micro_grid", unit_code="G01-1", role="grid_worker", name="王网格员"))
    Access(store).create("ann", Role.WORKER, password=PASSWORD, staff_id=1)
    Access(store).create("boss", Role.ADMIN, password=PASSWORD)
    store.close()
    server = LiveServer(workdir).start()
    yield server
    server.stop()


@pytest.fixture
def tab(chromium: Any) -> Iterator[Tab]:
    context = chromium.new_context(viewport={"width": 1100, "height": 800}, locale="zh-CN")   # no token
    try:
        yield Tab(context)
    finally:
        context.close()


def sign_in(tab: Tab, live: LiveServer, name: str, *, then: str = "/") -> None:
    page = tab.page
    page.goto(live.url + then)
    assert page.url.startswith(live.url + "/login?next=")
    page.fill("input[name=name]", name)
    page.fill("input[name=password]", PASSWORD)
    page.click("#login button[type=submit]")
    page.wait_for_url(live.url + then)


def test_a_worker_signs_in_in_chinese_or_english_and_reports_through_the_form(live: LiveServer, tab: Tab) -> None:
    page = tab.page
    page.goto(live.url + "/report")
    assert page.url == live.url + "/login?next=/report"
    assert page.inner_text("h1") == "登录" and page.inner_text("label >> nth=0").startswith("账号")
    screenshot(page, "login-zh.png")
    page.fill("input[name=name]", "ann")
    page.fill("input[name=password]", "wrong")
    page.click("#login button[type=submit]")
    assert "账号或密码不对" in page.inner_text(".errors")
    page.goto(live.url + "/login?lang=en&next=/report")
    assert page.inner_text("h1") == "Sign in"
    screenshot(page, "login-en.png")
    page.fill("input[name=name]", "ann")
    page.fill("input[name=password]", PASSWORD)
    page.click("#login button[type=submit]")
    page.wait_for_url(live.url + "/report")
    assert page.inner_text("#signed-in") == "ann"
    assert page.locator("nav a", has_text="Upload boundaries").count() == 0       # not a planner's menu
    unit = live.get_json("/api/layers/micro_grid")["features"][0]
    point = shape(unit["geometry"]).representative_point()
    before = len(live.get_json("/api/incidents")["features"])
    page.wait_for_function("() => window.gridmap_report_outlines > 0")
    page.evaluate(f"() => {{ document.querySelector('#lon').value = '{point.x}';"
                  f" document.querySelector('#lat').value = '{point.y}'; }}")
    page.select_option("select[name=category]", "flying_cable")
    page.click("#report-form button[type=submit]")
    page.wait_for_url(live.url + "/report/*")
    assert len(live.get_json("/api/incidents")["features"]) == before + 1
    tab.assert_clean(live)


class _EvilPage(http.server.BaseHTTPRequestHandler):
    html = ""

    def do_GET(self) -> None:  # noqa: N802 - http.server's name
        body = self.html.encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        pass


def evil_page(target: str) -> str:
    """A page that tries every write on ``target`` with no-cors fetches (text, form-encoded and
    multipart bodies) and a plain HTML form, then says it is done."""
    writes = json.dumps([[method, target + path] for method, path in WRITES])
    return f"""<!doctype html><html><body>
<form id="f" method="post" action="{target}/api/incidents" target="sink">
  <input name="category" value="litter"><input name="lon" value="111.87"><input name="lat" value="34.74">
</form><iframe name="sink"></iframe>
<script>
(async () => {{
  const tries = [];
  for (const [method, url] of {writes}) {{
    const form = new FormData(); form.append("name", "PWNED"); form.append("role", "admin");
    for (const body of ['{{"name": "PWNED", "role": "admin"}}', new URLSearchParams({{name: "PWNED"}}), form]) {{
      tries.push(fetch(url, {{method, mode: "no-cors", credentials: "include", body}}).catch(() => null));
    }}
  }}
  document.getElementById("f").submit();
  await Promise.allSettled(tries);
  window.evilDone = tries.length;
}})();
</script></body></html>"""


def test_another_origin_using_the_signed_in_admins_cookies_changes_nothing(live: LiveServer, tab: Tab) -> None:
    sign_in(tab, live, "boss", then="/dashboard")
    before = {path: live.get_json(path) for path in ("/api/layers", "/api/staff", "/api/accounts")}
    incidents = len(live.get_json("/api/incidents")["features"])
    audit_before = live.get_json("/api/audit?limit=1")["entries"]
    port = free_port()
    _EvilPage.html = evil_page(live.url)
    server = http.server.ThreadingHTTPServer(("127.0.0.1", port), _EvilPage)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        tab.page.goto(f"http://127.0.0.1:{port}/")       # same site, another origin: the cookie goes along
        tab.page.wait_for_function("() => window.evilDone > 0", timeout=60_000)
        tab.page.wait_for_timeout(500)                   # the form's POST lands in the iframe
    finally:
        server.shutdown()
        server.server_close()
    assert {path: live.get_json(path) for path in before} == before
    assert len(live.get_json("/api/incidents")["features"]) == incidents
    tried = [e for e in live.get_json("/api/audit?limit=500")["entries"]
             if not audit_before or e["id"] > audit_before[0]["id"]]
    # every attempt reached the server as boss and was refused for its missing CSRF token (a page may
    # not send PATCH without CORS, so the browser itself stopped those: three bodies of each POST, the form)
    posts = sum(method == "POST" for method, _ in WRITES)
    assert len(tried) == 3 * posts + 1 and {(e["actor"], e["status"]) for e in tried} == {("boss", 400)}
