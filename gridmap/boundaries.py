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
from dataclasses import dataclass, replace
from typing import Any, Mapping

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely

from .coordinates import ServiceArea, areas_m2, equal_area_crs
from .errors import N_, InvalidInput, message
from .feature_checks import check_features, feature_problem
from .formats import read_source
from .layer import Layer, clean_text, find_field, texts
from .levels import Level
from .problems import Problem, Severity

log = logging.getLogger(__name__)

CODE_FIELDS = ("code", "编码", "代码", "编号", "网格编码", "unit_code", "grid_code", "id")
NAME_FIELDS = ("name", "名称", "网格名称", "title", "label")
PARENT_FIELDS = ("parent_code", "parent", "上级编码", "所属网格", "parent_id")
STAFF_FIELDS = ("staff", "网格员", "网格长", "负责人", "manager")
PHONE_FIELDS = ("phone", "电话", "联系电话", "tel")


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


def read_layer(data: bytes, *, level: Level, filename: str = "upload.geojson",
               options: ReadOptions = ReadOptions(), **fields: Any) -> Layer:
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
    try:
        checked = check_features(source, codes=table.codes, names=table.names if choice.name else None,
                                 crs=options.crs, service_area=options.service_area, filename=filename)
        units = _assemble(checked.frame, table)
    except (MemoryError, RecursionError, OverflowError) as exc:     # the caps should keep these away
        log.warning("checking %s exhausted %s", filename, type(exc).__name__)
        raise InvalidInput(message(N_("{file} is too large or too intricate to check; simplify it or split it into "
                                      "smaller files"), file=filename)) from None
    # what reading the file noted (the encoding assumed, a .prj or CRS left out): warnings of the report
    notes = [Problem(kind="file_note", severity=Severity.WARNING, message=note) for note in source.warnings]
    problems = notes + checked.problems + _zero_areas(units)
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


def _choose_fields(frame: pd.DataFrame, options: ReadOptions) -> FieldChoice:
    code_field, name_field, parent_field = options.code_field, options.name_field, options.parent_field
    columns = [str(c) for c in frame.columns]
    problems = [message(N_("the file has no property {field!r} (given as the {option} option); it has: {available}"),
                        field=value, option=option, available=", ".join(columns) or "none")
                for option, value in (("code_field", code_field), ("name_field", name_field),
                                      ("parent_field", parent_field))
                if value and value not in columns]
    code = code_field or find_field(columns, CODE_FIELDS)
    if code is None:
        problems.append(message(N_("no property looks like the unit code (tried {tried}); the file has: "
                                   "{available}. Say which one with the {option} option."),
                                tried=", ".join(CODE_FIELDS), available=", ".join(columns) or "none",
                                option="code_field"))
    if problems or code is None:
        raise InvalidInput(message(N_("the file's properties do not match the options")), problems)
    return FieldChoice(code=code, name=name_field or find_field(columns, NAME_FIELDS),
                       parent=parent_field or find_field(columns, PARENT_FIELDS))


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
    """Free properties made JSON-safe: numpy scalars to Python, NaN to None, dates to ISO text.
    Plain values are taken as they are; a row holding anything else (a date, a numpy array) goes
    through pandas' JSON writer, as every row once did (0.9 ms a row: 9 s for 10,000 units)."""
    out: dict[str, Any] = {}
    for key, value in row.items():
        if isinstance(value, np.generic):
            value = value.item()
        if isinstance(value, float) and not math.isfinite(value):
            value = None
        elif value is not None and not isinstance(value, _PLAIN):
            return json.loads(pd.Series(row, dtype=object).to_json(date_format="iso", force_ascii=False))
        out[str(key)] = value
    return out


_PLAIN = (str, int, float, bool)


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
    return replace(child, units=units, parent_source="spatial")


def parent_from_children(child: Layer, level: Level, template: Layer | None) -> Layer:
    """The parent level redrawn as the union of its children (不漏一地 by construction): one unit
    per parent code the children name, its name, parent and properties kept from ``template``
    (the current version of that level) where it has the code.  Children naming no parent are in
    no unit; a code only ``template`` has is dropped (its land now belongs to other codes)."""
    linked = child.units[child.units["parent_code"].notna()]
    codes = sorted(set(linked["parent_code"]))
    shapes = np.array([_union(linked.geometry[linked["parent_code"] == c].to_numpy()) for c in codes], dtype=object)
    known = template.units.drop_duplicates("code").set_index("code") if template is not None else None
    kept = [known.loc[c] if known is not None and c in known.index else None for c in codes]
    units = gpd.GeoDataFrame({
        "code": texts(codes), "name": texts(c if k is None else k["name"] for c, k in zip(codes, kept)),
        "parent_code": texts(None if k is None else k["parent_code"] for k in kept), "area_m2": 0.0,
        "properties": pd.Series([{} if k is None else dict(k["properties"]) for k in kept], dtype=object),
    }, geometry=gpd.GeoSeries(shapely.orient_polygons(shapes), crs=4326))
    if len(units):
        units["area_m2"] = areas_m2(units)
    return Layer(level=level, units=units, parent_source=template.parent_source if template is not None else None)


def _union(shapes: np.ndarray) -> shapely.Geometry:
    """The union of one parent's children: exact and fast when they form a valid coverage."""
    union = shapely.coverage_union_all(shapes) if shapely.coverage_is_valid(shapes) else shapely.union_all(shapes)
    parts = shapely.get_parts(union)
    return shapely.union_all(parts[shapely.get_type_id(parts) >= 3])     # polygonal parts only


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
