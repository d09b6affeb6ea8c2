"""Alembic environment of chatledger's schema. Migrations run through :mod:`chatledger.migrate`,
which hands this script an open connection (and holds the migration lock)."""

from __future__ import annotations

from functools import partial

from alembic import context

from chatledger._backends import backend_of
from chatledger._schema import Base
from chatledger.migrate import VERSION_TABLE, include_object

connection = context.config.attributes.get("connection")
if connection is None:
    raise RuntimeError(
        "chatledger migrations run through chatledger.migrate or `chatledger db ...`, "
        "which pass the connection to migrate"
    )

context.configure(
    connection=connection,
    target_metadata=Base.metadata,
    version_table=VERSION_TABLE,
    render_as_batch=True,
    compare_type=True,
    include_object=partial(
        include_object, self_foreign_keys=backend_of(connection).self_foreign_keys
    ),
)
with context.begin_transaction():
    context.run_migrations()
