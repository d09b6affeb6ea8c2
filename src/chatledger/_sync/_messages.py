# This file is generated from ../_async/_messages.py by tools/generate_sync.py: do not edit it.
# Edit the asynchronous source and run `make generate`.
"""The messages resource of a ledger or user scope."""

from __future__ import annotations

import builtins
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from .. import _validate as check
from .._ops import feedback as _feedback
from .._ops import messages as _messages
from .._ops import redactions as _redactions
from .._ops import trees as _trees
from .._ops.search import SearchBranch, SearchOrder
from .._schema import ROLES
from .._validate import Id
from ..errors import ValidationError
from ..records import (
    ConversationStatus,
    Message,
    MessageDetail,
    MessageHit,
    Order,
    Page,
    Role,
    SearchPage,
)
from ._trees import _debit

if TYPE_CHECKING:
    from ._store import _Store

__all__ = ["Messages"]


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
        cached_input_tokens: int | None = None,
        reasoning_tokens: int | None = None,
        cost: Decimal | int | str | float | None = None,
        latency_ms: int | None = None,
        request_id: str | None = None,
        idempotency_key: str | None = None,
        charge: int | None = None,
        charge_reason: str = "message",
        parent_id: Id | None = None,
        tool_calls: Sequence[Mapping[str, Any]] | None = None,
        tool_call_id: str | None = None,
        tool_status: str | None = None,
        tool_latency_ms: int | None = None,
    ) -> Message:
        """Append a message; it gets the conversation's next ``seq``, and the conversation's
        ``message_count`` and ``last_message_at`` move in the same transaction.

        The message becomes the conversation's active leaf (docs/trees.md). Without
        ``parent_id`` it continues the active leaf; with one, it starts or extends a branch
        there (the parent must be a message of this conversation), and the active path
        becomes the parent's path plus the new message.

        With an ``idempotency_key`` already used in this conversation, nothing is written and
        the message first stored with it is returned: retries are safe (and charge nothing).

        ``charge`` debits that many tokens from the conversation owner's balance in the same
        transaction, with a ledger entry for this message (``charge_reason``): if the balance
        does not cover it, :class:`~chatledger.InsufficientBalanceError` is raised and neither
        the message nor the debit is written.

        Tool calls (docs/tools.md): an assistant message may carry ``tool_calls``, each a
        mapping with ``id``, ``name`` and ``arguments`` (a JSON object; LangChain's ``args``,
        Anthropic's ``input`` and OpenAI's ``function`` shapes are read too); they are stored
        with it, ``pending``. A ``tool`` message answers one of them with ``tool_call_id``
        (``tool_status`` ``success`` or ``error``, ``tool_latency_ms`` how long the tool ran):
        the call must exist in the conversation, be pending and have been asked on this
        message's path, or nothing is written (:class:`~chatledger.NotFoundError` /
        :class:`~chatledger.ConflictError` naming ``tool_call_id``).
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
            cached_input_tokens=cached_input_tokens,
            reasoning_tokens=reasoning_tokens,
            cost=cost,
            latency_ms=latency_ms,
            request_id=request_id,
            idempotency_key=idempotency_key,
            tool_calls=tool_calls,
            tool_call_id=tool_call_id,
            tool_status=tool_status,
            tool_latency_ms=tool_latency_ms,
        )
        debit = _debit(charge, charge_reason)
        if parent_id is not None:
            parent = check.identifier("parent_id", parent_id)
            return self._store._call(
                _trees.append_under,
                self._store._owner,
                key,
                new,
                parent,
                debit,
                write=True,
                settle=_messages.APPENDED,
            )
        # Without a key, a charge or tool rows, the append's one write is one statement on
        # PostgreSQL.
        single = idempotency_key is None and debit is None and not new.has_tools
        return self._store._call(
            _messages.append,
            self._store._owner,
            key,
            new,
            debit,
            write=True,
            single=single,
            settle=_messages.APPENDED,
        )

    def append_many(
        self, conversation_id: Id, messages: Iterable[Mapping[str, Any]]
    ) -> builtins.list[Message]:
        """Append a batch of messages in one transaction (imports, copies, backfills).

        Each item is a mapping with ``role`` and ``content`` and any keyword of
        :meth:`append`, plus ``created_at`` (an aware datetime) to keep an original timestamp.
        Items whose idempotency key the conversation already holds are not written again;
        the stored message is returned in their place, so a re-run import adds nothing. Tool
        calls and answers (``tool_calls``, ``tool_call_id``, ...) are stored as by
        :meth:`append`; an answer may follow its call in the same batch. At
        most ``Limits.max_batch_size`` items per call; errors name the item
        (``messages[3].content``).
        """
        key = check.identifier("conversation_id", conversation_id)
        batch = _messages.prepare_many(self._store.limits, messages)
        if not batch:
            return []
        return self._store._call(
            _messages.append_many,
            self._store._owner,
            key,
            batch,
            write=True,
            settle=_messages.appended_many(key, batch),
        )

    def get(self, message_id: Id) -> Message:
        """The message with this id."""
        key = check.identifier("message_id", message_id)
        return self._store._call(_messages.get, self._store._owner, key)

    def get_detail(self, message_id: Id) -> MessageDetail:
        """The message with every rater's current rating (oldest first) and its citations (by
        rank), read in one operation."""
        key = check.identifier("message_id", message_id)
        return self._store._call(_feedback.detail, self._store._owner, key)

    def last(
        self,
        conversation_id: Id,
        n: int = 20,
        *,
        role: Role | None = None,
        include_hidden: bool = False,
    ) -> builtins.list[Message]:
        """The last ``n`` messages (of ``role``) of the active path, oldest first: the context
        for the next model call. Reads only those rows (one index range), however long the
        conversation and however many branches it has. Hidden messages are skipped unless
        ``include_hidden``.

        Without ``role`` the window never splits a tool call from its result
        (docs/tools.md): a ``tool`` message whose call was asked before the window starts is
        left out (so fewer than ``n`` may come back); a call in the window comes with every
        answer on the path."""
        key = check.identifier("conversation_id", conversation_id)
        size = check.page_size("n", n, self._store.limits)
        kind = None if role is None else check.choice("role", role, ROLES)
        hidden = check.flag("include_hidden", include_hidden)
        return self._store._call(_messages.last, self._store._owner, key, size, kind, hidden)

    def list(
        self,
        conversation_id: Id,
        *,
        limit: int = 50,
        after: str | None = None,
        before: str | None = None,
        order: Order = "asc",
        role: Role | None = None,
        include_hidden: bool = False,
    ) -> Page[Message]:
        """A page of the conversation's messages in ``seq`` order (oldest first by default),
        every branch (the audit order; :meth:`Trees.path` reads the active path).
        Hidden messages are left out unless ``include_hidden``."""
        keys = check.paging(_messages.decode_cursor, after, before, limit, self._store.limits)
        key = check.identifier("conversation_id", conversation_id)
        return self._store._call(
            _messages.page,
            self._store._owner,
            key,
            order=check.order(order),
            **keys,
            role=None if role is None else check.choice("role", role, ROLES),
            include_hidden=check.flag("include_hidden", include_hidden),
        )

    def hide(self, message_id: Id, *, by: Id | None = None) -> Message:
        """Hide the message from what its user and the model see: history reads
        (:meth:`list`, :meth:`last`, ``trees.path``, the integrations, search, Markdown
        exports) leave it out unless asked. The row stays (append-only: ``seq``,
        ``message_count``, the tree and usage do not move); ``hidden_at`` and ``hidden_by``
        (in a user scope, that user; else ``by``) record the act. Hiding a hidden message
        changes nothing."""
        key = check.identifier("message_id", message_id)
        actor = self._store._owner
        if by is not None:
            given = check.identifier("by", by)
            if actor is not None and given != actor:
                raise ValidationError("by", "in a user scope, only that user can hide")
            actor = given
        return self._store._call(_redactions.hide, self._store._owner, key, actor, write=True)

    def unhide(self, message_id: Id) -> Message:
        """Show a hidden message again (ConflictError for an erased one)."""
        key = check.identifier("message_id", message_id)
        return self._store._call(_redactions.unhide, self._store._owner, key, write=True)

    def erase(self, message_id: Id, *, by: Id | None = None) -> Message:
        """Erase the message for good (an admin's act, e.g. a GDPR request; not in a user
        scope): its content becomes ``""`` and its metadata, intent and request id are
        cleared, in the database and its search index; it is hidden (``hidden_by``: ``by``)
        and ``erased_at`` is set. The row, its place in the tree and its usage figures stay,
        so ``message_count`` and usage totals do not change. A reply still streaming cannot
        be erased (ConflictError)."""
        if self._store._owner is not None:
            raise ValidationError("message_id", "erasing is for the unscoped ledger (an admin)")
        key = check.identifier("message_id", message_id)
        actor = None if by is None else check.identifier("by", by)
        return self._store._call(_redactions.erase, key, actor, write=True)

    def search(
        self,
        query: str,
        *,
        conversation_id: Id | None = None,
        role: Role | Sequence[Role] | None = None,
        model: str | Sequence[str] | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        status: ConversationStatus | Sequence[ConversationStatus] | None = None,
        branch: SearchBranch = "all",
        order: SearchOrder = "relevance",
        limit: int = 20,
        after: str | None = None,
        before: str | None = None,
    ) -> SearchPage[MessageHit]:
        """Full-text search over these messages: the same as ``store.search.messages``
        (see :class:`~chatledger.Search`)."""
        return self._store.search.messages(
            query,
            conversation_id=conversation_id,
            role=role,
            model=model,
            since=since,
            until=until,
            status=status,
            branch=branch,
            order=order,
            limit=limit,
            after=after,
            before=before,
        )

    def count(self, conversation_id: Id, *, role: Role | None = None) -> int:
        """How many messages the conversation holds (of ``role``)."""
        key = check.identifier("conversation_id", conversation_id)
        kind = None if role is None else check.choice("role", role, ROLES)
        return self._store._call(_messages.count, self._store._owner, key, kind)
