"""Replayed clicks: ``at`` on timer start and stop, and Idempotency-Keys that survive a
crash between the write and the answer (API.md, "Timer and entries")."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from server.keys import SERVICES
from tests.api.test_timer import overlapping, setup_tasks
from tests.conftest import Api


def ago(**delta: float) -> str:
    return (datetime.now(UTC) - timedelta(**delta)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


async def entries_of(user: Api) -> list[dict[str, Any]]:
    status, body = await user.get("/api/v1/entries?limit=500")
    assert status == 200
    items: list[dict[str, Any]] = body["items"]
    return items


async def test_start_and_stop_at_the_clicks_time(admin: Api) -> None:
    user, _, ids = await setup_tasks(admin)
    t1, t2, t3 = ago(minutes=30), ago(minutes=20), ago(minutes=10)
    status, first = await user.post("/api/v1/timer/start", {"task_id": ids["A"], "at": t1})
    assert status == 201 and first["running"]["start"] == t1
    # A replayed start stops the running entry at its own time.
    status, second = await user.post("/api/v1/timer/start", {"task_id": ids["B"], "at": t2})
    assert status == 201
    assert second["stopped"]["id"] == first["running"]["id"] and second["stopped"]["end"] == t2
    assert second["running"]["start"] == t2
    status, stopped = await user.post("/api/v1/timer/stop", {"at": t3})
    assert status == 200 and stopped["stopped"]["end"] == t3
    assert stopped["stopped"]["duration_s"] == 600
    # Nothing runs: a replayed stop changes nothing.
    assert await user.post("/api/v1/timer/stop", {"at": ago(minutes=5)}) == (200, {"stopped": None})
    items = await entries_of(user)
    assert [(e["start"], e["end"]) for e in items] == [(t1, t2), (t2, t3)]
    assert not overlapping(items)


@pytest.mark.parametrize(
    ("when", "why"),
    [
        ({"minutes": -5}, "in the future"),
        ({"hours": 24, "minutes": 1}, "older than a day"),
    ],
)
async def test_at_outside_the_last_day_is_refused(
    admin: Api, when: dict[str, float], why: str
) -> None:
    user, _, ids = await setup_tasks(admin)
    for path, body in [
        ("/api/v1/timer/start", {"task_id": ids["A"], "at": ago(**when)}),
        ("/api/v1/timer/stop", {"at": ago(**when)}),
    ]:
        if path.endswith("stop"):
            await user.post("/api/v1/timer/start", {"task_id": ids["A"], "at": ago(hours=23)})
        status, problem = await user.post(path, body)
        assert status == 400, (why, problem)
        assert problem["code"] == "invalid_time" and problem["errors"][0]["field"] == "at"
    # The refused stop left the entry running.
    _, timer = await user.get("/api/v1/timer")
    assert timer["running"] is not None and timer["running"]["end"] is None


async def test_at_must_not_reach_into_earlier_entries(admin: Api) -> None:
    user, _, ids = await setup_tasks(admin)
    status, _ = await user.post(
        "/api/v1/entries", {"task_id": ids["A"], "start": ago(hours=2), "end": ago(hours=1)}
    )
    assert status == 201
    # Start: not before the end of the latest entry.
    status, problem = await user.post(
        "/api/v1/timer/start", {"task_id": ids["B"], "at": ago(hours=1, minutes=30)}
    )
    assert status == 400 and problem["code"] == "invalid_time"
    started_at = ago(minutes=50)
    status, started = await user.post(
        "/api/v1/timer/start", {"task_id": ids["B"], "at": started_at}
    )
    assert status == 201 and started["running"]["start"] == started_at
    # A start or stop at or before the running entry's start would reverse it.
    for path, extra in [("/api/v1/timer/start", {"task_id": ids["A"]}), ("/api/v1/timer/stop", {})]:
        for at in (started_at, ago(minutes=55)):
            status, problem = await user.post(path, {**extra, "at": at})
            assert status == 400 and problem["code"] == "invalid_time", (path, at)
    _, timer = await user.get("/api/v1/timer")
    assert timer["running"]["id"] == started["running"]["id"]
    assert not overlapping(await entries_of(user))


async def test_replays_with_the_same_key_never_add_an_entry(admin: Api) -> None:
    user, _, ids = await setup_tasks(admin)
    t1, t2 = ago(minutes=40), ago(minutes=30)
    start = {"task_id": ids["A"], "at": t1}
    status, first = await user.post("/api/v1/timer/start", start, headers={"Idempotency-Key": "s1"})
    assert status == 201
    status, stop = await user.post(
        "/api/v1/timer/stop", {"at": t2}, headers={"Idempotency-Key": "p1"}
    )
    assert status == 200 and stop["stopped"]["end"] == t2
    # The user works on, online.
    status, online = await user.post("/api/v1/timer/start", {"task_id": ids["B"]})
    assert status == 201
    # The queue is replayed a second time: the first answers come back, nothing changes,
    # even though `at` would no longer be accepted for a new start or stop.
    status, again = await user.post("/api/v1/timer/start", start, headers={"Idempotency-Key": "s1"})
    assert status == 201 and again["running"]["id"] == first["running"]["id"]
    assert again["running"]["start"] == t1
    status, stop_again = await user.post(
        "/api/v1/timer/stop", {"at": t2}, headers={"Idempotency-Key": "p1"}
    )
    assert status == 200 and stop_again["stopped"]["id"] == first["running"]["id"]
    _, timer = await user.get("/api/v1/timer")
    assert timer["running"]["id"] == online["running"]["id"]
    items = await entries_of(user)
    assert len(items) == 2 and not overlapping(items)
    # A key belongs to its user: another user's identical key starts their own entry.
    other, other_doc = await admin.new_user("other-replay@example.com")
    await admin.put(
        f"/api/v1/tasks/{ids['Project']}/members/{other_doc['id']}", {"role": "regular"}
    )
    status, theirs = await other.post(
        "/api/v1/timer/start", {"task_id": ids["A"]}, headers={"Idempotency-Key": "s1"}
    )
    assert status == 201 and theirs["running"]["id"] != first["running"]["id"]


async def test_a_replay_answers_with_what_the_start_stopped(admin: Api) -> None:
    user, _, ids = await setup_tasks(admin)
    _, first = await user.post("/api/v1/timer/start", {"task_id": ids["A"], "at": ago(minutes=9)})
    key = {"Idempotency-Key": "switch-1"}
    body = {"task_id": ids["B"], "at": ago(minutes=5)}
    status, switched = await user.post("/api/v1/timer/start", body, headers=key)
    assert status == 201 and switched["stopped"]["id"] == first["running"]["id"]
    status, replay = await user.post("/api/v1/timer/start", body, headers=key)
    assert status == 201
    assert replay["running"] == {
        **switched["running"],
        "duration_s": replay["running"]["duration_s"],
    }
    assert replay["stopped"]["id"] == first["running"]["id"]
    assert replay["stopped"]["end"] == switched["stopped"]["end"]


async def test_a_start_whose_answer_was_lost_is_returned_on_retry(
    admin: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The server dies after writing the entry and before answering: the retry with the
    same key gets that entry (no 409, no second entry)."""
    user, _, ids = await setup_tasks(admin)
    timer = admin.client.app[SERVICES].timer

    async def die(*_: Any, **__: Any) -> None:
        raise RuntimeError("the process died here")

    key = {"Idempotency-Key": "lost-answer"}
    with monkeypatch.context() as patch:
        patch.setattr(timer, "_stopped", die)
        status, _ = await user.post("/api/v1/timer/start", {"task_id": ids["A"]}, headers=key)
        assert status == 500
    status, retry = await user.post("/api/v1/timer/start", {"task_id": ids["A"]}, headers=key)
    assert status == 201 and retry["replayed"] is True
    items = await entries_of(user)
    assert [e["id"] for e in items] == [retry["running"]["id"]]


async def test_a_start_that_died_before_writing_is_created_on_retry(
    admin: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    user, _, ids = await setup_tasks(admin)
    backend = admin.client.app[SERVICES].backend

    async def die(*_: Any, **__: Any) -> None:
        raise RuntimeError("the process died here")

    key = {"Idempotency-Key": "never-written"}
    with monkeypatch.context() as patch:
        patch.setattr(backend, "update_one_and_insert", die)
        status, _ = await user.post("/api/v1/timer/start", {"task_id": ids["A"]}, headers=key)
        assert status == 500
    assert await entries_of(user) == []
    status, retry = await user.post("/api/v1/timer/start", {"task_id": ids["A"]}, headers=key)
    assert status == 201 and "replayed" not in retry
    status, replay = await user.post("/api/v1/timer/start", {"task_id": ids["A"]}, headers=key)
    assert status == 201 and replay["running"]["id"] == retry["running"]["id"]
    assert len(await entries_of(user)) == 1
