"""Benchmark: reading a million-row incident CSV as offices write it, against pandas reading it plain.

    .venv/bin/python bench/parse.py [--incidents 1000000] [--dir /tmp/gridmap-ingest]

The CSV is bench/district.py's (编号, 类别, 经度, 纬度, 上报时间, 状态), rewritten four ways:

* plain: as it is;
* pair column: the two coordinates in one quoted column 经纬度 ("114.12,30.05");
* full-width: every coordinate and time in full-width digits (１１４．１２), as a Chinese input method types them;
* ledger: a title and a blank line above the header, tab-separated, in GB18030, a trailing empty field
  on every tenth line.

Each is read by ``incidents.incident_chunks`` (every check, 50,000 rows a chunk, what the import worker
runs) and, as the baseline, by ``pandas.read_csv`` of the plain file into text columns. The bench
checks that every variant yields the plain file's coordinates and times exactly, and exits non-zero
if one does not.
"""
from __future__ import annotations

import argparse
import sys
import time
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.assign_bench import machine, markdown_table  # noqa: E402
from bench.ingest import district_and_csv  # noqa: E402

_FULL_WIDTH = str.maketrans("0123456789.-: ", "０１２３４５６７８９．－：\u3000")


def variants(plain: bytes) -> dict[str, tuple[str, bytes]]:
    """The plain file's text written the four ways, each with the file name it is read under."""
    lines = plain.decode("utf-8").splitlines()
    header, rows = lines[0].split(","), [line.split(",") for line in lines[1:]]
    lon, lat, when = header.index("经度"), header.index("纬度"), header.index("上报时间")
    pair = [",".join(header[:lon] + ["经纬度"] + header[lat + 1:])] + [
        ",".join(r[:lon] + [f'"{r[lon]},{r[lat]}"'] + r[lat + 1:]) for r in rows]
    wide = [lines[0]] + [",".join(v.translate(_FULL_WIDTH) if i in (lon, lat, when) else v for i, v in enumerate(r))
                         for r in rows]
    ledger = ["某区城运中心 事件台账", "", "\t".join(header)] + [
        "\t".join(r) + ("\t" if i % 10 == 0 else "") for i, r in enumerate(rows)]
    return {"plain": ("incidents.csv", plain),
            "pair column": ("incidents.csv", "\n".join(pair).encode() + b"\n"),
            "full-width": ("incidents.csv", "\n".join(wide).encode() + b"\n"),
            "ledger (title, tabs, GB18030)": ("台账.txt", "\n".join(ledger).encode("gb18030") + b"\n")}


def read(data: bytes, filename: str) -> tuple[float, np.ndarray, np.ndarray, np.ndarray, int]:
    """Seconds to read the file as the import does, its coordinates and times, and its row errors."""
    from gridmap.incidents import FileOptions, file_encodings, incident_chunks
    start = time.perf_counter()
    for encoding in file_encodings(filename):
        try:
            chunks = list(incident_chunks(data, filename=filename, options=FileOptions(),
                                          tz=ZoneInfo("Asia/Shanghai"), now=datetime(2026, 11, 30), encoding=encoding))
            break
        except UnicodeDecodeError:
            continue
    seconds = time.perf_counter() - start
    lon, lat, when = (np.concatenate([getattr(c.incidents, name) for c in chunks])
                      for name in ("lon", "lat", "reported_at"))
    return seconds, lon, lat, when, sum(len(c.errors) for c in chunks)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--incidents", type=int, default=1_000_000)
    parser.add_argument("--dir", type=Path, default=Path("/tmp/gridmap-ingest"))
    args = parser.parse_args()
    import pandas as pd
    _, csv = district_and_csv(args.dir, args.incidents)
    plain = csv.read_bytes()
    start = time.perf_counter()
    pd.read_csv(csv, dtype=str)
    baseline = time.perf_counter() - start
    rows, wrong = [["pandas.read_csv, plain, text columns (baseline)", f"{baseline:.2f}", "", ""]], []
    reference = None
    for name, (filename, data) in variants(plain).items():
        seconds, lon, lat, when, errors = read(data, filename)
        reference = reference or (lon, lat, when)
        same = all(np.array_equal(a, b) for a, b in zip((lon, lat, when), reference)) and errors == 0
        wrong += [] if same else [name]
        rows.append([f"gridmap, {name}", f"{seconds:.2f}", f"{seconds / baseline:.1f}×", "yes" if same else "NO"])
    print(machine())
    print(f"{args.incidents:,} rows; every variant read as the plain file: coordinates, times, no row errors")
    markdown_table(["reading", "seconds", "of the baseline", "same as plain"], rows, right={1, 2})
    if wrong:
        sys.exit(f"read differently from the plain file: {', '.join(wrong)}")


if __name__ == "__main__":
    main()
