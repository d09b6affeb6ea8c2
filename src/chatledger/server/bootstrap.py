"""The first admin key: what ``chatledger serve`` creates when the store has no admin key."""

from __future__ import annotations

import logging
import secrets
from typing import Final

from .._ops._common import utcnow
from .._sync.ledger import Ledger
from ..errors import NotFoundError
from ..records import CreatedApiKey
from .auth import ADMIN_ROLE

__all__ = ["BOOTSTRAP_EXTERNAL_ID", "ensure_admin_key", "has_admin_key"]

logger = logging.getLogger("chatledger.server")

#: The external id of the admin user ``chatledger serve`` creates.
BOOTSTRAP_EXTERNAL_ID: Final = "chatledger:admin"


def has_admin_key(ledger: Ledger) -> bool:
    """Whether some user with the admin role has a key that is neither revoked nor expired."""
    now = utcnow()
    cursor = None
    while True:
        page = ledger.users.with_role(ADMIN_ROLE, limit=100, after=cursor)
        for user in page:
            for key in ledger.api_keys.list(user_id=user.id):
                if key.expires_at is None or key.expires_at > now:
                    return True
        if not page.has_more:
            return False
        cursor = page.last_cursor


def ensure_admin_key(ledger: Ledger) -> CreatedApiKey | None:
    """A new admin key if the store has no usable one (its secret is shown only in the
    result), else ``None``. The key belongs to the user ``chatledger:admin``, created with the
    admin role if missing; if that user exists but is no longer an admin, a new admin user is
    made instead of promoting it again."""
    if has_admin_key(ledger):
        return None
    try:
        user = ledger.users.get_by_external_id(BOOTSTRAP_EXTERNAL_ID)
    except NotFoundError:
        user = ledger.users.get_or_create(
            BOOTSTRAP_EXTERNAL_ID, display_name="chatledger admin", role=ADMIN_ROLE
        )
    if user.role != ADMIN_ROLE:
        user = ledger.users.create(
            external_id=f"{BOOTSTRAP_EXTERNAL_ID}:{secrets.token_hex(4)}",
            display_name="chatledger admin",
            role=ADMIN_ROLE,
        )
    created = ledger.api_keys.create(user.id, name="chatledger serve: first admin key")
    ledger.audit.record(
        "api_key.created",
        user_id=user.id,
        category="security",
        metadata={
            "key_id": str(created.key.id),
            "prefix": created.key.prefix,
            "by": "chatledger serve",
        },
    )
    logger.info("created the first admin key %s", created.key.prefix)
    return created
