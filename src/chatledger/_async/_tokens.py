"""The tokens resource: per-user token balances and their ledger."""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING

from .. import _validate as check
from .._ops import tokens as _tokens
from .._schema import GRANT_KEY_MAX, REASON_MAX
from .._validate import Id
from ..errors import NotFoundError, ValidationError
from ..records import Order, Page, TokenEntry

if TYPE_CHECKING:
    from ._store import _AsyncStore

__all__ = ["AsyncTokens", "acting_user"]


def acting_user(store: _AsyncStore, user_id: Id | None) -> uuid.UUID:
    """The user an operation acts on: ``user_id``, or the scope's user by default. In a user
    scope another user is :class:`NotFoundError` (``"user"``), as if it did not exist."""
    bound = store._owner
    if user_id is None:
        if bound is None:
            raise ValidationError("user_id", "is required outside a user scope")
        return bound
    key = check.identifier("user_id", user_id)
    if bound is not None and key != bound:
        raise NotFoundError("user", key)
    return key


def _grant_key(value: object) -> str | None:
    if value is None:
        return None
    key = check.text("grant_key", value, GRANT_KEY_MAX)
    if not key.strip():
        raise ValidationError("grant_key", "must not be blank")
    return key


class AsyncTokens:
    """Per-user token balances. Every change writes a ledger entry; the balance always equals the
    sum of the entries and never goes negative. In a user scope, that user's only."""

    def __init__(self, store: _AsyncStore) -> None:
        self._store = store

    async def balance(self, user_id: Id | None = None) -> int:
        """The user's token balance (0 before the first credit)."""
        user = acting_user(self._store, user_id)
        return await self._store._call(_tokens.balance, user)

    async def held(self, user_id: Id | None = None) -> int:
        """How many of the user's tokens streaming replies hold (reserved at their begin,
        settled at their finish, released by the sweep): only ``balance - held`` may be
        spent or held again (docs/streaming.md)."""
        user = acting_user(self._store, user_id)
        return await self._store._call(_tokens.held, user)

    async def credit(
        self,
        amount: int,
        *,
        user_id: Id | None = None,
        reason: str,
        grant_key: str | None = None,
        message_id: Id | None = None,
        survey_response_id: Id | None = None,
    ) -> TokenEntry:
        """Add ``amount`` tokens (1 to 2**53) to the user's balance and record why.

        With a ``grant_key`` (compared exactly, up to 200 characters) the credit is a grant
        that happens at most once per user and key: when the user already received it, nothing
        changes and the entry of that first grant is returned. ``message_id`` and
        ``survey_response_id`` must name the user's own message or survey response.
        """
        user = acting_user(self._store, user_id)
        value = check.token_amount("amount", amount)
        why = check.nonblank("reason", reason, REASON_MAX)
        key = _grant_key(grant_key)
        message = None if message_id is None else check.identifier("message_id", message_id)
        response = (
            None
            if survey_response_id is None
            else check.identifier("survey_response_id", survey_response_id)
        )
        return await self._store._call(
            _tokens.credit,
            user,
            value,
            why,
            key,
            message,
            response,
            write=True,
            settle=_tokens.ENTRY,
        )

    async def debit(
        self,
        amount: int,
        *,
        user_id: Id | None = None,
        reason: str,
        message_id: Id | None = None,
    ) -> TokenEntry:
        """Take ``amount`` tokens (1 to 2**53) from the user's balance, if it covers them.

        Atomic under any concurrency: the balance never goes negative and no debit is lost.
        :class:`~chatledger.errors.InsufficientBalanceError` (with ``balance`` and
        ``requested``) when the balance is too small; nothing is written then. Inside
        ``transaction()`` it commits or rolls back with the rest, e.g. with the append of the
        message whose usage it pays for (``message_id``: the user's own message).
        """
        user = acting_user(self._store, user_id)
        value = check.token_amount("amount", amount)
        why = check.nonblank("reason", reason, REASON_MAX)
        message = None if message_id is None else check.identifier("message_id", message_id)
        return await self._store._call(
            _tokens.debit, user, value, why, message, write=True, settle=_tokens.ENTRY
        )

    async def history(
        self,
        *,
        user_id: Id | None = None,
        limit: int = 50,
        after: str | None = None,
        before: str | None = None,
        order: Order = "desc",
    ) -> Page[TokenEntry]:
        """A page of the user's ledger entries by time, newest first by default."""
        keys = check.paging(_tokens.decode_cursor, after, before, limit, self._store.limits)
        user = acting_user(self._store, user_id)
        return await self._store._call(
            _tokens.history,
            user,
            order=check.order(order),
            **keys,
        )

    async def verify(self, user_id: Id | None = None) -> bool:
        """Whether the user's balance equals the sum of the user's ledger entries and what is
        held equals the holds of the user's streaming replies (it always should: a ``False``
        means the tables were changed behind chatledger's back)."""
        user = acting_user(self._store, user_id)
        return await self._store._call(_tokens.verify, user)
