"""Coordinate reference systems: recognising lon/lat, reprojecting, measuring in metres.

Everything gridmap stores is in EPSG:4326 (WGS84 lon/lat; CGCS2000 EPSG:4490 is the
same at map scale).  Areas are never taken in degrees: they are measured in a
Lambert azimuthal equal-area projection centred on the data, which keeps areas
exact wherever on Earth a street office is.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass

import geopandas as gpd
import numpy as np
from pyproj import CRS
from pyproj.exceptions import CRSError, ProjError

from .errors import N_, InvalidInput, message

log = logging.getLogger(__name__)

WGS84 = CRS.from_epsg(4326)


def parse_crs(text: str) -> CRS:
    """A CRS from what a planner typed: ``EPSG:4547``, ``4547``, a WKT or PROJ string."""
    value = text.strip()
    if value.isdigit():
        value = f"EPSG:{value}"
    try:
        crs = CRS.from_user_input(value)
    except CRSError:
        crs = None
    if crs is None or not (crs.is_geographic or crs.is_projected):
        raise InvalidInput(message(
            N_("unknown coordinate reference system {crs!r}; expected a code such as EPSG:4547"),
            crs=text,
        ))
    return crs


@dataclass(frozen=True)
class ServiceArea:
    """Where a deployment's boundaries and reports can lie (lon/lat box), so that swapped
    coordinates and files in the wrong CRS stand out."""

    minlon: float
    minlat: float
    maxlon: float
    maxlat: float

    @classmethod
    def parse(cls, text: str) -> "ServiceArea | None":
        """``minlon,minlat,maxlon,maxlat``, or ``none``/empty for no service area."""
        if text.strip().lower() in ("", "none", "off"):
            return None
        try:
            values = [float(v) for v in text.split(",")]
        except ValueError:
            values = []
        if len(values) != 4 or not (values[0] < values[2] and values[1] < values[3]) \
                or not looks_like_lonlat(np.array(values)):
            raise ValueError(f"{text!r} is not a service area; expected minlon,minlat,maxlon,maxlat "
                             "(e.g. 73.4,18.1,135.1,53.6), or none")
        return cls(*values)

    def contains(self, bounds: np.ndarray) -> bool:
        minx, miny, maxx, maxy = bounds
        return bool(self.minlon <= minx and maxx <= self.maxlon and self.minlat <= miny and maxy <= self.maxlat)

    def intersects(self, bounds: np.ndarray) -> bool:
        minx, miny, maxx, maxy = bounds
        return bool(minx <= self.maxlon and self.minlon <= maxx and miny <= self.maxlat and self.minlat <= maxy)

    def __str__(self) -> str:
        return f"{self.minlon:g},{self.minlat:g},{self.maxlon:g},{self.maxlat:g}"


CHINA = ServiceArea(73.4, 18.1, 135.1, 53.6)


def looks_like_lonlat(bounds: np.ndarray) -> bool:
    """Whether (minx, miny, maxx, maxy) could be longitudes and latitudes."""
    minx, miny, maxx, maxy = bounds
    return bool(-180 <= minx <= maxx <= 180 and -90 <= miny <= maxy <= 90)


def to_wgs84(frame: gpd.GeoDataFrame, *, crs: str | None, source: str) -> gpd.GeoDataFrame:
    """Reproject ``frame`` to EPSG:4326, refusing coordinates that cannot be lon/lat.

    ``crs`` (from the planner) overrides whatever the file declares: GDAL reads every
    GeoJSON without a ``crs`` member as EPSG:4326, so a projected file with no CRS
    only shows itself by coordinates out of the lon/lat range.
    """
    if crs:
        frame = frame.set_crs(parse_crs(crs), allow_override=True)
    elif frame.crs is None:
        frame = frame.set_crs(WGS84)
    if frame.crs.is_geographic and not looks_like_lonlat(frame.total_bounds):
        minx, miny, maxx, maxy = (round(float(v), 3) for v in frame.total_bounds)
        raise InvalidInput(message(
            N_("{source}: coordinates run from ({minx}, {miny}) to ({maxx}, {maxy}), which cannot be "
               "longitude/latitude; the file is probably in a projected CRS without saying so. "
               "Upload it again with its CRS in the {option} option, for example EPSG:4547 or EPSG:2249."),
            source=source, minx=minx, miny=miny, maxx=maxx, maxy=maxy, option="crs",
        ))
    try:
        return frame.to_crs(WGS84)
    except (CRSError, ProjError) as exc:
        raise InvalidInput(message(N_("{source}: cannot convert from {crs} to longitude/latitude: {reason}"),
                                   source=source, crs=frame.crs.name, reason=str(exc).splitlines()[0])) from None


def equal_area_crs(frame: gpd.GeoDataFrame) -> CRS:
    """A Lambert azimuthal equal-area CRS centred on ``frame`` (which is in EPSG:4326)."""
    minx, miny, maxx, maxy = frame.total_bounds
    lon0, lat0 = (minx + maxx) / 2, (miny + maxy) / 2
    return CRS.from_proj4(f"+proj=laea +lat_0={lat0:.6f} +lon_0={lon0:.6f} +datum=WGS84 +units=m +no_defs")


def areas_m2(frame: gpd.GeoDataFrame) -> np.ndarray:
    """Area of each geometry in square metres, measured in an equal-area projection."""
    present = ~(frame.geometry.isna() | frame.geometry.is_empty).to_numpy()
    if not present.any():
        return np.zeros(len(frame))
    return frame.to_crs(equal_area_crs(frame[present])).area.fillna(0.0).to_numpy()
