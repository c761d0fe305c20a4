"""The OpenAPI 3.1 document, generated from the registered routes and their models."""

from __future__ import annotations

import re
from typing import Any

from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from ..integrations.base import SERVICES
from .core import SESSION_COOKIE, Api

REF = "#/components/schemas/{model}"
# One Server-Sent Event of GET /api/v1/events.
_EVENT = {
    "type": "object",
    "required": ["event", "data"],
    "properties": {
        "event": {"type": "string", "enum": ["timer", "entry", "tasks"]},
        "data": {"type": "string", "contentMediaType": "application/json"},
    },
}


def _problem_schema() -> dict[str, Any]:
    return {
        "type": "object",
        "required": ["type", "title", "status", "detail", "code"],
        "properties": {
            "type": {"type": "string"},
            "title": {"type": "string"},
            "status": {"type": "integer"},
            "detail": {"type": "string"},
            "code": {"type": "string"},
            "errors": {
                "type": "array",
                "items": {
                    "type": "object",
                    "properties": {"field": {"type": "string"}, "message": {"type": "string"}},
                },
            },
        },
    }


def _body_required(schema: dict[str, Any]) -> bool:
    return bool(schema.get("required") or schema.get("oneOf"))


def _path_schema(name: str) -> dict[str, Any]:
    if name == "service":
        return {"type": "string", "enum": list(SERVICES)}
    # Ids are at most 64 characters (invitation tokens 43); the bound keeps a fuzzer's
    # path within the HTTP parser's request-line limit.
    return {"type": "string", "minLength": 1, "maxLength": 64}


def build_openapi(api: Api, *, version: str) -> dict[str, Any]:
    models: set[type[BaseModel]] = set()
    for route in api.routes:
        if route.body is not None:
            models.add(route.body)
        response = route.response
        if isinstance(response, dict):
            response = response["list_of"]
        if isinstance(response, type) and issubclass(response, BaseModel):
            models.add(response)
    ordered = sorted(models, key=lambda m: m.__name__)
    _, defs = models_json_schema([(m, "validation") for m in ordered], ref_template=REF)
    schemas: dict[str, Any] = dict(defs.get("$defs", {}))
    schemas["Problem"] = _problem_schema()
    paths: dict[str, Any] = {}
    for route in api.routes:
        op: dict[str, Any] = {
            "summary": route.summary,
            "tags": [route.tag],
            "operationId": re.sub(r"\W+", "_", f"{route.method}_{route.path}").strip("_").lower(),
            "responses": {},
        }
        params: list[dict[str, Any]] = [
            {"name": name, "in": "path", "required": True, "schema": _path_schema(name)}
            for name in re.findall(r"{(\w+)}", route.path)
        ]
        params.extend(
            {"name": name, "in": "header", "required": False, "schema": schema}
            for name, schema in route.headers
        )
        if route.query is not None:
            qschema = route.query.model_json_schema(ref_template=REF)
            required = set(qschema.get("required", []))
            for name, prop in qschema.get("properties", {}).items():
                params.append(
                    {"name": name, "in": "query", "required": name in required, "schema": prop}
                )
        if params:
            op["parameters"] = params
        if route.body is not None:
            op["requestBody"] = {
                # A body whose fields are all optional may be left out.
                "required": _body_required(route.body.model_json_schema()),
                "content": {
                    "application/json": {"schema": {"$ref": REF.format(model=route.body.__name__)}}
                },
            }
        ok: dict[str, Any] = {"description": "Success"}
        response = route.response
        if isinstance(response, dict):
            item = REF.format(model=response["list_of"].__name__)
            ok["content"] = {
                "application/json": {
                    "schema": {
                        "type": "object",
                        "required": ["items", "next_cursor"],
                        "properties": {
                            "items": {"type": "array", "items": {"$ref": item}},
                            "next_cursor": {"type": ["string", "null"]},
                        },
                    }
                }
            }
        elif response == "text/event-stream":
            ok["content"] = {response: {"schema": _EVENT}}
        elif isinstance(response, str):
            # A media type: text, or a binary file (a download).
            schema: dict[str, Any] = {"type": "string"}
            if not response.startswith("text/"):
                schema["format"] = "binary"
            ok["content"] = {response: {"schema": schema}}
        elif isinstance(response, type) and issubclass(response, BaseModel):
            ok["content"] = {
                "application/json": {"schema": {"$ref": REF.format(model=response.__name__)}}
            }
        op["responses"][str(route.status)] = ok
        problem: dict[str, Any] = {
            "application/problem+json": {"schema": {"$ref": REF.format(model="Problem")}}
        }
        if response == "text/html":
            # A page a browser lands on: its own refusals are pages too.
            problem = {**problem, "text/html": {"schema": {"type": "string"}}}
        # route.statuses() holds the 403 of a missing X-CSRF-Token with the web app's
        # session cookie too (403 is declared everywhere: a foreign Origin).
        for code in sorted(route.statuses() - {route.status}):
            op["responses"][str(code)] = {"description": "Problem", "content": problem}
        if route.auth:
            op["security"] = [{"bearer": []}, {"session": []}]
        paths.setdefault(route.path, {})[route.method.lower()] = op
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Tasktimer API",
            "version": version,
            "description": "Time tracking on task trees imported from HeySpace, Asana and "
            "Pivotal Tracker. Errors are application/problem+json (RFC 9457) with a stable "
            "`code`. Collections use the envelope {items, next_cursor}.",
        },
        "servers": [{"url": "/"}],
        "components": {
            "schemas": schemas,
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer"},
                "session": {
                    "type": "apiKey",
                    "in": "cookie",
                    "name": SESSION_COOKIE,
                    "description": "The web app's sign-in session (set by the sign-in page). "
                    "Unsafe methods also need the session's CSRF token in X-CSRF-Token; "
                    "a bearer token, when sent, is used instead of the cookie.",
                },
            },
        },
        "paths": paths,
    }
