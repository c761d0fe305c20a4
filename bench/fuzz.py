"""Schemathesis against a running server, the way a new user's fuzzer would meet it.

Starts the three fake providers (in this process), ``python -m server`` on SQLite or on
MongoDB over the wire (mongoeco), connects all three tools through the API so every
integration endpoint is reachable, adds a regular user, then runs ``schemathesis run``
(all phases: examples, coverage, fuzzing, stateful; every check) once as the admin and
once as the regular user, and prints a table of failures per run.

    .venv/bin/python -m bench.fuzz                       # SQLite, 30 examples per operation
    .venv/bin/python -m bench.fuzz --backend mongo --max-examples 100 --seed 7

Exit status 1 when any run reports a failure. The suite's short version is
tests/api/test_fuzz.py.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import secrets
import shutil
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

from bench._common import (
    ADMIN_EMAIL,
    MONGO_PYTHON,
    REPO,
    BenchError,
    interrupt_on_signals,
    mongo_wire,
    print_table,
    tasktimer_server,
    with_database,
)
from tests.fakes.connected import providers
from tests.fuzzing import prepare

PHASES = "examples,coverage,fuzzing,stateful"


@contextlib.contextmanager
def database(backend: str, workdir: Path, timeout: float) -> Iterator[str]:
    if backend == "sqlite":
        yield f"sqlite:///{workdir / 'fuzz.db'}"
        return
    with mongo_wire(MONGO_PYTHON, workdir, timeout) as uri:
        yield with_database(uri, f"fuzz_{secrets.token_hex(4)}")


async def schemathesis(
    base: str, tokens: list[str], args: argparse.Namespace, report: Path
) -> tuple[int, float, str]:
    """One ``schemathesis run``; (failures, seconds, last lines of its output)."""
    cmd = [
        str(Path(sys.executable).parent / "schemathesis"),
        "run",
        f"{base}/api/v1/openapi.json",
        "--url",
        base,
        "--phases",
        args.phases,
        "--checks",
        "all",
        "--seed",
        str(args.seed),
        "--max-examples",
        str(args.max_examples),
        "--workers",
        "1",
        "--generation-database",
        "none",
        "--report",
        "json",
        "--report-json-path",
        str(report),
        "--no-color",
    ]
    started = time.monotonic()
    tokens_file = report.with_suffix(".tokens")
    tokens_file.write_text("\n".join(tokens))
    env = {
        **os.environ,
        "SCHEMATHESIS_HOOKS": "bench.fuzz_hooks",
        "TT_FUZZ_TOKENS_FILE": str(tokens_file),
        "PYTHONPATH": str(REPO),
    }
    proc = await asyncio.create_subprocess_exec(
        *cmd, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT, cwd=REPO, env=env
    )
    out, _ = await proc.communicate()
    elapsed = time.monotonic() - started
    text = out.decode(errors="replace")
    failures = count_failures(report, text)
    return failures, elapsed, text


def count_failures(report: Path, text: str) -> int:
    try:
        data = json.loads(report.read_text())
    except (OSError, ValueError):
        # No report: the run itself broke; count it as one failure and show its output.
        print(text[-3000:])
        return 1
    unique = (data.get("test_cases") or {}).get("unique_failures")
    if isinstance(unique, int):
        return unique + len(data.get("errors") or [])
    raise BenchError(f"unexpected schemathesis report shape: {sorted(data)}")


async def run(args: argparse.Namespace) -> int:
    workdir = Path(tempfile.mkdtemp(prefix="tt-fuzz-"))
    password = secrets.token_urlsafe(16)
    rows: list[list[str]] = []
    total = 0
    try:
        async with providers() as fakes:
            env = {f"TT_{k.upper()}": v for k, v in fakes.urls.items()}
            env.update(TT_PASSWORD_TIME_COST="1", TT_PASSWORD_MEMORY_KIB="1024")
            with (
                database(args.backend, workdir, 60) as url,
                tasktimer_server(
                    sys.executable, url, workdir, password, 60, extra_env=env
                ) as server,
            ):
                tokens = await prepare(server.base, ADMIN_EMAIL, password, fakes)
                for role in args.roles.split(","):
                    report = workdir / f"report-{role}.json"
                    failures, elapsed, text = await schemathesis(
                        server.base, tokens[role], args, report
                    )
                    total += failures
                    if failures and args.verbose:
                        print(text)
                    rows.append(
                        [
                            args.backend,
                            role,
                            args.phases,
                            str(args.max_examples),
                            str(failures),
                            f"{elapsed:.0f}",
                        ]
                    )
    finally:
        if args.keep:
            print(f"work directory kept: {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    print_table(
        ["backend", "token", "phases", "max examples", "failures", "seconds"], rows, {3, 4, 5}
    )
    return 1 if total else 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--backend", choices=("sqlite", "mongo"), default="sqlite")
    parser.add_argument("--max-examples", type=int, default=30)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--phases", default=PHASES)
    parser.add_argument("--roles", default="admin,user", help="admin, user or both")
    parser.add_argument("--verbose", action="store_true", help="print failing runs' output")
    parser.add_argument("--keep", action="store_true", help="keep the work directory")
    args = parser.parse_args()
    interrupt_on_signals()
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    sys.exit(asyncio.run(run(args)))


if __name__ == "__main__":
    main()
