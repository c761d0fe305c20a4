"""The tasks page in a real browser: the tree expanded level by level, search, archived
tasks, members with their roles and where a role is inherited from, adding a member,
creating / renaming / moving / archiving manual tasks, imported tasks read-only."""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from playwright.sync_api import Locator, Page, expect

from .conftest import USER_PASSWORD, Stack, shot, sign_in

pytestmark = pytest.mark.web


@pytest.fixture(scope="module")
def world(stack: Stack) -> dict[str, Any]:
    client = stack.new_task("Client <b>A</b>")
    website = stack.new_task("Website", client["id"])
    landing = stack.new_task("Landing page", website["id"])
    internal = stack.new_task("Internal")
    old = stack.new_task("Old project")
    stack.api.request("PATCH", f"/tasks/{old['id']}", {"archived": True})
    stack.api.request(
        "POST", "/integrations/pivotaltracker", {"api_token": stack.providers.pivotal_token}
    )
    stack.api.sync("pivotaltracker")
    story = stack.providers.add("pivotaltracker", "Imported story")
    stack.api.sync("pivotaltracker")
    imported = stack.api.request(
        "POST", "/resolve", {"service": "pivotaltracker", "external_ids": [story]}
    )
    mate = stack.new_user("tess@example.com")
    boss = stack.new_user("mona@example.com")
    stack.api.request("PUT", f"/tasks/{client['id']}/members/{boss['id']}", {"role": "manager"})
    return {
        "client": client,
        "website": website,
        "landing": landing,
        "internal": internal,
        "old": old,
        "story": imported["results"][story],
        "mate": mate,
        "boss": boss,
    }


def node(page: Page, task_id: str) -> Locator:
    return page.locator(f'[data-tt-tree] [data-tt-task-id="{task_id}"]')


def select(page: Page, task_id: str) -> None:
    node(page, task_id).locator("a.name").click()
    page.wait_for_url(lambda url: parse_qs(urlsplit(url).query).get("task") == [task_id])


def members(stack: Stack, task_id: str) -> dict[str, dict[str, Any]]:
    items = stack.api.request("GET", f"/tasks/{task_id}/members")["items"]
    return {m["user_id"]: m for m in items}


def test_tree_expands_lazily_and_search_filters(page: Page, stack: Stack, world: Any) -> None:
    sign_in(page)
    page.goto("/tasks")
    client, website, landing = world["client"], world["website"], world["landing"]
    expect(node(page, client["id"])).to_contain_text("Client <b>A</b>")
    expect(node(page, world["internal"]["id"])).to_be_visible()
    expect(node(page, website["id"])).to_have_count(0)  # not loaded before it is asked for
    expect(node(page, world["old"]["id"])).to_have_count(0)  # archived: hidden
    node(page, client["id"]).locator("[data-tt-toggle]").click()
    expect(node(page, website["id"])).to_be_visible()
    node(page, website["id"]).locator("[data-tt-toggle]").click()
    expect(node(page, landing["id"])).to_be_visible()
    node(page, client["id"]).locator("[data-tt-toggle]").click()
    expect(node(page, website["id"])).to_be_hidden()
    shot(page, "tasks-tree")

    page.fill("input[name=task-search]", "landing")
    results = page.locator("[data-tt-search-results] [data-tt-task-id]")
    expect(results).to_have_count(1)
    expect(results.first).to_have_attribute("data-tt-task-id", landing["id"])
    expect(results.first).to_contain_text("Client <b>A</b> \u203a Website \u203a Landing page")
    expect(page.locator("[data-tt-tree]")).to_be_hidden()
    shot(page, "tasks-search")
    # The search is part of the address: a reload shows the same results.
    page.reload()
    expect(page.locator("[data-tt-search-results] [data-tt-task-id]")).to_have_count(1)
    page.fill("input[name=task-search]", "")
    expect(page.locator("[data-tt-tree]")).to_be_visible()

    page.check("input[name=include-archived]")
    expect(node(page, world["old"]["id"])).to_be_visible()
    expect(node(page, world["old"]["id"])).to_contain_text("archived")
    page.uncheck("input[name=include-archived]")
    expect(node(page, world["old"]["id"])).to_have_count(0)


def test_members_roles_inheritance_and_add_member(page: Page, stack: Stack, world: Any) -> None:
    mate, website, landing = world["mate"], world["website"], world["landing"]
    sign_in(page)
    page.goto(f"/tasks?task={website['id']}")
    # The selected task's branch is open down to it.
    expect(node(page, website["id"]).locator("a.name")).to_have_attribute("aria-current", "true")
    expect(page.locator(f'[data-tt-member="{mate["id"]}"]')).to_have_count(0)
    form = page.locator("form[name=add-member]")
    form.locator("select[name=user_id]").select_option(mate["id"])
    form.locator("select[name=role]").select_option("regular")
    form.locator("button[type=submit]").click()
    row = page.locator(f'[data-tt-member="{mate["id"]}"]')
    expect(row.locator("select[name=role]")).to_have_value("regular")
    expect(row).to_contain_text("this task")
    assert members(stack, website["id"])[mate["id"]]["role"] == "regular"

    # On the subtask the role is inherited, and says from where.
    select(page, landing["id"])
    row = page.locator(f'[data-tt-member="{mate["id"]}"]')
    expect(row.locator("[data-tt-inherited-from]")).to_have_attribute(
        "data-tt-inherited-from", website["id"]
    )
    expect(row).to_contain_text("inherited from Client <b>A</b> \u203a Website")
    shot(page, "tasks-members")
    # Narrowing the role here saves at once (no button) and makes it this task's own.
    row.locator("select[name=role]").select_option("guest")
    expect(page.locator("[data-tt-live]")).to_contain_text("Role saved")
    mine = members(stack, landing["id"])[mate["id"]]
    assert mine["role"] == "guest" and mine["inherited_from"] is None
    expect(page.locator(f'[data-tt-member="{mate["id"]}"]')).to_contain_text("this task")
    # "none" unassigns.
    page.locator(f'[data-tt-member="{mate["id"]}"] select[name=role]').select_option("none")
    expect(page.locator("[data-tt-live]")).to_contain_text("Member removed")
    expect(page.locator(f'[data-tt-member="{mate["id"]}"]')).to_have_count(0)
    assert mate["id"] not in members(stack, landing["id"])
    assert members(stack, website["id"])[mate["id"]]["role"] == "regular"


def test_create_rename_move_archive_manual_tasks(page: Page, stack: Stack, world: Any) -> None:
    client, website = world["client"], world["website"]
    sign_in(page)
    page.goto(f"/tasks?task={website['id']}")
    form = page.locator("form[name=new-task]")
    expect(form).to_contain_text("Website")
    form.locator("input[name=name]").fill("Pricing page")
    form.locator("button[type=submit]").click()
    expect(page.locator("[data-tt-live]")).to_contain_text("Task created")
    created_id = parse_qs(urlsplit(page.url).query)["task"][0]
    created = stack.api.request("GET", f"/tasks/{created_id}")
    assert created["path"] == ["Client <b>A</b>", "Website", "Pricing page"]
    expect(page.locator("#detail-h")).to_have_text("Pricing page")

    rename = page.locator("form[name=rename]")
    rename.locator("input[name=name]").fill("Pricing")
    rename.locator("button[type=submit]").click()
    expect(page.locator("[data-tt-live]")).to_contain_text("Task renamed")
    expect(page.locator("#detail-h")).to_have_text("Pricing")

    page.fill("input[name=move-search]", "Client <b>")
    target = page.locator(f'[data-tt-move-results] [data-tt-parent-id="{client["id"]}"]')
    target.click()
    expect(page.locator("[data-tt-live]")).to_contain_text("Task moved")
    assert stack.api.request("GET", f"/tasks/{created_id}")["parent_id"] == client["id"]
    expect(page.locator(".task-path")).to_have_text("Client <b>A</b> \u203a Pricing")
    shot(page, "tasks-manual-task")

    page.locator("form[name=archive] button[name=archive]").click()
    expect(page.locator("[data-tt-live]")).to_contain_text("Task archived")
    assert stack.api.request("GET", f"/tasks/{created_id}")["archived"] is True
    page.goto(f"/tasks?task={client['id']}")
    # The selected task's children are shown; the archived one is not among them.
    expect(node(page, website["id"])).to_be_visible()
    expect(node(page, created_id)).to_have_count(0)

    # A manual task cannot move under itself: a clear alert, nothing changed.
    page.goto(f"/tasks?task={client['id']}")
    page.fill("input[name=move-search]", "Landing")
    page.locator(f'[data-tt-move-results] [data-tt-parent-id="{world["landing"]["id"]}"]').click()
    expect(page.locator("[role=alert]")).to_contain_text("cannot move under itself")
    assert stack.api.request("GET", f"/tasks/{client['id']}")["parent_id"] is None


def test_imported_tasks_are_read_only(page: Page, stack: Stack, world: Any) -> None:
    story = world["story"]
    sign_in(page)
    page.goto(f"/tasks?task={story['task_id']}")
    expect(page.locator("[data-tt-read-only]")).to_contain_text("read-only")
    expect(page.locator("[data-tt-read-only]")).to_contain_text("Pivotal Tracker")
    for name in ("rename", "move", "archive"):
        expect(page.locator(f"form[name={name}]")).to_have_count(0)
    # Its members can still be managed (everyone is assigned through the tool's root here).
    roles = page.locator("[data-tt-member] select[name=role]")
    expect(roles.first).to_be_enabled()
    assert roles.count() == len(members(stack, story["task_id"])) >= 1
    expect(node(page, story["task_id"])).to_contain_text("Pivotal Tracker")
    shot(page, "tasks-imported")


def test_a_manager_manages_only_their_subtree(page: Page, stack: Stack, world: Any) -> None:
    boss, client = world["boss"], world["client"]
    sign_in(page, boss["email"], USER_PASSWORD)
    page.goto("/tasks")
    expect(node(page, client["id"])).to_be_visible()
    expect(node(page, world["internal"]["id"])).to_have_count(0)  # not assigned there
    expect(page.locator("form[name=new-task]")).to_have_count(0)  # no top-level tasks
    select(page, client["id"])
    expect(page.locator(f'[data-tt-member="{boss["id"]}"] select[name=role]')).to_have_value(
        "manager"
    )
    form = page.locator("form[name=new-task]")
    form.locator("input[name=name]").fill("Boss's subtask")
    form.locator("button[type=submit]").click()
    expect(page.locator("[data-tt-live]")).to_contain_text("Task created")
    shot(page, "tasks-manager")

    # A teammate without a managing role sees no members.
    mate = stack.new_user("reg@example.com")
    stack.api.request("PUT", f"/tasks/{client['id']}/members/{mate['id']}", {"role": "regular"})
    page.context.clear_cookies()
    sign_in(page, mate["email"], USER_PASSWORD)
    page.goto(f"/tasks?task={client['id']}")
    expect(page.locator(".task-detail")).to_contain_text("Only admins and managers")
    expect(page.locator("[data-tt-member]")).to_have_count(0)
    expect(page.locator("form[name=add-member]")).to_have_count(0)
