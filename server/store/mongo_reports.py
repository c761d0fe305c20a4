"""Aggregation pipelines for the report queries of the MongoDB adapter.

The same plan as the SQLite adapter (``sqlite_reports``): the range is matched as three
disjoint parts, each an index range (``account_id, start, …`` for entries starting in
the range, ``account_id, end, start`` for entries reaching into it from before, and
``end: null`` for running ones); the stored timestamps are cut to whole seconds; local
days come from the range's ``DayGrid`` as ``$switch`` expressions, and an entry crossing
local midnight is unwound into one piece per day with ``$range``.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from typing import Any

from ..domain.localdays import DAY_S, DayGrid
from .base import EntryRange, GroupKey


def seconds_of(field: str) -> dict[str, Any]:
    date = {
        "$dateFromString": {
            "dateString": {"$substrBytes": [field, 0, 19]},
            "format": "%Y-%m-%dT%H:%M:%S",
            "timezone": "UTC",
        }
    }
    return {"$toLong": {"$divide": [{"$toLong": date}, 1000]}}


def _switch(var: Any, pieces: Sequence[tuple[int, int]]) -> Any:
    if len(pieces) == 1:
        return pieces[0][1]
    branches = [
        {"case": {"$lt": [var, since]}, "then": prev}
        for (_, prev), (since, _) in itertools.pairwise(pieces)
    ]
    return {"$switch": {"branches": branches, "default": pieces[-1][1]}}


def day_of(var: Any, grid: DayGrid) -> dict[str, Any]:
    local = {"$add": [var, _switch(var, grid.shifts)]}
    return {"$toInt": {"$subtract": [{"$floor": {"$divide": [local, DAY_S]}}, grid.epoch_day0]}}


def midnight(var: Any, grid: DayGrid) -> dict[str, Any]:
    return {
        "$subtract": [
            {"$multiply": [{"$add": [grid.epoch_day0, var]}, DAY_S]},
            _switch(var, grid.midnight_shifts),
        ]
    }


def _common(rng: EntryRange) -> list[dict[str, Any]]:
    conds: list[dict[str, Any]] = [{"account_id": rng.account_id}]
    if rng.user_ids is not None:
        conds.append({"user_id": {"$in": list(rng.user_ids)}})
    if rng.task_ids is not None:
        conds.append({"task_id": {"$in": list(rng.task_ids)}})
    if rng.tag is not None:
        conds.append({"tags": rng.tag})
    if rng.own_user is not None:
        if rng.managed_tasks:
            conds.append(
                {
                    "$or": [
                        {"user_id": rng.own_user},
                        {"task_id": {"$in": list(rng.managed_tasks)}},
                    ]
                }
            )
        else:
            conds.append({"user_id": rng.own_user})
    return conds


def inside(rng: EntryRange) -> dict[str, Any]:
    return {"$and": [*_common(rng), {"start": {"$gte": rng.lo_iso, "$lt": rng.hi_iso}}]}


def before(rng: EntryRange) -> dict[str, Any]:
    """Entries that started before the range and reach into it (running ones too)."""
    return {
        "$and": [
            *_common(rng),
            {"start": {"$lt": rng.lo_iso}},
            {"$or": [{"end": {"$gt": rng.lo_iso}}, {"end": None}]},
        ]
    }


def overlapping(rng: EntryRange) -> dict[str, Any]:
    common = _common(rng)
    return {
        "$or": [
            {"$and": [*common, {"start": {"$gte": rng.lo_iso, "$lt": rng.hi_iso}}]},
            {"$and": [*common, {"start": {"$lt": rng.lo_iso}}, {"end": {"$gt": rng.lo_iso}}]},
            {"$and": [*common, {"start": {"$lt": rng.lo_iso}}, {"end": None}]},
        ]
    }


_KEY_FIELDS = {"task": "$task_id", "user": "$user_id", "tag": "$tag", "day": "$d"}


def totals_pipeline(rng: EntryRange, keys: Sequence[GroupKey]) -> list[dict[str, Any]]:
    end = {"$cond": [{"$eq": [{"$ifNull": ["$end", None]}, None]}, rng.now, seconds_of("$end")]}
    project: dict[str, Any] = {
        "_id": 0,
        "user_id": 1,
        "task_id": 1,
        "s": {"$max": [seconds_of("$start"), rng.lo]},
        "e": {"$min": [end, rng.hi]},
    }
    if "tag" in keys:
        # A repeated tag counts once; an entry without tags counts under null.
        project["tag"] = {"$setUnion": [{"$ifNull": ["$tags", []]}, []]}
    pipeline: list[dict[str, Any]] = [
        {"$match": overlapping(rng)},
        {"$project": project},
        {"$match": {"$expr": {"$gt": ["$e", "$s"]}}},
    ]
    if "tag" in keys:
        pipeline.append({"$unwind": {"path": "$tag", "preserveNullAndEmptyArrays": True}})
    if "day" in keys:
        grid = rng.grid
        pipeline += [
            {
                "$addFields": {
                    "ds": day_of("$s", grid),
                    "de": day_of({"$subtract": ["$e", 1]}, grid),
                }
            },
            {"$addFields": {"d": {"$range": ["$ds", {"$add": ["$de", 1]}]}}},
            {"$unwind": "$d"},
            {
                "$addFields": {
                    "x": {
                        "$subtract": [
                            {"$min": ["$e", midnight({"$add": ["$d", 1]}, grid)]},
                            {"$max": ["$s", midnight("$d", grid)]},
                        ]
                    }
                }
            },
        ]
    else:
        pipeline.append({"$addFields": {"x": {"$subtract": ["$e", "$s"]}}})
    group_id: Any = {k: {"$ifNull": [_KEY_FIELDS[k], None]} for k in keys} if keys else None
    pipeline.append({"$group": {"_id": group_id, "x": {"$sum": "$x"}}})
    return pipeline
