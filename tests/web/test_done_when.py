"""Issue 10's "Done when", as a new user would try it with nothing but a browser: the
bootstrap admin connects Pivotal Tracker, HeySpace and Asana (fake OAuth), ticks
workspaces, invites an Asana co-worker and a teammate who accepts and signs in, gives her a
role on a project; she starts a timer from the timesheet and sees it tick, it is stopped
through the API with her bearer token (as the extension does) and her page follows within
2 s, she adds a manual hour; the admin forces a sync and sees the counts, unlinks and
re-enables. Screenshots of every step go to test-artifacts/web/done-*.png."""

from __future__ import annotations

import re
import time
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from playwright.sync_api import Browser, Locator, Page, expect

from tests.e2e.stack import Backend

from .conftest import ADMIN_EMAIL, Stack, shot, sign_in

pytestmark = pytest.mark.web
WARSAW = ZoneInfo("Europe/Warsaw")  # the browser's zone (conftest)
SYNC_WAIT_MS = 20_000
TEAMMATE, TEAMMATE_PASSWORD = "nora@example.com", "nora-password-1"


def status(page: Page, service: str) -> Locator:
    return page.locator(f'[data-tt-integration="{service}"] [data-tt-status]')


def connect_pivotal(page: Page, token: str, button: str) -> None:
    """Pivotal Tracker's card: ``button`` (enable or reenable), the token, synced."""
    pivotal = page.locator('[data-tt-integration="pivotaltracker"]')
    pivotal.locator(f"button[name={button}]").click()
    pivotal.locator("input[name=api_token]").fill(token)
    pivotal.locator("form[name=credentials] button[type=submit]").click()
    expect(status(page, "pivotaltracker")).to_have_text("ok", timeout=SYNC_WAIT_MS)


def test_done_when(page: Page, stack: Stack, chromium: Browser) -> None:
    providers = stack.providers
    story = providers.add("pivotaltracker", "Checkout flow")
    side = providers.loop.call(providers.asana.add_workspace, "Side projects")
    providers.loop.call(providers.asana.add_project, side, "Hobby")
    providers.loop.call(providers.asana.add_user, "cora@example.com", "Cora Asana")

    # -- the admin connects the three tools ------------------------------------------------
    sign_in(page)
    page.locator('nav a[href="/integrations"]').click()
    shot(page, "done-01-integrations")
    connect_pivotal(page, providers.pivotal_token, "enable")

    heyspace = page.locator('[data-tt-integration="heyspace"]')
    heyspace.locator("button[name=enable]").click()
    heyspace.locator("input[name=email]").fill(ADMIN_EMAIL)
    heyspace.locator("input[name=password]").fill(providers.heyspace_password)
    heyspace.locator("form[name=credentials] button[type=submit]").click()
    expect(status(page, "heyspace")).to_have_text("ok", timeout=SYNC_WAIT_MS)

    with page.expect_navigation(url=re.compile(r"/integrations\?connected=asana")):
        page.locator('[data-tt-integration="asana"] button[name=enable]').click()
    expect(status(page, "asana")).to_have_text("ok", timeout=SYNC_WAIT_MS)
    shot(page, "done-02-connected")

    # -- workspaces and an Asana co-worker ----------------------------------------------------
    page.reload()
    asana = page.locator('[data-tt-integration="asana"]')
    asana.locator(f'input[type=checkbox][name=workspace][value="{side}"]').uncheck()
    asana.locator("button[name=save-workspaces]").click()
    expect(page.locator("[data-tt-live]")).to_contain_text("Workspace choice saved")
    selected = stack.api.request("GET", "/integrations/asana/workspaces")["items"]
    assert {w["id"] for w in selected if w["selected"]} == {providers.asana_workspace}
    asana = page.locator('[data-tt-integration="asana"]')
    asana.locator('input[type=checkbox][name=coworker][value="cora@example.com"]').check()
    asana.locator("button[name=invite]").click()
    expect(
        page.locator('[data-tt-invited="cora@example.com"] [data-tt-invite-url]')
    ).to_be_visible()
    shot(page, "done-03-asana-coworker-invited")

    # -- a teammate is invited from the team page, accepts and signs in ----------------------
    page.locator('nav a[href="/team"]').click()
    form = page.locator("form[name=add-user]")
    form.locator("input[name=email]").fill(TEAMMATE)
    form.locator("input[name=name]").fill("Nora")
    form.locator("button[type=submit]").click()
    invite_url = page.locator("[data-tt-invite-url]").inner_text().strip()
    assert invite_url.startswith(f"{stack.url}/invite/")
    shot(page, "done-04-teammate-invited")

    nora_context = chromium.new_context(
        base_url=stack.url, timezone_id="Europe/Warsaw", locale="en-GB"
    )
    nora_context.set_default_timeout(10_000)
    nora = nora_context.new_page()
    errors: list[str] = []
    nora.on("pageerror", lambda exc: errors.append(str(exc)))
    try:
        nora.goto(invite_url)
        nora.fill("input[name=password]", TEAMMATE_PASSWORD)
        nora.click("button[type=submit]")
        expect(nora.locator("[data-tt-user]")).to_have_text(TEAMMATE)
        nora.wait_for_function("!document.body.hasAttribute('data-tt-tz-unset')")
        nora.wait_for_load_state()
        shot(nora, "done-05-teammate-signed-in")

        # -- the admin gives her a role on the Pivotal project -------------------------------
        project = next(
            t
            for t in stack.api.request("GET", "/tasks?q=Mobile%20app")["items"]
            if t["name"] == "Mobile app"
        )
        nora_id = next(
            u["id"] for u in stack.api.request("GET", "/users")["items"] if u["email"] == TEAMMATE
        )
        page.goto(f"/tasks?task={project['id']}")
        row = page.locator(f'[data-tt-member="{nora_id}"]')
        if row.count():
            row.locator("select[name=role]").select_option("manager")
            expect(page.locator("[data-tt-live]")).to_contain_text("Role saved")
        else:
            add = page.locator("form[name=add-member]")
            add.locator("select[name=user_id]").select_option(nora_id)
            add.locator("select[name=role]").select_option("manager")
            add.locator("button[type=submit]").click()
            expect(page.locator("[data-tt-live]")).to_contain_text("Member added")
        expect(page.locator(f'[data-tt-member="{nora_id}"] select[name=role]')).to_have_value(
            "manager"
        )
        members = stack.api.request("GET", f"/tasks/{project['id']}/members")["items"]
        assert {m["user_id"]: m["role"] for m in members}[nora_id] == "manager"
        shot(page, "done-06-role-on-project")

        # -- she starts a timer from the timesheet and sees it tick ----------------------------
        nora.goto("/")
        nora.fill("input[name=task-search]", "checkout")
        result = nora.locator("[data-tt-results] [data-tt-task-id]").first
        expect(result).to_contain_text("Checkout flow")
        result.click()
        timer = nora.locator("[data-tt-running]")
        expect(timer).to_contain_text("Checkout flow")
        elapsed = nora.locator("[data-tt-elapsed]")
        first = elapsed.inner_text()
        expect(elapsed).not_to_have_text(first, timeout=3000)
        shot(nora, "done-07-timer-ticking")

        # -- stopped through the API with her bearer token: the page follows within 2 s -----
        extension = Backend(stack.server, providers, TEAMMATE, TEAMMATE_PASSWORD)
        stopped_at = time.monotonic()
        stopped = extension.request("POST", "/timer/stop", {})
        assert stopped["stopped"] is not None
        expect(nora.locator("[data-tt-running]")).to_have_count(0, timeout=2000)
        followed_s = time.monotonic() - stopped_at
        assert followed_s <= 2.0, followed_s
        shot(nora, "done-08-stopped-elsewhere")

        # -- she adds a manual hour ---------------------------------------------------------
        now = datetime.now(WARSAW)
        day = now.date() if now.hour >= 3 else now.date() - timedelta(days=1)
        nora.goto(f"/?week={day.isoformat()}")
        entry = nora.locator("form[name=entry]")
        entry.locator("[data-tt-entry-task]").fill("checkout")
        entry.locator("[data-tt-task-id]").first.click()
        entry.locator("input[name=date]").fill(day.isoformat())
        entry.locator("input[name=start]").fill("01:00")
        entry.locator("input[name=end]").fill("02:00")
        entry.locator("input[name=note]").fill("forgotten hour")
        entry.locator("button[type=submit]").first.click()
        manual = nora.locator("[data-tt-entry-id]", has_text="forgotten hour")
        expect(manual).to_contain_text("01:00\u201302:00")
        total = int(
            nora.locator(f'[data-tt-day="{day.isoformat()}"]').get_attribute("data-total-s") or 0
        )
        assert total >= 3600
        entries = extension.request("GET", "/entries")["items"]
        assert any(e["note"] == "forgotten hour" and e["duration_s"] == 3600 for e in entries)
        shot(nora, "done-09-manual-hour")
        assert not errors, errors
    finally:
        nora_context.close()

    # -- the admin forces a sync from the timesheet and sees the counts ---------------------
    providers.add("heyspace", "Card made upstream")
    page.goto("/")
    page.locator("button[name=force-sync]").click()
    state = page.locator("[data-tt-sync-state]")
    expect(state).to_have_attribute("data-state", "succeeded", timeout=SYNC_WAIT_MS)
    expect(state).to_contain_text("1 created")
    shot(page, "done-10-force-sync")

    # -- unlinks and re-enables -------------------------------------------------------------
    page.locator('nav a[href="/integrations"]').click()
    pivotal = page.locator('[data-tt-integration="pivotaltracker"]')
    pivotal.locator("button[name=unlink]").click()
    pivotal.locator("button[name=confirm-unlink]").click()
    expect(status(page, "pivotaltracker")).to_have_text("unlinked")
    resolved = stack.api.request(
        "POST", "/resolve", {"service": "pivotaltracker", "external_ids": [story]}
    )["results"][story]
    assert resolved is None or resolved["archived"] is True
    shot(page, "done-11-unlinked")
    connect_pivotal(page, providers.pivotal_token, "reenable")
    again = stack.api.request(
        "POST", "/resolve", {"service": "pivotaltracker", "external_ids": [story]}
    )["results"][story]
    assert again is not None and again["archived"] is False
    shot(page, "done-12-reenabled")
