"""Every place of EXTENSION.md on fixtures shaped after today's pages (PROVIDERS.md):
exactly one working button per item and place, before and after re-render churn.

One signed-in browser serves the whole module; each view opens and closes its own tab.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pytest
from playwright.sync_api import Page, expect

from .conftest import ARTIFACTS, Browser, World
from .stack import Backend, Item
from .test_extension import all_buttons, running

pytestmark = pytest.mark.e2e

WS, PROJECT, MY_TASKS = "1000000000000001", "1000000000000002", "1000000000000003"
USER = "1000000000000009"
HEYSPACE_PROJECT = "11111111-1111-4111-8111-111111111111"
PLANNER = "https://planner.timecamp.com"


@dataclass(frozen=True)
class View:
    service: str
    path: str
    # Places the background shows for every listed item ("board-card", "list-row", ...).
    listing: str | None
    # The place that shows the first item on its own (pane, card detail, expanded story).
    detail: str | None = None
    origin: str | None = None
    # Asana read-only rows / Pivotal expanded stories: indexes into the listed items.
    flagged: tuple[int, ...] = ()
    subtasks: bool = False
    # The pane shows the first subtask instead (Asana `?child=`).
    child: bool = False
    extra: dict[str, Any] = field(default_factory=dict)


VIEWS = {
    # Asana: board, lists (read-only rows, My Tasks), the task pane on every URL form.
    "asana-board": View("asana", "/0/{p}/board", "board-card"),
    "asana-board-v1": View("asana", "/1/{ws}/project/{p}/board", "board-card"),
    "asana-list-read-only-rows": View("asana", "/0/{p}/list", "list-row", flagged=(1, 4)),
    "asana-my-tasks": View("asana", "/0/{mt}/list", "list-row", flagged=(2,)),
    "asana-my-tasks-v1": View("asana", "/1/{ws}/project/{mt}/list", "list-row"),
    "asana-pane-old": View("asana", "/0/{p}/{t}", "board-card", "task-pane", subtasks=True),
    "asana-pane-old-f": View("asana", "/0/{p}/{t}/f", "board-card", "task-pane", subtasks=True),
    "asana-pane-v1-project": View(
        "asana", "/1/{ws}/project/{p}/task/{t}", "board-card", "task-pane", subtasks=True
    ),
    "asana-pane-v1-task": View("asana", "/1/{ws}/task/{t}", None, "task-pane", subtasks=True),
    "asana-pane-search": View(
        "asana", "/0/search/1204000000000001/{t}", None, "task-pane", subtasks=True
    ),
    "asana-pane-home": View("asana", "/0/home/{ws}/{t}", None, "task-pane", subtasks=True),
    "asana-pane-inbox": View(
        "asana", "/0/inbox/{user}/{t}/1205000000000001", None, "task-pane", subtasks=True
    ),
    "asana-pane-child": View(
        "asana",
        "/1/{ws}/project/{p}/task/{t}?child={sub}",
        "board-card",
        "task-pane",
        subtasks=True,
        child=True,
    ),
    # HeySpace and TimeCamp Planner: board cards and the open card.
    "heyspace-board": View("heyspace", "/projects/{hp}/kanban", "board-card"),
    "heyspace-card": View(
        "heyspace", "/projects/{hp}/kanban?taskId={t}", "board-card", "card-detail"
    ),
    "planner-board": View("heyspace", "/projects/{hp}/kanban", "board-card", origin=PLANNER),
    "planner-card": View(
        "heyspace", "/projects/{hp}/kanban?taskId={t}", "board-card", "card-detail", origin=PLANNER
    ),
    # Pivotal Tracker: collapsed stories and today's expanded form.story.
    "pivotal-board-with-expanded-story": View(
        "pivotaltracker", "/n/projects/1000", "story", flagged=(1,)
    ),
    "pivotal-story-page": View(
        "pivotaltracker", "/n/projects/1000/stories/{t}", None, "story-detail"
    ),
    "pivotal-story-show-older": View("pivotaltracker", "/story/show/{t}", None, "story-detail"),
}


def expected_places(view: View, listed: list[Item], subtasks: list[Item]) -> set[tuple[str, str]]:
    pairs: set[tuple[str, str]] = set()
    flagged = {listed[i].external_id for i in view.flagged}
    if view.listing:
        for item in listed:
            place = view.listing
            if view.service == "pivotaltracker" and item.external_id in flagged:
                place = "story-detail"  # expanded in place on the board
            pairs.add((place, item.external_id))
    if view.detail:
        shown = subtasks[0] if view.child else listed[0]
        pairs.add((view.detail, shown.external_id))
        if view.subtasks and not view.child:
            pairs |= {("subtask-row", s.external_id) for s in subtasks}
    return pairs


def settled_pairs(
    page: Page, expected: set[tuple[str, str]], timeout_s: float = 10
) -> list[dict[str, str]]:
    deadline = page.evaluate("Date.now()") / 1000 + timeout_s
    while True:
        found = all_buttons(page)
        pairs = [(b["place"], b["id"]) for b in found]
        if (
            set(pairs) == expected
            and len(pairs) == len(expected)
            and all(b["state"] != "loading" for b in found)
        ):
            return found
        if page.evaluate("Date.now()") / 1000 > deadline:
            raise AssertionError(f"expected {sorted(expected)}, got {sorted(pairs)}: {found}")
        page.wait_for_timeout(50)


@pytest.mark.parametrize("name", list(VIEWS))
def test_each_place_gets_one_working_button_through_churn(
    module_browser: Browser, backend: Backend, world: World, name: str
) -> None:
    view = VIEWS[name]
    imported = world.items[view.service][:4]
    missing = backend.new_item(view.service, "Not imported yet")
    listed = [*imported, missing]
    subtasks = world.items["asana"][4:6] if view.subtasks else []
    path = view.path.format(
        ws=WS,
        p=PROJECT,
        mt=MY_TASKS,
        user=USER,
        hp=HEYSPACE_PROJECT,
        t=imported[0].external_id,
        sub=subtasks[0].external_id if subtasks else "",
    )
    flagged = {listed[i].external_id for i in view.flagged}
    page = module_browser.open_site(
        view.service, path, listed, subtasks, origin=view.origin, flagged=flagged
    )
    try:
        expected = expected_places(view, listed, subtasks)
        found = settled_pairs(page, expected)
        for b in found:
            assert b["service"] == view.service
            if b["id"] == missing.external_id:
                assert b["state"] == "not-found" and "Task not found" in b["text"] + b["title"]
            else:
                assert b["state"] == "start", b
        # Resolved buttons carry the user's tracked seconds; not-found ones do not.
        totals = page.eval_on_selector_all(
            ".tasktimer-button",
            "els => els.map(e => [e.dataset.tasktimerExternalId,"
            " e.dataset.tasktimerTotalS ?? null])",
        )
        for external_id, total in totals:
            assert (total is None) == (external_id == missing.external_id), (external_id, total)

        # Re-render churn (whole re-renders and React-style patches) never duplicates.
        page.evaluate("fixture.churn(12, 15)")
        page.wait_for_function("fixture.renders >= 13")
        found = settled_pairs(page, expected)
        page.screenshot(path=str(ARTIFACTS / f"place-{name}.png"))

        # Each place's button works: clicking starts the timer on that very item.
        by_place: dict[str, dict[str, str]] = {}
        for b in found:
            if b["state"] == "start":
                by_place.setdefault(b["place"], b)
        assert set(by_place) == {place for place, _ in expected}
        for place, b in by_place.items():
            target = page.locator(
                f'.tasktimer-button[data-tasktimer-place="{place}"]'
                f'[data-tasktimer-external-id="{b["id"]}"]'
            )
            # The same item may show in two places: start from a stopped timer each time.
            backend.api("POST", "/timer/stop", {})
            expect(target).to_have_attribute("data-tasktimer-state", "start")
            if view.service == "heyspace" and view.detail and place == "board-card":
                # The open card's modal overlay covers the board, as on the real site.
                target.dispatch_event("click")
            else:
                target.click()
            expect(target).to_have_attribute("data-tasktimer-state", "stop")
            entry = running(backend)
            assert entry is not None
            resolved = backend.api(
                "POST", "/resolve", {"service": view.service, "external_ids": [b["id"]]}
            )["results"][b["id"]]
            assert entry["task_id"] == resolved["task_id"], (place, b)
    finally:
        page.close()
