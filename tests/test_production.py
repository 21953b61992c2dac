"""The production server from the README: gunicorn with several workers on one SQLite store.

Each worker keeps its own layers, index and lookup answers; a commit made through one worker must
be seen by the others (they read the store's change counter), and reports sent to any worker
all land in the one store.
"""
from __future__ import annotations

import json
import os
import re
import subprocess
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from .browser import AUTH_HEADERS, ROOT, add_test_admin, free_port

DEMO_POINT = (111.8694657655428, 34.74419345)      # inside demo micro-grid G01-1


def _get(url: str) -> dict:
    with urllib.request.urlopen(urllib.request.Request(url, headers=AUTH_HEADERS), timeout=30) as response:
        return json.load(response)


def _post(url: str, body: bytes, content_type: str) -> tuple[int, dict]:
    request = urllib.request.Request(url, data=body, headers={"Content-Type": content_type, **AUTH_HEADERS},
                                     method="POST")
    with urllib.request.urlopen(request, timeout=60) as response:
        return response.status, json.load(response)


def _micro_grid(base: str) -> str:
    lon, lat = DEMO_POINT
    units = _get(f"{base}/api/lookup?lon={lon}&lat={lat}")["units"]
    return next(u["code"] for u in units if u["level"] == "micro_grid")


def _multipart(path: Path, data: bytes) -> tuple[bytes, str]:
    boundary = "gridmap-test-boundary"
    body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{path.name}\"\r\n"
            f"Content-Type: application/geo+json\r\n\r\n").encode() + data + f"\r\n--{boundary}--\r\n".encode()
    return body, f"multipart/form-data; boundary={boundary}"


def test_gunicorn_workers_share_one_store_and_see_each_others_commits(tmp_path):
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = {**os.environ, "GRIDMAP_DATABASE_URL": f"sqlite:///{tmp_path / 'gridmap.db'}", "GRIDMAP_TILES": "none"}
    add_test_admin(env["GRIDMAP_DATABASE_URL"])
    log = (tmp_path / "server.log").open("wb")
    server = subprocess.Popen([str(ROOT / "scripts" / "serve-production"), "--workers", "2", "--bind",
                               f"127.0.0.1:{port}"], cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 120
        while True:
            assert server.poll() is None, (tmp_path / "server.log").read_text()
            try:
                layers = _get(f"{base}/api/layers")["layers"]
                break
            except OSError:
                assert time.monotonic() < deadline, (tmp_path / "server.log").read_text()
                time.sleep(0.3)
        assert [(x["level"], x["version"]) for x in layers] == [("grid", 1), ("micro_grid", 1)]

        with ThreadPoolExecutor(8) as pool:       # new connections: both workers answer some
            assert set(pool.map(lambda _: _micro_grid(base), range(40))) == {"G01-1"}
            before = len(_get(f"{base}/api/incidents?category=fire_hazard&limit=10000")["features"])
            report = json.dumps({"category": "fire_hazard", "lon": DEMO_POINT[0], "lat": DEMO_POINT[1]}).encode()
            posted = list(pool.map(lambda _: _post(f"{base}/api/incidents", report, "application/json"), range(40)))
        assert [status for status, _ in posted] == [201] * 40
        assert sorted({body["items"][0]["units"]["micro_grid"] for _, body in posted}) == ["G01-1"]
        after = _get(f"{base}/api/incidents?category=fire_hazard&limit=10000")["features"]
        assert len(after) == before + 40
        assert len({f["id"] for f in after}) == len(after)

        demo = ROOT / "geodata" / "demo" / "micro_grid.geojson"
        renamed = demo.read_text(encoding="utf-8").replace('"G01-1"', '"G01-9"')
        status, body = _post(f"{base}/api/layers/micro_grid", *_multipart(demo, renamed.encode()))
        assert (status, body["version"], body["diff"]["added"][0]["code"]) == (201, 2, "G01-9")
        time.sleep(0.2)                            # longer than a worker trusts its cached versions
        with ThreadPoolExecutor(8) as pool:
            assert set(pool.map(lambda _: _micro_grid(base), range(40))) == {"G01-9"}
    finally:
        server.terminate()
        server.wait(timeout=20)
        log.close()
    text = (tmp_path / "server.log").read_text()
    assert text.count("Booting worker") == 2, text
    # the access log: what was asked and how it went, without the asker's address or the query
    lookups = [line for line in text.splitlines() if '"GET /api/lookup"' in line]
    assert len(lookups) == 80 and not [line for line in lookups if "127.0.0.1" in line or "lon=" in line]
    assert all(re.search(r'"GET /api/lookup" 200 \d+ \d+ms$', line) for line in lookups), lookups[:3]
    assert text.count("caches ready in") == 2 and "could not read the caches" not in text, text   # each worker's
