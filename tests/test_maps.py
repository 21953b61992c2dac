"""Tests for gridmap.maps: offline assets, escaping, and the data the map carries."""
from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import folium
import geopandas
import numpy
import pytest
import shapely
from folium.plugins import HeatMap

from gridmap.levels import Level
from gridmap.maps import MAP_ID, MapLabels, MapLayer, build_map, render_parts

VENDOR = Path(__file__).resolve().parent.parent / "static" / "vendor"
LABELS = MapLabels(name="名称", code="编码", staff="网格员", incidents="事件数",
                   heat="热力", unassigned="未归属")
XSS_NAME = "<script>alert(1)</script>"
IMG_NAME = "<img src=x onerror=alert(2)> A&B"
HEAT = numpy.array([[116.005, 39.005], [116.015, 39.002], [116.006, 39.006]])  # lon, lat
UNASSIGNED = numpy.array([[116.03, 39.02]])
OSM = "https://tile.openstreetmap.org/{z}/{x}/{y}.png"
LOCAL_JS = {"/static/vendor/leaflet/leaflet.js", "/static/vendor/leaflet-heat/leaflet_heat.min.js"}
LOCAL_CSS = {"/static/vendor/leaflet/leaflet.css"}


def units(rows: list[tuple[str, str, str | None, int, Any]], crs: str = "EPSG:4326") -> geopandas.GeoDataFrame:
    code, name, staff, count, geometry = zip(*rows)
    return geopandas.GeoDataFrame({"code": code, "name": name, "staff": staff,
                                   "incident_count": count}, geometry=list(geometry), crs=crs)


def grid_layer() -> MapLayer:
    return MapLayer(Level.GRID, "网格", units([
        ("G1", XSS_NAME, "张三", 3, shapely.box(116.0, 39.0, 116.01, 39.01)),
        ("G2", IMG_NAME, None, 0, shapely.box(116.01, 39.0, 116.02, 39.01)),
    ]))


def micro_layer() -> MapLayer:
    return MapLayer(Level.MICRO_GRID, "微网格", units([
        ("M1", "微一", "李四", 2, shapely.box(116.0, 39.0, 116.005, 39.005)),
    ]))


def render(layers: list[MapLayer] | None = None, heat: numpy.ndarray = HEAT, **options: Any) -> str:
    options.setdefault("unassigned", UNASSIGNED)
    options.setdefault("labels", LABELS)
    options.setdefault("tiles", None)
    layers = [grid_layer(), micro_layer()] if layers is None else layers
    return build_map(layers, heat, **options).get_root().render()


def json_after(html: str, marker: str) -> list[Any]:
    """Every JSON value that directly follows ``marker`` in the page."""
    decoder, values, at = json.JSONDecoder(), [], html.find(marker)
    while at != -1:
        start = at + len(marker)
        start += len(html[start:]) - len(html[start:].lstrip())
        value, end = decoder.raw_decode(html, start)
        values.append(value)
        at = html.find(marker, end)
    return values


def geojson_payloads(html: str) -> list[dict[str, Any]]:
    return json_after(html, "_add(")  # folium embeds each GeoJson as `<name>_add({...})`


def overlay_names(html: str) -> list[str]:
    block = re.search(r"overlays :\s*\{(.*?)\}", html, re.S)
    assert block is not None
    return [json.loads(key) for key in re.findall(r'("(?:[^"\\]|\\.)*")\s*:', block.group(1))]


def asset_urls(html: str) -> tuple[set[str], set[str]]:
    scripts = set(re.findall(r'<script[^>]*\ssrc="([^"]*)"', html))
    links = set(re.findall(r'<link[^>]*\shref="([^"]*)"', html))
    return scripts, links


def test_page_links_only_local_assets_and_no_urls_at_all_without_tiles() -> None:
    html = render()
    assert asset_urls(html) == (LOCAL_JS, LOCAL_CSS)
    assert "http://" not in html and "https://" not in html
    assert "$(" not in html and "jQuery" not in html  # nothing needs jQuery


def test_asset_base_is_honoured() -> None:
    html = render(asset_base="/assets/v2/")
    assert asset_urls(html) == ({"/assets/v2/leaflet/leaflet.js", "/assets/v2/leaflet-heat/leaflet_heat.min.js"},
                                {"/assets/v2/leaflet/leaflet.css"})


def test_folium_class_defaults_are_not_mutated() -> None:
    before = (list(folium.Map.default_js), list(folium.Map.default_css), list(HeatMap.default_js))
    render()
    assert (folium.Map.default_js, folium.Map.default_css, HeatMap.default_js) == before
    assert "cdn.jsdelivr.net" in dict(folium.Map.default_js)["leaflet"]


def test_every_referenced_asset_is_vendored() -> None:
    scripts, links = asset_urls(render())
    for url in scripts | links:
        assert (VENDOR / url.removeprefix("/static/vendor/")).is_file(), url
    css = (VENDOR / "leaflet" / "leaflet.css").read_text(encoding="utf-8")
    images = set(re.findall(r"url\((images/[^)]+)\)", css))
    assert images == {"images/layers.png", "images/layers-2x.png", "images/marker-icon.png"}
    for image in images:
        assert (VENDOR / "leaflet" / image).is_file(), image
    assert (VENDOR / "README.md").is_file()


def test_no_tile_layer_without_tiles() -> None:
    assert "L.tileLayer" not in render()


def test_tile_url_and_attribution_appear_when_configured() -> None:
    html = render(tiles=OSM, tiles_attribution="© OpenStreetMap")
    assert json_after(html, "L.tileLayer(") == [OSM]
    assert '"attribution": "\\u00a9 OpenStreetMap"' in html
    assert asset_urls(html) == (LOCAL_JS, LOCAL_CSS)
    assert re.findall(r"https?://[^\"]*", html) == [OSM]
    assert "L.tileLayer" not in overlay_names(html)


def test_tiles_must_be_a_url_template() -> None:
    with pytest.raises(ValueError, match="URL template"):
        render(tiles="OpenStreetMap")  # folium would resolve this name to a CDN URL


def test_user_text_is_escaped_once() -> None:
    html = render()
    grid, _micro, _unassigned = geojson_payloads(html)
    names = [f["properties"]["name"] for f in grid["features"]]
    assert names == ["&lt;script&gt;alert(1)&lt;/script&gt;", "&lt;img src=x onerror=alert(2)&gt; A&amp;B"]
    for raw in (XSS_NAME, "<img src=x", "\\u003cscript", "\\u003cimg"):
        assert raw not in html
    assert "&amp;lt;" not in json.dumps(grid, ensure_ascii=False)


def test_layer_and_label_names_are_escaped() -> None:
    layer = MapLayer(Level.GRID, "<b>网格</b>", grid_layer().units)
    labels = MapLabels(name="<i>n</i>", code="c", staff="s", incidents="i", heat="h", unassigned="u")
    html = render([layer], labels=labels)
    assert overlay_names(html) == ["&lt;b&gt;网格&lt;/b&gt;", "h", "u"]
    assert json_after(html, "let aliases = ") == [["&lt;i&gt;n&lt;/i&gt;", "c", "s", "i"]]


def test_features_carry_codes_counts_and_staff() -> None:
    grid, micro, _ = geojson_payloads(render())
    assert [f["properties"] for f in grid["features"]] == [
        {"code": "G1", "name": "&lt;script&gt;alert(1)&lt;/script&gt;", "staff": "张三", "incident_count": 3},
        {"code": "G2", "name": "&lt;img src=x onerror=alert(2)&gt; A&amp;B", "staff": "", "incident_count": 0},
    ]
    assert [(f["properties"]["code"], f["properties"]["incident_count"]) for f in micro["features"]] == [("M1", 2)]
    assert micro["features"][0]["geometry"]["type"] == "Polygon"


def test_tooltip_shows_the_four_fields() -> None:
    assert json_after(render(), "let fields = ") == [["name", "code", "staff", "incident_count"]] * 2


def test_grid_and_micro_grid_styles_differ() -> None:
    html = render()
    styles = [json.loads(s) for s in re.findall(r"_styler\(feature\) \{.*?return (\{.*?\});", html, re.S)]
    assert [(s["weight"], s["color"]) for s in styles] == [(3, "#1f3a5f"), (1, "#2b8cbe")]


def test_heat_data_is_the_input_points_as_lat_lon() -> None:
    assert json_after(render(), "L.heatLayer(") == [[[39.005, 116.005], [39.002, 116.015], [39.006, 116.006]]]


def test_unassigned_points_are_their_own_red_circle_overlay() -> None:
    html = render()
    *_, unassigned = geojson_payloads(html)
    assert [f["geometry"] for f in unassigned["features"]] == [{"type": "Point", "coordinates": [116.03, 39.02]}]
    assert "new L.CircleMarker(latlng, opts)" in html and '"fillColor": "#d6301f"' in html
    assert overlay_names(html) == ["网格", "微网格", "热力", "未归属"]


def test_view_fits_the_layers() -> None:
    html = render()
    assert json_after(html, "fitBounds(") == [[[39.0, 116.0], [39.01, 116.02]]]
    assert '{"maxZoom": 17}' in html


def test_view_fits_the_points_without_layers() -> None:
    html = render([])
    assert json_after(html, "fitBounds(") == [[[39.002, 116.005], [39.02, 116.03]]]
    assert overlay_names(html) == ["热力", "未归属"]


def test_default_view_when_there_is_nothing() -> None:
    html = render([], heat=numpy.empty((0, 2)), unassigned=numpy.empty((0, 2)))
    assert "fitBounds" not in html
    assert "center: [35.0, 105.0]" in html and '"zoom": 4' in html
    assert json_after(html, "L.heatLayer(") == [[]]


def test_empty_layer_is_listed_without_tooltip() -> None:
    empty = MapLayer(Level.MICRO_GRID, "微网格", units([("M0", "x", "y", 0, shapely.box(0, 0, 1, 1))]).iloc[:0])
    html = render([grid_layer(), empty])
    assert overlay_names(html) == ["网格", "微网格", "热力", "未归属"]
    assert [len(g["features"]) for g in geojson_payloads(html)] == [2, 0, 1]
    assert html.count(".bindTooltip(") == 1


def test_render_parts_splits_head_body_script() -> None:
    m = build_map([grid_layer()], HEAT, unassigned=UNASSIGNED, labels=LABELS, tiles=None)
    parts = render_parts(m)
    assert asset_urls(parts.head) == (LOCAL_JS, LOCAL_CSS)
    assert f"#{MAP_ID} {{ width: 100%; height: 100%;" in parts.head
    assert "html, body" not in parts.head and "http-equiv" not in parts.head
    assert parts.body.strip() == f'<div class="folium-map" id="{MAP_ID}" ></div>'
    script = parts.script.removeprefix("<script>").removesuffix("</script>")
    assert script.strip().startswith(f'var {MAP_ID} = L.map(\n                "{MAP_ID}",')
    assert "<script" not in script and "</script" not in script and "L.heatLayer(" in script
    assert render_parts(m) == parts  # rendering again adds nothing
    assert m.get_root().render().count(".addTo(gridmap_map)") == 4  # 3 overlays + layer control


def test_standalone_page_fills_the_window() -> None:
    html = render()
    assert "html, body { width: 100%; height: 100%; margin: 0; padding: 0; }" in html
    assert f'id="{MAP_ID}"' in html and f"var {MAP_ID} = L.map(" in html


@pytest.mark.parametrize("heat, reason", [
    (numpy.array([1.0, 2.0]), r"heat must be an \(n, 2\) array of lon, lat; got shape \(2,\)"),
    (numpy.array([[1.0, 2.0, 3.0]]), r"heat must be an \(n, 2\) array of lon, lat; got shape \(1, 3\)"),
    (numpy.array([[39.0, 116.0]]), "heat has non-finite or out-of-range lon/lat"),   # lat-first: latitude 116
    (numpy.array([[numpy.nan, 39.0]]), "heat has non-finite or out-of-range lon/lat")])
def test_bad_points_are_rejected(heat: numpy.ndarray, reason: str) -> None:
    with pytest.raises(ValueError, match=reason):
        render(heat=heat)


def test_bad_units_are_rejected() -> None:
    with pytest.raises(ValueError, match="EPSG:4326"):
        render([MapLayer(Level.GRID, "g", grid_layer().units.set_crs("EPSG:3857", allow_override=True))])
    with pytest.raises(ValueError, match="staff"):
        render([MapLayer(Level.GRID, "g", grid_layer().units.drop(columns="staff"))])
    with pytest.raises(ValueError, match="distinct"):
        render([grid_layer(), MapLayer(Level.MICRO_GRID, "网格", micro_layer().units)])


# -- the map page's base, encoded outlines and heat cells -----------------------------------------

def test_the_base_map_has_only_the_base_fitted_to_the_bounds() -> None:
    from gridmap.maps import build_base_map
    html = build_base_map([116.0, 39.0, 116.02, 39.01], tiles=None).get_root().render()
    assert asset_urls(html) == ({"/static/vendor/leaflet/leaflet.js"}, LOCAL_CSS)
    assert json_after(html, "fitBounds(") == [[[39.0, 116.0], [39.01, 116.02]]]
    assert "L.heatLayer" not in html and "L.geoJson" not in html and "control.layers" not in html.lower()
    nothing = build_base_map(None, tiles=None).get_root().render()
    assert "fitBounds" not in nothing and "center: [35.0, 105.0]" in nothing


def test_styles_for_the_page_script() -> None:
    from gridmap.maps import OUTSIDE_STYLE, layer_style
    assert layer_style(Level.MICRO_GRID) == {"color": "#2b8cbe", "weight": 1, "fillColor": "#2b8cbe",
                                             "fillOpacity": 0.05, "highlight": {"weight": 5, "fillOpacity": 0.4}}
    assert OUTSIDE_STYLE["fillColor"] == "#d6301f"
    assert '"fillColor": "#d6301f"' in render()          # folium's page draws the same red


def test_shapes_are_encoded_all_at_once_as_one_by_one() -> None:
    from gridmap.maps import encoded_shapes, review_shape
    holed = shapely.Polygon([(0, 0), (1, 0), (1, 1), (0, 0)], holes=[[(0.2, 0.1), (0.5, 0.1), (0.5, 0.3), (0.2, 0.1)]])
    multi = shapely.MultiPolygon([shapely.box(-179, -89, -178, -88), shapely.box(179.5, 89, 179.9, 89.9)])
    mixed = shapely.GeometryCollection([shapely.box(0, 0, 1, 1), shapely.LineString([(0, 0), (1, 1)])])
    geometries = [shapely.box(116.0, 39.0, 116.01, 39.01), holed, multi, mixed, shapely.LineString([(0, 0), (1, 1)]),
                  None, shapely.Polygon()]
    assert encoded_shapes(geometries) == [review_shape(g) for g in geometries]
    assert encoded_shapes(geometries)[4:] == [None, None, None]
    assert review_shape(shapely.box(0, 0, 1, 1)) == [["?_c`|@_c`|@??~b`|@~b`|@??_c`|@"]]   # Google's format at 1e-6°


def test_heat_cells_are_about_a_pixel_and_a_half() -> None:
    from gridmap.maps import degrees_per_pixel, heat_cell_deg
    assert degrees_per_pixel(0) == 360 / 256 and degrees_per_pixel(10) == 360 / 2 ** 18
    assert heat_cell_deg(10) == 1.5 * 360 / 2 ** 18


def cells(lon: list[float], lat: list[float], count: list[int], size: float):
    from gridmap.storage import HeatCells
    return HeatCells(lon=numpy.array(lon), lat=numpy.array(lat), count=numpy.array(count, dtype=numpy.int64),
                     cell_deg=size, total=sum(count))


def test_coarsening_merges_cells_into_doubled_ones_at_their_mean() -> None:
    from gridmap.maps import coarsen, heat_cells
    # cells of 0.25° anchored at -180/-90: (0.1, 0.1) and (0.3, 0.1) share the 0.5° cell, (0.6, 0.1) does not
    fine = cells([0.1, 0.3, 0.6], [0.1, 0.1, 0.1], [1, 3, 2], 0.25)
    assert coarsen(fine, max_cells=3) is fine
    merged = coarsen(fine, max_cells=2)
    assert merged.cell_deg == 0.5 and merged.total == 6
    assert heat_cells(merged) == [[0.1, 0.25, 4], [0.1, 0.6, 2]]      # (0.1·1 + 0.3·3) / 4 = 0.25
    assert heat_cells(coarsen(fine, max_cells=1)) == [[0.1, 0.366667, 6]]   # 1° cells: all in one


def test_shapes_keep_every_polygon_of_nested_collections_and_drop_the_rest():
    from gridmap.maps import encoded_shapes, review_shape
    nested = shapely.GeometryCollection([shapely.MultiPolygon([shapely.box(0, 0, 0.001, 0.001),
                                                               shapely.box(0.002, 0, 0.003, 0.001)]),
                                         shapely.LineString([(0, 0), (1, 1)]), shapely.box(0.005, 0, 0.006, 0.001)])
    shapes = encoded_shapes([nested, None, shapely.Point(0, 0), shapely.box(0, 0, 0.001, 0.001)])
    assert [None if s is None else len(s) for s in shapes] == [3, None, None, 1]
    assert review_shape(shapely.box(0, 0, 0.001, 0.001)) == shapes[3] == [[_ring_of_box()]]
    assert review_shape(nested) == shapes[0] and [[_ring_of_box()]][0] in shapes[0]


def _ring_of_box() -> str:
    """box(0, 0, 0.001, 0.001) encoded by hand: its exterior runs (0.001, 0) → (0.001, 0.001) →
    (0, 0.001) → (0, 0) → (0.001, 0) in lon/lat; as lat/lon deltas at 1e-6°: (0, 1000), (1000, 0),
    (0, -1000), (-1000, 0), (0, 1000)."""
    def value(v: int) -> str:
        v = ~(v << 1) if v < 0 else v << 1
        out = ""
        while v >= 0x20:
            out += chr((0x20 | (v & 0x1F)) + 63)
            v >>= 5
        return out + chr(v + 63)
    return "".join(value(a) + value(b) for a, b in [(0, 1000), (1000, 0), (0, -1000), (-1000, 0), (0, 1000)])
