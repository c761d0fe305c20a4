"""The real stack behind the e2e tests: fake HeySpace / Pivotal Tracker / Asana servers
(tests/fakes) in a background thread, and the Tasktimer server as its own process
(`python -m server`) configured through TT_* variables to use them."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.fakes import asana as fake_asana
from tests.fakes import heyspace as fake_heyspace
from tests.fakes import pivotal as fake_pivotal

from .loopthread import LoopThread

ROOT = Path(__file__).resolve().parents[2]
SYNC_TIMEOUT_S = 30


class ApiError(Exception):
    def __init__(self, status: int, body: str) -> None:
        super().__init__(f"{status}: {body}")
        self.status = status


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Item:
    service: str
    external_id: str
    name: str


class Providers:
    """The three fake providers, seeded with one place to put new items each."""

    def __init__(self, loop: LoopThread, email: str) -> None:
        self.loop = loop
        self.heyspace = fake_heyspace.HeySpaceState()
        self.heyspace_password = "heyspace-secret"
        self.heyspace.add_user(email, self.heyspace_password)
        workspace = self.heyspace.add_workspace("Studio")
        space = self.heyspace.add_space(workspace, "Website")
        self.heyspace_list = self.heyspace.add_list(space, "To do")

        self.pivotal = fake_pivotal.PivotalState()
        self.pivotal_token = self.pivotal.add_user(email, "Admin")
        self.pivotal_project = self.pivotal.add_project("Mobile app")

        self.asana = fake_asana.AsanaState()
        self.asana.add_user(email, "Admin")
        self.asana_workspace = self.asana.add_workspace("Company")
        self.asana_project = self.asana.add_project(self.asana_workspace, "Launch")
        self.asana_section = self.asana.add_section(self.asana_project, "Doing")

        self.heyspace_url = loop.serve(fake_heyspace.create_app(self.heyspace))
        self.pivotal_url = loop.serve(fake_pivotal.create_app(self.pivotal))
        self.asana_url = loop.serve(fake_asana.create_app(self.asana))

    def add(self, service: str, name: str) -> str:
        """Creates an item upstream (on the loop's thread, where the fakes read state)."""
        if service == "heyspace":
            return self.loop.call(self.heyspace.add_card, self.heyspace_list, name)
        if service == "pivotaltracker":
            return str(self.loop.call(self.pivotal.add_story, self.pivotal_project, name))
        return self.loop.call(self.asana.add_task, self.asana_project, name, self.asana_section)

    def archive(self, service: str, external_id: str) -> None:
        """Archives (HeySpace) or completes (Asana) an item upstream."""
        if service == "heyspace":
            self.loop.call(self.heyspace.archive, external_id)
        elif service == "asana":
            self.loop.call(self.asana.complete_task, external_id)
        else:
            raise ValueError(f"{service} items are removed, not archived")

    def env(self) -> dict[str, str]:
        return {
            "TT_HEYSPACE_API_URL": f"{self.heyspace_url}{fake_heyspace.API}",
            "TT_PIVOTAL_API_URL": f"{self.pivotal_url}{fake_pivotal.API}",
            "TT_ASANA_API_URL": f"{self.asana_url}{fake_asana.API}",
            "TT_ASANA_OAUTH_URL": f"{self.asana_url}{fake_asana.OAUTH}",
            "TT_ASANA_CLIENT_ID": fake_asana.CLIENT_ID,
            "TT_ASANA_CLIENT_SECRET": fake_asana.CLIENT_SECRET,
        }


class Server:
    """`python -m server` on a free port with its own SQLite file."""

    def __init__(
        self, workdir: Path, email: str, password: str, provider_env: dict[str, str]
    ) -> None:
        port = _free_port()
        self.url = f"http://127.0.0.1:{port}"
        env = {
            **os.environ,
            # Syncs run only when a test asks for one: the incremental check would import an
            # item a test keeps "not imported yet" at a moment of its own choosing.
            "TT_SYNC_POLL_S": "0",
            **provider_env,
            "TT_DATABASE_URL": f"sqlite:///{(workdir / 'tasktimer.db').resolve()}",
            "TT_HOST": "127.0.0.1",
            "TT_PORT": str(port),
            "TT_PUBLIC_URL": self.url,
            "TT_BOOTSTRAP_ADMIN_EMAIL": email,
            "TT_BOOTSTRAP_ADMIN_PASSWORD": password,
            "TT_SYNC_INTERVAL_S": "86400",
            "TT_PROVIDER_BACKOFF_S": "0.05",
        }
        self.log_path = workdir / "server.log"
        self._log = self.log_path.open("wb")
        self._env = env
        self._spawn()

    def _spawn(self) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "server"],
            cwd=ROOT,
            env=self._env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 30
        while True:
            if self.process.poll() is not None:
                self.close()
                raise RuntimeError(f"the server exited:\n{self.log_path.read_text()[-3000:]}")
            try:
                with urllib.request.urlopen(f"{self.url}/health", timeout=2) as response:
                    if response.status == 200:
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                self.close()
                raise RuntimeError(
                    f"the server did not start:\n{self.log_path.read_text()[-3000:]}"
                )
            time.sleep(0.1)

    def stop(self) -> None:
        """Stops the process; the database and the port stay for `restart`."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def restart(self) -> None:
        self.stop()
        self._spawn()

    def close(self) -> None:
        self.stop()
        self._log.close()


class Backend:
    """What the tests need from the stack, in API terms."""

    def __init__(self, server: Server, providers: Providers, email: str, password: str) -> None:
        self.server = server
        self.url = server.url
        self.email = email
        self.password = password
        self.providers = providers
        self.token = self.request(
            "POST", "/auth/login", {"email": email, "password": password}, auth=False
        )["token"]
        self._counter = 0

    def request(self, method: str, path: str, body: Any = None, *, auth: bool = True) -> Any:
        headers = {"Content-Type": "application/json", "Accept": "application/json"}
        if auth:
            headers["Authorization"] = f"Bearer {self.token}"
        request = urllib.request.Request(
            f"{self.url}/api/v1{path}",
            method=method,
            data=None if body is None else json.dumps(body).encode(),
            headers=headers,
        )
        try:
            with urllib.request.urlopen(request, timeout=15) as response:
                raw = response.read()
        except urllib.error.HTTPError as err:
            body_text = err.read().decode(errors="replace")
            err.close()
            raise ApiError(err.code, body_text) from None
        return json.loads(raw) if raw else None

    api = request

    # -- integrations -------------------------------------------------------------------------

    def enable_integrations(self) -> None:
        p = self.providers
        self.request(
            "POST", "/integrations/heyspace", {"email": self.email, "password": p.heyspace_password}
        )
        self.request("POST", "/integrations/pivotaltracker", {"api_token": p.pivotal_token})
        authorize_url = self.request("POST", "/integrations/asana")["authorize_url"]
        # The fake authorizes at once and redirects to the server's callback, as a browser would.
        with urllib.request.urlopen(authorize_url, timeout=15) as response:
            response.read()
        self.request("PUT", "/integrations/asana/workspaces", {"selected": [p.asana_workspace]})
        for service in ("heyspace", "pivotaltracker", "asana"):
            self.sync(service)

    def sync(self, service: str) -> dict[str, Any]:
        """Force synchronization and wait for it to finish."""
        sync_id = self.request("POST", f"/integrations/{service}/sync")["sync_id"]
        deadline = time.monotonic() + SYNC_TIMEOUT_S
        while True:
            sync = self.request("GET", f"/integrations/{service}/syncs/{sync_id}")
            if sync["state"] == "succeeded":
                return sync
            if sync["state"] == "failed":
                raise AssertionError(f"{service} sync failed: {sync}")
            if time.monotonic() > deadline:
                raise AssertionError(f"{service} sync did not finish: {sync}")
            time.sleep(0.1)

    def new_item(self, service: str, name: str | None = None) -> Item:
        """An item that exists upstream and is not imported before the next sync."""
        self._counter += 1
        name = name or f"{service} item {self._counter}"
        return Item(service, self.providers.add(service, name), name)
