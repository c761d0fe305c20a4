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
from typing import Any, Literal, Protocol

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
    # Fields a later version derives from the document: on open, both adapters fill them
    # in for stored documents that lack them, before the indexes are built.
    derived: Mapping[str, Callable[[Doc], Any]] = field(default_factory=dict)


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
