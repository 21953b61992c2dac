"""Incidents (事件): what grid workers report, read from JSON records or CSV/GeoJSON files.

Parsing is tolerant of real files and strict about what matters: a row without usable
coordinates or date is reported with its row number and reason, never stored half-made
and never silently dropped; a category word outside our list is kept as ``other`` with
the original text preserved.  Times are stored as wall-clock time in the service's
time zone (an offset in the input is converted to it); a time is accepted from 1970 to the end
of 2100 with a UTC offset within ±14:00 (:data:`EARLIEST_TIME`, :data:`LATEST_TIME`), and
anything else given is a problem of its row.
"""
from __future__ import annotations

import csv
import io
import json
import logging
import math
import queue
import re
import threading
import unicodedata
import warnings
from dataclasses import dataclass, field
from datetime import datetime
from enum import Enum
from itertools import islice
from pathlib import Path
from typing import Any, BinaryIO, Iterable, Iterator, Mapping, Sequence, TypeVar
from zoneinfo import ZoneInfo

import geopandas as gpd
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import shapely
from pandas.tseries.api import guess_datetime_format

from . import categories
from .chinacoords import PointCRS
from .coordinates import shown
from .errors import N_, InvalidInput, Message, message
from .formats import read_error
from .layer import clean_text, find_field
from .mapping import NO_DEADLINE, ImportMapping, fold

log = logging.getLogger(__name__)

LON_FIELDS = ("lon", "lng", "long", "longitude", "x", "经度", "东经")
LAT_FIELDS = ("lat", "latitude", "y", "纬度", "北纬")
#: One column of both coordinates ("114.12,30.05"), longitude first …
PAIR_FIELDS = ("经纬度", "坐标", "位置坐标", "经纬度坐标", "lnglat", "lonlat", "lng_lat", "lon_lat", "lng,lat",
               "lon,lat")
#: … or latitude first.
PAIR_LAT_FIRST_FIELDS = ("纬经度", "latlng", "latlon", "lat_lng", "lat_lon", "lat,lng", "lat,lon")
# Each list in order of preference; the Chinese names after the first few are those of 12345 hotline
# and grid-system exports (工单 work orders, 诉求 requests, 受理 accepted).
CATEGORY_FIELDS = ("category", "类别", "事件类别", "事件类型", "type", "问题类型", "诉求类型", "事件分类", "问题分类",
                   "工单类型")
TIME_FIELDS = ("reported_at", "report_time", "上报时间", "时间", "日期", "time", "date", "datetime", "open_dt",
               "created_at", "受理时间", "登记时间", "创建时间", "发现时间", "发生时间")
# A bare "id" (or 编号, 序号) is not among them: it is usually a row number of someone's export, and
# deduplicating on it would drop other people's reports.
EXTERNAL_ID_FIELDS = ("external_id", "事件编号", "case_id", "case_enquiry_id", "report_id", "工单编号", "工单号",
                      "案件编号", "诉求编号")
STATUS_FIELDS = ("status", "状态", "case_status", "处理状态", "办理状态", "工单状态", "案件状态")
DESCRIPTION_FIELDS = ("description", "描述", "事件描述", "case_title", "title", "问题描述", "诉求内容", "反映内容",
                      "事件内容", "工单内容", "情况描述", "内容")
SOURCE_FIELDS = ("source", "来源", "来源渠道", "诉求渠道", "上报渠道", "渠道")

#: The times read from files and records (report, close and due times alike), as wall-clock time in
#: the service's zone: earlier or later is a typo (year 0, 20260), a number taken for a date or an
#: attack, and would break the store's and the figures' arithmetic.
EARLIEST_TIME, LATEST_TIME = datetime(1970, 1, 1), datetime(2100, 12, 31, 23, 59, 59, 999999)
#: The largest UTC offset a time may carry (Earth's run from -12:00 to +14:00); pandas reads up to 23:59.
MAX_UTC_OFFSET = "14:00"
_BAD_OFFSET = r"[+-](?:(?:1[5-9]|[2-9][0-9])(?::?[0-9]{2})?|14:?(?:0[1-9]|[1-5][0-9])|[0-9]{2}:?[6-9][0-9])$"
_LONG_YEAR = r"^[+-]?[0-9]{5,}-"     # 99999-01-01: ISO 8601 with more than four digits of year
_OUTSIDE, _OFFSET = 1, 2             # why a time that was read was refused (0: it was not)


class Status(str, Enum):
    """Where an incident is in its lifecycle (:mod:`gridmap.lifecycle` says what may follow what)."""

    REPORTED = "reported"          # 上报
    DISPATCHED = "dispatched"      # 派单
    IN_PROGRESS = "in_progress"    # 处置
    CLOSED = "closed"              # 办结
    RATED = "rated"                # 评价: closed, and the reporter said how satisfied
    REJECTED = "rejected"          # 不予受理
    DUPLICATE = "duplicate"        # 重复: another report of the same problem


_STATUS_WORDS = {
    "reported": Status.REPORTED, "open": Status.REPORTED, "new": Status.REPORTED, "上报": Status.REPORTED,
    "已上报": Status.REPORTED, "dispatched": Status.DISPATCHED, "派单": Status.DISPATCHED,
    "已派单": Status.DISPATCHED, "in_progress": Status.IN_PROGRESS, "in progress": Status.IN_PROGRESS,
    "处置": Status.IN_PROGRESS, "处置中": Status.IN_PROGRESS, "closed": Status.CLOSED,
    "办结": Status.CLOSED, "已办结": Status.CLOSED, "rated": Status.RATED, "已评价": Status.RATED,
    "rejected": Status.REJECTED, "不予受理": Status.REJECTED, "退回": Status.REJECTED,
    "duplicate": Status.DUPLICATE, "重复": Status.DUPLICATE,
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
    original_x: float | None = None      # the coordinates as given, when not in WGS84
    original_y: float | None = None
    original_crs: str | None = None      # their system (GCJ02, BD09, EPSG:4490 …); None: WGS84
    closed_at: datetime | None = None    # when it was closed, as a file says (a mapping's closed_at)
    due_at: datetime | None = None       # its own deadline, as a file says (a mapping's due_at)


@dataclass
class IncidentColumns:
    """Incidents as reported, as columns: entry i of every array is incident i.  Imports read,
    check, assign and store them this way, never as one Python object per row."""

    category: np.ndarray          # object: our category code
    category_raw: np.ndarray      # object: the original text when it was not one of ours, else None
    lon: np.ndarray               # float64, WGS84
    lat: np.ndarray               # float64
    reported_at: np.ndarray       # datetime64[us], wall-clock time in the service's zone
    status: np.ndarray            # object: a Status value
    external_id: np.ndarray       # object: str or None
    description: np.ndarray       # object: str
    source: np.ndarray            # object: str
    time_given: np.ndarray        # bool: False where reported_at defaulted to the time of the request
    original_x: np.ndarray        # float64: the coordinates as given where not in WGS84, else NaN
    original_y: np.ndarray
    original_crs: np.ndarray      # object: their system (GCJ02, BD09, EPSG:4490 …), None for WGS84
    closed_at: np.ndarray         # datetime64[us]: the close time a file gives (NaT: none)
    due_at: np.ndarray            # datetime64[us]: the case's own deadline a file gives (NaT: the category's)

    def __len__(self) -> int:
        return len(self.lon)

    def take(self, positions: np.ndarray) -> IncidentColumns:
        return IncidentColumns(**{name: values[positions] for name, values in self.__dict__.items()})

    @classmethod
    def of(cls, drafts: Sequence[IncidentDraft]) -> IncidentColumns:
        """Drafts (a handful, from code and tests) as columns."""
        def objects(values: Any) -> np.ndarray:
            column = np.empty(len(drafts), dtype=object)
            column[:] = list(values)
            return column
        return cls(category=objects(d.category for d in drafts), category_raw=objects(d.category_raw for d in drafts),
                   lon=np.array([d.lon for d in drafts], dtype=float),
                   lat=np.array([d.lat for d in drafts], dtype=float),
                   reported_at=np.array([d.reported_at for d in drafts], dtype="datetime64[us]").reshape(-1),
                   status=objects(Status(d.status).value for d in drafts),
                   external_id=objects(d.external_id for d in drafts),
                   description=objects(d.description for d in drafts), source=objects(d.source for d in drafts),
                   time_given=np.array([d.time_given for d in drafts], dtype=bool),
                   original_x=np.array([np.nan if d.original_x is None else d.original_x for d in drafts], dtype=float),
                   original_y=np.array([np.nan if d.original_y is None else d.original_y for d in drafts], dtype=float),
                   original_crs=objects(d.original_crs for d in drafts),
                   closed_at=np.array([d.closed_at or "NaT" for d in drafts], dtype="datetime64[us]").reshape(-1),
                   due_at=np.array([d.due_at or "NaT" for d in drafts], dtype="datetime64[us]").reshape(-1))

    @classmethod
    def concat(cls, parts: Sequence[IncidentColumns]) -> IncidentColumns:
        return cls(**{name: np.concatenate([getattr(p, name) for p in parts]) for name in cls.__dataclass_fields__})

    def draft(self, i: int) -> IncidentDraft:
        return IncidentDraft(category=self.category[i], category_raw=self.category_raw[i], lon=float(self.lon[i]),
                             lat=float(self.lat[i]), reported_at=self.reported_at[i].astype("datetime64[us]").item(),
                             status=Status(self.status[i]), external_id=self.external_id[i],
                             description=self.description[i], source=self.source[i],
                             time_given=bool(self.time_given[i]),
                             original_x=None if np.isnan(self.original_x[i]) else float(self.original_x[i]),
                             original_y=None if np.isnan(self.original_y[i]) else float(self.original_y[i]),
                             original_crs=self.original_crs[i], closed_at=optional_time(self.closed_at[i]),
                             due_at=optional_time(self.due_at[i]))


def optional_time(value: np.datetime64) -> datetime | None:
    """A datetime64 as a datetime, NaT as None."""
    return None if np.isnat(value) else value.astype("datetime64[us]").item()


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
    status: str = Status.REPORTED.value      # where it is in its lifecycle, for a later export to advance


def new_reports(incidents: IncidentColumns, known: Mapping[str, KnownReport]) -> np.ndarray:
    """The positions of the incidents to insert: every one without an external id, and the first
    of each external id not stored yet.  The others are repeats (see :func:`outcomes`)."""
    external = pd.Series(incidents.external_id, dtype=object)
    anonymous = external.isna().to_numpy()
    first = ~external.duplicated().to_numpy()
    unknown = ~external.isin(list(known)).to_numpy() if known else np.ones(len(external), dtype=bool)
    return np.flatnonzero(anonymous | (first & unknown))


@dataclass(frozen=True)
class Outcomes:
    """What storing each incident of a batch did: its id (the new one, or the one stored before)
    and whether it is new or a conflict (neither: the same report, stored before)."""

    ids: np.ndarray       # int64
    created: np.ndarray   # bool
    conflict: np.ndarray  # bool

    def __getitem__(self, i: int) -> Stored:
        kind = Outcome.CREATED if self.created[i] else Outcome.CONFLICT if self.conflict[i] else Outcome.EXISTING
        return Stored(int(self.ids[i]), kind)

    def __len__(self) -> int:
        return len(self.ids)


def outcomes(incidents: IncidentColumns, known: Mapping[str, KnownReport], fresh: np.ndarray,
             new_ids: np.ndarray) -> Outcomes:
    """What happened to each incident once the new ones (positions ``fresh``) have ids.

    A repeated external id is the same report when category, position and time match (a time
    defaulted to the moment of the request proves nothing, so then only category and position
    must); a different report under a known external id is a conflict, never merged."""
    ids = np.full(len(incidents), -1, dtype=np.int64)
    created, conflict = np.zeros(len(incidents), dtype=bool), np.zeros(len(incidents), dtype=bool)
    ids[fresh], created[fresh] = new_ids, True
    repeats = np.flatnonzero(~_mask(fresh, len(incidents)))
    if len(repeats):
        first: dict[str, tuple[int, tuple]] = {ext: (k.id, _key(k)) for ext, k in known.items()}
        named = fresh[pd.notna(incidents.external_id[fresh])]
        first.update({incidents.external_id[i]: (int(ids[i]), _key(incidents.draft(i))) for i in named})
        for i in repeats:
            draft = incidents.draft(int(i))
            stored_id, key = first[draft.external_id]   # type: ignore[index]  # a repeat has an external id
            mine = _key(draft)
            same = key == mine if draft.time_given else key[:-1] == mine[:-1]
            ids[i], conflict[i] = stored_id, not same
    return Outcomes(ids, created, conflict)


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
    """The records that parsed, as columns with the row each came from, and the rows that did not."""

    rows: np.ndarray                 # int64: the row (CSV line, feature or list index) of each incident
    incidents: IncidentColumns
    errors: list[RowError] = field(default_factory=list)
    status_given: bool = False       # the records say their status (else: reported, by default)

    @property
    def drafts(self) -> list[tuple[int, IncidentDraft]]:
        """(row, draft) of every incident: for a look at a few, not for a million."""
        return [(int(row), self.incidents.draft(i)) for i, row in enumerate(self.rows)]

    @classmethod
    def concat(cls, parts: Sequence[ParsedBatch]) -> ParsedBatch:
        return cls(np.concatenate([p.rows for p in parts]), IncidentColumns.concat([p.incidents for p in parts]),
                   [e for p in parts for e in p.errors], any(p.status_given for p in parts))


@dataclass(frozen=True)
class FileOptions:
    lon_field: str | None = None
    lat_field: str | None = None
    category: str | None = None
    crs: str | None = None          # the coordinates' system (chinacoords.PointCRS.parse); None: WGS84
    mapping: ImportMapping | None = None   # the export's columns and words (gridmap.mapping)


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


def parse_records(records: Sequence[Any], *, tz: ZoneInfo, now: datetime, crs: str | None = None) -> ParsedBatch:
    """Read the JSON objects of an API request; an error's ``row`` is the 0-based list index.  A
    record's ``crs`` says its coordinates' system (default ``crs``, else WGS84)."""
    good = [i for i, r in enumerate(records) if isinstance(r, Mapping)]
    frame = pd.DataFrame([dict(records[i]) for i in good], index=good)
    batch = _parse_frame(frame, API_COLUMNS, category=None, tz=tz, now=now, require_time=False,
                         require_category=True, crs=crs)
    batch.errors += [RowError(i, (message(N_("expected a JSON object, got {got}"), got=type(r).__name__),))
                     for i, r in enumerate(records) if not isinstance(r, Mapping)]
    batch.errors.sort(key=lambda e: e.row)
    return batch


#: Rows read, checked, assigned and stored at a time (a million-row import held 80 MB less at 50,000
#: than at 100,000, in the storing process and its worker together, and was no slower).
CHUNK_ROWS = 50_000


#: A file's content: its bytes, or the path of a file on disk, whose CSV rows are then read from
#: the disk a chunk at a time (a file of any size never sits whole in memory).
FileData = bytes | Path


def line_count(data: FileData) -> int:
    """The line breaks in a file (read a megabyte at a time from the disk)."""
    if isinstance(data, bytes):
        return data.count(b"\n")
    with open(data, "rb") as stream:
        return sum(block.count(b"\n") for block in iter(lambda: stream.read(1 << 20), b""))


def _opened(data: FileData) -> BinaryIO:
    """The file to read from its start (the caller closes it)."""
    return io.BytesIO(data) if isinstance(data, bytes) else open(data, "rb")   # noqa: SIM115


def _whole(data: FileData) -> bytes:
    return data if isinstance(data, bytes) else data.read_bytes()


def read_incident_file(data: FileData, *, filename: str, options: FileOptions, tz: ZoneInfo,
                       now: datetime) -> ParsedBatch:
    """Read a CSV or GeoJSON file whole; an error's ``row`` is the CSV line (header = 1) or feature index."""
    for encoding in file_encodings(filename):
        try:
            return ParsedBatch.concat(list(incident_chunks(data, filename=filename, options=options, tz=tz, now=now,
                                                           encoding=encoding)))
        except UnicodeDecodeError:
            continue
    raise not_text(filename)


def file_encodings(filename: str) -> tuple[str | None, ...]:
    """The encodings to try for an incident file, in order (None: the format says)."""
    return ("utf-8-sig", "gb18030") if is_text_table(filename) else (None,)


def is_text_table(filename: str) -> bool:
    """Whether a file is read as delimited text, a line a row (whatever its name: not GeoJSON or XLSX)."""
    return not (_is_geojson(filename) or _is_xlsx(filename))


def not_text(filename: str) -> InvalidInput:
    return InvalidInput(message(N_("{file} is neither UTF-8 nor GB18030 text"), file=filename))


def incident_chunks(data: FileData, *, filename: str, options: FileOptions, tz: ZoneInfo, now: datetime,
                    encoding: str | None) -> Iterator[ParsedBatch]:
    """The file's rows parsed :data:`CHUNK_ROWS` at a time (a GeoJSON file in one), so a million-row
    file never sits in one frame.  A CSV in another ``encoding`` raises UnicodeDecodeError, perhaps
    after some chunks (the caller starts again with the next of :func:`file_encodings`)."""
    if filename.lower().endswith(".xls"):
        with _opened(data) as stream:
            _check_xls(stream.read(4096), filename)
    frames = ([(_geojson_frame(_whole(data), filename), {})] if _is_geojson(filename)
              else [(_xlsx_frame(_whole(data), filename, options), {})] if _is_xlsx(filename)
              else _csv_chunks(data, filename, encoding or "", options))
    cols: dict[str, str | None] | None = None
    formats: dict[str, str] = {}       # a time format guessed in the first chunk holds for the whole file
    for frame, unreadable in frames:
        if frame.empty:
            continue
        cols = cols or _file_columns(frame, options)
        if cols.get("pair"):
            frame = _split_pair(frame, cols)
        yield _parse_frame(frame, cols, category=options.category, tz=tz, now=now, require_time=True,
                           require_category=False, formats=formats, crs=options.crs, mapping=options.mapping,
                           unreadable=unreadable)
    if cols is None:
        raise InvalidInput(message(N_("{file} has no rows; expected incidents"), file=filename))


Chunk = TypeVar("Chunk")


def read_ahead(chunks: Iterable[Chunk]) -> Iterator[Chunk]:
    """``chunks``, each made in a thread while the one before is being stored (SQLite's writes and
    pandas' parsing both let go of the GIL, so on two cores they overlap); an error raised while
    making them is raised here, in order."""
    ahead: queue.Queue[tuple[Chunk | None, BaseException | None]] = queue.Queue(maxsize=1)
    stop = threading.Event()

    def put(item: tuple[Chunk | None, BaseException | None]) -> bool:
        while not stop.is_set():        # the consumer may stop taking (an error while storing)
            try:
                ahead.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def read() -> None:
        try:
            for chunk in chunks:
                if not put((chunk, None)):
                    return
            put((None, None))
        except BaseException as error:  # noqa: BLE001 - handed to the consumer, which raises it
            put((None, error))

    reader = threading.Thread(target=read, name="gridmap-read-ahead", daemon=True)
    reader.start()
    try:
        while True:
            chunk, error = ahead.get()
            if error is not None:
                raise error
            if chunk is None:
                return
            yield chunk
    finally:
        stop.set()
        reader.join()


def _check_xls(head: bytes, filename: str) -> None:
    """An ``.xls`` file is read as text (a tab- or comma-separated export named so); an old binary
    workbook or a web page saved under that name (its first bytes, ``head``, say which) is refused,
    saying how to save it instead."""
    if head.startswith(b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"):
        raise InvalidInput(message(N_("{file} is an old Excel workbook (.xls), which is not read; open it in Excel "
                                      "or WPS and save it as an Excel workbook (.xlsx) or as CSV (UTF-8)"),
                                   file=filename))
    if head.lstrip(b"\xef\xbb\xbf \t\r\n")[:1] == b"<":
        raise InvalidInput(message(N_("{file} is a web page (HTML) under an .xls name, as some systems export; open "
                                      "it in Excel or WPS and save it as an Excel workbook (.xlsx) or as CSV (UTF-8)"),
                                   file=filename))


def _is_geojson(filename: str) -> bool:
    return filename.lower().endswith((".geojson", ".json"))


def _is_xlsx(filename: str) -> bool:
    return filename.lower().endswith(".xlsx")


def _xlsx_frame(data: bytes, filename: str, options: FileOptions) -> pd.DataFrame:
    """An Excel workbook's table as text, indexed by row number, as a CSV's lines are; dates as
    Excel stores them, written as ISO text.  The table is the first sheet's, or the first sheet
    naming the coordinates in one of its first rows (a cover or notes sheet before it), and its
    header that row (a title above the table)."""
    try:
        book = pd.ExcelFile(io.BytesIO(data), engine="calamine")      # openpyxl took 17 s for 100,000 rows, this 2.5 s
        sheet, header = book.sheet_names[0], 0
        for name in book.sheet_names:
            head = pd.read_excel(book, sheet_name=name, header=None, nrows=HEADER_SEARCH)
            found = next((i for i, row in enumerate(head.itertuples(index=False))
                          if _names_coordinates([clean_text(v) or "" for v in row], options)), None)
            if found is not None:
                sheet, header = name, found
                break
        frame = pd.read_excel(book, sheet_name=sheet, header=header)
    except Exception as exc:  # calamine raises several types for what is not a workbook
        raise InvalidInput(message(N_("could not read {file} as an Excel workbook (.xlsx): {reason}"),
                                   file=filename, reason=read_error(exc))) from None
    frame = frame.astype(object).where(frame.notna(), None)
    for column in frame.columns:       # Excel's own dates and times, as the text a CSV would hold
        frame[column] = [v.isoformat(sep=" ") if isinstance(v, (pd.Timestamp, datetime)) else
                         "" if v is None else clean_text(v) or "" for v in frame[column]]
    frame.index = frame.index + header + 2
    return frame.loc[~(frame == "").all(axis=1)]


#: How many lines a file's header is looked for in, when the first does not name the coordinates
#: (a title, a blank line, the unit and date above the table, as office ledgers (台账) have).
HEADER_SEARCH = 20


def _names_coordinates(names: Iterable[Any], options: FileOptions) -> bool:
    """Whether a header row names the coordinate columns (:func:`_coordinate_columns`)."""
    names = [str(n) for n in names]
    cols = _coordinate_columns(names, options)
    return "pair" in cols or all(cols[axis] in names for axis in ("lon", "lat"))


def _coordinate_columns(names: list[str], options: FileOptions) -> dict[str, str | None]:
    """The columns of the longitude and latitude: as the options or the mapping name them (whether or
    not the file has them), else found by name; failing both, one column of both (``pair``, read
    in ``pair_order``) split into two of our own."""
    given = {"lon": options.lon_field, "lat": options.lat_field}
    if options.mapping is not None:
        given |= {axis: column for axis, column in options.mapping.columns.items() if axis in given}
    cols = {axis: given[axis] or find_field(names, fields)
            for axis, fields in (("lon", LON_FIELDS), ("lat", LAT_FIELDS))}
    if cols["lon"] is None and cols["lat"] is None:
        pair, lat_first = find_field(names, PAIR_FIELDS), find_field(names, PAIR_LAT_FIRST_FIELDS)
        if pair or lat_first:
            return {"lon": _PAIR_LON, "lat": _PAIR_LAT, "pair": pair or lat_first,
                    "pair_order": "lon,lat" if pair else "lat,lon"}
    return cols


def _csv_chunks(data: FileData, filename: str, encoding: str,
                options: FileOptions = FileOptions()) -> Iterator[tuple[pd.DataFrame, dict[int, Message]]]:
    """The rows of a CSV file, a chunk at a time, indexed by their line number (a line is a record,
    quoted line breaks included); blank lines are left out.  The header is line 1, or the first of
    the next lines naming the coordinates when line 1 does not (a title above the table).

    A line with more fields than the header is read without the extra ones when they are empty (a
    trailing comma, as Excel and some exports write), and is otherwise an empty row with why it was
    not read, in the chunk's dict by line number: a value in no column is never dropped unseen.
    A wrong encoding raises UnicodeDecodeError (the caller tries the next)."""
    stream = None
    try:
        sep, header, head = _layout(data, encoding, options)
        with _opened(data) as start:
            columns = pd.read_csv(start, dtype=str, encoding=encoding, index_col=False, nrows=0,
                                  skiprows=header, sep=sep).columns
        lines = _Lines(data, encoding, width=len(columns), delimiter=sep)
        # pandas skips (and says so) a line with more fields than the first one, and those are read
        # again here one by one; but when the first line has more than the header (a trailing comma),
        # pandas would drop the extra field of every line unseen, so columns are named for them
        first_width = len(head[header + 1]) if len(head) > header + 1 else 0
        past = [f"\0past the header {i}" for i in range(first_width - len(columns))]
        stream = _opened(data)
        reader = pd.read_csv(stream, dtype=str, keep_default_na=False, encoding=encoding, skiprows=header,
                             sep=sep, **({"header": 0, "names": [*columns, *past]} if past else {}), index_col=False,
                             skip_blank_lines=False, chunksize=CHUNK_ROWS, on_bad_lines="warn")
        skipped: list[tuple[int, int]] = []        # (line, fields seen) of the lines pandas skipped
        first = header + 2                          # the line of the next row pandas gives
        while True:
            frame = _next_chunk(reader, skipped)
            ended = frame is None
            if ended and not skipped:
                return
            if frame is None:          # lines skipped after the last row read: a chunk of their own
                frame = pd.DataFrame(columns=[*columns, *past], dtype="str")
            numbers = _line_numbers(first, len(frame), {line for line, _ in skipped})
            frame.index = numbers
            here = [entry for entry in skipped if ended or (len(numbers) and entry[0] < numbers[-1])]
            del skipped[:len(here)]
            first = max([first, *(numbers[-1:] + 1), *(line + 1 for line, _ in here)])
            beyond = np.zeros(len(frame), dtype=bool)
            for name in past:
                beyond |= (frame.pop(name).str.strip() != "").to_numpy(dtype=bool, na_value=False)
            unreadable = {int(number): lines.refusal() for number in frame.index[beyond]}
            frame, again = lines.put_back(frame, here)
            unreadable |= again
            yield frame.loc[~(frame == "").all(axis=1) | frame.index.isin(list(unreadable))], unreadable
            if ended:
                return
    except UnicodeDecodeError:
        raise
    except (pd.errors.ParserError, pd.errors.EmptyDataError, ValueError) as exc:
        raise InvalidInput(message(N_("could not read {file} as CSV: {reason}"),
                                   file=filename, reason=str(exc).strip())) from None
    finally:
        if stream is not None:
            stream.close()


def _layout(data: FileData, encoding: str, options: FileOptions) -> tuple[str, int, list[list[str]]]:
    """The file's delimiter, its header's line (0-based) and its first lines split by it: commas and
    line 1, unless line 1 does not name the coordinates; then the first of the first lines that
    does, split by commas, else by tabs, semicolons or bars (exports saved as text so)."""
    by_commas: list[list[str]] | None = None
    for sep in _DELIMITERS:
        head = _Lines(data, encoding, delimiter=sep).first(HEADER_SEARCH + 1)     # and the line after the last
        by_commas = head if by_commas is None else by_commas
        found = next((i for i, row in enumerate(head[:HEADER_SEARCH]) if _names_coordinates(row, options)), None)
        if found is not None:
            return sep, found, head
    return ",", 0, by_commas or []


_DELIMITERS = (",", "\t", ";", "|")
_SKIPPED = re.compile(r"Skipping line (\d+): expected \d+ fields, saw (\d+)")


def _next_chunk(reader: Iterator[pd.DataFrame], skipped: list[tuple[int, int]]) -> pd.DataFrame | None:
    """The reader's next chunk, None at the end; the lines pandas skipped meanwhile are added to
    ``skipped``.  The warnings are caught only while the chunk is read, never across a ``yield``:
    the chunks are read in a thread (:func:`read_ahead`), and a filter held while suspended was undone
    by another thread's ``catch_warnings`` (the process-wide list)."""
    with warnings.catch_warnings(record=True) as heard:
        warnings.simplefilter("always", category=pd.errors.ParserWarning)
        frame = next(reader, None)
    for warning in heard:
        skipped += [(int(found[1]), int(found[2])) for found in _SKIPPED.finditer(str(warning.message))]
    skipped.sort()
    return frame


def _line_numbers(first: int, count: int, skipped: set[int]) -> np.ndarray:
    """The line numbers of ``count`` rows read in order from line ``first`` on, past the ``skipped`` lines."""
    if not skipped:
        return np.arange(first, first + count, dtype=np.int64)
    numbers = np.arange(first, first + count + len(skipped), dtype=np.int64)
    return numbers[~np.isin(numbers, list(skipped))][:count]


class _Lines:
    """A CSV file's lines (records; header = line 1) read forward with the csv module, for the few
    that pandas skipped (only then is the file read this way)."""

    def __init__(self, data: FileData, encoding: str, *, width: int = 0, delimiter: str = ",") -> None:
        self._data, self._encoding, self.width, self._delimiter = data, encoding or "utf-8", width, delimiter
        self._reader: Iterator[list[str]] | None = None
        self._at = 0

    def first(self, count: int) -> list[list[str]]:
        """The file's first ``count`` lines (fewer where the csv module cannot split one)."""
        lines: list[list[str]] = []
        try:
            lines.extend(islice(self._records(), count))
        except csv.Error:            # a field over its size limit: pandas says what is wrong, if anything
            pass
        return lines

    def _records(self) -> Iterator[list[str]]:
        with io.TextIOWrapper(_opened(self._data), encoding=self._encoding, newline="") as text:
            yield from csv.reader(text, delimiter=self._delimiter)

    def put_back(self, frame: pd.DataFrame, skipped: list[tuple[int, int]]) -> tuple[pd.DataFrame, dict[int, Message]]:
        """``frame`` with the ``skipped`` lines in their places: without their extra fields when
        these are all empty, else as empty rows, with why each was not read."""
        if not skipped:
            return frame, {}
        rows, unreadable = [], {}
        for number, seen in skipped:
            fields = self._line(number)
            if fields is not None and len(fields) == seen and not "".join(fields[self.width:]).strip():
                rows.append(fields[:self.width])
            else:
                rows.append([""] * self.width)
                unreadable[number] = self.refusal()
        again = pd.DataFrame(rows, columns=frame.columns, index=[number for number, _ in skipped], dtype="str")
        return pd.concat([frame, again]).sort_index(kind="stable"), unreadable

    def refusal(self) -> Message:
        """Why a line with values past the header's fields was not read."""
        return message(N_("more fields than the header's {expected}: a value holding the delimiter {delimiter!r} "
                          "must be in double quotes (\"Building 3, Unit 5\"); correct the line, or export the file "
                          "again with quoting"), expected=self.width, delimiter=self._delimiter)

    def _line(self, number: int) -> list[str] | None:
        """Line ``number`` split into fields, None where the csv module cannot (the line is then refused)."""
        if self._reader is None:
            self._reader = self._records()
        try:
            for fields in self._reader:
                self._at += 1
                if self._at == number:
                    return fields
        except csv.Error:       # a field over the csv module's size limit: no line after it is read again
            self._reader = iter(())
        return None


def _geojson_frame(data: bytes, filename: str) -> pd.DataFrame:
    try:   # times as text: pyogrio would turn a column mixing offsets and none into UTC
        frame = gpd.read_file(io.BytesIO(data), datetime_as_string=True)
    except Exception as exc:  # pyogrio raises several types for unreadable input
        raise InvalidInput(message(N_("could not read {file} as GeoJSON: {reason}"),
                                   file=filename, reason=read_error(exc))) from None
    if frame.empty:
        return pd.DataFrame()
    if b"\\u0000" in data:
        _restore_cut_text(frame, data)
    if frame.crs is not None and not frame.crs.is_geographic:
        frame = frame.to_crs(4326)
    is_point = (frame.geom_type == "Point").to_numpy()
    out = pd.DataFrame(frame.drop(columns=frame.geometry.name))
    geoms = frame.geometry.to_numpy()
    out[_LON] = np.where(is_point, shapely.get_x(np.where(is_point, geoms, None)), np.nan)
    out[_LAT] = np.where(is_point, shapely.get_y(np.where(is_point, geoms, None)), np.nan)
    out[_GEOM_TYPE] = frame.geom_type.fillna("empty").to_numpy()
    return out


def _restore_cut_text(frame: pd.DataFrame, data: bytes) -> None:
    """Put back the text GDAL cut short at a NUL character (``"a\\u0000b"`` read as ``"a"``), so that
    the row is refused for it (:func:`_nul_problems`) instead of stored without a word."""
    try:
        features = json.loads(data).get("features")
    except (ValueError, AttributeError, RecursionError):    # GDAL read it; let what it read stand
        return
    if not isinstance(features, list) or len(features) != len(frame):
        return
    whole: dict[str, dict[int, str]] = {}
    for i, feature in enumerate(features):
        properties = feature.get("properties") if isinstance(feature, dict) else None
        for name, value in (properties.items() if isinstance(properties, dict) else ()):
            if isinstance(value, str) and "\x00" in value and name in frame.columns:
                whole.setdefault(name, {})[i] = value
    for name, values in whole.items():
        column = frame[name].to_numpy(dtype=object, copy=True)
        column[list(values)] = list(values.values())
        frame[name] = column


_LON, _LAT, _GEOM_TYPE = "\0lon", "\0lat", "\0geometry_type"
_PAIR_LON, _PAIR_LAT = "\0lon of the pair", "\0lat of the pair"


def _split_pair(frame: pd.DataFrame, cols: Mapping[str, str | None]) -> pd.DataFrame:
    """``frame`` with the two numbers of its coordinate-pair column as two columns: ``114.12,30.05``,
    ``114.12 30.05``, ``(114.12, 30.05)``, ``POINT (114.12 30.05)``; text not written so stays whole
    as the first, so a refusal shows it.  One regular expression over the whole column (Arrow's),
    never one Python call per row; the two columns are text, which :func:`_numbers` casts at once."""
    text = pc.utf8_trim_whitespace(pa.array(frame[str(cols["pair"])].astype("str")))
    parts = pc.extract_regex(text, f"^{_PAIR.pattern}$")      # null where it does not match
    first = pc.coalesce(pc.struct_field(parts, "a"), pc.if_else(pc.equal(text, ""), None, text))
    second = pc.struct_field(parts, "b")
    lon, lat = (first, second) if cols.get("pair_order") == "lon,lat" else (second, first)
    return frame.assign(**{name: pd.Series(pd.array(values, dtype="str"), index=frame.index)
                           for name, values in ((_PAIR_LON, lon), (_PAIR_LAT, lat))})


_PAIR = re.compile(r"(?i:point)?\s*[(\[]?\s*(?P<a>[^\s,，;；()\[\]]+)\s*(?:[,，;；]|\s)\s*"
                   r"(?P<b>[^\s,，;；()\[\]]+)\s*[)\]]?")


def _available(names: Sequence[str], limit: int = 40) -> str:
    """A file's column names as a message lists them: each at most 80 characters, the first ``limit``."""
    listed = ", ".join(shown(name) for name in names[:limit])
    return listed + (f", … ({len(names)} columns)" if len(names) > limit else "")


def _file_columns(frame: pd.DataFrame, options: FileOptions) -> dict[str, str | None]:
    """Which column holds what: the planner's options first, then the common names."""
    names = [str(c) for c in frame.columns]
    problems = [message(N_("no column {field!r} (given as the {option} option); the file has: {available}"),
                        field=value, option=option, available=_available(names))
                for option, value in (("lon_field", options.lon_field), ("lat_field", options.lat_field))
                if value and value not in names]
    cols: dict[str, str | None] = {
        **({"lon": _LON, "lat": _LAT} if _LON in names else _coordinate_columns(names, options)),
        "category": find_field(names, CATEGORY_FIELDS), "time": find_field(names, TIME_FIELDS),
        "external_id": find_field(names, EXTERNAL_ID_FIELDS), "status": find_field(names, STATUS_FIELDS),
        "description": find_field(names, DESCRIPTION_FIELDS), "source": find_field(names, SOURCE_FIELDS),
        "closed_at": None, "due_at": None,
    }
    if options.mapping is not None:             # the mapping's columns, checked against the file's
        for ours, column in options.mapping.columns.items():
            if column not in names:
                problems.append(message(N_("the mapping names column {column!r} for {field}; the file has: "
                                           "{available}"), column=column, field=ours, available=_available(names)))
            cols["time" if ours == "reported_at" else ours] = column
    if not problems and (cols["lon"] is None or cols["lat"] is None):
        problems.append(message(N_("no coordinate columns found (tried {lon} and {lat}, or one column of both: "
                                   "{pair}); the file has: {available}. Say which with lon_field and lat_field."),
                                lon="/".join(LON_FIELDS), lat="/".join(LAT_FIELDS),
                                pair="/".join(PAIR_FIELDS + PAIR_LAT_FIRST_FIELDS), available=_available(names)))
    if problems:
        raise InvalidInput(message(N_("the file's columns do not match the options")), problems)
    return cols


def _parse_frame(frame: pd.DataFrame, cols: Mapping[str, str | None], *, category: str | None,
                 tz: ZoneInfo, now: datetime, require_time: bool, require_category: bool,
                 formats: dict[str, str] | None = None, crs: str | None = None,
                 mapping: ImportMapping | None = None, unreadable: Mapping[int, Message] | None = None) -> ParsedBatch:
    """Every check on whole columns; messages are made only for the rows that have a problem.
    Coordinates in another system than WGS84 (``crs``, or a ``crs`` column) are converted, and
    kept as given beside the WGS84 point."""
    problems: dict[int, list[Message]] = {}
    frame, nested_category = _scalars(frame, cols, problems)
    _nul_problems(frame, cols, problems)
    x, y = _numbers(frame, cols["lon"]), _numbers(frame, cols["lat"])
    formats = {} if formats is None else formats
    times, refused = _times(frame, cols["time"], tz, formats)
    lon, lat, systems, unknown = _to_wgs84(frame, cols, x, y, crs, problems)
    _check_coordinates(frame, cols, lon, lat, problems, converted=systems, judged=~unknown)
    _time_problems(frame, cols["time"], times, refused, problems, required=require_time,
                   unreadable=N_("cannot read {value!r} as a date and time"))
    given = _column(frame, cols["category"])
    if require_category:
        for i in np.flatnonzero(pd.isna(_texts(given)) & ~nested_category):
            problems.setdefault(int(i), []).append(message(N_("missing category; expected one of {expected}"),
                                                           expected=", ".join(c.code for c in categories.CATEGORIES)))
    status = _statuses(_column(frame, cols["status"]), problems, mapping.status if mapping else {})
    code, raw = _categories(np.full(len(frame), category, dtype=object) if category else given,
                            mapping.category if mapping else {})
    closed_at, closed_refused = _times(frame, cols.get("closed_at"), tz, formats, key="closed_at")
    due_at, due_refused = _times(frame, cols.get("due_at"), tz, formats, key="due_at")
    for name, found, why in (("closed_at", closed_at, closed_refused), ("due_at", due_at, due_refused)):
        _time_problems(frame, cols.get(name), found, why, problems, required=False,      # a mapping's time columns
                       unreadable=N_("cannot read {value!r} ({field}) as a date and time"))
    if mapping is not None and cols.get("due_at") and mapping.when_missing == "none":
        due_at = np.where(np.isnat(due_at), np.datetime64(NO_DEADLINE, "us"), due_at)
    for number, reason in (unreadable or {}).items():    # a line not read: only why, not its empty fields
        problems[int(frame.index.get_loc(number))] = [reason]
    good = np.flatnonzero(~_mask(np.fromiter(problems, dtype=np.int64, count=len(problems)), len(frame)))
    timed = ~np.isnat(times)
    incidents = IncidentColumns(
        category=code, category_raw=raw, lon=lon, lat=lat,
        reported_at=np.where(timed, times, np.datetime64(now, "us")), status=status,
        external_id=_texts(_column(frame, cols["external_id"])),
        description=_texts(_column(frame, cols["description"]), ""), source=_texts(_column(frame, cols["source"]), ""),
        time_given=timed, original_x=np.where(pd.isna(systems), np.nan, x),
        original_y=np.where(pd.isna(systems), np.nan, y), original_crs=systems, closed_at=closed_at, due_at=due_at)
    errors = [RowError(int(frame.index[i]), tuple(problems[i])) for i in sorted(problems)]
    return ParsedBatch(frame.index.to_numpy(dtype=np.int64)[good], incidents.take(good), errors,
                       status_given=cols["status"] is not None and cols["status"] in frame)


def _mask(positions: np.ndarray, n: int) -> np.ndarray:
    """A boolean array of ``n`` that is True at ``positions``."""
    mask = np.zeros(n, dtype=bool)
    mask[positions] = True
    return mask


#: What is read as text; a list or an object there (a JSON record's) is refused by row.
_TEXT_COLUMNS = ("category", "status", "external_id", "description", "source")


def _scalars(frame: pd.DataFrame, cols: Mapping[str, str | None],
             problems: dict[int, list[Message]]) -> tuple[pd.DataFrame, np.ndarray]:
    """``frame`` with each list or object where text belongs (a JSON record's ``"status": [1]``) left
    out as a problem of its row, and where that was the category.  Coordinates and times say so
    themselves (missing or non-numeric, cannot read)."""
    nested_category = np.zeros(len(frame), dtype=bool)
    names = [cols.get(key) for key in _TEXT_COLUMNS] + ["crs"]
    for name in dict.fromkeys(n for n in names if n is not None and n in frame and frame[n].dtype == object):
        nested = frame[name].map(lambda v: isinstance(v, (list, dict))).to_numpy(dtype=bool)
        if not nested.any():
            continue
        for i in np.flatnonzero(nested):
            problems.setdefault(int(i), []).append(message(N_("{field}: expected text or a number, got {got}"),
                                                           field=name, got=type(frame[name].iloc[i]).__name__))
        frame = frame.assign(**{name: frame[name].where(~nested, None)})
        nested_category |= nested if name == cols.get("category") else False
    return frame, nested_category


def _nul_problems(frame: pd.DataFrame, cols: Mapping[str, str | None], problems: dict[int, list[Message]]) -> None:
    """A problem for each row whose stored text holds a NUL character: no good file has one (a damaged
    file has, or UTF-16 read as another encoding), and PostgreSQL cannot store it."""
    for name in dict.fromkeys(cols.get(key) for key in _TEXT_COLUMNS):
        if name is None or name not in frame:
            continue
        values = frame[name]
        if getattr(values.dtype, "storage", None) == "pyarrow":
            found = np.asarray(pc.fill_null(pc.match_substring(pa.array(values), "\x00"), False), dtype=bool)
        else:
            found = values.map(lambda v: isinstance(v, str) and "\x00" in v).to_numpy(dtype=bool)
        for i in np.flatnonzero(found):
            problems.setdefault(int(i), []).append(message(
                N_("{field}: {value!r} holds a NUL character, which cannot be stored; the file may be damaged "
                   "or in another encoding (open it in a text editor and save it as UTF-8)"),
                field=name, value=shown(values.iloc[i])))


def _column(frame: pd.DataFrame, column: str | None) -> pd.Series:
    if column is None or column not in frame:
        return pd.Series([None] * len(frame), index=frame.index, dtype=object)
    return frame[column]


def _texts(values: pd.Series, blank: str | None = None) -> np.ndarray:
    """A column as text (``clean_text``: ``7.0`` is "7", blanks are ``blank``), one call per distinct value."""
    if _is_text(values):                  # text already: clean_text is strip, and "" is missing
        stripped = values.str.strip()
        out = stripped.to_numpy(dtype=object, na_value=None)
        out[(stripped == "").to_numpy(dtype=bool, na_value=False)] = None
        if blank is not None:
            out[pd.isna(out)] = blank
        return out
    codes, uniques = pd.factorize(values.astype(object), use_na_sentinel=True)
    cleaned = np.empty(len(uniques) + 1, dtype=object)
    cleaned[:-1] = [clean_text(v) for v in uniques]
    cleaned[-1] = None                               # code -1: a missing value
    out = cleaned[codes]
    if blank is not None:
        out[pd.isna(out)] = blank
    return out


def _statuses(values: pd.Series, problems: dict[int, list[Message]],
              vocabulary: Mapping[str, str] | None = None) -> np.ndarray:
    """Status words as Status values (a mapping's ``vocabulary`` first); an unknown word is a problem
    of its row (told only when the row has no other problem, as it stops there)."""
    codes, uniques = pd.factorize(values.astype(object), use_na_sentinel=True)
    known: list[str | None] = []
    for value in uniques:
        if vocabulary and fold(value) in vocabulary:
            known.append(vocabulary[fold(value)])
            continue
        try:
            known.append(parse_status(value).value)
        except ValueError as exc:
            known.append(None)
            for i in np.flatnonzero(codes == len(known) - 1):
                if int(i) not in problems:
                    problems[int(i)] = [exc.args[0]]
    table = np.array(known + [Status.REPORTED.value], dtype=object)
    return table[codes]


def _categories(values: pd.Series | np.ndarray,
                vocabulary: Mapping[str, str] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(our code, the original text when it was not one of ours) per row; a mapping's
    ``vocabulary`` (the file's folded word → our code) first, keeping the file's word."""
    codes, uniques = pd.factorize(pd.Series(values, dtype=object), use_na_sentinel=True)
    resolved = [(vocabulary[fold(v)], str(v).strip()) if vocabulary and fold(v) in vocabulary
                else resolve_category(v) for v in uniques] + [resolve_category(None)]
    code = np.array([c for c, _ in resolved], dtype=object)
    raw = np.array([r for _, r in resolved], dtype=object)
    return code[codes], raw[codes]


def _numbers(frame: pd.DataFrame, column: str | None) -> np.ndarray:
    """A coordinate column as numbers (NaN: missing or not a number); degrees, minutes and seconds
    (``114°07′21.6″E``, ``北纬30°3'``) as decimal degrees."""
    if column is None or column not in frame:
        return np.full(len(frame), np.nan)
    values = frame[column]
    if _is_text(values):                             # a CSV's text column
        values = _plain(values).str.strip()
        try:            # numbers only: Arrow reads them at once (to_numeric took 0.9 s a million)
            return pc.cast(pa.array(values), pa.float64()).to_numpy(zero_copy_only=False)
        except pa.ArrowInvalid:         # some text that is not a number: each is judged below
            pass
    elif not pd.api.types.is_float_dtype(values):   # JSON: text to strip, and true/false are not numbers
        values = values.map(_json_number).astype(object)
    numbers = np.array(pd.to_numeric(values, errors="coerce"), dtype=float)        # a copy, to be written
    unread = np.flatnonzero(np.isnan(numbers) & pd.notna(values).to_numpy(dtype=bool))
    if len(unread):
        numbers[unread] = [_degrees(v) if isinstance(v, str) else math.nan for v in values.iloc[unread]]
    return numbers


def _degrees(text: str) -> float:
    """Degrees, minutes and seconds as decimal degrees, negative to the south and west; NaN when the
    text is not written so (or a minute or second is 60 or more)."""
    found = _DMS.fullmatch(text.strip())
    if found is None:
        return math.nan
    minutes, seconds = float(found["m"] or 0), float(found["s"] or 0)
    if minutes >= 60 or seconds >= 60 or (found["before"] and found["after"]):
        return math.nan
    value = float(found["d"]) + minutes / 60 + seconds / 3600
    return -value if (found["before"] or found["after"] or "") in ("S", "W", "s", "w", "南纬", "西经") else value


_DMS = re.compile(r"(?P<before>[NSEWnsew]|北纬|南纬|东经|西经)?\s*(?P<d>\d+(?:\.\d+)?)\s*[°度]\s*"
                  r"(?:(?P<m>\d+(?:\.\d+)?)\s*['′’分]\s*(?:(?P<s>\d+(?:\.\d+)?)\s*(?:\"|″|”|''|′′|秒)?)?)?"
                  r"\s*(?P<after>[NSEWnsew])?")


def _json_number(value: Any) -> Any:
    """A JSON value as a number or text for pandas: true/false are neither, and an integer too large
    for a float (10**400) is infinite, so out of range rather than an OverflowError."""
    if isinstance(value, str):
        return unicodedata.normalize("NFKC", value).strip()
    if isinstance(value, (bool, np.bool_)):
        return None
    if isinstance(value, int):
        try:
            return float(value)
        except OverflowError:
            return math.inf if value > 0 else -math.inf
    return value


def _times(frame: pd.DataFrame, column: str | None, tz: ZoneInfo, formats: dict[str, str], *,
           key: str = "time") -> tuple[np.ndarray, np.ndarray]:
    """Wall-clock times in ``tz`` (NaT: none, or refused), and why each one read was refused
    (:data:`_OUTSIDE` the accepted years, an impossible UTC :data:`_OFFSET`; 0: it was not).  Text
    with an offset is converted, text without one is taken as local.

    ISO 8601 first, then one format guessed from the first other value (e.g. US
    ``01/02/2015 09:27:07 AM``) for the rest of the column: a file is read one way, never day-first
    here and month-first there; values fitting neither are refused by row.  ``GMT+8``-style zones
    are refused too (their sign is read both ways).
    """
    if column is None or column not in frame:
        return (np.full(len(frame), np.datetime64("NaT"), dtype="datetime64[us]"),
                np.zeros(len(frame), dtype=np.int8))
    raw = _time_texts(frame[column])
    ambiguous = _matches(raw, r"(?:GMT|UTC)\s*[+-]\d")
    raw = raw.where(~ambiguous, None)
    parsed = pd.to_datetime(raw, errors="coerce", format="ISO8601", utc=True)
    fmt = formats.get(key) or _guess_format(raw[parsed.isna()])
    if fmt is not None:
        formats[key] = fmt             # kept for the file's next chunks (each column its own)
        retry = parsed.isna() & raw.notna()
        parsed[retry] = pd.to_datetime(raw[retry], errors="coerce", format=fmt, utc=True)
    tail = raw.str.slice(10)
    has_offset = _matches(tail, r"(?:Z|[+-]\d{2}(?::?\d{2})?)$")
    local = parsed.dt.tz_convert(tz).dt.tz_localize(None).where(has_offset.astype(bool),
                                                                parsed.dt.tz_localize(None))
    return _in_range(local.to_numpy(dtype="datetime64[us]"), long_year=_matches(raw, _LONG_YEAR),
                     bad_offset=_matches(tail, _BAD_OFFSET))


def _in_range(times: np.ndarray, *, long_year: np.ndarray, bad_offset: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``times`` with those outside :data:`EARLIEST_TIME`..:data:`LATEST_TIME` or given with an
    impossible offset as NaT, and why (the one place these limits are applied)."""
    outside = (times < np.datetime64(EARLIEST_TIME, "us")) | (times > np.datetime64(LATEST_TIME, "us")) | long_year
    why = np.where(bad_offset, _OFFSET, np.where(outside, _OUTSIDE, 0)).astype(np.int8)
    return np.where(why == 0, times, np.datetime64("NaT", "us")), why


def _time_texts(values: pd.Series) -> pd.Series:
    """:func:`_time_text` of a column: plain text stripped (and full-width characters made plain) at
    once, only Chinese dates rewritten one by one."""
    if not _is_text(values):
        return values.map(_time_text).astype(object)
    text = _plain(values).str.strip()
    text = text.where(text != "")
    chinese = _matches(text, "[年时分秒]")
    if chinese.any():
        text[chinese] = text[chinese].map(_time_text)
    return text


def _plain(values: pd.Series) -> pd.Series:
    """Text with full-width digits, signs and spaces (typed with a Chinese input method: ２０２６－０３－０５
    ０８：１２, １１４．１２) as plain ones (Unicode NFKC); a column of ASCII only is left as it is."""
    if getattr(values.dtype, "storage", None) != "pyarrow":
        return values.str.normalize("NFKC")
    text = pa.array(values)
    if pc.all(pc.string_is_ascii(text)).as_py():
        return values
    return pd.Series(pd.array(pc.utf8_normalize(text, form="NFKC"), dtype=values.dtype), index=values.index,
                     name=values.name)       # Arrow's, over the column (pandas called Python's once a value)


def _matches(values: pd.Series, pattern: str) -> np.ndarray:
    """Whether each value has a match of the regular expression ``pattern`` (missing: False).  On
    an Arrow column Arrow (RE2) runs it over the whole column; pandas calls Python's ``re`` once
    per row for these patterns (0.7 s a million)."""
    if getattr(values.dtype, "storage", None) == "pyarrow":
        return np.asarray(pc.fill_null(pc.match_substring_regex(pa.array(values), pattern), False), dtype=bool)
    return values.str.contains(pattern, regex=True, na=False).to_numpy(dtype=bool)


def _is_text(values: pd.Series) -> bool:
    """A column of the string dtype (a CSV's columns; Arrow-backed where pyarrow is installed, so
    string methods run over the whole column at once)."""
    return pd.api.types.is_string_dtype(values) and not pd.api.types.is_object_dtype(values)


def _time_text(value: Any) -> str | None:
    """The text of a time, with Chinese dates (2026年3月5日 8时12分) in numeric form."""
    if not _present(value):
        return None
    text = unicodedata.normalize("NFKC", str(value)).strip()
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


def _to_wgs84(frame: pd.DataFrame, cols: Mapping[str, str | None], x: np.ndarray, y: np.ndarray, crs: str | None,
              problems: dict[int, list[Message]]) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The coordinates in WGS84, each row's system when it was another one (None: WGS84) and
    whether it was refused: the rows' own ``crs`` where the records carry one, else ``crs``; an
    unknown or unusable system is a problem of its rows (and a file-wide one refuses the file)."""
    systems = np.full(len(frame), None, dtype=object)
    unknown = np.zeros(len(frame), dtype=bool)
    lon, lat = x.copy(), y.copy()
    given = _texts(_column(frame, "crs")) if "crs" in frame else np.full(len(frame), None, dtype=object)
    chosen = given.copy()
    chosen[pd.isna(given)] = crs or None
    if crs:
        PointCRS.parse(crs)                  # a file's system: refused at once if unknown
    for name in pd.unique(chosen[pd.notna(chosen)]):
        rows = np.flatnonzero(chosen == name)
        try:
            system = PointCRS.parse(str(name))
        except InvalidInput as refused:
            for i in rows:
                problems.setdefault(int(i), []).append(refused.summary)
            unknown[rows] = True
            continue
        if system == PointCRS.WGS84:
            continue
        lon[rows], lat[rows] = system.to_wgs84(x[rows], y[rows])
        systems[rows] = system.name
    return lon, lat, systems, unknown


def _check_coordinates(frame: pd.DataFrame, cols: Mapping[str, str | None], lon: np.ndarray, lat: np.ndarray,
                       problems: dict[int, list[Message]], *, converted: np.ndarray, judged: np.ndarray) -> None:
    """Rows without a point, or with one off the globe (not ``judged``: their system was refused, so
    whether their coordinates are in range is not known)."""
    not_point = (frame[_GEOM_TYPE].to_numpy() != "Point") if _GEOM_TYPE in frame else np.zeros(len(frame), bool)
    missing = ~not_point & (np.isnan(lon) | np.isnan(lat))
    with np.errstate(invalid="ignore"):
        outside = judged & ~not_point & ~missing & ~((np.abs(lon) <= 180) & (np.abs(lat) <= 90))
    for i in np.flatnonzero(not_point | missing | outside):
        if not_point[i]:
            problem = message(N_("expected a Point geometry, got {got}"), got=frame[_GEOM_TYPE].iloc[i])
        elif missing[i] and converted[i] is not None and _raw(frame, cols["lon"], int(i)) is not None:
            problem = message(N_("coordinates ({x}, {y}) in {crs} cannot be converted to WGS84: they are "
                                 "outside what that system covers"), x=_raw(frame, cols["lon"], int(i)),
                              y=_raw(frame, cols["lat"], int(i)), crs=converted[i])
        elif missing[i]:
            problem = message(N_("missing or non-numeric coordinates (lon={lon!r}, lat={lat!r})"),
                              lon=_raw(frame, cols["lon"], int(i)), lat=_raw(frame, cols["lat"], int(i)))
        elif 1_000 <= max(abs(lon[i]), abs(lat[i])) < 100_000_000:         # a projected system's metres
            problem = message(N_("coordinates out of range: lon={lon}, lat={lat}; expected WGS84 longitude -180..180 "
                                 "and latitude -90..90. They look like metres: give the file's coordinate system "
                                 "in the {option} option, for example EPSG:4547"), lon=lon[i], lat=lat[i], option="crs")
        else:
            problem = message(N_("coordinates out of range: lon={lon}, lat={lat}; expected WGS84 "
                                 "longitude -180..180 and latitude -90..90"), lon=lon[i], lat=lat[i])
        problems.setdefault(int(i), []).append(problem)


def _time_problems(frame: pd.DataFrame, column: str | None, times: np.ndarray, refused: np.ndarray,
                   problems: dict[int, list[Message]], *, required: bool, unreadable: str) -> None:
    """A problem for each row whose time in ``column`` was given but not read (``unreadable``, a
    template of ``value`` and ``field``), or read and refused (:func:`_times`), or (``required``) not given.
    Only the rows without a time are looked at one by one, and of those only the ones that gave one
    unless it is ``required`` (a file without a deadline column has a million rows without one)."""
    unread = np.isnat(times)
    if not required:
        unread &= _given(frame, column)
    for i in np.flatnonzero(unread):
        raw = _raw(frame, column, int(i))
        if raw is None:
            if required:
                problems.setdefault(int(i), []).append(
                    message(N_("missing report time (expected a date such as 2026-03-05 08:12)")))
            continue
        value = shown(raw) if isinstance(raw, str) else raw
        if refused[i] == _OFFSET:
            problem = message(N_("{field}: {value!r} has an impossible UTC offset; expected an offset from "
                                 "-{limit} to +{limit}"), field=column, value=value, limit=MAX_UTC_OFFSET)
        elif refused[i] == _OUTSIDE:
            problem = message(N_("{field}: {value!r} is outside the accepted time range; expected a time from "
                                 "{earliest} to {latest}"), field=column, value=value,
                              earliest=EARLIEST_TIME.isoformat(sep=" ", timespec="minutes"),
                              latest=LATEST_TIME.isoformat(sep=" ", timespec="minutes"))
        else:
            problem = message(unreadable, value=value, field=column)
        problems.setdefault(int(i), []).append(problem)


def _given(frame: pd.DataFrame, column: str | None) -> np.ndarray:
    """Whether each row has a value in ``column`` (as :func:`_present` judges it), over the whole column."""
    if column is None or column not in frame:
        return np.zeros(len(frame), dtype=bool)
    values = frame[column]
    if _is_text(values):
        return values.str.strip().ne("").fillna(False).to_numpy(dtype=bool)
    return np.fromiter(map(_present, values.to_numpy(dtype=object)), dtype=bool, count=len(values))


def _raw(frame: pd.DataFrame, column: str | None, i: int) -> Any:
    if column is None or column not in frame:
        return None
    value = frame[column].iloc[i]
    if isinstance(value, np.generic):
        value = value.item()
    return value if _present(value) else None
