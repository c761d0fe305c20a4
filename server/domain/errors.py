"""Typed domain errors. One middleware maps them to problem+json responses."""

from __future__ import annotations

from typing import Any


class DomainError(Exception):
    status = 400
    code = "bad_request"
    title = "Bad request"
    # HTTP headers the answer carries (e.g. Retry-After).
    headers: dict[str, str]

    def __init__(self, detail: str, *, code: str | None = None, **extra: Any) -> None:
        super().__init__(detail)
        self.detail = detail
        if code is not None:
            self.code = code
        self.extra = extra
        self.headers = {}


class ValidationFailed(DomainError):
    status = 400
    code = "validation_error"
    title = "Validation error"

    def __init__(
        self, detail: str, errors: list[dict[str, str]] | None = None, *, code: str | None = None
    ) -> None:
        super().__init__(detail, code=code, errors=errors or [])


class Unauthorized(DomainError):
    status = 401
    code = "unauthorized"
    title = "Unauthorized"


class Forbidden(DomainError):
    status = 403
    code = "forbidden"
    title = "Forbidden"


class NotFound(DomainError):
    status = 404
    code = "not_found"
    title = "Not found"


class Conflict(DomainError):
    status = 409
    code = "conflict"
    title = "Conflict"


class PayloadTooLarge(DomainError):
    status = 413
    code = "payload_too_large"
    title = "Payload too large"


class RateLimited(DomainError):
    status = 429
    code = "rate_limited"
    title = "Too many requests"

    def __init__(
        self, detail: str, *, code: str | None = None, retry_after_s: int | None = None
    ) -> None:
        super().__init__(detail, code=code)
        if retry_after_s is not None:
            self.headers["Retry-After"] = str(max(1, retry_after_s))


class Unavailable(DomainError):
    status = 503
    code = "unavailable"
    title = "Service unavailable"
