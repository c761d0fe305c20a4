"""Helpers for tests that run connectors against the fakes."""

from __future__ import annotations

from server.integrations.base import Connector, Credentials, SnapshotNode
from server.integrations.http import RetryPolicy

# Real retry behaviour with waits short enough for tests.
FAST = RetryPolicy(
    attempts=4, backoff_base=0.001, backoff_max=0.01, retry_after_cap=0.05, timeout=2.0
)


class Saved:
    """A CredentialsSaver that remembers what it was given."""

    def __init__(self) -> None:
        self.calls: list[Credentials] = []

    async def __call__(self, credentials: Credentials) -> None:
        self.calls.append(credentials)


async def collect(connector: Connector) -> list[SnapshotNode]:
    return [node async for node in connector.snapshot()]


def assert_tree(nodes: list[SnapshotNode]) -> dict[str, SnapshotNode]:
    """Unique ids, and every parent yielded before its children."""
    seen: dict[str, SnapshotNode] = {}
    for node in nodes:
        assert node.external_id not in seen, f"duplicate {node.external_id}"
        assert node.parent_external_id is None or node.parent_external_id in seen, node
        seen[node.external_id] = node
    return seen


def assert_batch(nodes: list[SnapshotNode]) -> dict[str, SnapshotNode]:
    """An incremental check's nodes: unique ids, and a parent that is in the batch comes
    before its children (other parents were imported before)."""
    ids = {node.external_id for node in nodes}
    assert len(ids) == len(nodes), "duplicate ids"
    seen: dict[str, SnapshotNode] = {}
    for node in nodes:
        parent = node.parent_external_id
        assert parent is None or parent not in ids or parent in seen, node
        seen[node.external_id] = node
    return seen
