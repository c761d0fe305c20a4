"""What the benchmarks share: their child processes (``python -m server``, the mongoeco
wire server from ``tests/mongo_wire.py``) on free loopback ports, HTTP calls to the
server, signal handling, the result table and the JSON file.

Every process is started in a session of its own (Ctrl-C reaches only the benchmark, which
stops its children itself) and gets SIGTERM when the benchmark dies, even by SIGKILL.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import platform
import re
import secrets
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import aiohttp

REPO = Path(__file__).resolve().parent.parent
ADMIN_EMAIL = "bench-admin@example.com"
MONGO_PYTHON = str(REPO / ".venv-mongo" / "bin" / "python")


class BenchError(Exception):
    """Setup or environment failure; the message says what answered what."""


# -- processes -------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _die_with_parent() -> None:
    """In the child: get SIGTERM when the benchmark dies, even by SIGKILL (Linux)."""
    with contextlib.suppress(Exception):
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def spawn(cmd: list[str], log: Any, **kw: Any) -> subprocess.Popen[Any]:
    return subprocess.Popen(
        cmd,
        cwd=REPO,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,  # Ctrl-C reaches only us; we stop the children ourselves
        preexec_fn=_die_with_parent,
        **kw,
    )


def stop_process(proc: subprocess.Popen[Any], name: str) -> None:
    if proc.poll() is not None:
        return
    try:
        proc.terminate()  # aiohttp's run_app and asyncio.run shut down cleanly on SIGTERM
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        print(f"  {name} did not stop on SIGTERM, killing it", file=sys.stderr)
        proc.kill()
        proc.wait(timeout=10)


def wait_for_line(
    proc: subprocess.Popen[Any], log_path: Path, pattern: str, name: str, timeout: float
) -> re.Match[str]:
    """Wait until the process's log matches ``pattern``; fail if it exits or times out."""
    deadline = time.monotonic() + timeout
    regex = re.compile(pattern)
    while True:
        text = log_path.read_text(errors="replace")
        found = regex.search(text)
        if found:
            return found
        if proc.poll() is not None:
            raise BenchError(
                f"{name} exited with {proc.returncode} during startup:\n{text[-3000:]}"
            )
        if time.monotonic() > deadline:
            raise BenchError(f"{name} not ready after {timeout:.0f} s")
        time.sleep(0.05)


@contextlib.contextmanager
def mongo_wire(python: str, workdir: Path, timeout: float) -> Iterator[str]:
    """Run tests/mongo_wire.py; yield its ``mongodb://`` URI (without a database name)."""
    if not Path(python).exists():
        raise BenchError(
            f"{python} not found: the mongo backend needs the Python 3.13 virtualenv with "
            "mongoeco (scripts/test.sh builds .venv-mongo)"
        )
    log_path = workdir / "mongo-wire.log"
    with open(log_path, "wb") as log:
        proc = spawn([python, str(REPO / "tests" / "mongo_wire.py")], log, stdin=subprocess.PIPE)
        try:
            found = wait_for_line(proc, log_path, r"(mongodb://\S+)", "mongo_wire.py", timeout)
            yield found.group(1)
        finally:
            if proc.stdin is not None:
                with contextlib.suppress(OSError):
                    proc.stdin.close()  # mongo_wire.py serves until its stdin closes
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                stop_process(proc, "mongo_wire.py")


def with_database(uri: str, name: str) -> str:
    parts = urlsplit(uri)
    query = parts.query or "directConnection=true"
    return f"{parts.scheme}://{parts.netloc}/{name}?{query}"


@dataclass
class Server:
    base: str
    pid: int
    log_path: Path


@contextlib.contextmanager
def tasktimer_server(
    python: str,
    database_url: str,
    workdir: Path,
    admin_password: str,
    timeout: float,
    extra_env: dict[str, str] | None = None,
) -> Iterator[Server]:
    """Run ``python -m server`` on a free loopback port (scheduler off, ``ADMIN_EMAIL``
    bootstrapped with ``admin_password``); stop it afterwards and report logged errors."""
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = {
        **os.environ,
        "TT_DATABASE_URL": database_url,
        "TT_HOST": "127.0.0.1",
        "TT_PORT": str(port),
        "TT_PUBLIC_URL": base,
        "TT_BOOTSTRAP_ADMIN_EMAIL": ADMIN_EMAIL,
        "TT_BOOTSTRAP_ADMIN_PASSWORD": admin_password,
        "TT_SECRET_KEY": secrets.token_urlsafe(32),
        "TT_SCHEDULER": "false",
        **(extra_env or {}),
    }
    log_path = workdir / f"server-{port}.log"
    with open(log_path, "wb") as log:
        proc = spawn([python, "-m", "server"], log, env=env, stdin=subprocess.DEVNULL)
        try:
            wait_for_line(proc, log_path, r"Tasktimer listening on", "server", timeout)
            yield Server(base, proc.pid, log_path)
        finally:
            stop_process(proc, "server")
            errors = [
                ln
                for ln in log_path.read_text(errors="replace").splitlines()
                if re.search(r'"level": ?"ERROR"', ln) or "Traceback" in ln
            ]
            if errors:
                print(f"  server logged {len(errors)} error line(s); first: {errors[0][:300]}")


def proc_memory(pid: int) -> dict[str, float]:
    """``VmHWM`` (peak) and ``VmRSS`` of a process in MB (10^6 bytes)."""
    values: dict[str, float] = {}
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            key, _, rest = line.partition(":")
            if key in ("VmHWM", "VmRSS"):
                values[key] = int(rest.split()[0]) * 1024 / 1e6
    return {"peak_mb": values["VmHWM"], "rss_mb": values["VmRSS"]}


def reset_peak(pid: int) -> bool:
    """Reset the process's VmHWM to its current RSS (Linux >= 4.0)."""
    try:
        with open(f"/proc/{pid}/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def interrupt_on_signals() -> None:
    """SIGTERM behaves like Ctrl-C, so the context managers stop the child processes;
    SIGINT too when the benchmark was started with SIGINT ignored."""
    signal.signal(signal.SIGTERM, _interrupt)
    signal.signal(signal.SIGINT, _interrupt)


# -- HTTP ------------------------------------------------------------------------------


async def call(
    s: aiohttp.ClientSession,
    method: str,
    url: str,
    expect: int | tuple[int, ...],
    token: str | None = None,
    body: Any = None,
    **kw: Any,
) -> Any:
    """One request; the decoded JSON answer (its text if not JSON, None if empty), or
    ``BenchError`` when the status is not ``expect``. ``form=True`` sends ``body`` as a
    form instead of JSON."""
    headers = {**kw.pop("headers", {}), **({"Authorization": f"Bearer {token}"} if token else {})}
    if kw.pop("form", False):
        kw["data"] = body
    elif body is not None:
        kw["json"] = body
    async with s.request(method, url, headers=headers, **kw) as resp:
        text = await resp.text()
        allowed = (expect,) if isinstance(expect, int) else expect
        if resp.status not in allowed:
            raise BenchError(
                f"{method} {urlsplit(url).path} answered {resp.status} (expected {expect}): "
                f"{text[:500]}"
            )
        try:
            return json.loads(text) if text else None
        except ValueError:
            return text


def parse_ts(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


# -- reporting -------------------------------------------------------------------------


def print_table(head: list[str], rows: list[list[str]], right: set[int]) -> None:
    """Columns as wide as their widest cell, two spaces apart; the columns in ``right``
    right-aligned, the others left-aligned."""
    widths = [max(len(r[i]) for r in [head, *rows]) for i in range(len(head))]

    def line(cells: list[str]) -> str:
        return "  ".join(
            c.rjust(w) if i in right else c.ljust(w)
            for i, (c, w) in enumerate(zip(cells, widths, strict=True))
        ).rstrip()

    print(line(head))
    print(line(["-" * w for w in widths]))
    for r in rows:
        print(line(r))


def write_json(path: Path, results: dict[str, Any]) -> None:
    """The results, after the command line and the machine they come from."""
    path.write_text(
        json.dumps(
            {
                "command": " ".join([Path(sys.executable).name, *sys.argv]),
                "machine": {
                    "cpus": os.cpu_count(),
                    "python": platform.python_version(),
                    "platform": platform.platform(),
                },
                **results,
            },
            indent=2,
        )
        + "\n"
    )
    print(f"results written to {path}")


@contextlib.contextmanager
def bench_database(
    backend: str, workdir: Path, name: str, timeout: float, mongo_python: str = MONGO_PYTHON
) -> Iterator[str]:
    """The database URL for one run: a SQLite file ``bench.db`` in ``workdir``, or with
    ``backend == "mongo"`` a fresh database ``<name>_<random>`` on a mongoeco wire server
    started for the run (stopped on exit)."""
    if backend == "sqlite":
        yield f"sqlite:///{(workdir / 'bench.db').resolve()}"
        return
    with mongo_wire(mongo_python, workdir, timeout) as uri:
        yield with_database(uri, f"{name}_{secrets.token_hex(4)}")
