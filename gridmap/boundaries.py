"""Boundary layers: the units (grids, micro-grids, …) of one level, read from a planner's file.

A :class:`Layer` keeps its units in a GeoDataFrame (EPSG:4326) with the columns
``code, name, parent_code, area_m2, properties, geometry`` so that every spatial step
works on whole arrays.  :func:`read_layer` is the importer: read → check every
feature → pick fields → reproject → measure; every problem in the file is collected
and reported at once, and a refused file changes nothing because nothing is stored here.
"""
from __future__ import annotations

import json
import logging
import math
import re
from dataclasses import dataclass, field, replace
from typing import Any, Iterable, Mapping

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely

from .coordinates import ServiceArea, areas_m2, equal_area_crs
from .errors import N_, InvalidInput, message
from .feature_checks import check_features, feature_problem
from .formats import read_source
from .levels import Level
from .validation import Problem, Severity

log = logging.getLogger(__name__)

CODE_FIELDS = ("code", "编码", "代码", "编号", "网格编码", "unit_code", "grid_code", "id")
NAME_FIELDS = ("name", "名称", "网格名称", "title", "label")
PARENT_FIELDS = ("parent_code", "parent", "上级编码", "所属网格", "parent_id")
STAFF_FIELDS = ("staff", "网格员", "网格长", "负责人", "manager")
PHONE_FIELDS = ("phone", "电话", "联系电话", "tel")


@dataclass
class Layer:
    """The units of one level, plus how their parents were found ("field", "spatial" or None).

    ``units``' index is each unit's feature index in the file it came from, so that every
    problem found later can name the feature a planner will look for.
    """

    level: Level
    units: gpd.GeoDataFrame
    parent_source: str | None = None
    version: int | None = None
    problems: list[Problem] = field(default_factory=list)

    @property
    def codes(self) -> list[str]:
        return self.units["code"].tolist()


@dataclass(frozen=True)
class FieldChoice:
    """Which property of the file holds the code, the name and the parent code."""

    code: str
    name: str | None
    parent: str | None


@dataclass(frozen=True)
class ReadOptions:
    """How to read a planner's file: its CRS and fields when they cannot be guessed, the
    layer of a multi-layer file, the text encoding of a shapefile without ``.cpg``, and the
    service area that tells swapped coordinates apart."""

    crs: str | None = None
    code_field: str | None = None
    name_field: str | None = None
    parent_field: str | None = None
    layer: str | None = None
    encoding: str | None = None
    service_area: ServiceArea | None = None


def texts(values: Iterable[str | None], index: pd.Index | None = None) -> pd.Series:
    """A column of text that keeps None as None (pandas 3 would turn it into NaN)."""
    return pd.Series(list(values), dtype=object, index=index)


def read_layer(data: bytes, *, level: Level, filename: str = "upload.geojson",
               options: ReadOptions = ReadOptions(), **fields: str | None) -> Layer:
    """Read a boundary file (GeoJSON, zipped Shapefile, GeoPackage, KML) into a :class:`Layer`.

    Every feature problem is collected into ``layer.problems`` (errors block a commit, warnings
    do not) and the features with an error are left out of the units; only a file that cannot
    be read at all, or that has no usable feature, is refused here.  ``fields`` are the
    ``ReadOptions`` fields given as keywords (``crs=``, ``code_field=`` …).
    """
    options = replace(options, **fields) if fields else options
    source = read_source(data, filename=filename, layer=options.layer, encoding=options.encoding)
    if len(source.properties) == 0:
        raise InvalidInput(message(N_("{file} has no features; expected at least one polygon"), file=filename))
    choice = _choose_fields(source.properties, options)
    table = _attributes(source.properties, choice)
    checked = check_features(source, codes=table.codes, names=table.names if choice.name else None, crs=options.crs,
                             service_area=options.service_area, filename=filename)
    units = _assemble(checked.frame, table)
    problems = checked.problems + _zero_areas(units)
    units = units[units["area_m2"] > 0]
    if units.empty:
        errors = [p for p in problems if p.severity is Severity.ERROR]
        raise InvalidInput(message(N_("{file} has no usable feature: {count} error(s)"), file=filename,
                                   count=len(errors)), [p.message for p in errors])
    log.info("read %d %s units from %s (%d problems)", len(units), level.value, filename, len(problems))
    return Layer(level=level, units=units, parent_source="field" if choice.parent else None,
                 problems=sorted(problems, key=_problem_order))


def _problem_order(problem: Problem) -> tuple:
    return (problem.severity is not Severity.ERROR, problem.feature if problem.feature is not None else -1,
            problem.kind)


def read_error(exc: Exception) -> str:
    """What a reader said, first sentence only, without GDAL's in-memory file name."""
    text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    text = re.sub(r"'?/vsimem/[^'\s]+'?\s*", "", text).split(";")[0]
    return text.strip()


def _choose_fields(frame: pd.DataFrame, options: ReadOptions) -> FieldChoice:
    code_field, name_field, parent_field = options.code_field, options.name_field, options.parent_field
    columns = [str(c) for c in frame.columns]
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



def clean_text(value: Any) -> str | None:
    """A value as text: ``7`` and ``7.0`` both become ``"7"``; blanks become None."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    text = str(value).strip()
    return text or None


@dataclass(frozen=True)
class _Attributes:
    codes: list[str | None]
    names: list[str | None]
    parents: list[str | None]
    extra: pd.DataFrame          # the free properties


COMPUTED_FIELDS = ("area_m2", "level", "version")   # written by gridmap's exports, recomputed on import


def _attributes(frame: pd.DataFrame, choice: FieldChoice) -> _Attributes:
    used = {choice.code, choice.name, choice.parent, *COMPUTED_FIELDS}
    return _Attributes(
        codes=[clean_text(v) for v in frame[choice.code]],
        names=[clean_text(v) for v in frame[choice.name]] if choice.name else [None] * len(frame),
        parents=[clean_text(v) for v in frame[choice.parent]] if choice.parent else [None] * len(frame),
        extra=frame[[c for c in frame.columns if c not in used]])


def _assemble(frame: gpd.GeoDataFrame, table: _Attributes) -> gpd.GeoDataFrame:
    """The units of the good features, indexed by feature index, with their areas in m²."""
    keep = frame.index
    codes = [table.codes[i] for i in keep]
    units = gpd.GeoDataFrame({
        "code": texts(codes, index=keep),
        "name": texts((table.names[i] or table.codes[i] for i in keep), index=keep),
        "parent_code": texts((table.parents[i] for i in keep), index=keep),
        "area_m2": 0.0,
        "properties": pd.Series([_properties(r) for r in table.extra.loc[keep].to_dict("records")],
                                index=keep, dtype=object),
    }, geometry=frame.geometry, crs=4326, index=keep)
    units["area_m2"] = areas_m2(units)
    return units


def _zero_areas(units: gpd.GeoDataFrame) -> list[Problem]:
    """A unit must cover some land: a polygon with no area (even after repair) cannot hold a report."""
    return [feature_problem("zero_area", Severity.ERROR, N_("{where} has no area (a degenerate polygon, e.g. "
                                                          "all points on one line)"), int(i), code)
            for i, code, area in zip(units.index, units["code"], units["area_m2"]) if not area > 0]


def _properties(row: Mapping[str, Any]) -> dict[str, Any]:
    """Free properties made JSON-safe: numpy scalars to Python, NaN to None, dates to ISO text."""
    return json.loads(pd.Series(row, dtype=object).to_json(date_format="iso", force_ascii=False))


def derive_parents(child: Layer, parent: Layer) -> Layer:
    """Give every child unit the parent unit that holds the largest part of it.

    Used when the file names no parent.  A child that touches no parent unit keeps
    ``parent_code`` None (the validation report lists it).
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
    return Layer(level=child.level, units=units, parent_source="spatial", version=child.version,
                 problems=child.problems)


def _shared_areas(a: np.ndarray, b: np.ndarray, reference: gpd.GeoDataFrame) -> np.ndarray:
    overlap = gpd.GeoSeries(shapely.intersection(a, b), crs=4326)
    if overlap.empty:
        return np.zeros(0)
    return overlap.to_crs(equal_area_crs(reference)).area.to_numpy()


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
