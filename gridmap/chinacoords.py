"""Incident points in China's coordinate systems, to WGS84 lon/lat and back.

Grid workers' phones report in GCJ-02 (Gaode/AMap, Tencent), BD-09 (Baidu), WGS84,
CGCS2000 (EPSG:4490) or a CGCS2000 Gauss-Krüger zone (EPSG:4491–4554).  PROJ does the
EPSG ones; GCJ-02 and BD-09 are deliberate obfuscations that PROJ does not know, so this
module carries their published formulas, written for numpy arrays.

**Our own code, not a library.**  Of the PyPI packages for GCJ-02, ``coord-convert`` (MIT,
last release 2019), ``eviltransform`` (MIT, 2018; its PyPI release has 6378137 m where the
formula has Krasovsky's 6378245 m) and ``prcoords`` (CC0 or GPLv3+, 2019) take one
point at a time in pure Python: 2–3 µs a point forward and 10–30 µs for their exact
inverses, so ten to thirty seconds for a million points.  ``coordtransform`` (MIT) has a C
loop for batches but returns Python lists, inverts GCJ-02 in one rough step (round trip up
to 4 m, median 0.7 m: over the 0.5 m we need) and uses another "out of China" box (73.66–
135.05°E, 3.86–53.55°N); ``geocoordinates-rs`` crosses an FFI boundary once per point.
The forward formula is twenty lines of published maths, so we keep our own numpy version;
the reference pairs in ``tests/test_chinacoords.py`` (from eviltransform's and
wandergis/coordtransform's test suites) pin it to theirs.  At a
million points it takes ~0.13 s forward and ~0.37 s for GCJ-02 → WGS84 (~0.55 s for
BD-09 → WGS84) on one core.

**Inverting GCJ-02.**  The shift ``F`` has no closed-form inverse.  It moves a point at
most ~700 m and changes by less than 0.01 degree per degree, so the fixed-point iteration
``w ← w − (F(w) − g)`` from ``w = g`` gains two digits a step; three steps leave the round
trip GCJ-02 → WGS84 → GCJ-02 under a millimetre anywhere in China (0.5 m is what we need).
BD-09 → GCJ-02 is the published formula, which only inverts GCJ-02 → BD-09 to ~0.2 m, plus
one fixed-point step through the forward formula that brings its round trip under 2 mm.

**Out of China.**  Points outside the rough box that eviltransform, prcoords and
coord-convert use, lon 72.004–137.8347 and lat 0.8293–55.8271 (:data:`CHINA_BOX`), are
left as they are.  The box is tested once, on the coordinates as given (GCJ-02 or BD-09
for the inverses), so a point is shifted as a whole or not at all.  It is rough: Seoul,
Hanoi and Singapore lie inside it and are shifted; Tokyo (139.7°E) and the Americas are
outside.

NaN marks a point without a position: a NaN or infinite input, or a point PROJ cannot
place, comes back as NaN in both coordinates.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Callable, ClassVar

import numpy as np
from numpy.typing import ArrayLike, NDArray
from pyproj import CRS

from .coordinates import read_crs, shown, transformer, usable_crs
from .errors import N_, InvalidInput, message

log = logging.getLogger(__name__)

Array = NDArray[np.float64]
Pair = tuple[Array, Array]

# Krasovsky 1940, the ellipsoid the GCJ-02 formula uses to turn metres into degrees.
_A = 6378245.0
_EE = 0.00669342162296594323
_BD_DLON, _BD_DLAT = 0.0065, 0.006
_BD_K = np.pi * 3000.0 / 180.0

#: Where GCJ-02 and BD-09 shift points (minlon, minlat, maxlon, maxlat): the usual rough box.
CHINA_BOX = (72.004, 0.8293, 137.8347, 55.8271)
_MAX_STEPS = 10
_BLOCK = 1 << 14  # points converted together
_STEP_TOLERANCE = 1e-6  # degrees: after a step this small the error is ~1% of it (see _gcj02_to_wgs84)

_NAMES = {"WGS84": "WGS84", "EPSG:4326": "WGS84", "4326": "WGS84", "GCJ02": "GCJ02", "BD09": "BD09",
          "BD09LL": "BD09"}  # bd09ll: what Baidu's SDKs call BD-09 lon/lat


@dataclass(frozen=True)
class PointCRS:
    """The coordinate system a client reports points in: ``WGS84``, ``GCJ02``, ``BD09``, or an
    EPSG code (``crs`` is then its pyproj CRS; x/y are lon/lat, or easting/northing in metres)."""

    name: str
    crs: CRS | None = None

    WGS84: ClassVar[PointCRS]
    GCJ02: ClassVar[PointCRS]
    BD09: ClassVar[PointCRS]

    @classmethod
    def parse(cls, text: str | None, *, option: str = "crs") -> PointCRS:
        """What a client sent: ``WGS84`` (also when absent), ``GCJ02``/``GCJ-02``, ``BD09``/``BD-09``,
        or a code pyproj knows (``EPSG:4490``, ``4547``).  ``option`` names the field in messages.  A
        system PROJ reads but cannot use (``+proj=tmerc +lon_0=1e308``) is refused too, so a point is
        never converted to no position or to one spot for all (:func:`gridmap.coordinates.usable`)."""
        if text is None or not text.strip():
            return cls.WGS84
        key = text.strip().upper().replace("-", "").replace("_", "").replace(" ", "")
        if key in _NAMES:
            return _BY_NAME[_NAMES[key]]
        crs = read_crs(text, option=option)
        if crs is None:
            raise InvalidInput(message(
                N_("{option}: unknown coordinate system {value!r}; expected WGS84, GCJ02 (Gaode/AMap, Tencent), "
                   "BD09 (Baidu) or an EPSG code such as EPSG:4490 or EPSG:4547"),
                option=option, value=shown(text),
            ))
        if crs.to_epsg() == 4326:
            return cls.WGS84
        return cls(crs.to_string(), usable_crs(crs, text, option=option))

    def to_wgs84(self, x: ArrayLike, y: ArrayLike) -> Pair:
        """WGS84 lon/lat (float64 arrays) of points given in this system.  For a projected
        CRS ``x`` is the easting and ``y`` the northing, whatever order the EPSG entry gives
        (CGCS2000 Gauss-Krüger zones list the northing first, as Chinese surveyors write X/Y)."""
        x, y = _float_arrays(x, y)
        if self.crs is not None:
            return _no_position_as_nan(*transformer(self.crs, inverse=False).transform(x, y))
        return _no_position_as_nan(*_TO_WGS84[self.name](x, y))

    def from_wgs84(self, lon: ArrayLike, lat: ArrayLike) -> Pair:
        """The points at WGS84 ``lon``/``lat`` in this system (x/y as :meth:`to_wgs84` takes them),
        e.g. to draw them on a GCJ-02 basemap."""
        lon, lat = _float_arrays(lon, lat)
        if self.crs is not None:
            return _no_position_as_nan(*transformer(self.crs, inverse=True).transform(lon, lat))
        return _no_position_as_nan(*_FROM_WGS84[self.name](lon, lat))

    def __str__(self) -> str:
        return self.name


PointCRS.WGS84 = PointCRS("WGS84")
PointCRS.GCJ02 = PointCRS("GCJ02")
PointCRS.BD09 = PointCRS("BD09")
_BY_NAME = {p.name: p for p in (PointCRS.WGS84, PointCRS.GCJ02, PointCRS.BD09)}


def in_china_box(lon: ArrayLike, lat: ArrayLike) -> NDArray[np.bool_]:
    """Whether each point lies in the rough box inside which GCJ-02 and BD-09 are shifted
    (False for NaN)."""
    lon, lat = np.asarray(lon, dtype=np.float64), np.asarray(lat, dtype=np.float64)
    minlon, minlat, maxlon, maxlat = CHINA_BOX
    return (lon >= minlon) & (lon <= maxlon) & (lat >= minlat) & (lat <= maxlat)


def wgs84_to_gcj02(lon: ArrayLike, lat: ArrayLike) -> Pair:
    """GCJ-02 lon/lat of WGS84 points (unshifted outside the China box)."""
    return _inside_box(lon, lat, _wgs84_to_gcj02)


def gcj02_to_wgs84(lon: ArrayLike, lat: ArrayLike) -> Pair:
    """WGS84 lon/lat of GCJ-02 points, by iterating the forward formula (unshifted outside the box)."""
    return _inside_box(lon, lat, _gcj02_to_wgs84)


def gcj02_to_bd09(lon: ArrayLike, lat: ArrayLike) -> Pair:
    """BD-09 lon/lat of GCJ-02 points (unshifted outside the China box)."""
    return _inside_box(lon, lat, _gcj02_to_bd09)


def bd09_to_gcj02(lon: ArrayLike, lat: ArrayLike) -> Pair:
    """GCJ-02 lon/lat of BD-09 points (unshifted outside the China box)."""
    return _inside_box(lon, lat, _bd09_to_gcj02)


def wgs84_to_bd09(lon: ArrayLike, lat: ArrayLike) -> Pair:
    """BD-09 lon/lat of WGS84 points (unshifted outside the China box)."""
    return _inside_box(lon, lat, lambda x, y: _gcj02_to_bd09(*_wgs84_to_gcj02(x, y)))


def bd09_to_wgs84(lon: ArrayLike, lat: ArrayLike) -> Pair:
    """WGS84 lon/lat of BD-09 points (unshifted outside the China box)."""
    return _inside_box(lon, lat, lambda x, y: _gcj02_to_wgs84(*_bd09_to_gcj02(x, y)))


def _identity(x: Array, y: Array) -> Pair:
    return x.copy(), y.copy()


_TO_WGS84: dict[str, Callable[[Array, Array], Pair]] = {
    "WGS84": _identity, "GCJ02": gcj02_to_wgs84, "BD09": bd09_to_wgs84}
_FROM_WGS84: dict[str, Callable[[Array, Array], Pair]] = {
    "WGS84": _identity, "GCJ02": wgs84_to_gcj02, "BD09": wgs84_to_bd09}


def _float_arrays(x: ArrayLike, y: ArrayLike) -> Pair:
    x, y = np.broadcast_arrays(np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64))
    return x, y


def _inside_box(lon: ArrayLike, lat: ArrayLike, formula: Callable[[Array, Array], Pair]) -> Pair:
    """``formula`` applied to the points in the China box; the others (and NaN) copied as they are."""
    lon, lat = _float_arrays(lon, lat)
    shape = lon.shape
    lon, lat = lon.ravel(), lat.ravel()
    out_lon, out_lat = lon.copy(), lat.copy()
    inside = np.flatnonzero(in_china_box(lon, lat))
    # A block at a time: the formulas' few dozen temporaries then stay in the CPU's cache,
    # which makes them a third faster than whole-array numpy at a million points.
    for start in range(0, inside.size, _BLOCK):
        block = inside[start:start + _BLOCK]
        out_lon[block], out_lat[block] = formula(lon[block], lat[block])
    return out_lon.reshape(shape), out_lat.reshape(shape)


def _no_position_as_nan(x: Array, y: Array) -> Pair:
    x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    lost = ~(np.isfinite(x) & np.isfinite(y))
    if lost.any():
        x, y = x.copy(), y.copy()
        x[lost] = y[lost] = np.nan
    return x, y


def _wgs84_to_gcj02(lon: Array, lat: Array) -> Pair:
    """The published GCJ-02 shift, applied everywhere (the caller tests the box)."""
    x, y = lon - 105.0, lat - 35.0
    x30, x12, x3, x1, x2, x6 = _sines(x)
    y30, y12, y3, y1, _, _ = _sines(y)
    dlat_m = (-100.0 + 2.0 * x + 3.0 * y + 0.2 * y * y + 0.1 * x * y + 0.2 * np.sqrt(np.abs(x))
              + (20.0 * x6 + 20.0 * x2 + 20.0 * y1 + 40.0 * y3 + 160.0 * y12 + 320.0 * y30) * 2.0 / 3.0)
    dlon_m = (300.0 + x + 2.0 * y + 0.1 * x * x + 0.1 * x * y + 0.1 * np.sqrt(np.abs(x))
              + (20.0 * x6 + 20.0 * x2 + 20.0 * x1 + 40.0 * x3 + 150.0 * x12 + 300.0 * x30) * 2.0 / 3.0)
    sin_lat = np.sin(lat * (np.pi / 180.0))
    cos_lat = np.sqrt(1.0 - sin_lat * sin_lat)  # latitudes in the box are below 56°: cos > 0
    magic = 1.0 - _EE * sin_lat * sin_lat
    sqrt_magic = np.sqrt(magic)
    dlat = dlat_m * 180.0 / (_A * (1.0 - _EE) / (magic * sqrt_magic) * np.pi)
    dlon = dlon_m * 180.0 / (_A / sqrt_magic * cos_lat * np.pi)
    return lon + dlon, lat + dlat


def _sines(v: Array) -> tuple[Array, ...]:
    """sin(πv·k) for k = 1/30, 1/12, 1/3, 1, 2, 6: the sines of the GCJ-02 formula, from one sine and
    cosine of πv/60 by the multiple-angle identities.  Sines are most of the formula's cost (twelve
    of them at 10–20 ns a point); these agree with ``np.sin`` to ~1e-13, far below a micrometre."""
    a = v * (np.pi / 60.0)
    s, c = np.sin(a), np.cos(a)
    s30 = 2.0 * s * c  # 2a
    s12 = s * (16.0 * (s * s) ** 2 - 20.0 * s * s + 5.0)  # 5a
    c12 = c * (16.0 * (c * c) ** 2 - 20.0 * c * c + 5.0)
    s6, c6 = 2.0 * s12 * c12, 1.0 - 2.0 * s12 * s12  # 10a
    s3, c3 = 2.0 * s6 * c6, 1.0 - 2.0 * s6 * s6  # 20a = πv/3
    s1, c1 = s3 * (3.0 - 4.0 * s3 * s3), c3 * (4.0 * c3 * c3 - 3.0)  # 60a = πv
    s2 = 2.0 * s1 * c1
    return s30, s12, s3, s1, s2, s2 * (3.0 - 4.0 * s2 * s2)


def _gcj02_to_wgs84(lon: Array, lat: Array) -> Pair:
    """The WGS84 point whose GCJ-02 shift lands on (lon, lat): fixed-point iteration from the
    GCJ-02 point itself.  The shift changes by less than 0.01 degree per degree, so each step
    leaves under 1% of the previous one's error, and stopping after a step under 1e-6 degrees
    leaves the point within about a millimetre (three steps, anywhere in China)."""
    wlon, wlat = lon, lat
    for _ in range(_MAX_STEPS):
        glon, glat = _wgs84_to_gcj02(wlon, wlat)
        dlon, dlat = glon - lon, glat - lat
        wlon, wlat = wlon - dlon, wlat - dlat
        if max(np.abs(dlon).max(initial=0.0), np.abs(dlat).max(initial=0.0)) < _STEP_TOLERANCE:
            break
    return wlon, wlat


def _gcj02_to_bd09(lon: Array, lat: Array) -> Pair:
    """The published GCJ-02 → BD-09 formula."""
    z = np.hypot(lon, lat) + 0.00002 * np.sin(lat * _BD_K)
    theta = np.arctan2(lat, lon) + 0.000003 * np.cos(lon * _BD_K)
    return z * np.cos(theta) + _BD_DLON, z * np.sin(theta) + _BD_DLAT


def _bd09_to_gcj02(lon: Array, lat: Array) -> Pair:
    """The published BD-09 → GCJ-02 formula, which inverts the forward one only to ~0.22 m, then
    one fixed-point step through the forward formula, which brings that under 2 mm."""
    x, y = lon - _BD_DLON, lat - _BD_DLAT
    z = np.hypot(x, y) - 0.00002 * np.sin(y * _BD_K)
    theta = np.arctan2(y, x) - 0.000003 * np.cos(x * _BD_K)
    glon, glat = z * np.cos(theta), z * np.sin(theta)
    blon, blat = _gcj02_to_bd09(glon, glat)
    return glon - (blon - lon), glat - (blat - lat)
