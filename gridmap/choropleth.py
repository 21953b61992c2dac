"""Choropleths: one number per unit of a level, put in a few classes for colouring.

The numbers: incidents (``count``), incidents per km² (``km2``: fair between large and small
units), incidents per 1,000 households (``households``: where the boundary file gives them, as
``households``/``户数``; other units have no value) or the share of them closed (``closed``: 办结率,
from the status; a unit without incidents has none).  The classes come from mapclassify:
``quantiles`` (each class as many units) or ``natural_breaks`` (Jenks-like: classes where the
values bunch, 1-D k-means from ten starts with a fixed seed, so the same numbers always give the
same map) or ``equal_interval``.
"""
from __future__ import annotations

import threading
import warnings
from dataclasses import dataclass
from typing import TYPE_CHECKING, Mapping

import numpy as np

from .errors import N_, InvalidInput, message
from .layer import Layer
from .league import households_of
from .rankings import counts_in_order

if TYPE_CHECKING:
    from mapclassify.classifiers import MapClassifier

MEASURES = ("count", "km2", "households", "closed")
SCHEMES = ("quantiles", "natural_breaks", "equal_interval")
#: The fill of each class on a map (ColorBrewer YlOrRd, 5 classes; fewer classes spread over it:
#: :func:`class_color`), and of a unit without a value.
PALETTE = ("#ffffb2", "#fecc5c", "#fd8d3c", "#f03b20", "#bd0026")
NO_VALUE_COLOR = "#d9d9d9"
#: The seed of natural breaks' random starts (mapclassify draws them from numpy's global generator).
SEED = 12345
_RANDOM = threading.Lock()


@dataclass(frozen=True)
class Choropleth:
    """Each unit's ``value`` (NaN: no value) and ``classes`` (0 … k-1; -1: no value), with the
    upper bound of each class (``bins``)."""

    codes: np.ndarray
    values: np.ndarray
    classes: np.ndarray
    bins: list[float]
    measure: str
    scheme: str


def choropleth(layer: Layer, counts: Mapping[str, int], *, measure: str = "count", scheme: str = "quantiles",
               k: int = 5, closed: Mapping[str, int] | None = None) -> Choropleth:
    """Classes of ``counts`` (incidents per unit code) over ``layer``; ``closed`` (the closed
    ones per unit) for ``measure="closed"``."""
    problems = [message(N_("{key}={value!r} is not valid; expected one of: {choices}"), key=key, value=value,
                        choices=", ".join(choices))
                for key, value, choices in (("measure", measure, MEASURES), ("scheme", scheme, SCHEMES))
                if value not in choices]
    if not 2 <= k <= 9:
        problems.append(message(N_("k={value} is not valid; expected 2 to 9 classes"), value=k))
    if problems:
        raise InvalidInput(message(N_("the map's options are not valid")), problems)
    held = counts_in_order(layer, counts).astype(float)
    if measure == "km2":
        values = held / (layer.units["area_m2"].to_numpy(dtype=float) / 1e6)
    elif measure == "households":
        homes = np.array([np.nan if h is None else h for h in households_of(layer.units["properties"])])
        values = 1000 * held / homes
    elif measure == "closed":
        done = counts_in_order(layer, closed or {}).astype(float)
        values = np.divide(done, held, out=np.full(len(held), np.nan), where=held > 0)
    else:
        values = held
    known = np.isfinite(values)
    classes = np.full(len(values), -1, dtype=np.int64)
    bins: list[float] = []
    if known.any():
        found = _classify(values[known], scheme, min(k, len(np.unique(values[known]))))
        classes[known] = found.yb
        bins = [float(b) for b in found.bins]
    return Choropleth(codes=layer.units["code"].to_numpy(dtype=object), values=values, classes=classes, bins=bins,
                      measure=measure, scheme=scheme)


def _classify(values: np.ndarray, scheme: str, k: int) -> MapClassifier:
    import mapclassify  # where used, like esda (gridmap.hotspots): a second to import
    with warnings.catch_warnings():          # mapclassify's notes: numba missing, fewer classes than asked
        warnings.simplefilter("ignore")
        if scheme == "equal_interval" and values.min() < values.max():
            return mapclassify.EqualInterval(values, k=k)
        if scheme in ("quantiles", "equal_interval"):       # every value the same: one class, at that value
            return mapclassify.Quantiles(values, k=k)
        with _RANDOM:                        # its starts come from numpy's global generator
            state = np.random.get_state()
            np.random.seed(SEED)
            try:
                return mapclassify.NaturalBreaks(values, k=k)
            finally:
                np.random.set_state(state)


def class_color(index: int, classes: int) -> str | None:
    """The fill of class ``index`` of ``classes`` (None: no value), the classes spread over
    :data:`PALETTE` so that the top class is always its darkest (static/map.js does the same)."""
    if index < 0:
        return None
    at = round(index * (len(PALETTE) - 1) / (classes - 1)) if classes > 1 else len(PALETTE) - 1
    return PALETTE[at]
