# This file is generated from ../_async/_visitors.py by tools/generate_sync.py: do not edit it.
# Edit the asynchronous source and run `make generate`.
"""The visitors resource: a registry of a site's visitors and their answers."""

from __future__ import annotations

import builtins
from collections.abc import Mapping
from typing import TYPE_CHECKING

from .. import _validate as check
from .._ops import visitors as _visitors
from .._ops._once import gone
from .._schema import (
    AGENT_TYPE_MAX,
    ANSWER_KEY_MAX,
    ANSWER_VALUE_MAX,
    PURPOSE_MAX,
    VISITOR_NAME_MAX,
    visitors,
)
from .._validate import Id
from ..errors import ValidationError
from ..records import Order, Page, Visitor

if TYPE_CHECKING:
    from ._store import _Store

__all__ = ["Visitors"]


def _answers(value: object) -> dict[str, str]:
    """Validate key/value answers: at most ``MAX_ANSWERS``; keys non-blank strings of up to
    50 characters, values strings of up to 500."""
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise ValidationError("answers", f"must be a mapping, not {type(value).__name__}")
    if len(value) > _visitors.MAX_ANSWERS:
        raise ValidationError(
            "answers",
            f"{len(value)} answers exceeds the limit of {_visitors.MAX_ANSWERS}",
            limit=_visitors.MAX_ANSWERS,
        )
    checked: dict[str, str] = {}
    for key, item in value.items():
        if not isinstance(key, str):
            raise ValidationError("answers", f"keys must be strings, not {type(key).__name__}")
        try:
            check.text("answers", key, ANSWER_KEY_MAX)
        except ValidationError as exc:
            raise ValidationError(
                "answers", f"key {key[:60]!r}: {exc.problem}", limit=exc.limit
            ) from None
        if not key.strip():
            raise ValidationError("answers", "keys must not be blank")
        checked[key] = check.text(f"answers[{key!r}]", item, ANSWER_VALUE_MAX)
    return checked


class Visitors:
    """A registry of visitors (people or AI agents) of a site, with key/value answers; a repeat
    visit updates the visitor instead of adding one."""

    def __init__(self, store: _Store) -> None:
        self._store = store

    def record_visit(
        self,
        name: str,
        *,
        agent_type: str | None = None,
        purpose: str | None = None,
        answers: Mapping[str, str] | None = None,
        visitor_key: str | None = None,
    ) -> Visitor:
        """Record a visit and return the visitor as it now stands.

        A visitor is recognised by ``visitor_key`` when given (compared exactly), else by
        ``name`` and ``agent_type`` compared after stripping and case-folding. A new visitor
        starts at ``visit_count`` 1; a known one gets ``visit_count + 1`` and ``visit_time``
        now, ``purpose`` replaced if given (name and agent type keep their first values), and
        ``answers`` merged: the given keys are set, the others kept. Safe under concurrency:
        racing first visits make one visitor that counts them all.

        Limits: name 1-100 characters (stripped), agent_type and purpose up to 500, at most
        100 answers per visitor with keys of 1-50 and values of up to 500 characters,
        visitor_key 1-255.
        """
        clean_name = check.nonblank("name", name, VISITOR_NAME_MAX)
        clean_agent = check.optional_text("agent_type", agent_type, AGENT_TYPE_MAX)
        clean_purpose = check.optional_text("purpose", purpose, PURPOSE_MAX)
        clean_answers = _answers(answers)
        key = check.optional_text("visitor_key", visitor_key, _visitors.VISITOR_KEY_MAX)
        if key is not None and not key.strip():
            raise ValidationError("visitor_key", "must not be blank")
        identity = _visitors.identity(clean_name, clean_agent, key)
        return self._store._call(
            _visitors.record_visit,
            identity,
            clean_name,
            clean_agent,
            clean_purpose,
            clean_answers,
            write=True,
            settle=_visitors.visited(identity),
        )

    def get(self, visitor_id: Id) -> Visitor:
        """The visitor with this id, with its answers."""
        key = check.identifier("visitor_id", visitor_id)
        return self._store._call(_visitors.get, key)

    def list(self, *, limit: int = 20) -> builtins.list[Visitor]:
        """The ``limit`` most recent visitors, newest visit first, with their answers."""
        return (self.page(limit=limit)).items

    def page(
        self,
        *,
        limit: int = 20,
        after: str | None = None,
        before: str | None = None,
        order: Order = "desc",
    ) -> Page[Visitor]:
        """A page of visitors by last visit time, newest first by default. A repeat visit
        moves a visitor to the front, so a walk through the pages may meet it twice."""
        keys = check.paging(_visitors.decode_cursor, after, before, limit, self._store.limits)
        return self._store._call(_visitors.page, order=check.order(order), **keys)

    def set_answers(
        self, visitor_id: Id, answers: Mapping[str, str], *, replace: bool = False
    ) -> Visitor:
        """Set the visitor's answers to the given keys, keeping the others (with
        ``replace=True``, dropping them), without counting a visit."""
        key = check.identifier("visitor_id", visitor_id)
        clean = _answers(answers)
        return self._store._call(_visitors.set_answers, key, clean, bool(replace), write=True)

    def delete(self, visitor_id: Id) -> None:
        """Delete the visitor and all its answers."""
        key = check.identifier("visitor_id", visitor_id)
        self._store._call(
            _visitors.delete_visitor, key, write=True, settle=gone("visitor", visitors, key)
        )
