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
import sqlite3
import threading
from contextlib import contextmanager
from dataclasses import asdict, replace
from datetime import datetime, timezone
from itertools import chain, repeat
from operator import itemgetter
from pathlib import Path
from typing import Any, Iterable, Iterator, Mapping, Sequence

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from ..accounts import Account, AuditEntry, Role
from ..errors import N_, Conflict, NotFound, message
from ..incidents import IncidentColumns, KnownReport
from ..layer import Layer, texts
from ..levels import ORDER, Level
from . import (
    LIFECYCLE_COLUMNS,
    Assignments,
    HeatCells,
    ImportRun,
    IncidentEvent,
    IncidentQuery,
    IncidentState,
    StaffMember,
    Store,
    VersionInfo,
    VersionMeta,
    VersionRecord,
    VersionStatus,
    Writer,
    heat_cells,
    migrations,
    postgis,
)

log = logging.getLogger(__name__)

metadata = sa.MetaData()

#: Rows written by one transaction after which the planner's statistics are refreshed.
ANALYZE_AFTER = 10_000
#: Incidents coming in one transaction from which the (category, time) index is set aside while
#: they are written and built again at the end — when they also outnumber the stored ones (at a
#: million, inserting into the index row by row took 3.4 s, building it from scratch 1.4 s) — and
#: the assignments' (version, unit) index too when their rows for each level do (4.5 s row by row
#: for two levels, 2 s built afterwards).
SET_ASIDE_FROM = 200_000
#: SQLite's page cache per connection (KiB): small for the pool's readers (each server process holds
#: several connections), larger while a transaction writes a million rows into indexes (64 MiB: 128
#: imported a million rows no faster, 18.1–22.3 s against 18.0–21.1 s, and held 70 MB more).
READ_CACHE_KIB, WRITE_CACHE_KIB = 8_192, 65_536

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
    sa.Column("geometry", postgis.Geometry, nullable=False),
    sa.UniqueConstraint("version_id", "code"),
)

incidents = sa.Table(
    "incidents", metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("external_id", sa.String(200), unique=True),
    sa.Column("category", sa.String(40), nullable=False),
    sa.Column("category_raw", sa.String(200)),
    sa.Column("lon", sa.Float, nullable=False),
    sa.Column("lat", sa.Float, nullable=False),
    sa.Column("reported_at", sa.DateTime, nullable=False),
    sa.Column("status", sa.String(20), nullable=False),
    sa.Column("description", sa.Text, nullable=False, default=""),
    sa.Column("source", sa.String(100), nullable=False, default=""),
    sa.Column("created_at", sa.DateTime, nullable=False),
    # the coordinates as given, when not in WGS84 (lon/lat are always WGS84)
    sa.Column("original_x", sa.Float),
    sa.Column("original_y", sa.Float),
    sa.Column("original_crs", sa.String(100)),
    # the lifecycle (LIFECYCLE_COLUMNS): set by its steps, never by an import's bulk write
    sa.Column("resolution", sa.String(20)),
    sa.Column("closed_at", sa.DateTime),
    sa.Column("rating", sa.Integer),
    sa.Column("duplicate_of", sa.Integer),
    sa.Column("escalation", sa.Integer, nullable=False, server_default="0"),
    sa.Column("due_at", sa.DateTime),            # its own deadline, when a file gave one
    # also serves filters by time alone: SQLite skip-scans the few categories (statistics from
    # ANALYZE, refreshed after big writes); a second index on the time cost a third of an import
    sa.Index("ix_incidents_category_time", "category", "reported_at"),
)

# Keyed by version first and stored without rowids: a commit writes one version's rows in id
# order (appends, not a million B-tree inserts), and a page reads one version's rows in order.
assignment_table = sa.Table(
    "assignments", metadata,
    sa.Column("version_id", sa.Integer, sa.ForeignKey("layer_versions.id"), nullable=False),
    sa.Column("incident_id", sa.Integer, sa.ForeignKey("incidents.id"), nullable=False),
    sa.Column("unit_code", sa.String(100)),
    sa.PrimaryKeyConstraint("version_id", "incident_id"),
    sa.Index("ix_assignments_version_unit", "version_id", "unit_code"),
    sqlite_with_rowid=False,
)

incident_events = sa.Table(
    "incident_events", metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("incident_id", sa.Integer, sa.ForeignKey("incidents.id"), nullable=False, index=True),
    sa.Column("at", sa.DateTime, nullable=False),
    sa.Column("actor", sa.String(200), nullable=False),
    sa.Column("action", sa.String(20), nullable=False),
    sa.Column("from_status", sa.String(20)),
    sa.Column("to_status", sa.String(20), nullable=False),
    sa.Column("note", sa.Text, nullable=False, server_default=""),
    sa.Column("resolution", sa.String(20)),
    sa.Column("rating", sa.Integer),
    sa.Column("duplicate_of", sa.Integer),
    sa.Column("escalation", sa.Integer),
)

photos = sa.Table(
    "incident_photos", metadata,
    sa.Column("incident_id", sa.Integer, sa.ForeignKey("incidents.id"), primary_key=True),
    sa.Column("content_type", sa.String(50), nullable=False),
    sa.Column("data", sa.LargeBinary, nullable=False),
)

staff_table = sa.Table(
    "staff", metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("level", sa.String(20), nullable=False),
    sa.Column("unit_code", sa.String(100), nullable=False),
    sa.Column("role", sa.String(20), nullable=False),
    sa.Column("name", sa.String(200), nullable=False),
    sa.Column("phone", sa.String(50), nullable=False, server_default=""),
    sa.Column("active", sa.Boolean, nullable=False, server_default=sa.true()),
    sa.Index("ix_staff_unit", "level", "unit_code"),
)

accounts_table = sa.Table(
    "accounts", metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("name", sa.String(100), nullable=False, unique=True),
    sa.Column("role", sa.String(20), nullable=False),
    sa.Column("password_hash", sa.String(300), nullable=False, server_default=""),
    sa.Column("staff_id", sa.Integer, sa.ForeignKey("staff.id")),
    sa.Column("active", sa.Boolean, nullable=False, server_default=sa.true()),
    sa.Column("created_at", sa.DateTime, nullable=False),
)

tokens_table = sa.Table(
    "api_tokens", metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("account_id", sa.Integer, sa.ForeignKey("accounts.id"), nullable=False),
    sa.Column("token_hash", sa.String(64), nullable=False, unique=True),
    sa.Column("label", sa.String(200), nullable=False, server_default=""),
    sa.Column("created_at", sa.DateTime, nullable=False),
)

audit_table = sa.Table(
    "audit_log", metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("at", sa.DateTime, nullable=False),
    sa.Column("actor", sa.String(100), nullable=False),
    sa.Column("action", sa.String(100), nullable=False),
    sa.Column("target", sa.String(300), nullable=False),
    sa.Column("status", sa.Integer, nullable=False),
)

idempotency_table = sa.Table(
    "idempotency_keys", metadata,
    sa.Column("key", sa.String(300), primary_key=True),
    sa.Column("rows", sa.Text, nullable=False),         # JSON: the request's stored rows …
    sa.Column("ids", sa.Text, nullable=False),          # … and their incident ids
    sa.Column("created_at", sa.DateTime, nullable=False),
)

import_runs = sa.Table(
    "import_runs", metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("created_at", sa.DateTime, nullable=False),
    sa.Column("filename", sa.String(300), nullable=False),
    sa.Column("rows", sa.Integer, nullable=False),
    sa.Column("created", sa.Integer, nullable=False),
    sa.Column("existing", sa.Integer, nullable=False),
    sa.Column("errors", sa.Text, nullable=False),        # JSON: [{"row": n, "reasons": [message records]}]
)

INCIDENT_COLUMNS = ["id", "external_id", "category", "category_raw", "lon", "lat", "reported_at",
                    "status", "description", "source", "original_x", "original_y", "original_crs"]


def _engine(url: str) -> Engine:
    if sa.engine.make_url(url).get_backend_name() == "postgresql":
        return _postgres_engine(url)
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
        # The schema's foreign keys say what refers to what; SQLite does not enforce them here,
        # since checked row by row they took as long as writing a million assignments: the
        # writer checks the incidents a commit's assignments name in bulk (:func:`_check_stored`),
        # and every other reference is to a row written in the same call.
        cursor.execute("PRAGMA foreign_keys=OFF")
        cursor.execute(f"PRAGMA cache_size=-{READ_CACHE_KIB}")
        cursor.close()

    @sa.event.listens_for(engine, "begin")
    def _begin(conn: sa.Connection) -> None:
        # A writer takes SQLite's write lock before it reads the current version, so two
        # saves based on the same version cannot both pass the base check (other processes too).
        conn.exec_driver_sql("BEGIN IMMEDIATE" if conn.get_execution_options().get("immediate") else "BEGIN")

    return engine


def _postgres_engine(url: str) -> Engine:
    engine = sa.create_engine(sa.engine.make_url(url).set(drivername="postgresql+psycopg"), pool_pre_ping=True)

    @sa.event.listens_for(engine, "begin")
    def _begin(conn: sa.Connection) -> None:
        if conn.get_execution_options().get("immediate"):
            postgis.begin_writing(conn)

    postgis.prepare(engine)
    return engine


def _before_migrations(conn: sa.Connection) -> None:
    """Bring a database made before migrations existed up to the baseline revision: add the
    tables, columns and indexes newer code expects (SQLite ALTER TABLE), and rebuild the
    assignments keyed by version first."""
    metadata.create_all(conn)
    keyed = sa.inspect(conn).get_pk_constraint("assignments")["constrained_columns"]
    # the names alone (reflecting the types would stumble on PostGIS's)
    have = {table.name: set(conn.exec_driver_sql(f"SELECT * FROM {table.name} LIMIT 0").keys())
            for table in (layer_versions, incidents)}
    for table in (layer_versions, incidents):
        for column in table.columns:
            if column.name not in have[table.name]:
                ddl = sa.schema.CreateColumn(column).compile(dialect=conn.dialect)
                conn.exec_driver_sql(f"ALTER TABLE {table.name} ADD COLUMN {ddl}")
    if keyed != ["version_id", "incident_id"]:
        log.info("rebuilding the assignments table keyed by version")
        conn.exec_driver_sql("DROP INDEX IF EXISTS ix_assignments_version_unit")
        conn.exec_driver_sql("ALTER TABLE assignments RENAME TO assignments_before_upgrade")
        assignment_table.create(conn)
        conn.exec_driver_sql("INSERT INTO assignments (version_id, incident_id, unit_code) SELECT version_id, "
                             "incident_id, unit_code FROM assignments_before_upgrade ORDER BY version_id, "
                             "incident_id")
        conn.exec_driver_sql("DROP TABLE assignments_before_upgrade")
    for table in (incidents, assignment_table):
        for index in table.indexes:
            index.create(conn, checkfirst=True)
    conn.exec_driver_sql("DROP INDEX IF EXISTS ix_incidents_reported_at")


class SqlStore(Store):
    def __init__(self, url: str) -> None:
        self.url = url
        path = sa.engine.make_url(url).database
        self._file = path if path and path != ":memory:" else None
        self._watcher: sqlite3.Connection | None = None
        self._watch_lock = threading.Lock()
        self.engine = _engine(url)
        self.postgres = self.engine.dialect.name == "postgresql"
        if self.postgres:
            self._file = None
        self.writer = self.engine.execution_options(immediate=True)
        migrations.upgrade(self.engine, legacy=_before_migrations)

    def close(self) -> None:
        with self._watch_lock:
            if self._watcher is not None:
                self._watcher.close()
                self._watcher = None
        self.engine.dispose()

    def changes(self) -> int | None:
        # SQLite's data_version moves when another connection commits; our own writes go through
        # the pool's connections, so this one watcher sees every commit.  Its values mean something
        # only compared with each other: one connection for every thread, used under a lock.
        if self.postgres:
            return postgis.changes(self.engine)
        if self._file is None:
            return None
        with self._watch_lock:
            if self._watcher is None:
                self._watcher = sqlite3.connect(self._file, check_same_thread=False)
            return int(self._watcher.execute("PRAGMA data_version").fetchone()[0])

    @contextmanager
    def writing(self) -> Iterator[Writer]:
        with self.writer.begin() as conn:
            if self.postgres:
                writer = _SqlWriter(conn)
                yield writer
                writer.finish()
                postgis.count_change(conn)
            else:
                conn.exec_driver_sql(f"PRAGMA cache_size=-{WRITE_CACHE_KIB}")
                try:
                    writer = _SqlWriter(conn)
                    yield writer
                    writer.finish()
                finally:       # the pooled connection goes back to reading with a small cache
                    conn.exec_driver_sql(f"PRAGMA cache_size=-{READ_CACHE_KIB}")
        if writer.written >= ANALYZE_AFTER:
            self._analyze()

    def _analyze(self) -> None:
        """Refresh the planner's statistics (sampled: milliseconds at a million rows), which let a
        filter by time alone skip-scan the (category, time) index."""
        with self.engine.connect() as conn:
            if self.postgres:
                postgis.analyze(conn)
                conn.commit()
                return
            conn.exec_driver_sql("PRAGMA analysis_limit=1000")
            conn.exec_driver_sql("ANALYZE")

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
        a = assignment_table
        with self.engine.connect() as conn:
            row = _version_row(conn, level, version)
            if conn.dialect.name != "sqlite":
                ids, codes = _columns(_fetch(conn, sa.select(a.c.incident_id, a.c.unit_code)
                                             .where(a.c.version_id == row.id).order_by(a.c.incident_id)), 2)
                return ids.astype(np.int64), codes
            # one row per unit from the (version, unit) index, its incident ids as one text each:
            # a third of the time of a million (id, code) tuples
            groups = _fetch(conn, sa.select(a.c.unit_code, sa.func.count(), sa.func.group_concat(a.c.incident_id))
                            .where(a.c.version_id == row.id).group_by(a.c.unit_code))
        if not groups:
            return np.empty(0, dtype=np.int64), np.empty(0, dtype=object)
        codes, counts, id_texts = _columns(groups, 3)
        ids = np.fromstring(",".join(id_texts), sep=",", dtype=np.int64)
        unit_codes = np.repeat(codes, counts.astype(np.int64))
        order = np.argsort(ids, kind="stable")
        return ids[order], unit_codes[order]

    def moves(self, level: Level, old: int | None, new: int) -> list[tuple[str | None, str | None, int]]:
        a, b = assignment_table.alias("after"), assignment_table.alias("before")
        with self.engine.connect() as conn:
            new_id = _version_row(conn, level, new).id
            old_id = _version_row(conn, level, old).id if old is not None else -1
            stmt = (sa.select(b.c.unit_code, a.c.unit_code, sa.func.count())
                    .select_from(a.outerjoin(b, sa.and_(b.c.version_id == old_id, b.c.incident_id == a.c.incident_id)))
                    .where(a.c.version_id == new_id, b.c.unit_code.is_distinct_from(a.c.unit_code))
                    .group_by(b.c.unit_code, a.c.unit_code))
            return [(before, after, int(n)) for before, after, n in _fetch(conn, stmt)]

    # -- incidents -----------------------------------------------------------------------
    def import_run(self, run_id: int) -> ImportRun:
        with self.engine.connect() as conn:
            row = conn.execute(sa.select(import_runs).where(import_runs.c.id == run_id)).first()
        if row is None:
            raise NotFound(message(N_("there is no import {id}"), id=run_id))
        return ImportRun(filename=row.filename, rows=row.rows, created=row.created, existing=row.existing,
                         errors=tuple(json.loads(row.errors)), id=row.id, created_at=row.created_at)

    def incident_table(self, after: int = 0, limit: int | None = None) -> dict[str, np.ndarray]:
        names = ["id", "lon", "lat", "category", "status", "source", "reported_at"]
        with self.engine.connect() as conn:
            rows = _fetch(conn, sa.select(*[incidents.c[n] for n in names]).where(incidents.c.id > after)
                          .order_by(incidents.c.id).limit(limit))
        ident, lon, lat, category, status, source, when = _columns(rows, len(names))
        return {"id": ident.astype(np.int64), "lon": lon.astype(float), "lat": lat.astype(float),
                "category": category, "status": status, "source": source,
                "reported_at": _datetimes(pd.Series(when, dtype=object)).to_numpy(dtype="datetime64[us]")}

    def lifecycle_columns(self, level: Level, version: int,
                          query: IncidentQuery = IncidentQuery()) -> dict[str, np.ndarray]:
        names = ["category", "status", "resolution", "rating", "reported_at", "closed_at", "due_at"]
        with self.engine.connect() as conn:
            unit = _unit_column(_version_row(conn, level, version).id, level)
            rows = _fetch(conn, sa.select(unit, *[incidents.c[n] for n in names]).where(*_filters(conn, query))
                          .order_by(incidents.c.id))
        unit_codes, category, status, resolution, rating, reported, closed, due = _columns(rows, len(names) + 1)
        return {"unit": unit_codes, "category": category, "status": status, "resolution": resolution,
                "rating": pd.to_numeric(pd.Series(rating, dtype=object)).to_numpy(dtype=float),
                **{name: _datetimes(pd.Series(texts, dtype=object)).to_numpy(dtype="datetime64[us]")
                   for name, texts in (("reported_at", reported), ("closed_at", closed), ("due_at", due))}}

    def photo(self, incident_id: int) -> tuple[str, bytes] | None:
        with self.engine.connect() as conn:
            row = conn.execute(sa.select(photos.c.content_type, photos.c.data)
                               .where(photos.c.incident_id == incident_id)).first()
        return None if row is None else (row.content_type, bytes(row.data))

    def staff_members(self) -> list[StaffMember]:
        with self.engine.connect() as conn:
            rows = conn.execute(sa.select(staff_table).order_by(staff_table.c.id)).all()
        return [StaffMember(**{**row._asdict(), "active": bool(row.active)}) for row in rows]

    def accounts(self) -> list[Account]:
        with self.engine.connect() as conn:
            return [_account(row) for row in conn.execute(sa.select(accounts_table).order_by(accounts_table.c.id))]

    def account(self, *, account_id: int | None = None, name: str | None = None,
                token_hash: str | None = None) -> Account | None:
        a = accounts_table
        query = sa.select(a)
        if account_id is not None:
            query = query.where(a.c.id == account_id)
        if name is not None:
            query = query.where(a.c.name == name)
        if token_hash is not None:
            query = query.join(tokens_table, tokens_table.c.account_id == a.c.id).where(
                tokens_table.c.token_hash == token_hash)
        with self.engine.connect() as conn:
            row = conn.execute(query).first()
        return None if row is None else _account(row)

    def audit_entries(self, *, limit: int, before: int | None = None) -> list[AuditEntry]:
        query = sa.select(audit_table).order_by(audit_table.c.id.desc()).limit(limit)
        if before is not None:
            query = query.where(audit_table.c.id < before)
        with self.engine.connect() as conn:
            return [AuditEntry(**row._asdict()) for row in conn.execute(query)]

    def lifecycle_values(self) -> dict[str, np.ndarray]:
        i = incidents
        with self.engine.connect() as conn:
            rows = _fetch(conn, sa.select(i.c.id, i.c.resolution, i.c.rating, i.c.closed_at, i.c.due_at, i.c.escalation)
                          .where(sa.or_(i.c.resolution.is_not(None), i.c.rating.is_not(None),
                                        i.c.closed_at.is_not(None), i.c.due_at.is_not(None), i.c.escalation > 0))
                          .order_by(i.c.id))
        ids, resolution, rating, closed, due, escalation = _columns(rows, 6)
        return {"id": ids.astype(np.int64), "resolution": resolution, "escalation": escalation.astype(np.int64),
                "rating": pd.to_numeric(pd.Series(rating, dtype=object)).to_numpy(dtype=float),
                "closed_at": _datetimes(pd.Series(closed, dtype=object)).to_numpy(dtype="datetime64[us]"),
                "due_at": _datetimes(pd.Series(due, dtype=object)).to_numpy(dtype="datetime64[us]")}

    def incident_events(self, incident_id: int) -> list[IncidentEvent]:
        with self.engine.connect() as conn:
            rows = conn.execute(sa.select(incident_events).where(incident_events.c.incident_id == incident_id)
                                .order_by(incident_events.c.id)).all()
        return [IncidentEvent(**row._asdict()) for row in rows]

    def status_changes(self, after: int = 0) -> tuple[int, np.ndarray, np.ndarray]:
        e = incident_events
        with self.engine.connect() as conn:
            rows = _fetch(conn, sa.select(e.c.id, e.c.incident_id, e.c.to_status).where(e.c.id > after)
                          .order_by(e.c.id))
        if not rows:
            return after, np.empty(0, dtype=np.int64), np.empty(0, dtype=object)
        event_ids, ids, statuses = _columns(rows, 3)
        return int(event_ids[-1]), ids.astype(np.int64), statuses

    def count_incidents(self) -> int:
        with self.engine.connect() as conn:
            return int(conn.execute(sa.select(sa.func.count()).select_from(incidents)).scalar_one())

    def incidents(self, query: IncidentQuery = IncidentQuery(), *,
                  at: dict[Level, int] | None = None) -> pd.DataFrame:
        return self._incident_frame(query, at=at)

    def incident_page(self, query: IncidentQuery = IncidentQuery(), *, after: int = 0,
                      limit: int = 1000) -> pd.DataFrame:
        return self._incident_frame(query, after=after, limit=limit)

    def _incident_frame(self, query: IncidentQuery, *, at: dict[Level, int] | None = None, after: int = 0,
                        limit: int | None = None) -> pd.DataFrame:
        with self.engine.connect() as conn:
            shown = _shown(conn, at)
            levels = list(shown)
            columns = [incidents.c[c] for c in [*INCIDENT_COLUMNS, *LIFECYCLE_COLUMNS]]
            stmt = sa.select(*columns, *[_unit_column(shown[lv].id, lv) for lv in levels])
            stmt = stmt.where(*_filters(conn, query, at), incidents.c.id > after).order_by(incidents.c.id).limit(limit)
            rows = _fetch(conn, stmt)
        names = INCIDENT_COLUMNS + list(LIFECYCLE_COLUMNS) + [lv.value for lv in levels]
        frame = pd.DataFrame(dict(zip(names, _columns(rows, len(names)))), columns=names, dtype=object)
        frame["reported_at"] = _datetimes(frame["reported_at"])
        frame["closed_at"] = _datetimes(frame["closed_at"])
        frame["due_at"] = _datetimes(frame["due_at"])
        return frame.astype({"id": "int64", "lon": "float64", "lat": "float64", "escalation": "int64",
                             "original_x": "float64", "original_y": "float64"})

    def heat(self, query: IncidentQuery, *, cell_deg: float, at: dict[Level, int] | None = None) -> HeatCells:
        with self.engine.connect() as conn:
            rows = _fetch(conn, sa.select(incidents.c.lon, incidents.c.lat).where(*_filters(conn, query, at)))
        points = _numbers(rows, 2)
        return heat_cells(points[:, 0], points[:, 1], cell_deg)

    def unit_counts(self, level: Level, version: int, query: IncidentQuery = IncidentQuery()) -> dict[str, int]:
        a = assignment_table
        with self.engine.connect() as conn:
            version_id = _version_row(conn, level, version).id
            clauses = _filters(conn, query)
            if not clauses:              # the (version, unit) index alone
                stmt = (sa.select(a.c.unit_code, sa.func.count()).where(a.c.version_id == version_id,
                                                                        a.c.unit_code.is_not(None))
                        .group_by(a.c.unit_code))
            else:                        # the matching incidents first (their indexes), then each one's unit
                unit = _unit_column(version_id, level)
                stmt = (sa.select(unit, sa.func.count()).where(*clauses).group_by(unit)
                        .having(unit.is_not(None)))
            return {code: int(n) for code, n in _fetch(conn, stmt)}

    def unit_counts_in(self, level: Level, version: int, query: IncidentQuery,
                       bounds: Sequence[datetime]) -> list[dict[str, int]]:
        if len(bounds) < 2:
            return []
        within = replace(query, date_from=max(bounds[0], query.date_from) if query.date_from else bounds[0],
                         date_to=min(bounds[-1], query.date_to) if query.date_to else bounds[-1])
        # one pass over the matching incidents, each put in its period by one CASE (not a query per period)
        period = sa.case(*[(incidents.c.reported_at < end, k) for k, end in enumerate(bounds[1:-1])],
                         else_=len(bounds) - 2).label("period")
        counts: list[dict[str, int]] = [{} for _ in bounds[1:]]
        with self.engine.connect() as conn:
            unit = _unit_column(_version_row(conn, level, version).id, level)
            stmt = (sa.select(unit, period, sa.func.count()).where(*_filters(conn, within))
                    .group_by(unit, period).having(unit.is_not(None)))
            for code, k, n in _fetch(conn, stmt):
                counts[int(k)][code] = int(n)
        return counts

    def counts(self, query: IncidentQuery, by: str) -> dict[str, int]:
        # times are stored as "YYYY-MM-DD HH:MM:SS.ffffff": a day or a month is a prefix of the text
        # the weekday of the date alone: SQLite rounds 23:59:59.9995 up into the next day
        date = sa.func.substr(incidents.c.reported_at, 1, 10)
        weekday = (sa.cast(sa.func.strftime("%w", date), sa.Integer) + 6) % 7 + 1                       # 1 Monday
        key = {"category": incidents.c.category, "source": incidents.c.source,
               "day": sa.func.substr(incidents.c.reported_at, 1, 10),
               "month": sa.func.substr(incidents.c.reported_at, 1, 7),
               "weekday_hour": sa.func.printf("%d-%s", weekday, sa.func.substr(incidents.c.reported_at, 12, 2)),
               }[by]
        if self.postgres and by in ("day", "month", "weekday_hour"):
            key = postgis.time_key(incidents.c.reported_at, by)
        key = key.label("key")
        with self.engine.connect() as conn:
            rows = _fetch(conn, sa.select(key, sa.func.count()).where(*_filters(conn, query)).group_by(key))
        return {str(k): int(n) for k, n in rows}

    def totals(self, query: IncidentQuery = IncidentQuery(), *,
               at: dict[Level, int] | None = None) -> tuple[int, int]:
        with self.engine.connect() as conn:
            shown = _shown(conn, at)
            clauses = _filters(conn, query, at)
            total = conn.execute(sa.select(sa.func.count()).select_from(incidents).where(*clauses)).scalar_one()
            outside = conn.execute(sa.select(sa.func.count()).select_from(incidents)
                                   .where(*clauses, _outside(conn, shown))).scalar_one()
        return int(total), int(outside)

    def outside_points(self, query: IncidentQuery, *, limit: int,
                       at: dict[Level, int] | None = None) -> tuple[np.ndarray, np.ndarray]:
        with self.engine.connect() as conn:
            shown = _shown(conn, at)
            stmt = sa.select(incidents.c.lon, incidents.c.lat).where(*_filters(conn, query, at), _outside(conn, shown))
            rows = _fetch(conn, stmt.order_by(incidents.c.id).limit(limit))
        data = _numbers(rows, 2)
        return data[:, 0], data[:, 1]


class _SqlWriter(Writer):
    """The writes of one ``BEGIN IMMEDIATE`` transaction."""

    def __init__(self, conn: sa.Connection) -> None:
        self.conn = conn
        self.written = 0           # incident and assignment rows, to know when statistics are stale
        self._set_aside: list[sa.Index] = []        # indexes to build again before the transaction ends
        self._spatial_aside = False                 # PostGIS: the incidents' GiST index too
        self._named_before: bool | None = None     # whether incidents stored before this transaction had external ids
        self._named_here = np.empty(0, dtype=np.int64)    # sorted hashes of the external ids this transaction stored

    def expect_incidents(self, count: int) -> None:
        if self._set_aside or count < SET_ASIDE_FROM:
            return
        if count >= self.conn.execute(sa.select(sa.func.count()).select_from(incidents)).scalar_one():
            self._set_aside = [index for index in incidents.indexes if not index.unique]
            rows = self.conn.execute(sa.select(sa.func.count()).select_from(assignment_table)).scalar_one()
            if count * len(_current_rows(self.conn)) >= rows:
                self._set_aside += list(assignment_table.indexes)
            for index in self._set_aside:
                index.drop(self.conn)
            if self.conn.dialect.name == "postgresql":
                self._spatial_aside = postgis.set_aside_spatial_index(self.conn)
            log.info("building %s once, after %d incidents", ", ".join(i.name or "" for i in self._set_aside), count)

    def finish(self) -> None:
        """The last writes of a transaction that is about to commit."""
        for index in self._set_aside:
            index.create(self.conn)
        self._set_aside = []
        if self._spatial_aside:
            postgis.build_spatial_index(self.conn)
            self._spatial_aside = False

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
            _insert_assignments(self.conn, target, ids, codes)
            self.written += len(ids)
        for lv, parents in commit.relinked.items():
            _set_parents(self.conn, current[lv].id, parents)
        log.info("committed %s version %d", level.value, version)

    def set_units(self, level: Level, version: int, ids: np.ndarray, codes: np.ndarray) -> None:
        version_id = _version_row(self.conn, level, version).id
        order = np.argsort(np.asarray(ids, dtype=np.int64), kind="stable")
        ordered = np.asarray(ids, dtype=np.int64)[order]
        a = assignment_table
        for part in range(0, len(ordered), 10_000):
            self.conn.execute(sa.delete(a).where(a.c.version_id == version_id,
                                                 a.c.incident_id.in_(ordered[part:part + 10_000].tolist())))
        _insert_assignments(self.conn, version_id, ordered, np.asarray(codes, dtype=object)[order])
        self.written += len(ordered)

    def add_import(self, run: ImportRun) -> int:
        return int(self.conn.execute(sa.insert(import_runs).values(
            created_at=_now(), filename=run.filename, rows=run.rows, created=run.created, existing=run.existing,
            errors=json.dumps(list(run.errors), ensure_ascii=False))).inserted_primary_key[0])  # type: ignore[index]

    def known_reports(self, external_ids: Sequence[str]) -> dict[str, KnownReport]:
        unique = list(dict.fromkeys(external_ids))
        if unique and not self._had_named():
            # only this transaction's own rows can match (a first import, chunk after chunk): the
            # store is asked only about ids whose hash is among those it wrote
            unique = [ext for ext, maybe in zip(unique, self._written_here(unique)) if maybe]
        if not unique:
            return {}
        # the ids go into a temporary table and meet the stored ones in one join (a million
        # ids in IN lists of 500 took 2,000 statements)
        self.conn.exec_driver_sql("CREATE TEMP TABLE IF NOT EXISTS asked (external_id VARCHAR(200))")
        self.conn.exec_driver_sql("DELETE FROM asked")
        asked = sa.table("asked", sa.column("external_id"))
        _insert_many(self.conn, asked, ["external_id"], ((ext,) for ext in unique))
        columns = [incidents.c[c] for c in ("external_id", "id", "category", "category_raw", "lon", "lat",
                                            "reported_at", "status")]
        rows = _fetch(self.conn, sa.select(*columns).join(asked, asked.c.external_id == incidents.c.external_id))
        self.conn.exec_driver_sql("DELETE FROM asked")
        return {ext: KnownReport(i, category, raw, lon, lat, _datetime(when), status)
                for ext, i, category, raw, lon, lat, when, status in rows}

    def _had_named(self) -> bool:
        if self._named_before is None:
            self._named_before = self.conn.execute(
                sa.select(incidents.c.id).where(incidents.c.external_id.is_not(None)).limit(1)).first() is not None
        return self._named_before

    def _written_here(self, external_ids: list[str]) -> np.ndarray:
        """Whether each id may be one this transaction stored (its hash is; a collision only costs a lookup)."""
        hashes, written = _hashes(external_ids), self._named_here
        if not len(written):
            return np.zeros(len(hashes), dtype=bool)
        order = np.argsort(hashes)                  # sorted, the searches walk the written hashes once
        found = np.empty(len(hashes), dtype=bool)
        found[order] = written[np.minimum(np.searchsorted(written, hashes[order]), len(written) - 1)] == hashes[order]
        return found

    def replay(self, key: str) -> tuple[np.ndarray, np.ndarray] | None:
        row = self.conn.execute(sa.select(idempotency_table.c.rows, idempotency_table.c.ids)
                                .where(idempotency_table.c.key == key)).first()
        if row is None:
            return None
        return np.array(json.loads(row.rows), dtype=np.int64), np.array(json.loads(row.ids), dtype=np.int64)

    def remember(self, key: str, rows: np.ndarray, ids: np.ndarray) -> None:
        self.conn.execute(sa.insert(idempotency_table).values(
            key=key, rows=json.dumps(np.asarray(rows).tolist()), ids=json.dumps(np.asarray(ids).tolist()),
            created_at=_now()))

    def points_after(self, after: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        rows = _fetch(self.conn, sa.select(incidents.c.id, incidents.c.lon, incidents.c.lat)
                      .where(incidents.c.id > after).order_by(incidents.c.id))
        table = _numbers(rows, 3)
        return table[:, 0].astype(np.int64), table[:, 1], table[:, 2]

    def add_photo(self, incident_id: int, content_type: str, data: bytes) -> None:
        self.conn.execute(sa.delete(photos).where(photos.c.incident_id == incident_id))
        self.conn.execute(sa.insert(photos).values(incident_id=incident_id, content_type=content_type, data=data))

    def add_staff(self, member: StaffMember) -> int:
        fields = {k: v for k, v in asdict(member).items() if k != "id"}
        return int(self.conn.execute(sa.insert(staff_table).values(**fields)).inserted_primary_key[0])  # type: ignore[index]

    def update_staff(self, member: StaffMember) -> None:
        fields = {k: v for k, v in asdict(member).items() if k != "id"}
        done = self.conn.execute(sa.update(staff_table).where(staff_table.c.id == member.id).values(**fields))
        if done.rowcount == 0:
            raise NotFound(message(N_("there is no staff member {id}"), id=member.id))

    def has_accounts(self) -> bool:
        return self.conn.execute(sa.select(accounts_table.c.id).limit(1)).first() is not None

    def add_account(self, account: Account) -> int:
        if self.conn.execute(sa.select(accounts_table.c.id).where(accounts_table.c.name == account.name)).first():
            raise Conflict(message(N_("there is already an account named {name}"), name=account.name))
        fields = {**_account_fields(account), "created_at": account.created_at or _now()}
        return int(self.conn.execute(sa.insert(accounts_table).values(**fields)).inserted_primary_key[0])  # type: ignore[index]

    def update_account(self, account: Account) -> None:
        done = self.conn.execute(sa.update(accounts_table).where(accounts_table.c.id == account.id)
                                 .values(**_account_fields(account)))
        if done.rowcount == 0:
            raise NotFound(message(N_("there is no account {id}"), id=account.id))

    def add_token(self, account_id: int, token_hash: str, label: str) -> int:
        return int(self.conn.execute(sa.insert(tokens_table).values(  # type: ignore[index]
            account_id=account_id, token_hash=token_hash, label=label, created_at=_now())).inserted_primary_key[0])

    def add_audit(self, entry: AuditEntry) -> None:
        self.conn.execute(sa.insert(audit_table).values(at=entry.at, actor=entry.actor, action=entry.action,
                                                        target=entry.target, status=entry.status))

    def incident_state(self, incident_id: int) -> IncidentState:
        row = self.conn.execute(sa.select(incidents.c.id, incidents.c.status, incidents.c.escalation,
                                          incidents.c.category, incidents.c.reported_at)
                                .where(incidents.c.id == incident_id)).first()
        if row is None:
            raise NotFound(message(N_("there is no incident {id}"), id=incident_id))
        return IncidentState(**row._asdict())

    def add_event(self, event: IncidentEvent) -> int:
        values = event.changes()
        self.conn.execute(sa.update(incidents).where(incidents.c.id == event.incident_id).values(**values))
        fields = {k: v for k, v in asdict(event).items() if k != "id"}
        return int(self.conn.execute(sa.insert(incident_events).values(**fields)).inserted_primary_key[0])  # type: ignore[index]

    def add_events(self, events: Sequence[IncidentEvent]) -> None:
        """Many steps in two ``executemany``s a kind of change (a cron job's thousands of escalations:
        one statement each took minutes at a million incidents)."""
        if not events:
            return
        fields = [f for f in IncidentEvent.__dataclass_fields__ if f != "id"]
        _insert_many(self.conn, incident_events, fields,
                     (tuple(_stored_value(getattr(e, f)) for f in fields) for e in events))
        by_kind: dict[tuple[str, ...], list[list[Any]]] = {}
        for event in events:                      # in order: a later step's values win
            changes = event.changes()
            by_kind.setdefault(tuple(changes), []).append([*map(_stored_value, changes.values()), event.incident_id])
        marks = "?" if self.conn.dialect.paramstyle == "qmark" else "%s"
        cursor = self.conn.connection.driver_connection.cursor()     # type: ignore[union-attr]  # an open connection
        try:
            for names, rows in by_kind.items():
                sets = ", ".join(f"{name} = {marks}" for name in names)
                cursor.executemany(f"UPDATE incidents SET {sets} WHERE id = {marks}", rows)
        finally:
            cursor.close()
        self.written += len(events)

    def add_incidents(self, batch: IncidentColumns, units_by_level: dict[Level, np.ndarray]) -> np.ndarray:
        if not len(batch):
            return np.empty(0, dtype=np.int64)
        self._had_named()              # asked before this transaction's rows are among the stored ones
        named = [ext for ext in batch.external_id.tolist() if ext is not None]
        if named:       # two sorted runs: the stable sort (timsort) merges them
            self._named_here = np.sort(np.concatenate([self._named_here, np.sort(_hashes(named))]), kind="stable")
        # the write lock is held from the transaction's start, so the next ids are ours to take
        first = int(self.conn.execute(sa.select(sa.func.max(incidents.c.id))).scalar() or 0) + 1
        ids = np.arange(first, first + len(batch), dtype=np.int64)
        now = _time_texts(np.array([_now()], dtype="datetime64[us]"))[0]
        names = INCIDENT_COLUMNS[:10]
        columns = [ids.tolist(), batch.external_id.tolist(), batch.category.tolist(), batch.category_raw.tolist(),
                   batch.lon.tolist(), batch.lat.tolist(), _time_texts(batch.reported_at).tolist(),
                   batch.status.tolist(), batch.description.tolist(), batch.source.tolist()]
        # the columns most files leave empty are named only when this batch fills them: a million plain
        # rows binding five more NULLs each took 2-3 s more
        for name, values in (*zip(("original_x", "original_y", "original_crs"), _originals(batch)),
                             *zip(("closed_at", "due_at"), _file_times(batch))):
            if values is not None:
                names.append(name)
                columns.append(values)
        same = {"created_at": now}
        if len(ids) >= LITERALS_FROM:
            same |= {name: values[0] for name, values in zip(names, columns) if _one_value(values)}
        kept = [i for i, name in enumerate(names) if name not in same]
        _insert_many(self.conn, incidents, [names[i] for i in kept], zip(*(columns[i] for i in kept)), same=same)
        self.written += len(ids)
        current = _current_rows(self.conn)
        for level, codes in units_by_level.items():
            if level in current:
                _insert_assignments(self.conn, current[level].id, ids, codes)
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


def _filters(conn: sa.Connection, query: IncidentQuery,
             at: dict[Level, int] | None = None) -> list[sa.ColumnElement[bool]]:
    """The query as WHERE clauses; ``unit`` is a unit code of any level shown (current, or ``at``)."""
    clauses: list[sa.ColumnElement[bool]] = []
    for column, values in ((incidents.c.category, query.categories), (incidents.c.status, query.statuses),
                           (incidents.c.source, query.sources)):
        if values:
            clauses.append(column.in_(values))
    if query.date_from:
        clauses.append(incidents.c.reported_at >= query.date_from)
    if query.date_to:
        clauses.append(incidents.c.reported_at < query.date_to)
    if query.ids is not None:
        clauses.append(incidents.c.id.in_(query.ids))
    if query.bbox is not None:
        west, south, east, north = query.bbox
        clauses.append(incidents.c.lon.between(west, east))
        clauses.append(incidents.c.lat.between(south, north))
    for lon, lat in query.exclude_points:
        clauses.append(sa.or_(incidents.c.lon != lon, incidents.c.lat != lat))
    if query.unit:       # the unit's incidents through the (version, unit) index, not a lookup per incident
        version_ids = [row.id for row in _shown(conn, at).values()]
        a = assignment_table
        clauses.append(incidents.c.id.in_(sa.select(a.c.incident_id).where(a.c.version_id.in_(version_ids),
                                                                           a.c.unit_code == query.unit)))
    return clauses


def _shown(conn: sa.Connection, at: dict[Level, int] | None) -> dict[Level, sa.Row]:
    """The version line of every level shown, largest level first: the current ones, or ``at``'s."""
    shown = _current_rows(conn)
    shown.update({lv: _version_row(conn, lv, v) for lv, v in (at or {}).items()})
    return {lv: shown[lv] for lv in ORDER if lv in shown}


def _outside(conn: sa.Connection, shown: dict[Level, sa.Row]) -> sa.ColumnElement[bool]:
    """An incident outside a unit of some level shown (every incident, when no level has units):
    its row under that version says no unit (found through the (version, unit) index), or it has
    no row there (only under a version that stopped being current before the incident came, so a
    per-incident check runs only for a version whose rows are fewer than the incidents)."""
    if not shown:
        return sa.true()
    a = assignment_table
    ids = [row.id for row in shown.values()]
    clauses: list[sa.ColumnElement[bool]] = [incidents.c.id.in_(
        sa.select(a.c.incident_id).where(a.c.version_id.in_(ids), a.c.unit_code.is_(None)))]
    stored = conn.execute(sa.select(sa.func.count()).select_from(incidents)).scalar_one()
    for version_id in ids:
        rows = conn.execute(sa.select(sa.func.count()).select_from(a).where(a.c.version_id == version_id)).scalar_one()
        if rows < stored:
            clauses.append(~sa.exists().where(a.c.version_id == version_id, a.c.incident_id == incidents.c.id))
    return sa.or_(*clauses)


def _insert_many(conn: sa.Connection, table: sa.TableClause, columns: list[str], rows: Iterable[tuple], *,
                 same: Mapping[str, Any] | None = None) -> None:
    """Rows as plain tuples through the driver's ``executemany`` (values exactly as stored: times
    as :func:`_time_texts`), for the million-row writes of imports and commits.  ``same``: columns
    with one value for every row, which SQLite gets once, as a literal in the statement (binding
    four of them a row was a fifth of a million-row import's write)."""
    same = dict(same or {})
    assert all(map(_literal, same.values())), same
    if conn.dialect.name == "postgresql" and same:
        constant = tuple(same.values())
        columns, rows = [*columns, *same], (row + constant for row in rows)
        same = {}
    marks = ["?" if conn.dialect.paramstyle == "qmark" else "%s"] * len(columns)
    values = ", ".join(marks + [str(sa.literal(value).compile(dialect=conn.dialect,
                                                              compile_kwargs={"literal_binds": True}))
                                for value in same.values()])
    statement = f"INSERT INTO {table.name} ({', '.join([*columns, *same])}) VALUES ({values})"
    cursor = conn.connection.driver_connection.cursor()     # type: ignore[union-attr]  # an open connection
    try:
        if conn.dialect.name == "postgresql":
            postgis.copy_rows(cursor, table.name, columns, rows)
        else:
            cursor.executemany(statement, rows)
    except conn.dialect.loaded_dbapi.Error as error:       # as SQLAlchemy raises it for its own statements
        raise sa.exc.DBAPIError.instance(statement, None, error, conn.dialect.loaded_dbapi.Error) from error
    finally:
        cursor.close()


def _one_value(values: list) -> bool:
    """Whether every value of a column is one and the same :func:`_literal` value."""
    if not values or not _literal(values[0]):
        return False
    return values.count(values[0]) == len(values)       # only text equals text, only None is None


def _literal(value: Any) -> bool:
    """Whether a value can be written into a statement as a literal exactly as it would be bound:
    None, or text without NUL characters (which a statement cannot hold)."""
    return value is None or (type(value) is str and "\x00" not in value)


#: Rows in a batch from which a value all of them share goes into the statement once (a literal)
#: instead of being bound row by row; a smaller batch (a report, a request) binds every value.
LITERALS_FROM = 1_000


#: Runs of consecutive incident ids per assignment row above which rows are bound one by one.
RUNS_PER_ROW = 1 / 64


def _insert_assignments(conn: sa.Connection, version_id: int, ids: np.ndarray, codes: np.ndarray) -> None:
    """One version's rows, in key order (appended to the table, not inserted).  Incident ids come in
    runs of consecutive ids (every id, unless some were never stored): SQLite takes each run's codes
    as one JSON array (``json_each``), twice as fast as binding a million rows."""
    order = np.argsort(ids, kind="stable")
    ordered_ids = np.asarray(ids, dtype=np.int64)[order]
    ordered_codes = np.asarray(codes, dtype=object)[order]
    starts = np.flatnonzero(np.diff(ordered_ids, prepend=-1) != 1)
    _check_stored(conn, ordered_ids, starts)
    if conn.dialect.name != "sqlite" or len(starts) > max(1, len(ordered_ids) * RUNS_PER_ROW):
        _insert_many(conn, assignment_table, ["version_id", "incident_id", "unit_code"],
                     zip(repeat(version_id), ordered_ids.tolist(), ordered_codes.tolist()))
        return
    statement = ("INSERT INTO assignments (version_id, incident_id, unit_code) "
                 "SELECT ?, ? + key, value FROM json_each(?)")
    for start, end in zip(starts, [*starts[1:], len(ordered_ids)]):
        conn.exec_driver_sql(statement, (version_id, int(ordered_ids[start]),
                                         json.dumps(ordered_codes[start:end].tolist(), ensure_ascii=False)))


def _check_stored(conn: sa.Connection, ids: np.ndarray, starts: np.ndarray) -> None:
    """Refuse assignments of incidents that are not stored: ``ids`` sorted and unique, runs of
    consecutive ids beginning at ``starts``, each counted with one range of the primary key."""
    found = 0
    if len(starts) <= max(1, len(ids) * RUNS_PER_ROW):
        for start, end in zip(starts, [*starts[1:], len(ids)]):
            found += conn.execute(sa.select(sa.func.count()).select_from(incidents).where(
                incidents.c.id.between(int(ids[start]), int(ids[end - 1])))).scalar_one()
    else:
        for part in range(0, len(ids), 10_000):
            found += conn.execute(sa.select(sa.func.count()).select_from(incidents).where(
                incidents.c.id.in_(ids[part:part + 10_000].tolist()))).scalar_one()
    if found != len(ids):
        raise ValueError(f"{len(ids) - found} of {len(ids)} assignments name incidents that are not stored")


def _originals(batch: IncidentColumns) -> list[Any]:
    """The coordinates as given, as the rows store them (NULL for WGS84 ones); None for each of
    the three when the whole batch was given in WGS84 (the usual case: the columns are left out)."""
    if pd.isna(batch.original_crs).all():
        return [None] * 3
    given = pd.notna(batch.original_crs)
    return [[x if g else None for x, g in zip(batch.original_x.tolist(), given.tolist())],
            [y if g else None for y, g in zip(batch.original_y.tolist(), given.tolist())], batch.original_crs.tolist()]


def _stored_value(value: Any) -> Any:
    """A value as a raw driver statement stores it: times as :data:`_TIME_FORMAT` text."""
    return value.strftime(_TIME_FORMAT) if isinstance(value, datetime) else value


def _file_times(batch: IncidentColumns) -> list[Any]:
    """The close times and deadlines a file gave, as stored text (NULL where none); None for a
    column the whole batch leaves empty (most files)."""
    out: list[Any] = []
    for times in (batch.closed_at, batch.due_at):
        given = ~np.isnat(times)
        if not given.any():
            out.append(None)
        else:
            texts = np.full(len(times), None, dtype=object)
            texts[given] = _time_texts(times[given])
            out.append(texts.tolist())
    return out


def _hashes(texts: list[str]) -> np.ndarray:
    return np.fromiter(map(hash, texts), dtype=np.int64, count=len(texts))


def _fetch(conn: sa.Connection, stmt: sa.Executable) -> Sequence[tuple]:
    """The rows as the driver's plain tuples: no Row objects, no per-value type processing
    (times stay text; :func:`_datetimes` reads a whole column at once)."""
    result = conn.execute(stmt)
    try:
        return result.cursor.fetchall()
    finally:
        result.close()


def _numbers(rows: Sequence[tuple], width: int) -> np.ndarray:
    """Rows of numbers as one float array (n, width)."""
    if not rows:
        return np.empty((0, width))
    return np.fromiter(chain.from_iterable(rows), dtype=float, count=len(rows) * width).reshape(-1, width)


#: How SQLAlchemy writes a DateTime into SQLite, and so how every time is stored and compared.
_TIME_FORMAT = "%Y-%m-%d %H:%M:%S.%f"


def _datetime(value: str | datetime) -> datetime:
    """A stored time (SQLite's text, PostgreSQL's timestamp) as a datetime."""
    return value if isinstance(value, datetime) else datetime.strptime(value, _TIME_FORMAT)


def _datetimes(column: pd.Series) -> pd.Series:
    """Stored time texts as datetime64[us]; NULL as NaT."""
    return pd.to_datetime(column.where(column.notna(), None), format=_TIME_FORMAT).astype("datetime64[us]")


def _time_texts(times: np.ndarray) -> np.ndarray:
    """datetime64 values as stored text, in :data:`_TIME_FORMAT`."""
    text = np.datetime_as_string(np.asarray(times, dtype="datetime64[us]"), unit="us")
    if len(text) and text.dtype.kind == "U" and text.dtype.itemsize >= 44:
        letter = text.view(np.uint32).reshape(len(text), -1)[:, 10]     # YYYY-MM-DD[T]HH:MM:SS.ffffff
        if (letter == ord("T")).all():
            letter[:] = ord(" ")          # in place: half the time of np.char.replace
            return text.astype(object)
    return np.char.replace(text, "T", " ").astype(object)


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


def _account(row: sa.Row) -> Account:
    return Account(**{**row._asdict(), "role": Role(row.role), "active": bool(row.active)})


def _account_fields(account: Account) -> dict[str, Any]:
    return {"name": account.name, "role": account.role.value, "password_hash": account.password_hash,
            "staff_id": account.staff_id, "active": account.active}


def _now() -> datetime:
    return datetime.now(timezone.utc).replace(tzinfo=None)
