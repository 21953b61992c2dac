"""The README's examples, run as written: every ``curl`` line against a fresh ``python app.py``
(the demo server of "Start it on the demo data"), every ``python -m gridmap`` line against a fresh
store, in the order the README gives them, on Boston's files in ``../shared/data/boston-2015``.
Only the server's address is changed (a free port instead of 5000), so that documentation and
product cannot drift apart."""
from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
from datetime import datetime
from pathlib import Path
from typing import Any, Iterator

import pandas
import pytest

from gridmap.access import Access
from gridmap.accounts import Role
from gridmap.storage import IncidentQuery, open_store
from tests.browser import TEST_TOKEN, LiveServer

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text(encoding="utf-8")
BOSTON = ROOT.parent / "shared" / "data" / "boston-2015"
EXAMPLE_URL = "http://127.0.0.1:5000"

pytestmark = pytest.mark.skipif(not (BOSTON / "wards.geojson").is_file(),
                                reason=f"Boston 2015 data not found at {BOSTON} (the README's examples use it)")


def example_lines(prefixes: tuple[str, ...]) -> list[str]:
    """The lines of the README's code blocks that start with one of ``prefixes``, in order."""
    blocks = re.findall(r"^```\n(.*?)^```", README, flags=re.S | re.M)
    return [line.strip() for block in blocks for line in block.splitlines()
            if line.strip().startswith(prefixes)]


def run(line: str, *, cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["bash", "-c", line], cwd=cwd, env=env, capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    live = LiveServer(tmp_path_factory.mktemp("readme-server")).start()
    yield live
    live.stop()


def test_the_curl_examples_run_as_written(server: LiveServer) -> None:
    lines = example_lines(("cd ", "curl "))
    assert len([line for line in lines if line.startswith("curl ")]) == 6
    cwd, answers = ROOT, []
    for line in lines:
        if line.startswith("cd "):
            cwd = (cwd / shlex.split(line)[1]).resolve()
            continue
        # the README's address → this server's; -s -w: keep the body quiet about progress, add the status
        done = run(line.replace(EXAMPLE_URL, server.url) + " -s -w '\\n%{http_code}'", cwd=cwd,
                   env={**os.environ, "GRIDMAP_TOKEN": TEST_TOKEN})
        body, _, status = done.stdout.rpartition("\n")
        assert done.returncode == 0 and status in ("200", "201"), (line, done.stdout[-2000:], done.stderr)
        answers.append(json.loads(body))
    wards, precincts, review, committed, incident, lookup = answers
    assert (wards["status"], wards["version"], wards["count"], wards["report"]["ok"]) == ("committed", 2, 22, True)
    assert len(wards["report"]["cleaning"]["changes"]) > 0
    assert (precincts["status"], precincts["version"], precincts["count"]) == ("draft", 2, 255)
    assert precincts["report"]["errors"] == [] and precincts["url"] == "/layers/micro_grid/versions/2"
    assert (review["status"], review["options"]["clean"]) == ("draft", {"gap_width_m": 2.0, "snap_m": 0.1})
    assert review["report"] == precincts["report"] and review["diff"] == precincts["diff"]
    assert (committed["status"], committed["version"]) == ("committed", 2)
    # Boston City Hall: ward 3, precinct 0306 in the city's own files
    assert incident["items"][0]["units"] == {"grid": "3", "micro_grid": "0306"}
    assert [(u["level"], u["code"]) for u in lookup["units"]] == [("micro_grid", "0306"), ("grid", "3")]


def test_the_command_line_examples_run_as_written(tmp_path: Path) -> None:
    lines = example_lines(("python -m gridmap ",))
    assert len(lines) == 12
    env = {**os.environ, "GRIDMAP_DATABASE_URL": f"sqlite:///{tmp_path / 'cli.db'}",
           "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}
    outputs: list[str] = []
    for line in lines:
        done = run(line, cwd=ROOT, env=env)
        assert done.returncode == 0, (line, done.stdout[-2000:], done.stderr[-2000:])
        outputs.append(done.stdout)
    exported = Path(shlex.split(lines[6])[4])
    try:
        assert exported.stat().st_size > 0
    finally:
        exported.unlink(missing_ok=True)
    user, init, demo, wards, preview, precincts, export, vehicles, dumping, wires, clutter, reassigned = (
        out.splitlines() for out in outputs)
    assert user[:1] == ["account ops (admin) created"] and user[1].startswith("password: ") and len(user) == 3
    store = open_store(env["GRIDMAP_DATABASE_URL"])
    try:                                       # the last line is a token that signs in as ops
        assert Access(store).for_token(user[2]).name == "ops"    # type: ignore[union-attr]
        assert Access(store).sign_in("ops", user[1].removeprefix("password: ")).role is Role.ADMIN  # type: ignore[union-attr]
    finally:
        store.close()
    assert init == ["database ready: 0 incidents"]
    assert demo == ["grid: 5, micro_grid: 20, incidents: 1200"]
    assert wards[0].startswith("grid version 2 (committed): 22 units")
    assert preview[0].startswith("micro_grid preview: 255 units")
    assert sum(line.startswith("error: units ") and " overlap by " in line for line in preview) == 44
    assert precincts[0].startswith("micro_grid version 2 (committed): 255 units")
    assert not any(line.startswith("error:") for line in precincts)
    assert export == [f"wrote {exported} ({exported_size(outputs[6])} bytes)"]
    assert vehicles[0].startswith("created ") and dumping[0].startswith("created ")
    assert wires[0].startswith("created 10,")                 # Boston's 10 downed wires, through its mapping
    # the export holds exactly the store's clutter of the first half of 2015 (read back by pandas)
    parquet = Path(shlex.split(lines[10])[4])
    try:
        written = pandas.read_parquet(parquet, columns=["id", "category", "reported_at", "micro_grid"])
    finally:
        parquet.unlink(missing_ok=True)
    store = open_store(env["GRIDMAP_DATABASE_URL"])
    try:
        frame = store.incidents(IncidentQuery(categories=("clutter",), date_from=datetime(2015, 1, 1),
                                              date_to=datetime(2015, 7, 1)))
        total = store.count_incidents()
    finally:
        store.close()
    assert len(frame) > 0 and written["id"].tolist() == frame["id"].tolist()
    assert written["micro_grid"].tolist() == frame["micro_grid"].tolist()
    assert clutter == [f"wrote {parquet}: {len(frame):,} incidents in 1 file(s), units of grid v2, micro_grid v2"]
    # every incident keeps the unit its import gave it: nothing to write back
    assert reassigned[0] == f"micro_grid version 2: read {total:,} incidents, 0 changed unit (written back)"


def exported_size(output: str) -> str:
    found: Any = re.search(r"\(([\d,]+) bytes\)", output)
    return found[1]
