"""Accounts, users, sign-in tokens and invitations."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from ..domain import clock
from ..domain.emails import check_email, email_key
from ..domain.errors import (
    Conflict,
    Forbidden,
    NotFound,
    RateLimited,
    Unauthorized,
    ValidationFailed,
)
from ..domain.localdays import zone_or_none
from ..store.base import Backend, Doc, DuplicateKey
from .ids import digest, new_id, new_secret
from .mail import Invitation, Mailer, MailStatus, invitation_message
from .principal import Principal

log = logging.getLogger(__name__)

INVITATION_TTL_S = 7 * 24 * 3600
MAX_CACHED_TOKENS = 10_000
MIN_PASSWORD = 8
# Sign-in throttling (API.md, POST /auth/login): this many failures for one address
# within the window answer 429 until the window has passed; a success resets it.
LOGIN_MAX_FAILURES = 10
LOGIN_WINDOW_S = 15 * 60

UserHook = Callable[[str, str], Awaitable[None]]
DEFAULT_TIME_ZONE = "UTC"


@dataclass
class Invite:
    """A fresh invitation: its one-time link and what became of its mail."""

    url: str
    mail: MailStatus
    id: str = ""


def valid_time_zone(name: str) -> bool:
    """An IANA zone name this machine's time-zone database knows."""
    return name == DEFAULT_TIME_ZONE or zone_or_none(name) is not None


def valid_email(email: str) -> str:
    """The address as given, or a 400 naming the field (API.md, "E-mail addresses")."""
    try:
        return check_email(email)
    except ValueError as exc:
        raise ValidationFailed(str(exc), [{"field": "email", "message": str(exc)}]) from None


def public_user(doc: Doc) -> dict[str, Any]:
    return {
        "id": doc["_id"],
        "email": doc["email"],
        "name": doc.get("name") or "",
        "role": doc["role"],
        "active": bool(doc.get("active", True)),
        "account_id": doc["account_id"],
        "time_zone": doc.get("time_zone") or DEFAULT_TIME_ZONE,
    }


class Passwords:
    """Argon2id hashing, always off the event loop."""

    def __init__(self, *, time_cost: int = 3, memory_kib: int = 65536) -> None:
        self._hasher = PasswordHasher(time_cost=time_cost, memory_cost=memory_kib)
        # Verified when the e-mail is unknown, so that both failures take the same time.
        self._dummy = self._hasher.hash("tasktimer-dummy-password")

    async def hash(self, password: str) -> str:
        return await asyncio.to_thread(self._hasher.hash, password)

    async def verify(self, password_hash: str | None, password: str) -> bool:
        def check() -> bool:
            try:
                return self._hasher.verify(password_hash or self._dummy, password)
            except (VerificationError, InvalidHashError):
                return False

        return await asyncio.to_thread(check) and password_hash is not None


def _check_password(password: str) -> None:
    if len(password) < MIN_PASSWORD:
        raise ValidationFailed(
            "password too short",
            [{"field": "password", "message": f"at least {MIN_PASSWORD} characters"}],
        )


class AccountService:
    def __init__(
        self,
        backend: Backend,
        *,
        public_url: str,
        token_ttl_days: float,
        passwords: Passwords | None = None,
        shared: bool = True,
        mailer: Mailer | None = None,
    ) -> None:
        self._db = backend
        self.passwords = passwords or Passwords()
        self.mailer = mailer or Mailer(None, "")
        # A single-process server (SQLite) sees every change to tokens and users itself,
        # so it may remember who a token belongs to; with several processes it may not.
        self._cache_tokens = not shared
        self._principals: dict[str, tuple[Principal, str]] = {}
        # Bumped by every invalidation: a read that raced with one is not cached.
        self._generation = 0
        self._public_url = public_url
        self._token_ttl_s = token_ttl_days * 86400
        # Called with (account_id, user_id) when a user joins or becomes active again.
        self.on_user_joined: list[UserHook] = []
        # Called with (account_id, user_id) when a user is deactivated.
        self.on_user_deactivated: list[UserHook] = []

    # -- bootstrap ------------------------------------------------------------------

    async def user_count(self) -> int:
        return await self._db.count("users", {})

    async def create_account_with_admin(
        self, email: str, password: str, name: str = "", account_name: str = "Tasktimer"
    ) -> Doc:
        _check_password(password)
        account_id = new_id()
        await self._db.insert(
            "accounts",
            {
                "_id": account_id,
                "name": account_name,
                "tree_version": 0,
                "created_at": clock.now_iso(),
            },
        )
        return await self._insert_user(
            account_id,
            email,
            name or email.split("@")[0],
            "admin",
            await self.passwords.hash(password),
        )

    async def create_admin(self, email: str, password: str, name: str = "") -> Doc:
        """An admin for the command line: the first one creates the account, later ones
        join the account of the existing admins."""
        _check_password(password)
        existing = await self._db.find_one("users", {"role": "admin"})
        if existing is None:
            return await self.create_account_with_admin(email, password, name)
        return await self._insert_user(
            existing["account_id"],
            email,
            name or email.split("@")[0],
            "admin",
            await self.passwords.hash(password),
        )

    async def _insert_user(
        self, account_id: str, email: str, name: str, role: str, password_hash: str | None
    ) -> Doc:
        email = valid_email(email)
        doc: Doc = {
            "_id": new_id(),
            "account_id": account_id,
            "email": email,
            "email_key": email_key(email),
            "name": name,
            "role": role,
            "active": True,
            "password_hash": password_hash,
            "created_at": clock.now_iso(),
        }
        try:
            await self._db.insert("users", doc)
        except DuplicateKey:
            raise Conflict("a user with this e-mail already exists", code="email_taken") from None
        for hook in self.on_user_joined:
            await hook(account_id, doc["_id"])
        return doc

    # -- sign-in --------------------------------------------------------------------

    async def login(self, email: str, password: str, kind: str = "api") -> tuple[str, Doc]:
        """Sign in by e-mail and password: the API's and the web app's one way in."""
        key = email_key(email)
        throttle_id = digest(f"login:{key}")
        failures = await self._throttle(throttle_id)
        user = await self._db.find_one("users", {"email_key": key})
        stored = user.get("password_hash") if user else None
        ok = await self.passwords.verify(stored, password)
        if not (ok and user and stored and user.get("active", True)):
            await self._record_failure(throttle_id)
            raise Unauthorized("wrong e-mail or password", code="invalid_credentials")
        if failures is not None:
            await self._db.delete_many("login_throttle", {"_id": throttle_id})
        return await self._issue_token(user, kind), user

    async def _throttle(self, throttle_id: str) -> Doc | None:
        """The address's failure record, or 429 while it has used up its window.
        Successful sign-ins are never counted, so they are never limited by their own."""
        record = await self._db.find_one("login_throttle", {"_id": throttle_id})
        if record is None:
            return None
        ends = clock.parse(record["window_start"]).timestamp() + LOGIN_WINDOW_S
        left = ends - clock.now().timestamp()
        if left > 0 and int(record.get("failures") or 0) >= LOGIN_MAX_FAILURES:
            raise RateLimited(
                "too many failed sign-ins for this e-mail address; try again later",
                retry_after_s=int(left) + 1,
            )
        return record

    async def _record_failure(self, throttle_id: str) -> None:
        """Count a failure atomically in the current window, or open a new window (the
        record lives in the database, so every process counts the same failures)."""
        for _ in range(5):
            now = clock.now_iso()
            window_open_since = clock.later_iso(-LOGIN_WINDOW_S)
            counted = await self._db.update_one(
                "login_throttle",
                {"_id": throttle_id, "window_start": {"$gt": window_open_since}},
                inc={"failures": 1},
            )
            if counted is not None:
                return
            try:
                await self._db.insert(
                    "login_throttle", {"_id": throttle_id, "window_start": now, "failures": 1}
                )
            except DuplicateKey:
                pass
            else:
                # Records of addresses that never signed in again would pile up: a new
                # window sweeps the ones whose window has passed.
                await self._db.delete_many(
                    "login_throttle", {"window_start": {"$lte": window_open_since}}
                )
                return
            renewed = await self._db.update_one(
                "login_throttle",
                {"_id": throttle_id, "window_start": {"$lte": window_open_since}},
                {"window_start": now, "failures": 1},
            )
            if renewed is not None:
                return

    async def _issue_token(self, user: Doc, kind: str = "api") -> str:
        """A bearer token (``api``) or a web session (``session``): both stored hashed,
        both revoked by sign-out and deactivation."""
        token = new_secret()
        await self._db.insert(
            "tokens",
            {
                "_id": digest(token),
                "account_id": user["account_id"],
                "user_id": user["_id"],
                # A copy of what a request needs to know about its caller, so that
                # authenticating is one read. update_user keeps it current; deactivation
                # deletes the tokens.
                "email": user["email"],
                "name": user.get("name") or "",
                "role": user["role"],
                "kind": kind,
                "created_at": clock.now_iso(),
                "expires_at": clock.later_iso(self._token_ttl_s),
            },
        )
        return token

    async def authenticate(self, token: str, kind: str = "api") -> Principal:
        token_hash = digest(token)
        cached = self._principals.get(token_hash)
        if cached is not None:
            if cached[1] >= clock.now_iso():
                if cached[0].kind != kind:
                    raise Unauthorized("invalid or expired token", code="invalid_token")
                return cached[0]
            del self._principals[token_hash]
        generation = self._generation
        record = await self._db.find_one("tokens", {"_id": token_hash})
        if record is None or record["expires_at"] < clock.now_iso():
            raise Unauthorized("invalid or expired token", code="invalid_token")
        principal = Principal.of_user(record, token_hash)
        if principal.kind != kind:
            raise Unauthorized("invalid or expired token", code="invalid_token")
        if self._cache_tokens and generation == self._generation:
            if len(self._principals) >= MAX_CACHED_TOKENS:
                self._principals.pop(next(iter(self._principals)))
            self._principals[token_hash] = (principal, record["expires_at"])
        return principal

    def _forget_tokens(self, user_id: str | None = None, token_hash: str | None = None) -> None:
        self._generation += 1
        if token_hash is not None:
            self._principals.pop(token_hash, None)
        if user_id is not None:
            for key in [k for k, (p, _) in self._principals.items() if p.user_id == user_id]:
                del self._principals[key]

    async def logout(self, principal: Principal) -> None:
        self._forget_tokens(token_hash=principal.token_hash)
        await self._db.delete_many(
            "tokens", {"_id": principal.token_hash, "account_id": principal.account_id}
        )

    # -- users ----------------------------------------------------------------------

    async def get_user(self, account_id: str, user_id: str) -> Doc:
        user = await self._db.find_one("users", {"_id": user_id, "account_id": account_id})
        if user is None:
            raise NotFound("user not found")
        return user

    async def list_users(self, account_id: str, *, skip: int, limit: int) -> list[Doc]:
        return await self._db.find(
            "users", {"account_id": account_id}, sort=[("_id", 1)], skip=skip, limit=limit
        )

    async def all_users(self, account_id: str, *, page: int = 500) -> list[Doc]:
        """Every user of the account in ``_id`` order, read ``page`` at a time."""
        docs: list[Doc] = []
        while True:
            chunk = await self.list_users(account_id, skip=len(docs), limit=page)
            docs.extend(chunk)
            if len(chunk) < page:
                return docs

    async def active_user_ids(self, account_id: str) -> list[str]:
        users = await self._db.find("users", {"account_id": account_id, "active": True})
        return [u["_id"] for u in users]

    async def users_by_email(self, account_id: str) -> dict[str, Doc]:
        """The account's users by ``email_key`` of their address."""
        users = await self._db.find("users", {"account_id": account_id})
        return {email_key(u["email"]): u for u in users}

    async def create_user(
        self,
        principal: Principal,
        email: str,
        name: str,
        password: str | None,
        role: str,
        *,
        send_mail: bool = True,
    ) -> tuple[Doc, Invite | None]:
        """A user with a password, or (without one) an invited user. The invitation is
        mailed unless ``send_mail`` is false (the caller then mails a batch itself with
        :meth:`mail_invitations`)."""
        if not principal.is_admin:
            raise Forbidden("only admins manage users")
        if password is not None:
            _check_password(password)
            return await self._insert_user(
                principal.account_id, email, name, role, await self.passwords.hash(password)
            ), None
        user = await self._insert_user(principal.account_id, email, name, role, None)
        invite = await self.invite(principal.account_id, user)
        if send_mail:
            await self.mail_invitations(principal, [(user, invite)])
        return user, invite

    async def reinvite(self, principal: Principal, user_id: str) -> Invite:
        """A fresh one-time link (mailed when mail is configured) for a user who has not
        joined yet: links are stored hashed, so a lost one cannot be shown again."""
        if not principal.is_admin:
            raise Forbidden("only admins manage users")
        user = await self.get_user(principal.account_id, user_id)
        if user.get("password_hash") or not user.get("active", True):
            raise Conflict("this user is not waiting for an invitation", code="not_invited")
        invite = await self.invite(principal.account_id, user)
        await self.mail_invitations(principal, [(user, invite)])
        return invite

    async def invite(self, account_id: str, user: Doc) -> Invite:
        token = new_secret()
        invite = Invite(
            url=f"{self._public_url}/invite/{token}",
            mail="not_configured",
            id=digest(token),
        )
        await self._db.insert(
            "invitations",
            {
                "_id": invite.id,
                "account_id": account_id,
                "user_id": user["_id"],
                "email": user["email"],
                "used": False,
                "mail": "pending" if self.mailer.configured else "not_configured",
                "expires_at": clock.later_iso(INVITATION_TTL_S),
                "created_at": clock.now_iso(),
            },
        )
        return invite

    async def mail_invitations(
        self, principal: Principal, invites: Sequence[tuple[Doc, Invite]]
    ) -> None:
        """Mail each invitation's link (one SMTP session for the batch) and record the
        outcome on the invitation; a failed delivery leaves the invitation usable."""
        if not invites or not self.mailer.configured:
            return
        inviter = principal.name or principal.email
        messages = [
            invitation_message(
                self.mailer.sender,
                Invitation(
                    email=user["email"],
                    name=user.get("name") or "",
                    url=invite.url,
                    inviter=inviter,
                    expires_days=INVITATION_TTL_S // 86400,
                ),
            )
            for user, invite in invites
        ]
        statuses = await self.mailer.send(messages)
        for (_, invite), status in zip(invites, statuses, strict=True):
            invite.mail = status
        await self._db.bulk_set(
            "invitations",
            [(invite.id, {"mail": invite.mail}) for _, invite in invites],
        )

    async def pending_invitation(self, token: str) -> str | None:
        """The e-mail address an unused, unexpired invitation is for (None otherwise),
        without using it up: the invitation page says whom it signs in."""
        invitation = await self._db.find_one(
            "invitations",
            {"_id": digest(token), "used": False, "expires_at": {"$gt": clock.now_iso()}},
        )
        return str(invitation["email"]) if invitation else None

    async def accept_invitation(
        self, token: str, password: str, name: str | None, kind: str = "api"
    ) -> tuple[str, Doc]:
        _check_password(password)
        invitation = await self._db.update_one(
            "invitations",
            {"_id": digest(token), "used": False, "expires_at": {"$gt": clock.now_iso()}},
            {"used": True, "used_at": clock.now_iso()},
        )
        if invitation is None:
            raise NotFound("invitation not found, used or expired", code="invitation_invalid")
        changes: dict[str, Any] = {"password_hash": await self.passwords.hash(password)}
        if name:
            changes["name"] = name
        user = await self._db.update_one(
            "users",
            {"_id": invitation["user_id"], "account_id": invitation["account_id"]},
            changes,
        )
        if user is None:
            raise NotFound("invitation not found, used or expired", code="invitation_invalid")
        return await self._issue_token(user, kind), user

    async def update_me(self, principal: Principal, changes: dict[str, Any]) -> Doc:
        """A user's own name and time zone."""
        unknown = set(changes) - {"name", "time_zone"}
        if unknown:
            raise ValidationFailed(
                "these fields cannot be changed here",
                [{"field": key, "message": "not allowed"} for key in sorted(unknown)],
            )
        zone = changes.get("time_zone")
        if zone is not None and not valid_time_zone(zone):
            raise ValidationFailed(
                "unknown time zone",
                [{"field": "time_zone", "message": "not an IANA time zone name"}],
            )
        if not changes:
            return await self.get_user(principal.account_id, principal.user_id)
        updated = await self._db.update_one(
            "users", {"_id": principal.user_id, "account_id": principal.account_id}, changes
        )
        if updated is None:
            raise NotFound("user not found")
        if "name" in changes:
            await self._db.update_many(
                "tokens",
                {"account_id": principal.account_id, "user_id": principal.user_id},
                {"name": updated["name"]},
            )
            self._forget_tokens(user_id=principal.user_id)
        return updated

    async def update_user(self, principal: Principal, user_id: str, changes: dict[str, Any]) -> Doc:
        if not principal.is_admin:
            raise Forbidden("only admins manage users")
        user = await self.get_user(principal.account_id, user_id)
        demoting = changes.get("role") == "user" or changes.get("active") is False
        if demoting and user["role"] == "admin" and user.get("active", True):
            admins = await self._db.count(
                "users", {"account_id": principal.account_id, "role": "admin", "active": True}
            )
            if admins <= 1:
                raise Conflict("the account needs at least one active admin", code="last_admin")
        if not changes:
            return user
        updated = await self._db.update_one(
            "users", {"_id": user_id, "account_id": principal.account_id}, changes
        )
        assert updated is not None
        if demoting and user["role"] == "admin" and user.get("active", True):
            # The count above can race with a concurrent demotion: check again after the
            # write and undo ours if no active admin is left.
            admins = await self._db.count(
                "users", {"account_id": principal.account_id, "role": "admin", "active": True}
            )
            if admins == 0:
                await self._db.update_one(
                    "users",
                    {"_id": user_id, "account_id": principal.account_id},
                    {"role": user["role"], "active": user.get("active", True)},
                )
                raise Conflict("the account needs at least one active admin", code="last_admin")
        copied: dict[str, Any] = {k: updated[k] for k in ("name", "role") if k in changes}
        if copied:
            await self._db.update_many(
                "tokens", {"account_id": principal.account_id, "user_id": user_id}, copied
            )
        was_active = bool(user.get("active", True))
        if changes.get("active") is False and was_active:
            await self._db.delete_many(
                "tokens", {"account_id": principal.account_id, "user_id": user_id}
            )
        self._forget_tokens(user_id=user_id)
        if changes.get("active") is False and was_active:
            for hook in self.on_user_deactivated:
                await hook(principal.account_id, user_id)
        if changes.get("active") is True and not was_active:
            for hook in self.on_user_joined:
                await hook(principal.account_id, user_id)
        return updated
