"""Conversation memory for chat loops: a write-through cache of recent messages."""

from __future__ import annotations

import math
import time
import uuid
from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .. import _validate as check
from .._ops import message_views as _views
from .._ops import messages as _messages
from .._ops import tool_calls as _tool_calls
from .._ops.checkpoints import require_text
from .._run.compat_async import Lock
from .._schema import INT32_MAX, THREAD_ID_MAX
from .._validate import Id
from ..errors import NotFoundError, ValidationError
from ..records import Message, Role

if TYPE_CHECKING:
    from ._store import _AsyncStore

__all__ = ["AsyncConversationMemory", "estimate_tokens"]

#: Counts the tokens of one message.
TokenCounter = Callable[[Message], int]


def estimate_tokens(message: Message) -> int:
    """The default token count of a message: its own recorded count when there is one
    (``output_tokens`` of an assistant message, ``input_tokens`` of any other: an assistant
    message's ``input_tokens`` is the whole prompt, not the message), else
    ``ceil(len(content) / 4)``, the usual rough estimate for English text."""
    own = message.output_tokens if message.role == "assistant" else message.input_tokens
    if own is not None:
        return own
    return math.ceil(len(message.content) / 4)


@dataclass(slots=True)
class _Entry:
    """The cached end of one conversation's active path: a chain of messages (each the
    parent of the next) ending at the active leaf ``leaf``, when the conversation held
    ``total`` messages. A chain that starts at a root is the whole path."""

    messages: list[Message]
    total: int
    leaf: int | None
    #: ``time.monotonic()`` when ``(total, leaf)`` was last known to be the conversation's.
    checked: float


class AsyncConversationMemory:
    """Recent messages of active conversations, cached in process with write-through to the
    store; loads from the store on a miss; returns the context for the next model call as the
    last N messages or as the newest messages that fit a token budget.

    Consistency model:

    - Messages appended through this memory are written to the store first and cached only
      once the write succeeded (write-through): a failed append leaves the cache as it was.
    - The memory holds the end of the conversation's active path (docs/trees.md): what
      ``messages.last`` reads. Another process (or another memory) appending to the same
      conversation, or editing, regenerating or switching branches there, is noticed when
      the cached entry is older than ``max_age`` seconds (default 5): the next read then
      checks the conversation's message count and active leaf (one primary-key lookup) and
      fetches only the messages it lacks. ``max_age=0`` checks on every read (never stale,
      one cheap query per read); ``max_age=None`` never checks (right when one process owns
      each conversation). Own appends that land right after the cached newest message count
      as a check.
      :meth:`refresh` reloads a conversation on demand.
    - Inside a transaction of the store (``with store.transaction()``) the memory reads from
      the store and caches nothing, and an append there drops the conversation's entry: what
      the transaction wrote may still roll back.
    - Messages are append-only and a message's parent never changes, so a cached chain is
      never wrong, only possibly not the newest path; a deleted conversation raises
      NotFoundError and is dropped.

    At most ``max_conversations`` conversations are cached (least recently used evicted), each
    with its newest ``max_messages`` messages (at most ``Limits.max_page_size``). Safe to share
    between the threads or tasks that use the store.
    """

    def __init__(
        self,
        store: _AsyncStore,
        *,
        max_messages: int = 50,
        max_conversations: int = 1000,
        token_counter: TokenCounter | None = None,
        max_age: float | None = 5.0,
    ) -> None:
        self._store = store
        self._max_messages = check.page_size("max_messages", max_messages, store.limits)
        if isinstance(max_conversations, bool) or not isinstance(max_conversations, int):
            raise ValidationError("max_conversations", "must be an integer")
        if max_conversations < 1:
            raise ValidationError("max_conversations", "must be at least 1", limit=1)
        self._max_conversations = max_conversations
        if token_counter is not None and not callable(token_counter):
            raise ValidationError("token_counter", "must be callable")
        self._token_counter: TokenCounter = token_counter or estimate_tokens
        if max_age is not None and (
            isinstance(max_age, bool)
            or not isinstance(max_age, int | float)
            or not math.isfinite(max_age)
            or max_age < 0
        ):
            raise ValidationError("max_age", "must be None or a number of seconds >= 0", limit=0)
        self._max_age = max_age
        self._entries: OrderedDict[uuid.UUID, _Entry] = OrderedDict()
        #: The app's own conversation keys (``add_message``), per acting user: their
        #: conversation ids (least recently used evicted with the same bound).
        self._keys: OrderedDict[tuple[uuid.UUID | None, str], uuid.UUID] = OrderedDict()
        self._lock = Lock()

    def _in_transaction(self) -> bool:
        return self._store._core.current.get() is not None

    def _fresh(self, entry: _Entry) -> bool:
        return self._max_age is None or time.monotonic() - entry.checked < self._max_age

    def _serves(self, entry: _Entry, needed: int) -> bool:
        messages = entry.messages
        return len(messages) >= needed or (messages[0].depth == 0 if messages else entry.total == 0)

    def _merge(
        self,
        key: uuid.UUID,
        messages: Iterable[Message],
        *,
        total: int,
        leaf: int | None,
        checked: float | None,
        create: bool,
    ) -> _Entry | None:
        """Fold what was learnt about a conversation into its entry (the caller holds the
        lock): known messages by seq, the conversation's count and active leaf, when they
        were known. The entry keeps the chain of parents ending at the active leaf."""
        entry = self._entries.get(key)
        if entry is None and not create:
            return None
        by_seq = {message.seq: message for message in messages}
        if entry is not None:
            by_seq.update((message.seq, message) for message in entry.messages)
        run: list[Message] = []
        seq = leaf
        while seq is not None and seq in by_seq and len(run) < self._max_messages:
            run.append(by_seq[seq])
            seq = by_seq[seq].parent_seq
        run.reverse()
        known = checked if checked is not None else float("-inf")
        if entry is None:
            entry = _Entry(run, total, leaf, known)
            self._entries[key] = entry
            while len(self._entries) > self._max_conversations:
                self._entries.popitem(last=False)
        else:
            entry.messages, entry.total, entry.leaf = run, total, leaf
            entry.checked = max(entry.checked, known)
            self._entries.move_to_end(key)
        return entry

    async def _path_end(self, key: uuid.UUID, n: int) -> list[Message]:
        """The last ``n`` messages of the active path as stored (tool results included: the
        cached chain must stay unbroken; windows are paired when they are handed out)."""
        store = self._store
        return await store._call(
            _messages.last, store._owner, key, n, None, include_hidden=False, paired=False
        )

    async def _load(self, key: uuid.UUID) -> list[Message]:
        """Read the end of the active path from the store and cache it."""
        started = time.monotonic()
        try:
            loaded = await self._path_end(key, self._max_messages)
        except NotFoundError:
            async with self._lock:
                self._entries.pop(key, None)
            raise
        async with self._lock:
            entry = self._merge(
                key,
                loaded,
                total=max((message.seq for message in loaded), default=0),
                leaf=loaded[-1].seq if loaded else None,
                checked=started,
                create=True,
            )
            return list(entry.messages) if entry is not None else loaded

    async def _catch_up(self, key: uuid.UUID, entry_total: int, entry_leaf: int | None) -> None:
        """Check a stale entry against the conversation's count and active leaf; fetch what
        the new path's end lacks."""
        started = time.monotonic()
        try:
            conversation = await self._store.conversations.get(key)
            count, leaf = conversation.message_count, conversation.active_leaf_seq
            fetched: list[Message] = []
            if (count, leaf) != (entry_total, entry_leaf):
                wanted = max(1, min(count - entry_total, self._max_messages))
                fetched = await self._path_end(key, wanted)
        except NotFoundError:
            async with self._lock:
                self._entries.pop(key, None)
            raise
        async with self._lock:
            if count < entry_total:  # cannot happen to an append-only conversation
                self._entries.pop(key, None)
                return
            self._merge(key, fetched, total=count, leaf=leaf, checked=started, create=False)

    async def _window(self, key: uuid.UUID, needed: int) -> list[Message]:
        """At least ``needed`` of the active path's newest messages (or all there are),
        oldest first."""
        if self._in_transaction():
            return await self._path_end(key, self._max_messages)
        usable, total, leaf = False, 0, None
        async with self._lock:
            entry = self._entries.get(key)
            if entry is not None:
                self._entries.move_to_end(key)
                if self._serves(entry, needed) and self._fresh(entry):
                    return list(entry.messages)
                usable, total, leaf = self._serves(entry, needed), entry.total, entry.leaf
        if usable:
            await self._catch_up(key, total, leaf)
            async with self._lock:
                entry = self._entries.get(key)
                if entry is not None and self._serves(entry, needed):
                    return list(entry.messages)
        return await self._load(key)

    async def append(self, conversation_id: Id, role: Role, content: str, **fields: Any) -> Message:
        """Append a message through ``store.messages.append`` (same arguments, same
        validation) and, once it is stored, add it to the cached conversation."""
        key = check.identifier("conversation_id", conversation_id)
        started = time.monotonic()
        message = await self._store.messages.append(key, role, content, **fields)
        await self._cache_appended(key, message, fields, started)
        return message

    async def add_message(
        self,
        conversation_id: Id | str,
        role: Role,
        content: str,
        *,
        user_id: Id | None = None,
        **fields: Any,
    ) -> Message:
        """Append a message, creating the conversation on its first message: the drop-in
        for the agent framework's ``add_message(conversation_id, ..., user_id=...)``.

        ``conversation_id`` is a conversation's id, or any other string the app uses for a
        conversation (``"conv_123"``, up to 200 characters). A string that is no
        conversation's id is the app's key: its first message creates a conversation of the
        acting user (the user scope's, else ``user_id``) bound to it, and later messages with
        the same key go there. Keys are per user, and shared with the LlamaIndex chat store's
        keys and LangGraph's thread ids. The other keywords are those of :meth:`append`.
        Read the conversation back with the same key: :meth:`last`, :meth:`fit` (with the
        same ``user_id`` on an unscoped store), or by ``message.conversation_id``."""
        user = None if user_id is None else check.identifier("user_id", user_id)
        started = time.monotonic()
        known = await self._known(conversation_id, user)
        if known is not None:
            try:
                message = await self._store.messages.append(known, role, content, **fields)
            except NotFoundError:
                if not isinstance(conversation_id, str):
                    raise
                self._keys.pop((self._holder(user), conversation_id), None)
            else:
                await self._cache_appended(known, message, fields, started)
                return message
        key = require_text("conversation_id", str(conversation_id), THREAD_ID_MAX)
        # The key's conversation (made and bound on first use: a re-run finds the binding),
        # then the append with everything append offers.
        bound = await self._store._call(
            _views.for_key, self._store._owner, key, user, create=True, write=True
        )
        assert bound is not None  # create=True finds or makes one
        async with self._lock:
            self._remember(user, key, bound)
        message = await self._store.messages.append(bound, role, content, **fields)
        await self._cache_appended(bound, message, fields, started)
        return message

    def _holder(self, user: uuid.UUID | None) -> uuid.UUID | None:
        owner = self._store._owner
        return owner if owner is not None else user

    def _remember(self, user: uuid.UUID | None, key: str, conversation: uuid.UUID) -> None:
        """Cache the conversation of an app key (the caller holds the lock)."""
        self._keys[(self._holder(user), key)] = conversation
        self._keys.move_to_end((self._holder(user), key))
        while len(self._keys) > self._max_conversations:
            self._keys.popitem(last=False)

    async def _known(self, conversation_id: object, user: uuid.UUID | None) -> uuid.UUID | None:
        """The conversation id ``conversation_id`` names without a query: itself when it is an
        id, else the cached conversation of the app key (``None``: look the key up)."""
        if isinstance(conversation_id, str):
            found = self._keys.get((self._holder(user), conversation_id))
            if found is not None:
                return found
        try:
            return check.identifier("conversation_id", conversation_id)
        except ValidationError:
            if not isinstance(conversation_id, str):
                raise
            return None

    async def _conversation(self, conversation_id: object, user_id: Id | None) -> uuid.UUID:
        """The conversation of an id or an app key (see :meth:`add_message`)."""
        user = None if user_id is None else check.identifier("user_id", user_id)
        known = await self._known(conversation_id, user)
        if known is not None:
            return known
        key = require_text("conversation_id", conversation_id, THREAD_ID_MAX)
        found = await self._store._call(_views.for_key, self._store._owner, key, user, create=False)
        if found is None:
            raise NotFoundError("conversation", key, field="conversation_id")
        async with self._lock:
            self._remember(user, key, found)
        return found

    async def _cache_appended(
        self, key: uuid.UUID, message: Message, fields: dict[str, Any], started: float
    ) -> None:
        """Add a message just appended to its cached conversation."""
        async with self._lock:
            if self._in_transaction():
                self._entries.pop(key, None)
            elif fields.get("idempotency_key") is None:
                # A new message: the active leaf, its seq the conversation's count now. Right
                # after the cached count and under the cached leaf, it also proves nobody
                # else appended or switched in between.
                entry = self._entries.get(key)
                previous = (entry.total, entry.leaf) if entry is not None else None
                if entry is None and message.seq == 1:
                    previous = (0, None)
                connected = previous == (message.seq - 1, message.parent_seq)
                self._merge(
                    key,
                    [message],
                    total=message.seq,
                    leaf=message.seq,
                    checked=started if connected else None,
                    create=True,
                )
            else:
                # Perhaps a replay of an older message: it proves nothing; check next read.
                self._entries.pop(key, None)

    async def last(
        self, conversation_id: Id | str, n: int, *, user_id: Id | None = None
    ) -> list[Message]:
        """The last ``n`` messages (1 to ``max_messages``), oldest first: from the cache, or
        loaded from the store on a miss. ``conversation_id`` may be an app key of
        :meth:`add_message` (of ``user_id`` on an unscoped store). Like
        ``store.messages.last``, the window never starts with a ``tool`` result whose call it
        cut off (docs/tools.md)."""
        key = await self._conversation(conversation_id, user_id)
        size = _positive("n", n, self._max_messages)
        return _tool_calls.without_leading_results((await self._window(key, size))[-size:])

    async def fit(
        self,
        conversation_id: Id | str,
        max_tokens: int,
        *,
        count: TokenCounter | None = None,
        user_id: Id | None = None,
    ) -> list[Message]:
        """The newest messages whose token counts sum to at most ``max_tokens``, oldest first:
        the context for the next model call. Stops at the first message that does not fit
        (the result is always the unbroken end of the conversation), and looks at most at the
        newest ``max_messages``. A message's count comes from ``count`` if given, else the
        memory's ``token_counter``, else :func:`estimate_tokens` (the message's own recorded
        tokens, or ``ceil(len(content) / 4)``). ``conversation_id`` may be an app key of
        :meth:`add_message` (of ``user_id`` on an unscoped store). The window never starts
        with a ``tool`` result whose call did not fit: such results are left out
        (docs/tools.md)."""
        key = await self._conversation(conversation_id, user_id)
        budget = _positive("max_tokens", max_tokens, INT32_MAX, low=0)
        if count is not None and not callable(count):
            raise ValidationError("count", "must be callable")
        counter = count or self._token_counter
        window = await self._window(key, self._max_messages)
        chosen: list[Message] = []
        used = 0
        for message in reversed(window):
            tokens = counter(message)
            if isinstance(tokens, bool) or not isinstance(tokens, int) or tokens < 0:
                raise ValidationError(
                    "count", f"token counts must be integers >= 0, not {tokens!r}"
                )
            if used + tokens > budget:
                break
            used += tokens
            chosen.append(message)
        chosen.reverse()
        return _tool_calls.without_leading_results(chosen)

    async def refresh(self, conversation_id: Id) -> None:
        """Drop the cached messages of a conversation and load them again from the store."""
        key = check.identifier("conversation_id", conversation_id)
        async with self._lock:
            self._entries.pop(key, None)
        if not self._in_transaction():
            await self._load(key)

    async def forget(self, conversation_id: Id) -> None:
        """Drop a conversation from the cache (say, when its chat session ends)."""
        key = check.identifier("conversation_id", conversation_id)
        async with self._lock:
            self._entries.pop(key, None)

    async def clear(self) -> None:
        """Drop every cached conversation."""
        async with self._lock:
            self._entries.clear()
            self._keys.clear()


def _positive(field: str, value: object, high: int, *, low: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValidationError(field, f"must be an integer, not {type(value).__name__}")
    if not low <= value <= high:
        raise ValidationError(field, f"{value} is outside {low}..{high}", limit=high)
    return value
