"""Hypothesis throws malformed and hostile GeoJSON and CSV at the upload endpoints: no answer is a
server error, and a refused upload leaves the store exactly as it was.  1,200 files of each kind
(CI runs them; about two minutes here)."""
from __future__ import annotations

import io
import json
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from .conftest import build_app, grid_file, micro_file

pytestmark = pytest.mark.slow
EXAMPLES = 1200
HOSTILE_TEXT = ["<img src=x onerror=alert(1)>", "</script>", "${7*7}", "'; DROP TABLE incidents; --", "\x00",
                "\ud7ff", "٣", "1e309", "NaN", "-Infinity", "9" * 400, "网格" * 50, "\u202e", ""]

numbers = st.one_of(st.integers(min_value=-(10**30), max_value=10**30),
                    st.floats(allow_nan=True, allow_infinity=True), st.sampled_from([0.0, -0.0, 1e308, 180.0, 90.0]))
texts = st.one_of(st.text(max_size=40), st.sampled_from(HOSTILE_TEXT))
scalars = st.one_of(st.none(), st.booleans(), numbers, texts)
json_values = st.recursive(scalars, lambda inner: st.one_of(
    st.lists(inner, max_size=4), st.dictionaries(texts, inner, max_size=4)), max_leaves=25)
positions = st.lists(st.one_of(numbers, texts, st.none()), min_size=0, max_size=4)
rings = st.lists(positions, min_size=0, max_size=6)
geometries = st.one_of(
    json_values,
    st.fixed_dictionaries({"type": st.sampled_from(["Polygon", "MultiPolygon", "Point", "LineString",
                                                    "GeometryCollection", "polygon", ""]),
                           "coordinates": st.one_of(st.lists(rings, max_size=3), json_values)}),
    st.builds(lambda x, y, w, h: {"type": "Polygon", "coordinates": [[[x, y], [x + w, y], [x + w, y + h],
                                                                        [x, y + h], [x, y]]]},
              numbers, numbers, numbers, numbers))
features = st.one_of(json_values, st.fixed_dictionaries(
    {"type": st.sampled_from(["Feature", "feature", "FeatureCollection"]),
     "properties": st.one_of(st.none(), st.dictionaries(st.sampled_from(["code", "name", "parent_code", "staff"]),
                                                         scalars, max_size=4), json_values),
     "geometry": st.one_of(st.none(), geometries)}))
collections = st.one_of(
    st.fixed_dictionaries({"type": st.sampled_from(["FeatureCollection", "Feature", "Topology"]),
                           "features": st.one_of(st.lists(features, max_size=5), json_values)}),
    json_values)


def to_bytes(value: Any) -> bytes:
    """JSON as a careless writer makes it: NaN and Infinity written out, non-ASCII raw."""
    return json.dumps(value, ensure_ascii=False, allow_nan=True).encode("utf-8", "surrogatepass")


geojson_files = st.one_of(collections.map(to_bytes), st.binary(max_size=300),
                          st.sampled_from([b"[" * 5000, b'{"type": "FeatureCollection", "features": [' * 2000,
                                           b"\xef\xbb\xbf{}", b"\xff\xfe{\x00}\x00", b""]))

csv_cells = st.one_of(texts, numbers.map(str), st.sampled_from(["2026-03-05 10:00", "-1", "0001-01-01", "+99:99"]))
csv_headers = st.lists(st.sampled_from(["category", "lon", "lat", "reported_at", "external_id", "status", "crs",
                                        "经度", "纬度", "上报时间", "description", "", "lon"]), min_size=1, max_size=7)


@st.composite
def csv_files(draw: Any) -> bytes:
    header = draw(csv_headers)
    rows = draw(st.lists(st.lists(csv_cells, min_size=len(header) - 1, max_size=len(header) + 1), max_size=6))
    separator = draw(st.sampled_from([",", ";", "\t"]))
    text = "\n".join(separator.join(c.replace("\n", " ") for c in row) for row in [header, *rows])
    encoding = draw(st.sampled_from(["utf-8", "gbk", "utf-16"]))
    return text.encode(encoding, "replace") if encoding != "gbk" else text.encode("gb18030")


@pytest.fixture(scope="module")
def fuzz_app(tmp_path_factory: pytest.TempPathFactory):
    app = build_app(tmp_path_factory.mktemp("fuzz"), GRIDMAP_LANG="en")
    client = app.test_client()
    for level, data in (("grid", grid_file()), ("micro_grid", micro_file())):
        assert client.post(f"/api/layers/{level}", data={"file": (io.BytesIO(data), "f.geojson")},
                           content_type="multipart/form-data").status_code == 201
    yield app
    app.extensions["gridmap"].store.close()


def state(app: Any) -> tuple[Any, ...]:
    store = app.extensions["gridmap"].store
    return (store.versions(), len(store.layer_meta()), store.count_incidents(),
            [len(store.history(level)) for level in store.versions()])


def upload(app: Any, path: str, data: bytes, filename: str, **fields: str) -> int:
    client = app.test_client()
    before = state(app)
    response = client.post(path, data={"file": (io.BytesIO(data), filename), **fields},
                           content_type="multipart/form-data")
    assert response.status_code < 500, (response.status_code, response.get_data(as_text=True)[:500], data[:300])
    if response.status_code >= 400:
        body = response.get_json()
        assert body["error"] and isinstance(body["details"], list)
        assert state(app) == before, (response.status_code, body)
    return response.status_code


@settings(max_examples=EXAMPLES, deadline=None, database=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.large_base_example,
                                 HealthCheck.function_scoped_fixture])
@given(data=geojson_files, level=st.sampled_from(["grid", "micro_grid"]),
       mode=st.sampled_from(["commit", "draft", "preview"]), extra=st.sampled_from([{}, {"crs": "EPSG:4547"},
                                                                                   {"encoding": "no-such"},
                                                                                   {"clean": "1"}]))
def test_any_geojson_upload_is_answered_without_a_server_error(fuzz_app, data, level, mode, extra):
    upload(fuzz_app, f"/api/layers/{level}", data, "fuzz.geojson", mode=mode, **extra)


@settings(max_examples=EXAMPLES, deadline=None, database=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                 HealthCheck.function_scoped_fixture])
@given(data=csv_files(), extra=st.sampled_from([{}, {"crs": "GCJ02"}, {"lon_field": "x"}, {"category": "litter"},
                                                {"crs": "+proj=tmerc +lon_0=1e308"}]))
def test_any_incident_csv_is_answered_without_a_server_error(fuzz_app, data, extra):
    status = upload(fuzz_app, "/api/incidents", data, "fuzz.csv", **extra)
    assert status in (201, 400, 413)

