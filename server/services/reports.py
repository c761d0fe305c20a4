"""Reports: totals over local dates, grouped, and the entries behind them.

Who sees what: every user their own entries; a manager also every user's entries on the
tasks they manage (the nearest role decides, as everywhere); an admin the whole account.
Entries of deactivated users and of removed tasks are still reported.

The database aggregates (``Backend.entry_totals``); this service only decides what to
ask for, labels the groups and sorts them. Every instant is a whole second (see
``server.domain.localdays``), so the pieces of an entry, the rows of an export and the
groups of a summary all add up to the same total.
"""

from __future__ import annotations

import functools
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any
from zoneinfo import ZoneInfo

from ..domain import clock
from ..domain.errors import Forbidden, NotFound, ValidationFailed
from ..domain.localdays import DayGrid, build_grid, epoch_seconds, zone_or_none
from ..domain.tree import Tree
from ..store.base import Backend, Doc, EntryRange, GroupKey
from .principal import Principal
from .tasks import TaskService, source_of

MAX_DAYS = 366
PATH_SEPARATOR = " \u203a "  # a single right-pointing angle quotation mark
NO_TASK_LABEL = "No task (not imported yet)"
NO_TAG_LABEL = "No tag"
TAG_SEPARATOR = ", "
DEFAULT_ZONE = "UTC"


@dataclass(frozen=True, slots=True)
class ReportParams:
    first: date
    last: date
    tz: str | None = None  # None: the caller's time zone
    group_by: tuple[GroupKey, ...] = ("task",)
    user_ids: tuple[str, ...] = ()
    task_id: str | None = None
    tag: str | None = None


@dataclass(frozen=True, slots=True)
class ReportRow:
    """One entry of an export, clipped to the range. ``start_local`` and ``end_local``
    are wall-clock times in the report's zone as local epoch seconds (what a clock on the
    wall shows, counted like UTC); ``seconds`` is the real elapsed time."""

    start_local: int
    end_local: int
    seconds: int
    user: str
    email: str
    task: str
    service: str
    external_id: str
    note: str
    tags: str  # joined with ", "


@dataclass
class Export:
    first: date
    last: date
    tz: str
    batches: AsyncIterator[list[ReportRow]]

    @property
    def file_stem(self) -> str:
        return f"tasktimer-entries-{self.first.isoformat()}-to-{self.last.isoformat()}"


@functools.lru_cache(maxsize=64)
def _grid(first: date, last: date, tz: str) -> DayGrid:
    return build_grid(first, last, ZoneInfo(tz))


@functools.lru_cache(maxsize=64)
def _day_labels(grid: DayGrid) -> tuple[str, ...]:
    return tuple(grid.label(k) for k in range(grid.days))


class _Labels:
    """Group labels: a task's path, a user's name, a tag; memoised per summary."""

    def __init__(self, tree: Tree, users: dict[str, Doc]) -> None:
        self._tree = tree
        self._users = users
        self._tasks: dict[Any, str] = {}

    def of(self, kind: GroupKey, key: Any) -> str:
        if kind == "task":
            label = self._tasks.get(key)
            if label is None:
                label = self._task(key)
                self._tasks[key] = label
            return label
        if kind == "user":
            user = self._users.get(key)
            return (user.get("name") or user["email"]) if user else str(key)
        if kind == "tag":
            return NO_TAG_LABEL if key is None else str(key)
        return str(key)

    def _task(self, key: Any) -> str:
        if key is None:
            return NO_TASK_LABEL
        if key not in self._tree.tasks:
            return str(key)
        return PATH_SEPARATOR.join(self._tree.path(key))


class ReportService:
    def __init__(self, backend: Backend, tasks: TaskService) -> None:
        self._db = backend
        self._tasks = tasks

    # -- the range and who may see what ---------------------------------------------

    async def _zone(self, principal: Principal, tz: str | None) -> str:
        if tz is not None:
            if zone_or_none(tz) is None:
                raise ValidationFailed(
                    "unknown time zone", [{"field": "tz", "message": "not an IANA time zone"}]
                )
            return tz
        user = await self._db.find_one(
            "users", {"_id": principal.user_id, "account_id": principal.account_id}
        )
        stored = (user or {}).get("time_zone")
        return stored if isinstance(stored, str) and zone_or_none(stored) else DEFAULT_ZONE

    @staticmethod
    def _check_dates(first: date, last: date) -> None:
        if last < first:
            raise ValidationFailed(
                "the range ends before it starts", [{"field": "to", "message": "before from"}]
            )
        if (last - first).days + 1 > MAX_DAYS:
            raise ValidationFailed(
                f"a report covers at most {MAX_DAYS} days",
                [{"field": "to", "message": f"more than {MAX_DAYS} days after from"}],
            )

    async def _range(
        self, principal: Principal, params: ReportParams
    ) -> tuple[EntryRange, Tree, str]:
        self._check_dates(params.first, params.last)
        tz = await self._zone(principal, params.tz)
        tree = await self._tasks.tree(principal.account_id)
        task_ids: tuple[str, ...] | None = None
        if params.task_id is not None:
            if params.task_id not in tree.tasks:
                raise NotFound("task not found")
            task_ids = (params.task_id, *tree.descendants(params.task_id))
        own_user: str | None = None
        managed: tuple[str, ...] = ()
        if not principal.is_admin:
            own_user = principal.user_id
            roles = tree.view(principal.user_id, False).roles
            managed = tuple(t for t, role in roles.items() if role == "manager")
            others = [u for u in params.user_ids if u != principal.user_id]
            if others and not managed:
                raise Forbidden("you may only report your own time")
            if task_ids is not None and managed:
                in_subtree = set(task_ids)
                managed = tuple(t for t in managed if t in in_subtree)
        rng = EntryRange(
            account_id=principal.account_id,
            grid=_grid(params.first, params.last, tz),
            now=int(clock.now().timestamp()),
            user_ids=tuple(dict.fromkeys(params.user_ids)) or None,
            task_ids=task_ids,
            tag=params.tag,
            own_user=own_user,
            managed_tasks=managed,
        )
        return rng, tree, tz

    async def _users(self, account_id: str) -> dict[str, Doc]:
        # Deactivated users too: their time is still reported.
        return {u["_id"]: u for u in await self._db.find("users", {"account_id": account_id})}

    async def people(self, principal: Principal) -> list[tuple[str, str]] | None:
        """Whose time the caller may filter on, as (user id, label): admins everyone,
        managers themselves and the users assigned within or above the tasks they
        manage; None for users who see only their own time."""
        users = await self._users(principal.account_id)
        if principal.is_admin:
            chosen = list(users.values())
        else:
            tree = await self._tasks.tree(principal.account_id)
            roles = tree.view(principal.user_id, False).roles
            managed = {t for t, role in roles.items() if role == "manager"}
            if not managed:
                return None
            covering = set(managed)
            for task_id in managed:
                parent = tree.tasks[task_id].parent_id
                if parent not in managed and parent is not None:
                    covering.update(tree.ancestors(task_id))
            ids = {principal.user_id} | {
                user_id
                for user_id, grants in tree.grants.items()
                if any(g.role is not None and t in covering for t, g in grants.items())
            }
            chosen = [u for u in users.values() if u["_id"] in ids]
        labelled = [(u["_id"], u.get("name") or u["email"]) for u in chosen]
        return sorted(labelled, key=lambda item: (item[1].casefold(), item[0]))

    # -- summary --------------------------------------------------------------------

    async def summary(self, principal: Principal, params: ReportParams) -> dict[str, Any]:
        levels = params.group_by
        rng, tree, tz = await self._range(principal, params)
        users = await self._users(principal.account_id)
        day_labels = _day_labels(rng.grid) if "day" in levels else ()

        def key_of(kind: GroupKey, value: Any) -> Any:
            return day_labels[value] if kind == "day" else value

        fine = [r for r in await self._db.entry_totals(rng, levels) if r[1] > 0]
        top: dict[Any, int] = {}
        for key, seconds in fine:
            top[key[0]] = top.get(key[0], 0) + seconds
        total = sum(top.values())
        if "tag" in levels:
            # An entry counts in each of its tags but once in every total above them.
            (_, total), *_ = await self._db.entry_totals(rng, ())
            if len(levels) == 2 and levels[1] == "tag":
                top = {k[0]: s for k, s in await self._db.entry_totals(rng, levels[:1]) if s}
        children: dict[Any, list[tuple[Any, int]]] = {}
        if len(levels) == 2:
            for key, seconds in fine:
                children.setdefault(key[0], []).append((key[1], seconds))
        labels = _Labels(tree, users)
        groups = []
        for value, seconds in top.items():
            item: dict[str, Any] = {
                "key": key_of(levels[0], value),
                "label": labels.of(levels[0], key_of(levels[0], value)),
                "total_s": seconds,
            }
            if len(levels) == 2:
                kind = levels[1]
                item["groups"] = self._sorted(
                    kind,
                    [
                        {"key": k, "label": labels.of(kind, k), "total_s": s}
                        for k, s in ((key_of(kind, v), s) for v, s in children.get(value, ()))
                    ],
                )
            groups.append(item)
        return {
            "from": params.first.isoformat(),
            "to": params.last.isoformat(),
            "tz": tz,
            "total_s": total,
            "groups": self._sorted(levels[0], groups),
        }

    @staticmethod
    def _sorted(kind: GroupKey, groups: list[dict[str, Any]]) -> list[dict[str, Any]]:
        if kind == "day":
            return sorted(groups, key=lambda g: g["key"])
        return sorted(groups, key=lambda g: (-g["total_s"], g["label"], str(g["key"])))

    # -- the entries behind the totals ------------------------------------------------

    async def export(self, principal: Principal, params: ReportParams, batch: int = 1000) -> Export:
        """Checks everything up front (a bad request fails before the first byte); the
        rows are read from the database batch by batch while they are consumed."""
        rng, tree, tz = await self._range(principal, params)
        users = await self._users(principal.account_id)
        return Export(params.first, params.last, tz, self._rows(rng, tree, users, batch))

    async def _rows(
        self, rng: EntryRange, tree: Tree, users: dict[str, Doc], batch: int
    ) -> AsyncIterator[list[ReportRow]]:
        tasks: dict[str, tuple[str, str, str]] = {}
        people: dict[str, tuple[str, str]] = {}
        grid, lo, hi, now = rng.grid, rng.lo, rng.hi, rng.now

        def task_columns(task_id: str) -> tuple[str, str, str]:
            task = tree.get(task_id)
            if task is None:
                return (str(task_id), "", "")
            source = source_of(task) or {}
            return (
                PATH_SEPARATOR.join(tree.path(task_id)),
                source.get("service", ""),
                source.get("external_id", ""),
            )

        async for docs in self._db.entry_rows(rng, batch):
            rows: list[ReportRow] = []
            for entry in docs:
                start = max(epoch_seconds(entry["start"]), lo)
                end_iso = entry.get("end")
                end = min(epoch_seconds(end_iso) if end_iso else now, hi)
                if end <= start:
                    continue
                user_id = entry["user_id"]
                person = people.get(user_id)
                if person is None:
                    user = users.get(user_id) or {}
                    person = (
                        user.get("name") or user.get("email") or user_id,
                        user.get("email", ""),
                    )
                    people[user_id] = person
                task_id = entry.get("task_id")
                if task_id is None:
                    task = (
                        "",
                        entry.get("pending_service") or "",
                        entry.get("pending_external_id") or "",
                    )
                else:
                    task = tasks.get(task_id) or tasks.setdefault(task_id, task_columns(task_id))
                rows.append(
                    ReportRow(
                        grid.local(start),
                        grid.local(end),
                        end - start,
                        person[0],
                        person[1],
                        task[0],
                        task[1],
                        task[2],
                        entry.get("note") or "",
                        TAG_SEPARATOR.join(entry.get("tags") or ()),
                    )
                )
            if rows:
                yield rows


def parse_group_by(value: str | Sequence[str]) -> tuple[GroupKey, ...]:
    """``task``, ``user,task``…: one or two distinct levels (ValueError otherwise)."""
    parts = [p.strip() for p in value.split(",")] if isinstance(value, str) else list(value)
    allowed: dict[str, GroupKey] = {"task": "task", "user": "user", "day": "day", "tag": "tag"}
    if not 1 <= len(parts) <= 2 or len(set(parts)) != len(parts):
        raise ValueError("one or two distinct levels of task, user, day, tag")
    try:
        return tuple(allowed[p] for p in parts)
    except KeyError:
        raise ValueError("one or two distinct levels of task, user, day, tag") from None
