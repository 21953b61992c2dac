"""Incident parsing: column detection, dates, categories, statuses, and every bad row reported."""
from __future__ import annotations

import json
from datetime import datetime
from zoneinfo import ZoneInfo

import pytest
from shapely import LineString, Point

from gridmap.errors import InvalidInput
from gridmap.incidents import FileOptions, Status, parse_records, read_incident_file

from .conftest import feature_collection

TZ = ZoneInfo("Asia/Shanghai")
NOW = datetime(2026, 11, 21, 9, 30)


def read_csv(text: str, encoding: str = "utf-8", **options):
    return read_incident_file(text.encode(encoding), filename="x.csv", options=FileOptions(**options), tz=TZ, now=NOW)


def test_chinese_columns_categories_and_statuses():
    batch = read_csv("经度,纬度,类别,上报时间,状态,描述\n"
                     "111.87,34.745,飞线充电,2026-03-05 08:12,办结,三号楼飞线\n"
                     "111.88,34.746,噪音扰民,2026/3/6 9:00,,夜间施工\n")
    assert batch.errors == []
    (row1, a), (row2, b) = batch.drafts
    assert (row1, a.category, a.category_raw, a.status, a.reported_at, a.description) == (
        2, "flying_cable", None, Status.CLOSED, datetime(2026, 3, 5, 8, 12), "三号楼飞线")
    assert (row2, b.category, b.category_raw, b.status, b.reported_at) == (
        3, "other", "噪音扰民", Status.REPORTED, datetime(2026, 3, 6, 9, 0))
    assert (b.lon, b.lat) == (111.88, 34.746)


def test_every_bad_row_is_reported_with_its_number_and_the_good_rows_kept():
    batch = read_csv("Longitude,LATITUDE,category,reported_at,status\n"
                     "111.87,34.745,litter,2026-03-05,closed\n"        # row 2 good
                     ",34.745,litter,2026-03-05,closed\n"              # row 3 no lon
                     "abc,34.745,litter,2026-03-05,closed\n"           # row 4 not a number
                     "211.87,34.745,litter,2026-03-05,closed\n"        # row 5 out of range
                     "111.87,34.745,litter,someday,closed\n"           # row 6 bad date
                     "111.87,34.745,litter,,closed\n"                  # row 7 no date
                     "111.87,34.745,litter,2026-03-05,lost\n")         # row 8 bad status
    assert [r for r, _ in batch.drafts] == [2]
    assert [e.as_dict() for e in batch.errors] == [
        {"row": 3, "error": "missing or non-numeric coordinates (lon=None, lat='34.745')"},
        {"row": 4, "error": "missing or non-numeric coordinates (lon='abc', lat='34.745')"},
        {"row": 5, "error": "coordinates out of range: lon=211.87, lat=34.745; expected WGS84 longitude "
                            "-180..180 and latitude -90..90"},
        {"row": 6, "error": "cannot read 'someday' as a date and time"},
        {"row": 7, "error": "missing report time (expected a date such as 2026-03-05 08:12)"},
        {"row": 8, "error": "unknown status 'lost'; expected one of reported, dispatched, in_progress, closed, "
                            "rated, rejected, duplicate"},
    ]


def test_explicit_columns_file_wide_category_and_gbk():
    batch = read_csv("东经,北纬,时间\n111.87,34.745,2026-03-05 08:00\n", encoding="gbk",
                     lon_field="东经", lat_field="北纬", category="fire_hazard")
    assert [(d.lon, d.lat, d.category) for _, d in batch.drafts] == [(111.87, 34.745, "fire_hazard")]
    batch = read_csv("x,y,time,category\n1,2,2026-01-01,litter\n", category="噪音扰民")
    assert [(d.category, d.category_raw) for _, d in batch.drafts] == [("other", "噪音扰民")]


def test_category_words_from_the_seeds_map_to_our_codes():
    batch = read_csv("lon,lat,time,类别\n1,2,2026-01-01,消防通道堵塞\n1,2,2026-01-01,车辆乱停\n"
                     "1,2,2026-01-01,乱拉线\n1,2,2026-01-01,商铺占道\n1,2,2026-01-01,\"\"\"三合一\"\"场所\"\n"
                     "1,2,2026-01-01,Flying Charging Cable\n")
    assert [(d.category, d.category_raw) for _, d in batch.drafts] == [
        ("fire_hazard", None), ("illegal_parking", None), ("private_wiring", None), ("street_stall", None),
        ("three_in_one", None), ("flying_cable", None)]


def test_unknown_coordinate_columns_are_refused_for_the_whole_file():
    with pytest.raises(InvalidInput) as caught:
        read_csv("east,north,time\n1,2,2026-01-01\n")
    assert "Say which with lon_field and lat_field" in str(caught.value.details[0])
    with pytest.raises(InvalidInput) as caught:
        read_csv("east,north,time\n1,2,2026-01-01\n", lon_field="e", lat_field="north")
    assert str(caught.value.details[0]) == (
        "no column 'e' (given as the lon_field option); the file has: east, north, time")


def test_times_with_an_offset_are_converted_to_local_wall_time():
    batch = read_csv("lon,lat,time\n1,2,2026-03-05T00:00:00Z\n1,2,2026-03-05T09:00:00+09:00\n"
                     "1,2,01/02/2015 09:27:07 AM\n")
    assert [d.reported_at for _, d in batch.drafts] == [
        datetime(2026, 3, 5, 8, 0), datetime(2026, 3, 5, 8, 0), datetime(2015, 1, 2, 9, 27, 7)]


def test_geojson_points_and_a_non_point_feature():
    data = feature_collection([
        ({"category": "litter", "reported_at": "2026-03-05 08:00", "external_id": 17}, Point(111.87, 34.745)),
        ({"category": "litter", "reported_at": "2026-03-05 08:00"}, LineString([(0, 0), (1, 1)])),
    ])
    batch = read_incident_file(data, filename="a.geojson", options=FileOptions(), tz=TZ, now=NOW)
    assert [(r, d.lon, d.lat, d.external_id) for r, d in batch.drafts] == [(0, 111.87, 34.745, "17")]
    assert [e.as_dict() for e in batch.errors] == [{"row": 1, "error": "expected a Point geometry, got LineString"}]


def test_api_records_default_the_time_and_require_a_category():
    batch = parse_records([
        {"category": "clutter", "lon": 111.87, "lat": 34.745},
        {"lon": 111.87, "lat": 34.745},
        "not an object",
        {"category": "clutter", "lon": 111.87, "lat": 34.745, "status": "in_progress",
         "reported_at": "2026-11-20T10:00:00+08:00", "external_id": "W-1", "description": "楼道堆物"},
    ], tz=TZ, now=NOW)
    assert [(r, d.reported_at, d.status, d.external_id) for r, d in batch.drafts] == [
        (0, NOW, Status.REPORTED, None), (3, datetime(2026, 11, 20, 10), Status.IN_PROGRESS, "W-1")]
    assert [e.row for e in batch.errors] == [1, 2]
    assert batch.errors[0].as_dict()["error"].startswith("missing category; expected one of illegal_parking,")
    assert batch.errors[1].as_dict()["error"] == "expected a JSON object, got str"


def test_empty_csv_is_refused():
    with pytest.raises(InvalidInput, match="x.csv has no rows"):
        read_csv("lon,lat,time\n")
    errors = [e.as_dict() for e in read_csv("lon,lat,time\n1,2,x\n").errors]
    assert errors == [{"row": 2, "error": "cannot read 'x' as a date and time"}]
    assert json.loads(json.dumps(errors)) == errors         # JSON-safe as the API sends it


def test_trailing_commas_and_blank_lines_keep_the_real_line_numbers():
    batch = read_csv("category,lon,lat,reported_at\nlitter,1,2,2026-01-01,\n\nlitter,x,2,2026-01-01,\n")
    assert [r for r, _ in batch.drafts] == [2]
    assert [e.row for e in batch.errors] == [4]


def test_offsets_in_every_common_spelling_and_ambiguous_gmt_refused():
    batch = read_csv("lon,lat,time\n1,2,2026-03-05 08:12 +08\n1,2,2026-03-05 00:12+0000\n"
                     "1,2,2026-03-05 08:12:00 GMT+8\n")
    assert [d.reported_at for _, d in batch.drafts] == [datetime(2026, 3, 5, 8, 12)] * 2
    assert [e.as_dict() for e in batch.errors] == [
        {"row": 4, "error": "cannot read '2026-03-05 08:12:00 GMT+8' as a date and time"}]


def test_chinese_dates_and_one_reading_per_file_for_day_month():
    batch = read_csv("lon,lat,time\n1,2,2026年3月5日 8时12分\n1,2,2026年3月15日\n")
    assert [d.reported_at for _, d in batch.drafts] == [datetime(2026, 3, 5, 8, 12), datetime(2026, 3, 15)]
    # The first value fixes the reading month/day/year; 13/03/2026 does not fit it and is refused,
    # rather than silently read day-first.
    batch = read_csv("lon,lat,time\n1,2,05/03/2026\n1,2,13/03/2026\n")
    assert [d.reported_at for _, d in batch.drafts] == [datetime(2026, 5, 3)]
    assert [e.row for e in batch.errors] == [3]


def test_geojson_times_with_and_without_offset_are_not_shifted():
    data = feature_collection([
        ({"category": "litter", "reported_at": "2026-03-05T08:00:00+08:00"}, Point(1, 2)),
        ({"category": "litter", "reported_at": "2026-03-05 08:00"}, Point(1, 2)),
    ])
    batch = read_incident_file(data, filename="a.geojson", options=FileOptions(), tz=TZ, now=NOW)
    assert [d.reported_at for _, d in batch.drafts] == [datetime(2026, 3, 5, 8, 0)] * 2


def test_a_bare_id_column_is_not_taken_as_the_external_id_and_booleans_are_not_coordinates():
    batch = read_csv("id,lon,lat,time\n1,1,2,2026-01-01\n")
    assert [d.external_id for _, d in batch.drafts] == [None]
    batch = parse_records([{"category": "litter", "lon": True, "lat": 2}], tz=TZ, now=NOW)
    assert [e.as_dict() for e in batch.errors] == [
        {"row": 0, "error": "missing or non-numeric coordinates (lon=True, lat=2)"}]


def test_chunks_read_ahead_arrive_in_order_errors_included_and_the_reader_stops_with_the_consumer():
    import threading

    from gridmap.incidents import read_ahead

    def chunks(fail_at: int | None = None):
        for k in range(5):
            if k == fail_at:
                raise InvalidInput("chunk 3 is unreadable")
            yield k
    assert list(read_ahead(chunks())) == [0, 1, 2, 3, 4]
    got = []
    with pytest.raises(InvalidInput, match="chunk 3 is unreadable"):
        for chunk in read_ahead(chunks(fail_at=3)):
            got.append(chunk)
    assert got == [0, 1, 2]
    early = read_ahead(chunks())
    assert next(early) == 0
    early.close()                      # the consumer stops (as when storing fails): the reader ends too
    assert not [t for t in threading.enumerate() if t.name == "gridmap-read-ahead"]
