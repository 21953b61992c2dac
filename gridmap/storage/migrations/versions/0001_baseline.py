"""The baseline: gridmap's schema when migrations began (2026-11-30).

Revision ID: 0001
Revises:
Create Date: 2026-11-30

Made with ``python -m gridmap.storage.migrations`` against an empty database, then tidied; the
PostGIS-only parts (a point column generated from each incident's lon/lat, GiST indexes, the
change counter) written by hand.
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from gridmap.storage.postgis import Geometry

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

TABLES = ["api_tokens", "units", "incident_photos", "incident_events", "assignments", "accounts", "staff",
          "layer_versions", "incidents", "import_runs", "idempotency_keys", "audit_log"]


def upgrade() -> None:
    op.create_table('audit_log',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('at', sa.DateTime(), nullable=False),
        sa.Column('actor', sa.String(length=100), nullable=False),
        sa.Column('action', sa.String(length=100), nullable=False),
        sa.Column('target', sa.String(length=300), nullable=False),
        sa.Column('status', sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint('id')
    )
    op.create_table('idempotency_keys',
        sa.Column('key', sa.String(length=300), nullable=False),
        sa.Column('rows', sa.Text(), nullable=False),
        sa.Column('ids', sa.Text(), nullable=False),
        sa.Column('created_at', sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint('key')
    )
    op.create_table('import_runs',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('created_at', sa.DateTime(), nullable=False),
        sa.Column('filename', sa.String(length=300), nullable=False),
        sa.Column('rows', sa.Integer(), nullable=False),
        sa.Column('created', sa.Integer(), nullable=False),
        sa.Column('existing', sa.Integer(), nullable=False),
        sa.Column('errors', sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint('id')
    )
    op.create_table('incidents',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('external_id', sa.String(length=200), nullable=True),
        sa.Column('category', sa.String(length=40), nullable=False),
        sa.Column('category_raw', sa.String(length=200), nullable=True),
        sa.Column('lon', sa.Float(), nullable=False),
        sa.Column('lat', sa.Float(), nullable=False),
        sa.Column('reported_at', sa.DateTime(), nullable=False),
        sa.Column('status', sa.String(length=20), nullable=False),
        sa.Column('description', sa.Text(), nullable=False),
        sa.Column('source', sa.String(length=100), nullable=False),
        sa.Column('created_at', sa.DateTime(), nullable=False),
        sa.Column('original_x', sa.Float(), nullable=True),
        sa.Column('original_y', sa.Float(), nullable=True),
        sa.Column('original_crs', sa.String(length=100), nullable=True),
        sa.Column('resolution', sa.String(length=20), nullable=True),
        sa.Column('closed_at', sa.DateTime(), nullable=True),
        sa.Column('rating', sa.Integer(), nullable=True),
        sa.Column('duplicate_of', sa.Integer(), nullable=True),
        sa.Column('escalation', sa.Integer(), server_default='0', nullable=False),
        sa.Column('due_at', sa.DateTime(), nullable=True),
        sa.PrimaryKeyConstraint('id'),
        sa.UniqueConstraint('external_id')
    )
    op.create_index('ix_incidents_category_time', 'incidents', ['category', 'reported_at'])
    op.create_table('layer_versions',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('level', sa.String(length=20), nullable=False),
        sa.Column('version', sa.Integer(), nullable=False),
        sa.Column('created_at', sa.DateTime(), nullable=False),
        sa.Column('author', sa.String(length=200), nullable=False),
        sa.Column('note', sa.Text(), nullable=False),
        sa.Column('parent_source', sa.String(length=20), nullable=True),
        sa.Column('status', sa.String(length=20), server_default='committed', nullable=False),
        sa.Column('based_on', sa.Integer(), nullable=True),
        sa.Column('restored_from', sa.Integer(), nullable=True),
        sa.Column('committed_at', sa.DateTime(), nullable=True),
        sa.Column('committed_by', sa.String(length=200), server_default='', nullable=False),
        sa.Column('assigned', sa.Integer(), nullable=True),
        sa.Column('moved', sa.Integer(), nullable=True),
        sa.Column('problems', sa.Text(), server_default='[]', nullable=False),
        sa.Column('options', sa.Text(), server_default='{}', nullable=False),
        sa.Column('report', sa.Text(), nullable=True),
        sa.Column('diff', sa.Text(), nullable=True),
        sa.Column('change', sa.Integer(), nullable=True),
        sa.PrimaryKeyConstraint('id'),
        sa.UniqueConstraint('level', 'version')
    )
    op.create_index('ix_layer_versions_change', 'layer_versions', ['change'])
    op.create_index('ix_layer_versions_level', 'layer_versions', ['level'])
    op.create_table('staff',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('level', sa.String(length=20), nullable=False),
        sa.Column('unit_code', sa.String(length=100), nullable=False),
        sa.Column('role', sa.String(length=20), nullable=False),
        sa.Column('name', sa.String(length=200), nullable=False),
        sa.Column('phone', sa.String(length=50), server_default='', nullable=False),
        sa.Column('active', sa.Boolean(), server_default=sa.true(), nullable=False),
        sa.PrimaryKeyConstraint('id')
    )
    op.create_index('ix_staff_unit', 'staff', ['level', 'unit_code'])
    op.create_table('accounts',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('name', sa.String(length=100), nullable=False),
        sa.Column('role', sa.String(length=20), nullable=False),
        sa.Column('password_hash', sa.String(length=300), server_default='', nullable=False),
        sa.Column('staff_id', sa.Integer(), nullable=True),
        sa.Column('active', sa.Boolean(), server_default=sa.true(), nullable=False),
        sa.Column('created_at', sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(['staff_id'], ['staff.id'], ),
        sa.PrimaryKeyConstraint('id'),
        sa.UniqueConstraint('name')
    )
    op.create_table('assignments',
        sa.Column('version_id', sa.Integer(), nullable=False),
        sa.Column('incident_id', sa.Integer(), nullable=False),
        sa.Column('unit_code', sa.String(length=100), nullable=True),
        # declared, as SQLite keeps them without enforcing them; PostgreSQL would check each of a
        # million rows (35 s of a 1M-row import): the writer checks them in bulk instead
        *([sa.ForeignKeyConstraint(['incident_id'], ['incidents.id'], ),
           sa.ForeignKeyConstraint(['version_id'], ['layer_versions.id'], )]
          if op.get_bind().dialect.name == "sqlite" else []),
        sa.PrimaryKeyConstraint('version_id', 'incident_id'),
        sqlite_with_rowid=False
    )
    op.create_index('ix_assignments_version_unit', 'assignments', ['version_id', 'unit_code'])
    op.create_table('incident_events',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('incident_id', sa.Integer(), nullable=False),
        sa.Column('at', sa.DateTime(), nullable=False),
        sa.Column('actor', sa.String(length=200), nullable=False),
        sa.Column('action', sa.String(length=20), nullable=False),
        sa.Column('from_status', sa.String(length=20), nullable=True),
        sa.Column('to_status', sa.String(length=20), nullable=False),
        sa.Column('note', sa.Text(), server_default='', nullable=False),
        sa.Column('resolution', sa.String(length=20), nullable=True),
        sa.Column('rating', sa.Integer(), nullable=True),
        sa.Column('duplicate_of', sa.Integer(), nullable=True),
        sa.Column('escalation', sa.Integer(), nullable=True),
        sa.ForeignKeyConstraint(['incident_id'], ['incidents.id'], ),
        sa.PrimaryKeyConstraint('id')
    )
    op.create_index('ix_incident_events_incident_id', 'incident_events', ['incident_id'])
    op.create_table('incident_photos',
        sa.Column('incident_id', sa.Integer(), nullable=False),
        sa.Column('content_type', sa.String(length=50), nullable=False),
        sa.Column('data', sa.LargeBinary(), nullable=False),
        sa.ForeignKeyConstraint(['incident_id'], ['incidents.id'], ),
        sa.PrimaryKeyConstraint('incident_id')
    )
    op.create_table('units',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('version_id', sa.Integer(), nullable=False),
        sa.Column('code', sa.String(length=100), nullable=False),
        sa.Column('name', sa.String(length=200), nullable=False),
        sa.Column('parent_code', sa.String(length=100), nullable=True),
        sa.Column('area_m2', sa.Float(), nullable=False),
        sa.Column('properties', sa.Text(), nullable=False),
        sa.Column('geometry', Geometry(), nullable=False),
        sa.ForeignKeyConstraint(['version_id'], ['layer_versions.id'], ),
        sa.PrimaryKeyConstraint('id'),
        sa.UniqueConstraint('version_id', 'code')
    )
    op.create_table('api_tokens',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('account_id', sa.Integer(), nullable=False),
        sa.Column('token_hash', sa.String(length=64), nullable=False),
        sa.Column('label', sa.String(length=200), server_default='', nullable=False),
        sa.Column('created_at', sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(['account_id'], ['accounts.id'], ),
        sa.PrimaryKeyConstraint('id'),
        sa.UniqueConstraint('token_hash')
    )
    if op.get_bind().dialect.name == "postgresql":
        _postgis()


def _postgis() -> None:
    op.execute("ALTER TABLE incidents ADD COLUMN geom geometry(Point, 4326) "
               "GENERATED ALWAYS AS (ST_SetSRID(ST_MakePoint(lon, lat), 4326)) STORED")
    op.execute("CREATE INDEX ix_incidents_geom ON incidents USING gist (geom)")
    op.execute("CREATE INDEX ix_units_geometry ON units USING gist (geometry)")
    # moved on by every write transaction: how other processes' caches see a commit
    op.execute("CREATE TABLE store_changes (id INTEGER PRIMARY KEY, n BIGINT NOT NULL)")
    op.execute("INSERT INTO store_changes VALUES (1, 0)")


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP TABLE store_changes")
    for table in TABLES:
        op.drop_table(table)
