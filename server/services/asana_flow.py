"""Asana: OAuth 2 authorization code + PKCE, workspace selection, co-workers, invitations.

The OAuth ``state`` is a one-time secret bound to the admin who started the flow: it is
stored only as a hash, expires after 10 minutes and is consumed by a conditional update,
so a replayed callback finds nothing.
"""

from __future__ import annotations

from typing import Any

from ..domain import clock
from ..domain.emails import email_key
from ..domain.errors import Conflict, Forbidden, NotFound, ValidationFailed
from ..integrations.asana import (
    GRANULAR_SCOPES,
    AsanaConnector,
    asana_authorize_url,
    asana_exchange_code,
    new_code_verifier,
    new_state,
)
from ..integrations.base import ProviderAuthError, ProviderError
from .accounts import Invite
from .ids import digest, new_id
from .integrations import IntegrationService, integration_id
from .principal import Principal

STATE_TTL_S = 600


class AsanaFlow:
    def __init__(self, integrations: IntegrationService) -> None:
        self._svc = integrations

    @property
    def _settings(self) -> Any:
        return self._svc._settings

    def redirect_uri(self) -> str:
        return f"{self._settings.effective_public_url}/api/v1/integrations/asana/callback"

    def _client(self) -> tuple[str, str]:
        s = self._settings
        if not s.asana_client_id or not s.asana_client_secret:
            raise Conflict(
                "Asana is not configured on this server: set TT_ASANA_CLIENT_ID and "
                "TT_ASANA_CLIENT_SECRET",
                code="asana_not_configured",
            )
        return s.asana_client_id, s.asana_client_secret.get_secret_value()

    async def start(self, principal: Principal, *, reenable: bool) -> dict[str, Any]:
        if not principal.is_admin:
            raise Forbidden("only admins connect tools")
        client_id, _ = self._client()
        existing = await self._svc._db.find_one(
            "integrations", {"_id": integration_id(principal.account_id, "asana")}
        )
        if reenable and existing is None:
            raise NotFound("Asana was never enabled", code="integration_not_found")
        if not reenable and existing is not None and existing["status"] != "unlinked":
            raise Conflict("Asana is already enabled; use reenable", code="integration_exists")
        state, verifier = new_state(), new_code_verifier()
        await self._svc._db.insert(
            "oauth_states",
            {
                "_id": digest(state),
                "account_id": principal.account_id,
                "user_id": principal.user_id,
                "verifier": self._svc._box.seal({"v": verifier}),
                "reenable": reenable,
                "used": False,
                "expires_at": clock.later_iso(STATE_TTL_S),
            },
        )
        url = asana_authorize_url(
            self._settings.asana_oauth_url,
            client_id,
            self.redirect_uri(),
            state,
            verifier,
            scope=self._settings.asana_scopes,
        )
        return {"authorize_url": url}

    def refusal(self, error: str, description: str | None = None) -> str:
        """A clear message for Asana's ``error`` (and ``error_description``) on the callback,
        safe to show on the page (the caller escapes it)."""
        sent = " ".join(self._settings.asana_scopes.split())
        if error == "forbidden_scopes":
            return (
                "Asana refused the requested permissions: this Asana app is registered with "
                f"full permissions, which may not ask for scopes (sent: {sent or 'none'}). "
                "Empty TT_ASANA_SCOPES, or register the app with granular scopes."
            )
        if error in ("invalid_scope", "invalid_request") and "scope" in (description or error):
            return (
                "Asana refused the requested scopes: an app registered with granular scopes "
                f"must ask for exactly the scopes it was registered with (sent: {sent or 'none'})."
                f" Set TT_ASANA_SCOPES to: {GRANULAR_SCOPES}."
            )
        if error == "access_denied":
            return "Access was denied on Asana's page; nothing was connected."
        detail = f" ({description[:200]})" if description else ""
        return f"Asana did not grant access: {error[:100]}{detail}."

    async def callback(self, code: str, state: str) -> dict[str, Any]:
        client_id, secret = self._client()
        record = await self._svc._db.update_one(
            "oauth_states",
            {"_id": digest(state), "used": False, "expires_at": {"$gt": clock.now_iso()}},
            {"used": True},
        )
        if record is None:
            raise NotFound(
                "this sign-in link is unknown, used or expired; start again from Tasktimer",
                code="oauth_state_invalid",
            )
        user = await self._svc._db.find_one(
            "users", {"_id": record["user_id"], "account_id": record["account_id"]}
        )
        if user is None or not user.get("active", True) or user["role"] != "admin":
            raise Forbidden("the admin who started this connection can no longer complete it")
        verifier = self._svc._box.open(record["verifier"])["v"]
        try:
            credentials = await asana_exchange_code(
                self._svc.connectors.http,
                self._settings.asana_oauth_url,
                client_id,
                secret,
                self.redirect_uri(),
                code,
                verifier,
            )
        except ProviderAuthError:
            raise ValidationFailed(
                "Asana refused the authorization", [{"field": "code", "message": "refused"}]
            ) from None
        except ProviderError as exc:
            raise Conflict(
                f"Asana could not be reached: {exc}", code="provider_unavailable"
            ) from None
        return await self._svc.connect(
            Principal.of_user(user), "asana", credentials, reenable=bool(record.get("reenable"))
        )

    async def _connector(self, principal: Principal) -> tuple[dict[str, Any], AsanaConnector]:
        if not principal.is_admin:
            raise Forbidden("only admins manage integrations")
        doc = await self._svc._get(principal.account_id, "asana")
        creds = await self._svc.credentials(doc)

        async def saver(new: dict[str, Any]) -> None:
            await self._svc.save_credentials(principal.account_id, "asana", new)

        connector = self._svc.connectors.connector(doc, creds, saver)
        assert isinstance(connector, AsanaConnector)
        return doc, connector

    async def workspaces(self, principal: Principal) -> list[dict[str, Any]]:
        doc, connector = await self._connector(principal)
        selected = doc.get("selected_workspaces")
        try:
            found = await connector.list_workspaces()
        except ProviderError as exc:
            raise Conflict(f"Asana could not be read: {exc}", code="provider_unavailable") from None
        return [
            {
                "id": ws["id"],
                "name": ws["name"],
                "selected": selected is None or ws["id"] in selected,
            }
            for ws in found
        ]

    async def select_workspaces(self, principal: Principal, selected: list[str]) -> dict[str, Any]:
        available = {ws["id"] for ws in await self.workspaces(principal)}
        unknown = sorted(set(selected) - available)
        if unknown:
            raise ValidationFailed(
                "unknown workspaces", [{"field": "selected", "message": f"unknown: {unknown}"}]
            )
        await self._svc.set_fields(
            principal.account_id, "asana", {"selected_workspaces": sorted(set(selected))}
        )
        await self._svc.request_sync(principal.account_id, "asana")
        return await self._svc.get(principal, "asana")

    async def coworkers(self, principal: Principal) -> list[dict[str, str]]:
        doc, connector = await self._connector(principal)
        selected = doc.get("selected_workspaces")
        try:
            if selected is None:
                selected = [ws["id"] for ws in await connector.list_workspaces()]
            people = await connector.list_users(selected)
        except ProviderError as exc:
            raise Conflict(f"Asana could not be read: {exc}", code="provider_unavailable") from None
        users = await self._svc._db.find("users", {"account_id": principal.account_id})
        known = {email_key(u["email"]) for u in users}
        # The Asana user who connected the tool is the integration's owner already.
        connected_as = ((await self._svc.credentials(doc)).get("user") or {}).get("email")
        if connected_as:
            known.add(email_key(str(connected_as)))
        found: dict[str, dict[str, str]] = {}
        for p in people:
            email = str(p.get("email") or "").strip()
            if email and email_key(email) not in known:
                found.setdefault(email_key(email), {"email": email, "name": p.get("name") or ""})
        return sorted(found.values(), key=lambda p: email_key(p["email"]))

    async def invite(self, principal: Principal, emails: list[str]) -> list[dict[str, Any]]:
        if not principal.is_admin:
            raise Forbidden("only admins invite")
        await self._svc._get(principal.account_id, "asana")
        names = {}
        try:
            names = {email_key(c["email"]): c["name"] for c in await self.coworkers(principal)}
        except (Conflict, NotFound):
            pass
        accounts = self._svc._accounts
        out: list[dict[str, Any]] = []
        invited: list[tuple[dict[str, Any], Invite]] = []
        unique: dict[str, str] = {}
        for given in emails:
            unique.setdefault(email_key(given), given)
        for email in unique.values():
            try:
                user, invite = await accounts.create_user(
                    principal,
                    email,
                    names.get(email_key(email)) or email.split("@")[0],
                    None,
                    "user",
                    send_mail=False,
                )
            except Conflict:
                out.append(
                    {
                        "email": email,
                        "status": "already_a_user",
                        "user_id": None,
                        "invite_url": None,
                        "mail": None,
                    }
                )
                continue
            assert invite is not None
            invited.append((user, invite))
            out.append({"email": email, "status": "invited", "user_id": user["_id"]})
        # One SMTP session for the whole batch, after every invitation exists.
        await accounts.mail_invitations(principal, invited)
        by_user = {user["_id"]: invite for user, invite in invited}
        for item in out:
            invite = by_user.get(item["user_id"]) if item["user_id"] else None
            if invite is not None:
                item.update(invite_url=invite.url, mail=invite.mail, id=new_id())
        return out
