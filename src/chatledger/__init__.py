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

from ._async._api_keys import AsyncApiKeys
from ._async._audit import AsyncAuditLog, AsyncAuditLogger
from ._async._citations import AsyncCitations
from ._async._conversations import AsyncConversations
from ._async._feedback import AsyncMessageFeedback, AsyncProductFeedbackForms
from ._async._knowledge import AsyncKnowledge
from ._async._memory import AsyncConversationMemory
from ._async._messages import AsyncMessages
from ._async._search import AsyncSearch
from ._async._surveys import AsyncSurveys
from ._async._tokens import AsyncTokens
from ._async._usage import AsyncUsage
from ._async._users import AsyncUsers
from ._async._visitors import AsyncVisitors
from ._async.ledger import AsyncLedger, AsyncUserScope
from ._ops._common import UNSET
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
from ._sync._surveys import Surveys
from ._sync._tokens import Tokens
from ._sync._usage import Usage
from ._sync._users import Users
from ._sync._visitors import Visitors
from ._sync.ledger import Ledger, UserScope
from ._validate import Limits
from .config import Config
from .embedding import HashingEmbedder
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
    SchemaOutOfDateError,
    SQLiteWALResetBugWarning,
    TransientError,
    ValidationError,
)
from .records import (
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
    ErasureReport,
    Feedback,
    FeedbackSummary,
    KnowledgeChunk,
    KnowledgeSource,
    Message,
    MessageDetail,
    MessageHit,
    Order,
    Page,
    ProductFeedback,
    RetentionReport,
    Role,
    SearchPage,
    SurveyResponse,
    Thumb,
    TokenEntry,
    UpsertReport,
    UsageTotals,
    User,
    Visitor,
)

__version__ = "0.1.0"

__all__ = [
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
    "AsyncSurveys",
    "AsyncTokens",
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
    "Messages",
    "MissingDependencyError",
    "NotFoundError",
    "Order",
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
    "SurveyResponse",
    "Surveys",
    "Thumb",
    "TokenEntry",
    "Tokens",
    "TransientError",
    "UpsertReport",
    "Usage",
    "UsageTotals",
    "User",
    "UserScope",
    "Users",
    "ValidationError",
    "Visitor",
    "Visitors",
    "__version__",
]
