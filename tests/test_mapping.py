"""Mapping files: an export's columns and words to ours, every mistake named at once; XLSX exports."""
from __future__ import annotations

import io
from datetime import datetime

import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gridmap.errors import InvalidInput
from gridmap.incidents import FileOptions
from gridmap.mapping import NO_DEADLINE, ImportMapping

from .conftest import grid_file, micro_file


def test_a_mapping_folds_the_files_words():
    rules = ImportMapping.parse('[columns]\nstatus = "STATE"\n[status]\n" Done " = "closed"\n'
                                '[category]\n"Parked Car" = "illegal_parking"\n[deadline]\nwhen_missing = "none"\n')
    assert rules == ImportMapping(columns={"status": "STATE"}, status={"done": "closed"},
                                  category={"parked car": "illegal_parking"}, when_missing="none")


def test_every_mistake_is_named_with_what_is_expected():
    with pytest.raises(InvalidInput) as refused:
        ImportMapping.parse('[columns]\nwhen = "T"\n[status]\nOpen = "opened"\n[category]\nx = "cars"\n'
                            '[deadline]\nwhen_missing = "later"\n[extra]\n', name="m.toml")
    assert [str(d) for d in refused.value.details] == [
        "m.toml: unknown section [extra]; expected [columns], [status], [category] or [deadline]",
        "m.toml: [columns] names 'when', which is not one of ours: external_id, reported_at, closed_at, due_at, "
        "status, category, lon, lat, description, source",
        "m.toml: [status] maps 'Open' to 'opened'; expected one of closed, dispatched, duplicate, in_progress, "
        "rated, rejected, reported",
        "m.toml: [category] maps 'x' to 'cars'; expected one of illegal_parking, flying_cable, private_wiring, "
        "clutter, illegal_ads, street_stall, litter, unleashed_dog, fire_hazard, three_in_one, dispute, "
        "road_damage, drain_blocked, roof_leak, other",
        "m.toml: [deadline] when_missing='later'; expected category or none"]
    with pytest.raises(InvalidInput, match="m.toml is not a TOML mapping file"):
        ImportMapping.parse("[columns\n", name="m.toml")


def test_an_xlsx_export_with_a_mapping_arrives_closed_with_its_times(service):
    from gridmap.levels import Level
    service.import_layer(Level.GRID, grid_file())
    service.import_layer(Level.MICRO_GRID, micro_file())
    sheet = pd.DataFrame({"编号": ["A1", "A2", "A3"], "状态": ["已结案", "处理中", "已结案"],
                          "类型": ["乱停车", "乱停车", "垃圾"], "经度": [0.005, 0.015, 0.005],
                          "纬度": [0.005, 0.005, 0.015],
                          "上报时间": [datetime(2026, 3, 5, 8), datetime(2026, 3, 5, 9), datetime(2026, 3, 6, 8)],
                          "结案时间": [datetime(2026, 3, 5, 20), None, datetime(2026, 3, 9, 8)],
                          "期限": [datetime(2026, 3, 6, 8), datetime(2026, 3, 6, 9), None]})
    data = io.BytesIO()
    sheet.to_excel(data, index=False)
    rules = ImportMapping.parse('[columns]\nclosed_at = "结案时间"\ndue_at = "期限"\nstatus = "状态"\n'
                                'category = "类型"\n'
                                '[status]\n"已结案" = "closed"\n"处理中" = "in_progress"\n'   # TOML: keys quoted
                                '[category]\n"乱停车" = "illegal_parking"\n"垃圾" = "litter"\n'
                                '[deadline]\nwhen_missing = "none"\n')
    result = service.import_incidents(data.getvalue(), filename="export.xlsx", options=FileOptions(mapping=rules))
    assert (result.created, result.errors) == (3, [])
    frame = service.incidents().set_index("external_id")
    assert frame[["status", "category", "category_raw", "micro_grid"]].values.tolist() == [
        ["closed", "illegal_parking", "乱停车", "W-S"], ["in_progress", "illegal_parking", "乱停车", "E-S"],
        ["closed", "litter", "垃圾", "W-N"]]
    assert frame["closed_at"].tolist()[::2] == [pd.Timestamp(2026, 3, 5, 20), pd.Timestamp(2026, 3, 9, 8)]
    assert frame["due_at"].tolist() == [pd.Timestamp(2026, 3, 6, 8), pd.Timestamp(2026, 3, 6, 9),
                                        pd.Timestamp(NO_DEADLINE)]
    figures = {f.code: f for f in service.performance(Level.MICRO_GRID)}
    assert (figures["W-S"].on_time, figures["W-N"].on_time, figures["W-N"].median_hours) == (1, 1, 72.0)
    assert figures["E-S"].overdue == 1                    # due 6 March 9h, still in progress


def test_a_later_export_moves_the_cases_on_without_duplicating_them(service):
    from gridmap.levels import Level
    service.import_layer(Level.GRID, grid_file())
    rules = ImportMapping.parse('[columns]\nclosed_at = "closed"\n[status]\nOpen = "dispatched"\nClosed = "closed"\n')

    def export(rows: list[tuple[str, str, str]]) -> bytes:
        lines = ["external_id,category,lon,lat,reported_at,status,closed"]
        lines += [f"{ext},litter,0.005,0.005,2026-03-05 08:00,{status},{closed}" for ext, status, closed in rows]
        return "\n".join(lines).encode()
    first = service.import_incidents(export([("C1", "Open", ""), ("C2", "Open", "")]), filename="monday.csv",
                                     options=FileOptions(mapping=rules))
    assert first.created == 2
    later = service.import_incidents(export([("C1", "Closed", "2026-03-06 09:00"), ("C2", "Open", "")]),
                                     filename="tuesday.csv", options=FileOptions(mapping=rules))
    assert (later.created, later.stored - later.created, later.errors) == (0, 2, [])
    frame = service.incidents().set_index("external_id")
    assert frame.loc["C1", ["status", "closed_at"]].tolist() == ["closed", pd.Timestamp(2026, 3, 6, 9)]
    assert frame.loc["C2", "status"] == "dispatched"
    history = service.incident(int(frame.loc["C1", "id"]))["properties"]["history"]
    assert [(h["action"], h["actor"], h["from"], h["to"]) for h in history[1:]] == [
        ("import", "import tuesday.csv", "dispatched", "closed")]
    # a file that says nothing of statuses moves nothing
    plain = "external_id,category,lon,lat,reported_at\nC1,litter,0.005,0.005,2026-03-05 08:00\n".encode()
    service.import_incidents(plain, filename="plain.csv")
    assert service.incidents().set_index("external_id").loc["C1", "status"] == "closed"


def test_a_close_time_or_deadline_that_cannot_be_read_is_a_row_error(service):
    rules = ImportMapping.parse('[columns]\nclosed_at = "closed"\ndue_at = "due"\n[deadline]\nwhen_missing = "none"\n')
    data = ("external_id,category,lon,lat,reported_at,status,closed,due\n"
            "D1,litter,0.005,0.005,2026-03-05 08:00,closed,2026-03-06 09:00,not a date\n"
            "D2,litter,0.005,0.005,2026-03-05 08:00,closed,soon,\n"
            "D3,litter,0.005,0.005,2026-03-05 08:00,closed,2026-03-06 09:00,\n").encode()
    result = service.import_incidents(data, filename="bad.csv", options=FileOptions(mapping=rules))
    assert result.created == 1
    assert [(e.row, [str(r) for r in e.reasons]) for e in result.errors] == [
        (2, ["cannot read 'not a date' (due) as a date and time"]),
        (3, ["cannot read 'soon' (closed) as a date and time"])]
    assert service.incidents()["due_at"].tolist() == [pd.Timestamp(NO_DEADLINE)]     # D3: no deadline given


@pytest.mark.parametrize("text, expected", [
    ("a = " + "[" * 5000 + "]" * 5000,
     'm.toml is not a TOML mapping file: its values are nested too deeply; expected [section] tables of key = '
     '"text" lines'),
    ("[columns]\nlon = " + "{a = " * 2000 + "1" + "}" * 2000,
     'm.toml is not a TOML mapping file: its values are nested too deeply; expected [section] tables of key = '
     '"text" lines'),
    ("[deadline]\nwhen_missing = 1" + "0" * 5000,      # more digits than Python turns into an int
     "m.toml is not a TOML mapping file: Exceeds the limit (4300 digits) for integer string conversion: value has "
     "5001 digits; use sys.set_int_max_str_digits() to increase the limit"),
    (b"[columns]\nlon = '\xff'", "m.toml is not a TOML mapping file: 'utf-8' codec can't decode byte 0xff in "
                                "position 17: invalid start byte"),
    ("[columns]\nlon = \"a\u0000\"", "m.toml is not a TOML mapping file: Illegal character '\\x00' (at line 2, "
                                    "column 9)"),
    ("[deadline]\nwhen_missing = 2025-02-30", "m.toml is not a TOML mapping file: Invalid date or datetime (at "
                                              "line 2, column 16)"),
])
def test_what_is_not_toml_is_refused_with_the_reason(text, expected):
    with pytest.raises(InvalidInput) as refused:
        ImportMapping.parse(text, name="m.toml")
    assert str(refused.value) == expected


def test_wrong_types_and_unknown_keys_are_named():
    with pytest.raises(InvalidInput) as refused:
        ImportMapping.parse('status = "closed"\n[columns]\nlon = 5\n[category.x]\ny = "litter"\n'
                            '[deadline]\nwhen_missing = ["none"]\nlater = "yes"\n', name="m.toml")
    assert [str(d) for d in refused.value.details] == [
        'm.toml: [columns] must hold text values (key = "value")',
        'm.toml: [status] must hold text values (key = "value")',
        'm.toml: [category] must hold text values (key = "value")',
        'm.toml: [deadline] must hold text values (key = "value")']
    with pytest.raises(InvalidInput) as refused:
        ImportMapping.parse('[deadline]\nwhen_missing = "none"\nwhen = "never"\n', name="m.toml")
    assert [str(d) for d in refused.value.details] == ["m.toml: [deadline] names 'when'; expected when_missing"]


def test_a_mapping_saved_with_a_byte_order_mark_is_read():
    assert ImportMapping.parse("\ufeff[columns]\nstatus = \"状态\"\n".encode()).columns == {"status": "状态"}


def test_close_times_and_deadlines_outside_1970_to_2100_are_row_errors(service):
    rules = ImportMapping.parse('[columns]\nclosed_at = "closed"\ndue_at = "due"\n')
    data = ("external_id,category,lon,lat,reported_at,status,closed,due\n"
            "E1,litter,0.005,0.005,2026-03-05 08:00,closed,1900-01-01,2026-03-06\n"
            "E2,litter,0.005,0.005,2026-03-05 08:00,closed,2026-03-06 09:00,9999-12-31\n"
            "E3,litter,0.005,0.005,2026-03-05 08:00,closed,2026-03-06 09:00+25:00,\n"
            "E4,litter,0.005,0.005,2026-03-05 08:00,closed,2026-03-06 09:00,2100-12-31\n").encode()
    result = service.import_incidents(data, filename="odd.csv", options=FileOptions(mapping=rules))
    assert result.created == 1
    within = "expected a time from 1970-01-01 00:00 to 2100-12-31 23:59"
    assert [(e.row, [str(r) for r in e.reasons]) for e in result.errors] == [
        (2, [f"closed: '1900-01-01' is outside the accepted time range; {within}"]),
        (3, [f"due: '9999-12-31' is outside the accepted time range; {within}"]),
        (4, ["closed: '2026-03-06 09:00+25:00' has an impossible UTC offset; expected an offset from -14:00 to "
             "+14:00"])]
    assert service.incidents()["due_at"].tolist() == [pd.Timestamp(2100, 12, 31)]


TOML_LINES = st.one_of(
    st.sampled_from(["[columns]", "[status]", "[category]", "[deadline]", "[extra]", "[columns.lon]", "[[columns]]",
                     'when_missing = "none"', "when_missing = 5", 'lon = "LON"', 'Open = "closed"', '"" = ""',
                     "x = [1, [2, [3]]]", "x = {a = {b = 1}}", "x = 1979-05-27T07:32:00+25:00", "x = 1" + "0" * 4400,
                     "a.b.c = 1", '"乱停车" = "illegal_parking"', "x = nan", 'x = """', "= 1"]),
    st.text(max_size=30))


@settings(max_examples=200, deadline=None, database=None)
@given(st.one_of(st.text(), st.lists(TOML_LINES, max_size=8).map("\n".join), st.binary(max_size=40)))
def test_any_text_is_a_mapping_or_refused(text):
    try:
        rules = ImportMapping.parse(text, name="m.toml")
    except InvalidInput as refused:
        assert str(refused.summary).startswith(("m.toml is not a TOML mapping file", "the mapping file is not valid"))
        return
    assert set(rules.columns) <= {"external_id", "reported_at", "closed_at", "due_at", "status", "category", "lon",
                                  "lat", "description", "source"}
    assert rules.when_missing in ("category", "none")
