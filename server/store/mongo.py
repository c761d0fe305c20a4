"""MongoDB adapter over PyMongo's native async client (``AsyncMongoClient``).

``account_id`` leads every index so that collections can later be sharded by account.
Unique (partial) indexes hold the invariants; single-document atomic updates
(``find_one_and_update``) replace the transactions the SQLite adapter gets for free.
"""

from __future__ import annotations

from collections.abc import AsyncIterable, AsyncIterator, Mapping, Sequence
from typing import Any, TypeVar

from pymongo import ASCENDING, DESCENDING, AsyncMongoClient, ReturnDocument, UpdateOne
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import BulkWriteError, DuplicateKeyError, PyMongoError

from . import mongo_reports
from .base import (
    CollectionSpec,
    Doc,
    DuplicateKey,
    EntryRange,
    Filter,
    GroupKey,
    ReturnDoc,
    Sort,
    StoreUnavailable,
    Totals,
)

T = TypeVar("T")


def _filter(flt: Filter) -> dict[str, Any]:
    return {k: v for k, v in flt.items()}


async def _batches(items: AsyncIterable[T], size: int) -> AsyncIterator[list[T]]:
    """``items`` in lists of ``size`` (the last one shorter), never all at once."""
    chunk: list[T] = []
    async for item in items:
        chunk.append(item)
        if len(chunk) >= size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


class MongoBackend:
    kind = "mongodb"

    def __init__(self, url: str, *, server_selection_timeout_ms: int = 10_000) -> None:
        self._client: AsyncMongoClient[Doc] = AsyncMongoClient(
            url, serverSelectionTimeoutMS=server_selection_timeout_ms, tz_aware=True
        )
        self._db: AsyncDatabase[Doc] = self._client.get_default_database(default="tasktimer")

    async def open(self, specs: Sequence[CollectionSpec]) -> None:
        try:
            for spec in specs:
                coll = self._db[spec.name]
                for name, derive in spec.derived.items():
                    async for doc in coll.find({name: None}):
                        value = derive(doc)
                        if value is not None:
                            await coll.update_one({"_id": doc["_id"]}, {"$set": {name: value}})
                for index in spec.indexes:
                    # Generated columns exist in SQLite only (see CollectionSpec.seconds).
                    fields = tuple(f for f in index.fields if f not in spec.seconds)
                    name = f"ix_{'_'.join(fields)}"
                    kwargs: dict[str, Any] = {"name": name, "unique": index.unique}
                    if index.partial:
                        name += "_p_" + "_".join(index.partial)
                        kwargs["name"] = name
                        kwargs["partialFilterExpression"] = dict(index.partial)
                    await coll.create_index([(f, ASCENDING) for f in fields], **kwargs)
        except PyMongoError as exc:
            raise StoreUnavailable(f"MongoDB index creation failed: {type(exc).__name__}") from None

    async def close(self) -> None:
        await self._client.close()

    async def ping(self) -> None:
        try:
            await self._db.command("ping")
        except PyMongoError as exc:
            raise StoreUnavailable(type(exc).__name__) from None

    async def insert(self, coll: str, doc: Doc) -> None:
        try:
            await self._db[coll].insert_one(dict(doc))
        except DuplicateKeyError:
            raise DuplicateKey(coll) from None

    async def insert_many(self, coll: str, docs: Sequence[Doc]) -> None:
        if not docs:
            return
        try:
            await self._db[coll].insert_many([dict(d) for d in docs], ordered=True)
        except BulkWriteError as exc:
            if any(e.get("code") == 11000 for e in exc.details.get("writeErrors", [])):
                raise DuplicateKey(coll) from None
            raise

    async def find_one(self, coll: str, flt: Filter) -> Doc | None:
        return await self._db[coll].find_one(_filter(flt))

    async def find(
        self,
        coll: str,
        flt: Filter,
        *,
        sort: Sort | None = None,
        limit: int | None = None,
        skip: int = 0,
    ) -> list[Doc]:
        cursor = self._db[coll].find(_filter(flt))
        if sort:
            cursor = cursor.sort([(n, ASCENDING if d >= 0 else DESCENDING) for n, d in sort])
        if skip:
            cursor = cursor.skip(skip)
        if limit is not None:
            cursor = cursor.limit(limit)
        return await cursor.to_list(None)

    async def scan(
        self, coll: str, flt: Filter, fields: Sequence[str], *, batch: int = 2000
    ) -> AsyncIterator[list[tuple[Any, ...]]]:
        cursor = self._db[coll].find(
            _filter(flt), projection={name: 1 for name in fields}, batch_size=batch
        )
        rows = ((doc["_id"], *(doc.get(name) for name in fields)) async for doc in cursor)
        async for chunk in _batches(rows, batch):
            yield chunk

    async def count(self, coll: str, flt: Filter) -> int:
        return await self._db[coll].count_documents(_filter(flt))

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
        stop: dict[str, Any] = {"$ifNull": [f"${end}", until]}

        def millis(text: Any) -> dict[str, Any]:
            # The stored text carries microseconds; dates hold milliseconds.
            iso_ms = {"$concat": [{"$substrCP": [text, 0, 23]}, "Z"]}
            return {"$dateFromString": {"dateString": iso_ms}}

        def sub_millis(text: Any) -> dict[str, Any]:
            return {"$toInt": {"$substrCP": [text, 23, 3]}}

        micros = {
            "$add": [
                {"$multiply": [{"$subtract": [millis(stop), millis(f"${start}")]}, 1000]},
                {"$subtract": [sub_millis(stop), sub_millis(f"${start}")]},
            ]
        }
        seconds = {"$max": [0, {"$trunc": [{"$divide": [micros, 1_000_000]}, 0]}]}
        pipeline: list[dict[str, Any]] = [
            {"$match": _filter(flt)},
            {"$group": {"_id": f"${group_by}", "total": {"$sum": seconds}}},
        ]
        cursor = await self._db[coll].aggregate(pipeline)
        rows = await cursor.to_list(None)
        return {row["_id"]: int(row["total"]) for row in rows}

    async def update_one(
        self,
        coll: str,
        flt: Filter,
        set_: Mapping[str, Any] | None = None,
        *,
        inc: Mapping[str, int] | None = None,
        return_doc: ReturnDoc = "after",
    ) -> Doc | None:
        update: dict[str, Any] = {}
        if set_:
            update["$set"] = dict(set_)
        if inc:
            update["$inc"] = dict(inc)
        if not update:
            return await self.find_one(coll, flt)
        try:
            return await self._db[coll].find_one_and_update(
                _filter(flt),
                update,
                return_document=ReturnDocument.AFTER
                if return_doc == "after"
                else ReturnDocument.BEFORE,
            )
        except DuplicateKeyError:
            raise DuplicateKey(coll) from None

    async def update_one_and_insert(
        self, coll: str, flt: Filter, set_: Mapping[str, Any], doc: Doc
    ) -> Doc | None:
        before = await self.update_one(coll, flt, set_, return_doc="before")
        await self.insert(coll, doc)
        return before

    async def update_many(self, coll: str, flt: Filter, set_: Mapping[str, Any]) -> int:
        try:
            result = await self._db[coll].update_many(_filter(flt), {"$set": dict(set_)})
        except DuplicateKeyError:
            raise DuplicateKey(coll) from None
        return result.matched_count

    async def bulk_set(self, coll: str, updates: Sequence[tuple[str, Mapping[str, Any]]]) -> None:
        if not updates:
            return
        ops = [UpdateOne({"_id": doc_id}, {"$set": dict(fields)}) for doc_id, fields in updates]
        for start in range(0, len(ops), 1000):
            try:
                await self._db[coll].bulk_write(ops[start : start + 1000], ordered=False)
            except BulkWriteError as exc:
                if any(e.get("code") == 11000 for e in exc.details.get("writeErrors", [])):
                    raise DuplicateKey(coll) from None
                raise

    async def delete_many(self, coll: str, flt: Filter) -> int:
        result = await self._db[coll].delete_many(_filter(flt))
        return result.deleted_count

    async def meta_get(self, key: str) -> Any:
        doc = await self._db["meta"].find_one({"_id": key})
        return doc["value"] if doc else None

    async def meta_set(self, key: str, value: Any) -> None:
        await self._db["meta"].replace_one({"_id": key}, {"_id": key, "value": value}, upsert=True)

    # -- reports --------------------------------------------------------------------

    async def entry_totals(self, rng: EntryRange, keys: Sequence[GroupKey]) -> Totals:
        cursor = await self._db["entries"].aggregate(mongo_reports.totals_pipeline(rng, keys))
        groups = await cursor.to_list(None)
        if not keys:
            return [((), int(groups[0]["x"]) if groups else 0)]
        return [(tuple(g["_id"][k] for k in keys), int(g["x"])) for g in groups]

    async def entry_rows(self, rng: EntryRange, batch: int = 1000) -> AsyncIterator[list[Doc]]:
        # Entries that started before the range first: they precede every entry that
        # starts inside it. The cursor fetches ``batch`` documents per round trip.
        for flt in (mongo_reports.before(rng), mongo_reports.inside(rng)):
            cursor = (
                self._db["entries"]
                .find(flt)
                .sort([("start", ASCENDING), ("_id", ASCENDING)])
                .batch_size(batch)
            )
            async for chunk in _batches(cursor, batch):
                yield chunk
