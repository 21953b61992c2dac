"""Real data: Boston's 2015 311 requests imported with a mapping file, so closed cases arrive
closed with their close time and their own deadline; the closure and on-time rates per ward equal
a pandas computation straight from the city's columns (CASE_STATUS, OnTime_Status, OPEN_DT,
CLOSED_DT, TARGET_DT).  Wards play the grids.  Skipped where ../shared is absent."""
from __future__ import annotations

from pathlib import Path
from typing import Iterator

import numpy as np
import pandas
import pytest

from gridmap.incidents import FileOptions
from gridmap.levels import Level
from gridmap.mapping import ImportMapping
from gridmap.service import Gridmap
from gridmap.storage import open_store

from .conftest import database_url
from .test_boston import DATA, INCIDENT_FILES, WARDS

ROOT = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.skipif(
    not (DATA / "wards.geojson").is_file() or len(INCIDENT_FILES) != 9,
    reason=f"Boston 2015 data not found at {DATA} (it lives in ../shared beside the repository)")

MAPPING = (ROOT / "docs" / "boston-mapping.toml").read_text(encoding="utf-8")     # the README's example
US = "%m/%d/%Y %I:%M:%S %p"


@pytest.fixture(scope="module")
def boston(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gridmap]:
    svc = Gridmap(open_store(database_url(tmp_path_factory.mktemp("boston-ops") / "g.db")), service_area=None)
    svc.import_layer(Level.GRID, (DATA / "wards.geojson").read_bytes(), WARDS)
    options = FileOptions(mapping=ImportMapping.parse(MAPPING, name="boston.toml"))
    for path in INCIDENT_FILES:
        result = svc.import_incidents(path.read_bytes(), filename=path.name, options=options)
        assert not result.errors, (path.name, result.errors[:3])
    yield svc
    svc.store.close()


@pytest.fixture(scope="module")
def raw() -> pandas.DataFrame:
    frame = pandas.concat([pandas.read_csv(f, dtype=str, keep_default_na=False) for f in INCIDENT_FILES],
                          ignore_index=True)
    for column in ("OPEN_DT", "CLOSED_DT", "TARGET_DT"):
        frame[column] = pandas.to_datetime(frame[column].replace("", None), format=US)
    return frame


def test_closed_cases_arrive_closed_with_their_times(boston: Gridmap, raw: pandas.DataFrame) -> None:
    stored = boston.incidents().set_index("external_id")
    assert len(stored) == len(raw) == 20_981
    mine = stored.loc[raw["CASE_ENQUIRY_ID"]]
    assert (mine["status"].to_numpy() == np.where(raw["CASE_STATUS"] == "Closed", "closed", "dispatched")).all()
    assert (mine["closed_at"].to_numpy() == raw["CLOSED_DT"].to_numpy(dtype="datetime64[us]")).sum() == (
        raw["CLOSED_DT"].notna().sum())
    assert mine["category"].value_counts().to_dict() == {"other": 7956 + 4284, "road_damage": 5393,
                                                         "illegal_parking": 2607, "litter": 381 + 287 + 18,
                                                         "clutter": 45, "fire_hazard": 10}


def test_closure_and_on_time_rates_per_ward_equal_the_citys_own_columns(boston: Gridmap,
                                                                          raw: pandas.DataFrame) -> None:
    # the ward each request is in, as gridmap assigned it; the figures from the city's columns alone
    ward = boston.incidents().set_index("external_id")["grid"]
    city = raw.assign(ward=ward.loc[raw["CASE_ENQUIRY_ID"]].to_numpy())
    city = city[city["ward"].notna()]
    closed = city["CASE_STATUS"] == "Closed"
    # Boston's rule, read off its own OnTime_Status: closed by TARGET_DT, or no target at all
    on_time = closed & (city["TARGET_DT"].isna() | (city["CLOSED_DT"] <= city["TARGET_DT"]))
    said = closed & city["OnTime_Status"].isin(["ONTIME", "OVERDUE"])
    assert (on_time[said] == (city["OnTime_Status"][said] == "ONTIME")).all()
    hours = (city["CLOSED_DT"] - city["OPEN_DT"]).dt.total_seconds() / 3600
    expected = pandas.DataFrame({
        "closure_rate": closed.groupby(city["ward"]).mean(),
        "on_time_rate": on_time[closed].groupby(city["ward"][closed]).mean(),
        "median_hours": hours[closed].groupby(city["ward"][closed]).median().round(2)})
    figures = {f.code: f for f in boston.performance(Level.GRID)}
    assert sorted(expected.index) == sorted(code for code, f in figures.items() if f.incidents)
    for code, row in expected.iterrows():
        f = figures[code]
        assert (f.closure_rate, f.on_time_rate, f.median_hours) == pytest.approx(
            (row["closure_rate"], row["on_time_rate"], row["median_hours"]), abs=1e-12), code
    assert sum(f.incidents for f in figures.values()) == len(city)
