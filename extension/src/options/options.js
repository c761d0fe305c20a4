import { ask, onStorageKey } from "../shared/messaging.js";
import { SERVICES, parseCustomHosts } from "../shared/settings.js";

const DEFAULT_SERVER_URL = "http://127.0.0.1:8080";

const form = document.querySelector("form#sign-in");
const signedInBox = document.querySelector("#signed-in");
const signedInEmail = document.querySelector("[data-tasktimer-signed-in]");
const currentServer = document.querySelector("#current-server");
const errorBox = document.querySelector("[data-tasktimer-error]");
const submit = form.querySelector("button[type=submit]");

function showError(message) {
  errorBox.textContent = message;
  errorBox.hidden = !message;
}

function show(state) {
  const signedIn = Boolean(state.signedIn && state.user);
  signedInBox.hidden = !signedIn;
  signedInEmail.textContent = signedIn ? state.user.email : "";
  currentServer.textContent = state.serverUrl ?? "";
  if (!form.elements.server_url.value) form.elements.server_url.value = state.serverUrl || DEFAULT_SERVER_URL;
}

// The manifest grants these hosts; any other server needs the user's consent.
const GRANTED_HOSTS = new Set(["127.0.0.1", "localhost"]);

/** Asks for the server's host permission unless the manifest already grants it. */
async function ensureHostPermission(serverUrl) {
  let url;
  try {
    url = new URL(serverUrl.includes("://") ? serverUrl : `http://${serverUrl}`);
  } catch {
    throw new Error("The server URL is not a valid URL.");
  }
  if (url.protocol === "http:" && GRANTED_HOSTS.has(url.hostname)) return;
  // Called first thing in the submit handler: the request needs the click's user gesture.
  if (!(await chrome.permissions.request({ origins: [`${url.origin}/*`] }))) {
    throw new Error(`Tasktimer needs permission to contact ${url.origin}.`);
  }
}

form.addEventListener("submit", async (event) => {
  event.preventDefault();
  showError("");
  const serverUrl = form.elements.server_url.value.trim() || DEFAULT_SERVER_URL;
  submit.disabled = true;
  try {
    await ensureHostPermission(serverUrl);
    const { user } = await ask({
      type: "sign-in",
      serverUrl,
      email: form.elements.email.value.trim(),
      password: form.elements.password.value,
    });
    form.elements.password.value = "";
    show({ signedIn: true, user, serverUrl });
  } catch (err) {
    showError(err.message);
  } finally {
    submit.disabled = false;
  }
});

document.querySelector("button[name=sign-out]").addEventListener("click", async () => {
  showError("");
  try {
    await ask({ type: "sign-out" });
    show(await ask({ type: "get-state" }));
  } catch (err) {
    showError(err.message);
  }
});

// ---------------------------------------------------------------- sites and custom hosts

const hostsInput = document.querySelector("textarea[name=custom-hosts]");
const hostsStatus = document.querySelector("[data-tasktimer-hosts-status]");
const saveHosts = document.querySelector("button[name=save-custom-hosts]");

async function loadSettings() {
  const { settings } = await chrome.storage.local.get("settings");
  return { sites: {}, customHosts: [], customHostsText: "", ...(settings ?? {}) };
}

async function saveSettings(changes) {
  await chrome.storage.local.set({ settings: { ...(await loadSettings()), ...changes } });
}

for (const service of SERVICES) {
  const box = document.querySelector(`input[name=site-${service}]`);
  box.addEventListener("change", async () => {
    const { sites } = await loadSettings();
    await saveSettings({ sites: { ...sites, [service]: box.checked } });
  });
}

/**
 * Saves the host list. New hosts are asked for as optional host permissions first (this
 * runs in the click's user gesture); hosts the user does not allow are not kept, and the
 * service worker registers content scripts for the rest and drops removed ones.
 */
async function applyCustomHosts() {
  const { hosts, errors } = parseCustomHosts(hostsInput.value);
  if (errors.length) {
    hostsStatus.textContent = errors.join(" ");
    return;
  }
  const previous = new Set((await loadSettings()).customHosts.map((host) => host.pattern));
  const added = hosts.filter((host) => !previous.has(host.pattern)).map((host) => host.pattern);
  if (added.length && !(await chrome.permissions.contains({ origins: added }))) {
    hostsStatus.textContent = `Asking for access to ${added.join(", ")}…`;
    if (!(await chrome.permissions.request({ origins: added }))) {
      hostsStatus.textContent = `Tasktimer was not allowed to use ${added.join(", ")}; nothing changed.`;
      return;
    }
  }
  const kept = new Set(hosts.map((host) => host.pattern));
  const removed = [...previous].filter((pattern) => !kept.has(pattern));
  await saveSettings({ customHosts: hosts, customHostsText: hostsInput.value });
  const { ids } = await ask({ type: "sync-custom-hosts" });
  if (removed.length) {
    // Only hosts the manifest does not grant anyway can be given back.
    await chrome.permissions.remove({ origins: removed }).catch(() => false);
  }
  hostsStatus.textContent = hosts.length
    ? `Saved: ${hosts.map((host) => `${host.service} on ${host.origin}`).join(", ")}.`
    : "Saved: no custom hosts.";
  hostsStatus.setAttribute("data-tasktimer-registered", String(ids.length));
}

saveHosts.addEventListener("click", () => {
  hostsStatus.textContent = "";
  applyCustomHosts().catch((err) => (hostsStatus.textContent = err.message));
});

async function showSettings() {
  const settings = await loadSettings();
  for (const service of SERVICES) {
    document.querySelector(`input[name=site-${service}]`).checked = settings.sites?.[service] !== false;
  }
  if (document.activeElement !== hostsInput) hostsInput.value = settings.customHostsText ?? "";
}

onStorageKey("settings", () => void showSettings());
await showSettings();

onStorageKey("auth", async () => show(await ask({ type: "get-state" })));
show(await ask({ type: "get-state" }));
