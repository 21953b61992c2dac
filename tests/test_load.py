"""Load on the production server: gunicorn with 4 workers on one SQLite file, 32 clients posting
500 reports each while a planner commits two boundary versions through the same server.  Every
report acknowledged is stored once, none is refused, and each ends up assigned under the version
current at the end.  Takes one to two minutes here; CI runs it."""
from __future__ import annotations

import http.client
import json
import os
import subprocess
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from shapely import STRtree
from shapely.geometry import shape

from gridmap.access import Access
from gridmap.accounts import Role
from gridmap.storage import open_store

from .browser import ROOT, free_port

pytestmark = pytest.mark.slow
CLIENTS, REPORTS = 32, 500
DEMO = ROOT / "geodata" / "demo"


class Client:
    """Requests with a bearer token, a connection each (gunicorn's sync workers close after each answer)."""

    def __init__(self, port: int, token: str) -> None:
        self.port = port
        self.headers = {"Authorization": f"Bearer {token}"}

    def call(self, method: str, path: str, body: bytes | None = None, content_type: str | None = None) -> Any:
        headers = {**self.headers, **({"Content-Type": content_type} if content_type else {})}
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=120)
        try:
            connection.request(method, path, body=body, headers=headers)
            response = connection.getresponse()
            return response.status, json.loads(response.read() or b"null")
        finally:
            connection.close()


def points_inside(features: list[dict[str, Any]], count: int) -> list[tuple[float, float]]:
    """``count`` points spread over the units' representative points, nudged so they differ."""
    centres = [shape(f["geometry"]).representative_point() for f in features]
    return [(centres[i % len(centres)].x + (i // len(centres)) * 1e-9, centres[i % len(centres)].y)
            for i in range(count)]


def renamed(code: str, to: str) -> bytes:
    boundary = "load-test-boundary"
    data = (DEMO / "micro_grid.geojson").read_text(encoding="utf-8").replace(f'"{code}"', f'"{to}"')
    return (f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"micro.geojson\"\r\n"
            f"Content-Type: application/geo+json\r\n\r\n{data}\r\n--{boundary}--\r\n").encode(), \
        f"multipart/form-data; boundary={boundary}"


def test_32_clients_posting_while_a_planner_commits_store_every_report_once_under_the_current_version(tmp_path):
    url = f"sqlite:///{tmp_path / 'gridmap.db'}"
    store = open_store(url)
    (_, worker), (_, planner) = (Access(store).create(name, role, token_label="load")
                                 for name, role in (("reporter", Role.WORKER), ("planner", Role.PLANNER)))
    store.close()
    port = free_port()
    env = {**os.environ, "GRIDMAP_DATABASE_URL": url, "GRIDMAP_TILES": "none"}
    log = (tmp_path / "server.log").open("wb")
    server = subprocess.Popen([str(ROOT / "scripts" / "serve-production"), "--workers", "4", "--bind",
                               f"127.0.0.1:{port}"], cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        admin = Client(port, worker)
        deadline = time.monotonic() + 120
        while True:
            try:
                status, layers = admin.call("GET", "/api/layers")
                if status == 200 and len(layers["layers"]) == 2:
                    break
            except OSError:
                pass
            assert time.monotonic() < deadline and server.poll() is None, (tmp_path / "server.log").read_text()
            time.sleep(0.3)
        before = admin.call("GET", "/api/incidents/counts?by=category")[1]["total"]
        units = admin.call("GET", "/api/layers/micro_grid")[1]["features"]
        points = points_inside(units, CLIENTS * REPORTS)
        acknowledged: list[list[int]] = [[] for _ in range(CLIENTS)]
        failures: list[Any] = []
        started = threading.Event()

        def reporter(n: int) -> None:
            client = Client(port, worker)
            started.set()
            for i in range(REPORTS):
                lon, lat = points[n * REPORTS + i]
                body = json.dumps({"category": "litter", "lon": lon, "lat": lat}).encode()
                status, answer = client.call("POST", "/api/incidents", body, "application/json")
                if status != 201:
                    failures.append((status, answer))
                else:
                    acknowledged[n].append(answer["items"][0]["id"])

        def commits() -> list[int]:
            client, done = Client(port, planner), []
            started.wait(30)
            for code, to in (("G01-1", "G01-9"), ("G01-9", "G01-1")):
                time.sleep(2)
                status, answer = client.call("POST", "/api/layers/micro_grid", *renamed(code, to))
                assert status == 201, answer
                done.append(answer["version"])
            return done

        start = time.perf_counter()
        with ThreadPoolExecutor(CLIENTS + 1) as pool:
            committed = pool.submit(commits)
            list(pool.map(reporter, range(CLIENTS)))
            versions = committed.result()
        elapsed = time.perf_counter() - start
        print(f"{CLIENTS * REPORTS} reports from {CLIENTS} clients in {elapsed:.1f} s "
              f"({CLIENTS * REPORTS / elapsed:.0f}/s), commits {versions}")

        ids = [i for batch in acknowledged for i in batch]
        assert failures == [] and versions == [2, 3]
        assert len(ids) == CLIENTS * REPORTS and len(set(ids)) == len(ids)
        stored = admin.call("GET", "/api/incidents/counts?by=category")[1]["total"]
        assert stored == before + CLIENTS * REPORTS
        # every report is assigned under version 3, as its point lies in version 3's units
        final = admin.call("GET", "/api/layers/micro_grid")[1]
        assert final["version"] == 3
        shapes = [shape(f["geometry"]) for f in final["features"]]
        codes = [f["properties"]["code"] for f in final["features"]]
        tree = STRtree(shapes)
        expected = {}
        for n, batch in enumerate(acknowledged):
            for i, incident_id in enumerate(batch):
                lon, lat = points[n * REPORTS + i]
                holders = tree.query(shape({"type": "Point", "coordinates": [lon, lat]}), predicate="covered_by")
                expected[incident_id] = codes[min(holders)]
        got: dict[int, str] = {}
        after = 0
        while True:
            page = admin.call("GET", f"/api/incidents?limit=10000&after={after}")[1]
            for feature in page["features"]:
                got[feature["id"]] = feature["properties"]["units"].get("micro_grid")
            if "next" not in page:
                break
            after = page["features"][-1]["id"]
        wrong = {i: (got.get(i), code) for i, code in expected.items() if got.get(i) != code}
        assert wrong == {}
    finally:
        server.terminate()
        server.wait(timeout=30)
        log.close()
    text = (tmp_path / "server.log").read_text()
    assert "database is locked" not in text and "Traceback" not in text, text[-3000:]
    assert Path(tmp_path / "gridmap.db").exists()
