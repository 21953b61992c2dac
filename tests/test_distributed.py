"""Reassignment (gridmap/distributed.py, ``gridmap reassign``): the local engine and the dask engine on a
LocalCluster of two worker processes give every incident the unit a commit gives it, on the 2×2 block
(hand-computed units on shared edges and corners), on a generated million points over 4,900
micro-grids, and on Boston's 21k requests; and the store's rows become those units.
"""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import shapely
from click.testing import CliRunner

from gridmap.assignment import AssignmentIndex
from gridmap.boundaries import read_layer
from gridmap.cli import cli
from gridmap.distributed import assign_partitions, dask_client, reassign
from gridmap.errors import Conflict, NotFound
from gridmap.exports import POINT_SCHEMA, point_table, write_geoparquet
from gridmap.levels import Level
from gridmap.service import Gridmap
from gridmap.storage import open_store

from .conftest import database_url, micro_file

GRID, MICRO = Level.GRID, Level.MICRO_GRID

# Points on the 2×2 block (grids W | E at x = 0.01; micro-grids south | north at y = 0.01) and the
# units the documented rule gives them: a point several units hold goes, at the grid level, to the
# smallest code (E before W), below it to the holder whose parent is that grid, then the smallest code.
BLOCK_POINTS = [
    ((0.005, 0.005), "W", "W-S"),     # inside W-S
    ((0.01, 0.005), "E", "E-S"),      # on the W-S | E-S edge
    ((0.005, 0.01), "W", "W-N"),      # on the W-S | W-N edge, both in W: W-N < W-S
    ((0.01, 0.01), "E", "E-N"),       # the corner all four share: E, then E-N < E-S
    ((0.02, 0.02), "E", "E-N"),       # the block's outer corner
    ((0.0, 0.0), "W", "W-S"),         # the other outer corner
    ((0.015, 0.01), "E", "E-N"),      # on the E-S | E-N edge
    ((0.01, 0.02), "E", "E-N"),       # where W-N and E-N meet on the top edge
    ((0.03, 0.01), None, None),       # outside every unit
    ((0.01, 0.0), "E", "E-S"),        # where W-S and E-S meet on the bottom edge
]
EXPECTED = {GRID: [grid for _, grid, _ in BLOCK_POINTS], MICRO: [micro for _, _, micro in BLOCK_POINTS]}
IDS = list(range(1, len(BLOCK_POINTS) + 1))


@pytest.fixture(scope="module")
def client():
    """One LocalCluster (2 worker processes, 1 thread each) for the module, closed at its end."""
    with dask_client() as connected:
        yield connected


@pytest.fixture
def reported(block: Gridmap) -> Gridmap:
    result = block.report([{"lon": x, "lat": y, "category": "litter", "time": "2026-03-05 08:00"}
                           for (x, y), _, _ in BLOCK_POINTS])
    assert result.ids.tolist() == IDS
    return block


def stored(service: Gridmap, level: Level) -> list:
    ids, codes = service.store.assignments(level, 1)
    assert ids.tolist() == IDS
    return codes.tolist()


def scramble(service: Gridmap, level: Level, code: str) -> None:
    """Store ``code`` as every incident's unit (what a reassignment has to put right)."""
    with service.store.writing() as tx:
        tx.set_units(level, 1, np.array(IDS), np.array([code] * len(IDS), dtype=object))


def test_the_commit_stored_the_hand_computed_units(reported):
    assert stored(reported, GRID) == EXPECTED[GRID] and stored(reported, MICRO) == EXPECTED[MICRO]


@pytest.mark.parametrize("engine", ["local", "dask"])
@pytest.mark.parametrize("level, wrong, changed", [(MICRO, "W-S", 8), (GRID, "W", 7)])
def test_both_engines_put_every_incident_back_in_its_unit(reported, client, engine, level, wrong, changed):
    scramble(reported, level, wrong)
    done = reassign(reported, level, engine=engine, scheduler=client.scheduler.address, partition_rows=3)
    assert (done.level, done.version, done.read, done.changed) == (level, 1, 10, changed)
    assert done.ids.tolist() == IDS and done.codes.tolist() == EXPECTED[level]
    assert stored(reported, level) == EXPECTED[level]
    other = MICRO if level is GRID else GRID
    assert stored(reported, other) == EXPECTED[other]               # the other level's rows are untouched
    again = reassign(reported, level, engine=engine, scheduler=client.scheduler.address)
    assert again.changed == 0


def test_the_command_prints_what_it_read_changed_and_timed(reported, client):
    runner = CliRunner()
    run = lambda *args: runner.invoke(cli, list(args), obj=reported, catch_exceptions=False)
    scramble(reported, MICRO, "E-N")
    result = run("reassign", "--level", "micro_grid")
    lines = result.output.splitlines()
    assert lines[0] == "micro_grid version 1: read 10 incidents, 6 changed unit (written back)"
    assert [part.split()[0] for part in lines[1].removeprefix("stages: ").split(", ")] == [
        "read", "assign", "compare", "write"]
    scramble(reported, MICRO, "E-N")
    result = run("reassign", "--level", "micro_grid", "--engine", "dask", "--scheduler", client.scheduler.address,
                 "--partition-rows", "4")
    lines = result.output.splitlines()
    assert lines[0] == "micro_grid version 1: read 10 incidents, 6 changed unit (written back)"
    assert [part.split()[0] for part in lines[1].removeprefix("stages: ").split(", ")] == [
        "export", "cluster", "assign", "compare", "write"]
    assert stored(reported, MICRO) == EXPECTED[MICRO]
    refused = run("reassign", "--level", "micro_grid", "--scheduler", client.scheduler.address)
    assert refused.exit_code == 2 and "--scheduler and --workdir need --engine dask" in refused.output
    missing = run("reassign", "--level", "street")
    assert missing.exit_code == 2 and "no Street layer has been uploaded yet" in missing.stderr


def test_a_commit_meanwhile_refuses_the_write(reported):
    scramble(reported, GRID, "W")
    store = reported.store

    def commit_then_read(level, version):            # a planner commits the micro-grids as the results come in
        del store.assignments                         # (the commit reads assignments too)
        reported.import_layer(MICRO, micro_file())
        return store.assignments(level, version)

    store.assignments = commit_then_read
    with pytest.raises(Conflict, match=r"\(grid v1, micro_grid v1 then, grid v1, micro_grid v2 now\); nothing "
                                       r"was written"):
        reassign(reported, GRID)
    assert stored(reported, GRID) == ["W"] * 10


def test_a_level_without_a_version_is_not_found(service):
    with pytest.raises(NotFound, match="no Micro-grid layer has been uploaded yet"):
        reassign(service, MICRO)


# -- a generated district: a million points -------------------------------------------------------

@pytest.fixture(scope="module")
def district():
    """bench/district.py's coverage: 70 × 70 jittered micro-grids under 7 × 7 grids, parents derived."""
    from bench.assign_bench import _linked
    from bench.district import district_geojson
    grids, micro = district_geojson(70, 10)
    return _linked(read_layer(grids, level=GRID, filename="grid.geojson"),
                   read_layer(micro, level=MICRO, filename="micro_grid.geojson"))


def test_a_million_points_get_the_same_units_on_the_cluster(district, client, tmp_path):
    from bench.district import incident_points
    lon, lat = incident_points(1_000_000, n=70)
    # every vertex of the micro-grids (each shared by 2 to 4 of them) replaces a random point,
    # so the tie-breaks are compared too, not only interiors
    vertices = np.unique(shapely.get_coordinates(district[1].units.geometry.to_numpy()), axis=0)
    assert len(vertices) == 71 * 71 + 2 * 70 * 71
    lon[-len(vertices):], lat[-len(vertices):] = vertices[:, 0], vertices[:, 1]
    ids = np.arange(1, len(lon) + 1, dtype=np.int64)
    parts = (point_table(ids[k:k + 100_000], lon[k:k + 100_000], lat[k:k + 100_000]) for k in range(0, len(ids),
                                                                                                 100_000))
    assert len(write_geoparquet(parts, tmp_path / "points", POINT_SCHEMA, partition_rows=250_000).files) == 4
    local = AssignmentIndex(district).assign(lon, lat)
    found_ids, found = assign_partitions(client, tmp_path / "points", {layer.level: layer for layer in district})
    assert np.array_equal(found_ids, ids)
    for level in (GRID, MICRO):
        assert (found[level] == local[level]).all(), level
    outside = pd.isna(local[MICRO])
    assert 15_000 < outside.sum() < 25_000                  # bench/district.py puts 2 % outside
    assert (pd.isna(local[GRID]) == outside).all()


# -- Boston 2015 ------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def boston(tmp_path_factory):
    from .test_boston import DATA, INCIDENT_FILES, PRECINCTS, WARDS
    if not (DATA / "wards.geojson").is_file() or len(INCIDENT_FILES) != 9:
        pytest.skip(f"Boston 2015 data not found at {DATA} (it lives in ../shared beside the repository)")
    svc = Gridmap(open_store(database_url(tmp_path_factory.mktemp("boston") / "b.db")))
    svc.import_layer(GRID, (DATA / "wards.geojson").read_bytes(), WARDS)
    svc.import_layer(MICRO, (DATA / "precincts.geojson").read_bytes(), PRECINCTS)
    for path in INCIDENT_FILES:
        svc.import_incidents(path.read_bytes(), filename=path.name)
    yield svc
    svc.store.close()


@pytest.mark.parametrize("level", [GRID, MICRO])
def test_boston_reassigned_on_the_cluster_equals_the_local_engine(boston, client, level):
    local = reassign(boston, level)
    dask = reassign(boston, level, engine="dask", scheduler=client.scheduler.address, partition_rows=5_000)
    assert local.read == dask.read == boston.store.count_incidents() > 20_000
    assert np.array_equal(local.ids, dask.ids)
    assert (local.codes == dask.codes).all()
    assert local.changed == dask.changed == 0            # both equal what the imports stored
    assert pd.isna(local.codes).sum() < local.read * 0.02


@pytest.mark.parametrize("engine", ["local", "dask"])
def test_a_store_without_incidents_has_nothing_to_reassign(block, client, engine):
    done = reassign(block, MICRO, engine=engine, scheduler=client.scheduler.address)
    assert (done.read, done.changed, done.ids.tolist(), done.codes.tolist()) == (0, 0, [], [])
