"""What the SQL store does differently on PostgreSQL + PostGIS (``postgresql://`` URLs).

The tables, queries and rules are :mod:`gridmap.storage.sql`'s; this module holds the parts that
differ by database: the geometry column type, the write lock, the bulk load (``COPY``), the
change counter that lets caches see other processes' commits, and the text keys of counts.

* Unit geometries are PostGIS ``geometry`` in EPSG:4326 with a GiST index; incidents get a stored
  generated point column (from lon/lat) with a GiST index, so SQL and tools such as QGIS can ask
  spatial questions of them.  gridmap itself still assigns in Python (one index, one tie-break for
  every backend).
* A write transaction takes one transaction-level advisory lock first, as SQLite's
  ``BEGIN IMMEDIATE`` does: what a writer reads (the current versions, the next incident id) stays
  true until it commits, in every process and on every application server.
"""
from __future__ import annotations

import logging
from typing import Any, Iterable

import shapely
import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import base as postgresql_base
from sqlalchemy.engine import Engine
from sqlalchemy.ext.compiler import compiles

log = logging.getLogger(__name__)

#: The advisory lock every write transaction holds (a constant of gridmap's own: "gridmap\0").
WRITE_LOCK = 0x677269646D617000

SRID = 4326


class GeometryType(sa.types.UserDefinedType):
    """PostGIS ``geometry(Geometry, 4326)``; values pass as hex EWKB text (PostGIS's own form)."""

    cache_ok = True

    def __init__(self, *_reflected: Any) -> None:       # reflection passes the type's modifiers
        super().__init__()

    def get_col_spec(self, **_kw: Any) -> str:
        return f"geometry(Geometry,{SRID})"


# so that reading the schema back (migrations comparing it with the tables) knows the type
postgresql_base.ischema_names["geometry"] = GeometryType


class Geometry(sa.types.TypeDecorator):
    """A geometry as WKB bytes in Python: a BLOB in SQLite, PostGIS ``geometry`` in PostgreSQL."""

    impl = sa.LargeBinary
    cache_ok = True

    def load_dialect_impl(self, dialect: sa.Dialect) -> sa.types.TypeEngine:
        return dialect.type_descriptor(GeometryType() if dialect.name == "postgresql" else sa.LargeBinary())

    def process_bind_param(self, value: Any, dialect: sa.Dialect) -> Any:
        if value is None or dialect.name != "postgresql":
            return value
        geometry = shapely.set_srid(shapely.from_wkb(value), SRID)
        return shapely.to_wkb(geometry, hex=True, include_srid=True)

    def process_result_value(self, value: Any, dialect: sa.Dialect) -> Any:
        if value is None or dialect.name != "postgresql":
            return value
        return shapely.to_wkb(shapely.from_wkb(value))       # EWKB text back to plain WKB bytes


@compiles(sa.String, "postgresql")
def _unbounded_text(element: sa.String, compiler: Any, **kw: Any) -> str:
    """Text columns without a length limit, as in SQLite: the domain caps what it must (a name,
    a code) and says so; the database never refuses a value SQLite would keep."""
    return "VARCHAR"


def prepare(engine: Engine) -> None:
    """Before the tables: the PostGIS extension (present already, or made when the role may)."""
    with engine.begin() as conn:
        if conn.exec_driver_sql("SELECT 1 FROM pg_extension WHERE extname = 'postgis'").first() is None:
            conn.exec_driver_sql("CREATE EXTENSION IF NOT EXISTS postgis")


def begin_writing(conn: sa.Connection) -> None:
    """The first statements of a write transaction: wait for (at most 30 s, as SQLite's busy
    timeout), then hold, the store's write lock."""
    conn.exec_driver_sql("SET LOCAL lock_timeout = '30s'")
    conn.exec_driver_sql(f"SELECT pg_advisory_xact_lock({WRITE_LOCK})")


def set_aside_spatial_index(conn: sa.Connection) -> bool:
    """Before a big import: drop the incidents' GiST index (built once at the end, sorted, in
    2 s at a million points, rather than grown a point at a time) and give the index builds
    more memory."""
    conn.exec_driver_sql("SET LOCAL maintenance_work_mem = '512MB'")
    conn.exec_driver_sql("DROP INDEX IF EXISTS ix_incidents_geom")
    return True


def build_spatial_index(conn: sa.Connection) -> None:
    conn.exec_driver_sql("CREATE INDEX ix_incidents_geom ON incidents USING gist (geom)")


def count_change(conn: sa.Connection) -> None:
    """The last statement of a write transaction: move the change counter on."""
    conn.exec_driver_sql("UPDATE store_changes SET n = n + 1 WHERE id = 1")


def changes(engine: Engine) -> int:
    with engine.connect() as conn:
        return int(conn.exec_driver_sql("SELECT n FROM store_changes WHERE id = 1").scalar_one())


def copy_rows(cursor: Any, table: str, columns: list[str], rows: Iterable[tuple]) -> None:
    """Rows into a table with ``COPY … FROM STDIN`` on a psycopg cursor (its C row writer does
    the text format: four times faster than formatting the values here)."""
    with cursor.copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN") as copy:
        for row in rows:
            copy.write_row(row)


def time_key(column: sa.ColumnElement, by: str) -> sa.ColumnElement:
    """The text key of :meth:`SqlStore.counts` for a timestamp column (SQLite keeps times as text
    and cuts them; PostgreSQL formats them)."""
    if by == "day":
        return sa.func.to_char(column, "YYYY-MM-DD")
    if by == "month":
        return sa.func.to_char(column, "YYYY-MM")
    # weekday 1 (Monday) … 7 and the hour, as "3-08"
    return sa.func.to_char(column, "ID-HH24")


def analyze(conn: sa.Connection) -> None:
    conn.exec_driver_sql("ANALYZE incidents")
    conn.exec_driver_sql("ANALYZE assignments")
