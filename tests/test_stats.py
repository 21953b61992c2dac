"""The statistics API on a 4×4 block of micro-grids: a cluster of incidents in the south-west,
two in every other unit, and 60 piled on one coordinate in the north-east (a placeholder)."""
from __future__ import annotations

import io
import json

import numpy as np
import pandas as pd
import pytest
from shapely import box

from gridmap.hotspots import hotspots
from gridmap.levels import Level

from .conftest import feature_collection

N = 4
CODES = [f"r{r}c{c}" for r in range(N) for c in range(N)]
CLUSTER = {"r0c0": 20, "r0c1": 15, "r1c0": 15, "r1c1": 12}
PILE = (0.035, 0.035)       # in r3c3


def unit_box(code: str):
    r, c = int(code[1]), int(code[3])
    return box(c * 0.01, r * 0.01, (c + 1) * 0.01, (r + 1) * 0.01)


def expected_counts() -> dict[str, int]:
    return {code: CLUSTER.get(code, 2) for code in CODES}


@pytest.fixture
def block(client):
    data = feature_collection([({"code": code, "name": f"微网格{code}"}, unit_box(code)) for code in CODES])
    response = client.post("/api/layers/micro_grid", data={"file": (io.BytesIO(data), "m.geojson")},
                           content_type="multipart/form-data")
    assert response.status_code == 201, response.get_json()
    records = []
    for code, n in expected_counts().items():        # each on its own coordinate inside the unit
        west, south = unit_box(code).bounds[:2]
        records += [{"category": "litter", "lon": west + 0.001 + k * 1e-4, "lat": south + 0.005,
                     "reported_at": "2026-03-05 10:00"} for k in range(n)]
    records += [{"category": "litter", "lon": PILE[0], "lat": PILE[1], "reported_at": "2026-03-05 10:00"}] * 60
    assert client.post("/api/incidents", json=records).status_code == 201
    return client


def features(client, query: str = "") -> dict[str, dict]:
    response = client.get("/api/hotspots" + query)
    assert response.status_code == 200, response.get_json()
    assert response.mimetype == "application/geo+json"
    body = response.get_json()
    return body, {f["properties"]["code"]: f for f in body["features"]}


def test_quality_names_the_pile_and_the_threshold_it_passed(block):
    # 87 coordinates: 86 hold one incident, so the threshold is max(50, 10 × 1)
    assert block.get("/api/quality").get_json() == {
        "stacked": {"threshold": 50, "points": [{"lon": 0.035, "lat": 0.035, "count": 60}]},
        "ambiguous": {"level": "micro_grid", "count": 0, "incidents": 146, "between": []}}


def test_quality_names_the_incidents_whose_coordinates_cannot_tell_their_unit(block):
    # written with 2 decimals (±0.005°): on the edge x = 0.01 between r0c0 and r0c1, and at the
    # corner (0.02, 0.02) of four units; with 4 decimals (±0.00005°) 0.0099 is clearly in r0c0
    records = [{"category": "litter", "lon": lon, "lat": lat, "reported_at": "2026-03-05 10:00"}
               for lon, lat in [(0.01, 0.005), (0.01, 0.005), (0.02, 0.02), (0.0099, 0.0051)]]
    assert block.post("/api/incidents", json=records).status_code == 201
    assert block.get("/api/quality").get_json()["ambiguous"] == {
        "level": "micro_grid", "count": 3, "incidents": 150,
        "between": [{"codes": ["r0c0", "r0c1"], "count": 2},
                    {"codes": ["r1c1", "r1c2", "r2c1", "r2c2"], "count": 1}]}


def test_hotspots_leave_the_pile_out_and_equal_gi_star_of_the_counts(block, app):
    body, by_code = features(block)
    assert body["level"] == "micro_grid" and body["version"] == 1
    assert body["options"] == {"per": "count", "fdr": True, "permutations": 999, "seed": 12345,
                               "stacked": "excluded"}
    assert body["stacked"] == {"coordinates": 1, "incidents": 60}
    assert {code: f["properties"]["count"] for code, f in by_code.items()} == expected_counts()
    layer = app.extensions["gridmap"].layer(Level.MICRO_GRID)
    direct = hotspots(layer, expected_counts())
    assert [by_code[c]["properties"]["z"] for c in CODES] == pytest.approx(direct.z.tolist(), rel=1e-12)
    assert [by_code[c]["properties"]["p"] for c in CODES] == pytest.approx(direct.p.tolist(), rel=1e-12)
    assert [by_code[c]["properties"]["class"] for c in CODES] == [s.value for s in direct.classes]
    assert by_code["r0c0"]["properties"]["class"] == "hot_99"
    assert by_code["r0c0"]["properties"]["label"] == "hot spot, confidence 99%"
    assert by_code["r3c3"]["properties"]["class"] != "hot_99"
    assert by_code["r0c0"]["geometry"]["type"] == "Polygon"
    np.testing.assert_allclose(np.array(by_code["r0c0"]["geometry"]["coordinates"][0]).min(axis=0), [0, 0])


def test_with_the_pile_counted_its_unit_is_the_top_hotspot(block):
    body, by_code = features(block, "?stacked=1&geometry=0")
    assert body["options"]["stacked"] == "included"
    assert by_code["r3c3"]["properties"]["count"] == 62
    assert max(by_code.values(), key=lambda f: f["properties"]["z"])["properties"]["code"] == "r3c3"
    assert all(f["geometry"] is None for f in by_code.values())


def test_density_and_filters_and_chinese_labels(block):
    _, by_code = features(block, "?per=km2&category=illegal_parking&geometry=0")
    assert {f["properties"]["count"] for f in by_code.values()} == {0}
    assert {f["properties"]["class"] for f in by_code.values()} == {"none"}
    assert {f["properties"]["z"] for f in by_code.values()} == {None}
    zh = block.get("/api/hotspots?geometry=0&lang=zh").get_json()
    labels = {f["properties"]["code"]: f["properties"]["label"] for f in zh["features"]}
    assert labels["r0c0"] == "热点（置信度 99%）"


@pytest.mark.parametrize("query, expected", [
    ("per=people", "per='people' is not valid; expected one of: count, km2, households"),
    ("fdr=maybe", "fdr='maybe' is not valid; expected 1 or 0"),
])
def test_bad_parameters_are_refused_with_what_is_expected(block, query, expected):
    response = block.get("/api/hotspots?" + query)
    assert response.status_code == 400
    assert expected in response.get_json()["error"]


def test_the_heat_leaves_the_pile_out_unless_asked(block):
    everywhere = "bbox=-1,-1,1,1&zoom=10"
    assert block.get(f"/api/heat?{everywhere}").get_json()["total"] == sum(expected_counts().values()) == 86
    assert block.get(f"/api/heat?{everywhere}&stacked=1").get_json()["total"] == 86 + 60
    assert block.get(f"/api/heat?{everywhere}&stacked=2").status_code == 400


def test_the_map_page_tells_the_script_where_the_warning_comes_from(block):
    def config(query: str) -> dict:
        html = block.get("/" + query).get_data(as_text=True)
        return json.loads(html.split('id="map-config">', 1)[1].split("</script>", 1)[0])
    default, counted = config("?category=litter"), config("?category=litter&stacked=1")
    assert (default["quality"]["included"], counted["quality"]["included"]) == (False, True)
    assert default["quality"]["toggle"] == "/?category=litter&stacked=1"
    assert counted["quality"]["toggle"] == "/?category=litter"
    assert "stacked=1" in counted["heat"]["url"] and "stacked" not in default["heat"]["url"]
    assert "stacked=1" in counted["hotspots"]["url"]


def test_emerging_hotspots_over_months_and_weeks(block):
    response = block.get("/api/hotspots/emerging?periods=3&geometry=0")
    assert response.status_code == 200, response.get_json()
    body = response.get_json()
    assert body["periods"] == ["2026-01", "2026-02", "2026-03"]      # every incident came on 5 March
    assert body["options"]["permutations"] == 0                      # each period's p: the normal approximation
    by_code = {f["properties"]["code"]: f["properties"] for f in body["features"]}
    now, _ = features(block, "?geometry=0")
    corner = by_code["r0c0"]
    assert (corner["trend"], corner["label"], corner["counts"], corner["hot"]) == (
        "new", "new hot spot", [0, 0, 20], [False, False, True])
    assert corner["z"][:2] == [None, None] and corner["z"][2] == pytest.approx(
        next(f for f in now["features"] if f["properties"]["code"] == "r0c0")["properties"]["z"], rel=1e-12)
    assert corner["tau"] is None and corner["p"] is None          # three periods, one z-score
    assert by_code["r3c3"]["counts"] == [0, 0, 2]                 # the pile left out
    weeks = block.get("/api/hotspots/emerging?by=week&periods=2&geometry=0").get_json()
    assert weeks["periods"] == ["2026-W09", "2026-W10"]
    before = block.get("/api/hotspots/emerging?periods=2&to=2026-02-28&geometry=0").get_json()
    assert before["periods"] == ["2026-01", "2026-02"]
    assert {f["properties"]["trend"] for f in before["features"]} == {"none"}


@pytest.mark.parametrize("query, expected", [
    ("by=day", "by='day', periods=12 is not valid; expected by=month or week and from 2 to 60 periods"),
    ("periods=1", "by='month', periods=1 is not valid"),
    ("periods=x", "periods='x' is not valid; expected a whole number"),
    ("periods=61", "from 2 to 60 periods"),
])
def test_bad_emerging_parameters_are_refused(block, query, expected):
    response = block.get("/api/hotspots/emerging?" + query)
    assert response.status_code == 400 and expected in response.get_json()["error"]


@pytest.mark.parametrize("query", ["by=week&to=0001-01-01", "to=0001-01-01", "to=9999-12-30"])
def test_emerging_hotspots_up_to_a_date_beyond_what_is_kept_answer(block, query):
    # the weeks before year 1 were a 500; a filter date beyond 1970-2100 means no bound
    response = block.get("/api/hotspots/emerging?" + query)
    assert response.status_code == 200 and len(response.get_json()["periods"]) == 12


def test_time_periods_run_across_the_new_year():
    from datetime import datetime

    from gridmap.service import time_periods
    assert time_periods("month", 3, last=datetime(2026, 1, 15, 9)) == [
        ("2025-11", datetime(2025, 11, 1), datetime(2025, 12, 1)),
        ("2025-12", datetime(2025, 12, 1), datetime(2026, 1, 1)),
        ("2026-01", datetime(2026, 1, 1), datetime(2026, 2, 1))]
    assert time_periods("week", 2, last=datetime(2026, 1, 1)) == [
        ("2025-W52", datetime(2025, 12, 22), datetime(2025, 12, 29)),
        ("2026-W01", datetime(2025, 12, 29), datetime(2026, 1, 5))]


def test_choropleth_of_counts_density_and_closure(block):
    response = block.get("/api/choropleth?k=2&scheme=equal_interval&geometry=0")
    assert response.status_code == 200, response.get_json()
    body = response.get_json()
    # counts 2 … 20 (the pile left out): two equal intervals of (20 - 2) / 2 = 9
    assert (body["options"], body["bins"]) == (
        {"measure": "count", "scheme": "equal_interval", "stacked": "excluded"}, [11.0, 20.0])
    assert body["classes"] == [{"class": 0, "from": 2.0, "to": 11.0}, {"class": 1, "from": 11.0, "to": 20.0}]
    by_code = {f["properties"]["code"]: f["properties"] for f in body["features"]}
    assert (by_code["r0c0"]["value"], by_code["r0c0"]["class"]) == (20, 1)
    assert (by_code["r1c1"]["value"], by_code["r1c1"]["class"]) == (12, 1)
    assert (by_code["r3c3"]["value"], by_code["r3c3"]["class"]) == (2, 0)
    piled = block.get("/api/choropleth?k=2&scheme=equal_interval&geometry=0&stacked=1").get_json()
    assert piled["bins"] == [32.0, 62.0]
    closed = block.get("/api/choropleth?measure=closed&geometry=0").get_json()
    assert {f["properties"]["value"] for f in closed["features"]} == {0}          # nothing closed yet
    bad = block.get("/api/choropleth?measure=people&k=1")
    assert bad.status_code == 400 and "measure='people' is not valid" in json.dumps(bad.get_json(), ensure_ascii=False)


def test_rankings_of_a_month_as_json_and_as_xlsx(block):
    def at(lon, lat, when, status, n):
        return [{"category": "litter", "lon": lon + k * 1e-5, "lat": lat, "reported_at": when, "status": status}
                for k in range(n)]
    extra = at(0.0051, 0.0021, "2026-03-10 09:00", "closed", 10)                     # r0c0: 30 in March, 10 closed
    extra += at(0.0051, 0.0031, "2026-02-10 09:00", "closed", 2) + at(0.0051, 0.0041, "2026-02-11 09:00",
                                                                      "reported", 8)  # r0c0 in February: 2 of 10
    extra += at(0.0151, 0.0031, "2026-02-10 09:00", "closed", 9) + at(0.0151, 0.0041, "2026-02-11 09:00",
                                                                      "reported", 1)  # r0c1 in February: 9 of 10
    assert block.post("/api/incidents", json=extra).status_code == 201
    body = block.get("/api/rankings").get_json()
    assert (body["level"], body["month"], body["previous_month"], body["min_sample"]) == (
        "micro_grid", "2026-03", "2026-02", 10)
    rows = {r["code"]: r for r in body["rows"]}
    # units with at least 10 incidents in March: r0c0 closed 10 of 30, the rest none (the fewer
    # incidents, the nearer the average: r1c1's 12 before r0c1's and r1c0's 15, r3c3's 62 last)
    assert [(r["code"], r["rank"]) for r in body["rows"][:5]] == [
        ("r0c0", 1), ("r1c1", 2), ("r0c1", 3), ("r1c0", 4), ("r3c3", 5)]
    assert (rows["r0c0"]["incidents"], rows["r0c0"]["closed"], rows["r0c0"]["closure_rate"]) == (30, 10, 1 / 3)
    assert (rows["r0c0"]["previous_rank"], rows["r0c0"]["change"]) == (2, 1)
    assert (rows["r0c1"]["previous_rank"], rows["r0c1"]["change"]) == (1, -2)
    assert rows["r2c2"]["rank"] is None and rows["r2c2"]["per_1000_households"] is None
    # the lifecycle's figures: closes imported without a close time, nothing rated, the 20 reports open past 72 h
    assert [rows["r0c0"][k] for k in ("on_time_rate", "median_hours", "satisfaction_rate", "overdue")] == [
        None, None, None, 20]
    response = block.get("/api/rankings?month=2026-03&format=xlsx")
    assert response.status_code == 200 and response.mimetype.endswith("spreadsheetml.sheet")
    assert 'filename="rankings-micro_grid-2026-03.xlsx"' in response.headers["Content-Disposition"]
    sheets = pd.read_excel(io.BytesIO(response.data), sheet_name=None, engine="calamine")
    table = sheets["月评比 2026-03"]
    assert list(table.columns) == ["排名", "编码", "名称", "网格员", "事件数", "办结数", "办结率", "办结率（校正）",
                                   "90%区间下限", "90%区间上限", "每千户事件数", "每平方公里事件数", "上月排名",
                                   "名次变化", "按时办结率", "按时办结率（校正）", "按时90%区间下限", "按时90%区间上限",
                                   "办结时长中位数（小时）", "满意率", "满意率（校正）", "满意率90%区间下限",
                                   "满意率90%区间上限", "超期未办结"]
    assert table.iloc[0][["排名", "编码", "名称", "事件数", "办结数", "上月排名", "名次变化"]].tolist() == [
        1, "r0c0", "微网格r0c0", 30, 10, 2, 1]
    assert block.get("/api/rankings?month=2026-3x").status_code == 400
    assert block.get("/api/rankings?format=pdf").status_code == 400


def test_hexagon_hotspots_are_gridmap_hexagons_on_the_stored_points(block):
    from gridmap.hexagons import hexagon_hotspots

    response = block.get("/api/hotspots/hexagons?resolution=9")
    assert response.status_code == 200, response.get_json()
    body = response.get_json()
    lon, lat = [], []
    for code, n in expected_counts().items():          # the points block() stored, the pile left out
        west, south = unit_box(code).bounds[:2]
        lon += [west + 0.001 + k * 1e-4 for k in range(n)]
        lat += [south + 0.005] * n
    direct = hexagon_hotspots(np.array(lon), np.array(lat), resolution=9)
    assert body["cells"] == len(direct.cells) == len(body["features"])
    assert sum(f["properties"]["count"] for f in body["features"]) == 86
    by_cell = {f["properties"]["cell"]: f["properties"] for f in body["features"]}
    assert [by_cell[c]["class"] for c in direct.cells.tolist()] == [s.value for s in direct.classes]
    assert [by_cell[c]["z"] for c in direct.cells.tolist()] == pytest.approx(direct.z.tolist(), nan_ok=True)
    assert any(s.value.startswith("hot") for s in direct.classes)
    assert body["stacked"] == {"coordinates": 1, "incidents": 60}
    shown = block.get("/api/hotspots/hexagons?significant=1").get_json()["features"]
    assert sorted(f["properties"]["cell"] for f in shown) == sorted(
        c for c, s in zip(direct.cells.tolist(), direct.classes) if s.value != "none")
    assert shown[0]["geometry"]["type"] == "Polygon" and len(shown[0]["geometry"]["coordinates"][0]) == 7
    assert all(f["properties"]["label"] for f in shown)
    counted = block.get("/api/hotspots/hexagons?stacked=1").get_json()
    assert sum(f["properties"]["count"] for f in counted["features"]) == 86 + 60
    bad = block.get("/api/hotspots/hexagons?resolution=12")
    assert bad.status_code == 400 and "expected a whole number from 6" in bad.get_json()["error"]
