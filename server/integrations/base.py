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

    ``partial``: this node exists upstream but its descendants could not be read (e.g. a
    403 on one Asana project). The sync must leave every stored descendant of it as it is:
    neither archive nor remove what could not be read. The node itself is current.
    """

    external_id: str
    parent_external_id: str | None
    kind: str
    name: str
    state: UpstreamState = "active"
    member_emails: tuple[str, ...] = ()
    workspace_id: str | None = None
    url: str | None = None
    partial: bool = False


Credentials = dict[str, Any]
CredentialsSaver = Callable[[Credentials], Awaitable[None]]


class ProviderError(Exception):
    """The provider could not be read completely. The message is safe to show and log:
    it never contains a token, a password or a full request with credentials."""

    code = "provider_error"

    def __init__(
        self, message: str, *, status: int | None = None, provider_code: str | None = None
    ) -> None:
        super().__init__(message)
        self.status = status
        # The provider's own error code from the answer (e.g. Pivotal's
        # ``invalid_authentication``), when it gave one.
        self.provider_code = provider_code


class ProviderAuthError(ProviderError):
    """Credentials were refused; the admin must re-enable the integration."""

    code = "provider_auth_failed"


class ProviderForbidden(ProviderError):
    """The provider refused one object (403): the credentials are fine, the owner just may
    not read this project or task. Not a reason to ask for re-authentication."""

    code = "provider_forbidden"


class ProviderRateLimited(ProviderError):
    """Retries ran out while the provider kept answering 429."""

    code = "rate_limited"


ChangeState = dict[str, Any]


class Connector(Protocol):
    service: Service

    @property
    def requests(self) -> int:
        """Provider requests this connector has sent so far (each retry counts)."""
        ...

    def snapshot(self) -> AsyncIterator[SnapshotNode]:
        """Yield every node the owner can see. Raises ProviderError when the snapshot
        cannot be completed; nodes already yielded must then be treated as partial.
        A node with ``partial=True`` is complete itself but its subtree could not be read."""
        ...

    async def changes(
        self, state: Mapping[str, Any] | None, *, budget: int
    ) -> tuple[list[SnapshotNode], ChangeState]:
        """The light incremental check: nodes of items created or changed upstream since
        ``state`` (parents before children; a node's parent is either in the list or was
        imported before), and the new opaque, JSON-serialisable state to pass next time.

        ``state=None`` returns ``([], baseline)`` for a few requests; take it before a full
        snapshot (with the same connector), so nothing changed during the snapshot is
        missed and a connector may complete the baseline from what the snapshot read.
        ``budget`` is the most provider requests this call may send (a listing it started
        is read to its end; a check without changes spends at most the budget, so keep it
        within the rate share meant for checks and about 2 % of a full sync's requests);
        work left over is carried in the state. It reports only items
        that stay active in Tasktimer (state "active"; HeySpace also "completed"), never
        that an item is gone, archived, deleted, or an Asana/Pivotal completion: only a
        full snapshot decides those, so the service only upserts what this returns."""
        ...
