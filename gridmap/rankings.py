"""Rankings (月评比 at a glance): the units with the most incidents.

Pure functions over counts per unit code (what the store counts: ``Gridmap.unit_counts``), so
the map page, a report or a test get the same numbers without holding the incidents.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping

import numpy as np
import pandas as pd

from .boundaries import staff_of
from .layer import Layer


@dataclass(frozen=True)
class RankedUnit:
    code: str
    name: str
    staff: str
    count: int


def counts_in_order(layer: Layer, counts: Mapping[str, int]) -> np.ndarray:
    """``counts`` (incidents per unit code; absent codes hold none) in the layer's unit order."""
    series = pd.Series(counts, dtype="int64") if counts else pd.Series(dtype="int64")
    return series.reindex(layer.units["code"], fill_value=0).to_numpy(dtype=np.int64)


def top_units(layer: Layer, counts: Mapping[str, int], *, top: int = 10) -> list[RankedUnit]:
    """The ``top`` units of ``layer`` with the most incidents by ``counts``, most first (ties by
    code); units without incidents are not ranked."""
    units = layer.units
    held = counts_in_order(layer, counts)
    codes = units["code"].to_numpy(dtype=object)
    order = [i for i in np.lexsort((codes.astype(str), -held)) if held[i] > 0][:top]
    return [RankedUnit(code=codes[i], name=units["name"].iat[i],
                       staff=staff_of(units["properties"].iat[i])["staff"] or "", count=int(held[i]))
            for i in order]
