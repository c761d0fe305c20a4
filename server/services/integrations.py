"""Integrations: enabling, the sync engine, scheduling and the lifecycle.

One sync engine serves every tool. A connector yields its snapshot as a stream; the engine
compares it batch by batch with a compact index of the stored tasks (``sync_apply``) and
writes new and changed items as they come. Only a complete snapshot may decide that an
item is gone: a snapshot that failed part way archives and removes nothing, and nothing
under an item whose contents could not be read is ever archived.

Between full syncs a light incremental check (``TT_SYNC_POLL_S``) asks the connector for
what changed since its last state and upserts only that. Full syncs and checks of one
integration share one lease in the database (``syncs`` records), so they never overlap,
also across server processes.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import Awaitable, Callable, Collection, Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from ..crypto import SecretBox
from ..domain import clock
from ..domain.emails import email_key
from ..domain.errors import Conflict, Forbidden, NotFound, ValidationFailed
from ..integrations.base import (
    ROOT_NAMES,
    Connector,
    Credentials,
    ProviderAuthError,
    ProviderError,
)
from ..settings import Settings
from ..store.base import Backend, Doc, DuplicateKey
from .accounts import AccountService
from .background import cancel_and_wait
from .events import EventBus
from .ids import new_id
from .principal import Principal
from .sync_apply import BATCH as APPLY_BATCH
from .sync_apply import ROOT_EXTERNAL_ID, Counts, SnapshotApply
from .tasks import TaskService
from .timer import TimerService

log = logging.getLogger(__name__)

HEARTBEAT_S = 10.0
STALE_AFTER_S = 60.0
PROGRESS_EVERY = 500
# Share of a provider's per-minute rate budget the incremental checks may spend.
POLL_SHARE = 0.1
POLL_BUDGET_UNLIMITED = 50

ConnectorFactory = Callable[[Doc, Credentials, Callable[[Credentials], Awaitable[None]]], Connector]
CredentialCheck = Callable[[str, dict[str, Any]], Awaitable[Credentials]]


def integration_id(account_id: str, service: str) -> str:
    return f"{account_id}:{service}"


def public_integration(doc: Doc) -> dict[str, Any]:
    return {
        "service": doc["service"],
        "status": doc["status"],
        "owner_user_id": doc.get("owner_user_id"),
        "root_task_id": doc.get("root_task_id"),
        "last_sync": doc.get("last_sync"),
        "last_poll": doc.get("last_poll"),
        "next_sync_at": doc.get("next_sync_at"),
        "settings": doc.get("settings") or {},
        "error": doc.get("error"),
    }


def public_sync(doc: Doc) -> dict[str, Any]:
    return {
        "id": doc["_id"],
        "service": doc["service"],
        "state": doc["state"],
        "requested_at": doc.get("requested_at"),
        "started_at": doc.get("started_at") if doc["state"] != "queued" else None,
        "finished_at": doc.get("finished_at"),
        "counts": {**Counts().as_dict(), **(doc.get("counts") or {})},
        "progress": doc.get("progress") or {"fetched": 0},
        "error": doc.get("error"),
        "unreadable": doc.get("unreadable") or [],
    }


@dataclass
class _Run:
    """What one sync or check has built so far (read when it ends, however it ends)."""

    connector: Connector | None = None
    apply: SnapshotApply | None = None

    @property
    def requests(self) -> int:
        return self.connector.requests if self.connector is not None else 0


class IntegrationService:
    def __init__(
        self,
        backend: Backend,
        settings: Settings,
        box: SecretBox,
        accounts: AccountService,
        tasks: TaskService,
        timer: TimerService,
        events: EventBus,
        connector_factory: ConnectorFactory,
        check_credentials: CredentialCheck,
    ) -> None:
        self._db = backend
        self._settings = settings
        self._box = box
        self._accounts = accounts
        self._tasks = tasks
        self._timer = timer
        self._events = events
        self._connector_factory = connector_factory
        self._check_credentials = check_credentials
        self._running: dict[str, asyncio.Task[None]] = {}
        # Nodes applied per batch (one bulk insert and one bulk update each).
        self.apply_batch = APPLY_BATCH
        # The provider side (connectors, HTTP client) for flows such as Asana's OAuth.
        self.connectors: Any = None
        from .asana_flow import AsanaFlow

        self.asana = AsanaFlow(self)
        self._scheduler: asyncio.Task[None] | None = None
        self._poller: asyncio.Task[None] | None = None
        accounts.on_user_joined.append(self._user_joined)
        accounts.on_user_deactivated.append(self._user_deactivated)

    # -- reading --------------------------------------------------------------------

    async def list_integrations(self, principal: Principal) -> list[dict[str, Any]]:
        docs = await self._db.find(
            "integrations", {"account_id": principal.account_id}, sort=[("service", 1)]
        )
        return [public_integration(d) for d in docs]

    async def _get(self, account_id: str, service: str) -> Doc:
        doc = await self._db.find_one("integrations", {"_id": integration_id(account_id, service)})
        if doc is None or doc["account_id"] != account_id:
            raise NotFound(
                f"{ROOT_NAMES.get(service, service)} is not enabled", code="integration_not_found"
            )
        return doc

    async def get(self, principal: Principal, service: str) -> dict[str, Any]:
        return public_integration(await self._get(principal.account_id, service))

    async def get_sync(self, principal: Principal, service: str, sync_id: str) -> dict[str, Any]:
        doc = await self._db.find_one(
            "syncs", {"_id": sync_id, "account_id": principal.account_id, "service": service}
        )
        if doc is None or doc.get("kind") == "poll":
            raise NotFound("sync not found")
        return public_sync(doc)

    async def list_syncs(
        self, principal: Principal, service: str, *, skip: int, limit: int
    ) -> list[dict[str, Any]]:
        await self._get(principal.account_id, service)
        docs = await self._db.find(
            "syncs",
            {"account_id": principal.account_id, "service": service, "kind": {"$ne": "poll"}},
            sort=[("requested_at", -1), ("started_at", -1)],
            skip=skip,
            limit=limit,
        )
        return [public_sync(d) for d in docs]

    # -- lifecycle ------------------------------------------------------------------

    async def credentials(self, doc: Doc) -> Credentials:
        sealed = doc.get("credentials")
        if not sealed:
            raise Conflict("the integration has no credentials; re-enable it", code="needs_reauth")
        return self._box.open(sealed)

    async def save_credentials(self, account_id: str, service: str, creds: Credentials) -> None:
        await self._db.update_one(
            "integrations",
            {"_id": integration_id(account_id, service)},
            {"credentials": self._box.seal(creds)},
        )

    async def _root(self, account_id: str, service: str) -> str:
        existing = await self._db.find_one(
            "tasks",
            {
                "account_id": account_id,
                "imported": True,
                "source_service": service,
                "source_external_id": ROOT_EXTERNAL_ID,
            },
        )
        if existing is not None:
            if existing.get("archived"):
                await self._db.update_one("tasks", {"_id": existing["_id"]}, {"archived": False})
            return str(existing["_id"])
        root_id = new_id()
        try:
            await self._db.insert(
                "tasks",
                {
                    "_id": root_id,
                    "account_id": account_id,
                    "parent_id": None,
                    "name": ROOT_NAMES[service],
                    "imported": True,
                    "integration_root": True,
                    "source_service": service,
                    "source_external_id": ROOT_EXTERNAL_ID,
                    "source_kind": "root",
                    "archived": False,
                    "removed": False,
                    "keywords": [],
                    "created_at": clock.now_iso(),
                },
            )
        except DuplicateKey:
            return await self._root(account_id, service)
        return root_id

    async def connect(
        self,
        principal: Principal,
        service: str,
        credentials: Credentials,
        *,
        reenable: bool,
        extra: Mapping[str, Any] | None = None,
    ) -> dict[str, Any]:
        """Store verified credentials and start the first sync."""
        if not principal.is_admin:
            raise Forbidden("only admins connect tools")
        doc_id = integration_id(principal.account_id, service)
        existing = await self._db.find_one("integrations", {"_id": doc_id})
        if reenable and existing is None:
            raise NotFound(f"{ROOT_NAMES[service]} was never enabled", code="integration_not_found")
        if not reenable and existing is not None and existing["status"] != "unlinked":
            raise Conflict(
                f"{ROOT_NAMES[service]} is already enabled; use reenable", code="integration_exists"
            )
        root_id = await self._root(principal.account_id, service)
        fields: dict[str, Any] = {
            "status": "syncing",
            "owner_user_id": principal.user_id,
            "root_task_id": root_id,
            "credentials": self._box.seal(credentials),
            "error": None,
            "next_sync_at": clock.now_iso(),
            **(extra or {}),
        }
        if existing is None:
            try:
                await self._db.insert(
                    "integrations",
                    {
                        "_id": doc_id,
                        "account_id": principal.account_id,
                        "service": service,
                        "settings": {"keywords_from_ids": False},
                        "last_sync": None,
                        "created_at": clock.now_iso(),
                        **fields,
                    },
                )
            except DuplicateKey:
                raise Conflict(
                    "the integration was enabled concurrently", code="integration_exists"
                ) from None
        else:
            await self._db.update_one("integrations", {"_id": doc_id}, fields)
        await self._tasks.bump(principal.account_id)
        await self.request_sync(principal.account_id, service)
        return await self.get(principal, service)

    async def enable(
        self, principal: Principal, service: str, payload: dict[str, Any], *, reenable: bool
    ) -> dict[str, Any]:
        if not principal.is_admin:
            raise Forbidden("only admins connect tools")
        if reenable:
            await self._get(principal.account_id, service)
        try:
            credentials = await self._check_credentials(service, payload)
        except ProviderAuthError:
            raise ValidationFailed(
                f"{ROOT_NAMES[service]} refused these credentials",
                [{"field": "credentials", "message": "refused by the provider"}],
            ) from None
        except ProviderError as exc:
            raise Conflict(
                f"{ROOT_NAMES[service]} could not be reached: {exc}", code="provider_unavailable"
            ) from None
        return await self.connect(principal, service, credentials, reenable=reenable)

    async def unlink(self, principal: Principal, service: str) -> None:
        if not principal.is_admin:
            raise Forbidden("only admins unlink tools")
        doc = await self._get(principal.account_id, service)
        task = self._running.pop(doc["_id"], None)
        await cancel_and_wait(task)
        await self._db.update_one(
            "integrations",
            {"_id": doc["_id"]},
            {"status": "unlinked", "credentials": None, "next_sync_at": None},
        )
        await self._db.update_many(
            "syncs",
            {"account_id": principal.account_id, "service": service, "waiting": True},
            {
                "waiting": None,
                "state": "failed",
                "finished_at": clock.now_iso(),
                "error": "the integration was unlinked",
            },
        )
        if doc.get("root_task_id"):
            # Archiving the root archives the whole imported tree; entries stay.
            await self._db.update_one(
                "tasks",
                {"_id": doc["root_task_id"], "account_id": principal.account_id},
                {"archived": True},
            )
            await self._tasks.bump(principal.account_id)
            await self._publish_tasks(principal.account_id)

    async def update_settings(
        self, principal: Principal, service: str, settings: dict[str, Any]
    ) -> dict[str, Any]:
        if not principal.is_admin:
            raise Forbidden("only admins change integrations")
        doc = await self._get(principal.account_id, service)
        merged = {**(doc.get("settings") or {}), **settings}
        await self._db.update_one("integrations", {"_id": doc["_id"]}, {"settings": merged})
        if merged != (doc.get("settings") or {}) and doc["status"] not in (
            "unlinked",
            "owner_missing",
            "needs_reauth",
        ):
            await self.request_sync(principal.account_id, service)
        return await self.get(principal, service)

    async def set_fields(self, account_id: str, service: str, fields: dict[str, Any]) -> None:
        await self._db.update_one(
            "integrations", {"_id": integration_id(account_id, service)}, fields
        )

    # -- syncing --------------------------------------------------------------------
    #
    # Sync records double as the per-integration lease, in the database so that every
    # server process sharing it agrees: at most one record per integration is ``active``
    # (a running full sync, or an incremental check) and at most one is ``waiting`` (a
    # queued full sync). A force sync joins the waiting one or queues it; whoever ends the
    # active run (in any process) starts the waiting one. So the sync a request gets has
    # always fetched its snapshot after the request arrived.

    async def force_sync(self, principal: Principal, service: str) -> str:
        doc = await self._get(principal.account_id, service)
        if doc["status"] in ("unlinked", "owner_missing", "needs_reauth"):
            raise Conflict(
                f"{ROOT_NAMES[service]} cannot sync while its status is {doc['status']}; "
                "an admin must re-enable it",
                code=f"integration_{doc['status']}",
            )
        return await self.request_sync(principal.account_id, service)

    async def request_sync(self, account_id: str, service: str) -> str:
        """The id of a full sync that starts no earlier than this call: the queued one
        (joined), or a new one, queued and started at once unless one is running."""
        sync_id: str | None = None
        for _ in range(5):
            waiting = await self._db.find_one(
                "syncs", {"account_id": account_id, "service": service, "waiting": True}
            )
            if waiting is not None:
                sync_id = str(waiting["_id"])
                break
            candidate = new_id()
            try:
                await self._db.insert(
                    "syncs",
                    {
                        "_id": candidate,
                        "account_id": account_id,
                        "service": service,
                        "kind": "full",
                        "state": "queued",
                        "waiting": True,
                        "active": None,
                        "requested_at": clock.now_iso(),
                        "started_at": None,
                        "heartbeat_at": None,
                        "finished_at": None,
                        "counts": Counts().as_dict(),
                        "progress": {"fetched": 0},
                        "error": None,
                    },
                )
            except DuplicateKey:
                continue  # queued meanwhile by someone else: join that one
            sync_id = candidate
            break
        if sync_id is None:
            raise Conflict("could not queue a sync; retry", code="sync_busy")
        await self._start_waiting(account_id, service)
        return sync_id

    async def _release_stale(self, account_id: str, service: str) -> bool:
        """Free a lease whose holder stopped renewing it (its process died). True when
        the lease is free (or was freed), False when a live run holds it."""
        active = await self._db.find_one(
            "syncs", {"account_id": account_id, "service": service, "active": True}
        )
        if active is None:
            return True
        stale = clock.iso(clock.now() - timedelta(seconds=STALE_AFTER_S))
        if (active.get("heartbeat_at") or "") >= stale:
            return False
        await self._db.update_one(
            "syncs",
            {"_id": active["_id"], "active": True, "heartbeat_at": active.get("heartbeat_at")},
            {
                "active": None,
                "state": "failed",
                "finished_at": clock.now_iso(),
                "error": "the server running this sync stopped",
            },
        )
        return True

    async def _start_waiting(self, account_id: str, service: str) -> None:
        """Promote the queued sync to running and run it here, if the lease is free."""
        for _ in range(3):
            waiting = await self._db.find_one(
                "syncs", {"account_id": account_id, "service": service, "waiting": True}
            )
            if waiting is None:
                return
            now = clock.now_iso()
            try:
                promoted = await self._db.update_one(
                    "syncs",
                    {"_id": waiting["_id"], "waiting": True},
                    {
                        "waiting": None,
                        "active": True,
                        "state": "running",
                        "started_at": now,
                        "heartbeat_at": now,
                    },
                )
            except DuplicateKey:
                if await self._release_stale(account_id, service):
                    continue
                return  # a live run holds the lease; it starts this one when it ends
            if promoted is None:
                continue  # promoted by another process meanwhile
            key = integration_id(account_id, service)
            task = asyncio.create_task(
                self._run(account_id, service, str(promoted["_id"]), now), name=f"sync {key}"
            )
            self._running[key] = task
            task.add_done_callback(self._forget(key))
            return

    def _forget(self, key: str) -> Callable[[asyncio.Task[None]], None]:
        def done(task: asyncio.Task[None]) -> None:
            if self._running.get(key) is task:
                del self._running[key]

        return done

    async def wait_idle(self) -> None:
        """Wait for this process's running syncs and checks (tests and shutdown)."""
        while self._running:
            await asyncio.gather(*list(self._running.values()), return_exceptions=True)

    async def _heartbeat(self, sync_id: str, stop: asyncio.Event) -> None:
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), HEARTBEAT_S)
            if not stop.is_set():
                await self._db.update_one(
                    "syncs",
                    {"_id": sync_id, "active": True},
                    {"heartbeat_at": clock.now_iso()},
                )

    @staticmethod
    def _failure(exc: BaseException) -> tuple[str, str]:
        """(error, integration status) for what stopped a sync. Only credentials the
        provider refused mean the admin must re-enable (API.md, Integration status)."""
        if isinstance(exc, ProviderAuthError):
            return str(exc), "needs_reauth"
        if isinstance(exc, ProviderError):
            return str(exc), "error"
        if isinstance(exc, Conflict | NotFound):
            return exc.detail, "error"
        log.error("sync failed", exc_info=exc)
        return "internal error during the sync", "error"

    async def _run(self, account_id: str, service: str, sync_id: str, started: str) -> None:
        stop = asyncio.Event()
        beat = asyncio.create_task(self._heartbeat(sync_id, stop))
        run = _Run()
        error: str | None = None
        status = "ok"
        cancelled = False
        try:
            await self.set_fields(
                account_id, service, {"status": "syncing", "next_sync_at": self._next_sync_at()}
            )
            await self._sync(account_id, service, sync_id, run)
        except asyncio.CancelledError:
            error, status, cancelled = "cancelled", "error", True
            raise
        except Exception as exc:
            error, status = self._failure(exc)
        finally:
            stop.set()
            await beat
            apply = run.apply
            counts = apply.counts if apply is not None else Counts()
            counts.requests = run.requests
            finished = clock.now_iso()
            state = "failed" if error else "succeeded"
            unreadable = apply.unreadable if apply is not None else []
            summary = {
                "id": sync_id,
                "state": state,
                "started_at": started,
                "finished_at": finished,
                "counts": counts.as_dict(),
                "error": error,
                "unreadable": unreadable,
            }
            with contextlib.suppress(Exception):
                await self._db.update_one(
                    "syncs",
                    {"_id": sync_id},
                    {
                        "state": state,
                        "active": None,
                        "finished_at": finished,
                        "counts": counts.as_dict(),
                        "error": error,
                        "unreadable": unreadable,
                    },
                )
                doc = await self._db.find_one(
                    "integrations", {"_id": integration_id(account_id, service)}
                )
                if doc is not None and doc["status"] not in ("unlinked", "owner_missing"):
                    await self.set_fields(
                        account_id,
                        service,
                        {
                            "status": status,
                            "last_sync": summary,
                            "error": error,
                            "next_sync_at": self._next_sync_at(),
                        },
                    )
                await self._publish_tasks(account_id)
            if not cancelled:
                with contextlib.suppress(Exception):
                    await self._start_waiting(account_id, service)

    def _next_sync_at(self) -> str:
        interval = self._settings.sync_interval_s
        return clock.later_iso(interval * random.uniform(0.9, 1.0))

    async def _connector(self, doc: Doc) -> Connector:
        account_id, service = doc["account_id"], doc["service"]
        creds = await self.credentials(doc)

        async def saver(new: Credentials) -> None:
            await self.save_credentials(account_id, service, new)

        return self._connector_factory(doc, creds, saver)

    async def _linked(self, account_id: str, service: str) -> Doc:
        # The integration may be unlinked while a snapshot is fetched (possibly through
        # another process): then nothing more is applied.
        current = await self._get(account_id, service)
        if current["status"] in ("unlinked", "owner_missing"):
            raise Conflict(f"the integration was {current['status'].replace('_', ' ')} meanwhile")
        return current

    async def _applier(
        self, doc: Doc, external_ids: Collection[str] | None = None
    ) -> SnapshotApply:
        account_id, service = doc["account_id"], doc["service"]
        root_id = await self._root(account_id, service)

        async def still_linked() -> None:
            await self._linked(account_id, service)

        apply = SnapshotApply(
            self._db,
            service,
            account_id,
            root_id,
            keywords_from_ids=bool((doc.get("settings") or {}).get("keywords_from_ids")),
            still_linked=still_linked,
            batch=self.apply_batch,
        )
        await apply.load(external_ids)
        return apply

    async def _sync(self, account_id: str, service: str, sync_id: str, run: _Run) -> None:
        doc = await self._get(account_id, service)
        if doc["status"] in ("unlinked", "owner_missing"):
            raise Conflict(f"the integration is {doc['status']}")
        connector = run.connector = await self._connector(doc)
        baseline: Any = None
        if self._settings.sync_poll_s > 0:
            # Taken before the snapshot, so the incremental checks after this sync look
            # for changes from before its first page on: nothing falls in between.
            try:
                _, baseline = await connector.changes(None, budget=self._poll_budget(service))
            except ProviderAuthError:
                raise
            except ProviderError as exc:
                log.warning("no incremental baseline for %s: %s", service, exc)
        apply = run.apply = await self._applier(doc)
        try:
            async for node in connector.snapshot():
                await apply.add(node)
                if apply.fetched % PROGRESS_EVERY == 0:
                    await self._db.update_one(
                        "syncs", {"_id": sync_id}, {"progress": {"fetched": apply.fetched}}
                    )
            await self._db.update_one(
                "syncs",
                {"_id": sync_id},
                {"progress": {"fetched": apply.fetched, "applying": True}},
            )
            await apply.finish(complete=True)
        except Exception:
            # What was applied before the failure is reported in the sync's counts; the
            # snapshot was incomplete, so nothing was archived or removed.
            with contextlib.suppress(Exception):
                await apply.finish(complete=False)
                await self._after_apply(doc, apply)
            raise
        await self._after_apply(doc, apply)
        if baseline is not None:
            await self.set_fields(account_id, service, {"poll_state": baseline})

    async def _after_apply(self, doc: Doc, apply: SnapshotApply) -> None:
        account_id, service = doc["account_id"], doc["service"]
        if apply.wrote:
            await self._assign(doc, apply.root_id)
            await self._tasks.bump(account_id)
        pending = await self._db.find(
            "entries", {"account_id": account_id, "pending_service": service}
        )
        if pending:
            resolved = apply.active_task_ids({str(e["pending_external_id"]) for e in pending})
            await self._timer.bind_pending(account_id, service, resolved)

    # -- the light incremental check ----------------------------------------------------

    def _poll_budget(self, service: str) -> int:
        rate = 0
        rate_of = getattr(self.connectors, "rate_per_min", None)
        if callable(rate_of):
            rate = int(rate_of(service))
        if rate <= 0:
            return POLL_BUDGET_UNLIMITED
        period_min = max(self._settings.sync_poll_s, 1.0) / 60.0
        return max(2, int(rate * period_min * POLL_SHARE))

    async def poll(self, account_id: str, service: str) -> dict[str, Any] | None:
        """One incremental check of one integration: new and changed items only (never an
        archive or a removal). Skipped (None) while a full sync holds the lease."""
        doc = await self._get(account_id, service)
        if doc["status"] not in ("ok", "error", "syncing") or not doc.get("credentials"):
            return None
        lease_id = new_id()
        now = clock.now_iso()
        lease = {
            "_id": lease_id,
            "account_id": account_id,
            "service": service,
            "kind": "poll",
            "state": "running",
            "active": True,
            "requested_at": now,
            "started_at": now,
            "heartbeat_at": now,
        }
        try:
            await self._db.insert("syncs", lease)
        except DuplicateKey:
            if not await self._release_stale(account_id, service):
                return None
            try:
                await self._db.insert("syncs", lease)
            except DuplicateKey:
                return None
        stop = asyncio.Event()
        beat = asyncio.create_task(self._heartbeat(lease_id, stop))
        result: dict[str, Any] = {"at": now}
        run = _Run()
        try:
            result.update(await self._poll(doc, run))
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            error, status = self._failure(exc)
            result.update(error=error, requests=run.requests)
            if status == "needs_reauth":
                await self.set_fields(account_id, service, {"status": status, "error": error})
        finally:
            stop.set()
            await beat
            with contextlib.suppress(Exception):
                await self._db.delete_many("syncs", {"_id": lease_id})
                await self.set_fields(account_id, service, {"last_poll": result})
                await self._start_waiting(account_id, service)
        return result

    async def _poll(self, doc: Doc, run: _Run) -> dict[str, Any]:
        account_id, service = doc["account_id"], doc["service"]
        connector = run.connector = await self._connector(doc)
        nodes, state = await connector.changes(
            doc.get("poll_state"), budget=self._poll_budget(service)
        )
        counts = Counts()
        if nodes:
            named = {n.external_id for n in nodes}
            named.update(n.parent_external_id for n in nodes if n.parent_external_id)
            apply = await self._applier(await self._linked(account_id, service), named)
            for node in nodes:
                await apply.add(node)
            await apply.finish(complete=False)
            await self._after_apply(doc, apply)
            counts = apply.counts
            if apply.wrote:
                await self._publish_tasks(account_id)
        await self.set_fields(account_id, service, {"poll_state": state})
        return {
            "requests": connector.requests,
            "created": counts.created,
            "updated": counts.updated,
            "unchanged": counts.unchanged,
            "error": None,
        }

    async def run_due_polls(self) -> int:
        """Claim and run the incremental checks that are due (each once, across every
        process: the claim moves ``next_poll_at`` atomically)."""
        period = self._settings.sync_poll_s
        if period <= 0:
            return 0
        now = clock.now_iso()
        due = await self._db.find(
            "integrations",
            {"status": {"$in": ["ok", "error", "syncing"]}, "next_poll_at": {"$lte": now}},
            limit=100,
        )
        due += await self._db.find(
            "integrations",
            {"status": {"$in": ["ok", "error", "syncing"]}, "next_poll_at": None},
            limit=100,
        )
        ran = 0
        for doc in due:
            claimed = await self._db.update_one(
                "integrations",
                {"_id": doc["_id"], "next_poll_at": doc.get("next_poll_at")},
                {"next_poll_at": clock.later_iso(period)},
            )
            if claimed is None:
                continue
            if await self.poll(doc["account_id"], doc["service"]) is not None:
                ran += 1
        return ran

    # -- automatic assignment -------------------------------------------------------

    async def _assign(self, integration: Doc, root_id: str) -> None:
        """HeySpace and Pivotal: every active user is `regular` on the root. Asana: the
        owner is, and others are `regular` on the projects listing their e-mail
        (re-evaluated on every sync, so people removed upstream lose the automatic
        grant). Automatic grants never override a manual decision."""
        account_id, service = integration["account_id"], integration["service"]
        users = await self._db.find("users", {"account_id": account_id, "active": True})
        wanted: set[tuple[str, str]] = set()
        projects: list[Doc] = []
        if service in ("heyspace", "pivotaltracker"):
            wanted = {(root_id, u["_id"]) for u in users}
        else:
            owner = integration.get("owner_user_id")
            if owner:
                wanted.add((root_id, owner))
            projects = await self._db.find(
                "tasks",
                {
                    "account_id": account_id,
                    "imported": True,
                    "source_service": service,
                    "parent_id": root_id,
                },
            )
            by_email = {email_key(u["email"]): u["_id"] for u in users}
            for project in projects:
                for email in project.get("member_emails") or ():
                    user_id = by_email.get(email_key(str(email)))
                    if user_id is not None:
                        wanted.add((project["_id"], user_id))
        await self._tasks.add_auto_grants(
            account_id, [(task_id, user_id, "regular") for task_id, user_id in sorted(wanted)]
        )
        if projects:
            scope = {p["_id"] for p in projects}
            autos = await self._db.find(
                "members",
                {"account_id": account_id, "origin": "auto", "task_id": {"$in": sorted(scope)}},
            )
            await self._tasks.drop_auto_grants(
                account_id,
                [
                    (m["task_id"], m["user_id"])
                    for m in autos
                    if (m["task_id"], m["user_id"]) not in wanted
                ],
            )

    async def _user_joined(self, account_id: str, user_id: str) -> None:
        integrations = await self._db.find("integrations", {"account_id": account_id})
        changed = False
        for doc in integrations:
            if doc["status"] == "unlinked" or not doc.get("root_task_id"):
                continue
            await self._assign(doc, doc["root_task_id"])
            changed = True
        if changed:
            await self._tasks.bump(account_id)

    async def _user_deactivated(self, account_id: str, user_id: str) -> None:
        integrations = await self._db.find("integrations", {"account_id": account_id})
        for doc in integrations:
            if doc.get("owner_user_id") == user_id and doc["status"] != "unlinked":
                await self.set_fields(
                    account_id,
                    doc["service"],
                    {
                        "status": "owner_missing",
                        "error": "the user who connected this tool is no longer active; "
                        "an admin should re-enable it",
                        "next_sync_at": None,
                    },
                )

    async def _publish_tasks(self, account_id: str) -> None:
        users = await self._db.find("users", {"account_id": account_id, "active": True})
        await self._events.publish_many(
            account_id, [u["_id"] for u in users], "tasks", {"changed": True}
        )

    # -- scheduling -----------------------------------------------------------------

    def start_scheduler(self) -> None:
        if self._settings.scheduler:
            self._scheduler = asyncio.create_task(self._schedule(), name="sync-scheduler")
            if self._settings.sync_poll_s > 0:
                self._poller = asyncio.create_task(self._poll_loop(), name="sync-poller")

    async def stop(self) -> None:
        await cancel_and_wait(self._scheduler, self._poller, *self._running.values())

    async def run_due_syncs(self) -> int:
        due = await self._db.find(
            "integrations",
            {
                "status": {"$in": ["ok", "error", "syncing"]},
                "next_sync_at": {"$lte": clock.now_iso()},
            },
            limit=100,
        )
        for doc in due:
            await self.request_sync(doc["account_id"], doc["service"])
        return len(due)

    async def _schedule(self) -> None:
        period = max(1.0, min(30.0, self._settings.sync_interval_s / 4))
        while True:
            await asyncio.sleep(period * random.uniform(0.8, 1.2))
            try:
                await self.run_due_syncs()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("the sync scheduler failed; it goes on")

    async def _poll_loop(self) -> None:
        # Wakes often enough that a check is at most a fifth of its period late.
        tick = max(0.2, min(5.0, self._settings.sync_poll_s / 5))
        while True:
            await asyncio.sleep(tick * random.uniform(0.8, 1.2))
            try:
                await self.run_due_polls()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("the incremental check failed; it goes on")
