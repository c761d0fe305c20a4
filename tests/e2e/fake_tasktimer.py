"""TEMPORARY stand-in for the Tasktimer API while server/ is being written (API.md subset)."""

from __future__ import annotations

import asyncio
import itertools
import json
import secrets
from datetime import UTC, datetime
from typing import Any

from aiohttp import web


def now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class FakeTasktimer:
    def __init__(self, email: str, password: str) -> None:
        self.email, self.password = email, password
        self.tokens: set[str] = set()
        self.ids = itertools.count(1)
        self.upstream: dict[tuple[str, str], str] = {}
        self.tasks: dict[str, dict[str, Any]] = {}
        self.by_ref: dict[tuple[str, str], str] = {}
        self.running: dict[str, Any] | None = None
        self.queues: list[asyncio.Queue[str]] = []
        self.syncs: dict[str, dict[str, Any]] = {}

    def add_upstream(self, service: str, external_id: str, name: str) -> None:
        self.upstream[(service, external_id)] = name

    def import_all(self, service: str) -> int:
        created = 0
        for (svc, ext), name in self.upstream.items():
            if svc != service or (svc, ext) in self.by_ref:
                continue
            task_id = f"t{next(self.ids)}"
            self.tasks[task_id] = {
                "id": task_id,
                "name": name,
                "path": [svc, name],
                "archived": False,
                "source": {"service": svc, "external_id": ext, "kind": "task"},
                "trackable": True,
                "my_role": "regular",
                "keywords": [],
                "parent_id": None,
            }
            self.by_ref[(svc, ext)] = task_id
            created += 1
            if self.running and self.running["pending_ref"] == {"service": svc, "external_id": ext}:
                self.running["task_id"] = task_id
        return created

    def push(self, event: str, data: Any) -> None:
        for queue in self.queues:
            queue.put_nowait(f"event: {event}\ndata: {json.dumps(data)}\n\n")

    def app(self) -> web.Application:
        app = web.Application()
        r = app.router

        def auth(request: web.Request) -> None:
            token = request.headers.get("Authorization", "").removeprefix("Bearer ")
            if token not in self.tokens:
                raise web.HTTPUnauthorized(
                    text=json.dumps({"code": "unauthorized", "detail": "no"}),
                    content_type="application/problem+json",
                )

        async def login(request: web.Request) -> web.Response:
            body = await request.json()
            if body.get("email") != self.email or body.get("password") != self.password:
                return web.json_response(
                    {
                        "code": "invalid_credentials",
                        "detail": "Wrong e-mail or password",
                        "status": 401,
                    },
                    status=401,
                )
            token = secrets.token_hex(8)
            self.tokens.add(token)
            return web.json_response({"token": token, "user": {"id": "u1", "email": self.email}})

        async def logout(request: web.Request) -> web.Response:
            auth(request)
            self.tokens.discard(request.headers["Authorization"].removeprefix("Bearer "))
            return web.Response(status=204)

        async def resolve(request: web.Request) -> web.Response:
            auth(request)
            body = await request.json()
            results = {}
            for ext in body["external_ids"]:
                task_id = self.by_ref.get((body["service"], ext))
                t = self.tasks.get(task_id) if task_id else None
                results[ext] = t and {
                    k: t[k] for k in ("name", "path", "trackable", "archived")
                } | {"task_id": t["id"]}
            return web.json_response({"results": results})

        async def timer(request: web.Request) -> web.Response:
            auth(request)
            return web.json_response({"running": self.running})

        async def start(request: web.Request) -> web.Response:
            auth(request)
            body = await request.json()
            stopped = await do_stop()
            task_id = body.get("task_id")
            ref = None
            if not task_id:
                ref = {"service": body["service"], "external_id": body["external_id"]}
                task_id = self.by_ref.get((ref["service"], ref["external_id"]))
                if task_id:
                    ref = None
            self.running = {
                "id": f"e{next(self.ids)}",
                "user_id": "u1",
                "task_id": task_id,
                "pending_ref": ref,
                "start": now(),
                "end": None,
                "duration_s": 0,
                "note": body.get("note", ""),
                "tags": body.get("tags", []),
                "created_with": body.get("created_with", "api"),
            }
            self.push("timer", {"running": self.running})
            return web.json_response({"running": self.running, "stopped": stopped}, status=201)

        async def do_stop() -> dict[str, Any] | None:
            entry, self.running = self.running, None
            if entry:
                entry = entry | {"end": now()}
                self.push("timer", {"running": None})
            return entry

        async def stop(request: web.Request) -> web.Response:
            auth(request)
            return web.json_response({"stopped": await do_stop()})

        async def tasks(request: web.Request) -> web.Response:
            auth(request)
            q = request.query.get("q", "").lower()
            return web.json_response(
                {
                    "items": [t for t in self.tasks.values() if q in t["name"].lower()],
                    "next_cursor": None,
                }
            )

        async def task(request: web.Request) -> web.Response:
            auth(request)
            return web.json_response(self.tasks[request.match_info["id"]])

        async def match(request: web.Request) -> web.Response:
            auth(request)
            url = request.query["url"]
            found = next(
                (t for (s, e), i in self.by_ref.items() if e in url for t in [self.tasks[i]]), None
            )
            return web.json_response({"task": found})

        async def integrations(request: web.Request) -> web.Response:
            auth(request)
            items = [
                {"service": s, "status": "ok"} for s in ("heyspace", "asana", "pivotaltracker")
            ]
            return web.json_response({"items": items, "next_cursor": None})

        async def sync(request: web.Request) -> web.Response:
            auth(request)
            service = request.match_info["service"]
            sync_id = f"s{next(self.ids)}"
            self.syncs[sync_id] = {
                "id": sync_id,
                "state": "running",
                "counts": {},
                "error": None,
                "service": service,
            }

            async def finish() -> None:
                await asyncio.sleep(0.5)
                created = self.import_all(service)
                self.syncs[sync_id] |= {
                    "state": "succeeded",
                    "counts": {
                        "created": created,
                        "updated": 0,
                        "archived": 0,
                        "removed": 0,
                        "unchanged": 0,
                    },
                }
                self.push("tasks", {})

            asyncio.get_running_loop().create_task(finish())
            return web.json_response({"sync_id": sync_id}, status=202)

        async def sync_status(request: web.Request) -> web.Response:
            auth(request)
            return web.json_response(self.syncs[request.match_info["id"]])

        async def patch_entry(request: web.Request) -> web.Response:
            auth(request)
            body = await request.json()
            if self.running and self.running["id"] == request.match_info["id"]:
                self.running |= body
            return web.json_response(self.running)

        async def events(request: web.Request) -> web.StreamResponse:
            auth(request)
            response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
            await response.prepare(request)
            queue: asyncio.Queue[str] = asyncio.Queue()
            self.queues.append(queue)
            try:
                await response.write(b": hello\n\n")
                while True:
                    await response.write((await queue.get()).encode())
            finally:
                self.queues.remove(queue)

        r.add_post("/api/v1/auth/login", login)
        r.add_post("/api/v1/auth/logout", logout)
        r.add_post("/api/v1/resolve", resolve)
        r.add_get("/api/v1/timer", timer)
        r.add_post("/api/v1/timer/start", start)
        r.add_post("/api/v1/timer/stop", stop)
        r.add_get("/api/v1/tasks", tasks)
        r.add_get("/api/v1/tasks/{id}", task)
        r.add_get("/api/v1/match", match)
        r.add_get("/api/v1/integrations", integrations)
        r.add_post("/api/v1/integrations/{service}/sync", sync)
        r.add_get("/api/v1/integrations/{service}/syncs/{id}", sync_status)
        r.add_patch("/api/v1/entries/{id}", patch_entry)
        r.add_get("/api/v1/events", events)
        return app
