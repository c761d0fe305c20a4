"""Command line: ``python -m server`` (serve) and ``python -m server create-admin``."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import getpass
import logging
import os
import sys
import time
from typing import Any, TextIO

from aiohttp import web
from pydantic import ValidationError

from .jsonutil import dumps_str
from .settings import Settings

GC_YOUNG_THRESHOLD = 10_000


class JsonFormatter(logging.Formatter):
    """One JSON object per line, with the request id where there is one. It runs for every
    request (the access log), so the timestamp text is made once per second."""

    _second = -1
    _stamp = ""

    def _time(self, created: float) -> str:
        second = int(created)
        if second != self._second:
            self._second = second
            self._stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(second))
        return self._stamp

    def format(self, record: logging.LogRecord) -> str:
        payload: dict[str, Any] = {
            "time": self._time(record.created),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key in ("request_id", "user_id"):
            value = getattr(record, key, None)
            if value:
                payload[key] = value
        if record.exc_info:
            payload["error"] = self.formatException(record.exc_info)
        return dumps_str(payload)


class LoopBatchedHandler(logging.StreamHandler[TextIO]):
    """A stream handler that writes the lines logged during one event-loop iteration
    with one write, at the end of that iteration.

    The access log has a line per request, and a write per line costs a system call on
    the event loop (which also hands the GIL to the database thread and waits to get it
    back). Lines logged outside the loop's thread, warnings and errors are written at once,
    with whatever was waiting before them, so the order is kept and nothing important
    waits; ``flush`` (called at shutdown) writes what is left."""

    def __init__(self, stream: TextIO | None = None) -> None:
        super().__init__(stream)
        self._lines: list[str] = []
        self._scheduled: asyncio.AbstractEventLoop | None = None

    def emit(self, record: logging.LogRecord) -> None:
        # Runs under the handler's lock (Handler.handle).
        try:
            self._lines.append(self.format(record) + self.terminator)
            try:
                loop: asyncio.AbstractEventLoop | None = asyncio.get_running_loop()
            except RuntimeError:
                loop = None
            if loop is None or record.levelno >= logging.WARNING:
                self._write()
            elif self._scheduled is not loop:
                self._scheduled = loop
                loop.call_soon(self._write_soon)
        except Exception:
            self.handleError(record)

    def _write(self) -> None:
        if self._lines:
            text = "".join(self._lines)
            self._lines.clear()
            self.stream.write(text)
            self.stream.flush()

    def _write_soon(self) -> None:
        with self.lock or contextlib.nullcontext():
            self._scheduled = None
            try:
                self._write()
            except Exception:
                self._lines.clear()
                sys.stderr.write("--- logging error: could not write log lines\n")

    def flush(self) -> None:
        with self.lock or contextlib.nullcontext():
            self._write()


def _setup_logging(level: str) -> None:
    # Caller, thread and process lookups cost time on every record and are not logged.
    logging._srcfile = None
    logging.logThreads = False
    logging.logProcesses = False
    logging.logMultiprocessing = False
    handler = LoopBatchedHandler()
    handler.setFormatter(JsonFormatter())
    logging.basicConfig(level=level.upper(), handlers=[handler], force=True)


def _settings() -> Settings:
    try:
        return Settings()
    except ValidationError as exc:
        sys.exit(f"invalid settings: {exc}")


def serve(settings: Settings) -> None:
    from .app import create_app

    _setup_logging(settings.log_level)
    # The database thread hands results back to the event loop; a shorter GIL switch
    # interval than the default 5 ms keeps it from waiting behind a busy loop.
    sys.setswitchinterval(0.001)
    # A young-generation collection costs what is alive among the objects made since the
    # last one (the requests in flight), not how many were made: collecting every 10,000
    # allocations instead of every 700 is a tenth of the collections for the same work
    # each. The older generations follow at the default ratios.
    gc.set_threshold(GC_YOUNG_THRESHOLD, *gc.get_threshold()[1:])
    app = create_app(settings)
    where = f"http://{settings.host}:{settings.port}"
    db = "MongoDB" if settings.is_mongo else f"SQLite file {settings.sqlite_path}"

    def announce(_: Any) -> None:
        print(f"Tasktimer listening on {where} ({db})", flush=True)

    web.run_app(
        app,
        host=settings.host,
        port=settings.port,
        access_log=None,
        print=announce,
        handle_signals=True,
    )


async def _create_admin(settings: Settings, email: str, password: str, name: str) -> None:
    from .services.container import build_accounts
    from .store.factory import open_backend

    backend = await open_backend(settings)
    try:
        await build_accounts(settings, backend).create_admin(email, password, name)
    finally:
        await backend.close()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m server", description="Tasktimer server")
    sub = parser.add_subparsers(dest="command")
    sub.add_parser("serve", help="run the HTTP server (default)")
    admin = sub.add_parser("create-admin", help="create an admin user")
    admin.add_argument("--email", required=True)
    admin.add_argument("--name", default="")
    args = parser.parse_args(argv)
    settings = _settings()
    if args.command == "create-admin":
        password = os.environ.get("TT_ADMIN_PASSWORD") or getpass.getpass("Password: ")
        if len(password) < 8:
            sys.exit("the password needs at least 8 characters")
        from .domain.errors import DomainError
        from .store.base import DuplicateKey

        try:
            asyncio.run(_create_admin(settings, args.email, password, args.name))
        except (DomainError, DuplicateKey) as exc:
            sys.exit(f"could not create the admin: {exc}")
        print(f"admin {args.email} created")
        return
    serve(settings)


if __name__ == "__main__":
    main()
