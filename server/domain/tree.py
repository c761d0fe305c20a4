"""The task tree of one account, with roles, inheritance and visibility. No I/O.

A user's role on a task is decided by the nearest assignment on the task or one of its
ancestors (the nearest decision wins, so a manager can narrow an inherited role on a
subtree). A remembered removal is an assignment of "no role": it hides the subtree from
the user even if an ancestor is assigned, and no later sync undoes it.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

Role = Literal["manager", "regular", "guest"]
ROLES: tuple[Role, ...] = ("manager", "regular", "guest")
TRACKING_ROLES = frozenset({"manager", "regular"})


def fold(text: str) -> str:
    """Case-insensitive, Unicode-aware comparison form."""
    return unicodedata.normalize("NFKC", text).casefold()


@dataclass(slots=True)
class Grant:
    task_id: str
    role: Role | None  # None: removed by a manual decision
    origin: str  # "manual" | "auto"


@dataclass
class UserView:
    roles: dict[str, Role | None]
    visible: set[str]
    inherited_from: dict[str, str]


@dataclass
class Tree:
    version: int
    tasks: dict[str, dict[str, Any]]
    children: dict[str | None, list[str]] = field(default_factory=dict)
    grants: dict[str, dict[str, Grant]] = field(default_factory=dict)  # user -> task -> grant
    _paths: dict[str, tuple[str, ...]] = field(default_factory=dict)
    _views: dict[str, UserView] = field(default_factory=dict)
    _archived: dict[str, bool] = field(default_factory=dict)
    _search: list[tuple[str, str]] | None = None
    by_source: dict[tuple[str, str], str] = field(default_factory=dict)

    @classmethod
    def build(
        cls, version: int, tasks: Iterable[dict[str, Any]], members: Iterable[Mapping[str, Any]]
    ) -> Tree:
        tree = cls(version=version, tasks={t["_id"]: t for t in tasks})
        for task_id, task in tree.tasks.items():
            tree.children.setdefault(task.get("parent_id"), []).append(task_id)
            if task.get("imported"):
                tree.by_source[(task["source_service"], task["source_external_id"])] = task_id
        for m in members:
            if m["task_id"] not in tree.tasks:
                continue
            role = None if m.get("removed") else m.get("role")
            tree.grants.setdefault(m["user_id"], {})[m["task_id"]] = Grant(
                m["task_id"], role, m.get("origin", "manual")
            )
        return tree

    # -- structure ------------------------------------------------------------------

    def get(self, task_id: str) -> dict[str, Any] | None:
        return self.tasks.get(task_id)

    def ancestors(self, task_id: str) -> Iterator[str]:
        """The task's ancestors, nearest first (the task itself excluded)."""
        seen = {task_id}
        parent = self.tasks[task_id].get("parent_id")
        while parent is not None and parent in self.tasks and parent not in seen:
            seen.add(parent)
            yield parent
            parent = self.tasks[parent].get("parent_id")

    def descendants(self, task_id: str) -> Iterator[str]:
        stack = list(self.children.get(task_id, ()))
        while stack:
            current = stack.pop()
            yield current
            stack.extend(self.children.get(current, ()))

    def path(self, task_id: str) -> tuple[str, ...]:
        cached = self._paths.get(task_id)
        if cached is not None:
            return cached
        task = self.tasks[task_id]
        parent = task.get("parent_id")
        prefix = self.path(parent) if parent in self.tasks and parent != task_id else ()
        result = (*prefix, task["name"])
        self._paths[task_id] = result
        return result

    def is_archived(self, task_id: str) -> bool:
        """Archived itself or under an archived ancestor."""
        cached = self._archived.get(task_id)
        if cached is not None:
            return cached
        task = self.tasks[task_id]
        parent = task.get("parent_id")
        result = bool(task.get("archived")) or (
            parent in self.tasks and parent != task_id and self.is_archived(parent)
        )
        self._archived[task_id] = result
        return result

    def search_order(self) -> list[tuple[str, str]]:
        """(task id, folded path) of every task, in listing order (by folded path).

        Computed once per tree version: a search then scans prepared strings in order and
        stops as soon as it has the page it needs, instead of presenting and sorting every
        match of a large tree."""
        if self._search is None:
            folded: dict[str, tuple[str, ...]] = {}

            def key(task_id: str) -> tuple[str, ...]:
                # Each name is folded once; a task's key extends its parent's.
                known = folded.get(task_id)
                if known is None:
                    chain = [task_id, *self.ancestors(task_id)]
                    known = ()
                    for node in reversed(chain):
                        cached = folded.get(node)
                        if cached is None:
                            cached = (*known, fold(self.tasks[node]["name"]))
                            folded[node] = cached
                        known = cached
                return known

            keyed = sorted((key(t), n, t) for n, t in enumerate(self.tasks))
            self._search = [(t, " / ".join(k)) for k, _, t in keyed]
        return self._search

    def is_removed(self, task_id: str) -> bool:
        task = self.tasks.get(task_id)
        return task is None or bool(task.get("removed"))

    # -- roles ----------------------------------------------------------------------

    def grant_for(self, user_id: str, task_id: str) -> Grant | None:
        """The nearest assignment covering the task (its own or an ancestor's)."""
        grants = self.grants.get(user_id)
        if not grants:
            return None
        if task_id in grants:
            return grants[task_id]
        for ancestor in self.ancestors(task_id):
            if ancestor in grants:
                return grants[ancestor]
        return None

    def view(self, user_id: str, is_admin: bool) -> UserView:
        key = f"{user_id}:{int(is_admin)}"
        cached = self._views.get(key)
        if cached is not None:
            return cached
        roles: dict[str, Role | None] = {}
        inherited: dict[str, str] = {}
        grants = self.grants.get(user_id, {})

        def walk(task_id: str, role: Role | None, source: str | None) -> None:
            stack = [(task_id, role, source)]
            while stack:
                current, current_role, current_source = stack.pop()
                grant = grants.get(current)
                if grant is not None:
                    current_role, current_source = grant.role, current
                if current_role is None and is_admin and grant is None:
                    current_role = "manager"
                roles[current] = current_role
                if current_source is not None:
                    inherited[current] = current_source
                for child in self.children.get(current, ()):
                    stack.append((child, current_role, current_source))

        for root in self.children.get(None, ()):
            walk(root, "manager" if is_admin else None, None)
        visible: set[str] = set()
        for task_id, role in roles.items():
            if role is None and not is_admin:
                continue
            if task_id in visible:
                continue
            visible.add(task_id)
            for ancestor in self.ancestors(task_id):
                if ancestor in visible:
                    break
                visible.add(ancestor)
        view = UserView(roles=roles, visible=visible, inherited_from=inherited)
        self._views[key] = view
        return view

    def role(self, user_id: str, is_admin: bool, task_id: str) -> Role | None:
        return self.view(user_id, is_admin).roles.get(task_id)

    def trackable(self, user_id: str, is_admin: bool, task_id: str) -> bool:
        if self.is_removed(task_id) or self.is_archived(task_id):
            return False
        return self.role(user_id, is_admin, task_id) in TRACKING_ROLES

    def visible(self, user_id: str, is_admin: bool, task_id: str) -> bool:
        return not self.is_removed(task_id) and task_id in self.view(user_id, is_admin).visible
