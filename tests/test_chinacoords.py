"""GCJ-02, BD-09 and CGCS2000 incident points to WGS84 and back (gridmap.chinacoords)."""
from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from numpy.testing import assert_allclose, assert_array_equal
from pyproj import CRS, Geod, Transformer

from gridmap import chinacoords as cc
from gridmap.chinacoords import PointCRS
from gridmap.errors import InvalidInput

GEOD = Geod(ellps="WGS84")
DEG = 1e-9  # degrees, ~0.1 mm: published values agree with ours to ~1e-13

# WGS84 → GCJ-02 (lat, lon, lat, lon), from the test suite of googollee/eviltransform
# (go/transform_test.go, javascript/test.js and python/test.py carry the same three pairs).
EVILTRANSFORM = [
    (31.1774276, 121.5272106, 31.17530398364597, 121.531541859215),  # shanghai
    (22.543847, 113.912316, 22.540796131694766, 113.9171764808363),  # shenzhen
    (39.911954, 116.377817, 39.91334545536069, 116.38404722455657),  # beijing
]
# (lon, lat) 116.404, 39.915 through each function, from wandergis/coordtransform test/app.js (Hutool's
# CoordinateUtilTest repeats the BD-09 ones).
WANDERGIS_IN = (116.404, 39.915)
WANDERGIS_WGS84_TO_GCJ02 = (116.41024449916938, 39.91640428150164)
WANDERGIS_GCJ02_TO_BD09 = (116.41036949371029, 39.92133699351021)
WANDERGIS_BD09_TO_GCJ02 = (116.39762729119315, 39.90865673957631)
WANDERGIS_GCJ02_TO_WGS84 = (116.39775550083061, 39.91359571849836)  # their one-step approximate inverse

BOSTON, TOKYO, SYDNEY, LONDON = (-71.0589, 42.3601), (139.6917, 35.6895), (151.2093, -33.8688), (-0.1276, 51.5072)


def metres(lon1, lat1, lon2, lat2) -> np.ndarray:
    return GEOD.inv(lon1, lat1, lon2, lat2)[2]


def china_grid(step: float = 0.1) -> tuple[np.ndarray, np.ndarray]:
    """Every ``step`` degrees over lon 73–135, lat 18–53 (218,000 points at 0.1°)."""
    lon, lat = np.meshgrid(np.arange(73.0, 135.0 + 1e-9, step), np.arange(18.0, 53.0 + 1e-9, step))
    return lon.ravel(), lat.ravel()


def published_wgs84_to_gcj02(lon: float, lat: float) -> tuple[float, float]:
    """The published formula, one point, transcribed term by term (as in eviltransform and
    wandergis/coordTransform_py) to check the vectorised version, which regroups the sines."""
    x, y = lon - 105.0, lat - 35.0
    dlat = -100.0 + 2.0 * x + 3.0 * y + 0.2 * y * y + 0.1 * x * y + 0.2 * math.sqrt(abs(x))
    dlat += (20.0 * math.sin(6.0 * x * math.pi) + 20.0 * math.sin(2.0 * x * math.pi)) * 2.0 / 3.0
    dlat += (20.0 * math.sin(y * math.pi) + 40.0 * math.sin(y / 3.0 * math.pi)) * 2.0 / 3.0
    dlat += (160.0 * math.sin(y / 12.0 * math.pi) + 320 * math.sin(y * math.pi / 30.0)) * 2.0 / 3.0
    dlon = 300.0 + x + 2.0 * y + 0.1 * x * x + 0.1 * x * y + 0.1 * math.sqrt(abs(x))
    dlon += (20.0 * math.sin(6.0 * x * math.pi) + 20.0 * math.sin(2.0 * x * math.pi)) * 2.0 / 3.0
    dlon += (20.0 * math.sin(x * math.pi) + 40.0 * math.sin(x / 3.0 * math.pi)) * 2.0 / 3.0
    dlon += (150.0 * math.sin(x / 12.0 * math.pi) + 300.0 * math.sin(x / 30.0 * math.pi)) * 2.0 / 3.0
    a, ee = 6378245.0, 0.00669342162296594323
    radlat = lat / 180.0 * math.pi
    magic = 1 - ee * math.sin(radlat) ** 2
    dlat = (dlat * 180.0) / ((a * (1 - ee)) / (magic * math.sqrt(magic)) * math.pi)
    dlon = (dlon * 180.0) / (a / math.sqrt(magic) * math.cos(radlat) * math.pi)
    return lon + dlon, lat + dlat


# --- published reference pairs ----------------------------------------------------------------

@pytest.mark.parametrize("wgs_lat, wgs_lon, gcj_lat, gcj_lon", EVILTRANSFORM)
def test_wgs84_to_gcj02_gives_eviltransforms_pairs(wgs_lat, wgs_lon, gcj_lat, gcj_lon):
    assert_allclose(cc.wgs84_to_gcj02(wgs_lon, wgs_lat), (gcj_lon, gcj_lat), rtol=0, atol=DEG)


@pytest.mark.parametrize("wgs_lat, wgs_lon, gcj_lat, gcj_lon", EVILTRANSFORM)
def test_gcj02_to_wgs84_recovers_eviltransforms_pairs(wgs_lat, wgs_lon, gcj_lat, gcj_lon):
    # 1e-8 degrees (~1 mm) is what the iteration promises; eviltransform's own exact inverse is tested to 0.5 m.
    assert_allclose(cc.gcj02_to_wgs84(gcj_lon, gcj_lat), (wgs_lon, wgs_lat), rtol=0, atol=1e-8)


def test_wandergis_pairs():
    assert_allclose(cc.wgs84_to_gcj02(*WANDERGIS_IN), WANDERGIS_WGS84_TO_GCJ02, rtol=0, atol=DEG)
    assert_allclose(cc.gcj02_to_bd09(*WANDERGIS_IN), WANDERGIS_GCJ02_TO_BD09, rtol=0, atol=DEG)
    # The published BD-09 → GCJ-02 formula inverts the forward one only to ~0.22 m (4.8 cm here);
    # we add one correction step, so we agree with it to that and with the forward formula to 1e-8.
    gcj = cc.bd09_to_gcj02(*WANDERGIS_IN)
    assert metres(*gcj, *WANDERGIS_BD09_TO_GCJ02) < 0.25
    assert_allclose(cc.gcj02_to_bd09(*gcj), WANDERGIS_IN, rtol=0, atol=1e-8)


def test_gcj02_to_wgs84_is_exact_where_the_one_step_inverse_is_not():
    wgs = cc.gcj02_to_wgs84(*WANDERGIS_IN)
    assert_allclose(cc.wgs84_to_gcj02(*wgs), WANDERGIS_IN, rtol=0, atol=DEG)
    rough = cc.wgs84_to_gcj02(*WANDERGIS_GCJ02_TO_WGS84)
    assert metres(*rough, *WANDERGIS_IN) > 0.05  # wandergis's one-step answer lands 6 cm off here
    assert metres(*wgs, *WANDERGIS_GCJ02_TO_WGS84) < 0.1


def test_vectorised_formula_matches_the_transcription_everywhere_in_the_box():
    rng = np.random.default_rng(7)
    lon, lat = rng.uniform(72.01, 137.83, 5000), rng.uniform(0.83, 55.82, 5000)
    expected = np.array([published_wgs84_to_gcj02(x, y) for x, y in zip(lon, lat)]).T
    assert_allclose(cc.wgs84_to_gcj02(lon, lat), expected, rtol=0, atol=1e-12)


# --- round trips ---------------------------------------------------------------------------------

def test_gcj02_round_trip_within_a_millimetre_over_china():
    lon, lat = china_grid()
    back = cc.wgs84_to_gcj02(*cc.gcj02_to_wgs84(lon, lat))
    assert metres(lon, lat, *back).max() < 0.001  # the issue asks 0.5 m; measured 0.2 mm
    wgs_back = cc.gcj02_to_wgs84(*cc.wgs84_to_gcj02(lon, lat))
    assert metres(lon, lat, *wgs_back).max() < 0.001


def test_bd09_round_trip_within_two_millimetres_over_china():
    lon, lat = china_grid()
    back = cc.wgs84_to_bd09(*cc.bd09_to_wgs84(lon, lat))
    assert metres(lon, lat, *back).max() < 0.002  # the issue asks 0.5 m; measured 1.5 mm
    wgs_back = cc.bd09_to_wgs84(*cc.wgs84_to_bd09(lon, lat))
    assert metres(lon, lat, *wgs_back).max() < 0.002


def test_the_shift_is_hundreds_of_metres_in_china():
    # Guards the round trips against a shift that does nothing.  On the 0.1° grid GCJ-02 moves
    # points 18–703 m (median 429 m; least near 96.6°E 37.1°N) and BD-09 689–1526 m.
    lon, lat = china_grid()
    shift = metres(lon, lat, *cc.wgs84_to_gcj02(lon, lat))
    assert 10 < shift.min() and 400 < np.median(shift) and shift.max() < 710
    assert metres(lon, lat, *cc.wgs84_to_bd09(lon, lat)).min() > 600


# --- out of China --------------------------------------------------------------------------------

@pytest.mark.parametrize("convert", [cc.wgs84_to_gcj02, cc.gcj02_to_wgs84, cc.gcj02_to_bd09, cc.bd09_to_gcj02,
                                     cc.wgs84_to_bd09, cc.bd09_to_wgs84])
def test_points_outside_the_box_are_left_exactly(convert):
    lon, lat = np.array([BOSTON, TOKYO, SYDNEY, LONDON, (72.0039, 30.0), (100.0, 55.8272), (137.8348, 40.0)]).T
    assert_array_equal(convert(lon, lat), (lon, lat))


def test_the_box_is_rough_seoul_is_shifted_tokyo_is_not():
    assert cc.in_china_box(*np.array([(126.978, 37.5665), (103.8198, 1.3521), (72.004, 30.0)]).T).all()
    assert not cc.in_china_box(*TOKYO)
    assert metres(126.978, 37.5665, *cc.wgs84_to_gcj02(126.978, 37.5665)) > 100


def test_mixed_points_keep_their_order():
    lon = np.array([116.404, BOSTON[0], 121.5272106, np.nan])
    lat = np.array([39.915, BOSTON[1], 31.1774276, 30.0])
    gcj_lon, gcj_lat = cc.wgs84_to_gcj02(lon, lat)
    assert_allclose(gcj_lon[[0, 2]], [WANDERGIS_WGS84_TO_GCJ02[0], 121.531541859215], rtol=0, atol=DEG)
    assert_allclose(gcj_lat[[0, 2]], [WANDERGIS_WGS84_TO_GCJ02[1], 31.17530398364597], rtol=0, atol=DEG)
    assert (gcj_lon[1], gcj_lat[1]) == BOSTON
    assert np.isnan(gcj_lon[3]) and gcj_lat[3] == 30.0  # the bare function leaves NaN as it is


# --- parsing ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("text, name", [
    (None, "WGS84"), ("", "WGS84"), ("WGS84", "WGS84"), ("wgs-84", "WGS84"), ("EPSG:4326", "WGS84"),
    ("4326", "WGS84"), ("epsg:4326", "WGS84"),
    ("GCJ02", "GCJ02"), ("GCJ-02", "GCJ02"), ("gcj02", "GCJ02"), (" gcj_02 ", "GCJ02"),
    ("BD09", "BD09"), ("BD-09", "BD09"), ("bd09", "BD09"), ("bd09ll", "BD09"),
    ("EPSG:4490", "EPSG:4490"), ("4490", "EPSG:4490"), ("CGCS2000", "EPSG:4490"), ("epsg:4547", "EPSG:4547"),
    ("4526", "EPSG:4526"),
])
def test_parse_spellings(text, name):
    assert PointCRS.parse(text).name == name


def test_parse_keeps_the_pyproj_crs_for_epsg_codes():
    assert PointCRS.parse("4547").crs == CRS.from_epsg(4547)
    assert PointCRS.parse("4547") == PointCRS.parse("EPSG:4547")
    assert PointCRS.parse("GCJ-02") is PointCRS.GCJ02 and PointCRS.GCJ02.crs is None


@pytest.mark.parametrize("text", ["EPSG:999999", "GCJ03", "bd09mc", "EPSG:5773", "mars", "12.5"])
def test_unknown_systems_are_refused_with_what_is_accepted(text):
    with pytest.raises(InvalidInput) as refused:
        PointCRS.parse(text, option="coord_type")
    assert str(refused.value) == (
        f"coord_type: unknown coordinate system {text!r}; expected WGS84, GCJ02 (Gaode/AMap, Tencent), "
        "BD09 (Baidu) or an EPSG code such as EPSG:4490 or EPSG:4547")
    assert refused.value.summary.params["option"] == "coord_type"


@pytest.mark.parametrize("text", [
    "+proj=tmerc +lon_0=1e308",      # every point comes back somewhere else
    "+proj=tmerc +x_0=1e308",        # the false easting swallows every easting
    "+proj=tmerc +k=1e308",          # every point to infinity
    "+proj=tmerc +to_meter=1e300",   # a unit of 1e300 m
    "+proj=merc +lat_ts=89.9999999",  # the whole globe within a few metres
    "+proj=longlat +pm=1e308",       # every longitude -180
    "+proj=longlat +a=1e308",        # PROJ cannot build a transformation at all
])
def test_systems_proj_reads_but_cannot_use_are_refused_as_such(text):
    with pytest.raises(InvalidInput) as refused:
        PointCRS.parse(text, option="coord_type")
    assert str(refused.value) == (f"coord_type: {text!r} is a coordinate reference system PROJ reads but cannot "
                                  "convert to longitude/latitude; expected one such as EPSG:4547 or EPSG:4490")


@pytest.mark.parametrize("text", ["+proj=longlat +a=0", "+init=epsg:4547", "CGCS 2000 / 3-degree Gauss-Kruger CM 114E",
                                  "４５４７", "EPSG:４５４７", "x" * 10_000])
def test_what_is_not_a_code_proj_string_or_wkt_is_unknown_and_quoted_briefly(text):
    """Names other than CGCS2000 never reach PROJ's name search (half a second each); 10 KB is quoted in 80."""
    with pytest.raises(InvalidInput) as refused:
        PointCRS.parse(text)
    shown = text if len(text) <= 80 else text[:80] + "…"
    assert str(refused.value) == (f"crs: unknown coordinate system {shown!r}; expected WGS84, GCJ02 (Gaode/AMap, "
                                  "Tencent), BD09 (Baidu) or an EPSG code such as EPSG:4490 or EPSG:4547")


def test_a_system_given_as_wkt_projjson_or_proj_string_is_read():
    crs = CRS.from_epsg(4547)
    assert PointCRS.parse(crs.to_wkt()).name == PointCRS.parse(crs.to_json(pretty=True)).name == "EPSG:4547"
    custom = PointCRS.parse("+proj=tmerc +lon_0=114 +x_0=500000 +ellps=GRS80")
    assert_allclose(custom.to_wgs84(500000.0, 0.0), (114.0, 0.0), rtol=0, atol=DEG)
    with pytest.raises(InvalidInput, match="the coordinate reference system is 10001 characters long; expected at "
                                           "most 10000"):
        PointCRS.parse("+proj=tmerc " + "x" * 9989)


PROJ_STRINGS = st.builds(
    lambda proj, params: " ".join([f"+proj={proj}"] + [f"+{k}={v}" for k, v in params]),
    st.sampled_from(["tmerc", "longlat", "merc", "lcc", "stere", "utm", "laea", "ortho", "geos", "ob_tran"]),
    st.lists(st.tuples(st.sampled_from(["lon_0", "lat_0", "lat_1", "lat_ts", "k", "x_0", "y_0", "a", "b", "rf", "pm",
                                        "to_meter", "zone", "h", "ellps", "towgs84"]),
                       st.one_of(st.floats().map(repr), st.integers(-10**20, 10**20).map(str),
                                 st.sampled_from(["1e308", "-1e308", "inf", "nan", "0", "GRS80", "krass", "1,2,3"]))),
             max_size=3))
CRS_TEXT = st.one_of(st.text(), PROJ_STRINGS, st.integers(0, 10**12).map(str),
                     st.builds("{}:{}".format, st.sampled_from(["EPSG", "ESRI", "IGNF", "epsg", "OGC"]),
                               st.one_of(st.integers(-10, 10**7).map(str), st.text(max_size=8))))


@settings(max_examples=200, deadline=None, database=None)
@given(CRS_TEXT)
def test_any_text_is_a_usable_system_or_refused(text):
    """A system parse lets through gives a finite WGS84 point or NaN (no position), never inf, for any input."""
    try:
        system = PointCRS.parse(text)
    except InvalidInput as refused:
        assert refused.summary.params["option"] == "crs"
        return
    lon, lat = system.to_wgs84([0.0, 500000.0, 1e7, -1e300, np.inf], [0.0, 4400000.0, -1e7, 1e300, 0.0])
    assert not np.isinf(lon).any() and not np.isinf(lat).any()
    assert_array_equal(np.isnan(lon), np.isnan(lat))


# --- EPSG codes through pyproj --------------------------------------------------------------------

def test_cgcs2000_lonlat_is_taken_lon_first():
    lon, lat = np.array([116.404, 121.5272106, 87.6168]), np.array([39.915, 31.1774276, 43.8256])
    got = PointCRS.parse("EPSG:4490").to_wgs84(lon, lat)
    # EPSG:4490 lists latitude first; in authority order pyproj takes (lat, lon) and gives (lat, lon).
    lat_pyproj, lon_pyproj = Transformer.from_crs(4490, 4326).transform(lat, lon)
    assert_allclose(got, (lon_pyproj, lat_pyproj), rtol=0, atol=1e-12)
    assert_allclose(got, (lon, lat), rtol=0, atol=1e-12)  # PROJ treats CGCS2000 as WGS84 at map scale


def test_gauss_kruger_zone_is_taken_easting_first():
    zone = PointCRS.parse("EPSG:4547")  # CGCS2000 / 3-degree Gauss-Kruger CM 114E, false easting 500 km
    northing, easting = Transformer.from_crs(4326, 4547).transform([30.5, 22.5], [114.0, 113.9])
    lon, lat = zone.to_wgs84(easting, northing)
    assert easting[0] == pytest.approx(500000.0, abs=1e-6)  # on the central meridian
    assert_allclose(lon, [114.0, 113.9], rtol=0, atol=1e-9)
    assert_allclose(lat, [30.5, 22.5], rtol=0, atol=1e-9)
    assert 3_000_000 < northing[0] < 4_000_000  # a northing of ~3.4 million m is 30.5°N
    assert_allclose(zone.from_wgs84(lon, lat), (easting, northing), rtol=0, atol=1e-6)


def test_points_pyproj_cannot_place_come_back_as_nan():
    lon, lat = PointCRS.parse("EPSG:4547").to_wgs84([1e30, 500000.0], [1e30, 3_400_000.0])
    assert np.isnan(lon[0]) and np.isnan(lat[0])
    assert np.isfinite(lon[1]) and np.isfinite(lat[1])


# --- PointCRS both ways, NaN ------------------------------------------------------------------------

@pytest.mark.parametrize("crs, forward", [("GCJ02", cc.wgs84_to_gcj02), ("BD09", cc.wgs84_to_bd09)])
def test_point_crs_converts_both_ways(crs, forward):
    lon, lat = china_grid(step=1.0)
    system = PointCRS.parse(crs)
    shifted = system.from_wgs84(lon, lat)
    assert_array_equal(shifted, forward(lon, lat))
    assert metres(lon, lat, *system.to_wgs84(*shifted)).max() < 0.002


@pytest.mark.parametrize("crs", ["WGS84", "GCJ02", "BD09", "EPSG:4490", "EPSG:4547"])
def test_nan_and_infinite_inputs_come_back_as_nan(crs):
    system = PointCRS.parse(crs)
    x0, y0 = system.from_wgs84(116.404, 39.915)
    x = np.array([np.nan, x0, x0, np.inf, x0])
    y = np.array([y0, np.nan, y0, y0, -np.inf])
    lon, lat = system.to_wgs84(x, y)
    assert_array_equal(np.isnan(lon), [True, True, False, True, True])
    assert_array_equal(np.isnan(lat), [True, True, False, True, True])
    assert_allclose((lon[2], lat[2]), (116.404, 39.915), rtol=0, atol=1e-8)
    back = system.from_wgs84(lon, lat)
    assert_array_equal(np.isnan(back[0]), [True, True, False, True, True])


def test_shapes_and_dtypes():
    lon, lat = PointCRS.GCJ02.to_wgs84(116, 40)
    assert lon.shape == () and lon.dtype == np.float64
    lon, lat = PointCRS.GCJ02.to_wgs84(np.full((2, 3), 116), np.full((2, 3), 40))
    assert lon.shape == lat.shape == (2, 3) and lon.dtype == np.float64
    assert_array_equal(lon, np.full((2, 3), lon[0, 0]))
    lon, lat = PointCRS.BD09.to_wgs84(np.array([]), np.array([]))
    assert lon.shape == (0,) and lat.shape == (0,)
