"""Benchmark: importing an incident CSV through gridmap, side by side with the plain recipe.

    .venv/bin/python bench/ingest.py [--incidents 1000000] [--dir /tmp/gridmap-ingest] [--postgis URL]
    .venv/bin/python bench/ingest.py --against REV [--runs 3]     # this checkout against a git revision

The CSV is bench/district.py's (编号, 类别, 经度, 纬度, 上报时间, 状态: how grid offices export;
``--text`` adds a request text and an address to each row, as a 12345 hotline export has, four
times the bytes), into a store holding the synthetic district (10,000 micro-grids under 100
grids) and no incidents.
Each method runs in its own process, so its peak memory (ru_maxrss) is its own:

* gridmap: ``python -m gridmap import-incidents FILE`` as a user runs it (every check, both levels
  assigned, repeats looked up, one transaction; a file this big is read and assigned a chunk at a
  time by a worker process while the chunks before are stored: its memory is shown with the CLI's);
* pandas + sqlite3: ``pandas.read_csv`` of the whole file, ``pd.to_datetime``, the categories
  mapped, both levels assigned with a shapely STRtree + ``covers`` (first holder), then
  ``sqlite3.executemany`` of the incidents and of the assignment rows into the same schema, in
  one transaction — the baseline the issue names (no checks, no row errors, no repeats);
* gridmap's write alone: the same file parsed and assigned first, then stored the way the import
  stores it — how long SQLite takes to write the rows, which no overlap can beat;
* SQLite alone: the rows the import stored, read back into tuples, written again into an empty
  copy of the schema with sqlite3 and nothing of gridmap (in memory, and in a WAL file), then the
  indexes and the commit — the floor of any import into this schema on this machine.
"""
from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.assign_bench import machine, markdown_table  # noqa: E402
from bench.district import incidents_csv  # noqa: E402
from bench.scale import peak_mb  # noqa: E402


def gridmap_import(db: Path | str, csv: Path, root: Path = ROOT) -> dict:
    """``python -m gridmap import-incidents`` in a fresh process, as a user runs it (``db``: a SQLite
    file, or a PostGIS database URL); ``peak_mb``: its own peak resident memory, ``tree_mb``: the peak
    of its and its worker's together (gridmap.import_worker), both sampled every 20 ms."""
    start = time.perf_counter()
    process = subprocess.Popen([sys.executable, "-m", "gridmap", "import-incidents", str(csv)], cwd=root,
                               env={"GRIDMAP_DATABASE_URL": db if isinstance(db, str) else f"sqlite:///{db}",
                                    "PATH": "/usr/bin:/bin"},
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    tree = peak = 0.0
    while process.poll() is None:
        tree = max(tree, tree_rss_mb(process.pid))
        peak = max(peak, high_water_mb(process.pid))
        time.sleep(0.02)
    out, err = process.communicate()
    elapsed = time.perf_counter() - start
    assert process.returncode == 0, err[-2000:]
    return {"s": elapsed, "peak_mb": peak, "tree_mb": tree, "said": out.strip().splitlines()[-1]}


def high_water_mb(pid: int) -> float:
    """A process's peak resident memory so far (VmHWM; 0 once it has ended)."""
    try:
        status = (Path("/proc") / str(pid) / "status").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return 0.0
    return next((int(line.split()[1]) / 1024 for line in status.splitlines() if line.startswith("VmHWM:")), 0.0)


def tree_rss_mb(pid: int) -> float:
    """The resident memory of a process and all its descendants now (MB)."""
    total, waiting = 0, [pid]
    while waiting:
        proc = Path("/proc") / str(waiting.pop())
        try:
            total += int((proc / "statm").read_text().split()[1])
            for task in (proc / "task").iterdir():
                waiting += [int(child) for child in (task / "children").read_text().split()]
        except (FileNotFoundError, ProcessLookupError):     # it ended meanwhile
            continue
    return total * resource.getpagesize() / 2**20


def plain_import(db: Path, csv: Path) -> dict:
    """The baseline, in this (child) process."""
    import sqlite3

    import numpy as np
    import pandas as pd
    import shapely

    from gridmap import categories
    from gridmap.storage import open_store
    start = time.perf_counter()
    frame = pd.read_csv(csv, dtype=str)
    lon, lat = frame["经度"].astype(float).to_numpy(), frame["纬度"].astype(float).to_numpy()
    when = pd.to_datetime(frame["上报时间"]).dt.strftime("%Y-%m-%d %H:%M:%S.%f").to_numpy()
    codes = {c.label_zh: c.code for c in categories.CATEGORIES}
    category = frame["类别"].map(codes).fillna("other").to_numpy()
    store = open_store(f"sqlite:///{db}")
    layers = store.layers()
    points = shapely.points(lon, lat)
    units = {}
    for level, layer in layers.items():
        tree = shapely.STRtree(layer.units.geometry.to_numpy())
        pt, unit = tree.query(points, predicate="covered_by")
        first = np.unique(pt, return_index=True)[1]
        chosen = np.full(len(points), None, dtype=object)
        chosen[pt[first]] = layer.units["code"].to_numpy()[unit[first]]
        units[level] = chosen
    versions = {level: layer.version for level, layer in layers.items()}
    store.close()
    conn = sqlite3.connect(db)
    conn.execute("BEGIN IMMEDIATE")
    ids = np.arange(1, len(frame) + 1)
    now = "2026-11-29 00:00:00.000000"
    conn.executemany("INSERT INTO incidents (id, external_id, category, lon, lat, reported_at, status, description, "
                     "source, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, '', '', ?)",
                     zip(ids.tolist(), frame["事件编号"].tolist(), category.tolist(), lon.tolist(), lat.tolist(),
                         when.tolist(), ["reported"] * len(frame), [now] * len(frame)))
    for level, codes_of in units.items():
        version_id = conn.execute("SELECT id FROM layer_versions WHERE level = ? AND version = ?",
                                  (level.value, versions[level])).fetchone()[0]
        conn.executemany("INSERT INTO assignments (version_id, incident_id, unit_code) VALUES (?, ?, ?)",
                         zip([version_id] * len(frame), ids.tolist(), codes_of.tolist()))
    conn.commit()
    return {"s": time.perf_counter() - start, "peak_mb": peak_mb()}


def store_alone(db: Path, csv: Path) -> dict:
    """gridmap's write path with nothing else to do: the file parsed and assigned first, then
    stored in one transaction as the import stores it (the floor the import cannot beat)."""
    from gridmap.incidents import FileOptions, incident_chunks
    from gridmap.service import Gridmap
    from gridmap.storage import open_store
    svc = Gridmap(open_store(f"sqlite:///{db}"), service_area=None)
    data = csv.read_bytes()
    start = time.perf_counter()
    chunks = list(incident_chunks(data, filename=csv.name, options=FileOptions(), tz=svc.tz,
                                  now=svc._now(), encoding="utf-8"))
    parsed = time.perf_counter()
    with svc._writing() as tx:
        index = svc._current_of(tx).index
        units = [index.assign(chunk.incidents.lon, chunk.incidents.lat) for chunk in chunks]
        assigned = time.perf_counter()
        tx.expect_incidents(sum(len(chunk.rows) for chunk in chunks))
        for chunk, found in zip(chunks, units):
            svc._store_part(tx, chunk, found)
        written = time.perf_counter()
    return {"parse_s": parsed - start, "assign_s": assigned - parsed, "store_s": written - assigned,
            "commit_s": time.perf_counter() - written, "peak_mb": peak_mb()}


def sqlite_alone(stored: Path) -> dict:
    """SQLite by itself, with none of gridmap's work: the rows and assignments an import stored
    (``stored``; read back into tuples first) written into an empty copy of the schema the way the
    import writes them (a value every row shares as a literal, each version's codes as one JSON
    array), then the indexes the import builds last, and the commit — in memory, and in a WAL file."""
    import sqlite3
    source = sqlite3.connect(stored)
    columns = [row[1] for row in source.execute("PRAGMA table_info(incidents)")]
    bound, literal = [], []
    for column in columns:
        values = source.execute(f"SELECT DISTINCT {column} FROM incidents LIMIT 2").fetchall()
        if len(values) > 1:
            bound.append(column)
        elif values[0][0] is not None:
            literal.append((column, values[0][0]))
    rows = source.execute(f"SELECT {', '.join(bound)} FROM incidents ORDER BY id").fetchall()
    insert = (f"INSERT INTO incidents ({', '.join(bound + [c for c, _ in literal])}) VALUES "
              f"({', '.join(['?'] * len(bound) + [repr(v) for _, v in literal])})")     # numbers, text without '
    versions = {v: source.execute("SELECT unit_code FROM assignments WHERE version_id = ? ORDER BY incident_id",
                                  (v,)).fetchall()
                for (v,) in source.execute("SELECT DISTINCT version_id FROM assignments").fetchall()}
    schema = source.execute("SELECT type, sql FROM sqlite_master WHERE tbl_name IN ('incidents', 'assignments') "
                            "AND sql IS NOT NULL").fetchall()
    source.close()
    figures = {}
    for where in ("memory", "file"):
        path = stored.with_name("sqlite-alone.db")
        for old in stored.parent.glob(path.name + "*"):
            old.unlink()
        conn = sqlite3.connect(":memory:" if where == "memory" else path, isolation_level=None)
        for pragma in ("journal_mode=WAL", "synchronous=NORMAL", "cache_size=-65536"):
            conn.execute(f"PRAGMA {pragma}")
        for kind, sql in schema:
            if kind == "table":
                conn.execute(sql)
        conn.execute("BEGIN IMMEDIATE")
        start = time.perf_counter()
        conn.executemany(insert, rows)
        for version, codes in versions.items():
            conn.execute("INSERT INTO assignments (version_id, incident_id, unit_code) "
                         "SELECT ?, 1 + key, value FROM json_each(?)",
                         (version, json.dumps([code for (code,) in codes], ensure_ascii=False)))
        written = time.perf_counter()
        for kind, sql in schema:
            if kind == "index":
                conn.execute(sql)
        indexed = time.perf_counter()
        conn.execute("COMMIT")
        conn.close()                         # the last connection: its WAL goes into the file
        figures[where] = {"rows_s": written - start, "index_s": indexed - written,
                          "commit_s": time.perf_counter() - indexed, "s": time.perf_counter() - start}
        for old in stored.parent.glob(path.name + "*"):
            old.unlink()
    return figures


def postgis_store(server: str, name: str) -> str:
    """A database ``name`` on the PostGIS ``server`` holding the district and no incidents: a copy
    of a template database made once (``make_district`` on PostGIS), as fresh_store copies a file."""
    import sqlalchemy as sa
    url = sa.engine.make_url(server).set(drivername="postgresql+psycopg")
    engine = sa.create_engine(url, isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        if not conn.exec_driver_sql("SELECT 1 FROM pg_database WHERE datname = 'ingest_district'").first():
            conn.exec_driver_sql("CREATE DATABASE ingest_district")
            from bench.district import make_district
            made = url.set(database="ingest_district").render_as_string(hide_password=False)
            make_district(made, n=100, incidents=0).store.close()
        conn.exec_driver_sql(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        conn.exec_driver_sql(f"CREATE DATABASE {name} TEMPLATE ingest_district")
    engine.dispose()
    return url.set(database=name).render_as_string(hide_password=False)


def district_and_csv(folder: Path, incidents: int, text: bool = False) -> tuple[Path, Path]:
    """The district's store without incidents (a template to copy) and the CSV of ``incidents``
    rows (``text``: with a request text and an address each), made once in ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    template = folder / "district.db"
    if not template.exists():
        from bench.district import make_district
        make_district(f"sqlite:///{template}", n=100, incidents=0).store.close()
    csv = folder / f"incidents_{incidents}{'_text' if text else ''}.csv"
    if not csv.exists():
        incidents_csv(incidents, csv, text=text)
    return template, csv


def fresh_store(workdir: Path, name: str, template: Path) -> Path:
    db = workdir / name
    for old in workdir.glob(name + "*"):
        old.unlink()
    db.write_bytes(template.read_bytes())
    return db


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--incidents", type=int, default=1_000_000)
    parser.add_argument("--dir", type=Path, default=Path("/tmp/gridmap-ingest"))
    parser.add_argument("--postgis", metavar="URL", help="also import into PostGIS on this server "
                        "(postgresql://user@host:port/db; scripts/postgis start makes one)")
    parser.add_argument("--plain", nargs=2, type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--alone", nargs=2, type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--sqlite", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--against", metavar="REV", help="instead: the CLI import of this checkout and of git "
                        "revision REV (a worktree) in alternating runs, the fair comparison on a machine whose "
                        "speed drifts")
    parser.add_argument("--runs", type=int, default=3, help="runs of each with --against (default 3)")
    parser.add_argument("--text", action="store_true", help="rows with a request text (诉求内容) and an address "
                        "(地址), as a 12345 hotline export has: about four times the bytes")
    args = parser.parse_args()
    if args.against:
        template, csv = district_and_csv(args.dir, args.incidents, args.text)
        alternate(args.against, args.runs, args.dir, template, csv)
        return
    if args.plain:
        print(json.dumps(plain_import(*args.plain)))
        return
    if args.alone:
        print(json.dumps(store_alone(*args.alone)))
        return
    if args.sqlite:
        print(json.dumps(sqlite_alone(args.sqlite)))
        return
    template, csv = district_and_csv(args.dir, args.incidents, args.text)
    mine = gridmap_import(fresh_store(args.dir, "gridmap.db", template), csv)
    postgis = gridmap_import(postgis_store(args.postgis, "ingest_run"), csv) if args.postgis else None
    done = subprocess.run([sys.executable, __file__, "--plain", str(fresh_store(args.dir, "plain.db", template)),
                           str(csv)], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    plain = json.loads(done.stdout.strip().splitlines()[-1])
    done = subprocess.run([sys.executable, __file__, "--alone", str(fresh_store(args.dir, "alone.db", template)),
                           str(csv)], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    alone = json.loads(done.stdout.strip().splitlines()[-1])
    done = subprocess.run([sys.executable, __file__, "--sqlite", str(args.dir / "gridmap.db")],
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    sqlite = json.loads(done.stdout.strip().splitlines()[-1])
    n = args.incidents
    print(machine())
    print(f"{n:,} rows, {csv.stat().st_size / 2**20:.0f} MB; gridmap said: {mine['said']}")
    markdown_table(["method", "seconds", "rows/s", "peak MB", "peak MB with its worker"],
                   [["gridmap import-incidents (CLI)", f"{mine['s']:.1f}", f"{n / mine['s']:,.0f}",
                     f"{mine['peak_mb']:.0f}", f"{mine['tree_mb']:.0f}"],
                    *([["gridmap import-incidents (CLI) into PostGIS (COPY)", f"{postgis['s']:.1f}",
                        f"{n / postgis['s']:,.0f}", f"{postgis['peak_mb']:.0f}", f"{postgis['tree_mb']:.0f}"]]
                      if postgis else []),
                    ["pandas + STRtree + sqlite3 executemany", f"{plain['s']:.1f}", f"{n / plain['s']:,.0f}",
                     f"{plain['peak_mb']:.0f}", ""]], right={1, 2, 3, 4})
    floor = alone["store_s"] + alone["commit_s"]
    print(f"\ngridmap's write alone (parsed {alone['parse_s']:.1f} s and assigned {alone['assign_s']:.1f} s "
          f"beforehand): rows {alone['store_s']:.1f} s + commit {alone['commit_s']:.1f} s = {floor:.1f} s "
          f"({n / floor:,.0f} rows/s), peak {alone['peak_mb']:.0f} MB")
    for where, said in (("memory", "in memory"), ("file", "in a WAL file")):
        part = sqlite[where]
        print(f"SQLite alone, {said} (the stored rows from tuples, as the import writes them): rows "
              f"{part['rows_s']:.1f} s + indexes {part['index_s']:.1f} s + commit {part['commit_s']:.1f} s = "
              f"{part['s']:.1f} s")


def alternate(rev: str, runs: int, workdir: Path, template: Path, csv: Path) -> None:
    """``python -m gridmap import-incidents`` of this checkout and of ``rev``, one after the other, ``runs`` times."""
    import statistics
    import tempfile
    with tempfile.TemporaryDirectory() as folder:
        other = Path(folder) / "other"
        subprocess.run(["git", "worktree", "add", "--detach", "-q", str(other), rev], cwd=ROOT, check=True)
        try:
            times: dict[str, list[float]] = {rev: [], "this checkout": []}
            for _ in range(runs):
                for name, root in ((rev, other), ("this checkout", ROOT)):
                    times[name].append(gridmap_import(fresh_store(workdir, "alternate.db", template), csv, root)["s"])
        finally:
            subprocess.run(["git", "worktree", "remove", "--force", str(other)], cwd=ROOT, check=True)
    print(machine())
    print(f"{csv.stat().st_size / 2**20:.0f} MB CSV; runs alternate, {rev} first")
    markdown_table(["code", "runs (s)", "median s"],
                   [[name, ", ".join(f"{t:.1f}" for t in ts), f"{statistics.median(ts):.1f}"]
                    for name, ts in times.items()], right={2})


if __name__ == "__main__":
    main()
