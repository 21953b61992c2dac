"""``kill -9`` of the server at random moments while reports arrive and a bulk import runs, ten
times on one store: every report answered 201 is there after the restart, an import is in whole
or not at all and can simply be sent again, and SQLite's integrity check says ``ok``."""
from __future__ import annotations

import http.client
import json
import random
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from tests.browser import AUTH_HEADERS, LiveServer

pytestmark = pytest.mark.slow
ROUNDS, POSTERS, IMPORT_ROWS = 10, 4, 30_000
POINT = (111.8694657655428, 34.74419345)      # inside demo micro-grid G01-1


def call(server: LiveServer, method: str, path: str, body: bytes, content_type: str) -> tuple[int, Any]:
    connection = http.client.HTTPConnection(server.host, server.port, timeout=60)
    try:
        connection.request(method, path, body=body, headers={**AUTH_HEADERS, "Content-Type": content_type})
        response = connection.getresponse()
        return response.status, json.loads(response.read() or b"null")
    finally:
        connection.close()


def import_body(name: str) -> tuple[bytes, str]:
    rows = "\n".join(f"{name}-{i},litter,{POINT[0]},{POINT[1]},2025-06-01 10:00" for i in range(IMPORT_ROWS))
    boundary = "crash-boundary"
    return (f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{name}.csv\"\r\n\r\n"
            f"external_id,category,lon,lat,reported_at\n{rows}\n\r\n--{boundary}--\r\n").encode(), \
        f"multipart/form-data; boundary={boundary}"


def test_kill_9_at_random_moments_loses_no_acknowledged_report(tmp_path: Path) -> None:
    rng = random.Random(20261130)
    acknowledged: dict[str, int] = {}                # external id → the id the 201 gave
    imports: list[str] = []
    lock = threading.Lock()
    server = LiveServer(tmp_path)
    for round_ in range(ROUNDS):
        server.start()
        stop = threading.Event()

        def post(worker: int, round_: int = round_, stop: threading.Event = stop) -> None:
            n = 0
            while not stop.is_set():
                external = f"r{round_}-w{worker}-{n}"
                body = json.dumps({"category": "litter", "lon": POINT[0], "lat": POINT[1], "external_id": external})
                try:
                    status, answer = call(server, "POST", "/api/incidents", body.encode(), "application/json")
                except (OSError, http.client.HTTPException):
                    return                          # the server is gone: what was not answered may be lost
                if status == 201:
                    with lock:
                        acknowledged[external] = answer["items"][0]["id"]
                n += 1

        def bulk(round_: int = round_) -> None:
            name = f"import{round_}"
            imports.append(name)
            try:
                call(server, "POST", "/api/incidents", *import_body(name))
            except (OSError, http.client.HTTPException):      # killed mid-answer: IncompleteRead
                pass

        threads = [threading.Thread(target=post, args=(w,)) for w in range(POSTERS)] + [threading.Thread(target=bulk)]
        for thread in threads:
            thread.start()
        time.sleep(rng.uniform(0.3, 3.0))
        server.process.kill()                        # kill -9: no cleanup, no goodbye
        server.process.wait(timeout=30)
        stop.set()
        for thread in threads:
            thread.join(timeout=60)

    db = sqlite3.connect(tmp_path / "gridmap.db")
    try:
        assert db.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
        stored = dict(db.execute("SELECT external_id, id FROM incidents WHERE external_id LIKE 'r%'").fetchall())
        assert {e: stored.get(e) for e in acknowledged} == acknowledged
        per_import = {name: db.execute("SELECT count(*) FROM incidents WHERE external_id LIKE ?",
                                       (f"{name}-%",)).fetchone()[0] for name in imports}
    finally:
        db.close()
    assert len(acknowledged) > 100 and set(per_import.values()) <= {0, IMPORT_ROWS}, per_import
    print(f"{len(acknowledged)} reports acknowledged over {ROUNDS} kills; imports whole: "
          f"{sum(v == IMPORT_ROWS for v in per_import.values())}, absent: {sum(v == 0 for v in per_import.values())}")

    server.start()                                   # an import cut off is sent again, and is whole
    try:
        again = [name for name, count in per_import.items() if count == 0][:1]
        for name in again:
            status, answer = call(server, "POST", "/api/incidents", *import_body(name))
            assert (status, answer["created"]) == (201, IMPORT_ROWS)
        whole = [name for name, count in per_import.items() if count == IMPORT_ROWS][:1]
        for name in whole:                           # and one that was whole stores nothing twice
            status, answer = call(server, "POST", "/api/incidents", *import_body(name))
            assert (status, answer["created"], answer["existing"]) == (201, 0, IMPORT_ROWS)
    finally:
        server.stop()
