"""Alembic's environment for gridmap: migrations run on the connection :func:`upgrade` hands over
(inside the transaction that holds the store's write lock), against gridmap's own metadata."""
from alembic import context

from gridmap.storage.sql import metadata

connection = context.config.attributes["connection"]
context.configure(connection=connection, target_metadata=metadata,
                  render_as_batch=connection.dialect.name == "sqlite")     # SQLite's ALTER TABLE is narrow
with context.begin_transaction():
    context.run_migrations()
