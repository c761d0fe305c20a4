// The tasks page: expand the tree level by level (GET /api/v1/tasks?parent_id=), search as
// you type, save a member's role as soon as it is picked, find a new parent for a move.
// Without this script the same things work through the page's links and forms.
import { api, debounce, el, showAlert } from "/static/app.js";

const TOOLS = { heyspace: "HeySpace", asana: "Asana", pivotaltracker: "Pivotal Tracker" };
const tree = document.querySelector("[data-tt-tree]");
const filters = document.querySelector("form[data-tt-filters]");
const includeArchived = Boolean(tree?.dataset.includeArchived);
const selectedId = document.querySelector("[data-tt-selected]")?.dataset.ttSelected || "";

for (const button of document.querySelectorAll("[data-tt-nojs]")) button.hidden = true;

function taskLink(id) {
  const query = new URLSearchParams({ task: id });
  if (includeArchived) query.set("include-archived", "1");
  return `/tasks?${query}`;
}

function kindLabel(task) {
  if (!task.source) return "";
  const kind = (task.source.kind || "").replaceAll("_", " ");
  return `${TOOLS[task.source.service] || task.source.service} ${kind}`.trim();
}

function renderNode(task, label = task.name) {
  const row = el("div", {
    class: "node-row",
    "data-tt-task-id": task.id,
    "data-has-children": task.has_children || null,
    "data-archived": task.archived || null,
  });
  if (task.has_children) {
    row.append(
      el("button", {
        type: "button",
        class: "toggle",
        "aria-expanded": "false",
        "aria-label": `Show the subtasks of ${task.name}`,
        "data-tt-toggle": true,
        text: "▶",
      }),
    );
  } else {
    row.append(el("span", { class: "spacer" }));
  }
  row.append(
    el("a", {
      class: "name",
      href: taskLink(task.id),
      "aria-current": task.id === selectedId ? "true" : null,
      text: label,
    }),
  );
  if (task.source) row.append(el("span", { class: "kind", title: "Imported: read-only", text: kindLabel(task) }));
  if (task.archived) row.append(el("span", { class: "kind", text: "archived" }));
  const item = el("li", { class: task.archived ? "node node-archived" : "node", "data-tt-node": task.id }, row);
  if (task.has_children) item.append(el("ul", { role: "group", hidden: true }));
  return item;
}

async function loadAll(path) {
  const items = [];
  let cursor = null;
  do {
    const page = await api("GET", `${path}${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ""}`);
    items.push(...page.items);
    cursor = page.next_cursor;
  } while (cursor);
  return items;
}

async function toggle(button) {
  const item = button.closest("li[data-tt-node]");
  const group = item.querySelector(":scope > ul[role=group]");
  const open = button.getAttribute("aria-expanded") !== "true";
  if (open && !group.dataset.loaded && !group.children.length) {
    button.disabled = true;
    try {
      const query = new URLSearchParams({ parent_id: item.dataset.ttNode, limit: "500" });
      if (includeArchived) query.set("include_archived", "true");
      const children = await loadAll(`/tasks?${query}`);
      group.replaceChildren(
        ...(children.length ? children.map((t) => renderNode(t)) : [el("li", { class: "muted", text: "No subtasks to show." })]),
      );
      group.dataset.loaded = "1";
    } catch (error) {
      showAlert(`The subtasks could not be loaded: ${error.message}`);
      return;
    } finally {
      button.disabled = false;
    }
  }
  group.hidden = !open;
  button.setAttribute("aria-expanded", String(open));
}

document.addEventListener("click", (event) => {
  const button = event.target.closest("[data-tt-toggle]");
  if (button) {
    event.preventDefault();
    toggle(button);
    return;
  }
  // A click anywhere on a row selects its task.
  const row = event.target.closest(".node-row[data-tt-task-id]");
  if (row && !event.target.closest("a, button")) row.querySelector("a.name")?.click();
});

// -- search as you type -------------------------------------------------------------------

if (filters) {
  const search = filters.querySelector("input[name=task-search]");
  const box = filters.querySelector("input[name=include-archived]");
  const results = document.querySelector("[data-tt-search-results]");
  box.addEventListener("change", () => filters.requestSubmit());
  let latest = 0;
  const run = debounce(async () => {
    const text = search.value.trim();
    const url = new URL(window.location.href);
    if (text) url.searchParams.set("task-search", text);
    else url.searchParams.delete("task-search");
    url.searchParams.delete("done");
    window.history.replaceState(null, "", url);
    if (!text) {
      results.hidden = true;
      results.replaceChildren();
      tree.hidden = false;
      return;
    }
    const ticket = ++latest;
    const query = new URLSearchParams({ q: text, limit: "50" });
    if (includeArchived) query.set("include_archived", "true");
    try {
      const page = await api("GET", `/tasks?${query}`);
      if (ticket !== latest) return;
      const count = page.items.length;
      const list = el("ul", { class: "tree" }, ...page.items.map((t) => {
        const node = renderNode({ ...t, has_children: false }, t.path.join(" › "));
        return node;
      }));
      results.replaceChildren(
        el("p", { class: "muted", text: `${count}${page.next_cursor ? "+" : ""} match${count === 1 ? "" : "es"} for “${text}”` }),
        list,
      );
      results.hidden = false;
      tree.hidden = true;
    } catch (error) {
      showAlert(`Search failed: ${error.message}`);
    }
  }, 200);
  search.addEventListener("input", run);
  filters.addEventListener("submit", (event) => {
    if (event.submitter === null && document.activeElement === search) {
      event.preventDefault();
      run();
    }
  });
}

// -- roles: saved when picked ---------------------------------------------------------------

for (const form of document.querySelectorAll("form[data-tt-role-form]")) {
  form.querySelector("select[name=role]").addEventListener("change", () => form.requestSubmit());
}

// -- move: find the new parent as you type -------------------------------------------------

const moveSearch = document.querySelector("form[data-tt-move-search]");
if (moveSearch) {
  const input = moveSearch.querySelector("input[name=move-search]");
  const list = document.querySelector("[data-tt-move-results]");
  moveSearch.addEventListener("submit", (event) => event.preventDefault());
  input.addEventListener(
    "input",
    debounce(async () => {
      const text = input.value.trim();
      if (!text) {
        list.replaceChildren();
        return;
      }
      try {
        const page = await api("GET", `/tasks?${new URLSearchParams({ q: text, limit: "20" })}`);
        const options = page.items.filter((t) => t.id !== selectedId);
        list.replaceChildren(
          ...(options.length
            ? options.map((t) =>
                el("li", {}, el("button", { type: "submit", name: "parent_id", value: t.id, "data-tt-parent-id": t.id, text: t.path.join(" › ") })),
              )
            : [el("li", { class: "muted", text: `No task matches “${text}”.` })]),
        );
      } catch (error) {
        showAlert(`Search failed: ${error.message}`);
      }
    }, 200),
  );
}
