"""Identifiers and secrets."""

from __future__ import annotations

import hashlib
import secrets
import time


def new_id() -> str:
    """Opaque, unique, and roughly time-ordered so that ``_id`` order is creation order."""
    return f"{time.time_ns() // 1_000_000:012x}{secrets.token_hex(6)}"


def new_secret() -> str:
    return secrets.token_urlsafe(32)


def digest(secret: str) -> str:
    """Bearer tokens, invitation tokens and OAuth states are stored only as this hash."""
    return hashlib.sha256(secret.encode()).hexdigest()
