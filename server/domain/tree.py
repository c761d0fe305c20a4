"""The task tree of one account, with roles, inheritance and visibility. No I/O.

A user's role on a task is decided by the nearest assignment on the task or one of its
ancestors (the nearest decision wins, so a manager can narrow an inherited role on a
subtree). A remembered removal is an assignment of "no role": it hides the subtree from
the user even if an ancestor is assigned, and no later sync undoes it.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

Role = Literal["manager", "regular", "guest"]
ROLES: tuple[Role, ...] = ("manager", "regular", "guest")
TRACKING_ROLES = frozenset({"manager", "regular"})


_SHARED: dict[str, str] = {}


def _shared(text: str | None) -> str | None:
    """One string object for the few values repeated on every imported task."""
    if text is None:
        return None
    return _SHARED.setdefault(text, text) if len(_SHARED) < 256 else text


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


@dataclass(slots=True)
class TaskNode:
    """What the tree keeps of one task: a few fields in slots, no document. Big imported
    trees (100,000 items) stay small this way; everything else is read from the store
    when it is needed."""

    parent_id: str | None
    name: str
    archived: bool = False
    removed: bool = False
    keywords: tuple[str, ...] = ()
    service: str | None = None  # imported items: source service, external id and kind
    external_id: str | None = None
    kind: str | None = None
    integration_root: bool = False

    @property
    def imported(self) -> bool:
        return self.service is not None


# The task fields Tree.build reads (a store scan returns them after ``_id``).
TREE_FIELDS = (
    "parent_id",
    "name",
    "archived",
    "removed",
    "keywords",
    "imported",
    "source_service",
    "source_external_id",
    "source_kind",
    "integration_root",
)
_NO_KEYWORDS: tuple[str, ...] = ()


@dataclass
class Tree:
    version: int
    tasks: dict[str, TaskNode] = field(default_factory=dict)
    children: dict[str | None, list[str]] = field(default_factory=dict)
    grants: dict[str, dict[str, Grant]] = field(default_factory=dict)  # user -> task -> grant
    _paths: dict[str, tuple[str, ...]] = field(default_factory=dict)
    _views: dict[str, UserView] = field(default_factory=dict)
    _archived: dict[str, bool] = field(default_factory=dict)
    # service -> external id -> task id
    by_source: dict[str, dict[str, str]] = field(default_factory=dict)
    _search: list[tuple[str, str]] | None = None

    @classmethod
    def build(
        cls,
        version: int,
        rows: Iterable[Sequence[Any]],
        members: Iterable[Mapping[str, Any]],
    ) -> Tree:
        """``rows`` are ``(_id, *TREE_FIELDS)`` tuples (see Backend.scan)."""
        tree = cls(version=version)
        tree.add_rows(rows)
        tree.link(members)
        return tree

    def add_rows(self, rows: Iterable[Sequence[Any]]) -> None:
        """Add tasks (``(_id, *TREE_FIELDS)`` tuples); call ``link`` after the last batch."""
        tasks = self.tasks
        for row in rows:
            (task_id, parent_id, name, archived, removed, keywords, imported, service,
             external_id, kind, root) = row  # fmt: skip
            if not imported:
                service = external_id = kind = None
            else:
                service, kind = _shared(service), _shared(kind)
            tasks[task_id] = TaskNode(
                parent_id,
                name or "",
                bool(archived),
                bool(removed),
                tuple(keywords) if keywords else _NO_KEYWORDS,
                service,
                external_id,
                kind,
                bool(root),
            )

    def link(self, members: Iterable[Mapping[str, Any]]) -> None:
        """Build the parent/child and source indexes and the grants."""
        tasks = self.tasks
        # One string object per task id: a child refers to its parent's own id string.
        canon = {task_id: task_id for task_id in tasks}
        for task_id, node in tasks.items():
            if node.parent_id is not None:
                node.parent_id = canon.get(node.parent_id, node.parent_id)
            self.children.setdefault(node.parent_id, []).append(task_id)
            if node.service is not None and node.external_id is not None:
                self.by_source.setdefault(node.service, {})[node.external_id] = task_id
        del canon
        for m in members:
            if m["task_id"] not in tasks:
                continue
            role = None if m.get("removed") else m.get("role")
            self.grants.setdefault(m["user_id"], {})[m["task_id"]] = Grant(
                m["task_id"], role, m.get("origin", "manual")
            )

    def find_source(self, service: str, external_id: str) -> str | None:
        """The task id of an imported item, removed or not."""
        return self.by_source.get(service, {}).get(external_id)

    # -- structure ------------------------------------------------------------------

    def get(self, task_id: str) -> TaskNode | None:
        return self.tasks.get(task_id)

    def ancestors(self, task_id: str) -> Iterator[str]:
        """The task's ancestors, nearest first (the task itself excluded)."""
        seen = {task_id}
        parent = self.tasks[task_id].parent_id
        while parent is not None and parent in self.tasks and parent not in seen:
            seen.add(parent)
            yield parent
            parent = self.tasks[parent].parent_id

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
        parent = task.parent_id
        prefix = self.path(parent) if parent in self.tasks and parent != task_id else ()
        result = (*prefix, task.name)
        self._paths[task_id] = result
        return result

    def is_archived(self, task_id: str) -> bool:
        """Archived itself or under an archived ancestor."""
        cached = self._archived.get(task_id)
        if cached is not None:
            return cached
        task = self.tasks[task_id]
        parent = task.parent_id
        result = task.archived or (
            parent is not None
            and parent in self.tasks
            and parent != task_id
            and self.is_archived(parent)
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
                            cached = (*known, fold(self.tasks[node].name))
                            folded[node] = cached
                        known = cached
                return known

            keyed = sorted((key(t), n, t) for n, t in enumerate(self.tasks))
            self._search = [(t, " / ".join(k)) for k, _, t in keyed]
        return self._search

    def is_removed(self, task_id: str) -> bool:
        task = self.tasks.get(task_id)
        return task is None or task.removed

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
