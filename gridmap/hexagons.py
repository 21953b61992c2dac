"""Statistical hot spots on a regular hexagon grid (H3), for places that have no micro-grids yet.

Where no one has drawn micro-grids, incidents can still be tested for clusters on hexagons of one
size: Uber's H3 grid, whose cells at one resolution tile the earth with (nearly) equal hexagons,
each with six neighbours across its six edges.  Here:

* every incident lands in the cell that h3 itself gives its WGS84 position (``latlng_to_cell``,
  one call a point: 0.7 s a million, measured; h3 4 has no vectorised call, and the cost is well
  under the permutations');
* the *study area* is every cell whose centre lies in the convex hull of the incidents, and every
  cell holding one (at the hull's edge a cell can hold an incident with its centre outside).
  Gi* compares each cell's neighbourhood with the whole area, so the empty cells must be in it:
  a cluster is a cluster against the streets around it where nothing was reported, and on the
  non-empty cells alone it would be measured against the other non-empty cells only.  The hull
  stands for where incidents could happen (ArcGIS asks for that polygon; we have none).  Not
  the cells within a ring or two of an incident: past the hull they are empty by construction,
  and on evenly spread incidents (100,000 over 20 × 20 km) that band made 494 of 5,416 cells
  cold spots, where the hull's cells alone gave none.  Cells at the hull's edge lie partly
  outside it, so with dense data (a million incidents) some of them still test cold; hot spots
  are not made that way.  One stray incident far away widens the hull: pick the incidents of
  the place first;
* neighbours share an edge (h3's ring at distance one), binary weights, and the statistic is
  :func:`gridmap.hotspots.gi_star`, the one behind the micro-grid hot spots, with the same
  :class:`~gridmap.hotspots.HotspotOptions` (``per="km2"`` divides by each cell's own area:
  H3 cells at one resolution differ in size by up to a factor of two across the globe).

The cells are kept in ascending H3 index order (their ids, fixed-width hexadecimal strings, sort
the same way), so the same incidents always give the same cells, graph and map.
"""
from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from itertools import repeat
from numbers import Integral
from typing import TYPE_CHECKING, Any

import h3
import numpy as np
import shapely
from h3.api import numpy_int as h3_int
from scipy.spatial import ConvexHull, QhullError
from shapely.geometry import Polygon

from .errors import N_, InvalidInput, message
from .hotspots import HotspotOptions, gi_star

if TYPE_CHECKING:
    from libpysal.graph import Graph

log = logging.getLogger(__name__)

#: Resolution 9: hexagons of about 0.1 km² (0.08 km² at Shanghai's latitude, edges of about 175 m).
#: That is a micro-grid's size (0.02–0.2 km²; a grid of about 1 km² holds seven to ten), so a hot
#: hexagon reads like a hot micro-grid, and a city district of 400 km² is some 5,000 cells.
#: Resolution 8 (0.7 km²) would blur a cluster of a few blocks into its grid; 10 (0.015 km²) is
#: finer than the geocoding of many reports, and splits one address's incidents across cells.
DEFAULT_RESOLUTION = 9
#: From district-wide hexagons of about 36 km² (6) to 0.002 km² (11), a few houses.
RESOLUTIONS = range(6, 12)
#: The most cells tested.  esda keeps every permutation's G* (999 × 8 bytes a cell) and, without
#: numba, permutes at about 0.25 ms a cell: 170,000 cells took 50 s and 3.2 GB, 49,000 took 12 s
#: and 1.2 GB, fit for a web request.  At resolution 9 that is some 4,000 km², at 10 some 550.
MAX_CELLS = 50_000
#: Kilometres per degree of latitude (on the mean earth radius): the size estimate's scale.
KM_PER_DEGREE = 6371.0088 * math.pi / 180


@dataclass(frozen=True)
class HexHotspots:
    """The study area's hexagons in ascending H3 order: their ids (``cells``, h3's strings), the
    incidents in each (``counts``), the tested ``values``, Gi*'s ``z`` and two-sided ``p`` (NaN where
    the test cannot run), the ``classes`` (:class:`~gridmap.hotspots.SpotClass`) and the p-value
    below which each confidence level counted (``cutoffs``)."""

    resolution: int
    cells: np.ndarray                # str
    counts: np.ndarray               # int64
    values: np.ndarray
    z: np.ndarray
    p: np.ndarray
    classes: np.ndarray
    cutoffs: dict[float, float]
    options: HotspotOptions

    def polygons(self) -> np.ndarray:
        """Each cell's outline as a shapely polygon in lon/lat (WGS84), in the cells' order."""
        shapes = np.empty(len(self.cells), dtype=object)
        shapes[:] = [cell_polygon(cell) for cell in self.cells]
        return shapes

    def features(self) -> dict[str, Any]:
        """The cells as a GeoJSON FeatureCollection (lon/lat), each with its ``cell``, ``count``,
        ``value``, ``z``, ``p`` (null where not tested) and ``class``, ready to draw."""
        rows = zip(self.cells.tolist(), self.counts.tolist(), self.values.tolist(), self.z.tolist(),
                   self.p.tolist(), self.classes)
        return {"type": "FeatureCollection", "features": [
            {"type": "Feature", "geometry": {"type": "Polygon", "coordinates": [_ring(cell)]},
             "properties": {"cell": cell, "count": count, "value": _number(value), "z": _number(z),
                            "p": _number(p), "class": spot.value}}
            for cell, count, value, z, p, spot in rows]}


def hexagon_hotspots(lon: np.ndarray, lat: np.ndarray, options: HotspotOptions = HotspotOptions(), *,
                     resolution: int = DEFAULT_RESOLUTION, max_cells: int = MAX_CELLS) -> HexHotspots:
    """Gi* hot spots of incidents at ``lon``/``lat`` (WGS84 degrees) on the H3 hexagons of
    ``resolution``, over the study area of :func:`study_area` (the cells over the incidents' convex
    hull); refused when that holds more than ``max_cells`` cells, naming a coarser resolution."""
    if options.per == "households":
        raise InvalidInput(message(N_("hexagons have no households; test per=count or per=km2")))
    lon, lat = _checked_points(lon, lat)
    resolution = checked_resolution(resolution)
    held = point_cells(lon, lat, resolution=resolution)
    area = study_area(lon, lat, held, resolution=resolution, max_cells=max_cells)
    counts = _counts(area, held)
    values = counts / _areas_km2(area) if options.per == "km2" else counts.astype(float)
    result = gi_star(values, lambda: adjacency(area), options)
    log.info("hexagon hotspots at resolution %d: %d cells, %s", resolution, len(area), result.summary)
    return HexHotspots(resolution=resolution, cells=cell_ids(area), counts=counts, values=values, z=result.z,
                       p=result.p, classes=result.classes, cutoffs=result.cutoffs, options=options)


def checked_resolution(resolution: int) -> int:
    """``resolution`` as an int, or :class:`InvalidInput` saying which are allowed."""
    if isinstance(resolution, bool) or not isinstance(resolution, Integral) or resolution not in RESOLUTIONS:
        raise InvalidInput(message(
            N_("resolution={value!r} is not valid; expected a whole number from {lowest} (hexagons of about "
               "{largest} km²) to {highest} (about {smallest} km²)"), value=resolution, lowest=RESOLUTIONS[0],
            highest=RESOLUTIONS[-1], largest=round(h3.average_hexagon_area(RESOLUTIONS[0], unit="km^2")),
            smallest=round(h3.average_hexagon_area(RESOLUTIONS[-1], unit="km^2"), 3)))
    return int(resolution)


def point_cells(lon: np.ndarray, lat: np.ndarray, *, resolution: int = DEFAULT_RESOLUTION) -> np.ndarray:
    """The H3 cell (as h3's 64-bit integer) of each point, exactly h3's ``latlng_to_cell``."""
    lon, lat = _checked_points(lon, lat)
    resolution = checked_resolution(resolution)
    return np.fromiter(map(h3_int.latlng_to_cell, lat.tolist(), lon.tolist(), repeat(resolution)),
                       dtype=np.uint64, count=len(lat))


def study_area(lon: np.ndarray, lat: np.ndarray, cells: np.ndarray, *, resolution: int,
               max_cells: int = MAX_CELLS) -> np.ndarray:
    """The cells tested (ascending H3 integers): those whose centre lies in the convex hull of the
    points, and ``cells`` (the points' own, at ``resolution``).  Refused when that would be more
    than ``max_cells``, with the finest coarser resolution that would fit by the estimate (the hull
    widened by a cell, over the local cell area: a little over the true count); before the cells
    are listed when the estimate says more than twice as many."""
    hull = _hull(np.asarray(lon, dtype=float), np.asarray(lat, dtype=float))
    if hull is None:
        return np.empty(0, dtype=np.uint64)
    estimate = _estimated_cells(hull, resolution)
    if estimate > 2 * max_cells:                  # surely too many: not worth listing them
        raise _too_fine(hull, resolution, estimate, max_cells)
    inside = np.empty(0, dtype=np.uint64)
    if isinstance(hull, Polygon):
        outline = h3.LatLngPoly([(y, x) for x, y in hull.exterior.coords[:-1]])
        inside = np.asarray(h3_int.polygon_to_cells(outline, resolution), dtype=np.uint64)
    area = np.union1d(inside, np.asarray(cells, dtype=np.uint64))
    if len(area) > max_cells:
        raise _too_fine(hull, resolution, len(area), max_cells)
    return area


def adjacency(cells: np.ndarray) -> Graph:
    """Binary contiguity of ``cells`` (ascending H3 integers): two cells are neighbours when they
    share an edge (h3's ``grid_ring`` at distance one), both in ``cells``.  The graph's ids are
    the cells' strings, in the cells' order; a cell without neighbours is an island."""
    from libpysal.graph import Graph  # where used, like esda (gridmap.hotspots)
    cells = np.asarray(cells, dtype=np.uint64)
    n = len(cells)
    rings = [np.asarray(h3_int.grid_ring(cell, 1), dtype=np.uint64) for cell in cells.tolist()]
    around = np.concatenate(rings) if rings else np.empty(0, dtype=np.uint64)
    focal = np.repeat(np.arange(n), [len(ring) for ring in rings])
    neighbour = np.minimum(np.searchsorted(cells, around), max(n - 1, 0))
    known = cells[neighbour] == around
    islands = np.setdiff1d(np.arange(n), focal[known])         # libpysal: a self-loop of weight 0
    focal = np.concatenate([focal[known], islands])
    neighbour = np.concatenate([neighbour[known], islands])
    weight = np.concatenate([np.ones(known.sum()), np.zeros(len(islands))])
    order = np.lexsort((neighbour, focal))
    ids = cell_ids(cells)
    return Graph.from_arrays(ids[focal[order]], ids[neighbour[order]], weight[order])


def cell_ids(cells: np.ndarray) -> np.ndarray:
    """h3's string ids of H3 integers (``h3.int_to_str``: lower-case hexadecimal)."""
    ids = np.empty(len(cells), dtype=object)
    ids[:] = [format(cell, "x") for cell in np.asarray(cells, dtype=np.uint64).tolist()]
    return ids


def cell_polygon(cell: str) -> Polygon:
    """The outline of the H3 cell ``cell`` as a shapely polygon in lon/lat (h3 gives lat/lng)."""
    return Polygon(_ring(cell))


# -- machinery --------------------------------------------------------------------------------


def _checked_points(lon: np.ndarray, lat: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    lon, lat = np.asarray(lon, dtype=float).ravel(), np.asarray(lat, dtype=float).ravel()
    if len(lon) != len(lat):
        raise InvalidInput(message(N_("expected as many longitudes as latitudes; got {lon} and {lat}"),
                                   lon=len(lon), lat=len(lat)))
    wrong = np.flatnonzero(~((np.abs(lon) <= 180) & (np.abs(lat) <= 90)))       # NaN fails both
    if len(wrong):
        first = int(wrong[0])
        raise InvalidInput(message(N_("expected longitudes from -180 to 180 and latitudes from -90 to 90; "
                                      "{count} points are not, the first (number {number}) at {lon}, {lat}"),
                                   count=len(wrong), number=first + 1, lon=lon[first], lat=lat[first]))
    return lon, lat


def _counts(area: np.ndarray, held: np.ndarray) -> np.ndarray:
    """How many of the points' cells ``held`` are each cell of ``area`` (which holds them all)."""
    counts = np.zeros(len(area), dtype=np.int64)
    found, per_cell = np.unique(held, return_counts=True)
    counts[np.searchsorted(area, found)] = per_cell
    return counts


def _areas_km2(cells: np.ndarray) -> np.ndarray:
    return np.array([h3_int.cell_area(cell, unit="km^2") for cell in cells.tolist()], dtype=float)


def _hull(lon: np.ndarray, lat: np.ndarray) -> shapely.Geometry | None:
    """The points' convex hull in lon/lat: a polygon, or a line or point when they are so placed."""
    if not len(lon):
        return None
    points = np.column_stack([lon, lat])
    try:
        points = points[ConvexHull(points).vertices]        # qhull: 0.2 s a million points, GEOS 0.9 s
    except QhullError:                                      # fewer than three, or all on one line
        points = np.unique(points, axis=0)
    return shapely.convex_hull(shapely.multipoints(points))


def _estimated_cells(hull: shapely.Geometry, resolution: int) -> int:
    """About how many cells the study area of ``hull`` holds at ``resolution``, and rather more than
    fewer: the hull widened by a cell's circumradius (the edge cells' centres lie inside, their
    outlines reach past it), over the area of the cell at its centre."""
    centre = hull.centroid
    area = h3.cell_area(h3.latlng_to_cell(centre.y, centre.x, resolution), unit="km^2")
    reach = math.sqrt(2 * area / (3 * math.sqrt(3)))          # a hexagon's edge (and circumradius) of that area
    scale = np.array([KM_PER_DEGREE * math.cos(math.radians(centre.y)), KM_PER_DEGREE])
    local = shapely.transform(hull, lambda xy: (xy - [centre.x, centre.y]) * scale)
    return math.ceil(local.buffer(reach).area / area)


def _too_fine(hull: shapely.Geometry, resolution: int, cells: int, max_cells: int) -> InvalidInput:
    fits = [r for r in range(resolution - 1, RESOLUTIONS[0] - 1, -1) if _estimated_cells(hull, r) <= max_cells]
    if fits:
        return InvalidInput(message(
            N_("resolution {resolution} is too fine for the area the incidents span: about {cells} hexagons, and "
               "at most {limit} are tested; resolution {coarser} would fit"),
            resolution=resolution, cells=cells, limit=max_cells, coarser=fits[0]))
    return InvalidInput(message(
        N_("the incidents span too large an area for hexagon hot spots: about {cells} hexagons at resolution "
           "{resolution}, and even at resolution {coarsest} more than the {limit} tested; choose the incidents "
           "of a smaller area"),
        cells=cells, resolution=resolution, coarsest=RESOLUTIONS[0], limit=max_cells))


def _ring(cell: str) -> list[list[float]]:
    """The closed outline of ``cell`` as [lon, lat] pairs (GeoJSON's order)."""
    ring = [[lng, lat] for lat, lng in h3.cell_to_boundary(cell)]
    return ring + ring[:1]


def _number(value: float) -> float | None:
    return value if math.isfinite(value) else None
