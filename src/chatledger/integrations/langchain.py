"""LangChain: a chat message history on a chatledger conversation.

:class:`ChatledgerChatMessageHistory` implements ``BaseChatMessageHistory`` (and so works with
``RunnableWithMessageHistory``); :func:`message_fields` and :func:`to_langchain` are the
lossless mapping between LangChain messages and chatledger messages, also used by the LangGraph
saver.

Mapping (``docs/integrations/langchain.md`` has the full table):

- ``HumanMessage`` -> ``user``, ``AIMessage`` -> ``assistant``, ``SystemMessage`` -> ``system``,
  ``ToolMessage`` and ``FunctionMessage`` -> ``tool``, ``ChatMessage`` -> by its role (unknown
  roles -> ``user``). Chunks are stored as the message they add up to.
- ``content``: text as is; a list of content blocks is stored as its text, with the blocks
  themselves kept in metadata.
- ``id`` -> ``idempotency_key`` (adding a message twice stores it once).
- ``AIMessage.usage_metadata`` -> ``input_tokens``/``output_tokens``;
  ``response_metadata["model_name"]`` (or ``["model"]``) -> ``model``.
- Every other field that is not at its default (``tool_calls``, ``invalid_tool_calls``,
  ``additional_kwargs``, ``response_metadata``, ``usage_metadata``, ``name``, ``tool_call_id``,
  ``status``, ``artifact``, ``role``...) -> ``metadata["langchain"]``, with the message type.
  Values that are not JSON (an ``artifact`` object, say) are dropped with a warning.
- Tool calls (docs/tools.md): an ``AIMessage``'s ``tool_calls`` (those with an id) are also
  stored as tool call records, and a ``ToolMessage`` answers its ``tool_call_id`` (``status``
  ``error`` -> a failed call), so they can be queried (``store.tools``); a message written
  without LangChain gets its ``tool_calls`` / ``tool_call_id`` back from those records.
  Histories read with ``max_messages`` never split a call from its result.
"""

from __future__ import annotations

from ._bridge import Runner, require

require("langchain_core", "langchain-core", "langchain")

import functools  # noqa: E402
import json  # noqa: E402
import logging  # noqa: E402
import uuid  # noqa: E402
from collections.abc import Sequence  # noqa: E402
from typing import Any, Final  # noqa: E402

from langchain_core.chat_history import BaseChatMessageHistory  # noqa: E402
from langchain_core.messages import (  # noqa: E402
    AIMessage,
    BaseMessage,
    BaseMessageChunk,
    HumanMessage,
    SystemMessage,
    ToolMessage,
    message_chunk_to_message,
    messages_from_dict,
)
from sqlalchemy import Connection  # noqa: E402

from .. import _validate as check  # noqa: E402
from .._ops import message_views as _views  # noqa: E402
from .._ops import messages as _messages  # noqa: E402
from .._ops import tool_calls as _tools  # noqa: E402
from .._schema import MODEL_MAX  # noqa: E402
from .._validate import Id  # noqa: E402
from ..records import Message, ToolCall  # noqa: E402

__all__ = [
    "METADATA_KEY",
    "ChatledgerChatMessageHistory",
    "message_fields",
    "prepare_messages",
    "to_langchain",
]

logger = logging.getLogger(__name__)

#: The metadata key holding what the columns do not.
METADATA_KEY: Final = "langchain"

_ROLE_OF_TYPE: Final = {
    "human": "user",
    "ai": "assistant",
    "system": "system",
    "tool": "tool",
    "function": "tool",
}
_ROLE_OF_CHAT_ROLE: Final = {
    "user": "user",
    "human": "user",
    "assistant": "assistant",
    "ai": "assistant",
    "model": "assistant",
    "system": "system",
    "developer": "system",
    "tool": "tool",
    "function": "tool",
}
_COLUMN_FIELDS: Final = frozenset({"content", "id", "type"})


def _jsonable(value: object) -> bool:
    try:
        json.dumps(value, allow_nan=False)
    except (TypeError, ValueError):
        return False
    return True


def _text(content: str | list[Any]) -> str:
    """The text of a message's content: the string, or its text blocks joined."""
    if isinstance(content, str):
        return content
    parts: list[str] = []
    for block in content:
        if isinstance(block, str):
            parts.append(block)
        elif isinstance(block, dict) and block.get("type") == "text":
            text = block.get("text")
            if isinstance(text, str):
                parts.append(text)
    return "\n".join(parts)


@functools.cache
def _defaults(kind: type[BaseMessage]) -> dict[str, Any]:
    """The default of each declared field of a message class (fields equal to it are not
    stored). Computed once per class: pydantic's ``get_default`` costs more than the rest of
    the mapping."""
    return {
        name: field.get_default(call_default_factory=True)
        for name, field in kind.model_fields.items()
    }


def message_fields(message: BaseMessage) -> dict[str, Any]:
    """The keyword arguments of ``ledger.messages.append`` that store ``message`` losslessly."""
    if isinstance(message, BaseMessageChunk):
        message = message_chunk_to_message(message)
    if not isinstance(message, BaseMessage):
        raise TypeError(f"expected a LangChain message, not {type(message).__name__}")
    kind = message.type
    role = _ROLE_OF_TYPE.get(kind)
    if role is None:
        role = _ROLE_OF_CHAT_ROLE.get(str(getattr(message, "role", "")).lower(), "user")
    extras: dict[str, Any] = {"type": kind}
    defaults = _defaults(type(message))
    for name, value in message.model_dump().items():
        if name in _COLUMN_FIELDS or name not in defaults:
            continue
        if value == defaults[name]:
            continue
        if not _jsonable(value):
            logger.warning(
                "%s.%s of message %s is not JSON: not stored",
                type(message).__name__,
                name,
                message.id,
            )
            continue
        extras[name] = value
    content = message.content
    if not isinstance(content, str):
        extras["content"] = content
    usage = getattr(message, "usage_metadata", None) or {}
    model = message.response_metadata.get("model_name") or message.response_metadata.get("model")
    if not isinstance(model, str) or not model or len(model) > MODEL_MAX:
        model = None
    fields: dict[str, Any] = {
        "role": role,
        "content": _text(content),
        "metadata": {METADATA_KEY: extras},
        "model": model,
        "input_tokens": usage.get("input_tokens"),
        "output_tokens": usage.get("output_tokens"),
        "idempotency_key": message.id,
    }
    fields.update(_tool_fields(message, role))
    return fields


def _tool_fields(message: BaseMessage, role: str) -> dict[str, Any]:
    """The tool call records of ``message`` (docs/tools.md): an ``AIMessage``'s
    ``tool_calls`` with an id, the call a ``ToolMessage`` answers and its status."""
    if role == "assistant" and isinstance(message, AIMessage):
        calls = _tools.usable(
            {"id": call.get("id"), "name": call.get("name"), "arguments": call.get("args")}
            for call in message.tool_calls
        )
        return {"tool_calls": calls} if calls else {}
    if role == "tool" and isinstance(message, ToolMessage):
        call_id = _tools.usable_id(message.tool_call_id)
        if call_id is not None:
            status = "error" if getattr(message, "status", "success") == "error" else "success"
            return {"tool_call_id": call_id, "tool_status": status}
    return {}


def prepare_messages(
    limits: check.Limits, messages: Sequence[BaseMessage]
) -> list[_messages.NewMessage]:
    """Validate LangChain messages for appending; errors name the item
    (``messages[2].content``). Tool calls are recorded leniently: a ``ToolMessage`` whose
    call is not recorded (or answered already) is stored, unlinked, rather than refused."""
    fields = [message_fields(message) for message in messages]
    return _tools.lenient(_messages.prepare_many(limits, fields))


def to_langchain(
    message: Message,
    calls: Sequence[ToolCall] = (),
    answered: ToolCall | None = None,
) -> BaseMessage:
    """The LangChain message a chatledger message stores (see :func:`message_fields`). A
    message written without LangChain maps by its role, with its usage and model; its tool
    ``calls`` (an assistant message) become ``AIMessage.tool_calls`` and the call it
    ``answered`` (a tool message) its ``tool_call_id`` and ``status``."""
    extras = (message.metadata or {}).get(METADATA_KEY)
    if isinstance(extras, dict) and isinstance(extras.get("type"), str):
        data = {name: value for name, value in extras.items() if name != "type"}
        data.setdefault("content", message.content)
        data["id"] = message.idempotency_key
        restored: BaseMessage = messages_from_dict([{"type": extras["type"], "data": data}])[0]
        return restored
    key = message.idempotency_key
    if message.role == "assistant":
        usage: Any = None
        if message.input_tokens is not None or message.output_tokens is not None:
            inputs, outputs = message.input_tokens or 0, message.output_tokens or 0
            usage = {
                "input_tokens": inputs,
                "output_tokens": outputs,
                "total_tokens": inputs + outputs,
            }
        return AIMessage(
            content=message.content,
            id=key,
            usage_metadata=usage,
            response_metadata={"model_name": message.model} if message.model else {},
            tool_calls=[
                {"id": call.call_id, "name": call.name, "args": call.arguments, "type": "tool_call"}
                for call in calls
            ],
        )
    if message.role == "system":
        return SystemMessage(content=message.content, id=key)
    if message.role == "tool":
        if answered is not None:
            return ToolMessage(
                content=message.content,
                id=key,
                tool_call_id=answered.call_id,
                status="error" if answered.status == "error" else "success",
            )
        call = (message.metadata or {}).get("tool_call_id")
        return ToolMessage(content=message.content, id=key, tool_call_id=str(call or ""))
    return HumanMessage(content=message.content, id=key)


History = tuple[list[Message], dict[int, list[ToolCall]], dict[int, ToolCall]]


def _read_history(
    conn: Connection, owner: uuid.UUID | None, conversation_id: uuid.UUID, limit: int | None
) -> History:
    """The visible messages (the last ``limit``: a window that keeps tool calls with their
    results), the calls their assistant messages asked and the calls their tool messages
    answered, in one operation."""
    stored = _views.visible(conn, owner, conversation_id, limit)
    if limit is not None:
        stored = _tools.without_leading_results(_tools.paired(conn, conversation_id, stored))
    asking = [m.seq for m in stored if m.role == "assistant" and not _framework(m)]
    answering = [m.seq for m in stored if m.role == "tool" and not _framework(m)]
    return (stored, *_tools.calls_and_answers(conn, conversation_id, asking, answering))


def _framework(message: Message) -> bool:
    """Whether LangChain wrote the message (its own fields restore it whole)."""
    extras = (message.metadata or {}).get(METADATA_KEY)
    return isinstance(extras, dict) and isinstance(extras.get("type"), str)


def _converted(history: History) -> list[BaseMessage]:
    stored, calls, answered = history
    return [
        to_langchain(message, calls.get(message.seq, ()), answered.get(message.seq))
        for message in stored
    ]


class ChatledgerChatMessageHistory(BaseChatMessageHistory):
    """A LangChain chat message history on one chatledger conversation.

    ``ledger`` is a :class:`~chatledger.Ledger`, an :class:`~chatledger.AsyncLedger` or a user
    scope of either (then only that user's conversation is reachable). One instance serves
    both LangChain surfaces: on a ``Ledger`` the sync methods run directly and the async ones
    on a worker thread; on an ``AsyncLedger`` the async methods run natively and the sync ones
    only from a thread other than the event loop's.

    ``max_messages`` makes :attr:`messages` the last that many messages (read with one index
    range scan from the end, never the whole conversation); ``None`` reads them all.

    chatledger messages are append-only, so :meth:`clear` does not delete: it hides every
    message the conversation holds now from this view (and from every other history or
    LlamaIndex store on the conversation); messages added later are visible. The hidden
    messages stay in the ledger, its counts, usage totals and exports.
    """

    def __init__(
        self, ledger: object, conversation_id: Id, *, max_messages: int | None = None
    ) -> None:
        self._runner = Runner(ledger)
        limits = self._runner.store.limits
        self.conversation_id = check.identifier("conversation_id", conversation_id)
        self.max_messages = (
            None if max_messages is None else check.page_size("max_messages", max_messages, limits)
        )

    def __repr__(self) -> str:
        return f"<{type(self).__name__} conversation_id={self.conversation_id}>"

    def _read_args(self) -> tuple[Any, ...]:
        return (self._runner.owner, self.conversation_id, self.max_messages)

    @property
    def messages(self) -> list[BaseMessage]:  # type: ignore[override]
        """The conversation's messages (the last ``max_messages``, never splitting a tool
        call from its result), oldest first."""
        return _converted(self._runner.call(_read_history, *self._read_args()))

    async def aget_messages(self) -> list[BaseMessage]:
        """The conversation's messages (the last ``max_messages``, never splitting a tool
        call from its result), oldest first."""
        return _converted(await self._runner.acall(_read_history, *self._read_args()))

    def add_messages(self, messages: Sequence[BaseMessage]) -> None:
        """Append messages in one transaction (a message whose id the conversation already
        holds is not stored again)."""
        batch = prepare_messages(self._runner.store.limits, messages)
        if batch:
            self._runner.call(
                _messages.append_many, self._runner.owner, self.conversation_id, batch, write=True
            )

    async def aadd_messages(self, messages: Sequence[BaseMessage]) -> None:
        """Append messages in one transaction (see :meth:`add_messages`)."""
        batch = prepare_messages(self._runner.store.limits, messages)
        if batch:
            await self._runner.acall(
                _messages.append_many, self._runner.owner, self.conversation_id, batch, write=True
            )

    def clear(self) -> None:
        """Hide every message the conversation holds now (see the class docstring)."""
        self._runner.call(_views.hide_all, self._runner.owner, self.conversation_id, write=True)

    async def aclear(self) -> None:
        """Hide every message the conversation holds now (see the class docstring)."""
        await self._runner.acall(
            _views.hide_all, self._runner.owner, self.conversation_id, write=True
        )
