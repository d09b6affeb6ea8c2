"""Request and response models of the HTTP API, with the library's limits.

String limits are the schema's column sizes (``_schema``) and the default :class:`Limits`, so
the OpenAPI document states what the store accepts: no NUL character, at most so many
characters, not blank where the library strips and requires a value. Responses are the
library's records (frozen dataclasses), which Pydantic serialises as they are.

Numbers and booleans are JSON Schema's: a JSON ``false`` is not the integer 0 and ``"3"`` is
not 3 (``3.0`` is), as the document says (``type: integer``) and as the library refuses a
``bool`` where it counts.
"""

from __future__ import annotations

import re
import uuid
from decimal import Decimal
from typing import Annotated, Any, Final, Generic, Literal, TypeAlias, TypeVar, Union

from pydantic import (
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    EmailStr,
    Field,
    GetJsonSchemaHandler,
    PlainValidator,
    Strict,
    StrictBool,
    StringConstraints,
    WithJsonSchema,
)
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import CoreSchema
from typing_extensions import TypeAliasType

from .. import _schema as s
from .. import _validate as _check
from .._validate import Limits
from ..errors import ValidationError
from ..records import AuditCategory, AuditSeverity, Page, Role, Thumb

__all__ = [
    "ApiKeyCreate",
    "AuditRecord",
    "CitationCreate",
    "ConversationCreate",
    "ConversationUpdate",
    "JsonObject",
    "KnowledgeBulk",
    "KnowledgeUpsert",
    "MessageCreate",
    "PageOut",
    "ProductFeedbackCreate",
    "RatingIn",
    "StreamAbort",
    "StreamBegin",
    "StreamDelta",
    "StreamFinish",
    "SurveySubmit",
    "TokenCredit",
    "TokenDebit",
    "ToolCallIn",
    "ToolResultIn",
    "UserCreate",
    "UserUpdate",
    "VisitIn",
    "VisitorAnswers",
    "page_out",
]

_DEFAULTS = Limits()

#: No NUL anywhere (no backend stores it).
NO_NUL = r"^[^\x00]*$"
#: No NUL, and at least one character that is not white space.
NOT_BLANK = r"^[^\x00]*[^\s\x00][^\x00]*$"


_Key = Annotated[str, StringConstraints(max_length=200, pattern=NO_NUL)]
ExternalId = Annotated[
    str, StringConstraints(min_length=1, max_length=s.EXTERNAL_ID_MAX, pattern=NOT_BLANK)
]
Username = Annotated[
    str, StringConstraints(min_length=1, max_length=s.USERNAME_MAX, pattern=NOT_BLANK)
]
DisplayName = Annotated[str, StringConstraints(max_length=s.DISPLAY_NAME_MAX, pattern=NO_NUL)]
UserRole = Annotated[
    str, StringConstraints(min_length=1, max_length=s.USER_ROLE_MAX, pattern=NOT_BLANK)
]
Title = Annotated[str, StringConstraints(max_length=s.TITLE_MAX, pattern=NO_NUL)]
Intent = Annotated[str, StringConstraints(max_length=s.INTENT_MAX, pattern=NO_NUL)]
Content = Annotated[str, StringConstraints(max_length=_DEFAULTS.max_content_chars, pattern=NO_NUL)]
ModelName = Annotated[str, StringConstraints(max_length=s.MODEL_MAX, pattern=NO_NUL)]
RequestIdText = Annotated[str, StringConstraints(max_length=s.REQUEST_ID_MAX, pattern=NO_NUL)]
Reason = Annotated[str, StringConstraints(min_length=1, max_length=s.REASON_MAX, pattern=NOT_BLANK)]
Category = Annotated[
    str, StringConstraints(min_length=1, max_length=s.CATEGORY_MAX, pattern=NOT_BLANK)
]
Comment = Annotated[str, StringConstraints(max_length=s.FEEDBACK_COMMENT_MAX, pattern=NO_NUL)]
Snippet = Annotated[str, StringConstraints(max_length=s.SNIPPET_MAX, pattern=NO_NUL)]
AgentType = Annotated[str, StringConstraints(max_length=s.AGENT_TYPE_MAX, pattern=NO_NUL)]
Purpose = Annotated[str, StringConstraints(max_length=s.PURPOSE_MAX, pattern=NO_NUL)]
AnswerKey = Annotated[
    str, StringConstraints(min_length=1, max_length=s.ANSWER_KEY_MAX, pattern=NOT_BLANK)
]
AnswerValue = Annotated[str, StringConstraints(max_length=s.ANSWER_VALUE_MAX, pattern=NO_NUL)]
VisitorName = Annotated[
    str, StringConstraints(min_length=1, max_length=s.VISITOR_NAME_MAX, pattern=NOT_BLANK)
]
VisitorKey = Annotated[str, StringConstraints(min_length=1, max_length=255, pattern=NOT_BLANK)]
AgentName = Annotated[
    str, StringConstraints(min_length=1, max_length=s.AGENT_NAME_MAX, pattern=NOT_BLANK)
]
FormText = Annotated[str, StringConstraints(max_length=s.FORM_TEXT_MAX, pattern=NO_NUL)]
Source = Annotated[str, StringConstraints(min_length=1, max_length=s.SOURCE_MAX, pattern=NOT_BLANK)]
ApiKeyName = Annotated[
    str, StringConstraints(min_length=1, max_length=s.API_KEY_NAME_MAX, pattern=NOT_BLANK)
]
GrantKey = Annotated[
    str, StringConstraints(min_length=1, max_length=s.GRANT_KEY_MAX, pattern=NOT_BLANK)
]
EventType = Annotated[
    str, StringConstraints(min_length=1, max_length=s.EVENT_TYPE_MAX, pattern=NOT_BLANK)
]
Description = Annotated[str, StringConstraints(max_length=s.DESCRIPTION_MAX, pattern=NO_NUL)]
Email = Annotated[EmailStr, StringConstraints(max_length=s.EMAIL_MAX)]
Url = Annotated[str, StringConstraints(max_length=s.URL_MAX, pattern=r"^https?://[^\x00\s]+$")]


class _KeysMatching:
    """States a mapping's key rule as ``patternProperties`` with ``additionalProperties:
    false`` (``propertyNames`` alone is ignored by generators such as schemathesis, and
    ``patternProperties`` alone allows other keys), so that data valid by the document is
    valid for the server: a JSON key holds no NUL."""

    def __init__(self, pattern: str) -> None:
        self.pattern = pattern

    def __get_pydantic_json_schema__(
        self, core_schema: CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        schema = handler(core_schema)
        patterns = schema.get("patternProperties") or {
            self.pattern: schema.pop("additionalProperties", True)
        }
        schema["patternProperties"] = patterns
        schema["additionalProperties"] = False
        return schema


Answers = Annotated[dict[AnswerKey, AnswerValue], Field(max_length=100), _KeysMatching(NOT_BLANK)]
_Finite = Annotated[float, Strict(), Field(allow_inf_nan=False)]


def _json_integer(value: object) -> object:
    """An integer as JSON Schema has it: ``3`` and ``3.0``, not ``true`` or ``"3"``."""
    if isinstance(value, bool | str):
        raise ValueError("must be an integer")
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


#: JSON Schema's ``integer`` (pydantic's strict mode would refuse ``3.0``, its lax mode ``"3"``).
_WHOLE = BeforeValidator(_json_integer)
JsonValue = TypeAliasType(
    "JsonValue",
    Union[
        Annotated[str, StringConstraints(pattern=NO_NUL)],
        Annotated[int, Strict(), Field(ge=-(2**53), le=2**53)],
        _Finite,
        bool,
        "list[JsonValue]",
        "Annotated[dict[_Key, JsonValue], _KeysMatching(NO_NUL)]",
        None,
    ],
)
#: A JSON object (metadata, answers), up to ``Limits.max_metadata_bytes`` serialised.
JsonObject: TypeAlias = Annotated[dict[_Key, JsonValue], _KeysMatching(NO_NUL)]

_ISO_INSTANT = re.compile(r"\d{4}-\d\d-\d\d[Tt ]\d\d:\d\d(:\d\d(\.\d+)?)?([Zz]|[+-]\d\d:?\d\d)")


def _iso_instant(value: object) -> object:
    if isinstance(value, str) and not _ISO_INSTANT.fullmatch(value):
        raise ValueError("must be an RFC 3339 date-time with an offset, e.g. 2026-01-31T12:00:00Z")
    return value


#: An RFC 3339 date-time with its offset (a bare number is not a time here).
Instant = Annotated[AwareDatetime, BeforeValidator(_iso_instant)]

_Count = Annotated[int, Field(ge=0, le=s.INT32_MAX), _WHOLE]
_Tokens = Annotated[int, Field(ge=1, le=s.TOKEN_AMOUNT_MAX), _WHOLE]
#: An amount of money as JSON can hold it exactly: a plain decimal string or a whole number.
MONEY_TEXT = r"^(0|[1-9][0-9]{0,8})(\.[0-9]{1,9})?$"
_MONEY_MAX = 10**9 - 1


def _money(value: object) -> Decimal:
    """The library's money rule (its ValidationError, field and limit), then the shape JSON
    carries exactly: no float (a binary fraction), no exponent, sign or padding."""
    amount = _check.money("cost", value)
    if (isinstance(value, float) and not value.is_integer()) or (
        isinstance(value, str) and not re.fullmatch(MONEY_TEXT, value)
    ):
        raise ValidationError(
            "cost", 'must be a decimal string such as "0.000199" or a whole number'
        )
    assert amount is not None
    return amount


_Money = Annotated[
    Decimal,
    PlainValidator(_money),
    WithJsonSchema(
        {
            "anyOf": [
                {"type": "string", "pattern": MONEY_TEXT},
                {"type": "integer", "minimum": 0, "maximum": _MONEY_MAX},
            ]
        }
    ),
]


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid")


class UserCreate(_In):
    """A new user."""

    external_id: ExternalId | None = None
    email: Email | None = None
    username: Username | None = None
    display_name: DisplayName | None = None
    role: UserRole = "user"
    metadata: JsonObject | None = None


class UserUpdate(_In):
    """Fields to change; a field left out is kept, ``null`` clears it."""

    external_id: ExternalId | None = None
    email: Email | None = None
    username: Username | None = None
    display_name: DisplayName | None = None
    role: UserRole = "user"  # never cleared; left out, it is kept
    metadata: JsonObject | None = None


class ConversationCreate(_In):
    """A new conversation, of ``user_id`` (admin keys only) or of the caller."""

    user_id: uuid.UUID | None = None
    title: Title | None = None
    intent: Intent | None = None
    metadata: JsonObject | None = None


class ConversationUpdate(_In):
    """Fields to change; a field left out is kept, ``null`` clears it."""

    title: Title | None = None
    intent: Intent | None = None
    metadata: JsonObject | None = None


ToolCallId = Annotated[
    str, StringConstraints(min_length=1, max_length=s.TOOL_CALL_ID_MAX, pattern=NOT_BLANK)
]
ToolName = Annotated[
    str, StringConstraints(min_length=1, max_length=s.TOOL_NAME_MAX, pattern=NOT_BLANK)
]


class ToolCallIn(_In):
    """A tool call an assistant message asks for (docs/tools.md): the provider's call id
    (unique in the conversation), the tool's name and its arguments (a JSON object)."""

    id: ToolCallId
    name: ToolName
    arguments: JsonObject = Field(default_factory=dict)
    metadata: JsonObject | None = None


class _Usage(_In):
    """A message's text and what producing it used (every field as in the library's append)."""

    content: Content
    intent: Intent | None = None
    metadata: JsonObject | None = None
    model: ModelName | None = None
    input_tokens: _Count | None = None
    output_tokens: _Count | None = None
    cached_input_tokens: _Count | None = None
    reasoning_tokens: _Count | None = None
    cost: _Money | None = None
    latency_ms: _Count | None = None
    request_id: RequestIdText | None = None

    def message_fields(self) -> dict[str, Any]:
        """The keyword arguments of the library's append (edit, regenerate) but the content."""
        return {name: getattr(self, name) for name in _USAGE_FIELDS}


_USAGE_FIELDS: Final = tuple(name for name in _Usage.model_fields if name != "content")


class _ToolCalls(_In):
    """The tool calls an assistant message asks for."""

    tool_calls: (
        Annotated[list[ToolCallIn], Field(max_length=s.TOOL_CALLS_PER_MESSAGE_MAX)] | None
    ) = Field(
        default=None,
        description="Tool calls of an assistant message (ids unique in the message and the "
        "conversation; another role is a 422).",
    )

    def tool_call_list(self) -> list[dict[str, Any]] | None:
        """``tool_calls`` as the library takes them."""
        return None if self.tool_calls is None else [c.model_dump() for c in self.tool_calls]


class _MessageBody(_Usage, _ToolCalls):
    """What every appended message may carry."""

    charge: _Tokens | None = None
    charge_reason: Reason = "message"


class MessageCreate(_MessageBody):
    """A message to append. ``charge`` debits the conversation owner's tokens in the same
    transaction (409 ``insufficient_balance`` and nothing written when they do not cover it)."""

    role: Role
    parent_id: uuid.UUID | None = Field(
        default=None,
        description="Append under this message of the conversation (a branch); without it, "
        "under the active leaf.",
    )
    tool_call_id: ToolCallId | None = Field(
        default=None,
        description="The call a `tool` message answers: it must be pending and asked on this "
        "message's path (404 / 409 naming `tool_call_id` otherwise; another role is a 422).",
    )
    tool_status: Literal["success", "error"] | None = Field(
        default=None, description="How the tool ended (with `tool_call_id`; default `success`)."
    )
    tool_latency_ms: _Count | None = Field(
        default=None, description="How long the tool ran (with `tool_call_id`)."
    )


class ToolResultIn(_In):
    """The answer to a tool call: appended as a ``tool`` message (under the active leaf, or
    ``parent_id``) that marks the call ``success`` or ``error``."""

    content: Content
    status: Literal["success", "error"] = "success"
    latency_ms: _Count | None = None
    metadata: JsonObject | None = None
    parent_id: uuid.UUID | None = None


#: A batch of deltas (``Limits.max_delta_chars``) or the rest of a reply at its finish.
DeltaText = Annotated[str, StringConstraints(max_length=_DEFAULTS.max_delta_chars, pattern=NO_NUL)]
StatusReason = Annotated[str, StringConstraints(max_length=s.REASON_MAX, pattern=NO_NUL)]
_Chunk = Annotated[int, Field(ge=0, le=s.INT32_MAX), _WHOLE]
_Lease = Annotated[int, Field(ge=1, le=86_400), _WHOLE]


class StreamBegin(_In):
    """Begin a streamed assistant reply (state ``streaming``, empty content): it takes its
    ``seq`` and place in the tree at once. ``charge`` reserves an estimate of the owner's
    tokens (409 ``insufficient_balance`` and nothing written when it is not covered); the
    finish settles the real amount."""

    model: ModelName | None = None
    intent: Intent | None = None
    metadata: JsonObject | None = None
    request_id: RequestIdText | None = None
    parent_id: uuid.UUID | None = Field(
        default=None,
        description="Reply under this message of the conversation (a branch); without it, "
        "under the active leaf.",
    )
    charge: _Tokens | None = None
    charge_reason: Reason = "message"
    lease_seconds: _Lease = Field(
        default=60,
        description="A reply with no delta for this long is closed as `incomplete` by the "
        "sweep (its writer is taken for dead).",
    )


class StreamDelta(_In):
    """One flushed batch of deltas: chunk ``index`` (0, 1, 2, ... with no gap). Sending a
    stored chunk again with the same text changes nothing (a safe retry)."""

    index: _Chunk
    text: DeltaText


class StreamFinish(_ToolCalls):
    """End a streamed reply: ``text`` is what was not sent as a delta yet; the final usage
    and ``status`` (``completed``, or ``incomplete`` / ``failed`` with a ``reason``: a
    ``reason`` with ``completed`` is a 422). ``charge`` is the real amount, debited as the
    hold taken at the begin is released; ``tool_calls`` (a completed reply only) are the calls
    the reply asks for. Finishing again in the same state returns the message (a safe
    retry)."""

    text: DeltaText = ""
    status: Literal["completed", "incomplete", "failed"] = "completed"
    reason: StatusReason | None = None
    model: ModelName | None = None
    input_tokens: _Count | None = None
    output_tokens: _Count | None = None
    cached_input_tokens: _Count | None = None
    reasoning_tokens: _Count | None = None
    cost: _Money | None = None
    latency_ms: _Count | None = None
    charge: _Tokens | None = None


class StreamAbort(_In):
    """End a streamed reply as ``incomplete`` (``failed: true``: ``failed``) with
    ``reason``, keeping what was written; its hold is released, nothing is charged."""

    reason: StatusReason
    failed: StrictBool = False
    text: DeltaText = ""


class EditIn(_Usage):
    """The new version of a user message: appended as its sibling, made the active leaf."""


class RegenerateIn(_MessageBody):
    """A regenerated answer: appended as a sibling of the assistant message, made the
    active leaf (``charge`` as for an append)."""


class SwitchIn(_In):
    """The message whose newest leaf becomes the active leaf (a sibling the user picked)."""

    message_id: uuid.UUID


class ForkIn(_In):
    """Fork the conversation at ``message_id`` into a new one (of ``user_id``: admin keys
    only; else of the caller)."""

    message_id: uuid.UUID
    title: Title | None = None
    user_id: uuid.UUID | None = None


class RatingIn(_In):
    """The caller's rating of a message: a thumb, a ``score`` within ``scale`` (``[min, max]``,
    as the library's ``scale=(min, max)``, ``min < max``), or both; neither is a 422."""

    thumb: Thumb | None = None
    score: _Finite | None = None
    scale: tuple[_Finite, _Finite] = (1, 5)
    categories: Annotated[list[Category], Field(max_length=20)] | None = None
    comment: Comment | None = None


class CitationCreate(_In):
    """A source the assistant message cites: a knowledge chunk, an http(s) URL, or both.
    ``start_char`` and ``end_char`` come together (``end_char >= start_char``)."""

    chunk_id: uuid.UUID | None = None
    url: Url | None = None
    title: Title | None = None
    snippet: Snippet | None = None
    start_char: _Count | None = None
    end_char: _Count | None = None
    score: _Finite | None = None
    rank: _Count | None = None


class SurveySubmit(_In):
    """Answers to a survey; ``grant`` (admin keys only) credits tokens once per user."""

    answers: JsonObject
    user_id: uuid.UUID | None = None
    grant: Annotated[int, Field(ge=0, le=s.TOKEN_AMOUNT_MAX), _WHOLE] = 0


class VisitIn(_In):
    """A visit of a person or agent."""

    name: VisitorName
    agent_type: AgentType | None = None
    purpose: Purpose | None = None
    answers: Answers | None = None
    visitor_key: VisitorKey | None = None


class VisitorAnswers(_In):
    """Answers to set on a visitor; ``replace`` drops the others."""

    answers: Answers
    replace: StrictBool = False


class ProductFeedbackCreate(_In):
    """A product-feedback form."""

    agent_name: AgentName
    agent_type: AgentType | None = None
    issues: FormText | None = None
    feature_requests: FormText | None = None
    additional_comments: FormText | None = None
    usability_rating: Annotated[int, Field(ge=1, le=10), _WHOLE] | None = None


class KnowledgeUpsert(_In):
    """A knowledge chunk, keyed by ``(source, external_id)``."""

    source: Source
    external_id: ExternalId
    content: Content
    title: Title | None = None
    metadata: JsonObject | None = None


class KnowledgeAdd(_In):
    """A knowledge chunk without a key of the application's: its ``external_id`` becomes its
    id (32 hex digits)."""

    source: Source
    content: Content
    title: Title | None = None
    metadata: JsonObject | None = None


class KnowledgeBulk(_In):
    """Chunks to upsert in one transaction (all or none)."""

    chunks: Annotated[list[KnowledgeUpsert], Field(max_length=1000)]


class ApiKeyCreate(_In):
    """A new API key, of ``user_id`` (admin keys only) or of the caller; ``expires_at``, when
    given, is in the future."""

    user_id: uuid.UUID | None = None
    name: ApiKeyName | None = None
    expires_at: Instant | None = None


class TokenDebit(_In):
    """A debit of a user's tokens (admin keys only)."""

    user_id: uuid.UUID
    amount: _Tokens
    reason: Reason


class TokenCredit(TokenDebit):
    """A credit of a user's tokens (admin keys only); with ``grant_key``, at most once per
    user and key."""

    grant_key: GrantKey | None = None


class AuditRecord(_In):
    """An application event for the audit log (admin keys only)."""

    event_type: EventType
    user_id: uuid.UUID | None = None
    category: AuditCategory = "general"
    severity: AuditSeverity = "info"
    description: Description | None = None
    metadata: JsonObject | None = None


T = TypeVar("T")


class PageOut(BaseModel, Generic[T]):
    """One page of a listing. Pass ``last_cursor`` as ``after`` for the next page in the same
    order, ``first_cursor`` as ``before`` for the previous one. ``has_more`` says whether more
    items lie beyond this page in the direction it was read."""

    data: list[T]
    has_more: bool
    first_id: str | None
    last_id: str | None
    first_cursor: str | None
    last_cursor: str | None


def _id_of(item: Any) -> str:
    value = getattr(item, "id", None)
    return str(value if value is not None else getattr(item, "seq", ""))


def page_out(page: Page[Any]) -> dict[str, Any]:
    """A library page as the API's page document."""
    items = page.items
    return {
        "data": items,
        "has_more": page.has_more,
        "first_id": _id_of(items[0]) if items else None,
        "last_id": _id_of(items[-1]) if items else None,
        "first_cursor": page.first_cursor,
        "last_cursor": page.last_cursor,
    }


Order: TypeAlias = Literal["asc", "desc"]
