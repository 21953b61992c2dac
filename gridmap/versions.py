"""Comparing two versions of a level: which units were added, removed, renamed or reshaped,
and how many incidents would move from one unit to another.

The unit comparison goes by code (a unit keeps its code across versions, like MapIt's
boundary generations); the incident moves compare each incident's unit under both versions.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any, Mapping

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely

from .coordinates import equal_area_crs
from .layer import Layer

log = logging.getLogger(__name__)

RESHAPE_MIN_M2 = 0.01     # below this a change of outline is float noise (e.g. a format round trip)


@dataclass(frozen=True)
class UnitChange:
    code: str
    name: str
    old_name: str | None = None
    area_m2: float | None = None
    old_area_m2: float | None = None
    changed_m2: float | None = None      # area of the symmetric difference of old and new outline

    def as_dict(self) -> dict[str, Any]:
        rounded = {k: round(v, 1) if isinstance(v, float) else v for k, v in self.__dict__.items()}
        return {k: v for k, v in rounded.items() if v is not None}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> UnitChange:
        return cls(code=data["code"], name=data["name"], old_name=data.get("old_name"), area_m2=data.get("area_m2"),
                   old_area_m2=data.get("old_area_m2"), changed_m2=data.get("changed_m2"))


@dataclass(frozen=True)
class Move:
    """``count`` incidents would go from unit ``source`` to unit ``target`` (None: outside every unit)."""

    source: str | None
    target: str | None
    count: int


@dataclass
class LayerDiff:
    added: list[UnitChange] = field(default_factory=list)
    removed: list[UnitChange] = field(default_factory=list)
    renamed: list[UnitChange] = field(default_factory=list)
    reshaped: list[UnitChange] = field(default_factory=list)
    unchanged: int = 0
    moves: list[Move] = field(default_factory=list)
    incidents: int | None = None     # stored incidents the change was worked out for
    assigned: int | None = None      # how many of them fall inside a unit of the new version

    @property
    def moved(self) -> int:
        return sum(m.count for m in self.moves)

    @property
    def changed(self) -> bool:
        return bool(self.added or self.removed or self.renamed or self.reshaped)

    def as_dict(self) -> dict[str, Any]:
        return {"added": [c.as_dict() for c in self.added], "removed": [c.as_dict() for c in self.removed],
                "renamed": [c.as_dict() for c in self.renamed], "reshaped": [c.as_dict() for c in self.reshaped],
                "unchanged": self.unchanged, "moved": self.moved,
                "moves": [{"from": m.source, "to": m.target, "count": m.count} for m in self.moves],
                "incidents": self.incidents, "assigned": self.assigned}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> LayerDiff:
        """A diff as stored with its version (``as_dict``'s output)."""
        changes = {kind: [UnitChange.from_dict(c) for c in data[kind]]
                   for kind in ("added", "removed", "renamed", "reshaped")}
        return cls(**changes, unchanged=data["unchanged"],
                   moves=[Move(m["from"], m["to"], m["count"]) for m in data["moves"]],
                   incidents=data.get("incidents"), assigned=data.get("assigned"))


def diff_layers(old: Layer | None, new: Layer) -> LayerDiff:
    """The units of ``new`` against those of ``old`` (None: the level had no version yet)."""
    before = _by_code(old.units) if old is not None else _by_code(new.units.iloc[:0])
    after = _by_code(new.units)
    both = after.index.intersection(before.index)
    added = after.loc[after.index.difference(before.index, sort=False)]
    removed = before.loc[before.index.difference(after.index, sort=False)]
    old_names, new_names = before.loc[both, "name"].to_numpy(), after.loc[both, "name"].to_numpy()
    old_areas, new_areas = before.loc[both, "area_m2"].to_numpy(float), after.loc[both, "area_m2"].to_numpy(float)
    diff = LayerDiff(
        added=[UnitChange(c, n, area_m2=float(a)) for c, n, a in zip(added.index, added["name"], added["area_m2"])],
        removed=[UnitChange(c, n, area_m2=float(a))
                 for c, n, a in zip(removed.index, removed["name"], removed["area_m2"])],
        renamed=[UnitChange(c, n, old_name=o) for c, n, o in zip(both, new_names, old_names) if n != o])
    changed = _changed_areas(before.loc[both], after.loc[both])
    diff.reshaped = [UnitChange(c, n, area_m2=float(a), old_area_m2=float(o), changed_m2=float(m2))
                     for c, n, a, o, m2 in zip(both, new_names, new_areas, old_areas, changed) if m2 > RESHAPE_MIN_M2]
    touched = {c.code for c in diff.renamed + diff.reshaped}
    diff.unchanged = sum(c not in touched for c in both)
    return diff


def _by_code(units: gpd.GeoDataFrame) -> gpd.GeoDataFrame:
    return units.drop_duplicates("code").set_index("code")


def _changed_areas(before: gpd.GeoDataFrame, after: gpd.GeoDataFrame) -> np.ndarray:
    """Area (m²) of the symmetric difference of each unit's old and new outline."""
    if before.empty:
        return np.zeros(0)
    crs = equal_area_crs(pd.concat([before[["geometry"]], after[["geometry"]]]).set_crs(4326, allow_override=True))
    same = shapely.equals_exact(before.geometry.to_numpy(), after.geometry.to_numpy(), tolerance=0)
    changed = np.zeros(len(before))
    if same.all():
        return changed
    # a ring valid in lon/lat can self-touch once projected; repair so GEOS can compare
    old = shapely.make_valid(before.geometry[~same].to_crs(crs).to_numpy())
    new = shapely.make_valid(after.geometry[~same].to_crs(crs).to_numpy())
    changed[~same] = shapely.area(shapely.symmetric_difference(old, new))
    return changed


def count_moves(old: tuple[np.ndarray, np.ndarray] | None, new: tuple[np.ndarray, np.ndarray]) -> list[Move]:
    """Incidents whose unit differs between two assignments ``(incident ids, codes)``, grouped
    by from → to, most first.  An incident missing from ``old`` counts as coming from None."""
    ids, codes = new
    target = _text(codes)
    source = np.full(len(ids), _OUT, dtype=object)
    if old is not None and len(old[0]):
        where = pd.Index(old[0]).get_indexer(ids)          # -1: not assigned under old
        known = where >= 0
        source[known] = _text(old[1])[where[known]]
    moved = source != target
    counts = pd.DataFrame({"from": source[moved], "to": target[moved]}).groupby(["from", "to"]).size()
    return moves_of([(source or None, target or None, int(n)) for (source, target), n in counts.items()])


def moves_of(counts: list[tuple[str | None, str | None, int]]) -> list[Move]:
    """(from, to, count) rows (as a store counts them) as moves, most first, then by codes."""
    rows = sorted(counts, key=lambda row: (-row[2], row[0] or _OUT, row[1] or _OUT))
    return [Move(source, target, int(n)) for source, target, n in rows if n]


_OUT = ""      # stands for "outside every unit" while grouping (a code is never empty)


def _text(codes: np.ndarray) -> np.ndarray:
    codes = np.asarray(codes, dtype=object)
    return np.where(pd.isna(codes), _OUT, codes)
