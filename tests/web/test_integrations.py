"""The integrations page in a real browser against the real server and the fake providers:
connect each tool (HeySpace and Pivotal Tracker by form, Asana through its OAuth page),
status in words, sync history, workspaces, co-workers, the keywords option, Force
synchronization, unlink with confirmation, re-enable, and Asana's refusals."""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import quote

import pytest
from playwright.sync_api import Locator, Page, expect

from .conftest import ADMIN_EMAIL, USER_PASSWORD, Stack, shot, sign_in

pytestmark = pytest.mark.web
SYNC_WAIT_MS = 20_000


def card(page: Page, service: str) -> Locator:
    return page.locator(f'[data-tt-integration="{service}"]')


def integration(stack: Stack, service: str) -> dict[str, Any] | None:
    for item in stack.api.request("GET", "/integrations")["items"]:
        if item["service"] == service:
            found: dict[str, Any] = item
            return found
    return None


def wait_status(page: Page, service: str, status: str) -> None:
    """The card follows the server by itself while a sync runs (no reload)."""
    expect(card(page, service).locator("[data-tt-status]")).to_have_text(
        status, timeout=SYNC_WAIT_MS
    )


def enable_with_form(page: Page, service: str, values: dict[str, str]) -> None:
    box = card(page, service)
    form = box.locator("form[name=credentials]")
    expect(form).to_be_hidden()
    box.locator("button[name=enable], button[name=reenable]").click()
    expect(form).to_be_visible()
    for name, value in values.items():
        form.locator(f"input[name={name}]").fill(value)
    form.locator("button[type=submit]").click()


def test_a_user_gets_the_403_page(page: Page, stack: Stack) -> None:
    mate = stack.new_user()
    sign_in(page, mate["email"], USER_PASSWORD)
    response = page.goto("/integrations")
    assert response is not None and response.status == 403
    expect(page.locator("[role=alert]")).to_contain_text("admins")
    expect(page.locator("[data-tt-integration]")).to_have_count(0)


def test_connect_heyspace_and_pivotal_sync_settings_unlink_reenable(
    page: Page, stack: Stack
) -> None:
    providers = stack.providers
    sign_in(page)
    page.goto("/integrations")
    for service in ("heyspace", "asana", "pivotaltracker"):
        expect(card(page, service).locator("[data-tt-status]")).to_have_text("not_connected")
        expect(card(page, service).locator("button[name=enable]")).to_be_visible()
    shot(page, "integrations-empty")

    # A wrong password is refused with a clear message, and nothing is connected.
    enable_with_form(page, "heyspace", {"email": ADMIN_EMAIL, "password": "wrong password"})
    expect(page.locator("[role=alert]")).to_contain_text(
        "HeySpace refused this e-mail and password"
    )
    expect(card(page, "heyspace").locator("form[name=credentials]")).to_be_visible()
    assert integration(stack, "heyspace") is None
    shot(page, "integrations-heyspace-refused")

    form = card(page, "heyspace").locator("form[name=credentials]")
    # The e-mail is kept for the next try, the password never.
    expect(form.locator("input[name=email]")).to_have_value(ADMIN_EMAIL)
    expect(form.locator("input[name=password]")).to_have_value("")
    form.locator("input[name=password]").fill(providers.heyspace_password)
    form.locator("button[type=submit]").click()
    expect(page.locator("[data-tt-live]")).to_contain_text("HeySpace is connected")
    wait_status(page, "heyspace", "ok")
    heyspace = card(page, "heyspace")
    expect(heyspace.locator("[data-tt-status-text]")).to_contain_text("Connected")
    expect(heyspace.locator('[data-tt-counts] [data-count="created"] .n')).not_to_have_text("0")
    first = integration(stack, "heyspace")
    assert first is not None and first["last_sync"]["state"] == "succeeded"
    expect(heyspace.locator(f'[data-tt-sync-id="{first["last_sync"]["id"]}"]')).to_have_count(1)

    enable_with_form(page, "pivotaltracker", {"api_token": providers.pivotal_token})
    wait_status(page, "pivotaltracker", "ok")
    shot(page, "integrations-connected")

    # The keywords option is saved as soon as it is ticked.
    box = heyspace.locator("input[type=checkbox][name=keywords_from_ids]")
    expect(box).not_to_be_checked()
    box.check()
    expect(heyspace.locator("[data-tt-settings-state]")).to_have_text("Saved")
    current = integration(stack, "heyspace")
    assert current is not None and current["settings"]["keywords_from_ids"] is True
    page.reload()
    expect(card(page, "heyspace").locator("input[name=keywords_from_ids]")).to_be_checked()

    # Force synchronization: running, then the counts; the history gains the new row.
    providers.add("heyspace", "Card added upstream")
    heyspace = card(page, "heyspace")
    before = heyspace.locator("[data-tt-sync-id]").count()
    heyspace.locator("button[name=force-sync]").click()
    state = heyspace.locator("[data-tt-sync-state]")
    expect(state).to_have_attribute("data-state", re.compile("running|succeeded"))
    expect(state).to_have_attribute("data-state", "succeeded", timeout=SYNC_WAIT_MS)
    expect(state).to_contain_text("1 created")
    expect(heyspace.locator("[data-tt-sync-id]")).to_have_count(before + 1)
    heyspace.locator("details.history summary").click()
    shot(page, "integrations-force-sync")

    # Unlink asks first; cancelling keeps it, confirming unlinks.
    heyspace.locator("button[name=unlink]").click()
    confirm = heyspace.locator("button[name=confirm-unlink]")
    expect(confirm).to_be_visible()
    heyspace.locator("[data-tt-cancel]").click()
    expect(confirm).to_be_hidden()
    heyspace.locator("button[name=unlink]").click()
    shot(page, "integrations-confirm-unlink")
    confirm.click()
    wait_status(page, "heyspace", "unlinked")
    expect(card(page, "heyspace").locator("[data-tt-status-text]")).to_contain_text("unlinked")
    current = integration(stack, "heyspace")
    assert current is not None and current["status"] == "unlinked"
    root = stack.api.request("GET", f"/tasks/{current['root_task_id']}")
    assert root["archived"] is True

    # Re-enable shows the same credentials form and brings the same tree back.
    enable_with_form(
        page, "heyspace", {"email": ADMIN_EMAIL, "password": providers.heyspace_password}
    )
    expect(page.locator("[data-tt-live]")).to_contain_text("enabled again")
    wait_status(page, "heyspace", "ok")
    again = integration(stack, "heyspace")
    assert again is not None and again["root_task_id"] == current["root_task_id"]
    assert stack.api.request("GET", f"/tasks/{again['root_task_id']}")["archived"] is False


def test_status_words_for_a_refused_login_and_a_failed_sync(page: Page, stack: Stack) -> None:
    providers = stack.providers
    if integration(stack, "heyspace") is None or integration(stack, "heyspace")["status"] != "ok":
        stack.api.request(
            "POST",
            "/integrations/heyspace",
            {"email": ADMIN_EMAIL, "password": providers.heyspace_password},
        )
        stack.api.sync("heyspace")
    sign_in(page)

    # A provider error: the sync fails with its reason, shown on the card.
    providers.loop.call(providers.heyspace.faults.fail_path, "/api", 500, None)
    try:
        sync_id = stack.api.request("POST", "/integrations/heyspace/sync")["sync_id"]
        page.goto("/integrations")
        wait_status(page, "heyspace", "error")
    finally:
        providers.loop.call(providers.heyspace.faults.clear)
    heyspace = card(page, "heyspace")
    expect(heyspace.locator("[data-tt-status-text]")).to_contain_text(
        "The last synchronization failed: HeySpace had a server error (HTTP 500)."
    )
    expect(heyspace.locator("[data-tt-sync-error]")).not_to_be_empty()
    expect(heyspace.locator(f'[data-tt-sync-id="{sync_id}"]')).to_have_attribute(
        "data-state", "failed"
    )
    shot(page, "integrations-sync-failed")

    # The saved login refused: needs_reauth, in words, with the way out.
    def refuse_login() -> None:
        providers.heyspace.users[ADMIN_EMAIL.lower()]["password"] = "changed upstream"
        providers.heyspace.tokens.expire_all()
        providers.heyspace.tokens.revoke_refresh_tokens()

    providers.loop.call(refuse_login)
    try:
        stack.api.request("POST", "/integrations/heyspace/sync")
        page.goto("/integrations")
        wait_status(page, "heyspace", "needs_reauth")
        heyspace = card(page, "heyspace")
        expect(heyspace.locator("[data-tt-status-text]")).to_have_text(
            "HeySpace refused the saved login — re-enable."
        )
        expect(heyspace.locator("button[name=force-sync]")).to_have_count(0)
        shot(page, "integrations-needs-reauth")
        enable_with_form(page, "heyspace", {"email": ADMIN_EMAIL, "password": "changed upstream"})
        wait_status(page, "heyspace", "ok")
    finally:

        def restore() -> None:
            providers.heyspace.users[ADMIN_EMAIL.lower()]["password"] = providers.heyspace_password

        providers.loop.call(restore)


def test_asana_oauth_workspaces_coworkers_and_refusals(page: Page, stack: Stack) -> None:
    providers = stack.providers
    second = providers.loop.call(providers.asana.add_workspace, "Side projects")
    providers.loop.call(providers.asana.add_user, "pat.coworker@example.com", "Pat <Co>")
    sign_in(page)

    # Asana refusing at its authorization page comes back as a clear message.
    description = "The app is not allowed to request scopes"
    page.goto(
        "/api/v1/integrations/asana/callback?error=forbidden_scopes"
        f"&error_description={quote(description)}&state=x"
    )
    assert page.url.split("?")[0] == f"{stack.url}/integrations"
    alert = page.locator("[role=alert]")
    expect(alert).to_contain_text("Asana refused the requested permissions (forbidden_scopes)")
    expect(alert).to_contain_text("TT_ASANA_SCOPES")
    expect(alert).to_contain_text(description)
    shot(page, "integrations-asana-forbidden-scopes")
    page.goto("/api/v1/integrations/asana/callback?error=access_denied&state=x")
    expect(page.locator("[role=alert]")).to_contain_text("access_denied")

    # Enable goes to Asana's authorization page, whose redirect lands back here.
    asana = card(page, "asana")
    with page.expect_navigation(url=re.compile(r"/integrations\?connected=asana")):
        asana.locator("button[name=enable]").click()
    expect(page.locator("[data-tt-live]")).to_contain_text("Asana is connected")
    asana = card(page, "asana")
    expect(asana.locator("[data-tt-status]")).not_to_have_text("not_connected")
    boxes = asana.locator("input[type=checkbox][name=workspace]")
    expect(boxes).to_have_count(2)
    wait_status(page, "asana", "ok")
    page.reload()
    asana = card(page, "asana")
    expect(
        asana.locator(f'input[name=workspace][value="{providers.asana_workspace}"]')
    ).to_be_checked()
    shot(page, "integrations-asana-connected")

    # Only the first workspace: saved, and the sync imports only that one.
    asana.locator(f'input[name=workspace][value="{second}"]').uncheck()
    asana.locator("button[name=save-workspaces]").click()
    expect(page.locator("[data-tt-live]")).to_contain_text("Workspace choice saved")
    chosen = stack.api.request("GET", "/integrations/asana/workspaces")["items"]
    assert {w["id"]: w["selected"] for w in chosen} == {
        providers.asana_workspace: True,
        second: False,
    }
    asana = card(page, "asana")
    expect(asana.locator(f'input[name=workspace][value="{second}"]')).not_to_be_checked()

    # Co-workers who are not users yet, invited from their checkboxes.
    coworker = asana.locator(
        'input[type=checkbox][name=coworker][value="pat.coworker@example.com"]'
    )
    expect(coworker).to_have_count(1)
    expect(asana.locator("form[name=coworkers]")).to_contain_text("Pat <Co>")
    coworker.check()
    asana.locator("button[name=invite]").click()
    expect(page.locator("[data-tt-live]")).to_contain_text("1 co-worker invited")
    link = page.locator('[data-tt-invited="pat.coworker@example.com"] [data-tt-invite-url]')
    expect(link).to_contain_text(f"{stack.url}/invite/")
    shot(page, "integrations-asana-invited")
    users = stack.api.request("GET", "/users")["items"]
    assert "pat.coworker@example.com" in {u["email"] for u in users}
    page.goto("/integrations")
    expect(
        card(page, "asana").locator('input[name=coworker][value="pat.coworker@example.com"]')
    ).to_have_count(0)

    # Re-enable goes through Asana again and comes back connected.
    with page.expect_navigation(url=re.compile(r"/integrations\?connected=asana")):
        card(page, "asana").locator("button[name=reenable]").click()
    wait_status(page, "asana", "ok")
