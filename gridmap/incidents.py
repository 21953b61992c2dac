"""Incidents (事件): what grid workers report, read from JSON records or CSV/GeoJSON files.

Parsing is tolerant of real files and strict about what matters: a row without usable
coordinates or date is reported with its row number and reason, never stored half-made
and never silently dropped; a category word outside our list is kept as ``other`` with
the original text preserved.  Times are stored as wall-clock time in the service's
time zone (an offset in the input is converted to it).
"""
from __future__ import annotations

import io
import logging
import re
import warnings
from dataclasses import dataclass, field
from datetime import datetime
from enum import Enum
from typing import Any, Hashable, Mapping, Sequence
from zoneinfo import ZoneInfo

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
from pandas.tseries.api import guess_datetime_format

from . import categories
from .errors import N_, InvalidInput, Message, message
from .formats import read_error
from .layer import clean_text, find_field

log = logging.getLogger(__name__)

LON_FIELDS = ("lon", "lng", "long", "longitude", "x", "经度")
LAT_FIELDS = ("lat", "latitude", "y", "纬度")
CATEGORY_FIELDS = ("category", "类别", "事件类别", "事件类型", "type")
TIME_FIELDS = ("reported_at", "report_time", "上报时间", "时间", "日期", "time", "date", "datetime", "open_dt",
               "created_at")
# A bare "id" is not among them: it is usually a row number of someone's export, and
# deduplicating on it would drop other people's reports.
EXTERNAL_ID_FIELDS = ("external_id", "事件编号", "case_id", "case_enquiry_id", "report_id")
STATUS_FIELDS = ("status", "状态", "case_status")
DESCRIPTION_FIELDS = ("description", "描述", "事件描述", "case_title", "title")
SOURCE_FIELDS = ("source", "来源")


class Status(str, Enum):
    REPORTED = "reported"
    DISPATCHED = "dispatched"
    IN_PROGRESS = "in_progress"
    CLOSED = "closed"


_STATUS_WORDS = {
    "reported": Status.REPORTED, "open": Status.REPORTED, "new": Status.REPORTED, "上报": Status.REPORTED,
    "已上报": Status.REPORTED, "dispatched": Status.DISPATCHED, "派单": Status.DISPATCHED,
    "已派单": Status.DISPATCHED, "in_progress": Status.IN_PROGRESS, "in progress": Status.IN_PROGRESS,
    "处置": Status.IN_PROGRESS, "处置中": Status.IN_PROGRESS, "closed": Status.CLOSED,
    "办结": Status.CLOSED, "已办结": Status.CLOSED,
}


@dataclass
class IncidentDraft:
    """An incident as reported, before it has an id or units."""

    category: str
    lon: float
    lat: float
    reported_at: datetime
    status: Status = Status.REPORTED
    external_id: str | None = None
    category_raw: str | None = None
    description: str = ""
    source: str = ""
    time_given: bool = True     # False when reported_at defaulted to the time of the request


class Outcome(str, Enum):
    """What storing one draft did."""

    CREATED = "created"      # a new incident
    EXISTING = "existing"    # its external id is stored already, as the same report
    CONFLICT = "conflict"    # its external id is stored already, as a different report: not stored


@dataclass(frozen=True)
class Stored:
    """The outcome of one draft and the incident it is (the new one, or the one stored before)."""

    id: int
    outcome: Outcome


@dataclass(frozen=True)
class KnownReport:
    """A stored incident with an external id, as far as the repeat rule needs it."""

    id: int
    category: str
    category_raw: str | None
    lon: float
    lat: float
    reported_at: datetime


def new_reports(drafts: Sequence[IncidentDraft], known: Mapping[str, KnownReport]) -> list[int]:
    """The positions of the drafts to insert: every draft without an external id, and the first
    draft of each external id not stored yet.  The others are repeats (see :func:`outcomes`)."""
    fresh, seen = [], set(known)
    for i, draft in enumerate(drafts):
        if draft.external_id is None or draft.external_id not in seen:
            fresh.append(i)
            if draft.external_id is not None:
                seen.add(draft.external_id)
    return fresh


def outcomes(drafts: Sequence[IncidentDraft], known: Mapping[str, KnownReport],
             new_ids: Mapping[int, int]) -> list[Stored]:
    """What happened to each draft once the new ones have ids (``new_ids``: position → id).

    A repeated external id is the same report when category, position and time match (a time
    defaulted to the moment of the request proves nothing, so then only category and position
    must); a different report under a known external id is a conflict, never merged."""
    first: dict[str, tuple[int, tuple]] = {ext: (k.id, _key(k)) for ext, k in known.items()}
    result = []
    for i, draft in enumerate(drafts):
        if i in new_ids:
            result.append(Stored(new_ids[i], Outcome.CREATED))
            if draft.external_id is not None:
                first[draft.external_id] = (new_ids[i], _key(draft))
            continue
        stored_id, key = first[draft.external_id]   # type: ignore[index]  # a repeat has an external id
        mine = _key(draft)
        same = key == mine if draft.time_given else key[:-1] == mine[:-1]
        result.append(Stored(stored_id, Outcome.EXISTING if same else Outcome.CONFLICT))
    return result


def _key(report: IncidentDraft | KnownReport) -> tuple:
    """What must match for a repeated external id to be the same report, not a different one."""
    return (report.category, report.category_raw or None, round(report.lon, 7), round(report.lat, 7),
            report.reported_at)


@dataclass(frozen=True)
class RowError:
    """A record that could not be read, with its position (1-based row, or list index)."""

    row: int
    reasons: tuple[Message, ...]

    def as_dict(self, translate=lambda s: s) -> dict[str, Any]:
        return {"row": self.row, "error": "; ".join(r.render(translate) for r in self.reasons)}


@dataclass
class ParsedBatch:
    """The drafts that parsed, each with its row, and the rows that did not."""

    drafts: list[tuple[int, IncidentDraft]] = field(default_factory=list)
    errors: list[RowError] = field(default_factory=list)


@dataclass(frozen=True)
class FileOptions:
    lon_field: str | None = None
    lat_field: str | None = None
    category: str | None = None


def parse_status(value: Any) -> Status:
    if not _present(value):
        return Status.REPORTED
    found = _STATUS_WORDS.get(str(value).strip().lower())
    if found is None:
        raise ValueError(message(N_("unknown status {value!r}; expected one of {expected}"),
                                 value=str(value), expected=", ".join(s.value for s in Status)))
    return found


def resolve_category(value: Any) -> tuple[str, str | None]:
    """(our code, the original text when it was not one of ours)."""
    text = str(value).strip() if _present(value) else ""
    found = categories.match(text) if text else None
    if found is not None:
        return found.code, None
    return categories.OTHER.code, text or None


API_COLUMNS = {"lon": "lon", "lat": "lat", "category": "category", "time": "reported_at",
               "external_id": "external_id", "status": "status", "description": "description",
               "source": "source"}


def parse_records(records: Sequence[Any], *, tz: ZoneInfo, now: datetime) -> ParsedBatch:
    """Read the JSON objects of an API request; an error's ``row`` is the 0-based list index."""
    good = [i for i, r in enumerate(records) if isinstance(r, Mapping)]
    frame = pd.DataFrame([dict(records[i]) for i in good], index=good)
    batch = _parse_frame(frame, API_COLUMNS, category=None, tz=tz, now=now, require_time=False,
                         require_category=True)
    batch.errors += [RowError(i, (message(N_("expected a JSON object, got {got}"), got=type(r).__name__),))
                     for i, r in enumerate(records) if not isinstance(r, Mapping)]
    batch.errors.sort(key=lambda e: e.row)
    return batch


def read_incident_file(data: bytes, *, filename: str, options: FileOptions, tz: ZoneInfo,
                       now: datetime) -> ParsedBatch:
    """Read a CSV or GeoJSON file; an error's ``row`` is the CSV line (header = 1) or feature index."""
    if filename.lower().endswith((".geojson", ".json")):
        frame = _geojson_frame(data, filename)
    else:
        frame = _csv_frame(data, filename)
    if frame.empty:
        raise InvalidInput(message(N_("{file} has no rows; expected incidents"), file=filename))
    cols = _file_columns(frame, options)
    return _parse_frame(frame, cols, category=options.category, tz=tz, now=now, require_time=True,
                        require_category=False)


def _csv_frame(data: bytes, filename: str) -> pd.DataFrame:
    """The rows of a CSV file, indexed by their line number (header = line 1)."""
    for encoding in ("utf-8-sig", "gb18030"):
        try:
            with warnings.catch_warnings():   # a trailing comma (Excel) gives an extra empty field
                warnings.filterwarnings("ignore", category=pd.errors.ParserWarning)
                frame = pd.read_csv(io.BytesIO(data), dtype=str, keep_default_na=False, encoding=encoding,
                                    index_col=False, skip_blank_lines=False)
        except UnicodeDecodeError:
            continue
        except (pd.errors.ParserError, pd.errors.EmptyDataError, ValueError) as exc:
            raise InvalidInput(message(N_("could not read {file} as CSV: {reason}"),
                                       file=filename, reason=str(exc).strip())) from None
        frame.index = frame.index + 2
        blank = (frame == "").all(axis=1)
        return frame.loc[~blank]
    raise InvalidInput(message(N_("{file} is neither UTF-8 nor GB18030 text"), file=filename))


def _geojson_frame(data: bytes, filename: str) -> pd.DataFrame:
    try:   # times as text: pyogrio would turn a column mixing offsets and none into UTC
        frame = gpd.read_file(io.BytesIO(data), datetime_as_string=True)
    except Exception as exc:  # pyogrio raises several types for unreadable input
        raise InvalidInput(message(N_("could not read {file} as GeoJSON: {reason}"),
                                   file=filename, reason=read_error(exc))) from None
    if frame.empty:
        return pd.DataFrame()
    if frame.crs is not None and not frame.crs.is_geographic:
        frame = frame.to_crs(4326)
    is_point = (frame.geom_type == "Point").to_numpy()
    out = pd.DataFrame(frame.drop(columns=frame.geometry.name))
    geoms = frame.geometry.to_numpy()
    out[_LON] = np.where(is_point, shapely.get_x(np.where(is_point, geoms, None)), np.nan)
    out[_LAT] = np.where(is_point, shapely.get_y(np.where(is_point, geoms, None)), np.nan)
    out[_GEOM_TYPE] = frame.geom_type.fillna("empty").to_numpy()
    return out


_LON, _LAT, _GEOM_TYPE = "\0lon", "\0lat", "\0geometry_type"


def _file_columns(frame: pd.DataFrame, options: FileOptions) -> dict[str, str | None]:
    """Which column holds what: the planner's options first, then the common names."""
    names = [str(c) for c in frame.columns]
    problems = [message(N_("no column {field!r} (given as the {option} option); the file has: {available}"),
                        field=value, option=option, available=", ".join(names))
                for option, value in (("lon_field", options.lon_field), ("lat_field", options.lat_field))
                if value and value not in names]
    geo = _LON in names
    cols = {
        "lon": _LON if geo else options.lon_field or find_field(names, LON_FIELDS),
        "lat": _LAT if geo else options.lat_field or find_field(names, LAT_FIELDS),
        "category": find_field(names, CATEGORY_FIELDS), "time": find_field(names, TIME_FIELDS),
        "external_id": find_field(names, EXTERNAL_ID_FIELDS), "status": find_field(names, STATUS_FIELDS),
        "description": find_field(names, DESCRIPTION_FIELDS), "source": find_field(names, SOURCE_FIELDS),
    }
    if not problems and (cols["lon"] is None or cols["lat"] is None):
        problems.append(message(N_("no coordinate columns found (tried {lon} and {lat}); the file has: "
                                   "{available}. Say which with lon_field and lat_field."),
                                lon="/".join(LON_FIELDS), lat="/".join(LAT_FIELDS), available=", ".join(names)))
    if problems:
        raise InvalidInput(message(N_("the file's columns do not match the options")), problems)
    return cols


def _parse_frame(frame: pd.DataFrame, cols: Mapping[str, str | None], *, category: str | None,
                 tz: ZoneInfo, now: datetime, require_time: bool, require_category: bool) -> ParsedBatch:
    """Vectorised checks of coordinates and times, then one draft per good row."""
    lon, lat = _numbers(frame, cols["lon"]), _numbers(frame, cols["lat"])
    times = _times(frame, cols["time"], tz)
    problems: list[list[Message]] = [[] for _ in range(len(frame))]
    _check_coordinates(frame, cols, lon, lat, problems)
    _check_times(frame, cols["time"], times, problems, require_time)
    batch = ParsedBatch()
    for i, (row, record) in enumerate(zip(frame.index, frame.to_dict("records"))):
        if require_category and not _present(record.get(cols["category"] or "")):
            problems[i].append(message(N_("missing category; expected one of {expected}"),
                                       expected=", ".join(c.code for c in categories.CATEGORIES)))
        draft = None if problems[i] else _draft(record, cols, lon[i], lat[i], times[i], now,
                                                category, problems[i])
        if draft is None:
            batch.errors.append(RowError(int(row), tuple(problems[i])))
        else:
            batch.drafts.append((int(row), draft))
    return batch


def _numbers(frame: pd.DataFrame, column: str | None) -> np.ndarray:
    if column is None or column not in frame:
        return np.full(len(frame), np.nan)
    values = frame[column]
    if not pd.api.types.is_float_dtype(values):   # text to strip, and JSON true/false are not numbers
        values = values.map(lambda v: v.strip() if isinstance(v, str) else None
                            if isinstance(v, (bool, np.bool_)) else v).astype(object)
    return pd.to_numeric(values, errors="coerce").to_numpy(dtype=float)


def _times(frame: pd.DataFrame, column: str | None, tz: ZoneInfo) -> list[datetime | None]:
    """Wall-clock times in ``tz``; text with an offset is converted, text without one is taken as local.

    ISO 8601 first, then one format guessed from the first other value (e.g. US
    ``01/02/2015 09:27:07 AM``) for the rest of the column: a file is read one way, never day-first
    here and month-first there; values fitting neither are refused by row.  ``GMT+8``-style zones
    are refused too (their sign is read both ways).
    """
    if column is None or column not in frame:
        return [None] * len(frame)
    raw = frame[column].map(_time_text).astype(object)
    ambiguous = raw.str.contains(r"(?:GMT|UTC)\s*[+-]\d", regex=True, na=False)
    raw = raw.where(~ambiguous, None)
    parsed = pd.to_datetime(raw, errors="coerce", format="ISO8601", utc=True)
    fmt = _guess_format(raw[parsed.isna()])
    if fmt is not None:
        retry = parsed.isna() & raw.notna()
        parsed[retry] = pd.to_datetime(raw[retry], errors="coerce", format=fmt, utc=True)
    has_offset = raw.str.slice(10).str.contains(r"(?:Z|[+-]\d{2}(?::?\d{2})?)$", regex=True, na=False)
    local = parsed.dt.tz_convert(tz).dt.tz_localize(None).where(has_offset.astype(bool),
                                                                parsed.dt.tz_localize(None))
    return [None if pd.isna(t) else t.to_pydatetime() for t in local]


def _time_text(value: Any) -> str | None:
    """The text of a time, with Chinese dates (2026年3月5日 8时12分) in numeric form."""
    if not _present(value):
        return None
    text = str(value).strip()
    return _CHINESE_DATE.sub(lambda m: f"{m[1]}-{int(m[2]):02d}-{int(m[3]):02d} ", text).replace(
        "时", ":").replace("分", "").replace("秒", "").strip()


_CHINESE_DATE = re.compile(r"(\d{4})\s*年\s*(\d{1,2})\s*月\s*(\d{1,2})\s*日\s*")


# Tried, in order, when pandas cannot guess a value's format (it cannot for "03:04:41 PM").
_COMMON_FORMATS = ("%m/%d/%Y %I:%M:%S %p", "%m/%d/%Y %I:%M %p", "%Y/%m/%d %H:%M:%S", "%Y/%m/%d %H:%M",
                   "%Y/%m/%d", "%Y.%m.%d %H:%M:%S", "%Y.%m.%d %H:%M", "%Y.%m.%d", "%m/%d/%Y %H:%M:%S",
                   "%m/%d/%Y %H:%M", "%m/%d/%Y")


def _guess_format(values: pd.Series) -> str | None:
    """The strftime format of the first value that has one."""
    for value in values.dropna().head(20):
        fmt = guess_datetime_format(value) or next(
            (f for f in _COMMON_FORMATS if _fits(value, f)), None)
        if fmt:
            return fmt
    return None


def _fits(value: str, fmt: str) -> bool:
    try:
        datetime.strptime(value, fmt)
    except ValueError:
        return False
    return True


def _present(value: Any) -> bool:
    return value is not None and not (isinstance(value, float) and np.isnan(value)) and str(value).strip() != ""


def _check_coordinates(frame: pd.DataFrame, cols: Mapping[str, str | None], lon: np.ndarray,
                       lat: np.ndarray, problems: list[list[Message]]) -> None:
    geom_types = frame[_GEOM_TYPE].to_numpy() if _GEOM_TYPE in frame else None
    for i in range(len(frame)):
        if geom_types is not None and geom_types[i] != "Point":
            problems[i].append(message(N_("expected a Point geometry, got {got}"), got=geom_types[i]))
        elif np.isnan(lon[i]) or np.isnan(lat[i]):
            problems[i].append(message(N_("missing or non-numeric coordinates (lon={lon!r}, lat={lat!r})"),
                                       lon=_raw(frame, cols["lon"], i), lat=_raw(frame, cols["lat"], i)))
        elif not (-180 <= lon[i] <= 180 and -90 <= lat[i] <= 90):
            problems[i].append(message(N_("coordinates out of range: lon={lon}, lat={lat}; expected WGS84 "
                                          "longitude -180..180 and latitude -90..90"), lon=lon[i], lat=lat[i]))


def _check_times(frame: pd.DataFrame, column: str | None, times: list[datetime | None],
                 problems: list[list[Message]], require_time: bool) -> None:
    for i, t in enumerate(times):
        if t is not None:
            continue
        raw = _raw(frame, column, i)
        if raw is not None:
            problems[i].append(message(N_("cannot read {value!r} as a date and time"), value=raw))
        elif require_time:
            problems[i].append(message(N_("missing report time (expected a date such as 2026-03-05 08:12)")))


def _raw(frame: pd.DataFrame, column: str | None, i: int) -> Any:
    if column is None or column not in frame:
        return None
    value = frame[column].iloc[i]
    if isinstance(value, np.generic):
        value = value.item()
    return value if _present(value) else None


def _draft(record: Mapping[Hashable, Any], cols: Mapping[str, str | None], lon: float, lat: float,
           when: datetime | None, now: datetime, category: str | None,
           problems: list[Message]) -> IncidentDraft | None:
    def value(key: str) -> Any:
        return record.get(cols[key]) if cols[key] else None
    try:
        status = parse_status(value("status"))
    except ValueError as exc:
        problems.append(exc.args[0])
        return None
    code, raw = resolve_category(category if category else value("category"))
    return IncidentDraft(category=code, category_raw=raw, lon=float(lon), lat=float(lat),
                         reported_at=when or now, time_given=when is not None, status=status,
                         external_id=clean_text(value("external_id")),
                         description=clean_text(value("description")) or "", source=clean_text(value("source")) or "")
