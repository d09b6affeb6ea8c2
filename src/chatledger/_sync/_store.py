# This file is generated from ../_async/_store.py by tools/generate_sync.py: do not edit it.
# Edit the asynchronous source and run `make generate`.
"""What a ledger and its user scopes share: the core (database, configuration, retries,
the current transaction) and the store base class with ``transaction()``.
"""

from __future__ import annotations

import contextlib
import contextvars
import functools
import logging
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

from .. import migrate
from .._ids import Draws, Replaying
from .._ops._once import NOT_WRITTEN, Settle
from .._replication import later
from .._run.compat_sync import Awaitable, Lock, sleep
from .._run.database_sync import Database, Transaction
from .._run.replicas import ASKED, request_tokens
from .._run.retry import OpenWait, RetryPolicy
from .._run.wakeups import Wakeups
from .._validate import Limits
from ..config import Config
from ..errors import ChatledgerError, ConfigurationError, OutcomeUnknownError, TransientError
from ._citations import Citations
from ._conversations import Conversations
from ._feedback import MessageFeedback
from ._messages import Messages
from ._replicas import _position, _Replicas
from ._search import Search
from ._streams import Streams
from ._surveys import Surveys
from ._tokens import Tokens
from ._tools import Tools
from ._trees import Trees
from ._usage import Usage

__all__ = ["_Core", "_Store", "read_once", "run_op"]

logger = logging.getLogger(__name__)

S = TypeVar("S", bound="_Store")
T = TypeVar("T")


class _Core:
    """State shared by a ledger and its user scopes."""

    def __init__(
        self,
        db: Database,
        config: Config,
        retry: RetryPolicy,
        limits: Limits,
        replicas: _Replicas | None = None,
    ) -> None:
        self.db = db
        #: Read replicas or a LiteFS node (``None``: every operation runs on ``db``).
        self.replicas = replicas
        self.config = config
        self.retry = retry
        self.limits = limits
        self.current: contextvars.ContextVar[Transaction | None] = contextvars.ContextVar(
            f"chatledger_transaction_{id(self):x}", default=None
        )
        self.opened = False
        self.closed = False
        self.open_lock = Lock()
        self._wakeups: Wakeups | None = None

    def wakeups(self) -> Wakeups:
        """The hub that wakes this store's stream followers (made on first use; on
        PostgreSQL it listens for other processes' writes, see ``_run/wakeups.py``)."""
        if self._wakeups is None:
            self._wakeups = Wakeups(self.db.sync_engine, self.db.backend)
        return self._wakeups

    def woke(self, message_id: uuid.UUID) -> None:
        """Wake this process's followers of ``message_id`` after a write to its stream
        (while the hub listens, the write's own notification wakes them)."""
        hub = self._wakeups
        if hub is not None and not hub.listening:
            hub.signal(message_id)

    def stop_wakeups(self) -> None:
        """Stop listening for wake-ups (the store is closing)."""
        if self._wakeups is not None:
            self._wakeups.close()

    def open(self) -> None:
        if self.opened:
            return
        if self.closed:
            raise ConfigurationError("the store is closed")
        with self.open_lock:
            if not self.opened:
                self._first_open()
                self.opened = True

    def _first_open(self) -> None:
        """Set the schema up, waiting for an unreachable database as long as the
        configuration says (``open_timeout``, ``open_retries``, ``open_retry_delay``)."""
        config = self.config
        wait = OpenWait(config.open_timeout, config.open_retries, config.open_retry_delay)
        started = time.monotonic()
        failures = 0
        while True:
            try:
                replicas = self.replicas
                self.retrying(
                    functools.partial(
                        self.db.run_raw,
                        migrate.ensure_schema,
                        auto_upgrade=config.auto_upgrade,
                        before_writing=None if replicas is None else replicas.check_writable,
                    )
                )
                return
            except TransientError as exc:
                failures += 1
                delay = wait.delay(failures, time.monotonic() - started)
                if delay is None:
                    raise
                logger.warning(
                    "%s is not reachable yet (%s): trying again in %.2f s",
                    config.redacted_url(),
                    exc,
                    delay,
                )
                sleep(delay)

    def retrying(
        self,
        attempt: Callable[[], Awaitable[T]],
        *,
        draws: Draws | None = None,
        settle: Settle[T] | None = None,
        single: bool = False,
    ) -> T:
        """``attempt()``, re-run after transient failures per the policy.

        ``draws`` (a write): the values its operation draws, the same on every attempt. When
        an attempt's outcome is unknown (the connection was lost after the operation returned
        and COMMIT was sent, or during a ``single`` autocommit statement), ``settle`` first
        looks whether it committed and returns its result if so; without ``settle``, or when
        the database cannot be reached to look before the retries run out,
        :class:`OutcomeUnknownError` is raised instead of a plain failure."""
        failures = 0
        unknown: TransientError | None = None  # an attempt that may have committed, unsettled
        doubted = False  # some attempt's outcome was unknown at some point
        while True:
            try:
                if unknown is not None and settle is not None and draws is not None:
                    found = self.db.read(settle.find, draws.values, *settle.args)
                    unknown = None
                    if found is not NOT_WRITTEN:
                        logger.info("an earlier attempt of this %s committed", settle.kind)
                        return found
                if draws is not None:
                    draws.attempt()
                return attempt()
            except TransientError as exc:
                if draws is not None and _may_have_committed(exc, draws, single):
                    unknown = exc
                    doubted = True
                failures += 1
                delay = self.retry.delay(failures)
                if delay is None:
                    # A settle that found nothing may have looked before a late COMMIT landed
                    # (the server was still finishing it): once in doubt, the outcome stays
                    # unknown unless an attempt is seen to commit.
                    if unknown is not None or doubted:
                        raise _unknown(settle, draws) from exc
                    raise
                logger.info("retrying after a transient failure (%d): %s", failures, exc)
                sleep(delay)
            except ChatledgerError as exc:
                # A late commit of an earlier attempt can make this one fail (the same ids
                # are taken, the balance was spent): that attempt's result is the answer.
                if not doubted or draws is None:
                    raise
                if settle is None:
                    raise _unknown(settle, draws) from exc
                found = self.db.read(settle.find, draws.values, *settle.args)
                if found is NOT_WRITTEN:
                    raise
                return found


def _may_have_committed(exc: TransientError, draws: Draws, single: bool) -> bool:
    """Whether the failed attempt of a write may have committed: the connection was lost
    (``exc.outcome_unknown``) after its operation returned (COMMIT was sent), or while a
    ``single`` operation ran in autocommit mode (each statement commits itself). Lost before
    or inside the operation of a transaction, it rolled back: the server ends it with the
    session."""
    return exc.outcome_unknown and (draws.returned or (single and draws.started))


def _unknown(settle: Settle[Any] | None, draws: Draws | None) -> OutcomeUnknownError:
    if settle is None or draws is None:
        return OutcomeUnknownError("write")
    return OutcomeUnknownError(settle.kind, settle.key(draws.values))


class _Store:
    """What a ledger and a user scope share: running operations, and transactions."""

    def __init__(self, core: _Core, owner: uuid.UUID | None) -> None:
        self._core = core
        self._owner = owner
        self.conversations = Conversations(self)
        self.messages = Messages(self)
        self.trees = Trees(self)
        self.streams = Streams(self)
        self.tools = Tools(self)
        self.feedback = MessageFeedback(self)
        self.citations = Citations(self)
        self.usage = Usage(self)
        self.surveys = Surveys(self)
        self.tokens = Tokens(self)
        self.search = Search(self)

    @property
    def limits(self) -> Limits:
        """The input limits in force."""
        return self._core.limits

    def _call(
        self,
        op: Callable[..., T],
        *args: Any,
        write: bool = False,
        single: bool = False,
        settle: Settle[Any] | None = None,
        **kwargs: Any,
    ) -> T:
        """Run ``op`` in the caller's transaction, or in one of its own with retries.
        ``write``: ``op`` writes; ``single``: with one statement at most (autocommit where
        that saves round trips, see ``Database.run_single``); ``settle``: how a retry learns
        whether an attempt whose outcome is unknown committed (see ``_ops/_once.py``)."""
        core = self._core
        tx = core.current.get()
        if tx is not None:
            return tx.call(op, *args, **kwargs)
        if not core.opened:
            core.open()
        db = core.db
        replicas = core.replicas
        if not write:
            primary = functools.partial(
                core.retrying, functools.partial(db.read, op, *args, **kwargs)
            )
            if replicas is not None:
                routed: T = replicas.read(primary, self._owner, op, args, kwargs)
                return routed
            result: T = primary()
            return result
        if replicas is not None:
            replicas.check_writable()
        draws = Draws()
        run = db.run_single if single else db.run
        written: T = core.retrying(
            functools.partial(run, Replaying(op, draws), *args, **kwargs),
            draws=draws,
            settle=settle,
            single=single,
        )
        if replicas is not None:
            replicas.wrote(db, self._owner)
        return written

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
        replicas = core.replicas
        if replicas is not None:
            replicas.check_writable()
        with core.db.transaction() as tx:
            token = core.current.set(tx)
            try:
                yield self
            finally:
                core.current.reset(token)
        if replicas is not None:
            replicas.wrote(core.db, self._owner)

    def consistency_token(self) -> str | None:
        """A token for everything this store has committed (a ledger: all its writes; a user
        scope: that user's), to hand to another ledger's :meth:`consistent_with` (or an HTTP
        client's ``Chatledger-Consistency`` header): reads there then see these writes, on a
        replica that has replayed them or on the primary. ``None`` where the database has no
        replication position (SQLite off LiteFS). See docs/scale-out.md "Read your writes"."""
        core = self._core
        if not core.opened:
            core.open()
        replicas = core.replicas
        if replicas is not None:
            known = replicas.remembered.needed(self._owner)
            if known is not None:
                return known
            return replicas.position(core.db)
        position: str | None = core.retrying(
            functools.partial(core.db.read, _position, core.db.backend)
        )
        return position

    @contextlib.contextmanager
    def consistent_with(self: S, token: str | None) -> Iterator[S]:
        """Inside the block, reads see at least the writes ``token`` stands for (from
        :meth:`consistency_token`, possibly of another ledger or process): a replica serves
        them only once it has replayed that position, waiting up to ``replica_wait``, else
        the primary does. ``None`` changes nothing. Raises :class:`ValidationError` for a
        string that is not a token."""
        outer = ASKED.get()
        asked = token
        if outer is not None and outer.asked is not None and token is not None:
            asked = later(outer.asked, token)
        elif token is None and outer is not None:
            asked = outer.asked
        tokens = request_tokens(asked)
        reset = ASKED.set(tokens)
        try:
            yield self
        finally:
            ASKED.reset(reset)
            if outer is not None and tokens.wrote is not None:
                outer.wrote = later(outer.wrote, tokens.wrote)

    def run_in_transaction(self: S, fn: Callable[[S], Awaitable[T]]) -> T:
        """Call ``fn(store)`` inside :meth:`transaction`, re-running the whole of it after a
        transient failure (deadlock, serialization failure, dropped connection, busy SQLite),
        with backoff. ``fn`` must be safe to run again."""
        if self._core.current.get() is not None:
            # Inside an outer transaction: only the outer one can be re-run.
            with self.transaction() as store:
                return fn(store)
        draws = Draws()
        result: T = self._core.retrying(functools.partial(self._once, fn, draws), draws=draws)
        return result

    def _once(self: S, fn: Callable[[S], Awaitable[T]], draws: Draws) -> T:
        draws.started = True
        with self.transaction() as store:
            result = fn(store)
            draws.returned = True  # the block's COMMIT follows
            return result


def run_op(
    store: _Store, op: Callable[..., T], *args: Any, write: bool = False, **kwargs: Any
) -> T:
    """Run the operation ``op`` on ``store`` as its resources do: in the caller's transaction,
    or in one of its own with retries (``write``: ``op`` writes). The entry for chatledger's
    own code outside the resources (HTTP routes, integrations, transfer)."""
    result: T = store._call(op, *args, write=write, **kwargs)
    return result


def read_once(store: _Store, op: Callable[..., T], *args: Any) -> T:
    """Run the read ``op`` once, in a transaction of its own outside the caller's, without
    retries: for an operation whose effects outside the database must not repeat (an export
    writing its file as it reads)."""
    store._core.open()
    result: T = store._core.db.read(op, *args)
    return result
