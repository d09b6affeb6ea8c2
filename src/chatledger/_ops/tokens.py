"""Token balances and their ledger.

A user's balance lives in one ``token_balances`` row, created lazily (a missing row is a
balance of 0). Every change is one conditional ``UPDATE`` of that row, whose row lock
serialises the user's changes, followed by a ``token_ledger`` insert in the same transaction:

- a debit is ``SET balance = balance - :n WHERE user_id = :u AND balance >= :n``, so under any
  concurrency the balance never goes negative and no debit is lost; when it matches no row the
  balance is read only to report it in :class:`InsufficientBalanceError`;
- a credit is ``SET balance = balance + :n``; the row is created first if it is missing,
  under the user's row lock and in a savepoint (a racer's insert falls through);
- a credit with a ``grant_key`` locks the balance row first and looks the key up under that
  lock (READ COMMITTED sees a racer's committed grant), so a grant happens at most once per
  user and key; ``UNIQUE (user_id, grant_key)`` backs it up.

The new balance comes back from the ``UPDATE`` itself (``RETURNING`` on PostgreSQL and SQLite,
``LAST_INSERT_ID(expr)`` on MariaDB), and each entry's ``created_at`` is taken while the row
lock is held, so (by one host's clock) a user's entries in ``(created_at, id)`` order chain
their ``balance_after``.
"""

from __future__ import annotations

import uuid
from typing import Any, Final

from sqlalchemy import (
    BigInteger,
    Connection,
    Row,
    bindparam,
    func,
    insert,
    select,
    update,
)
from sqlalchemy.exc import IntegrityError

from .. import _cursors, _ids
from .._backends import backend_of
from .._schema import (
    TOKEN_AMOUNT_MAX,
    conversations,
    message_streams,
    messages,
    survey_responses,
    token_balances,
    token_ledger,
    users,
)
from .._types import UTCDateTime
from ..errors import ConflictError, InsufficientBalanceError, NotFoundError
from ..records import Order, Page, TokenEntry
from . import _once
from ._common import from_row, paginate, record_columns, record_values, utcnow

__all__ = [
    "AMOUNT_MAX",
    "BALANCE_MAX",
    "apply_credit",
    "balance",
    "credit",
    "credit_in",
    "debit",
    "debit_in",
    "decode_cursor",
    "ensure_balance_row",
    "find_grant",
    "held",
    "history",
    "hold_in",
    "lock_balance",
    "release_in",
    "verify",
]

#: The largest amount one credit or debit may move (integers up to here are exact in JSON).
AMOUNT_MAX: Final = TOKEN_AMOUNT_MAX
#: The largest balance a user may hold: the limit of the 64-bit column (SQLite would otherwise
#: turn an overflowing sum into a float).
BALANCE_MAX: Final = 2**63 - 1

_COLUMNS: Final = record_columns(token_ledger, TokenEntry)
_KIND: Final = "token_ledger"
_INSERT: Final = token_ledger.insert()


def _change(returning: bool, debit: bool) -> Any:
    """``UPDATE token_balances`` by ``b_delta`` (a debit subtracts it), guarded by ``b_bound``:
    a debit needs ``balance >= b_bound`` (the amount), a credit ``balance <= b_bound``
    (``BALANCE_MAX`` - amount). Hands the new balance back."""
    b = token_balances.c
    delta = bindparam("b_delta", type_=BigInteger())
    bound = bindparam("b_bound", type_=BigInteger())
    stmt = update(token_balances).where(
        b.user_id == bindparam("b_user"),
        # A debit may use what streaming replies have not reserved (``held``).
        b.balance - b.held >= bound if debit else b.balance <= bound,
    )
    value: Any = b.balance - delta if debit else b.balance + delta
    if not returning:
        # MariaDB has no UPDATE ... RETURNING: LAST_INSERT_ID(expr) hands the new balance back
        # in the statement's OK packet (cursor.lastrowid), without another round trip.
        value = func.last_insert_id(value)
    stmt = stmt.values(balance=value, updated_at=bindparam("b_now", type_=UTCDateTime()))
    return stmt.returning(b.balance) if returning else stmt


_CHANGE: Final = {(r, d): _change(r, d) for r in (True, False) for d in (True, False)}


def _apply(conn: Connection, user_id: uuid.UUID, amount: int, *, debit: bool) -> int | None:
    """Move the balance by ``amount`` atomically; the new balance, or ``None`` when the guard
    (or a missing row) matched nothing."""
    returning = backend_of(conn).update_returning
    params = {
        "b_user": user_id,
        "b_delta": amount,
        "b_bound": amount if debit else BALANCE_MAX - amount,
        "b_now": utcnow(),
    }
    result = conn.execute(_CHANGE[returning, debit], params)
    if returning:
        value = result.scalar()
        return None if value is None else int(value)
    return int(result.lastrowid) if result.rowcount == 1 else None


def _user_exists(conn: Connection, user_id: uuid.UUID) -> bool:
    return conn.execute(select(users.c.id).where(users.c.id == user_id)).first() is not None


def _stored_balance(conn: Connection, user_id: uuid.UUID, *, lock: bool = False) -> int | None:
    query = select(token_balances.c.balance).where(token_balances.c.user_id == user_id)
    if lock:
        query = query.with_for_update()
    value = conn.execute(query).scalar()
    return None if value is None else int(value)


def ensure_balance_row(conn: Connection, user_id: uuid.UUID) -> None:
    """Create the user's balance row (balance 0) unless it exists; ``NotFoundError("user")``
    for an unknown user.

    Takes the user's row lock first (``FOR NO KEY UPDATE`` on PostgreSQL, which foreign-key
    checks do not conflict with), so racing creators queue instead of colliding: on MariaDB a
    duplicate-key error would leave each loser a shared lock, and the losers would deadlock.
    The insert still runs in a savepoint, and a unique conflict falls through.

    On MariaDB, a creator that waited for the user's lock while another transaction changed
    the new balance can still deadlock with it (the ledger insert's foreign-key check wants a
    shared lock on the user). That can only happen while the user's balance row is being
    created, and the deadlock is a TransientError: the transaction is retried."""
    if _stored_balance(conn, user_id) is not None:
        return
    locked = conn.execute(
        select(users.c.id).where(users.c.id == user_id).with_for_update(key_share=True)
    ).first()
    if locked is None:
        raise NotFoundError("user", user_id)
    if _stored_balance(conn, user_id) is not None:
        return
    try:
        with conn.begin_nested():
            conn.execute(
                insert(token_balances).values(
                    user_id=user_id, balance=0, held=0, updated_at=utcnow()
                )
            )
    except IntegrityError as exc:
        if backend_of(conn).violation(exc).kind != "unique":
            raise


def lock_balance(conn: Connection, user_id: uuid.UUID) -> int:
    """Lock the user's balance row (creating it if missing) and return the balance."""
    found = _stored_balance(conn, user_id, lock=True)
    if found is None:
        ensure_balance_row(conn, user_id)
        found = _stored_balance(conn, user_id, lock=True)
    if found is None:  # pragma: no cover - the row was just created under the user's lock
        raise NotFoundError("user", user_id)
    return found


def _entry(
    conn: Connection,
    user_id: uuid.UUID,
    delta: int,
    balance_after: int,
    reason: str,
    *,
    message_id: uuid.UUID | None = None,
    survey_response_id: uuid.UUID | None = None,
    grant_key: str | None = None,
) -> TokenEntry:
    """Write the ledger row of a change just applied (called under the balance row lock)."""
    entry = TokenEntry(
        id=_ids.new_id(),
        user_id=user_id,
        delta=delta,
        balance_after=balance_after,
        reason=reason,
        message_id=message_id,
        survey_response_id=survey_response_id,
        grant_key=grant_key,
        created_at=utcnow(),
    )
    conn.execute(_INSERT, record_values(entry))
    return entry


def _too_much(amount: int, current: int) -> ConflictError:
    return ConflictError(
        f"a credit of {amount:,} would take the balance of {current:,} above {BALANCE_MAX:,}",
        field="amount",
    )


def find_grant(conn: Connection, user_id: uuid.UUID, grant_key: str) -> TokenEntry | None:
    """The user's ledger entry with this grant key, if any."""
    row = conn.execute(
        select(*_COLUMNS).where(
            token_ledger.c.user_id == user_id, token_ledger.c.grant_key == grant_key
        )
    ).first()
    return None if row is None else from_row(TokenEntry, row)


def apply_credit(
    conn: Connection,
    user_id: uuid.UUID,
    amount: int,
    reason: str,
    *,
    grant_key: str | None = None,
    message_id: uuid.UUID | None = None,
    survey_response_id: uuid.UUID | None = None,
) -> TokenEntry:
    """Credit ``amount`` and write its entry, creating the balance row if it is missing. A
    grant's key must have been looked up under the balance row lock (:func:`lock_balance`,
    :func:`find_grant`); :func:`credit_in` does both."""
    after = _apply(conn, user_id, amount, debit=False)
    if after is None:
        ensure_balance_row(conn, user_id)
        after = _apply(conn, user_id, amount, debit=False)
    if after is None:
        raise _too_much(amount, _stored_balance(conn, user_id) or 0)
    return _entry(
        conn,
        user_id,
        amount,
        after,
        reason,
        message_id=message_id,
        survey_response_id=survey_response_id,
        grant_key=grant_key,
    )


def credit_in(
    conn: Connection,
    user_id: uuid.UUID,
    amount: int,
    reason: str,
    *,
    grant_key: str | None = None,
    message_id: uuid.UUID | None = None,
    survey_response_id: uuid.UUID | None = None,
) -> TokenEntry:
    """Credit ``amount`` inside the caller's transaction. With a ``grant_key`` the user
    already used, nothing is written and the entry of that grant is returned.

    Arguments are trusted (validated by the caller); referenced objects are not checked."""
    if grant_key is not None:
        lock_balance(conn, user_id)
        existing = find_grant(conn, user_id, grant_key)
        if existing is not None:
            return existing
    return apply_credit(
        conn,
        user_id,
        amount,
        reason,
        grant_key=grant_key,
        message_id=message_id,
        survey_response_id=survey_response_id,
    )


def debit_in(
    conn: Connection,
    user_id: uuid.UUID,
    amount: int,
    reason: str,
    message_id: uuid.UUID | None = None,
) -> TokenEntry:
    """Debit ``amount`` inside the caller's transaction (for example the one appending the
    assistant message whose usage it pays for): one conditional ``UPDATE`` and the ledger
    insert. :class:`InsufficientBalanceError` when the balance does not cover it, with
    nothing written; :class:`NotFoundError` for an unknown user.

    Arguments are trusted (validated by the caller); ``message_id`` is not checked."""
    after = _apply(conn, user_id, amount, debit=True)
    if after is None:
        raise InsufficientBalanceError(balance=_available(conn, user_id), requested=amount)
    return _entry(conn, user_id, -amount, after, reason, message_id=message_id)


def _available(conn: Connection, user_id: uuid.UUID) -> int:
    """What the user may spend: the balance less the holds (0 without a balance row);
    :class:`NotFoundError` for an unknown user."""
    b = token_balances.c
    row = conn.execute(select(b.balance - b.held).where(b.user_id == user_id)).first()
    if row is None:
        if not _user_exists(conn, user_id):
            raise NotFoundError("user", user_id)
        return 0
    return int(row[0])


_HOLD: Final = (
    update(token_balances)
    .where(
        token_balances.c.user_id == bindparam("b_user"),
        token_balances.c.balance - token_balances.c.held >= bindparam("b_amount"),
    )
    .values(held=token_balances.c.held + bindparam("b_amount"), updated_at=bindparam("b_now"))
)
_RELEASE: Final = (
    update(token_balances)
    .where(token_balances.c.user_id == bindparam("b_user"))
    .values(held=token_balances.c.held - bindparam("b_amount"), updated_at=bindparam("b_now"))
)


def hold_in(conn: Connection, user_id: uuid.UUID, amount: int) -> None:
    """Reserve ``amount`` of the user's balance (a streaming reply's estimate) inside the
    caller's transaction: one conditional ``UPDATE``, so parallel holds and debits can never
    together exceed the balance. :class:`InsufficientBalanceError` when what is not yet held
    does not cover it. A hold moves no tokens: the ledger records only the settled debit."""
    ensure_balance_row(conn, user_id)
    params = {"b_user": user_id, "b_amount": amount, "b_now": utcnow()}
    if conn.execute(_HOLD, params).rowcount != 1:
        raise InsufficientBalanceError(balance=_available(conn, user_id), requested=amount)


def release_in(conn: Connection, user_id: uuid.UUID, amount: int) -> None:
    """Give back a hold taken by :func:`hold_in` (inside the caller's transaction)."""
    conn.execute(_RELEASE, {"b_user": user_id, "b_amount": amount, "b_now": utcnow()})


def held(conn: Connection, user_id: uuid.UUID) -> int:
    """How many of the user's tokens streaming replies hold (0 without a balance row)."""
    value = conn.execute(
        select(token_balances.c.held).where(token_balances.c.user_id == user_id)
    ).scalar()
    if value is None:
        if not _user_exists(conn, user_id):
            raise NotFoundError("user", user_id)
        return 0
    return int(value)


def _require_message(conn: Connection, user_id: uuid.UUID, message_id: uuid.UUID) -> None:
    """The message must exist in a conversation of ``user_id``."""
    m, c = messages.c, conversations.c
    found = conn.execute(
        select(m.id)
        .join(conversations, c.id == m.conversation_id)
        .where(m.id == message_id, c.owner_id == user_id)
    ).first()
    if found is None:
        raise NotFoundError("message", message_id)


def _require_response(conn: Connection, user_id: uuid.UUID, response_id: uuid.UUID) -> None:
    """The survey response must exist and be ``user_id``'s."""
    s = survey_responses.c
    found = conn.execute(select(s.id).where(s.id == response_id, s.user_id == user_id)).first()
    if found is None:
        raise NotFoundError("survey_response", response_id)


#: A retried credit or debit learns whether an earlier attempt committed (see ``_once``).
ENTRY: Final = _once.inserted("token entry", token_ledger, TokenEntry)


def credit(
    conn: Connection,
    user_id: uuid.UUID,
    amount: int,
    reason: str,
    grant_key: str | None,
    message_id: uuid.UUID | None,
    survey_response_id: uuid.UUID | None,
) -> TokenEntry:
    """Credit a user; with a used ``grant_key``, the existing entry and no change."""
    if message_id is not None:
        _require_message(conn, user_id, message_id)
    if survey_response_id is not None:
        _require_response(conn, user_id, survey_response_id)
    return credit_in(
        conn,
        user_id,
        amount,
        reason,
        grant_key=grant_key,
        message_id=message_id,
        survey_response_id=survey_response_id,
    )


def debit(
    conn: Connection,
    user_id: uuid.UUID,
    amount: int,
    reason: str,
    message_id: uuid.UUID | None,
) -> TokenEntry:
    """Debit a user, if the balance covers it."""
    if message_id is not None:
        _require_message(conn, user_id, message_id)
    return debit_in(conn, user_id, amount, reason, message_id)


def balance(conn: Connection, user_id: uuid.UUID) -> int:
    """The user's balance (0 before the first credit)."""
    current = _stored_balance(conn, user_id)
    if current is None:
        if not _user_exists(conn, user_id):
            raise NotFoundError("user", user_id)
        return 0
    return current


def verify(conn: Connection, user_id: uuid.UUID) -> bool:
    """Whether the user's balance equals the sum of the user's ledger entries, and what is
    held equals the sum of the holds of the user's streaming replies."""
    total = conn.execute(
        select(func.coalesce(func.sum(token_ledger.c.delta), 0)).where(
            token_ledger.c.user_id == user_id
        )
    ).scalar_one()
    s = message_streams.c
    holds = conn.execute(
        select(func.coalesce(func.sum(s.hold), 0)).where(
            s.conversation_id.in_(
                select(conversations.c.id).where(conversations.c.owner_id == user_id)
            )
        )
    ).scalar_one()
    return balance(conn, user_id) == int(total) and held(conn, user_id) == int(holds)


#: Reads back the sort key of this listing's cursors: (created_at, id) of a token-ledger entry.
decode_cursor = _cursors.decoder(_KIND, _cursors.TIME, _cursors.ID)


def _to_entry(row: Row[Any]) -> TokenEntry:
    return from_row(TokenEntry, row)


def history(
    conn: Connection,
    user_id: uuid.UUID,
    *,
    order: Order,
    after: list[Any] | None,
    before: list[Any] | None,
    limit: int,
) -> Page[TokenEntry]:
    """A keyset page of the user's ledger entries by ``(created_at, id)``."""
    t = token_ledger.c
    page = paginate(
        conn,
        select(*_COLUMNS).where(t.user_id == user_id),
        [t.created_at, t.id],
        kind=_KIND,
        order=order,
        after=after,
        before=before,
        limit=limit,
        convert=_to_entry,
        cursor_key=lambda entry: (entry.created_at.isoformat(), entry.id.hex),
    )
    if not page.items and not _user_exists(conn, user_id):
        raise NotFoundError("user", user_id)
    return page
