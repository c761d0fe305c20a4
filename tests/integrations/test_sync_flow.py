"""The sync engine end to end: our server talks real HTTP to fake providers on loopback.

Runs on both storage backends (small data sets, for the mongoeco wire server's sake)."""

from __future__ import annotations

import asyncio
from typing import Any
from urllib.parse import urlsplit

from server.keys import SERVICES
from tests.conftest import ADMIN_EMAIL, ADMIN_PASSWORD, Api
from tests.fakes import heyspace as fake_heyspace
from tests.integrations.conftest import Fakes

HS_EMAIL, HS_PASSWORD = "owner@heyspace.example", "hey-secret-password"


async def wait_sync(api: Api, service: str, sync_id: str) -> dict[str, Any]:
    for _ in range(300):
        status, sync = await api.get(f"/api/v1/integrations/{service}/syncs/{sync_id}")
        assert status == 200, sync
        if sync["state"] in ("succeeded", "failed"):
            return sync
        await asyncio.sleep(0.05)
    raise AssertionError("sync did not finish")


async def force(api: Api, service: str) -> dict[str, Any]:
    status, started = await api.post(f"/api/v1/integrations/{service}/sync")
    assert status == 202, started
    return await wait_sync(api, service, started["sync_id"])


async def last_sync(api: Api, service: str) -> dict[str, Any]:
    _, listing = await api.get(f"/api/v1/integrations/{service}/syncs?limit=1")
    return await wait_sync(api, service, listing["items"][0]["id"])


async def tasks_by_name(api: Api, archived: bool = True) -> dict[str, dict[str, Any]]:
    _, listing = await api.get(f"/api/v1/tasks?limit=500&include_archived={str(archived).lower()}")
    return {t["name"]: t for t in listing["items"]}


def heyspace_world(state: fake_heyspace.HeySpaceState) -> dict[str, str]:
    state.add_user(HS_EMAIL, HS_PASSWORD)
    ws = state.add_workspace("Studio")
    space = state.add_space(ws, "Website")
    todo = state.add_list(space, "To do")
    ids = {"ws": ws, "space": space, "todo": todo}
    for name in ("Design", "Build", "Test", "Ship"):
        ids[name] = state.add_card(todo, name)
    return ids


async def test_heyspace_import_rules_pending_and_failures(admin_api: Api, fakes: Fakes) -> None:
    ids = heyspace_world(fakes.heyspace)
    status, integration = await admin_api.post(
        "/api/v1/integrations/heyspace", {"email": HS_EMAIL, "password": HS_PASSWORD}
    )
    assert status == 201, integration
    assert HS_PASSWORD not in str(integration) and "credentials" not in integration
    sync = await last_sync(admin_api, "heyspace")
    assert sync["state"] == "succeeded"
    requests = sync["counts"].pop("requests")
    assert sync["counts"] == {
        "created": 7,
        "updated": 0,
        "archived": 0,
        "removed": 0,
        "unchanged": 0,
    }
    # Every provider request of the sync is counted (the fake counts what it answered;
    # the login that checked the credentials came before the sync).
    before = fakes.heyspace.faults.requests
    counted = (await force(admin_api, "heyspace"))["counts"]["requests"]
    assert requests > 0 and counted == fakes.heyspace.faults.requests - before
    tree = await tasks_by_name(admin_api)
    assert tree["Design"]["path"] == ["HeySpace", "Studio", "Website", "To do", "Design"]
    assert tree["Design"]["source"] == {
        "service": "heyspace",
        "external_id": ids["Design"],
        "kind": "card",
    }
    # Every user of the account is assigned to the root, also users added later.
    user, _ = await admin_api.new_user("late@example.com")
    _, design = await user.get(f"/api/v1/tasks/{tree['Design']['id']}")
    assert design["trackable"] is True and design["my_role"] == "regular"

    # Task not found -> pending entry -> the item is added upstream -> bound by the sync.
    status, started = await user.post(
        "/api/v1/timer/start", {"service": "heyspace", "external_id": "card-later"}
    )
    assert status == 201 and started["running"]["task_id"] is None
    fakes.heyspace.add_card(ids["todo"], "Added later", id="card-later")
    sync = await force(admin_api, "heyspace")
    assert sync["counts"]["created"] == 1 and sync["counts"]["unchanged"] == 7
    _, timer = await user.get("/api/v1/timer")
    later = (await tasks_by_name(admin_api))["Added later"]
    assert timer["running"]["task_id"] == later["id"] and timer["running"]["pending_ref"] is None

    # Upstream states: completed stays active, archived/deleted/vanished are archived.
    fakes.heyspace.complete_card(ids["Design"])
    fakes.heyspace.archive(ids["Build"])
    fakes.heyspace.delete_card(ids["Test"])
    fakes.heyspace.purge(ids["Ship"])
    fakes.heyspace.rename(ids["todo"], "Doing")
    sync = await force(admin_api, "heyspace")
    assert sync["counts"]["archived"] == 3 and sync["counts"]["updated"] >= 2
    tree = await tasks_by_name(admin_api)
    assert tree["Design"]["archived"] is False and tree["Design"]["trackable"] is True
    assert tree["Design"]["path"][3] == "Doing"
    for name in ("Build", "Test", "Ship"):
        assert tree[name]["archived"] is True and tree[name]["trackable"] is False
    _, resolved = await user.post(
        "/api/v1/resolve", {"service": "heyspace", "external_ids": [ids["Build"], ids["Design"]]}
    )
    assert resolved["results"][ids["Build"]]["archived"] is True
    assert resolved["results"][ids["Design"]]["trackable"] is True
    # An item that comes back is active again, with the same task id.
    fakes.heyspace.archive(ids["Build"], archived=False)
    await force(admin_api, "heyspace")
    assert (await tasks_by_name(admin_api))["Build"]["id"] == tree["Build"]["id"]
    assert (await tasks_by_name(admin_api))["Build"]["archived"] is False

    # A broken provider mid-sync archives nothing and says why.
    fakes.heyspace.faults.fail_path(f"/api/projects/{ids['space']}/tasks", 500, times=None)
    fakes.heyspace.purge(ids["Design"])
    sync = await force(admin_api, "heyspace")
    assert sync["state"] == "failed" and sync["error"] and "500" in sync["error"]
    assert HS_PASSWORD not in sync["error"]
    assert (await tasks_by_name(admin_api))["Design"]["archived"] is False
    _, integrations = await admin_api.get("/api/v1/integrations")
    assert integrations["items"][0]["status"] == "error"
    fakes.heyspace.faults.clear()
    assert (await force(admin_api, "heyspace"))["state"] == "succeeded"
    assert (await tasks_by_name(admin_api))["Design"]["archived"] is True


async def test_pivotal_accepted_and_deleted_stories_are_removed(
    admin_api: Api, fakes: Fakes
) -> None:
    token = fakes.pivotal.add_user("pm@example.com")
    project = fakes.pivotal.add_project("Mobile app")
    done = fakes.pivotal.add_story(project, "Login screen", "started")
    gone = fakes.pivotal.add_story(project, "Old idea", "unscheduled")
    status, problem = await admin_api.post(
        "/api/v1/integrations/pivotaltracker", {"api_token": "wrong-token"}
    )
    assert status == 400 and "wrong-token" not in str(problem)
    status, _ = await admin_api.post("/api/v1/integrations/pivotaltracker", {"api_token": token})
    assert status == 201
    assert (await last_sync(admin_api, "pivotaltracker"))["state"] == "succeeded"
    tree = await tasks_by_name(admin_api)
    assert tree["Login screen"]["path"] == [
        "Pivotal Tracker",
        "Mobile app",
        "Current",
        "Login screen",
    ]
    _, started = await admin_api.post(
        "/api/v1/timer/start", {"service": "pivotaltracker", "external_id": str(done)}
    )
    assert started["running"]["task_id"] == tree["Login screen"]["id"]
    await admin_api.post("/api/v1/timer/stop", {})
    fakes.pivotal.set_story_state(done, "accepted")
    fakes.pivotal.delete_story(gone)
    sync = await force(admin_api, "pivotaltracker")
    assert sync["counts"]["removed"] == 2
    tree = await tasks_by_name(admin_api)
    assert "Login screen" not in tree and "Old idea" not in tree
    _, resolved = await admin_api.post(
        "/api/v1/resolve", {"service": "pivotaltracker", "external_ids": [str(done)]}
    )
    assert resolved["results"][str(done)] is None
    # Time tracked on a removed story is kept.
    _, entries = await admin_api.get("/api/v1/entries")
    assert entries["items"][0]["task_id"] == started["running"]["task_id"]
    # The story comes back (un-accepted): same task id, active.
    fakes.pivotal.set_story_state(done, "started")
    await force(admin_api, "pivotaltracker")
    assert (await tasks_by_name(admin_api))["Login screen"]["id"] == started["running"]["task_id"]


async def test_lifecycle_unlink_reenable_owner_missing_and_manual_decisions(
    admin_api: Api, fakes: Fakes
) -> None:
    ids = heyspace_world(fakes.heyspace)
    await admin_api.post(
        "/api/v1/integrations/heyspace", {"email": HS_EMAIL, "password": HS_PASSWORD}
    )
    await last_sync(admin_api, "heyspace")
    before = await tasks_by_name(admin_api)
    user, user_doc = await admin_api.new_user("person@example.com")
    root_id = before["HeySpace"]["id"]
    # A manual removal is remembered: later syncs do not add the user back.
    assert (await admin_api.delete(f"/api/v1/tasks/{root_id}/members/{user_doc['id']}"))[0] == 204
    await force(admin_api, "heyspace")
    _, visible = await user.get("/api/v1/tasks")
    assert visible["items"] == []
    await admin_api.put(
        f"/api/v1/tasks/{before['Design']['id']}/members/{user_doc['id']}", {"role": "regular"}
    )
    await force(admin_api, "heyspace")
    _, visible = await user.get("/api/v1/tasks?trackable=true")
    assert [t["name"] for t in visible["items"]] == ["Design"]
    # A force sync while one runs queues one follow-up; further requests join it.
    fakes.heyspace.faults.slow(0.3, path=f"/api/projects/{ids['space']}/tasks", times=1)
    s1 = (await admin_api.post("/api/v1/integrations/heyspace/sync"))[1]["sync_id"]
    s2 = (await user.post("/api/v1/integrations/heyspace/sync"))[1]["sync_id"]
    s3 = (await admin_api.post("/api/v1/integrations/heyspace/sync"))[1]["sync_id"]
    assert s1 != s2 and s2 == s3
    queued = (await admin_api.get(f"/api/v1/integrations/heyspace/syncs/{s2}"))[1]
    assert queued["state"] == "queued" and queued["started_at"] is None
    first = await wait_sync(admin_api, "heyspace", s1)
    follow_up = await wait_sync(admin_api, "heyspace", s2)
    assert follow_up["state"] == "succeeded"
    assert follow_up["started_at"] >= first["finished_at"]
    # Unlink: credentials forgotten, tree archived, entries kept.
    await admin_api.post(
        "/api/v1/entries",
        {
            "task_id": before["Design"]["id"],
            "start": "2026-01-01T09:00:00Z",
            "end": "2026-01-01T10:00:00Z",
        },
    )
    assert (await admin_api.delete("/api/v1/integrations/heyspace"))[0] == 204
    services = admin_api.client.app[SERVICES]
    _, me = await admin_api.get("/api/v1/me")
    doc = await services.backend.find_one("integrations", {"account_id": me["account_id"]})
    assert doc is not None and doc["credentials"] is None and doc["status"] == "unlinked"
    assert (await tasks_by_name(admin_api, archived=False)) == {}
    status, problem = await admin_api.post("/api/v1/integrations/heyspace/sync")
    assert status == 409 and problem["code"] == "integration_unlinked"
    _, entries = await admin_api.get("/api/v1/entries")
    assert len(entries["items"]) == 1
    # Enabling again reuses the same tree.
    status, _ = await admin_api.post(
        "/api/v1/integrations/heyspace", {"email": HS_EMAIL, "password": HS_PASSWORD}
    )
    assert status == 201
    await last_sync(admin_api, "heyspace")
    after = await tasks_by_name(admin_api)
    assert {n: t["id"] for n, t in after.items()} == {n: t["id"] for n, t in before.items()}
    status, listing = await admin_api.get("/api/v1/tasks?limit=500&include_archived=true")
    assert len(listing["items"]) == len(before)
    # Re-enable with new credentials keeps the ids too.
    status, integration = await admin_api.post(
        "/api/v1/integrations/heyspace/reenable", {"email": HS_EMAIL, "password": HS_PASSWORD}
    )
    assert status == 200 and integration["root_task_id"] == root_id
    await last_sync(admin_api, "heyspace")
    # The owner leaves: the integration says so and stops syncing.
    second_admin, second = await admin_api.new_user("admin2@example.com", role="admin")
    assert (await admin_api.patch(f"/api/v1/users/{me['id']}", {"active": False}))[0] == 200
    _, integrations = await second_admin.get("/api/v1/integrations")
    assert integrations["items"][0]["status"] == "owner_missing"
    status, problem = await second_admin.post("/api/v1/integrations/heyspace/sync")
    assert status == 409 and problem["code"] == "integration_owner_missing"
    assert second["role"] == "admin"


async def test_asana_oauth_workspaces_assignment_refresh_and_invitations(
    admin_api: Api, fakes: Fakes
) -> None:
    state = fakes.asana
    owner = state.add_user("owner@example.com", "Owner")
    teammate_gid = state.add_user("mate@example.com", "Mate")
    state.add_user("stranger@example.com", "Stranger")
    state.set_authorizing_user(owner)
    ws1, ws2 = state.add_workspace("Company"), state.add_workspace("Side")
    site = state.add_project(ws1, "Website", members=[owner, teammate_gid])
    ops = state.add_project(ws1, "Ops", members=[owner])
    side = state.add_project(ws2, "Side project", members=[owner])
    section = state.add_section(site, "Now")
    launch = state.add_task(site, "Launch", section)
    state.add_subtask(launch, "Press release")
    state.add_task(ops, "Backups")
    state.add_task(side, "Hobby")
    mate, _ = await admin_api.new_user("MATE@example.com")
    other, _ = await admin_api.new_user("other@example.com")

    status, start = await admin_api.post("/api/v1/integrations/asana")
    assert status == 200
    authorize = start["authorize_url"]
    assert "code_challenge_method=S256" in authorize and "code_challenge=" in authorize
    redirect = await admin_api.client.session.get(authorize, allow_redirects=False)
    location = urlsplit(redirect.headers["Location"])
    callback = f"{location.path}?{location.query}"
    page = await admin_api.client.get(callback, allow_redirects=False)
    assert page.status == 303 and page.headers["Location"] == "/integrations?connected=asana"
    # The state is single use.
    replay = await admin_api.client.get(callback, allow_redirects=False)
    assert replay.status == 303
    assert "asana_error=oauth_state_invalid" in replay.headers["Location"]
    assert (await last_sync(admin_api, "asana"))["state"] == "succeeded"
    tree = await tasks_by_name(admin_api)
    assert tree["Press release"]["path"] == ["Asana", "Website", "Now", "Launch", "Press release"]
    assert {"Hobby", "Backups"} <= set(tree)

    # Only the chosen workspace is imported; de-selecting archives the other one.
    _, workspaces = await admin_api.get("/api/v1/integrations/asana/workspaces")
    assert {w["name"]: w["selected"] for w in workspaces["items"]} == {
        "Company": True,
        "Side": True,
    }
    status, _ = await admin_api.put("/api/v1/integrations/asana/workspaces", {"selected": [ws1]})
    assert status == 200
    await last_sync(admin_api, "asana")
    tree = await tasks_by_name(admin_api)
    assert tree["Side project"]["archived"] is True and tree["Website"]["archived"] is False

    # E-mail based assignment: the teammate sees Website only; the other user nothing.
    _, mine = await mate.get("/api/v1/tasks?trackable=true")
    assert {t["name"] for t in mine["items"]} == {"Website", "Now", "Launch", "Press release"}
    _, started = await mate.post("/api/v1/timer/start", {"service": "asana", "external_id": launch})
    assert started["running"]["task_id"] == tree["Launch"]["id"]
    assert (await other.get("/api/v1/tasks"))[1]["items"] == []

    # Completed tasks are archived; task ids as keywords make URLs match.
    state.complete_task(launch)
    await admin_api.patch("/api/v1/integrations/asana", {"settings": {"keywords_from_ids": True}})
    await last_sync(admin_api, "asana")
    tree = await tasks_by_name(admin_api)
    assert tree["Launch"]["archived"] is True
    backups_gid = tree["Backups"]["source"]["external_id"]
    assert tree["Backups"]["keywords"] == [backups_gid]
    for url in (
        f"https://app.asana.com/0/{ops}/{backups_gid}",
        f"https://app.asana.com/1/{ws1}/project/{ops}/task/{backups_gid}",
    ):
        _, match = await admin_api.get(f"/api/v1/match?url={url}")
        assert match["task"]["name"] == "Backups", url

    # The access token expires: the next sync refreshes it and succeeds.
    state.expire_tokens()
    assert (await force(admin_api, "asana"))["state"] == "succeeded"

    # Co-workers not yet users, and invitations.
    _, coworkers = await admin_api.get("/api/v1/integrations/asana/coworkers")
    assert [c["email"] for c in coworkers["items"]] == ["stranger@example.com"]
    status, invited = await admin_api.post(
        "/api/v1/integrations/asana/invitations", {"emails": ["stranger@example.com"]}
    )
    assert status == 201 and invited["items"][0]["status"] == "invited"
    token = invited["items"][0]["invite_url"].rsplit("/", 1)[1]
    status, accepted = await Api(admin_api.client).post(
        f"/api/v1/invitations/{token}/accept", {"password": "stranger-password"}
    )
    assert status == 200 and accepted["user"]["name"] == "Stranger"
    _, coworkers = await admin_api.get("/api/v1/integrations/asana/coworkers")
    assert coworkers["items"] == []


async def test_automatic_sync_and_needs_reauth(make_client: Any, fakes: Fakes) -> None:
    client = await make_client(**fakes.urls, scheduler=True, sync_interval_s=1.0)
    admin = await Api(client).login(ADMIN_EMAIL, ADMIN_PASSWORD)
    ids = heyspace_world(fakes.heyspace)
    await admin.post("/api/v1/integrations/heyspace", {"email": HS_EMAIL, "password": HS_PASSWORD})
    await last_sync(admin, "heyspace")
    _, integrations = await admin.get("/api/v1/integrations")
    assert integrations["items"][0]["next_sync_at"] is not None
    # Nobody asks: the scheduler picks the change up by itself.
    fakes.heyspace.rename(ids["Design"], "Design v2")
    for _ in range(100):
        if "Design v2" in await tasks_by_name(admin):
            break
        await asyncio.sleep(0.1)
    else:
        raise AssertionError("no automatic sync happened")
    # Tokens that can no longer be refreshed: the admin must re-enable.
    fakes.heyspace.expire_tokens()
    fakes.heyspace.revoke_refresh_tokens()
    sync = await force(admin, "heyspace")
    assert sync["state"] == "failed"
    _, integrations = await admin.get("/api/v1/integrations")
    assert integrations["items"][0]["status"] == "needs_reauth"
    status, problem = await admin.post("/api/v1/integrations/heyspace/sync")
    assert status == 409 and problem["code"] == "integration_needs_reauth"
    status, _ = await admin.post(
        "/api/v1/integrations/heyspace/reenable", {"email": HS_EMAIL, "password": HS_PASSWORD}
    )
    assert status == 200
    assert (await last_sync(admin, "heyspace"))["state"] == "succeeded"


async def test_rate_limited_provider_is_retried(admin_api: Api, fakes: Fakes) -> None:
    heyspace_world(fakes.heyspace)
    fakes.heyspace.faults.rate_limit(times=2, retry_after=0.05)
    await admin_api.post(
        "/api/v1/integrations/heyspace", {"email": HS_EMAIL, "password": HS_PASSWORD}
    )
    sync = await last_sync(admin_api, "heyspace")
    assert sync["state"] == "succeeded" and sync["counts"]["created"] == 7


async def test_a_finished_sync_tells_connected_clients(admin_api: Api, fakes: Fakes) -> None:
    from tests.api.test_timer import read_events

    heyspace_world(fakes.heyspace)
    await admin_api.post(
        "/api/v1/integrations/heyspace", {"email": HS_EMAIL, "password": HS_PASSWORD}
    )
    await last_sync(admin_api, "heyspace")
    stream = await admin_api.client.get(
        "/api/v1/events", headers={"Authorization": f"Bearer {admin_api.token}"}
    )
    assert (await read_events(stream, 1))[0][0] == "timer"
    await force(admin_api, "heyspace")
    assert await read_events(stream, 1) == [("tasks", {"changed": True})]
    stream.close()


async def test_unlink_during_a_sync_keeps_the_tree_archived(admin_api: Api, fakes: Fakes) -> None:
    ids = heyspace_world(fakes.heyspace)
    await admin_api.post(
        "/api/v1/integrations/heyspace", {"email": HS_EMAIL, "password": HS_PASSWORD}
    )
    await last_sync(admin_api, "heyspace")
    fakes.heyspace.faults.slow(0.5, path=f"/api/projects/{ids['space']}/tasks", times=1)
    _, started = await admin_api.post("/api/v1/integrations/heyspace/sync")
    await asyncio.sleep(0.1)
    assert (await admin_api.delete("/api/v1/integrations/heyspace"))[0] == 204
    sync = await wait_sync(admin_api, "heyspace", started["sync_id"])
    assert sync["state"] == "failed"
    await asyncio.sleep(0.6)
    assert await tasks_by_name(admin_api, archived=False) == {}
    _, integrations = await admin_api.get("/api/v1/integrations")
    assert integrations["items"][0]["status"] == "unlinked"
