// Tasktimer service worker: the only component that holds the API token and talks to the
// server. Content scripts, the popup and the options page send it `{type, ...}` messages.
// Every listener is registered synchronously at the top level so Chrome can wake the
// worker for it; anything that must outlive the worker is kept in chrome.storage.

import { ApiError, ServerClient, normaliseServerUrl, readEventStream } from "./api.js";
import {
  loadAuth,
  loadQueue,
  loadSettings,
  loadTimer,
  recordQueueFailure,
  saveAuth,
  saveQueue,
  saveTimer,
} from "./storage.js";

const SERVICES = new Set(["heyspace", "asana", "pivotaltracker"]);
const SERVICE_NAMES = { heyspace: "HeySpace", asana: "Asana", pivotaltracker: "Pivotal Tracker" };
const SITE_TABS = [
  "https://app.hey.space/*",
  "https://planner.timecamp.com/*",
  "https://app.asana.com/*",
  "https://www.pivotaltracker.com/*",
];
// The files a site's content script is made of, as in manifest.json; custom hosts get the same.
const SITE_SCRIPTS = {
  heyspace: "src/content/heyspace.js",
  asana: "src/content/asana.js",
  pivotaltracker: "src/content/pivotal.js",
};
const CUSTOM_SCRIPT_PREFIX = "custom-host:";
const POLL_ALARM = "tasktimer-poll";
const QUEUE_ALARM = "tasktimer-queue";
// While the worker lives, a queued click is retried this often; the alarm covers restarts.
const QUEUE_RETRY_MS = [1000, 2000, 3000, 5000];
// `at` older than this cannot be replayed (API.md: 24 h); such clicks are dropped.
const MAX_REPLAY_AGE_MS = 24 * 3600 * 1000;
// Chrome's minimum alarm period; the SSE stream carries changes faster while it is open.
const POLL_PERIOD_MIN = 0.5;
const MAX_RESOLVE_IDS = 5000;

// ---------------------------------------------------------------- top-level listeners

chrome.runtime.onMessage.addListener((message, sender, sendResponse) => {
  handleMessage(message, sender).then(
    (data) => sendResponse({ ok: true, data }),
    (err) => sendResponse({ ok: false, error: describeError(err) }),
  );
  return true; // the answer is sent asynchronously
});

chrome.runtime.onInstalled.addListener(() => {
  void schedulePolling();
  void syncCustomHostScripts();
});
chrome.runtime.onStartup.addListener(() => {
  void schedulePolling();
  void syncCustomHostScripts();
});
chrome.alarms.onAlarm.addListener((alarm) => {
  if (alarm.name === POLL_ALARM) void poll();
  if (alarm.name === QUEUE_ALARM) void flushQueue();
});
chrome.storage.onChanged.addListener((changes, area) => {
  if (area === "local" && Object.hasOwn(changes, "settings")) void syncCustomHostScripts();
});
function onCommand(command, tab) {
  if (command === "toggle-timer") return toggleTimer(tab);
  return Promise.resolve();
}
chrome.commands?.onCommand.addListener((command, tab) => void onCommand(command, tab));
// Debugging hook (DevTools console, end-to-end tests): headless browsers have no
// keyboard shortcuts, so `tasktimer.runCommand("toggle-timer")` runs the same path.
globalThis.tasktimer = Object.freeze({ runCommand: (command) => onCommand(command, undefined) });


// ---------------------------------------------------------------- message routing

/** Messages that only the extension's own pages (options, popup) may send. */
const EXTENSION_PAGES_ONLY = new Set(["sign-in", "sign-out", "queued-actions", "sync-custom-hosts"]);

const HANDLERS = {
  "get-state": getState,
  "sign-in": signIn,
  "sign-out": signOut,
  resolve,
  start,
  stop,
  "update-running": updateRunning,
  "queued-actions": queuedActions,
  "sync-custom-hosts": async () => {
    await syncCustomHostScripts();
    return { ids: (await chrome.scripting.getRegisteredContentScripts()).map((script) => script.id) };
  },
  search,
  match,
  integrations,
  "force-sync": forceSync,
  "sync-status": syncStatus,
  "open-options": async () => {
    await chrome.runtime.openOptionsPage();
    return null;
  },
};

async function handleMessage(message, sender) {
  if (sender.id !== chrome.runtime.id) {
    throw new ApiError(403, "forbidden_sender", "Messages are accepted from this extension only.");
  }
  const type = message?.type;
  const handler = typeof type === "string" && Object.hasOwn(HANDLERS, type) ? HANDLERS[type] : null;
  if (!handler) throw new ApiError(400, "unknown_message", `Unknown message type: ${String(type)}`);
  if (EXTENSION_PAGES_ONLY.has(type) && !isExtensionPage(sender)) {
    throw new ApiError(403, "forbidden_sender", `"${type}" is only accepted from the extension's pages.`);
  }
  return handler(message, sender);
}

function isExtensionPage(sender) {
  // Content scripts report the host page's URL here; extension pages their own.
  return typeof sender.url === "string" && sender.url.startsWith(chrome.runtime.getURL(""));
}

function describeError(err) {
  if (err instanceof ApiError) return { status: err.status, code: err.code, message: err.message };
  console.error("Tasktimer: unexpected error", err);
  return { status: 0, code: "internal_error", message: String(err?.message ?? err) };
}

function requireService(value) {
  if (!SERVICES.has(value)) throw new ApiError(400, "validation_error", `Unknown service: ${String(value)}`);
  return value;
}

function requireString(value, field) {
  if (typeof value !== "string" || value === "") {
    throw new ApiError(400, "validation_error", `"${field}" must be a non-empty string.`);
  }
  return value;
}

// ---------------------------------------------------------------- server access

/** Runs `call` with a signed-in client; a 401 means the token is gone, so forget it. */
async function withClient(call) {
  const auth = await loadAuth();
  if (!auth.token) throw new ApiError(401, "signed_out", "Sign in to Tasktimer in the extension's options.");
  try {
    return await call(new ServerClient(auth.serverUrl, auth.token));
  } catch (err) {
    if (err instanceof ApiError && err.status === 401) {
      await forgetToken(auth.token);
      throw new ApiError(401, "signed_out", "Your Tasktimer session ended. Sign in again in the options.");
    }
    throw err;
  }
}

async function forgetToken(token) {
  const auth = await loadAuth();
  if (auth.token !== token) return; // someone signed in again meanwhile
  await saveAuth({ ...auth, token: null, user: null });
  stopLiveUpdates();
  await saveTimer({ running: null, label: null });
  await broadcast({ type: "auth-changed", signedIn: false });
}

// ---------------------------------------------------------------- timer state

// Requests that change or read the timer may finish out of order; only the answer to the
// most recently issued one may be published.
let issuedGeneration = 0;
let publishedGeneration = 0;

function sameTimer(a, b) {
  if (!a || !b) return a === b;
  return a.id === b.id && a.task_id === b.task_id && a.end === b.end && a.note === b.note;
}

async function labelFor(running, previous, hint) {
  if (!running) return null;
  if (previous.running?.id === running.id && previous.running?.task_id === running.task_id && previous.label) {
    return previous.label;
  }
  const embedded = running.task?.name ?? running.task_name;
  if (embedded) return embedded;
  if (running.task_id) {
    try {
      const task = await withClient((client) => client.task(running.task_id));
      return Array.isArray(task.path) && task.path.length ? task.path.join(" › ") : task.name;
    } catch (err) {
      console.warn("Tasktimer: cannot read the running task's name", err);
      return hint || "Task";
    }
  }
  const ref = running.pending_ref;
  if (ref) return `${hint || `${SERVICE_NAMES[ref.service] ?? ref.service} #${ref.external_id}`} (not imported yet)`;
  return hint || "Timer";
}

/**
 * Saves and announces the timer. `stopped` is the entry a start or stop just ended: tabs
 * add its duration to the item's total without asking the server again.
 */
async function publishTimer(running, generation, hint = "", stopped = null) {
  if (generation < publishedGeneration) return { ...(await loadTimer()), stopped };
  publishedGeneration = generation;
  const previous = await loadTimer();
  const state = { running: running ?? null, label: await labelFor(running, previous, hint) };
  await saveTimer(state);
  if (!sameTimer(previous.running, state.running) || previous.label !== state.label || stopped) {
    await broadcast({ type: "timer-changed", running: state.running, label: state.label, stopped });
  }
  return { ...state, stopped };
}

async function refreshTimer() {
  const generation = ++issuedGeneration;
  const answer = await withClient((client) => client.timer());
  return publishTimer(answer.running, generation);
}

/** Tells every open site tab; the popup and options page follow chrome.storage instead. */
async function broadcast(message) {
  const { customHosts = [] } = await loadSettings();
  const tabs = await chrome.tabs.query({ url: [...SITE_TABS, ...customHosts.map((host) => host.pattern)] });
  await Promise.all(
    tabs.map((tab) =>
      chrome.tabs.sendMessage(tab.id, message).catch((err) => {
        // A tab that is still loading or was opened before install has no content script.
        if (!/Receiving end does not exist|Could not establish connection/.test(String(err?.message))) {
          console.warn("Tasktimer: broadcast to tab failed", tab.id, err);
        }
      }),
    ),
  );
}

// ---------------------------------------------------------------- live updates

let liveController = null;

async function ensureLiveUpdates() {
  if (liveController) return;
  const auth = await loadAuth();
  if (!auth.token || liveController) return;
  const controller = new AbortController();
  liveController = controller;
  try {
    const response = await new ServerClient(auth.serverUrl, auth.token).openEvents(controller.signal);
    await refreshTimer(); // catch up on whatever changed while no stream was open
    for await (const event of readEventStream(response.body)) await onServerEvent(event);
  } catch (err) {
    if (controller.signal.aborted) return;
    if (err instanceof ApiError && err.status === 401) await forgetToken(auth.token);
    else console.info("Tasktimer: event stream closed; polling continues", err?.message ?? err);
  } finally {
    if (liveController === controller) liveController = null;
  }
}

function stopLiveUpdates() {
  liveController?.abort();
  liveController = null;
}

async function onServerEvent({ event, data }) {
  if (event === "timer" || event === "entry") {
    // The payload shape of these events is not fixed by API.md; GET /timer is.
    await refreshTimer();
  } else if (event === "tasks") {
    await broadcast({ type: "tasks-changed" });
  }
}

async function schedulePolling() {
  const existing = await chrome.alarms.get(POLL_ALARM);
  if (!existing) await chrome.alarms.create(POLL_ALARM, { periodInMinutes: POLL_PERIOD_MIN });
}

async function poll() {
  const auth = await loadAuth();
  if (!auth.token) return;
  try {
    await flushQueue();
    await refreshTimer();
  } catch (err) {
    console.info("Tasktimer: timer poll failed", describeError(err));
  }
  void ensureLiveUpdates();
}

// ---------------------------------------------------------------- handlers

async function getState() {
  const [auth, timer] = await Promise.all([loadAuth(), loadTimer()]);
  return {
    signedIn: Boolean(auth.token),
    user: auth.user,
    serverUrl: auth.serverUrl,
    running: auth.token ? timer.running : null,
    label: auth.token ? timer.label : null,
  };
}

async function signIn(message) {
  const serverUrl = normaliseServerUrl(message.serverUrl);
  const email = requireString(message.email, "email");
  const password = requireString(message.password, "password");
  const origins = [`${new URL(serverUrl).origin}/*`];
  if (!(await chrome.permissions.contains({ origins }))) {
    throw new ApiError(0, "permission_missing", `The extension may not contact ${serverUrl} yet: allow it when asked.`);
  }
  let answer;
  try {
    answer = await new ServerClient(serverUrl, null).login(email, password);
  } catch (err) {
    if (err instanceof ApiError && err.status === 401) {
      throw new ApiError(401, "invalid_credentials", "Wrong e-mail or password.");
    }
    throw err;
  }
  stopLiveUpdates();
  await saveAuth({ serverUrl, token: answer.token, user: answer.user });
  await schedulePolling();
  await refreshTimer();
  await broadcast({ type: "auth-changed", signedIn: true });
  void ensureLiveUpdates();
  return { user: answer.user, serverUrl };
}

async function signOut() {
  const auth = await loadAuth();
  if (auth.token) {
    try {
      await new ServerClient(auth.serverUrl, auth.token).logout();
    } catch (err) {
      // Signing out locally must work even when the server is gone or the token expired.
      console.info("Tasktimer: server-side logout failed", describeError(err));
    }
  }
  stopLiveUpdates();
  await saveAuth({ serverUrl: auth.serverUrl, token: null, user: null });
  await saveTimer({ running: null, label: null });
  await broadcast({ type: "auth-changed", signedIn: false });
  return null;
}

async function resolve(message) {
  const service = requireService(message.service);
  const ids = message.externalIds;
  if (!Array.isArray(ids) || ids.length > MAX_RESOLVE_IDS || !ids.every((id) => typeof id === "string" && id)) {
    throw new ApiError(400, "validation_error", `"externalIds" must be a list of at most ${MAX_RESOLVE_IDS} ids.`);
  }
  const auth = await loadAuth();
  if (!auth.token) return { signedIn: false, results: {}, running: null, queue: [] };
  const results = ids.length ? await withClient((client) => client.resolve(service, ids)) : {};
  const [timer, queue] = await Promise.all([loadTimer(), loadQueue()]);
  void ensureLiveUpdates();
  if (queue.length) void flushQueue();
  return { signedIn: true, results, running: timer.running, queue: queue.map(queueView) };
}

/** The click's time from the page when it is plausible, else now. */
function clickTime(value) {
  const at = typeof value === "string" ? Date.parse(value) : NaN;
  const now = Date.now();
  return new Date(Number.isFinite(at) && at <= now && at > now - MAX_REPLAY_AGE_MS ? at : now).toISOString();
}

async function start(message, sender) {
  const body = {};
  if (message.taskId) {
    body.task_id = requireString(message.taskId, "taskId");
  } else {
    body.service = requireService(message.service);
    body.external_id = requireString(message.externalId, "externalId");
  }
  if (typeof message.note === "string" && message.note) body.note = message.note;
  if (Array.isArray(message.tags) && message.tags.length) body.tags = message.tags.map(String);
  body.created_with = isExtensionPage(sender) ? "popup" : `extension:${message.service}`;
  const title = typeof message.title === "string" ? message.title : "";
  const action = {
    key: crypto.randomUUID(),
    kind: "start",
    at: clickTime(message.at),
    service: body.service ?? null,
    externalId: body.external_id ?? null,
    title,
    body,
  };
  return sendOrQueue(action);
}

async function stop(message) {
  const current = await loadTimer();
  const entryId = typeof message.entryId === "string" && message.entryId ? message.entryId : current.running?.id;
  const action = {
    key: crypto.randomUUID(),
    kind: "stop",
    at: clickTime(message.at),
    service: SERVICES.has(message.service) ? message.service : null,
    externalId: typeof message.externalId === "string" ? message.externalId : null,
    title: current.label ?? "",
    body: entryId ? { entry_id: entryId } : {},
  };
  return sendOrQueue(action);
}

// ---------------------------------------------------------------- offline queue

/** Sends one start/stop; `replay` adds the click's time so a late arrival keeps it. */
async function send(action, replay) {
  const body = replay ? { ...action.body, at: action.at } : action.body;
  const generation = ++issuedGeneration;
  if (action.kind === "start") {
    const answer = await withClient((client) => client.start(body, action.key));
    return publishTimer(answer.running, generation, action.title, answer.stopped ?? null);
  }
  const current = await loadTimer();
  const answer = await withClient((client) => client.stop(body, action.key));
  const stoppedId = answer.stopped?.id ?? body.entry_id;
  const stillRunning = current.running && current.running.id !== stoppedId && body.entry_id ? current.running : null;
  return publishTimer(stillRunning, generation, "", answer.stopped ?? null);
}

function unreachable(err) {
  return err instanceof ApiError && (err.status === 0 || err.status === 502 || err.status === 503 || err.status === 504);
}

function queueView(action) {
  return { key: action.key, kind: action.kind, at: action.at, service: action.service, externalId: action.externalId, title: action.title };
}

// One queue writer at a time inside this worker: appends and replays never interleave.
let queueLock = Promise.resolve();
function withQueue(fn) {
  const run = queueLock.then(fn, fn);
  queueLock = run.catch(() => undefined);
  return run;
}

async function announceQueue() {
  const queue = await loadQueue();
  await broadcast({ type: "queue-changed", queue: queue.map(queueView) });
  return queue;
}

/**
 * A click is sent at once unless earlier clicks still wait (order matters) or the server
 * cannot be reached; then it is kept with its time and idempotency key and replayed later.
 */
async function sendOrQueue(action) {
  await flushQueue();
  const direct = await withQueue(async () => {
    if ((await loadQueue()).length) return null;
    try {
      return await send(action, false);
    } catch (err) {
      if (!unreachable(err)) throw err;
      return null;
    }
  });
  if (direct) return direct;
  await withQueue(async () => saveQueue([...(await loadQueue()), { ...action, queuedAt: new Date().toISOString() }]));
  const queue = await announceQueue();
  scheduleQueueRetry(0);
  return { queued: true, queue: queue.map(queueView) };
}

let retryTimer = 0;
let retryAttempt = 0;

function scheduleQueueRetry(attempt) {
  retryAttempt = attempt;
  clearTimeout(retryTimer);
  retryTimer = setTimeout(() => void flushQueue(), QUEUE_RETRY_MS[Math.min(attempt, QUEUE_RETRY_MS.length - 1)]);
  void chrome.alarms.create(QUEUE_ALARM, { periodInMinutes: POLL_PERIOD_MIN });
}

/** Replays kept clicks in order, each once: the same Idempotency-Key and `at` as clicked. */
function flushQueue() {
  return withQueue(async () => {
    let queue = await loadQueue();
    if (!queue.length) {
      await chrome.alarms.clear(QUEUE_ALARM);
      return;
    }
    if (!(await loadAuth()).token) return;
    let changed = false;
    try {
      while (queue.length) {
        const [action] = queue;
        try {
          await send(action, true);
        } catch (err) {
          if (unreachable(err) || (err instanceof ApiError && (err.status === 401 || err.status === 429))) throw err;
          // Refused for good (e.g. `invalid_time`, not trackable): drop it and say so.
          await recordQueueFailure(action, err.message);
        }
        queue = queue.slice(1);
        await saveQueue(queue);
        changed = true;
      }
      clearTimeout(retryTimer);
      await chrome.alarms.clear(QUEUE_ALARM);
    } catch (err) {
      console.info("Tasktimer: queued clicks wait for the server", describeError(err));
      scheduleQueueRetry(retryAttempt + 1);
    } finally {
      if (changed) {
        await broadcast({ type: "queue-changed", queue: queue.map(queueView) });
        await broadcast({ type: "tasks-changed" });
      }
    }
  });
}

async function queuedActions() {
  const { queueFailures = [] } = await chrome.storage.local.get("queueFailures");
  return { queue: (await loadQueue()).map(queueView), failures: queueFailures };
}

// ---------------------------------------------------------------- keyboard

/** `toggle-timer`: stop the running timer, or start one on the item open in the tab. */
async function toggleTimer(tab) {
  try {
    const timer = await loadTimer();
    if (timer.running) {
      await stop({ entryId: timer.running.id, at: new Date().toISOString() });
      return;
    }
    const active = tab?.id !== undefined ? tab : (await chrome.tabs.query({ active: true, currentWindow: true }))[0];
    if (active?.id === undefined) return;
    const item = await chrome.tabs.sendMessage(active.id, { type: "page-item" }).catch(() => null);
    if (!item?.externalId || !SERVICES.has(item.service)) return;
    await start(
      { service: item.service, externalId: item.externalId, title: item.title ?? "", at: new Date().toISOString() },
      { url: active.url },
    );
  } catch (err) {
    console.warn("Tasktimer: keyboard toggle failed", describeError(err));
  }
}

// ---------------------------------------------------------------- custom hosts

// Settings changes and the options page both ask for a sync; they must not interleave.
let hostSync = Promise.resolve();
function syncCustomHostScripts() {
  const run = hostSync.then(applyCustomHostScripts, applyCustomHostScripts);
  hostSync = run.catch((err) => console.warn("Tasktimer: custom host scripts", err));
  return run;
}

/** Registers content scripts for the custom hosts the user allowed; drops removed ones. */
async function applyCustomHostScripts() {
  const { customHosts = [] } = await loadSettings();
  const wanted = new Map();
  for (const host of customHosts) {
    if (!SITE_SCRIPTS[host.service]) continue;
    if (!(await chrome.permissions.contains({ origins: [host.pattern] }))) continue;
    wanted.set(`${CUSTOM_SCRIPT_PREFIX}${host.service}:${host.pattern}`, host);
  }
  const registered = await chrome.scripting.getRegisteredContentScripts();
  const ours = registered.filter((script) => script.id.startsWith(CUSTOM_SCRIPT_PREFIX));
  const stale = ours.filter((script) => !wanted.has(script.id)).map((script) => script.id);
  if (stale.length) await chrome.scripting.unregisterContentScripts({ ids: stale });
  const present = new Set(ours.map((script) => script.id));
  const fresh = [...wanted].filter(([id]) => !present.has(id));
  if (!fresh.length) return;
  await chrome.scripting.registerContentScripts(
    fresh.map(([id, host]) => ({
      id,
      matches: [host.pattern],
      js: ["src/content/buttons.js", SITE_SCRIPTS[host.service]],
      css: ["src/content/buttons.css"],
      runAt: "document_idle",
      persistAcrossSessions: true,
    })),
  );
  // Tabs already open on a new host get the buttons without a reload.
  for (const [, host] of fresh) {
    const tabs = await chrome.tabs.query({ url: host.pattern });
    for (const tab of tabs) {
      const target = { tabId: tab.id };
      await chrome.scripting.insertCSS({ target, files: ["src/content/buttons.css"] }).catch(() => undefined);
      await chrome.scripting
        .executeScript({ target, files: ["src/content/buttons.js", SITE_SCRIPTS[host.service]] })
        .catch(() => undefined);
    }
  }
}

async function updateRunning(message) {
  const current = await loadTimer();
  if (!current.running) throw new ApiError(409, "no_running_timer", "No timer is running.");
  const changes = {};
  if (typeof message.note === "string") changes.note = message.note;
  if (Array.isArray(message.tags)) changes.tags = message.tags.map(String);
  const generation = ++issuedGeneration;
  const entry = await withClient((client) => client.updateEntry(current.running.id, changes));
  return publishTimer(entry.end ? null : entry, generation);
}

async function search(message) {
  const query = typeof message.q === "string" ? message.q.trim() : "";
  const answer = await withClient((client) => client.searchTasks(query));
  return { items: answer.items };
}

async function match(message) {
  const url = requireString(message.url, "url");
  return withClient((client) => client.match(url));
}

async function integrations() {
  const answer = await withClient((client) => client.integrations());
  return { items: answer.items };
}

async function forceSync(message) {
  return withClient(async (client) => {
    let services;
    if (message.service) {
      services = [requireService(message.service)];
    } else {
      const { items } = await client.integrations();
      services = items.filter((item) => item.status !== "unlinked").map((item) => item.service);
    }
    const syncs = await Promise.all(
      services.map(async (service) => {
        const { sync_id: syncId } = await client.forceSync(service);
        return { service, syncId };
      }),
    );
    return { syncs };
  });
}

// Each finished sync is announced once so open tabs re-resolve their buttons.
const announcedSyncs = new Set();

async function syncStatus(message) {
  const service = requireService(message.service);
  const syncId = requireString(message.syncId, "syncId");
  const sync = await withClient((client) => client.syncStatus(service, syncId));
  if (sync.state === "succeeded" && !announcedSyncs.has(syncId)) {
    announcedSyncs.add(syncId);
    await broadcast({ type: "tasks-changed" });
    // A sync may have bound a pending entry to its task.
    await refreshTimer();
  }
  return sync;
}

// ---------------------------------------------------------------- wake-up

// A freshly woken worker reconnects to the event stream and replays clicks kept while the
// server was unreachable (also after a browser restart); without a token both are no-ops.
// Last in the module: everything they use is initialised by now.
void ensureLiveUpdates();
void flushQueue();
