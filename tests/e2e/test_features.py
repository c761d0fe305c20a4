"""The offline queue (server stopped and restarted, browser restarted), the service worker
stopped by the browser while a timer runs, and the keyboard command: each test in its own
browser profile."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Page, expect

from .conftest import (
    ARTIFACTS,
    ASANA_PROJECT,
    ASANA_WS,
    HEYSPACE_PROJECT,
    Browser,
    World,
    entries_of,
    launch,
    parse,
    task_id_of,
)
from .stack import Backend
from .test_extension import button, running

pytestmark = pytest.mark.e2e

# ------------------------------------------------------------------------ offline queue


def worker_queue(browser: Browser) -> list[dict[str, Any]]:
    return list(
        browser.worker.evaluate("async () => (await chrome.storage.local.get('queue')).queue ?? []")
    )


def test_offline_clicks_are_queued_and_replayed_once_with_the_click_time(
    tmp_path: Path, backend: Backend, world: World
) -> None:
    item = world.items["heyspace"][4]
    task_id = task_id_of(backend, item)
    profile = tmp_path / "profile"
    began = time.time()
    with launch(profile, backend) as browser:
        browser.sign_in()
        page = browser.open_site(
            "heyspace", f"/projects/{HEYSPACE_PROJECT}/kanban", world.items["heyspace"][3:5]
        )
        target = button(page, item)
        expect(target).to_have_attribute("data-tasktimer-state", "start")

        backend.server.stop()
        try:
            clicked = time.time()
            target.click()
            expect(target).to_have_attribute("data-tasktimer-state", "queued")
            # A second click on a queued button is not a second action.
            target.click()
            page.wait_for_timeout(300)
            queue = worker_queue(browser)
            assert len(queue) == 1 and queue[0]["kind"] == "start"
            assert abs(parse(queue[0]["at"]) - clicked) < 1.5
            assert queue[0]["key"]
            popup = browser.popup()
            expect(popup.locator("[data-tasktimer-queued-action=start]")).to_have_count(1)
            # The item's own title, without our button's label.
            expect(popup.locator("[data-tasktimer-queued-action]")).to_contain_text(
                f"Start {item.name} — clicked"
            )
            page.screenshot(path=str(ARTIFACTS / "offline-queued.png"))
            popup.screenshot(path=str(ARTIFACTS / "offline-popup.png"))
            page.wait_for_timeout(1500)  # the replay must keep the click's time, not its own
        finally:
            backend.server.restart()
        restarted = time.time()
        expect(target).to_have_attribute("data-tasktimer-state", "stop", timeout=20_000)
        entries = entries_of(backend, task_id, began)
        assert len(entries) == 1, entries
        start = parse(entries[0]["start"])
        assert clicked - 1 <= start <= clicked + 1.5 < restarted
        assert worker_queue(browser) == []
        expect(popup.locator("[data-tasktimer-queued-action]")).to_have_count(0)

        # Stop while offline, then the browser closes before the server is back.
        backend.server.stop()
        try:
            stop_clicked = time.time()
            target.click()
            expect(target).to_have_attribute("data-tasktimer-state", "queued")
            assert [a["kind"] for a in worker_queue(browser)] == ["stop"]
        finally:
            pass
    try:
        time.sleep(1.5)
    finally:
        backend.server.restart()
    # The browser restarts on the same profile: the worker replays the kept stop.
    with launch(profile, backend) as browser:
        deadline = time.monotonic() + 30
        while running(backend) is not None and time.monotonic() < deadline:
            time.sleep(0.3)
        assert running(backend) is None
        entries = entries_of(backend, task_id, began)
        assert len(entries) == 1, entries
        assert abs(parse(entries[0]["end"]) - stop_clicked) < 1.5
        page = browser.open_site(
            "heyspace", f"/projects/{HEYSPACE_PROJECT}/kanban", world.items["heyspace"][3:5]
        )
        expect(button(page, item)).to_have_attribute("data-tasktimer-state", "start")
        assert worker_queue(browser) == []


def test_a_start_whose_answer_was_lost_is_replayed_without_a_second_entry(
    signed_in: Browser, backend: Backend, world: World
) -> None:
    item = world.items["asana"][4]
    task_id = task_id_of(backend, item)
    began = time.time()
    page = signed_in.open_site("asana", f"/0/{ASANA_PROJECT}/board", world.items["asana"][3:5])
    target = button(page, item)
    expect(target).to_have_attribute("data-tasktimer-state", "start")
    # The server gets the start and answers, but the answer never arrives (a dropped
    # connection): the click is queued with the key already sent.
    signed_in.worker.evaluate(
        """() => {
          const original = globalThis.fetch;
          globalThis.__sentKeys = [];
          let dropped = false;
          globalThis.fetch = async (input, init) => {
            const isStart = String(input).endsWith("/api/v1/timer/start");
            if (isStart) globalThis.__sentKeys.push(init.headers["Idempotency-Key"]);
            const response = await original(input, init);
            if (isStart && !dropped) {
              dropped = true;
              throw new TypeError("Failed to fetch");
            }
            return response;
          };
        }"""
    )
    target.click()
    expect(target).to_have_attribute("data-tasktimer-state", "stop", timeout=15_000)
    # Replayed once (the server's timer event may show Stop before the replay lands).
    deadline = time.monotonic() + 15
    while worker_queue(signed_in) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert worker_queue(signed_in) == []
    keys = signed_in.worker.evaluate("() => globalThis.__sentKeys")
    assert len(keys) == 2 and keys[0] == keys[1], keys
    entries = entries_of(backend, task_id, began)
    assert len(entries) == 1, entries
    assert running(backend)["id"] == entries[0]["id"]


# ------------------------------------------------------------------------ worker restart


def stop_worker(browser: Browser, page: Page) -> None:
    """Closes the extension's service worker target, as the browser does to idle workers."""
    session = browser.context.new_cdp_session(page)
    try:
        targets = session.send("Target.getTargets")["targetInfos"]
        workers = [
            t for t in targets if t["type"] == "service_worker" and browser.extension_id in t["url"]
        ]
        assert workers, targets
        for target in workers:
            assert session.send("Target.closeTarget", {"targetId": target["targetId"]})["success"]
    finally:
        session.detach()


def test_service_worker_stopped_by_the_browser_while_a_timer_runs(
    signed_in: Browser, backend: Backend, world: World
) -> None:
    item = world.items["pivotaltracker"][2]
    page = signed_in.open_site(
        "pivotaltracker", "/n/projects/1000", world.items["pivotaltracker"][:3]
    )
    button(page, item, state="start").click()
    expect(button(page, item)).to_have_attribute("data-tasktimer-state", "stop")
    signed_in.worker.evaluate("() => { globalThis.__beforeStop = true; }")

    options = signed_in.options()
    stop_worker(signed_in, options)
    options.wait_for_timeout(500)
    # A message from a new tab wakes it again.
    fresh = signed_in.open_site(
        "pivotaltracker", "/n/projects/1000", world.items["pivotaltracker"][:3]
    )
    expect(button(fresh, item)).to_have_attribute("data-tasktimer-state", "stop")
    worker = signed_in.context.service_workers[-1]
    assert worker.evaluate("() => globalThis.__beforeStop ?? null") is None, "a new worker"
    # State survived in chrome.storage: the running item shows Stop everywhere.
    popup = signed_in.popup()
    expect(popup.locator("[data-tasktimer-running]")).to_contain_text(item.name)
    button(fresh, item, state="stop").click()
    expect(button(fresh, item)).to_have_attribute("data-tasktimer-state", "start")
    expect(button(page, item)).to_have_attribute("data-tasktimer-state", "start", timeout=2000)
    assert running(backend) is None
    # The woken worker follows the server's event stream again: a timer started elsewhere
    # reaches both tabs.
    other = world.items["pivotaltracker"][1]
    backend.api(
        "POST",
        "/timer/start",
        {"service": other.service, "external_id": other.external_id, "created_with": "api"},
    )
    for tab in (page, fresh):
        expect(button(tab, other)).to_have_attribute("data-tasktimer-state", "stop", timeout=5000)


# ------------------------------------------------------------------------ keyboard


def test_toggle_timer_command(signed_in: Browser, backend: Backend, world: World) -> None:
    commands = signed_in.worker.evaluate(
        "async () => (await chrome.commands.getAll()).map(c => [c.name, c.shortcut])"
    )
    assert ["toggle-timer", "Alt+Shift+K"] in commands
    item = world.items["asana"][2]
    page = signed_in.open_site(
        "asana", f"/1/{ASANA_WS}/task/{item.external_id}", world.items["asana"][:3]
    )
    pane = button(page, item, place="task-pane")
    expect(pane).to_have_attribute("data-tasktimer-state", "start")
    page.bring_to_front()
    # Headless Chromium has no browser-level shortcuts: run the command's own handler.
    toggle = "() => tasktimer.runCommand('toggle-timer')"
    signed_in.worker.evaluate(toggle)
    expect(pane).to_have_attribute("data-tasktimer-state", "stop")
    assert running(backend)["task_id"] == task_id_of(backend, item)
    signed_in.worker.evaluate(toggle)
    expect(pane).to_have_attribute("data-tasktimer-state", "start")
    assert running(backend) is None
