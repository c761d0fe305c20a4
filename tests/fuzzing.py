"""What the schemathesis runs share (tests/api/test_fuzz.py and bench/fuzz.py): the
server prepared with all tools connected, and a schemathesis auth provider. The fuzzer
calls POST /auth/logout too, which revokes the token it holds; on the next 401 the
provider hands out a fresh one and the request is replayed, so every operation keeps
being exercised with a valid token."""

from __future__ import annotations

from typing import Any

import aiohttp

from tests.conftest import ROOT, Api
from tests.fakes.connected import Providers, connect_all


class TokenPool:
    """``get``/``set`` of a schemathesis auth provider: hands out API tokens issued before
    the run, the next one after each 401. Signing in during the run would not do: the
    fuzzer itself sends wrong passwords for the addresses it learns (GET /me), and the
    login throttle then rightly locks them."""

    def __init__(self, tokens: list[str]) -> None:
        self._tokens = list(tokens)

    def get(self, case: Any, context: Any) -> str:
        if not self._tokens:
            raise RuntimeError("the fuzz run used up its pre-issued tokens")
        return self._tokens.pop(0)

    def set(self, case: Any, data: str, context: Any) -> None:
        case.headers = {**(case.headers or {}), "Authorization": f"Bearer {data}"}


class RemoteClient:
    """What ``tests.conftest.Api`` needs from a client, over a real socket."""

    def __init__(self, session: aiohttp.ClientSession, base: str) -> None:
        self.session = session
        self.base = base

    async def request(self, method: str, path: str, **kw: Any) -> aiohttp.ClientResponse:
        return await self.session.request(method, self.base + path, **kw)

    async def get(self, path: str, **kw: Any) -> aiohttp.ClientResponse:
        return await self.request("GET", path, **kw)


USER_EMAIL = "fuzz-user@corp.local"
USER_PASSWORD = "fuzz-user-password"


async def prepare(
    base: str, admin_email: str, admin_password: str, fakes: Providers, *, tokens: int = 60
) -> dict[str, list[str]]:
    """Connect the three tools as the admin and add a regular user with a role on every
    imported tree; ``tokens`` API tokens for each of them, by role."""
    async with aiohttp.ClientSession() as session:
        client: Any = RemoteClient(session, base)
        admin = await Api(client).login(admin_email, admin_password)
        await connect_all(admin, fakes)
        _, user_doc = await admin.new_user(USER_EMAIL, password=USER_PASSWORD)
        _, tasks = await admin.get("/api/v1/tasks?limit=500")
        for task in tasks["items"]:
            if task["parent_id"] is None:
                await admin.put(
                    f"/api/v1/tasks/{task['id']}/members/{user_doc['id']}", {"role": "regular"}
                )
        issued: dict[str, list[str]] = {}
        for role, email, password in (
            ("admin", admin_email, admin_password),
            ("user", USER_EMAIL, USER_PASSWORD),
        ):
            issued[role] = [
                str((await Api(client).login(email, password)).token) for _ in range(tokens)
            ]
        return issued


def fuzz_config(*, seed: int, max_examples: int, phases: tuple[str, ...]) -> Any:
    """The repository's schemathesis.toml with a fixed seed, a bounded example count, the
    given phases and every built-in check switched on."""
    from schemathesis.config import SchemathesisConfig

    checks = [
        "not_a_server_error",
        "status_code_conformance",
        "content_type_conformance",
        "response_schema_conformance",
        "response_headers_conformance",
        "positive_data_acceptance",
        "negative_data_rejection",
        "use_after_free",
        "ensure_resource_availability",
        "missing_required_header",
        "ignored_auth",
        "unsupported_method",
        "allow_header_conformance",
    ]
    every_phase = ("examples", "coverage", "fuzzing", "stateful")
    head = [f"seed = {seed}", "workers = 1", "[generation]", f"max-examples = {max_examples}"]
    head.append('database = "none"')
    for phase in every_phase:
        head += [f"[phases.{phase}]", f"enabled = {str(phase in phases).lower()}"]
    for name in checks:
        head += [f"[checks.{name}]", "enabled = true"]
    own = (ROOT / "schemathesis.toml").read_text()
    return SchemathesisConfig.from_str("\n".join(head) + "\n" + own)


def run_schemathesis(schema: Any) -> tuple[list[str], int]:
    """Run every phase the schema's config enables; (unique failures as text, cases)."""
    from schemathesis.engine import events, from_schema

    found: dict[tuple[str, str], str] = {}
    cases = 0
    for event in from_schema(schema).execute():
        recorder = getattr(event, "recorder", None)
        if isinstance(event, events.ScenarioFinished | events.FuzzScenarioFinished) and recorder:
            cases += len(recorder.cases)
            for checks in recorder.checks.values():
                for check in checks:
                    if check.failure_info is not None:
                        failure = check.failure_info.failure
                        key = (str(failure.operation), str(failure.title))
                        found.setdefault(key, f"{key[0]}: {key[1]}: {failure.message[:500]}")
        elif isinstance(event, events.NonFatalError):
            found.setdefault((event.label, "error"), f"{event.label}: error: {event.info.message}")
        elif isinstance(event, events.FatalError):
            found.setdefault(("run", "fatal"), f"fatal: {event.exception!r}")
        elif isinstance(event, events.EngineFinished):
            for failure in event.failures:
                key = (str(failure.operation), str(failure.title))
                found.setdefault(key, f"{key[0]}: {key[1]}: {failure.message[:500]}")
    return sorted(found.values()), cases
