"""Rankings (月评比 at a glance): incidents counted per unit, and the units with the most.

Pure functions over the incidents frame the store returns (one column per level holding each
incident's unit code), so the map page, a report or a test get the same numbers.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from .boundaries import staff_of
from .layer import Layer
from .levels import Level, deepest


@dataclass(frozen=True)
class RankedUnit:
    code: str
    name: str
    staff: str
    count: int


def unit_counts(layer: Layer, incidents: pd.DataFrame) -> np.ndarray:
    """How many of ``incidents`` each unit of ``layer`` holds, in the layer's unit order."""
    column = layer.level.value
    counts = incidents[column].value_counts() if column in incidents else pd.Series(dtype=int)
    return counts.reindex(layer.units["code"], fill_value=0).to_numpy(dtype=np.int64)


def top_units(layers: dict[Level, Layer], incidents: pd.DataFrame, *, top: int = 10) -> list[RankedUnit]:
    """The ``top`` units of the deepest level with the most incidents, most first (ties by code);
    units without incidents are not ranked."""
    level = deepest(layers)
    if level is None:
        return []
    units = layers[level].units
    counts = unit_counts(layers[level], incidents)
    order = sorted((i for i in range(len(units)) if counts[i] > 0), key=lambda i: (-counts[i], units["code"].iat[i]))
    return [RankedUnit(code=units["code"].iat[i], name=units["name"].iat[i],
                       staff=staff_of(units["properties"].iat[i])["staff"] or "", count=int(counts[i]))
            for i in order[:top]]
