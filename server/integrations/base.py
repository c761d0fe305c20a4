"""What every connector produces and the errors it may raise.

A connector knows nothing of tasks, users or the database: it authenticates against one
provider and yields the complete tree its owner can see as ``SnapshotNode`` values. All
diffing, archiving and binding happens once, in the sync service, for every tool.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal, Protocol

Service = Literal["heyspace", "asana", "pivotaltracker"]
SERVICES: tuple[Service, ...] = ("heyspace", "asana", "pivotaltracker")
ROOT_NAMES: Mapping[str, str] = {
    "heyspace": "HeySpace",
    "asana": "Asana",
    "pivotaltracker": "Pivotal Tracker",
}

UpstreamState = Literal["active", "completed", "archived", "deleted"]


@dataclass(frozen=True, slots=True)
class SnapshotNode:
    """One item as the provider shows it.

    ``parent_external_id`` is None for items directly under the integration's root task.
    Connectors yield parents before their children.
    """

    external_id: str
    parent_external_id: str | None
    kind: str
    name: str
    state: UpstreamState = "active"
    member_emails: tuple[str, ...] = ()
    workspace_id: str | None = None
    url: str | None = None


Credentials = dict[str, Any]
CredentialsSaver = Callable[[Credentials], Awaitable[None]]


class ProviderError(Exception):
    """The provider could not be read completely. The message is safe to show and log:
    it never contains a token, a password or a full request with credentials."""

    code = "provider_error"

    def __init__(self, message: str, *, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class ProviderAuthError(ProviderError):
    """Credentials were refused; the admin must re-enable the integration."""

    code = "provider_auth_failed"


class ProviderRateLimited(ProviderError):
    """Retries ran out while the provider kept answering 429."""

    code = "rate_limited"


class Connector(Protocol):
    service: Service

    def snapshot(self) -> AsyncIterator[SnapshotNode]:
        """Yield every node the owner can see. Raises ProviderError when the snapshot
        cannot be completed; nodes already yielded must then be treated as partial."""
        ...
