"""Pages for people: the map page, its filters, language, escaping, and the upload form."""
from __future__ import annotations

import io
import json
import re
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pandas as pd
import pytest
from shapely import LineString, box

from bench.district import make_district
from gridmap.levels import Level

from .conftest import build_app, feature_collection, grid_file, micro_file

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def demo_client(tmp_path):
    """Chinese by default, demo loaded on the first request (as `python app.py` does)."""
    application = build_app(tmp_path, GRIDMAP_LOAD_DEMO="1")
    yield application.test_client()
    application.extensions["gridmap"].store.close()


def assets(html: str) -> list[str]:
    """Every script and stylesheet the page loads (the empty data: favicon loads nothing)."""
    found = re.findall(r'<(?:script|link)\b[^>]*\b(?:src|href)="([^"]+)"', html)
    return [url for url in found if url != "data:,"]


def test_map_page_on_demo_data_in_chinese(demo_client):
    response = demo_client.get("/")
    assert response.status_code == 200
    html = response.get_data(as_text=True)
    assert '<html lang="zh-CN">' in html and "筛选事件" in html and "上传边界" in html
    assert assets(html) == ["/static/gridmap.css", "/static/vendor/leaflet/leaflet.js",
                            "/static/vendor/leaflet/leaflet.css", "/static/vendor/leaflet-heat/leaflet_heat.min.js",
                            "/static/basemap.js", "/static/shapes.js", "/static/map.js"]
    assert '<strong id="total">1200</strong>' in html
    assert '<strong id="unassigned">6</strong>' in html
    assert "裴村农贸市场片区" in html            # the market micro-grid tops the ranking
    for asset in assets(html):
        with demo_client.get(asset) as served:
            assert served.status_code == 200


def map_config(html: str) -> dict:
    found = re.findall(r'<script type="application/json" id="map-config">(.*?)</script>', html, flags=re.S)
    assert len(found) == 1
    return json.loads(found[0])


def test_the_page_embeds_no_incident_and_no_outline_only_where_to_get_them(demo_client):
    html = demo_client.get("/?category=litter&from=2026-01-01&status=closed").get_data(as_text=True)
    assert "L.heatLayer(" not in html and "CircleMarker" not in html and "L.geoJson(" not in html
    config = map_config(html)
    assert [(lv["level"], lv["title"], lv["version"], lv["units"]) for lv in config["levels"]] == [
        ("grid", "网格", 1, 5), ("micro_grid", "微网格", 1, 20)]
    assert config["levels"][1]["outlines"] == "/api/outlines/micro_grid?version=1"
    assert config["levels"][1]["counts"] == ("/api/outlines/micro_grid/counts?category=litter&from=2026-01-01"
                                             "&status=closed&version=1")
    assert config["heat"] == {"url": "/api/heat?category=litter&from=2026-01-01&status=closed",
                              "style": {"radius": 20, "blur": 15, "minOpacity": 0.25}, "whole": True}
    assert config["labels"]["heat"] == "事件热力图" and config["labels"]["outside"] == "不在任何网格内"
    assert config["labels"]["incidents"] == "事件数"
    # the view fits the units: folium's fitBounds with the grids' bounds
    assert re.search(r"fitBounds\(\s*\[\[34\.74\d*, 111\.86\d*\], \[34\.74\d*, 111\.87\d*\]\]", html)


def test_a_shown_version_reaches_the_data_urls(client):
    client.post("/api/layers/grid", data={"file": (io.BytesIO(grid_file()), "g.geojson")},
                content_type="multipart/form-data")
    client.post("/api/layers/grid", data={"file": (io.BytesIO(grid_file()), "g.geojson")},
                content_type="multipart/form-data")
    html = client.get("/?level=grid&version=1&category=litter").get_data(as_text=True)
    assert 'id="shown-version"' in html
    config = map_config(html)
    assert [lv["outlines"] for lv in config["levels"]] == ["/api/outlines/grid?version=1"]
    assert config["heat"]["url"] == "/api/heat?category=litter&level=grid&version=1"


@pytest.fixture(scope="module")
def district_pages(tmp_path_factory):
    """The map page of the same 100 micro-grids holding 1,000 and 50,000 incidents."""
    pages = {}
    for count in (1_000, 50_000):
        tmp = tmp_path_factory.mktemp(f"district-{count}")
        url = f"sqlite:///{tmp / 'district.db'}"
        make_district(url, n=10, incidents=count).store.close()
        application = build_app(tmp, GRIDMAP_DATABASE_URL=url)
        pages[count] = application.test_client().get("/").get_data(as_text=True)
        application.extensions["gridmap"].store.close()
    return pages


def test_the_page_is_the_same_size_whatever_the_number_of_incidents(district_pages):
    small, large = district_pages[1_000], district_pages[50_000]
    assert '<strong id="total">1000</strong>' in small and '<strong id="total">50000</strong>' in large
    # the same page but for the figures (totals and the ranking's counts and names)
    assert abs(len(large) - len(small)) < 1_000, (len(small), len(large))
    assert len(large) < 20_000
    assert map_config(small)["heat"]["whole"] is True and map_config(large)["heat"]["whole"] is False


def test_filters_redraw_with_the_matching_incidents(demo_client):
    html = demo_client.get("/?category=flying_cable&from=2026-08-01&to=2026-08-31").get_data(as_text=True)
    expected = len(demo_client.get("/api/incidents?category=flying_cable&from=2026-08-01&to=2026-08-31")
                   .get_json()["features"])
    assert f'<strong id="total">{expected}</strong>' in html
    assert 'name="category" value="flying_cable" checked>' in html and 'value="2026-08-01"' in html
    bad = demo_client.get("/?from=soon")
    assert bad.status_code == 400 and "from=&#39;soon&#39; 不是日期" in bad.get_data(as_text=True)


def test_several_categories_and_a_source_stay_in_every_url_of_the_page(demo_client):
    asked = "category=flying_cable&category=clutter&source=12345热线&status=closed"
    html = demo_client.get("/?" + asked).get_data(as_text=True)
    demo = pd.read_csv(ROOT / "geodata" / "demo" / "incidents.csv")      # counted apart from gridmap
    expected = int((demo.category.isin(["flying_cable", "clutter"]) & (demo.source == "12345热线")
                    & (demo.status == "closed")).sum())
    assert expected > 0 and f'<strong id="total">{expected}</strong>' in html
    for name, value in (("category", "flying_cable"), ("category", "clutter"), ("status", "closed")):
        assert f'name="{name}" value="{value}" checked>' in html
    sources = demo_client.get("/api/incidents/counts?by=source").get_json()["counts"]
    assert {s["key"] for s in sources} == set(demo.source.dropna()) | ({""} if demo.source.isna().any() else set())
    for source in (s for s in sources if s["key"]):     # every source named is offered, with its count
        assert f'name="source" value="{source["key"]}"' in html
        assert f'{source["key"]} <small>({source["count"]})</small>' in html
    assert 'name="source" value="12345热线" checked>' in html
    config = map_config(html)
    heat = parse_qs(urlsplit(config["heat"]["url"]).query)
    assert (heat["category"], heat["source"], heat["status"]) == (
        ["flying_cable", "clutter"], ["12345热线"], ["closed"])
    assert parse_qs(urlsplit(config["hotspots"]["url"]).query)["category"] == ["flying_cable", "clutter"]


def test_english_by_switch_and_it_sticks(demo_client):
    html = demo_client.get("/?lang=en").get_data(as_text=True)
    assert '<html lang="en">' in html and "Filter incidents" in html and ">中文</a>" in html
    assert "Filter incidents" in demo_client.get("/").get_data(as_text=True)     # the cookie remembers
    assert "筛选事件" in demo_client.get("/?lang=zh").get_data(as_text=True)


def test_user_values_are_escaped(client):
    evil = '<img src=x onerror="alert(1)">'
    client.post("/api/layers/grid", data={"file": (io.BytesIO(feature_collection([
        ({"code": "G<1>", "name": evil, "staff": "<b>x</b>"}, box(0, 0, 0.01, 0.01))])), "e.geojson")},
        content_type="multipart/form-data")
    client.post("/api/incidents", json={"category": "litter", "lon": 0.005, "lat": 0.005})
    html = client.get("/").get_data(as_text=True)
    assert evil not in html and "<b>x</b>" not in html
    assert "&lt;img src=x onerror=&#34;alert(1)&#34;&gt;" in html        # the ranking, escaped by Jinja
    assert client.get("/api/outlines/grid").get_json()["name"] == [evil]     # text for textContent


def test_a_unit_named_like_an_img_tag_is_shown_as_text(client):
    name = "<img src=x onerror=alert(1)>"
    client.post("/api/layers/micro_grid", data={"file": (io.BytesIO(feature_collection([
        ({"code": "M1", "name": name, "staff": name}, box(0, 0, 0.01, 0.01))])), "m.geojson")},
        content_type="multipart/form-data")
    client.post("/api/incidents", json={"category": "litter", "lon": 0.005, "lat": 0.005})
    html = client.get("/").get_data(as_text=True)
    assert "<img" not in html
    ranking = re.findall(r'<ol class="ranking">(.*?)</ol>', html, flags=re.S)[0]
    assert "<span>&lt;img src=x onerror=alert(1)&gt; <small>M1 · &lt;img src=x onerror=alert(1)&gt;</small>" \
        in ranking


def test_upload_page_shows_every_error_and_changes_nothing(client, app):
    assert client.get("/upload").status_code == 200
    bad = feature_collection([({"code": "A"}, LineString([(0, 0), (1, 1)])), ({"code": None}, box(0, 0, 1, 1))])
    response = client.post("/upload", data={"level": "grid", "file": (io.BytesIO(bad), "bad.geojson")},
                           content_type="multipart/form-data")
    html = response.get_data(as_text=True)
    assert response.status_code == 400
    assert "bad.geojson has no usable feature: 2 error(s)" in html
    assert "expected Polygon or MultiPolygon, got LineString in feature 0 (code &#34;A&#34;)" in html
    assert "feature 1 has no code; every unit needs one" in html
    assert app.extensions["gridmap"].store.is_empty()
    missing = client.post("/upload", data={"level": "grid"}, content_type="multipart/form-data")
    assert missing.status_code == 400 and "Choose a boundary file to upload." in missing.get_data(as_text=True)


def test_upload_page_saves_a_draft_and_the_review_page_commits_it(client, app):
    client.post("/upload", data={"level": "grid", "file": (io.BytesIO(grid_file()), "g.geojson")},
                content_type="multipart/form-data")
    client.post("/layers/grid/versions/1/commit", data={"author": "ann"})
    response = client.post("/upload", data={"level": "micro_grid", "file": (io.BytesIO(micro_file()), "m.geojson"),
                                            "note": "first", "author": "bo"}, content_type="multipart/form-data")
    assert response.status_code == 303 and response.headers["Location"] == "/layers/micro_grid/versions/1"
    html = client.get("/layers/micro_grid/versions/1").get_data(as_text=True)
    assert 'id="commit"' in html and "No errors." in html
    assert "4 added, 0 removed, 0 renamed, 0 reshaped, 0 unchanged." in html
    assert app.extensions["gridmap"].store.versions() == {Level.GRID: 1}      # a draft is not current
    response = client.post("/layers/micro_grid/versions/1/commit", data={"author": "bo"})
    assert response.status_code == 303 and response.headers["Location"] == "/layers/micro_grid/history"
    html = client.get("/layers/micro_grid/history").get_data(as_text=True)
    assert '<tr data-version="1" data-status="committed" class="current">' in html
    assert app.extensions["gridmap"].store.versions() == {Level.GRID: 1, Level.MICRO_GRID: 1}


def test_upload_page_with_errors_shows_the_report_on_a_map_and_stores_nothing(client, app):
    overlapping = feature_collection([({"code": "A"}, box(0, 0, 0.01, 0.01)),
                                      ({"code": "B"}, box(0.005, 0, 0.015, 0.01))])
    response = client.post("/upload", data={"level": "grid", "file": (io.BytesIO(overlapping), "o.geojson")},
                           content_type="multipart/form-data")
    html = response.get_data(as_text=True)
    assert response.status_code == 400
    assert 'data-kind="overlap"' in html and "units A and B overlap by" in html
    assert "gridmap_map" in html and 'id="commit"' not in html
    assert app.extensions["gridmap"].store.is_empty()


def test_upload_page_refuses_a_negative_tolerance_like_the_api_naming_the_field_by_its_label(client, app):
    response = client.post("/upload", data={"level": "grid", "tolerance_m2": "-1",
                                            "file": (io.BytesIO(grid_file()), "g.geojson")},
                           content_type="multipart/form-data")
    assert response.status_code == 400
    html = response.get_data(as_text=True)
    # the form's label for the field, as the form shows it, and the value kept in the field
    assert ("“Report gaps and overlaps larger than (m²)”: &#39;-1&#39; is not valid; expected a number &gt;= 0.0"
            in html)
    assert '<input name="tolerance_m2" id="f-tolerance_m2" value="-1"' in html
    api = client.post("/api/layers/grid", data={"tolerance_m2": "-1", "file": (io.BytesIO(grid_file()), "g.geojson")},
                      content_type="multipart/form-data")
    assert api.status_code == 400
    assert api.get_json()["error"] == "tolerance_m2: '-1' is not valid; expected a number >= 0.0"
    assert app.extensions["gridmap"].store.is_empty()


def test_file_options_in_errors_are_named_by_their_labels_on_the_page(client, app):
    data = feature_collection([({"code": "A"}, box(0, 0, 0.01, 0.01))])
    response = client.post("/upload", content_type="multipart/form-data",
                           data={"level": "grid", "code_field": "BH", "file": (io.BytesIO(data), "g.geojson")})
    assert response.status_code == 400
    assert ("the file has no property &#39;BH&#39; (given as the “Property holding the code” option); it has: code"
            in response.get_data(as_text=True))
    api = client.post("/api/layers/grid", data={"code_field": "BH", "file": (io.BytesIO(data), "g.geojson")},
                      content_type="multipart/form-data")
    assert api.get_json()["details"] == ["the file has no property 'BH' (given as the code_field option); it has: code"]


def test_every_level_in_use_is_reachable_from_history_and_the_editor(client, app):
    community = feature_collection([({"code": "C", "name": "社区C"}, box(0, 0, 0.02, 0.02))])
    assert client.post("/api/layers/community", data={"file": (io.BytesIO(community), "c.geojson")},
                       content_type="multipart/form-data").status_code == 201
    assert client.post("/api/layers/grid", data={"file": (io.BytesIO(grid_file()), "g.geojson")},
                       content_type="multipart/form-data").status_code == 201
    for page in ("/layers/grid/history", "/layers/grid/edit"):
        html = client.get(page).get_data(as_text=True)
        links = re.findall(r'<p class="[^"]*" id="levels">(.*?)</p>', html, flags=re.S)[0]
        assert re.findall(r'href="(/layers/[a-z_]+/(?:history|edit))"', links) == (
            ["/layers/community/history", "/layers/grid/history", "/layers/grid/edit"] if page.endswith("history")
            else ["/layers/community/edit", "/layers/grid/history"])      # the grid itself: bold, not a link


def test_a_refused_upload_is_checked_once_for_its_report_page(client, app, monkeypatch):
    svc = app.extensions["gridmap"]
    calls = []
    checked = type(svc)._candidates
    monkeypatch.setattr(type(svc), "_candidates", lambda self, parts: calls.append(len(parts)) or checked(self, parts))
    overlapping = feature_collection([({"code": "A"}, box(0, 0, 0.01, 0.01)),
                                      ({"code": "B"}, box(0.005, 0, 0.02, 0.01))])
    response = client.post("/upload", data={"level": "grid", "file": (io.BytesIO(overlapping), "g.geojson")},
                           content_type="multipart/form-data")
    assert response.status_code == 400 and 'data-kind="overlap"' in response.get_data(as_text=True)
    assert calls == [1]           # the refusal carries what the page shows: no second pass over the file
