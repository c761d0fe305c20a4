"""Reports: summary totals in local days (DST days of Europe/Warsaw, an entry across
midnight), grouping, filters, who sees what, bad input, and the CSV / XLSX exports whose
rows add up to the summary. Every test runs on SQLite and on MongoDB over the wire."""

from __future__ import annotations

import asyncio
import csv
import io
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlencode
from zoneinfo import ZoneInfo

import aiohttp
import openpyxl

from server.keys import SERVICES
from server.services.principal import Principal
from tests.conftest import Api

WARSAW = "Europe/Warsaw"
SEP = " \u203a "
HEADER = [
    "date",
    "start",
    "end",
    "duration_h",
    "duration",
    "user",
    "email",
    "task",
    "service",
    "external_id",
    "note",
    "tags",
]


@dataclass
class Team:
    admin: Api
    alice: Api  # manager of Client
    bob: Api  # regular on Client
    carol: Api  # regular on Internal
    users: dict[str, dict[str, Any]]
    tasks: dict[str, str]
    entries: dict[str, dict[str, Any]]
    account_id: str


async def entry(api: Api, task_id: str | None, start: str, end: str, **extra: Any) -> Any:
    status, body = await api.post(
        "/api/v1/entries", {"task_id": task_id, "start": start, "end": end, **extra}
    )
    assert status == 201, body
    return body


async def make_team(admin: Api) -> Team:
    tasks: dict[str, str] = {}
    for name, parent in [
        ("Client", None),
        ("Website", "Client"),
        ("Launch", "Website"),
        ("Other", "Client"),
        ("Internal", None),
    ]:
        status, task = await admin.post(
            "/api/v1/tasks", {"name": name, "parent_id": tasks.get(parent) if parent else None}
        )
        assert status == 201, task
        tasks[name] = task["id"]
    alice, alice_doc = await admin.new_user("alice@example.com")
    bob, bob_doc = await admin.new_user("bob@example.com")
    carol, carol_doc = await admin.new_user("carol@example.com")
    for user, task, role in [
        (alice_doc, "Client", "manager"),
        (bob_doc, "Client", "regular"),
        (carol_doc, "Internal", "regular"),
    ]:
        status, _ = await admin.put(
            f"/api/v1/tasks/{tasks[task]}/members/{user['id']}", {"role": role}
        )
        assert status == 200
    entries = {
        # Warsaw: 22:30 -> 01:30 across the midnight before the spring change (all +01:00).
        "late": await entry(
            bob,
            tasks["Launch"],
            "2026-03-28T22:30:00+01:00",
            "2026-03-29T01:30:00+01:00",
            tags=["billable", "x"],
            note='=HYPERLINK("http://evil")',
        ),
        # 01:00 +01:00 -> 04:00 +02:00: three hours on the clock, two real hours.
        "spring": await entry(
            alice,
            tasks["Website"],
            "2026-03-29T01:00:00+01:00",
            "2026-03-29T04:00:00+02:00",
            tags=["billable"],
        ),
        # The whole 23-hour day 2026-03-29.
        "short_day": await entry(
            carol, tasks["Internal"], "2026-03-29T00:00:00+01:00", "2026-03-30T00:00:00+02:00"
        ),
        # 2026-10-24 22:00 -> 2026-10-26 02:00: 2 h, the whole 25-hour day, 2 h.
        "long_day": await entry(
            alice,
            tasks["Other"],
            "2026-10-24T22:00:00+02:00",
            "2026-10-26T02:00:00+01:00",
            tags=["-leading"],
        ),
        # 01:00 +02:00 -> 04:00 +01:00 on the day the clocks go back: four real hours.
        "fall": await entry(
            carol, tasks["Internal"], "2026-10-25T01:00:00+02:00", "2026-10-25T04:00:00+01:00"
        ),
    }
    _, me = await admin.get("/api/v1/me")
    return Team(
        admin,
        alice,
        bob,
        carol,
        {"alice": alice_doc, "bob": bob_doc, "carol": carol_doc},
        tasks,
        entries,
        me["account_id"],
    )


def url(path: str, **params: Any) -> str:
    pairs: list[tuple[str, str]] = []
    for key, value in params.items():
        name = "from" if key == "from_" else key
        for item in value if isinstance(value, list) else [value]:
            pairs.append((name, str(item)))
    return f"/api/v1/reports/{path}?{urlencode(pairs)}"


async def summary(api: Api, **params: Any) -> dict[str, Any]:
    params.setdefault("tz", WARSAW)
    status, body = await api.get(url("summary", **params))
    assert status == 200, body
    return body


def totals(report: dict[str, Any]) -> dict[Any, int]:
    return {g["key"]: g["total_s"] for g in report["groups"]}


async def download(api: Api, kind: str, **params: Any) -> tuple[Any, bytes]:
    params.setdefault("tz", WARSAW)
    response = await api.client.get(
        url(f"entries.{kind}", **params), headers={"Authorization": f"Bearer {api.token}"}
    )
    return response, await response.read()


def csv_rows(body: bytes) -> list[dict[str, str]]:
    text = body.decode("utf-8")
    reader = csv.reader(io.StringIO(text, newline=""))
    rows = list(reader)
    assert rows[0] == HEADER
    return [dict(zip(HEADER, row, strict=True)) for row in rows[1:]]


def seconds(hms: str) -> int:
    h, m, s = (int(part) for part in hms.split(":"))
    return h * 3600 + m * 60 + s


# -- summary ------------------------------------------------------------------------


async def test_local_days_daylight_saving_and_midnight_split(admin: Api) -> None:
    team = await make_team(admin)
    by_day = await summary(admin, from_="2026-03-28", to="2026-03-30", group_by="day")
    # 03-28: the late entry's first 1.5 h; 03-29 (23 h long): its last 1.5 h, the spring
    # entry's 2 real hours and the whole short day; 03-30: nothing.
    assert [(g["key"], g["total_s"]) for g in by_day["groups"]] == [
        ("2026-03-28", 5400),
        ("2026-03-29", 5400 + 7200 + 82800),
    ]
    assert by_day["total_s"] == 5400 + 95400
    assert (by_day["from"], by_day["to"], by_day["tz"]) == ("2026-03-28", "2026-03-30", WARSAW)
    # Clipped to the range: one day only.
    one = await summary(admin, from_="2026-03-29", to="2026-03-29", group_by="user")
    assert one["total_s"] == 95400
    assert totals(one) == {
        team.users["carol"]["id"]: 82800,
        team.users["alice"]["id"]: 7200,
        team.users["bob"]["id"]: 5400,
    }
    # The same day in UTC is another slice of time.
    utc = await summary(admin, from_="2026-03-29", to="2026-03-29", tz="UTC")
    assert utc["total_s"] == 1800 + 7200 + 79200
    # The 25-hour day.
    autumn = await summary(admin, from_="2026-10-24", to="2026-10-26", group_by="day")
    assert [(g["key"], g["total_s"]) for g in autumn["groups"]] == [
        ("2026-10-24", 7200),
        ("2026-10-25", 90000 + 14400),
        ("2026-10-26", 7200),
    ]
    # Days are labelled by their date; two levels add up to their parent.
    nested = await summary(admin, from_="2026-03-28", to="2026-10-31", group_by="user,day")
    for group in nested["groups"]:
        assert sum(g["total_s"] for g in group["groups"]) == group["total_s"]
        days = [g["key"] for g in group["groups"]]
        assert days == sorted(days) and all(g["label"] == g["key"] for g in group["groups"])
    assert nested["total_s"] == sum(g["total_s"] for g in nested["groups"])
    alice = next(g for g in nested["groups"] if g["key"] == team.users["alice"]["id"])
    assert alice["label"] == "alice" and alice["total_s"] == 7200 + 7200 + 90000 + 7200


async def test_groups_labels_sorting_tags_and_filters(admin: Api) -> None:
    team = await make_team(admin)
    t = team.tasks
    rng = {"from_": "2026-03-01", "to": "2026-10-31"}
    by_task = await summary(admin, **rng)
    assert [(g["key"], g["label"], g["total_s"]) for g in by_task["groups"]] == [
        (t["Other"], f"Client{SEP}Other", 104400),
        (t["Internal"], "Internal", 82800 + 14400),
        (t["Launch"], f"Client{SEP}Website{SEP}Launch", 10800),
        (t["Website"], f"Client{SEP}Website", 7200),
    ]
    assert "groups" not in by_task["groups"][0]
    grand = sum(g["total_s"] for g in by_task["groups"])
    assert by_task["total_s"] == grand
    # Tags: each tag counts the entry, the total counts it once.
    by_tag = await summary(admin, **rng, group_by="tag")
    assert totals(by_tag) == {
        "billable": 10800 + 7200,
        None: 82800 + 14400,
        "-leading": 104400,
        "x": 10800,
    }
    assert by_tag["total_s"] == grand
    assert next(g for g in by_tag["groups"] if g["key"] is None)["label"]
    user_tag = await summary(admin, **rng, group_by="user,tag")
    bob = next(g for g in user_tag["groups"] if g["key"] == team.users["bob"]["id"])
    assert bob["total_s"] == 10800  # once, though in two tags
    assert {g["key"]: g["total_s"] for g in bob["groups"]} == {"billable": 10800, "x": 10800}
    # Filters: a task's subtree, users (repeatable), a tag.
    client = await summary(admin, **rng, task_id=t["Client"])
    assert client["total_s"] == 104400 + 10800 + 7200
    website = await summary(admin, **rng, task_id=t["Website"], group_by="task")
    assert set(totals(website)) == {t["Website"], t["Launch"]}
    two = await summary(
        admin, **rng, user_id=[team.users["bob"]["id"], team.users["carol"]["id"]], group_by="user"
    )
    assert set(totals(two)) == {team.users["bob"]["id"], team.users["carol"]["id"]}
    tagged = await summary(admin, **rng, tag="billable", group_by="user")
    assert tagged["total_s"] == 18000
    # Removed tasks and deactivated users are still reported, with their labels.
    services = admin.client.app[SERVICES]
    await services.backend.update_one("tasks", {"_id": t["Launch"]}, {"removed": True})
    await services.tasks.bump(team.account_id)
    status, _ = await admin.patch(f"/api/v1/users/{team.users['bob']['id']}", {"active": False})
    assert status == 200
    again = await summary(admin, **rng, group_by="user,task")
    bob = next(g for g in again["groups"] if g["key"] == team.users["bob"]["id"])
    assert bob["label"] == "bob" and bob["total_s"] == 10800
    assert bob["groups"][0]["label"] == f"Client{SEP}Website{SEP}Launch"


async def test_pending_entries_and_the_running_timer(admin: Api) -> None:
    team = await make_team(admin)
    today = datetime.now(UTC).date().isoformat()
    status, started = await team.bob.post(
        "/api/v1/timer/start", {"service": "asana", "external_id": "404404"}
    )
    assert status == 201 and started["running"]["task_id"] is None
    began = datetime.fromisoformat(started["running"]["start"].replace("Z", "+00:00"))
    await asyncio.sleep(1.2)
    report = await summary(team.bob, from_=today, to=today, tz="UTC")
    elapsed = (datetime.now(UTC) - began).total_seconds()
    assert [g["key"] for g in report["groups"]] == [None]
    assert 1 <= report["total_s"] <= elapsed + 1
    assert report["groups"][0]["label"]
    # The running entry's row ends now, and the rows add up to the summary.
    _, body = await download(team.bob, "csv", from_=today, to=today, tz="UTC")
    rows = csv_rows(body)
    assert len(rows) == 1 and rows[0]["service"] == "asana" and rows[0]["external_id"] == "404404"
    assert rows[0]["task"] == ""
    assert report["total_s"] <= seconds(rows[0]["duration"]) <= report["total_s"] + 2


async def test_who_sees_what(admin: Api) -> None:
    team = await make_team(admin)
    ids = {name: doc["id"] for name, doc in team.users.items()}
    rng = {"from_": "2026-03-01", "to": "2026-10-31", "group_by": "user"}
    # Admin: everyone.
    assert set(totals(await summary(admin, **rng))) == set(ids.values())
    # A manager of Client: her own time and Bob's (on Client), never Carol's (Internal).
    assert totals(await summary(team.alice, **rng)) == {
        ids["alice"]: 7200 + 104400,
        ids["bob"]: 10800,
    }
    nothing = await summary(team.alice, **rng, user_id=ids["carol"])
    assert nothing["total_s"] == 0 and nothing["groups"] == []
    # A regular user: their own time only; asking for someone else's is refused.
    assert totals(await summary(team.bob, **rng)) == {ids["bob"]: 10800}
    status, problem = await team.bob.get(url("summary", **rng, user_id=ids["carol"]))
    assert status == 403 and problem["code"] == "forbidden"
    response, body = await download(team.bob, "csv", from_="2026-03-01", to="2026-10-31")
    assert response.status == 200
    assert {row["email"] for row in csv_rows(body)} == {"bob@example.com"}
    response, _ = await download(
        team.carol, "xlsx", from_="2026-03-01", to="2026-10-31", user_id=ids["bob"]
    )
    assert response.status == 403
    # Carol, a manager of nothing in Client, sees her entries on it if she tracked there.
    assert set(totals(await summary(team.carol, **rng))) == {ids["carol"]}
    # Another account's task: not found.
    status, problem = await admin.get(url("summary", **rng, task_id="nope"))
    assert status == 404 and problem["code"] == "not_found"


async def test_bad_input_is_a_400_naming_the_field(admin: Api) -> None:
    cases = [
        ({"from_": "2026-03-01", "to": "2026-03-02", "tz": "Mars/Olympus"}, "tz"),
        ({"from_": "2026-03-01", "to": "2026-03-02", "tz": "../../etc/passwd"}, "tz"),
        ({"from_": "2026-3-1", "to": "2026-03-02"}, "from"),
        ({"from_": "2026-02-30", "to": "2026-03-02"}, "from"),
        ({"from_": "2026-03-01", "to": "tomorrow"}, "to"),
        ({"to": "2026-03-02"}, "from"),
        ({"from_": "2026-03-05", "to": "2026-03-02"}, "to"),
        ({"from_": "2025-01-01", "to": "2026-01-02"}, "to"),  # 367 days
        ({"from_": "2026-03-01", "to": "2026-03-02", "group_by": "project"}, "group_by"),
        ({"from_": "2026-03-01", "to": "2026-03-02", "group_by": "task,task"}, "group_by"),
        ({"from_": "2026-03-01", "to": "2026-03-02", "group_by": "task,user,day"}, "group_by"),
        ({"from_": "2026-03-01", "to": "2026-03-02", "group_by": ""}, "group_by"),
    ]
    for params, field in cases:
        for path in ("summary", "entries.csv", "entries.xlsx"):
            if field == "group_by" and path != "summary":
                continue
            response = await admin.client.get(
                url(path, **params), headers={"Authorization": f"Bearer {admin.token}"}
            )
            problem = await response.json(content_type=None)
            assert response.status == 400, (params, path, problem)
            assert response.content_type == "application/problem+json"
            assert problem["code"] == "validation_error"
            assert field in [e["field"] for e in problem["errors"]], (params, problem)
    # The exports take no grouping; 366 days (a leap year) are fine.
    status, problem = await admin.get(
        url("entries.csv", from_="2026-03-01", to="2026-03-02", group_by="task")
    )
    assert status == 400
    leap = await summary(admin, from_="2024-01-01", to="2024-12-31")
    assert leap["total_s"] == 0 and leap["groups"] == []
    assert (await Api(admin.client).get(url("summary", from_="2026-03-01", to="2026-03-02")))[
        0
    ] == 401


async def test_default_zone_is_the_users_time_zone(admin: Api) -> None:
    team = await make_team(admin)
    rng = {"from_": "2026-03-29", "to": "2026-03-29"}
    status, body = await team.alice.get(url("summary", **rng))
    assert status == 200 and body["tz"] == "UTC"  # none set yet
    status, me = await team.alice.patch("/api/v1/me", {"time_zone": WARSAW})
    assert status == 200 and me["time_zone"] == WARSAW
    status, body = await team.alice.get(url("summary", **rng))
    assert status == 200 and body["tz"] == WARSAW
    # Alice's own 2 h spring entry; Bob's late entry from 00:00 local (a manager sees it).
    assert body["total_s"] == 7200 + 5400


# -- exports --------------------------------------------------------------------------


async def test_csv_rows_add_up_to_the_summary(admin: Api) -> None:
    team = await make_team(admin)
    rng = {"from_": "2026-03-29", "to": "2026-10-25"}
    report = await summary(admin, **rng)
    response, body = await download(admin, "csv", **rng)
    assert response.status == 200
    assert response.headers["Content-Type"] == "text/csv; charset=utf-8"
    disposition = response.headers["Content-Disposition"]
    assert disposition.startswith("attachment;") and "2026-03-29" in disposition
    assert "2026-10-25" in disposition and disposition.endswith('.csv"')
    assert body.count(b"\r\n") == 6  # RFC 4180 line ends: header + five rows
    rows = csv_rows(body)
    assert sum(seconds(r["duration"]) for r in rows) == report["total_s"]
    assert round(sum(float(r["duration_h"]) for r in rows) * 3600) == report["total_s"]
    # Start order, clipped to the range, local times.
    assert [r["start"] for r in rows] == sorted(r["start"] for r in rows)
    late = rows[0]
    assert (late["date"], late["start"], late["end"]) == (
        "2026-03-29",
        "2026-03-29 00:00:00",
        "2026-03-29 01:30:00",
    )
    assert late["duration"] == "1:30:00" and late["duration_h"] == "1.500000"
    assert late["user"] == "bob" and late["email"] == "bob@example.com"
    assert late["task"] == f"Client{SEP}Website{SEP}Launch" and late["tags"] == "billable, x"
    # A cell a spreadsheet would run as a formula is defused.
    assert late["note"] == '\'=HYPERLINK("http://evil")'
    # Then the 23-hour day (it started before the range, at 23:00 UTC) and the spring
    # entry: three hours on the clock, two real hours.
    assert (rows[1]["start"], rows[1]["end"], rows[1]["duration"]) == (
        "2026-03-29 00:00:00",
        "2026-03-30 00:00:00",
        "23:00:00",
    )
    assert (rows[2]["start"], rows[2]["end"], rows[2]["duration"]) == (
        "2026-03-29 01:00:00",
        "2026-03-29 04:00:00",
        "2:00:00",
    )
    long_day = next(r for r in rows if r["tags"] == "'-leading")
    assert long_day["start"] == "2026-10-24 22:00:00" and long_day["end"] == "2026-10-26 00:00:00"
    assert long_day["duration"] == "27:00:00"  # 2 h + the 25-hour day, clipped at the end
    # The same range in another zone is still consistent.
    utc = await summary(admin, **rng, tz="UTC")
    _, body = await download(admin, "csv", **rng, tz="UTC")
    assert sum(seconds(r["duration"]) for r in csv_rows(body)) == utc["total_s"]
    # An empty range is a header only.
    _, empty = await download(admin, "csv", from_="2020-01-01", to="2020-01-31")
    assert empty == (",".join(HEADER) + "\r\n").encode()
    del team


async def test_xlsx_rows_add_up_to_the_summary(admin: Api) -> None:
    team = await make_team(admin)
    rng = {"from_": "2026-03-28", "to": "2026-10-31"}
    report = await summary(admin, **rng)
    response, body = await download(admin, "xlsx", **rng)
    assert response.status == 200
    assert response.content_type == (
        "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
    )
    assert response.headers["Content-Disposition"].endswith(
        'filename="tasktimer-entries-2026-03-28-to-2026-10-31.xlsx"'
    )
    book = openpyxl.load_workbook(io.BytesIO(body), read_only=True)
    sheet = book.active
    assert sheet is not None
    values = list(sheet.iter_rows(values_only=True))
    assert list(values[0]) == HEADER
    # Empty cells are left out, so a row may end early.
    rows = [dict(zip(HEADER, [*row, *[None] * 12][:12], strict=True)) for row in values[1:]]
    assert len(rows) == 5

    def secs(value: Any) -> int:
        if isinstance(value, timedelta):
            return round(value.total_seconds())
        return round(float(value) * 86400)

    assert sum(secs(r["duration"]) for r in rows) == report["total_s"]
    assert round(sum(r["duration_h"] for r in rows) * 3600) == report["total_s"]
    first = rows[0]
    assert first["start"] == datetime(2026, 3, 28, 22, 30)
    assert first["end"] == datetime(2026, 3, 29, 1, 30)
    assert first["date"].date().isoformat() == "2026-03-28"
    assert first["user"] == "bob" and first["tags"] == "billable, x"
    # Strings stay strings: nothing is stored as a formula.
    assert first["note"] == '=HYPERLINK("http://evil")'
    assert "<f>" not in _sheet_xml(body)
    assert {r["service"] for r in rows} == {None}
    book.close()
    del team


def _sheet_xml(body: bytes) -> str:
    import zipfile

    with zipfile.ZipFile(io.BytesIO(body)) as archive:
        return archive.read("xl/worksheets/sheet1.xml").decode()


async def test_openapi_declares_reports(admin: Api) -> None:
    _, doc = await admin.get("/api/v1/openapi.json")
    summary_op = doc["paths"]["/api/v1/reports/summary"]["get"]
    assert set(summary_op["responses"]) == {"200", "400", "401", "403", "404", "503"}
    names = {p["name"] for p in summary_op["parameters"]}
    assert names == {"from", "to", "tz", "group_by", "user_id", "task_id", "tag"}
    user_param = next(p for p in summary_op["parameters"] if p["name"] == "user_id")
    assert user_param["schema"]["type"] == "array"
    csv_op = doc["paths"]["/api/v1/reports/entries.csv"]["get"]
    assert "text/csv" in csv_op["responses"]["200"]["content"]
    assert "group_by" not in {p["name"] for p in csv_op["parameters"]}
    xlsx_op = doc["paths"]["/api/v1/reports/entries.xlsx"]["get"]
    content = xlsx_op["responses"]["200"]["content"]
    assert content["application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"][
        "schema"
    ] == {"type": "string", "format": "binary"}
    assert ZoneInfo(WARSAW)  # the zone database the reports rely on is installed


async def test_user_filter_choices(admin: Api) -> None:
    team = await make_team(admin)
    reports = admin.client.app[SERVICES].reports
    services = admin.client.app[SERVICES]

    async def principal(name: str) -> Any:
        doc = await services.backend.find_one("users", {"_id": team.users[name]["id"]})
        return Principal.of_user(doc)

    alice = await reports.people(await principal("alice"))
    assert alice is not None
    assert [label for _, label in alice] == ["alice", "bob"]  # the manager and Client's people
    assert await reports.people(await principal("bob")) is None  # only their own time
    _, me = await admin.get("/api/v1/me")
    admin_doc = await services.backend.find_one("users", {"_id": me["id"]})
    everyone = await reports.people(Principal.of_user(admin_doc))
    assert everyone is not None and {label for _, label in everyone} == {
        "admin",
        "alice",
        "bob",
        "carol",
    }


async def test_a_failure_after_the_first_byte_breaks_the_download(admin: Api) -> None:
    await make_team(admin)
    backend = admin.client.app[SERVICES].backend
    real = backend.entry_rows

    async def failing(rng: Any, batch: int = 1000) -> Any:
        async for rows in real(rng, batch):
            yield rows
            raise RuntimeError("the database went away")

    backend.entry_rows = failing  # type: ignore[method-assign]
    try:
        response = await admin.client.get(
            url("entries.csv", from_="2026-03-01", to="2026-10-31", tz=WARSAW),
            headers={"Authorization": f"Bearer {admin.token}"},
        )
        assert response.status == 200  # the headers were out before the failure
        try:
            await response.read()
        except aiohttp.ClientPayloadError:
            pass
        else:
            raise AssertionError("a truncated export must not end like a complete one")
    finally:
        backend.entry_rows = real  # type: ignore[method-assign]
