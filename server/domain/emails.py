"""The one e-mail address rule (API.md, "E-mail addresses").

Syntax only: a local part, ``@`` and a domain. No deliverability or special-use checks
(self-hosted teams live on ``corp.local``, ``*.internal``, ``*.lan``). Addresses are
stored as given and compared case-insensitively through ``email_key``.

``PATTERN`` is published in the OpenAPI document as it is matched here, so a schema-driven
client and the server agree on every string; it uses only explicit character classes,
which mean the same in Python and in ECMA-262 (JSON Schema) regular expressions.
"""

from __future__ import annotations

import re

MAX_LENGTH = 320
# No "@", space or control character in either part; domain labels are not empty.
_CHAR = r"[^@ \x00-\x1f\x7f]"
_LABEL = r"[^@ .\x00-\x1f\x7f]+"
PATTERN = rf"^{_CHAR}+@{_LABEL}(\.{_LABEL})*$"
_MATCH = re.compile(PATTERN)


def is_email(value: str) -> bool:
    return len(value) <= MAX_LENGTH and _MATCH.fullmatch(value) is not None


def check_email(value: str) -> str:
    """The address unchanged, or ``ValueError`` naming what is wrong."""
    if len(value) > MAX_LENGTH:
        raise ValueError(f"an e-mail address has at most {MAX_LENGTH} characters")
    if _MATCH.fullmatch(value) is None:
        raise ValueError("expected an e-mail address: a local part, @ and a domain")
    return value


def email_key(value: str) -> str:
    """What two addresses are compared by: equal keys are the same address."""
    return value.lower()
