"""Benchmark: reassigning every stored incident — the local engine against the dask engine on a
LocalCluster of 2 worker processes — side by side in one run, the dask engine's export shown apart.

    .venv/bin/python bench/reassign.py [--incidents 1000000] [--dir /tmp/gridmap-reassign] [--postgis URL]

The store is bench/district.py's district (10,000 micro-grids under 100 grids) with N incidents
imported through the service, made once and kept in --dir (district_N.db); each engine runs on a
fresh copy, in its own process, as ``gridmap reassign --level micro_grid [--engine dask]`` runs it
(:func:`gridmap.distributed.reassign`), so "peak MB" is that process's own peak resident memory,
the interpreter and libraries included.  The dask engine's LocalCluster is started by the bench
process first (its start is the "cluster" column) and the workers report their own peaks at the end.

Stages: local — read (the incidents a page at a time), assign (the service's index); dask — export
(the incidents as GeoParquet parts of 200,000), assign (on the cluster, each worker building the
index once), then for both: compare (with the stored units) and write (the ones that differ).
The script exits 1 when the engines' units differ on any incident, or when either finds a stored
unit to change (the import stored what a commit gives, so both must find none).
"""
from __future__ import annotations

import argparse
import json
import pickle
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.assign_bench import machine, markdown_table  # noqa: E402
from bench.scale import peak_mb  # noqa: E402

STAGES = ("read", "export", "cluster", "assign", "compare", "write")


def run_engine(engine: str, db: Path, out: Path) -> dict:
    """In a child process: one reassignment of the micro-grid level, its figures, its units into ``out``."""
    from gridmap.distributed import dask_client, reassign
    from gridmap.levels import Level
    from gridmap.service import Gridmap
    from gridmap.storage import open_store
    service = Gridmap(open_store(f"sqlite:///{db}"), service_area=None)
    if engine == "local":
        done = reassign(service, Level.MICRO_GRID)
        workers: list[float] = []
    else:
        start = time.perf_counter()
        with dask_client() as client:
            started = time.perf_counter() - start
            done = reassign(service, Level.MICRO_GRID, engine="dask", scheduler=client.scheduler.address)
            workers = sorted(client.run(peak_mb).values())
        done.seconds["cluster"] += started          # the LocalCluster's start and the connection to it
    service.store.close()
    with open(out, "wb") as handle:
        pickle.dump((done.ids, done.codes), handle)
    return {"read": done.read, "changed": done.changed, "seconds": done.seconds, "peak_mb": peak_mb(),
            "workers_mb": workers}


# -- PostGIS, in the database ----------------------------------------------------------------------
def postgis_row(server: str | None, incidents: int, folder: Path) -> tuple[list[str], int] | None:
    """The reassignment done inside PostGIS (bench/reassign_postgis.py: ST_Covers per unit over the
    incidents' GiST index, the same tie-break in SQL) on the same district and incidents loaded into
    a database on ``server`` (made once), as a row of the table; and on how many incidents it
    differs from the local engine.  None: no server given."""
    if server is None:
        return None
    import numpy as np
    import sqlalchemy as sa

    from bench.reassign_postgis import in_database
    url = sa.engine.make_url(server).set(drivername="postgresql+psycopg")
    name = f"reassign_district_{incidents}"
    engine = sa.create_engine(url, isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        made = conn.exec_driver_sql("SELECT 1 FROM pg_database WHERE datname = %(n)s", {"n": name}).first()
        if not made:
            conn.exec_driver_sql(f"CREATE DATABASE {name}")
    engine.dispose()
    store_url = url.set(database=name).render_as_string(hide_password=False)
    if not made:
        from bench.district import make_district
        make_district(store_url, n=100, incidents=incidents).store.close()
    found, seconds = in_database(store_url)
    ids, codes = pickle.loads((folder / "local.units").read_bytes())
    theirs = dict(zip(*[a.tolist() for a in found["micro_grid"]]))
    differ = int(np.sum([theirs.get(i) != c for i, c in zip(ids.tolist(), codes.tolist())]))
    return ["PostGIS in the database (ST_Covers per unit, tie-break in SQL)", "", "", "", f"{seconds:.1f}", "",
            "", f"{seconds:.1f}", "", "", "—"], differ


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--incidents", type=int, default=1_000_000)
    parser.add_argument("--dir", type=Path, default=Path("/tmp/gridmap-reassign"))
    parser.add_argument("--postgis", metavar="URL", help="a PostGIS server (postgresql://user@host:port/db; "
                        "scripts/postgis start makes one): the district loaded there once, reassigned in the database")
    parser.add_argument("--run", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.run:
        engine, db, out = args.run
        print(json.dumps(run_engine(engine, Path(db), Path(out))))
        return 0
    template = district(args.dir, args.incidents)
    results = {engine: measure(engine, args.dir, template) for engine in ("local", "dask")}
    differ = compare(args.dir)
    print(f"machine: {machine()}")
    print(f"{args.incidents:,} incidents over 10,000 micro-grids under 100 grids (bench/district.py); level "
          f"micro_grid; each engine in its own process on a fresh copy of the store\n")
    rows = [row(engine, figures) for engine, figures in results.items()]
    extra = postgis_row(args.postgis, args.incidents, args.dir)
    markdown_table(["engine", "read s", "export s", "cluster start s", "assign s", "compare s", "write s",
                    "total s", "peak MB", "workers' peak MB", "changed"], rows + ([extra[0]] if extra else []),
                   right=range(1, 11))
    print(f"\nunits that differ between the engines: {differ:,} of {results['local']['read']:,}")
    if extra:
        print(f"units that differ between PostGIS in the database and the local engine: {extra[1]:,}")
        differ += extra[1]
    bad = differ or any(figures["changed"] for figures in results.values())
    if bad:
        print("MISMATCH: the engines disagree, or found stored units a commit would not give", file=sys.stderr)
    return 1 if bad else 0


def district(folder: Path, incidents: int) -> Path:
    """The district's store with ``incidents`` imported, made once."""
    folder.mkdir(parents=True, exist_ok=True)
    template = folder / f"district_{incidents}.db"
    if not template.exists():
        from bench.district import make_district
        partial = folder / f"making_{incidents}.db"
        make_district(f"sqlite:///{partial}", n=100, incidents=incidents).store.close()
        partial.rename(template)
    return template


def measure(engine: str, folder: Path, template: Path) -> dict:
    db = folder / f"{engine}.db"
    shutil.copyfile(template, db)
    done = subprocess.run([sys.executable, __file__, "--run", engine, str(db), str(folder / f"{engine}.units")],
                          cwd=ROOT, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-3000:]
    db.unlink()
    return json.loads(done.stdout.strip().splitlines()[-1])


def compare(folder: Path) -> int:
    """How many incidents the two engines put in different units (or that only one of them read)."""
    import numpy as np
    (ids, codes), (other_ids, other_codes) = (pickle.loads((folder / f"{e}.units").read_bytes())
                                              for e in ("local", "dask"))
    if not np.array_equal(ids, other_ids):
        return max(len(ids), len(other_ids))
    return int((codes != other_codes).sum())


def row(engine: str, figures: dict) -> list[str]:
    seconds = figures["seconds"]
    cells = [f"{seconds[stage]:.1f}" if stage in seconds else "" for stage in STAGES]
    name = "local (the service's index, one process)" if engine == "local" else "dask LocalCluster, 2 workers"
    workers = " / ".join(f"{mb:.0f}" for mb in figures["workers_mb"])
    return [name, *cells, f"{sum(seconds.values()):.1f}", f"{figures['peak_mb']:.0f}", workers,
            f"{figures['changed']:,}"]


if __name__ == "__main__":
    sys.exit(main())
