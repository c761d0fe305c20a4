import { ask, onStorageKey } from "../shared/messaging.js";

const $ = (selector) => document.querySelector(selector);
const runningBox = $("[data-tasktimer-running]");
const stopButton = $("button[name=stop]");
const searchInput = $("input[name=task-search]");
const results = $("#results");
const hint = $("#suggestion-hint");
const noteInput = $("input[name=note]");
const tagsInput = $("input[name=tags]");
const syncButton = $("button[name=force-sync]");
const syncProgress = $("[data-tasktimer-sync-progress]");
const errorBox = $("[data-tasktimer-error]");

const SEARCH_DEBOUNCE_MS = 200;
const SYNC_POLL_MS = 1000;
const SYNC_TIMEOUT_MS = 120_000;

let running = null;
let tick = 0;

function showError(message) {
  errorBox.textContent = message;
  errorBox.hidden = !message;
}

function formatElapsed(startIso) {
  const seconds = Math.max(0, Math.floor((Date.now() - Date.parse(startIso)) / 1000));
  const h = Math.floor(seconds / 3600);
  const m = String(Math.floor((seconds % 3600) / 60)).padStart(2, "0");
  const s = String(seconds % 60).padStart(2, "0");
  return `${h}:${m}:${s}`;
}

function tags() {
  return tagsInput.value.split(",").map((tag) => tag.trim()).filter(Boolean);
}

function showTimer(state) {
  running = state.running ?? null;
  clearInterval(tick);
  runningBox.replaceChildren();
  stopButton.hidden = !running;
  if (!running) return;
  const name = document.createElement("span");
  name.className = "name";
  name.textContent = state.label || "Timer";
  const elapsed = document.createElement("span");
  elapsed.className = "elapsed";
  elapsed.setAttribute("data-tasktimer-elapsed", "");
  const update = () => (elapsed.textContent = formatElapsed(running.start));
  update();
  tick = setInterval(update, 1000);
  runningBox.append(name, elapsed);
  if (document.activeElement !== noteInput) noteInput.value = running.note ?? "";
  if (document.activeElement !== tagsInput) tagsInput.value = (running.tags ?? []).join(", ");
}

function showState(state) {
  $("#signed-out").hidden = state.signedIn;
  $("#signed-in").hidden = !state.signedIn;
  showTimer(state);
}

function resultItem(task, suggested = false) {
  const item = document.createElement("li");
  item.tabIndex = 0;
  item.setAttribute("data-tasktimer-task-id", task.id);
  if (suggested) item.classList.add("suggested");
  const name = document.createElement("span");
  name.textContent = task.name;
  const path = document.createElement("span");
  path.className = "path";
  path.textContent = (task.path ?? []).slice(0, -1).join(" › ");
  item.append(name, path);
  const startIt = () => void startTask(task.id);
  item.addEventListener("click", startIt);
  item.addEventListener("keydown", (event) => event.key === "Enter" && startIt());
  return item;
}

async function startTask(taskId) {
  showError("");
  try {
    // While a timer runs, the inputs show its own note and tags; a new timer starts clean
    // unless the user typed new ones.
    const state = await ask({ type: "start", taskId, note: noteInput.value, tags: tags(), at: new Date().toISOString() });
    if (!state.queued) showTimer(state);
  } catch (err) {
    showError(err.message);
  }
}

let searchTimer = 0;
let searchSeq = 0;
searchInput.addEventListener("input", () => {
  clearTimeout(searchTimer);
  searchTimer = setTimeout(async () => {
    const seq = ++searchSeq;
    const q = searchInput.value.trim();
    if (!q) return;
    try {
      const { items } = await ask({ type: "search", q });
      if (seq !== searchSeq) return; // a newer query is on its way
      hint.hidden = true;
      results.replaceChildren(...items.map((task) => resultItem(task)));
      if (!items.length) results.append(Object.assign(document.createElement("li"), { textContent: "No task found." }));
    } catch (err) {
      showError(err.message);
    }
  }, SEARCH_DEBOUNCE_MS);
});

async function saveNoteAndTags() {
  if (!running) return;
  try {
    await ask({ type: "update-running", note: noteInput.value, tags: tags() });
  } catch (err) {
    showError(err.message);
  }
}
noteInput.addEventListener("change", saveNoteAndTags);
tagsInput.addEventListener("change", saveNoteAndTags);

stopButton.addEventListener("click", async () => {
  showError("");
  try {
    const state = await ask({ type: "stop", entryId: running?.id, at: new Date().toISOString() });
    if (!state.queued) showTimer({ running: null });
  } catch (err) {
    showError(err.message);
  }
});

syncButton.addEventListener("click", async () => {
  showError("");
  syncButton.disabled = true;
  syncProgress.textContent = "Synchronization requested…";
  try {
    const { syncs } = await ask({ type: "force-sync" });
    if (!syncs.length) throw new Error("No integration is enabled.");
    const deadline = Date.now() + SYNC_TIMEOUT_MS;
    const done = new Map();
    while (done.size < syncs.length) {
      if (Date.now() > deadline) throw new Error("The synchronization takes longer than expected.");
      const lines = [];
      for (const { service, syncId } of syncs) {
        const sync = done.get(syncId) ?? (await ask({ type: "sync-status", service, syncId }));
        if (sync.state === "succeeded" || sync.state === "failed") done.set(syncId, sync);
        const c = sync.counts ?? {};
        lines.push(
          sync.state === "succeeded"
            ? `${service}: done — ${c.created ?? 0} created, ${c.updated ?? 0} updated, ` +
                `${c.archived ?? 0} archived, ${c.removed ?? 0} removed, ${c.unchanged ?? 0} unchanged`
            : `${service}: ${sync.state}${sync.error ? ` (${sync.error})` : ""}`,
        );
      }
      syncProgress.textContent = lines.join("; ");
      if (done.size < syncs.length) await new Promise((resolve) => setTimeout(resolve, SYNC_POLL_MS));
    }
    syncProgress.setAttribute("data-tasktimer-sync-done", "");
  } catch (err) {
    showError(err.message);
    syncProgress.textContent = "";
  } finally {
    syncButton.disabled = false;
  }
});

$("button[name=open-options]").addEventListener("click", () => void ask({ type: "open-options" }));

/**
 * The task of the page the popup was opened on: the site's content script knows the item
 * (external id), otherwise the server matches task keywords against the URL. A `?url=`
 * parameter names the page explicitly (useful when the popup is opened as a tab).
 */
async function suggestCurrentTask() {
  const explicitUrl = new URLSearchParams(location.search).get("url");
  let url = explicitUrl;
  let item = null;
  if (!explicitUrl) {
    const [tab] = await chrome.tabs.query({ active: true, currentWindow: true });
    url = tab?.url;
    if (tab?.id !== undefined && /^https?:/.test(url ?? "")) {
      item = await chrome.tabs.sendMessage(tab.id, { type: "page-item" }).catch(() => null);
    }
  }
  if (!url || !/^https?:/.test(url)) return;
  let task = null;
  if (item) {
    const { results: resolved } = await ask({ type: "resolve", service: item.service, externalIds: [item.externalId] });
    const found = resolved[item.externalId];
    if (found) task = { id: found.task_id, name: found.name, path: found.path };
  }
  if (!task) task = (await ask({ type: "match", url })).task;
  if (!task || searchInput.value.trim()) return;
  hint.hidden = false;
  results.replaceChildren(resultItem(task, true));
}

// ---------------------------------------------------------------- offline queue

const queueBox = $("#queue");
const queueList = $("[data-tasktimer-queue]");
const failureList = $("[data-tasktimer-queue-failures]");

function describeAction(action) {
  const what = action.kind === "start" ? "Start" : "Stop";
  const item = action.title || (action.externalId ? `${action.service} #${action.externalId}` : "the running timer");
  return `${what} ${item} — clicked ${new Date(action.at).toLocaleTimeString()}`;
}

async function showQueue() {
  const { queue, failures } = await ask({ type: "queued-actions" });
  queueBox.hidden = !queue.length;
  queueList.replaceChildren(
    ...queue.map((action) => {
      const item = document.createElement("li");
      item.setAttribute("data-tasktimer-queued-action", action.kind);
      item.textContent = describeAction(action);
      return item;
    }),
  );
  failureList.hidden = !failures.length;
  failureList.replaceChildren(
    ...failures.map((failure) => {
      const item = document.createElement("li");
      item.textContent = `Not sent: ${describeAction(failure)} (${failure.reason})`;
      return item;
    }),
  );
}

onStorageKey("queue", () => void showQueue());
onStorageKey("queueFailures", () => void showQueue());
void showQueue();

onStorageKey("timer", (timer) => showTimer(timer ?? { running: null }));
onStorageKey("auth", async () => showState(await ask({ type: "get-state" })));

const initial = await ask({ type: "get-state" });
showState(initial);
if (initial.signedIn) {
  suggestCurrentTask().catch((err) => console.info("Tasktimer: no task for this page", err.message));
}
