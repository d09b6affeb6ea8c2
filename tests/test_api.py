"""The public API: pinned names, and the sync and async surfaces kept identical."""

from __future__ import annotations

import inspect
import subprocess
import sys
from pathlib import Path
from typing import Any

import chatledger

ROOT = Path(__file__).resolve().parent.parent

PUBLIC = {
    "ANONYMOUS_USER_ID",
    "AsyncSearch",
    "Search",
    "SearchPage",
    "MessageHit",
    "ConversationHit",
    "ChunkHit",
    "KnowledgeSource",
    "HashingEmbedder",
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
    "AsyncSurveys",
    "AsyncTokens",
    "AsyncStreamWriter",
    "AsyncStreams",
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
    "Citation",
    "Citations",
    "Config",
    "ConfigurationError",
    "ConflictError",
    "Conversation",
    "ConversationMemory",
    "ConversationStatus",
    "Conversations",
    "CreatedApiKey",
    "DatabaseError",
    "EnsuredUser",
    "ErasureReport",
    "Feedback",
    "FeedbackSummary",
    "InsufficientBalanceError",
    "Knowledge",
    "KnowledgeChunk",
    "Ledger",
    "Limits",
    "Message",
    "MessageDetail",
    "MessageStatus",
    "MessageFeedback",
    "Messages",
    "MissingDependencyError",
    "NotFoundError",
    "NotPrimaryError",
    "Order",
    "Page",
    "ProductFeedback",
    "ProductFeedbackForms",
    "RetentionReport",
    "RetryPolicy",
    "Role",
    "SQLiteWALResetBugWarning",
    "SchemaOutOfDateError",
    "SurveyResponse",
    "Surveys",
    "Thumb",
    "TokenEntry",
    "Tokens",
    "ToolCall",
    "ToolCallStatus",
    "ToolStats",
    "Tools",
    "OutcomeUnknownError",
    "Stream",
    "StreamEvent",
    "StreamWriter",
    "Streams",
    "Trees",
    "TransientError",
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
}

TWINS = [
    (chatledger.Ledger, chatledger.AsyncLedger),
    (chatledger.UserScope, chatledger.AsyncUserScope),
    (chatledger.Users, chatledger.AsyncUsers),
    (chatledger.Conversations, chatledger.AsyncConversations),
    (chatledger.Messages, chatledger.AsyncMessages),
    (chatledger.MessageFeedback, chatledger.AsyncMessageFeedback),
    (chatledger.ProductFeedbackForms, chatledger.AsyncProductFeedbackForms),
    (chatledger.Citations, chatledger.AsyncCitations),
    (chatledger.Usage, chatledger.AsyncUsage),
    (chatledger.Visitors, chatledger.AsyncVisitors),
    (chatledger.Surveys, chatledger.AsyncSurveys),
    (chatledger.Tokens, chatledger.AsyncTokens),
    (chatledger.Trees, chatledger.AsyncTrees),
    (chatledger.Tools, chatledger.AsyncTools),
    (chatledger.Streams, chatledger.AsyncStreams),
    (chatledger.StreamWriter, chatledger.AsyncStreamWriter),
    (chatledger.AuditLog, chatledger.AsyncAuditLog),
    (chatledger.Knowledge, chatledger.AsyncKnowledge),
    (chatledger.ApiKeys, chatledger.AsyncApiKeys),
    (chatledger.AuditLogger, chatledger.AsyncAuditLogger),
    (chatledger.ConversationMemory, chatledger.AsyncConversationMemory),
]


def test_all_is_pinned():
    assert set(chatledger.__all__) == PUBLIC
    for name in chatledger.__all__:
        assert hasattr(chatledger, name)


def test_package_is_typed():
    assert (Path(chatledger.__file__).parent / "py.typed").exists()


def _public_methods(cls: type) -> dict[str, Any]:
    return {
        name: member
        for name, member in inspect.getmembers(cls)
        if (not name.startswith("_") or name in ("__enter__", "__aenter__"))
        and (inspect.isfunction(member) or isinstance(member, property))
    }


def test_sync_and_async_surfaces_have_the_same_methods_and_signatures():
    for sync_cls, async_cls in TWINS:
        sync_methods = _public_methods(sync_cls)
        async_methods = {
            name.replace("__aenter__", "__enter__"): member
            for name, member in _public_methods(async_cls).items()
        }
        assert sync_methods.keys() == async_methods.keys(), sync_cls
        for name, sync_member in sync_methods.items():
            async_member = async_methods[name]
            if isinstance(sync_member, property):
                continue
            assert (
                inspect.signature(sync_member).parameters.keys()
                == inspect.signature(async_member).parameters.keys()
            ), f"{sync_cls.__name__}.{name}"
            assert not inspect.iscoroutinefunction(sync_member), f"{sync_cls.__name__}.{name}"
            if name not in ("as_user", "transaction", "consistent_with"):
                assert inspect.iscoroutinefunction(async_member) or inspect.isasyncgenfunction(
                    async_member
                ), f"{async_cls.__name__}.{name}"


def test_every_public_method_has_a_docstring():
    for sync_cls, async_cls in TWINS:
        for cls in (sync_cls, async_cls):
            assert cls.__doc__, cls
            for name, member in _public_methods(cls).items():
                if not name.startswith("_"):
                    assert getattr(member, "__doc__", None), f"{cls.__name__}.{name}"


def test_generated_sync_surface_is_up_to_date():
    result = subprocess.run(
        [sys.executable, str(ROOT / "tools" / "generate_sync.py"), "--check"],
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_import_does_no_io_and_creates_no_engine():
    code = (
        "import sys, chatledger; "
        "assert 'psycopg' not in sys.modules and 'pymysql' not in sys.modules; "
        "print('ok')"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.stdout.strip() == "ok", result.stderr
