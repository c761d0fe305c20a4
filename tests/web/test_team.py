"""The team page and the invitation flow in a real browser."""

from __future__ import annotations

import pytest
from playwright.sync_api import Page, expect

from .conftest import Stack, shot, sign_in

pytestmark = pytest.mark.web


def row(page: Page, email: str):  # type: ignore[no-untyped-def]
    return page.locator("[data-tt-user-id]", has=page.locator("td.email", has_text=email))


def test_add_with_password_change_role_deactivate_reactivate(page: Page, stack: Stack) -> None:
    sign_in(page, path="/team")
    form = page.locator("form[name=add-user]")
    form.locator("input[name=email]").fill("pat@example.com")
    form.locator("input[name=name]").fill("Pat <Ops>")
    form.locator("input[name=password]").fill("pat-password-1")
    form.locator("button[type=submit]").click()
    pat = row(page, "pat@example.com")
    expect(pat).to_contain_text("Pat <Ops>")
    expect(pat.locator("[data-tt-state]")).to_have_text("active")
    user_id = pat.get_attribute("data-tt-user-id")

    # The role is saved as soon as it is picked.
    pat.locator("select[name=role]").select_option("admin")
    expect(row(page, "pat@example.com").locator("select[name=role]")).to_have_value("admin")
    users = {u["id"]: u for u in stack.api.request("GET", "/users")["items"]}
    assert users[user_id]["role"] == "admin"

    row(page, "pat@example.com").locator("button[name=deactivate]").click()
    expect(row(page, "pat@example.com").locator("[data-tt-state]")).to_have_text("deactivated")
    assert not {u["id"]: u for u in stack.api.request("GET", "/users")["items"]}[user_id]["active"]
    shot(page, "team")
    row(page, "pat@example.com").locator("button[name=reactivate]").click()
    expect(row(page, "pat@example.com").locator("[data-tt-state]")).to_have_text("active")

    # A duplicate e-mail is refused in words.
    form.locator("input[name=email]").fill("PAT@example.com")
    form.locator("input[name=name]").fill("Pat again")
    form.locator("button[type=submit]").click()
    expect(page.locator("[role=alert]")).to_contain_text("already a member")


def test_invite_then_accept_and_sign_in(page: Page, stack: Stack) -> None:
    sign_in(page, path="/team")
    form = page.locator("form[name=add-user]")
    form.locator("input[name=email]").fill("ivy@example.com")
    form.locator("input[name=name]").fill("Ivy")
    form.locator("button[type=submit]").click()
    link = page.locator("[data-tt-invite-url]")
    expect(link).to_contain_text("/invite/")
    # Shown in the invited user's row (one link on the page).
    expect(row(page, "ivy@example.com").locator("[data-tt-invite-url]")).to_have_count(1)
    expect(row(page, "ivy@example.com").locator("[data-tt-state]")).to_have_text("invited")
    shot(page, "team-invited")
    first = link.inner_text().strip()
    assert first.startswith(stack.url)
    # A lost link cannot be shown again (it is stored hashed): a new one can be made.
    row(page, "ivy@example.com").locator("button[name=reinvite]").click()
    url = page.locator("[data-tt-invite-url]").inner_text().strip()
    assert url.startswith(f"{stack.url}/invite/") and url != first

    # The teammate, in her own browser (no cookies of the admin's).
    other = page.context.browser.new_context(base_url=stack.url)  # type: ignore[union-attr]
    try:
        invited = other.new_page()
        invited.goto(url)
        expect(invited.locator("[data-tt-invite-email]")).to_have_text("ivy@example.com")
        shot(invited, "invite")
        invited.fill("input[name=name]", "Ivy Green")
        invited.fill("input[name=password]", "short")
        invited.evaluate(
            "document.querySelector('input[name=password]').removeAttribute('minlength')"
        )
        invited.click("button[type=submit]")
        expect(invited.locator("[role=alert]")).to_contain_text("at least 8 characters")
        invited.fill("input[name=password]", "ivy-password-1")
        invited.click("button[type=submit]")
        expect(invited.locator("[data-tt-user]")).to_have_text("ivy@example.com")
        assert invited.url.rstrip("/") == stack.url
        expect(invited.locator("[data-tt-week]")).to_be_visible()
        # Used: the link no longer works.
        invited.goto(url)
        expect(invited.locator("[role=alert]")).to_contain_text("already used")
        expect(invited.locator("input[name=password]")).to_have_count(0)
    finally:
        other.close()
    page.reload()
    expect(row(page, "ivy@example.com").locator("[data-tt-state]")).to_have_text("active")
    expect(row(page, "ivy@example.com")).to_contain_text("Ivy Green")
