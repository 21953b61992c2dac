"""A candidate version of a level: what committing it would mean, worked out before anything is stored.

The recipe every boundary change goes through — a file upload, an edit in the browser, a
restore, a draft being committed: link the units to the level above, re-link the level below,
run the validation checks, reassign every stored incident against the candidate layers and
compare with the current version.  Nothing here touches the store.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, replace

import numpy as np

from .assignment import AssignmentIndex
from .boundaries import Layer, derive_parents
from .errors import N_, message
from .levels import Level
from .storage import Assignments
from .validation import Problem, Report, Severity, check_coverage, check_nesting
from .versions import LayerDiff, count_moves, diff_layers

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class IncidentPoints:
    """The stored incidents (ids, lon, lat) and their units under the current version of the level."""

    ids: np.ndarray
    lon: np.ndarray
    lat: np.ndarray
    current: tuple[np.ndarray, np.ndarray] | None


@dataclass
class Candidate:
    layer: Layer                 # linked to the level above
    report: Report
    diff: LayerDiff
    commit: Assignments          # what committing it writes besides the units


def build_candidate(layer: Layer, current: dict[Level, Layer], points: IncidentPoints, *,
                    tolerance_m2: float) -> Candidate:
    """Link, check, reassign and compare ``layer`` against the ``current`` layers."""
    parent, child = _nearest(current, layer.level, above=True), _nearest(current, layer.level, above=False)
    if parent is not None and layer.parent_source != "field":
        layer = derive_parents(layer, parent)
    report = Report(list(layer.problems))
    report.add(check_coverage(layer, tolerance_m2=tolerance_m2))
    if parent is not None:
        report.add(check_nesting(layer, parent, tolerance_m2=tolerance_m2))
    relinked = _relinked(child, layer)
    if child is not None:
        report.add(_about_level_below(check_nesting(relinked or child, layer, tolerance_m2=tolerance_m2), child))
    layers = {**current, layer.level: layer, **({child.level: relinked} if relinked is not None else {})}
    units = AssignmentIndex(list(layers.values())).assign(points.lon, points.lat)
    codes = units[layer.level]
    diff = diff_layers(current.get(layer.level), layer)
    diff.moves = count_moves(points.current, (points.ids, codes))
    commit = Assignments(
        units={lv: (points.ids, c) for lv, c in units.items() if lv.depth >= layer.level.depth},
        relinked={child.level: dict(zip(relinked.units["code"], relinked.units["parent_code"]))}
        if relinked is not None else {},
        assigned=int(sum(c is not None for c in codes)), moved=diff.moved)
    return Candidate(layer=layer, report=report, diff=diff, commit=commit)


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
                    message=message(N_("stored {level}: {problem}"), level=child.level.title, problem=p.message))
            for p in problems]


def _nearest(current: dict[Level, Layer], level: Level, *, above: bool) -> Layer | None:
    levels = [lv for lv in current if (lv.depth < level.depth if above else lv.depth > level.depth)]
    if not levels:
        return None
    return current[max(levels, key=lambda lv: lv.depth) if above else min(levels, key=lambda lv: lv.depth)]
