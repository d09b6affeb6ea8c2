"""Other applications' JSON, turned into chatledger rows, and the operations that write them.

- ChatGPT's ``conversations.json``: each conversation's ``mapping`` is a tree of nodes (edits
  and regenerations branch it), imported whole as a message tree (docs/trees.md): parents
  kept, ``seq`` in time order, the active leaf at ``current_node`` (the newest leaf under it).
  Nodes without a message, with no text, or hidden from the conversation
  (``metadata.is_visually_hidden_from_conversation``, the empty system prompt) are skipped,
  their children hung on the nearest kept ancestor. What has no place in a message is counted
  (:data:`NOT_IMPORTED` kinds): images, attached files, "thoughts" (reasoning).
- Visitors and feedback files of the visitor-registry apps (seed 000): a list of visitor
  objects (``id``, ``name``, ``agent_type``, ``purpose``, ``visit_time``, ``visit_count``,
  ``answers``) and a list of feedback objects (``id``, ``agent_name``, ``agent_type``,
  ``submission_time``, ``issues``, ``feature_requests``, ``usability_rating``,
  ``additional_comments``). Times without an offset are UTC (SQLite's ``CURRENT_TIMESTAMP``).

Ids are deterministic (the source's UUID, else a UUIDv5 of the source's id), so importing the
same file twice finds every row the second time and writes nothing. Each parser raises
:class:`ValidationError` naming the record and the field.
"""

from __future__ import annotations

import heapq
import json
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Final

from sqlalchemy import Connection, select, true, update

from .. import _bulk
from .._schema import (
    AGENT_NAME_MAX,
    AGENT_TYPE_MAX,
    ANSWER_KEY_MAX,
    ANSWER_VALUE_MAX,
    FORM_TEXT_MAX,
    MODEL_MAX,
    PURPOSE_MAX,
    TITLE_MAX,
    VISITOR_NAME_MAX,
    conversations,
    messages,
    product_feedback,
    visitor_answers,
    visitors,
)
from .._validate import Limits
from ..errors import ValidationError
from . import transfer
from . import visitors as _visitors

__all__ = [
    "NAMESPACE",
    "NOT_IMPORTED",
    "ParsedConversation",
    "ParsedVisitor",
    "chatgpt_conversation",
    "feedback_row",
    "insert_conversation",
    "insert_visitors",
    "stable_id",
    "visitor_records",
]

#: The namespace of the UUIDv5 ids given to imported records that have no UUID of their own.
NAMESPACE: Final = uuid.UUID("6f1c8c7e-5b7a-4f0e-9d8e-2a3c4b5d6e7f")
_ROLES: Final = {"user": "user", "assistant": "assistant", "system": "system", "tool": "tool"}


def stable_id(kind: str, source_id: object) -> uuid.UUID:
    """The source's id when it is a UUID, else a UUIDv5 of ``kind`` and the id."""
    if isinstance(source_id, str):
        try:
            return uuid.UUID(source_id)
        except ValueError:
            pass
    return uuid.uuid5(NAMESPACE, f"{kind}:{source_id}")


def _text(
    where: str, name: str, value: object, limit: int, *, required: bool = False
) -> str | None:
    if value is None or (isinstance(value, str) and not value.strip() and not required):
        if required:
            raise ValidationError(f"{where}.{name}", "is required")
        return None
    if not isinstance(value, str):
        raise ValidationError(f"{where}.{name}", f"must be a string, not {type(value).__name__}")
    if "\x00" in value:
        raise ValidationError(f"{where}.{name}", "contains a NUL character")
    if required and not value.strip():
        raise ValidationError(f"{where}.{name}", "must not be blank")
    if len(value) > limit:
        raise ValidationError(
            f"{where}.{name}", f"{len(value)} characters exceeds the limit of {limit}", limit=limit
        )
    return value


def _time(where: str, name: str, value: object, default: datetime | None = None) -> datetime:
    """An ISO 8601 string (no offset: UTC) or epoch seconds."""
    if value is None:
        if default is not None:
            return default
        raise ValidationError(f"{where}.{name}", "is required")
    try:
        if isinstance(value, bool):
            raise TypeError
        if isinstance(value, int | float):
            return datetime.fromtimestamp(value, UTC)
        if isinstance(value, str):
            moment = datetime.fromisoformat(value.strip().replace(" ", "T", 1))
            if moment.tzinfo is None:
                return moment.replace(tzinfo=UTC)
            return moment.astimezone(UTC)
        raise TypeError
    except (TypeError, ValueError, OverflowError, OSError):
        raise ValidationError(
            f"{where}.{name}", f"{value!r} is not an ISO 8601 time or epoch seconds"
        ) from None


@dataclass(slots=True)
class ParsedConversation:
    """A conversation and its messages, as rows (parents first), and what of the source
    could not be imported, by kind."""

    conversation: dict[str, Any]
    messages: list[dict[str, Any]] = field(default_factory=list)
    not_imported: dict[str, int] = field(default_factory=dict)


#: What a ChatGPT export holds that chatledger messages do not: counted, not imported.
NOT_IMPORTED: Final = ("images", "files", "thoughts")
_THOUGHTS: Final = frozenset({"thoughts", "reasoning_recap"})


def _parts(content: Mapping[str, Any]) -> str:
    parts = content.get("parts")
    if isinstance(parts, list):
        texts = [part for part in parts if isinstance(part, str)]
        texts += [
            part["text"]
            for part in parts
            if isinstance(part, Mapping) and isinstance(part.get("text"), str)
        ]
        return "\n".join(texts)
    text = content.get("text")
    return text if isinstance(text, str) else ""


def _object(value: object) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _nodes(mapping: Mapping[str, Any], where: str) -> dict[str, Mapping[str, Any]]:
    nodes: dict[str, Mapping[str, Any]] = {}
    for node_id, node in mapping.items():
        if not isinstance(node, Mapping):
            raise ValidationError(f"{where}.mapping[{node_id!r}]", "must be an object")
        nodes[str(node_id)] = node
    for node_id in nodes:  # the parent links must end at a root
        seen: set[str] = set()
        step: object = node_id
        while isinstance(step, str) and step in nodes:
            if step in seen:
                raise ValidationError(f"{where}.mapping", f"node {step!r} is its own ancestor")
            seen.add(step)
            step = nodes[step].get("parent")
    return nodes


def _uncounted(
    message: Mapping[str, Any], content: Mapping[str, Any], tally: dict[str, int]
) -> None:
    """Count what of ``message`` has no place in a chatledger message."""
    kind = content.get("content_type")
    if kind in _THOUGHTS:
        tally["thoughts"] += 1
    parts = content.get("parts")
    if isinstance(parts, list):
        tally["images"] += sum(
            1
            for part in parts
            if isinstance(part, Mapping) and "image" in str(part.get("content_type", ""))
        )
    attachments = _object(message.get("metadata")).get("attachments")
    if isinstance(attachments, list):
        tally["files"] += len(attachments)


def chatgpt_conversation(
    doc: object, index: int, owner: uuid.UUID, limits: Limits
) -> ParsedConversation:
    """One conversation of a ChatGPT ``conversations.json``, for ``owner``: the whole tree."""
    where = f"conversation {index}"
    if not isinstance(doc, Mapping):
        raise ValidationError(where, f"must be an object, not {type(doc).__name__}")
    source_id = doc.get("conversation_id") or doc.get("id")
    if not isinstance(source_id, str) or not source_id:
        raise ValidationError(f"{where}.id", "is required (conversation_id or id)")
    where = f"conversation {index} ({source_id})"
    mapping = doc.get("mapping")
    if not isinstance(mapping, Mapping):
        raise ValidationError(f"{where}.mapping", "must be an object of nodes")
    nodes = _nodes(mapping, where)
    title = _text(where, "title", doc.get("title"), TITLE_MAX)
    created = _time(where, "create_time", doc.get("create_time"))
    conversation_id = uuid.uuid5(NAMESPACE, f"chatgpt:{owner}:{source_id}")
    tally = dict.fromkeys(NOT_IMPORTED, 0)
    kept: dict[str, dict[str, Any]] = {}
    for node_id, node in nodes.items():
        row = _message_row(node, node_id, where, owner, source_id, created, limits, tally)
        if row is not None:
            row["conversation_id"] = conversation_id
            kept[node_id] = row

    # The nearest kept ancestor of each node (skipped nodes pass their children up).
    def kept_parent(node_id: str) -> str | None:
        step = nodes[node_id].get("parent")
        while isinstance(step, str) and step in nodes and step not in kept:
            step = nodes[step].get("parent")
        return step if isinstance(step, str) and step in kept else None

    parents = {node_id: kept_parent(node_id) for node_id in kept}
    ordered = _in_time_order(kept, parents)
    seqs: dict[str, int] = {}
    children: dict[str | None, int] = {}
    for node_id in ordered:
        row, parent = kept[node_id], parents[node_id]
        seqs[node_id] = row["seq"] = len(seqs) + 1
        row["parent_seq"] = None if parent is None else seqs[parent]
        row["depth"] = 0 if parent is None else kept[parent]["depth"] + 1
        row["sibling_index"] = children.get(parent, 0)
        children[parent] = row["sibling_index"] + 1
        row["on_active_path"] = False
        row["status"] = "completed"
        if parent is not None and row["created_at"] < kept[parent]["created_at"]:
            row["created_at"] = kept[parent]["created_at"]  # a reply never precedes its parent
    leaf = _active_leaf(doc.get("current_node"), nodes, kept, parents, ordered, kept_parent)
    step = leaf
    while step is not None:
        kept[step]["on_active_path"] = True
        step = parents[step]
    rows = [kept[node_id] for node_id in ordered]
    path_length = sum(1 for row in rows if row["on_active_path"])
    updated = _time(where, "update_time", doc.get("update_time"), default=created)
    last = max((row["created_at"] for row in rows), default=None)
    conversation = {
        "id": conversation_id,
        "owner_id": owner,
        "title": title,
        "intent": None,
        "status": "active",
        "message_count": len(rows),
        "last_message_at": last,
        "last_activity_at": last or created,
        "archived_at": None,
        "metadata": {"source": "chatgpt", "chatgpt_id": source_id},
        "created_at": created,
        "updated_at": max(updated, last or created),
        "active_leaf_seq": None if leaf is None else seqs[leaf],
        "path_length": path_length,
        "forked_from_conversation_id": None,
        "forked_from_message_id": None,
    }
    return ParsedConversation(conversation, rows, {k: v for k, v in tally.items() if v})


def _message_row(
    node: Mapping[str, Any],
    node_id: str,
    where: str,
    owner: uuid.UUID,
    source_id: str,
    created: datetime,
    limits: Limits,
    tally: dict[str, int],
) -> dict[str, Any] | None:
    """The message row of one node, or ``None`` for a node that is skipped."""
    message = node.get("message")
    if not isinstance(message, Mapping):
        return None
    node_where = f"{where}, message {message.get('id') or node_id!r}"
    author = _object(message.get("author"))
    role = _ROLES.get(str(author.get("role")))
    if role is None:
        raise ValidationError(f"{node_where}.author.role", f"unknown role {author.get('role')!r}")
    meta = _object(message.get("metadata"))
    content = _object(message.get("content"))
    _uncounted(message, content, tally)
    if content.get("content_type") in _THOUGHTS:
        return None
    text = _parts(content)
    if not text.strip() or meta.get("is_visually_hidden_from_conversation"):
        return None
    if "\x00" in text:
        raise ValidationError(f"{node_where}.content", "contains a NUL character")
    if len(text) > limits.max_content_chars:
        raise ValidationError(
            f"{node_where}.content",
            f"{len(text):,} characters exceeds the limit of {limits.max_content_chars:,}",
            limit=limits.max_content_chars,
        )
    model = _text(node_where, "metadata.model_slug", meta.get("model_slug"), MODEL_MAX)
    extra: dict[str, Any] = {"chatgpt_id": message.get("id") or node_id}
    if content.get("content_type") not in (None, "text"):
        extra["content_type"] = content.get("content_type")
    if author.get("name"):
        extra["author_name"] = author.get("name")
    return {
        "id": uuid.uuid5(NAMESPACE, f"chatgpt:{owner}:{source_id}:{extra['chatgpt_id']}"),
        "role": role,
        "content": text,
        "intent": None,
        "metadata": extra,
        "model": model,
        "input_tokens": None,
        "output_tokens": None,
        "cost": None,
        "latency_ms": None,
        "request_id": None,
        "idempotency_key": None,
        "created_at": _time(node_where, "create_time", message.get("create_time"), default=created),
    }


def _in_time_order(
    kept: Mapping[str, Mapping[str, Any]], parents: Mapping[str, str | None]
) -> list[str]:
    """The kept nodes in time order, each after its parent (the append order a chat app
    would have produced)."""
    waiting: dict[str | None, list[str]] = {}
    for node_id, parent in parents.items():
        waiting.setdefault(parent, []).append(node_id)
    ready = [(kept[n]["created_at"], n) for n in waiting.get(None, [])]
    heapq.heapify(ready)
    ordered: list[str] = []
    while ready:
        _, node_id = heapq.heappop(ready)
        ordered.append(node_id)
        for child in waiting.get(node_id, []):
            heapq.heappush(ready, (kept[child]["created_at"], child))
    return ordered


def _active_leaf(
    current: object,
    nodes: Mapping[str, Mapping[str, Any]],
    kept: Mapping[str, Mapping[str, Any]],
    parents: Mapping[str, str | None],
    ordered: list[str],
    kept_parent: Any,
) -> str | None:
    """The kept node ``current_node`` names (or its nearest kept ancestor), then the newest
    leaf under it; without a usable ``current_node``, the newest leaf."""
    if not ordered:
        return None
    start: str | None = None
    if isinstance(current, str) and current in nodes:
        start = current if current in kept else kept_parent(current)
    if start is None:
        return ordered[-1]  # the newest message: a leaf (nothing can come after it)
    below = {start}
    for node_id in ordered:  # parents come first
        if parents[node_id] in below:
            below.add(node_id)
    return max(below, key=lambda node_id: kept[node_id]["seq"])


def insert_conversation(conn: Connection, parsed: ParsedConversation) -> tuple[bool, int, int]:
    """Write a parsed conversation: (conversation inserted, messages inserted, messages
    skipped).

    A new conversation is inserted with its messages. One imported before gets the messages
    its tree has grown by since (a later export of the same chat), under the conversation's
    row lock, with its counters and active path moved; if its stored messages are not the
    start of the tree's time order, it is left as it is."""
    inserted, _ = transfer.insert_missing(conn, conversations, [parsed.conversation])
    if inserted:
        _bulk.bulk_insert(conn, messages, parsed.messages)
        return True, len(parsed.messages), 0
    c = conversations.c
    key = parsed.conversation["id"]
    conn.execute(select(c.id).where(c.id == key).with_for_update()).one()
    stored = list(
        conn.execute(
            select(messages.c.id).where(messages.c.conversation_id == key).order_by(messages.c.seq)
        ).scalars()
    )
    thread = [row["id"] for row in parsed.messages]
    if not thread or len(thread) < len(stored) or thread[: len(stored)] != stored:
        return False, 0, len(parsed.messages)
    tail = parsed.messages[len(stored) :]
    path = [row["seq"] for row in parsed.messages if row["on_active_path"]]
    m = messages.c
    conn.execute(
        update(messages)
        .where(m.conversation_id == key, m.on_active_path == true(), m.seq.not_in(path))
        .values(on_active_path=False)
    )
    conn.execute(
        update(messages)
        .where(m.conversation_id == key, m.seq.in_(path))
        .values(on_active_path=True)
    )
    if tail:
        _bulk.bulk_insert(conn, messages, tail)
    last = max(row["created_at"] for row in parsed.messages)
    conn.execute(
        update(conversations)
        .where(c.id == key)
        .values(
            message_count=len(thread),
            active_leaf_seq=parsed.conversation["active_leaf_seq"],
            path_length=parsed.conversation["path_length"],
            last_message_at=last,
            last_activity_at=last,
            updated_at=parsed.conversation["updated_at"],
        )
    )
    return False, len(tail), len(stored)


@dataclass(slots=True)
class ParsedVisitor:
    """A visitor row and its answers."""

    row: dict[str, Any]
    answers: dict[str, str]


def _answers(where: str, value: object) -> dict[str, str]:
    if value is None:
        return {}
    if isinstance(value, list):
        pairs: dict[str, object] = {}
        for i, item in enumerate(value):
            if not isinstance(item, Mapping) or "key" not in item:
                raise ValidationError(f"{where}.answers[{i}]", "must be an object with key, value")
            pairs[str(item["key"])] = item.get("value")
        value = pairs
    if not isinstance(value, Mapping):
        raise ValidationError(f"{where}.answers", f"must be an object, not {type(value).__name__}")
    if len(value) > _visitors.MAX_ANSWERS:
        raise ValidationError(
            f"{where}.answers",
            f"{len(value)} answers exceeds the limit of {_visitors.MAX_ANSWERS}",
            limit=_visitors.MAX_ANSWERS,
        )
    answers: dict[str, str] = {}
    for key, item in value.items():
        name = _text(f"{where}.answers", "key", key, ANSWER_KEY_MAX, required=True)
        if item is None:
            continue
        text = item if isinstance(item, str) else json.dumps(item, ensure_ascii=False)
        checked = _text(f"{where}.answers", str(key), text, ANSWER_VALUE_MAX)
        if name is not None and checked is not None:
            answers[name] = checked
    return answers


def visitor_records(docs: Sequence[object], now: datetime) -> list[ParsedVisitor]:
    """The visitors of a visitors file. Records of one identity (same name and agent type,
    compared as :func:`chatledger._ops.visitors.identity` does) become one visitor: visits
    summed, the latest visit time, answers merged (later records win)."""
    merged: dict[str, ParsedVisitor] = {}
    for index, doc in enumerate(docs):
        where = f"visitor {index}"
        if not isinstance(doc, Mapping):
            raise ValidationError(where, f"must be an object, not {type(doc).__name__}")
        if doc.get("id") is not None:
            where = f"visitor {index} ({doc.get('id')})"
        name = _text(where, "name", doc.get("name"), VISITOR_NAME_MAX, required=True)
        assert name is not None
        name = name.strip()
        agent = _text(where, "agent_type", doc.get("agent_type"), AGENT_TYPE_MAX)
        purpose = _text(where, "purpose", doc.get("purpose"), PURPOSE_MAX)
        visit_time = _time(where, "visit_time", doc.get("visit_time") or doc.get("timestamp"), now)
        count = doc.get("visit_count", 1)
        if isinstance(count, bool) or not isinstance(count, int) or count < 1:
            raise ValidationError(
                f"{where}.visit_count", f"must be a whole number >= 1, not {count!r}"
            )
        answers = _answers(where, doc.get("answers"))
        identity = _visitors.identity(name, agent, None)
        source = doc.get("id") if doc.get("id") is not None else identity
        known = merged.get(identity)
        if known is None:
            merged[identity] = ParsedVisitor(
                {
                    "id": stable_id("visitor", source),
                    "identity": identity,
                    "name": name,
                    "agent_type": agent,
                    "purpose": purpose,
                    "visit_time": visit_time,
                    "visit_count": count,
                    "created_at": min(
                        visit_time, _time(where, "created_at", doc.get("created_at"), visit_time)
                    ),
                },
                answers,
            )
            continue
        row = known.row
        row["visit_count"] += count
        if visit_time >= row["visit_time"]:
            row["visit_time"] = visit_time
            row["purpose"] = purpose or row["purpose"]
        row["created_at"] = min(row["created_at"], visit_time)
        known.answers.update(answers)
    return list(merged.values())


def insert_visitors(conn: Connection, parsed: Sequence[ParsedVisitor]) -> tuple[int, int]:
    """Insert the visitors not known yet (by id, or by identity: a visitor recorded since
    counts as the same); (inserted, skipped)."""
    if not parsed:
        return 0, 0
    v = visitors.c
    known = set(
        conn.execute(
            select(v.identity).where(v.identity.in_([p.row["identity"] for p in parsed]))
        ).scalars()
    )
    known_ids = set(
        conn.execute(select(v.id).where(v.id.in_([p.row["id"] for p in parsed]))).scalars()
    )
    fresh = [p for p in parsed if p.row["identity"] not in known and p.row["id"] not in known_ids]
    _bulk.bulk_insert(conn, visitors, [p.row for p in fresh])
    _bulk.bulk_insert(
        conn,
        visitor_answers,
        [
            {"visitor_id": p.row["id"], "key": key, "value": value}
            for p in fresh
            for key, value in p.answers.items()
        ],
    )
    return len(fresh), len(parsed) - len(fresh)


def feedback_row(doc: object, index: int, now: datetime) -> dict[str, Any]:
    """A product-feedback row from one record of a feedback file."""
    where = f"feedback {index}"
    if not isinstance(doc, Mapping):
        raise ValidationError(where, f"must be an object, not {type(doc).__name__}")
    if doc.get("id") is not None:
        where = f"feedback {index} ({doc.get('id')})"
    rating = doc.get("usability_rating")
    if rating is not None and (
        isinstance(rating, bool) or not isinstance(rating, int) or not 1 <= rating <= 10
    ):
        raise ValidationError(
            f"{where}.usability_rating", f"must be a whole number 1..10, not {rating!r}"
        )
    agent_name = _text(where, "agent_name", doc.get("agent_name"), AGENT_NAME_MAX, required=True)
    submitted = _time(
        where, "submission_time", doc.get("submission_time") or doc.get("timestamp"), now
    )
    source = doc.get("id")
    if source is None:
        source = json.dumps(doc, sort_keys=True, default=str)
    return {
        "id": stable_id("feedback", source),
        "agent_name": agent_name,
        "agent_type": _text(where, "agent_type", doc.get("agent_type"), AGENT_TYPE_MAX),
        "issues": _text(where, "issues", doc.get("issues"), FORM_TEXT_MAX),
        "feature_requests": _text(
            where, "feature_requests", doc.get("feature_requests"), FORM_TEXT_MAX
        ),
        "additional_comments": _text(
            where, "additional_comments", doc.get("additional_comments"), FORM_TEXT_MAX
        ),
        "usability_rating": rating,
        "submitted_at": submitted,
    }


def insert_feedback(conn: Connection, rows: Sequence[dict[str, Any]]) -> tuple[int, int]:
    """Insert the feedback rows not stored yet; (inserted, skipped)."""
    return transfer.insert_missing(conn, product_feedback, rows)
