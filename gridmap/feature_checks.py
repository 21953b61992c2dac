"""Feature checks: the problems of single features in a boundary file, each found and named.

Geometry that cannot be used (undecodable, empty, not a polygon, non-finite coordinates,
swapped lat/lon) is an error and the feature is left out; what can be fixed without
guessing (3D coordinates, ring orientation, self-intersections) is fixed and reported as a
warning, never silently.  Codes and names are checked here too.  The result is the usable
features in EPSG:4326, indexed by their position in the file.
"""
from __future__ import annotations

import logging
import re
from dataclasses import dataclass

import geopandas as gpd
import numpy as np
import shapely

from .coordinates import ServiceArea, areas_m2, looks_like_lonlat, to_wgs84
from .errors import N_, Message, message
from .formats import SourceFile
from .problems import Problem, Severity

log = logging.getLogger(__name__)

CW_DRIVERS = ("ESRI Shapefile",)       # the Shapefile spec winds outer rings clockwise; the others CCW
_POINT_IN_REASON = re.compile(r"\[\s*([-+\d.eE]+)\s+([-+\d.eE]+)")


@dataclass
class CheckedFeatures:
    frame: gpd.GeoDataFrame          # usable features in EPSG:4326, index = feature index
    problems: list[Problem]


def where(index: int | None, code: str | None) -> Message:
    """How a message names a feature: its index in the file and its code when it has one."""
    if code is None:
        return message(N_("feature {index}"), index=index)
    return message(N_('feature {index} (code "{code}")'), index=index, code=code)


def feature_problem(kind: str, severity: Severity, template: str, index: int, code: str | None, *,
                    location: tuple[float, float] | None = None, size_m2: float | None = None,
                    **params: object) -> Problem:
    return Problem(kind=kind, severity=severity, message=message(template, where=where(index, code), code=code,
                                                                 **params),
                   feature=index, code=code, codes=(code,) if code else (), location=location, size_m2=size_m2)


def check_features(source: SourceFile, *, codes: list[str | None], names: list[str | None] | None, crs: str | None,
                   service_area: ServiceArea | None, filename: str) -> CheckedFeatures:
    """Check every feature; return the usable ones, reprojected and normalised, with all problems.
    ``names`` is None when the file has no name property at all (one warning, not one per unit)."""
    problems = _code_problems(codes, names)
    usable, found = _unusable_geometry(source, codes)
    problems += found
    usable &= np.array([c is not None for c in codes], dtype=bool)
    keep = np.flatnonzero(usable)
    frame = gpd.GeoDataFrame(geometry=gpd.GeoSeries(source.geometry[usable], crs=source.crs, index=keep), index=keep)
    if frame.empty:
        return CheckedFeatures(frame.set_crs(4326, allow_override=True), problems)
    frame, found = _swapped(frame, codes, crs=crs, area=service_area)
    problems += found
    if frame.empty:
        return CheckedFeatures(frame.set_crs(4326, allow_override=True), problems)
    frame = to_wgs84(frame, crs=crs, source=filename)
    for step in (_flattened, _oriented(source.driver), _repaired):
        frame, found = step(frame, codes)
        problems += found
    frame = frame.set_geometry(shapely.orient_polygons(frame.geometry.to_numpy()), crs=4326)   # RFC 7946
    return CheckedFeatures(frame, problems + _outside_service_area(frame, service_area))


def _code_problems(codes: list[str | None], names: list[str | None] | None) -> list[Problem]:
    problems: list[Problem] = []
    first: dict[str, int] = {}
    if names is None:
        problems.append(Problem(kind="missing_name", severity=Severity.WARNING, message=message(N_(
            "the file has no name property; the codes are shown as names"))))
        names = list(codes)
    for i, (code, name) in enumerate(zip(codes, names)):
        if code is None:
            problems.append(feature_problem("missing_code", Severity.ERROR,
                                            N_("{where} has no code; every unit needs one"), i, None))
        elif code in first:
            problems.append(feature_problem("duplicate_code", Severity.ERROR, N_(
                "{where}: code {code!r} is already used by feature {first}; codes must be unique"),
                i, code, first=first[code]))
        else:
            first[code] = i
        if code is not None and name is None:
            problems.append(feature_problem("missing_name", Severity.WARNING,
                                            N_("{where} has no name; the code is shown instead"), i, code))
    return problems


def _unusable_geometry(source: SourceFile, codes: list[str | None]) -> tuple[np.ndarray, list[Problem]]:
    """Undecodable, empty, non-polygonal and non-finite geometries: errors, left out."""
    geometry = source.geometry
    usable = np.ones(len(geometry), dtype=bool)
    problems = []
    finite = _finite(geometry)
    reasons = _fatal_reasons(geometry)
    for i, geom in enumerate(geometry):
        code = codes[i]
        if i in source.undecodable:
            kind = "too_few_points" if "points" in source.undecodable[i].lower() else "bad_geometry"
            problems.append(feature_problem(kind, Severity.ERROR, N_("{where}: the geometry cannot be read: "
                                                                     "{reason}"), i, code,
                                            reason=source.undecodable[i]))
        elif geom is None or geom.is_empty:
            problems.append(feature_problem("empty_geometry", Severity.ERROR, N_(
                "expected Polygon or MultiPolygon, got an empty geometry in {where}"), i, code))
        elif geom.geom_type not in ("Polygon", "MultiPolygon"):
            problems.append(feature_problem("not_polygon", Severity.ERROR, N_(
                "expected Polygon or MultiPolygon, got {got} in {where}"), i, code, got=geom.geom_type))
        elif not finite[i]:
            problems.append(feature_problem("non_finite", Severity.ERROR, N_(
                "{where} has coordinates that are not numbers (NaN or infinity)"), i, code))
        elif (reason := reasons[i]) is not None:
            problems.append(feature_problem("too_few_points", Severity.ERROR, N_(
                "{where}: a ring has too few points ({reason}); a ring needs at least 4 positions, the last "
                "repeating the first"), i, code, location=_reason_point(reason), reason=reason))
        else:
            continue
        usable[i] = False
    return usable, problems


def _fatal_reasons(geometry: np.ndarray) -> list[str | None]:
    """GEOS's reason where a polygon is beyond repair (a ring with fewer than 4 positions)."""
    polygons = np.array([g is not None and g.geom_type in ("Polygon", "MultiPolygon") for g in geometry], dtype=bool)
    reasons: list[str | None] = [None] * len(geometry)
    for i in np.flatnonzero(polygons & ~shapely.is_valid(geometry)):
        reason = shapely.is_valid_reason(geometry[i])
        reasons[i] = reason if reason and reason.startswith("Too few points") else None
    return reasons


def _finite(geometry: np.ndarray) -> np.ndarray:
    coords, index = shapely.get_coordinates(geometry, return_index=True)   # x, y (a 2D z reads as NaN)
    finite = np.ones(len(geometry), dtype=bool)
    finite[np.unique(index[~np.isfinite(coords).all(axis=1)])] = False
    return finite


def _swapped(frame: gpd.GeoDataFrame, codes: list[str | None], *, crs: str | None,
             area: ServiceArea | None) -> tuple[gpd.GeoDataFrame, list[Problem]]:
    """Features in lon/lat whose coordinates only make sense read as (lat, lon): errors, left out."""
    if crs or (frame.crs is not None and not frame.crs.is_geographic):
        return frame, []
    bounds = frame.geometry.bounds.to_numpy()
    fits = (lambda b: area.contains(b)) if area else looks_like_lonlat
    swapped = [i for i, b in zip(frame.index, bounds) if not fits(b) and fits(b[[1, 0, 3, 2]])]
    problems = []
    for i in swapped:
        point = frame.geometry.loc[i].representative_point()
        problems.append(feature_problem(
            "swapped_coordinates", Severity.ERROR, N_("{where} reads ({x}, {y}), which looks like (latitude, "
                                                      "longitude): swap the coordinates so longitude comes first"),
            int(i), codes[i], location=(round(point.y, 7), round(point.x, 7)), x=round(point.x, 6),
            y=round(point.y, 6)))
    return frame.drop(index=swapped), problems


def _flattened(frame: gpd.GeoDataFrame, codes: list[str | None]) -> tuple[gpd.GeoDataFrame, list[Problem]]:
    has_z = shapely.has_z(frame.geometry.to_numpy())
    if not has_z.any():
        return frame, []
    problems = [feature_problem("z_dropped", Severity.WARNING, N_(
        "{where} has 3D coordinates; the heights were dropped (boundaries are 2D)"), int(i), codes[i],
        location=_point(frame.geometry.loc[i])) for i in frame.index[has_z]]
    return frame.set_geometry(shapely.force_2d(frame.geometry.to_numpy()), crs=4326), problems


def _oriented(driver: str):
    """Valid polygons whose rings are wound against the file format's own rule (Shapefile: outer
    rings clockwise; GeoJSON RFC 7946, KML, GeoPackage: counter-clockwise) are reported; every
    polygon is stored counter-clockwise.  (An invalid ring has no meaningful winding.)"""
    expect_cw = driver in CW_DRIVERS

    def step(frame: gpd.GeoDataFrame, codes: list[str | None]) -> tuple[gpd.GeoDataFrame, list[Problem]]:
        geometry = frame.geometry.to_numpy()
        wrong = shapely.is_valid(geometry) & ~shapely.equals_exact(
            geometry, shapely.orient_polygons(geometry, exterior_cw=expect_cw))
        rule = message(N_("clockwise")) if expect_cw else message(N_("counter-clockwise"))
        problems = [feature_problem("orientation", Severity.WARNING, N_(
            "{where}: rings are wound against the {fmt} rule (outer rings {rule}); normalised"), int(i),
            codes[i], location=_point(frame.geometry.loc[i]), fmt=driver, rule=rule)
            for i in frame.index[wrong]]
        return frame, problems
    return step


def _repaired(frame: gpd.GeoDataFrame, codes: list[str | None]) -> tuple[gpd.GeoDataFrame, list[Problem]]:
    """Invalid polygons (real files have self-touching rings) made valid, keeping polygonal parts.

    Never silent: each repair is a warning with GEOS's reason, where it is, and the area before
    and after (GEOS's area of the invalid ring, which cancels out across a self-intersection)."""
    geometry = frame.geometry.to_numpy()
    invalid = np.flatnonzero(~shapely.is_valid(geometry))
    if len(invalid) == 0:
        return frame, []
    fixed = geometry.copy()
    before = areas_m2(gpd.GeoDataFrame(geometry=gpd.GeoSeries(geometry[invalid], crs=4326)))
    for pos in invalid:
        parts = shapely.get_parts(shapely.make_valid(geometry[pos]))
        fixed[pos] = shapely.union_all(parts[shapely.get_type_id(parts) >= 3])   # (multi)polygons only
    after = areas_m2(gpd.GeoDataFrame(geometry=gpd.GeoSeries(fixed[invalid], crs=4326)))
    problems = []
    for pos, area_before, area_after in zip(invalid, before, after):
        i, reason = int(frame.index[pos]), shapely.is_valid_reason(geometry[pos])
        problems.append(feature_problem(
            "invalid_geometry", Severity.WARNING, N_("{where}: invalid geometry ({reason}); repaired with "
                                                     "make_valid, area {before} m² → {after} m²"), i, codes[i],
            location=_reason_point(reason) or _point(geometry[pos]),
            size_m2=round(float(area_after - area_before), 1) + 0.0,   # + 0.0: no "-0.0"
            reason=reason, before=round(float(area_before), 1), after=round(float(area_after), 1)))
    log.info("repaired %d invalid geometries", len(problems))
    return frame.set_geometry(fixed, crs=4326), problems


def _outside_service_area(frame: gpd.GeoDataFrame, area: ServiceArea | None) -> list[Problem]:
    if area is None or frame.empty or area.intersects(frame.total_bounds):
        return []
    minx, miny, maxx, maxy = (round(float(v), 4) for v in frame.total_bounds)
    return [Problem(kind="outside_service_area", severity=Severity.WARNING, message=message(N_(
        "the file lies at ({minx}, {miny}) – ({maxx}, {maxy}), outside the service area {area}; check its "
        "coordinate reference system"), minx=minx, miny=miny, maxx=maxx, maxy=maxy, area=str(area)),
        location=_point(shapely.box(*frame.total_bounds)))]


def _point(geometry: shapely.Geometry) -> tuple[float, float]:
    point = shapely.point_on_surface(geometry)
    return (round(point.x, 7), round(point.y, 7))


def _reason_point(reason: str) -> tuple[float, float] | None:
    found = _POINT_IN_REASON.search(reason)
    return (round(float(found[1]), 7), round(float(found[2]), 7)) if found else None
