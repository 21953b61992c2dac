"""Rankings: the units with the most incidents, from hand-made counts per unit code."""
from __future__ import annotations

from gridmap.boundaries import read_layer
from gridmap.levels import Level
from gridmap.rankings import RankedUnit, counts_in_order, top_units

from .conftest import grid_file, micro_file

# What the store counts for six incidents: W-S 2, E-N 2, E-S 1 (one incident outside every unit).
COUNTS = {"W-S": 2, "E-N": 2, "E-S": 1}


def micro():
    return read_layer(micro_file(), level=Level.MICRO_GRID)


def test_counts_are_put_in_unit_order_with_absent_units_at_zero():
    assert counts_in_order(micro(), COUNTS).tolist() == [2, 0, 1, 2]      # W-S, W-N, E-S, E-N
    assert counts_in_order(micro(), {}).tolist() == [0, 0, 0, 0]
    assert counts_in_order(read_layer(grid_file(), level=Level.GRID), {"W-S": 9}).tolist() == [0, 0]  # other level


def test_units_are_ranked_most_first_ties_by_code_without_empty_units():
    assert top_units(micro(), COUNTS) == [RankedUnit("E-N", "微网格E-N", "worker E-N", 2),
                                          RankedUnit("W-S", "微网格W-S", "worker W-S", 2),
                                          RankedUnit("E-S", "微网格E-S", "worker E-S", 1)]
    assert [u.code for u in top_units(micro(), COUNTS, top=1)] == ["E-N"]
    assert top_units(micro(), {}) == []
