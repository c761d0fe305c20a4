"""Encryption of stored provider credentials (Fernet: AES-128-CBC + HMAC-SHA256)."""

from __future__ import annotations

import base64
import hashlib
import json
import os
from pathlib import Path
from typing import Any

from cryptography.fernet import Fernet, InvalidToken

from .settings import Settings


class SecretBox:
    def __init__(self, key_material: str) -> None:
        # Any string works as TT_SECRET_KEY: it is stretched to a Fernet key.
        digest = hashlib.sha256(key_material.encode()).digest()
        self._fernet = Fernet(base64.urlsafe_b64encode(digest))

    def seal(self, value: dict[str, Any]) -> str:
        return self._fernet.encrypt(json.dumps(value).encode()).decode()

    def open(self, token: str) -> dict[str, Any]:
        try:
            data = json.loads(self._fernet.decrypt(token.encode()))
        except (InvalidToken, ValueError):
            raise ValueError("stored credentials cannot be decrypted with this key") from None
        if not isinstance(data, dict):
            raise ValueError("stored credentials are malformed")
        return data


def load_secret_key(settings: Settings) -> str:
    if settings.secret_key is not None:
        return settings.secret_key.get_secret_value()
    if settings.is_mongo:
        raise SystemExit(
            "TT_SECRET_KEY is required with MongoDB: every server process must share it"
        )
    key_file = Path(str(settings.sqlite_path) + ".key")
    if key_file.exists():
        return key_file.read_text().strip()
    key_file.parent.mkdir(parents=True, exist_ok=True)
    key = Fernet.generate_key().decode()
    fd = os.open(key_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(key)
    return key
