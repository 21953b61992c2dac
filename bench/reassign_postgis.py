"""Benchmark: reassigning every stored incident inside PostGIS, next to gridmap's own assignment.

    .venv/bin/python bench/reassign_postgis.py URL

``URL`` is a PostGIS store holding boundaries and incidents (bench/ingest.py --postgis leaves
one: ``postgresql://…/ingest_run``).  Two ways to find every incident's unit under the current
versions, both levels:

* gridmap, single process: lon/lat read from the store, gridmap.assignment's index;
* PostGIS in the database: for each unit, ``ST_Covers`` over the incidents' GiST index (the
  polygons-outer plan, forced with LATERAL), then the tie-break in SQL — the smallest code, and
  at the lower level a unit inside the incident's grid first;

and exits non-zero if any incident gets a different unit.  Nothing is written.
"""
from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np
import sqlalchemy as sa

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.assign_bench import machine, markdown_table  # noqa: E402

TOP = """
CREATE TEMP TABLE above ON COMMIT DROP AS
SELECT DISTINCT ON (i.id) i.id, u.code
FROM units u CROSS JOIN LATERAL (SELECT i.id FROM incidents i WHERE ST_Covers(u.geometry, i.geom)) i
WHERE u.version_id = %(version)s
ORDER BY i.id, u.code COLLATE "C"
"""
BELOW = """
SELECT DISTINCT ON (held.id) held.id, held.code
FROM (SELECT i.id, u.code, u.parent_code FROM units u
      CROSS JOIN LATERAL (SELECT i.id FROM incidents i WHERE ST_Covers(u.geometry, i.geom)) i
      WHERE u.version_id = %(version)s) held
LEFT JOIN above ON above.id = held.id
ORDER BY held.id, held.parent_code IS DISTINCT FROM above.code, held.code COLLATE "C"
"""


def in_database(url: str) -> tuple[dict[str, tuple[np.ndarray, np.ndarray]], float]:
    """Every incident's unit per level (ids, codes), computed by PostGIS; and the seconds it took."""
    from gridmap.storage import open_store
    store = open_store(url)
    heads = sorted(store.layer_meta(), key=lambda meta: meta.level.depth)
    engine: sa.Engine = store.engine          # type: ignore[attr-defined]  # a SqlStore
    start = time.perf_counter()
    found = {}
    with engine.begin() as conn:
        cursor = conn.connection.driver_connection.cursor()     # type: ignore[union-attr]
        for k, meta in enumerate(heads[:2]):
            version_id = conn.execute(sa.text("SELECT id FROM layer_versions WHERE level = :l AND version = :v"),
                                      {"l": meta.level.value, "v": meta.version}).scalar_one()
            if k == 0:
                cursor.execute(TOP, {"version": version_id})
                cursor.execute("SELECT id, code FROM above")
            else:
                cursor.execute(BELOW, {"version": version_id})
            rows = cursor.fetchall()
            found[meta.level.value] = (np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows)),
                                       np.array([r[1] for r in rows], dtype=object))
    elapsed = time.perf_counter() - start
    store.close()
    return found, elapsed


def in_gridmap(url: str) -> tuple[dict[str, tuple[np.ndarray, np.ndarray]], float]:
    from gridmap.assignment import AssignmentIndex
    from gridmap.storage import open_store
    store = open_store(url)
    start = time.perf_counter()
    table = store.incident_table()
    units = AssignmentIndex(list(store.layers().values())).assign(table["lon"], table["lat"])
    elapsed = time.perf_counter() - start
    store.close()
    return {level.value: (table["id"], codes) for level, codes in units.items()}, elapsed


def main() -> None:
    url = sys.argv[1]
    mine, mine_s = in_gridmap(url)
    theirs, theirs_s = in_database(url)
    differ = 0
    for level, (ids, codes) in mine.items():
        held = dict(zip(*[a.tolist() for a in theirs[level]]))
        differ += sum(held.get(i) != c for i, c in zip(ids.tolist(), codes.tolist()))
    n = len(next(iter(mine.values()))[0])
    print(machine())
    print(f"{n:,} incidents, levels {', '.join(mine)}")
    markdown_table(["method", "seconds", "incidents/s"],
                   [["gridmap index, single process (read + assign)", f"{mine_s:.1f}", f"{n / mine_s:,.0f}"],
                    ["PostGIS in the database (ST_Covers per unit + tie-break)", f"{theirs_s:.1f}",
                     f"{n / theirs_s:,.0f}"]], right={1, 2})
    print(f"\nincidents given a different unit: {differ}")
    sys.exit(1 if differ else 0)


if __name__ == "__main__":
    main()
