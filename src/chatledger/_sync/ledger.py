# This file is generated from ../_async/ledger.py by tools/generate_sync.py: do not edit it.
# Edit the asynchronous source and run `make generate`.
"""The store: :class:`Ledger` and :class:`UserScope`.

Its resources are built in ``_store.py`` (scoped ones) and here (ledger-only ones); the
operations they call live in ``chatledger._ops`` and run on ``chatledger._run``, shared by both
surfaces.
"""

from __future__ import annotations

import dataclasses
import uuid

from sqlalchemy.engine import URL

from .. import _validate as check
from .._run.compat_sync import AnyEngine
from .._run.open_sync import open_database
from .._run.replicas import litefs_for
from .._run.retry import RetryPolicy
from .._validate import Id, Limits
from ..config import Config
from ._api_keys import ApiKeys
from ._audit import AuditLog
from ._feedback import ProductFeedbackForms
from ._knowledge import Knowledge
from ._replicas import _Replicas
from ._store import _Core, _Store
from ._users import Users
from ._visitors import Visitors

__all__ = ["Ledger", "UserScope"]


class UserScope(_Store):
    """A view of a ledger bound to one acting user: every conversation and message operation
    sees only that user's data. Another user's conversation is "not found", exactly as if it
    did not exist. Made by :meth:`Ledger.as_user`."""

    def __init__(self, core: _Core, user_id: uuid.UUID) -> None:
        super().__init__(core, user_id)
        self.user_id = user_id

    def __repr__(self) -> str:
        return f"<{type(self).__name__} user_id={self.user_id}>"


class Ledger(_Store):
    """chatledger's store: users, conversations and messages in one database.

    Open it from a database URL, from an existing SQLAlchemy engine, or (no argument) from the
    environment and configuration file (see :class:`~chatledger.config.Config`); with nothing
    configured, an SQLite file in the user's data directory. Creating the object does no I/O:
    the database is opened, and an empty one initialised, by :meth:`open`, by entering the
    context manager, or by the first operation.
    """

    def __init__(
        self,
        url: str | URL | AnyEngine | None = None,
        *,
        config: Config | None = None,
        config_file: str | None = None,
        auto_upgrade: bool | None = None,
        retry: RetryPolicy | None = None,
        limits: Limits | None = None,
    ) -> None:
        engine = url if isinstance(url, AnyEngine) else None
        if config is None:
            source = engine.url if engine is not None else url
            config = Config.load(source, config_file=config_file)  # type: ignore[arg-type]
        if auto_upgrade is not None:
            config = dataclasses.replace(config, auto_upgrade=auto_upgrade)
        db = open_database(config, engine)
        litefs = litefs_for(config.url.database) if db.backend.name == "sqlite" else None
        replicas = _Replicas(config, db.backend, litefs) if config.replicas or litefs else None
        core = _Core(db, config, retry or RetryPolicy(), limits or Limits(), replicas)
        super().__init__(core, None)
        self.users = Users(self)
        self.product_feedback = ProductFeedbackForms(self)
        self.visitors = Visitors(self)
        self.audit = AuditLog(self)
        self.knowledge = Knowledge(self)
        self.api_keys = ApiKeys(self)

    @property
    def config(self) -> Config:
        """The configuration in effect."""
        return self._core.config

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self._core.config.redacted_url()}>"

    def as_user(self, user_id: Id) -> UserScope:
        """A view that acts for ``user_id``: only that user's conversations and messages
        exist for it. Shares this ledger's connections and transactions. The anonymous
        owner (:data:`~chatledger.ANONYMOUS_USER_ID`) cannot be acted as: ValidationError."""
        return UserScope(self._core, check.acting_user("user_id", user_id))

    def open(self) -> None:
        """Connect and make sure the schema is current (initialising an empty database).
        Called by the first operation if not before."""
        self._core.open()

    def close(self) -> None:
        """Close every pooled connection. The store cannot be used afterwards."""
        self._core.closed = True
        self._core.opened = False
        self._core.stop_wakeups()
        self._core.db.dispose()
        if self._core.replicas is not None:
            self._core.replicas.dispose()

    def __enter__(self) -> Ledger:
        self.open()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
