// Shared by every page: the JSON API with the session cookie and its CSRF token,
// alerts and announcements, the time zone at first sign-in, Force synchronization.

const csrfMeta = document.querySelector('meta[name="csrf-token"]');

export function csrfToken() {
  return csrfMeta ? csrfMeta.content : "";
}

export class ApiError extends Error {
  constructor(status, problem) {
    super(problem.detail || problem.title || `HTTP ${status}`);
    this.status = status;
    this.code = problem.code || "";
    this.problem = problem;
  }
}

// Calls /api/v1/... with the session cookie; unsafe methods carry the CSRF header.
export async function api(method, path, body) {
  const headers = { Accept: "application/json" };
  if (method !== "GET" && method !== "HEAD") headers["X-CSRF-Token"] = csrfToken();
  if (body !== undefined) headers["Content-Type"] = "application/json";
  const response = await fetch(`/api/v1${path}`, {
    method,
    headers,
    credentials: "same-origin",
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  if (response.status === 401) {
    // The session ended (signed out elsewhere, deactivated): back to the sign-in page.
    window.location.assign(`/?next=${encodeURIComponent(location.pathname + location.search)}`);
    throw new ApiError(401, { detail: "signed out" });
  }
  const text = await response.text();
  const data = text ? JSON.parse(text) : null;
  if (!response.ok) throw new ApiError(response.status, data || {});
  return data;
}

export function showAlert(message) {
  const box = document.querySelector("[data-tt-alerts]");
  if (!box) return;
  const p = document.createElement("p");
  p.setAttribute("role", "alert");
  p.className = "alert";
  p.textContent = message;
  box.replaceChildren(p);
}

export function clearAlerts() {
  document.querySelector("[data-tt-alerts]")?.replaceChildren();
}

export function announce(message) {
  const live = document.querySelector("[data-tt-live]");
  if (live) live.textContent = message;
}

export function debounce(fn, ms) {
  let timer = 0;
  return (...args) => {
    clearTimeout(timer);
    timer = setTimeout(() => fn(...args), ms);
  };
}

export function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value === false || value === null || value === undefined) continue;
    if (key === "class") node.className = value;
    else if (key === "text") node.textContent = value;
    else node.setAttribute(key, value === true ? "" : String(value));
  }
  node.append(...children);
  return node;
}

export function formatDuration(seconds) {
  const s = Math.max(0, Math.floor(seconds));
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  return `${h}:${String(m).padStart(2, "0")}:${String(s % 60).padStart(2, "0")}`;
}

// -- time zone: set from the browser at the first sign-in ------------------------------

async function adoptBrowserTimeZone() {
  const body = document.body;
  if (!body.hasAttribute("data-tt-tz-unset")) return;
  const zone = Intl.DateTimeFormat().resolvedOptions().timeZone;
  if (!zone) return;
  try {
    await api("PATCH", "/me", { time_zone: zone });
  } catch (error) {
    return; // unknown to the server: the account keeps UTC
  }
  // Days and times on this page were drawn in the old zone: draw them again.
  if (zone !== body.dataset.ttTz) window.location.reload();
  else body.removeAttribute("data-tt-tz-unset");
}

// -- Force synchronization: every form[data-tt-sync] -----------------------------------

const COUNT_WORDS = ["created", "updated", "archived", "removed", "unchanged"];

async function waitForSync(service, syncId) {
  for (;;) {
    const sync = await api("GET", `/integrations/${service}/syncs/${encodeURIComponent(syncId)}`);
    if (sync.state === "succeeded" || sync.state === "failed") return sync;
    await new Promise((resolve) => setTimeout(resolve, 400));
  }
}

export async function forceSync(form) {
  const state = form.querySelector("[data-tt-sync-state]");
  const button = form.querySelector("button[name=force-sync]");
  const services = (form.dataset.services || "").split(/\s+/).filter(Boolean);
  button.disabled = true;
  state.dataset.state = "running";
  state.textContent = "running";
  announce("Synchronization running");
  try {
    const started = await Promise.all(
      services.map(async (service) => {
        const { sync_id: syncId } = await api("POST", `/integrations/${service}/sync`);
        return waitForSync(service, syncId);
      }),
    );
    const totals = Object.fromEntries(COUNT_WORDS.map((w) => [w, 0]));
    for (const sync of started) {
      for (const word of COUNT_WORDS) totals[word] += sync.counts?.[word] || 0;
    }
    const failed = started.filter((s) => s.state === "failed");
    const counts = COUNT_WORDS.map((w) => `${totals[w]} ${w}`).join(", ");
    const result = failed.length ? "failed" : "succeeded";
    state.dataset.state = result;
    state.textContent = failed.length
      ? `failed: ${failed.map((s) => s.error || "unknown error").join("; ")} (${counts})`
      : `succeeded: ${counts}`;
    announce(`Synchronization ${result}`);
    form.dispatchEvent(new CustomEvent("tt-synced", { bubbles: true, detail: started }));
  } catch (error) {
    state.dataset.state = "failed";
    state.textContent = `failed: ${error.message}`;
    showAlert(`Synchronization could not start: ${error.message}`);
  } finally {
    button.disabled = false;
  }
}

function bindSyncForms() {
  for (const form of document.querySelectorAll("form[data-tt-sync]")) {
    form.addEventListener("submit", (event) => {
      event.preventDefault();
      forceSync(form);
    });
  }
}

adoptBrowserTimeZone();
bindSyncForms();
