"""Choropleth classes on a 3×3 block: the values by hand, the classes as mapclassify gives them."""
from __future__ import annotations

import warnings

import mapclassify
import numpy as np
import pytest

from gridmap.choropleth import choropleth
from gridmap.errors import InvalidInput

from .test_hotspots import squares

COUNTS = {"r0c0": 1, "r0c1": 2, "r0c2": 3, "r1c0": 4, "r1c1": 10, "r1c2": 20, "r2c0": 40, "r2c1": 80}   # r2c2: none


def test_quantiles_of_counts_as_mapclassify_classes_them():
    found = choropleth(squares(3), COUNTS, scheme="quantiles", k=3)
    values = [1, 2, 3, 4, 10, 20, 40, 80, 0]
    assert found.values.tolist() == values
    direct = mapclassify.Quantiles(np.array(values, dtype=float), k=3)
    assert found.classes.tolist() == direct.yb.tolist() == [0, 0, 1, 1, 1, 2, 2, 2, 0]
    assert found.bins == pytest.approx(direct.bins.tolist())


def test_density_and_closure_rate_by_hand():
    layer = squares(3, sizes=[2e6] * 9)
    density = choropleth(layer, COUNTS, measure="km2", scheme="equal_interval", k=2)
    assert density.values.tolist() == [0.5, 1, 1.5, 2, 5, 10, 20, 40, 0]
    assert density.bins == [20.0, 40.0] and density.classes.tolist() == [0, 0, 0, 0, 0, 0, 0, 1, 0]
    closed = {"r0c0": 1, "r0c1": 1, "r1c1": 5, "r2c1": 20}
    rate = choropleth(layer, COUNTS, measure="closed", closed=closed, k=2)
    assert rate.values[:8].tolist() == [1, 0.5, 0, 0, 0.5, 0, 0, 0.25] and np.isnan(rate.values[8])
    assert rate.classes[8] == -1                       # no incident: no rate, no class


def test_incidents_per_1000_households_where_the_file_gives_them():
    layer = squares(2)
    layer.units["properties"] = [{"households": 500}, {"户数": "2000"}, {"households": ""}, {}]
    counts = {"r0c0": 5, "r0c1": 4, "r1c0": 7, "r1c1": 1}
    found = choropleth(layer, counts, measure="households", scheme="equal_interval", k=2)
    assert found.values[:2].tolist() == [10.0, 2.0] and np.isnan(found.values[2:]).all()
    assert found.classes.tolist() == [1, 0, -1, -1] and found.bins == [6.0, 10.0]


def test_natural_breaks_are_the_same_every_time_and_leave_the_global_generator_alone():
    rng = np.random.default_rng(1)
    counts = dict(zip(squares(6).units["code"], rng.poisson(20, 36).tolist()))
    np.random.seed(7)
    before = np.random.get_state()[1].copy()
    first = choropleth(squares(6), counts, scheme="natural_breaks", k=4)
    assert (np.random.get_state()[1] == before).all()
    again = choropleth(squares(6), counts, scheme="natural_breaks", k=4)
    assert first.classes.tolist() == again.classes.tolist() and first.bins == again.bins
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        np.random.seed(12345)
        direct = mapclassify.NaturalBreaks(first.values, k=4)
    assert first.classes.tolist() == direct.yb.tolist()


def test_bad_options_are_named_with_what_is_expected():
    with pytest.raises(InvalidInput) as refused:
        choropleth(squares(3), COUNTS, measure="people", scheme="jenks", k=12)
    assert [str(d) for d in refused.value.details] == [
        "measure='people' is not valid; expected one of: count, km2, households, closed",
        "scheme='jenks' is not valid; expected one of: quantiles, natural_breaks, equal_interval",
        "k=12 is not valid; expected 2 to 9 classes"]


@pytest.mark.parametrize("scheme", ["quantiles", "natural_breaks", "equal_interval"])
def test_every_unit_with_the_same_value_is_one_class_at_that_value(scheme):
    found = choropleth(squares(2), {}, scheme=scheme, k=5)        # no incident anywhere (mapclassify's
    assert found.values.tolist() == [0, 0, 0, 0]                   # equal intervals refused it: a 500)
    assert found.classes.tolist() == [0, 0, 0, 0] and found.bins == [0.0]
