"""Incident parsing: column detection, dates, categories, statuses, and every bad row reported."""
from __future__ import annotations

import csv
import io
import json
import math
import warnings
from datetime import date, datetime
from zoneinfo import ZoneInfo

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from shapely import LineString, Point

from gridmap.errors import InvalidInput
from gridmap.incidents import (
    EARLIEST_TIME,
    LATEST_TIME,
    FileOptions,
    ParsedBatch,
    Status,
    parse_records,
    read_incident_file,
)

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


def test_a_hotline_export_is_read_by_its_own_column_names():
    # 12345 hotline and grid-system exports name their columns 工单编号, 诉求类型, 受理时间 … ; 序号 is a row number
    batch = read_csv("序号,工单编号,诉求类型,受理时间,处理状态,诉求内容,来源渠道,经度,纬度\n"
                     "1,GD-0001,飞线充电,2026-03-05 08:12,办结,三号楼飞线充电,12345热线,111.87,34.745\n")
    assert batch.errors == []
    [(row, draft)] = batch.drafts
    assert (row, draft.external_id, draft.category, draft.reported_at, draft.status, draft.description,
            draft.source) == (2, "GD-0001", "flying_cable", datetime(2026, 3, 5, 8, 12), Status.CLOSED,
                              "三号楼飞线充电", "12345热线")


@pytest.mark.parametrize("other", ["111.87", "abc"])
def test_coordinates_read_the_same_however_they_are_spelled(other):
    # a column of numbers only is read by Arrow at once, one with text in it value by value
    # (pandas): every spelling reads the same both ways, and a bad value is refused alone
    batch = read_csv("lon,lat,category,reported_at\n"
                     f"{other},34.745,litter,2026-03-05\n"                      # row 2
                     " +1.1187e2 ,34.745,litter,2026-03-05\n"                 # row 3: 111.87
                     "111.870000000000000001,.5e1,litter,2026-03-05\n"        # row 4: 111.87, 5.0
                     "nan,34.745,litter,2026-03-05\n"                          # row 5: missing
                     "inf,34.745,litter,2026-03-05\n"                          # row 6: out of range
                     "-1e400,34.745,litter,2026-03-05\n")                      # row 7: out of range
    good = [(row, d.lon, d.lat) for row, d in batch.drafts]
    assert good == [*([(2, 111.87, 34.745)] if other == "111.87" else []), (3, 111.87, 34.745), (4, 111.87, 5.0)]
    assert errors_of(batch) == [
        *([(2, "missing or non-numeric coordinates (lon='abc', lat='34.745')")] if other == "abc" else []),
        (5, "missing or non-numeric coordinates (lon='nan', lat='34.745')"),
        (6, "coordinates out of range: lon=inf, lat=34.745; expected WGS84 longitude -180..180 and latitude -90..90"),
        (7, "coordinates out of range: lon=-inf, lat=34.745; expected WGS84 longitude -180..180 and latitude -90..90")]


def test_full_width_digits_and_signs_typed_with_a_chinese_input_method_read_as_plain_ones():
    batch = read_csv("经度,纬度,类别,上报时间\n"
                     "１１４．１２,－３０．０５,违停,２０２６－０３－０５\u3000０８：１２\n"
                     "114.12,30.05,违停,２０２６年３月５日 ８时１２分\n"
                     "114.12,30.05,违停,2026-03-05T00:12:00＋00:00\n"
                     "１１４．１２x,30.05,违停,2026-03-05\n")
    assert [(row, d.lon, d.lat, d.reported_at) for row, d in batch.drafts] == [
        (2, 114.12, -30.05, datetime(2026, 3, 5, 8, 12)), (3, 114.12, 30.05, datetime(2026, 3, 5, 8, 12)),
        (4, 114.12, 30.05, datetime(2026, 3, 5, 8, 12))]
    assert errors_of(batch) == [(5, "missing or non-numeric coordinates (lon='１１４．１２x', lat='30.05')")]
    record = parse_records([{"lon": "１１４．１２", "lat": 30.05, "category": "litter",
                             "reported_at": "２０２６－０３－０５"}], tz=TZ, now=NOW)
    assert [(d.lon, d.reported_at) for _, d in record.drafts] == [(114.12, datetime(2026, 3, 5))]


def test_coordinates_in_degrees_minutes_and_seconds_read_as_decimal_degrees():
    batch = read_csv("经度,纬度,类别,上报时间\n"
                     "114°07′21.6″E,北纬30°3',违停,2026-03-05\n"           # 114 + 7/60 + 21.6/3600, 30 + 3/60
                     "114度7分21.6秒,30°03'00\",违停,2026-03-05\n"
                     "W 114°07.5',S 30°,违停,2026-03-05\n"
                     "114°60',30°,违停,2026-03-05\n"                          # 60 minutes: not a reading
                     "E114°7'W,30°,违停,2026-03-05\n")                        # two hemispheres
    assert [(row, round(d.lon, 9), round(d.lat, 9)) for row, d in batch.drafts] == [
        (2, 114.122666667, 30.05), (3, 114.122666667, 30.05), (4, -114.125, -30.0)]
    assert errors_of(batch) == [(5, "missing or non-numeric coordinates (lon=\"114°60'\", lat='30°')"),
                                (6, "missing or non-numeric coordinates (lon=\"E114°7'W\", lat='30°')")]


def test_one_column_of_both_coordinates_is_split_in_the_order_its_name_says():
    batch = read_csv('标题\n经纬度,类别,上报时间\n"114.12,30.05",违停,2026-03-05\n114.12 30.05,违停,2026-03-05\n'
                     '"(114.12, 30.05)",违停,2026-03-05\nPOINT (114.12 30.05),违停,2026-03-05\n'
                     '"114°7′12″，30°3′",违停,2026-03-05\nabc,违停,2026-03-05\n"114.12,30.05,1",违停,2026-03-05\n')
    assert [(row, round(d.lon, 9), d.lat) for row, d in batch.drafts] == [
        (3, 114.12, 30.05), (4, 114.12, 30.05), (5, 114.12, 30.05), (6, 114.12, 30.05), (7, 114.12, 30.05)]
    assert errors_of(batch) == [(8, "missing or non-numeric coordinates (lon='abc', lat=None)"),
                                (9, "missing or non-numeric coordinates (lon='114.12,30.05,1', lat=None)")]
    lat_first = read_csv('latlng,category,reported_at\n"30.05,114.12",litter,2026-03-05\n')
    assert [(d.lon, d.lat) for _, d in lat_first.drafts] == [(114.12, 30.05)]
    both = read_csv('lon,lat,经纬度,category,reported_at\n1,2,"3,4",litter,2026-03-05\n')   # own columns first
    assert [(d.lon, d.lat) for _, d in both.drafts] == [(1.0, 2.0)]


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


def test_geojson_text_holding_a_nul_character_refuses_its_row_not_cut_short():
    # GDAL reads "bad\u0000tail" as "bad": the row would have been stored with its text cut short
    data = feature_collection([
        ({"category": "litter", "reported_at": "2026-03-05 08:00", "description": "bad\u0000tail"}, Point(1, 2)),
        ({"category": "litter", "reported_at": "2026-03-05 08:00", "description": "C:\\u0000"}, Point(1, 2)),
        ({"category": "litter", "reported_at": "2026-03-05 08:00", "other": "x\u0000"}, Point(1, 2)),
        ({"category": "litter", "reported_at": "2026-03-05 08:00", "description": "\u0000"}, Point(1, 2)),
    ])
    assert b"\\u0000" in data
    batch = read_incident_file(data, filename="a.geojson", options=FileOptions(), tz=TZ, now=NOW)
    # the literal backslash-u0000 stays text; a NUL in a column gridmap does not store harms nothing
    assert [(r, d.description) for r, d in batch.drafts] == [(1, "C:\\u0000"), (2, "")]
    how = "the file may be damaged or in another encoding (open it in a text editor and save it as UTF-8)"
    assert [e.as_dict() for e in batch.errors] == [
        {"row": 0, "error": f"description: 'bad\\x00tail' holds a NUL character, which cannot be stored; {how}"},
        {"row": 3, "error": f"description: '\\x00' holds a NUL character, which cannot be stored; {how}"}]


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


# --- odd values: each a problem of its row, never an exception that fails the batch ----------------

RANGE = "expected a time from 1970-01-01 00:00 to 2100-12-31 23:59"
OFFSET = "expected an offset from -14:00 to +14:00"


def litter(**fields):
    return {"category": "litter", "lon": 1, "lat": 2, **fields}


def errors_of(batch: ParsedBatch) -> list[tuple[int, str]]:
    return [(e.row, e.as_dict()["error"]) for e in batch.errors]


def test_times_outside_1970_to_2100_are_row_errors_naming_the_field():
    batch = parse_records([litter(reported_at=t) for t in (
        "-1", -1, "0000-01-01", "99999-01-01", "1969-12-31 23:59", "2101-01-01", "9999-12-31T23:59:59Z",
        "1970-01-01 00:00", "2100-12-31 23:59:59.999999", "1970-01-01T00:00:00+08:00", "1970-01-01T00:00:00+09:00")],
        tz=TZ, now=NOW)
    assert [(r, d.reported_at) for r, d in batch.drafts] == [
        (7, datetime(1970, 1, 1)), (8, datetime(2100, 12, 31, 23, 59, 59, 999999)), (9, datetime(1970, 1, 1))]
    assert errors_of(batch) == [
        (0, f"reported_at: '-1' is outside the accepted time range; {RANGE}"),     # year -1 to pandas
        (1, f"reported_at: -1 is outside the accepted time range; {RANGE}"),
        (2, f"reported_at: '0000-01-01' is outside the accepted time range; {RANGE}"),
        (3, f"reported_at: '99999-01-01' is outside the accepted time range; {RANGE}"),
        (4, f"reported_at: '1969-12-31 23:59' is outside the accepted time range; {RANGE}"),
        (5, f"reported_at: '2101-01-01' is outside the accepted time range; {RANGE}"),
        (6, f"reported_at: '9999-12-31T23:59:59Z' is outside the accepted time range; {RANGE}"),
        (10, f"reported_at: '1970-01-01T00:00:00+09:00' is outside the accepted time range; {RANGE}")]  # 1969 here


def test_utc_offsets_beyond_14_hours_are_row_errors():
    batch = parse_records([litter(reported_at=f"2025-01-01T00:00:00{offset}") for offset in (
        "+14:00", "-12:00", "+25:00", "+99:99", "-23:59", "+14:30", "+08:60", "+2500")], tz=TZ, now=NOW)
    assert [(r, d.reported_at) for r, d in batch.drafts] == [       # Shanghai is UTC+8
        (0, datetime(2024, 12, 31, 18)), (1, datetime(2025, 1, 1, 20))]
    assert errors_of(batch) == [
        (i, f"reported_at: '2025-01-01T00:00:00{offset}' has an impossible UTC offset; {OFFSET}")
        for i, offset in ((2, "+25:00"), (3, "+99:99"), (4, "-23:59"), (5, "+14:30"), (6, "+08:60"), (7, "+2500"))]


def test_what_is_no_time_at_all_cannot_be_read():
    batch = parse_records([litter(reported_at=t) for t in ("1e300", 1e300, "NaT", "nat", math.inf, "inf", True,
                                                           [2026], {"y": 2026}, 10**30)], tz=TZ, now=NOW)
    assert errors_of(batch) == [(i, f"cannot read {v} as a date and time") for i, v in enumerate(
        ("'1e300'", "1e+300", "'NaT'", "'nat'", "inf", "'inf'", "True", "[2026]", "{'y': 2026}", str(10**30)))]


def test_a_files_odd_times_are_errors_of_their_lines_and_name_its_column():
    batch = read_csv("lon,lat,上报时间\n1,2,1969-12-31\n1,2,2026-03-05T08:00+15:00\n1,2,2026-03-05 08:00\n"
                     "1,2,0000-01-01\n1,2,NaT\n")
    assert [(r, d.reported_at) for r, d in batch.drafts] == [(4, datetime(2026, 3, 5, 8))]
    assert errors_of(batch) == [(2, f"上报时间: '1969-12-31' is outside the accepted time range; {RANGE}"),
                                (3, f"上报时间: '2026-03-05T08:00+15:00' has an impossible UTC offset; {OFFSET}"),
                                (5, f"上报时间: '0000-01-01' is outside the accepted time range; {RANGE}"),
                                (6, "cannot read 'NaT' as a date and time")]


def test_lists_and_objects_where_text_belongs_are_row_errors():
    batch = parse_records([litter(category=["litter"]), litter(status={"a": 1}), litter(crs=["GCJ02"]),
                           litter(description=[1, 2], external_id={"id": 1}, source=[]), litter(external_id=10**30)],
                          tz=TZ, now=NOW)
    assert errors_of(batch) == [
        (0, "category: expected text or a number, got list"),          # and not "missing category" too
        (1, "status: expected text or a number, got dict"),
        (2, "crs: expected text or a number, got list"),
        (3, "external_id: expected text or a number, got dict; description: expected text or a number, got list; "
            "source: expected text or a number, got list")]
    assert [(r, d.external_id) for r, d in batch.drafts] == [(4, str(10**30))]


def test_coordinates_nan_inf_huge_text_and_out_of_range_are_row_errors():
    batch = parse_records([litter(lon=v) for v in (math.nan, math.inf, -math.inf, 10**30, 10**400, -10**400, "1e400",
                                                   "abc", "١٢", "nan", [1], 181, 180)] + [litter(lat=90.5)],
                          tz=TZ, now=NOW)      # 90.5 makes the lat column float: 2.0
    out = "expected WGS84 longitude -180..180 and latitude -90..90"
    assert errors_of(batch) == [
        (0, "missing or non-numeric coordinates (lon=None, lat=2.0)"),    # NaN: JSON's null
        (1, f"coordinates out of range: lon=inf, lat=2.0; {out}"),
        (2, f"coordinates out of range: lon=-inf, lat=2.0; {out}"),
        (3, f"coordinates out of range: lon=1e+30, lat=2.0; {out}"),
        (4, f"coordinates out of range: lon=inf, lat=2.0; {out}"),       # 10**400 is no float: infinite
        (5, f"coordinates out of range: lon=-inf, lat=2.0; {out}"),
        (6, f"coordinates out of range: lon=inf, lat=2.0; {out}"),
        (7, "missing or non-numeric coordinates (lon='abc', lat=2.0)"),
        (8, "missing or non-numeric coordinates (lon='١٢', lat=2.0)"),
        (9, "missing or non-numeric coordinates (lon='nan', lat=2.0)"),
        (10, "missing or non-numeric coordinates (lon=[1], lat=2.0)"),
        (11, f"coordinates out of range: lon=181.0, lat=2.0; {out}"),
        (13, f"coordinates out of range: lon=1.0, lat=90.5; {out}")]
    assert [r for r, _ in batch.drafts] == [12]



def test_coordinates_in_metres_are_refused_with_the_crs_option_named():
    # a file in CGCS2000 / 3-degree Gauss-Kruger CM 114E (EPSG:4547) given without its system
    batch = read_csv("x(m),y(m),category,reported_at\n500123.5,3326001.25,litter,2026-03-05\n"
                     "114.1,30.05,litter,2026-03-05\n")
    assert [e.as_dict() for e in batch.errors] == [{"row": 2, "error": (
        "coordinates out of range: lon=500123.5, lat=3326001.25; expected WGS84 longitude -180..180 and latitude "
        "-90..90. They look like metres: give the file's coordinate system in the crs option, for example EPSG:4547")}]
    assert [(r, d.lon, d.lat) for r, d in batch.drafts] == [(3, 114.1, 30.05)]
    again = read_csv("x(m),y(m),category,reported_at\n500123.5,3326001.25,litter,2026-03-05\n", crs="EPSG:4547")
    assert again.errors == [] and [(round(d.lon, 6), round(d.lat, 6)) for _, d in again.drafts] == [
        (114.001281, 30.053114)]       # pyproj.Transformer(4547 -> 4326) on its own

UNUSABLE = ("is a coordinate reference system PROJ reads but cannot convert to longitude/latitude; expected one "
            "such as EPSG:4547 or EPSG:4490")


def test_a_records_system_proj_cannot_use_is_its_row_error_and_no_point_is_stored_without_a_position():
    batch = parse_records([
        litter(lon=500000, lat=4400000, crs="+proj=tmerc +lon_0=1e308"),
        litter(lon=500000, lat=4400000, crs="+proj=longlat +a=1e308"),     # PROJ cannot even build it
        litter(lon=500000, lat=4400000, crs="EPSG:999999"),
        litter(lon=500000, lat=4400000, crs="x" * 10_001),
        litter(lon=1e300, lat=0, crs="EPSG:4547"),                          # a usable system, a point off it
        litter(lon=500000, lat=4419000, crs="EPSG:4547")], tz=TZ, now=NOW)
    assert errors_of(batch) == [
        (0, f"crs: '+proj=tmerc +lon_0=1e308' {UNUSABLE}"),          # not "out of range" too: not known
        (1, f"crs: '+proj=longlat +a=1e308' {UNUSABLE}"),
        (2, "crs: unknown coordinate system 'EPSG:999999'; expected WGS84, GCJ02 (Gaode/AMap, Tencent), BD09 "
            "(Baidu) or an EPSG code such as EPSG:4490 or EPSG:4547"),
        (3, "crs: the coordinate reference system is 10001 characters long; expected at most 10000 (a code such as "
            "EPSG:4547, a PROJ string or a WKT)"),
        (4, "coordinates (1e+300, 0) in EPSG:4547 cannot be converted to WGS84: they are outside what that system "
            "covers")]
    (row, draft), = batch.drafts
    assert row == 5 and draft.lon == pytest.approx(114.0) and 39.9 < draft.lat < 40.0


def test_a_file_wide_system_proj_cannot_use_refuses_the_file():
    with pytest.raises(InvalidInput) as refused:
        read_csv("lon,lat,time\n1,2,2026-01-01\n", crs="+proj=tmerc +k=1e308")
    assert str(refused.value) == f"crs: '+proj=tmerc +k=1e308' {UNUSABLE}"
    with pytest.raises(InvalidInput) as refused:
        parse_records([litter()], tz=TZ, now=NOW, crs="+proj=longlat +pm=1e308")
    assert str(refused.value) == f"crs: '+proj=longlat +pm=1e308' {UNUSABLE}"


# --- properties: whatever arrives, a row is read (and fit to store) or refused by number -----------

FUZZ = settings(max_examples=200, deadline=None, database=None)
ODD_DIGITS = "²³¹٠١٢٣٤٥٦٧٨٩０１２３４５６７８９"
ODD_TIMES = st.one_of(
    st.text(max_size=40),
    st.from_regex(r"[+-]?[0-9]{1,6}-[0-9]{2}-[0-9]{2}([T ][0-9]{2}:[0-9]{2}(:[0-9]{2})?)?(Z|[+-][0-9]{2}:?[0-9]{2})?",
                  fullmatch=True),
    st.text(alphabet="0123456789" + ODD_DIGITS + "+-:./ TZ年月日时分秒", max_size=30),
    st.datetimes().map(lambda d: d.isoformat()),
    st.sampled_from(["NaT", "1e300", "-1", "0000-01-01", "99999-01-01", "2262-04-12", "1677-09-21",
                     "2025-01-01T00:00:00+25:00", "9999-12-31T23:59:59-14:00", "01/02/2015 09:27:07 AM"]),
)
ODD_CRS = st.one_of(st.none(), st.sampled_from(["GCJ02", "BD09", "EPSG:4547", "EPSG:4490", "4326", "mars",
                                               "+proj=tmerc +lon_0=1e308", "+proj=longlat +a=1e308", "x" * 10_001]))
JSON_SCALARS = st.one_of(st.none(), st.booleans(), st.integers(min_value=-10**400, max_value=10**400), st.floats(),
                         ODD_TIMES, st.text(alphabet=ODD_DIGITS + "0123456789.-e", max_size=12))
JSON_VALUES = st.recursive(JSON_SCALARS, lambda inner: st.lists(inner, max_size=2) |
                           st.dictionaries(st.text(max_size=3), inner, max_size=2), max_leaves=3)
FIELDS = ("category", "lon", "lat", "reported_at", "status", "external_id", "description", "source", "crs")
RECORDS = st.lists(st.one_of(st.fixed_dictionaries({}, optional={f: JSON_VALUES for f in FIELDS}),
                             st.fixed_dictionaries({"category": st.just("litter"), "lon": st.floats(-200, 200),
                                                    "lat": st.floats(-100, 100)},
                                                   optional={"reported_at": ODD_TIMES, "crs": ODD_CRS}),
                             JSON_SCALARS), min_size=1, max_size=4)


def assert_every_row_read_or_refused(batch: ParsedBatch, rows: list[int]) -> None:
    """Each row is an incident or an error, never both; an incident has a real point and an accepted time."""
    read, refused = [int(r) for r in batch.rows], [e.row for e in batch.errors]
    assert sorted(read + refused) == rows and all(e.reasons for e in batch.errors)
    for _, draft in batch.drafts:
        assert math.isfinite(draft.lon) and math.isfinite(draft.lat)
        assert abs(draft.lon) <= 180 and abs(draft.lat) <= 90
        assert EARLIEST_TIME <= draft.reported_at <= LATEST_TIME
        assert all(t is None or EARLIEST_TIME <= t <= LATEST_TIME for t in (draft.closed_at, draft.due_at))


@FUZZ
@given(RECORDS)
def test_any_json_records_are_read_or_refused_by_row(records):
    assert_every_row_read_or_refused(parse_records(records, tz=TZ, now=NOW), list(range(len(records))))


@FUZZ
@given(ODD_TIMES)
def test_any_time_is_read_within_range_or_refused_by_row(text):
    batch = parse_records([litter(reported_at=text)], tz=TZ, now=NOW)
    assert_every_row_read_or_refused(batch, [0])


@FUZZ
@given(st.lists(st.tuples(ODD_TIMES, st.text(max_size=20), st.text(max_size=20), ODD_CRS.map(lambda c: c or "")),
                min_size=1, max_size=4))
def test_any_csv_cells_are_read_or_refused_by_line(rows):
    text = io.StringIO()
    csv.writer(text).writerows([("reported_at", "lon", "lat", "crs"), *rows])
    try:
        batch = read_csv(text.getvalue())
    except InvalidInput:           # the file as a whole: a line the CSV reader cannot split, or no rows
        return
    assert_every_row_read_or_refused(batch, sorted([int(r) for r in batch.rows] + [e.row for e in batch.errors]))
    assert all(e.row >= 2 for e in batch.errors)


@settings(max_examples=60, deadline=None, database=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(records=RECORDS)
def test_any_json_batch_is_stored_or_refused_by_row(service, records):
    """Through the store too: what the parser lets through can be stored (no 500 after parsing)."""
    result = service.report(records)
    assert len(result.items) + len(result.errors) == len(records)


PAST_HEADER = ("more fields than the header's 5: a value holding the delimiter ',' must be in double quotes "
               "(\"Building 3, Unit 5\"); correct the line, or export the file again with quoting")


@pytest.mark.parametrize("chunk_rows", [1, 2, 50_000])
def test_a_line_with_more_fields_than_the_header_is_read_without_empty_ones_or_refused_alone(monkeypatch, chunk_rows):
    # pandas skips such a line (the first row having fewer): it is read again; a trailing comma
    # costs nothing, a value past the header (an unquoted comma) refuses its line and no other
    from gridmap import incidents
    monkeypatch.setattr(incidents, "CHUNK_ROWS", chunk_rows)
    batch = read_csv("lon,lat,category,reported_at,description\n"
                     "1,1,litter,2026-03-05,a\n"                   # line 2
                     "2,2,litter,2026-03-05,b,\n"                  # 3: a trailing comma
                     "3,3,litter,2026-03-05,\"c\nc\"\n"           # 4: a quoted line break (one line)
                     "\n"                                          # 5: blank
                     "4,4,litter,2026-03-05,三号楼,五单元\n"         # 6: a comma not quoted
                     "5,5,litter,2026-03-05,\"f,g\"\n"             # 7
                     "6,6,litter,2026-03-05,h,, \n"                # 8: two empty fields past it
                     "7,7,litter,2026-03-05,i,j,k\n")              # 9
    assert [(row, d.lon, d.description) for row, d in batch.drafts] == [
        (2, 1.0, "a"), (3, 2.0, "b"), (4, 3.0, "c\nc"), (7, 5.0, "f,g"), (8, 6.0, "h")]
    assert errors_of(batch) == [(6, PAST_HEADER), (9, PAST_HEADER)]


@pytest.mark.parametrize("chunk_rows", [1, 50_000])
def test_after_a_first_line_with_a_trailing_comma_a_value_past_the_header_is_refused_not_dropped(monkeypatch,
                                                                                                chunk_rows):
    # pandas reads such a file as having a trailing delimiter and drops the extra field of every line
    from gridmap import incidents
    monkeypatch.setattr(incidents, "CHUNK_ROWS", chunk_rows)
    batch = read_csv("lon,lat,category,reported_at,description\n"
                     "1,1,litter,2026-03-05,a,\n"                  # line 2
                     "2,2,litter,2026-03-05,b\n"                   # 3
                     "3,3,litter,2026-03-05,c,d\n"                 # 4: d is in no column
                     "4,4,litter,2026-03-05,e,,,\n"                # 5
                     "5,5,litter,2026-03-05,f,,,g\n")              # 6
    assert [(row, d.description) for row, d in batch.drafts] == [(2, "a"), (3, "b"), (5, "e")]
    assert errors_of(batch) == [(4, PAST_HEADER), (6, PAST_HEADER)]


def test_a_file_whose_every_line_has_a_value_past_the_header_has_every_line_refused_saying_so():
    batch = read_csv("lon,lat,category,reported_at,description\n1,1,litter,2026-03-05,a,b\n"
                     "2,2,litter,2026-03-05,a,b,c\n")
    assert (batch.drafts, errors_of(batch)) == ([], [(2, PAST_HEADER), (3, PAST_HEADER)])


def test_a_title_above_the_header_is_passed_over_and_rows_keep_their_line_numbers():
    # office ledgers (台账) put a title, a blank line, the unit and date above the table
    batch = read_csv("某某街道2025年网格事件台账,,,,\n"                 # line 1
                     "\n"                                             # 2
                     "填报单位：某某社区,,填报日期：2025-12-01,,\n"      # 3
                     "经度,纬度,类别,上报时间,描述\n"                    # 4: the header
                     "111.87,34.745,飞线充电,2026-03-05 08:12,a\n"      # 5
                     "abc,34.745,飞线充电,2026-03-05 08:12,b\n"         # 6
                     "111.88,34.746,违停,2026-03-06 09:00,c,d\n"    # 7
                     "111.89,34.747,违停,2026-03-06 10:00,e\n")     # 8
    assert [(row, d.lon, d.category, d.description) for row, d in batch.drafts] == [
        (5, 111.87, "flying_cable", "a"), (8, 111.89, "illegal_parking", "e")]
    assert errors_of(batch) == [(6, "missing or non-numeric coordinates (lon='abc', lat='34.745')"),
                                (7, PAST_HEADER)]


def test_columns_are_found_by_name_with_a_unit_or_note_in_brackets_after_it():
    batch = read_csv("经度（°）,纬度(WGS84),事件类别【一级】,上报时间 [北京时间]\n111.87,34.745,违停,2026-03-05\n")
    assert [(d.lon, d.lat, d.category, d.reported_at) for _, d in batch.drafts] == [
        (111.87, 34.745, "illegal_parking", datetime(2026, 3, 5))]
    exact = read_csv("Longitude (deg),lon,lat,reported_at\n1,111.87,34.745,2026-03-05\n")      # a plain name first
    assert [d.lon for _, d in exact.drafts] == [111.87]


def test_a_header_on_the_last_line_searched_still_has_its_first_row_s_trailing_comma_seen():
    text = ("台账\n" * 19 + "lon,lat,category,reported_at,description\n"                         # header: line 20
            "1,1,litter,2026-03-05,a,\n2,2,litter,2026-03-05,b,x\n3,3,litter,2026-03-05,c\n")
    batch = read_csv(text)
    assert [(row, d.description) for row, d in batch.drafts] == [(21, "a"), (23, "c")]
    assert errors_of(batch) == [(22, PAST_HEADER)]
    with pytest.raises(InvalidInput):          # a header on line 21 is past the search
        read_csv("台账\n" + text)


def test_a_header_below_a_title_is_found_by_the_columns_the_options_name():
    text = "巡查记录\nE坐标,N坐标,类别,上报时间\n111.87,34.745,litter,2026-03-05\n"
    assert [(row, d.lon) for row, d in read_csv(text, lon_field="E坐标", lat_field="N坐标").drafts] == [(3, 111.87)]
    with pytest.raises(InvalidInput) as refused:           # no line names them: refused as before
        read_csv(text)
    assert str(refused.value.details[0]) == (
        "no coordinate columns found (tried lon/lng/long/longitude/x/经度/东经 and lat/latitude/y/纬度/北纬, or one "
        "column of both: 经纬度/坐标/位置坐标/经纬度坐标/lnglat/lonlat/lng_lat/lon_lat/lng,lat/lon,lat/纬经度/latlng/"
        "latlon/lat_lng/lat_lon/lat,lng/lat,lon); "
        "the file has: 巡查记录. Say which with lon_field and lat_field.")


def test_a_refusal_lists_a_file_s_columns_shortened():
    many = ",".join(f"c{i}" for i in range(45)) + "\n" + ",".join(["1"] * 45) + "\n"
    with pytest.raises(InvalidInput) as refused:
        read_csv(many)
    assert str(refused.value.details[0]).split("the file has: ")[1] == (
        ", ".join(f"c{i}" for i in range(40)) + ", … (45 columns). Say which with lon_field and lat_field.")
    with pytest.raises(InvalidInput) as refused:          # a 200,000-character title, quoted
        read_csv('"' + "x" * 200_000 + '"\nlon,lat,category,reported_at\n1,1,litter,2026-03-05\n')
    assert str(refused.value.details[0]).split("the file has: ")[1] == (
        "x" * 80 + "…. Say which with lon_field and lat_field.")


def test_a_value_past_the_csv_module_s_field_limit_leaves_the_lines_after_it_refused_not_lost():
    # Python's csv module (which reads lines again) stops at a field over 131,072 characters
    batch = read_csv("lon,lat,category,reported_at,description\n1,1,litter,2026-03-05,a\n"
                     f'2,2,litter,2026-03-05,"{"x" * 200_000}",c\n3,3,litter,2026-03-05,b,\n4,4,litter,2026-03-05,d\n')
    assert [(row, d.lon) for row, d in batch.drafts] == [(2, 1.0), (5, 4.0)]
    assert errors_of(batch) == [(3, PAST_HEADER), (4, PAST_HEADER)]


def test_a_workbook_with_a_title_above_the_header_is_read_from_its_header():
    import openpyxl
    book = openpyxl.Workbook()
    for row in (["某某街道网格事件台账"], [], ["经度", "纬度", "类别", "上报时间"],
                [111.87, 34.745, "飞线充电", datetime(2026, 3, 5, 8, 12)], [], ["x", 34.7, "违规停车", "2026-03-06"]):
        book.active.append(row)
    data = io.BytesIO()
    book.save(data)
    batch = read_incident_file(data.getvalue(), filename="台账.xlsx", options=FileOptions(), tz=TZ, now=NOW)
    assert [(row, d.lon, d.category, d.reported_at) for row, d in batch.drafts] == [
        (4, 111.87, "flying_cable", datetime(2026, 3, 5, 8, 12))]
    assert errors_of(batch) == [(6, "missing or non-numeric coordinates (lon='x', lat='34.7')")]


def test_a_workbook_s_numbers_dates_and_texts_are_read_as_a_csv_would_hold_them():
    # Excel stores every number as a double: a whole one is an id as written (12345, not 12345.0)
    import openpyxl
    book = openpyxl.Workbook()
    for row in (["工单编号", "经度", "纬度", "类别", "受理时间", "诉求内容"],
                [12345, 111.87, 34.745, "飞线充电", datetime(2026, 3, 5, 8, 12), " 三号楼 "],
                ["GD-7", 111, 34.7, "堆物", date(2026, 3, 6), 42]):
        book.active.append(row)
    data = io.BytesIO()
    book.save(data)
    batch = read_incident_file(data.getvalue(), filename="导出.xlsx", options=FileOptions(), tz=TZ, now=NOW)
    assert batch.errors == []
    assert [(row, d.external_id, d.lon, d.lat, d.reported_at, d.description) for row, d in batch.drafts] == [
        (2, "12345", 111.87, 34.745, datetime(2026, 3, 5, 8, 12), "三号楼"),
        (3, "GD-7", 111.0, 34.7, datetime(2026, 3, 6), "42")]


def test_a_workbook_whose_table_is_on_a_later_sheet_is_read_from_that_sheet():
    import openpyxl
    book = openpyxl.Workbook()
    book.active.title = "填表说明"
    book.active.append(["请按模板填写，经纬度为 WGS84"])
    table = book.create_sheet("事件")
    for row in (["经度", "纬度", "类别", "上报时间"], [111.87, 34.745, "违停", "2026-03-05 08:12"]):
        table.append(row)
    data = io.BytesIO()
    book.save(data)
    batch = read_incident_file(data.getvalue(), filename="台账.xlsx", options=FileOptions(), tz=TZ, now=NOW)
    assert [(row, d.lon, d.category) for row, d in batch.drafts] == [(2, 111.87, "illegal_parking")]


@settings(max_examples=150, deadline=None, database=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(lines=st.lists(st.one_of(st.just(None), st.tuples(
           st.text(alphabet="ab,\" \n", max_size=4),                                        # the description
           st.lists(st.sampled_from(["", " ", "z"]), max_size=3))), min_size=1, max_size=12),  # fields past it
       first_extra=st.booleans(), chunk_rows=st.sampled_from([1, 2, 3, 50_000]))
def test_lines_with_more_fields_than_the_header_read_as_the_csv_module_splits_them(monkeypatch, lines, first_extra,
                                                                                   chunk_rows):
    # the reference: Python's csv module, line by line (None: a blank line)
    from gridmap import incidents
    monkeypatch.setattr(incidents, "CHUNK_ROWS", chunk_rows)
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["lon", "lat", "category", "reported_at", "description"])
    writer.writerow(["1", "1", "litter", "2026-03-05", "first", *([""] if first_extra else [])])
    for line in lines:
        if line is None:
            out.write("\n")
        else:
            writer.writerow(["1", "1", "litter", "2026-03-05", line[0], *line[1]])
    expected_rows, expected_errors = [], []
    for number, fields in enumerate(csv.reader(io.StringIO(out.getvalue())), start=1):
        if number == 1 or not fields:
            continue
        if "".join(fields[5:]).strip():
            expected_errors.append((number, PAST_HEADER))
        else:
            expected_rows.append((number, fields[4].strip() or ""))
    batch = read_csv(out.getvalue())
    assert [(row, d.description) for row, d in batch.drafts] == expected_rows
    assert errors_of(batch) == expected_errors


def test_a_tab_separated_export_named_xls_is_read_as_text_and_binary_or_html_ones_are_refused_saying_how():
    tsv = ("事件台账\n经度\t纬度\t类别\t上报时间\t描述\n111.8\t34.7\t违停\t2026-03-05\t三号楼,五单元\n"
           "111.9\t34.8\t违停\t2026-03-05\tb\tx\n").encode("gb18030")
    batch = read_incident_file(tsv, filename="导出.xls", options=FileOptions(), tz=TZ, now=NOW)
    assert [(row, d.lon, d.description) for row, d in batch.drafts] == [(3, 111.8, "三号楼,五单元")]
    assert errors_of(batch) == [(4, PAST_HEADER.replace("','", "'\\t'"))]
    binary = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + bytes(504)          # a compound file, as Excel 97-2003 writes
    page = b"\xef\xbb\xbf <html><table><tr><td>1</td></tr></table>"
    for data, why in ((binary, "an old Excel workbook (.xls), which is not read"),
                      (page, "a web page (HTML) under an .xls name, as some systems export")):
        with pytest.raises(InvalidInput) as refused:
            read_incident_file(data, filename="导出.xls", options=FileOptions(), tz=TZ, now=NOW)
        assert str(refused.value) == (f"导出.xls is {why}; open it in Excel or WPS and save it as an Excel "
                                      "workbook (.xlsx) or as CSV (UTF-8)")


@pytest.mark.parametrize("chunk_rows", [1, 2, 50_000])
def test_a_file_on_disk_reads_as_its_bytes_do(tmp_path, monkeypatch, chunk_rows):
    # a CSV given by its path is read from the disk a chunk at a time: the same rows, errors and
    # line numbers as its bytes, with a title above the header, a trailing comma, a line with a value
    # past the header, a quoted line break, in GB18030 (the UTF-8 attempt fails first)
    from gridmap import incidents
    monkeypatch.setattr(incidents, "CHUNK_ROWS", chunk_rows)
    text = ("事件台账（三月）\n\n经度,纬度,类别,上报时间,描述\n111.8,34.7,违停,2026-03-05,\"三号楼\n五单元\",\n"
            "111.9,34.8,违停,2026-03-05,b,x\n111.7,34.6,堆物,2026-03-06,c\n")
    data = text.encode("gb18030")
    path = tmp_path / "导出.csv"
    path.write_bytes(data)
    from_disk = read_incident_file(path, filename=path.name, options=FileOptions(), tz=TZ, now=NOW)
    in_memory = read_incident_file(data, filename=path.name, options=FileOptions(), tz=TZ, now=NOW)
    assert [(row, d.lon, d.category, d.description) for row, d in from_disk.drafts] == [
        (4, 111.8, "illegal_parking", "三号楼\n五单元"), (6, 111.7, "clutter", "c")]    # records, not lines
    assert errors_of(from_disk) == [(5, PAST_HEADER)]
    assert ([(row, d) for row, d in from_disk.drafts], errors_of(from_disk)) == (
        [(row, d) for row, d in in_memory.drafts], errors_of(in_memory))
    assert incidents.line_count(path) == incidents.line_count(data) == text.count("\n") == 7


def test_a_trailing_comma_is_read_in_every_chunk_whatever_another_thread_does_with_warnings(monkeypatch):
    # the chunks are read in a thread (read_ahead) while other threads enter and leave
    # catch_warnings: the process-wide filter list then comes back as it was before them, which
    # undid a filter the CSV reader held across its yields (a fuzzed upload answered 500)
    from gridmap import incidents
    monkeypatch.setattr(incidents, "CHUNK_ROWS", 2)
    data = b"lat,category\n1,a,\n2,b\n3,c\n4,d\n"         # the first row's comma: every chunk warns
    with warnings.catch_warnings():             # another thread's, entered first …
        chunks = incidents._csv_chunks(data, "f.csv", "utf-8")
        first, first_unread = next(chunks)
    second, second_unread = next(chunks)        # … and left while the reader is between chunks
    assert [first.to_dict("index"), second.to_dict("index")] == [
        {2: {"lat": "1", "category": "a"}, 3: {"lat": "2", "category": "b"}},
        {4: {"lat": "3", "category": "c"}, 5: {"lat": "4", "category": "d"}}]
    assert first_unread == second_unread == {}
