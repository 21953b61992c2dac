"""Boundary file formats: read whatever a planner received, write a layer back out.

:func:`read_source` turns GeoJSON, a zipped Shapefile, a GeoPackage or KML into plain
columns and shapely geometries *exactly as in the file* (Z, ring orientation and invalid
rings kept), so that checking and repairing stay in :mod:`gridmap.boundaries`.  It reads
through pyogrio's raw API and decodes the WKB itself, so one feature that GEOS cannot
build is reported by index instead of failing the whole file.  :func:`export_layer`
writes a :class:`~gridmap.boundaries.Layer` as GeoJSON, GeoPackage or a zipped Shapefile.
"""
from __future__ import annotations

import io
import json
import logging
import re
import tempfile
import warnings
import zipfile
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any, Iterator

import geopandas as gpd
import numpy as np
import pandas as pd
import pyogrio
import shapely
from pyogrio.errors import DataLayerError, DataSourceError
from pyproj import CRS
from shapely.errors import GEOSException

from .errors import N_, InvalidInput, Message, message
from .layer import Layer

log = logging.getLogger(__name__)

_SUFFIXES = {".geojson": "geojson", ".json": "geojson", ".zip": "shapefile", ".gpkg": "gpkg", ".kml": "kml"}
_MAGIC = ((b"PK\x03\x04", "shapefile"), (b"SQLite format 3\x00", "gpkg"), (b"{", "geojson"))
_LABELS = {"geojson": "GeoJSON", "shapefile": "Shapefile", "gpkg": "GeoPackage", "kml": "KML"}
# Fields LIBKML adds to every KML layer; dropped when no placemark sets them (values as LIBKML reports "unset").
_KML_UNSET: dict[str, tuple[Any, ...]] = {"id": (), "timestamp": (), "begin": (), "end": (), "altitudeMode": (),
                                          "tessellate": (-1,), "extrude": (0,), "visibility": (-1,), "drawOrder": (),
                                          "icon": ()}
_DBF_NAME_BYTES, _DBF_TEXT_BYTES = 10, 254


@dataclass
class SourceFile:
    """One layer of a boundary file, as the file has it: nothing checked, repaired or reprojected."""

    properties: pd.DataFrame
    geometry: np.ndarray
    undecodable: dict[int, str]
    crs: CRS | None
    driver: str
    layer: str | None
    warnings: list[Message] = field(default_factory=list)


def read_source(data: bytes, *, filename: str, layer: str | None = None, encoding: str | None = None) -> SourceFile:
    """Read one layer of a GeoJSON, zipped Shapefile, GeoPackage or KML upload.

    ``layer`` chooses among several shapefiles in a zip (by stem) or several GeoPackage /
    KML layers (a GeoJSON has one; it ignores ``layer``); ``encoding`` overrides how text is
    decoded (a shapefile without ``.cpg``, a GBK GeoJSON).  Refuses, with a message a planner
    can act on, anything it cannot read as a whole; a feature whose geometry GEOS cannot
    build is kept with geometry None and its reason in ``undecodable``.
    """
    if not data.strip():
        raise InvalidInput(message(N_("{file} is empty; expected GeoJSON (.geojson, .json), a zipped Shapefile (.zip "
                                      "holding .shp, .shx and .dbf), GeoPackage (.gpkg) or KML (.kml)"), file=filename))
    kind = _detect(data, filename)
    with tempfile.TemporaryDirectory(prefix="gridmap-") as tmp:
        path, chosen, has_cpg = _stage(data, kind=kind, filename=filename, tmp=Path(tmp), layer=layer)
        meta, wkb, fields, driver = _read(path, kind=kind, filename=filename, encoding=encoding,
                                          layer=chosen if kind in ("gpkg", "kml") else None)
    geometry, undecodable = _decode(wkb)
    properties = _properties(meta, fields, len(geometry))
    if kind == "kml":
        properties = _without_kml_defaults(properties)
    found = [] if has_cpg or encoding else _encoding_warning(properties, filename, meta["encoding"])
    log.info("read %d features (%d undecodable) from %s with %s", len(geometry), len(undecodable), filename, driver)
    return SourceFile(properties=properties, geometry=geometry, undecodable=undecodable,
                      crs=CRS.from_user_input(meta["crs"]) if meta["crs"] else None,
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


def _safe_stem(name: str) -> str:
    """A file-system-safe stem (GDAL names a GeoJSON or KML layer after its file)."""
    stem = PurePosixPath(name.replace("\\", "/")).stem
    return re.sub(r"[^\w-]+", "_", stem)[:80].strip("_") or "upload"


def _stage(data: bytes, *, kind: str, filename: str, tmp: Path, layer: str | None) -> tuple[Path, str | None, bool]:
    """The upload as a file GDAL can open, the layer chosen in it, and whether text encoding is declared."""
    if kind == "shapefile":
        path, chosen = _unzip_shapefile(data, filename=filename, tmp=tmp, layer=layer)
        return path, chosen, path.with_suffix(".cpg").exists()
    path = tmp / f"{_safe_stem(filename)}.{kind}"
    path.write_bytes(data)
    return path, None if kind == "geojson" else _choose_layer(path, kind=kind, filename=filename, layer=layer), True


def _unzip_shapefile(data: bytes, *, filename: str, tmp: Path, layer: str | None) -> tuple[Path, str]:
    """Extract the chosen shapefile's parts (sub-folders allowed) as ``source.*``; return it and its layer name."""
    with _open_zip(data, filename) as archive:
        members = {_member_name(info): info for info in archive.infolist() if _is_data_file(info)}
        layers = _shapefile_layers([name[:-4] for name in members if name.lower().endswith(".shp")])
        if not layers:
            raise InvalidInput(message(N_("{file} holds no .shp file; expected a zipped Shapefile (.shp, .shx and "
                                          ".dbf, optionally .prj and .cpg). The zip holds: {contents}"),
                                       file=filename, contents=_listing(list(members))))
        chosen = _pick(list(layers), filename=filename, layer=layer)
        parts = {"." + ext.lower(): info for (stem, _, ext), info in
                 ((name.rpartition("."), info) for name, info in members.items())
                 if stem.lower() == layers[chosen].lower()}
        missing = [ext for ext in (".shx", ".dbf") if ext not in parts]
        if missing:
            raise InvalidInput(message(N_("{file}: the shapefile {layer} has no {missing} file; a shapefile needs "
                                          ".shp, .shx and .dbf side by side in the zip"),
                                       file=filename, layer=chosen, missing=", ".join(missing)))
        for ext in (".shp", ".shx", ".dbf", ".prj", ".cpg"):
            if ext in parts:
                (tmp / f"source{ext}").write_bytes(archive.read(parts[ext]))
    return tmp / "source.shp", chosen


def _listing(names: list[str], most: int = 20) -> str:
    return ", ".join(names[:most]) + (f", … ({len(names)} in all)" if len(names) > most else "") or "-"


def _open_zip(data: bytes, filename: str) -> zipfile.ZipFile:
    try:
        return zipfile.ZipFile(io.BytesIO(data))
    except zipfile.BadZipFile as exc:
        raise InvalidInput(message(N_("could not read {file} as a zip archive: {reason}"),
                                   file=filename, reason=str(exc))) from None


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


def _choose_layer(path: Path, *, kind: str, filename: str, layer: str | None) -> str:
    """The GeoPackage / KML layer to read: the one named, else the only one with geometry and features."""
    try:
        with _gdal_warnings(filename):
            listed = [(str(name), gtype) for name, gtype in pyogrio.list_layers(path)]
            if layer is not None and layer in {name for name, _ in listed}:
                return layer              # even a table without geometry, when asked for by name
            spatial = [name for name, gtype in listed if gtype is not None] or [name for name, _ in listed]
            if layer is None and len(spatial) > 1:      # KML folders that only hold folders are empty layers
                spatial = [n for n in spatial if pyogrio.read_info(path, layer=n, force_feature_count=True)[
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
                                   file=filename, count=len(layers), layers=", ".join(layers), option="layer"))
    if layer is not None and layer not in layers:
        raise InvalidInput(message(N_("{file} has no layer {layer!r}; it has: {layers}"),
                                   file=filename, layer=layer, layers=", ".join(layers)))
    return layer or layers[0]


def _read(path: Path, *, kind: str, filename: str, layer: str | None,
          encoding: str | None) -> tuple[dict[str, Any], np.ndarray, list[np.ndarray], str]:
    """pyogrio's raw read (WKB, not geometries: one per feature, None where it has none) and its driver."""
    try:
        with _gdal_warnings(filename):
            driver = pyogrio.read_info(path, layer=layer)["driver"]
            meta, fids, wkb, fields = pyogrio.raw.read(path, layer=layer, encoding=encoding, return_fids=True)
    except UnicodeDecodeError as exc:
        raise InvalidInput(message(N_("the text in {file} is not valid {encoding}; give the file's encoding with the "
                                      "{option} option, for example GBK"), file=filename, encoding=exc.encoding,
                                   option="encoding")) from None
    except (DataSourceError, DataLayerError) as exc:
        raise _unreadable(exc, filename, kind, path) from None
    return meta, np.full(len(fids), None, dtype=object) if wkb is None else wkb, fields, driver


def read_error(exc: Exception) -> str:
    """What a reader said, first sentence only, without GDAL's in-memory file name."""
    text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    text = re.sub(r"'?/vsimem/[^'\s]+'?\s*", "", text).split(";")[0]
    return text.strip()


def _unreadable(exc: Exception, filename: str, kind: str, path: Path) -> InvalidInput:
    """GDAL's reason, first sentence only, with the temporary path replaced by the upload's name."""
    text = (str(exc).splitlines() or [type(exc).__name__])[0]
    text = text.replace(str(path), filename).replace(f"{path.parent}/", "").split(";")[0].strip()
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


def _decode(wkb: np.ndarray) -> tuple[np.ndarray, dict[int, str]]:
    """Shapely geometries, one per feature; a WKB that GEOS refuses becomes None plus its reason."""
    with np.errstate(invalid="ignore"):        # NaN coordinates are reported by the feature checks
        geometry = np.asarray(shapely.from_wkb(wkb, on_invalid="ignore"), dtype=object)
    undecodable = {}
    for i in np.flatnonzero(pd.isna(geometry) & ~pd.isna(wkb)):
        try:
            shapely.from_wkb(wkb[i], on_invalid="raise")
            reason = "unreadable geometry"
        except GEOSException as exc:
            reason = str(exc).strip()
        undecodable[int(i)] = reason
    return geometry, undecodable


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
