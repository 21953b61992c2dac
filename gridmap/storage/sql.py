"""The SQL store (SQLAlchemy Core): SQLite in WAL mode by default.

Geometries are kept as WKB and read back into shapely arrays; incident positions as
lon/lat floats.  Each incident keeps the unit it got under every layer version it was
assigned in (table ``assignments``), so an older version's view can be rebuilt.
"""
from __future__ import annotations

import json
import logging
from datetime import datetime, timezone
from pathlib import Path
from typing import Sequence

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from ..boundaries import Layer, texts
from ..errors import N_, Conflict, NotFound, message
from ..incidents import IncidentDraft
from ..levels import ORDER, Level
from . import Assignments, IncidentQuery, Store, Stored, VersionInfo, VersionMeta, stale_base

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

DRAFT, COMMITTED = "draft", "committed"
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

    # -- layers --------------------------------------------------------------------------
    def _current_versions(self, conn: sa.Connection) -> dict[Level, sa.Row]:
        latest = (sa.select(layer_versions.c.level, sa.func.max(layer_versions.c.version).label("v"))
                  .where(layer_versions.c.status == COMMITTED).group_by(layer_versions.c.level).subquery())
        rows = conn.execute(sa.select(layer_versions).join(
            latest, sa.and_(latest.c.level == layer_versions.c.level, latest.c.v == layer_versions.c.version)))
        return {Level(r.level): r for r in rows}

    def layers(self) -> dict[Level, Layer]:
        with self.engine.connect() as conn:
            current = self._current_versions(conn)
            return {level: self._load_layer(conn, row) for level, row in sorted(
                current.items(), key=lambda item: item[0].depth)}

    def versions(self) -> dict[Level, int]:
        with self.engine.connect() as conn:
            rows = conn.execute(sa.select(layer_versions.c.level, sa.func.max(layer_versions.c.version))
                                .where(layer_versions.c.status == COMMITTED).group_by(layer_versions.c.level))
            return {Level(level): int(version) for level, version in rows}

    def _load_layer(self, conn: sa.Connection, version: sa.Row) -> Layer:
        rows = conn.execute(sa.select(units).where(units.c.version_id == version.id)
                            .order_by(units.c.id)).all()
        frame = gpd.GeoDataFrame({
            "code": texts(r.code for r in rows), "name": texts(r.name for r in rows),
            "parent_code": texts(r.parent_code for r in rows),
            "area_m2": np.array([r.area_m2 for r in rows], dtype=float),
            "properties": [json.loads(r.properties) for r in rows],
        }, geometry=gpd.GeoSeries(shapely.from_wkb([r.geometry for r in rows]), crs=4326))
        return Layer(level=Level(version.level), units=frame, parent_source=version.parent_source,
                     version=version.version)

    def layer_meta(self) -> list[VersionMeta]:
        with self.engine.connect() as conn:
            current = self._current_versions(conn)
            counts = self._unit_counts(conn)
        return [_meta(row, counts) for _, row in sorted(current.items(), key=lambda item: item[0].depth)]

    def history(self, level: Level) -> list[VersionMeta]:
        with self.engine.connect() as conn:
            rows = conn.execute(sa.select(layer_versions).where(layer_versions.c.level == level.value)
                                .order_by(layer_versions.c.version.desc())).all()
            counts = self._unit_counts(conn)
        return [_meta(row, counts) for row in rows]

    def version_meta(self, level: Level, version: int) -> VersionMeta:
        with self.engine.connect() as conn:
            return _meta(self._version_row(conn, level, version), self._unit_counts(conn))

    def layer_version(self, level: Level, version: int) -> Layer:
        with self.engine.connect() as conn:
            return self._load_layer(conn, self._version_row(conn, level, version))

    @staticmethod
    def _version_row(conn: sa.Connection, level: Level, version: int) -> sa.Row:
        row = conn.execute(sa.select(layer_versions).where(layer_versions.c.level == level.value,
                                                           layer_versions.c.version == version)).first()
        if row is None:
            raise NotFound(message(N_("{level} has no version {version}"), level=level.title, version=version))
        return row

    @staticmethod
    def _unit_counts(conn: sa.Connection) -> dict[int, int]:
        return dict(conn.execute(sa.select(units.c.version_id, sa.func.count()).group_by(units.c.version_id)).all())

    def save_layer(self, layer: Layer, info: VersionInfo, commit: Assignments | None) -> int:
        with self.writer.begin() as conn:
            current = self._current_versions(conn)
            self._check_base(conn, layer.level, info.based_on, current)
            latest = conn.execute(sa.select(sa.func.max(layer_versions.c.version))
                                  .where(layer_versions.c.level == layer.level.value)).scalar()
            version = (latest or 0) + 1
            version_id = conn.execute(sa.insert(layer_versions).values(
                level=layer.level.value, version=version, created_at=_now(), author=info.author, note=info.note,
                parent_source=layer.parent_source, status=DRAFT, based_on=info.based_on,
                restored_from=info.restored_from, problems=json.dumps(list(info.problems), ensure_ascii=False),
            )).inserted_primary_key[0]
            conn.execute(sa.insert(units), _unit_rows(layer, version_id))
            if commit is not None:
                self._commit(conn, layer.level, version_id, info.author, commit, current)
        log.info("stored %s version %d (%d units, %s)", layer.level.value, version, len(layer.units),
                 "committed" if commit else "draft")
        return version

    def commit_draft(self, level: Level, version: int, *, author: str, commit: Assignments) -> None:
        with self.writer.begin() as conn:
            row = self._version_row(conn, level, version)
            if row.status != DRAFT:
                raise Conflict(message(N_("{level} version {version} is already committed"),
                                       level=level.title, version=version))
            current = self._current_versions(conn)
            self._check_base(conn, level, row.based_on, current)
            self._commit(conn, level, row.id, author, commit, current)
        log.info("committed %s draft %d", level.value, version)

    def _check_base(self, conn: sa.Connection, level: Level, based_on: int | None,
                    current: dict[Level, sa.Row]) -> None:
        head = current.get(level)
        if (head.version if head is not None else None) != based_on:
            raise stale_base(level, based_on, _meta(head, self._unit_counts(conn)) if head is not None else None)

    def _commit(self, conn: sa.Connection, level: Level, version_id: int, author: str, commit: Assignments,
                current: dict[Level, sa.Row]) -> None:
        conn.execute(sa.update(layer_versions).where(layer_versions.c.id == version_id).values(
            status=COMMITTED, committed_at=_now(), committed_by=author, assigned=commit.assigned,
            moved=commit.moved))
        for lv, (ids, codes) in commit.units.items():
            target = version_id if lv == level else current[lv].id
            conn.execute(sa.delete(assignment_table).where(assignment_table.c.version_id == target))
            if len(ids):
                conn.execute(sa.insert(assignment_table), [
                    {"incident_id": int(i), "version_id": target, "unit_code": c} for i, c in zip(ids, codes)])
        for lv, parents in commit.relinked.items():
            self._set_parents(conn, current[lv].id, parents)

    def assignments(self, level: Level, version: int) -> tuple[np.ndarray, np.ndarray]:
        with self.engine.connect() as conn:
            row = self._version_row(conn, level, version)
            rows = conn.execute(sa.select(assignment_table.c.incident_id, assignment_table.c.unit_code)
                                .where(assignment_table.c.version_id == row.id)
                                .order_by(assignment_table.c.incident_id)).all()
        return (np.array([r[0] for r in rows], dtype=np.int64),
                np.array([r[1] for r in rows], dtype=object))

    @staticmethod
    def _set_parents(conn: sa.Connection, version_id: int, parents: dict[str, str | None]) -> None:
        for code, parent in parents.items():
            conn.execute(sa.update(units).where(units.c.version_id == version_id, units.c.code == code)
                         .values(parent_code=parent))
        conn.execute(sa.update(layer_versions).where(layer_versions.c.id == version_id)
                     .values(parent_source="spatial"))

    # -- incidents -----------------------------------------------------------------------
    def add_incidents(self, drafts: Sequence[IncidentDraft], units_by_level: dict[Level, np.ndarray]) -> list[Stored]:
        with self.writer.begin() as conn:
            known = self._known_external_ids(conn, [d.external_id for d in drafts if d.external_id])
            fresh: list[int] = []
            first_of: dict[str, int] = {}     # external id -> position of its first new draft
            for i, draft in enumerate(drafts):
                ext = draft.external_id
                if ext is None or (ext not in known and ext not in first_of):
                    fresh.append(i)
                    if ext is not None:
                        first_of[ext] = i
            new_ids = dict(zip(fresh, self._insert_incidents(conn, [_incident_row(drafts[i]) for i in fresh])))
            self._insert_assignments(conn, [(new_ids[i], i) for i in fresh], units_by_level)
        return [self._outcome(i, d, new_ids, known, first_of, drafts) for i, d in enumerate(drafts)]

    @staticmethod
    def _outcome(i: int, draft: IncidentDraft, new_ids: dict[int, int], known: dict[str, tuple[int, tuple]],
                 first_of: dict[str, int], drafts: Sequence[IncidentDraft]) -> Stored:
        if i in new_ids:
            return Stored(new_ids[i], "created")
        if draft.external_id in known:
            stored_id, key = known[draft.external_id]
        else:
            first = first_of[draft.external_id]
            stored_id, key = new_ids[first], _same_report_key(drafts[first])
        mine = _same_report_key(draft)
        same = key == mine if draft.time_given else key[:-1] == mine[:-1]   # a defaulted time proves nothing
        return Stored(stored_id, "existing" if same else "conflict")

    @staticmethod
    def _known_external_ids(conn: sa.Connection, external_ids: list[str]) -> dict[str, tuple[int, tuple]]:
        known: dict[str, tuple[int, tuple]] = {}
        unique = list(dict.fromkeys(external_ids))
        columns = [incidents.c[c] for c in ("external_id", "id", "category", "category_raw", "lon", "lat",
                                            "reported_at")]
        for start in range(0, len(unique), 500):
            rows = conn.execute(sa.select(*columns).where(incidents.c.external_id.in_(unique[start:start + 500])))
            known.update({r.external_id: (r.id, _same_report_key(r)) for r in rows})
        return known

    @staticmethod
    def _insert_incidents(conn: sa.Connection, rows: list[dict]) -> list[int]:
        if not rows:
            return []
        stmt = sa.insert(incidents).returning(incidents.c.id, sort_by_parameter_order=True)
        return [r[0] for r in conn.execute(stmt, rows)]

    def _insert_assignments(self, conn: sa.Connection, new: list[tuple[int, int]],
                            units_by_level: dict[Level, np.ndarray]) -> None:
        current = self._current_versions(conn)
        rows = [{"incident_id": incident_id, "version_id": current[level].id,
                 "unit_code": codes[pos]}
                for level, codes in units_by_level.items() if level in current
                for incident_id, pos in new]
        if rows:
            conn.execute(sa.insert(assignment_table), rows)

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
            current = self._current_versions(conn)
            current.update({lv: self._version_row(conn, lv, v) for lv, v in (at or {}).items()})
            levels = [lv for lv in ORDER if lv in current]
            columns = [incidents.c[c] for c in INCIDENT_COLUMNS]
            stmt = sa.select(*columns, *[self._unit_column(current[lv].id, lv) for lv in levels])
            stmt = stmt.where(*_filters(query, [current[lv].id for lv in levels])).order_by(incidents.c.id)
            rows = conn.execute(stmt).all()
        # object dtype keeps None as None in the text columns (pandas 3 would make it NaN)
        frame = pd.DataFrame(rows, columns=INCIDENT_COLUMNS + [lv.value for lv in levels], dtype=object)
        return frame.astype({"id": "int64", "lon": "float64", "lat": "float64", "reported_at": "datetime64[us]"})

    @staticmethod
    def _unit_column(version_id: int, level: Level) -> sa.ScalarSelect:
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
    return VersionMeta(level=Level(row.level), version=row.version, status=row.status, created_at=row.created_at,
                       author=row.author, note=row.note, unit_count=counts.get(row.id, 0), based_on=row.based_on,
                       restored_from=row.restored_from, committed_at=row.committed_at,
                       committed_by=row.committed_by or "", assigned=row.assigned, moved=row.moved,
                       problems=tuple(json.loads(row.problems or "[]")))


def _unit_rows(layer: Layer, version_id: int) -> list[dict]:
    frame = layer.units
    wkb = shapely.to_wkb(frame.geometry.to_numpy())
    return [{"version_id": version_id, "code": code, "name": name, "parent_code": parent,
             "area_m2": float(area), "properties": json.dumps(props, ensure_ascii=False), "geometry": blob}
            for code, name, parent, area, props, blob in zip(
                frame["code"], frame["name"], frame["parent_code"], frame["area_m2"], frame["properties"], wkb)]


def _same_report_key(report: IncidentDraft | sa.Row) -> tuple:
    """What must match for a repeated external id to be the same report, not a different one."""
    return (report.category, report.category_raw or None, round(report.lon, 7), round(report.lat, 7),
            report.reported_at)


def _incident_row(draft: IncidentDraft) -> dict:
    return {"external_id": draft.external_id, "category": draft.category, "category_raw": draft.category_raw,
            "lon": draft.lon, "lat": draft.lat, "reported_at": draft.reported_at, "status": draft.status.value,
            "description": draft.description, "source": draft.source, "created_at": _now()}


def _now() -> datetime:
    return datetime.now(timezone.utc).replace(tzinfo=None)
