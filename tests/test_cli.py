"""The CLI: every command, through click and once through `python -m gridmap` itself."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner
from shapely import LineString, box

from gridmap.cli import cli
from gridmap.levels import Level

from .conftest import GRIDS, feature_collection, geodesic_m2, grid_file, micro_file
from .test_boundaries import SQUARE_4547

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def run(service):
    runner = CliRunner()

    def invoke(*args: str):
        return runner.invoke(cli, list(args), obj=service, catch_exceptions=False)
    return invoke


def write(tmp_path: Path, name: str, data: bytes) -> str:
    path = tmp_path / name
    path.write_bytes(data)
    return str(path)


def test_import_boundaries_and_incidents(run, service, tmp_path):
    result = run("import-boundaries", write(tmp_path, "g.geojson", grid_file()), "--level", "grid")
    assert result.exit_code == 0
    total = geodesic_m2(GRIDS["W"]) + geodesic_m2(GRIDS["E"])          # 4,923,628.7 m²
    assert result.output.startswith(f"grid version 1 (committed): 2 units, {total:,.0f} m², parents: none, 0 incidents")
    result = run("import-boundaries", write(tmp_path, "m.geojson", micro_file(with_parent=True)),
                 "--level", "micro_grid", "--parent-field", "parent_code", "--name-field", "name")
    assert result.exit_code == 0 and "parents: field" in result.output
    csv = "lon,lat,category,time\n0.005,0.005,litter,2026-03-05\n1,1,litter,2026-03-05\nx,1,litter,2026-03-05\n"
    result = run("import-incidents", write(tmp_path, "i.csv", csv.encode()))
    assert result.exit_code == 0
    assert result.stdout.splitlines()[0] == ("created 2, already stored 0, outside every unit 1, refused rows 1")
    assert "row 4: missing or non-numeric coordinates (lon='x', lat='1')" in result.stderr
    assert service.incidents()["micro_grid"].tolist() == ["W-S", None]


def test_import_incidents_reads_the_file_s_lines_once(run, block, tmp_path, monkeypatch):
    # the command counts the lines for its progress bar and the service is told them: a 255 MB file
    # took 0.14 s a count from the page cache (0.9 s from the disk), before any row was read
    from gridmap import cli as cli_module
    from gridmap import service as service_module
    counted: list[Path] = []

    def count(data) -> int:
        counted.append(data)
        return data.read_bytes().count(b"\n")

    monkeypatch.setattr(cli_module, "line_count", count)
    monkeypatch.setattr(service_module, "line_count", count)
    path = write(tmp_path, "i.csv", b"lon,lat,category,time\n0.005,0.005,litter,2026-03-05\n")
    result = run("import-incidents", path)
    assert (result.exit_code, result.stdout.splitlines()[0]) == (
        0, "created 1, already stored 0, outside every unit 0, refused rows 0")
    assert counted == [Path(path)]


def test_import_options_crs_and_fields(run, service, tmp_path):
    path = write(tmp_path, "z.geojson", feature_collection([({"BH": "Z1"}, SQUARE_4547)]))
    refused = run("import-boundaries", path, "--level", "grid", "--code-field", "BH")
    assert refused.exit_code == 2 and "cannot be longitude/latitude" in refused.stderr
    assert service.store.layers() == {}
    assert run("import-boundaries", path, "--level", "grid", "--code-field", "BH", "--crs", "EPSG:4547").exit_code == 0
    assert service.store.layers()[Level.GRID].units["code"].tolist() == ["Z1"]
    csv = write(tmp_path, "i.csv", b"E,N,date\n114.0,31.6,2026-03-05\n")
    result = run("import-incidents", csv, "--lon-field", "E", "--lat-field", "N", "--category", "dispute")
    assert result.exit_code == 0 and service.incidents()["category"].tolist() == ["dispute"]


def test_refused_files_exit_2_and_change_nothing(run, service, tmp_path):
    bad = write(tmp_path, "bad.geojson", feature_collection([({"code": "L"}, LineString([(0, 0), (1, 1)]))]))
    result = run("import-boundaries", bad, "--level", "grid")
    assert result.exit_code == 2
    assert 'expected Polygon or MultiPolygon, got LineString in feature 0 (code "L")' in result.stderr
    only_bad = write(tmp_path, "bad.csv", b"lon,lat,date\nx,y,2026-01-01\n")
    assert run("import-incidents", only_bad).exit_code == 2
    assert service.store.is_empty()


def test_init_db_and_load_demo(run, service):
    assert run("init-db").output == "database ready: 0 incidents\n"
    lines = run("load-demo").output.splitlines()
    assert lines[:2] == ["grid: 5, micro_grid: 20, incidents: 1200",
                         "gridmap demo accounts (name, role, password; shown only now):"]
    accounts = [line.split() for line in lines[2:]]
    assert [(name, role) for name, role, _ in accounts] == [("admin", "admin"), ("planner", "planner"),
                                                        ("worker", "worker"), ("viewer", "viewer")]
    assert service.access.sign_in("planner", accounts[1][2]).role.value == "planner"
    again = run("load-demo")
    assert again.exit_code == 2 and "not empty" in again.stderr
    assert run("init-db").output == ("database ready: grid v1 (5 units), micro_grid v1 (20 units), "
                                     "1200 incidents\n")


@pytest.mark.parametrize("entry", [[sys.executable, "-m", "gridmap"],
                                   [sys.executable, "-m", "flask", "--app", "app", "gridmap"]])
def test_entry_points_run_the_same_commands(entry, tmp_path):
    env = {**os.environ, "GRIDMAP_DATABASE_URL": f"sqlite:///{tmp_path / 'cli.db'}", "GRIDMAP_LOAD_DEMO": "0"}
    path = write(tmp_path, "g.geojson", grid_file())
    done = subprocess.run([*entry, "import-boundaries", path, "--level", "grid"], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    done = subprocess.run([*entry, "init-db"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert done.stdout == "database ready: grid v1 (2 units), 0 incidents\n"





def test_derive_parent_and_clean_from_the_command_line(run, service, tmp_path):
    assert run("import-boundaries", write(tmp_path, "g.geojson", grid_file()), "--level", "grid").exit_code == 0
    moved = feature_collection([({"code": c}, g) for c, g in (
        ("W-S", box(0, 0, 0.012, 0.01)), ("W-N", box(0, 0.01, 0.012, 0.02)),
        ("E-S", box(0.012, 0, 0.02, 0.01)), ("E-N", box(0.012, 0.01, 0.02, 0.02)))])
    result = run("import-boundaries", write(tmp_path, "m.geojson", moved), "--level", "micro_grid",
                 "--derive-parent", "--clean", "--gap-width", "1")
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0].startswith("micro_grid version 1 (committed): 4 units")
    assert lines[1] == "cleaned: 0 unit(s) changed, 0.0 m² in all"            # a clean tiling stays as it is
    assert lines[2] == "warning: the file has no name property; the codes are shown as names"
    assert lines[3].startswith("grid version 2 (committed): 2 units")          # the grids, redrawn with them
    assert service.layer(Level.GRID).units.set_index("code").geometry["W"].equals(box(0, 0, 0.012, 0.02))
    refused = run("import-boundaries", write(tmp_path, "m2.geojson", moved), "--level", "micro_grid",
                  "--clean", "--snap", "-1")
    assert refused.exit_code == 2
    assert "error: --snap: '-1' is not valid; expected a number >= 0.0" in refused.stderr
