"""The SQL store (SQLAlchemy Core): SQLite in WAL mode by default.

Geometries are kept as WKB and read back into shapely arrays; incident positions as
lon/lat floats.  Each incident keeps the unit it got under every layer version it was
assigned in (table ``assignments``), so an older version's view can be rebuilt.  Each
version keeps the options, report and diff it was saved with (JSON text).  Columns leave
the database as cursor tuples turned into arrays, never as one Python object per row.
"""
from __future__ import annotations

import json
import logging
from contextlib import contextmanager
from datetime import datetime, timezone
from operator import itemgetter
from pathlib import Path
from typing import Any, Iterator, Sequence

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from ..errors import N_, NotFound, message
from ..incidents import IncidentDraft, KnownReport
from ..layer import Layer, texts
from ..levels import ORDER, Level
from . import Assignments, IncidentQuery, Store, VersionInfo, VersionMeta, VersionRecord, VersionStatus, Writer

log = logging.getLogger(__name__)

metadata = sa.MetaData()

layer_versions = sa.Table(
    "layer_versions", metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("level", sa.String(20), nullable=False, index=True),
    sa.Column("version", sa.Integer, nullable=False),
    sa.Column("created_at", sa.DateTime, nullable=False),
    sa.Column("author", sa.String(200), nullable=False, default=""),
    sa.Column("note", sa.Text, nullable=False, default=""),
    sa.Column("parent_source", sa.String(20)),
    sa.Column("status", sa.String(20), nullable=False, server_default="committed"),
    sa.Column("based_on", sa.Integer),
    sa.Column("restored_from", sa.Integer),
    sa.Column("committed_at", sa.DateTime),
    sa.Column("committed_by", sa.String(200), nullable=False, server_default=""),
    sa.Column("assigned", sa.Integer),
    sa.Column("moved", sa.Integer),
    sa.Column("problems", sa.Text, nullable=False, server_default="[]"),
    sa.Column("options", sa.Text, nullable=False, server_default="{}"),
    sa.Column("report", sa.Text),
    sa.Column("diff", sa.Text),
    sa.Column("change", sa.Integer, index=True),
    sa.UniqueConstraint("level", "version"),
)

units = sa.Table(
    "units", metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("version_id", sa.Integer, sa.ForeignKey("layer_versions.id"), nullable=False),
    sa.Column("code", sa.String(100), nullable=False),
    sa.Column("name", sa.String(200), nullable=False),
    sa.Column("parent_code", sa.String(100)),
    sa.Column("area_m2", sa.Float, nullable=False),
    sa.Column("properties", sa.Text, nullable=False),
    sa.Column("geometry", sa.LargeBinary, nullable=False),
    sa.UniqueConstraint("version_id", "code"),
)

incidents = sa.Table(
    "incidents", metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("external_id", sa.String(200), unique=True),
    sa.Column("category", sa.String(40), nullable=False, index=True),
    sa.Column("category_raw", sa.String(200)),
    sa.Column("lon", sa.Float, nullable=False),
    sa.Column("lat", sa.Float, nullable=False),
    sa.Column("reported_at", sa.DateTime, nullable=False, index=True),
    sa.Column("status", sa.String(20), nullable=False),
    sa.Column("description", sa.Text, nullable=False, default=""),
    sa.Column("source", sa.String(100), nullable=False, default=""),
    sa.Column("created_at", sa.DateTime, nullable=False),
)

assignment_table = sa.Table(
    "assignments", metadata,
    sa.Column("incident_id", sa.Integer, sa.ForeignKey("incidents.id"), primary_key=True),
    sa.Column("version_id", sa.Integer, sa.ForeignKey("layer_versions.id"), primary_key=True),
    sa.Column("unit_code", sa.String(100)),
    sa.Index("ix_assignments_version_unit", "version_id", "unit_code"),
)

INCIDENT_COLUMNS = ["id", "external_id", "category", "category_raw", "lon", "lat", "reported_at",
                    "status", "description", "source"]


def _engine(url: str) -> Engine:
    path = url.split("///", 1)[1] if "///" in url else ""
    if path and path != ":memory:":
        Path(path).parent.mkdir(parents=True, exist_ok=True)
    engine = sa.create_engine(url, connect_args={"timeout": 30})

    @sa.event.listens_for(engine, "connect")
    def _pragmas(dbapi_connection, _record) -> None:  # noqa: ANN001 - DB-API objects
        dbapi_connection.isolation_level = None     # SQLAlchemy's "begin" event below opens transactions
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()

    @sa.event.listens_for(engine, "begin")
    def _begin(conn: sa.Connection) -> None:
        # A writer takes SQLite's write lock before it reads the current version, so two
        # saves based on the same version cannot both pass the base check (other processes too).
        conn.exec_driver_sql("BEGIN IMMEDIATE" if conn.get_execution_options().get("immediate") else "BEGIN")

    return engine


def _upgrade(engine: Engine) -> None:
    """Add the columns newer code expects to a database made by older code (SQLite ALTER TABLE)."""
    have = {c["name"] for c in sa.inspect(engine).get_columns("layer_versions")}
    with engine.begin() as conn:
        for column in layer_versions.columns:
            if column.name not in have:
                ddl = sa.schema.CreateColumn(column).compile(dialect=engine.dialect)
                conn.exec_driver_sql(f"ALTER TABLE layer_versions ADD COLUMN {ddl}")


class SqlStore(Store):
    def __init__(self, url: str) -> None:
        self.url = url
        self.engine = _engine(url)
        self.writer = self.engine.execution_options(immediate=True)
        metadata.create_all(self.engine)
        _upgrade(self.engine)

    def close(self) -> None:
        self.engine.dispose()

    @contextmanager
    def writing(self) -> Iterator[Writer]:
        with self.writer.begin() as conn:
            yield _SqlWriter(conn)

    # -- layers --------------------------------------------------------------------------
    def layers(self) -> dict[Level, Layer]:
        with self.engine.connect() as conn:
            current = _current_rows(conn)
            return {level: _load_layer(conn, row) for level, row in sorted(
                current.items(), key=lambda item: item[0].depth)}

    def versions(self) -> dict[Level, int]:
        with self.engine.connect() as conn:
            rows = conn.execute(sa.select(layer_versions.c.level, sa.func.max(layer_versions.c.version))
                                .where(layer_versions.c.status == VersionStatus.COMMITTED.value)
                                .group_by(layer_versions.c.level))
            return {Level(level): int(version) for level, version in rows}

    def layer_meta(self) -> list[VersionMeta]:
        with self.engine.connect() as conn:
            current = _current_rows(conn)
            counts = _unit_counts(conn)
        return [_meta(row, counts) for _, row in sorted(current.items(), key=lambda item: item[0].depth)]

    def history(self, level: Level) -> list[VersionMeta]:
        with self.engine.connect() as conn:
            rows = conn.execute(sa.select(*_META_COLUMNS).where(layer_versions.c.level == level.value)
                                .order_by(layer_versions.c.version.desc())).all()
            counts = _unit_counts(conn)
        return [_meta(row, counts) for row in rows]

    def version_meta(self, level: Level, version: int) -> VersionMeta:
        with self.engine.connect() as conn:
            return _meta(_version_row(conn, level, version), _unit_counts(conn))

    def version_record(self, level: Level, version: int) -> VersionRecord:
        with self.engine.connect() as conn:
            row = _version_row(conn, level, version, layer_versions.c.problems, layer_versions.c.options,
                               layer_versions.c.report, layer_versions.c.diff)
        return VersionRecord(options=json.loads(row.options or "{}"), problems=tuple(json.loads(row.problems or "[]")),
                             report=json.loads(row.report) if row.report else None,
                             diff=json.loads(row.diff) if row.diff else None)

    def layer_version(self, level: Level, version: int) -> Layer:
        with self.engine.connect() as conn:
            return _load_layer(conn, _version_row(conn, level, version))

    def assignments(self, level: Level, version: int) -> tuple[np.ndarray, np.ndarray]:
        with self.engine.connect() as conn:
            row = _version_row(conn, level, version)
            rows = conn.execute(sa.select(assignment_table.c.incident_id, assignment_table.c.unit_code)
                                .where(assignment_table.c.version_id == row.id)
                                .order_by(assignment_table.c.incident_id)).all()
        ids, codes = _columns(rows, 2)
        return ids.astype(np.int64), codes

    # -- incidents -----------------------------------------------------------------------
    def incident_points(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        with self.engine.connect() as conn:
            rows = conn.execute(sa.select(incidents.c.id, incidents.c.lon, incidents.c.lat)
                                .order_by(incidents.c.id)).all()
        data = np.array(rows, dtype=float).reshape(-1, 3)
        return data[:, 0].astype(np.int64), data[:, 1], data[:, 2]

    def count_incidents(self) -> int:
        with self.engine.connect() as conn:
            return int(conn.execute(sa.select(sa.func.count()).select_from(incidents)).scalar_one())

    def incidents(self, query: IncidentQuery = IncidentQuery(), *,
                  at: dict[Level, int] | None = None) -> pd.DataFrame:
        with self.engine.connect() as conn:
            current = _current_rows(conn)
            current.update({lv: _version_row(conn, lv, v) for lv, v in (at or {}).items()})
            levels = [lv for lv in ORDER if lv in current]
            columns = [incidents.c[c] for c in INCIDENT_COLUMNS]
            stmt = sa.select(*columns, *[_unit_column(current[lv].id, lv) for lv in levels])
            stmt = stmt.where(*_filters(query, [current[lv].id for lv in levels])).order_by(incidents.c.id)
            rows = conn.execute(stmt).all()
        # object dtype keeps None as None in the text columns (pandas 3 would make it NaN)
        frame = pd.DataFrame(rows, columns=INCIDENT_COLUMNS + [lv.value for lv in levels], dtype=object)
        return frame.astype({"id": "int64", "lon": "float64", "lat": "float64", "reported_at": "datetime64[us]"})


class _SqlWriter(Writer):
    """The writes of one ``BEGIN IMMEDIATE`` transaction."""

    def __init__(self, conn: sa.Connection) -> None:
        self.conn = conn

    def heads(self) -> dict[Level, VersionMeta]:
        counts = _unit_counts(self.conn)
        return {level: _meta(row, counts) for level, row in _current_rows(self.conn).items()}

    def version_meta(self, level: Level, version: int) -> VersionMeta:
        return _meta(_version_row(self.conn, level, version), _unit_counts(self.conn))

    def change_versions(self, change: int) -> list[VersionMeta]:
        rows = self.conn.execute(sa.select(*_META_COLUMNS).where(layer_versions.c.change == change)).all()
        counts = _unit_counts(self.conn)
        return sorted((_meta(row, counts) for row in rows), key=lambda m: m.level.depth)

    def new_change(self) -> int:
        return int(self.conn.execute(sa.select(sa.func.max(layer_versions.c.change))).scalar() or 0) + 1

    def add_version(self, layer: Layer, info: VersionInfo) -> int:
        latest = self.conn.execute(sa.select(sa.func.max(layer_versions.c.version))
                                   .where(layer_versions.c.level == layer.level.value)).scalar()
        version = (latest or 0) + 1
        version_id: int = self.conn.execute(sa.insert(layer_versions).values(
            level=layer.level.value, version=version, created_at=_now(), author=info.author, note=info.note,
            parent_source=layer.parent_source, status=VersionStatus.DRAFT.value, based_on=info.based_on,
            restored_from=info.restored_from, change=info.change, **_record_columns(info.record),
        )).inserted_primary_key[0]  # type: ignore[index]  # an INSERT always has a key
        self.conn.execute(sa.insert(units), _unit_rows(layer, version_id))
        log.info("stored %s version %d (%d units)", layer.level.value, version, len(layer.units))
        return version

    def commit(self, level: Level, version: int, *, author: str, commit: Assignments,
               record: VersionRecord) -> None:
        version_id = _version_row(self.conn, level, version).id
        current = _current_rows(self.conn)
        self.conn.execute(sa.update(layer_versions).where(layer_versions.c.id == version_id).values(
            status=VersionStatus.COMMITTED.value, committed_at=_now(), committed_by=author,
            assigned=commit.assigned, moved=commit.moved, **_record_columns(record)))
        for lv, (ids, codes) in commit.units.items():
            target = version_id if lv == level else current[lv].id
            self.conn.execute(sa.delete(assignment_table).where(assignment_table.c.version_id == target))
            if len(ids):
                self.conn.execute(sa.insert(assignment_table), [
                    {"incident_id": int(i), "version_id": target, "unit_code": c} for i, c in zip(ids, codes)])
        for lv, parents in commit.relinked.items():
            _set_parents(self.conn, current[lv].id, parents)
        log.info("committed %s version %d", level.value, version)

    def known_reports(self, external_ids: Sequence[str]) -> dict[str, KnownReport]:
        known: dict[str, KnownReport] = {}
        unique = list(dict.fromkeys(external_ids))
        columns = [incidents.c[c] for c in ("external_id", "id", "category", "category_raw", "lon", "lat",
                                            "reported_at")]
        for start in range(0, len(unique), 500):
            rows = self.conn.execute(sa.select(*columns).where(incidents.c.external_id.in_(unique[start:start + 500])))
            known.update({ext: KnownReport(*rest) for ext, *rest in rows})
        return known

    def add_incidents(self, drafts: Sequence[IncidentDraft], units_by_level: dict[Level, np.ndarray]) -> list[int]:
        if not drafts:
            return []
        stmt = sa.insert(incidents).returning(incidents.c.id, sort_by_parameter_order=True)
        ids = [r[0] for r in self.conn.execute(stmt, [_incident_row(d) for d in drafts])]
        current = _current_rows(self.conn)
        rows = [{"incident_id": incident_id, "version_id": current[level].id, "unit_code": codes[pos]}
                for level, codes in units_by_level.items() if level in current
                for pos, incident_id in enumerate(ids)]
        if rows:
            self.conn.execute(sa.insert(assignment_table), rows)
        return ids


# -- queries shared by reads and writes ---------------------------------------------------------
_META_COLUMNS = [c for c in layer_versions.columns if c.name not in ("problems", "options", "report", "diff")]


def _current_rows(conn: sa.Connection) -> dict[Level, sa.Row]:
    latest = (sa.select(layer_versions.c.level, sa.func.max(layer_versions.c.version).label("v"))
              .where(layer_versions.c.status == VersionStatus.COMMITTED.value)
              .group_by(layer_versions.c.level).subquery())
    rows = conn.execute(sa.select(*_META_COLUMNS).join(
        latest, sa.and_(latest.c.level == layer_versions.c.level, latest.c.v == layer_versions.c.version)))
    return {Level(r.level): r for r in rows}


def _version_row(conn: sa.Connection, level: Level, version: int, *extra: sa.Column) -> sa.Row:
    row = conn.execute(sa.select(*_META_COLUMNS, *extra).where(layer_versions.c.level == level.value,
                                                              layer_versions.c.version == version)).first()
    if row is None:
        raise NotFound(message(N_("{level} has no version {version}"), level=level.noun, version=version))
    return row


def _unit_counts(conn: sa.Connection) -> dict[int, int]:
    return dict(conn.execute(sa.select(units.c.version_id, sa.func.count()).group_by(units.c.version_id)).all())


def _load_layer(conn: sa.Connection, version: sa.Row) -> Layer:
    rows = conn.execute(sa.select(units.c.code, units.c.name, units.c.parent_code, units.c.area_m2,
                                  units.c.properties, units.c.geometry)
                        .where(units.c.version_id == version.id).order_by(units.c.id)).all()
    code, name, parent, area, props, wkb = _columns(rows, 6)
    frame = gpd.GeoDataFrame({
        "code": texts(code), "name": texts(name), "parent_code": texts(parent),
        "area_m2": area.astype(float),
        "properties": [json.loads(p) for p in props],
    }, geometry=gpd.GeoSeries(shapely.from_wkb(wkb), crs=4326))
    return Layer(level=Level(version.level), units=frame, parent_source=version.parent_source,
                 version=version.version)


def _columns(rows: Sequence[Sequence[Any]], width: int) -> list[np.ndarray]:
    """Cursor tuples as one object array per column (no per-row attribute probing)."""
    columns = [np.empty(len(rows), dtype=object) for _ in range(width)]
    for j, column in enumerate(columns):
        column[:] = list(map(itemgetter(j), rows))     # 8× faster than zip(*rows) at a million rows
    return columns


def _set_parents(conn: sa.Connection, version_id: int, parents: dict[str, str | None]) -> None:
    for code, parent in parents.items():
        conn.execute(sa.update(units).where(units.c.version_id == version_id, units.c.code == code)
                     .values(parent_code=parent))
    conn.execute(sa.update(layer_versions).where(layer_versions.c.id == version_id)
                 .values(parent_source="spatial"))


def _unit_column(version_id: int, level: Level) -> sa.Label:
    return (sa.select(assignment_table.c.unit_code)
            .where(assignment_table.c.incident_id == incidents.c.id, assignment_table.c.version_id == version_id)
            .scalar_subquery().label(level.value))


def _filters(query: IncidentQuery, version_ids: list[int]) -> list[sa.ColumnElement[bool]]:
    clauses: list[sa.ColumnElement[bool]] = []
    if query.category:
        clauses.append(incidents.c.category == query.category)
    if query.status:
        clauses.append(incidents.c.status == query.status)
    if query.date_from:
        clauses.append(incidents.c.reported_at >= query.date_from)
    if query.date_to:
        clauses.append(incidents.c.reported_at < query.date_to)
    if query.ids is not None:
        clauses.append(incidents.c.id.in_(query.ids))
    if query.unit:
        clauses.append(sa.exists().where(assignment_table.c.incident_id == incidents.c.id,
                                         assignment_table.c.version_id.in_(version_ids),
                                         assignment_table.c.unit_code == query.unit))
    return clauses


def _meta(row: sa.Row, counts: dict[int, int]) -> VersionMeta:
    return VersionMeta(level=Level(row.level), version=row.version, status=VersionStatus(row.status),
                       created_at=row.created_at, author=row.author, note=row.note, unit_count=counts.get(row.id, 0),
                       based_on=row.based_on, restored_from=row.restored_from, committed_at=row.committed_at,
                       committed_by=row.committed_by or "", assigned=row.assigned, moved=row.moved, change=row.change)


def _record_columns(record: VersionRecord) -> dict[str, Any]:
    def text(value: Any) -> str | None:
        return None if value is None else json.dumps(value, ensure_ascii=False)
    return {"options": json.dumps(record.options, ensure_ascii=False),
            "problems": json.dumps(list(record.problems), ensure_ascii=False),
            "report": text(record.report), "diff": text(record.diff)}


def _unit_rows(layer: Layer, version_id: int) -> list[dict]:
    frame = layer.units
    wkb = shapely.to_wkb(frame.geometry.to_numpy())
    return [{"version_id": version_id, "code": code, "name": name, "parent_code": parent,
             "area_m2": float(area), "properties": json.dumps(props, ensure_ascii=False), "geometry": blob}
            for code, name, parent, area, props, blob in zip(
                frame["code"], frame["name"], frame["parent_code"], frame["area_m2"], frame["properties"], wkb)]


def _incident_row(draft: IncidentDraft) -> dict:
    return {"external_id": draft.external_id, "category": draft.category, "category_raw": draft.category_raw,
            "lon": draft.lon, "lat": draft.lat, "reported_at": draft.reported_at, "status": draft.status.value,
            "description": draft.description, "source": draft.source, "created_at": _now()}


def _now() -> datetime:
    return datetime.now(timezone.utc).replace(tzinfo=None)
