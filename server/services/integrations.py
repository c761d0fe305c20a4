"""Integrations: enabling, the sync engine, scheduling and the lifecycle.

One sync engine serves every tool. A connector yields a complete snapshot; the engine
diffs it against the stored tasks of that integration and applies the difference with
bulk writes. A snapshot that could not be completed changes nothing at all: only a
complete snapshot may decide that an item is gone.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
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
    SnapshotNode,
)
from ..settings import Settings
from ..store.base import Backend, Doc, DuplicateKey
from .accounts import AccountService
from .background import cancel_and_wait
from .events import EventBus
from .ids import new_id
from .principal import Principal
from .tasks import TaskService
from .timer import TimerService

log = logging.getLogger(__name__)

ROOT_EXTERNAL_ID = "root"
HEARTBEAT_S = 10.0
STALE_AFTER_S = 60.0
PROGRESS_EVERY = 500

# What an upstream state means for the task, per tool (SPEC.md). "gone" is an item that
# vanished from a complete snapshot.
ACTIVE, ARCHIVED, REMOVED = "active", "archived", "removed"
RULES: Mapping[str, Mapping[str, str]] = {
    "heyspace": {
        "active": ACTIVE,
        "completed": ACTIVE,
        "archived": ARCHIVED,
        "deleted": ARCHIVED,
        "gone": ARCHIVED,
    },
    "asana": {
        "active": ACTIVE,
        "completed": ARCHIVED,
        "archived": ARCHIVED,
        "deleted": ARCHIVED,
        "gone": ARCHIVED,
    },
    "pivotaltracker": {
        "active": ACTIVE,
        "completed": REMOVED,
        "archived": ARCHIVED,
        "deleted": REMOVED,
        "gone": REMOVED,
    },
}

ConnectorFactory = Callable[[Doc, Credentials, Callable[[Credentials], Awaitable[None]]], Connector]
CredentialCheck = Callable[[str, dict[str, Any]], Awaitable[Credentials]]


@dataclass
class Counts:
    created: int = 0
    updated: int = 0
    archived: int = 0
    removed: int = 0
    unchanged: int = 0

    def as_dict(self) -> dict[str, int]:
        return dict(self.__dict__)


@dataclass
class Plan:
    """The writes one snapshot leads to."""

    inserts: list[Doc] = field(default_factory=list)
    updates: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    counts: Counts = field(default_factory=Counts)
    active_by_external: dict[str, str] = field(default_factory=dict)


def integration_id(account_id: str, service: str) -> str:
    return f"{account_id}:{service}"


def public_integration(doc: Doc) -> dict[str, Any]:
    return {
        "service": doc["service"],
        "status": doc["status"],
        "owner_user_id": doc.get("owner_user_id"),
        "root_task_id": doc.get("root_task_id"),
        "last_sync": doc.get("last_sync"),
        "next_sync_at": doc.get("next_sync_at"),
        "settings": doc.get("settings") or {},
        "error": doc.get("error"),
    }


def public_sync(doc: Doc) -> dict[str, Any]:
    return {
        "id": doc["_id"],
        "service": doc["service"],
        "state": doc["state"],
        "started_at": doc.get("started_at"),
        "finished_at": doc.get("finished_at"),
        "counts": doc.get("counts") or Counts().as_dict(),
        "progress": doc.get("progress") or {"fetched": 0},
        "error": doc.get("error"),
    }


def plan_sync(
    service: str,
    account_id: str,
    root_id: str,
    nodes: list[SnapshotNode],
    existing: Mapping[str, Doc],
    *,
    keywords_from_ids: bool,
) -> Plan:
    """Pure diff of a complete snapshot against the stored tasks of one integration."""
    rules = RULES[service]
    plan = Plan()
    now = clock.now_iso()
    ids: dict[str, str] = {ROOT_EXTERNAL_ID: root_id}
    for ext, doc in existing.items():
        ids[ext] = doc["_id"]
    seen: set[str] = set()
    for node in nodes:
        if node.external_id in seen or node.external_id == ROOT_EXTERNAL_ID:
            continue
        seen.add(node.external_id)
        task_id = ids.get(node.external_id) or new_id()
        ids[node.external_id] = task_id
        parent = ids.get(node.parent_external_id or ROOT_EXTERNAL_ID, root_id)
        outcome = rules.get(node.state, ACTIVE)
        keywords = (
            [node.external_id] if keywords_from_ids and node.kind in ("task", "subtask") else []
        )
        target: dict[str, Any] = {
            "name": node.name or "(untitled)",
            "parent_id": parent,
            "source_kind": node.kind,
            "upstream_state": node.state,
            "archived": outcome == ARCHIVED,
            "removed": outcome == REMOVED,
            "url": node.url,
            "workspace_id": node.workspace_id,
            "member_emails": sorted({e.lower() for e in node.member_emails}),
            "auto_keywords": keywords,
        }
        if outcome == ACTIVE:
            plan.active_by_external[node.external_id] = task_id
        current = existing.get(node.external_id)
        if current is None:
            plan.inserts.append(
                {
                    "_id": task_id,
                    "account_id": account_id,
                    "imported": True,
                    "source_service": service,
                    "source_external_id": node.external_id,
                    "keywords": keywords,
                    "created_at": now,
                    **target,
                }
            )
            plan.counts.created += 1
            continue
        changes = {k: v for k, v in target.items() if current.get(k) != v}
        if "auto_keywords" in changes:
            # Keep keywords people added; swap only the ones the sync put there.
            old_auto = set(current.get("auto_keywords") or [])
            manual = [k for k in current.get("keywords") or [] if k not in old_auto]
            changes["keywords"] = sorted({*manual, *keywords})
        _count_change(plan.counts, current, changes)
        if changes:
            changes["updated_at"] = now
            plan.updates.append((current["_id"], changes))
    for ext, doc in existing.items():
        if ext in seen or ext == ROOT_EXTERNAL_ID:
            continue
        outcome = rules["gone"]
        changes = {}
        if outcome == REMOVED and not doc.get("removed"):
            changes = {"removed": True, "upstream_state": "deleted"}
        elif outcome == ARCHIVED and not doc.get("archived"):
            changes = {"archived": True, "upstream_state": "deleted"}
        _count_change(plan.counts, doc, changes)
        if changes:
            changes["updated_at"] = now
            plan.updates.append((doc["_id"], changes))
    return plan


def _count_change(counts: Counts, current: Doc, changes: Mapping[str, Any]) -> None:
    if not changes:
        counts.unchanged += 1
    elif changes.get("removed") is True and not current.get("removed"):
        counts.removed += 1
    elif changes.get("archived") is True and not current.get("archived"):
        counts.archived += 1
    else:
        counts.updated += 1


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
        # The provider side (connectors, HTTP client) for flows such as Asana's OAuth.
        self.connectors: Any = None
        from .asana_flow import AsanaFlow

        self.asana = AsanaFlow(self)
        self._scheduler: asyncio.Task[None] | None = None
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
        if doc is None:
            raise NotFound("sync not found")
        return public_sync(doc)

    async def list_syncs(
        self, principal: Principal, service: str, *, skip: int, limit: int
    ) -> list[dict[str, Any]]:
        await self._get(principal.account_id, service)
        docs = await self._db.find(
            "syncs",
            {"account_id": principal.account_id, "service": service},
            sort=[("started_at", -1)],
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
        """Start a sync, or join the one that is queued or running (in any process)."""
        for _ in range(3):
            sync_id = new_id()
            now = clock.now_iso()
            try:
                await self._db.insert(
                    "syncs",
                    {
                        "_id": sync_id,
                        "account_id": account_id,
                        "service": service,
                        "state": "queued",
                        "active": True,
                        "started_at": now,
                        "heartbeat_at": now,
                        "finished_at": None,
                        "counts": Counts().as_dict(),
                        "progress": {"fetched": 0},
                        "error": None,
                    },
                )
            except DuplicateKey:
                active = await self._db.find_one(
                    "syncs", {"account_id": account_id, "service": service, "active": True}
                )
                if active is None:
                    continue
                stale = clock.iso(clock.now() - timedelta(seconds=STALE_AFTER_S))
                if active["heartbeat_at"] >= stale:
                    return str(active["_id"])
                # The process that held the lease died: take it over.
                await self._db.update_one(
                    "syncs",
                    {"_id": active["_id"], "active": True, "heartbeat_at": active["heartbeat_at"]},
                    {
                        "active": None,
                        "state": "failed",
                        "finished_at": now,
                        "error": "the server running this sync stopped",
                    },
                )
                continue
            key = integration_id(account_id, service)
            task = asyncio.create_task(self._run(account_id, service, sync_id), name=f"sync {key}")
            self._running[key] = task
            task.add_done_callback(self._forget(key))
            return sync_id
        raise Conflict("could not start a sync; retry", code="sync_busy")

    def _forget(self, key: str) -> Callable[[asyncio.Task[None]], None]:
        def done(task: asyncio.Task[None]) -> None:
            if self._running.get(key) is task:
                del self._running[key]

        return done

    async def wait_idle(self) -> None:
        """Wait for this process's running syncs (tests and shutdown)."""
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

    async def _run(self, account_id: str, service: str, sync_id: str) -> None:
        stop = asyncio.Event()
        beat = asyncio.create_task(self._heartbeat(sync_id, stop))
        started = clock.now_iso()
        counts = Counts()
        error: str | None = None
        status = "ok"
        try:
            await self._db.update_one(
                "syncs", {"_id": sync_id}, {"state": "running", "started_at": started}
            )
            await self.set_fields(account_id, service, {"status": "syncing"})
            counts = await self._sync(account_id, service, sync_id)
        except ProviderAuthError as exc:
            error, status = str(exc), "needs_reauth"
        except ProviderError as exc:
            error, status = str(exc), "error"
        except (Conflict, NotFound) as exc:
            error, status = exc.detail, "error"
        except asyncio.CancelledError:
            error, status = "cancelled", "error"
            raise
        except Exception:
            log.exception("sync %s of %s failed", sync_id, service)
            error, status = "internal error during the sync", "error"
        finally:
            stop.set()
            await beat
            finished = clock.now_iso()
            state = "failed" if error else "succeeded"
            summary = {
                "id": sync_id,
                "state": state,
                "started_at": started,
                "finished_at": finished,
                "counts": counts.as_dict(),
                "error": error,
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

    def _next_sync_at(self) -> str:
        interval = self._settings.sync_interval_s
        return clock.later_iso(interval * random.uniform(0.9, 1.0))

    async def _sync(self, account_id: str, service: str, sync_id: str) -> Counts:
        doc = await self._get(account_id, service)
        if doc["status"] in ("unlinked", "owner_missing"):
            raise Conflict(f"the integration is {doc['status']}")
        creds = await self.credentials(doc)

        async def saver(new: Credentials) -> None:
            await self.save_credentials(account_id, service, new)

        connector = self._connector_factory(doc, creds, saver)
        nodes: list[SnapshotNode] = []
        async for node in connector.snapshot():
            nodes.append(node)
            if len(nodes) % PROGRESS_EVERY == 0:
                await self._db.update_one(
                    "syncs", {"_id": sync_id}, {"progress": {"fetched": len(nodes)}}
                )
        await self._db.update_one(
            "syncs", {"_id": sync_id}, {"progress": {"fetched": len(nodes), "applying": True}}
        )
        return await self.apply_snapshot(doc, nodes)

    async def apply_snapshot(self, integration: Doc, nodes: list[SnapshotNode]) -> Counts:
        account_id, service = integration["account_id"], integration["service"]
        # The integration may have been unlinked while the snapshot was being fetched
        # (possibly through another process): then nothing is applied.
        current = await self._get(account_id, service)
        if current["status"] in ("unlinked", "owner_missing"):
            raise Conflict(f"the integration was {current['status'].replace('_', ' ')} meanwhile")
        root_id = await self._root(account_id, service)
        stored = await self._db.find(
            "tasks", {"account_id": account_id, "imported": True, "source_service": service}
        )
        existing = {t["source_external_id"]: t for t in stored}
        plan = plan_sync(
            service,
            account_id,
            root_id,
            nodes,
            existing,
            keywords_from_ids=bool((integration.get("settings") or {}).get("keywords_from_ids")),
        )
        await self._db.insert_many("tasks", plan.inserts)
        await self._db.bulk_set("tasks", plan.updates)
        await self._assign(integration, root_id)
        await self._tasks.bump(account_id)
        await self._bind_pending(account_id, service, plan.active_by_external)
        return plan.counts

    async def _bind_pending(
        self, account_id: str, service: str, active_by_external: Mapping[str, str]
    ) -> None:
        pending = await self._db.find(
            "entries", {"account_id": account_id, "pending_service": service}
        )
        resolved = {
            e["pending_external_id"]: active_by_external[e["pending_external_id"]]
            for e in pending
            if e["pending_external_id"] in active_by_external
        }
        await self._timer.bind_pending(account_id, service, resolved)

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

    async def stop(self) -> None:
        await cancel_and_wait(self._scheduler, *self._running.values())

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
