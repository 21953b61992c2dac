"""Stacked coordinates (geocoder placeholders) found from the points alone."""
from __future__ import annotations

import numpy as np

from gridmap.quality import stacked_points


def spread(n: int, start: float = 0.0) -> tuple[list[float], list[float]]:
    """n points on distinct coordinates."""
    return [start + i * 1e-4 for i in range(n)], [0.0] * n


def test_a_pile_far_above_the_datas_own_spread_is_stacked():
    lon, lat = spread(200)
    lon += [1.5] * 60 + [2.5] * 49 + [3.5] * 120
    lat += [1.0] * 60 + [2.0] * 49 + [3.0] * 120
    found = stacked_points(np.array(lon), np.array(lat))
    # 203 coordinates: 200 hold one point; the 99th percentile (the 200th smallest count) is 1 and
    # the threshold max(50, 10 × 1) = 50: the piles of 120 and 60 are stacked, the 49 is not
    assert found.threshold == 50
    assert (found.lon.tolist(), found.lat.tolist(), found.count.tolist()) == ([3.5, 1.5], [3.0, 1.0], [120, 60])


def test_a_busy_block_in_busy_data_is_not_a_placeholder():
    # every coordinate holds 20 (rounded coordinates on a busy street): the threshold is 10 × 20
    lon, lat = spread(300)
    lon, lat = lon * 20 + [9.0] * 199, lat * 20 + [9.0] * 199
    found = stacked_points(np.array(lon), np.array(lat))
    assert found.threshold == 200 and len(found) == 0
    found = stacked_points(np.array(lon + [9.0]), np.array(lat + [9.0]))
    assert found.count.tolist() == [200]


def test_missing_coordinates_are_left_out_and_nothing_is_no_stack():
    # one coordinate left: nothing to compare it with, so the threshold is its own count × 10
    found = stacked_points(np.array([np.nan] * 80 + [1.0] * 60), np.array([np.nan] * 80 + [1.0] * 60))
    assert (found.count.tolist(), found.threshold) == ([], 600)
    empty = stacked_points(np.empty(0), np.empty(0))
    assert (len(empty), empty.threshold) == (0, 50)


def test_a_service_finds_its_stacks_again_once_the_incidents_grew_by_a_hundredth(service):
    spread = [{"category": "litter", "lon": 0.001 * i, "lat": 0.0} for i in range(240)]
    service.report(spread + [{"category": "litter", "lon": 1.0, "lat": 1.0}] * 60)         # 300 incidents
    first = service.stacked_points()
    assert (first.lon.tolist(), first.count.tolist()) == ([1.0], [60])
    service.report([{"category": "litter", "lon": 2.0, "lat": 2.0}] * 3)      # 303: under 300 × 1.01 + 1
    assert service.stacked_points() is first
    service.report([{"category": "litter", "lon": 2.0, "lat": 2.0}] * 57)     # 360: found again
    again = service.stacked_points()
    assert (again.lon.tolist(), again.count.tolist()) == ([1.0, 2.0], [60, 60])
