"""Browser-test harness for the web app: the real server process (`python -m server`)
with the fake providers behind it (tests/e2e/stack.py), and Debian's Chromium driven by
Playwright. One server and one browser per test module, a fresh browser context
(cookies, storage) per test."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser, Page, expect, sync_playwright

from tests.chromium import ARGS, CHROMIUM, require_chromium
from tests.e2e.loopthread import LoopThread
from tests.e2e.stack import Backend, Providers, Server

ROOT = Path(__file__).resolve().parents[2]
SHOTS = ROOT / "test-artifacts" / "web"
ADMIN_EMAIL = "admin@example.com"
ADMIN_PASSWORD = "correct horse battery staple"
USER_PASSWORD = "teammate-password-1"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    require_chromium(items, "web", "web app")


@dataclass
class Stack:
    """The running server, its fake providers and an admin API client (bearer token)."""

    url: str
    api: Backend
    providers: Providers
    server: Server
    _users: int = field(default=0)

    def new_user(
        self, email: str | None = None, *, role: str = "user", password: str = USER_PASSWORD
    ) -> dict[str, Any]:
        """A teammate created through the API, ready to sign in with ``password``."""
        self._users += 1
        email = email or f"mate{self._users}@example.com"
        user: dict[str, Any] = self.api.request(
            "POST",
            "/users",
            {
                "email": email,
                "name": email.split("@")[0].title(),
                "password": password,
                "role": role,
            },
        )
        return user

    def new_task(self, name: str, parent_id: str | None = None) -> dict[str, Any]:
        body: dict[str, Any] = {"name": name}
        if parent_id:
            body["parent_id"] = parent_id
        task: dict[str, Any] = self.api.request("POST", "/tasks", body)
        return task

    def log(self) -> str:
        return self.server.log_path.read_text(errors="replace")


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """A fresh server (own SQLite file) for each test module: modules never see each
    other's users, tasks or integrations."""
    workdir = tmp_path_factory.mktemp("web")
    loop = LoopThread()
    try:
        providers = Providers(loop, ADMIN_EMAIL)
        # No background polling for upstream changes: tests force syncs and assert their
        # counts, which a poll picking up the same change first would make flaky.
        env = {**providers.env(), "TT_SYNC_POLL_S": "0"}
        server = Server(workdir, ADMIN_EMAIL, ADMIN_PASSWORD, env)
        try:
            yield Stack(
                server.url,
                Backend(server, providers, ADMIN_EMAIL, ADMIN_PASSWORD),
                providers,
                server,
            )
        finally:
            server.close()
    finally:
        loop.close()


# Module scope, not session: sync Playwright runs an event loop in this thread while it is
# open, and the async (pytest-aiohttp) tests of other directories need the thread free.
@pytest.fixture(scope="module")
def chromium() -> Iterator[Browser]:
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=list(ARGS)
        )
        try:
            yield browser
        finally:
            browser.close()


@pytest.fixture
def page(chromium: Browser, stack: Stack) -> Iterator[Page]:
    """A new browser context (no cookies) with one page; console errors fail the test."""
    context = chromium.new_context(base_url=stack.url, timezone_id="Europe/Warsaw", locale="en-GB")
    context.set_default_timeout(10_000)
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))

    def on_console(message: Any) -> None:
        # Pages answered with 4xx on purpose log "Failed to load resource"; failed
        # sub-resources are caught by status below instead.
        if message.type == "error" and "Failed to load resource" not in message.text:
            errors.append(message.text)

    def on_response(response: Any) -> None:
        if response.status >= 400 and response.request.resource_type in (
            "script",
            "stylesheet",
            "image",
        ):
            errors.append(f"{response.status} {response.url}")

    page.on("console", on_console)
    page.on("response", on_response)
    try:
        yield page
    finally:
        context.close()
    # Script errors and CSP violations show up here: none is acceptable.
    assert not errors, f"browser errors: {errors}"


def shot(page: Page, name: str) -> Path:
    """Saves a full-page screenshot to test-artifacts/web/<name>.png."""
    SHOTS.mkdir(parents=True, exist_ok=True)
    path = SHOTS / f"{re.sub(r'[^A-Za-z0-9_.-]', '_', name)}.png"
    page.screenshot(path=str(path), full_page=True)
    return path


def sign_in(
    page: Page, email: str = ADMIN_EMAIL, password: str = ADMIN_PASSWORD, path: str = "/"
) -> None:
    """Signs in through the sign-in form (at ``path``, which redirects there when
    signed out) and waits for the signed-in layout."""
    page.goto(path)
    form = page.locator("form[name=sign-in]")
    form.locator("input[name=email]").fill(email)
    form.locator("input[name=password]").fill(password)
    form.locator("button[type=submit]").click()
    expect(page.locator("[data-tt-user]")).to_have_text(email)
    # At the first sign-in the page adopts the browser's time zone and reloads once.
    # (No wait_for_function: its polling evaluates strings, which our CSP forbids.)
    expect(page.locator("body[data-tt-tz-unset]")).to_have_count(0)
    page.wait_for_load_state()
