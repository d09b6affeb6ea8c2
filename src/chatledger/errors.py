"""The exceptions chatledger raises.

Every error chatledger raises derives from :class:`ChatledgerError`. Driver and SQLAlchemy
exceptions never reach the caller untranslated: they are translated at the boundary and chained
(``raise ... from exc``), so ``exc.__cause__`` still holds the original for debugging.

The tree is shallow on purpose::

    ChatledgerError
     ├── NotFoundError            the object does not exist, or is not the acting user's
     ├── ConflictError            a unique value is taken, or the object's state forbids the change
     │    └── InsufficientBalanceError   a token debit larger than the balance
     ├── ValidationError          bad input; names the field and the limit (also a ValueError)
     ├── ConfigurationError       the configuration is incomplete or contradictory
     ├── SchemaOutOfDateError     run ``chatledger db upgrade`` (or open with auto_upgrade=True)
     ├── TransientError           retrying the whole transaction may succeed
     ├── OutcomeUnknownError      a write whose commit may or may not have happened (not retriable)
     ├── NotPrimaryError          a write (or a read that must see a newer position) on a replica
     ├── MissingDependencyError   an optional extra is not installed (also an ImportError)
     ├── AuthenticationError      a password or API key did not verify (one error for every cause)
     └── DatabaseError            any other database failure, translated

Warnings derive from :class:`ChatledgerWarning`; :class:`SQLiteWALResetBugWarning` is issued when
an SQLite database is opened with a library that has the WAL-reset corruption bug.

Only :class:`TransientError` has ``retriable = True``. chatledger retries transient failures
itself (the whole transaction, with exponential backoff and jitter); when it gives up, the last
:class:`TransientError` reaches the caller.

:class:`OutcomeUnknownError` is a sibling of :class:`TransientError`, not a subclass, on purpose:
it is raised when the connection was lost while a write's COMMIT (or its one autocommit statement)
may have reached the server and chatledger could not learn, within its retries, whether it
committed. Code that re-runs every ``TransientError`` would then write twice; this error must be
handled by looking first (``exc.kind``/``exc.key`` name the row to look for). See
docs/reliability.md.
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "AuthenticationError",
    "ChatledgerError",
    "ChatledgerWarning",
    "ConfigurationError",
    "ConflictError",
    "DatabaseError",
    "InsufficientBalanceError",
    "MissingDependencyError",
    "NotFoundError",
    "NotPrimaryError",
    "OutcomeUnknownError",
    "SQLiteWALResetBugWarning",
    "SchemaOutOfDateError",
    "TransientError",
    "ValidationError",
]


class ChatledgerError(Exception):
    """Base class of every error chatledger raises."""

    #: Whether re-running the failed transaction may succeed.
    retriable: bool = False

    def __init__(self, message: str, *, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        #: The server's error code (SQLSTATE, MariaDB error number, SQLite extended code) when the
        #: error came from the database, else ``None``.
        self.code = code

    def __str__(self) -> str:
        return self.message

    def __reduce__(self) -> tuple[Any, ...]:
        # Errors cross process boundaries (multiprocessing, concurrent.futures): rebuild them
        # from their attributes, since the subclasses' __init__ signatures differ from args.
        return (_rebuild, (type(self), self.args, self.__dict__))


def _rebuild(cls: type[ChatledgerError], args: tuple[Any, ...], state: dict[str, Any]) -> Any:
    error = cls.__new__(cls, *args)
    error.args = args
    error.__dict__.update(state)
    return error


class NotFoundError(ChatledgerError):
    """The object does not exist, or it exists but is not visible to the acting user."""

    def __init__(self, kind: str, key: object = None, *, field: str | None = None) -> None:
        found = f"{kind} not found" if key is None else f"{kind} {key} not found"
        super().__init__(found if field is None else f"{field}: {found}")
        self.kind = kind
        self.key = key
        #: The input field that named the missing object, when it was not the call's subject
        #: (``parent_id`` of an append, say).
        self.field = field


class ConflictError(ChatledgerError):
    """A unique value is already taken, or the object's current state forbids the change."""

    def __init__(self, message: str, *, field: str | None = None, code: str | None = None) -> None:
        super().__init__(message, code=code)
        #: The field whose unique value is taken, when that is the conflict.
        self.field = field


class InsufficientBalanceError(ConflictError):
    """A debit larger than the user's token balance; nothing was written."""

    def __init__(self, *, balance: int, requested: int) -> None:
        super().__init__(
            f"insufficient token balance: {requested:,} requested, {balance:,} available",
            field="amount",
        )
        self.balance = balance
        self.requested = requested


class AuthenticationError(ChatledgerError):
    """A password or API key did not verify. Unknown, wrong, revoked and expired credentials
    all raise this same error with the same message, so callers cannot tell them apart."""

    def __init__(self) -> None:
        super().__init__("invalid credentials")


class ValidationError(ChatledgerError, ValueError):
    """Input was rejected before anything was written. Names the field and, where one applies,
    the limit: a number (the bound that was crossed: a length, a size, a maximum or a minimum)
    or a tuple of strings (the values allowed). The HTTP API answers the same ``field`` and
    ``limit`` in its 422 envelope (docs/server.md, "One contract")."""

    def __init__(self, field: str, problem: str, *, limit: object | None = None) -> None:
        super().__init__(f"{field}: {problem}")
        self.field = field
        self.problem = problem
        self.limit = limit


class ConfigurationError(ChatledgerError):
    """The configuration is missing, incomplete or contradictory."""


class SchemaOutOfDateError(ChatledgerError):
    """The database schema is not at the revision this version of chatledger needs."""

    def __init__(self, message: str, *, current: str | None, head: str | None) -> None:
        super().__init__(message)
        self.current = current
        self.head = head


class TransientError(ChatledgerError):
    """A failure that re-running the whole transaction may cure: lock contention, a deadlock, a
    serialization failure, a dropped connection, a server that became read-only during failover.

    ``outcome_unknown`` is true when the connection was lost after a statement may have reached
    the server: a write's transaction may then have committed (chatledger's retries look before
    they write again). A deadlock, a serialization failure or a busy database are known to have
    rolled back (``False``)."""

    retriable = True

    def __init__(
        self, message: str, *, code: str | None = None, outcome_unknown: bool = False
    ) -> None:
        super().__init__(message, code=code)
        self.outcome_unknown = outcome_unknown


class OutcomeUnknownError(ChatledgerError):
    """A write may or may not have committed: the connection was lost after its COMMIT (or its
    single autocommit statement) was sent, and the retries could not reach the database to learn
    which. Do not simply run the write again: look for ``key`` (the id the write gave its
    ``kind`` of row, e.g. ``messages.get(key)``) first, or repeat it with the same idempotency
    key. ``retriable`` is false for that reason."""

    def __init__(self, kind: str, key: object = None, *, code: str | None = None) -> None:
        where = f"{kind} {key}" if key is not None else kind
        super().__init__(
            f"the outcome of this write is unknown: the connection was lost after it may have "
            f"committed, and the database could not be reached to find out; look for {where} "
            "before writing it again",
            code=code,
        )
        #: What the write stores (``"message"``, ``"token entry"``, ...).
        self.kind = kind
        #: The id the write gave its row, when it draws one, else ``None``.
        self.key = key


class NotPrimaryError(ChatledgerError):
    """This node is a read-only replica (an SQLite database on a LiteFS replica node): a write,
    or a read that must see a newer replication position than this node has replayed, has to
    run on the primary. Nothing was written. ``primary`` names the primary node as LiteFS
    reports it (the ``.primary`` file), ``None`` when no primary is known right now. The HTTP
    service answers it with a ``fly-replay`` header so an edge proxy replays the request there.
    """

    def __init__(self, message: str, *, primary: str | None = None) -> None:
        super().__init__(message)
        #: The primary node's host name (LiteFS's ``.primary`` file), when known.
        self.primary = primary


class MissingDependencyError(ChatledgerError, ImportError):
    """An optional dependency is missing; the message names the extra to install."""

    def __init__(self, package: str, extra: str) -> None:
        super().__init__(
            f"{package} is not installed: install it with `pip install 'chatledger[{extra}]'`"
        )
        self.package = package
        self.extra = extra


class DatabaseError(ChatledgerError):
    """A database failure that none of the more specific errors describes."""


class ChatledgerWarning(UserWarning):
    """Base class of the warnings chatledger issues."""


class SQLiteWALResetBugWarning(ChatledgerWarning):
    """The linked SQLite library has the WAL-reset bug, which can corrupt a database in WAL mode
    when a checkpoint races a writer (fixed in SQLite 3.51.3, backported to 3.44.6 and 3.50.7)."""
