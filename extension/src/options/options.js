import { ask, onStorageKey } from "../shared/messaging.js";

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

onStorageKey("auth", async () => show(await ask({ type: "get-state" })));
show(await ask({ type: "get-state" }));
