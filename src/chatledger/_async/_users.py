"""The users resource of a ledger."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .. import _validate as check
from .._ops import credentials as _credentials
from .._ops import privacy as _privacy
from .._ops import users as _users
from .._ops._common import UNSET, Unset, given
from .._ops._once import gone
from .._run.compat_async import to_thread
from .._schema import EMAIL_MAX, USER_ROLE_MAX, users
from .._validate import Id
from ..errors import AuthenticationError, ValidationError
from ..records import EnsuredUser, ErasureReport, Order, Page, User

if TYPE_CHECKING:
    from ._store import _AsyncStore

__all__ = ["AsyncUsers"]


class AsyncUsers:
    """The users of a ledger."""

    def __init__(self, store: _AsyncStore) -> None:
        self._store = store

    async def create(
        self,
        *,
        external_id: str | None = None,
        email: str | None = None,
        username: str | None = None,
        display_name: str | None = None,
        role: str = "user",
        metadata: dict[str, Any] | None = None,
    ) -> User:
        """Create a user. A taken external_id, email or username raises ConflictError; the
        email is stored normalised (trimmed, lower-cased)."""
        fields = _users.prepare(
            self._store.limits,
            {
                "external_id": external_id,
                "email": email,
                "username": username,
                "display_name": display_name,
                "role": role,
                "metadata": metadata,
            },
        )
        return await self._store._call(_users.create, fields, write=True, settle=_users.CREATED)

    async def get(self, user_id: Id) -> User:
        """The user with this id."""
        key = check.identifier("user_id", user_id)
        return await self._store._call(_users.get_by, "id", key)

    async def get_by_external_id(self, external_id: str) -> User:
        """The user with this id in the application's auth system."""
        return await self._store._call(_users.get_by, "external_id", external_id)

    async def get_by_email(self, email: str) -> User:
        """The user with this email address (compared normalised)."""
        return await self._store._call(
            _users.get_by, "email", check.email("email", email, EMAIL_MAX)
        )

    async def get_by_username(self, username: str) -> User:
        """The user with this username."""
        return await self._store._call(_users.get_by, "username", username)

    async def get_or_create(
        self,
        external_id: str,
        *,
        email: str | None = None,
        username: str | None = None,
        display_name: str | None = None,
        role: str = "user",
        metadata: dict[str, Any] | None = None,
    ) -> User:
        """The user with ``external_id``; created with the other fields if there is none.
        Concurrent calls with one external_id return the same user. :meth:`ensure` also
        says whether the call created it."""
        ensured = await self.ensure(
            external_id,
            email=email,
            username=username,
            display_name=display_name,
            role=role,
            metadata=metadata,
        )
        return ensured.user

    async def ensure(
        self,
        external_id: str,
        *,
        email: str | None = None,
        username: str | None = None,
        display_name: str | None = None,
        role: str = "user",
        metadata: dict[str, Any] | None = None,
    ) -> EnsuredUser:
        """:meth:`get_or_create`, answering ``(user, created)``: ``created`` is true for the
        one call that inserted the user (of racing calls, the winner; after a retry whose
        first commit went unanswered, still that call), learned in the same transaction,
        without a second query. The other fields only apply to a new user."""
        fields = _users.prepare(
            self._store.limits,
            {
                "external_id": external_id,
                "email": email,
                "username": username,
                "display_name": display_name,
                "role": role,
                "metadata": metadata,
            },
        )
        key = fields.pop("external_id")
        if key is None:
            raise ValidationError("external_id", "is required")
        return await self._store._call(_users.get_or_create, key, fields, write=True)

    async def list(
        self,
        *,
        limit: int = 50,
        after: str | None = None,
        before: str | None = None,
        order: Order = "asc",
    ) -> Page[User]:
        """A page of users in creation order (``order="desc"``: newest first)."""
        keys = check.paging(_users.decode_cursor, after, before, limit, self._store.limits)
        return await self._store._call(
            _users.page,
            order=check.order(order),
            **keys,
        )

    async def count(self) -> int:
        """How many users there are."""
        return await self._store._call(_users.count)

    async def update(
        self,
        user_id: Id,
        *,
        external_id: str | Unset | None = UNSET,
        email: str | Unset | None = UNSET,
        username: str | Unset | None = UNSET,
        display_name: str | Unset | None = UNSET,
        role: str | Unset = UNSET,
        metadata: dict[str, Any] | Unset | None = UNSET,
    ) -> User:
        """Change the given fields (``None`` clears one); returns the updated user."""
        key = check.identifier("user_id", user_id)
        changes = _users.prepare(
            self._store.limits,
            given(
                external_id=external_id,
                email=email,
                username=username,
                display_name=display_name,
                role=role,
                metadata=metadata,
            ),
        )
        return await self._store._call(_users.update_fields, key, changes, write=True)

    async def delete(self, user_id: Id) -> None:
        """Delete the user and everything the user owns (conversations, messages, ...)."""
        key = check.identifier("user_id", user_id)
        await self._store._call(_users.delete_one, key, write=True, settle=gone("user", users, key))

    async def set_password(self, user_id: Id, password: str) -> None:
        """Set (or replace) the user's password: 8 to 1024 characters, no NUL. Only an argon2id
        hash is stored; the password never appears in an error or a log."""
        key = check.identifier("user_id", user_id)
        hashed = await to_thread(
            _credentials.hash_password, _credentials.password("password", password)
        )
        await self._store._call(_credentials.set_hash, key, hashed, write=True)

    async def verify_password(self, login: str, password: str) -> User:
        """The user whose email, username or external id (tried in that order) is ``login``,
        if ``password`` is theirs. An unknown login, a user without a password and a wrong
        password all raise the same AuthenticationError, in comparable time. A hash made with
        older parameters is replaced by a fresh one on success."""
        lookups = _credentials.login_lookups(login)
        found = await self._store._call(_credentials.find_login, lookups) if lookups else None
        user, stored = found if found is not None else (None, None)
        fresh = await to_thread(_credentials.verify, stored, password)
        if user is None:  # verify() raised already; this narrows the type
            raise AuthenticationError()
        if fresh is not None and stored is not None:
            await self._store._call(_credentials.replace_hash, user.id, stored, fresh, write=True)
        return user

    async def with_role(
        self,
        role: str,
        *,
        limit: int = 50,
        after: str | None = None,
        before: str | None = None,
        order: Order = "asc",
    ) -> Page[User]:
        """A page of the users with ``role`` ("user", "admin" or any custom role name), in
        creation order; cursors are those of :meth:`list`."""
        keys = check.paging(_users.decode_cursor, after, before, limit, self._store.limits)
        return await self._store._call(
            _credentials.with_role,
            check.nonblank("role", role, USER_ROLE_MAX),
            order=check.order(order),
            **keys,
        )

    async def export(self, user_id: Id) -> dict[str, Any]:
        """Everything stored about the user, as one JSON-serialisable document: ``format``
        (its layout version), ``exported_at``, ``user_id`` and ``tables``, which maps each
        table holding their data to their rows (the user, conversations, messages, citations
        and feedback of their messages, feedback they gave, survey responses, token balance
        and ledger, API keys, audit events). Ids, times and decimals are strings; password
        and key hashes are left out."""
        key = check.identifier("user_id", user_id)
        return await self._store._call(_privacy.export, key)

    async def erase(self, user_id: Id) -> ErasureReport:
        """Erase the user for good, in one transaction: delete their rows in every table
        (conversations, messages, feedback they gave or got, citations, survey responses,
        token balance and ledger, API keys, the user) and redact the audit events that mention
        them, keeping the audit chain verifiable. Returns the rows deleted per table."""
        key = check.identifier("user_id", user_id)
        return await self._store._call(_privacy.erase, key, write=True)

    async def preview_erase(self, user_id: Id) -> ErasureReport:
        """What :meth:`erase` would do now, changing nothing: the rows it would delete per
        table and the number of audit events it would redact (the user's own events; erasure
        also redacts events whose text names them)."""
        key = check.identifier("user_id", user_id)
        return await self._store._call(_users.erase_preview, key)
