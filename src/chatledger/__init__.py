"""chatledger: the database layer every LLM chat app writes by hand, done once.

Users, conversations and append-only messages with usage metadata, on SQLite, PostgreSQL and
MariaDB, with the same surface in sync (:class:`Ledger`) and async (:class:`AsyncLedger`)::

    from chatledger import Ledger

    with Ledger("sqlite:///chat.db") as ledger:
        user = ledger.users.get_or_create("auth0|42")
        chat = ledger.conversations.create(user.id, title="Hello")
        ledger.messages.append(chat.id, "user", "Hi!")
        history = ledger.messages.last(chat.id, 20)
"""

from __future__ import annotations

import inspect
import typing
from importlib import import_module
from typing import TYPE_CHECKING, Any

from .errors import (
    AuthenticationError,
    ChatledgerError,
    ChatledgerWarning,
    ConfigurationError,
    ConflictError,
    DatabaseError,
    InsufficientBalanceError,
    MissingDependencyError,
    NotFoundError,
    NotPrimaryError,
    OutcomeUnknownError,
    SchemaOutOfDateError,
    SQLiteWALResetBugWarning,
    TransientError,
    ValidationError,
)

if TYPE_CHECKING:
    from ._async._api_keys import AsyncApiKeys
    from ._async._audit import AsyncAuditLog, AsyncAuditLogger
    from ._async._citations import AsyncCitations
    from ._async._conversations import AsyncConversations
    from ._async._feedback import AsyncMessageFeedback, AsyncProductFeedbackForms
    from ._async._knowledge import AsyncKnowledge
    from ._async._memory import AsyncConversationMemory
    from ._async._messages import AsyncMessages
    from ._async._search import AsyncSearch
    from ._async._streams import AsyncStreams, AsyncStreamWriter
    from ._async._surveys import AsyncSurveys
    from ._async._tokens import AsyncTokens
    from ._async._tools import AsyncTools
    from ._async._trees import AsyncTrees
    from ._async._usage import AsyncUsage
    from ._async._users import AsyncUsers
    from ._async._visitors import AsyncVisitors
    from ._async.ledger import AsyncLedger, AsyncUserScope
    from ._ops._common import UNSET, Unset
    from ._run.retry import RetryPolicy
    from ._sync._api_keys import ApiKeys
    from ._sync._audit import AuditLog, AuditLogger
    from ._sync._citations import Citations
    from ._sync._conversations import Conversations
    from ._sync._feedback import MessageFeedback, ProductFeedbackForms
    from ._sync._knowledge import Knowledge
    from ._sync._memory import ConversationMemory
    from ._sync._messages import Messages
    from ._sync._search import Search
    from ._sync._streams import Streams, StreamWriter
    from ._sync._surveys import Surveys
    from ._sync._tokens import Tokens
    from ._sync._tools import Tools
    from ._sync._trees import Trees
    from ._sync._usage import Usage
    from ._sync._users import Users
    from ._sync._visitors import Visitors
    from ._sync.ledger import Ledger, UserScope
    from ._validate import Limits
    from .config import Config
    from .embedding import HashingEmbedder
    from .records import (
        ANONYMOUS_USER_ID,
        ApiKey,
        AuditCategory,
        AuditEvent,
        AuditSeverity,
        AuditVerification,
        ChunkHit,
        Citation,
        Conversation,
        ConversationHit,
        ConversationStatus,
        CreatedApiKey,
        EnsuredUser,
        ErasureReport,
        Feedback,
        FeedbackSummary,
        KnowledgeChunk,
        KnowledgeSource,
        Message,
        MessageDetail,
        MessageHit,
        MessageStatus,
        Order,
        Page,
        ProductFeedback,
        RetentionReport,
        Role,
        SearchPage,
        Stream,
        StreamEvent,
        SurveyResponse,
        Thumb,
        TokenEntry,
        ToolCall,
        ToolCallStatus,
        ToolStats,
        UpsertReport,
        UsageTotals,
        User,
        VectorEngine,
        Visitor,
    )

__version__ = "0.1.0"

#: Public name -> the private module it is imported from on first use.
_LAZY: dict[str, str] = {
    "AsyncApiKeys": "._async._api_keys",
    "AsyncAuditLog": "._async._audit",
    "AsyncAuditLogger": "._async._audit",
    "AsyncCitations": "._async._citations",
    "AsyncConversations": "._async._conversations",
    "AsyncMessageFeedback": "._async._feedback",
    "AsyncProductFeedbackForms": "._async._feedback",
    "AsyncKnowledge": "._async._knowledge",
    "AsyncConversationMemory": "._async._memory",
    "AsyncMessages": "._async._messages",
    "AsyncSearch": "._async._search",
    "AsyncStreams": "._async._streams",
    "AsyncStreamWriter": "._async._streams",
    "AsyncTrees": "._async._trees",
    "AsyncTools": "._async._tools",
    "AsyncSurveys": "._async._surveys",
    "AsyncTokens": "._async._tokens",
    "AsyncUsage": "._async._usage",
    "AsyncUsers": "._async._users",
    "AsyncVisitors": "._async._visitors",
    "AsyncLedger": "._async.ledger",
    "AsyncUserScope": "._async.ledger",
    "UNSET": "._ops._common",
    "Unset": "._ops._common",
    "RetryPolicy": "._run.retry",
    "ApiKeys": "._sync._api_keys",
    "AuditLog": "._sync._audit",
    "AuditLogger": "._sync._audit",
    "Citations": "._sync._citations",
    "Conversations": "._sync._conversations",
    "MessageFeedback": "._sync._feedback",
    "ProductFeedbackForms": "._sync._feedback",
    "Knowledge": "._sync._knowledge",
    "ConversationMemory": "._sync._memory",
    "Messages": "._sync._messages",
    "Search": "._sync._search",
    "HashingEmbedder": ".embedding",
    "ChunkHit": ".records",
    "ConversationHit": ".records",
    "KnowledgeSource": ".records",
    "MessageHit": ".records",
    "SearchPage": ".records",
    "Streams": "._sync._streams",
    "StreamWriter": "._sync._streams",
    "Trees": "._sync._trees",
    "Tools": "._sync._tools",
    "Surveys": "._sync._surveys",
    "Tokens": "._sync._tokens",
    "Usage": "._sync._usage",
    "Users": "._sync._users",
    "Visitors": "._sync._visitors",
    "Ledger": "._sync.ledger",
    "UserScope": "._sync.ledger",
    "Limits": "._validate",
    "Config": ".config",
    "ANONYMOUS_USER_ID": ".records",
    "ApiKey": ".records",
    "AuditCategory": ".records",
    "AuditEvent": ".records",
    "AuditSeverity": ".records",
    "AuditVerification": ".records",
    "Citation": ".records",
    "Conversation": ".records",
    "ConversationStatus": ".records",
    "CreatedApiKey": ".records",
    "EnsuredUser": ".records",
    "ErasureReport": ".records",
    "Feedback": ".records",
    "FeedbackSummary": ".records",
    "KnowledgeChunk": ".records",
    "Message": ".records",
    "MessageDetail": ".records",
    "MessageStatus": ".records",
    "Stream": ".records",
    "StreamEvent": ".records",
    "Order": ".records",
    "Page": ".records",
    "ProductFeedback": ".records",
    "RetentionReport": ".records",
    "Role": ".records",
    "SurveyResponse": ".records",
    "Thumb": ".records",
    "TokenEntry": ".records",
    "ToolCall": ".records",
    "ToolCallStatus": ".records",
    "ToolStats": ".records",
    "UpsertReport": ".records",
    "UsageTotals": ".records",
    "User": ".records",
    "VectorEngine": ".records",
    "Visitor": ".records",
}

__all__ = [
    "ANONYMOUS_USER_ID",
    "UNSET",
    "ApiKey",
    "ApiKeys",
    "AsyncApiKeys",
    "AsyncAuditLog",
    "AsyncAuditLogger",
    "AsyncCitations",
    "AsyncConversationMemory",
    "AsyncConversations",
    "AsyncKnowledge",
    "AsyncLedger",
    "AsyncMessageFeedback",
    "AsyncMessages",
    "AsyncProductFeedbackForms",
    "AsyncSearch",
    "AsyncStreamWriter",
    "AsyncStreams",
    "AsyncSurveys",
    "AsyncTokens",
    "AsyncTools",
    "AsyncTrees",
    "AsyncUsage",
    "AsyncUserScope",
    "AsyncUsers",
    "AsyncVisitors",
    "AuditCategory",
    "AuditEvent",
    "AuditLog",
    "AuditLogger",
    "AuditSeverity",
    "AuditVerification",
    "AuthenticationError",
    "ChatledgerError",
    "ChatledgerWarning",
    "ChunkHit",
    "Citation",
    "Citations",
    "Config",
    "ConfigurationError",
    "ConflictError",
    "Conversation",
    "ConversationHit",
    "ConversationMemory",
    "ConversationStatus",
    "Conversations",
    "CreatedApiKey",
    "DatabaseError",
    "EnsuredUser",
    "ErasureReport",
    "Feedback",
    "FeedbackSummary",
    "HashingEmbedder",
    "InsufficientBalanceError",
    "Knowledge",
    "KnowledgeChunk",
    "KnowledgeSource",
    "Ledger",
    "Limits",
    "Message",
    "MessageDetail",
    "MessageFeedback",
    "MessageHit",
    "MessageStatus",
    "Messages",
    "MissingDependencyError",
    "NotFoundError",
    "NotPrimaryError",
    "Order",
    "OutcomeUnknownError",
    "Page",
    "ProductFeedback",
    "ProductFeedbackForms",
    "RetentionReport",
    "RetryPolicy",
    "Role",
    "SQLiteWALResetBugWarning",
    "SchemaOutOfDateError",
    "Search",
    "SearchPage",
    "Stream",
    "StreamEvent",
    "StreamWriter",
    "Streams",
    "SurveyResponse",
    "Surveys",
    "Thumb",
    "TokenEntry",
    "Tokens",
    "ToolCall",
    "ToolCallStatus",
    "ToolStats",
    "Tools",
    "TransientError",
    "Trees",
    "Unset",
    "UpsertReport",
    "Usage",
    "UsageTotals",
    "User",
    "UserScope",
    "Users",
    "ValidationError",
    "VectorEngine",
    "Visitor",
    "Visitors",
    "__version__",
]


def _as_public(value: object, module: str = __name__) -> None:
    """Name a re-exported class ``chatledger.<name>`` (or ``<module>.<name>``: a public
    package's own re-exports) in reprs, tracebacks and pickles (as httpx does). Its own string
    annotations are resolved first: ``typing.get_type_hints`` looks names up in the module
    ``__module__`` names, which would no longer be theirs."""
    if not isinstance(value, type) or not value.__module__.startswith("chatledger."):
        return
    own = inspect.get_annotations(value)
    if own:
        hints = typing.get_type_hints(value, include_extras=True)
        value.__annotations__ = {name: hints[name] for name in own}
        for field in getattr(value, "__dataclass_fields__", {}).values():
            field.type = hints[field.name]  # pydantic reads the fields' types
    value.__module__ = module


for _name in __all__:
    if _name not in _LAZY and _name != "__version__":
        _as_public(globals()[_name])


def __getattr__(name: str) -> Any:
    """Import a public name on first use (PEP 562), and keep it as a module attribute."""
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(import_module(module, __name__), name)
    _as_public(value)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
