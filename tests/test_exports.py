"""GeoParquet exports (gridmap/exports.py and the export commands), read back by geopandas, DuckDB's
plain Parquet reader (no extension: the geometry is a WKB blob, decoded here with shapely) and
dask-geopandas, with the ``geo`` metadata checked against the GeoParquet 1.0.0 spec.

QGIS reads GeoParquet through GDAL's Parquet driver; the GDAL inside pyogrio here is built without
it, so that reader cannot be tried in these tests.
"""
from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path

import dask_geopandas
import duckdb
import geopandas
import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
import shapely
from click.testing import CliRunner
from pyproj import CRS
from shapely import Point

from gridmap import categories
from gridmap.cli import cli
from gridmap.errors import Conflict, InvalidInput
from gridmap.exports import export_incidents, export_units, points_wkb
from gridmap.incidents import FileOptions
from gridmap.levels import Level
from gridmap.lifecycle import Action, Step
from gridmap.mapping import ImportMapping
from gridmap.storage import IncidentQuery

from .conftest import CELLS, geodesic_m2, grid_file

# Four reports as an operations system exports them: A1 inside W-S, A2 inside E-N (it arrives
# closed), A3 on the edge between W-S and E-S (the tie-break gives grid E, then E-S: E < W), A4
# outside every unit.  "井盖丢失" is no category of ours: it is stored as "other" with the word kept.
CSV = """编号,类别,经度,纬度,上报,办结,期限,状态,描述,来源
A1,乱停乱放,0.005,0.005,2026-03-01 08:00:00,,2026-03-03 08:00:00,上报,东门,app
A2,飞线充电,0.015,0.015,2026-03-02 09:30:00,2026-03-02 12:00:00,,办结,,hotline
A3,井盖丢失,0.01,0.005,2026-03-05 10:00:00,,,派单,,app
A4,杂物堆积,0.03,0.01,2026-04-01 00:00:00,,,上报,,
"""
MAPPING = """[columns]
external_id = "编号"
category = "类别"
lon = "经度"
lat = "纬度"
reported_at = "上报"
closed_at = "办结"
due_at = "期限"
status = "状态"
description = "描述"
source = "来源"
"""
T = datetime.fromisoformat
# What each incident's row must hold, worked out from the file above and the two steps below
# (A2 rated 4, A3 escalated once).
EXPECTED = {
    "id": [1, 2, 3, 4],
    "external_id": ["A1", "A2", "A3", "A4"],
    "category": ["illegal_parking", "flying_cable", "other", "clutter"],
    "category_raw": [None, None, "井盖丢失", None],
    "status": ["reported", "rated", "dispatched", "reported"],
    "source": ["app", "hotline", "app", ""],
    "description": ["东门", "", "", ""],
    "reported_at": [T("2026-03-01 08:00"), T("2026-03-02 09:30"), T("2026-03-05 10:00"), T("2026-04-01 00:00")],
    "closed_at": [None, T("2026-03-02 12:00"), None, None],
    "due_at": [T("2026-03-03 08:00"), None, None, None],
    "resolution": [None, None, None, None],
    "rating": [None, 4, None, None],
    "escalation": [0, 0, 1, 0],
    "grid": ["W", "E", "E", None],
    "micro_grid": ["W-S", "E-N", "E-S", None],
}
POINTS = [(0.005, 0.005), (0.015, 0.015), (0.01, 0.005), (0.03, 0.01)]
COLUMNS = list(EXPECTED) + ["geometry"]


@pytest.fixture
def reports(block):
    """The 2×2 block with the four reports, A2 rated and A3 escalated."""
    result = block.import_incidents(CSV.encode(), filename="cases.csv",
                                    options=FileOptions(mapping=ImportMapping.parse(MAPPING)))
    assert (result.created, result.errors) == (4, [])
    block._now = lambda: datetime(2026, 3, 6, 10, 0)
    block.take_step(2, Step(action=Action.RATE, actor="张三", rating=4))
    block.take_step(3, Step(action=Action.ESCALATE, actor="gridmap"))
    return block


@pytest.fixture
def run(reports):
    runner = CliRunner()
    return lambda *args: runner.invoke(cli, list(args), obj=reports, catch_exceptions=False)


def plain(values) -> list:
    """Column values with every kind of missing (None, NaN, NaT) as None, timestamps as datetime."""
    return [None if pd.isna(v) else v.to_pydatetime() if isinstance(v, pd.Timestamp) else v for v in values]


def left_in(folder: Path) -> list[str]:
    """What is in ``folder`` besides the test's database."""
    return sorted(p.name for p in folder.iterdir() if not p.name.startswith("test.db"))


def test_incidents_round_trip_through_geopandas(reports, tmp_path):
    written = export_incidents(reports.store, tmp_path / "i.parquet", timezone="Asia/Shanghai")
    assert (written.rows, written.files, written.versions) == (4, [tmp_path / "i.parquet"],
                                                              {Level.GRID: 1, Level.MICRO_GRID: 1})
    frame = geopandas.read_parquet(tmp_path / "i.parquet")
    assert list(frame.columns) == COLUMNS
    assert {column: plain(frame[column]) for column in EXPECTED} == EXPECTED
    assert str(frame["reported_at"].dtype) == "datetime64[us]" and str(frame["id"].dtype) == "int64"
    assert frame.crs == CRS.from_epsg(4326)
    assert [(p.x, p.y) for p in frame.geometry] == POINTS


def test_duckdb_reads_the_file_with_its_plain_parquet_reader(reports, tmp_path):
    path = tmp_path / "i.parquet"
    export_incidents(reports.store, path)
    rows = duckdb.sql(f"select id, category, reported_at, closed_at, rating, micro_grid, geometry "
                      f"from read_parquet('{path}') order by id").fetchall()
    assert [row[:6] for row in rows] == [
        (1, "illegal_parking", T("2026-03-01 08:00"), None, None, "W-S"),
        (2, "flying_cable", T("2026-03-02 09:30"), T("2026-03-02 12:00"), 4, "E-N"),
        (3, "other", T("2026-03-05 10:00"), None, None, "E-S"),
        (4, "clutter", T("2026-04-01 00:00"), None, None, None)]
    blobs = [row[6] for row in rows]
    assert [(p.x, p.y) for p in shapely.from_wkb(blobs)] == POINTS
    assert blobs == [shapely.to_wkb(Point(x, y)) for x, y in POINTS]       # little-endian ISO WKB, 21 bytes
    counts = duckdb.sql(f"select grid, count(*) from read_parquet('{path}') group by grid order by grid").fetchall()
    assert counts == [("E", 2), ("W", 1), (None, 1)]


def test_geo_metadata_follows_the_geoparquet_spec(reports, tmp_path):
    path = tmp_path / "i.parquet"
    export_incidents(reports.store, path, page=3, timezone="Asia/Shanghai")
    geo = json.loads(pq.read_schema(path).metadata[b"geo"])
    assert geo["version"] == "1.0.0" and geo["primary_column"] == "geometry"
    assert set(geo["columns"]) == {"geometry"}
    column = geo["columns"]["geometry"]
    assert (column["encoding"], column["geometry_types"]) == ("WKB", ["Point"])
    # the CRS is given (PROJJSON of EPSG:4326) rather than left to the default OGC:CRS84
    assert column["crs"]["id"] == {"authority": "EPSG", "code": 4326}
    assert CRS.from_json_dict(column["crs"]) == CRS.from_epsg(4326)
    assert set(column) <= {"encoding", "geometry_types", "crs", "orientation", "edges", "bbox", "epoch"}
    schema = pq.ParquetFile(path).schema     # the spec: a BYTE_ARRAY column, and the file's own metadata
    assert schema.column(len(COLUMNS) - 1).physical_type == "BYTE_ARRAY"
    assert json.loads(pq.read_schema(path).metadata[b"gridmap"]) == {"versions": {"grid": 1, "micro_grid": 1},
                                                                      "timezone": "Asia/Shanghai"}
    file = pq.ParquetFile(path)          # read and written a page at a time: a row group per page
    assert [file.metadata.row_group(i).num_rows for i in range(file.num_row_groups)] == [3, 1]


def test_points_are_encoded_as_shapely_encodes_them():
    lon, lat = np.array([0.1, -179.5, 121.473701]), np.array([-0.2, 89.9, 31.230416])
    assert points_wkb(lon, lat).to_pylist() == list(shapely.to_wkb(shapely.points(lon, lat)))


@pytest.mark.parametrize("args, ids", [
    (["--category", "illegal_parking", "--category", "other"], [1, 3]),
    (["--status", "reported"], [1, 4]),
    (["--status", "rated", "--status", "dispatched"], [2, 3]),
    (["--from", "2026-03-02", "--to", "2026-03-05"], [2, 3]),         # --to is the whole day
    (["--to", "2026-03-04"], [1, 2]),
    (["--from", "2026-03-06"], [4]),
    (["--unit", "E"], [2, 3]),
    (["--unit", "W-S"], [1]),
    (["--source", "app", "--status", "dispatched"], [3]),
    (["--category", "clutter", "--unit", "E"], []),
])
def test_export_incidents_filters_like_the_map(run, tmp_path, args, ids):
    out = tmp_path / "out.parquet"
    result = run("export-incidents", str(out), *args)
    assert result.exit_code == 0, result.output
    assert result.output == f"wrote {out}: {len(ids)} incidents in 1 file(s), units of grid v1, micro_grid v1\n"
    assert geopandas.read_parquet(out)["id"].tolist() == ids


def test_export_incidents_refuses_unknown_words_all_at_once_as_the_web_does_and_changes_nothing(run, tmp_path):
    result = run("export-incidents", str(tmp_path / "x.parquet"), "--category", "potholes", "--from", "2026-13-01")
    assert result.exit_code == 2
    assert result.output.splitlines() == [
        "error: the filters are not valid",
        f"  - unknown category 'potholes'; expected one of {', '.join(categories.BY_CODE)}",
        "  - from='2026-13-01' is not a date; expected YYYY-MM-DD"]
    assert left_in(tmp_path) == []


# dask's parquet reader (dask 2026.8, dask/dataframe/io/parquet/arrow.py) calls reset_index(inplace=True),
# which pandas 3.1 deprecates (PDEP-8); nothing in the file or the call avoids it (an upstream fix).
DASK_INPLACE = "ignore:The inplace keyword in GeoDataFrame.reset_index is deprecated:DeprecationWarning"


@pytest.mark.filterwarnings(DASK_INPLACE)
def test_a_folder_of_parts_reads_as_one_frame_in_dask(run, tmp_path):
    out = tmp_path / "parts"
    assert run("export-incidents", str(out), "--partition-rows", "1").exit_code == 0
    result = run("export-incidents", str(out), "--partition-rows", "3")     # an earlier export is replaced
    assert result.output == f"wrote {out}: 4 incidents in 2 file(s), units of grid v1, micro_grid v1\n"
    assert sorted(p.name for p in out.iterdir()) == ["part-00000.parquet", "part-00001.parquet"]
    parts = [geopandas.read_parquet(p) for p in sorted(out.iterdir())]          # each a GeoParquet file
    assert [part["id"].tolist() for part in parts] == [[1, 2, 3], [4]]
    assert all(part.crs == CRS.from_epsg(4326) for part in parts)
    frame = dask_geopandas.read_parquet(out)
    assert frame.npartitions == 2 and list(frame.columns) == COLUMNS
    whole = frame.compute(scheduler="sync")
    assert whole["id"].tolist() == [1, 2, 3, 4] and plain(whole["micro_grid"]) == EXPECTED["micro_grid"]
    assert [(p.x, p.y) for p in whole.geometry] == POINTS


def test_no_match_still_writes_a_readable_file(run, tmp_path):
    out = tmp_path / "none"
    assert run("export-incidents", str(out), "--unit", "Z9", "--partition-rows", "10").exit_code == 0
    assert [p.name for p in out.iterdir()] == ["part-00000.parquet"]
    frame = geopandas.read_parquet(out / "part-00000.parquet")
    assert len(frame) == 0 and list(frame.columns) == COLUMNS and frame.crs == CRS.from_epsg(4326)


def test_a_folder_holding_other_files_is_refused_untouched(reports, tmp_path):
    out = tmp_path / "mine"
    out.mkdir()
    (out / "notes.txt").write_text("keep me")
    with pytest.raises(InvalidInput, match="holds other files than an earlier export's parts"):
        export_incidents(reports.store, out, partition_rows=2)
    assert [p.name for p in out.iterdir()] == ["notes.txt"]
    with pytest.raises(InvalidInput, match="is a folder; expected the name of a .parquet file"):
        export_incidents(reports.store, out)
    assert left_in(tmp_path) == ["mine"]
    result = CliRunner().invoke(cli, ["export-incidents", str(out)], obj=reports)
    assert result.exit_code == 2 and result.stderr == (
        f"error: {out} is a folder; expected the name of a .parquet file to write (or --partition-rows to write a "
        f"folder of parts)\n")


def test_a_commit_during_the_export_refuses_it_and_leaves_nothing(reports, tmp_path):
    store = reports.store
    pages = []

    def page_then_commit(query, *, after, limit):
        pages.append(after)
        if len(pages) == 2:              # a planner commits the grids again between two pages
            reports.import_layer(Level.GRID, grid_file())
        return type(store).incident_page(store, query, after=after, limit=limit)

    store.incident_page = page_then_commit
    with pytest.raises(Conflict, match=r"\(grid v1, micro_grid v1 then, grid v2, micro_grid v1 now\); nothing "
                                       r"was written"):
        export_incidents(store, tmp_path / "i.parquet", page=2)
    assert pages == [0, 2, 4] and left_in(tmp_path) == []       # neither the file nor its staging folder


def test_incident_filters_reach_the_store_as_a_query(reports, tmp_path):
    written = export_incidents(reports.store, tmp_path / "q.parquet",
                               IncidentQuery(categories=("flying_cable", "clutter"), unit="E"))
    assert written.rows == 1 and geopandas.read_parquet(tmp_path / "q.parquet")["external_id"].tolist() == ["A2"]


# -- units -----------------------------------------------------------------------------------------

def test_units_round_trip_with_their_properties(run, reports, tmp_path):
    out = tmp_path / "micro.parquet"
    result = run("export-units", str(out), "--level", "micro_grid")
    assert result.output == f"wrote {out}: 4 micro_grid units of version 1\n"
    frame = geopandas.read_parquet(out)
    assert list(frame.columns) == ["code", "name", "parent_code", "area_m2", "properties", "geometry"]
    assert frame["code"].tolist() == ["W-S", "W-N", "E-S", "E-N"]
    assert frame["name"].tolist() == ["微网格W-S", "微网格W-N", "微网格E-S", "微网格E-N"]
    assert frame["parent_code"].tolist() == ["W", "W", "E", "E"]
    assert [json.loads(p) for p in frame["properties"]] == [{"staff": f"worker {c}"} for c in frame["code"]]
    assert all(geometry.equals(CELLS[code]) for code, geometry in zip(frame["code"], frame.geometry))
    # a 0.01° cell at the equator: 1,230,907.2 m² on the ellipsoid, measured independently
    assert np.allclose(frame["area_m2"], [geodesic_m2(CELLS[c]) for c in frame["code"]], atol=0.1)
    geo = json.loads(pq.read_schema(out).metadata[b"geo"])
    assert (geo["version"], geo["columns"]["geometry"]["encoding"]) == ("1.0.0", "WKB")
    assert geo["columns"]["geometry"]["geometry_types"] == ["Polygon"]
    assert CRS.from_json_dict(geo["columns"]["geometry"]["crs"]) == CRS.from_epsg(4326)
    rows = duckdb.sql(f"select code, parent_code, geometry from read_parquet('{out}') order by code").fetchall()
    assert [(c, p) for c, p, _ in rows] == [("E-N", "E"), ("E-S", "E"), ("W-N", "W"), ("W-S", "W")]
    assert shapely.from_wkb(rows[0][2]).equals(CELLS["E-N"])


def test_units_of_an_older_version_and_of_none(run, reports, tmp_path):
    moved = geopandas.GeoDataFrame({"code": ["W", "E"]}, geometry=[shapely.box(0, 0, 0.012, 0.02),
                                                                   shapely.box(0.012, 0, 0.02, 0.02)], crs=4326)
    reports.import_layer(Level.GRID, moved.to_json().encode())
    assert run("export-units", str(tmp_path / "g1.parquet"), "--level", "grid", "--version", "1").exit_code == 0
    assert run("export-units", str(tmp_path / "g2.parquet"), "--level", "grid").exit_code == 0
    old, new = (geopandas.read_parquet(tmp_path / name).set_index("code").geometry for name in ("g1.parquet",
                                                                                                "g2.parquet"))
    assert old["W"].equals(shapely.box(0, 0, 0.01, 0.02)) and new["W"].equals(shapely.box(0, 0, 0.012, 0.02))
    missing = run("export-units", str(tmp_path / "s.parquet"), "--level", "street")
    assert missing.exit_code == 2 and "no Street layer has been uploaded yet" in missing.stderr
    assert run("export-units", str(tmp_path / "g9.parquet"), "--level", "grid", "--version", "9").exit_code == 2
    assert not (tmp_path / "s.parquet").exists() and not (tmp_path / "g9.parquet").exists()


def test_export_units_keeps_a_layer_without_parents_as_nulls(block, tmp_path):
    export_units(block.layer(Level.GRID), tmp_path / "g.parquet")
    frame = geopandas.read_parquet(tmp_path / "g.parquet")
    assert plain(frame["parent_code"]) == [None, None]
    assert [json.loads(p) for p in frame["properties"]] == [{"staff": "staff W", "phone": "139****0001"},
                                                            {"staff": "staff E", "phone": "139****0001"}]
