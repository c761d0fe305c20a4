"""Embedded SQLite adapter.

One connection lives on one dedicated thread: every operation is a short function run
there, so writes are serialised (each operation is atomic on its own) and the event loop
never blocks on disk I/O. WAL mode lets readers of other processes (backups, the CLI)
work beside the server.
"""

from __future__ import annotations

import asyncio
import json
import queue
import re
import sqlite3
import threading
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

from ..jsonutil import dumps_str, loads
from . import sqlite_reports
from .base import (
    OPERATORS,
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


def _settle(future: asyncio.Future[Any], result: Any, error: BaseException | None) -> None:
    if future.cancelled():
        return
    if error is not None:
        future.set_exception(error)
    else:
        future.set_result(result)


def _settle_all(answers: list[tuple[asyncio.Future[Any], Any, BaseException | None]]) -> None:
    for future, result, error in answers:
        _settle(future, result, error)


def _store_error(exc: BaseException) -> BaseException:
    """A job's error as the store reports it: a unique index refusal is ``DuplicateKey``."""
    if isinstance(exc, sqlite3.IntegrityError) and "UNIQUE" in str(exc):
        return DuplicateKey(str(exc))
    return exc


Job = Callable[[sqlite3.Connection], Any]
Outcome = tuple[Any, BaseException | None]
_Item = tuple[asyncio.AbstractEventLoop, asyncio.Future[Any], Callable[..., Any], bool]
MAX_BATCH = 64


class _DatabaseThread:
    """One thread that owns the connection and runs jobs in order.

    Jobs that queue up while the thread is busy run as one batch under one commit; when
    one of them fails, the batch is rolled back and runs again with each job in its own
    savepoint (the failing job is undone alone). Under concurrent writes this saves a
    commit per job; alone, a job is still committed before it is answered. The hand-off
    is a queue put, and one ``call_soon_threadsafe`` back per batch."""

    def __init__(self, run_batch: Callable[[list[Job]], list[Outcome]]) -> None:
        self._run_batch = run_batch
        self._jobs: queue.SimpleQueue[_Item | None] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._serve, name="sqlite", daemon=True)
        self._thread.start()

    @staticmethod
    def _answer(item: _Item, result: Any, error: BaseException | None) -> None:
        try:
            item[0].call_soon_threadsafe(_settle, item[1], result, error)
        except RuntimeError:
            pass  # the loop closed while the job ran; nobody waits for the answer

    @staticmethod
    def _answer_all(batch: list[_Item], outcomes: list[Outcome]) -> None:
        """The answers of a batch with one wake-up of each waiting loop: every
        ``call_soon_threadsafe`` writes to the loop's self-pipe, a system call here and a
        GIL hand-off each."""
        by_loop: dict[asyncio.AbstractEventLoop, list[tuple[Any, Any, Any]]] = {}
        for item, (result, error) in zip(batch, outcomes, strict=True):
            by_loop.setdefault(item[0], []).append((item[1], result, error))
        for loop, answers in by_loop.items():
            try:
                loop.call_soon_threadsafe(_settle_all, answers)
            except RuntimeError:
                pass  # the loop closed while the batch ran; nobody waits for the answers

    def _serve(self) -> None:
        held: list[_Item | None] = []
        while True:
            item = held.pop() if held else self._jobs.get()
            if item is None:
                return
            if not item[3]:
                try:
                    self._answer(item, item[2](), None)
                except BaseException as exc:
                    self._answer(item, None, exc)
                continue
            batch = [item]
            while len(batch) < MAX_BATCH:
                try:
                    following = self._jobs.get_nowait()
                except queue.Empty:
                    break
                if following is None or not following[3]:
                    held.append(following)
                    break
                batch.append(following)
            try:
                outcomes = self._run_batch([job[2] for job in batch])
            except BaseException as exc:
                outcomes = [(None, exc)] * len(batch)
            self._answer_all(batch, outcomes)

    async def run(self, fn: Callable[..., T], *, transactional: bool = True) -> T:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        self._jobs.put((loop, future, fn, transactional))
        return await future

    async def stop(self) -> None:
        self._jobs.put(None)
        await asyncio.to_thread(self._thread.join)


SCHEMA_VERSION = 1
_SQL_TYPES = {"text": "TEXT", "int": "INTEGER", "real": "REAL", "bool": "INTEGER"}
_COMPARE = {"$lt": "<", "$lte": "<=", "$gt": ">", "$gte": ">="}
_FIELD_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def _literal(value: bool | str | int) -> str:
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, int):
        return str(value)
    return "'" + value.replace("'", "''") + "'"


# Indexes of earlier versions that a wider one has replaced (each is a prefix of its
# successor, so keeping it would only cost writes).
RETIRED_INDEXES = ("ix_entries_account_id_user_id_start",)


class SQLiteBackend:
    kind = "sqlite"

    def __init__(self, path: Path) -> None:
        self._path = path
        self._worker = _DatabaseThread(self._run_batch)
        self._conn: sqlite3.Connection | None = None
        self._fields: dict[str, tuple[str, ...]] = {}

    # -- plumbing -------------------------------------------------------------------

    async def _run(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        result: T = await self._worker.run(fn)
        return result

    def _run_batch(self, jobs: list[Job]) -> list[Outcome]:
        conn = self._conn
        if conn is None:
            return [(None, StoreUnavailable("database is closed"))] * len(jobs)
        if len(jobs) == 1:
            # Alone, a job needs no savepoint: its transaction is its own. Every statement
            # is a GIL hand-off between this thread and the event loop, so two fewer
            # statements are a shorter wait for the caller.
            return [self._run_alone(conn, jobs[0])]
        together = self._run_together(conn, jobs)
        if together is not None:
            return together
        # One job failed: nothing was kept, and the batch runs again with each job in its
        # own savepoint, so that the failing one is undone alone.
        outcomes: list[Outcome] = []
        conn.execute("BEGIN")
        try:
            for job in jobs:
                conn.execute("SAVEPOINT job")
                try:
                    outcomes.append((job(conn), None))
                except BaseException as exc:
                    conn.execute("ROLLBACK TO job")
                    outcomes.append((None, _store_error(exc)))
                finally:
                    conn.execute("RELEASE job")
            conn.execute("COMMIT")
        except BaseException as exc:
            # Nothing of the batch is kept: every job gets the error.
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            return [(None, exc)] * len(jobs)
        return outcomes

    @staticmethod
    def _run_together(conn: sqlite3.Connection, jobs: list[Job]) -> list[Outcome] | None:
        """The usual batch, where no job fails: one transaction without savepoints (two
        statements, i.e. two GIL hand-offs, fewer per job). ``None``, with nothing kept,
        when a job fails."""
        conn.execute("BEGIN")
        try:
            results = [job(conn) for job in jobs]
        except Exception:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            return None
        try:
            conn.execute("COMMIT")
        except BaseException as exc:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            return [(None, exc)] * len(jobs)
        return [(result, None) for result in results]

    @staticmethod
    def _run_alone(conn: sqlite3.Connection, job: Job) -> Outcome:
        conn.execute("BEGIN")
        try:
            result = job(conn)
        except BaseException as exc:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            return None, _store_error(exc)
        try:
            conn.execute("COMMIT")
        except BaseException as exc:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            return None, exc
        return result, None

    def _columns(self, coll: str) -> tuple[str, ...]:
        try:
            return self._fields[coll]
        except KeyError:
            raise ValueError(f"unknown collection {coll!r}") from None

    def _row(self, coll: str, doc: Mapping[str, Any]) -> list[Any]:
        return [doc["_id"], dumps_str(doc), *(doc.get(c) for c in self._columns(coll))]

    def _where(self, coll: str, flt: Filter) -> tuple[str, list[Any]]:
        allowed = self._columns(coll)
        parts: list[str] = []
        params: list[Any] = []
        for name, cond in flt.items():
            if name != "_id" and name not in allowed:
                raise ValueError(f"{coll}.{name} is not a declared field")
            col = f'"{name}"'
            if isinstance(cond, dict):
                for op, value in cond.items():
                    if op not in OPERATORS:
                        raise ValueError(f"unsupported operator {op}")
                    if op in ("$in", "$nin"):
                        values = list(value)
                        marks = ",".join("?" * len(values))
                        if op == "$in":
                            parts.append(f"{col} IN ({marks})" if values else "0")
                        else:
                            parts.append(
                                f"({col} IS NULL OR {col} NOT IN ({marks}))" if values else "1"
                            )
                        params.extend(values)
                    elif op == "$ne":
                        if value is None:
                            parts.append(f"{col} IS NOT NULL")
                        else:
                            parts.append(f"({col} IS NULL OR {col} != ?)")
                            params.append(value)
                    else:
                        parts.append(f"{col} {_COMPARE[op]} ?")
                        params.append(value)
            elif cond is None:
                parts.append(f"{col} IS NULL")
            elif isinstance(cond, bool):
                # A literal, not a parameter: only then can SQLite choose a partial index
                # (``WHERE "running" = 1``) when it prepares the statement. With a
                # parameter it re-plans the cached statement at every execution instead
                # (19 us instead of 6.5 us for the running-entry lookup).
                parts.append(f"{col} = {_literal(cond)}")
            else:
                parts.append(f"{col} = ?")
                params.append(cond)
        return (" AND ".join(parts) or "1"), params

    # -- lifecycle ------------------------------------------------------------------

    async def open(self, specs: Sequence[CollectionSpec]) -> None:
        for spec in specs:
            self._fields[spec.name] = tuple(spec.fields)

        def connect() -> None:
            if self._path.parent and not self._path.parent.exists():
                self._path.parent.mkdir(parents=True, exist_ok=True)
            # Autocommit mode: transactions are begun and committed by _run_batch.
            conn = sqlite3.connect(
                self._path, check_same_thread=False, timeout=30, isolation_level=None
            )
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
            conn.execute("PRAGMA foreign_keys=ON")
            self._conn = conn

        await self._worker.run(connect, transactional=False)
        await self._run(lambda conn: self._migrate(conn, specs))

    def _migrate(self, conn: sqlite3.Connection, specs: Sequence[CollectionSpec]) -> None:
        conn.execute("CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT)")
        row = conn.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()
        version = int(json.loads(row[0])) if row else 0
        if version > SCHEMA_VERSION:
            raise RuntimeError(
                f"database schema {version} is newer than this server ({SCHEMA_VERSION})"
            )
        for spec in specs:
            cols = "".join(f', "{n}" {_SQL_TYPES[t]}' for n, t in spec.fields.items())
            conn.execute(
                f'CREATE TABLE IF NOT EXISTS "{spec.name}" '
                f"(_id TEXT PRIMARY KEY, doc TEXT NOT NULL{cols})"
            )
            # Columns added by a newer server version are back-filled from the documents.
            present = {r[1] for r in conn.execute(f'PRAGMA table_xinfo("{spec.name}")')}
            for name, typ in spec.fields.items():
                if name not in present:
                    conn.execute(f'ALTER TABLE "{spec.name}" ADD COLUMN "{name}" {_SQL_TYPES[typ]}')
                    conn.execute(
                        f'UPDATE "{spec.name}" SET "{name}" = json_extract(doc, ?)', (f"$.{name}",)
                    )
            for name, source in spec.seconds.items():
                if name not in present:
                    # Computed when read (VIRTUAL) and stored in the indexes that name it.
                    expression = sqlite_reports.seconds_of(f'"{source}"')
                    conn.execute(
                        f'ALTER TABLE "{spec.name}" ADD COLUMN "{name}" INTEGER'
                        f" GENERATED ALWAYS AS ({expression}) VIRTUAL"
                    )
            for name, derive in spec.derived.items():
                rows = conn.execute(
                    f'SELECT doc FROM "{spec.name}" WHERE "{name}" IS NULL'
                ).fetchall()
                for (raw,) in rows:
                    doc = loads(raw)
                    value = derive(doc)
                    if value is not None:
                        self._apply(conn, spec.name, doc, {name: value}, None)
            for index in spec.indexes:
                iname = f"ix_{spec.name}_{'_'.join(index.fields)}"
                if index.partial:
                    iname += "_p_" + "_".join(index.partial)
                unique = "UNIQUE " if index.unique else ""
                where = ""
                if index.partial:
                    where = " WHERE " + " AND ".join(
                        f'"{k}" = {_literal(v)}' for k, v in index.partial.items()
                    )
                cols = ", ".join(f'"{f}"' for f in index.fields)
                conn.execute(
                    f'CREATE {unique}INDEX IF NOT EXISTS "{iname}" ON "{spec.name}" ({cols}){where}'
                )
        for iname in RETIRED_INDEXES:
            conn.execute(f'DROP INDEX IF EXISTS "{iname}"')
        conn.execute(
            "INSERT OR REPLACE INTO meta (key, value) VALUES ('schema_version', ?)",
            (json.dumps(SCHEMA_VERSION),),
        )

    async def close(self) -> None:
        def shut() -> None:
            if self._conn is not None:
                self._conn.close()
                self._conn = None

        await self._worker.run(shut, transactional=False)
        await self._worker.stop()

    async def ping(self) -> None:
        await self._run(lambda conn: conn.execute("SELECT 1").fetchone())

    # -- operations -----------------------------------------------------------------

    def _insert_sql(self, coll: str) -> str:
        cols = self._columns(coll)
        names = ", ".join(["_id", "doc", *(f'"{c}"' for c in cols)])
        marks = ",".join("?" * (len(cols) + 2))
        return f'INSERT INTO "{coll}" ({names}) VALUES ({marks})'

    async def insert(self, coll: str, doc: Doc) -> None:
        sql, row = self._insert_sql(coll), self._row(coll, doc)
        await self._run(lambda conn: conn.execute(sql, row))

    async def insert_many(self, coll: str, docs: Sequence[Doc]) -> None:
        if not docs:
            return
        sql = self._insert_sql(coll)
        rows = [self._row(coll, d) for d in docs]
        await self._run(lambda conn: conn.executemany(sql, rows))

    def _select(
        self, coll: str, flt: Filter, sort: Sort | None, limit: int | None, skip: int = 0
    ) -> tuple[str, list[Any]]:
        where, params = self._where(coll, flt)
        sql = f'SELECT doc FROM "{coll}" WHERE {where}'
        if sort:
            allowed = self._columns(coll)
            for name, _ in sort:
                if name != "_id" and name not in allowed:
                    raise ValueError(f"cannot sort on {coll}.{name}")
            sql += " ORDER BY " + ", ".join(f'"{n}" {"ASC" if d >= 0 else "DESC"}' for n, d in sort)
        if limit is not None or skip:
            sql += f" LIMIT {int(limit) if limit is not None else -1}"
        if skip:
            sql += f" OFFSET {int(skip)}"
        return sql, params

    async def find_one(self, coll: str, flt: Filter) -> Doc | None:
        sql, params = self._select(coll, flt, None, 1)
        row = await self._run(lambda conn: conn.execute(sql, params).fetchone())
        return loads(row[0]) if row else None

    async def find(
        self,
        coll: str,
        flt: Filter,
        *,
        sort: Sort | None = None,
        limit: int | None = None,
        skip: int = 0,
    ) -> list[Doc]:
        sql, params = self._select(coll, flt, sort, limit, skip)
        rows = await self._run(lambda conn: conn.execute(sql, params).fetchall())
        return [loads(r[0]) for r in rows]

    async def scan(
        self, coll: str, flt: Filter, fields: Sequence[str], *, batch: int = 2000
    ) -> AsyncIterator[list[tuple[Any, ...]]]:
        for name in fields:
            if not _FIELD_NAME.fullmatch(name):
                raise ValueError(f"cannot scan {coll}.{name}")
        where, params = self._where(coll, flt)
        # With two or more paths json_extract answers one JSON array: one parse per row.
        # Pages walk the table once in its own (rowid) order: an index on the filter would
        # make every page sort all matching rows again.
        paths = ", ".join(f"'$.{name}'" for name in ("_id", *fields))
        sql = (
            f'SELECT rowid, json_extract(doc, {paths}) FROM "{coll}" NOT INDEXED '
            f"WHERE rowid > ? AND ({where}) ORDER BY rowid LIMIT {int(batch)}"
        )
        last = 0
        while True:
            args = [last, *params]

            def page(conn: sqlite3.Connection, args: list[Any] = args) -> list[Any]:
                return conn.execute(sql, args).fetchall()

            rows = await self._run(page)
            if not rows:
                return
            yield [tuple(loads(values)) for _, values in rows]
            if len(rows) < batch:
                return
            last = rows[-1][0]

    async def count(self, coll: str, flt: Filter) -> int:
        where, params = self._where(coll, flt)
        sql = f'SELECT COUNT(*) FROM "{coll}" WHERE {where}'
        row = await self._run(lambda conn: conn.execute(sql, params).fetchone())
        return int(row[0])

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
        allowed = self._columns(coll)
        for name in (group_by, start, end):
            if name not in allowed:
                raise ValueError(f"{coll}.{name} is not a declared field")
        where, params = self._where(coll, flt)
        stop = f'COALESCE("{end}", ?)'
        # Whole seconds from the epoch plus the six fractional digits, in integers: exact
        # where julianday() arithmetic would round a boundary the wrong way.
        micros = (
            f"(CAST(strftime('%s', {stop}) AS INTEGER)"
            f" - CAST(strftime('%s', \"{start}\") AS INTEGER)) * 1000000"
            f" + CAST(substr({stop}, 21, 6) AS INTEGER)"
            f' - CAST(substr("{start}", 21, 6) AS INTEGER)'
        )
        sql = (
            f'SELECT "{group_by}", SUM(MAX(0, ({micros}) / 1000000)) FROM "{coll}"'
            f' WHERE {where} GROUP BY "{group_by}"'
        )
        args = [until, until, *params]
        rows = await self._run(lambda conn: conn.execute(sql, args).fetchall())
        return {row[0]: int(row[1]) for row in rows}

    def _apply(
        self,
        conn: sqlite3.Connection,
        coll: str,
        doc: Doc,
        set_: Mapping[str, Any] | None,
        inc: Mapping[str, int] | None,
    ) -> Doc:
        new = dict(doc)
        if set_:
            new.update(set_)
        for key, step in (inc or {}).items():
            new[key] = int(new.get(key) or 0) + step
        # Only the columns whose value changes are written: SQLite rewrites the entries of
        # every index on a column named in SET, changed or not.
        cols = [c for c in self._columns(coll) if new.get(c) != doc.get(c)]
        assignments = ", ".join(["doc = ?", *(f'"{c}" = ?' for c in cols)])
        conn.execute(
            f'UPDATE "{coll}" SET {assignments} WHERE _id = ?',
            [dumps_str(new), *(new.get(c) for c in cols), new["_id"]],
        )
        return new

    async def update_one(
        self,
        coll: str,
        flt: Filter,
        set_: Mapping[str, Any] | None = None,
        *,
        inc: Mapping[str, int] | None = None,
        return_doc: ReturnDoc = "after",
    ) -> Doc | None:
        sql, params = self._select(coll, flt, None, 1)

        def job(conn: sqlite3.Connection) -> Doc | None:
            row = conn.execute(sql, params).fetchone()
            if row is None:
                return None
            before: Doc = loads(row[0])
            after = self._apply(conn, coll, before, set_, inc)
            return before if return_doc == "before" else after

        return await self._run(job)

    async def update_one_and_insert(
        self, coll: str, flt: Filter, set_: Mapping[str, Any], doc: Doc
    ) -> Doc | None:
        sql, params = self._select(coll, flt, None, 1)
        insert_sql, row = self._insert_sql(coll), self._row(coll, doc)

        def job(conn: sqlite3.Connection) -> Doc | None:
            found = conn.execute(sql, params).fetchone()
            before: Doc | None = loads(found[0]) if found else None
            if before is not None:
                self._apply(conn, coll, before, set_, None)
            conn.execute(insert_sql, row)
            return before

        return await self._run(job)

    async def update_many(self, coll: str, flt: Filter, set_: Mapping[str, Any]) -> int:
        sql, params = self._select(coll, flt, None, None)

        def job(conn: sqlite3.Connection) -> int:
            rows = conn.execute(sql, params).fetchall()
            for row in rows:
                self._apply(conn, coll, loads(row[0]), set_, None)
            return len(rows)

        return await self._run(job)

    async def bulk_set(self, coll: str, updates: Sequence[tuple[str, Mapping[str, Any]]]) -> None:
        if not updates:
            return
        by_id = dict(updates)
        ids = list(by_id)

        def job(conn: sqlite3.Connection) -> None:
            cols = self._columns(coll)
            assignments = ", ".join(["doc = ?", *(f'"{c}" = ?' for c in cols)])
            sql = f'UPDATE "{coll}" SET {assignments} WHERE _id = ?'
            rows: list[list[Any]] = []
            for start in range(0, len(ids), 900):
                chunk = ids[start : start + 900]
                marks = ",".join("?" * len(chunk))
                for (raw,) in conn.execute(
                    f'SELECT doc FROM "{coll}" WHERE _id IN ({marks})', chunk
                ):
                    doc = loads(raw)
                    doc.update(by_id[doc["_id"]])
                    rows.append([dumps_str(doc), *(doc.get(c) for c in cols), doc["_id"]])
            conn.executemany(sql, rows)

        await self._run(job)

    async def delete_many(self, coll: str, flt: Filter) -> int:
        where, params = self._where(coll, flt)
        sql = f'DELETE FROM "{coll}" WHERE {where}'
        return await self._run(lambda conn: conn.execute(sql, params).rowcount)

    async def meta_get(self, key: str) -> Any:
        row = await self._run(
            lambda conn: conn.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        )
        return json.loads(row[0]) if row else None

    async def meta_set(self, key: str, value: Any) -> None:
        payload = json.dumps(value)
        await self._run(
            lambda conn: conn.execute(
                "INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", (key, payload)
            )
        )

    # -- reports --------------------------------------------------------------------

    async def entry_totals(self, rng: EntryRange, keys: Sequence[GroupKey]) -> Totals:
        if not sqlite_reports.by_user(keys):
            sql, params = sqlite_reports.totals_sql(rng, keys)
            rows = await self._run(lambda conn: conn.execute(sql, params).fetchall())
            return [(tuple(row[:-1]), int(row[-1] or 0)) for row in rows]
        inside, inside_params = sqlite_reports.totals_sql(
            rng, keys, (sqlite_reports.INSIDE_OF_USER,), sqlite_reports.CLIPPED_STARTS[:1]
        )
        before, before_params = sqlite_reports.totals_sql(
            rng, keys, sqlite_reports.PARTS[1:], sqlite_reports.CLIPPED_STARTS[1:]
        )
        user_ids = rng.user_ids

        def read(conn: sqlite3.Connection) -> dict[tuple[Any, ...], int]:
            users = user_ids
            if users is None:
                users = tuple(
                    row[0] for row in conn.execute(sqlite_reports.USERS_WITH_ENTRIES, inside_params)
                )
            sums: dict[tuple[Any, ...], int] = {}
            for user in users:
                for row in conn.execute(inside, {**inside_params, "one_user": user}):
                    sums[tuple(row[:-1])] = int(row[-1] or 0)
            # A user's entries that began before the range may share a day with theirs
            # inside it: add rather than set.
            for row in conn.execute(before, before_params):
                key = tuple(row[:-1])
                sums[key] = sums.get(key, 0) + int(row[-1] or 0)
            return sums

        return list((await self._run(read)).items())

    async def entry_rows(self, rng: EntryRange, batch: int = 1000) -> AsyncIterator[list[Doc]]:
        # Entries that started before the range come first: they precede every entry that
        # starts inside it. Each batch is its own short job, so a long export never holds
        # the database thread.
        for parts in sqlite_reports.ROW_PHASES:
            sql, params = sqlite_reports.rows_sql(rng, parts, batch)
            params.update(after_start="", after_id="")
            while True:
                args = dict(params)

                def fetch(
                    conn: sqlite3.Connection, sql: str = sql, args: dict[str, Any] = args
                ) -> Any:
                    return conn.execute(sql, args).fetchall()

                rows = await self._run(fetch)
                if rows:
                    yield [loads(row[0]) for row in rows]
                if len(rows) < batch:
                    break
                params.update(after_start=rows[-1][1], after_id=rows[-1][2])
