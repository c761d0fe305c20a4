"""The document backend both adapters implement.

Records are flat documents keyed by ``_id``. Every field a query filters or sorts on is
declared in the collection's spec, so the SQLite adapter can keep it in a real, indexed
column. Invariants (one running timer per user, one task per imported item) are unique
indexes that both databases enforce themselves.

Filters are small MongoDB-style dicts: ``{field: value}``, or ``{field: {op: value}}``
with op one of ``$in``, ``$nin``, ``$ne``, ``$lt``, ``$lte``, ``$gt``, ``$gte``.
A value of ``None`` matches a missing or null field.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal, Protocol

from ..domain.localdays import DayGrid

Doc = dict[str, Any]
Filter = Mapping[str, Any]
Sort = Sequence[tuple[str, int]]
ReturnDoc = Literal["before", "after"]

OPERATORS = frozenset({"$in", "$nin", "$ne", "$lt", "$lte", "$gt", "$gte"})


class DuplicateKey(Exception):
    """A write would break a unique index."""


class StoreUnavailable(Exception):
    """The database cannot be reached."""


@dataclass(frozen=True, slots=True)
class Index:
    fields: tuple[str, ...]
    unique: bool = False
    # Equality conditions only (field -> literal), so both databases can express them.
    partial: Mapping[str, bool | str | int] | None = None


@dataclass(frozen=True, slots=True)
class CollectionSpec:
    name: str
    # Filterable scalar fields besides ``_id``; types: "text", "int", "real", "bool".
    fields: Mapping[str, str]
    indexes: tuple[Index, ...] = field(default_factory=tuple)
    # Generated integer columns: name -> the timestamp field whose whole epoch second it
    # holds. SQLite keeps them as virtual generated columns, so an index can carry them
    # (reports then read ready-made seconds from the index); MongoDB computes them in its
    # pipelines and leaves them out of its indexes. Never written, never filtered on.
    seconds: Mapping[str, str] = field(default_factory=dict)
    # Fields a later version derives from the document: on open, both adapters fill them
    # in for stored documents that lack them, before the indexes are built.
    derived: Mapping[str, Callable[[Doc], Any]] = field(default_factory=dict)


GroupKey = Literal["task", "user", "day", "tag"]
Totals = list[tuple[tuple[Any, ...], int]]


def iso_second(instant: int) -> str:
    """A whole-second epoch instant in the stored timestamp format."""
    m = datetime.fromtimestamp(instant, UTC)
    return (
        f"{m.year:04d}-{m.month:02d}-{m.day:02d}T{m.hour:02d}:{m.minute:02d}:{m.second:02d}.000000Z"
    )


@dataclass(frozen=True, slots=True)
class EntryRange:
    """The entries a report reads: those of one account overlapping the grid's days.

    Instants are whole epoch seconds: a stored timestamp counts as its first 19
    characters (``YYYY-MM-DDTHH:MM:SS``), so every piece of every entry is a whole number
    of seconds and the pieces add up exactly. An entry counts from ``max(start, lo)`` to
    ``min(end or now, hi)``; entries left with no second are not reported.
    """

    account_id: str
    grid: DayGrid
    now: int
    user_ids: tuple[str, ...] | None = None
    task_ids: tuple[str, ...] | None = None  # a task and its subtree
    tag: str | None = None
    # When set, only the entries of this user and the entries on ``managed_tasks``.
    own_user: str | None = None
    managed_tasks: tuple[str, ...] = ()

    @property
    def lo(self) -> int:
        return self.grid.lo

    @property
    def hi(self) -> int:
        return self.grid.hi

    @property
    def lo_iso(self) -> str:
        return iso_second(self.grid.lo)

    @property
    def hi_iso(self) -> str:
        return iso_second(self.grid.hi)


class Backend(Protocol):
    kind: str

    async def open(self, specs: Sequence[CollectionSpec]) -> None: ...

    async def close(self) -> None: ...

    async def ping(self) -> None: ...

    async def insert(self, coll: str, doc: Doc) -> None: ...

    async def insert_many(self, coll: str, docs: Sequence[Doc]) -> None: ...

    async def find_one(self, coll: str, flt: Filter) -> Doc | None: ...

    async def find(
        self,
        coll: str,
        flt: Filter,
        *,
        sort: Sort | None = None,
        limit: int | None = None,
        skip: int = 0,
    ) -> list[Doc]: ...

    def scan(
        self, coll: str, flt: Filter, fields: Sequence[str], *, batch: int = 2000
    ) -> AsyncIterator[list[tuple[Any, ...]]]:
        """Stream the matching documents as ``(_id, *fields)`` tuples, in batches of at
        most ``batch`` rows, without ever holding all of them (or whole documents). A
        missing field reads as None. Writes made while scanning may or may not be seen."""
        ...

    async def count(self, coll: str, flt: Filter) -> int: ...

    async def sum_durations(
        self,
        coll: str,
        flt: Filter,
        *,
        group_by: str,
        until: str,
        start: str = "start",
        end: str = "end",
    ) -> dict[Any, int]:
        """Per value of ``group_by`` among the matching documents: the sum of each one's
        whole seconds from ``start`` to ``end`` (timestamps as ``clock.iso`` writes them;
        a missing ``end`` counts up to ``until``), computed in the database. Groups
        without a matching document are absent."""
        ...

    async def update_one(
        self,
        coll: str,
        flt: Filter,
        set_: Mapping[str, Any] | None = None,
        *,
        inc: Mapping[str, int] | None = None,
        return_doc: ReturnDoc = "after",
    ) -> Doc | None:
        """Atomically update the first matching document; returns it (before or after
        the change) or None when nothing matched."""
        ...

    async def update_one_and_insert(
        self, coll: str, flt: Filter, set_: Mapping[str, Any], doc: Doc
    ) -> Doc | None:
        """Update the first document matching ``flt`` (if any), then insert ``doc``;
        returns the updated document as it was before. SQLite does both in one
        transaction (a failed insert undoes the update); MongoDB does them one after the
        other, so callers must serialise what needs to be atomic there."""
        ...

    async def update_many(self, coll: str, flt: Filter, set_: Mapping[str, Any]) -> int: ...

    async def bulk_set(self, coll: str, updates: Sequence[tuple[str, Mapping[str, Any]]]) -> None:
        """Apply ``$set`` updates by ``_id`` in one round trip."""
        ...

    async def delete_many(self, coll: str, flt: Filter) -> int: ...

    async def meta_get(self, key: str) -> Any: ...

    async def meta_set(self, key: str, value: Any) -> None: ...

    # -- reports ----------------------------------------------------------------------

    async def entry_totals(self, rng: EntryRange, keys: Sequence[GroupKey]) -> Totals:
        """Seconds per distinct ``keys`` tuple, aggregated in the database: ``task`` is
        the task id (None for pending entries), ``user`` the user id, ``day`` the index
        of the local day in ``rng.grid`` (an entry is split at local midnights), ``tag``
        one tag of the entry (it counts in each of its tags; None when it has none)."""
        ...

    def entry_rows(self, rng: EntryRange, batch: int = 1000) -> AsyncIterator[list[Doc]]:
        """The entries overlapping the range in start order (then id), in batches read
        one after the other from the database (unclipped documents)."""
        ...
