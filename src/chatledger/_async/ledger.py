"""The store: :class:`AsyncLedger` and :class:`AsyncUserScope`.

Its resources are built in ``_store.py`` (scoped ones) and here (ledger-only ones); the
operations they call live in ``chatledger._ops`` and run on ``chatledger._run``, shared by both
surfaces.
"""

from __future__ import annotations

import dataclasses
import uuid

from sqlalchemy.engine import URL

from .. import _validate as check
from .._run.compat_async import AnyEngine
from .._run.open_async import open_database
from .._run.replicas import litefs_for
from .._run.retry import RetryPolicy
from .._validate import Id, Limits
from ..config import Config
from ._api_keys import AsyncApiKeys
from ._audit import AsyncAuditLog
from ._feedback import AsyncProductFeedbackForms
from ._knowledge import AsyncKnowledge
from ._replicas import _AsyncReplicas
from ._store import _AsyncCore, _AsyncStore
from ._users import AsyncUsers
from ._visitors import AsyncVisitors

__all__ = ["AsyncLedger", "AsyncUserScope"]


class AsyncUserScope(_AsyncStore):
    """A view of a ledger bound to one acting user: every conversation and message operation
    sees only that user's data. Another user's conversation is "not found", exactly as if it
    did not exist. Made by :meth:`AsyncLedger.as_user`."""

    def __init__(self, core: _AsyncCore, user_id: uuid.UUID) -> None:
        super().__init__(core, user_id)
        self.user_id = user_id

    def __repr__(self) -> str:
        return f"<{type(self).__name__} user_id={self.user_id}>"


class AsyncLedger(_AsyncStore):
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
        replicas = _AsyncReplicas(config, db.backend, litefs) if config.replicas or litefs else None
        core = _AsyncCore(db, config, retry or RetryPolicy(), limits or Limits(), replicas)
        super().__init__(core, None)
        self.users = AsyncUsers(self)
        self.product_feedback = AsyncProductFeedbackForms(self)
        self.visitors = AsyncVisitors(self)
        self.audit = AsyncAuditLog(self)
        self.knowledge = AsyncKnowledge(self)
        self.api_keys = AsyncApiKeys(self)

    @property
    def config(self) -> Config:
        """The configuration in effect."""
        return self._core.config

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self._core.config.redacted_url()}>"

    def as_user(self, user_id: Id) -> AsyncUserScope:
        """A view that acts for ``user_id``: only that user's conversations and messages
        exist for it. Shares this ledger's connections and transactions. The anonymous
        owner (:data:`~chatledger.ANONYMOUS_USER_ID`) cannot be acted as: ValidationError."""
        return AsyncUserScope(self._core, check.acting_user("user_id", user_id))

    async def open(self) -> None:
        """Connect and make sure the schema is current (initialising an empty database).
        Called by the first operation if not before."""
        await self._core.open()

    async def close(self) -> None:
        """Close every pooled connection. The store cannot be used afterwards."""
        self._core.closed = True
        self._core.opened = False
        self._core.stop_wakeups()
        await self._core.db.dispose()
        if self._core.replicas is not None:
            await self._core.replicas.dispose()

    async def __aenter__(self) -> AsyncLedger:
        await self.open()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()
