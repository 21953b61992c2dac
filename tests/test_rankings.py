"""Rankings: incidents counted per unit and the units with the most, from a hand-made frame."""
from __future__ import annotations

import pandas as pd

from gridmap.boundaries import read_layer
from gridmap.levels import Level
from gridmap.rankings import RankedUnit, top_units, unit_counts

from .conftest import grid_file, micro_file

INCIDENTS = pd.DataFrame({"grid": ["W", "E", "E", None, "E", "W"],
                          "micro_grid": ["W-S", "E-N", "E-N", None, "E-S", "W-S"]}, dtype=object)


def layers() -> dict[Level, object]:
    return {Level.GRID: read_layer(grid_file(), level=Level.GRID),
            Level.MICRO_GRID: read_layer(micro_file(), level=Level.MICRO_GRID)}


def test_each_unit_counts_its_incidents_in_unit_order():
    found = layers()
    assert unit_counts(found[Level.GRID], INCIDENTS).tolist() == [2, 3]                 # W, E
    assert unit_counts(found[Level.MICRO_GRID], INCIDENTS).tolist() == [2, 0, 1, 2]     # W-S, W-N, E-S, E-N
    assert unit_counts(found[Level.GRID], INCIDENTS.iloc[:0]).tolist() == [0, 0]
    assert unit_counts(found[Level.GRID], pd.DataFrame({"micro_grid": ["W-S"]})).tolist() == [0, 0]  # no column


def test_the_deepest_level_is_ranked_most_first_ties_by_code_without_empty_units():
    assert top_units(layers(), INCIDENTS) == [RankedUnit("E-N", "微网格E-N", "worker E-N", 2),
                                              RankedUnit("W-S", "微网格W-S", "worker W-S", 2),
                                              RankedUnit("E-S", "微网格E-S", "worker E-S", 1)]
    assert [u.code for u in top_units(layers(), INCIDENTS, top=1)] == ["E-N"]
    assert top_units({}, INCIDENTS) == []
