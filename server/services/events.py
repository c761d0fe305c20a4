"""Live events for a user's connected clients (SSE).

Within one process, events go straight to the subscribers' queues. With MongoDB several
server processes share the data, so every event is also written to the ``events``
collection and each process runs a tailing poll of it (MongoDB change streams need a
replica set, which many small installations lack); a process skips the events it wrote
itself. On SQLite there is one process, and nothing is written.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

from ..domain import clock
from ..jsonutil import dumps_str
from ..store.base import Backend
from .background import cancel_and_wait
from .ids import new_id, new_secret

log = logging.getLogger(__name__)

QUEUE_SIZE = 256
RETENTION_S = 600.0


class EventBus:
    def __init__(self, backend: Backend, *, shared: bool, poll_s: float) -> None:
        self._backend = backend
        self._shared = shared
        self._poll_s = poll_s
        self._origin = new_secret()[:16]
        self._subscribers: dict[tuple[str, str], set[asyncio.Queue[tuple[str, str]]]] = {}
        self._poller: asyncio.Task[None] | None = None
        self._seen: dict[str, str] = {}

    async def start(self) -> None:
        if self._shared:
            self._poller = asyncio.create_task(self._poll(), name="event-poll")

    async def stop(self) -> None:
        await cancel_and_wait(self._poller)

    def _deliver(self, account_id: str, user_id: str, kind: str, payload: str) -> None:
        for queue in self._subscribers.get((account_id, user_id), ()):
            if queue.full():
                # A client that does not read is dropped rather than letting memory grow.
                with contextlib.suppress(asyncio.QueueEmpty):
                    queue.get_nowait()
            queue.put_nowait((kind, payload))

    def wants(self, account_id: str, user_id: str) -> bool:
        """Whether an event for this user can reach anybody (so it is worth building)."""
        return self._shared or (account_id, user_id) in self._subscribers

    async def publish(self, account_id: str, user_id: str, kind: str, data: Any) -> None:
        await self.publish_many(account_id, [user_id], kind, data)

    async def publish_many(
        self, account_id: str, user_ids: list[str], kind: str, data: Any
    ) -> None:
        """The same event for several users, stored for other processes in one write."""
        targets = [u for u in user_ids if self.wants(account_id, u)]
        if not targets:
            return
        payload = dumps_str(data)
        for user_id in targets:
            self._deliver(account_id, user_id, kind, payload)
        if not self._shared:
            return
        now = clock.now_iso()
        try:
            await self._backend.insert_many(
                "events",
                [
                    {
                        "_id": new_id(),
                        "account_id": account_id,
                        "user_id": user_id,
                        "type": kind,
                        "data": payload,
                        "created_at": now,
                        "origin": self._origin,
                    }
                    for user_id in targets
                ],
            )
        except Exception:
            log.exception("could not store an event for other processes")

    @contextlib.asynccontextmanager
    async def subscribe(
        self, account_id: str, user_id: str
    ) -> AsyncIterator[asyncio.Queue[tuple[str, str]]]:
        queue: asyncio.Queue[tuple[str, str]] = asyncio.Queue(QUEUE_SIZE)
        key = (account_id, user_id)
        self._subscribers.setdefault(key, set()).add(queue)
        try:
            yield queue
        finally:
            subscribers = self._subscribers.get(key)
            if subscribers is not None:
                subscribers.discard(queue)
                if not subscribers:
                    del self._subscribers[key]

    def subscriber_count(self, account_id: str | None = None, user_id: str | None = None) -> int:
        if account_id is not None and user_id is not None:
            return len(self._subscribers.get((account_id, user_id), ()))
        return sum(len(s) for s in self._subscribers.values())

    async def _poll(self) -> None:
        # Re-read a short overlap window each time: writes of other processes may become
        # visible slightly out of timestamp order. ``_seen`` removes the duplicates.
        overlap = timedelta(seconds=5)
        since = clock.now() - overlap
        cleanup_due = clock.now()
        while True:
            await asyncio.sleep(self._poll_s)
            try:
                now = clock.now()
                docs = await self._backend.find(
                    "events",
                    {"created_at": {"$gte": clock.iso(since)}, "origin": {"$ne": self._origin}},
                    sort=[("created_at", 1)],
                    limit=5000,
                )
                for doc in docs:
                    if doc["_id"] in self._seen:
                        continue
                    self._seen[doc["_id"]] = doc["created_at"]
                    self._deliver(doc["account_id"], doc["user_id"], doc["type"], doc["data"])
                since = now - overlap
                horizon = clock.iso(since)
                self._seen = {k: v for k, v in self._seen.items() if v >= horizon}
                if now >= cleanup_due:
                    cleanup_due = now + timedelta(seconds=60)
                    await self._backend.delete_many(
                        "events",
                        {"created_at": {"$lt": clock.iso(now - timedelta(seconds=RETENTION_S))}},
                    )
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("event poll failed; retrying")
