"""A candidate version of a level: what committing it would mean, worked out before anything is stored.

The recipe every boundary change goes through — a file upload, an edit in the browser, a
restore, a draft being committed: link the units to the level above, re-link the level below,
run the validation checks, reassign every stored incident against the candidate layers and
compare with the current version.  Nothing here touches the store.
"""
from __future__ import annotations

import logging
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, replace

import numpy as np
import pandas as pd
import shapely

from .assignment import AssignmentIndex
from .boundaries import derive_parents
from .cleaning import CleanOptions, clean_units
from .errors import N_, message
from .feature_checks import feature_problem
from .layer import Layer
from .levels import Level
from .problems import Problem, Report, Severity
from .storage import Assignments
from .validation import check_coverage, check_nesting
from .versions import LayerDiff, count_moves, diff_layers

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class IncidentPoints:
    """The stored incidents (ids, lon, lat) and their units under the current version of the level
    (ids, codes; None when the level has none), which the store may still be reading."""

    ids: np.ndarray
    lon: np.ndarray
    lat: np.ndarray
    current: Future       # of (ids, codes) or None


@dataclass
class Candidate:
    layer: Layer                 # linked to the level above
    report: Report
    diff: LayerDiff
    commit: Assignments          # what committing it writes besides the units
    index: AssignmentIndex | None = None   # the layers it assigned with, for incidents stored meanwhile


def build_candidate(layer: Layer, current: dict[Level, Layer], points: IncidentPoints, *,
                    tolerance_m2: float) -> Candidate:
    """Link, check, reassign and compare ``layer`` against the ``current`` layers."""
    parent, child = _nearest(current, layer.level, above=True), _nearest(current, layer.level, above=False)
    if parent is not None and layer.parent_source != "field":
        layer = derive_parents(layer, parent)
    relinked = _relinked(child, layer)
    layers = {**current, layer.level: layer, **({relinked.level: relinked} if relinked is not None else {})}
    # The checks and the comparison with the current outlines (GEOS, which lets go of Python's
    # lock) run beside the reassignment of the incidents, on both cores.  The index gets copies
    # of the outlines: it prepares them, and GEOS's prepared geometries are not safe to use from
    # two threads at once.
    with ThreadPoolExecutor(2) as pool:
        checked = pool.submit(_checked, layer, parent, child, relinked, tolerance_m2)
        compared = pool.submit(diff_layers, current.get(layer.level), layer)
        index = AssignmentIndex([_with_copied_shapes(lv) for lv in layers.values()])
        units = index.assign(points.lon, points.lat)
        codes = units[layer.level]
        moves = count_moves(points.current.result(), (points.ids, codes))
        report, diff = checked.result(), compared.result()
    diff.moves = moves
    diff.incidents, diff.assigned = len(points.ids), int(pd.notna(codes).sum())
    commit = Assignments(
        units={lv: (points.ids, c) for lv, c in units.items() if lv.depth >= layer.level.depth},
        relinked={relinked.level: dict(zip(relinked.units["code"], relinked.units["parent_code"]))}
        if relinked is not None else {},
        assigned=diff.assigned, moved=diff.moved)
    return Candidate(layer=layer, report=report, diff=diff, commit=commit, index=index)


def with_late_incidents(commit: Assignments, index: AssignmentIndex, ids: np.ndarray, lon: np.ndarray,
                        lat: np.ndarray) -> Assignments:
    """``commit`` with the incidents stored after it was computed (``ids``, in another process or
    thread, assigned then under the old version) assigned too, with the same ``index``."""
    if not len(ids):
        return commit
    units = index.assign(lon, lat)
    return replace(commit, units={lv: (np.concatenate([old_ids, ids]), np.concatenate([codes, units[lv]]))
                                  for lv, (old_ids, codes) in commit.units.items()})


def _checked(layer: Layer, parent: Layer | None, child: Layer | None, relinked: Layer | None,
             tolerance_m2: float) -> Report:
    """The validation report of ``layer``: its own units, with the level above, with the level below."""
    report = Report(list(layer.problems), cleaning=layer.cleaning)
    report.add(check_coverage(layer, tolerance_m2=tolerance_m2))
    if parent is not None:
        report.add(check_nesting(layer, parent, tolerance_m2=tolerance_m2))
    if child is not None:
        report.add(_about_level_below(check_nesting(relinked or child, layer, tolerance_m2=tolerance_m2), child))
    return report


def _with_copied_shapes(layer: Layer) -> Layer:
    units = layer.units.copy()
    units["geometry"] = shapely.from_wkb(shapely.to_wkb(units.geometry.to_numpy()))
    return replace(layer, units=units)


def without_levels(commit: Assignments, levels: set[Level]) -> Assignments:
    """``commit`` less what it would write for ``levels``: in a change that saves several levels
    at once, each level's assignments and parents come from its own new version."""
    return replace(commit, units={lv: v for lv, v in commit.units.items() if lv not in levels},
                   relinked={lv: v for lv, v in commit.relinked.items() if lv not in levels})


def _relinked(child: Layer | None, layer: Layer) -> Layer | None:
    """The level below, re-linked to ``layer`` when its parents are derived spatially (or were
    never set because it came first); one whose file named its parents keeps them."""
    if child is None or child.parent_source not in (None, "spatial"):
        return None
    return derive_parents(child, layer)


def _about_level_below(problems: list[Problem], child: Layer) -> list[Problem]:
    """Problems of the stored level below never block this level's commit (the level below is
    redrawn next, and blocking would make renaming a parent impossible): they are warnings that
    say which level they are about."""
    return [replace(p, severity=Severity.WARNING, feature=None,
                    message=message(N_("stored {level}: {problem}"), level=child.level.noun, problem=p.message))
            for p in problems]


def _nearest(current: dict[Level, Layer], level: Level, *, above: bool) -> Layer | None:
    levels = [lv for lv in current if (lv.depth < level.depth if above else lv.depth > level.depth)]
    if not levels:
        return None
    return current[max(levels, key=lambda lv: lv.depth) if above else min(levels, key=lambda lv: lv.depth)]


def clean_layer(layer: Layer, options: CleanOptions) -> Layer:
    """``layer`` with its overlaps, slivers and nearly-shared edges cleaned (GEOS CoverageCleaner),
    and the record of every unit's area change.  A unit cleaning leaves with no land is an error:
    committing would drop it without a word."""
    units, cleaning = clean_units(layer.units, options)
    empty = units["area_m2"] <= 0
    gone = [feature_problem("cleaned_away", Severity.ERROR, N_(
        "{where} has no land left after cleaning: all of it lay under neighbouring units, and cleaning gave "
        "each overlap to a neighbour. Fix the file: redraw this unit, or remove it if it is not meant to exist"),
        int(i), code)
        for i, code in zip(units.index[empty], units["code"][empty])]
    log.info("cleaned %d %s units: %d changed", len(units), layer.level.value, len(cleaning.changes))
    return replace(layer, units=units[~empty], problems=layer.problems + gone, cleaning=cleaning)
