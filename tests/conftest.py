"""Shared fixtures: settings, the two storage backends, apps and signed-in clients."""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from server.app import create_app
from server.settings import Settings

ROOT = Path(__file__).resolve().parent.parent
BACKENDS = ("sqlite", "mongo")


def _mongoeco_python() -> Path | None:
    explicit = os.environ.get("TT_MONGOECO_PYTHON")
    if explicit:
        return Path(explicit)
    candidate = ROOT / ".venv-mongo" / "bin" / "python"
    return candidate if candidate.exists() else None


@pytest.fixture(scope="session")
def mongo_server_url() -> Iterator[str]:
    """A MongoDB wire endpoint: TT_TEST_MONGODB_URL, else a mongoeco server we start.

    Never skips: a missing MongoDB must fail the run, not hide the adapter's tests."""
    url = os.environ.get("TT_TEST_MONGODB_URL")
    if url:
        yield url
        return
    python = _mongoeco_python()
    if python is None:
        pytest.fail(
            "no MongoDB for the tests: set TT_TEST_MONGODB_URL or run scripts/test.sh, "
            "which builds .venv-mongo with the mongoeco wire server"
        )
    proc = subprocess.Popen(
        [str(python), str(ROOT / "tests" / "mongo_wire.py")],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    line = proc.stdout.readline().strip()
    if not line.startswith("mongodb://"):
        proc.kill()
        pytest.fail(f"the mongoeco wire server did not start: {line!r}")
    print(
        f"\n[tests] MongoDB adapter runs against the mongoeco wire server at {line}",
        file=sys.stderr,
    )
    try:
        yield line
    finally:
        assert proc.stdin is not None
        proc.stdin.close()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        proc.stdout.close()


def mongo_db_url(server_url: str) -> str:
    """A fresh database on the shared server, so tests never see each other's data."""
    base, _, query = server_url.partition("?")
    base = base.rstrip("/")
    name = f"tt_{secrets.token_hex(6)}"
    return f"{base}/{name}" + (f"?{query}" if query else "")


@pytest.fixture(params=BACKENDS)
def backend_name(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def database_url(backend_name: str, tmp_path: Path, request: pytest.FixtureRequest) -> str:
    if backend_name == "sqlite":
        return f"sqlite:///{tmp_path / 'tasktimer.db'}"
    return mongo_db_url(request.getfixturevalue("mongo_server_url"))


ADMIN_EMAIL = "admin@example.com"
ADMIN_PASSWORD = "admin-password-1"


def make_settings(database_url: str, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "database_url": database_url,
        "secret_key": "test-secret-key",
        "bootstrap_admin_email": ADMIN_EMAIL,
        "bootstrap_admin_password": ADMIN_PASSWORD,
        "scheduler": False,
        "provider_backoff_s": 0.01,
        "provider_max_retry_after_s": 0.2,
        "event_poll_s": 0.1,
        # Cheap hashing keeps the suite fast; production keeps the Argon2id defaults.
        "password_time_cost": 1,
        "password_memory_kib": 1024,
    }
    values.update(overrides)
    return Settings(**values)


@pytest.fixture
def settings(database_url: str) -> Settings:
    return make_settings(database_url)


class Api:
    """A signed-in HTTP client: ``await api.post(path, json)`` returns (status, body)."""

    def __init__(self, client: TestClient[Any, Any], token: str | None = None) -> None:
        self.client = client
        self.token = token

    def _headers(self, extra: dict[str, str] | None) -> dict[str, str]:
        headers = {"Authorization": f"Bearer {self.token}"} if self.token else {}
        headers.update(extra or {})
        return headers

    async def call(
        self, method: str, path: str, json: Any = None, headers: dict[str, str] | None = None
    ) -> tuple[int, Any]:
        response = await self.client.request(
            method, path, json=json, headers=self._headers(headers)
        )
        text = await response.text()
        if response.content_type in ("application/json", "application/problem+json") and text:
            import json as jsonlib

            return response.status, jsonlib.loads(text)
        return response.status, text

    async def get(self, path: str, **kw: Any) -> tuple[int, Any]:
        return await self.call("GET", path, **kw)

    async def post(self, path: str, json: Any = None, **kw: Any) -> tuple[int, Any]:
        return await self.call("POST", path, json if json is not None else {}, **kw)

    async def patch(self, path: str, json: Any = None, **kw: Any) -> tuple[int, Any]:
        return await self.call("PATCH", path, json, **kw)

    async def put(self, path: str, json: Any = None, **kw: Any) -> tuple[int, Any]:
        return await self.call("PUT", path, json, **kw)

    async def delete(self, path: str, **kw: Any) -> tuple[int, Any]:
        return await self.call("DELETE", path, **kw)

    async def login(self, email: str, password: str) -> Api:
        status, body = await Api(self.client).post(
            "/api/v1/auth/login", {"email": email, "password": password}
        )
        assert status == 200, body
        return Api(self.client, body["token"])

    async def new_user(
        self, email: str, *, role: str = "user", password: str = "user-password-1"
    ) -> tuple[Api, dict[str, Any]]:
        status, user = await self.post(
            "/api/v1/users",
            {"email": email, "name": email.split("@")[0], "password": password, "role": role},
        )
        assert status == 201, user
        return await self.login(email, password), user


AppFactory = Callable[..., Awaitable[TestClient[Any, Any]]]


@pytest.fixture
async def make_client(
    aiohttp_client: Any, settings: Settings
) -> AsyncIterator[Callable[..., Awaitable[TestClient[Any, Any]]]]:
    async def factory(**overrides: Any) -> TestClient[Any, Any]:
        app_settings = Settings(**{**settings.model_dump(), **overrides})
        client: TestClient[Any, Any] = await aiohttp_client(create_app(app_settings))
        return client

    yield factory


@pytest.fixture
async def client(make_client: Any) -> TestClient[Any, Any]:
    result: TestClient[Any, Any] = await make_client()
    return result


@pytest.fixture
async def admin(client: TestClient[Any, Any]) -> Api:
    return await Api(client).login(ADMIN_EMAIL, ADMIN_PASSWORD)


# -- the run's own report of which backends ran ------------------------------------------

_BACKEND_RESULTS: dict[str, dict[str, int]] = {}


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    if report.when != "call" and not (report.when == "setup" and report.outcome != "passed"):
        return
    for backend in BACKENDS:
        if (
            f"[{backend}" in report.nodeid
            or f"-{backend}]" in report.nodeid
            or (backend == "mongo" and "test_multiprocess" in report.nodeid)
        ):
            counts = _BACKEND_RESULTS.setdefault(backend, {})
            counts[report.outcome] = counts.get(report.outcome, 0) + 1


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if not _BACKEND_RESULTS:
        return
    terminalreporter.section("storage backends")
    for backend in BACKENDS:
        counts = _BACKEND_RESULTS.get(backend, {})
        summary = ", ".join(f"{n} {outcome}" for outcome, n in sorted(counts.items())) or "none"
        where = (
            "TT_TEST_MONGODB_URL"
            if backend == "mongo" and os.environ.get("TT_TEST_MONGODB_URL")
            else "mongoeco wire server"
            if backend == "mongo"
            else "embedded file"
        )
        terminalreporter.write_line(f"{backend:7} ({where}): {summary}")


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    # In CI, a run that exercised SQLite but silently not MongoDB must not pass.
    if not os.environ.get("CI"):
        return
    ran_sqlite = _BACKEND_RESULTS.get("sqlite", {}).get("passed", 0)
    ran_mongo = sum(_BACKEND_RESULTS.get("mongo", {}).values())
    if ran_sqlite and not ran_mongo and exitstatus == 0:
        session.exitstatus = 1
        print("\nERROR: tests ran on SQLite but none on MongoDB", file=sys.stderr)
