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

from ._async._conversations import AsyncConversations
from ._async._messages import AsyncMessages
from ._async._users import AsyncUsers
from ._async.ledger import AsyncLedger, AsyncUserScope
from ._ops._common import UNSET
from ._retry import RetryPolicy
from ._sync._conversations import Conversations
from ._sync._messages import Messages
from ._sync._users import Users
from ._sync.ledger import Ledger, UserScope
from ._validate import Limits
from .config import Config
from .errors import (
    ChatledgerError,
    ChatledgerWarning,
    ConfigurationError,
    ConflictError,
    DatabaseError,
    MissingDependencyError,
    NotFoundError,
    SchemaOutOfDateError,
    SQLiteWALResetBugWarning,
    TransientError,
    ValidationError,
)
from .records import Conversation, ConversationStatus, Message, Order, Page, Role, User

__version__ = "0.1.0"

__all__ = [
    "UNSET",
    "AsyncConversations",
    "AsyncLedger",
    "AsyncMessages",
    "AsyncUserScope",
    "AsyncUsers",
    "ChatledgerError",
    "ChatledgerWarning",
    "Config",
    "ConfigurationError",
    "ConflictError",
    "Conversation",
    "ConversationStatus",
    "Conversations",
    "DatabaseError",
    "Ledger",
    "Limits",
    "Message",
    "Messages",
    "MissingDependencyError",
    "NotFoundError",
    "Order",
    "Page",
    "RetryPolicy",
    "Role",
    "SQLiteWALResetBugWarning",
    "SchemaOutOfDateError",
    "TransientError",
    "User",
    "UserScope",
    "Users",
    "ValidationError",
    "__version__",
]
