"""What the app's own OpenAPI document says about a request's path: the methods it serves
there (for ``Allow`` on a 405), the query parameters an operation takes and whether it needs
an API key."""

from __future__ import annotations

import re
from dataclasses import dataclass

from fastapi import FastAPI
from starlette.routing import compile_path

__all__ = ["OperationIndex"]


@dataclass(frozen=True, slots=True)
class _Path:
    pattern: re.Pattern[str]
    #: Per method (upper case), the names of its query parameters.
    queries: dict[str, frozenset[str]]
    #: The methods whose operation needs an API key.
    secured: frozenset[str]


class OperationIndex:
    """The paths of an app's OpenAPI document, compiled once."""

    def __init__(self, app: FastAPI) -> None:
        self._paths = [
            _Path(
                compile_path(path)[0],
                {
                    method.upper(): frozenset(
                        p["name"] for p in operation.get("parameters", []) if p["in"] == "query"
                    )
                    for method, operation in operations.items()
                },
                frozenset(
                    method.upper()
                    for method, operation in operations.items()
                    if operation.get("security")
                ),
            )
            for path, operations in app.openapi()["paths"].items()
        ]

    @classmethod
    def of(cls, app: FastAPI) -> OperationIndex:
        """The index of ``app`` (built on first use, kept in ``app.state``)."""
        index: OperationIndex | None = getattr(app.state, "operations", None)
        if index is None:
            index = app.state.operations = cls(app)
        return index

    def methods(self, path: str) -> list[str]:
        """The methods the document lists for ``path``, sorted."""
        return sorted({m for p in self._paths if p.pattern.match(path) for m in p.queries})

    def secured(self, method: str, path: str) -> bool:
        """Whether the operation at ``method path`` needs an API key."""
        return any(p.pattern.match(path) and method in p.secured for p in self._paths)

    def query_names(self, method: str, path: str) -> frozenset[str] | None:
        """The query parameters of the operation at ``method path``; ``None`` if the
        document has no such operation."""
        for p in self._paths:
            if p.pattern.match(path) and method in p.queries:
                return p.queries[method]
        return None
