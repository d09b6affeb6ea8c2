# This file is generated from ../_async/ledger.py by tools/generate_sync.py: do not edit it.
# Edit the asynchronous source and run `make generate`.
"""The store: :class:`AsyncLedger`, its resources, and user scopes.

This file is the single source of both surfaces: ``../_sync/ledger.py`` is generated from it
by ``tools/generate_sync.py`` (``make generate``), and CI fails when the two drift. The
operations themselves live in ``../_ops/``, shared by both.
"""

from __future__ import annotations

import builtins
import contextlib
import contextvars
import dataclasses
import logging
import uuid
from collections.abc import Callable, Iterator
from decimal import Decimal
from typing import Any, TypeVar

from sqlalchemy.engine import URL

from .. import _validate as check
from .. import migrate
from .._ops import conversations as _conversations
from .._ops import messages as _messages
from .._ops import users as _users
from .._ops._common import UNSET, Unset, given
from .._retry import RetryPolicy
from .._schema import ROLES
from .._validate import Limits
from ..config import Config
from ..errors import ConfigurationError, NotFoundError, TransientError, ValidationError
from ..records import Conversation, ConversationStatus, Message, Order, Page, Role, User
from ._compat import AnyEngine, Awaitable, Lock, sleep
from ._database import Database, Transaction
from ._open import open_database

__all__ = ["Conversations", "Ledger", "Messages", "UserScope", "Users"]

logger = logging.getLogger(__name__)

S = TypeVar("S", bound="_Store")
T = TypeVar("T")
Id = uuid.UUID | str
Statuses = ConversationStatus | builtins.list[ConversationStatus] | None


def _order(value: object) -> Order:
    if value not in ("asc", "desc"):
        raise ValidationError("order", f"{value!r} is not one of: asc, desc")
    return value


class _Core:
    """State shared by a ledger and its user scopes."""

    def __init__(self, db: Database, config: Config, retry: RetryPolicy, limits: Limits) -> None:
        self.db = db
        self.config = config
        self.retry = retry
        self.limits = limits
        self.current: contextvars.ContextVar[Transaction | None] = contextvars.ContextVar(
            f"chatledger_transaction_{id(self):x}", default=None
        )
        self.opened = False
        self.closed = False
        self.open_lock = Lock()

    def open(self) -> None:
        if self.opened:
            return
        if self.closed:
            raise ConfigurationError("the store is closed")
        with self.open_lock:
            if not self.opened:
                self.retrying(
                    self.db.run_raw, migrate.ensure_schema, auto_upgrade=self.config.auto_upgrade
                )
                self.opened = True

    def retrying(self, fn: Callable[..., Awaitable[T]], *args: Any, **kwargs: Any) -> T:
        """``await fn(*args, **kwargs)``, re-run after transient failures per the policy."""
        failures = 0
        while True:
            try:
                return fn(*args, **kwargs)
            except TransientError as exc:
                failures += 1
                delay = self.retry.delay(failures)
                if delay is None:
                    raise
                logger.info("retrying after a transient failure (%d): %s", failures, exc)
                sleep(delay)


class _Store:
    """What a ledger and a user scope share: running operations, and transactions."""

    def __init__(self, core: _Core, owner: uuid.UUID | None) -> None:
        self._core = core
        self._owner = owner
        self.conversations = Conversations(self)
        self.messages = Messages(self)

    @property
    def limits(self) -> Limits:
        """The input limits in force."""
        return self._core.limits

    def _call(self, op: Callable[..., T], *args: Any, write: bool = False, **kwargs: Any) -> T:
        """Run ``op`` in the caller's transaction, or in one of its own with retries."""
        core = self._core
        tx = core.current.get()
        if tx is not None:
            return tx.call(op, *args, **kwargs)
        if not core.opened:
            core.open()
        result: T = core.retrying(core.db.run if write else core.db.read, op, *args, **kwargs)
        return result

    @contextlib.contextmanager
    def transaction(self: S) -> Iterator[S]:
        """Group operations into one atomic unit: they commit together when the block ends,
        and an exception inside rolls all of them back. Nested blocks are savepoints.

        The block is not retried (it cannot be re-run); use :meth:`run_in_transaction` for
        that. Do not share one transaction between threads or tasks.
        """
        core = self._core
        tx = core.current.get()
        if tx is not None:
            with tx.savepoint():
                yield self
            return
        if not core.opened:
            core.open()
        with core.db.transaction() as tx:
            token = core.current.set(tx)
            try:
                yield self
            finally:
                core.current.reset(token)

    def run_in_transaction(self: S, fn: Callable[[S], Awaitable[T]]) -> T:
        """Call ``fn(store)`` inside :meth:`transaction`, re-running the whole of it after a
        transient failure (deadlock, serialization failure, dropped connection, busy SQLite),
        with backoff. ``fn`` must be safe to run again."""
        if self._core.current.get() is not None:
            # Inside an outer transaction: only the outer one can be re-run.
            with self.transaction() as store:
                return fn(store)
        result: T = self._core.retrying(self._once, fn)
        return result

    def _once(self: S, fn: Callable[[S], Awaitable[T]]) -> T:
        with self.transaction() as store:
            return fn(store)


class Users:
    """The users of a ledger."""

    def __init__(self, store: _Store) -> None:
        self._store = store

    def create(
        self,
        *,
        external_id: str | None = None,
        email: str | None = None,
        username: str | None = None,
        display_name: str | None = None,
        role: str = "user",
        metadata: dict[str, Any] | None = None,
    ) -> User:
        """Create a user. A taken external_id, email or username raises ConflictError; the
        email is stored normalised (trimmed, lower-cased)."""
        fields = _users.prepare(
            self._store.limits,
            {
                "external_id": external_id,
                "email": email,
                "username": username,
                "display_name": display_name,
                "role": role,
                "metadata": metadata,
            },
        )
        return self._store._call(_users.create, fields, write=True)

    def get(self, user_id: Id) -> User:
        """The user with this id."""
        key = check.identifier("user_id", user_id)
        return self._store._call(_users.get_by, "id", key)

    def get_by_external_id(self, external_id: str) -> User:
        """The user with this id in the application's auth system."""
        return self._store._call(_users.get_by, "external_id", external_id)

    def get_by_email(self, email: str) -> User:
        """The user with this email address (compared normalised)."""
        return self._store._call(_users.get_by, "email", check.email("email", email, 320))

    def get_by_username(self, username: str) -> User:
        """The user with this username."""
        return self._store._call(_users.get_by, "username", username)

    def get_or_create(
        self,
        external_id: str,
        *,
        email: str | None = None,
        username: str | None = None,
        display_name: str | None = None,
        role: str = "user",
        metadata: dict[str, Any] | None = None,
    ) -> User:
        """The user with ``external_id``; created with the other fields if there is none.
        Concurrent calls with one external_id return the same user."""
        fields = _users.prepare(
            self._store.limits,
            {
                "external_id": external_id,
                "email": email,
                "username": username,
                "display_name": display_name,
                "role": role,
                "metadata": metadata,
            },
        )
        key = fields.pop("external_id")
        if key is None:
            raise ValidationError("external_id", "is required")
        return self._store._call(_users.get_or_create, key, fields, write=True)

    def list(
        self,
        *,
        limit: int = 50,
        after: str | None = None,
        before: str | None = None,
        order: Order = "asc",
    ) -> Page[User]:
        """A page of users in creation order (``order="desc"``: newest first)."""
        if after is not None and before is not None:
            raise ValidationError("before", "give after or before, not both")
        return self._store._call(
            _users.page,
            order=_order(order),
            after=_users.decode_cursor("after", after),
            before=_users.decode_cursor("before", before),
            limit=check.page_size("limit", limit, self._store.limits),
        )

    def count(self) -> int:
        """How many users there are."""
        return self._store._call(_users.count)

    def update(
        self,
        user_id: Id,
        *,
        external_id: str | Unset | None = UNSET,
        email: str | Unset | None = UNSET,
        username: str | Unset | None = UNSET,
        display_name: str | Unset | None = UNSET,
        role: str | Unset = UNSET,
        metadata: dict[str, Any] | Unset | None = UNSET,
    ) -> User:
        """Change the given fields (``None`` clears one); returns the updated user."""
        key = check.identifier("user_id", user_id)
        changes = _users.prepare(
            self._store.limits,
            given(
                external_id=external_id,
                email=email,
                username=username,
                display_name=display_name,
                role=role,
                metadata=metadata,
            ),
        )
        return self._store._call(_users.update_fields, key, changes, write=True)

    def delete(self, user_id: Id) -> None:
        """Delete the user and everything the user owns (conversations, messages, ...)."""
        key = check.identifier("user_id", user_id)
        self._store._call(_users.delete_one, key, write=True)


class Conversations:
    """The conversations of a ledger, or of one user in a user scope."""

    def __init__(self, store: _Store) -> None:
        self._store = store

    def _owner(self, owner_id: Id | None) -> uuid.UUID:
        bound = self._store._owner
        if owner_id is None:
            if bound is None:
                raise ValidationError("owner_id", "is required outside a user scope")
            return bound
        key = check.identifier("owner_id", owner_id)
        if bound is not None and key != bound:
            raise NotFoundError("user", key)
        return key

    def create(
        self,
        owner_id: Id | None = None,
        *,
        title: str | None = None,
        intent: str | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> Conversation:
        """Start a conversation of ``owner_id`` (in a user scope: of that user)."""
        owner = self._owner(owner_id)
        fields = _conversations.prepare(
            self._store.limits, {"title": title, "intent": intent, "metadata": metadata}
        )
        return self._store._call(_conversations.create, owner, fields, write=True)

    def get(self, conversation_id: Id) -> Conversation:
        """The conversation with this id, whatever its status."""
        key = check.identifier("conversation_id", conversation_id)
        return self._store._call(_conversations.get, self._store._owner, key)

    def update(
        self,
        conversation_id: Id,
        *,
        title: str | Unset | None = UNSET,
        intent: str | Unset | None = UNSET,
        metadata: dict[str, Any] | Unset | None = UNSET,
    ) -> Conversation:
        """Change the title, intent and/or metadata (``None`` clears one)."""
        key = check.identifier("conversation_id", conversation_id)
        changes = _conversations.prepare(
            self._store.limits, given(title=title, intent=intent, metadata=metadata)
        )
        return self._store._call(
            _conversations.update_fields, self._store._owner, key, changes, write=True
        )

    def _transition(self, conversation_id: Id, action: str) -> Conversation:
        key = check.identifier("conversation_id", conversation_id)
        return self._store._call(
            _conversations.transition, self._store._owner, key, action, write=True
        )

    def archive(self, conversation_id: Id) -> Conversation:
        """Archive an active or closed conversation (it stays listed under its status)."""
        return self._transition(conversation_id, "archive")

    def unarchive(self, conversation_id: Id) -> Conversation:
        """Make an archived conversation active again."""
        return self._transition(conversation_id, "unarchive")

    def close(self, conversation_id: Id) -> Conversation:
        """Close a conversation: no more messages can be appended."""
        return self._transition(conversation_id, "close")

    def restore(self, conversation_id: Id) -> Conversation:
        """Bring a soft-deleted conversation back as active."""
        return self._transition(conversation_id, "restore")

    def delete(self, conversation_id: Id, *, hard: bool = False) -> None:
        """Soft-delete (status ``deleted``, hidden from default listings, restorable), or with
        ``hard=True`` delete the conversation and its messages for good."""
        if not hard:
            self._transition(conversation_id, "delete")
            return
        key = check.identifier("conversation_id", conversation_id)
        self._store._call(_conversations.delete_hard, self._store._owner, key, write=True)

    def list(
        self,
        owner_id: Id | None = None,
        *,
        status: Statuses = None,
        limit: int = 20,
        after: str | None = None,
        before: str | None = None,
        order: Order = "desc",
    ) -> Page[Conversation]:
        """A page of the owner's conversations by last activity, newest first by default.
        Without ``status``, every conversation but the soft-deleted ones."""
        if after is not None and before is not None:
            raise ValidationError("before", "give after or before, not both")
        return self._store._call(
            _conversations.page,
            self._owner(owner_id),
            status=_conversations.statuses(status),
            order=_order(order),
            after=_conversations.decode_cursor("after", after),
            before=_conversations.decode_cursor("before", before),
            limit=check.page_size("limit", limit, self._store.limits),
        )

    def count(self, owner_id: Id | None = None, *, status: Statuses = None) -> int:
        """How many conversations the owner has (same status filter as :meth:`list`)."""
        return self._store._call(
            _conversations.count, self._owner(owner_id), _conversations.statuses(status)
        )


class Messages:
    """The messages of a ledger's conversations (in a user scope: of that user's)."""

    def __init__(self, store: _Store) -> None:
        self._store = store

    def append(
        self,
        conversation_id: Id,
        role: Role,
        content: str,
        *,
        intent: str | None = None,
        metadata: dict[str, Any] | None = None,
        model: str | None = None,
        input_tokens: int | None = None,
        output_tokens: int | None = None,
        cost: Decimal | int | str | float | None = None,
        latency_ms: int | None = None,
        request_id: str | None = None,
        idempotency_key: str | None = None,
    ) -> Message:
        """Append a message; it gets the conversation's next ``seq``, and the conversation's
        ``message_count`` and ``last_message_at`` move in the same transaction.

        With an ``idempotency_key`` already used in this conversation, nothing is written and
        the message first stored with it is returned: retries are safe.
        """
        key = check.identifier("conversation_id", conversation_id)
        new = _messages.prepare(
            self._store.limits,
            role=role,
            content=content,
            intent=intent,
            metadata=metadata,
            model=model,
            input_tokens=input_tokens,
            output_tokens=output_tokens,
            cost=cost,
            latency_ms=latency_ms,
            request_id=request_id,
            idempotency_key=idempotency_key,
        )
        return self._store._call(_messages.append, self._store._owner, key, new, write=True)

    def get(self, message_id: Id) -> Message:
        """The message with this id."""
        key = check.identifier("message_id", message_id)
        return self._store._call(_messages.get, self._store._owner, key)

    def last(
        self, conversation_id: Id, n: int = 20, *, role: Role | None = None
    ) -> builtins.list[Message]:
        """The last ``n`` messages (of ``role``), oldest first: the context for the next model
        call. Reads only those rows, however long the conversation."""
        key = check.identifier("conversation_id", conversation_id)
        size = check.page_size("n", n, self._store.limits)
        kind = None if role is None else check.choice("role", role, ROLES)
        return self._store._call(_messages.last, self._store._owner, key, size, kind)

    def list(
        self,
        conversation_id: Id,
        *,
        limit: int = 50,
        after: str | None = None,
        before: str | None = None,
        order: Order = "asc",
        role: Role | None = None,
    ) -> Page[Message]:
        """A page of the conversation's messages in ``seq`` order (oldest first by default)."""
        if after is not None and before is not None:
            raise ValidationError("before", "give after or before, not both")
        key = check.identifier("conversation_id", conversation_id)
        return self._store._call(
            _messages.page,
            self._store._owner,
            key,
            order=_order(order),
            after=_messages.decode_cursor("after", after),
            before=_messages.decode_cursor("before", before),
            limit=check.page_size("limit", limit, self._store.limits),
            role=None if role is None else check.choice("role", role, ROLES),
        )

    def count(self, conversation_id: Id, *, role: Role | None = None) -> int:
        """How many messages the conversation holds (of ``role``)."""
        key = check.identifier("conversation_id", conversation_id)
        kind = None if role is None else check.choice("role", role, ROLES)
        return self._store._call(_messages.count, self._store._owner, key, kind)


class UserScope(_Store):
    """A view of a ledger bound to one acting user: every conversation and message operation
    sees only that user's data. Another user's conversation is "not found", exactly as if it
    did not exist. Made by :meth:`AsyncLedger.as_user`."""

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
        super().__init__(_Core(db, config, retry or RetryPolicy(), limits or Limits()), None)
        self.users = Users(self)

    @property
    def config(self) -> Config:
        """The configuration in effect."""
        return self._core.config

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self._core.config.redacted_url()}>"

    def as_user(self, user_id: Id) -> UserScope:
        """A view that acts for ``user_id``: only that user's conversations and messages
        exist for it. Shares this ledger's connections and transactions."""
        return UserScope(self._core, check.identifier("user_id", user_id))

    def open(self) -> None:
        """Connect and make sure the schema is current (initialising an empty database).
        Called by the first operation if not before."""
        self._core.open()

    def close(self) -> None:
        """Close every pooled connection. The store cannot be used afterwards."""
        self._core.closed = True
        self._core.opened = False
        self._core.db.dispose()

    def __enter__(self) -> Ledger:
        self.open()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
