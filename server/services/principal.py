from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is calling: the authenticated user of one account."""

    account_id: str
    user_id: str
    email: str
    name: str
    role: str  # "admin" | "user"
    token_hash: str = ""
    # "api" for bearer tokens, "session" for the web app's cookie: a token of one kind is
    # never accepted as the other.
    kind: str = "api"

    @classmethod
    def of_user(cls, user: Mapping[str, Any], token_hash: str = "") -> Principal:
        """The principal of a stored user (or token) record: it carries the same fields."""
        return cls(
            account_id=user["account_id"],
            user_id=user.get("user_id") or user["_id"],
            email=user["email"],
            name=user.get("name") or "",
            role=user["role"],
            token_hash=token_hash,
            kind=user.get("kind") or "api",
        )

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"
