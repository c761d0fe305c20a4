from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is calling: the authenticated user of one account."""

    account_id: str
    user_id: str
    email: str
    name: str
    role: str  # "admin" | "user"
    token_hash: str = ""

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"
