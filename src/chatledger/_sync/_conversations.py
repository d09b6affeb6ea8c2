# This file is generated from ../_async/_conversations.py by tools/generate_sync.py: do not edit it.
# Edit the asynchronous source and run `make generate`.
"""The conversations resource of a ledger or user scope."""

from __future__ import annotations

import builtins
import uuid
from datetime import timedelta
from typing import TYPE_CHECKING, Any, Literal

from .. import _validate as check
from .._ops import conversations as _conversations
from .._ops import privacy as _privacy
from .._ops._common import UNSET, Unset, given, utcnow
from .._ops._once import gone
from .._schema import conversations
from .._validate import Id
from ..errors import NotFoundError, ValidationError
from ..records import Conversation, ConversationStatus, Order, Page, RetentionReport

if TYPE_CHECKING:
    from ._store import _Store

__all__ = ["Conversations"]

Statuses = ConversationStatus | builtins.list[ConversationStatus] | None


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
        """Start a conversation of ``owner_id`` (in a user scope: of that user). Outside a
        scope, ``owner_id=ANONYMOUS_USER_ID`` starts an anonymous one (a session without a
        signed-in user): listed under that id and by :meth:`list_all`, never seen by any user
        scope."""
        owner = self._owner(owner_id)
        fields = _conversations.prepare(
            self._store.limits, {"title": title, "intent": intent, "metadata": metadata}
        )
        return self._store._call(
            _conversations.create, owner, fields, write=True, settle=_conversations.CREATED
        )

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
        self._store._call(
            _conversations.delete_hard,
            self._store._owner,
            key,
            write=True,
            settle=gone("conversation", conversations, key),
        )

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
        keys = check.paging(_conversations.decode_cursor, after, before, limit, self._store.limits)
        return self._store._call(
            _conversations.page,
            self._owner(owner_id),
            status=_conversations.statuses(status),
            order=check.order(order),
            **keys,
        )

    def list_all(
        self,
        *,
        status: Statuses = None,
        limit: int = 20,
        after: str | None = None,
        before: str | None = None,
        order: Order = "desc",
    ) -> Page[Conversation]:
        """A page of every user's conversations (anonymous ones included), for admin views:
        in creation order, newest first by default, read by primary key so that any page
        costs the same. Without ``status``, every conversation but the soft-deleted ones. In
        a user scope, that user's conversations only."""
        keys = check.paging(
            _conversations.decode_all_cursor, after, before, limit, self._store.limits
        )
        return self._store._call(
            _conversations.page_all,
            self._store._owner,
            status=_conversations.statuses(status),
            order=check.order(order),
            **keys,
        )

    def count_all(self, *, status: Statuses = None) -> int:
        """How many conversations :meth:`list_all` pages through (same status filter)."""
        return self._store._call(
            _conversations.count, self._store._owner, _conversations.statuses(status)
        )

    def count(self, owner_id: Id | None = None, *, status: Statuses = None) -> int:
        """How many conversations the owner has (same status filter as :meth:`list`)."""
        return self._store._call(
            _conversations.count, self._owner(owner_id), _conversations.statuses(status)
        )

    def apply_retention(
        self,
        *,
        inactive_days: int,
        action: Literal["archive", "delete"] = "archive",
        dry_run: bool = False,
        batch_size: int = 500,
    ) -> RetentionReport:
        """Archive or delete the conversations inactive for ``inactive_days`` (1 to 36,500):
        those whose last activity is older than now minus that many days. ``"archive"``
        archives active and closed ones; ``"delete"`` hard-deletes them whatever their status,
        with their messages, ratings and citations. Works in batches of ``batch_size``
        conversations (1 to ``Limits.max_batch_size``), each in its own transaction, least
        recently active first. With ``dry_run=True`` nothing changes and the report counts
        what would be. In a user scope, only that user's conversations."""
        days, kind, size = _privacy.retention_arguments(
            self._store.limits, inactive_days, action, dry_run, batch_size
        )
        cutoff = utcnow() - timedelta(days=days)
        owner = self._store._owner
        if dry_run:
            found, in_them = self._store._call(_privacy.retention_preview, owner, cutoff, kind)
        else:
            found = in_them = 0
            while True:
                examined, done, their_messages = self._store._call(
                    _privacy.retention_batch, owner, cutoff, kind, size, write=True
                )
                found += done
                in_them += their_messages
                if examined < size:
                    break
        return RetentionReport(
            dry_run=dry_run, action=kind, cutoff=cutoff, conversations=found, messages=in_them
        )
