"""SQL for the report queries of the SQLite adapter.

The range is read as three disjoint parts so that each one is an index range:
entries starting inside it (``ix_entries_account_id_start_end_user_id_task_id``, which
covers every column a summary needs), finished entries that started before it and end
inside or after it (``ix_entries_account_id_end_start``), and running entries that
started before it. Local days come from the range's ``DayGrid`` as two small ``CASE``
expressions (see ``server.domain.localdays``); an entry crossing local midnight is split
by a recursive CTE that only the crossing entries enter (see ``totals_sql``).
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from typing import Any

from ..domain.localdays import DAY_S, DayGrid
from ..jsonutil import dumps_str
from .base import EntryRange, GroupKey


def seconds_of(column: str) -> str:
    # The first 19 characters: whole seconds, cut rather than rounded (strftime rounds
    # fractions to milliseconds first).
    return f"CAST(strftime('%s', substr({column}, 1, 19)) AS INTEGER)"


def _case(var: str, pieces: Sequence[tuple[int, int]]) -> str:
    """``value(var)`` of a piecewise constant function given as (from, value) pieces."""
    if len(pieces) == 1:
        return str(int(pieces[0][1]))
    whens = " ".join(
        f"WHEN {var} < {int(since)} THEN {int(prev)}"
        for (_, prev), (since, _) in itertools.pairwise(pieces)
    )
    return f"(CASE {whens} ELSE {int(pieces[-1][1])} END)"


def day_of(var: str, grid: DayGrid) -> str:
    return f"(({var} + {_case(var, grid.shifts)}) / {DAY_S} - {grid.epoch_day0})"


def midnight(var: str, grid: DayGrid) -> str:
    return f"(({grid.epoch_day0} + {var}) * {DAY_S} - {_case(var, grid.midnight_shifts)})"


def filters(rng: EntryRange, params: dict[str, Any]) -> str:
    """Conditions besides the range, as named parameters (shared by every part)."""
    parts = ["account_id = :account_id"]
    params["account_id"] = rng.account_id
    if rng.user_ids is not None:
        parts.append("user_id IN (SELECT value FROM json_each(:user_ids))")
        params["user_ids"] = dumps_str(list(rng.user_ids))
    if rng.task_ids is not None:
        parts.append("task_id IN (SELECT value FROM json_each(:task_ids))")
        params["task_ids"] = dumps_str(list(rng.task_ids))
    if rng.tag is not None:
        parts.append("EXISTS (SELECT 1 FROM json_each(entries.doc, '$.tags') WHERE value = :tag)")
        params["tag"] = rng.tag
    if rng.own_user is not None:
        params["own_user"] = rng.own_user
        if rng.managed_tasks:
            parts.append(
                "(user_id = :own_user OR task_id IN (SELECT value FROM json_each(:managed)))"
            )
            params["managed"] = dumps_str(list(rng.managed_tasks))
        else:
            parts.append("user_id = :own_user")
    return " AND ".join(parts)


# The three disjoint parts of "overlaps [lo, hi)", each with the index that makes it a
# range (named as ``SQLiteBackend._migrate`` names the indexes of ``specs.ENTRIES``). The
# planner is told which one: without statistics it may pick the start index for "started
# before the range", which reads the whole history before it.
START_INDEX = "ix_entries_account_id_start_start_s_end_s_user_id_task_id"
END_INDEX = "ix_entries_account_id_end_start_start_s_end_s_user_id_task_id"
INSIDE = ("start >= :lo_iso AND start < :hi_iso", START_INDEX)
CROSSING = ('start < :lo_iso AND "end" > :lo_iso', END_INDEX)
RUNNING_BEFORE = ('start < :lo_iso AND "end" IS NULL', END_INDEX)
PARTS = (INSIDE, CROSSING, RUNNING_BEFORE)
# The start of each part's entries clipped to the range, ``MAX(start_s, :lo)``, which
# each part's condition already decides (the subqueries are flattened, so an expression
# for ``s`` is evaluated at every use).
CLIPPED_STARTS = ("start_s", ":lo", ":lo")
# A report grouped by user and day reads the entries starting inside the range one user
# at a time (``:one_user``) from the per-user index, where each read's GROUP BY sorts one
# user's few thousand days instead of every entry by a text key (the one big sort of the
# whole-account query); the entries that began before the range are few and read once.
USER_INDEX = "ix_entries_account_id_user_id_start_start_s_end_s_task_id"
INSIDE_OF_USER = ("user_id = :one_user AND start >= :lo_iso AND start < :hi_iso", USER_INDEX)
# Every user with entries in the account, one index seek each (a skip scan).
USERS_WITH_ENTRIES = (
    "WITH RECURSIVE u(id) AS ("
    f"SELECT MIN(user_id) FROM entries INDEXED BY {USER_INDEX} WHERE account_id = :account_id"
    f" UNION ALL SELECT (SELECT MIN(user_id) FROM entries INDEXED BY {USER_INDEX}"
    " WHERE account_id = :account_id AND user_id > u.id) FROM u WHERE u.id IS NOT NULL"
    ") SELECT id FROM u WHERE id IS NOT NULL"
)
# The row phases of an export, in start order: what began before the range, then the rest.
ROW_PHASES = ((CROSSING, RUNNING_BEFORE), (INSIDE,))


def range_params(rng: EntryRange, params: dict[str, Any]) -> None:
    params.update(lo_iso=rng.lo_iso, hi_iso=rng.hi_iso, lo=rng.lo, hi=rng.hi, now=rng.now)


_KEY_COLUMNS = {"task": "task_id", "user": "user_id", "tag": "tag", "day": "d"}


def by_user(keys: Sequence[GroupKey]) -> bool:
    """Whether a summary is read user by user (see ``INSIDE_OF_USER``)."""
    return "user" in keys and "day" in keys and "tag" not in keys


def totals_sql(
    rng: EntryRange,
    keys: Sequence[GroupKey],
    parts: Sequence[tuple[str, str]] = PARTS,
    starts: Sequence[str] = CLIPPED_STARTS,
) -> tuple[str, dict[str, Any]]:
    """Grouped seconds of the entries of ``parts`` (their clipped starts ``starts``)."""
    params: dict[str, Any] = {}
    where = filters(rng, params)
    range_params(rng, params)
    with_tag = "tag" in keys
    cols = "user_id, task_id, _id, t.value AS tag" if with_tag else "user_id, task_id"
    # With tags: one row per tag of an entry (none: one row with NULL).
    tags = " LEFT JOIN json_each(entries.doc, '$.tags') AS t" if with_tag else ""
    # start_s, end_s: the generated columns of specs.ENTRIES (read from the index).
    end = "MIN(COALESCE(end_s, :now), :hi) AS e"
    # DISTINCT: a tag repeated on one entry still counts once.
    live = "SELECT DISTINCT user_id, task_id, _id, tag, s, e" if with_tag else "SELECT *"
    scans = [
        f"SELECT {cols}, {start} AS s, {end} FROM entries INDEXED BY {index}{tags}"
        f" WHERE {where} AND ({part})"
        for (part, index), start in zip(parts, starts, strict=True)
    ]
    lives = [f"({live} FROM ({scan}) WHERE e > s)" for scan in scans]
    group = ", ".join(_KEY_COLUMNS[k] for k in keys)
    if "day" not in keys:
        # Each part summed on its own (an entry is in one part only), then the sums: the
        # rows of a flat scan are cheaper to aggregate than those coming through a
        # UNION ALL of the three (~15% of a year's summary by task).
        select_group = f"{group}, " if group else ""
        by = f" GROUP BY {group}" if group else ""
        sums = " UNION ALL ".join(
            f"SELECT {select_group}SUM(e - s) AS x FROM {lv}{by}" for lv in lives
        )
        return f"SELECT {select_group}SUM(x) FROM ({sums}){by}", params
    # By day, in one read of each part: every entry is first counted whole on the local
    # day it starts (``firsts``, grouped by the start's day, the one big sort). The
    # groups keep the ends of the entries that may cross a midnight: a cheap test under
    # the zone's narrowest and widest offsets, no CASE per entry. Only those ends are
    # looked at again (``cross``: those going past the group day's midnight), to give
    # back what lies after it and to walk their following days (``rest``).
    grid = rng.grid
    kc = "".join(f"{_KEY_COLUMNS[k]}, " for k in keys if k != "day")
    after = midnight("(d + 1)", grid)
    offsets = [offset for _, offset in grid.shifts]
    # Necessary for day_of(s) < day_of(e - 1), the offsets being within [min, max].
    may_cross = f"(e - 1 + {max(offsets)}) / {DAY_S} > (s + {min(offsets)}) / {DAY_S}"
    ctes = [
        "firsts AS MATERIALIZED ("
        + " UNION ALL ".join(
            f"SELECT {kc}d, SUM(e - s) AS x,"
            f" json_group_array(e) FILTER (WHERE {may_cross}) AS cand"
            f" FROM (SELECT {kc}s, e, {day_of('s', grid)} AS d FROM {lv}) GROUP BY {group}"
            for lv in lives
        )
        + ")",
        f"cross AS MATERIALIZED (SELECT {kc}d, j.value AS e"
        " FROM firsts, json_each(firsts.cand) AS j"
        f" WHERE firsts.cand <> '[]' AND j.value > {after})",
        f"rest({kc}d, e) AS (SELECT {kc}d + 1, e FROM cross"
        f" UNION ALL SELECT {kc}d + 1, e FROM rest WHERE e > {after})",
    ]
    pieces = (
        f"SELECT {kc}d, x FROM firsts UNION ALL SELECT {kc}d, {after} - e FROM cross"
        f" UNION ALL SELECT {kc}d, MIN(e, {after}) - {midnight('d', grid)} FROM rest"
    )
    sql = (
        f"WITH RECURSIVE {', '.join(ctes)} SELECT {group}, SUM(x) FROM ({pieces}) GROUP BY {group}"
    )
    return sql, params


def rows_sql(
    rng: EntryRange, parts: Sequence[tuple[str, str]], limit: int
) -> tuple[str, dict[str, Any]]:
    """One batch of the entries of ``parts`` after the keyset (:after_start, :after_id)."""
    params: dict[str, Any] = {"limit": limit}
    where = filters(rng, params)
    range_params(rng, params)
    sql = " UNION ALL ".join(
        f"SELECT doc, start, _id FROM entries INDEXED BY {index} WHERE {where} AND ({part}) "
        "AND (start > :after_start OR (start = :after_start AND _id > :after_id))"
        for part, index in parts
    )
    return f"{sql} ORDER BY start, _id LIMIT :limit", params
