// The integrations page: reveal forms in place, save the keywords option on change, and
// keep each card's status, last sync and history current while synchronizations run.
// Every control also works without this script (plain forms and links).
import { announce, api, showAlert } from "/static/app.js";

const REFRESH_MS = 1500;

function reveal(id, show) {
  const target = document.getElementById(id);
  if (!target) return;
  target.hidden = !show;
  for (const control of document.querySelectorAll(`[aria-controls="${id}"]`)) {
    control.setAttribute("aria-expanded", String(show));
  }
  if (show) target.querySelector("input:not([type=hidden]), button")?.focus();
}

for (const form of document.querySelectorAll("form[data-tt-reveal]")) {
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const id = form.dataset.ttReveal;
    reveal(id, document.getElementById(id)?.hidden ?? false);
  });
}

for (const link of document.querySelectorAll("[data-tt-cancel]")) {
  link.addEventListener("click", (event) => {
    event.preventDefault();
    reveal(link.dataset.ttCancel, false);
  });
}

// Asana's consent page is another origin: ask the API for the authorize URL and go there
// (without scripts the form posts and the server redirects).
for (const form of document.querySelectorAll("form[data-tt-asana-start]")) {
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const button = form.querySelector("button");
    button.disabled = true;
    try {
      const path = form.dataset.ttAsanaStart === "reenable" ? "/integrations/asana/reenable" : "/integrations/asana";
      const { authorize_url: url } = await api("POST", path, form.dataset.ttAsanaStart === "reenable" ? {} : undefined);
      window.location.href = url;
    } catch (error) {
      button.disabled = false;
      showAlert(error.message);
    }
  });
}

for (const form of document.querySelectorAll("form[data-tt-settings-form]")) {
  form.querySelector("[data-tt-nojs]").hidden = true;
  const box = form.querySelector("input[name=keywords_from_ids]");
  const state = form.querySelector("[data-tt-settings-state]");
  box.addEventListener("change", async () => {
    box.disabled = true;
    state.textContent = "Saving…";
    try {
      await api("PATCH", `/integrations/${form.dataset.service}`, {
        settings: { keywords_from_ids: box.checked },
      });
      state.textContent = "Saved";
      announce(box.checked ? "Task ids are used as keywords" : "Task ids are no longer keywords");
    } catch (error) {
      box.checked = !box.checked;
      state.textContent = "";
      showAlert(`The option could not be saved: ${error.message}`);
    } finally {
      box.disabled = false;
    }
  });
}

// -- live cards -------------------------------------------------------------------------

let refreshing = null;

async function refreshCards() {
  const response = await fetch("/integrations?view=cards", {
    credentials: "same-origin",
    headers: { Accept: "text/html" },
  });
  if (!response.ok) return false;
  const fresh = new DOMParser().parseFromString(await response.text(), "text/html");
  let syncing = false;
  for (const card of document.querySelectorAll("[data-tt-integration]")) {
    const service = card.dataset.ttIntegration;
    const whole = fresh.querySelector(`[data-tt-integration="${service}"]`);
    if (whole && whole.dataset.ttActions !== card.dataset.ttActions) {
      // Other controls apply now (e.g. a refused login: re-enable instead of sync).
      window.location.reload();
      return false;
    }
    const next = fresh.querySelector(`[data-tt-integration="${service}"] [data-tt-card-body]`);
    const body = card.querySelector("[data-tt-card-body]");
    if (!next || !body) continue;
    const openHistory = body.querySelector("details.history")?.open;
    body.replaceWith(document.importNode(next, true));
    if (openHistory) {
      const details = card.querySelector("details.history");
      if (details) details.open = true;
    }
    if (next.querySelector("[data-tt-status]")?.dataset.ttStatus === "syncing") syncing = true;
  }
  return syncing;
}

function refreshSoon() {
  if (refreshing) return;
  refreshing = setTimeout(async () => {
    refreshing = null;
    try {
      if (await refreshCards()) refreshSoon();
    } catch (error) {
      // A failed refresh leaves the page as it was; the next action reloads it.
    }
  }, REFRESH_MS);
}

document.addEventListener("tt-synced", () => {
  clearTimeout(refreshing);
  refreshing = null;
  refreshCards().catch(() => {});
});

if (document.querySelector('[data-tt-status="syncing"]')) refreshSoon();
