"""Signing in and out in a real browser; redirect and return; 404 and 403 pages."""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

import pytest
from playwright.sync_api import Page, expect

from .conftest import ADMIN_EMAIL, USER_PASSWORD, Stack, shot, sign_in

pytestmark = pytest.mark.web


def test_wrong_password_shows_an_alert_and_sets_no_cookie(page: Page, stack: Stack) -> None:
    page.goto("/")
    shot(page, "sign-in")
    form = page.locator("form[name=sign-in]")
    form.locator("input[name=email]").fill(ADMIN_EMAIL)
    form.locator("input[name=password]").fill("not the password")
    form.locator("button[type=submit]").click()
    expect(page.locator("[role=alert]")).to_contain_text("Wrong e-mail or password")
    assert page.context.cookies() == []
    expect(page.locator("[data-tt-user]")).to_have_count(0)
    shot(page, "sign-in-wrong-password")


def test_sign_in_sets_a_safe_cookie_and_sign_out_ends_the_session(page: Page, stack: Stack) -> None:
    sign_in(page)
    (cookie,) = page.context.cookies()
    assert cookie["httpOnly"] and cookie["sameSite"] == "Lax" and cookie["path"] == "/"
    assert page.evaluate("document.cookie") == ""  # page scripts cannot read the session
    nav = page.locator("nav")
    for path in ("/", "/reports", "/tasks", "/integrations", "/team"):
        expect(nav.locator(f'a[href="{path}"]')).to_have_count(1)
    page.locator("button[name=sign-out]").click()
    expect(page.locator("form[name=sign-in]")).to_be_visible()
    assert page.context.cookies() == []
    # The old session value no longer works, even when presented again.
    page.context.add_cookies([{**cookie}])
    page.goto("/team")
    expect(page.locator("form[name=sign-in]")).to_be_visible()


def test_signed_out_visit_returns_to_the_asked_page_after_sign_in(page: Page, stack: Stack) -> None:
    page.goto("/team?x=1")
    assert parse_qs(urlsplit(page.url).query)["next"] == ["/team?x=1"]
    sign_in(page, path=page.url)
    assert page.url == f"{stack.url}/team?x=1"
    expect(page.locator("form[name=add-user]")).to_be_visible()


def test_unknown_page_and_admin_page_for_a_user(page: Page, stack: Stack) -> None:
    user = stack.new_user()
    sign_in(page, user["email"], USER_PASSWORD)
    nav = page.locator("nav")
    expect(nav.locator('a[href="/team"]')).to_have_count(0)
    expect(nav.locator('a[href="/integrations"]')).to_have_count(0)
    response = page.goto("/team")
    assert response is not None and response.status == 403
    expect(page.locator("[role=alert]")).to_contain_text("admins")
    expect(page.locator("[data-tt-user]")).to_have_text(user["email"])
    shot(page, "forbidden")
    response = page.goto("/no/such/page")
    assert response is not None and response.status == 404
    expect(page.locator("h1")).to_have_text("Page not found")
    expect(page.locator("[data-tt-user]")).to_have_text(user["email"])
    shot(page, "not-found")


def test_first_sign_in_adopts_the_browsers_time_zone(page: Page, stack: Stack) -> None:
    user = stack.new_user()
    users = {u["id"]: u for u in stack.api.request("GET", "/users")["items"]}
    assert users[user["id"]].get("time_zone", "UTC") == "UTC"
    sign_in(page, user["email"], USER_PASSWORD)  # the browser runs in Europe/Warsaw
    expect(page.locator("body")).to_have_attribute("data-tt-tz", "Europe/Warsaw")
    expect(page.locator("[data-tt-week]")).to_contain_text("Europe/Warsaw")
    page.reload()
    expect(page.locator("body")).not_to_have_attribute("data-tt-tz-unset", "")


def test_an_open_page_follows_a_deactivation_to_the_sign_in_page(page: Page, stack: Stack) -> None:
    user = stack.new_user()
    sign_in(page, user["email"], USER_PASSWORD)
    expect(page.locator("[data-tt-week]")).to_be_visible()
    stack.api.request("PATCH", f"/users/{user['id']}", {"active": False})
    # The event stream ends with the session; the page notices and leaves.
    expect(page.locator("form[name=sign-in]")).to_be_visible(timeout=15_000)
    expect(page.locator("[data-tt-user]")).to_have_count(0)


UNLABELLED = """() => [...document.querySelectorAll("input, select, textarea, button")]
  .filter((el) => el.type !== "hidden" && !el.closest("[hidden]"))
  .filter((el) => {
    if (el.getAttribute("aria-label")) return false;
    if (el.tagName === "BUTTON") return !el.textContent.trim();
    return !(el.labels && el.labels.length);
  })
  .map((el) => el.outerHTML.slice(0, 120))"""


def test_every_control_has_a_label(page: Page, stack: Stack) -> None:
    page.goto("/")
    assert page.evaluate(UNLABELLED) == []
    sign_in(page)
    stack.new_user("labels@example.com")
    for path in ("/", "/?task-search=x", "/team", "/reports"):
        page.goto(path)
        assert page.evaluate(UNLABELLED) == [], path
    # Keyboard: the first Tab reaches the skip link, which leads to the content.
    page.goto("/")
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.className") == "skip"
