"""The task tree: listing, search, manual tasks, members, resolution and URL matching.

Each account's tree is cached in memory and keyed by the account's ``tree_version``,
which every structural write increments. A request checks the version with one point
read, so several server processes on one MongoDB see each other's changes at once.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Iterable, Sequence
from typing import Any

from ..domain import clock
from ..domain.errors import Conflict, Forbidden, NotFound, ValidationFailed
from ..domain.tree import ROLES, TREE_FIELDS, TaskNode, Tree, fold
from ..store.base import Backend, Doc, DuplicateKey
from .ids import new_id
from .principal import Principal

MAX_TREE_CACHE = 64


def manual_task_doc(
    task_id: str, account_id: str, parent_id: str | None, name: str, created_at: str
) -> Doc:
    """The stored document of a task created in Tasktimer (not imported)."""
    return {
        "_id": task_id,
        "account_id": account_id,
        "parent_id": parent_id,
        "name": name,
        "archived": False,
        "removed": False,
        "imported": False,
        "keywords": [],
        "created_at": created_at,
    }


def source_of(task: TaskNode) -> dict[str, str] | None:
    if task.service is None:
        return None
    return {
        "service": task.service,
        "external_id": task.external_id or "",
        "kind": task.kind or "",
    }


_URL_IDS = (
    ("asana", re.compile(r"app\.asana\.com/1/\d+/(?:project/\d+/)?task/(\d+)")),
    ("asana", re.compile(r"app\.asana\.com/0/\d+/(\d+)(?:/f)?(?:[/?#]|$)")),
    ("heyspace", re.compile(r"app\.hey\.space/.*[?&]taskId=([\w-]+)")),
    ("pivotaltracker", re.compile(r"pivotaltracker\.com/story/show/(\d+)")),
    ("pivotaltracker", re.compile(r"pivotaltracker\.com/n/projects/\d+/stories/(\d+)")),
)


class TaskService:
    def __init__(self, backend: Backend, *, shared: bool = True) -> None:
        self._db = backend
        # With SQLite this process is the only writer: its cache is invalidated by its own
        # writes and needs no version read. With MongoDB other processes write too.
        self._shared = shared
        self._cache: dict[str, Tree] = {}
        self._known: dict[str, int] = {}  # newest tree version this process has seen
        self._locks: dict[str, asyncio.Lock] = {}

    # -- the cached tree ------------------------------------------------------------

    async def tree(self, account_id: str) -> Tree:
        if not self._shared:
            cached = self._cache.get(account_id)
            if cached is not None and cached.version >= self._known.get(account_id, 0):
                return cached
        account = await self._db.find_one("accounts", {"_id": account_id})
        version = int(account.get("tree_version", 0)) if account else 0
        cached = self._cache.get(account_id)
        if cached is not None and cached.version == version:
            return cached
        lock = self._locks.setdefault(account_id, asyncio.Lock())
        async with lock:
            cached = self._cache.get(account_id)
            if cached is not None and cached.version >= version:
                return cached
            # The stale tree goes first, so two big trees never live side by side.
            self._cache.pop(account_id, None)
            tree = Tree(version=version)
            async for rows in self._db.scan("tasks", {"account_id": account_id}, TREE_FIELDS):
                tree.add_rows(rows)
            tree.link(await self._db.find("members", {"account_id": account_id}))
            self._known[account_id] = max(version, self._known.get(account_id, 0))
            if len(self._cache) >= MAX_TREE_CACHE:
                self._cache.pop(next(iter(self._cache)))
            self._cache[account_id] = tree
            return tree

    async def bump(self, account_id: str) -> None:
        account = await self._db.update_one(
            "accounts", {"_id": account_id}, inc={"tree_version": 1}
        )
        if account is not None:
            version = int(account["tree_version"])
            self._known[account_id] = max(version, self._known.get(account_id, 0))

    # -- presentation ---------------------------------------------------------------

    @staticmethod
    def present(tree: Tree, principal: Principal, task_id: str) -> dict[str, Any]:
        task = tree.tasks[task_id]
        visible = tree.view(principal.user_id, principal.is_admin).visible
        return {
            "id": task_id,
            "parent_id": task.parent_id,
            "name": task.name,
            "path": list(tree.path(task_id)),
            "archived": tree.is_archived(task_id),
            "removed": task.removed,
            "keywords": list(task.keywords),
            "source": source_of(task),
            "my_role": tree.role(principal.user_id, principal.is_admin, task_id),
            "trackable": tree.trackable(principal.user_id, principal.is_admin, task_id),
            # Lets a tree view show an expander without loading the children first.
            "has_children": any(
                child in visible and not tree.is_removed(child)
                for child in tree.children.get(task_id, ())
            ),
        }

    def _visible_task(self, tree: Tree, principal: Principal, task_id: str) -> TaskNode:
        task = tree.get(task_id)
        if task is None or not tree.visible(principal.user_id, principal.is_admin, task_id):
            raise NotFound("task not found")
        return task

    def _require_manager(self, tree: Tree, principal: Principal, task_id: str) -> None:
        if principal.is_admin:
            return
        if tree.role(principal.user_id, False, task_id) != "manager":
            raise Forbidden("only admins and managers of this task may do this")

    def _check_parent(self, tree: Tree, principal: Principal, parent_id: str | None) -> None:
        """May the caller put a task under this parent (None: at the top level)?"""
        if parent_id is None:
            if not principal.is_admin:
                raise Forbidden("only admins create top-level tasks")
            return
        self._visible_task(tree, principal, parent_id)
        self._require_manager(tree, principal, parent_id)

    # -- reading --------------------------------------------------------------------

    async def list_tasks(
        self,
        principal: Principal,
        *,
        q: str | None,
        parent_id: str | None,
        include_archived: bool,
        trackable: bool | None,
    ) -> list[dict[str, Any]]:
        items, _ = await self.list_page(
            principal,
            q=q,
            parent_id=parent_id,
            include_archived=include_archived,
            trackable=trackable,
        )
        return items

    async def list_page(
        self,
        principal: Principal,
        *,
        q: str | None,
        parent_id: str | None,
        include_archived: bool,
        trackable: bool | None,
        skip: int = 0,
        limit: int | None = None,
    ) -> tuple[list[dict[str, Any]], bool]:
        """One page of the tasks the caller may see, in path order, and whether more follow.

        Walks the tree's prepared search order and stops once the page is full: a search
        in a 100,000-task tree presents only the page it returns (a rare term still scans
        the prepared strings once)."""
        tree = await self.tree(principal.account_id)
        view = tree.view(principal.user_id, principal.is_admin)
        order: Iterable[tuple[str, str]]
        if parent_id is not None:
            self._visible_task(tree, principal, parent_id)
            order = sorted(
                (
                    (c, " / ".join(fold(p) for p in tree.path(c)))
                    for c in tree.children.get(parent_id, ())
                ),
                key=lambda pair: pair[1].split(" / "),
            )
        else:
            order = tree.search_order()
        needle = fold(q) if q else None
        end = None if limit is None else skip + limit
        out: list[dict[str, Any]] = []
        matched = 0
        for task_id, folded in order:
            if needle is not None and needle not in folded:
                continue
            if task_id not in view.visible or tree.is_removed(task_id):
                continue
            if not include_archived and tree.is_archived(task_id):
                continue
            if trackable is not None and trackable != tree.trackable(
                principal.user_id, principal.is_admin, task_id
            ):
                continue
            if end is not None and matched >= end:
                return out, True
            if matched >= skip:
                out.append(self.present(tree, principal, task_id))
            matched += 1
        return out, False

    async def top_level(
        self, principal: Principal, *, include_archived: bool
    ) -> list[dict[str, Any]]:
        """The tree's first level as the caller sees it (the roots of the tasks they may see)."""
        tree = await self.tree(principal.account_id)
        view = tree.view(principal.user_id, principal.is_admin)
        out = [
            self.present(tree, principal, task_id)
            for task_id in tree.children.get(None, ())
            if task_id in view.visible
            and not tree.is_removed(task_id)
            and (include_archived or not tree.is_archived(task_id))
        ]
        out.sort(key=lambda t: fold(t["name"]))
        return out

    async def get(self, principal: Principal, task_id: str) -> dict[str, Any]:
        tree = await self.tree(principal.account_id)
        self._visible_task(tree, principal, task_id)
        return self.present(tree, principal, task_id)

    # -- manual tasks ---------------------------------------------------------------

    async def create(
        self, principal: Principal, name: str, parent_id: str | None
    ) -> dict[str, Any]:
        tree = await self.tree(principal.account_id)
        self._check_parent(tree, principal, parent_id)
        task_id = new_id()
        await self._db.insert(
            "tasks",
            manual_task_doc(task_id, principal.account_id, parent_id, name, clock.now_iso()),
        )
        await self.bump(principal.account_id)
        return await self.get(principal, task_id)

    async def update(
        self, principal: Principal, task_id: str, changes: dict[str, Any]
    ) -> dict[str, Any]:
        tree = await self.tree(principal.account_id)
        task = self._visible_task(tree, principal, task_id)
        self._require_manager(tree, principal, task_id)
        structural = {"name", "parent_id", "archived"} & changes.keys()
        if task.imported and structural:
            raise Conflict(
                "imported items follow their tool: rename, move or archive them there",
                code="imported_item_read_only",
            )
        if "parent_id" in changes:
            new_parent = changes["parent_id"]
            self._check_parent(tree, principal, new_parent)
            if new_parent is not None and (
                new_parent == task_id or task_id in tree.ancestors(new_parent)
            ):
                raise Conflict("a task cannot move under itself", code="tree_cycle")
        if "keywords" in changes:
            changes["keywords"] = sorted({k.strip() for k in changes["keywords"] if k.strip()})
        if changes:
            changes["updated_at"] = clock.now_iso()
            await self._db.update_one(
                "tasks", {"_id": task_id, "account_id": principal.account_id}, changes
            )
            await self.bump(principal.account_id)
        return await self.get(principal, task_id)

    async def delete(self, principal: Principal, task_id: str) -> None:
        if not principal.is_admin:
            raise Forbidden("only admins delete tasks")
        tree = await self.tree(principal.account_id)
        task = self._visible_task(tree, principal, task_id)
        if task.imported or task.integration_root:
            raise Conflict("imported items cannot be deleted", code="imported_item_read_only")
        if tree.children.get(task_id):
            raise Conflict("the task has subtasks", code="task_has_children")
        if await self._db.count(
            "entries", {"account_id": principal.account_id, "task_id": task_id}
        ):
            raise Conflict("the task has time entries; archive it instead", code="task_has_entries")
        await self._db.delete_many("tasks", {"_id": task_id, "account_id": principal.account_id})
        await self._db.delete_many(
            "members", {"account_id": principal.account_id, "task_id": task_id}
        )
        await self.bump(principal.account_id)

    # -- members --------------------------------------------------------------------

    async def members(self, principal: Principal, task_id: str) -> list[dict[str, Any]]:
        tree = await self.tree(principal.account_id)
        self._visible_task(tree, principal, task_id)
        self._require_manager(tree, principal, task_id)
        out: list[dict[str, Any]] = []
        for user_id in tree.grants:
            grant = tree.grant_for(user_id, task_id)
            if grant is None or grant.role is None:
                continue
            out.append(
                {
                    "user_id": user_id,
                    "role": grant.role,
                    "inherited_from": None if grant.task_id == task_id else grant.task_id,
                }
            )
        out.sort(key=lambda m: str(m["user_id"]))
        return out

    async def _target_user(self, account_id: str, user_id: str) -> Doc:
        user = await self._db.find_one("users", {"_id": user_id, "account_id": account_id})
        if user is None:
            raise NotFound("user not found")
        return user

    async def set_member(
        self, principal: Principal, task_id: str, user_id: str, role: str
    ) -> dict[str, Any]:
        if role not in ROLES:
            raise ValidationFailed("unknown role", [{"field": "role", "message": "unknown role"}])
        tree = await self.tree(principal.account_id)
        self._visible_task(tree, principal, task_id)
        self._require_manager(tree, principal, task_id)
        await self._target_user(principal.account_id, user_id)
        await self.write_grant(principal.account_id, task_id, user_id, role, "manual")
        await self.bump(principal.account_id)
        return {"user_id": user_id, "role": role, "inherited_from": None}

    async def remove_member(self, principal: Principal, task_id: str, user_id: str) -> None:
        tree = await self.tree(principal.account_id)
        self._visible_task(tree, principal, task_id)
        self._require_manager(tree, principal, task_id)
        await self._target_user(principal.account_id, user_id)
        # Remembered as a decision, so automatic assignment never adds the user back.
        await self.write_grant(principal.account_id, task_id, user_id, None, "manual")
        await self.bump(principal.account_id)

    async def write_grant(
        self, account_id: str, task_id: str, user_id: str, role: str | None, origin: str
    ) -> None:
        fields = {"role": role, "removed": role is None, "origin": origin}
        flt = {"account_id": account_id, "task_id": task_id, "user_id": user_id}
        if await self._db.update_one("members", flt, fields) is not None:
            return
        try:
            await self._db.insert("members", {"_id": new_id(), **flt, **fields})
        except DuplicateKey:
            await self._db.update_one("members", flt, fields)

    async def add_auto_grants(self, account_id: str, grants: Sequence[tuple[str, str, str]]) -> int:
        """Add automatic ``(task_id, user_id, role)`` assignments where no decision exists
        yet for that user on that task. Returns how many were added."""
        if not grants:
            return 0
        existing = await self._db.find(
            "members",
            {"account_id": account_id, "user_id": {"$in": sorted({g[1] for g in grants})}},
        )
        decided = {(m["task_id"], m["user_id"]) for m in existing}
        docs = [
            {
                "_id": new_id(),
                "account_id": account_id,
                "task_id": task_id,
                "user_id": user_id,
                "role": role,
                "removed": False,
                "origin": "auto",
            }
            for task_id, user_id, role in grants
            if (task_id, user_id) not in decided
        ]
        for doc in docs:
            try:
                await self._db.insert("members", doc)
            except DuplicateKey:
                continue
        return len(docs)

    async def drop_auto_grants(self, account_id: str, pairs: Sequence[tuple[str, str]]) -> int:
        """Remove automatic assignments that no longer apply (manual ones stay)."""
        removed = 0
        for task_id, user_id in pairs:
            removed += await self._db.delete_many(
                "members",
                {
                    "account_id": account_id,
                    "task_id": task_id,
                    "user_id": user_id,
                    "origin": "auto",
                },
            )
        return removed

    # -- resolution -----------------------------------------------------------------

    async def resolve(
        self, principal: Principal, service: str, external_ids: Sequence[str]
    ) -> dict[str, dict[str, Any] | None]:
        unique_ids = list(dict.fromkeys(external_ids))
        tree = await self.tree(principal.account_id)
        found: dict[str, str] = {}
        for external_id in unique_ids:
            task_id = tree.find_source(service, external_id)
            if (
                task_id is not None
                and task_id in tree.tasks
                and tree.visible(principal.user_id, principal.is_admin, task_id)
            ):
                found[external_id] = task_id
        totals = await self._my_totals(principal, list(set(found.values())))
        results: dict[str, dict[str, Any] | None] = {}
        for external_id in unique_ids:
            task_id = found.get(external_id)
            if task_id is None:
                results[external_id] = None
                continue
            results[external_id] = {
                "task_id": task_id,
                "name": tree.tasks[task_id].name,
                "path": list(tree.path(task_id)),
                "trackable": tree.trackable(principal.user_id, principal.is_admin, task_id),
                "archived": tree.is_archived(task_id),
                "my_total_s": totals.get(task_id, 0),
            }
        return results

    async def _my_totals(self, principal: Principal, task_ids: list[str]) -> dict[str, int]:
        """The caller's tracked seconds per task, all time, the running entry up to now:
        one aggregate query for the whole page, not one per button."""
        if not task_ids:
            return {}
        return await self._db.sum_durations(
            "entries",
            {
                "account_id": principal.account_id,
                "user_id": principal.user_id,
                "task_id": {"$in": task_ids},
            },
            group_by="task_id",
            until=clock.now_iso(),
        )

    async def match(self, principal: Principal, url: str) -> dict[str, Any] | None:
        tree = await self.tree(principal.account_id)

        def usable(task_id: str | None) -> bool:
            return (
                task_id is not None
                and not tree.is_archived(task_id)
                and tree.visible(principal.user_id, principal.is_admin, task_id)
            )

        for service, pattern in _URL_IDS:
            found = pattern.search(url)
            if found:
                task_id = tree.find_source(service, found.group(1))
                if task_id is not None and usable(task_id):
                    return self.present(tree, principal, task_id)
        haystack = fold(url)
        best: tuple[int, int, str] | None = None
        for task_id, task in tree.tasks.items():
            for keyword in task.keywords:
                if len(keyword) < 2 or fold(keyword) not in haystack or not usable(task_id):
                    continue
                rank = (len(keyword), len(tree.path(task_id)), task_id)
                if best is None or rank > best:
                    best = rank
        return self.present(tree, principal, best[2]) if best else None
