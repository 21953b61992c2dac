"""The report map as an image: a 2×2 block of 100 m squares in UTM zone 50N (Beijing), drawn and
read back pixel by pixel; the PDF's fonts read from its objects."""
from __future__ import annotations

import io
import re
import zlib

import geopandas as gpd
import pytest
from matplotlib.text import Annotation
from PIL import Image
from shapely import MultiPolygon, Polygon, box

from gridmap import mapimage
from gridmap.errors import InvalidInput
from gridmap.mapimage import NO_DATA, MapPage, distance_text, map_figure, map_image, scale_length

UTM_50N = 32650
X0, Y0 = 448_000, 4_417_000            # near Tiananmen
# Codes by column (W, E) and row (S, N); each cell 100 m across, its centre at +50 m.
CELLS = {"WS": (0, 0), "ES": (1, 0), "WN": (0, 1), "EN": (1, 1)}
FILLS = {"WS": "#d62f27", "ES": "#4575b5", "WN": None}            # EN: absent
LEGEND = [("#d62f27", "热点，置信度 99%"), ("#4575b5", "冷点，置信度 99%"), (None, "无数据")]
SMALL = MapPage(title="东城区 微网格热点", subtitle="2025年5月 · 全部类别", legend=LEGEND,
                footer="生成于 2025-06-01 08:00", size_mm=(120, 80), dpi=100)


def metric_units(shapes: dict[str, object]) -> gpd.GeoDataFrame:
    """Units drawn in metres in UTM 50N, handed over in EPSG:4326 as a Layer's are."""
    return gpd.GeoDataFrame({"code": list(shapes)}, geometry=list(shapes.values()), crs=UTM_50N).to_crs(4326)


def cell(col: float, row: float, size: float = 100) -> object:
    return box(X0 + col * size, Y0 + row * size, X0 + (col + 1) * size, Y0 + (row + 1) * size)


def block() -> gpd.GeoDataFrame:
    return metric_units({code: cell(col, row) for code, (col, row) in CELLS.items()})


def centre(code: str) -> tuple[float, float]:
    col, row = CELLS[code]
    return X0 + col * 100 + 50, Y0 + row * 100 + 50


def rgb(colour: str) -> tuple[int, int, int]:
    return int(colour[1:3], 16), int(colour[3:5], 16), int(colour[5:7], 16)


def render(units: gpd.GeoDataFrame, fills: dict, page: MapPage = SMALL, **options: object) -> Image.Image:
    return Image.open(io.BytesIO(map_image(units, fills, page, **options))).convert("RGB")


def pixel(units: gpd.GeoDataFrame, fills: dict, point_m: tuple[float, float], page: MapPage = SMALL,
          **options: object) -> tuple[int, int]:
    """Where a point (UTM 50N metres) lands in the PNG: through the map's own data transform."""
    assert units.estimate_utm_crs().to_epsg() == UTM_50N              # the map is drawn in that zone
    figure = map_figure(units, fills, page, **options)
    figure.draw_without_rendering()
    x, y = figure.axes[0].transData.transform(point_m)
    return int(x), int(page.pixels[1] - y)


def test_each_unit_is_filled_with_its_colour_and_none_or_absent_is_the_no_data_grey():
    units = block()
    image = render(units, FILLS)
    found = {code: image.getpixel(pixel(units, FILLS, centre(code))) for code in CELLS}
    assert found == {"WS": rgb("#d62f27"), "ES": rgb("#4575b5"), "WN": rgb(NO_DATA), "EN": rgb(NO_DATA)}


def test_a_metre_is_as_long_across_as_up():
    units = block()
    (x_ws, y_ws), (x_es, y_es), (x_wn, y_wn) = (pixel(units, FILLS, centre(c)) for c in ("WS", "ES", "WN"))
    assert y_es == y_ws and x_wn == x_ws
    assert abs((x_es - x_ws) - (y_ws - y_wn)) <= 1                     # 100 m east = 100 m north, ±1 px


def test_holes_stay_open_and_every_part_of_a_multipolygon_is_filled():
    # A 300 m square with a 100 m hole, both rings anticlockwise as some files have them (a non-zero
    # fill would close the hole unless it is turned round).
    donut = Polygon(cell(0, 0, 300).exterior, [cell(1, 1).exterior])
    assert donut.exterior.is_ccw and donut.interiors[0].is_ccw
    island = MultiPolygon([cell(4, 0), cell(4, 2)])                     # two parts, 100 m apart
    units = metric_units({"donut": donut, "island": island})
    fills = {"donut": "#d62f27", "island": "#4575b5"}
    image = render(units, fills)
    at = lambda x, y: image.getpixel(pixel(units, fills, (X0 + x, Y0 + y)))
    assert at(50, 150) == rgb("#d62f27")                                # the ring itself
    assert at(150, 150) == (255, 255, 255)                              # the hole: the page shows through
    assert at(450, 50) == at(450, 250) == rgb("#4575b5")
    assert at(450, 150) == (255, 255, 255)                              # between the island's parts


def test_parent_outlines_are_drawn_on_top_and_labels_on_their_units():
    units = block()
    parents = metric_units({"W": box(X0, Y0, X0 + 100, Y0 + 200), "E": box(X0 + 100, Y0, X0 + 200, Y0 + 200)})
    page = MapPage(title="t", size_mm=(120, 80), dpi=300)              # the line 5 px wide: its middle is solid
    on_edge = (X0 + 100, Y0 + 150)
    plain = render(units, FILLS, page).getpixel(pixel(units, FILLS, on_edge, page))
    outlined = render(units, FILLS, page, parents=parents).getpixel(pixel(units, FILLS, on_edge, page))
    assert min(plain) > 200 and outlined == rgb(mapimage.PARENT_EDGE)     # plain: a white edge between greys
    figure = map_figure(units, FILLS, SMALL, labels={"ES": "网格 ES", "nowhere": "x"})
    written = [(t.get_text(), t.get_position()) for t in figure.axes[0].texts if not isinstance(t, Annotation)]
    assert written == [("网格 ES", pytest.approx(centre("ES")))]                # the north arrow aside


def test_a_png_has_the_pixels_asked_for():
    assert Image.open(io.BytesIO(map_image(block(), FILLS, SMALL))).size == (472, 315)     # 120×80 mm at 100 dpi
    a4 = map_image(block(), FILLS, MapPage(title="月报"))
    assert MapPage(title="").pixels == (2339, 1654)                    # 297 / 25.4 × 200 = 2338.6, 210 → 1653.5
    assert Image.open(io.BytesIO(a4)).size == (2339, 1654)


def test_a_pdf_is_one_a4_page_whose_chinese_text_is_text_in_an_embedded_truetype_font():
    page = MapPage(title="东城区 微网格热点", subtitle="2025年5月", legend=LEGEND, footer="生成于 2025-06-01",
                   format="pdf")
    pdf = map_image(block(), FILLS, page)
    assert pdf.startswith(b"%PDF") and page.media_type == "application/pdf"
    assert len(re.findall(rb"/Type /Page\b(?!s)", pdf)) == 1 and b"/Count 1" in pdf
    assert re.search(rb"/MediaBox \[ ?0 0 841\.8\d+ 595\.27\d+ ?\]", pdf)                   # A4: 297 × 210 mm
    assert b"/CreationDate" not in pdf
    fonts = set(re.findall(rb"/BaseFont /[A-Z]{6}\+(\S+)", pdf))
    assert fonts == {b"NotoSansCJKsc-Regular", b"NotoSansCJKsc-Bold"}
    assert b"/CIDFontType2" in pdf and b"/Type3" not in pdf           # TrueType outlines, not Type 3 drawings
    streams = (zlib.decompress(s) for s in re.findall(rb"stream\n(.*?)\nendstream", pdf, re.S))
    to_unicode = b"".join(s for s in streams if b"Adobe-Identity-UCS" in s).lower()
    for character in "热点，置信度99%无数据生成于":                      # each glyph says which character it is
        assert f"<{ord(character):04x}>".encode() in to_unicode, character
    assert map_image(block(), FILLS, page) == pdf


def test_the_same_input_gives_the_same_png():
    assert map_image(block(), FILLS, SMALL) == map_image(block(), FILLS, SMALL)


def test_without_a_cjk_font_it_says_which_package_to_install(monkeypatch):
    monkeypatch.setattr(mapimage, "CJK_FAMILIES", ("No Such Sans CJK",))
    with pytest.raises(InvalidInput, match="fonts-noto-cjk") as raised:
        map_image(block(), FILLS, SMALL)
    assert "No Such Sans CJK" in str(raised.value)


def test_every_problem_with_the_options_is_reported_at_once():
    page = MapPage(title="t", format="svg", dpi=10, legend=[("notacolour", "热点")])
    with pytest.raises(InvalidInput) as raised:
        map_image(block(), {"WS": "#12345"}, page)
    assert [str(d) for d in raised.value.details] == [
        "format='svg' is not valid; expected one of: png, pdf", "dpi=10 is not valid; expected 50 to 600",
        "'#12345' (unit WS) is not a colour; expected e.g. #d62f27",
        "'notacolour' (legend 热点) is not a colour; expected e.g. #d62f27"]


def test_the_scale_bar_is_a_round_length_within_a_quarter_of_the_width():
    assert [scale_length(w) for w in (7780, 4000, 2400, 400, 100, 20_000)] == [1000, 1000, 500, 100, 20, 5000]
    assert [distance_text(m) for m in (20, 500, 1000, 1500, 5000)] == ["20 m", "500 m", "1 km", "1.5 km", "5 km"]


def test_the_map_frames_the_units_with_a_margin_and_widens_to_the_box():
    figure = map_figure(block(), FILLS, MapPage(title="t", size_mm=(120, 80), format="pdf"))
    # 200 m + 3 % a side = 212 m tall; the box is 0.70 × 120 = 84 mm wide, 0.81 × 80 = 64.8 mm tall.
    half_width = 212 * 84 / 64.8 / 2
    assert figure.axes[0].get_xlim() == pytest.approx((X0 + 100 - half_width, X0 + 100 + half_width))
    assert figure.axes[0].get_ylim() == pytest.approx((Y0 - 6, Y0 + 206))
