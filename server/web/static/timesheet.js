// The timesheet's live parts: the ticking timer, live updates over SSE, task search as
// you type, starting and stopping without a reload, editing an entry in place.
import { announce, api, clearAlerts, debounce, el, formatDuration, showAlert } from "/static/app.js";

const SEARCH_LIMIT = 20;
const slot = document.querySelector("[data-tt-running-slot]");
const stopForm = document.querySelector("form[data-tt-stop-form]");
const startForm = document.getElementById("start-timer");
const searchForm = document.querySelector("form[data-tt-search-form]");
const searchInput = document.querySelector("input[name=task-search]");
const results = document.querySelector("[data-tt-results]");
const entryForm = document.querySelector("form[name=entry]");
let runningId = document.querySelector("[data-tt-running]")?.dataset.entryId || null;
let loadedAt = Date.now();

function label(entry) {
  if (entry.task_path && entry.task_path.length) return entry.task_path.join(" › ");
  if (entry.pending_ref) {
    return `${entry.pending_ref.service} item ${entry.pending_ref.external_id} (not imported yet)`;
  }
  return "No task";
}

// -- the running timer ---------------------------------------------------------------

function renderRunning(entry) {
  runningId = entry ? entry.id : null;
  if (!entry) {
    slot.replaceChildren(el("p", { class: "muted", "data-tt-idle": true, text: "No timer is running." }));
    stopForm.hidden = true;
    return;
  }
  const box = el(
    "div",
    { class: "running", "data-tt-running": true, "data-start": entry.start, "data-entry-id": entry.id },
    el("span", { class: "running-task", text: label(entry) }),
    el("time", { class: "elapsed", "data-tt-elapsed": true }),
  );
  if (entry.note) box.append(el("span", { class: "muted", text: entry.note }));
  slot.replaceChildren(box);
  stopForm.hidden = false;
  tick();
}

function tick() {
  const running = document.querySelector("[data-tt-running]");
  if (running) {
    const started = Date.parse(running.dataset.start);
    running.querySelector("[data-tt-elapsed]").textContent = formatDuration((Date.now() - started) / 1000);
  }
  const row = document.querySelector("[data-tt-entry-id][data-running]");
  if (row) {
    const seconds = (Date.now() - Date.parse(row.dataset.startIso)) / 1000;
    row.querySelector(".entry-duration").textContent = formatDuration(seconds).slice(0, -3);
  }
  // The day holding the running entry and the week total count up to now.
  const grown = Math.floor((Date.now() - loadedAt) / 1000);
  const day = document.querySelector("[data-tt-day-running]");
  const week = document.querySelector("[data-tt-week-total]");
  if (day && week && runningId) {
    const base = Number(day.dataset.baseS ?? (day.dataset.baseS = day.dataset.totalS));
    day.dataset.totalS = String(base + grown);
    day.querySelector("[data-tt-day-total]").textContent = formatDuration(base + grown).slice(0, -3);
    const weekBase = Number(week.dataset.baseS ?? (week.dataset.baseS = week.dataset.totalS));
    week.dataset.totalS = String(weekBase + grown);
    week.textContent = formatDuration(weekBase + grown).slice(0, -3);
  }
}
setInterval(tick, 1000);
tick();

// -- the week: re-rendered by the server when something changed ----------------------

const refreshWeek = debounce(async () => {
  const response = await fetch(location.pathname + location.search, { credentials: "same-origin" });
  if (!response.ok) return;
  const doc = new DOMParser().parseFromString(await response.text(), "text/html");
  const fresh = doc.querySelector("[data-tt-week]");
  const current = document.querySelector("[data-tt-week]");
  if (fresh && current) {
    current.replaceWith(fresh);
    loadedAt = Date.now();
    tick();
  }
}, 150);

// -- live events -----------------------------------------------------------------------

function listen() {
  const source = new EventSource("/api/v1/events");
  source.addEventListener("timer", (event) => {
    const { running } = JSON.parse(event.data);
    const changed = (running ? running.id : null) !== runningId;
    renderRunning(running);
    if (changed) refreshWeek();
  });
  source.addEventListener("entry", () => refreshWeek());
  source.addEventListener("tasks", () => {
    // A sync renamed, moved or archived tasks: names on the page may be stale.
    if (searchInput.value.trim()) search(searchInput, results, true);
    refreshWeek();
  });
  source.addEventListener("error", () => {
    // A refused stream (session ended) is not retried by the browser: find out why
    // (api() sends a signed-out page to sign-in) and listen again otherwise.
    if (source.readyState !== EventSource.CLOSED) return;
    api("GET", "/me")
      .then(() => setTimeout(listen, 2000))
      .catch(() => {});
  });
}
listen();

// -- task search (server side; never the whole tree) ----------------------------------

async function search(input, list, forTimer) {
  const q = input.value.trim();
  if (!q) {
    list.replaceChildren();
    return;
  }
  let found;
  try {
    found = await api("GET", `/tasks?q=${encodeURIComponent(q)}&trackable=true&limit=${SEARCH_LIMIT}`);
  } catch (error) {
    showAlert(`Searching failed: ${error.message}`);
    return;
  }
  if (input.value.trim() !== q) return; // a newer search is on its way
  const items = found.items.map((task) => {
    const path = task.path.join(" › ");
    const button = forTimer
      ? el("button", { type: "submit", form: "start-timer", name: "task_id", value: task.id, "data-tt-task-id": task.id })
      : el("button", { type: "button", "data-tt-task-id": task.id, "data-path": path });
    button.append(el("span", { class: "path", text: path }));
    return el("li", {}, button);
  });
  if (!items.length) items.push(el("li", { class: "muted", text: `No trackable task matches “${q}”.` }));
  list.replaceChildren(...items);
}

searchInput.addEventListener("input", debounce(() => search(searchInput, results, true), 200));
searchForm.addEventListener("submit", (event) => {
  event.preventDefault();
  search(searchInput, results, true);
});

startForm.addEventListener("submit", async (event) => {
  event.preventDefault();
  const taskId = event.submitter?.value;
  if (!taskId) return;
  const data = new FormData(startForm);
  const tags = String(data.get("tags") || "").split(",").map((t) => t.trim()).filter(Boolean);
  const body = { task_id: taskId, created_with: "web", tags };
  const note = String(data.get("note") || "").trim();
  if (note) body.note = note;
  try {
    const { running } = await api("POST", "/timer/start", body);
    clearAlerts();
    renderRunning(running);
    refreshWeek();
    startForm.reset();
    searchInput.value = "";
    results.replaceChildren();
    announce(`Timer started on ${label(running)}`);
  } catch (error) {
    showAlert(`The timer did not start: ${error.message}`);
  }
});

stopForm.addEventListener("submit", async (event) => {
  event.preventDefault();
  try {
    await api("POST", "/timer/stop", {});
    renderRunning(null);
    refreshWeek();
    announce("Timer stopped");
  } catch (error) {
    showAlert(`The timer did not stop: ${error.message}`);
  }
});

// -- the entry form: task search inside it, click an entry to edit it ---------------

const entryTask = entryForm.querySelector("[data-tt-entry-task]");
const entryTaskId = entryForm.querySelector("[data-tt-entry-task-id]");
const entryResults = entryForm.querySelector("[data-tt-entry-results]");

entryTask.addEventListener(
  "input",
  debounce(() => {
    if (!entryTask.value.trim()) entryTaskId.value = "";
    search(entryTask, entryResults, false);
  }, 200),
);
entryResults.addEventListener("click", (event) => {
  const choice = event.target.closest("[data-tt-task-id]");
  if (!choice) return;
  entryTaskId.value = choice.dataset.ttTaskId;
  entryTask.value = choice.dataset.path;
  entryResults.replaceChildren();
  entryTask.focus();
});

function edit(row) {
  const f = entryForm.elements;
  f.entry_id.value = row.dataset.ttEntryId;
  f["task-id"].value = row.dataset.taskId;
  f.task.value = row.dataset.taskId ? row.dataset.task : "";
  f.date.value = row.dataset.date;
  f.start.value = row.dataset.start;
  f.end.value = row.dataset.end;
  f.note.value = row.dataset.note;
  f.tags.value = row.dataset.tags;
  entryForm.querySelector("[data-tt-entry-delete]").hidden = false;
  entryForm.querySelector("[data-tt-entry-cancel]").hidden = false;
  entryForm.querySelector("[data-tt-entry-submit]").textContent = "Save entry";
  document.getElementById("entry-h").textContent = "Edit entry";
  f.start.focus();
  announce(`Editing the entry of ${row.dataset.date} ${row.dataset.start}`);
}

document.addEventListener("click", (event) => {
  const row = event.target.closest("[data-tt-entry-id]");
  if (!row || row.hasAttribute("data-running")) return;
  event.preventDefault();
  edit(row);
});
