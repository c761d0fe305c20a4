"""The Asana OAuth callback sends the browser back to /integrations with what happened."""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qs, urlsplit

CALLBACK = "/api/v1/integrations/asana/callback"


def notice(location: str) -> dict[str, str]:
    parts = urlsplit(location)
    # Always our own page: a relative path, never another host.
    assert parts.path == "/integrations" and not parts.netloc and not parts.scheme
    return {k: v[0] for k, v in parse_qs(parts.query).items()}


async def test_asana_refusal_comes_back_to_the_page(client: Any) -> None:
    response = await client.get(
        CALLBACK,
        params={
            "error": "forbidden_scopes",
            "error_description": "The app is not allowed to request these scopes",
            "state": "whatever-state",
        },
        allow_redirects=False,
    )
    assert response.status == 303
    assert response.headers["Cache-Control"] == "no-store"
    assert notice(response.headers["Location"]) == {
        "asana_error": "forbidden_scopes",
        "asana_error_description": "The app is not allowed to request these scopes",
    }
    denied = await client.get(
        CALLBACK, params={"error": "access_denied", "extra": "ignored"}, allow_redirects=False
    )
    assert notice(denied.headers["Location"]) == {"asana_error": "access_denied"}


async def test_unknown_state_and_missing_code_come_back_to_the_page(make_client: Any) -> None:
    client = await make_client(asana_client_id="id", asana_client_secret="secret")
    unknown = await client.get(
        CALLBACK, params={"code": "abc", "state": "never-issued"}, allow_redirects=False
    )
    assert unknown.status == 303
    assert notice(unknown.headers["Location"])["asana_error"] == "oauth_state_invalid"
    missing = await client.get(CALLBACK, allow_redirects=False)
    assert notice(missing.headers["Location"]) == {"asana_error": "invalid_request"}
