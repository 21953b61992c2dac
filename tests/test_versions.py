"""Comparing versions: units added/removed/renamed/reshaped, and incidents moving between units."""
from __future__ import annotations

import numpy as np
import pytest
from pyproj import Geod
from shapely import box

from gridmap.boundaries import read_layer
from gridmap.levels import Level
from gridmap.versions import Move, count_moves, diff_layers

from .conftest import CELLS, feature_collection

GEOD = Geod(ellps="WGS84")


def area(geometry) -> float:
    return abs(GEOD.geometry_area_perimeter(geometry)[0])


def layer(units: dict[str, tuple[str, object]]):
    return read_layer(feature_collection([({"code": c, "name": n}, g) for c, (n, g) in units.items()]),
                      level=Level.MICRO_GRID)


def test_units_are_compared_by_code():
    old = layer({c: (f"微网格{c}", g) for c, g in CELLS.items()})
    # W-S moves its north edge up by 0.002°, W-N shrinks to match, E-N is renamed, E-S removed, X added.
    new = layer({"W-S": ("微网格W-S", box(0, 0, 0.01, 0.012)), "W-N": ("微网格W-N", box(0, 0.012, 0.01, 0.02)),
                 "E-N": ("东北", CELLS["E-N"]), "X": ("新", CELLS["E-S"])})
    diff = diff_layers(old, new)
    assert [c.code for c in diff.added] == ["X"] and [c.code for c in diff.removed] == ["E-S"]
    assert [(c.code, c.old_name, c.name) for c in diff.renamed] == [("E-N", "微网格E-N", "东北")]
    strip = area(box(0, 0.01, 0.01, 0.012))
    assert [(c.code, round(c.changed_m2, 1)) for c in diff.reshaped] == [("W-S", round(strip, 1)),
                                                                          ("W-N", round(strip, 1))]
    ws = diff.reshaped[0]
    assert ws.area_m2 - ws.old_area_m2 == pytest.approx(strip, rel=1e-6)
    assert diff.unchanged == 0
    assert diff.as_dict()["renamed"] == [{"code": "E-N", "name": "东北", "old_name": "微网格E-N"}]


def test_first_version_adds_everything_and_identical_versions_change_nothing():
    first = layer({c: (c, g) for c, g in CELLS.items()})
    diff = diff_layers(None, first)
    assert [c.code for c in diff.added] == list(CELLS) and not (diff.removed or diff.renamed or diff.reshaped)
    again = diff_layers(first, layer({c: (c, g) for c, g in CELLS.items()}))
    assert (again.changed, again.unchanged) == (False, 4)


def test_moves_are_grouped_from_to_and_count_incidents_outside():
    old = (np.array([1, 2, 3, 4, 5]), np.array(["A", "A", "B", None, "B"], dtype=object))
    new = (np.array([1, 2, 3, 4, 5, 6]), np.array(["B", "B", "B", "A", None, "C"], dtype=object))
    assert count_moves(old, new) == [Move("A", "B", 2), Move(None, "A", 1), Move(None, "C", 1), Move("B", None, 1)]
    assert count_moves(None, (np.array([1, 2]), np.array(["A", None], dtype=object))) == [Move(None, "A", 1)]
    assert count_moves(old, old) == []


def test_a_unit_that_self_touches_once_projected_is_still_compared():
    # The editor can snap a corner onto the unit's own edge: valid in lon/lat to GEOS, it may not be
    # once projected.  (G03-3 of the demo after such a drag; it made the diff raise a TopologyException.)
    from shapely import Polygon
    ring = [(111.8683411, 34.7447168), (111.8701044, 34.7447528), (111.8701975, 34.7459632),
            (111.8684741, 34.7459335), (111.86873592963441, 34.744724860947784), (111.8683411, 34.7447168)]
    old = layer({"G03-3": ("a", box(111.8683411, 34.7447168, 111.8701975, 34.7459632))})
    new = layer({"G03-3": ("a", Polygon(ring))})
    (reshaped,) = diff_layers(old, new).reshaped
    assert reshaped.changed_m2 > 0
