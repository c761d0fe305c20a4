"""Applying a snapshot (or an incremental check's nodes) to the stored tasks, streamed.

Memory stays bounded by a compact per-item index, whatever the size of the account: the
stored tasks of the integration are read once as ``external id -> (task id, hash of what a
sync sets, parent task id, flags)``; nodes are consumed as they arrive and applied in
batches (one bulk insert and one bulk update per batch, whole documents read only for items
whose hash changed). What vanished upstream is decided at the end, from the index entries
no node touched, and only when the caller says the snapshot was complete.

The rules are the same as ever (SPEC.md): per-tool outcomes of each upstream state, items
coming back keep their task ids, keywords people added are kept, and nothing is archived or
removed from a snapshot that did not complete, nor under a node whose subtree could not be
read (``SnapshotNode.partial``).
"""

from __future__ import annotations

import hashlib
from collections.abc import Awaitable, Callable, Collection, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from ..domain import clock
from ..integrations.base import SnapshotNode
from ..jsonutil import dumps
from ..store.base import Backend, Doc
from .ids import new_id

ROOT_EXTERNAL_ID = "root"
BATCH = 1000
MAX_UNREADABLE = 100

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

# The fields a sync sets on an imported task; their hash is stored as ``sync_hash``.
SYNCED_FIELDS = (
    "name",
    "parent_id",
    "source_kind",
    "upstream_state",
    "archived",
    "removed",
    "url",
    "workspace_id",
    "member_emails",
    "auto_keywords",
)
# Index entry flags.
F_ARCHIVED, F_REMOVED, F_SEEN = 1, 2, 4
NO_HASH = -1

Entry = tuple[str, int, str | None, int]  # task id, hash, parent task id, flags


@dataclass
class Counts:
    created: int = 0
    updated: int = 0
    archived: int = 0
    removed: int = 0
    unchanged: int = 0
    requests: int = 0

    def as_dict(self) -> dict[str, int]:
        return dict(self.__dict__)


def synced_hash(target: Mapping[str, Any]) -> str:
    raw = dumps([target[name] for name in SYNCED_FIELDS])
    return hashlib.blake2b(raw, digest_size=8).hexdigest()


def _hash_value(text: Any) -> int:
    if not isinstance(text, str) or not text:
        return NO_HASH
    try:
        return int(text, 16)
    except ValueError:
        return NO_HASH


def _flags(outcome: str) -> int:
    return F_ARCHIVED if outcome == ARCHIVED else F_REMOVED if outcome == REMOVED else 0


def count_change(counts: Counts, current: Mapping[str, Any], changes: Mapping[str, Any]) -> None:
    if not changes:
        counts.unchanged += 1
    elif changes.get("removed") is True and not current.get("removed"):
        counts.removed += 1
    elif changes.get("archived") is True and not current.get("archived"):
        counts.archived += 1
    else:
        counts.updated += 1


class SnapshotApply:
    """One sync's (or one incremental check's) application of nodes to the stored tasks.

    ``await load()``, then ``await add(node)`` for each node as it arrives, then
    ``await finish(complete=...)``. ``still_linked`` is awaited before each batch is
    written: it raises when the integration was unlinked meanwhile (in any process)."""

    def __init__(
        self,
        db: Backend,
        service: str,
        account_id: str,
        root_id: str,
        *,
        keywords_from_ids: bool,
        still_linked: Callable[[], Awaitable[None]],
        batch: int = BATCH,
    ) -> None:
        self._db = db
        self._service = service
        self._account_id = account_id
        self.root_id = root_id
        self._keywords_from_ids = keywords_from_ids
        self._still_linked = still_linked
        self._batch = batch
        self._rules = RULES[service]
        self._index: dict[str, Entry] = {}
        self._parents: dict[str, str] = {}  # one string object per parent task id
        self._buffer: list[SnapshotNode] = []
        self._frozen: set[str] = set()  # task ids of nodes whose subtree was unreadable
        self.counts = Counts()
        self.unreadable: list[dict[str, str]] = []
        self.fetched = 0
        self.wrote = False

    def _scope(self) -> dict[str, Any]:
        return {"account_id": self._account_id, "imported": True, "source_service": self._service}

    async def load(self, external_ids: Collection[str] | None = None) -> None:
        """Index the stored items: all of them (a full sync), or only those named (an
        incremental check: its nodes and their parents), which costs what they cost."""
        fields = ("source_external_id", "sync_hash", "parent_id", "archived", "removed")
        if external_ids is not None:
            wanted = sorted(set(external_ids))
            for start in range(0, len(wanted), 500):
                flt = {**self._scope(), "source_external_id": {"$in": wanted[start : start + 500]}}
                docs = await self._db.find("tasks", flt)
                self._add_rows([(d["_id"], *(d.get(f) for f in fields)) for d in docs])
            return
        async for rows in self._db.scan("tasks", self._scope(), fields):
            self._add_rows(rows)

    def _add_rows(self, rows: Iterable[tuple[Any, ...]]) -> None:
        parents = self._parents
        for task_id, external_id, sync_hash, parent, archived, removed in rows:
            if external_id == ROOT_EXTERNAL_ID or not isinstance(external_id, str):
                continue
            if parent is not None:
                parent = parents.setdefault(parent, parent)
            flags = (F_ARCHIVED if archived else 0) | (F_REMOVED if removed else 0)
            self._index[external_id] = (task_id, _hash_value(sync_hash), parent, flags)

    async def add(self, node: SnapshotNode) -> None:
        self.fetched += 1
        self._buffer.append(node)
        if len(self._buffer) >= self._batch:
            await self.flush()

    async def flush(self) -> None:
        nodes, self._buffer = self._buffer, []
        if not nodes:
            return
        await self._still_linked()
        now = clock.now_iso()
        inserts: list[Doc] = []
        compare: list[tuple[str, dict[str, Any], list[str], str]] = []
        for node in nodes:
            self._place(node, now, inserts, compare)
        if inserts:
            await self._db.insert_many("tasks", inserts)
            self.wrote = True
        if compare:
            await self._compare(compare, now)

    def _place(
        self,
        node: SnapshotNode,
        now: str,
        inserts: list[Doc],
        compare: list[tuple[str, dict[str, Any], list[str], str]],
    ) -> None:
        external_id = node.external_id
        if external_id == ROOT_EXTERNAL_ID:
            return
        entry = self._index.get(external_id)
        if entry is not None and entry[3] & F_SEEN:
            return  # listed twice (e.g. multi-homed): the first place wins
        parent_entry = self._index.get(node.parent_external_id) if node.parent_external_id else None
        parent = parent_entry[0] if parent_entry is not None else self.root_id
        outcome = self._rules.get(node.state, ACTIVE)
        keywords = (
            [external_id] if self._keywords_from_ids and node.kind in ("task", "subtask") else []
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
        digest = synced_hash(target)
        task_id = entry[0] if entry is not None else new_id()
        self._index[external_id] = (task_id, int(digest, 16), parent, _flags(outcome) | F_SEEN)
        if node.partial:
            self._frozen.add(task_id)
            if len(self.unreadable) < MAX_UNREADABLE:
                self.unreadable.append(
                    {"external_id": external_id, "name": target["name"], "kind": node.kind}
                )
        if entry is None:
            inserts.append(
                {
                    "_id": task_id,
                    "account_id": self._account_id,
                    "imported": True,
                    "source_service": self._service,
                    "source_external_id": external_id,
                    "keywords": keywords,
                    "created_at": now,
                    "sync_hash": digest,
                    **target,
                }
            )
            self.counts.created += 1
        elif entry[1] == int(digest, 16):
            self.counts.unchanged += 1
        else:
            compare.append((task_id, target, keywords, digest))

    async def _compare(
        self, compare: list[tuple[str, dict[str, Any], list[str], str]], now: str
    ) -> None:
        """Items whose hash differs: read their documents, write what really changed."""
        # By primary key alone: with account_id in the filter SQLite may walk the whole
        # account's index instead. The account is checked here.
        docs = await self._db.find("tasks", {"_id": {"$in": [c[0] for c in compare]}})
        current_by_id = {d["_id"]: d for d in docs if d.get("account_id") == self._account_id}
        updates: list[tuple[str, dict[str, Any]]] = []
        for task_id, target, keywords, digest in compare:
            current = current_by_id.get(task_id)
            if current is None:
                continue  # deleted meanwhile; the next sync creates it again
            changes = {k: v for k, v in target.items() if current.get(k) != v}
            if "auto_keywords" in changes:
                # Keep keywords people added; swap only the ones the sync put there.
                old_auto = set(current.get("auto_keywords") or [])
                manual = [k for k in current.get("keywords") or [] if k not in old_auto]
                changes["keywords"] = sorted({*manual, *keywords})
            count_change(self.counts, current, changes)
            if changes:
                changes["updated_at"] = now
            changes["sync_hash"] = digest
            updates.append((task_id, changes))
        if updates:
            await self._db.bulk_set("tasks", updates)
            self.wrote = True

    def _under_frozen(self, parent: str | None, parents: Mapping[str, str | None]) -> bool:
        seen: set[str] = set()
        while parent is not None and parent not in seen:
            if parent in self._frozen:
                return True
            seen.add(parent)
            parent = parents.get(parent)
        return False

    async def finish(self, *, complete: bool) -> None:
        """Write what is left; with a complete snapshot, archive or remove (per the tool's
        rules) every stored item that no node mentioned, except under unreadable nodes."""
        await self.flush()
        if not complete:
            return
        await self._still_linked()
        parents: dict[str, str | None] = {}
        if self._frozen:
            parents = {entry[0]: entry[2] for entry in self._index.values()}
        gone = self._rules["gone"]
        now = clock.now_iso()
        updates: list[tuple[str, dict[str, Any]]] = []
        for task_id, _, parent, flags in self._index.values():
            if flags & F_SEEN:
                continue
            if self._frozen and self._under_frozen(parent, parents):
                self.counts.unchanged += 1
                continue
            changes: dict[str, Any] = {}
            if gone == REMOVED and not flags & F_REMOVED:
                changes = {"removed": True, "upstream_state": "deleted"}
                self.counts.removed += 1
            elif gone == ARCHIVED and not flags & F_ARCHIVED:
                changes = {"archived": True, "upstream_state": "deleted"}
                self.counts.archived += 1
            else:
                self.counts.unchanged += 1
                continue
            # The stored hash no longer describes the document: an item that comes back
            # is compared field by field.
            changes.update(updated_at=now, sync_hash=None)
            updates.append((task_id, changes))
            if len(updates) >= self._batch:
                await self._db.bulk_set("tasks", updates)
                updates = []
                self.wrote = True
        if updates:
            await self._db.bulk_set("tasks", updates)
            self.wrote = True

    def active_task_ids(self, external_ids: set[str]) -> dict[str, str]:
        """Task ids of the given items that this run saw active (to bind pending entries)."""
        out: dict[str, str] = {}
        for external_id in external_ids:
            entry = self._index.get(external_id)
            if entry is not None and entry[3] & F_SEEN and not entry[3] & (F_ARCHIVED | F_REMOVED):
                out[external_id] = entry[0]
        return out
