"""Timers and time entries.

"At most one running timer per user" is a unique partial index on entries
(``running = true``), so the database refuses a second one whatever the code does.

Switching timers (stop the running entry, insert the new one) is serialised per user so
that entries never overlap: an in-process lock, and with MongoDB (several processes) also
a short lease document in ``timer_locks`` that every process honours. Inside it the
server clock is read, the running entry is stopped at that instant with one conditional
update, and the new one starts at the same instant. Should the unique index still refuse
the insert (a process that ignored or lost its lease), the loop stops the winner and
tries again.

A start or stop may carry an ``Idempotency-Key`` and an ``at`` (a click replayed after the
server was unreachable). The key's digest is stored on the entry the start created
(``start_key``, unique) or the stop ended (``stop_key``), in the same write, so a replay
finds what the first request did even when the server died before answering; nothing
else is written first, so a crash can never leave a key blocked.
"""

from __future__ import annotations

import asyncio
from typing import Any

from ..domain import clock
from ..domain.errors import Conflict, Forbidden, NotFound, ValidationFailed
from ..domain.tree import Tree
from ..store.base import Backend, Doc, DuplicateKey
from .events import EventBus
from .ids import digest, new_id
from .principal import Principal
from .tasks import TaskService

# How old a replayed start or stop (``at``) may be.
MAX_REPLAY_AGE_S = 24 * 3600
MAX_SWITCH_ATTEMPTS = 64
LEASE_S = 5.0
LEASE_WAIT_S = 10.0


class _Unknown:
    """Marks "the caller does not know which entry runs now"."""


def _invalid_time(message: str) -> ValidationFailed:
    return ValidationFailed(message, [{"field": "at", "message": message}], code="invalid_time")


def _duration(entry: Doc) -> int:
    end = entry.get("end") or clock.now_iso()
    return clock.seconds_between(entry["start"], end)


class _Switching:
    """``async with``: the per-user lock, and the lease when processes share the data.

    A class rather than an ``asynccontextmanager``: it is entered on every start and stop,
    and a generator-based context manager costs several times more per use."""

    __slots__ = ("_account_id", "_holder", "_key", "_slot", "_timer", "_user_id")

    def __init__(self, timer: TimerService, account_id: str, user_id: str) -> None:
        self._timer = timer
        self._account_id = account_id
        self._user_id = user_id
        self._key = (account_id, user_id)
        self._holder = ""

    async def __aenter__(self) -> None:
        locks = self._timer._locks
        slot = locks.get(self._key)
        if slot is None:
            slot = locks[self._key] = [asyncio.Lock(), 0]
        slot[1] += 1  # holders and waiters; the lock is dropped when none is left
        self._slot = slot
        try:
            await slot[0].acquire()
        except BaseException:
            self._release_slot()
            raise
        if not self._timer._shared:
            return
        try:
            self._holder = new_id()
            await self._timer._acquire_lease(self._lease_id, self._holder, self._account_id)
        except BaseException:
            slot[0].release()
            self._release_slot()
            raise

    async def __aexit__(self, *exc: object) -> None:
        try:
            if self._holder:
                await self._timer._db.delete_many(
                    "timer_locks", {"_id": self._lease_id, "holder": self._holder}
                )
        finally:
            self._slot[0].release()
            self._release_slot()

    @property
    def _lease_id(self) -> str:
        return f"{self._account_id}:{self._user_id}"

    def _release_slot(self) -> None:
        self._slot[1] -= 1
        if self._slot[1] == 0:
            del self._timer._locks[self._key]


class TimerService:
    def __init__(
        self, backend: Backend, tasks: TaskService, events: EventBus, *, shared: bool = False
    ) -> None:
        self._db = backend
        self._tasks = tasks
        self._events = events
        self._shared = shared
        self._locks: dict[tuple[str, str], list[Any]] = {}  # see _Switching

    def _switching(self, account_id: str, user_id: str) -> _Switching:
        """Serialise the timer changes of one user (see the module docstring)."""
        return _Switching(self, account_id, user_id)

    async def _acquire_lease(self, lease_id: str, holder: str, account_id: str) -> None:
        loop = asyncio.get_running_loop()
        give_up = loop.time() + LEASE_WAIT_S
        delay = 0.005
        while True:
            now = clock.now_iso()
            try:
                await self._db.insert(
                    "timer_locks",
                    {
                        "_id": lease_id,
                        "account_id": account_id,
                        "holder": holder,
                        "expires_at": clock.later_iso(LEASE_S),
                    },
                )
                return
            except DuplicateKey:
                # A lease left behind by a process that died is taken over once expired.
                taken = await self._db.update_one(
                    "timer_locks",
                    {"_id": lease_id, "expires_at": {"$lt": now}},
                    {"holder": holder, "expires_at": clock.later_iso(LEASE_S)},
                )
                if taken is not None:
                    return
            if loop.time() > give_up:
                raise Conflict("the timer is busy; retry", code="timer_busy")
            await asyncio.sleep(delay)
            delay = min(delay * 2, 0.1)

    # -- presentation ---------------------------------------------------------------

    @staticmethod
    def present(entry: Doc, tree: Tree | None = None) -> dict[str, Any]:
        pending = None
        if entry.get("pending_service"):
            pending = {
                "service": entry["pending_service"],
                "external_id": entry["pending_external_id"],
            }
        task_id = entry.get("task_id")
        task = tree.get(task_id) if tree is not None and task_id else None
        return {
            "id": entry["_id"],
            "user_id": entry["user_id"],
            "task_id": task_id,
            "pending_ref": pending,
            "start": entry["start"],
            "end": entry.get("end"),
            "duration_s": _duration(entry),
            "note": entry.get("note") or "",
            "tags": list(entry.get("tags") or []),
            "created_with": entry.get("created_with") or "api",
            "task_name": task.name if task else None,
            "task_path": list(tree.path(task_id))
            if tree is not None and task and task_id
            else None,
        }

    async def _present(self, account_id: str, entry: Doc | None) -> dict[str, Any] | None:
        if entry is None:
            return None
        return self.present(entry, await self._tasks.tree(account_id))

    async def _notify(
        self,
        principal_account: str,
        user_id: str,
        entries: list[Doc],
        running: Doc | type[_Unknown] | None = _Unknown,
    ) -> None:
        if not self._events.wants(principal_account, user_id):
            return
        tree = await self._tasks.tree(principal_account)
        for entry in entries:
            await self._events.publish(
                principal_account, user_id, "entry", {"entry": self.present(entry, tree)}
            )
        if running is _Unknown:
            running = await self._db.find_one(
                "entries", {"account_id": principal_account, "user_id": user_id, "running": True}
            )
        assert not isinstance(running, type)
        await self._events.publish(
            principal_account,
            user_id,
            "timer",
            {"running": self.present(running, tree) if running else None},
        )

    # -- timer ----------------------------------------------------------------------

    async def running(self, principal: Principal) -> dict[str, Any] | None:
        entry = await self._db.find_one(
            "entries",
            {"account_id": principal.account_id, "user_id": principal.user_id, "running": True},
        )
        return await self._present(principal.account_id, entry)

    def _check_trackable(self, tree: Tree, principal: Principal, task_id: str) -> None:
        task = tree.get(task_id)
        if task is None or not tree.visible(principal.user_id, principal.is_admin, task_id):
            raise NotFound("task not found")
        if tree.is_archived(task_id):
            raise Forbidden("the task is archived", code="task_not_trackable")
        if not tree.trackable(principal.user_id, principal.is_admin, task_id):
            raise Forbidden("you have no tracking role on this task", code="task_not_trackable")

    def _key(self, principal: Principal, idempotency_key: str | None) -> str | None:
        if not idempotency_key:
            return None
        return digest(f"{principal.account_id}:{principal.user_id}:{idempotency_key}")

    async def start(
        self,
        principal: Principal,
        *,
        task_id: str | None,
        service: str | None,
        external_id: str | None,
        note: str,
        tags: list[str],
        created_with: str,
        idempotency_key: str | None = None,
        at: str | None = None,
    ) -> dict[str, Any]:
        key = self._key(principal, idempotency_key)
        if key is not None:
            # Checked before the task: a replay answers with what the first request did,
            # even if the task was archived since.
            replay = await self._replayed_start(principal, key)
            if replay is not None:
                return replay
        tree = await self._tasks.tree(principal.account_id)
        pending: tuple[str, str] | None = None
        if task_id is None:
            if service is None or external_id is None:
                # Every caller (API, web form) gets the same answer for a start that
                # names no task.
                raise ValidationFailed(
                    "give either task_id or service and external_id",
                    [{"field": "task_id", "message": "either task_id or service + external_id"}],
                )
            found = tree.find_source(service, external_id)
            if found is not None and not tree.is_removed(found):
                if not tree.visible(principal.user_id, principal.is_admin, found):
                    raise Forbidden(
                        "you have no tracking role on this item", code="task_not_trackable"
                    )
                task_id = found
            else:
                pending = (service, external_id)
        if task_id is not None:
            self._check_trackable(tree, principal, task_id)
        async with self._switching(principal.account_id, principal.user_id):
            if key is not None:
                # The same key may have been served while this request waited its turn.
                replay = await self._replayed_start(principal, key)
                if replay is not None:
                    return replay
            if at is not None:
                await self._check_start_at(principal, at)
            result, entries = await self._switch(
                principal, tree, task_id, pending, note, tags, created_with, at, key
            )
        await self._notify(principal.account_id, principal.user_id, entries, entries[-1])
        return result

    async def _replayed_start(self, principal: Principal, key: str) -> dict[str, Any] | None:
        """The answer to a start whose Idempotency-Key created an entry already.

        The entry carries the key under a unique index, so it is written in the same
        operation as the entry itself: after a crash the key either found its entry (and
        the retry gets it) or nothing was written (and the retry creates it)."""
        entry = await self._db.find_one(
            "entries",
            {"account_id": principal.account_id, "start_key": key, "keyed": True},
        )
        if entry is None or entry["user_id"] != principal.user_id:
            return None
        stopped = None
        if entry.get("stopped_id"):
            stopped = await self._db.find_one(
                "entries", {"_id": entry["stopped_id"], "account_id": principal.account_id}
            )
        tree = await self._tasks.tree(principal.account_id)
        return {
            "running": self.present(entry, tree),
            "stopped": self.present(stopped, tree) if stopped else None,
            "replayed": True,
        }

    @staticmethod
    def _check_at_range(at: str) -> None:
        if at > clock.now_iso():
            raise _invalid_time("at is in the future")
        if at < clock.later_iso(-MAX_REPLAY_AGE_S):
            raise _invalid_time("at is more than 24 hours ago")

    async def _check_start_at(self, principal: Principal, at: str) -> None:
        """A replayed start begins at ``at``: not in the future, not older than a day,
        and not inside the caller's latest entry. A running entry is stopped at ``at``,
        so that needs ``at`` after its start (the rule of a replayed stop)."""
        self._check_at_range(at)
        latest = await self._db.find(
            "entries",
            {"account_id": principal.account_id, "user_id": principal.user_id},
            sort=[("start", -1)],
            limit=1,
        )
        if not latest:
            return
        if latest[0].get("running"):
            if at <= latest[0]["start"]:
                raise _invalid_time("at is not after the start of the running entry")
        elif at < (latest[0].get("end") or latest[0]["start"]):
            raise _invalid_time("at is before the end of your latest entry")

    async def _switch(
        self,
        principal: Principal,
        tree: Tree,
        task_id: str | None,
        pending: tuple[str, str] | None,
        note: str,
        tags: list[str],
        created_with: str,
        at: str | None,
        key: str | None,
    ) -> tuple[dict[str, Any], list[Doc]]:
        owner = {"account_id": principal.account_id, "user_id": principal.user_id}
        for _ in range(MAX_SWITCH_ATTEMPTS):
            # With a key, the entry records which one it stopped, for the replay's answer.
            running = (
                await self._db.find_one("entries", {**owner, "running": True})
                if key is not None
                else None
            )
            now = at or clock.now_iso()
            entry: Doc = {
                "_id": new_id(),
                **owner,
                "task_id": task_id,
                "pending_service": pending[0] if pending else None,
                "pending_external_id": pending[1] if pending else None,
                "start": now,
                "end": None,
                "running": True,
                "note": note,
                "tags": tags,
                "created_with": created_with,
                "created_at": clock.now_iso(),
            }
            if key is not None:
                entry.update(start_key=key, keyed=True)
                if running is not None:
                    entry["stopped_id"] = running["_id"]
            try:
                # Stop the running entry and start the new one at the same instant (one
                # transaction on SQLite).
                before = await self._db.update_one_and_insert(
                    "entries", {**owner, "running": True}, {"running": False, "end": now}, entry
                )
            except DuplicateKey:
                if key is not None:
                    replay = await self._replayed_start(principal, key)
                    if replay is not None:
                        return replay, []
                # A start that ignored the lease won; stop that one on the next pass.
                await self._stop_running(principal.account_id, principal.user_id, now)
                continue
            stopped = await self._stopped(before, now)
            fix: dict[str, Any] = {}
            if stopped is not None and stopped["end"] != now:
                # The clock went back behind the stopped entry's start: start there too.
                entry["start"] = fix["start"] = stopped["end"]
            stopped_id = stopped["_id"] if stopped else None
            if key is not None and stopped_id != entry.get("stopped_id"):
                entry["stopped_id"] = fix["stopped_id"] = stopped_id
            if fix:
                await self._db.update_one("entries", {"_id": entry["_id"]}, fix)
            changed = [stopped, entry] if stopped else [entry]
            return (
                {
                    "running": self.present(entry, tree),
                    "stopped": self.present(stopped, tree) if stopped else None,
                },
                changed,
            )
        raise Conflict("too many concurrent timer changes; retry", code="timer_busy")

    async def _stop_running(
        self, account_id: str, user_id: str, now: str, key: str | None = None
    ) -> Doc | None:
        before = await self._db.update_one(
            "entries",
            {"account_id": account_id, "user_id": user_id, "running": True},
            {"running": False, "end": now, **({"stop_key": key} if key else {})},
            return_doc="before",
        )
        return await self._stopped(before, now)

    async def _stop_entry(self, entry: Doc, now: str, key: str | None = None) -> Doc | None:
        before = await self._db.update_one(
            "entries",
            {"_id": entry["_id"], "account_id": entry["account_id"], "running": True},
            {"running": False, "end": now, **({"stop_key": key} if key else {})},
            return_doc="before",
        )
        return await self._stopped(before, now)

    async def _stopped(self, before: Doc | None, now: str) -> Doc | None:
        """The stopped entry. One conditional update does the stop; only when the clock
        went back behind the entry's start (rare) a second write clamps the end."""
        if before is None:
            return None
        end = max(now, before["start"])
        if end != now:
            await self._db.update_one("entries", {"_id": before["_id"]}, {"end": end})
        return {**before, "running": False, "end": end}

    async def stop(
        self,
        principal: Principal,
        entry_id: str | None,
        *,
        at: str | None = None,
        idempotency_key: str | None = None,
    ) -> dict[str, Any] | None:
        key = self._key(principal, idempotency_key)
        async with self._switching(principal.account_id, principal.user_id):
            if key is not None:
                # A replayed stop answers with the entry it stopped, and never stops the
                # entry that runs now.
                done = await self._db.find_one(
                    "entries",
                    {
                        "account_id": principal.account_id,
                        "user_id": principal.user_id,
                        "stop_key": key,
                    },
                )
                if done is not None:
                    return await self._present(principal.account_id, done)
            return await self._stop(principal, entry_id, at, key)

    async def _stop(
        self, principal: Principal, entry_id: str | None, at: str | None, key: str | None
    ) -> dict[str, Any] | None:
        if at is not None:
            self._check_at_range(at)
        owner = {"account_id": principal.account_id, "user_id": principal.user_id}
        # The usual stop is one conditional update: the running entry (the named one, if
        # any) that started before ``at``. Only when it matches nothing is the entry read,
        # to answer why.
        now = at or clock.now_iso()
        flt: dict[str, Any] = {**owner, "running": True}
        if entry_id is not None:
            flt["_id"] = entry_id
        if at is not None:
            flt["start"] = {"$lt": at}
        before = await self._db.update_one(
            "entries",
            flt,
            {"running": False, "end": now, **({"stop_key": key} if key else {})},
            return_doc="before",
        )
        stopped = await self._stopped(before, now)
        if stopped is None:
            if entry_id is None and at is None:
                return None  # nothing runs: stop is idempotent
            return await self._stop_checked(principal, entry_id, at, key)
        await self._notify(principal.account_id, principal.user_id, [stopped], None)
        return await self._present(principal.account_id, stopped)

    async def _stop_checked(
        self, principal: Principal, entry_id: str | None, at: str | None, key: str | None
    ) -> dict[str, Any] | None:
        """A stop whose conditional update matched nothing: read the entry and answer
        accordingly (not found, already stopped, ``at`` too early), or stop it if it was
        changed between the two reads."""
        owner = {"account_id": principal.account_id, "user_id": principal.user_id}
        if entry_id is None:
            entry = await self._db.find_one("entries", {**owner, "running": True})
            if entry is None:
                return None
        else:
            entry = await self._db.find_one("entries", {"_id": entry_id, **owner})
            if entry is None:
                raise NotFound("entry not found")
            if not entry.get("running"):
                return await self._present(principal.account_id, entry)
        if at is not None and at <= entry["start"]:
            raise _invalid_time("at is not after the start of the running entry")
        stopped = await self._stop_entry(entry, at or clock.now_iso(), key)
        if stopped is None:
            # Stopped concurrently: stop is idempotent, answer with the stored entry.
            again = await self._db.find_one("entries", {"_id": entry["_id"]})
            return await self._present(principal.account_id, again)
        await self._notify(principal.account_id, principal.user_id, [stopped], None)
        return await self._present(principal.account_id, stopped)

    # -- entries --------------------------------------------------------------------

    async def list_entries(
        self,
        principal: Principal,
        *,
        start_from: str | None,
        start_to: str | None,
        user_id: str | None,
        skip: int,
        limit: int,
    ) -> list[dict[str, Any]]:
        target = user_id or principal.user_id
        if target != principal.user_id and not principal.is_admin:
            raise Forbidden("only admins read other users' entries")
        flt: dict[str, Any] = {"account_id": principal.account_id, "user_id": target}
        bounds: dict[str, str] = {}
        if start_from:
            bounds["$gte"] = start_from
        if start_to:
            bounds["$lt"] = start_to
        if bounds:
            flt["start"] = bounds
        docs = await self._db.find(
            "entries", flt, sort=[("start", 1), ("_id", 1)], skip=skip, limit=limit
        )
        tree = await self._tasks.tree(principal.account_id)
        return [self.present(d, tree) for d in docs]

    async def _owned(self, principal: Principal, entry_id: str) -> Doc:
        entry = await self._db.find_one(
            "entries", {"_id": entry_id, "account_id": principal.account_id}
        )
        if entry is None:
            raise NotFound("entry not found")
        if entry["user_id"] != principal.user_id and not principal.is_admin:
            raise NotFound("entry not found")
        return entry

    async def _check_overlap(
        self, account_id: str, user_id: str, start: str, end: str, exclude: str | None
    ) -> None:
        # Entries of one user never overlap, so among those starting before ``end`` only
        # the latest one can reach past ``start``.
        candidates = await self._db.find(
            "entries",
            {"account_id": account_id, "user_id": user_id, "start": {"$lt": end}},
            sort=[("start", -1)],
            limit=3,
        )
        for other in candidates:
            if other["_id"] == exclude:
                continue
            other_end = other.get("end") or clock.now_iso()
            if other_end > start:
                raise Conflict(
                    "the entry overlaps another entry of the same user", code="entry_overlap"
                )
            break

    async def create_entry(
        self,
        principal: Principal,
        *,
        task_id: str | None,
        start: str,
        end: str,
        note: str,
        tags: list[str],
        created_with: str,
    ) -> dict[str, Any]:
        if end <= start:
            raise ValidationFailed(
                "end must be after start", [{"field": "end", "message": "must be after start"}]
            )
        if end > clock.later_iso(60):
            raise ValidationFailed(
                "entries cannot end in the future",
                [{"field": "end", "message": "in the future"}],
            )
        if task_id is not None:
            self._check_trackable(await self._tasks.tree(principal.account_id), principal, task_id)
        await self._check_overlap(principal.account_id, principal.user_id, start, end, None)
        entry: Doc = {
            "_id": new_id(),
            "account_id": principal.account_id,
            "user_id": principal.user_id,
            "task_id": task_id,
            "pending_service": None,
            "pending_external_id": None,
            "start": start,
            "end": end,
            "running": False,
            "note": note,
            "tags": tags,
            "created_with": created_with,
            "created_at": clock.now_iso(),
        }
        await self._db.insert("entries", entry)
        await self._notify(principal.account_id, principal.user_id, [entry])
        result = await self._present(principal.account_id, entry)
        assert result is not None
        return result

    async def update_entry(
        self, principal: Principal, entry_id: str, changes: dict[str, Any]
    ) -> dict[str, Any]:
        entry = await self._owned(principal, entry_id)
        if "task_id" in changes and changes["task_id"] is not None:
            self._check_trackable(
                await self._tasks.tree(principal.account_id), principal, changes["task_id"]
            )
            changes["pending_service"] = None
            changes["pending_external_id"] = None
        start: str = changes.get("start") or entry["start"]
        running = bool(entry.get("running"))
        if running and changes.get("end") is not None:
            raise ValidationFailed(
                "stop a running entry with POST /timer/stop",
                [{"field": "end", "message": "entry is running"}],
            )
        end = entry.get("end") if running else changes.get("end", entry.get("end"))
        if running and start > clock.now_iso():
            raise ValidationFailed(
                "start is in the future", [{"field": "start", "message": "in the future"}]
            )
        if end is not None and end <= start:
            raise ValidationFailed(
                "end must be after start", [{"field": "end", "message": "must be after start"}]
            )
        if "start" in changes or "end" in changes:
            await self._check_overlap(
                principal.account_id, entry["user_id"], start, end or clock.now_iso(), entry_id
            )
        updated = await self._db.update_one(
            "entries", {"_id": entry_id, "account_id": principal.account_id}, changes
        )
        if updated is None:
            raise NotFound("entry not found")
        await self._notify(principal.account_id, entry["user_id"], [updated])
        result = await self._present(principal.account_id, updated)
        assert result is not None
        return result

    async def delete_entry(self, principal: Principal, entry_id: str) -> None:
        entry = await self._owned(principal, entry_id)
        await self._db.delete_many("entries", {"_id": entry_id, "account_id": principal.account_id})
        await self._events.publish(
            principal.account_id, entry["user_id"], "entry", {"deleted": entry_id}
        )
        if entry.get("running"):
            await self._notify(principal.account_id, entry["user_id"], [])

    # -- pending references (called by the sync service) -------------------------------

    async def bind_pending(self, account_id: str, service: str, resolved: dict[str, str]) -> int:
        """Give every pending entry whose reference is now imported its task, in one
        query and one bulk write. ``resolved`` maps external id -> task id."""
        if not resolved:
            return 0
        pending = await self._db.find(
            "entries",
            {
                "account_id": account_id,
                "pending_service": service,
                "pending_external_id": {"$in": list(resolved)},
            },
        )
        if not pending:
            return 0
        await self._db.bulk_set(
            "entries",
            [
                (
                    e["_id"],
                    {
                        "task_id": resolved[e["pending_external_id"]],
                        "pending_service": None,
                        "pending_external_id": None,
                    },
                )
                for e in pending
            ],
        )
        by_user: dict[str, list[Doc]] = {}
        for e in pending:
            e.update(
                task_id=resolved[e["pending_external_id"]],
                pending_service=None,
                pending_external_id=None,
            )
            by_user.setdefault(e["user_id"], []).append(e)
        for user_id, entries in by_user.items():
            await self._notify(account_id, user_id, entries)
        return len(pending)
