"""LlamaIndex: a chat store on chatledger conversations.

:class:`ChatledgerChatStore` implements ``BaseChatStore`` (so ``ChatMemoryBuffer`` and the
chat engines can keep their history in chatledger), sync and async, keyed by conversation.

Mapping (``docs/integrations/llamaindex.md`` has the full table): roles ``user``,
``assistant``, ``system`` and ``tool`` map to themselves, ``developer`` to ``system``,
``function`` to ``tool``, ``chatbot`` and ``model`` to ``assistant``; the content is the
message's text; the original role, ``additional_kwargs`` and non-text ``blocks`` are kept in
``metadata["llamaindex"]``. Token counts found in ``additional_kwargs`` (``prompt_tokens`` or
``input_tokens``, ``completion_tokens`` or ``output_tokens``) and ``model`` also fill the
typed columns. Tool calls in ``additional_kwargs`` (``tool_calls`` of an assistant message,
``tool_call_id`` of a tool message) are also stored as tool call records (docs/tools.md),
leniently: an answer to a call that is not recorded is stored unlinked. A message written
without LlamaIndex gets them back from those records: an assistant message's
``tool_calls`` (OpenAI's shape: ``{"id", "type": "function", "function": {"name",
"arguments"}}``), a tool message's ``tool_call_id``, ``name`` and ``is_error``.
"""

from __future__ import annotations

from ._bridge import Runner, require

require("llama_index.core", "llama-index-core", "llamaindex")

import json  # noqa: E402
import uuid  # noqa: E402
from collections.abc import Sequence  # noqa: E402
from typing import Any, Final  # noqa: E402

from llama_index.core.llms import ChatMessage  # noqa: E402
from llama_index.core.storage.chat_store.base import BaseChatStore  # noqa: E402
from pydantic import ConfigDict, PrivateAttr  # noqa: E402
from sqlalchemy import Connection  # noqa: E402

from .. import _validate as check  # noqa: E402
from .._ops import message_views as _views  # noqa: E402
from .._ops import messages as _messages  # noqa: E402
from .._ops import tool_calls as _tools  # noqa: E402
from .._ops.checkpoints import require_text  # noqa: E402
from .._schema import MODEL_MAX, THREAD_ID_MAX  # noqa: E402
from .._validate import Id  # noqa: E402
from ..errors import ValidationError  # noqa: E402
from ..records import Message, ToolCall  # noqa: E402

__all__ = ["METADATA_KEY", "ChatledgerChatStore", "message_fields", "to_llamaindex"]

#: The metadata key holding what the columns do not.
METADATA_KEY: Final = "llamaindex"

_ROLES: Final = {
    "user": "user",
    "assistant": "assistant",
    "system": "system",
    "tool": "tool",
    "developer": "system",
    "function": "tool",
    "chatbot": "assistant",
    "model": "assistant",
}
_INPUT_KEYS: Final = ("input_tokens", "prompt_tokens")
_OUTPUT_KEYS: Final = ("output_tokens", "completion_tokens")


def _count(kwargs: dict[str, Any], names: Sequence[str]) -> int | None:
    for name in names:
        value = kwargs.get(name)
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    return None


def message_fields(message: ChatMessage) -> dict[str, Any]:
    """The keyword arguments of ``ledger.messages.append`` that store ``message``."""
    if not isinstance(message, ChatMessage):
        raise TypeError(f"expected a LlamaIndex ChatMessage, not {type(message).__name__}")
    dumped = message.model_dump(mode="json")
    role = str(dumped["role"])
    extras: dict[str, Any] = {"role": role}
    kwargs = dumped.get("additional_kwargs") or {}
    if kwargs:
        extras["additional_kwargs"] = kwargs
    blocks = dumped.get("blocks") or []
    text = message.content or ""
    if blocks != [{"block_type": "text", "text": text}] and blocks:
        extras["blocks"] = blocks
    json.dumps(extras)  # model_dump(mode="json") made it JSON; fail here if not
    model = kwargs.get("model")
    kind = _ROLES.get(role, "user")
    fields: dict[str, Any] = {
        "role": kind,
        "content": text,
        "metadata": {METADATA_KEY: extras},
        "model": model if isinstance(model, str) and 0 < len(model) <= MODEL_MAX else None,
        "input_tokens": _count(kwargs, _INPUT_KEYS),
        "output_tokens": _count(kwargs, _OUTPUT_KEYS),
    }
    fields.update(_tool_fields(kind, kwargs))
    return fields


def _tool_fields(role: str, kwargs: dict[str, Any]) -> dict[str, Any]:
    """Tool call records (docs/tools.md) from what LlamaIndex's LLMs put in
    ``additional_kwargs``: ``tool_calls`` of an assistant message (OpenAI's
    ``{"id", "function": {"name", "arguments"}}`` or Anthropic's ``tool_use`` blocks) and the
    ``tool_call_id`` a tool message answers (``is_error`` marks a failed call)."""
    if role == "assistant" and isinstance(kwargs.get("tool_calls"), list):
        calls = _tools.usable(kwargs["tool_calls"])
        return {"tool_calls": calls} if calls else {}
    call_id = _tools.usable_id(kwargs.get("tool_call_id") or kwargs.get("tool_use_id"))
    if role == "tool" and call_id is not None:
        return {"tool_call_id": call_id, "tool_status": "error" if kwargs.get("is_error") else None}
    return {}


def _extras(message: Message) -> Any:
    return (message.metadata or {}).get(METADATA_KEY)


def _rebuilt_kwargs(calls: Sequence[ToolCall], answered: ToolCall | None) -> dict[str, Any]:
    """``additional_kwargs`` rebuilt from tool call records, for a message written without
    LlamaIndex."""
    if calls:
        return {
            "tool_calls": [
                {
                    "id": call.call_id,
                    "type": "function",
                    "function": {"name": call.name, "arguments": json.dumps(call.arguments)},
                }
                for call in calls
            ]
        }
    if answered is not None:
        kwargs: dict[str, Any] = {"tool_call_id": answered.call_id, "name": answered.name}
        if answered.status == "error":
            kwargs["is_error"] = True
        return kwargs
    return {}


def to_llamaindex(
    message: Message, calls: Sequence[ToolCall] = (), answered: ToolCall | None = None
) -> ChatMessage:
    """The LlamaIndex message a chatledger message stores. A message written without
    LlamaIndex maps by its role and content, with the tool ``calls`` it asked for or the
    call it ``answered`` (its tool call records) in ``additional_kwargs``."""
    extras = _extras(message)
    if not isinstance(extras, dict):
        return ChatMessage(
            role=message.role,
            content=message.content,
            additional_kwargs=_rebuilt_kwargs(calls, answered),
        )
    data: dict[str, Any] = {
        "role": extras.get("role", message.role),
        "additional_kwargs": extras.get("additional_kwargs") or {},
    }
    if "blocks" in extras:
        data["blocks"] = extras["blocks"]
    else:
        data["content"] = message.content
    return ChatMessage.model_validate(data)


def _history(
    conn: Connection, owner: uuid.UUID | None, key: str, user_id: uuid.UUID | None
) -> list[ChatMessage]:
    """The key's visible messages as LlamaIndex messages, with the tool calls of those
    written without LlamaIndex, in one transaction."""
    found = _views.key_messages(conn, owner, key, user_id)
    if not found:
        return []
    plain = [m for m in found if not isinstance(_extras(m), dict)]
    calls, answers = _tools.calls_and_answers(
        conn,
        found[0].conversation_id,
        [m.seq for m in plain if m.role == "assistant"],
        [m.seq for m in plain if m.role == "tool"],
    )
    return [to_llamaindex(m, calls.get(m.seq, ()), answers.get(m.seq)) for m in found]


class ChatledgerChatStore(BaseChatStore):
    """A LlamaIndex chat store whose keys are chatledger conversations.

    A key is a conversation id (``str(conversation.id)``), or any other string, bound on first
    write to a new conversation of the acting user: the user scope's, else ``user_id``. Keys
    share their bindings with :class:`~chatledger.integrations.langgraph.ChatledgerSaver`'s
    thread ids, so a LangGraph thread and a chat-store key with the same string are one
    conversation. Reading an unknown key gives no messages.

    Keys are per owner: two users (two scopes, or two stores with different ``user_id``) may
    use the same key and each gets a conversation of their own; neither sees the other's.
    An unscoped store without ``user_id`` reads a key that several users use only when it
    names one conversation; otherwise it raises :class:`~chatledger.ValidationError`.

    ``ledger`` is a :class:`~chatledger.Ledger`, an :class:`~chatledger.AsyncLedger` or a user
    scope of either. On a ``Ledger`` the sync methods run directly and the async ones on a worker
    thread; on an ``AsyncLedger`` the async ones run natively and the sync ones only from a
    thread other than the event loop's.

    Messages are append-only in chatledger: the deletes hide messages from the store's view
    (and from LangChain histories of the conversation) and ``set_messages`` hides the old ones
    before appending; hidden messages stay in the ledger, its counts, usage and exports.
    """

    model_config = ConfigDict(arbitrary_types_allowed=True)

    user_id: uuid.UUID | None = None
    _runner: Runner = PrivateAttr()

    def __init__(self, ledger: object, *, user_id: Id | None = None) -> None:
        super().__init__(user_id=None if user_id is None else check.identifier("user_id", user_id))
        self._runner = Runner(ledger)

    @classmethod
    def class_name(cls) -> str:
        """The class name LlamaIndex serialises."""
        return "ChatledgerChatStore"

    def _key(self, key: object) -> str:
        return require_text("key", key, THREAD_ID_MAX)

    def _append(
        self, key: str, messages: Sequence[ChatMessage], *, replace: bool
    ) -> tuple[Any, ...]:
        """The arguments of ``key_append`` for ``messages`` (validated here, before any
        database work), shared by the sync and async twins."""
        batch = _tools.lenient(
            _messages.prepare_many(
                self._runner.store.limits, [message_fields(message) for message in messages]
            )
        )
        return (_views.key_append, self._runner.owner, self._key(key), self.user_id, batch, replace)

    # -- sync ---------------------------------------------------------------------------------

    def set_messages(self, key: str, messages: list[ChatMessage]) -> None:
        """Make the key's messages exactly ``messages`` (the old ones are hidden)."""
        self._runner.call(*self._append(key, messages, replace=True), write=True)

    def get_messages(self, key: str, **kwargs: Any) -> list[ChatMessage]:
        """The key's messages, oldest first."""
        history: list[ChatMessage] = self._runner.call(
            _history, self._runner.owner, self._key(key), self.user_id
        )
        return history

    def add_message(self, key: str, message: ChatMessage, idx: int | None = None) -> None:
        """Append a message to the key's conversation (made on first use). Messages are
        append-only: ``idx`` other than the end is refused."""
        self._check_idx(idx)
        self._runner.call(*self._append(key, [message], replace=False), write=True)

    def delete_messages(self, key: str) -> list[ChatMessage] | None:
        """Hide every message of the key; returns them (``None``: unknown key)."""
        found = self._runner.call(
            _views.key_clear, self._runner.owner, self._key(key), self.user_id, write=True
        )
        return None if found is None else [to_llamaindex(message) for message in found]

    def delete_message(self, key: str, idx: int) -> ChatMessage | None:
        """Hide the key's message at position ``idx``; returns it (``None``: no such one)."""
        found = self._runner.call(
            _views.key_hide_at,
            self._runner.owner,
            self._key(key),
            self._index(idx),
            self.user_id,
            write=True,
        )
        return None if found is None else to_llamaindex(found)

    def delete_last_message(self, key: str) -> ChatMessage | None:
        """Hide the key's last message; returns it (``None``: none)."""
        found = self._runner.call(
            _views.key_hide_at, self._runner.owner, self._key(key), -1, self.user_id, write=True
        )
        return None if found is None else to_llamaindex(found)

    def get_keys(self) -> list[str]:
        """The keys written through the store (and LangGraph thread ids) it can see."""
        return self._runner.call(_views.keys, self._runner.owner, self.user_id)

    # -- async --------------------------------------------------------------------------------

    async def aset_messages(self, key: str, messages: list[ChatMessage]) -> None:
        """Make the key's messages exactly ``messages`` (the old ones are hidden)."""
        await self._runner.acall(*self._append(key, messages, replace=True), write=True)

    async def aget_messages(self, key: str, **kwargs: Any) -> list[ChatMessage]:
        """The key's messages, oldest first."""
        history: list[ChatMessage] = await self._runner.acall(
            _history, self._runner.owner, self._key(key), self.user_id
        )
        return history

    async def async_add_message(
        self, key: str, message: ChatMessage, idx: int | None = None
    ) -> None:
        """Append a message to the key's conversation (made on first use)."""
        self._check_idx(idx)
        await self._runner.acall(*self._append(key, [message], replace=False), write=True)

    async def adelete_messages(self, key: str) -> list[ChatMessage] | None:
        """Hide every message of the key; returns them (``None``: unknown key)."""
        found = await self._runner.acall(
            _views.key_clear, self._runner.owner, self._key(key), self.user_id, write=True
        )
        return None if found is None else [to_llamaindex(message) for message in found]

    async def adelete_message(self, key: str, idx: int) -> ChatMessage | None:
        """Hide the key's message at position ``idx``; returns it (``None``: no such one)."""
        found = await self._runner.acall(
            _views.key_hide_at,
            self._runner.owner,
            self._key(key),
            self._index(idx),
            self.user_id,
            write=True,
        )
        return None if found is None else to_llamaindex(found)

    async def adelete_last_message(self, key: str) -> ChatMessage | None:
        """Hide the key's last message; returns it (``None``: none)."""
        found = await self._runner.acall(
            _views.key_hide_at, self._runner.owner, self._key(key), -1, self.user_id, write=True
        )
        return None if found is None else to_llamaindex(found)

    async def aget_keys(self) -> list[str]:
        """The keys written through the store (and LangGraph thread ids) it can see."""
        return await self._runner.acall(_views.keys, self._runner.owner, self.user_id)

    # -- helpers ------------------------------------------------------------------------------

    @staticmethod
    def _index(idx: object) -> int:
        if isinstance(idx, bool) or not isinstance(idx, int):
            raise ValidationError("idx", f"must be an integer, not {type(idx).__name__}")
        return idx

    @staticmethod
    def _check_idx(idx: int | None) -> None:
        if idx is not None:
            raise ValidationError(
                "idx", "messages are append-only: they can only be added at the end"
            )
