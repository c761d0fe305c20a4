"""Schemathesis against the live server: every operation of the OpenAPI document (read
from the server, so new routes are picked up by themselves), as the admin and as a
regular user, with the three fake providers connected behind the integration endpoints.
All phases (examples, coverage, fuzzing, stateful) and every built-in check; any failure
fails the test (API.md "HTTP details": a schema-driven fuzzer finds no difference
between the document and the server).

Bounded and reproducible: a fixed seed and a few examples per operation. bench/fuzz.py
runs the long version through the schemathesis command line (either store). The engine
is driven directly: schemathesis' pytest plugin does not run under pytest 9.
"""

from __future__ import annotations

import contextlib
import socket
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
import schemathesis
from aiohttp import web

from server.app import create_app
from tests.conftest import ADMIN_EMAIL, ADMIN_PASSWORD, make_settings
from tests.e2e.loopthread import LoopThread
from tests.fakes.connected import providers
from tests.fuzzing import TokenPool, fuzz_config, prepare, run_schemathesis

SEED = 20261201
MAX_EXAMPLES = 5


@dataclass
class Stack:
    base: str
    tokens: dict[str, list[str]]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="module")
def fuzz_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """The server (SQLite) and the fakes on a loop in a background thread: schemathesis
    sends its requests synchronously from the test's thread."""
    thread = LoopThread()
    exits = contextlib.AsyncExitStack()
    database = tmp_path_factory.mktemp("fuzz") / "fuzz.db"

    async def start() -> Stack:
        fakes = await exits.enter_async_context(providers())
        port = _free_port()
        base = f"http://127.0.0.1:{port}"
        app_settings = make_settings(
            f"sqlite:///{database}", **fakes.urls, port=port, public_url=base
        )
        runner = web.AppRunner(create_app(app_settings), handle_signals=False, shutdown_timeout=1)
        await runner.setup()
        exits.push_async_callback(runner.cleanup)
        await web.TCPSite(runner, "127.0.0.1", port).start()
        return Stack(base, await prepare(base, ADMIN_EMAIL, ADMIN_PASSWORD, fakes))

    try:
        yield thread.run(start, timeout=120)
    finally:
        thread.run(exits.aclose)
        thread.close()


@pytest.mark.parametrize("role", ["admin", "user"])
def test_the_server_answers_as_its_document_says(fuzz_stack: Stack, role: str) -> None:
    config = fuzz_config(
        seed=SEED,
        max_examples=MAX_EXAMPLES,
        phases=("examples", "coverage", "fuzzing", "stateful"),
    )
    schema = schemathesis.openapi.from_url(f"{fuzz_stack.base}/api/v1/openapi.json", config=config)
    tokens = fuzz_stack.tokens[role]

    @schema.auth(retry_on=[401])
    class _Tokens(TokenPool):
        def __init__(self) -> None:
            super().__init__(tokens)

    operations = [op.ok() for op in schema.get_all_operations()]
    assert len(operations) >= 40  # the whole document, not a filtered part of it
    failures, cases = run_schemathesis(schema)
    assert cases > 10 * len(operations)
    assert failures == [], "\n\n".join(failures)
