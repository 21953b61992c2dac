"""Folium maps of grid layers and incidents that work with no internet.

Folium loads Leaflet, jQuery, Bootstrap and Font Awesome from CDNs by default;
our users sit on government intranets, so every map built here links only to
files under ``asset_base`` (``static/vendor/`` in this repo) and uses no folium
feature that needs jQuery or Bootstrap (no popups, no awesome markers).

Folium writes tooltip values and layer names into ``innerHTML``, so every
string that reaches it is HTML-escaped here exactly once.
"""
from __future__ import annotations

import html
import math
from dataclasses import dataclass
from typing import Any, Sequence
from urllib.parse import urlsplit

import folium
import geopandas
import numpy
import pandas
import shapely
from branca.element import Element, Figure
from folium.plugins import HeatMap
from markupsafe import Markup
from shapely.geometry import mapping

from .levels import Level
from .storage import HeatCells

#: Element id of the map div and name of the global JS variable holding the
#: ``L.Map``: ``window.gridmap_map`` / ``document.getElementById("gridmap_map")``.
MAP_ID = "gridmap_map"
#: Files under ``asset_base`` the map loads (see static/vendor/README.md).
LEAFLET_JS = "leaflet/leaflet.js"
LEAFLET_CSS = "leaflet/leaflet.css"
HEAT_JS = "leaflet-heat/leaflet_heat.min.js"
#: Shown when there is nothing to fit the view to: all of China.
DEFAULT_CENTER = (35.0, 105.0)
DEFAULT_ZOOM = 4
MAX_FIT_ZOOM = 17
UNIT_COLUMNS = ("code", "name", "staff", "incident_count")

_LEVEL_STYLES: dict[Level, dict[str, Any]] = {
    Level.STREET: {"color": "#222222", "weight": 4, "fillColor": "#cccccc", "fillOpacity": 0.05},
    Level.COMMUNITY: {"color": "#4d3b7a", "weight": 3, "fillColor": "#b8a9d9", "fillOpacity": 0.08},
    Level.GRID: {"color": "#1f3a5f", "weight": 3, "fillColor": "#9ecae1", "fillOpacity": 0.25},
    Level.MICRO_GRID: {"color": "#2b8cbe", "weight": 1, "fillColor": "#2b8cbe", "fillOpacity": 0.05},
}
_HIGHLIGHT = {"weight": 5, "fillOpacity": 0.4}
#: Leaflet.heat's options for the incident heat map, the same for folium's raw heat map and the
#: page's (static/map.js): a blob is ``radius`` + ``blur`` pixels wide.
HEAT_STYLE: dict[str, Any] = {"radius": 20, "blur": 15, "minOpacity": 0.25}
_MAP_CSS = f"""<style>
#{MAP_ID} {{ width: 100%; height: 100%; background: #f4f3ef; }}
#{MAP_ID}.leaflet-container {{ font-size: 1rem; }}
</style>"""
# Only for the standalone document from ``m.get_root().render()``.
_PAGE_CSS = ('<meta name="viewport" content="width=device-width, initial-scale=1.0"/>\n'
             "<style>html, body { width: 100%; height: 100%; margin: 0; padding: 0; }</style>")
_PAGE_ONLY_HEADERS = frozenset({"meta_http", "gridmap_page_css"})


@dataclass(frozen=True)
class MapLabels:
    """Already-translated UI strings (Chinese or English, chosen by the web layer)."""

    name: str
    code: str
    staff: str
    incidents: str
    heat: str
    unassigned: str


@dataclass(frozen=True)
class MapLayer:
    """One level's units drawn as one toggleable overlay.

    ``units`` is in EPSG:4326 with columns code, name, staff, incident_count, geometry.
    """

    level: Level
    title: str
    units: geopandas.GeoDataFrame


@dataclass(frozen=True)
class MapParts:
    """A rendered map split for embedding in our own Jinja page.

    All three are ``markupsafe.Markup`` (trusted, already escaped): ``head`` (link,
    script and style tags) goes in ``<head>``, ``body`` (the map div) inside a sized
    container, ``script`` (one ``<script>`` element) anywhere after ``body``.
    """

    head: str
    body: str
    script: str


class _EmbeddableMap(folium.Map):
    """A folium.Map with a fixed id, CSS scoped to its own div, and repeatable renders.

    folium's header also styles ``html, body`` and ``#map``, which would restyle
    the page that embeds us, and its random id cannot be found from page JS.
    """

    def get_name(self) -> str:
        return MAP_ID

    def render(self, **kwargs: Any) -> None:  # type: ignore[override]  # folium's Map.render returns None
        figure = _figure(self)
        # Each render adds every layer's ``addTo`` again under a fresh random key;
        # starting from an empty script keeps repeated renders identical.
        figure.script._children.clear()
        super().render(**kwargs)
        figure.header.add_child(Element(_MAP_CSS), name=MAP_ID)


def build_map(layers: Sequence[MapLayer], heat: numpy.ndarray, *, unassigned: numpy.ndarray,
              labels: MapLabels, tiles: str | None, tiles_attribution: str = "",
              asset_base: str = "/static/vendor/") -> folium.Map:
    """Build the map: one overlay per layer, a heat map, unassigned points, a layer control.

    ``heat`` and ``unassigned`` are (n, 2) arrays of lon, lat.  ``tiles`` is a tile
    URL template such as ``https://tile.openstreetmap.org/{z}/{x}/{y}.png``, or None
    for a plain background (the intranet default).  ``tiles_attribution`` is trusted
    HTML from configuration.  Scripts and stylesheets load from ``asset_base`` only.
    """
    heat_latlon = _lonlat_to_latlon(heat, "heat")
    unassigned_latlon = _lonlat_to_latlon(unassigned, "unassigned")
    _check_layers(layers, labels)
    m = _EmbeddableMap(location=DEFAULT_CENTER, zoom_start=DEFAULT_ZOOM, tiles=None)
    _use_local_assets(m, asset_base)
    _figure(m).header.add_child(Element(_PAGE_CSS), name="gridmap_page_css")  # standalone only
    if tiles is not None:
        _tile_layer(tiles, tiles_attribution).add_to(m)
    for layer in layers:
        _unit_overlay(layer, labels).add_to(m)
    _heat_overlay(heat_latlon, labels.heat, asset_base).add_to(m)
    _unassigned_overlay(unassigned_latlon, labels.unassigned).add_to(m)
    folium.LayerControl(collapsed=False).add_to(m)
    bounds = _view_bounds(layers, numpy.vstack([heat_latlon, unassigned_latlon]))
    if bounds is not None:
        m.fit_bounds(bounds, max_zoom=MAX_FIT_ZOOM)
    return m


@dataclass(frozen=True)
class ReviewLabels:
    """Already-translated overlay titles and tooltip names of the review map (drawn by static/review.js)."""

    before: str
    after: str
    problems: str
    cleaned: str
    name: str
    code: str

    def as_dict(self) -> dict[str, str]:
        return dict(self.__dict__)


#: Review shapes are drawn from coordinates rounded to 1e-6° (about 0.1 m), delta-encoded.
SHAPE_PRECISION = 1e6


def build_base_map(bounds: Sequence[float] | None, *, tiles: str | None, tiles_attribution: str = "",
                   asset_base: str = "/static/vendor/") -> folium.Map:
    """A map with only its base (tiles, or a plain background) fitted to ``bounds`` (minx, miny,
    maxx, maxy in lon/lat; None or NaN: all of China): the page's own script draws the overlays
    from the data API, so the page's size does not grow with the data."""
    m = _EmbeddableMap(location=DEFAULT_CENTER, zoom_start=DEFAULT_ZOOM, tiles=None)
    _use_local_assets(m, asset_base)
    if tiles is not None:
        _tile_layer(tiles, tiles_attribution).add_to(m)
    if bounds is not None and numpy.isfinite(numpy.asarray(bounds, dtype=float)).all():
        minx, miny, maxx, maxy = (float(v) for v in bounds)
        m.fit_bounds([[miny, minx], [maxy, maxx]], max_zoom=MAX_FIT_ZOOM)
    return m


def build_review_map(bounds: Sequence[float] | None, *, tiles: str | None, tiles_attribution: str = "",
                     asset_base: str = "/static/vendor/") -> folium.Map:
    """The review page's map: :func:`build_base_map`.

    The overlays are drawn by the page's script (``static/review.js``): the outlines of stored
    versions come from ``GET /api/layers/<level>?version=N`` after the page has loaded, and the
    outlines of a refused upload and the problem shapes come as :func:`review_shape` strings,
    so the page stays small (Boston's 255 precinct outlines: 279 kB as GeoJSON even with
    coordinates rounded to 1e-6°, 58 kB encoded).
    """
    return build_base_map(bounds, tiles=tiles, tiles_attribution=tiles_attribution, asset_base=asset_base)


def layer_style(level: Level) -> dict[str, Any]:
    """How a level's outlines are drawn (Leaflet path options), and on hover (``highlight``)."""
    return {**_LEVEL_STYLES[level], "highlight": dict(_HIGHLIGHT)}


#: Incidents outside every unit: small red circles (Leaflet circleMarker options).
OUTSIDE_STYLE: dict[str, Any] = {"radius": 4, "color": "#b2182b", "weight": 1, "fill": True,
                                 "fillColor": "#d6301f", "fillOpacity": 0.9}


def review_shape(geometry: Any) -> list[list[str]] | None:
    """The polygons of ``geometry`` (WGS84) for the review map: a list of polygons, each a list
    of rings (exterior first) encoded like Google's polyline format (lat, lon pairs at 1e-6°,
    each a delta from the one before).  Lines and points are left out; None when nothing is left."""
    return encoded_shapes([geometry])[0]


def review_outlines(units: geopandas.GeoDataFrame) -> list[dict[str, Any]]:
    """Units (code, name, geometry in WGS84) as compact outlines for the review map; the text is
    plain (the script writes it with ``textContent``, never as HTML)."""
    drawn = units[~(units.geometry.isna() | units.geometry.is_empty)]
    return [{"code": plain_text(code), "name": plain_text(name), "shape": shape}
            for code, name, shape in zip(drawn["code"], drawn["name"], encoded_shapes(drawn.geometry.to_numpy()))]


def encoded_shapes(geometries: Sequence[Any] | numpy.ndarray) -> list[list[list[str]] | None]:
    """:func:`review_shape` of many geometries at once, with the work done on whole arrays
    (10,000 micro-grids: 0.05 s, against 1.2 s ring by ring)."""
    geoms = numpy.asarray(geometries, dtype=object)
    parts, owner = _single_parts(geoms)
    keep = (shapely.get_type_id(parts) == 3) & ~shapely.is_empty(parts)       # polygons only
    polygons, owner = parts[keep], owner[keep]
    rings, ring_polygon = shapely.get_rings(polygons, return_index=True)
    coords, ring_of = shapely.get_coordinates(rings, return_index=True)
    starts = numpy.searchsorted(ring_of, numpy.arange(len(rings)))
    texts = encoded_rings(coords, starts)
    shapes: list[list[list[str]] | None] = [None] * len(geoms)
    polygon_rings: list[list[str]] = [[] for _ in range(len(polygons))]
    for polygon, text in zip(ring_polygon.tolist(), texts):
        polygon_rings[polygon].append(text)
    for geom, rings_of_polygon in zip(owner.tolist(), polygon_rings):
        shape = shapes[geom]
        if shape is None:
            shapes[geom] = shape = []
        shape.append(rings_of_polygon)
    return shapes


def _single_parts(geoms: numpy.ndarray) -> tuple[numpy.ndarray, numpy.ndarray]:
    """Every single geometry inside ``geoms`` (collections within collections too), with the index
    of the geometry it came from."""
    parts, owner = shapely.get_parts(geoms, return_index=True)
    while True:
        multi = numpy.isin(shapely.get_type_id(parts), (4, 5, 6, 7))
        if not multi.any():
            return parts, owner
        inner, within = shapely.get_parts(parts[multi], return_index=True)
        parts = numpy.concatenate([parts[~multi], inner])
        owner = numpy.concatenate([owner[~multi], owner[multi][within]])
        order = numpy.argsort(owner, kind="stable")
        parts, owner = parts[order], owner[order]


def encoded_rings(coords: numpy.ndarray, starts: numpy.ndarray) -> list[str]:
    """Rings as polyline strings: ``coords`` (n, 2) lon/lat of every ring one after another,
    ``starts`` the index of each ring's first point.  Each value is the delta from the one
    before in its ring (the first from 0), at 1e-6°, zig-zag coded and cut into 5-bit groups,
    lowest first, each a character (63 + group, + 32 while more follow): Google's format."""
    if not len(starts):
        return []
    xy = numpy.round(numpy.asarray(coords, dtype=float)[:, [1, 0]] * SHAPE_PRECISION).astype(numpy.int64)
    steps = numpy.diff(xy, axis=0, prepend=numpy.zeros((1, 2), dtype=numpy.int64))
    steps[starts] = xy[starts]
    values = steps.ravel()
    zigzag = (values << 1) ^ (values >> 63)
    groups = numpy.arange(_MAX_GROUPS, dtype=numpy.int64) * 5
    rest = zigzag[:, None] >> groups                          # what is left before each group
    used = (rest > 0) | (groups == 0)
    more = numpy.append(rest[:, 1:] > 0, numpy.zeros((len(values), 1), dtype=bool), axis=1)
    chars = ((rest & 0x1F) + 63 + 0x20 * more).astype(numpy.uint8)
    text = chars[used].tobytes().decode("ascii")
    per_value = used.sum(axis=1)
    ends = numpy.cumsum(per_value)[numpy.append(starts[1:] * 2, len(values)) - 1]
    begins = numpy.append(0, ends[:-1])
    return [text[b:e] for b, e in zip(begins.tolist(), ends.tolist())]


#: 5-bit groups enough for any delta at 1e-6° (|delta| < 3.6e8, zig-zag < 2**30).
_MAX_GROUPS = 7


def plain_text(value: object) -> str:
    """``value`` as text; missing values (None, NaN, NA) become ""."""
    if value is None or value is pandas.NA or (isinstance(value, float) and math.isnan(value)):
        return ""
    return str(value)


def render_parts(m: folium.Map) -> MapParts:
    """Render ``m`` into head/body/script pieces, leaving out page-wide CSS and meta."""
    figure = _figure(m)
    figure.render()  # makes every element register its links, div and script
    head = "\n".join(child.render() for name, child in figure.header._children.items()
                     if name not in _PAGE_ONLY_HEADERS)
    return MapParts(head=Markup(head), body=Markup(figure.html.render()),
                    script=Markup(f"<script>\n{figure.script.render()}\n</script>"))


def _use_local_assets(m: folium.Map, asset_base: str) -> None:
    """Replace folium's CDN links on this instance only (class attributes stay intact)."""
    m.default_js = [("leaflet", asset_base + LEAFLET_JS)]
    m.default_css = [("leaflet_css", asset_base + LEAFLET_CSS)]


def _tile_layer(tiles: str, attribution: str) -> folium.TileLayer:
    """A base tile layer hidden from the control; folium demands an attribution."""
    if "{z}" not in tiles:  # otherwise folium may resolve it as a provider name
        raise ValueError(f"tiles must be a URL template with {{z}}, got {tiles!r}")
    attr = attribution or html.escape(urlsplit(tiles).netloc or tiles)
    return folium.TileLayer(tiles=tiles, attr=attr, control=False)


def _unit_overlay(layer: MapLayer, labels: MapLabels) -> folium.GeoJson:
    """The layer's polygons styled by level, with a name/code/staff/incidents tooltip."""
    collection = _units_geojson(layer.units)
    style = _LEVEL_STYLES[layer.level]
    tooltip = None
    if collection["features"]:  # folium's tooltip fails on an empty collection
        aliases = [html.escape(a) for a in (labels.name, labels.code, labels.staff, labels.incidents)]
        tooltip = folium.GeoJsonTooltip(fields=["name", "code", "staff", "incident_count"],
                                        aliases=aliases)
    return folium.GeoJson(collection, name=html.escape(layer.title), overlay=True,
                          style_function=lambda _feature: style,
                          highlight_function=lambda _feature: _HIGHLIGHT, tooltip=tooltip)


def _units_geojson(units: geopandas.GeoDataFrame) -> dict[str, Any]:
    """A FeatureCollection with escaped text and integer counts; units without geometry are skipped."""
    columns = [units[c] for c in UNIT_COLUMNS] + [units.geometry]
    features = [
        {"type": "Feature", "geometry": mapping(geometry),
         "properties": {"code": _escaped_text(code), "name": _escaped_text(name),
                        "staff": _escaped_text(staff), "incident_count": int(count)}}
        for code, name, staff, count, geometry in zip(*columns)
        if geometry is not None and not geometry.is_empty
    ]
    return {"type": "FeatureCollection", "features": features}


def _heat_overlay(latlon: numpy.ndarray, title: str, asset_base: str) -> HeatMap:
    """A heat map of incidents whose plugin script loads from ``asset_base``."""
    # folium's leaflet.heat scales colours to the busiest cell, so the hottest spot is always red;
    # a low minimum opacity keeps quiet blocks pale instead of flooding the community.
    heat = HeatMap(latlon.tolist(), name=html.escape(title), overlay=True, radius=HEAT_STYLE["radius"],
                   blur=HEAT_STYLE["blur"], min_opacity=HEAT_STYLE["minOpacity"])
    heat.default_js = [("leaflet-heat.js", asset_base + HEAT_JS)]
    return heat


def _unassigned_overlay(latlon: numpy.ndarray, title: str) -> folium.GeoJson:
    """Incidents outside every unit as small red circle markers in one GeoJson overlay."""
    features = [{"type": "Feature", "properties": {},
                 "geometry": {"type": "Point", "coordinates": [lon, lat]}}
                for lat, lon in latlon.tolist()]
    return folium.GeoJson({"type": "FeatureCollection", "features": features},
                          name=html.escape(title), overlay=True,
                          marker=folium.CircleMarker(radius=OUTSIDE_STYLE["radius"], color=OUTSIDE_STYLE["color"],
                                                     weight=OUTSIDE_STYLE["weight"], fill=True,
                                                     fill_color=OUTSIDE_STYLE["fillColor"],
                                                     fill_opacity=OUTSIDE_STYLE["fillOpacity"]))


def _view_bounds(layers: Sequence[MapLayer], points_latlon: numpy.ndarray) -> list[list[float]] | None:
    """[[south, west], [north, east]] of all units, else of the points, else None."""
    boxes = [layer.units.total_bounds for layer in layers]  # minx, miny, maxx, maxy; NaN if empty
    boxes = [box for box in boxes if numpy.isfinite(box).all()]
    if boxes:
        stacked = numpy.vstack(boxes)
        low, high = stacked[:, [1, 0]].min(axis=0), stacked[:, [3, 2]].max(axis=0)
    elif len(points_latlon):
        low, high = points_latlon.min(axis=0), points_latlon.max(axis=0)
    else:
        return None
    return [low.tolist(), high.tolist()]


def _lonlat_to_latlon(points: numpy.ndarray, what: str) -> numpy.ndarray:
    """Check an (n, 2) lon/lat array and return it as float lat/lon rows."""
    array = numpy.asarray(points, dtype=float)
    if array.size == 0:
        return numpy.empty((0, 2))
    if array.ndim != 2 or array.shape[1] != 2:
        raise ValueError(f"{what} must be an (n, 2) array of lon, lat; got shape {array.shape}")
    lon, lat = array[:, 0], array[:, 1]
    if not (numpy.isfinite(array).all() and (numpy.abs(lon) <= 180).all()
            and (numpy.abs(lat) <= 90).all()):
        raise ValueError(f"{what} has non-finite or out-of-range lon/lat (lon must come first)")
    return array[:, ::-1].copy()


def _check_layers(layers: Sequence[MapLayer], labels: MapLabels) -> None:
    """Fail early on layers the map would draw wrongly, in the wrong place, or not at all."""
    for layer in layers:
        missing = [c for c in UNIT_COLUMNS if c not in layer.units.columns]
        if missing:
            raise ValueError(f"layer {layer.title!r} lacks columns {missing}")
        if layer.units.crs is None or not layer.units.crs.equals("EPSG:4326"):
            raise ValueError(f"layer {layer.title!r} must be in EPSG:4326, got {layer.units.crs}")
    titles = [layer.title for layer in layers] + [labels.heat, labels.unassigned]
    if len(set(titles)) != len(titles):  # the layer control keys overlays by name
        raise ValueError(f"overlay names must be distinct, got {titles}")


def _escaped_text(value: object) -> str:
    """``value`` as HTML-escaped text; missing values (None, NaN, NA) become ""."""
    if value is None or value is pandas.NA or (isinstance(value, float) and math.isnan(value)):
        return ""
    return html.escape(str(value))


def _figure(m: folium.Map) -> Figure:
    """The page a map belongs to (folium always puts a map in a Figure)."""
    figure = m.get_root()
    assert isinstance(figure, Figure)
    return figure


# -- the heat map's data --------------------------------------------------------------------------

#: Cells of about 1.5 screen pixels: Leaflet.heat sums the weights of the points it is given in bins
#: of (radius + blur) / 2 = 17.5 pixels and draws each bin at their weighted mean position, so
#: incidents counted per cell (at their mean position) draw what the incidents themselves draw.
CELL_PX = 1.5
#: A response holds at most this many cells; beyond it, cells double in size until it fits
#: (at 6 pixels a cell, what moves is a few pixels of a 35-pixel blob).
MAX_CELLS = 20_000


def degrees_per_pixel(zoom: float) -> float:
    """Longitude degrees one screen pixel spans at a Web Mercator zoom (256-pixel tiles)."""
    return 360.0 / 2 ** (zoom + 8)


def heat_cell_deg(zoom: float) -> float:
    return CELL_PX * degrees_per_pixel(zoom)


def coarsen(cells: HeatCells, *, max_cells: int = MAX_CELLS) -> HeatCells:
    """``cells`` merged into cells twice as large (same anchor at lon -180, lat -90, so they nest)
    until at most ``max_cells`` are left; each keeps its incidents' mean position and count."""
    while len(cells.count) > max_cells:
        size = cells.cell_deg * 2
        keys = numpy.floor((cells.lon + 180.0) / size) * 1e7 + numpy.floor((cells.lat + 90.0) / size)
        _, group = numpy.unique(keys, return_inverse=True)
        count = numpy.bincount(group, weights=cells.count).astype(numpy.int64)
        lon = numpy.bincount(group, weights=cells.lon * cells.count) / count
        lat = numpy.bincount(group, weights=cells.lat * cells.count) / count
        cells = HeatCells(lon=lon, lat=lat, count=count, cell_deg=size, total=cells.total)
    return cells


def heat_cells(cells: HeatCells) -> list[list[float]]:
    """Cells as Leaflet.heat points: [lat, lon, incidents], positions at 1e-6° (0.1 m)."""
    return [[lat, lon, count] for lat, lon, count in
            zip(numpy.round(cells.lat, 6).tolist(), numpy.round(cells.lon, 6).tolist(), cells.count.tolist())]
