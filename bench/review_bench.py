"""Benchmark: the size and time of the review page, against embedding every outline as GeoJSON.

    .venv/bin/python bench/review_bench.py [--size 100] [--seed 2015]

Through the Flask test client on a fresh store (English UI): Boston 2015's precincts uploaded
over its wards (wards cleaned and committed first) — refused as published, then cleaned into a
draft; and the synthetic street of validate_bench.py (--size N: N×N micro-grids over (N/5)² grids)
the same way.  *outlines as GeoJSON* is what the page would carry if it embedded every unit's
outline (the page did until the review page was reworked: Boston's refused page was 1.38 MB).
"""
from __future__ import annotations

import argparse
import io
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.assign_bench import BOSTON, machine, markdown_table  # noqa: E402
from bench.clean_bench import geojson  # noqa: E402
from bench.validate_bench import synthetic  # noqa: E402
from tests.conftest import build_app  # noqa: E402


def post(client: Any, level: str, data: bytes, **fields: str) -> tuple[Any, float]:
    start = time.perf_counter()
    response = client.post("/upload", data={"level": level, "file": (io.BytesIO(data), f"{level}.geojson"), **fields},
                           content_type="multipart/form-data")
    return response, time.perf_counter() - start


def pages(name: str, grids: bytes, grid_fields: dict[str, str], micro: bytes,
          micro_fields: dict[str, str]) -> list[list[str]]:
    with tempfile.TemporaryDirectory() as tmp:
        app = build_app(Path(tmp), GRIDMAP_LANG="en")
        client = app.test_client()
        done, _ = post(client, "grid", grids, **grid_fields)
        assert done.status_code == 303, done.get_data(as_text=True)[:500]
        client.post(done.headers["Location"] + "/commit")
        refused, t_refused = post(client, "micro_grid", micro, **micro_fields)
        drafted, t_clean = post(client, "micro_grid", micro, clean="1", **micro_fields)
        start = time.perf_counter()
        draft = client.get(drafted.headers["Location"])
        t_draft = time.perf_counter() - start
        outlines = len(json.dumps(client.get("/api/layers/micro_grid?version=1").get_json()).encode())
        app.extensions["gridmap"].store.close()
    return [[name, "refused upload (report, no cleaning)", str(refused.status_code), f"{len(refused.data):,}",
             f"{t_refused:.2f}", f"{outlines:,}"],
            [name, "cleaned draft (review page after the upload)", str(draft.status_code), f"{len(draft.data):,}",
             f"{t_clean:.2f} + {t_draft:.2f}", f"{outlines:,}"]]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=100)
    parser.add_argument("--seed", type=int, default=2015)
    args = parser.parse_args(argv)
    print(f"machine: {machine()}\n")
    rows = []
    if (BOSTON / "wards.geojson").is_file():
        rows += pages("Boston 2015 (255 precincts over 22 wards)", (BOSTON / "wards.geojson").read_bytes(),
                      {"code_field": "WARD", "clean": "1"}, (BOSTON / "precincts.geojson").read_bytes(),
                      {"crs": "EPSG:2249", "code_field": "WARD_PRECINCT"})
    else:
        print(f"skipping Boston: no data at {BOSTON} (it lives in ../shared beside the repository)\n")
    grid, micro = synthetic(args.size, args.seed)
    rows += pages(f"synthetic {args.size * args.size:,} micro-grids over {len(grid.units)} grids", geojson(grid),
                  {"tolerance_m2": "1e12"}, geojson(micro), {})
    header = ["data set", "page", "status", "HTML bytes", "seconds", "outlines as GeoJSON, bytes"]
    markdown_table(header, rows)


if __name__ == "__main__":
    main()
