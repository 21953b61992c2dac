"""Outlines for the map page: simplified as a coverage, encoded, serialised once per version."""
from __future__ import annotations

import gzip
import json
import threading

import numpy as np
import pytest
import shapely
from shapely import Polygon, box

from gridmap import outlines as outlines_module
from gridmap.boundaries import read_layer
from gridmap.levels import Level
from gridmap.outlines import FORMAT, OutlineCache, display_outlines, outlines, simplify_coverage

from .conftest import feature_collection, micro_file

# Two neighbours sharing a wiggly edge from (1, 0) to (1, 1) through (1.004, 0.3) and (0.99, 0.6).
# The triangle (1, 0) (1.004, 0.3) (0.99, 0.6) has area 0.0027, under 0.06² = 0.0036: that vertex
# goes.  Then (1, 0) (0.99, 0.6) (1, 1) has area 0.005, over 0.0036: that one stays, in both.
WEST = Polygon([(0, 0), (1, 0), (1.004, 0.3), (0.99, 0.6), (1, 1), (0, 1)])
EAST = Polygon([(1, 0), (2, 0), (2, 1), (1, 1), (0.99, 0.6), (1.004, 0.3)])
SHARED = shapely.LineString([(1, 0), (0.99, 0.6), (1, 1)])


def test_a_shared_edge_is_simplified_once_and_stays_shared():
    west, east = simplify_coverage(np.array([WEST, EAST]), 0.06)
    assert west.normalize().equals_exact(Polygon([(0, 0), (1, 0), (0.99, 0.6), (1, 1), (0, 1)]).normalize(), 0)
    assert east.normalize().equals_exact(Polygon([(1, 0), (2, 0), (2, 1), (1, 1), (0.99, 0.6)]).normalize(), 0)
    common = shapely.line_merge(shapely.intersection(west.boundary, east.boundary))
    assert common.normalize().equals_exact(SHARED.normalize(), 0)
    assert shapely.intersection(west, east).area == 0 and shapely.union_all([west, east]).area == 2.0


def test_a_small_tolerance_moves_nothing_and_zero_simplifies_nothing():
    assert [g.normalize() for g in simplify_coverage(np.array([WEST, EAST]), 0.05)] == \
        [WEST.normalize(), EAST.normalize()]
    same = np.array([WEST, EAST])
    assert simplify_coverage(same, 0) is same


def test_units_are_simplified_one_by_one_when_geos_refuses_the_coverage(monkeypatch):
    def refuse(*args, **kwargs):
        raise shapely.errors.GEOSException("not a coverage")
    monkeypatch.setattr(shapely, "coverage_simplify", refuse)
    west, east = simplify_coverage(np.array([WEST, EAST]), 0.06)
    assert west.normalize() == box(0, 0, 1, 1).normalize()        # Douglas–Peucker: 0.01 from the line
    assert east.normalize() == box(1, 0, 2, 1).normalize()


def decode(text: str) -> list[tuple[float, float]]:
    """A polyline-encoded ring as (lon, lat) points (static/map.js's decodeRing, in Python)."""
    values, index = [], 0
    while index < len(text):
        result = shift = 0
        while True:
            byte = ord(text[index]) - 63
            index += 1
            result |= (byte & 0x1F) << shift
            shift += 5
            if byte < 0x20:
                break
        values.append(~(result >> 1) if result & 1 else result >> 1)
    lat, lon = np.cumsum(values[0::2]) / 1e6, np.cumsum(values[1::2]) / 1e6
    return list(zip(lon.tolist(), lat.tolist()))


def test_display_outlines_are_columns_of_plain_text_and_encoded_shapes():
    layer = read_layer(micro_file(), level=Level.MICRO_GRID)
    layer.version = 3
    payload = display_outlines(layer)
    shapes = payload.pop("shape")
    assert payload == {
        "level": "micro_grid", "version": 3, "format": FORMAT, "tolerance_deg": 1e-5, "precision": 1e6,
        "bounds": [0.0, 0.0, 0.02, 0.02],
        "code": ["W-S", "W-N", "E-S", "E-N"],
        "name": ["微网格W-S", "微网格W-N", "微网格E-S", "微网格E-N"],
        "staff": ["worker W-S", "worker W-N", "worker E-S", "worker E-N"],
    }
    # one polygon of one ring each, the squares as they were (a ring may start at another corner)
    assert [len(s) for s in shapes] == [1] * 4 and [len(s[0]) for s in shapes] == [1] * 4
    assert decode(shapes[0][0][0]) == [(0.01, 0.0), (0.01, 0.01), (0.0, 0.01), (0.0, 0.0), (0.01, 0.0)]
    for shape, geometry in zip(shapes, layer.units.geometry):
        assert Polygon(decode(shape[0][0])).normalize() == geometry.normalize()


def test_names_are_kept_as_text_for_the_script_to_write_with_textContent():
    evil = "<img src=x onerror=alert(1)>"
    layer = read_layer(feature_collection([({"code": "X&1", "name": evil, "网格员": "<b>张</b>"},
                                            box(0, 0, 0.01, 0.01))]), level=Level.GRID)
    payload = display_outlines(layer)
    assert (payload["code"], payload["name"], payload["staff"]) == (["X&1"], [evil], ["<b>张</b>"])


def test_outlines_are_serialised_once_compact_and_gzipped_with_a_tag():
    layer = read_layer(micro_file(), level=Level.MICRO_GRID)
    layer.version = 2
    built = outlines(layer, stamp="20260101T000000000000")
    assert json.loads(built.body) == display_outlines(layer)
    assert b", " not in built.body and '"name":["微网格W-S"'.encode() in built.body     # compact, UTF-8
    assert gzip.decompress(built.gzipped) == built.body
    assert built.tag == f"outlines-micro_grid-v2-20260101T000000000000-f{FORMAT}"


def test_an_empty_layer_has_no_bounds_and_no_units():
    layer = read_layer(micro_file(), level=Level.MICRO_GRID)
    layer.units = layer.units.iloc[:0]
    payload = display_outlines(layer)
    assert (payload["bounds"], payload["code"], payload["shape"]) == (None, [], [])


def built(tag: str) -> outlines_module.Outlines:
    return outlines_module.Outlines(level=Level.GRID, version=1, body=b"{}", gzipped=b"", tag=tag)


def test_the_cache_builds_each_version_once_and_keeps_the_latest():
    cache, calls = OutlineCache(size=2), []

    def build(tag: str):
        return lambda: calls.append(tag) or built(tag)
    assert cache.get((Level.GRID, 1), build("a")).tag == "a"
    assert cache.get((Level.GRID, 1), build("again")).tag == "a"
    cache.get((Level.GRID, 2), build("b"))
    cache.get((Level.GRID, 1), build("unused"))                   # a hit: now the most recent
    cache.get((Level.GRID, 3), build("c"))                        # evicts version 2
    assert cache.get((Level.GRID, 2), build("b2")).tag == "b2"
    assert calls == ["a", "b", "c", "b2"]


def test_requests_at_the_same_moment_build_once():
    cache, calls, gate = OutlineCache(), [], threading.Event()

    def slow():
        calls.append(1)
        gate.wait(5)
        return built("x")
    results: list[str] = []
    threads = [threading.Thread(target=lambda: results.append(cache.get((Level.GRID, 1), slow).tag))
               for _ in range(4)]
    for thread in threads:
        thread.start()
    gate.set()
    for thread in threads:
        thread.join(5)
    assert calls == [1] and results == ["x"] * 4


@pytest.mark.parametrize("tolerance", [1e-5, 5e-5])
def test_simplified_outlines_move_less_than_a_pixel_at_zoom_17(tolerance):
    """A ring with a vertex every metre along a slightly bent edge: what is dropped moves < 1.2 m."""
    t = np.linspace(0, 0.002, 200)
    edge = np.c_[114.0 + t, 30.0 + 0.00002 * np.sin(t * 3000)]
    ring = Polygon(np.vstack([edge, [[114.002, 30.002], [114.0, 30.002]]]))
    simplified = simplify_coverage(np.array([ring]), tolerance)[0]
    assert shapely.get_num_coordinates(simplified) < shapely.get_num_coordinates(ring)
    assert shapely.hausdorff_distance(ring, simplified) * 111_000 < 1.2 * (tolerance / 1e-5)
