"""Boundary file formats: read whatever a planner received, write a layer back out.

:func:`read_source` turns GeoJSON, a zipped Shapefile, a GeoPackage or KML into plain
columns and shapely geometries *exactly as in the file* (Z, ring orientation and invalid
rings kept), so that checking and repairing stay in :mod:`gridmap.boundaries`.  It reads
through pyogrio's raw API and decodes the WKB itself, so one feature that GEOS cannot
build is reported by index instead of failing the whole file.  :func:`export_layer`
writes a :class:`~gridmap.boundaries.Layer` as GeoJSON, GeoPackage or a zipped Shapefile.

Anyone who can reach the upload form can send a file, so reading is bounded: a zip is checked
before anything is unpacked and never unpacked past the sizes it declares; GDAL may open only
the format the upload claims to be (left to guess, it follows a VRT or a GDAL pipeline to files
on the server); a GeoJSON's structure and a GeoPackage's schema are checked before GDAL sees
them; and features, columns and vertices are counted against the ``MAX_*`` caps before any
geometry work.  Every refusal is an :class:`~gridmap.errors.InvalidInput` saying what was
expected, what arrived and where.
"""
from __future__ import annotations

import codecs
import io
import json
import logging
import lzma
import re
import sqlite3
import stat
import struct
import tempfile
import time
import warnings
import zipfile
import zlib
from contextlib import closing, contextmanager
from dataclasses import dataclass, field
from itertools import chain
from pathlib import Path, PurePosixPath
from typing import Any, Iterator
from xml.parsers import expat

import geopandas as gpd
import numpy as np
import pandas as pd
import pyogrio
import shapely
from pyogrio.errors import DataLayerError, DataSourceError
from pyproj import CRS
from pyproj.exceptions import CRSError
from shapely.errors import GEOSException

from .errors import N_, InvalidInput, Message, message
from .layer import Layer, nul_path

log = logging.getLogger(__name__)

#: What one upload may make gridmap unpack and hold.  A district's boundaries (10,000 micro-grids of
#: a few hundred vertices each) are tens of MB, 10,000 features and a few million vertices.
MAX_ZIP_MEMBERS = 1_000               # files in a zip: 5 to 8 per shapefile, plus a readme or two
MAX_UNZIPPED_BYTES = 512 * 2**20      # what a zip's members declare, all together
MAX_RATIO = 1_000                     # unpacked / packed size of a member over 1 MiB (a blank DBF packs ~250:1)
MAX_FEATURES = 100_000
MAX_FIELDS = 500                      # attribute columns (a DBF holds 255)
MAX_CELLS = 20_000_000                # features × columns: 3 s and 300 MB to read
MAX_TOTAL_VERTICES = 20_000_000
MAX_LAYERS = 1_000                    # GeoPackage tables, KML folders
#: Text encodings the ``encoding`` option takes: Python's name for each → the name GDAL (iconv) knows.
ENCODINGS = {"utf-8": "UTF-8", "gbk": "GBK", "gb18030": "GB18030", "gb2312": "GB2312", "big5": "BIG5",
             "big5hkscs": "BIG5-HKSCS", "iso8859-1": "ISO-8859-1", "cp1252": "CP1252", "shift_jis": "SHIFT_JIS",
             "euc_jp": "EUC-JP", "euc_kr": "EUC-KR"}
_RATIO_FROM = 2**20                   # a smaller member cannot hurt, whatever its ratio
_DIRECTORY_BYTES = 1_024              # a zip's table of contents, per member: 46 bytes plus name and extras
_CHUNK = 2**20
_PRJ_BYTES = 64 * 2**10               # a .prj's WKT: a few hundred bytes
_PROBE_BYTES = 200 * 2**20            # how much KML may be parsed again to skip empty folders (once per folder)
_SQLITE_SECONDS = 10.0                # to read a GeoPackage's schema
_LISTED = 20                          # problems listed in one refusal

_SUFFIXES = {".geojson": "geojson", ".json": "geojson", ".zip": "shapefile", ".gpkg": "gpkg", ".kml": "kml"}
_MAGIC = ((b"PK\x03\x04", "shapefile"), (b"SQLite format 3\x00", "gpkg"), (b"{", "geojson"))
_LABELS = {"geojson": "GeoJSON", "shapefile": "Shapefile", "gpkg": "GeoPackage", "kml": "KML"}
# The GDAL driver each kind must be read with, and the prefix that makes GDAL use no other.
_DRIVERS = {"geojson": ("GeoJSON",), "shapefile": ("ESRI Shapefile",), "gpkg": ("GPKG",), "kml": ("LIBKML", "KML")}
_PREFIXES = {"geojson": "GeoJSON:", "gpkg": "GPKG:"}
# Fields LIBKML adds to every KML layer; dropped when no placemark sets them (values as LIBKML reports "unset").
_KML_UNSET: dict[str, tuple[Any, ...]] = {"id": (), "timestamp": (), "begin": (), "end": (), "altitudeMode": (),
                                          "tessellate": (-1,), "extrude": (0,), "visibility": (-1,), "drawOrder": (),
                                          "icon": ()}
_DBF_NAME_BYTES, _DBF_TEXT_BYTES = 10, 254
_PARTS = (".shp", ".shx", ".dbf", ".prj", ".cpg")       # what is unpacked of a shapefile; nothing else is
_SHAPE_MAGIC = b"\x00\x00\x27\x0a"                       # a .shp or .shx starts with the file code 9994
_ZIP_METHODS = {zipfile.ZIP_STORED: "stored", zipfile.ZIP_DEFLATED: "deflate", zipfile.ZIP_BZIP2: "bzip2",
                zipfile.ZIP_LZMA: "lzma"}


@dataclass
class SourceFile:
    """One layer of a boundary file, as the file has it: nothing checked, repaired or reprojected.
    ``undecodable`` says, per feature index, why its geometry is None although the file has one."""

    properties: pd.DataFrame
    geometry: np.ndarray
    undecodable: dict[int, str | Message]
    crs: CRS | None
    driver: str
    layer: str | None
    warnings: list[Message] = field(default_factory=list)


def read_source(data: bytes, *, filename: str, layer: str | None = None, encoding: str | None = None) -> SourceFile:
    """Read one layer of a GeoJSON, zipped Shapefile, GeoPackage or KML upload.

    ``layer`` chooses among several shapefiles in a zip (by stem) or several GeoPackage /
    KML layers (a GeoJSON has one; it ignores ``layer``); ``encoding`` overrides how text is
    decoded (a shapefile without ``.cpg``, a GBK GeoJSON).  Refuses, with a message a planner
    can act on, anything it cannot read as a whole or that exceeds the ``MAX_*`` caps; a
    feature whose geometry cannot be built is kept with geometry None and its reason in
    ``undecodable``.
    """
    if not data.strip():
        raise InvalidInput(message(N_("{file} is empty; expected GeoJSON (.geojson, .json), a zipped Shapefile (.zip "
                                      "holding .shp, .shx and .dbf), GeoPackage (.gpkg) or KML (.kml)"), file=filename))
    kind = _detect(data, filename)
    codec = _encoding(encoding)
    try:
        return _read_source(data, kind=kind, filename=filename, layer=layer, encoding=codec)
    except (MemoryError, RecursionError, OverflowError) as exc:      # the caps should keep these away
        log.warning("reading %s exhausted %s", filename, type(exc).__name__)
        raise InvalidInput(message(N_("{file} is too large or too deeply nested to read; split it into smaller "
                                      "files"), file=filename)) from None


def _read_source(data: bytes, *, kind: str, filename: str, layer: str | None, encoding: str | None) -> SourceFile:
    outline = _outline_geojson(data, filename=filename, encoding=encoding) if kind == "geojson" else None
    with tempfile.TemporaryDirectory(prefix="gridmap-") as tmp:
        path, chosen, has_cpg = _stage(data, kind=kind, filename=filename, tmp=Path(tmp), layer=layer)
        notes = _without_unreadable_prj(path, filename) if kind == "shapefile" else []
        meta, wkb, fields, driver = _read(path, kind=kind, filename=filename, encoding=encoding, outline=outline,
                                          layer=chosen if kind in ("gpkg", "kml") else None)
    geometry, undecodable = _decode(wkb, outline, filename=filename)
    _check_vertices(geometry, filename)
    properties = _properties(meta, fields, len(geometry))
    if kind == "kml":
        properties = _without_kml_defaults(properties)
    crs, found = _crs(meta["crs"], filename)
    found += notes + ([] if has_cpg or encoding else _encoding_warning(properties, filename, meta["encoding"]))
    log.info("read %d features (%d undecodable) from %s with %s", len(geometry), len(undecodable), filename, driver)
    return SourceFile(properties=properties, geometry=geometry, undecodable=undecodable, crs=crs,
                      driver=driver, layer=chosen, warnings=found)


def _detect(data: bytes, filename: str) -> str:
    """The format named by the extension, else the one the first bytes show."""
    head = data[:1024].lstrip(b"\xef\xbb\xbf \t\r\n")
    kind = (_SUFFIXES.get(PurePosixPath(filename.replace("\\", "/")).suffix.lower())
            or next((k for magic, k in _MAGIC if head.startswith(magic)), None)
            or ("kml" if b"<kml" in head else None))
    if kind is None:
        raise InvalidInput(message(N_("{file} is not a boundary file gridmap can read (it starts with {start}); "
                                      "expected GeoJSON (.geojson, .json), a zipped Shapefile (.zip holding .shp, "
                                      ".shx and .dbf), GeoPackage (.gpkg) or KML (.kml)"),
                                   file=filename, start=ascii(data[:8])))
    return kind


def _encoding(encoding: str | None) -> str | None:
    """The ``encoding`` option as GDAL names it; refused unless it is one of :data:`ENCODINGS`."""
    if encoding is None or not encoding.strip():
        return None
    try:
        name = codecs.lookup(encoding.strip()).name
    except (LookupError, ValueError):       # ValueError: a name with a NUL in it
        name = None
    if name not in ENCODINGS:
        raise InvalidInput(message(N_("unknown text encoding {encoding!r} in the {option} option; expected one of "
                                      "{expected}"), encoding=_shown(encoding), option="encoding",
                                   expected=", ".join(ENCODINGS)))
    return ENCODINGS[name]


def _shown(text: str, limit: int = 80) -> str:
    """Text from an upload or a request as a message quotes it: at most ``limit`` characters."""
    return text if len(text) <= limit else text[:limit] + "…"


def _safe_stem(name: str) -> str:
    """A file-system-safe stem (GDAL names a GeoJSON or KML layer after its file)."""
    stem = PurePosixPath(name.replace("\\", "/")).stem
    return re.sub(r"[^\w-]+", "_", stem)[:80].strip("_") or "upload"


def _stage(data: bytes, *, kind: str, filename: str, tmp: Path, layer: str | None) -> tuple[Path, str | None, bool]:
    """The upload as a file GDAL can open, the layer chosen in it, and whether text encoding is declared."""
    if kind == "shapefile":
        path, chosen = _unzip_shapefile(data, filename=filename, tmp=tmp, layer=layer)
        return path, chosen, path.with_suffix(".cpg").exists()
    if kind == "kml":
        _check_kml(data, filename)
    path = tmp / f"{_safe_stem(filename)}.{kind}"
    path.write_bytes(data)
    if kind == "gpkg":
        _check_geopackage(path, filename)
    if kind == "geojson":
        return path, None, True
    chosen = _choose_layer(path, kind=kind, filename=filename, layer=layer)
    if kind == "gpkg":
        _check_geopackage_text(path, filename, chosen)
    return path, chosen, True


def _refusal(summary: Message, problems: list[Message]) -> InvalidInput:
    """A refusal listing the first :data:`_LISTED` of ``problems`` (the summary gives their count)."""
    return InvalidInput(summary, problems[:_LISTED])


# --- zipped Shapefile ---------------------------------------------------------------------------

def _unzip_shapefile(data: bytes, *, filename: str, tmp: Path, layer: str | None) -> tuple[Path, str]:
    """Extract the chosen shapefile's parts (sub-folders allowed) as ``source.*``; return it and its layer name.
    Nothing is unpacked before every member has passed :func:`_check_members`."""
    with _open_zip(data, filename) as archive:
        _check_members(archive.infolist(), filename)
        members = {_member_name(info): info for info in archive.infolist() if _is_data_file(info)}
        layers = _shapefile_layers([name[:-4] for name in members if name.lower().endswith(".shp")])
        if not layers:
            raise InvalidInput(message(N_("{file} holds no .shp file; expected a zipped Shapefile (.shp, .shx and "
                                          ".dbf, optionally .prj and .cpg). The zip holds: {contents}"),
                                       file=filename, contents=_listing(list(members))))
        chosen = _pick(list(layers), filename=filename, layer=layer)
        parts = {"." + ext.lower(): (name, info) for name, (stem, _, ext), info in
                 ((name, name.rpartition("."), info) for name, info in members.items())
                 if stem.lower() == layers[chosen].lower()}
        missing = [ext for ext in (".shx", ".dbf") if ext not in parts]
        if missing:
            raise InvalidInput(message(N_("{file}: the shapefile {layer} has no {missing} file; a shapefile needs "
                                          ".shp, .shx and .dbf side by side in the zip"),
                                       file=filename, layer=_shown(chosen), missing=", ".join(missing)))
        for ext in _PARTS:
            if ext in parts:
                _extract(archive, parts[ext][1], tmp / f"source{ext}", filename=filename, member=parts[ext][0])
    for ext in (".shp", ".shx"):
        with (tmp / f"source{ext}").open("rb") as part:
            if part.read(4) != _SHAPE_MAGIC:
                raise InvalidInput(message(N_("{file}: {member} is not a shapefile part (a {ext} file starts with the "
                                              "file code 9994); expected the files QGIS or ArcGIS writes"),
                                           file=filename, member=parts[ext][0], ext=ext))
    return tmp / "source.shp", chosen


def _without_unreadable_prj(shp: Path, filename: str) -> list[Message]:
    """Set aside a .prj that is not short UTF-8 text (pyogrio fails on a CRS it cannot decode): the
    layer is read without a CRS, which the ``crs`` option can give."""
    prj = shp.with_suffix(".prj")
    if not prj.exists():
        return []
    with prj.open("rb") as part:
        raw = part.read(_PRJ_BYTES + 1)
    try:
        if len(raw) <= _PRJ_BYTES and raw.decode("utf-8"):
            return []
    except UnicodeDecodeError:
        pass
    prj.unlink()
    return [message(N_("the .prj in {file} is not a coordinate reference system gridmap can read (expected at most "
                       "{limit} bytes of UTF-8 text) and was left out; give the CRS with the {option} option"),
                    file=filename, limit=_PRJ_BYTES, option="crs")]


def _listing(names: list[str], most: int = 20) -> str:
    return ", ".join(_shown(n) for n in names[:most]) + (f", … ({len(names)} in all)" if len(names) > most else "") \
        or "-"


def _open_zip(data: bytes, filename: str) -> zipfile.ZipFile:
    _check_directory(data, filename)
    try:
        return zipfile.ZipFile(io.BytesIO(data))
    except (zipfile.BadZipFile, ValueError, OSError, EOFError, NotImplementedError, struct.error) as exc:
        raise InvalidInput(message(N_("could not read {file} as a zip archive: {reason}"),
                                   file=filename, reason=str(exc) or type(exc).__name__)) from None


_END = struct.Struct("<4s4H2LH")              # end of central directory record
_END64 = struct.Struct("<4sQ2H2L4Q")          # its Zip64 form, just before the Zip64 locator
_LOCATOR64 = struct.Struct("<4sLQL")


def _check_directory(data: bytes, filename: str) -> None:
    """Refuse a zip whose table of contents lists more members than :data:`MAX_ZIP_MEMBERS` before
    Python's zipfile builds an object for each (3 million empty members fit in 256 MB)."""
    at = data.rfind(b"PK\x05\x06", max(0, len(data) - _END.size - 0xFFFF))
    if at < 0 or len(data) - at < _END.size:
        return                                 # not a zip: zipfile says so
    entries, size = _END.unpack_from(data, at)[4:6]
    locator = at - _LOCATOR64.size
    if locator >= _END64.size and data.startswith(b"PK\x06\x07", locator) \
            and data.startswith(b"PK\x06\x06", locator - _END64.size):
        entries, size = _END64.unpack_from(data, locator - _END64.size)[7:9]
    if entries > MAX_ZIP_MEMBERS or size > MAX_ZIP_MEMBERS * _DIRECTORY_BYTES:
        raise InvalidInput(message(N_("{file} lists {count} files ({size} bytes of contents list); a zipped "
                                      "Shapefile is expected to hold at most {limit}. Split it into several zips"),
                                   file=filename, count=entries, size=size, limit=MAX_ZIP_MEMBERS))


def _check_members(infos: list[zipfile.ZipInfo], filename: str) -> None:
    """Refuse, before unpacking anything, a zip that could write outside its folder, is not made of
    plain files, or would unpack to more than :data:`MAX_UNZIPPED_BYTES`; every problem is listed."""
    if len(infos) > MAX_ZIP_MEMBERS:          # more than its end record said
        raise InvalidInput(message(N_("{file} holds {count} files; a zipped Shapefile is expected to hold at most "
                                      "{limit}. Split it into several zips"),
                                   file=filename, count=len(infos), limit=MAX_ZIP_MEMBERS))
    problems = [problem for info in infos if (problem := _member_problem(info)) is not None]
    total = sum(info.file_size for info in infos)
    if total > MAX_UNZIPPED_BYTES:
        problems.append(message(N_("its members declare {size} MB unpacked, more than the {limit} MB accepted; a "
                                   "district's boundaries take tens of MB"),
                                size=_megabytes(total), limit=_megabytes(MAX_UNZIPPED_BYTES)))
    if problems:
        raise _refusal(message(N_("{file} was not unpacked: {count} problem(s) with the zip; expected a zipped "
                                  "Shapefile as QGIS, ArcGIS or the operating system writes it"),
                               file=filename, count=len(problems)), problems)


def _member_problem(info: zipfile.ZipInfo) -> Message | None:
    name = _shown(info.filename)
    parts = re.split(r"[\\/]", info.filename)
    if info.filename.startswith(("/", "\\")) or re.match(r"[A-Za-z]:", info.filename) or ".." in parts:
        return message(N_("member {member!r} has an absolute path or a '..' in it; expected names inside the zip"),
                       member=name)
    if stat.S_ISLNK(info.external_attr >> 16):
        return message(N_("member {member!r} is a symbolic link; expected plain files"), member=name)
    if info.flag_bits & 0x1:
        return message(N_("member {member!r} is encrypted; expected a zip without a password"), member=name)
    if info.compress_type not in _ZIP_METHODS:
        return message(N_("member {member!r} is packed with method {method}; expected one of {expected}"),
                       member=name, method=info.compress_type, expected=", ".join(_ZIP_METHODS.values()))
    if info.file_size > _RATIO_FROM and info.file_size > MAX_RATIO * max(info.compress_size, 1):
        return message(N_("member {member!r} declares {size} MB unpacked from {packed} bytes, a ratio over "
                          "{limit}:1; boundary files do not pack that tightly"), member=name,
                       size=_megabytes(info.file_size), packed=info.compress_size, limit=MAX_RATIO)
    return None


def _megabytes(size: int) -> float:
    return round(size / 2**20, 1)


def _extract(archive: zipfile.ZipFile, info: zipfile.ZipInfo, target: Path, *, filename: str, member: str) -> None:
    """Copy one member to ``target`` a chunk at a time, never past the size it declares (checked
    against the caps): a member that holds more than its header says is refused, not unpacked."""
    left = info.file_size
    try:
        with archive.open(info) as source, target.open("wb") as out:
            while chunk := source.read(min(_CHUNK, left + 1)):
                left -= len(chunk)
                if left < 0:
                    raise InvalidInput(message(N_("{file}: the zip member {member!r} holds more than the {size} bytes "
                                                  "it declares; the zip is damaged or forged"),
                                               file=filename, member=_shown(member), size=info.file_size))
                out.write(chunk)
    except OSError as exc:
        if exc.errno is not None:              # the server's disk, not the upload
            raise
        raise _damaged(filename, member, exc) from None
    except (zipfile.BadZipFile, EOFError, ValueError, RuntimeError, NotImplementedError, struct.error, zlib.error,
            lzma.LZMAError) as exc:
        raise _damaged(filename, member, exc) from None


def _damaged(filename: str, member: str, exc: Exception) -> InvalidInput:
    return InvalidInput(message(N_("{file}: the zip member {member!r} could not be unpacked: {reason}; the zip is "
                                   "damaged or forged"), file=filename, member=_shown(member),
                                reason=str(exc) or type(exc).__name__))


def _member_name(info: zipfile.ZipInfo) -> str:
    """The member's name; zips made on Chinese Windows store it in GBK without saying so."""
    if info.flag_bits & 0x800:
        return info.filename
    raw = info.filename.encode("cp437")
    for codec in ("utf-8", "gbk"):
        try:
            return raw.decode(codec)
        except UnicodeDecodeError:
            continue
    return info.filename


def _is_data_file(info: zipfile.ZipInfo) -> bool:
    path = PurePosixPath(info.filename)
    return not info.is_dir() and "__MACOSX" not in path.parts and not path.name.startswith("._")


def _shapefile_layers(stems: list[str]) -> dict[str, str]:
    """Layer name → stem path: the file's stem, or its whole path where two folders share a stem."""
    names = [PurePosixPath(s).name for s in stems]
    return {(n if names.count(n) == 1 else s): s for n, s in zip(names, stems)}


# --- GeoJSON --------------------------------------------------------------------------------------

_WHITESPACE = re.compile(r"[ \t\n\r]*")
_DECODER = json.JSONDecoder()
_NUMBERS = {int, float}
# Arrays around a position in each geometry type's coordinates (lower case: GDAL reads "polygon" too).
_NESTING = {"point": 0, "multipoint": 1, "linestring": 1, "multilinestring": 2, "polygon": 2, "multipolygon": 3}
_VALUE_STARTS = ((r"\[", "array"), ('"', "string"), (r"(true|false)\b", "boolean"), (r"null\b", "null"),
                 (r"-?[0-9]", "number"))


@dataclass
class _Outline:
    """What :func:`_outline_geojson` found: the number of features and, per feature, why GDAL would
    read its geometry as none or without a part of it."""

    count: int
    reasons: dict[int, Message]
    data: bytes
    encoding: str


def _outline_geojson(data: bytes, *, filename: str, encoding: str | None) -> _Outline:
    """Check a GeoJSON's structure one feature at a time (never more than one decoded at once).

    GDAL skips a feature that is not an object (shifting every later index), silently drops a
    ring or a polygon whose coordinates are not numbers, and fails a whole file on one value
    nested too deeply or one number too large, saying only "Failed to read GeoJSON data".
    """
    codec = encoding or "UTF-8"
    text = _geojson_text(data, filename=filename, encoding=codec)
    scan = _GeoJsonScan(text, filename)
    try:
        count, reasons = scan.run()
    except json.JSONDecodeError as exc:
        raise InvalidInput(message(N_("could not read {file} as {format}: {reason}"),
                                   file=filename, format="GeoJSON", reason=str(exc))) from None
    return _Outline(count=count, reasons=reasons, data=data, encoding=codec)


def _geojson_text(data: bytes, *, filename: str, encoding: str) -> str:
    try:
        return data.decode(encoding).lstrip("\ufeff")
    except UnicodeDecodeError as exc:
        raise _not_encoded(filename, exc.encoding) from None


def _not_encoded(filename: str, encoding: str) -> InvalidInput:
    return InvalidInput(message(N_("the text in {file} is not valid {encoding}; give the file's encoding with the "
                                   "{option} option, for example GBK"), file=filename, encoding=encoding,
                                option="encoding"))


class _TooLarge(ValueError):
    """A number beyond what a double holds (GDAL fails the whole file on one)."""


def _finite(text: str) -> float:
    value = float(text)
    if value in (float("inf"), float("-inf")):
        raise _TooLarge(text)
    return value


class _GeoJsonScan:
    """A GeoJSON text read member by member; the ``features`` array one feature at a time."""

    def __init__(self, text: str, filename: str, decoder: json.JSONDecoder = _DECODER) -> None:
        self.text, self.filename, self.decoder = text, filename, decoder
        self.pos, self.count = 0, 0
        self.nul = "\\u0000" in text              # a NUL character escaped somewhere (GDAL cuts text at one)
        self.problems: list[Message] = []       # the file's structure: it is refused
        self.cut: list[Message] = []            # text holding a NUL: it is refused too
        self.reasons: dict[int, Message] = {}   # a feature's geometry: the feature is left out

    def run(self) -> tuple[int, dict[int, Message]]:
        self.pos = self._skip(0)
        if not self.text.startswith("{", self.pos):
            got = next((kind for start, kind in _VALUE_STARTS if re.match(start, self.text[self.pos:self.pos + 8])),
                       None)
            if got is None:
                raise json.JSONDecodeError("Expecting value", self.text, self.pos)
            raise InvalidInput(message(N_("{file}: expected a GeoJSON object ({{\"type\": \"FeatureCollection\", "
                                          "…}}), got a JSON {got}"), file=self.filename, got=got))
        members = self._members()
        if self._skip(self.pos) != len(self.text):
            raise json.JSONDecodeError("Extra data", self.text, self._skip(self.pos))
        self._top_level(members)
        if self.problems:
            raise _refusal(message(N_("{file} is not GeoJSON gridmap can read: {count} problem(s); expected a "
                                      "FeatureCollection of Feature objects"),
                                   file=self.filename, count=len(self.problems)), self.problems)
        if self.cut:
            raise _refusal(message(N_("{file} has {count} property value(s) holding a NUL character; expected text "
                                      "without one"), file=self.filename, count=len(self.cut)), self.cut)
        return self.count, self.reasons

    def _members(self) -> dict[str, Any]:
        members: dict[str, Any] = {}
        self.pos = self._skip(self.pos + 1)
        if self.text.startswith("}", self.pos):
            self.pos += 1
            return members
        while True:
            key = self._key()
            if key == "features" and self.text.startswith("[", self.pos):
                self._features()
                members[key] = []
            else:
                members[key] = self._value(None)
            if not self._more("}"):
                return members

    def _top_level(self, members: dict[str, Any]) -> None:
        kind = members.get("type")
        if kind == "FeatureCollection":
            if not isinstance(members.get("features"), list):
                raise InvalidInput(message(N_("{file}: the FeatureCollection's features member is {got}; expected an "
                                              "array of Feature objects"), file=self.filename,
                                           got=_json_shown(members.get("features"))))
        elif kind == "Feature":
            self._alone()
            self._feature(members, 0)
        elif isinstance(kind, str) and (kind.lower() in _NESTING or kind == "GeometryCollection"):
            self._alone()
            self._geometry(members, 0)
        else:
            raise InvalidInput(message(N_("{file}: expected a GeoJSON FeatureCollection, Feature or geometry, got "
                                          "type {type}"), file=self.filename, type=_json_shown(kind)))

    def _alone(self) -> None:
        """A lone Feature or geometry is the file's one feature: what a ``features`` member of it
        held was scanned (its position is not known in advance) but is not read (GDAL ignores it)."""
        self.count, self.problems, self.reasons = 1, [], {}

    def _features(self) -> None:
        self.pos = self._skip(self.pos + 1)
        if self.text.startswith("]", self.pos):
            self.pos += 1
            return
        while True:
            if self.count >= MAX_FEATURES:
                raise _too_many_features(self.filename, None)
            feature = self._value(self.count)
            self._feature(feature, self.count)
            self.count += 1
            if not self._more("]"):
                return

    def _feature(self, feature: Any, index: int) -> None:
        if not isinstance(feature, dict):
            self.problems.append(message(N_("feature {index} is {got}; expected a Feature object"),
                                         index=index, got=_json_shown(feature)))
            return
        if feature.get("type") != "Feature":
            self.problems.append(message(N_("feature {index} has type {type}; expected \"Feature\""),
                                         index=index, type=_json_shown(feature.get("type"))))
        if feature.get("properties") is not None and not isinstance(feature["properties"], dict):
            self.problems.append(message(N_("feature {index}: its properties are {got}; expected an object or null"),
                                         index=index, got=_json_shown(feature["properties"])))
        elif self.nul and feature.get("properties"):
            for name, value in feature["properties"].items():
                if nul_path({name: value}) is not None:
                    self.cut.append(message(
                        N_("feature {index}: the property {name} holds a NUL character (\\u0000), which would cut its "
                           "text short; remove it from the file (it is invisible in most editors)"),
                        index=index, name=_json_shown(name)))
        if "geometry" not in feature:
            self.reasons[index] = message(N_("the feature has no geometry member; expected a geometry object or null"))
        elif feature["geometry"] is not None:
            self._geometry(feature["geometry"], index)

    def _geometry(self, geometry: Any, index: int) -> None:
        found = _geometry_problem(geometry)
        if found is not None:
            self.reasons[index] = found

    def _key(self) -> str:
        if not self.text.startswith('"', self.pos):
            raise json.JSONDecodeError("Expecting property name enclosed in double quotes", self.text, self.pos)
        key, self.pos = self.decoder.raw_decode(self.text, self.pos)
        self.pos = self._skip(self.pos)
        if not self.text.startswith(":", self.pos):
            raise json.JSONDecodeError("Expecting ':' delimiter", self.text, self.pos)
        self.pos = self._skip(self.pos + 1)
        return key

    def _value(self, index: int | None) -> Any:
        where = message(N_("feature {index}"), index=index) if index is not None else message(N_("the file"))
        try:
            value, self.pos = self.decoder.raw_decode(self.text, self.pos)
        except RecursionError:
            raise InvalidInput(message(N_("{file}: {where} is nested too deeply (arrays and objects hundreds of "
                                          "levels deep); expected GeoJSON"), file=self.filename, where=where)) from None
        except json.JSONDecodeError:
            raise
        except _TooLarge as exc:
            raise InvalidInput(message(N_("{file}: {where} has the number {value}, too large for a coordinate or a "
                                          "value"), file=self.filename, where=where, value=_shown(str(exc), 40))) \
                from None
        except ValueError as exc:               # an integer of more than 4,300 digits
            raise InvalidInput(message(N_("{file}: {where} has a number gridmap cannot read ({reason})"),
                                       file=self.filename, where=where, reason=str(exc))) from None
        return value

    def _more(self, close: str) -> bool:
        """Past the ``,`` before another element (True) or past ``close`` (False)."""
        self.pos = self._skip(self.pos)
        if self.text.startswith(",", self.pos):
            self.pos = self._skip(self.pos + 1)
            return True
        if self.text.startswith(close, self.pos):
            self.pos += 1
            return False
        raise json.JSONDecodeError("Expecting ',' delimiter", self.text, self.pos)

    def _skip(self, pos: int) -> int:
        found = _WHITESPACE.match(self.text, pos)
        return found.end() if found else pos


def _geometry_problem(geometry: Any) -> Message | None:
    """Why GDAL would read a GeoJSON geometry as none or without a part of it; None when it reads it whole."""
    stack = [(geometry, "geometry")]
    while stack:
        geom, path = stack.pop()
        if not isinstance(geom, dict):
            return message(N_("{path} is {got}; expected a geometry object such as {{\"type\": \"Polygon\", "
                              "\"coordinates\": […]}}"), path=path, got=_json_shown(geom))
        kind = geom.get("type")
        if kind == "GeometryCollection":
            members = geom.get("geometries")
            if not isinstance(members, list):
                return message(N_("{path}: the GeometryCollection's geometries member is {got}; expected an array"),
                               path=path, got=_json_shown(members))
            stack.extend((g, f"{path}.geometries[{i}]") for i, g in reversed(list(enumerate(members))))
        elif isinstance(kind, str) and kind.lower() in _NESTING:
            if "coordinates" not in geom:
                return message(N_("{path}: the {type} has no coordinates member"), path=path, type=kind)
            found = _coordinates_problem(geom["coordinates"], _NESTING[kind.lower()])
            if found is not None:
                return message(N_("{path}: the {type}'s coordinates{position} are {got}; expected positions of "
                                  "numbers, as in [116.39, 39.9]"), path=path, type=kind, position=found[0],
                               got=_json_shown(found[1]))
        else:
            return message(N_("{path} has type {type}; expected Polygon or MultiPolygon"),
                           path=path, type=_json_shown(kind))
    return None


def _coordinates_problem(coordinates: Any, arrays: int) -> tuple[str, Any] | None:
    """Where ``coordinates`` (positions inside ``arrays`` levels of arrays) hold anything but arrays
    and positions of two or more numbers: the path to it ("[0][3]") and its value."""
    stack: list[tuple[Any, int, str]] = [(coordinates, arrays, "")]
    while stack:
        value, level, path = stack.pop()
        if level == 0:
            if not (type(value) is list and len(value) >= 2 and all(type(v) in _NUMBERS for v in value)):
                return path, value
        elif type(value) is not list:
            return path, value
        elif not (level == 1 and _positions(value)):
            stack.extend((v, level - 1, f"{path}[{i}]") for i, v in reversed(list(enumerate(value))))
    return None


def _positions(values: list[Any]) -> bool:
    """Whether every value is a position of numbers (the common case, checked at C speed)."""
    return (set(map(type, values)) <= {list} and min(map(len, values), default=2) >= 2
            and set(map(type, chain.from_iterable(values))) <= _NUMBERS)


def _json_shown(value: Any) -> str:
    """A JSON value as a message quotes it (``"0"``, ``true``, ``[1]``), at most 40 characters."""
    try:
        text = json.dumps(value, ensure_ascii=False)
    except (TypeError, ValueError, RecursionError):
        text = type(value).__name__
    return _shown(text, 40)


def _gdal_failure(outline: _Outline, filename: str) -> list[Message]:
    """Why GDAL may have failed a GeoJSON whose structure :func:`_outline_geojson` passed: a geometry
    it cannot read (GDAL fails the whole file on some, reads others as none) or a number too large."""
    if outline.reasons:
        return [message(N_("feature {index}: {reason}"), index=index, reason=reason)
                for index, reason in list(outline.reasons.items())[:_LISTED]]
    strict = json.JSONDecoder(parse_float=_finite, parse_int=_finite, parse_constant=float)
    try:
        _GeoJsonScan(outline.data.decode(outline.encoding).lstrip("\ufeff"), filename, strict).run()
    except InvalidInput as exc:
        return [exc.summary]
    return []


# --- KML and GeoPackage ---------------------------------------------------------------------------

class _Root(Exception):
    """The first element of an XML document was seen: nothing after it needs checking here."""


def _check_kml(data: bytes, filename: str) -> None:
    """Refuse what is not plain KML before GDAL parses it: a document type (entities can expand a small
    file into gigabytes or name files on the server), a root other than ``<kml>``, and GDAL's own
    formats (a VRT or a GDAL pipeline would make GDAL open files on the server)."""
    for marker in (b"OGRVRTDataSource", b"gdal_streamed_alg"):
        if marker in data:
            raise InvalidInput(message(N_("{file} holds {marker}, which belongs to GDAL's own formats, not to KML; "
                                          "expected a KML document"), file=filename, marker=marker.decode()))
    parser = expat.ParserCreate()
    roots: list[str] = []

    def doctype(name: str, *_: Any) -> None:
        raise InvalidInput(message(N_("{file} declares a document type (<!DOCTYPE {name} …>); KML has none, and the "
                                      "entities one declares can make a small file expand to gigabytes"),
                                   file=filename, name=_shown(name, 40)))

    def start(name: str, _attributes: Any) -> None:
        roots.append(name)
        raise _Root

    parser.StartDoctypeDeclHandler = doctype
    parser.StartElementHandler = start
    try:
        for offset in range(0, len(data), _CHUNK):
            parser.Parse(data[offset:offset + _CHUNK], False)
        parser.Parse(b"", True)
    except _Root:
        pass
    except expat.ExpatError as exc:
        raise InvalidInput(message(N_("could not read {file} as {format}: {reason}"), file=filename, format="KML",
                                   reason=str(exc))) from None
    if not roots or roots[0].rpartition(":")[2] != "kml":
        raise InvalidInput(message(N_("{file}: expected a KML document (<kml> …), got <{root}>"), file=filename,
                                   root=_shown(roots[0] if roots else "", 40)))


def _check_geopackage(path: Path, filename: str) -> None:
    """Refuse a GeoPackage whose schema would make GDAL's queries run without end or bound: a view
    among what GDAL reads (a recursive one never ends), generated columns (``zeroblob(1e9)`` on
    every row) or a virtual table other than the R*Tree spatial index.  GDAL reads the ``gpkg_*``
    tables and the tables ``gpkg_contents`` lists; anything else in the file is left alone."""
    with _geopackage(path, filename, "its schema") as db:
        schema = db.execute("SELECT type, name, sql FROM sqlite_master WHERE type IN ('table', 'view') LIMIT ?",
                            (MAX_LAYERS * 10,)).fetchall()
        kinds = {str(name): str(kind) for kind, name, _ in schema}
        listed = {str(name) for (name,) in db.execute("SELECT table_name FROM gpkg_contents LIMIT ?",
                                                      (MAX_LAYERS * 10,))} \
            if kinds.get("gpkg_contents") == "table" else set()
        problems = [_schema_problem(db, str(kind), str(name), str(sql or "")) for kind, name, sql in schema
                    if str(name) in listed or str(name).lower().startswith("gpkg_")]
    found = [p for p in problems if p is not None]
    if found:
        raise _refusal(message(N_("{file} was not read: {count} part(s) of its schema are not accepted; expected a "
                                  "GeoPackage of plain tables, as QGIS or ArcGIS writes it"),
                               file=filename, count=len(found)), found)


def _check_geopackage_text(path: Path, filename: str, table: str) -> None:
    """Refuse the GeoPackage layer ``table`` when a text value of it holds a NUL character, which
    GDAL would read cut short (``'a\\x00b'`` as ``'a'``): how many, and the first by fid and column."""
    total, found = 0, []
    quoted = '"' + table.replace('"', '""') + '"'
    with _geopackage(path, filename, "its text") as db:     # a table without rowids is refused here too
        for (column,) in db.execute("SELECT name FROM pragma_table_info(?)", (table,)).fetchall():
            name = '"' + str(column).replace('"', '""') + '"'
            holding = f"FROM {quoted} WHERE typeof({name}) = 'text' AND instr(CAST({name} AS BLOB), x'00') > 0"
            total += db.execute(f"SELECT count(*) {holding}").fetchone()[0]
            found += [message(N_("{layer}, fid {fid}: the property {name} holds a NUL character, which would cut "
                                 "its text short; remove it (it is invisible in most editors)"),
                              layer=_shown(table, 60), fid=fid, name=_shown(str(column), 60))
                      for (fid,) in db.execute(f"SELECT rowid {holding} LIMIT ?", (_LISTED,))]
    if total:
        raise _refusal(message(N_("{file} has {count} property value(s) holding a NUL character; expected text "
                                  "without one"), file=filename, count=total), found)


@contextmanager
def _geopackage(path: Path, filename: str, what: str) -> Iterator[sqlite3.Connection]:
    """The GeoPackage opened read-only by SQLite, each query stopped after :data:`_SQLITE_SECONDS`;
    reading ``what`` failing (a broken file, a query too slow) is a refusal saying so."""
    deadline = time.monotonic() + _SQLITE_SECONDS
    try:
        with closing(sqlite3.connect(f"{path.as_uri()}?mode=ro&immutable=1", uri=True)) as db:
            db.set_progress_handler(lambda: time.monotonic() > deadline, 10_000)
            db.text_factory = lambda raw: raw.decode("utf-8", "replace")
            yield db
    except (sqlite3.DatabaseError, UnicodeDecodeError) as exc:     # SQLite's message can quote a broken schema
        reason = f"reading {what} took too long" if time.monotonic() > deadline else \
            "malformed database schema" if isinstance(exc, UnicodeDecodeError) else str(exc)
        raise InvalidInput(message(N_("could not read {file} as {format}: {reason}"), file=filename,
                                   format="GeoPackage", reason=reason)) from None


def _schema_problem(db: sqlite3.Connection, kind: str, name: str, sql: str) -> Message | None:
    shown = _shown(name, 60)
    if kind == "view":
        return message(N_("{name} is an SQL view; expected tables only"), name=shown)
    module = re.match(r"\s*CREATE\s+VIRTUAL\s+TABLE\s+.*?\bUSING\s+(\w+)", sql, re.IGNORECASE | re.DOTALL)
    if module and module[1].lower() != "rtree":
        return message(N_("{name} is a virtual table ({module}); expected tables only"), name=shown, module=module[1])
    if not module and any(hidden in (2, 3) for (hidden,) in
                          db.execute("SELECT hidden FROM pragma_table_xinfo(?)", (name,))):
        return message(N_("{name} has generated columns; expected plain columns"), name=shown)
    return None


# --- layers ---------------------------------------------------------------------------------------

def _gdal_path(path: Path, kind: str) -> str:
    """The path GDAL opens, prefixed so that only the upload's own driver can read it."""
    return _PREFIXES.get(kind, "") + str(path)


def _choose_layer(path: Path, *, kind: str, filename: str, layer: str | None) -> str:
    """The GeoPackage / KML layer to read: the one named, else the only one with geometry and features."""
    source = _gdal_path(path, kind)
    try:
        with _gdal_warnings(filename):
            listed = [(str(name), gtype) for name, gtype in pyogrio.list_layers(source)]
            if len(listed) > MAX_LAYERS:
                raise InvalidInput(message(N_("{file} holds {count} layers; at most {limit} are accepted in one file"),
                                           file=filename, count=len(listed), limit=MAX_LAYERS))
            if layer is not None and layer in {name for name, _ in listed}:
                return layer              # even a table without geometry, when asked for by name
            spatial = [name for name, gtype in listed if gtype is not None] or [name for name, _ in listed]
            # KML folders that only hold folders are empty layers; LIBKML parses the file again for each
            if layer is None and 1 < len(spatial) and (kind != "kml" or len(spatial) * path.stat().st_size
                                                       <= _PROBE_BYTES):
                spatial = [n for n in spatial if pyogrio.read_info(source, layer=n, force_feature_count=True)[
                    "features"]] or spatial
    except (DataSourceError, DataLayerError) as exc:
        raise _unreadable(exc, filename, kind, path) from None
    return _pick(spatial, filename=filename, layer=layer)


def _pick(layers: list[str], *, filename: str, layer: str | None) -> str:
    """The one layer, or the layer named; refuse an empty, ambiguous or unknown choice."""
    if not layers:
        raise InvalidInput(message(N_("{file} holds no layer to read; expected at least one layer of boundaries"),
                                   file=filename))
    if layer is None and len(layers) > 1:
        raise InvalidInput(message(N_("{file} holds {count} layers: {layers}; choose one with the {option} option"),
                                   file=filename, count=len(layers), layers=_listing(layers), option="layer"))
    if layer is not None and layer not in layers:
        raise InvalidInput(message(N_("{file} has no layer {layer!r}; it has: {layers}"),
                                   file=filename, layer=_shown(layer), layers=_listing(layers)))
    return layer or layers[0]


# --- reading --------------------------------------------------------------------------------------

def _read(path: Path, *, kind: str, filename: str, layer: str | None, encoding: str | None,
          outline: _Outline | None) -> tuple[dict[str, Any], np.ndarray, list[np.ndarray], str]:
    """pyogrio's raw read (WKB, not geometries: one per feature, None where it has none) and its driver,
    after checking the layer's size against the caps."""
    source = _gdal_path(path, kind)
    try:
        with _gdal_warnings(filename):
            info = pyogrio.read_info(source, layer=layer)
            _check_info(info, kind=kind, filename=filename)
            meta, fids, wkb, fields = pyogrio.raw.read(source, layer=layer, encoding=encoding, return_fids=True,
                                                       max_features=MAX_FEATURES + 1)
    except UnicodeDecodeError as exc:
        raise _not_encoded(filename, exc.encoding) from None
    except (DataSourceError, DataLayerError) as exc:
        details = _gdal_failure(outline, filename) if outline is not None else []
        raise InvalidInput(_unreadable(exc, filename, kind, path).summary, details) from None
    if len(fids) > MAX_FEATURES:
        raise _too_many_features(filename, None)
    return meta, np.full(len(fids), None, dtype=object) if wkb is None else wkb, fields, info["driver"]


def _check_info(info: dict[str, Any], *, kind: str, filename: str) -> None:
    """Refuse a layer read by another driver than its format's, or with more features, columns or
    cells (features × columns) than the caps, before a row of it is read."""
    if info["driver"] not in _DRIVERS[kind]:
        raise InvalidInput(message(N_("{file} was read as {driver}, not as {format}; expected a {format} file"),
                                   file=filename, driver=info["driver"], format=_LABELS[kind]))
    count, columns = max(int(info["features"]), 0), len(info["fields"])
    if count > MAX_FEATURES:
        raise _too_many_features(filename, count)
    if columns > MAX_FIELDS or count * columns > MAX_CELLS:
        raise InvalidInput(message(N_("{file} has {columns} attribute columns for {count} features; at most {limit} "
                                      "columns and {cells} values in all are accepted. Delete the columns the "
                                      "boundaries do not need (QGIS: Layer Properties ▸ Fields)"),
                                   file=filename, columns=columns, count=count, limit=MAX_FIELDS, cells=MAX_CELLS))


def _too_many_features(filename: str, count: int | None) -> InvalidInput:
    """``count`` None: more than :data:`MAX_FEATURES`, counted no further."""
    hint = N_("Check that it is the layer you meant, or split it into smaller files")
    if count is None:
        return InvalidInput(message(N_("{file} has more than {limit} features; at most {limit} can be read from one "
                                       "file. {hint}"), file=filename, limit=f"{MAX_FEATURES:,}", hint=message(hint)))
    return InvalidInput(message(N_("{file} has {count} features; at most {limit} can be read from one file. {hint}"),
                                file=filename, count=f"{count:,}", limit=f"{MAX_FEATURES:,}", hint=message(hint)))


def read_error(exc: Exception) -> str:
    """What a reader said, first sentence only, without GDAL's in-memory file name."""
    text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    text = re.sub(r"'?/vsimem/[^'\s]+'?\s*", "", text).split(";")[0]
    return text.strip()


def _unreadable(exc: Exception, filename: str, kind: str, path: Path) -> InvalidInput:
    """GDAL's reason, first sentence only, with the temporary path replaced by the upload's name."""
    text = (str(exc).splitlines() or [type(exc).__name__])[0]
    text = text.replace(_gdal_path(path, kind), filename).replace(str(path), filename)
    text = text.replace(f"{path.parent}/", "").split(";")[0].strip()
    return InvalidInput(message(N_("could not read {file} as {format}: {reason}"),
                                file=filename, format=_LABELS[kind], reason=text))


@contextmanager
def _gdal_warnings(source: str) -> Iterator[None]:
    """GDAL's warnings (e.g. "Non closed ring detected") go to the log; the caller sees the outcome."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", RuntimeWarning)
        yield
    for warning in caught:
        log.info("GDAL on %s: %s", source, warning.message)


def _decode(wkb: np.ndarray, outline: _Outline | None, *,
            filename: str) -> tuple[np.ndarray, dict[int, str | Message]]:
    """Shapely geometries, one per feature; a WKB that GEOS refuses becomes None plus its reason, and so
    does a GeoJSON geometry that GDAL read only in part (``outline``)."""
    if outline is not None:
        if len(wkb) != outline.count:
            raise InvalidInput(message(N_("{file}: GDAL read {read} features where the file has {count}; expected a "
                                          "FeatureCollection of Feature objects"),
                                       file=filename, read=len(wkb), count=outline.count))
        wkb[list(outline.reasons)] = None
    with np.errstate(invalid="ignore"):        # NaN coordinates are reported by the feature checks
        geometry = np.asarray(shapely.from_wkb(wkb, on_invalid="ignore"), dtype=object)
    undecodable: dict[int, str | Message] = {}
    for i in np.flatnonzero(pd.isna(geometry) & ~pd.isna(wkb)):
        try:
            shapely.from_wkb(wkb[i], on_invalid="raise")
            reason = "unreadable geometry"
        except GEOSException as exc:
            reason = str(exc).strip()
        undecodable[int(i)] = reason
    undecodable.update(outline.reasons if outline is not None else {})
    return geometry, dict(sorted(undecodable.items()))


def _check_vertices(geometry: np.ndarray, filename: str) -> None:
    total = int(shapely.get_num_coordinates(geometry).sum())
    if total > MAX_TOTAL_VERTICES:
        raise InvalidInput(message(N_("{file} has {count} vertices in all; at most {limit} can be read from one file. "
                                      "Simplify the boundaries (QGIS: Vector ▸ Geometry Tools ▸ Simplify) or split "
                                      "the file"), file=filename, count=f"{total:,}", limit=f"{MAX_TOTAL_VERTICES:,}"))


def _crs(text: str | None, filename: str) -> tuple[CRS | None, list[Message]]:
    """The file's CRS; one PROJ cannot read, or that is not horizontal (a vertical or engineering CRS),
    is left out with a warning: the ``crs`` option can give it."""
    if not text:
        return None, []
    try:
        crs = CRS.from_user_input(text)
        if crs.is_geographic or crs.is_projected:
            return crs, []
        reason = f"{crs.type_name}: {crs.name}"
    except CRSError as exc:
        reason = str(exc).splitlines()[0] if str(exc) else "CRSError"
    return None, [message(N_("the coordinate reference system in {file} cannot be used ({reason}); give it with "
                             "the {option} option"), file=filename, reason=_shown(reason), option="crs")]


def _properties(meta: dict[str, Any], fields: list[np.ndarray], count: int) -> pd.DataFrame:
    """The attribute table; text and list columns stay Python objects (None stays None)."""
    columns = {str(name): pd.Series([v.tolist() if isinstance(v, np.ndarray) else v for v in values], dtype=object)
               if values.dtype == object else pd.Series(values)
               for name, values in zip(meta["fields"], fields)}
    return pd.DataFrame(columns, index=pd.RangeIndex(count))


def _without_kml_defaults(frame: pd.DataFrame) -> pd.DataFrame:
    unset = [c for c, defaults in _KML_UNSET.items()
             if c in frame and (frame[c].isna() | frame[c].isin(defaults)).all()]
    return frame.drop(columns=unset)


def _encoding_warning(frame: pd.DataFrame, filename: str, assumed: str | None) -> list[Message]:
    """A shapefile without .cpg whose text is not ASCII may have been decoded with the wrong table."""
    texts = [str(c) for c in frame.columns] + [v for c in frame.columns if frame[c].dtype == object
                                                for v in frame[c] if isinstance(v, str)]
    if all(t.isascii() for t in texts):
        return []
    return [message(N_("{file} has no .cpg file saying how its text is encoded, so it was read as {encoding}; if "
                       "names look garbled, upload it again with its encoding in the {option} option, for example GBK"),
                    file=filename, encoding=assumed or "ISO-8859-1", option="encoding")]


EXPORT_FORMATS: dict[str, str] = {
    "geojson": "application/geo+json", "gpkg": "application/geopackage+sqlite3", "shp": "application/zip"}
_EXTENSIONS = {"geojson": "geojson", "gpkg": "gpkg", "shp": "zip"}


@dataclass(frozen=True)
class Export:
    """A written file, ready to send: its bytes, a download name and its media type."""

    data: bytes
    filename: str
    media_type: str


def export_layer(layer: Layer, fmt: str) -> Export:
    """Write a layer for GIS tools: GeoJSON (RFC 7946), GeoPackage or a zipped UTF-8 Shapefile.

    Columns are ``code, name, parent_code`` (``parent`` in a shapefile), ``area_m2`` and then
    one column per free property.  A shapefile cuts names to 10 bytes and text to 254 bytes.
    """
    key = fmt.strip().lower()
    if key not in EXPORT_FORMATS:
        raise InvalidInput(message(N_("unknown export format {format!r}; expected one of {expected}"),
                                   format=fmt, expected=", ".join(EXPORT_FORMATS)))
    name = layer.level.value if layer.version is None else f"{layer.level.value}_v{layer.version}"
    frame = _export_frame(layer, shapefile=key == "shp")
    with tempfile.TemporaryDirectory(prefix="gridmap-") as tmp, _gdal_warnings(name):
        path = Path(tmp) / f"{name}.{key}"
        if key == "geojson":
            pyogrio.write_dataframe(frame, path, driver="GeoJSON", layer=name, RFC7946="YES")
        elif key == "gpkg":
            pyogrio.write_dataframe(frame, path, driver="GPKG", layer=name)
        else:
            pyogrio.write_dataframe(frame, path, driver="ESRI Shapefile", layer=name, encoding="UTF-8")
        data = _zipped(path) if key == "shp" else path.read_bytes()
    log.info("exported %d %s units as %s", len(frame), layer.level.value, key)
    return Export(data=data, filename=f"{name}.{_EXTENSIONS[key]}", media_type=EXPORT_FORMATS[key])


def _export_frame(layer: Layer, *, shapefile: bool) -> gpd.GeoDataFrame:
    """The units with one column per free property, named so the target format keeps them all."""
    units = layer.units
    text = lambda column: pd.Series([None if pd.isna(v) else v for v in units[column]], dtype=object)
    columns: dict[str, pd.Series] = {
        "code": text("code"), "name": text("name"), ("parent" if shapefile else "parent_code"): text("parent_code"),
        "area_m2": pd.Series(units["area_m2"].to_numpy(dtype=float))}
    props = [p if isinstance(p, dict) else {} for p in units["properties"]]
    keys = list(dict.fromkeys(k for p in props for k in p))
    limit = _DBF_NAME_BYTES if shapefile else None
    for key, name in zip(keys, _column_names(keys, taken=[*columns, "fid", "geom", "geometry"], limit=limit)):
        columns[name] = _column([p.get(key) for p in props], shapefile=shapefile)
    geometry = units.geometry.set_crs(4326) if units.crs is None else units.geometry.to_crs(4326)
    return gpd.GeoDataFrame(columns, geometry=gpd.GeoSeries(geometry.to_numpy(), crs=4326))


def _column_names(keys: list[str], *, taken: list[str], limit: int | None) -> list[str]:
    """Column names unique ignoring case (GeoPackage and DBF do), cut to ``limit`` UTF-8 bytes."""
    used = {t.lower() for t in taken}
    names = []
    for key in keys:
        base = _clip(str(key).strip() or "field", limit)
        name, n = base, 0
        while name.lower() in used:
            n += 1
            name = _clip(base, None if limit is None else limit - len(f"_{n}")) + f"_{n}"
        used.add(name.lower())
        names.append(name)
    return names


def _clip(text: str, limit: int | None) -> str:
    """At most ``limit`` UTF-8 bytes, never half a character (GDAL cuts bytes, leaving invalid UTF-8)."""
    return text if limit is None else text.encode()[:limit].decode(errors="ignore")


def _column(values: list[Any], *, shapefile: bool) -> pd.Series:
    """A typed column where every value shares a type (bool, int, number); otherwise text, nested as JSON."""
    present = [v for v in values if v is not None]
    if present and all(isinstance(v, bool) for v in present):
        return pd.Series(values, dtype="boolean")
    if present and all(isinstance(v, int) and not isinstance(v, bool) and -2**63 <= v < 2**63 for v in present):
        return pd.Series(values, dtype="Int64")
    if present and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in present):
        return pd.Series([np.nan if v is None else float(v) for v in values], dtype=float)
    texts = [v if isinstance(v, str) or v is None else json.dumps(v, ensure_ascii=False) for v in values]
    if shapefile and any(t is not None and len(t.encode()) > _DBF_TEXT_BYTES for t in texts):
        log.info("shapefile export: text longer than %d bytes cut", _DBF_TEXT_BYTES)
        texts = [None if t is None else _clip(t, _DBF_TEXT_BYTES) for t in texts]
    return pd.Series(texts, dtype=object)


def _zipped(shp: Path) -> bytes:
    """The shapefile's parts (.shp, .shx, .dbf, .prj, .cpg) in one zip, at its top level."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for part in sorted(shp.parent.glob(f"{shp.stem}.*")):
            archive.write(part, arcname=part.name)
    return buffer.getvalue()
