"""The report map (GET /api/report-map) on test_stats' 4×4 block: each unit's pixel in the PNG
has the colour of the class the statistics API gives it; a PDF is a PDF; bad options are 400."""
from __future__ import annotations

import io

import shapely
from PIL import Image

from gridmap.choropleth import class_color
from gridmap.hotspots import HOTSPOT_COLORS
from gridmap.levels import Level
from gridmap.mapimage import MapPage, map_figure
from gridmap.web.reportmap import PLAIN

from .test_stats import block  # noqa: F401 - the fixture

PAGE = MapPage(title="")       # the endpoint's page: A4 landscape at 200 dpi (texts do not move the map)


def unit_pixels(client) -> dict[str, tuple[int, int]]:
    """Where each unit's centre lands in the endpoint's PNG: through the map's own transform."""
    units = client.application.extensions["gridmap"].layer(Level.MICRO_GRID).units
    projected = units.to_crs(units.estimate_utm_crs())
    figure = map_figure(units, {}, PAGE)
    figure.draw_without_rendering()
    centres = shapely.get_coordinates(projected.geometry.centroid.to_numpy())
    return {code: (int(x), int(PAGE.pixels[1] - y))
            for code, (x, y) in zip(units["code"], figure.axes[0].transData.transform(centres))}


def rgb(color: str) -> tuple[int, int, int]:
    return tuple(int(color[i:i + 2], 16) for i in (1, 3, 5))       # type: ignore[return-value]


def test_the_hotspot_map_fills_each_unit_with_the_class_the_api_gives(block):  # noqa: F811
    response = block.get("/api/report-map?overlay=hotspots&format=png")
    assert response.status_code == 200, response.get_data(as_text=True)[:500]
    assert response.mimetype == "image/png"
    assert response.headers["Content-Disposition"] == 'attachment; filename="gridmap-hotspots-micro_grid.png"'
    image = Image.open(io.BytesIO(response.data)).convert("RGB")
    assert image.size == (2339, 1654)
    classes = {f["properties"]["code"]: f["properties"]["class"]
               for f in block.get("/api/hotspots?geometry=0").get_json()["features"]}
    assert sum(c.startswith("hot") for c in classes.values()) > 0
    for code, where in unit_pixels(block).items():
        assert image.getpixel(where) == rgb(HOTSPOT_COLORS.get(classes[code], PLAIN)), code


def test_the_choropleth_map_uses_the_api_classes_and_a_pdf_is_one_page(block):  # noqa: F811
    answer = block.get("/api/choropleth?geometry=0&measure=count").get_json()
    classes = {f["properties"]["code"]: f["properties"]["class"] for f in answer["features"]}
    image = Image.open(io.BytesIO(block.get("/api/report-map?overlay=choropleth&measure=count").data)).convert("RGB")
    for code, where in unit_pixels(block).items():
        assert image.getpixel(where) == rgb(class_color(classes[code], len(answer["bins"])) or "#d9d9d9"), code
    pdf = block.get("/api/report-map?overlay=choropleth&measure=closed&format=pdf")
    assert pdf.status_code == 200 and pdf.mimetype == "application/pdf"
    assert pdf.data.startswith(b"%PDF") and pdf.data.count(b"/Type /Page\n") + pdf.data.count(b"/Type /Page ") == 1


def test_bad_options_are_named(block):  # noqa: F811
    bad = block.get("/api/report-map?overlay=heat&format=gif")
    assert (bad.status_code, bad.get_json()["error"]) == (
        400, "overlay: 'heat' is not known; expected one of hotspots, emerging, choropleth")
    bad = block.get("/api/report-map?overlay=choropleth&measure=people")
    assert (bad.status_code, bad.get_json()["error"]) == (
        400, "measure: 'people' is not known; expected one of count, km2, households, closed")


def test_a_dollar_in_the_filters_is_drawn_as_text(block):  # noqa: F811
    response = block.get("/api/report-map?overlay=choropleth&source=a$\\frac{$b&unit=$5")
    assert response.status_code == 200 and response.mimetype == "image/png"
