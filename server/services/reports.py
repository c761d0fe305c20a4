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
from datetime import date, datetime
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
    """One entry of an export, clipped to the range; times are local to the report."""

    date: date
    start: datetime
    end: datetime
    seconds: int
    user: str
    email: str
    task: str
    service: str
    external_id: str
    note: str
    tags: tuple[str, ...]


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

    # -- summary --------------------------------------------------------------------

    async def summary(self, principal: Principal, params: ReportParams) -> dict[str, Any]:
        levels = params.group_by
        rng, tree, tz = await self._range(principal, params)
        users = await self._users(principal.account_id)

        def keyed(rows: list[tuple[tuple[Any, ...], int]]) -> list[tuple[tuple[Any, ...], int]]:
            return [
                (tuple(self._key(k, v, rng.grid) for k, v in zip(levels, key, strict=False)), s)
                for key, s in rows
                if s > 0
            ]

        fine = keyed(await self._db.entry_totals(rng, levels))
        top: dict[Any, int] = {}
        for key, seconds in fine:
            top[key[0]] = top.get(key[0], 0) + seconds
        total = sum(top.values())
        if "tag" in levels:
            # An entry counts in each of its tags but once in every total above them.
            (_, total), *_ = await self._db.entry_totals(rng, ())
            if len(levels) == 2 and levels[1] == "tag":
                top = {
                    key[0]: seconds
                    for key, seconds in keyed(await self._db.entry_totals(rng, levels[:1]))
                }
        children: dict[Any, dict[Any, int]] = {}
        if len(levels) == 2:
            for key, seconds in fine:
                children.setdefault(key[0], {})[key[1]] = seconds

        def group(kind: GroupKey, key: Any, seconds: int) -> dict[str, Any]:
            return {"key": key, "label": self._label(kind, key, tree, users), "total_s": seconds}

        groups = []
        for key, seconds in top.items():
            item = group(levels[0], key, seconds)
            if len(levels) == 2:
                item["groups"] = self._sorted(
                    levels[1], [group(levels[1], k, s) for k, s in children.get(key, {}).items()]
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
    def _key(kind: GroupKey, value: Any, grid: DayGrid) -> Any:
        if kind == "day":
            return grid.label(int(value))
        return value

    @staticmethod
    def _label(kind: GroupKey, key: Any, tree: Tree, users: dict[str, Doc]) -> str:
        if kind == "task":
            if key is None:
                return NO_TASK_LABEL
            return PATH_SEPARATOR.join(tree.path(key)) if key in tree.tasks else str(key)
        if kind == "user":
            user = users.get(key)
            return (user.get("name") or user["email"]) if user else str(key)
        if kind == "tag":
            return NO_TAG_LABEL if key is None else str(key)
        return str(key)

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
        return Export(
            params.first, params.last, tz, self._rows(rng, tree, users, ZoneInfo(tz), batch)
        )

    async def _rows(
        self,
        rng: EntryRange,
        tree: Tree,
        users: dict[str, Doc],
        zone: ZoneInfo,
        batch: int,
    ) -> AsyncIterator[list[ReportRow]]:
        paths: dict[str, tuple[str, str, str]] = {}

        def task_columns(entry: Doc) -> tuple[str, str, str]:
            task_id = entry.get("task_id")
            if task_id is None:
                return (
                    "",
                    entry.get("pending_service") or "",
                    entry.get("pending_external_id") or "",
                )
            cached = paths.get(task_id)
            if cached is None:
                task = tree.get(task_id)
                if task is None:
                    cached = (str(task_id), "", "")
                else:
                    source = source_of(task) or {}
                    cached = (
                        PATH_SEPARATOR.join(tree.path(task_id)),
                        source.get("service", ""),
                        source.get("external_id", ""),
                    )
                paths[task_id] = cached
            return cached

        async for docs in self._db.entry_rows(rng, batch):
            rows: list[ReportRow] = []
            for entry in docs:
                start = max(epoch_seconds(entry["start"]), rng.lo)
                end_iso = entry.get("end")
                end = min(epoch_seconds(end_iso) if end_iso else rng.now, rng.hi)
                if end <= start:
                    continue
                user = users.get(entry["user_id"]) or {}
                task, service, external_id = task_columns(entry)
                local_start = datetime.fromtimestamp(start, zone)
                rows.append(
                    ReportRow(
                        date=local_start.date(),
                        start=local_start,
                        end=datetime.fromtimestamp(end, zone),
                        seconds=end - start,
                        user=user.get("name") or user.get("email") or entry["user_id"],
                        email=user.get("email") or "",
                        task=task,
                        service=service,
                        external_id=external_id,
                        note=entry.get("note") or "",
                        tags=tuple(entry.get("tags") or ()),
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
