"""Statistical hotspots (热点): the units where incidents concentrate more than chance would put them.

A heat map shows where incidents are; it cannot say whether a cluster is more than what the
number of units and their sizes would give by chance.  Getis-Ord Gi* can: for each unit it
compares the incidents of the unit and its neighbours with the whole level's, and a unit is a
*hot spot* when that local sum is higher than random rearrangements of the same counts give
(a *cold spot* when lower).  Here:

* the statistic is esda's ``G_Local`` with ``star=True`` (the unit counts with its neighbours),
  on binary queen contiguity built by libpysal (units sharing an edge or a corner are
  neighbours), so the numbers are exactly esda's on the same data;
* ``z`` is Gi*'s z-score (esda's ``Zs``, ArcGIS's GiZScore); the p-value comes from
  permutations (999 by default, with a fixed seed, so the same counts always give the same
  map): the observed G* against the mean and spread of G* over random rearrangements of the
  other units' counts (esda's ``p_z_sim``), two-sided (doubled), as esda recommends and as the
  confidence levels of ArcGIS's hot spot classes mean.  (esda's rank-based ``p_sim`` cannot go
  below 1/1,000 with 999 permutations, which no correction for 10,000 tests would accept.);
* a unit's class says how strong the evidence is: 99, 95 or 90 % confidence, hot or cold (the
  sign of its z-score), after a false-discovery-rate correction by default (esda's ``fdr``,
  Benjamini–Hochberg): among 10,000 micro-grids, 500 would pass an uncorrected 95 % test by
  chance alone;
* ``per="km2"`` tests incidents per square kilometre instead of counts, for levels whose units
  differ much in size; ``per="households"`` incidents per 1,000 households (户数, from the
  boundary file), where population, not land, is what the units share out.

Pure functions over counts per unit code (the store counts them), like :mod:`gridmap.rankings`;
:func:`gi_star` is the statistic alone, for any units and graph (:mod:`gridmap.hexagons` runs it on
H3 hexagons where there are no micro-grids).
"""
from __future__ import annotations

import logging
import warnings
from dataclasses import dataclass
from enum import Enum
from typing import TYPE_CHECKING, Callable, Mapping, Sequence

import numpy as np

from .errors import N_, InvalidInput, message
from .layer import Layer
from .league import households_of
from .rankings import counts_in_order

# esda, libpysal and scipy.stats are imported where used: with mapclassify they took 3 s to import,
# which every CLI command and server worker paid at start, drawing a hot spot map or not
if TYPE_CHECKING:
    from libpysal.graph import Graph

log = logging.getLogger(__name__)

#: The confidence levels of the classes, strongest first.
CONFIDENCE = (0.99, 0.95, 0.90)
#: The seed of the permutations: fixed, so a map is reproducible (and equal to esda's own run).
SEED = 12345
PERMUTATIONS = 999
PER = ("count", "km2", "households")


class SpotClass(str, Enum):
    HOT_99 = "hot_99"
    HOT_95 = "hot_95"
    HOT_90 = "hot_90"
    NONE = "none"            # not significant
    COLD_90 = "cold_90"
    COLD_95 = "cold_95"
    COLD_99 = "cold_99"

    @property
    def label(self) -> str:
        return _LABELS[self]


_LABELS = {
    SpotClass.HOT_99: N_("hot spot, confidence 99%"), SpotClass.HOT_95: N_("hot spot, confidence 95%"),
    SpotClass.HOT_90: N_("hot spot, confidence 90%"), SpotClass.NONE: N_("not significant"),
    SpotClass.COLD_90: N_("cold spot, confidence 90%"), SpotClass.COLD_95: N_("cold spot, confidence 95%"),
    SpotClass.COLD_99: N_("cold spot, confidence 99%"),
}
#: Fill colours of the classes on the map (ArcGIS's hot spot ramp: reds hot, blues cold).
HOTSPOT_COLORS = {
    SpotClass.HOT_99.value: "#d62f27", SpotClass.HOT_95.value: "#ed7551", SpotClass.HOT_90.value: "#fab984",
    SpotClass.COLD_90.value: "#c0ccbe", SpotClass.COLD_95.value: "#849eba", SpotClass.COLD_99.value: "#4575b5",
}
_HOT = {0.99: SpotClass.HOT_99, 0.95: SpotClass.HOT_95, 0.90: SpotClass.HOT_90}
_COLD = {0.99: SpotClass.COLD_99, 0.95: SpotClass.COLD_95, 0.90: SpotClass.COLD_90}


@dataclass(frozen=True)
class HotspotOptions:
    per: str = "count"               # what is tested: "count" (incidents) or "km2" (incidents per km²)
    fdr: bool = True                 # false-discovery-rate correction of the confidence levels
    permutations: int = PERMUTATIONS
    seed: int = SEED

    def __post_init__(self) -> None:
        if self.permutations != 0 and not 99 <= self.permutations <= 9999:
            raise InvalidInput(message(N_("permutations={value} is not valid; expected 0 (the normal "
                                          "approximation) or 99 to 9999"), value=self.permutations))
        if self.per not in PER:
            raise InvalidInput(message(N_("per={value!r} is not valid; expected one of: {choices}"),
                                       value=self.per, choices=", ".join(PER)))


@dataclass(frozen=True)
class Hotspots:
    """One level's units in layer order: the tested ``value``, Gi*'s z-score ``z`` and two-sided
    permutation p-value ``p`` (NaN where the test cannot run), the ``classes``, and the p-value below which
    each confidence level counted (``cutoffs``, after the FDR correction when asked)."""

    codes: np.ndarray
    counts: np.ndarray
    values: np.ndarray
    z: np.ndarray
    p: np.ndarray
    classes: np.ndarray              # SpotClass per unit
    cutoffs: dict[float, float]
    options: HotspotOptions


def contiguity(layer: Layer) -> Graph:
    """Binary queen contiguity between the layer's units, in layer order (libpysal)."""
    from libpysal.graph import Graph
    return Graph.build_contiguity(layer.units.geometry.reset_index(drop=True), rook=False)


def hotspots(layer: Layer, counts: Mapping[str, int], options: HotspotOptions = HotspotOptions(), *,
             graph: Graph | None = None) -> Hotspots:
    """Gi* of ``counts`` (incidents per unit code; absent codes hold none) over ``layer``."""
    held = counts_in_order(layer, counts)
    values = held.astype(float)
    if options.per == "km2":
        values = values / (layer.units["area_m2"].to_numpy(dtype=float) / 1e6)
    elif options.per == "households":
        values = 1000 * values / _households(layer)
    found = gi_star(values, graph if graph is not None else lambda: contiguity(layer), options)
    log.info("hotspots of %d %s units: %s", len(values), layer.level.value, found.summary)
    return Hotspots(codes=layer.units["code"].to_numpy(dtype=object), counts=held, values=values, z=found.z,
                    p=found.p, classes=found.classes, cutoffs=found.cutoffs, options=options)


def _households(layer: Layer) -> np.ndarray:
    """Each unit's households (户数), for incidents per 1,000 households; every unit must have them:
    a unit without would drop out of its neighbours' sums and bend everyone's statistic."""
    homes = households_of(layer.units["properties"])
    missing = [code for code, h in zip(layer.units["code"].tolist(), homes) if h is None]
    if missing:
        raise InvalidInput(message(N_("per=households needs the households (户数) of every unit; {count} units of "
                                      "the level have none (first: {codes}); give them in the boundary file's "
                                      "households property, or test per=count or per=km2"),
                                   count=len(missing), codes=", ".join(missing[:5])))
    return np.array(homes, dtype=float)


@dataclass(frozen=True)
class GiStar:
    """Gi* of some values over their graph, in the values' order: the z-score ``z`` and two-sided p-value
    ``p`` (NaN where the test cannot run), the ``classes`` (:class:`SpotClass` per value) and the p-value
    below which each confidence level counted (``cutoffs``, strongest first)."""

    z: np.ndarray
    p: np.ndarray
    classes: np.ndarray
    cutoffs: dict[float, float]

    @property
    def summary(self) -> str:
        """How many hot and cold spots, for the log."""
        kinds = [spot.value[:3] for spot in self.classes]
        return f"{kinds.count('hot')} hot, {kinds.count('col')} cold"


def gi_star(values: np.ndarray, graph: Graph | Callable[[], Graph], options: HotspotOptions) -> GiStar:
    """Gi* of ``values`` (one per unit, in the graph's order) on binary weights of ``graph``, with
    ``options``' permutations, seed and correction: the one computation behind every hot spot map
    (micro-grids, hexagons).  ``graph`` may be a function that builds it, called only when the test
    can run: at least three units, finite values, some incidents, not all equal."""
    n = len(values)
    z, p = np.full(n, np.nan), np.full(n, np.nan)
    classes = np.empty(n, dtype=object)
    classes[:] = SpotClass.NONE
    cutoffs: dict[float, float] = {}
    if n >= 3 and np.isfinite(values).all() and values.sum() > 0 and np.ptp(values) > 0:
        from esda import fdr
        from libpysal.graph import Graph
        z, p = _z_and_p(values, graph if isinstance(graph, Graph) else graph(), options)
        for confidence in reversed(CONFIDENCE):          # weakest first, so the strongest class wins
            alpha = round(1 - confidence, 2)
            cutoffs[confidence] = float(fdr(p, alpha)) if options.fdr else alpha
            significant = p < cutoffs[confidence]
            classes[significant & (z > 0)] = _HOT[confidence]
            classes[significant & (z < 0)] = _COLD[confidence]
    return GiStar(z=z, p=p, classes=classes, cutoffs=dict(sorted(cutoffs.items(), reverse=True)))


def _z_and_p(values: np.ndarray, graph: Graph, options: HotspotOptions) -> tuple[np.ndarray, np.ndarray]:
    from esda import G_Local
    with warnings.catch_warnings():      # islands (units without neighbours) are warned about
        warnings.simplefilter("ignore")
        g = G_Local(values, graph, transform="B", star=True, permutations=options.permutations,
                    seed=options.seed, n_jobs=1)
    # two-sided: from the permutations' mean and spread, or (no permutations) the normal approximation
    one_sided = g.p_z_sim if options.permutations else g.p_norm
    return np.asarray(g.Zs, dtype=float), np.minimum(1.0, 2 * np.asarray(one_sided, dtype=float))


# -- emerging hotspots -------------------------------------------------------------------------

#: Share of the periods a unit must be a hot spot in to be a lasting one (ArcGIS's rule).
LASTING_SHARE = 0.9
#: Significance of the Mann-Kendall trend of a unit's z-scores.
TREND_ALPHA = 0.05


class Trend(str, Enum):
    """How a unit's hot-spot history ends, over consecutive periods (the last one is now)."""

    NEW = "new"                      # a hot spot now, and in no period before
    INTENSIFYING = "intensifying"    # a hot spot in at least 90 % of the periods, now too, z rising
    PERSISTENT = "persistent"        # … with no significant trend
    DIMINISHING = "diminishing"      # … with z falling
    SPORADIC = "sporadic"            # a hot spot now and sometimes before, in under 90 % of the periods
    NONE = "none"                    # not a hot spot now

    @property
    def label(self) -> str:
        return _TREND_LABELS[self]


_TREND_LABELS = {
    Trend.NEW: N_("new hot spot"), Trend.INTENSIFYING: N_("intensifying hot spot"),
    Trend.PERSISTENT: N_("persistent hot spot"), Trend.DIMINISHING: N_("diminishing hot spot"),
    Trend.SPORADIC: N_("sporadic hot spot"), Trend.NONE: N_("no pattern"),
}
TREND_COLORS = {Trend.NEW.value: "#fdae61", Trend.INTENSIFYING.value: "#b2182b", Trend.PERSISTENT.value: "#d6604d",
                Trend.DIMINISHING.value: "#f4a582", Trend.SPORADIC.value: "#fddbc7"}


@dataclass(frozen=True)
class EmergingHotspots:
    """Gi* of each of ``periods`` (oldest first) and the trend of each unit (layer order): ``z``
    and ``hot`` are (units, periods); ``tau`` and ``trend_p`` the Mann-Kendall test of the z-scores."""

    codes: np.ndarray
    periods: list[str]
    counts: np.ndarray
    z: np.ndarray
    hot: np.ndarray
    tau: np.ndarray
    trend_p: np.ndarray
    trends: np.ndarray


def emerging_hotspots(layer: Layer, counts_by_period: Sequence[Mapping[str, int]], periods: Sequence[str],
                      options: HotspotOptions = HotspotOptions(), *, graph: Graph | None = None) -> EmergingHotspots:
    """Gi* per period (each as :func:`hotspots`, the same weights and seed), then each unit's
    trend: the Mann-Kendall test (Kendall's tau of its z-scores against time, scipy) over the
    periods, and its class by the rules of :class:`Trend`."""
    if len(periods) < 2 or len(periods) != len(counts_by_period):
        raise InvalidInput(message(N_("emerging hot spots need at least two periods; got {count}"),
                                   count=len(periods)))
    graph = graph if graph is not None else contiguity(layer)
    each = [hotspots(layer, counts, options, graph=graph) for counts in counts_by_period]
    z = np.column_stack([found.z for found in each])
    hot = np.column_stack([[spot.value.startswith("hot") for spot in found.classes] for found in each])
    trends, tau, trend_p = trends_of(z, hot)
    return EmergingHotspots(codes=each[0].codes, periods=list(periods), z=z, hot=hot, tau=tau, trend_p=trend_p,
                            counts=np.column_stack([found.counts for found in each]), trends=trends)


def trends_of(z: np.ndarray, hot: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Each unit's :class:`Trend` from its z-scores and hot-spot flags over the periods (both
    (units, periods), oldest first), with the Mann-Kendall test of the z-scores: Kendall's tau
    against time and its p-value (scipy), for the lasting hot spots, whose class it decides
    (NaN for the others, and with fewer than three known z-scores)."""
    from scipy.stats import kendalltau
    n, t = z.shape
    tau, trend_p = np.full(n, np.nan), np.full(n, np.nan)
    steps = np.arange(t)
    now, before, share = hot[:, -1], hot[:, :-1].any(axis=1), hot.mean(axis=1)
    lasting = now & (share >= LASTING_SHARE)
    for i in np.flatnonzero(lasting):      # the trend decides only these units' class (0.75 ms a unit)
        known = np.isfinite(z[i])
        if known.sum() >= 3 and np.ptp(z[i][known]) > 0:
            result = kendalltau(steps[known], z[i][known])
            tau[i], trend_p[i] = result.statistic, result.pvalue
    rising, falling = (trend_p < TREND_ALPHA) & (tau > 0), (trend_p < TREND_ALPHA) & (tau < 0)
    trends = np.empty(n, dtype=object)
    trends[:] = Trend.NONE
    trends[now & ~before] = Trend.NEW
    trends[now & before & ~lasting] = Trend.SPORADIC
    trends[lasting & rising] = Trend.INTENSIFYING
    trends[lasting & falling] = Trend.DIMINISHING
    trends[lasting & ~rising & ~falling] = Trend.PERSISTENT
    return trends, tau, trend_p
