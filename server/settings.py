"""One frozen settings object built from the ``TT_*`` environment variables."""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

DEFAULT_CORS_ORIGINS = ("chrome-extension://*", "moz-extension://*")


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="TT_", frozen=True, extra="ignore", hide_input_in_errors=True
    )

    database_url: str = "sqlite:///./tasktimer.db"
    host: str = "127.0.0.1"
    port: int = Field(default=8080, ge=0, le=65535)
    secret_key: SecretStr | None = None
    bootstrap_admin_email: str | None = None
    bootstrap_admin_password: SecretStr | None = None
    sync_interval_s: float = Field(default=3600.0, gt=0)
    public_url: str | None = None
    # Comma separated in the environment; patterns may end in ``*`` to allow every
    # extension id of one browser.
    cors_origins: str = ",".join(DEFAULT_CORS_ORIGINS)
    asana_api_url: str = "https://app.asana.com/api/1.0"
    asana_oauth_url: str = "https://app.asana.com/-"
    asana_client_id: str | None = None
    asana_client_secret: SecretStr | None = None
    # The ``scope`` sent to Asana's authorize page. Empty sends none: the right choice for
    # an app registered with full permissions, which Asana refuses (``forbidden_scopes``)
    # when it asks for any. An app registered with granular scopes must name them here,
    # space separated (README: "Registering the Asana app").
    asana_scopes: str = ""
    heyspace_api_url: str = "https://app.hey.space/api"
    pivotal_api_url: str = "https://www.pivotaltracker.com/services/v5"
    # ``smtp://user:pass@host:port`` (STARTTLS when the server offers it) or ``smtps://``;
    # unset: invitations are not mailed and their links are shown to the admin.
    smtp_url: SecretStr | None = None
    mail_from: str | None = None
    # One batch of invitation mails (connect, log in, send) never holds a request longer.
    smtp_timeout_s: float = Field(default=10.0, gt=0)
    max_body_bytes: int = Field(default=1_048_576, gt=0)
    token_ttl_days: float = Field(default=90.0, gt=0)
    # Argon2id cost; the defaults follow RFC 9106's second recommended option.
    password_time_cost: int = Field(default=3, ge=1)
    password_memory_kib: int = Field(default=65536, ge=1024)
    # Provider HTTP behaviour; small values make the fake-provider tests fast.
    provider_timeout_s: float = Field(default=30.0, gt=0)
    provider_max_retries: int = Field(default=4, ge=0)
    provider_backoff_s: float = Field(default=0.5, ge=0)
    provider_max_retry_after_s: float = Field(default=60.0, ge=0)
    # Requests per minute one integration (one provider token) may send, shared by its full
    # sync and its incremental checks; 0 = no limit of ours (429 + Retry-After still apply).
    # Asana's free plan allows 150 a minute per token; Pivotal and HeySpace publish none.
    asana_rate_per_min: int = Field(default=150, ge=0)
    pivotal_rate_per_min: int = Field(default=0, ge=0)
    heyspace_rate_per_min: int = Field(default=0, ge=0)
    # Period of the light incremental check between full syncs (0 = off).
    sync_poll_s: float = Field(default=60.0, ge=0)
    # Multi-process event fan-out over MongoDB: how often each process polls.
    event_poll_s: float = Field(default=0.5, gt=0)
    sse_keepalive_s: float = Field(default=15.0, gt=0)
    scheduler: bool = True
    log_level: str = "INFO"

    @field_validator("bootstrap_admin_email")
    @classmethod
    def _email(cls, value: str | None) -> str | None:
        from .domain.emails import check_email

        return check_email(value) if value else value

    @field_validator("public_url")
    @classmethod
    def _strip_slash(cls, value: str | None) -> str | None:
        return value.rstrip("/") if value else value

    @field_validator("smtp_url")
    @classmethod
    def _smtp_scheme(cls, value: SecretStr | None) -> SecretStr | None:
        if value is None or not value.get_secret_value():
            return None
        parts = urlsplit(value.get_secret_value())
        if parts.scheme not in ("smtp", "smtps") or not parts.hostname:
            # The value itself is not repeated: it may hold the SMTP password.
            raise ValueError("TT_SMTP_URL must look like smtp://user:pass@host:port or smtps://")
        return value

    @property
    def effective_mail_from(self) -> str:
        host = urlsplit(self.effective_public_url).hostname or "localhost"
        return self.mail_from or f"Tasktimer <tasktimer@{host}>"

    @property
    def effective_public_url(self) -> str:
        return self.public_url or f"http://{self.host}:{self.port}"

    @property
    def cors_origin_list(self) -> list[str]:
        return [o.strip() for o in self.cors_origins.split(",") if o.strip()]

    @property
    def is_mongo(self) -> bool:
        return self.database_url.startswith(("mongodb://", "mongodb+srv://"))

    @property
    def sqlite_path(self) -> Path:
        """``sqlite:///rel/path`` is relative, ``sqlite:////abs/path`` absolute."""
        prefix = "sqlite:///"
        if not self.database_url.startswith(prefix):
            raise ValueError("TT_DATABASE_URL must start with sqlite:/// or mongodb://")
        return Path(self.database_url[len(prefix) :])

    def __repr_args__(self) -> Any:
        for key, value in super().__repr_args__():
            if key == "database_url" and isinstance(value, str) and "@" in value:
                scheme, _, rest = value.partition("://")
                value = f"{scheme}://***@{rest.rsplit('@', 1)[-1]}"
            yield key, value
