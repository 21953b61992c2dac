"""Real data: Boston's 2015 wards and precincts, and ~21k 311 requests, through the service.

Boston is the nearest public stand-in for Chinese grid data (see shared/domain.md): 22 wards
play the grids, 255 precincts the micro-grids, and every 311 request carries the ward and
precinct the city assigned, so our spatial join can be checked against real answers and
against a plain ``geopandas.sjoin`` computed independently here.

The data lives in ``../shared/data/boston-2015`` beside the repository and is never copied in;
without it the module is skipped.  Run with ``-s`` to see the agreement figures.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import geopandas
import numpy as np
import pandas
import pytest
import shapely

from gridmap.assignment import AssignmentIndex
from gridmap.changes import LayerOptions
from gridmap.cleaning import CleanOptions
from gridmap.errors import InvalidInput
from gridmap.hotspots import contiguity
from gridmap.levels import Level
from gridmap.problems import Report
from gridmap.service import Gridmap, ReportResult
from gridmap.storage import open_store

from .conftest import database_url

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "boston-2015"
INCIDENT_FILES = sorted((DATA / "incidents").glob("*.csv"))
# The city's files overlap themselves: neighbouring wards by up to 111.7 m² (9 pairs above 1 m²),
# precincts by up to 956.2 m² (tests/test_validation_boston.py checks the figures).  Overlaps block
# a commit at the default 1 m² tolerance; a planner cleans the files on upload (the defaults: gaps
# under 2 m filled, corners under 0.1 m snapped), and they commit at the default tolerance.
WARDS = LayerOptions(filename="wards.geojson", code_field="WARD", clean=CleanOptions())
PRECINCTS = LayerOptions(filename="precincts.geojson", crs="EPSG:2249", code_field="WARD_PRECINCT",
                         clean=CleanOptions())

pytestmark = pytest.mark.skipif(
    not (DATA / "wards.geojson").is_file() or len(INCIDENT_FILES) != 9,
    reason=f"Boston 2015 data not found at {DATA} (it lives in ../shared beside the repository)")

# Checked independently with geopandas in EPSG:26986: precinct 0115 is the Boston Harbor
# islands (~1.9 km², a MultiPolygon 1.2 km from the nearest ward); wards.geojson does not cover
# them, so 0115 has no parent ward and the import warns about it.  The other 254 precincts all
# lie mostly in the ward their code names ("0113" → ward "1").
ORPHAN_PRECINCTS = ["0115"]
PRECINCTS_IN_NAMED_WARD = 254
# Floors just under what was measured (98.959% and 93.697%, printed with -s); plain sjoin
# measures the same, so the shortfall is in the data (city labels vs. these boundary files).
WARD_AGREEMENT_MIN = 98.9
PRECINCT_AGREEMENT_MIN = 93.6


@dataclass
class Boston:
    svc: Gridmap
    results: dict[str, ReportResult]
    precinct_warnings: list[str]
    reports: dict[Level, Report]


@pytest.fixture(scope="module")
def boston(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Boston]:
    """Wards as grids, precincts as micro-grids, then all nine request files, as a user would."""
    path = tmp_path_factory.mktemp("boston") / "g.db"
    svc = Gridmap(open_store(database_url(path)))
    wards = svc.import_layer(Level.GRID, (DATA / "wards.geojson").read_bytes(), WARDS)
    summary = svc.import_layer(Level.MICRO_GRID, (DATA / "precincts.geojson").read_bytes(), PRECINCTS)
    results = {f.name: svc.import_incidents(f.read_bytes(), filename=f.name) for f in INCIDENT_FILES}
    yield Boston(svc, results, [str(w.message) for w in summary.report.warnings],
                 {Level.GRID: wards.report, Level.MICRO_GRID: summary.report})
    svc.store.close()


@pytest.fixture(scope="module")
def city() -> pandas.DataFrame:
    """Every request as the city published it, with its ward and precinct labels as our codes."""
    raw = pandas.concat([pandas.read_csv(f, dtype=str, keep_default_na=False) for f in INCIDENT_FILES],
                        ignore_index=True)
    ward = pandas.to_numeric(raw["ward"].str.extract(r"^(?:Ward )?(\d{1,2})$")[0])
    precinct = pandas.to_numeric(raw["precinct"].str.extract(r"^(\d{3,4})(?:\.0)?$")[0])
    position = raw["LATITUDE"] + "," + raw["LONGITUDE"]
    return pandas.DataFrame({
        "external_id": raw["CASE_ENQUIRY_ID"],
        "lon": raw["LONGITUDE"].astype(float), "lat": raw["LATITUDE"].astype(float),
        # the geocoder's placeholder: requests it could not place all sit on one spot (City Hall)
        "placeholder": position == position.value_counts().idxmax(),
        "ward": ward.map(lambda v: None if pandas.isna(v) else str(int(v))),
        "precinct": precinct.map(lambda v: None if pandas.isna(v) else f"{int(v):04d}"),
    })


def test_precincts_without_crs_are_refused_and_change_nothing(boston: Boston) -> None:
    store = boston.svc.store
    before_meta, before_incidents = store.layer_meta(), boston.svc.incidents()

    with pytest.raises(InvalidInput) as refused:
        boston.svc.import_layer(Level.MICRO_GRID, (DATA / "precincts.geojson").read_bytes(),
                                LayerOptions(filename="precincts.geojson", code_field="WARD_PRECINCT"))

    assert "cannot be longitude/latitude" in str(refused.value)
    assert "precincts.geojson" in str(refused.value)
    assert store.layer_meta() == before_meta
    pandas.testing.assert_frame_equal(boston.svc.incidents(), before_incidents)


def test_layers_counts_parents_and_areas(boston: Boston) -> None:
    layers = boston.svc.store.layers()
    wards, precincts = layers[Level.GRID].units, layers[Level.MICRO_GRID].units
    orphans = precincts.loc[precincts["parent_code"].isna(), "code"].tolist()
    parented = precincts.loc[precincts["parent_code"].notna()]
    in_named_ward = (parented["parent_code"] == parented["code"].str[:2].astype(int).astype(str)).sum()
    reference = geopandas.read_file(DATA / "wards.geojson").to_crs("EPSG:26986").area.sum()

    assert (len(wards), len(precincts)) == (22, 255)
    assert sorted(wards["code"], key=int) == [str(n) for n in range(1, 23)]
    assert orphans == ORPHAN_PRECINCTS
    assert any("0115" in w for w in boston.precinct_warnings)
    assert in_named_ward == PRECINCTS_IN_NAMED_WARD
    assert wards["area_m2"].sum() == pytest.approx(reference, rel=0.005)


def test_every_row_is_stored_or_reported(boston: Boston, city: pandas.DataFrame) -> None:
    for path in INCIDENT_FILES:
        result = boston.results[path.name]
        rows = len(pandas.read_csv(path))
        numbered = sorted([item.row for item in result.items] + [error.row for error in result.errors])
        assert len(result.items) + len(result.errors) == rows, path.name
        assert numbered == list(range(2, rows + 2)), path.name   # CSV lines, header = 1
    assert boston.svc.store.count_incidents() == city["external_id"].nunique()


def test_reimporting_a_file_creates_nothing(boston: Boston) -> None:
    path = DATA / "incidents" / "overflowing-or-un-kept-dumpster.csv"
    count = boston.svc.store.count_incidents()

    again = boston.svc.import_incidents(path.read_bytes(), filename=path.name)

    assert again.created == 0
    assert [i.id for i in again.items] == [i.id for i in boston.results[path.name].items]
    assert [i.units for i in again.items] == [i.units for i in boston.results[path.name].items]
    assert boston.svc.store.count_incidents() == count


def test_a_file_read_by_an_import_worker_finds_every_request_with_its_units(boston: Boston, monkeypatch) -> None:
    # the big-file path (gridmap.import_worker): read and assigned in another process, a thousand
    # rows at a time, against the layers it is sent
    from gridmap import import_worker, incidents
    monkeypatch.setattr(incidents, "CHUNK_ROWS", 1000)
    path = DATA / "incidents" / "street-light-outages.csv"
    layers = list(boston.svc.layers().values())
    read = dict(data=path.read_bytes(), filename=path.name, options=incidents.FileOptions(), tz=boston.svc.tz,
                now=boston.svc._now(), encoding="utf-8-sig")
    there = list(import_worker.ImportWorker(**read).assigned(layers))
    index = AssignmentIndex(layers)
    here = [(batch, index.assign(batch.incidents.lon, batch.incidents.lat))
            for batch in incidents.incident_chunks(**read)]
    assert len(there) == len(here) == 8
    for (batch, units), (batch_here, units_here) in zip(there, here):
        assert batch.rows.tolist() == batch_here.rows.tolist()
        assert batch.incidents.external_id.tolist() == batch_here.incidents.external_id.tolist()
        assert {lv: codes.tolist() for lv, codes in units.items()} == {
            lv: codes.tolist() for lv, codes in units_here.items()}

    monkeypatch.setattr(import_worker, "PROCESS_FROM", 1)       # and through the service: all known
    count = boston.svc.store.count_incidents()
    again = boston.svc.import_incidents(path.read_bytes(), filename=path.name)
    first = boston.results[path.name]
    assert (again.created, [i.id for i in again.items]) == (0, [i.id for i in first.items])
    assert boston.svc.store.count_incidents() == count

def _sjoin_codes(points: geopandas.GeoDataFrame, units: geopandas.GeoDataFrame) -> pandas.Series:
    """The unit ``within`` which each point lies by plain sjoin; the smallest code where units overlap."""
    joined = geopandas.sjoin(points, units[["code", "geometry"]], predicate="within")
    codes = joined["code"].sort_values(kind="stable")
    return codes[~codes.index.duplicated()].reindex(points.index)


def _share(ours: pandas.Series, truth: pandas.Series) -> float:
    return float((ours.to_numpy() == truth.to_numpy()).mean() * 100)


def test_assignment_agrees_with_the_city_and_with_sjoin(boston: Boston, city: pandas.DataFrame) -> None:
    stored = boston.svc.incidents().set_index("external_id")
    ours = stored.loc[city["external_id"], ["grid", "micro_grid"]].reset_index(drop=True)
    points = geopandas.GeoDataFrame(geometry=geopandas.points_from_xy(city["lon"], city["lat"]), crs=4326)
    wards = geopandas.read_file(DATA / "wards.geojson")
    precincts = geopandas.read_file(DATA / "precincts.geojson").set_crs(2249, allow_override=True).to_crs(4326)
    reference = {"grid": _sjoin_codes(points, wards.assign(code=wards["WARD"].astype(str))),
                 "micro_grid": _sjoin_codes(points, precincts.rename(columns={"WARD_PRECINCT": "code"}))}

    figures = {}
    for level, label, floor in (("grid", "ward", WARD_AGREEMENT_MIN), ("micro_grid", "precinct",
                                                                        PRECINCT_AGREEMENT_MIN)):
        usable = ~city["placeholder"] & city[label].notna()
        truth = city.loc[usable, label]
        figures[level] = (int(usable.sum()), _share(ours.loc[usable, level], truth),
                          _share(reference[level][usable], truth))
        print(f"\nBoston {label}s: {usable.sum()} requests with real coordinates and a city label; "
              f"gridmap agrees {figures[level][1]:.3f}%, geopandas.sjoin {figures[level][2]:.3f}%")
        assert figures[level][1] >= floor
        # cleaned, the boundaries place requests at least as well as the files as published did
        assert figures[level][1] >= figures[level][2]


def test_cleaned_files_commit_at_the_default_tolerance_with_every_area_change_listed(boston: Boston) -> None:
    for level, count in ((Level.GRID, 22), (Level.MICRO_GRID, 255)):
        report, units = boston.reports[level], boston.svc.layer(level).units
        assert report.ok and not [p for p in report.problems if p.kind in ("overlap", "gap")]
        assert bool(shapely.coverage_is_valid(units.geometry.to_numpy())) and len(units) == count
        # the areas the report lists as "after" are the areas stored (test_cleaning.py checks them
        # and "before" against an independent computation)
        stored = dict(zip(units["code"], units["area_m2"]))
        assert {c.code: c.after_m2 for c in report.cleaning.changes} == {
            c.code: stored[c.code] for c in report.cleaning.changes}


def test_the_city_hall_placeholder_is_flagged_and_is_not_the_top_hotspot(boston: Boston, city) -> None:
    placeholder = city.loc[city["placeholder"], ["lon", "lat"]].drop_duplicates()
    assert placeholder.values.tolist() == [[-71.0587, 42.3594]]
    assert city["placeholder"].sum() == 1557            # of 20,981 requests; the next busiest spot holds 47
    stored = boston.svc.incidents()
    on_it = int(((stored["lon"] == -71.0587) & (stored["lat"] == 42.3594)).sum())
    stacks = boston.svc.stacked_points()
    assert (stacks.lon.tolist(), stacks.lat.tolist(), stacks.count.tolist()) == ([-71.0587], [42.3594], [on_it])
    assert on_it > 1500

    precinct = boston.svc.index().locate(-71.0587, 42.3594)[Level.MICRO_GRID]
    shown, _ = boston.svc.hotspots(Level.MICRO_GRID)                     # the default: the pile left out
    counted, _ = boston.svc.hotspots(Level.MICRO_GRID, stacked=True)
    at = list(shown.codes).index(precinct)
    assert counted.counts[at] - shown.counts[at] == on_it
    # counted, the pile makes its precinct by far the busiest of the 255 (2,003 against 455 next);
    # left out (the default) it holds 446, and neither the busiest nor the top hot spot is there.
    # (Gi* counts a unit with its queen neighbours, so even counted the pile lifts its
    # neighbourhood more than the precinct alone: the top hot spot is then a neighbour.)
    assert counted.codes[int(np.argmax(counted.counts))] == precinct
    assert shown.codes[int(np.argmax(shown.counts))] != precinct
    assert shown.codes[int(np.nanargmax(shown.z))] != precinct
    layer = boston.svc.layer(Level.MICRO_GRID)
    around = {precinct, *layer.units["code"].iloc[list(contiguity(layer)[at].index)]}
    assert counted.codes[int(np.nanargmax(counted.z))] in around
