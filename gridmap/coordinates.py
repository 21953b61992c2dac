"""Coordinate reference systems: recognising lon/lat, reprojecting, measuring in metres.

Everything gridmap stores is in EPSG:4326 (WGS84 lon/lat; CGCS2000 EPSG:4490 is the
same at map scale).  Areas are never taken in degrees: they are measured in a
Lambert azimuthal equal-area projection centred on the data, which keeps areas
exact wherever on Earth a street office is.
"""
from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import geopandas as gpd
import numpy as np
import shapely
from pyproj import CRS, Transformer
from pyproj.exceptions import CRSError, ProjError

from .errors import N_, InvalidInput, message

log = logging.getLogger(__name__)

WGS84 = CRS.from_epsg(4326)

#: The longest CRS text read: a pretty-printed PROJJSON of a projected CRS is about 4,000 characters.
MAX_CRS_CHARS = 10_000
# The ways a CRS may be written: a code (EPSG:4547, ESRI:102100, 4547), a PROJ string, a WKT, PROJJSON,
# an OGC URN/URL or one of the names below.  Other text PROJ looks up as a name in its database, half a
# second a value, so a batch whose every record names its own would hold a worker for minutes; "+init="
# makes PROJ open files.
_CRS_FORM = re.compile(r"[0-9]{1,9}|[A-Za-z][A-Za-z0-9_.]*:[A-Za-z0-9_.\-]+|\+.*|[A-Za-z_]+\s*\[.*|\{.*"
                       r"|urn:ogc:def:crs:.*|https?://www\.opengis\.net/def/crs/.*", re.DOTALL | re.IGNORECASE)
_NAMES = {"CGCS2000": "EPSG:4490", "WGS84": "EPSG:4326"}    # upper case, without spaces and dashes
# A usable CRS takes some probe point to its own coordinates and back to within this many degrees (~0.1 m) ...
_ROUND_TRIP_DEG = 1e-6
# ... and, when projected, puts two points 0.01 degree of latitude and longitude (1.1-1.6 km) apart at a
# distance within these factors of 1.1 km: a scale factor of 1e308 or a Mercator true at 89.9999999° puts
# every point on one spot; its unit is between a millimetre and 100 km.
_PROBE_STEP_DEG, _PROBE_STEP_M, _SCALE_LIMITS, _UNIT_LIMITS = 0.01, 1111.95, (0.01, 100.0), (1e-3, 1e5)


def parse_crs(text: str, *, option: str = "crs") -> CRS:
    """A CRS from what a planner typed: ``EPSG:4547``, ``4547``, a WKT, PROJ string or PROJJSON, that
    PROJ can convert to longitude/latitude (:func:`usable`).  ``option`` names the field in messages."""
    crs = read_crs(text, option=option)
    if crs is None:
        raise InvalidInput(message(
            N_("{option}: unknown coordinate reference system {crs!r}; expected a code such as EPSG:4547"),
            option=option, crs=shown(text),
        ))
    return usable_crs(crs, text, option=option)


def read_crs(text: str, *, option: str = "crs") -> CRS | None:
    """The geographic or projected CRS ``text`` writes (None: not one PROJ knows); text too long
    to be a CRS is refused."""
    value = text.strip()
    if len(value) > MAX_CRS_CHARS:
        raise InvalidInput(message(N_("{option}: the coordinate reference system is {length} characters long; "
                                      "expected at most {limit} (a code such as EPSG:4547, a PROJ string or a WKT)"),
                                   option=option, length=len(value), limit=MAX_CRS_CHARS))
    value = _NAMES.get(re.sub(r"[\s_-]", "", value).upper(), value)
    if not _CRS_FORM.fullmatch(value) or "init=" in value.lower():
        return None
    try:
        crs = CRS.from_user_input(f"EPSG:{value}" if value.isdigit() else value)
    except CRSError:
        return None
    return crs if crs.is_geographic or crs.is_projected else None


def usable_crs(crs: CRS, text: str, *, option: str = "crs") -> CRS:
    """``crs`` (read from ``text``), refused when PROJ knows it but cannot use it (:func:`usable`)."""
    if not usable(crs):
        raise InvalidInput(message(
            N_("{option}: {crs!r} is a coordinate reference system PROJ reads but cannot convert to "
               "longitude/latitude; expected one such as EPSG:4547 or EPSG:4490"), option=option, crs=shown(text)))
    return crs


@lru_cache(maxsize=64)
def usable(crs: CRS) -> bool:
    """Whether points can go between ``crs`` and WGS84 lon/lat: PROJ builds both transformations, and
    at some probe point (its projection's origin, the centre of its area of use, Beijing) a point
    goes there and back unchanged and, in a projected CRS, a kilometre on the ground is roughly a
    kilometre (``+lon_0=1e308``, ``+x_0=1e308``, ``+k=1e308``, ``+pm=1e308`` are all refused)."""
    try:
        forward, inverse = transformer(crs, inverse=False), transformer(crs, inverse=True)
    except (CRSError, ProjError):
        return False
    lon, lat = _probes(crs)
    # each probe and one a step east and toward the equator: a lost false easting shows in the longitude
    lon, lat = np.r_[lon, lon + _PROBE_STEP_DEG], np.r_[lat, lat - np.copysign(_PROBE_STEP_DEG, lat)]
    with np.errstate(all="ignore"):
        x, y = (np.asarray(v, dtype=float) for v in inverse.transform(lon, lat))
        ok = _round_trips(forward, x, y, lon, lat)
        n = len(lon) // 2
        ok = ok[:n] & ok[n:]
        if crs.is_projected:
            unit = _metres_per_unit(crs)
            scale = np.hypot(x[n:] - x[:n], y[n:] - y[:n]) * unit / _PROBE_STEP_M
            ok &= (_SCALE_LIMITS[0] <= scale) & (scale <= _SCALE_LIMITS[1])
            ok &= _UNIT_LIMITS[0] <= unit <= _UNIT_LIMITS[1]
    return bool(ok.any())


def _round_trips(forward: Transformer, x: np.ndarray, y: np.ndarray, lon: np.ndarray, lat: np.ndarray) -> np.ndarray:
    """Whether each point (``x``, ``y``), made from (``lon``, ``lat``), comes back there."""
    back_lon, back_lat = (np.asarray(v, dtype=float) for v in forward.transform(x, y))
    turned = np.abs((back_lon - lon + 180.0) % 360.0 - 180.0)
    return np.isfinite(x) & np.isfinite(y) & (turned < _ROUND_TRIP_DEG) & (np.abs(back_lat - lat) < _ROUND_TRIP_DEG)


def _probes(crs: CRS) -> tuple[np.ndarray, np.ndarray]:
    """Points (lon, lat) where a CRS ought to work: Beijing, the centre of its area of use, its projection's origin."""
    points = [(116.4, 39.9)]
    if crs.area_of_use is not None:
        west, south, east, north = crs.area_of_use.bounds
        points.append(((west + east + (360.0 if west > east else 0.0)) / 2.0, (south + north) / 2.0))
    origin = _origin(crs)
    if origin is not None:
        points.append(origin)
    lon, lat = np.array(points, dtype=float).T
    return (lon + 180.0) % 360.0 - 180.0, np.clip(lat, -89.0, 89.0)


def _origin(crs: CRS) -> tuple[float, float] | None:
    """The projection's origin: its first longitude and latitude parameters in degrees, if finite."""
    found: dict[str, float] = {}
    for param in crs.coordinate_operation.params if crs.coordinate_operation is not None else []:
        axis = param.name.split(" of ")[0]
        if axis in ("Longitude", "Latitude") and isinstance(param.value, float) and np.isfinite(param.value) \
                and str(param.unit_name).lower().startswith("degree"):
            found.setdefault(axis, param.value)
    return (found["Longitude"], found["Latitude"]) if len(found) == 2 else None


def _metres_per_unit(crs: CRS) -> float:
    factor = crs.axis_info[0].unit_conversion_factor if crs.axis_info else 1.0
    return float(factor) if factor is not None else 1.0


@lru_cache(maxsize=32)
def transformer(crs: CRS, *, inverse: bool) -> Transformer:
    """The transformation from ``crs`` to WGS84 (``inverse``: back), built once per CRS.  always_xy:
    lon/lat and easting/northing, whatever axis order the EPSG entry lists (EPSG:4490 lists lat
    first, the Gauss-Krüger zones the northing first)."""
    return Transformer.from_crs(WGS84, crs, always_xy=True) if inverse else \
        Transformer.from_crs(crs, WGS84, always_xy=True)


def shown(value: Any, limit: int = 80) -> str:
    """A value as a message quotes it: at most ``limit`` characters, so a 10 KB upload is not echoed whole."""
    text = str(value)
    return text if len(text) <= limit else text[:limit] + "…"


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
    elif not usable(frame.crs):
        raise InvalidInput(message(
            N_("{source}: the file's coordinate reference system {crs} cannot be converted to longitude/latitude; "
               "upload it again with its CRS in the {option} option, for example EPSG:4547"),
            source=source, crs=_label(frame.crs), option="crs"))
    if frame.crs.is_geographic and not looks_like_lonlat(frame.total_bounds):
        minx, miny, maxx, maxy = (round(float(v), 3) for v in frame.total_bounds)
        raise InvalidInput(message(
            N_("{source}: coordinates run from ({minx}, {miny}) to ({maxx}, {maxy}), which cannot be "
               "longitude/latitude; the file is probably in a projected CRS without saying so. "
               "Upload it again with its CRS in the {option} option, for example EPSG:4547 or EPSG:2249."),
            source=source, minx=minx, miny=miny, maxx=maxx, maxy=maxy, option="crs",
        ))
    try:
        converted = frame.to_crs(WGS84)
    except (CRSError, ProjError) as exc:
        raise InvalidInput(message(N_("{source}: cannot convert from {crs} to longitude/latitude: {reason}"),
                                   source=source, crs=frame.crs.name, reason=str(exc).splitlines()[0])) from None
    return _finite(converted, source=source, crs=frame.crs)


def _finite(frame: gpd.GeoDataFrame, *, source: str, crs: CRS) -> gpd.GeoDataFrame:
    """``frame`` (just converted from ``crs``), refused when a feature came out with no position:
    PROJ gives inf for points outside what a system covers, and they must never be stored."""
    coords, index = shapely.get_coordinates(frame.geometry.to_numpy(), return_index=True)
    lost = np.unique(index[~np.isfinite(coords).all(axis=1)])
    if lost.size:
        raise InvalidInput(message(
            N_("{source}: {count} features cannot be converted from {crs} to longitude/latitude (the first: "
               "feature {feature}): their coordinates lie outside what that system covers; check the {option} "
               "option, for example EPSG:4547"),
            source=source, count=int(lost.size), crs=_label(crs), feature=int(frame.index[lost[0]]), option="crs"))
    return frame


def _label(crs: CRS) -> str:
    """A CRS as messages name it: its name, or its definition when it has none (a PROJ string's)."""
    return shown(crs.name if crs.name and crs.name != "unknown" else crs.to_string())


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
