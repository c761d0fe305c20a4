"""The integrations and tasks pages over plain HTTP, as a browser without scripts uses
them (forms, redirects, CSRF), with provider- and user-supplied names escaped; both
storage backends."""

from __future__ import annotations

import re
import time
from typing import Any
from urllib.parse import parse_qs, urlsplit

from aiohttp.test_utils import TestClient

from server.keys import SERVICES
from server.web import integrations as page_module
from tests.api.test_web import sign_in
from tests.conftest import ADMIN_EMAIL, ADMIN_PASSWORD, Api
from tests.integrations.conftest import Fakes, fakes  # noqa: F401  (fixture)

Client = TestClient[Any, Any]
EVIL = '<img src=x onerror="alert(1)">'


async def settle(client: Client) -> None:
    await client.app[SERVICES].sync.wait_idle()


async def post(client: Client, path: str, data: dict[str, str]) -> Any:
    return await client.post(path, data=data, allow_redirects=False)


async def connect_asana(client: Client, csrf: str) -> Any:
    """The page's Asana OAuth round trip; the callback's answer (not followed)."""
    start = await post(client, "/integrations/asana/enable", {"csrf": csrf})
    authorized = await client.session.get(start.headers["Location"], allow_redirects=False)
    callback = urlsplit(authorized.headers["Location"])
    return await client.get(f"{callback.path}?{callback.query}", allow_redirects=False)


async def small_asana_connected(make_client: Any, fakes: Fakes) -> Client:  # noqa: F811
    """A signed-in admin's client, connected to an Asana with one project, first sync done."""
    state = fakes.asana
    owner = state.add_user("owner@example.com", "Owner")
    state.set_authorizing_user(owner)
    state.add_project(state.add_workspace("Company"), "Website")
    client = await make_client(**fakes.urls)
    _, csrf = await sign_in(client)
    await connect_asana(client, csrf)
    await settle(client)
    return client


async def test_integrations_work_without_scripts(
    make_client: Any,
    fakes: Fakes,  # noqa: F811
) -> None:
    token = fakes.pivotal.add_user("owner@pivotal.example", "Owner")
    project = fakes.pivotal.add_project(f"Mobile {EVIL}")
    fakes.pivotal.add_story(project, "Story")
    client = await make_client(**fakes.urls)
    admin = await Api(client).login(ADMIN_EMAIL, ADMIN_PASSWORD)
    _, csrf = await sign_in(client)

    page = await client.get("/integrations")
    text = await page.text()
    assert page.status == 200
    assert re.findall(r'data-tt-integration="(\w+)"', text) == [
        "heyspace",
        "asana",
        "pivotaltracker",
    ]
    # Without the CSRF token a cookie request changes nothing.
    refused = await post(client, "/integrations/pivotaltracker/enable", {"api_token": token})
    assert refused.status == 403

    wrong = await post(
        client, "/integrations/pivotaltracker/enable", {"csrf": csrf, "api_token": "nope"}
    )
    assert wrong.status == 400
    assert "Pivotal Tracker refused this API token" in await wrong.text()
    done = await post(
        client, "/integrations/pivotaltracker/enable", {"csrf": csrf, "api_token": token}
    )
    assert done.status == 303
    assert parse_qs(urlsplit(done.headers["Location"]).query) == {
        "done": ["enabled"],
        "service": ["pivotaltracker"],
    }
    assert token not in done.headers["Location"]
    await settle(client)
    text = await (await client.get(done.headers["Location"])).text()
    assert "Pivotal Tracker is connected" in text
    assert 'data-tt-status="ok"' in text and "data-tt-sync-id=" in text

    saved = await post(
        client, "/integrations/pivotaltracker/settings", {"csrf": csrf, "keywords_from_ids": "1"}
    )
    assert saved.status == 303
    _, listing = await admin.get("/api/v1/integrations")
    assert listing["items"][0]["settings"]["keywords_from_ids"] is True
    await settle(client)

    # Provider-supplied names are text, never markup.
    tasks = await (await client.get("/tasks?task-search=Mobile")).text()
    assert "Mobile &lt;img src=x onerror=" in tasks
    assert EVIL not in tasks

    # Unlink: the confirmation is a page of its own without scripts.
    confirm = await (await client.get("/integrations?open=pivotaltracker&unlink=")).text()
    assert re.search(r'<form[^>]*id="unlink-pivotaltracker"(?![^>]*hidden)[^>]*>', confirm)
    assert (await post(client, "/integrations/pivotaltracker/unlink", {"csrf": csrf})).status == 303
    _, listing = await admin.get("/api/v1/integrations")
    assert listing["items"][0]["status"] == "unlinked"

    # Asana's enable sends the browser to Asana's authorization page.
    start = await post(client, "/integrations/asana/enable", {"csrf": csrf})
    assert start.status == 303
    assert start.headers["Location"].startswith(fakes.urls["asana_oauth_url"] + "/oauth_authorize")


async def test_asana_cards_escape_provider_names(
    make_client: Any,
    fakes: Fakes,  # noqa: F811
) -> None:
    state = fakes.asana
    owner = state.add_user("owner@example.com", "Owner")
    state.add_user("evil@example.com", f"Eve {EVIL}")
    state.set_authorizing_user(owner)
    workspace = state.add_workspace(f"Space {EVIL}")
    state.add_project(workspace, "Website")
    client = await make_client(**fakes.urls)
    _, csrf = await sign_in(client)
    back = await connect_asana(client, csrf)
    assert back.headers["Location"] == "/integrations?connected=asana"
    await settle(client)
    text = await (await client.get("/integrations?connected=asana")).text()
    assert "Asana is connected" in text
    assert f'name="workspace" value="{workspace}" checked' in text
    assert 'value="evil@example.com"' in text
    assert EVIL not in text and text.count("&lt;img src=x onerror=") >= 2
    invited = await post(
        client, "/integrations/asana/invite", {"csrf": csrf, "coworker": "evil@example.com"}
    )
    body = await invited.text()
    assert invited.status == 200 and "1 co-worker invited" in body
    assert re.search(r"data-tt-invite-url>http://[^<]+/invite/[\w-]+<", body)


async def test_integrations_page_is_for_admins(client: Client) -> None:
    admin = await Api(client).login(ADMIN_EMAIL, ADMIN_PASSWORD)
    await admin.new_user("plain@example.com", password="plain-password-1")
    _, csrf = await sign_in(client, "plain@example.com", "plain-password-1")
    page = await client.get("/integrations")
    assert page.status == 403 and "data-tt-integration" not in await page.text()
    sync = await post(client, "/integrations/heyspace/sync", {"csrf": csrf})
    assert sync.status == 403


async def test_tasks_forms_work_without_scripts(client: Client) -> None:
    admin = await Api(client).login(ADMIN_EMAIL, ADMIN_PASSWORD)
    _, mate = await admin.new_user("mate@example.com")
    _, top = await admin.post("/api/v1/tasks", {"name": f"Top {EVIL}"})
    _, csrf = await sign_in(client)

    made = await post(client, "/tasks/new", {"csrf": csrf, "name": "Child", "parent_id": top["id"]})
    assert made.status == 303
    child_id = parse_qs(urlsplit(made.headers["Location"]).query)["task"][0]
    page = await (await client.get(made.headers["Location"])).text()
    assert "Task created." in page and EVIL not in page and "Top &lt;img" in page
    # The branch is open down to the selected task.
    assert f'data-tt-task-id="{child_id}"' in page

    assert (
        await post(client, f"/tasks/{child_id}/rename", {"csrf": csrf, "name": "Kid"})
    ).status == 303
    _, child = await admin.get(f"/api/v1/tasks/{child_id}")
    assert child["name"] == "Kid"
    empty = await post(client, f"/tasks/{child_id}/rename", {"csrf": csrf, "name": " "})
    assert empty.status == 400 and 'role="alert"' in await empty.text()

    add = await post(
        client,
        f"/tasks/{top['id']}/members",
        {"csrf": csrf, "user_id": mate["id"], "role": "regular"},
    )
    assert add.status == 303
    page = await (await client.get(f"/tasks?task={child_id}")).text()
    assert f'data-tt-member="{mate["id"]}"' in page
    assert f'data-tt-inherited-from="{top["id"]}"' in page
    none = await post(
        client, f"/tasks/{top['id']}/members/{mate['id']}", {"csrf": csrf, "role": "none"}
    )
    assert none.status == 303
    _, members = await admin.get(f"/api/v1/tasks/{top['id']}/members")
    assert members["items"] == []

    cycle = await post(client, f"/tasks/{top['id']}/move", {"csrf": csrf, "parent_id": child_id})
    assert cycle.status == 409 and "cannot move under itself" in await cycle.text()
    archived = await post(client, f"/tasks/{child_id}/archive", {"csrf": csrf, "archive": ""})
    assert archived.status == 303
    hidden = await (await client.get(f"/tasks?task={top['id']}")).text()
    assert f'data-tt-task-id="{child_id}"' not in hidden
    shown = await (await client.get(f"/tasks?task={top['id']}&include-archived=1")).text()
    assert f'data-tt-task-id="{child_id}"' in shown


async def test_a_slow_asana_does_not_hang_the_page(
    make_client: Any,
    fakes: Fakes,  # noqa: F811
    monkeypatch: Any,
) -> None:
    state = fakes.asana
    client = await small_asana_connected(make_client, fakes)
    monkeypatch.setattr(page_module, "ASANA_READ_TIMEOUT_S", 0.3)
    state.faults.slow(3.0, "/workspaces")
    began = time.monotonic()
    text = await (await client.get("/integrations")).text()
    assert time.monotonic() - began < 2.0
    assert "Asana did not answer in time" in text
    assert 'data-tt-integration="asana"' in text and 'data-tt-status="ok"' in text
    state.faults.clear()


async def test_asana_without_an_oauth_app_says_what_to_set(client: Client) -> None:
    _, csrf = await sign_in(client)
    answer = await post(client, "/integrations/asana/enable", {"csrf": csrf})
    text = await answer.text()
    assert answer.status == 409 and 'role="alert"' in text
    assert "TT_ASANA_CLIENT_ID" in text and "TT_ASANA_CLIENT_SECRET" in text


async def test_the_live_refresh_does_not_read_asana(
    make_client: Any,
    fakes: Fakes,  # noqa: F811
) -> None:
    state = fakes.asana
    client = await small_asana_connected(make_client, fakes)
    full = await (await client.get("/integrations")).text()
    before = state.faults.requests
    cards = await (await client.get("/integrations?view=cards")).text()
    assert state.faults.requests == before  # no request to Asana for a refresh
    assert 'name="workspace"' in full and 'name="workspace"' not in cards
    # Same controls either way, so the page does not mistake a refresh for a change.
    actions = re.compile(r'data-tt-integration="asana"[^>]*data-tt-actions="([^"]*)"')
    assert actions.findall(full) == actions.findall(cards) != []
