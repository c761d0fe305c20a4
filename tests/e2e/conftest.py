"""End-to-end harness: real headless Chromium with the unpacked extension, site pages
answered with tests/fixtures through request routing, and a Tasktimer backend."""

from __future__ import annotations

import json
import mimetypes
import shutil
import urllib.parse
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from playwright.sync_api import BrowserContext, Page, Route, sync_playwright

from tests.chromium import ARGS, CHROMIUM, require_chromium

from .loopthread import LoopThread
from .stack import Backend, Item, Providers, Server

ROOT = Path(__file__).resolve().parents[2]
EXTENSION = ROOT / "extension"
FIXTURES = ROOT / "tests" / "fixtures"
ARTIFACTS = ROOT / "test-artifacts"

SITES = {
    "asana": ("https://app.asana.com", "asana.html"),
    "heyspace": ("https://app.hey.space", "heyspace.html"),
    "pivotaltracker": ("https://www.pivotaltracker.com", "pivotal.html"),
}
# Hosts that serve a site's fixture page besides its own (TimeCamp Planner is HeySpace).
EXTRA_HOSTS = {"https://planner.timecamp.com": "heyspace.html"}
FIXTURE_PAGES = {
    "asana": "asana.html",
    "heyspace": "heyspace.html",
    "pivotaltracker": "pivotal.html",
}
ADMIN_EMAIL = "admin@example.com"
ADMIN_PASSWORD = "correct horse battery staple"
# Ids in the fake providers' seeded data (tests/fakes).
ASANA_PROJECT = "1000000000000002"
ASANA_WS = "1000000000000001"
HEYSPACE_PROJECT = "11111111-1111-4111-8111-111111111111"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    require_chromium(items, "e2e", "extension")


# ------------------------------------------------------------------------ backend


@pytest.fixture(autouse=True)
def no_running_timer(backend: Backend) -> None:
    """Every extension test starts with no timer running."""
    backend.api("POST", "/timer/stop", {})


def parse(iso: str) -> float:
    return datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp()


def entries_of(backend: Backend, task_id: str, since: float) -> list[dict[str, Any]]:
    """The task's entries that started after an hour before `since`."""
    start = datetime.fromtimestamp(since - 3600, UTC).isoformat().replace("+00:00", "Z")
    items = backend.api("GET", f"/entries?from={start}&limit=500")["items"]
    return [e for e in items if e["task_id"] == task_id]


def task_id_of(backend: Backend, item: Item) -> str:
    result = backend.api(
        "POST", "/resolve", {"service": item.service, "external_ids": [item.external_id]}
    )["results"][item.external_id]
    return str(result["task_id"])


@pytest.fixture(scope="session")
def backend(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Backend]:
    """The real server process with the fake providers behind it, integrations enabled."""
    workdir = tmp_path_factory.mktemp("stack")
    loop = LoopThread()
    try:
        providers = Providers(loop, ADMIN_EMAIL)
        server = Server(workdir, ADMIN_EMAIL, ADMIN_PASSWORD, providers.env())
        try:
            backend = Backend(server, providers, ADMIN_EMAIL, ADMIN_PASSWORD)
            backend.enable_integrations()
            yield backend
        finally:
            server.close()
    finally:
        loop.close()


@dataclass
class World:
    """Items imported before the tests start, per service."""

    items: dict[str, list[Item]]


@pytest.fixture(scope="session")
def world(backend: Backend) -> World:
    labels = {"asana": "Launch task", "heyspace": "Design card", "pivotaltracker": "Story"}
    items = {
        service: [backend.new_item(service, f"{label} {i + 1}") for i in range(6)]
        for service, label in labels.items()
    }
    for service in items:
        backend.sync(service)
    return World(items)


# ------------------------------------------------------------------------ fixture pages


def page_data(
    service: str,
    items: list[Item],
    subtasks: list[Item] | None = None,
    flagged: set[str] | None = None,
) -> dict[str, Any]:
    """The data a fixture page renders, in the shape its script expects. ``flagged`` ids
    are read-only rows (Asana) or expanded stories (Pivotal)."""
    flagged = flagged or set()
    if service == "asana":
        sections: list[dict[str, Any]] = [
            {"gid": str(1_100_000_000_000_000 + s), "name": f"Section {s + 1}", "tasks": []}
            for s in range(3)
        ]
        for i, item in enumerate(items):
            subs = (
                [{"gid": s.external_id, "name": s.name} for s in (subtasks or [])] if i == 0 else []
            )
            sections[i % 3]["tasks"].append(
                {
                    "gid": item.external_id,
                    "name": item.name,
                    "subtasks": subs,
                    "readOnly": item.external_id in flagged,
                }
            )
        return {
            "workspace": "1000000000000001",
            "project": "1000000000000002",
            "myTasks": "1000000000000003",
            "sections": sections,
        }
    if service == "heyspace":
        lists: list[dict[str, Any]] = [
            {"id": f"list-{n}", "name": name, "cards": []}
            for n, name in enumerate(["To do", "Doing", "Done"])
        ]
        for i, item in enumerate(items):
            lists[i % 3]["cards"].append({"id": item.external_id, "name": item.name})
        return {"project": "11111111-1111-4111-8111-111111111111", "lists": lists}
    panels: list[dict[str, Any]] = [
        {"name": name, "stories": []} for name in ("Current", "Backlog", "Icebox")
    ]
    for i, item in enumerate(items):
        panels[i % 3]["stories"].append(
            {"id": item.external_id, "name": item.name, "expanded": item.external_id in flagged}
        )
    return {"project": "1000", "panels": panels}


def _route_site(context: BrowserContext, origin: str, page_file: str) -> None:
    html = (FIXTURES / page_file).read_bytes()

    def handle(route: Route) -> None:
        path = urlsplit(route.request.url).path
        if path.startswith("/__fixtures__/"):
            file = (FIXTURES / path.removeprefix("/__fixtures__/")).resolve()
            if file.parent != FIXTURES.resolve() or not file.is_file():
                route.fulfill(status=404, body="not found")
                return
            route.fulfill(
                body=file.read_bytes(),
                content_type=mimetypes.guess_type(file.name)[0] or "text/plain",
            )
        elif route.request.resource_type == "document":
            route.fulfill(body=html, content_type="text/html; charset=utf-8")
        else:
            route.fulfill(status=404, body="not found")

    context.route(f"{origin}/**", handle)


# ------------------------------------------------------------------------ browser


@dataclass
class Browser:
    context: BrowserContext
    extension_id: str
    backend: Backend

    def ext_url(self, path: str) -> str:
        return f"chrome-extension://{self.extension_id}/{path}"

    @property
    def worker(self) -> Any:
        return self.context.service_workers[0]

    def open_site(
        self,
        service: str,
        path: str,
        items: list[Item],
        subtasks: list[Item] | None = None,
        *,
        origin: str | None = None,
        flagged: set[str] | None = None,
    ) -> Page:
        page = self.context.new_page()
        data = page_data(service, items, subtasks, flagged)
        page.add_init_script(f"window.__fixtureData = {json.dumps(data)};")
        page.goto((origin or SITES[service][0]) + path)
        return page

    def route_host(self, origin: str, service: str) -> None:
        """Serves a site's fixture page at another origin (a custom host)."""
        _route_site(self.context, origin, FIXTURE_PAGES[service])

    def options(self) -> Page:
        page = self.context.new_page()
        page.goto(self.ext_url("src/options/options.html"))
        return page

    def popup(self, url: str | None = None) -> Page:
        page = self.context.new_page()
        query = f"?url={urllib.parse.quote(url, safe='')}" if url else ""
        page.goto(self.ext_url(f"src/popup/popup.html{query}"))
        return page

    def sign_in(self) -> None:
        page = self.options()
        page.fill("input[name=server_url]", self.backend.url)
        page.fill("input[name=email]", self.backend.email)
        page.fill("input[name=password]", self.backend.password)
        page.click("button[type=submit]")
        page.wait_for_selector(f"[data-tasktimer-signed-in]:has-text('{self.backend.email}')")
        page.close()

    def count_requests(self) -> None:
        """Counts the worker's server requests per API path, from now on."""
        self.worker.evaluate(
            """() => {
              const counts = (globalThis.__tasktimerRequests = {});
              const original = globalThis.__tasktimerFetch ?? globalThis.fetch;
              globalThis.__tasktimerFetch = original;
              globalThis.fetch = (input, init) => {
                const path = new URL(String(input)).pathname;
                counts[path] = (counts[path] ?? 0) + 1;
                return original(input, init);
              };
            }"""
        )

    def requests(self) -> dict[str, int]:
        return dict(self.worker.evaluate("() => ({...globalThis.__tasktimerRequests})"))


@contextmanager
def launch(profile: Path, backend: Backend) -> Iterator[Browser]:
    """Chromium with the unpacked extension on a profile directory (reusable: a second
    launch on the same directory is a browser restart)."""
    ARTIFACTS.mkdir(exist_ok=True)
    with sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(
            str(profile),
            executable_path=CHROMIUM,
            headless=True,
            args=[
                f"--disable-extensions-except={EXTENSION}",
                f"--load-extension={EXTENSION}",
                *ARGS,
            ],
        )
        try:
            worker = (
                context.service_workers[0]
                if context.service_workers
                else context.wait_for_event("serviceworker")
            )
            extension_id = urlsplit(worker.url).netloc
            for origin, page_file in SITES.values():
                _route_site(context, origin, page_file)
            for origin, page_file in EXTRA_HOSTS.items():
                _route_site(context, origin, page_file)
            yield Browser(context, extension_id, backend)
        finally:
            context.close()


@pytest.fixture
def browser(tmp_path: Path, backend: Backend) -> Iterator[Browser]:
    with launch(tmp_path / "profile", backend) as started:
        yield started
    shutil.rmtree(tmp_path / "profile", ignore_errors=True)


@pytest.fixture(scope="module")
def module_browser(tmp_path_factory: pytest.TempPathFactory, backend: Backend) -> Iterator[Browser]:
    """One signed-in browser for a whole module of tests that do not change its profile."""
    profile = tmp_path_factory.mktemp("profile")
    with launch(profile, backend) as started:
        started.sign_in()
        yield started
    shutil.rmtree(profile, ignore_errors=True)


@pytest.fixture
def signed_in(browser: Browser) -> Browser:
    browser.sign_in()
    return browser
