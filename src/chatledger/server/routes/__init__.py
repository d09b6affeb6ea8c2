"""The API's routers, one module per area; mounted under ``/v1`` (health at the root)."""

from __future__ import annotations

from fastapi import APIRouter

from . import (
    accounts,
    admin,
    api_keys,
    conversations,
    health,
    knowledge,
    messages,
    search,
    streams,
    tools,
    trees,
    users,
    visitors,
)

__all__ = ["ROUTERS", "health"]

#: Mounted under ``/v1``.
ROUTERS: list[APIRouter] = [
    users.router,
    conversations.router,
    messages.router,
    trees.router,
    streams.router,
    tools.router,
    search.router,
    accounts.router,
    visitors.router,
    knowledge.router,
    api_keys.router,
    admin.router,
]
