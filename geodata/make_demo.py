"""Generate the gridmap demo data set: 裴村社区 (Peicun community), 新区街道, 义马市, Henan.

Seed 003 reports "5 个网格, 20 个微网格, 网格队伍 24 人" for this community. No real boundary
file is public, so this script invents a believable one on real coordinates in Yima's new
district (about 111.864-111.873 E, 34.742-34.748 N, roughly 820 m x 610 m), and a year of
incidents to go with it. It writes, next to this script:

* ``demo/grid.geojson``       the 5 grids (网格): code, name, 网格长, masked phone, party cell, 三色 theme
* ``demo/micro_grid.geojson`` the 20 micro-grids (微网格): code, name, parent grid, worker, households
* ``demo/incidents.csv``      1,200 incidents from 2025-11-01 to 2026-10-31, with hotspots
  (parking and stalls at the market gate, flying cables in the old 家属院, potholes along 裴村路,
  more flying cables in summer) over a low background, and exactly 6 reports just outside the
  community that fall in no grid.

How the geometry is built, so that it is a clean coverage (按线划分、不漏一地、不漏一户):
the community outline and the streets are drawn as lines in local metres, placed in CGCS2000 /
3-degree Gauss-Kruger CM 111E (EPSG:4546), noded and polygonized once. Every face is a
micro-grid; grids and the community are dissolved from micro-grid rings by cancelling shared
edges, so every shared edge has the same vertices on both sides (no T-junctions). Each node is
converted to lon/lat and rounded to 7 decimals exactly once, and all checks (coverage validity,
nesting, areas to 0.01 m²) run on the rounded coordinates before anything is written.

Deterministic: fixed seed, no clock. ``python geodata/make_demo.py`` rewrites byte-identical files.
Names and phone numbers are invented; phones are masked.
"""
from __future__ import annotations

import csv
import datetime as dt
import json
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import geopandas as gpd
import numpy as np
import shapely
from pyproj import Transformer
from shapely.geometry import LineString, Point, Polygon
from shapely.prepared import prep

SEED = 3  # seed report 003
METRIC_CRS = "EPSG:4546"  # CGCS2000 / 3-degree Gauss-Kruger CM 111E
ORIGIN = (111.8640, 34.7420)  # lon/lat of local (0, 0), the community's south-west
OUT_DIR = Path(__file__).resolve().parent / "demo"
START, END = dt.date(2025, 11, 1), dt.date(2026, 10, 31)

TO_METRIC = Transformer.from_crs("EPSG:4326", METRIC_CRS, always_xy=True)
TO_LONLAT = Transformer.from_crs(METRIC_CRS, "EPSG:4326", always_xy=True)

Xy = tuple[float, float]

# Community outline in local metres (x east, y north); it follows the surrounding streets.
OUTLINE: list[Xy] = [(0, 60), (150, 20), (330, 0), (560, 15), (800, 70), (815, 300),
                     (790, 560), (560, 610), (300, 600), (150, 560), (110, 470), (-10, 420)]

# Streets and lanes inside it. Ends overshoot a little; polygonize drops the dangles.
STREETS: dict[str, list[Xy]] = {
    "裴村路": [(-50, 290), (850, 320)],             # main east-west road, grids north/south
    "新义街": [(380, -50), (396, 330), (425, 650)],  # north-south street through the middle
    "西环路": [(246, 285), (265, 650)],             # between 西区 and 中区
    "东环路": [(555, 285), (575, 650)],             # between 中区 and 北区
    "南环巷": [(-50, 150), (610, 172)],
    "市场东巷": [(598, -40), (606, 322)],
    "东苑巷": [(590, 190), (850, 200)],
    "南苑巷": [(200, -40), (205, 165)],
    "幼儿园巷": [(152, 140), (162, 305)],
    "老村横巷": [(-50, 380), (262, 390)],
    "老村南巷": [(110, 285), (115, 395)],
    "老村北巷": [(160, 375), (170, 620)],
    "家属院巷": [(240, 435), (578, 445)],
    "银杏路": [(685, 300), (695, 650)],
    "银杏巷": [(560, 505), (700, 510)],
    "停车场巷": [(680, 425), (850, 440)],
}


@dataclass(frozen=True)
class GridInfo:
    code: str
    name: str
    staff: str
    theme: str


@dataclass(frozen=True)
class MicroInfo:
    code: str
    name: str
    place: str  # short place word used in incident descriptions
    label: Xy  # a local point inside the face, to identify it
    staff: str
    households: int


GRIDS = [
    GridInfo("G01", "第一网格（裴村东区）", "王建军", "blue"),
    GridInfo("G02", "第二网格（裴村南区）", "李秀兰", "green"),
    GridInfo("G03", "第三网格（裴村中区）", "张国强", "red"),
    GridInfo("G04", "第四网格（裴村西区）", "刘桂芳", "red"),
    GridInfo("G05", "第五网格（裴村北区）", "陈志刚", "green"),
]

# 19 micro-grid workers for 20 micro-grids (韩卫东 covers two) + 5 grid heads = 24 people.
MICRO_GRIDS = [
    MicroInfo("G01-1", "裴村农贸市场片区", "农贸市场", (490, 240), "杨丽娟", 62),
    MicroInfo("G01-2", "裴村商业街片区", "商业街", (490, 80), "赵海燕", 96),
    MicroInfo("G01-3", "东苑小区1-6号楼片区", "东苑小区", (710, 260), "黄明亮", 188),
    MicroInfo("G01-4", "东苑小区7-12号楼片区", "东苑小区", (700, 110), "周红梅", 204),
    MicroInfo("G02-1", "裴村小学片区", "裴村小学", (100, 90), "吴永生", 64),
    MicroInfo("G02-2", "南苑小区片区", "南苑小区", (290, 80), "徐春花", 215),
    MicroInfo("G02-3", "裴村幼儿园片区", "幼儿园", (70, 230), "孙建华", 118),
    MicroInfo("G02-4", "南苑沿街商铺片区", "南苑沿街商铺", (280, 230), "马玉霞", 132),
    MicroInfo("G03-1", "煤机厂家属院南院片区", "煤机厂家属院", (320, 370), "朱国庆", 176),
    MicroInfo("G03-2", "煤机厂家属院北院片区", "家属院北院", (330, 530), "胡晓燕", 158),
    MicroInfo("G03-3", "社区党群服务中心片区", "党群服务中心", (490, 370), "郭振华", 88),
    MicroInfo("G03-4", "中区3-8号楼片区", "中区小区", (490, 530), "何淑珍", 172),
    MicroInfo("G04-1", "裴村老村南片区", "老村", (50, 340), "高文斌", 124),
    MicroInfo("G04-2", "裴村老村东片区", "老村", (180, 340), "林秀英", 141),
    MicroInfo("G04-3", "裴村老村西片区", "老村", (80, 420), "韩卫东", 73),
    MicroInfo("G04-4", "裴村老村北片区", "老村", (210, 480), "韩卫东", 109),
    MicroInfo("G05-1", "银杏苑小区南区片区", "银杏苑小区", (620, 400), "罗德胜", 196),
    MicroInfo("G05-2", "银杏苑小区北区片区", "银杏苑小区", (620, 550), "郑小梅", 183),
    MicroInfo("G05-3", "裴村路东段沿街片区", "裴村路东段", (750, 370), "梁宏伟", 102),
    MicroInfo("G05-4", "北区停车场片区", "北区停车场", (740, 500), "宋丽萍", 67),
]

PHONE_PREFIXES = ["130", "133", "135", "136", "137", "138", "139", "150", "151", "152",
                  "155", "158", "159", "176", "177", "180", "181", "183", "185", "186",
                  "187", "188", "189", "199"]

# ---------------------------------------------------------------- geometry


def local_to_metric(xy: Xy) -> Xy:
    """Local metres from the origin -> EPSG:4546 easting/northing."""
    e0, n0 = TO_METRIC.transform(*ORIGIN)
    return (e0 + xy[0], n0 + xy[1])


def polygonize_faces() -> list[Polygon]:
    """Node the outline and streets together and return every closed face (metric CRS)."""
    ring = [local_to_metric(p) for p in OUTLINE + OUTLINE[:1]]
    lines = [LineString(ring)] + [LineString([local_to_metric(p) for p in s])
                                  for s in STREETS.values()]
    noded = shapely.node(shapely.MultiLineString(lines))
    return list(shapely.polygonize(list(shapely.get_parts(noded))).geoms)


def label_faces(faces: list[Polygon]) -> dict[str, Polygon]:
    """Match each face to exactly one micro-grid by its label point."""
    by_code: dict[str, Polygon] = {}
    for micro in MICRO_GRIDS:
        hits = [f for f in faces if f.contains(Point(local_to_metric(micro.label)))]
        assert len(hits) == 1, (micro.code, len(hits))
        by_code[micro.code] = hits[0]
    assert len({id(f) for f in by_code.values()}) == 20
    assert len(faces) == 20, f"expected 20 faces, got {len(faces)}"
    return by_code


def canonical_ring(coords: list[Xy]) -> list[Xy]:
    """Open ring, counter-clockwise, starting at its smallest vertex (stable output)."""
    ring = list(coords[:-1]) if coords[0] == coords[-1] else list(coords)
    if not shapely.is_ccw(shapely.linearrings(ring + ring[:1])):
        ring.reverse()
    start = ring.index(min(ring))
    return ring[start:] + ring[:start]


def round_nodes(rings: dict[str, list[Xy]]) -> dict[Xy, Xy]:
    """Each distinct metric node -> lon/lat rounded to 7 decimals, computed once."""
    nodes = sorted({xy for ring in rings.values() for xy in ring})
    lon, lat = TO_LONLAT.transform([n[0] for n in nodes], [n[1] for n in nodes])
    lonlat = {n: (round(float(x), 7), round(float(y), 7)) for n, x, y in zip(nodes, lon, lat)}
    assert len(set(lonlat.values())) == len(nodes), "two nodes collapse when rounded"
    return lonlat


def dissolve(rings: list[list[Xy]]) -> list[Xy]:
    """Outer ring of a set of CCW rings that share edges exactly: cancel opposite edges."""
    edges = {(r[i], r[(i + 1) % len(r)]) for r in rings for i in range(len(r))}
    outer = {a: b for a, b in edges if (b, a) not in edges}
    assert len(outer) == sum(1 for a, b in edges if (b, a) not in edges), "pinched boundary"
    start = min(outer)
    ring, node = [start], outer[start]
    while node != start:
        ring.append(node)
        node = outer[node]
    assert len(ring) == len(outer), "dissolved area has more than one ring (hole or island)"
    return ring


def to_polygon(ring: list[Xy]) -> Polygon:
    return Polygon(ring + ring[:1])


def metric_polygon(ring: list[Xy], back: dict[Xy, Xy]) -> Polygon:
    """A rounded lon/lat ring re-projected node by node to the metric CRS."""
    return to_polygon([back[p] for p in ring])


@dataclass
class Coverage:
    micro: dict[str, list[Xy]]  # code -> rounded lon/lat ring (open, CCW)
    grid: dict[str, list[Xy]]
    community: list[Xy]
    back: dict[Xy, Xy]  # rounded lon/lat node -> metric xy

    def metric(self, ring: list[Xy]) -> Polygon:
        return metric_polygon(ring, self.back)


def build_coverage() -> Coverage:
    faces = label_faces(polygonize_faces())
    metric_rings = {c: canonical_ring(list(f.exterior.coords)) for c, f in faces.items()}
    assert all(not f.interiors for f in faces.values())
    lonlat = round_nodes(metric_rings)
    micro = {c: canonical_ring([lonlat[p] for p in r]) for c, r in metric_rings.items()}
    grid = {g.code: canonical_ring(dissolve([r for c, r in micro.items() if c[:3] == g.code]))
            for g in GRIDS}
    community = canonical_ring(dissolve(list(micro.values())))
    nodes = sorted(lonlat.values())
    x, y = TO_METRIC.transform([n[0] for n in nodes], [n[1] for n in nodes])
    back = {n: (float(a), float(b)) for n, a, b in zip(nodes, x, y)}
    return Coverage(micro, grid, community, back)


def check_coverage(cov: Coverage) -> None:
    """The hard requirements, on the rounded coordinates, before anything is written."""
    micro = {c: to_polygon(r) for c, r in cov.micro.items()}
    grid = {c: to_polygon(r) for c, r in cov.grid.items()}
    for polys in (micro, grid):
        geoms = list(polys.values())
        assert shapely.coverage_is_valid(geoms)
        assert shapely.coverage_is_valid([cov.metric(list(p.exterior.coords)[:-1]) for p in geoms])
        assert all(p.is_valid and p.geom_type == "Polygon" and not p.interiors for p in geoms)
        assert all(p.exterior.is_ccw for p in geoms)
    for code, poly in micro.items():
        parents = [g for g, gp in grid.items() if poly.within(gp)]
        assert parents == [code[:3]], (code, parents)
        others = [gp for g, gp in grid.items() if g != code[:3]]
        assert not any(poly.relate_pattern(gp, "T********") for gp in others), code
    for g, ring in cov.grid.items():
        union = shapely.union_all([cov.metric(r) for c, r in cov.micro.items() if c[:3] == g])
        assert union.symmetric_difference(cov.metric(ring)).area < 0.01, g
    total = sum(cov.metric(r).area for r in cov.grid.values())
    assert abs(total - cov.metric(cov.community).area) < 0.01
    assert shapely.union_all([cov.metric(r) for r in cov.grid.values()]).symmetric_difference(
        cov.metric(cov.community)).area < 0.01


# ---------------------------------------------------------------- people


def make_phones(rng: np.random.Generator) -> dict[str, str]:
    """A masked, invented mobile number per person (same person, same number)."""
    people = [g.staff for g in GRIDS] + list(dict.fromkeys(m.staff for m in MICRO_GRIDS))
    assert len(people) == len(set(people)) == 24
    tails = rng.choice(10000, size=len(people), replace=False)
    prefixes = rng.choice(PHONE_PREFIXES, size=len(people))
    return {p: f"{pre}****{int(t):04d}" for p, pre, t in zip(people, prefixes, tails)}


# ---------------------------------------------------------------- incidents

# Spatial components: (weight, kind, argument). kinds: "point" ((x, y), sigma m),
# "micro" (codes, uniform inside them), "road" (polyline, lateral sigma m), "all" (uniform).
MARKET_GATE = (465, 282)  # 农贸市场北门, just south of 裴村路


def along(street: str, x0: float, x1: float) -> list[Xy]:
    """The part of a straight street between two eastings (local metres)."""
    (ax, ay), (bx, by) = STREETS[street]
    return [(x, ay + (by - ay) * (x - ax) / (bx - ax)) for x in (x0, x1)]


PEICUN_ROAD = (along("裴村路", 100, 700), 5.0)
OLD_BLOCK = ["G03-1"]
OLD_VILLAGE = ["G04-1", "G04-2", "G04-3", "G04-4"]
SPATIAL: dict[str, list[tuple[float, str, object]]] = {
    "illegal_parking": [(0.45, "point", (MARKET_GATE, 15)), (0.10, "point", ((490, 90), 40)),
                        (0.45, "all", None)],
    "flying_cable": [(0.50, "micro", OLD_BLOCK), (0.20, "point", ((320, 370), 30)),
                     (0.10, "micro", ["G03-2"]), (0.20, "all", None)],
    "private_wiring": [(0.55, "micro", OLD_BLOCK), (0.10, "micro", ["G03-2"]), (0.35, "all", None)],
    "clutter": [(0.35, "micro", OLD_BLOCK + ["G03-2"]), (0.35, "micro", OLD_VILLAGE),
                (0.30, "all", None)],
    "illegal_ads": [(0.30, "micro", ["G01-2"]), (0.70, "all", None)],
    "street_stall": [(0.55, "point", (MARKET_GATE, 18)),
                     (0.20, "road", (along("裴村路", 396, 600), 6.0)), (0.25, "all", None)],
    "litter": [(0.50, "point", ((490, 250), 35)), (0.50, "all", None)],
    "unleashed_dog": [(0.40, "micro", ["G05-1", "G05-2"]), (0.60, "all", None)],
    "fire_hazard": [(0.40, "micro", OLD_BLOCK + OLD_VILLAGE), (0.60, "all", None)],
    "three_in_one": [(0.70, "micro", OLD_VILLAGE), (0.30, "micro", ["G01-2"])],
    "dispute": [(1.0, "all", None)],
    "road_damage": [(0.70, "road", PEICUN_ROAD), (0.30, "all", None)],
    "drain_blocked": [(0.40, "micro", OLD_VILLAGE), (0.60, "all", None)],
    "roof_leak": [(0.60, "micro", OLD_VILLAGE), (0.40, "micro", OLD_BLOCK + ["G03-2"])],
}
COUNTS = {"illegal_parking": 208, "flying_cable": 150, "private_wiring": 80, "clutter": 140,
          "illegal_ads": 89, "street_stall": 119, "litter": 129, "unleashed_dog": 60,
          "fire_hazard": 50, "three_in_one": 25, "dispute": 45, "road_damage": 39,
          "drain_blocked": 35, "roof_leak": 25}  # inside the community: 1,194, + 6 outside = 1,200
OUTSIDE = ["illegal_parking", "illegal_parking", "street_stall", "road_damage", "litter",
           "illegal_ads"]  # the 6 reports just outside the community

# Monthly weights (calendar month -> factor; missing months 1.0).
SEASON: dict[str, dict[int, float]] = {
    "flying_cable": {11: 0.6, 12: 0.5, 1: 0.4, 2: 0.4, 3: 0.6, 4: 0.9, 5: 1.5, 6: 2.6,
                     7: 3.0, 8: 3.0, 9: 1.8, 10: 0.9},
    "litter": {2: 1.4, 6: 1.3, 7: 1.3, 8: 1.3},
    "unleashed_dog": {4: 1.3, 5: 1.4, 6: 1.4, 7: 1.3, 8: 1.3, 9: 1.2, 12: 0.6, 1: 0.6},
    "street_stall": {5: 1.3, 6: 1.4, 7: 1.4, 8: 1.4, 12: 0.7, 1: 0.7, 2: 0.8},
    "fire_hazard": {12: 1.8, 1: 1.9, 2: 2.0},
    "roof_leak": {m: 0.3 for m in (11, 12, 1, 2, 3, 4, 5)} | {7: 3.0, 8: 3.0, 9: 2.5},
    "drain_blocked": {6: 2.0, 7: 2.6, 8: 2.4},
    "road_damage": {3: 2.0, 4: 1.6, 7: 1.5, 8: 1.5},
}
SOURCES = ["网格员巡查", "居民上报", "12345热线"]
SOURCE_P = {"dispute": [0.30, 0.45, 0.25], "roof_leak": [0.20, 0.50, 0.30],
            "drain_blocked": [0.30, 0.45, 0.25], "unleashed_dog": [0.35, 0.45, 0.20]}
HOURS = {  # source -> hour weights, 0..23
    "网格员巡查": {8: 1, 9: 2, 10: 2, 11: 1.5, 14: 0.8, 15: 1.5, 16: 2, 17: 1.5, 18: 0.5},
    "居民上报": {7: 0.5, 8: 1, 9: 1.2, 10: 1.2, 11: 1, 12: 0.6, 13: 0.5, 14: 0.8, 15: 1, 16: 1,
               17: 1.2, 18: 1.5, 19: 1.8, 20: 1.5, 21: 0.8, 22: 0.3},
    "12345热线": {h: 1.0 for h in range(8, 21)} | {12: 0.6},
}
SPOTS = ["门口", "东侧", "西侧", "南侧", "北侧", "路口", "院内"]
TEMPLATES: dict[str, list[str]] = {
    "illegal_parking": ["{p}{s}电动车乱停，堵塞通道", "{p}{s}机动车违停，占用消防通道",
                        "{p}{s}车辆乱停乱放，行人通行不便", "{p}{s}共享单车堆放占道"],
    "flying_cable": ["{p}有居民从楼上飞线给电动车充电", "{p}{s}电动车飞线充电，存在火灾隐患",
                     "{p}夜间楼下飞线充电，多次劝导未改"],
    "private_wiring": ["{p}{s}私拉电线晾晒衣物", "{p}{s}私拉乱接电线，线路裸露",
                       "{p}{s}乱拉线，存在触电隐患"],
    "clutter": ["{p}{s}杂物堆积，影响通行", "{p}{s}废旧家具堆放未清理", "{p}{s}纸箱杂物堆积，存在消防隐患"],
    "illegal_ads": ["{p}{s}墙面张贴小广告", "{p}单元门口小广告较多，需清理", "{p}{s}电线杆上喷涂小广告"],
    "street_stall": ["{p}{s}商户占道经营", "{p}{s}流动摊贩占道摆摊", "{p}{s}早市摊点占用人行道"],
    "litter": ["{p}{s}垃圾乱扔，未分类投放", "{p}{s}垃圾桶满溢未及时清运", "{p}{s}有人随意丢弃生活垃圾"],
    "unleashed_dog": ["{p}{s}有居民遛狗不牵绳", "{p}{s}犬只未拴绳，惊吓儿童", "{p}{s}遛狗不牵绳，宠物粪便未清理"],
    "fire_hazard": ["{p}消防通道被堵塞", "{p}{s}灭火器过期未更换", "{p}{s}电动车停放堵塞消防通道"],
    "three_in_one": ["{p}{s}门店内住人，存在“三合一”隐患", "{p}{s}小作坊生产、仓储、住宿混用"],
    "dispute": ["{p}邻里因停车位发生纠纷", "{p}楼上漏水引发邻里矛盾", "{p}居民因噪音问题发生争执"],
    "road_damage": ["{p}{s}路面坑洼，雨天积水", "{p}{s}人行道地砖破损松动", "{p}{s}井盖周边路面塌陷"],
    "drain_blocked": ["{p}{s}下水道堵塞，污水外溢", "{p}{s}雨水井堵塞，路面积水", "{p}化粪池堵塞，需疏通"],
    "roof_leak": ["{p}顶楼住户反映房顶漏雨", "{p}老房屋顶渗水，需维修", "{p}{s}平房房顶漏雨"],
}
OUTSIDE_TEXT = {"illegal_parking": "社区外侧路口机动车违停，影响通行",
                "street_stall": "社区外围路边流动摊贩占道经营",
                "road_damage": "社区边界外侧道路路面坑洼", "litter": "社区外侧绿化带垃圾堆积",
                "illegal_ads": "社区外侧公交站牌张贴小广告"}


@dataclass
class Incident:
    category: str
    lon: float
    lat: float
    reported_at: dt.datetime
    status: str
    description: str
    source: str


class Sampler:
    """Draws incident locations in the metric CRS and keeps only well-placed ones."""

    def __init__(self, cov: Coverage, rng: np.random.Generator) -> None:
        self.rng = rng
        self.micro = {c: cov.metric(r) for c, r in cov.micro.items()}
        self.prepared = {c: prep(p) for c, p in self.micro.items()}
        self.community = cov.metric(cov.community)
        self.edges = shapely.union_all([p.boundary for p in self.micro.values()])

    def rounded(self, xy: Xy) -> tuple[float, float, Point]:
        """Round to 6 decimals in lon/lat, as written, and return the metric point of that."""
        lon, lat = (round(float(v), 6) for v in TO_LONLAT.transform(*xy))
        return lon, lat, Point(TO_METRIC.transform(lon, lat))

    def micro_of(self, pt: Point) -> str | None:
        return next((c for c, p in self.prepared.items() if p.contains(pt)), None)

    def draw(self, component: tuple[float, str, object]) -> Xy:
        _, kind, arg = component
        if kind == "point":
            (cx, cy), sigma = arg
            return local_to_metric((cx + self.rng.normal(0, sigma), cy + self.rng.normal(0, sigma)))
        if kind == "road":
            line = LineString([local_to_metric(p) for p in arg[0]])
            base = line.interpolate(self.rng.uniform(0, line.length))
            return (base.x + self.rng.normal(0, arg[1]), base.y + self.rng.normal(0, arg[1]))
        areas = [self.community] if kind == "all" else [self.micro[c] for c in arg]
        x0, y0, x1, y1 = shapely.total_bounds(areas)
        return (self.rng.uniform(x0, x1), self.rng.uniform(y0, y1))

    def inside(self, category: str) -> tuple[float, float, str, str]:
        """A point ≥ 0.5 m inside one micro-grid, from the category's spatial mix; + its kind."""
        comps = SPATIAL[category]
        weights = np.array([c[0] for c in comps]) / sum(c[0] for c in comps)
        while True:
            comp = comps[self.rng.choice(len(comps), p=weights)]
            lon, lat, pt = self.rounded(self.draw(comp))
            code = self.micro_of(pt)
            if comp[1] == "micro" and code not in comp[2]:
                continue
            if code and self.edges.distance(pt) >= 0.5:
                return lon, lat, code, comp[1]

    def outside(self) -> tuple[float, float]:
        """A point 10-60 m outside the community outline (we aim for 12-55 m)."""
        x0, y0, x1, y1 = self.community.buffer(60).bounds
        while True:
            lon, lat, pt = self.rounded((self.rng.uniform(x0, x1), self.rng.uniform(y0, y1)))
            if 12 <= self.community.distance(pt) <= 55:
                return lon, lat


def day_weights(category: str) -> tuple[list[dt.date], np.ndarray]:
    """Every day of the year, weighted by season; patrols thin out over 春节 (2026-02-15..23)."""
    days = [START + dt.timedelta(d) for d in range((END - START).days + 1)]
    w = np.array([SEASON.get(category, {}).get(d.month, 1.0) for d in days])
    w *= [0.5 if dt.date(2026, 2, 15) <= d <= dt.date(2026, 2, 23) else 1.0 for d in days]
    return days, w / w.sum()


def draw_time(rng: np.random.Generator, category: str, source: str) -> dt.datetime:
    days, w = day_weights(category)
    day = days[rng.choice(len(days), p=w)]
    hours = HOURS[source]
    hp = np.array(list(hours.values())) / sum(hours.values())
    hour = list(hours)[rng.choice(len(hours), p=hp)]
    return dt.datetime.combine(day, dt.time(int(hour), int(rng.integers(60))))


def draw_status(rng: np.random.Generator, reported: dt.datetime) -> str:
    """Older incidents are almost all closed; the last weeks are still moving."""
    age = (dt.datetime.combine(END, dt.time(23, 59)) - reported).days
    if age > 30:
        probs = [0.0, 0.0, 0.01, 0.99]
    elif age > 7:
        probs = [0.0, 0.05, 0.10, 0.85]
    elif age > 2:
        probs = [0.10, 0.30, 0.30, 0.30]
    else:
        probs = [0.40, 0.30, 0.20, 0.10]
    return ["reported", "dispatched", "in_progress", "closed"][rng.choice(4, p=probs)]


def describe(rng: np.random.Generator, category: str, place: str) -> str:
    template = TEMPLATES[category][rng.choice(len(TEMPLATES[category]))]
    return template.format(p=place, s=SPOTS[rng.choice(len(SPOTS))])


def make_incident(rng: np.random.Generator, category: str, lon: float, lat: float,
                  text: str | None, place: str) -> Incident:
    source = SOURCES[rng.choice(3, p=SOURCE_P.get(category, [0.55, 0.30, 0.15]))]
    when = draw_time(rng, category, source)
    return Incident(category, lon, lat, when, draw_status(rng, when),
                    text or describe(rng, category, place), source)


def make_incidents(cov: Coverage, rng: np.random.Generator) -> list[Incident]:
    sampler = Sampler(cov, rng)
    places = {m.code: m.place for m in MICRO_GRIDS}
    rows = []
    for category, count in COUNTS.items():
        for _ in range(count):
            lon, lat, code, kind = sampler.inside(category)
            place = "裴村路" if kind == "road" else places[code]
            rows.append(make_incident(rng, category, lon, lat, None, place))
    for category in OUTSIDE:
        lon, lat = sampler.outside()
        rows.append(make_incident(rng, category, lon, lat, OUTSIDE_TEXT[category], ""))
    rows.sort(key=lambda r: (r.reported_at, r.lon, r.lat, r.category))
    return rows


def check_incidents(cov: Coverage, rows: list[Incident]) -> None:
    sampler = Sampler(cov, np.random.default_rng(0))
    outside = 0
    for r in rows:
        pt = Point(TO_METRIC.transform(r.lon, r.lat))
        assert START <= r.reported_at.date() <= END
        if sampler.micro_of(pt) is None:
            outside += 1
            assert 10 <= sampler.community.distance(pt) <= 60
        else:
            assert sampler.edges.distance(pt) >= 0.5
    assert outside == len(OUTSIDE) == 6


# ---------------------------------------------------------------- output


def feature(ring: list[Xy], props: dict) -> dict:
    coords = [[x, y] for x, y in ring + ring[:1]]
    return {"type": "Feature", "properties": props,
            "geometry": {"type": "Polygon", "coordinates": [coords]}}


def write_geojson(path: Path, features: list[dict]) -> None:
    """RFC 7946 FeatureCollection, one feature per line (readable diffs), no crs member."""
    body = ",\n".join(json.dumps(f, ensure_ascii=False) for f in features)
    text = '{"type": "FeatureCollection", "features": [\n' + body + "\n]}\n"
    path.write_text(text, encoding="utf-8")


def grid_features(cov: Coverage, phones: dict[str, str]) -> list[dict]:
    numbers = "一二三四五"
    return [feature(cov.grid[g.code], {
        "code": g.code, "name": g.name, "staff": g.staff, "phone": phones[g.staff],
        "party_cell": f"第{numbers[i]}网格党小组", "theme": g.theme}) for i, g in enumerate(GRIDS)]


def micro_features(cov: Coverage, phones: dict[str, str]) -> list[dict]:
    return [feature(cov.micro[m.code], {
        "code": m.code, "name": m.name, "parent_code": m.code[:3], "staff": m.staff,
        "phone": phones[m.staff], "households": m.households}) for m in MICRO_GRIDS]


def write_incidents(path: Path, rows: list[Incident]) -> None:
    with path.open("w", encoding="utf-8", newline="") as fh:
        out = csv.writer(fh, lineterminator="\n")
        out.writerow(["external_id", "category", "lon", "lat", "reported_at", "status",
                      "description", "source"])
        for i, r in enumerate(rows, start=1):
            when = r.reported_at.strftime("%Y-%m-%d %H:%M:%S")
            out.writerow([f"DEMO-{i:06d}", r.category, f"{r.lon:.6f}", f"{r.lat:.6f}", when,
                          r.status, r.description, r.source])


def summarize() -> None:
    """Read the files back with geopandas and print areas and counts."""
    grids = gpd.read_file(OUT_DIR / "grid.geojson")
    micro = gpd.read_file(OUT_DIR / "micro_grid.geojson")
    assert len(grids) == 5 and len(micro) == 20 and grids.crs.to_epsg() == 4326
    areas = grids.to_crs(METRIC_CRS).set_index("code").area.round(1)
    print("community bbox (lon/lat):", [round(float(v), 7) for v in grids.total_bounds])
    print("grid areas m²:", areas.to_dict(), "total", round(areas.sum(), 1))
    with (OUT_DIR / "incidents.csv").open(encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    pts = gpd.GeoDataFrame(rows, crs=4326, geometry=gpd.points_from_xy(
        [float(r["lon"]) for r in rows], [float(r["lat"]) for r in rows]))
    joined = gpd.sjoin(pts, grids[["code", "geometry"]], how="left", predicate="within")
    print("incidents:", len(rows), "by category:", dict(Counter(r["category"] for r in rows)))
    print("by grid:", dict(sorted(Counter(joined["code"].fillna("outside")).items())))
    print("by status:", dict(Counter(r["status"] for r in rows)))


def main() -> None:
    rng = np.random.default_rng(SEED)
    cov = build_coverage()
    check_coverage(cov)
    phones = make_phones(rng)
    rows = make_incidents(cov, rng)
    check_incidents(cov, rows)
    OUT_DIR.mkdir(exist_ok=True)
    write_geojson(OUT_DIR / "grid.geojson", grid_features(cov, phones))
    write_geojson(OUT_DIR / "micro_grid.geojson", micro_features(cov, phones))
    write_incidents(OUT_DIR / "incidents.csv", rows)
    summarize()


if __name__ == "__main__":
    main()
