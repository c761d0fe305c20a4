"""The timesheet in a real browser: timer by search (live, ticking), the week by local
days, manual entries with their errors, Force synchronization."""

from __future__ import annotations

import re
import time
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from playwright.sync_api import Page, expect

from .conftest import Stack, shot, sign_in

pytestmark = pytest.mark.web
WARSAW = ZoneInfo("Europe/Warsaw")  # the browser's zone (conftest), adopted at sign-in


@pytest.fixture(scope="module")
def tasks(stack: Stack) -> dict[str, dict[str, Any]]:
    client = stack.new_task("Client <b>Work</b>")
    return {
        "client": client,
        "design": stack.new_task("Design review", client["id"]),
        "copy": stack.new_task("Copy writing", client["id"]),
        "other": stack.new_task("Internal"),
    }


@pytest.fixture(autouse=True)
def clean_slate(stack: Stack) -> None:
    stack.api.request("POST", "/timer/stop", {})
    entries = stack.api.request("GET", "/entries?limit=500")["items"]
    for entry in entries:
        stack.api.request("DELETE", f"/entries/{entry['id']}")


def running(stack: Stack) -> dict[str, Any] | None:
    result: dict[str, Any] | None = stack.api.request("GET", "/timer")["running"]
    return result


def test_start_by_search_ticks_and_follows_the_api_live(
    page: Page, stack: Stack, tasks: dict[str, dict[str, Any]]
) -> None:
    sign_in(page)
    expect(page.locator("[data-tt-running]")).to_have_count(0)
    page.fill("input[name=task-search]", "design")
    result = page.locator(f'[data-tt-results] [data-tt-task-id="{tasks["design"]["id"]}"]')
    expect(result).to_contain_text("Client <b>Work</b> \u203a Design review")
    # Server-side search: only matches come back, never the whole tree.
    expect(page.locator("[data-tt-results] [data-tt-task-id]")).to_have_count(1)
    page.fill("input[name=note]", "first pass")
    page.fill("input[name=tags]", "review, client")
    result.click()
    timer = page.locator("[data-tt-running]")
    expect(timer).to_contain_text("Design review")
    now = running(stack)
    assert now is not None and now["task_id"] == tasks["design"]["id"]
    assert now["note"] == "first pass" and now["tags"] == ["review", "client"]
    elapsed = timer.locator("[data-tt-elapsed]")
    first = elapsed.inner_text()
    expect(elapsed).not_to_have_text(first, timeout=3000)  # it ticks
    today = datetime.now(WARSAW).date().isoformat()
    expect(
        page.locator(f'[data-tt-day="{today}"] [data-tt-entry-id="{now["id"]}"]')
    ).to_be_visible()
    # The running entry counts in its day's total, up to now, and keeps counting.
    day = page.locator(f'[data-tt-day="{today}"]')
    expect(day).to_have_attribute("data-total-s", re.compile(r"^([2-9]|[1-9]\d+)$"))
    total = day.get_attribute("data-total-s")
    assert 2 <= int(total or 0) <= 30
    shot(page, "timesheet-running")

    # Stopped elsewhere (the API, as the extension does): the page follows within 2 s.
    stack.api.request("POST", "/timer/stop", {})
    expect(page.locator("[data-tt-running]")).to_have_count(0, timeout=2000)
    # Started elsewhere: shows up too.
    stack.api.request("POST", "/timer/start", {"task_id": tasks["other"]["id"]})
    expect(page.locator("[data-tt-running]")).to_contain_text("Internal", timeout=2000)
    page.click("button[name=stop]")
    expect(page.locator("[data-tt-running]")).to_have_count(0)
    assert running(stack) is None
    expect(page.locator("[data-tt-live]")).to_have_text("Timer stopped")


def _week_total(page: Page) -> int:
    return int(page.locator("[data-tt-week-total]").get_attribute("data-total-s") or "-1")


def test_manual_entry_add_edit_delete_and_errors(
    page: Page, stack: Stack, tasks: dict[str, dict[str, Any]]
) -> None:
    sign_in(page)
    yesterday = datetime.now(WARSAW).date() - timedelta(days=1)
    monday = yesterday - timedelta(days=yesterday.weekday())
    page.goto(f"/?week={yesterday.isoformat()}")
    expect(page.locator("[data-tt-week]")).to_have_attribute("data-start", monday.isoformat())
    form = page.locator("form[name=entry]")
    form.locator("[data-tt-entry-task]").fill("copy")
    form.locator(f'[data-tt-task-id="{tasks["copy"]["id"]}"]').click()
    expect(form.locator("input[name=task-id]")).to_have_value(tasks["copy"]["id"])
    form.locator("input[name=date]").fill(yesterday.isoformat())
    form.locator("input[name=start]").fill("09:00")
    form.locator("input[name=end]").fill("10:00")
    form.locator("input[name=note]").fill("forgot <i>this</i>")
    form.locator("input[name=tags]").fill("writing")
    form.locator("button[type=submit]").first.click()

    day = page.locator(f'[data-tt-day="{yesterday.isoformat()}"]')
    expect(day).to_have_attribute("data-total-s", "3600")
    entry = day.locator("[data-tt-entry-id]")
    expect(entry).to_contain_text("Copy writing")
    expect(entry).to_contain_text("09:00\u201310:00")
    expect(entry).to_contain_text("forgot <i>this</i>")
    assert _week_total(page) == 3600
    (stored,) = stack.api.request("GET", "/entries")["items"]
    # 09:00 in Warsaw is stored as UTC.
    start = datetime.combine(yesterday, datetime.min.time().replace(hour=9), WARSAW)
    assert stored["start"].startswith(start.astimezone(ZoneInfo("UTC")).strftime("%Y-%m-%dT%H:%M"))
    shot(page, "timesheet-week")

    # end <= start: a clear error, nothing saved.
    form.locator("input[name=date]").fill(yesterday.isoformat())
    form.locator("input[name=start]").fill("12:00")
    form.locator("input[name=end]").fill("11:00")
    form.locator("button[type=submit]").first.click()
    expect(page.locator("[role=alert]")).to_contain_text("must be after the start")
    shot(page, "timesheet-end-before-start")
    # An overlap: a clear error too.
    form.locator("input[name=start]").fill("09:30")
    form.locator("input[name=end]").fill("11:00")
    form.locator("button[type=submit]").first.click()
    expect(page.locator("[role=alert]")).to_contain_text("overlaps another of your entries")
    assert len(stack.api.request("GET", "/entries")["items"]) == 1

    # Click the entry: the same form, filled; change the end.
    page.goto(f"/?week={yesterday.isoformat()}")
    page.locator(f'[data-tt-entry-id="{stored["id"]}"]').click()
    expect(form.locator("input[name=start]")).to_have_value("09:00")
    expect(form.locator("input[name=note]")).to_have_value("forgot <i>this</i>")
    form.locator("input[name=end]").fill("10:30")
    form.locator("button[type=submit]").first.click()
    expect(page.locator(f'[data-tt-day="{yesterday.isoformat()}"]')).to_have_attribute(
        "data-total-s", "5400"
    )
    (edited,) = stack.api.request("GET", "/entries")["items"]
    assert edited["id"] == stored["id"] and edited["duration_s"] == 5400

    page.locator(f'[data-tt-entry-id="{stored["id"]}"]').click()
    form.locator("button[name=delete]").click()
    expect(page.locator(f'[data-tt-entry-id="{stored["id"]}"]')).to_have_count(0)
    assert stack.api.request("GET", "/entries")["items"] == []


def test_week_navigation_and_local_days(page: Page, stack: Stack, tasks: dict[str, Any]) -> None:
    # An entry from 23:30 to 01:00 Warsaw time two weeks ago: split between its local days.
    today = datetime.now(WARSAW).date()  # the page's today, not the machine's
    monday = today - timedelta(days=today.weekday() + 14)
    start = datetime.combine(monday + timedelta(days=2), datetime.min.time(), WARSAW) + timedelta(
        hours=23, minutes=30
    )
    iso = "%Y-%m-%dT%H:%M:%SZ"
    utc = ZoneInfo("UTC")
    stack.api.request(
        "POST",
        "/entries",
        {
            "task_id": tasks["other"]["id"],
            "start": start.astimezone(utc).strftime(iso),
            "end": (start + timedelta(minutes=90)).astimezone(utc).strftime(iso),
        },
    )
    sign_in(page)
    page.click("a[rel=prev]")
    page.click("a[rel=prev]")
    week = page.locator("[data-tt-week]")
    expect(week).to_have_attribute("data-start", monday.isoformat())
    assert re.search(r"week=\d{4}-\d{2}-\d{2}", page.url)
    wednesday, thursday = monday + timedelta(days=2), monday + timedelta(days=3)
    expect(page.locator(f'[data-tt-day="{wednesday}"]')).to_have_attribute("data-total-s", "1800")
    expect(page.locator(f'[data-tt-day="{thursday}"]')).to_have_attribute("data-total-s", "3600")
    assert _week_total(page) == 5400
    page.reload()  # a deep link survives a reload
    expect(week).to_have_attribute("data-start", monday.isoformat())
    page.click("a[rel=next]")
    expect(week).to_have_attribute("data-start", (monday + timedelta(days=7)).isoformat())
    assert _week_total(page) == 0
    expect(page.locator("[data-tt-day]")).to_have_count(7)


def test_force_sync_shows_running_then_counts(page: Page, stack: Stack) -> None:
    p = stack.providers
    stack.api.request("POST", "/integrations/pivotaltracker", {"api_token": p.pivotal_token})
    deadline = time.monotonic() + 30
    while stack.api.request("GET", "/integrations")["items"][0]["status"] == "syncing":
        assert time.monotonic() < deadline
        time.sleep(0.1)
    p.add("pivotaltracker", "A brand new story")
    sign_in(page)
    # Every state the indicator shows, in order.
    page.evaluate(
        """() => {
          const state = document.querySelector("[data-tt-sync-state]");
          window.__states = [];
          new MutationObserver(() => window.__states.push(state.dataset.state))
            .observe(state, {attributes: true, attributeFilter: ["data-state"]});
        }"""
    )
    page.click("button[name=force-sync]")
    state = page.locator("[data-tt-sync-state]")
    expect(state).to_have_text(re.compile(r"succeeded: 1 created, 0 updated"), timeout=15000)
    assert page.evaluate("window.__states") == ["running", "succeeded"]
    shot(page, "timesheet-force-sync")
    page.fill("input[name=task-search]", "brand new")
    expect(page.locator("[data-tt-results] [data-tt-task-id]")).to_have_count(1)
