"""The map as an image for the monthly report (月评比 / 月报): one level's units filled by a class
each, as a PNG or a PDF page.

What a report page needs: a title and a subtitle (the filters, the month), the units in a metric
projection (the UTM zone of the layer's centre) at equal aspect, the parent level's outlines on
top, a few labels, a scale bar of a round length, a north arrow (grid north: within 2–3° of true
north anywhere in China), the legend and a footer.

* Drawn with matplotlib's object API (a :class:`~matplotlib.figure.Figure` per call, never
  pyplot, whose global state is not safe in a threaded web server).  The units' fills are one
  compound path per colour and their edges one more, so 10,000 micro-grids make a PNG in under a
  second; a PDF takes a second or two longer, nearly all of it fontTools cutting the CJK font down
  to the characters used.
* Text is Chinese, so a CJK font must be installed (Debian: ``fonts-noto-cjk``); the PDF embeds it
  as TrueType (Type 42), so the text stays text: searchable, copyable, sharp when printed.
* The same input gives the same bytes: the generated-at text is passed in, the PDF has no
  creation date.
"""
from __future__ import annotations

import io
import logging
import math
import threading
from dataclasses import dataclass
from typing import Mapping, Sequence

import geopandas as gpd
import matplotlib
import numpy as np
import shapely
from matplotlib import font_manager
from matplotlib.axes import Axes
from matplotlib.collections import PathCollection
from matplotlib.colors import to_rgba
from matplotlib.figure import Figure
from matplotlib.font_manager import FontProperties
from matplotlib.patches import Patch
from matplotlib.path import Path
from matplotlib.patheffects import withStroke
from mpl_toolkits.axes_grid1.anchored_artists import AnchoredSizeBar

from .errors import N_, InvalidInput, Message, message

log = logging.getLogger(__name__)

#: The formats and their media types.
FORMATS = {"png": "image/png", "pdf": "application/pdf"}
#: Font families that write Chinese, preferred first: Simplified Chinese forms before the others.
CJK_FAMILIES = (
    "Noto Sans CJK SC", "Source Han Sans SC", "Source Han Sans CN", "Noto Sans SC", "Microsoft YaHei",
    "PingFang SC", "Hiragino Sans GB", "WenQuanYi Zen Hei", "WenQuanYi Micro Hei", "SimHei", "Heiti SC",
    "Noto Serif CJK SC", "Source Han Serif SC", "AR PL UMing CN", "Droid Sans Fallback",
    "Noto Sans CJK TC", "Noto Sans CJK HK", "Noto Sans CJK JP", "Noto Sans CJK KR",
)
#: The fill of a unit without a colour ("no data").
NO_DATA = "#d9d9d9"
UNIT_EDGE = "#ffffff"
PARENT_EDGE = "#333333"
MM_PER_INCH = 25.4
#: The map's box on the page (left, bottom, width, height as fractions): the legend on its right.
MAP_BOX = (0.03, 0.07, 0.70, 0.81)
#: pdf.fonttype is a global rcParam: one PDF at a time sets it (in this process).
_PDF = threading.Lock()


@dataclass(frozen=True)
class MapPage:
    """What a report page shows besides the units: texts already translated, ``legend`` as
    (colour, label) pairs in order (colour None: the "no data" grey), the format and the page's
    size (A4 landscape by default) and resolution (for PNG; a PDF is vector and only uses the size)."""

    title: str
    subtitle: str = ""
    legend: Sequence[tuple[str | None, str]] = ()
    footer: str = ""
    format: str = "png"
    size_mm: tuple[float, float] = (297.0, 210.0)
    dpi: int = 200

    @property
    def pixels(self) -> tuple[int, int]:
        """A PNG's width and height in pixels."""
        width, height = self.size_mm
        return round(width / MM_PER_INCH * self.dpi), round(height / MM_PER_INCH * self.dpi)

    @property
    def media_type(self) -> str:
        return FORMATS[self.format]


def map_image(units: gpd.GeoDataFrame, fills: Mapping[str, str | None], page: MapPage, *,
              parents: gpd.GeoDataFrame | None = None, labels: Mapping[str, str] | None = None) -> bytes:
    """The bytes of ``page`` as a PNG or a PDF: ``units`` (a GeoDataFrame with ``code`` and
    ``geometry``, e.g. a :class:`~gridmap.layer.Layer`'s) filled with ``fills[code]`` (a colour;
    None or absent: no data), ``parents``' outlines drawn thicker on top and ``labels[code]``
    written on their units."""
    figure = map_figure(units, fills, page, parents=parents, labels=labels)
    buffer = io.BytesIO()
    if page.format == "pdf":
        with _PDF, matplotlib.rc_context({"pdf.fonttype": 42}):
            figure.savefig(buffer, format="pdf", facecolor="white", metadata={"CreationDate": None})
    else:
        figure.savefig(buffer, format="png", dpi=page.dpi, facecolor="white")
    return buffer.getvalue()


def map_figure(units: gpd.GeoDataFrame, fills: Mapping[str, str | None], page: MapPage, *,
               parents: gpd.GeoDataFrame | None = None, labels: Mapping[str, str] | None = None) -> Figure:
    """The page as a matplotlib figure (what :func:`map_image` saves), its map the first axes, in
    the UTM zone of the units' centre (``units.estimate_utm_crs()``)."""
    _check(units, fills, page)
    family = _cjk_family()
    crs = units.estimate_utm_crs()
    projected = units.to_crs(crs)
    figure = Figure(figsize=_inches(page), dpi=page.dpi)
    axes = figure.add_axes(MAP_BOX)
    _frame(axes, projected.total_bounds, figure)
    _draw_units(axes, projected, fills)
    if parents is not None and len(parents):
        _draw_outlines(axes, parents.to_crs(crs).geometry.to_numpy(), PARENT_EDGE, 1.2)
    _draw_labels(axes, projected, labels or {}, FontProperties(family=family, size=7))
    _draw_scale_bar(axes, family)
    _draw_north_arrow(axes, family)
    _draw_texts(figure, page, family)
    return figure


def _check(units: gpd.GeoDataFrame, fills: Mapping[str, str | None], page: MapPage) -> None:
    """Every problem with the request at once."""
    problems: list[Message] = []
    if page.format not in FORMATS:
        problems.append(message(N_("format={value!r} is not valid; expected one of: {choices}"),
                                value=page.format, choices=", ".join(FORMATS)))
    if not 50 <= page.dpi <= 600:
        problems.append(message(N_("dpi={value} is not valid; expected 50 to 600"), value=page.dpi))
    if not all(50 <= mm <= 2000 for mm in page.size_mm):
        problems.append(message(N_("the page size {value} mm is not valid; expected 50 to 2000 mm a side"),
                                value=" × ".join(f"{mm:g}" for mm in page.size_mm)))
    if not len(units) or units.crs is None:
        problems.append(message(N_("there are no units to draw, or their coordinate system is unknown")))
    bad = [(f"unit {code}", colour) for code, colour in fills.items() if not _is_colour(colour)]
    bad += [(f"legend {label}", colour) for colour, label in page.legend if not _is_colour(colour)]
    problems += [message(N_("{value!r} ({where}) is not a colour; expected e.g. #d62f27"), value=colour, where=where)
                 for where, colour in bad]
    if problems:
        raise InvalidInput(message(N_("the map image's options are not valid")), problems)


def _is_colour(colour: str | None) -> bool:
    try:
        to_rgba(colour or NO_DATA)
    except ValueError:
        return False
    return True


def _cjk_family() -> str:
    """The first installed family of :data:`CJK_FAMILIES`."""
    installed = {font.name for font in font_manager.fontManager.ttflist}
    for family in CJK_FAMILIES:
        if family in installed:
            return family
    raise InvalidInput(message(N_(
        "drawing the map needs a font for Chinese text (one of {families}) and none is installed; "
        "on Debian or Ubuntu the package fonts-noto-cjk provides one"), families=", ".join(CJK_FAMILIES[:4])))


def _inches(page: MapPage) -> tuple[float, float]:
    """The page's size: exact for a PDF; for a PNG a hair over its pixels, so that matplotlib's
    int(inches × dpi) gives the pixels asked for."""
    if page.format == "pdf":
        width_mm, height_mm = page.size_mm
        return width_mm / MM_PER_INCH, height_mm / MM_PER_INCH
    width, height = page.pixels
    return (width + 1e-6) / page.dpi, (height + 1e-6) / page.dpi


def _frame(axes: Axes, bounds: np.ndarray, figure: Figure) -> None:
    """Limits around ``bounds`` (3 % margin) widened to the axes' shape, so one metre is as long
    across as up; no ticks."""
    minx, miny, maxx, maxy = bounds
    width, height = max(maxx - minx, 1.0) * 1.06, max(maxy - miny, 1.0) * 1.06
    box = axes.get_position()
    shape = (box.height * figure.get_figheight()) / (box.width * figure.get_figwidth())
    width, height = max(width, height / shape), max(height, width * shape)
    cx, cy = (minx + maxx) / 2, (miny + maxy) / 2
    axes.set_xlim(cx - width / 2, cx + width / 2)
    axes.set_ylim(cy - height / 2, cy + height / 2)
    axes.set_aspect("equal", adjustable="datalim")
    axes.set_xticks([])
    axes.set_yticks([])
    for spine in axes.spines.values():
        spine.set_edgecolor("#999999")


def _draw_units(axes: Axes, projected: gpd.GeoDataFrame, fills: Mapping[str, str | None]) -> None:
    """The fills, one compound path per colour, then every unit's edge as one thin path."""
    colours = [to_rgba(fills.get(code) or NO_DATA) for code in projected["code"]]
    palette = list(dict.fromkeys(colours))
    group = {colour: i for i, colour in enumerate(palette)}
    geometries = projected.geometry.to_numpy()
    paths = _ring_paths(geometries, np.array([group[c] for c in colours], dtype=int), len(palette))
    axes.add_collection(PathCollection(paths, facecolors=palette, edgecolors="none", linewidths=0))
    _draw_outlines(axes, geometries, UNIT_EDGE, 0.3)


def _draw_outlines(axes: Axes, geometries: np.ndarray, colour: str, width: float) -> None:
    paths = _ring_paths(geometries, np.zeros(len(geometries), dtype=int), 1)
    axes.add_collection(PathCollection(paths, facecolors="none", edgecolors=colour, linewidths=width,
                                       capstyle="round", joinstyle="round"))


def _ring_paths(geometries: np.ndarray, groups: np.ndarray, n: int) -> list[Path]:
    """For each group 0 … n-1, one path of the rings of its geometries' polygons.  Exteriors run
    anticlockwise and holes clockwise, so that matplotlib's non-zero fill leaves the holes open."""
    parts, part_geometry = shapely.get_parts(geometries, return_index=True)
    polygons = shapely.get_type_id(parts) == 3
    parts, part_geometry = shapely.orient_polygons(parts[polygons]), part_geometry[polygons]
    rings, ring_part = shapely.get_rings(parts, return_index=True)
    coords, coord_ring = shapely.get_coordinates(rings, return_index=True)
    codes = np.full(len(coords), Path.LINETO, dtype=Path.code_type)
    starts = np.flatnonzero(np.diff(coord_ring, prepend=-1))
    codes[starts] = Path.MOVETO
    codes[np.append(starts[1:], len(coords)) - 1] = Path.CLOSEPOLY
    coord_group = groups[part_geometry[ring_part[coord_ring]]]
    return [Path(coords[coord_group == g], codes[coord_group == g]) for g in range(n)]


def _draw_labels(axes: Axes, projected: gpd.GeoDataFrame, labels: Mapping[str, str], font: FontProperties) -> None:
    chosen = projected[projected["code"].isin(list(labels))]
    points = shapely.point_on_surface(chosen.geometry.to_numpy())
    halo = [withStroke(linewidth=2, foreground="white")]
    for code, point in zip(chosen["code"], points):
        axes.text(point.x, point.y, _plain(labels[code]), fontproperties=font, ha="center", va="center",
                  color="#111111", path_effects=halo, clip_on=True)


def _plain(text: str) -> str:
    """Text drawn as written: matplotlib reads ``$…$`` as mathematics (and fails on an unbalanced
    one), and names, codes and filters come from users."""
    return text.replace("$", r"\$")


def scale_length(width_m: float) -> float:
    """The scale bar's length: the longest 1, 2 or 5 × 10ⁿ metres within a quarter of the map's width."""
    target = width_m / 4
    power = 10.0 ** math.floor(math.log10(target))
    return max(step * power for step in (1, 2, 5) if step * power <= target * (1 + 1e-9))


def distance_text(metres: float) -> str:
    """``500 m``, ``2 km``, ``1.5 km``."""
    return f"{metres / 1000:g} km" if metres >= 1000 else f"{metres:g} m"


def _draw_scale_bar(axes: Axes, family: str) -> None:
    (x0, x1), (y0, y1) = axes.get_xlim(), axes.get_ylim()
    length = scale_length(x1 - x0)
    bar = AnchoredSizeBar(axes.transData, length, distance_text(length), "lower left", pad=0.4, borderpad=0.8,
                          sep=3, frameon=True, size_vertical=(y1 - y0) * 0.005,
                          fontproperties=FontProperties(family=family, size=9))
    bar.patch.set_alpha(0.85)
    bar.patch.set_edgecolor("none")
    axes.add_artist(bar)


def _draw_north_arrow(axes: Axes, family: str) -> None:
    axes.annotate("N", xy=(0.96, 0.97), xytext=(0.96, 0.87), xycoords="axes fraction", textcoords="axes fraction",
                  ha="center", va="center", fontproperties=FontProperties(family=family, size=13),
                  arrowprops={"facecolor": "black", "edgecolor": "black", "width": 3, "headwidth": 10,
                              "headlength": 10})


def _draw_texts(figure: Figure, page: MapPage, family: str) -> None:
    """Title, subtitle, legend and footer around the map's box."""
    left, top = MAP_BOX[0], MAP_BOX[1] + MAP_BOX[3]
    figure.text(left, 0.965, _plain(page.title), va="top", fontproperties=FontProperties(family=family, size=18,
                                                                                  weight="bold"))
    figure.text(left, top + 0.012, _plain(page.subtitle), va="bottom", color="#444444",
                fontproperties=FontProperties(family=family, size=11))
    figure.text(left, 0.025, _plain(page.footer), va="bottom", color="#666666",
                fontproperties=FontProperties(family=family, size=8))
    if page.legend:
        handles = [Patch(facecolor=colour or NO_DATA, edgecolor="#999999", linewidth=0.5, label=_plain(label))
                   for colour, label in page.legend]
        figure.legend(handles=handles, loc="upper left", bbox_to_anchor=(left + MAP_BOX[2] + 0.02, top),
                      frameon=False, prop=FontProperties(family=family, size=10), handlelength=1.6,
                      handleheight=1.1, borderaxespad=0)
