"""chatledger's HTTP API (the ``server`` extra: FastAPI and uvicorn).

:func:`create_app` builds the FastAPI application over a store; ``chatledger serve`` runs it
with uvicorn. See ``docs/server.md``.
"""

from __future__ import annotations

from .app import create_app
from .auth import ADMIN_ROLE
from .settings import ServerSettings

__all__ = ["ADMIN_ROLE", "ServerSettings", "create_app"]
