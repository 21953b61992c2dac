"""A big file read and assigned in another process (gridmap.import_worker): the same result as
reading it here, its refusals whole, the worker stopped whatever happens to the import."""
from __future__ import annotations

import io
import json
import pickle
import sys
from pathlib import Path

import numpy as np
import pytest

from gridmap import import_worker, incidents
from gridmap import service as service_module
from gridmap.errors import InvalidInput, message
from gridmap.levels import Level
from gridmap.service import Gridmap
from gridmap.storage import open_store

from .conftest import database_url, grid_file, micro_file

HEADER = "事件编号,类别,经度,纬度,上报时间\n"
ROWS = [
    "A1,乱停车,0.005,0.005,2026-03-01 08:00",     # W / W-S
    "A2,飞线充电,0.015,0.015,2026-03-01 09:00",   # E / E-N
    "A3,乱停车,0.01,0.005,2026-03-02 08:00",      # on the edge of both grids: E first by code, then E-S
    "A4,堆物,0.5,0.5,2026-03-02 09:00",           # outside every unit: kept, flagged
    "A5,乱停车,abc,0.005,2026-03-03 08:00",       # line 6: no longitude
    "A1,乱停车,0.005,0.005,2026-03-01 08:00",     # a repeat of line 2, in a later chunk
    "A6,其他,0.005,0.015,2026-03-04 08:00",       # W / W-N
]
FILE = (HEADER + "\n".join(ROWS) + "\n").encode()


class Recorded(import_worker.ImportWorker):
    """An ImportWorker that the test can find again."""

    made: list[Recorded] = []

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        Recorded.made.append(self)


@pytest.fixture
def worker_for_every_file(monkeypatch):
    """Every file goes through a worker process, which reads two rows at a time."""
    Recorded.made = []
    monkeypatch.setattr(import_worker, "PROCESS_FROM", 1)
    monkeypatch.setattr(incidents, "CHUNK_ROWS", 2)
    monkeypatch.setattr(service_module, "ImportWorker", Recorded)
    return Recorded.made


def _blocks(tmp_path: Path, name: str) -> Gridmap:
    svc = Gridmap(open_store(database_url(tmp_path / f"{name}.db")))
    svc.import_layer(Level.GRID, grid_file())
    svc.import_layer(Level.MICRO_GRID, micro_file())
    return svc


def _outcome(result) -> dict:
    return {"rows": result.rows.tolist(), "ids": result.ids.tolist(), "new": result.new.tolist(),
            "units": {level: codes.tolist() for level, codes in result.units.items()},
            "errors": [(e.row, [str(r) for r in e.reasons]) for e in result.errors]}


def test_a_file_read_by_the_worker_is_stored_as_one_read_here(tmp_path, monkeypatch, worker_for_every_file):
    here = _blocks(tmp_path, "here")
    monkeypatch.setattr(import_worker, "PROCESS_FROM", 10**9)
    by_thread = here.import_incidents(FILE, filename="export.csv")
    monkeypatch.setattr(import_worker, "PROCESS_FROM", 1)
    assert worker_for_every_file == []
    there = _blocks(tmp_path, "there")
    by_worker = there.import_incidents(FILE, filename="export.csv")
    assert len(worker_for_every_file) == 1
    assert worker_for_every_file[0]._process.poll() == 0           # it finished and was waited for

    assert _outcome(by_worker) == _outcome(by_thread)
    assert _outcome(by_worker) == {
        "rows": [2, 3, 4, 5, 7, 8], "ids": [1, 2, 3, 4, 1, 5], "new": [True, True, True, True, False, True],
        "units": {"grid": ["W", "E", "E", None, "W", "W"], "micro_grid": ["W-S", "E-N", "E-S", None, "W-S", "W-N"]},
        "errors": [(6, ["missing or non-numeric coordinates (lon='abc', lat='0.005')"])]}
    for svc in (here, there):
        assert svc.store.count_incidents() == 5
    assert there.store.import_run(by_worker.import_id).errors == here.store.import_run(by_thread.import_id).errors
    for svc in (here, there):
        svc.store.close()


def test_a_refused_file_is_refused_whole_and_stores_nothing(block, worker_for_every_file):
    with pytest.raises(InvalidInput) as refused:
        block.import_incidents("编号,类别,经度\nA1,乱停车,0.005\n".encode(), filename="no-lat.csv")
    assert len(worker_for_every_file) == 1
    import_worker.PROCESS_FROM = 10**9          # the same file read here (the fixture puts it back)
    with pytest.raises(InvalidInput) as here:
        block.import_incidents("编号,类别,经度\nA1,乱停车,0.005\n".encode(), filename="no-lat.csv")
    assert (str(refused.value), refused.value.summary, refused.value.details) == (
        str(here.value), here.value.summary, here.value.details)
    assert block.store.count_incidents() == 0


def test_a_gb18030_file_is_read_again_after_its_first_chunks_were_stored(block, worker_for_every_file):
    # the bytes that are not UTF-8 come in the third chunk: two chunks were stored as UTF-8
    # before the worker said so; that transaction is rolled back and a second worker reads GB18030
    data = (HEADER + "\n".join(ROWS[:4] + ["A7,违章停车,0.015,0.005,2026-03-05 08:00"]) + "\n").encode("gb18030")
    result = block.import_incidents(data, filename="gbk.csv")
    assert len(worker_for_every_file) == 2
    assert result.ids.tolist() == [1, 2, 3, 4, 5]
    assert result.units["micro_grid"].tolist() == ["W-S", "E-N", "E-S", None, "E-S"]
    assert block.store.count_incidents() == 5
    stored = block.store.incident_table()
    assert stored["category"].tolist() == ["illegal_parking", "flying_cable", "illegal_parking", "clutter",
                                           "illegal_parking"]


def test_a_file_on_disk_is_read_from_there_by_the_worker(block, worker_for_every_file, tmp_path, monkeypatch):
    # given its path, the worker reads the file itself (twice here: UTF-8, then GB18030); no byte of
    # it goes through the pipe, so neither process holds the whole file
    path = tmp_path / "gbk.csv"
    path.write_bytes((HEADER + "\n".join(ROWS[:4] + ["A7,违章停车,0.015,0.005,2026-03-05 08:00"]) + "\n")
                     .encode("gb18030"))
    sent: list[int] = []
    real = import_worker.Connection.send_bytes

    def send_bytes(self, buf, *args) -> None:
        sent.append(len(buf))
        real(self, buf, *args)

    monkeypatch.setattr(import_worker.Connection, "send_bytes", send_bytes)
    result = block.import_incidents(path, filename="gbk.csv")
    assert (len(worker_for_every_file), sent) == (2, [])
    assert result.ids.tolist() == [1, 2, 3, 4, 5]
    assert result.units["micro_grid"].tolist() == ["W-S", "E-N", "E-S", None, "E-S"]
    assert block.store.incident_table()["category"].tolist() == ["illegal_parking", "flying_cable",
                                                                 "illegal_parking", "clutter", "illegal_parking"]


def test_a_worker_that_dies_fails_the_import_and_stores_nothing(block, worker_for_every_file, monkeypatch):
    class Killed(Recorded):
        def __init__(self, *args, **kwargs) -> None:
            super().__init__(*args, **kwargs)
            self._process.kill()

    monkeypatch.setattr(service_module, "ImportWorker", Killed)
    with pytest.raises(RuntimeError, match=r"the import worker stopped unexpectedly \(exit code -9\)"):
        block.import_incidents(FILE, filename="export.csv")
    assert block.store.count_incidents() == 0


def test_an_import_that_fails_while_the_worker_reads_stops_it(block, worker_for_every_file):
    def progress(stage: str, rows: int) -> None:
        if stage == "stored":
            raise KeyboardInterrupt            # the planner pressed Ctrl-C after the first chunk

    with pytest.raises(KeyboardInterrupt):
        block.import_incidents(FILE, filename="export.csv", progress=progress)
    worker = worker_for_every_file[0]
    assert worker._process.returncode is not None          # stopped and waited for: no orphan
    assert block.store.count_incidents() == 0


def test_a_refusal_pickles_with_every_detail():
    # how a worker's refusal reaches the storing process
    refusal = InvalidInput(message("could not read {file}", file="f.csv"), [message("line {n}", n=3)],
                           report={"k": 1})
    again = pickle.loads(pickle.dumps(refusal))
    assert (type(again), again.summary, again.details, again.report, str(again)) == (
        InvalidInput, refusal.summary, refusal.details, {"k": 1}, "could not read f.csv\n  - line 3")


def test_the_layers_go_to_the_worker_with_only_what_assignment_needs(block):
    layer = block.layers()[Level.MICRO_GRID]
    slim = import_worker._slim(layer)
    assert list(slim.units.columns) == ["code", "parent_code", "geometry"]
    assert np.array_equal(slim.units.index, layer.units.index) and slim.version == layer.version


def test_where_no_worker_can_start_the_file_is_read_here(block, worker_for_every_file, monkeypatch, caplog):
    def refused(*args, **kwargs):
        raise PermissionError(13, "Permission denied", "python")

    monkeypatch.setattr(import_worker.subprocess, "Popen", refused)
    result = block.import_incidents(FILE, filename="export.csv")
    assert worker_for_every_file == []
    assert result.ids.tolist() == [1, 2, 3, 4, 1, 5]
    assert block.store.count_incidents() == 5
    assert "reading export.csv in this process: no worker process could be started" in caplog.text


def test_an_upload_read_by_the_worker_answers_as_one_read_by_the_server(client, worker_for_every_file):
    for level, data in (("grid", grid_file()), ("micro_grid", micro_file())):
        assert client.post(f"/api/layers/{level}", data={"file": (io.BytesIO(data), f"{level}.geojson")},
                           content_type="multipart/form-data").status_code == 201
    csv = ("经度,纬度,类别,上报时间\n0.005,0.005,乱停乱放,2026-03-05 08:00\n"
           "0.015,,杂物堆积,2026-03-05 09:00\n0.015,0.015,噪音,2026-03-06 10:00\n").encode()
    response = client.post("/api/incidents", data={"file": (io.BytesIO(csv), "reports.csv")},
                           content_type="multipart/form-data")
    assert len(worker_for_every_file) == 1
    assert response.status_code == 201
    body = response.get_json()
    assert [(i["row"], i["units"]["micro_grid"]) for i in body["items"]] == [(2, "W-S"), (4, "E-N")]
    assert body["errors"] == [{"row": 3, "error": "missing or non-numeric coordinates (lon='0.015', lat=None)"}]

    no_lat = "经度,类别\n0.005,乱停乱放\n".encode()
    refused = client.post("/api/incidents", data={"file": (io.BytesIO(no_lat), "r.csv")},
                          content_type="multipart/form-data")
    assert len(worker_for_every_file) == 2
    assert refused.status_code == 400, refused.get_json()
    assert refused.get_json() == {  # with every detail, the options named as the API names them
        "error": "the file's columns do not match the options",
        "details": ["no coordinate columns found (tried lon/lng/long/longitude/x/经度/东经 and "
                    "lat/latitude/y/纬度/北纬, or one column of both: 经纬度/坐标/位置坐标/经纬度坐标/lnglat/lonlat/"
                    "lng_lat/lon_lat/lng,lat/lon,lat/纬经度/latlng/latlon/lat_lng/lat_lon/lat,lng/lat,lon); "
                    "the file has: 经度, 类别. Say which with lon_field and lat_field."]}
    assert len(client.get("/api/incidents").get_json()["features"]) == 2


@pytest.mark.parametrize("filename", ["export.tsv", "导出.xls", "12345热线导出", "a.CSV"])
def test_a_big_text_file_goes_to_the_worker_whatever_its_name(block, worker_for_every_file, filename):
    # any file read as delimited text is counted by its lines (a tab-separated ".xls" export too)
    result = block.import_incidents("经度\t纬度\t类别\t上报时间\n0.005\t0.005\t违停\t2026-03-05\n".encode(),
                                    filename=filename)
    assert (len(worker_for_every_file), result.created, {lv: c.tolist() for lv, c in result.units.items()}) == (
        1, 1, {"grid": ["W"], "micro_grid": ["W-S"]})


def test_a_geojson_file_is_read_here(block, worker_for_every_file):
    point = {"type": "Point", "coordinates": [0.005, 0.005]}
    data = json.dumps({"type": "FeatureCollection", "features": [
        {"type": "Feature", "properties": {"category": "litter", "reported_at": "2026-03-05"}, "geometry": point}]})
    assert block.import_incidents(data.encode(), filename="r.geojson").created == 1
    assert worker_for_every_file == []


# -- a worker started before the command's own imports (python -m gridmap import-incidents) ----------

@pytest.fixture
def spawned(monkeypatch):
    """Every worker process started, the spare put back to none afterwards (and stopped)."""
    started: list[import_worker._Process] = []
    real = import_worker._spawn

    def spawn() -> import_worker._Process:
        started.append(real())
        started[-1].process.cli_imported = "gridmap.cli" in sys.modules     # type: ignore[attr-defined]
        return started[-1]

    monkeypatch.setattr(import_worker, "_spawn", spawn)
    yield started
    import_worker.drop_spare()


def test_a_worker_started_for_the_command_line_reads_its_file(block, worker_for_every_file, spawned, tmp_path):
    path = tmp_path / "export.csv"
    path.write_bytes(FILE)
    import_worker.PRESTART_BYTES = len(FILE)       # put back by worker_for_every_file's monkeypatch
    import_worker.prestart(["import-incidents", "--crs", "EPSG:4326", str(path)])
    assert len(spawned) == 1 and import_worker._spare is spawned[0]

    result = block.import_incidents(FILE, filename="export.csv")
    assert len(spawned) == 1 and import_worker._spare is None     # the import took it: no second worker
    assert worker_for_every_file[0]._process is spawned[0].process
    assert spawned[0].process.poll() == 0
    assert _outcome(result)["ids"] == [1, 2, 3, 4, 1, 5]
    assert _outcome(result)["units"]["micro_grid"] == ["W-S", "E-N", "E-S", None, "W-S", "W-N"]


@pytest.mark.parametrize("args", [[], ["export-incidents", "{big}"], ["import-incidents", "{small}"],
                                  ["import-incidents", "{big}.missing"], ["import-incidents", "\x00"]])
def test_only_a_big_file_on_the_command_line_starts_a_worker_early(spawned, tmp_path, args):
    big, small = tmp_path / "big.csv", tmp_path / "small.csv"
    with big.open("wb") as f:
        f.truncate(import_worker.PRESTART_BYTES)
    small.write_bytes(b"x" * (import_worker.PRESTART_BYTES - 1))
    import_worker.prestart([arg.format(big=big, small=small) for arg in args])
    assert spawned == [] and import_worker._spare is None
    import_worker.prestart(["import-incidents", str(big)])
    assert len(spawned) == 1


def test_a_worker_the_file_does_not_need_is_stopped(block, spawned, tmp_path):
    path = tmp_path / "few.csv"
    path.write_bytes(FILE)
    import_worker.PRESTART_BYTES = 1
    try:
        import_worker.prestart(["import-incidents", str(path)])
    finally:
        import_worker.PRESTART_BYTES = 2_000_000
    assert block.import_incidents(FILE, filename="few.csv").created == 5     # 8 lines: read here
    assert import_worker._spare is None and spawned[0].process.returncode == -9


def test_a_worker_never_given_a_file_leaves_without_a_word(spawned, capfd):
    # the command ended (or failed) before any import: the worker hears its pipe close
    worker = import_worker._spawn()
    worker.orders.close()
    assert worker.process.wait(timeout=60) == 0
    worker.results.close()
    assert capfd.readouterr().err == ""


def test_python_m_gridmap_import_incidents_starts_the_worker_before_its_imports(block, worker_for_every_file,
                                                                               spawned, tmp_path, monkeypatch,
                                                                               capsys):
    import runpy

    import gridmap
    path = tmp_path / "export.csv"
    path.write_bytes(FILE)
    monkeypatch.setattr(import_worker, "PRESTART_BYTES", 1)
    monkeypatch.delitem(sys.modules, "gridmap.cli", raising=False)    # imported again, as in a fresh process
    monkeypatch.delattr(gridmap, "cli", raising=False)
    monkeypatch.setenv("GRIDMAP_DATABASE_URL", database_url(tmp_path / "test.db"))     # block's store
    monkeypatch.setattr(sys, "argv", ["gridmap", "import-incidents", str(path)])
    with pytest.raises(SystemExit) as done:
        runpy.run_module("gridmap", run_name="__main__")
    assert done.value.code == 0
    assert capsys.readouterr().out == "created 5, already stored 1, outside every unit 1, refused rows 1\n"
    assert len(spawned) == 1 and spawned[0].process.returncode == 0       # the one started first did the work
    assert spawned[0].process.cli_imported is False                       # before the command's own imports
    assert block.store.count_incidents() == 5
