"""A synthetic district for the scale benchmarks and tests: N×N micro-grids under (N/block)² grids,
and incidents clustered the way real reports are.

    from bench.district import district_geojson, incident_points, incidents_csv, make_district

* the micro-grids are jittered quadrilaterals (8-vertex rings: corners and edge midpoints shared
  with the neighbours, so the level is a clean coverage); each grid is the union of a block×block
  square of micro-grids, so grid lines follow micro-grid edges exactly (no nesting problems);
* incidents: 70 % around a few hundred hot spots (normal, σ ≈ 60 m), 30 % uniform, 2 % of them
  outside every unit (a margin around the district), categories and times drawn at random;
* ``make_district(url, n=100, incidents=1_000_000)`` fills a store through the service's own
  importers (the paths under test), so a bench measures what users get.
"""
from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path

import numpy as np
import shapely

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from gridmap import categories  # noqa: E402

STEP = 0.002                 # degrees per micro-grid (about 190 m × 220 m at 30°N)
ORIGIN = (114.0, 30.0)


def district_units(n: int = 100, block: int = 10, seed: int = 8) -> tuple[list[dict], list[dict]]:
    """(grids, micro-grids) as GeoJSON features with code, name, parent_code and staff."""
    rng = np.random.default_rng(seed)

    def jittered(rows: int, cols: int, dx: float, dy: float, amount: float) -> np.ndarray:
        y, x = np.meshgrid(np.arange(rows) + dy, np.arange(cols) + dx, indexing="ij")
        return np.stack([x, y], axis=-1) + rng.uniform(-amount, amount, (rows, cols, 2))
    corner = jittered(n + 1, n + 1, 0, 0, 0.25)
    # grid corners (every block-th line) stay on the lattice so grid outlines are straight
    corner[::block, ::block] = np.stack(np.meshgrid(np.arange(0, n + 1, block), np.arange(0, n + 1, block),
                                                    indexing="xy"), axis=-1)[..., :]
    corner[[0, -1], :, 1], corner[:, [0, -1], 0] = [[0], [n]], [0, n]
    across, up = jittered(n + 1, n, 0.5, 0, 0.15), jittered(n, n + 1, 0, 0.5, 0.15)
    across[[0, -1], :, 1], up[:, [0, -1], 0] = [[0], [n]], [0, n]
    i, j = np.meshgrid(np.arange(n), np.arange(n), indexing="ij")
    ring = np.stack([corner[i, j], across[i, j], corner[i, j + 1], up[i, j + 1], corner[i + 1, j + 1],
                     across[i + 1, j], corner[i + 1, j], up[i, j], corner[i, j]], axis=2).reshape(n * n, 9, 2)
    cells = shapely.polygons(ring * STEP + ORIGIN)
    assert shapely.is_valid(cells).all()
    per_row = -(-n // block)
    blocks = (i // block * per_row + j // block).ravel()
    grid_codes = [f"G{b:03d}" for b in range(per_row * per_row)]
    grids = [shapely.union_all(cells[blocks == b]) for b in range(per_row * per_row)]
    grid_features = [{"type": "Feature", "geometry": shapely.geometry.mapping(g),
                      "properties": {"code": code, "name": f"第{k + 1}网格", "grid_leader": f"网格长{k + 1}"}}
                     for k, (code, g) in enumerate(zip(grid_codes, grids))]
    micro_features = [{"type": "Feature", "geometry": shapely.geometry.mapping(cell),
                       "properties": {"code": f"M{k:05d}", "name": f"微网格{k + 1}", "parent": grid_codes[b],
                                      "staff": f"网格员{k + 1}", "phone": f"138{k:08d}"}}
                      for k, (cell, b) in enumerate(zip(cells, blocks))]
    return grid_features, micro_features


def district_geojson(n: int = 100, block: int = 10, seed: int = 8) -> tuple[bytes, bytes]:
    grids, micro = district_units(n, block, seed)
    return tuple(json.dumps({"type": "FeatureCollection", "features": f}, ensure_ascii=False).encode()
                 for f in (grids, micro))   # type: ignore[return-value]


def bounds(n: int = 100) -> tuple[float, float, float, float]:
    return ORIGIN[0], ORIGIN[1], ORIGIN[0] + n * STEP, ORIGIN[1] + n * STEP


def incident_points(count: int, n: int = 100, seed: int = 15) -> tuple[np.ndarray, np.ndarray]:
    """lon, lat of ``count`` incidents: 70 % clustered, 28 % uniform, 2 % in a margin outside."""
    rng = np.random.default_rng(seed)
    minx, miny, maxx, maxy = bounds(n)
    hot = rng.uniform([minx, miny], [maxx, maxy], (max(1, n * 3), 2))
    k_hot, k_out = int(count * 0.7), int(count * 0.02)
    k_uni = count - k_hot - k_out
    centre = hot[rng.integers(0, len(hot), k_hot)]
    clustered = centre + rng.normal(0, 0.0006, (k_hot, 2))
    uniform = rng.uniform([minx, miny], [maxx, maxy], (k_uni, 2))
    margin = STEP * 3
    side = rng.integers(0, 4, k_out)
    t = rng.uniform(0, 1, k_out)
    depth = rng.uniform(0.1, 1, k_out) * margin
    out = np.where(side[:, None] == 0, np.c_[minx - depth, miny + t * (maxy - miny)],
          np.where(side[:, None] == 1, np.c_[maxx + depth, miny + t * (maxy - miny)],
          np.where(side[:, None] == 2, np.c_[minx + t * (maxx - minx), miny - depth],
                   np.c_[minx + t * (maxx - minx), maxy + depth])))
    xy = np.vstack([clustered, uniform, out])[rng.permutation(count)]
    xy[:, 0] = np.clip(xy[:, 0], minx - margin, maxx + margin)
    xy[:, 1] = np.clip(xy[:, 1], miny - margin, maxy + margin)
    return np.round(xy[:, 0], 6), np.round(xy[:, 1], 6)


#: Phrases of the request texts written by ``incidents_csv(text=True)``.
PHRASES = ("楼道堆放杂物影响通行", "电动车飞线充电存在火灾隐患", "小区门口机动车乱停放", "垃圾桶满溢未及时清运",
           "下水道堵塞污水外溢", "居民反映噪音扰民", "共享单车占用盲道", "违规搭建阳光房",
           "消防通道被占用", "路灯损坏夜间无照明")


def incidents_csv(count: int, path: Path, n: int = 100, seed: int = 15, *, text: bool = False) -> Path:
    """A CSV as grid offices export it: 编号, 类别 (Chinese labels), 经度, 纬度, 上报时间, 状态; with
    ``text``, also a request text (诉求内容, about 50 characters in quotes) and an address (地址), as a
    12345 hotline export has — four times the bytes a row."""
    rng = np.random.default_rng(seed + 1)
    lon, lat = incident_points(count, n, seed)
    labels = np.array([c.label_zh for c in categories.CATEGORIES], dtype=object)
    category = labels[rng.integers(0, len(labels), count)]
    seconds = rng.integers(0, 365 * 86400, count)
    times = (np.datetime64("2025-01-01T00:00:00") + seconds.astype("timedelta64[s]")).astype(str)
    times = np.char.replace(times.astype(str), "T", " ")
    status = np.array(["上报", "派单", "处置中", "办结"], dtype=object)[rng.integers(0, 4, count)]
    with open(path, "w", encoding="utf-8") as out:
        out.write("事件编号,类别,经度,纬度,上报时间,状态" + (",诉求内容,地址\n" if text else "\n"))
        for start in range(0, count, 200_000):
            stop = min(count, start + 200_000)
            block = np.char.add(np.char.add("E", np.arange(start, stop).astype(str)), "")
            columns = [block, category[start:stop], lon[start:stop].astype(str), lat[start:stop].astype(str),
                       times[start:stop], status[start:stop]]
            if text:
                picked = rng.integers(0, len(PHRASES), (stop - start, 4))
                columns.append(['"' + "，".join(PHRASES[i] for i in four) + f'，请尽快处理（工单{k}）"'
                                for k, four in zip(range(start, stop), picked)])
                columns.append([f"某某街道某某社区{b}号楼{u}单元" for b, u in
                                zip(rng.integers(1, 300, stop - start), rng.integers(1, 7, stop - start))])
            out.write("\n".join(",".join(r) for r in zip(*columns)) + "\n")
    return path


def make_district(url: str, n: int = 100, incidents: int = 100_000, block: int = 10):
    """A store at ``url`` with the district's two levels committed and ``incidents`` imported,
    through the service (as the CLI does).  Returns the service."""
    from gridmap.changes import LayerOptions
    from gridmap.levels import Level
    from gridmap.service import Gridmap
    from gridmap.storage import open_store

    service = Gridmap(open_store(url), service_area=None)
    grids, micro = district_geojson(n, block)
    service.import_layer(Level.GRID, grids, LayerOptions(filename="grid.geojson"))
    service.import_layer(Level.MICRO_GRID, micro, LayerOptions(filename="micro_grid.geojson"))
    if incidents:
        with tempfile.TemporaryDirectory() as tmp:
            path = incidents_csv(incidents, Path(tmp) / "incidents.csv", n)
            service.import_incidents(path.read_bytes(), filename=path.name)
    return service
