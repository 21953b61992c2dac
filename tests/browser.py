"""Helpers for the browser tests: a real gridmap server in a subprocess and Debian's Chromium.

Chromium is Debian's build at ``/usr/bin/chromium`` driven by the ``playwright`` package
(never ``playwright install``: it downloads a browser, and CI has no internet).  A missing
browser is a failure, not a skip, unless ``GRIDMAP_SKIP_BROWSER=1`` says so on purpose.
"""
from __future__ import annotations

import json
import os
import secrets
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator
from urllib.parse import urlsplit

import pytest

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--headless", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-quic"]
SCREENSHOTS = ROOT / "artifacts" / "screenshots"
START_TIMEOUT_S = 60.0


def require_chromium() -> None:
    """Skip on GRIDMAP_SKIP_BROWSER=1; otherwise fail loudly when the browser is missing."""
    if os.environ.get("GRIDMAP_SKIP_BROWSER") == "1":
        pytest.skip("GRIDMAP_SKIP_BROWSER=1")
    if not CHROMIUM.is_file():
        pytest.fail(f"{CHROMIUM} is missing: install Debian's browser with `apt-get install -y chromium "
                    f"fonts-noto-cjk` (or set GRIDMAP_SKIP_BROWSER=1 to skip the browser tests)",
                    pytrace=False)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class LiveServer:
    """``python app.py`` on 127.0.0.1:<free port> with its own database; output goes to ``log``."""

    workdir: Path
    env: dict[str, str] = field(default_factory=dict)
    host: str = "127.0.0.1"
    port: int = field(default_factory=free_port)
    process: subprocess.Popen | None = None

    @property
    def netloc(self) -> str:
        return f"{self.host}:{self.port}"

    @property
    def url(self) -> str:
        return f"http://{self.netloc}"

    @property
    def log(self) -> Path:
        return self.workdir / "server.log"

    def start(self) -> "LiveServer":
        add_test_admin(f"sqlite:///{self.workdir / 'gridmap.db'}")
        env = {**os.environ, "GRIDMAP_DATABASE_URL": f"sqlite:///{self.workdir / 'gridmap.db'}",
               "GRIDMAP_TILES": "none", "GRIDMAP_LOAD_DEMO": "1", "GRIDMAP_LANG": "zh",
               "PYTHONUNBUFFERED": "1", **self.env}
        with self.log.open("wb") as out:
            self.process = subprocess.Popen(
                [sys.executable, str(ROOT / "app.py"), "--host", self.host, "--port", str(self.port)],
                cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"the server exited with {self.process.returncode}:\n{self.tail()}")
            try:
                with urllib.request.urlopen(self.request("/api/layers"), timeout=2) as response:
                    if response.status == 200:
                        return self
            except (urllib.error.URLError, OSError):
                time.sleep(0.2)
        self.stop()
        raise RuntimeError(f"the server did not answer within {START_TIMEOUT_S:.0f} s:\n{self.tail()}")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)

    def tail(self, chars: int = 4000) -> str:
        return self.log.read_text(errors="replace")[-chars:] if self.log.exists() else ""

    def get_json(self, path: str) -> Any:
        """GET ``path`` outside the browser (an independent view of the data), as the test administrator."""
        with urllib.request.urlopen(self.request(path), timeout=30) as response:
            return json.load(response)

    def request(self, path: str, **kwargs: Any) -> urllib.request.Request:
        """A request to ``path`` carrying the test administrator's token (``data``, ``headers``, ``method``)."""
        headers = {**AUTH_HEADERS, **kwargs.pop("headers", {})}
        return urllib.request.Request(self.url + path, headers=headers, **kwargs)


#: The token of the administrator every test server has (made in its store before it starts);
#: browser contexts send it with every request, as a kiosk screen would.
TEST_TOKEN = "gm_tests-" + secrets.token_urlsafe(16)
AUTH_HEADERS = {"Authorization": f"Bearer {TEST_TOKEN}"}


def add_test_admin(url: str) -> None:
    """The administrator "browser" holding :data:`TEST_TOKEN`, in the store at ``url`` (made if new)."""
    from gridmap.accounts import Role, new_account, token_hash
    from gridmap.storage import open_store
    store = open_store(url)
    try:
        if store.account(token_hash=token_hash(TEST_TOKEN)) is None:
            with store.writing() as tx:
                tx.add_token(tx.add_account(new_account("browser", Role.ADMIN)), token_hash(TEST_TOKEN), "tests")
    finally:
        store.close()


def foreign_requests(urls: list[str], netloc: str) -> list[str]:
    """The URLs whose host is not the server's (data: and blob: URLs never leave the page)."""
    return [u for u in urls
            if urlsplit(u).scheme not in ("data", "blob", "about") and urlsplit(u).netloc != netloc]


def screenshot(page: Any, name: str) -> Path:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / name
    page.screenshot(path=str(path), full_page=True)
    return path


class Tab:
    """A page in a fresh browser context that records every request and every console error."""

    def __init__(self, context: Any) -> None:
        self.context = context
        self.requests: list[str] = []
        self.errors: list[str] = []
        context.on("request", lambda request: self.requests.append(request.url))
        context.on("console", self._console)
        self.page = context.new_page()
        self.page.on("pageerror", lambda error: self.errors.append(f"pageerror: {error}"))

    def _console(self, msg: Any) -> None:
        url = msg.location.get("url", "")
        # Chromium asks for /favicon.ico on its own; base.html links a data: icon, so that one 404
        # is the browser's doing, not the page's.  Every other failed load counts.
        if msg.type == "error" and urlsplit(url).path != "/favicon.ico":
            self.errors.append(f"{msg.text} ({url})")

    def assert_clean(self, server: LiveServer) -> None:
        assert not self.errors, f"console errors: {self.errors}"
        assert self.requests, "no request was recorded"
        assert not foreign_requests(self.requests, server.netloc), \
            f"requests left {server.netloc}: {foreign_requests(self.requests, server.netloc)}"


def launch_chromium() -> Iterator[Any]:
    """Debian's Chromium under Playwright, for a module-scoped fixture."""
    require_chromium()
    from playwright.sync_api import sync_playwright
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield browser
        browser.close()


def serving(workdir: Path, env: dict[str, str] | None = None) -> Iterator[LiveServer]:
    """A live server on ``workdir`` for a fixture (the demo unless ``env`` says otherwise), stopped afterwards."""
    live = LiveServer(workdir, env=env or {}).start()
    try:
        yield live
    finally:
        live.stop()


def serving_district(workdir: Path, *, n: int, incidents: int) -> Iterator[LiveServer]:
    """A live server on a store holding bench/district.py's n×n micro-grids (both levels committed)
    and ``incidents`` incidents, for a fixture."""
    from bench.district import make_district
    make_district(f"sqlite:///{workdir / 'gridmap.db'}", n=n, incidents=incidents).store.close()
    yield from serving(workdir, {"GRIDMAP_LOAD_DEMO": "0"})


def tab_in(browser: Any, make: type[Tab], viewport: dict[str, int]) -> Iterator[Any]:
    """A fresh Chinese-locale browser context wrapped in ``make`` (a Tab subclass) for a fixture."""
    context = browser.new_context(viewport=viewport, locale="zh-CN", extra_http_headers=AUTH_HEADERS)
    try:
        yield make(context)
    finally:
        context.close()
