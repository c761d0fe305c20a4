"""The reports page in a real browser: a team's daylight-saving week with a late-night
entry, grouped by day and by user, matching the CSV and XLSX the page links to second for
second; presets, the user filter, bad input in words."""

from __future__ import annotations

import csv
import io
from datetime import date, timedelta
from typing import Any

import openpyxl
import pytest
from playwright.sync_api import Page, expect

from tests.e2e.stack import Backend

from .conftest import USER_PASSWORD, Stack, shot, sign_in

pytestmark = pytest.mark.web

WEEK = {"from": "2026-03-23", "to": "2026-03-29"}  # Monday .. Sunday, 29th has 23 hours


@pytest.fixture(scope="module")
def team(stack: Stack) -> dict[str, Any]:
    client = stack.new_task("Client <b>Work</b>")
    website = stack.new_task("Website", client["id"])
    internal = stack.new_task("Internal")
    mate = stack.new_user("rita@example.com")
    stack.api.request("PUT", f"/tasks/{client['id']}/members/{mate['id']}", {"role": "regular"})
    rita = Backend(stack.server, stack.providers, mate["email"], USER_PASSWORD)
    # The zone the browser would hand over at the first sign-in (set here, so that no
    # sign-in reloads its page while the harness waits for it).
    for person in (stack.api, rita):
        person.request("PATCH", "/me", {"time_zone": "Europe/Warsaw"})
    entries = [
        # Saturday 22:30 -> Sunday 01:30 in Warsaw: 1.5 h on each day.
        rita.request(
            "POST",
            "/entries",
            {
                "task_id": website["id"],
                "start": "2026-03-28T22:30:00+01:00",
                "end": "2026-03-29T01:30:00+01:00",
                "note": "late deploy",
                "tags": ["ops"],
            },
        ),
        # Sunday 01:30 (+01:00) -> 04:00 (+02:00): 2.5 h on the clock, 1.5 h real.
        rita.request(
            "POST",
            "/entries",
            {
                "task_id": website["id"],
                "start": "2026-03-29T01:30:00+01:00",
                "end": "2026-03-29T04:00:00+02:00",
            },
        ),
        stack.api.request(
            "POST",
            "/entries",
            {
                "task_id": internal["id"],
                "start": "2026-03-25T09:00:00+01:00",
                "end": "2026-03-25T12:15:07+01:00",
                "note": '=HYPERLINK("x")',
                "tags": ["planning", "-x"],
            },
        ),
        # Outside the week: never counted.
        stack.api.request(
            "POST",
            "/entries",
            {
                "task_id": internal["id"],
                "start": "2026-03-30T00:00:00+02:00",
                "end": "2026-03-30T01:00:00+02:00",
            },
        ),
    ]
    return {"mate": mate, "website": website, "internal": internal, "entries": entries}


def rows(page: Page) -> dict[str, int]:
    out = {}
    for row in page.locator("[data-tt-report-row]").all():
        out[row.get_attribute("data-key") or ""] = int(row.get_attribute("data-total-s") or 0)
    return out


def total(page: Page) -> int:
    return int(page.locator("[data-tt-report-total]").get_attribute("data-total-s") or -1)


def download(page: Page, kind: str) -> bytes:
    with page.expect_download() as info:
        page.locator(f"a[data-tt-export={kind}]").click()
    path = info.value.path()
    assert path is not None
    return path.read_bytes()


def seconds(hms: str) -> int:
    h, m, s = (int(x) for x in hms.split(":"))
    return h * 3600 + m * 60 + s


def test_a_dst_week_matches_the_csv_and_xlsx_second_for_second(
    page: Page, stack: Stack, team: dict[str, Any]
) -> None:
    sign_in(page, path="/reports")
    expect(page).to_have_url(f"{stack.url}/reports")
    form = page.locator("form[name=report]")
    form.locator("input[name=from]").fill(WEEK["from"])
    form.locator("input[name=to]").fill(WEEK["to"])
    form.locator("select[name=group_by]").select_option("day")
    form.locator("button[type=submit]").click()
    expect(page.locator("[data-tt-report-total]")).to_be_visible()
    assert rows(page) == {
        "2026-03-25": 3 * 3600 + 15 * 60 + 7,
        "2026-03-28": 5400,
        "2026-03-29": 5400 + 5400,  # the 23-hour day: real elapsed seconds
    }
    week_total = total(page)
    assert week_total == 11707 + 5400 + 10800
    expect(page.locator("[data-tt-report-total]")).to_have_text("7:45:07")
    expect(page.locator("[data-tt-report-row][data-key='2026-03-29']")).to_contain_text(
        "Sun 2026-03-29 (23 h day)"
    )
    chart = page.locator("svg[data-tt-report-chart]")
    expect(chart.locator("rect.bar")).to_have_count(7)  # one column per day, empty ones too
    shot(page, "reports")

    body = download(page, "csv")
    table = list(csv.DictReader(io.StringIO(body.decode("utf-8"), newline="")))
    assert sum(seconds(r["duration"]) for r in table) == week_total
    late = next(r for r in table if r["note"] == "late deploy")
    assert (late["date"], late["start"], late["end"]) == (
        "2026-03-28",
        "2026-03-28 22:30:00",
        "2026-03-29 01:30:00",
    )
    assert late["task"] == "Client <b>Work</b> \u203a Website" and late["user"] == "Rita"
    assert next(r for r in table if r["user"] != "Rita")["note"] == '\'=HYPERLINK("x")'

    book = openpyxl.load_workbook(io.BytesIO(download(page, "xlsx")), read_only=True)
    sheet = book.active
    assert sheet is not None
    cells = list(sheet.iter_rows(min_row=2, values_only=True))
    assert round(sum(float(c[3]) for c in cells) * 3600) == week_total
    book.close()

    # By user: each person's total is the sum of their CSV rows.
    page.locator("form[name=report] select[name=group_by]").select_option("user")
    page.locator("form[name=report] button[type=submit]").click()
    expect(page.locator("[data-tt-report-row]")).to_have_count(2)
    expect(page.locator("svg[data-tt-report-chart] rect.bar")).to_have_count(2)
    shot(page, "reports-by-user")
    by_user = rows(page)
    csv_by_user: dict[str, int] = {}
    for r in table:
        csv_by_user[r["email"]] = csv_by_user.get(r["email"], 0) + seconds(r["duration"])
    assert by_user[team["mate"]["id"]] == csv_by_user["rita@example.com"] == 16200
    assert sum(by_user.values()) == total(page) == week_total
    # The admin may narrow it to one person; the export links follow.
    page.locator("form[name=report] select[name=user_id]").select_option(team["mate"]["id"])
    page.locator("form[name=report] button[type=submit]").click()
    expect(page.locator("[data-tt-report-row]")).to_have_count(1)
    assert total(page) == 16200
    href = page.locator("a[data-tt-export=csv]").get_attribute("href") or ""
    assert f"user_id={team['mate']['id']}" in href and "from=2026-03-23" in href
    only = list(csv.DictReader(io.StringIO(download(page, "csv").decode(), newline="")))
    assert {r["user"] for r in only} == {"Rita"}
    assert sum(seconds(r["duration"]) for r in only) == 16200


def test_presets_filters_and_errors(page: Page, stack: Stack, team: dict[str, Any]) -> None:
    sign_in(page, "rita@example.com", USER_PASSWORD, path="/reports")
    # A teammate sees only her own time and has no user filter.
    expect(page.locator("form[name=report] select[name=user_id]")).to_have_count(0)
    page.goto(f"/reports?from={WEEK['from']}&to={WEEK['to']}&group_by=task")
    assert rows(page) == {team["website"]["id"]: 16200}
    path = "Client <b>Work</b> \u203a Website"
    expect(page.locator("[data-tt-report-row]")).to_contain_text(path)
    today = date.today()
    monday = today - timedelta(days=today.weekday())
    page.locator("[data-tt-preset=last-week]").click()
    form = page.locator("form[name=report]")
    expect(form.locator("input[name=from]")).to_have_value((monday - timedelta(days=7)).isoformat())
    expect(form.locator("input[name=to]")).to_have_value((monday - timedelta(days=1)).isoformat())
    assert "from=" in page.url  # a deep link with explicit dates
    page.locator("[data-tt-preset=this-year]").click()
    expect(form.locator("input[name=from]")).to_have_value(f"{today.year}-01-01")
    expect(form.locator("input[name=to]")).to_have_value(f"{today.year}-12-31")
    assert total(page) == (16200 if today.year == 2026 else 0)
    # Reversed dates: said in words, no numbers.
    page.goto("/reports?from=2026-03-29&to=2026-03-23")
    expect(page.locator("[role=alert]")).to_contain_text("before the start date")
    expect(page.locator("[data-tt-report-total]")).to_have_count(0)
    page.goto("/reports?from=2025-01-01&to=2026-03-23")
    expect(page.locator("[role=alert]")).to_contain_text("at most 366 days")
