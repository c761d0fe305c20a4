"""Options (site switches, custom hosts) and the user's time on buttons, in one signed-in
browser for the module (a module may not mix it with per-test browsers)."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator

import pytest
from playwright.sync_api import expect

from .conftest import (
    ARTIFACTS,
    ASANA_PROJECT,
    HEYSPACE_PROJECT,
    Browser,
    World,
    task_id_of,
)
from .stack import Backend
from .test_extension import button, running, wait_settled

pytestmark = pytest.mark.e2e


@pytest.fixture
def settings_reset(module_browser: Browser) -> Iterator[Browser]:
    yield module_browser
    module_browser.worker.evaluate("() => chrome.storage.local.remove('settings')")


# ------------------------------------------------------------------------ site switches


def test_site_switch_removes_buttons_within_2s_and_adds_none(
    settings_reset: Browser, world: World
) -> None:
    browser = settings_reset
    asana = browser.open_site("asana", f"/0/{ASANA_PROJECT}/board", world.items["asana"][:3])
    heyspace = browser.open_site(
        "heyspace", f"/projects/{HEYSPACE_PROJECT}/kanban", world.items["heyspace"][:3]
    )
    wait_settled(asana, 3)
    wait_settled(heyspace, 3)
    options = browser.options()
    switch = options.locator("input[type=checkbox][name=site-asana]")
    expect(switch).to_be_checked()
    expect(options.locator("input[name=site-heyspace]")).to_be_checked()
    expect(options.locator("input[name=site-pivotaltracker]")).to_be_checked()

    switch.uncheck()
    started = time.monotonic()
    expect(asana.locator(".tasktimer-button")).to_have_count(0, timeout=2000)
    assert time.monotonic() - started < 2
    assert heyspace.locator(".tasktimer-button").count() == 3
    # Re-renders and new tabs get none while the switch is off; it stays saved.
    asana.evaluate("fixture.churn(6, 15)")
    asana.wait_for_timeout(600)
    assert asana.locator(".tasktimer-button").count() == 0
    fresh = browser.open_site("asana", f"/0/{ASANA_PROJECT}/list", world.items["asana"][:3])
    fresh.wait_for_timeout(800)
    assert fresh.locator(".tasktimer-button").count() == 0
    options.reload()
    expect(options.locator("input[name=site-asana]")).not_to_be_checked()

    options.locator("input[name=site-asana]").check()
    wait_settled(asana, 3)
    wait_settled(fresh, 3)
    for page in (asana, heyspace, fresh, options):
        page.close()


# ------------------------------------------------------------------------ custom hosts


def test_custom_host_gets_buttons_and_loses_them_when_removed(
    settings_reset: Browser, backend: Backend, world: World
) -> None:
    browser = settings_reset
    # A Tracker-compatible server of the user's own (http://localhost is granted by the
    # manifest, so no permission prompt blocks the headless browser).
    browser.route_host("http://localhost", "pivotaltracker")
    stories = world.items["pivotaltracker"][:3]
    options = browser.options()
    options.fill("textarea[name=custom-hosts]", "pivotaltracker=http://localhost\n")
    options.click("button[name=save-custom-hosts]")
    status = options.locator("[data-tasktimer-hosts-status]")
    expect(status).to_have_attribute("data-tasktimer-registered", "1")
    registered = browser.worker.evaluate(
        "async () => (await chrome.scripting.getRegisteredContentScripts())"
        ".map(s => [s.id, s.matches, s.js])"
    )
    assert len(registered) == 1 and registered[0][1] == ["http://localhost/*"]
    assert registered[0][2][-1].endswith("pivotal.js")

    page = browser.open_site(
        "pivotaltracker", "/n/projects/1000", stories, origin="http://localhost"
    )
    found = wait_settled(page, 3)
    assert {b["service"] for b in found} == {"pivotaltracker"}
    assert all(b["state"] == "start" for b in found)
    button(page, stories[0], state="start").click()
    expect(button(page, stories[0])).to_have_attribute("data-tasktimer-state", "stop")
    assert running(backend)["task_id"] == task_id_of(backend, stories[0])
    page.screenshot(path=str(ARTIFACTS / "custom-host-pivotal.png"))

    # A host the manifest does not grant is asked for first and not kept without consent.
    options.fill(
        "textarea[name=custom-hosts]",
        "pivotaltracker=http://localhost\nasana=https://asana.example.com",
    )
    options.click("button[name=save-custom-hosts]")
    expect(status).to_contain_text("Asking for access to https://asana.example.com/*")
    assert (
        browser.worker.evaluate(
            "async () => (await chrome.storage.local.get('settings')).settings.customHosts.length"
        )
        == 1
    )
    options.close()

    options = browser.options()
    options.fill("textarea[name=custom-hosts]", "")
    options.click("button[name=save-custom-hosts]")
    expect(options.locator("[data-tasktimer-hosts-status]")).to_have_attribute(
        "data-tasktimer-registered", "0"
    )
    # Removed: the open tab loses its buttons, new tabs get none.
    expect(page.locator(".tasktimer-button")).to_have_count(0, timeout=2000)
    again = browser.open_site(
        "pivotaltracker", "/n/projects/1000", stories, origin="http://localhost"
    )
    again.wait_for_timeout(800)
    assert again.locator(".tasktimer-button").count() == 0
    for p in (page, again, options):
        p.close()


# ------------------------------------------------------------------------ totals


def test_totals_on_buttons_updated_after_stop_without_a_request_per_button(
    module_browser: Browser, backend: Backend, world: World
) -> None:
    item = world.items["asana"][3]
    task_id = task_id_of(backend, item)
    # 1 h 23 min tracked earlier (a unique day, so no other test's entry overlaps).
    backend.api(
        "POST",
        "/entries",
        {"task_id": task_id, "start": "2026-02-03T08:00:00Z", "end": "2026-02-03T09:23:00Z"},
    )
    before = sum(
        e["duration_s"]
        for e in backend.api("GET", "/entries?limit=500")["items"]
        if e["task_id"] == task_id
    )
    assert before >= 4980
    page = module_browser.open_site(
        "asana", f"/0/{ASANA_PROJECT}/{item.external_id}", world.items["asana"][:4]
    )
    card = button(page, item, place="board-card")
    pane = button(page, item, place="task-pane")
    for target in (card, pane):
        expect(target).to_have_attribute("data-tasktimer-total-s", str(before))
    hours, minutes = divmod(before // 60, 60)
    expect(card).to_contain_text(f"{hours}:{minutes:02d}")
    other = button(page, world.items["asana"][0], place="board-card")
    expect(other).to_have_attribute("data-tasktimer-total-s", re.compile(r"^\d+$"))

    card.click()
    expect(card).to_have_attribute("data-tasktimer-state", "stop")
    page.wait_for_timeout(2200)
    module_browser.count_requests()
    pane.click()
    expect(card).to_have_attribute("data-tasktimer-state", "start")
    stopped = [
        e for e in backend.api("GET", "/entries?limit=500")["items"] if e["task_id"] == task_id
    ]
    after = sum(e["duration_s"] for e in stopped)
    assert after >= before + 2
    for target in (card, pane):
        expect(target).to_have_attribute("data-tasktimer-total-s", str(after))
    page.wait_for_timeout(300)
    # Both buttons learnt the new total from the stop itself.
    assert module_browser.requests().get("/api/v1/resolve", 0) == 0
    page.screenshot(path=str(ARTIFACTS / "totals-asana.png"))
    page.close()
