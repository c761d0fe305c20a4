"""The team page (admins): add or invite users, roles, deactivate and reactivate."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from ..domain.errors import DomainError
from ..services.accounts import Invite
from ..services.principal import Principal
from .core import form_texts, page, render, services

routes = web.RouteTableDef()


def _state(user: dict[str, Any]) -> str:
    if not user.get("active", True):
        return "deactivated"
    if not user.get("password_hash"):
        return "invited"
    return "active"


async def team(
    request: web.Request,
    user: Principal,
    *,
    alerts: list[str] | None = None,
    notice: str = "",
    invite_url: str = "",
    invite_for: str = "",
    form: dict[str, str] | None = None,
    status: int = 200,
) -> web.Response:
    docs = await services(request).accounts.all_users(user.account_id)
    people = [
        {
            "id": d["_id"],
            "email": d["email"],
            "name": d.get("name") or "",
            "role": d["role"],
            "state": _state(d),
            "is_me": d["_id"] == user.user_id,
        }
        for d in docs
    ]
    return render(
        request,
        "team.html",
        {
            "title": "Team",
            "people": people,
            "alerts": alerts or [],
            "notice": notice,
            "invite_url": invite_url,
            "invite_for": invite_for,
            "form": form or {},
        },
        user=user,
        status=status,
    )


@routes.get("/team")
@page(admin=True)
async def team_page(request: web.Request, user: Principal) -> web.StreamResponse:
    return await team(request, user)


@routes.post("/team/users")
@page(admin=True)
async def add_user(request: web.Request, user: Principal) -> web.StreamResponse:
    form = await request.post()
    values = form_texts(form, ("email", "name", "role"))
    password = str(form.get("password") or "")
    role = values["role"] if values["role"] in ("admin", "user") else "user"
    if "@" not in values["email"] or not values["name"]:
        return await team(
            request, user, alerts=["Give an e-mail address and a name."], form=values, status=400
        )
    try:
        created, invite = await services(request).accounts.create_user(
            user, values["email"], values["name"], password or None, role
        )
    except DomainError as exc:
        message = exc.detail
        if exc.code == "email_taken":
            message = f"{values['email']} is already a member of the team."
        elif exc.code == "validation_error":
            message = "A password needs at least 8 characters (or leave it empty to invite)."
        return await team(request, user, alerts=[message], form=values, status=exc.status)
    if invite is not None:
        return await _invite_answer(request, user, invite, created["_id"], created["email"])
    raise web.HTTPSeeOther("/team")


async def _invite_answer(
    request: web.Request, user: Principal, invite: Invite, user_id: str, email: str = ""
) -> web.Response:
    who = f" for {email}" if email else ""
    if invite.mail == "sent":
        return await team(request, user, notice=f"Invitation{who} mailed.")
    # The link is shown once, in this answer (it is a secret: never in a URL we
    # redirect to). A mail that failed leaves the invitation valid: pass it on.
    failed = " The invitation mail could not be sent." if invite.mail == "failed" else ""
    return await team(
        request,
        user,
        notice=f"Invitation{who} created.{failed} Pass its link on.",
        invite_url=invite.url,
        invite_for=user_id,
    )


@routes.post("/team/users/{id}")
@page(admin=True)
async def change_user(request: web.Request, user: Principal) -> web.StreamResponse:
    form = await request.post()
    if "reinvite" in form:
        try:
            invite = await services(request).accounts.reinvite(user, request.match_info["id"])
        except DomainError as exc:
            return await team(request, user, alerts=[exc.detail], status=exc.status)
        return await _invite_answer(request, user, invite, request.match_info["id"])
    changes: dict[str, Any] = {}
    if form.get("role") in ("admin", "user"):
        changes["role"] = form["role"]
    if "deactivate" in form:
        changes["active"] = False
    if "reactivate" in form:
        changes["active"] = True
    try:
        await services(request).accounts.update_user(user, request.match_info["id"], changes)
    except DomainError as exc:
        message = exc.detail
        if exc.code == "last_admin":
            message = "The team needs at least one active admin."
        return await team(request, user, alerts=[message], status=exc.status)
    raise web.HTTPSeeOther("/team")
