"""Boundary layers: the units (grids, micro-grids, …) of one level, read from a planner's file.

A :class:`Layer` keeps its units in a GeoDataFrame (EPSG:4326) with the columns
``code, name, parent_code, area_m2, properties, geometry`` so that every spatial step
works on whole arrays.  :func:`read_layer` is the importer: read → check every
feature → pick fields → reproject → measure; every problem in the file is collected
and reported at once, and a refused file changes nothing because nothing is stored here.
"""
from __future__ import annotations

import io
import json
import logging
import math
import re
from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely

from .coordinates import areas_m2, equal_area_crs, to_wgs84
from .errors import N_, InvalidInput, Message, message
from .levels import Level

log = logging.getLogger(__name__)

CODE_FIELDS = ("code", "编码", "代码", "编号", "网格编码", "unit_code", "grid_code", "id")
NAME_FIELDS = ("name", "名称", "网格名称", "title", "label")
PARENT_FIELDS = ("parent_code", "parent", "上级编码", "所属网格", "parent_id")
STAFF_FIELDS = ("staff", "网格员", "网格长", "负责人", "manager")
PHONE_FIELDS = ("phone", "电话", "联系电话", "tel")


@dataclass
class Layer:
    """The units of one level, plus how their parents were found ("field", "spatial" or None)."""

    level: Level
    units: gpd.GeoDataFrame
    parent_source: str | None = None
    version: int | None = None
    warnings: list[Message] = field(default_factory=list)

    @property
    def codes(self) -> list[str]:
        return self.units["code"].tolist()


@dataclass(frozen=True)
class FieldChoice:
    """Which property of the file holds the code, the name and the parent code."""

    code: str
    name: str | None
    parent: str | None


def texts(values: Iterable[str | None], index: pd.Index | None = None) -> pd.Series:
    """A column of text that keeps None as None (pandas 3 would turn it into NaN)."""
    return pd.Series(list(values), dtype=object, index=index)


def read_layer(data: bytes, *, level: Level, filename: str = "upload.geojson", crs: str | None = None,
               code_field: str | None = None, name_field: str | None = None,
               parent_field: str | None = None) -> Layer:
    """Read a GeoJSON boundary file into a :class:`Layer`, or refuse it with every problem listed."""
    frame = _read_frame(data, filename)
    fields = _choose_fields(frame, code_field=code_field, name_field=name_field, parent_field=parent_field)
    _check_features(frame, fields)
    frame = to_wgs84(frame, crs=crs, source=filename)
    units, repairs = _assemble(frame, fields)
    _check_areas(units)
    log.info("read %d %s units from %s", len(units), level.value, filename)
    return Layer(level=level, units=units, parent_source="field" if fields.parent else None, warnings=repairs)


def _read_frame(data: bytes, filename: str) -> gpd.GeoDataFrame:
    if not data.strip():
        raise InvalidInput(message(N_("{file} is empty; expected a GeoJSON FeatureCollection"), file=filename))
    try:
        frame = gpd.read_file(io.BytesIO(data))
    except Exception as exc:  # pyogrio raises several types for unreadable input
        raise InvalidInput(message(N_("could not read {file} as GeoJSON: {reason}"),
                                   file=filename, reason=read_error(exc))) from None
    if frame.empty:
        raise InvalidInput(message(N_("{file} has no features; expected at least one polygon"), file=filename))
    return frame


def read_error(exc: Exception) -> str:
    """What a reader said, first sentence only, without GDAL's in-memory file name."""
    text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    text = re.sub(r"'?/vsimem/[^'\s]+'?\s*", "", text).split(";")[0]
    return text.strip()


def _choose_fields(frame: gpd.GeoDataFrame, *, code_field: str | None, name_field: str | None,
                   parent_field: str | None) -> FieldChoice:
    columns = [c for c in frame.columns if c != frame.geometry.name]
    problems = [message(N_("the file has no property {field!r} (given as {option}); it has: {available}"),
                        field=value, option=option, available=", ".join(columns) or "none")
                for option, value in (("code_field", code_field), ("name_field", name_field),
                                      ("parent_field", parent_field))
                if value and value not in columns]
    code = code_field or find_field(columns, CODE_FIELDS)
    if code is None:
        problems.append(message(N_("no property looks like the unit code (tried {tried}); the file has: "
                                   "{available}. Say which one with code_field."),
                                tried=", ".join(CODE_FIELDS), available=", ".join(columns) or "none"))
    if problems:
        raise InvalidInput(message(N_("the file's properties do not match the options")), problems)
    return FieldChoice(code=code, name=name_field or find_field(columns, NAME_FIELDS),
                       parent=parent_field or find_field(columns, PARENT_FIELDS))


def find_field(columns: Iterable[str], candidates: Iterable[str]) -> str | None:
    """The first column whose name matches a candidate, ignoring case and surrounding space."""
    by_key = {str(c).strip().lower(): c for c in columns}
    for name in candidates:
        if name.lower() in by_key:
            return by_key[name.lower()]
    return None



def _check_features(frame: gpd.GeoDataFrame, fields: FieldChoice) -> None:
    """Collect every feature-level problem: geometry type, missing and duplicate codes."""
    codes = [clean_text(v) for v in frame[fields.code]]
    problems: list[Message] = []
    types = frame.geometry.geom_type.to_numpy()
    empty = frame.geometry.isna().to_numpy() | frame.geometry.is_empty.to_numpy()
    for i, (code, gtype, is_empty) in enumerate(zip(codes, types, empty)):
        where = _where(i, code)
        if is_empty:
            problems.append(message(N_("expected Polygon or MultiPolygon, got an empty geometry in {where}"),
                                    where=where))
        elif gtype not in ("Polygon", "MultiPolygon"):
            problems.append(message(N_("expected Polygon or MultiPolygon, got {got} in {where}"),
                                    got=gtype, where=where))
        if code is None:
            problems.append(message(N_("feature {index} has no code (property {field!r} is empty)"),
                                    index=i, field=fields.code))
    problems += _duplicate_codes(codes)
    if problems:
        raise InvalidInput(message(N_("the file has {count} problem(s); nothing was imported"),
                                   count=len(problems)), problems)


def _check_areas(units: gpd.GeoDataFrame) -> None:
    """A unit must cover some land: a polygon with no area (even after repair) cannot hold a report."""
    empty = units.geometry.is_empty.to_numpy() | (units["area_m2"].to_numpy() <= 0)
    problems = [message(N_("{where} has no area (a degenerate polygon, e.g. all points on one line)"),
                        where=_where(i, code)) for i, code in enumerate(units["code"]) if empty[i]]
    if problems:
        raise InvalidInput(message(N_("the file has {count} problem(s); nothing was imported"),
                                   count=len(problems)), problems)


def _duplicate_codes(codes: list[str | None]) -> list[Message]:
    seen: dict[str, list[int]] = {}
    for i, code in enumerate(codes):
        if code is not None:
            seen.setdefault(code, []).append(i)
    return [message(N_("code {code!r} is used by more than one feature: features {indexes}"),
                    code=code, indexes=", ".join(map(str, idx)))
            for code, idx in seen.items() if len(idx) > 1]


def _where(index: int, code: str | None) -> Message:
    if code is None:
        return message(N_("feature {index}"), index=index)
    return message(N_('feature {index} (code "{code}")'), index=index, code=code)


def clean_text(value: Any) -> str | None:
    """A value as text: ``7`` and ``7.0`` both become ``"7"``; blanks become None."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    text = str(value).strip()
    return text or None


def _assemble(frame: gpd.GeoDataFrame, fields: FieldChoice) -> tuple[gpd.GeoDataFrame, list[Message]]:
    used = {fields.code, fields.name, fields.parent, frame.geometry.name}
    extra = [c for c in frame.columns if c not in used]
    codes = [clean_text(v) for v in frame[fields.code]]
    names = [clean_text(v) for v in frame[fields.name]] if fields.name else [None] * len(frame)
    parents = [clean_text(v) for v in frame[fields.parent]] if fields.parent else [None] * len(frame)
    geometry, repairs = _repaired(shapely.force_2d(frame.geometry.to_numpy()), codes)
    units = gpd.GeoDataFrame({
        "code": texts(codes),
        "name": texts(n or c for n, c in zip(names, codes)),
        "parent_code": texts(parents),
        "area_m2": 0.0,
        "properties": [_properties(row) for row in frame[extra].to_dict("records")],
    }, geometry=gpd.GeoSeries(geometry, crs=4326))
    units["area_m2"] = areas_m2(units)
    return units, [message(N_("{where}: invalid geometry ({reason}) was repaired with make_valid; area "
                              "{before} m² → {after} m²"), where=_where(i, codes[i]), reason=reason,
                           before=round(before, 1), after=round(float(units["area_m2"].iloc[i]), 1))
                   for i, reason, before in repairs]


def _repaired(geometry: np.ndarray, codes: list[str | None]) -> tuple[np.ndarray, list[tuple[int, str, float]]]:
    """Invalid polygons (real files have self-touching rings) made valid, keeping polygonal parts.

    Never silent: each repair is returned as (index, reason, area before in m²) for a warning.
    """
    invalid = np.flatnonzero(~shapely.is_valid(geometry))
    if len(invalid) == 0:
        return geometry, []
    fixed = geometry.copy()
    before = areas_m2(gpd.GeoDataFrame(geometry=gpd.GeoSeries(geometry[invalid], crs=4326)))
    repairs = []
    for i, area in zip(invalid, before):
        parts = shapely.get_parts(shapely.make_valid(geometry[i]))
        fixed[i] = shapely.union_all(parts[shapely.get_type_id(parts) >= 3])   # (multi)polygons only
        repairs.append((int(i), shapely.is_valid_reason(geometry[i]), float(area)))
    log.info("repaired %d invalid geometries", len(repairs))
    return fixed, repairs


def _properties(row: Mapping[str, Any]) -> dict[str, Any]:
    """Free properties made JSON-safe: numpy scalars to Python, NaN to None, dates to ISO text."""
    return json.loads(pd.Series(row, dtype=object).to_json(date_format="iso", force_ascii=False))


def derive_parents(child: Layer, parent: Layer) -> Layer:
    """Give every child unit the parent unit that holds the largest part of it.

    Used when the file names no parent.  A child that touches no parent unit keeps
    ``parent_code`` None and is reported as a warning.
    """
    kids, dads = child.units.geometry.to_numpy(), parent.units.geometry.to_numpy()
    pairs = shapely.STRtree(dads).query(kids, predicate="intersects")
    shares = _shared_areas(kids[pairs[0]], dads[pairs[1]], parent.units)
    codes = parent.units["code"].to_numpy()
    best: dict[int, tuple[float, int]] = {}
    for k, d, area in zip(pairs[0], pairs[1], shares):
        held = best.get(k)
        if area > 0 and (held is None or area > held[0] or (area == held[0] and codes[d] < codes[held[1]])):
            best[k] = (area, d)
    units = child.units.copy()
    units["parent_code"] = texts((codes[best[k][1]] if k in best else None for k in range(len(units))),
                                 index=units.index)
    orphans = units.loc[units["parent_code"].isna(), "code"].tolist()
    warnings = [message(N_("{count} unit(s) lie outside every {level} unit and have no parent: {codes}"),
                        count=len(orphans), level=parent.level.value, codes=", ".join(orphans))] if orphans else []
    return Layer(level=child.level, units=units, parent_source="spatial", warnings=child.warnings + warnings)


def _shared_areas(a: np.ndarray, b: np.ndarray, reference: gpd.GeoDataFrame) -> np.ndarray:
    overlap = gpd.GeoSeries(shapely.intersection(a, b), crs=4326)
    if overlap.empty:
        return np.zeros(0)
    return overlap.to_crs(equal_area_crs(reference)).area.to_numpy()


def missing_parents(child: Layer, parent: Layer) -> list[Message]:
    """Units whose named parent code is not a unit of the parent layer."""
    known = set(parent.codes)
    return [message(N_("{where} names parent {parent!r}, which is not a {level} code"),
                    where=_where(i, code), parent=p, level=parent.level.value)
            for i, (code, p) in enumerate(zip(child.units["code"], child.units["parent_code"]))
            if p is not None and p not in known]


def staff_of(properties: Mapping[str, Any]) -> dict[str, Any]:
    """The responsible person and phone, from whichever property names the file used."""
    staff = find_field(properties.keys(), STAFF_FIELDS)
    phone = find_field(properties.keys(), PHONE_FIELDS)
    return {"staff": properties.get(staff) if staff else None, "phone": properties.get(phone) if phone else None}


def to_geojson(layer: Layer) -> dict[str, Any]:
    """The layer as an RFC 7946 FeatureCollection, free properties merged in."""
    features = []
    for row, geom in zip(layer.units.drop(columns="geometry").to_dict("records"), layer.units.geometry):
        props = {**row.pop("properties"), **row, "level": layer.level.value}
        features.append({"type": "Feature", "properties": props, "geometry": shapely.geometry.mapping(geom)})
    return {"type": "FeatureCollection", "features": features,
            "version": layer.version, "level": layer.level.value}
