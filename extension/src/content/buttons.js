// Shared button helper for every site. A site file calls `TasktimerButtons.start(site)`
// and only says where items are and how to read their external id and title; this file
// renders the buttons, keeps exactly one per item and place, batches resolution and
// follows the timer. Content scripts are classic scripts, so this is an IIFE that
// publishes one global for the site file loaded after it.
(() => {
  "use strict";

  if (globalThis.TasktimerButtons) return;

  const CACHE_TTL_MS = 15_000;
  const DEBOUNCE_MS = 100;
  const MAX_WAIT_MS = 500;
  const SYNC_POLL_MS = 1_000;
  const SYNC_TIMEOUT_MS = 90_000;
  const TOAST_MS = 6_000;
  const TICK_MS = 30_000;
  const PREFIX = "tasktimer-";
  const SETTINGS = "settings";

  const LABELS = {
    loading: ["…", "Tasktimer: checking this item"],
    start: ["▶ Start", "Start the Tasktimer timer on this item"],
    stop: ["■ Stop", "Stop the Tasktimer timer"],
    "not-found": [
      "Task not found",
      "Task not found in Tasktimer: it appears after the next synchronization. " +
        "Click to force synchronization or to start anyway.",
    ],
    forbidden: ["Not allowed", "You have no tracking role on this task in Tasktimer."],
    "signed-out": ["Sign in", "Sign in to Tasktimer in the extension's options"],
    error: ["Retry", "Tasktimer could not check this item; click to retry"],
    queued: [
      "Queued…",
      "The Tasktimer server cannot be reached: this click is kept and sent as soon as it answers.",
    ],
  };

  /** Compact tracked time: `h:mm` (e.g. 1:23), or seconds under a minute. */
  function compact(seconds) {
    if (seconds < 60) return `${seconds}s`;
    const minutes = Math.floor(seconds / 60);
    return `${Math.floor(minutes / 60)}:${String(minutes % 60).padStart(2, "0")}`;
  }

  function spelled(seconds) {
    const minutes = Math.floor(seconds / 60);
    const h = Math.floor(minutes / 60);
    return h ? `${h} h ${minutes % 60} min` : `${minutes} min`;
  }

  /** Sends a message to the service worker and unwraps its `{ok, data | error}` answer. */
  async function ask(message) {
    let answer;
    try {
      answer = await chrome.runtime.sendMessage(message);
    } catch (err) {
      // The extension was reloaded or updated: this old content script is orphaned.
      throw Object.assign(new Error("Tasktimer was updated: reload this page."), { code: "extension_reloaded" });
    }
    if (!answer?.ok) {
      const error = answer?.error ?? { code: "no_answer", message: "Tasktimer did not answer." };
      throw Object.assign(new Error(error.message), { code: error.code, status: error.status });
    }
    return answer.data;
  }

  function element(tag, attributes = {}, text = "") {
    const node = document.createElement(tag);
    for (const [name, value] of Object.entries(attributes)) node.setAttribute(name, value);
    if (text) node.textContent = text;
    return node;
  }

  function isOurs(node) {
    return node.nodeType === Node.ELEMENT_NODE && [...node.classList].some((c) => c.startsWith(PREFIX));
  }

  class Controller {
    constructor(site) {
      this.site = site;
      this.service = site.service;
      /** @type {Map<string, {result: object | null | undefined, at: number, error?: string}>} */
      this.cache = new Map();
      this.inFlight = new Set();
      this.signedIn = true;
      this.running = null;
      /** item element -> its button, per place name */
      this.mounted = new WeakMap();
      this.timer = 0;
      this.firstScheduledAt = 0;
      this.lastUrl = location.href;
      this.panel = null;
      this.toast = null;
      /** queued actions (service, externalId, kind) waiting for the server */
      this.queue = [];
      /** stopped entries already added to the totals */
      this.countedStops = new Set();
      this.enabled = false;
      this.observer = new MutationObserver((records) => this.onMutations(records));
      this.tick = 0;
    }

    start() {
      chrome.runtime.onMessage.addListener((message, sender, sendResponse) =>
        this.onMessage(message, sendResponse),
      );
      chrome.storage.onChanged.addListener((changes, area) => {
        if (area === "local" && Object.hasOwn(changes, SETTINGS)) this.applySettings(changes[SETTINGS].newValue);
      });
      addEventListener("popstate", () => this.schedule());
      globalThis.navigation?.addEventListener("navigatesuccess", () => this.schedule());
      chrome.storage.local.get(SETTINGS).then(
        ({ [SETTINGS]: settings }) => this.applySettings(settings),
        () => this.applySettings(undefined),
      );
    }

    // ------------------------------------------------------------ site switch

    /** On when the site's switch is on and this host is the site's own or a custom one. */
    allowedBy(settings) {
      if (settings?.sites?.[this.service] === false) return false;
      const host = location.hostname;
      if ((this.site.hosts ?? []).includes(host)) return true;
      return (settings?.customHosts ?? []).some((entry) => entry.service === this.service && entry.hostname === host);
    }

    applySettings(settings) {
      const enabled = this.allowedBy(settings);
      if (enabled === this.enabled) return;
      this.enabled = enabled;
      if (enabled) {
        this.observer.observe(document.documentElement, {
          childList: true,
          subtree: true,
          attributes: true,
          attributeFilter: ["id", "data-task-id", "class"],
        });
        this.pass();
        return;
      }
      this.observer.disconnect();
      clearTimeout(this.timer);
      this.timer = 0;
      this.closePanel();
      this.toast?.remove();
      for (const node of document.querySelectorAll(`.tasktimer-button[data-tasktimer-service="${this.service}"]`)) {
        node.remove();
      }
      for (const node of document.querySelectorAll("[data-tasktimer-handled]")) node.removeAttribute("data-tasktimer-handled");
      this.mounted = new WeakMap();
    }

    // ------------------------------------------------------------ scheduling

    onMutations(records) {
      // Bounded work per mutation: look at the records only to skip our own changes.
      for (const record of records) {
        if (record.type === "attributes") {
          if (!isOurs(record.target)) return this.schedule();
          continue;
        }
        for (const node of record.addedNodes) if (!isOurs(node)) return this.schedule();
        for (const node of record.removedNodes) if (!isOurs(node)) return this.schedule();
      }
    }

    schedule() {
      const now = performance.now();
      if (this.timer) {
        // Continuous churn must not postpone the pass forever.
        if (now - this.firstScheduledAt >= MAX_WAIT_MS) return;
        clearTimeout(this.timer);
      } else {
        this.firstScheduledAt = now;
      }
      this.timer = setTimeout(() => {
        this.timer = 0;
        this.pass();
      }, DEBOUNCE_MS);
    }

    // ------------------------------------------------------------ render pass

    /** Finds every item, makes sure it has exactly one button, resolves unknown ids at once. */
    pass() {
      if (!this.enabled) return;
      const began = performance.now();
      if (location.href !== this.lastUrl) {
        this.lastUrl = location.href;
        this.closePanel();
      }
      const stale = new Set();
      for (const place of this.site.places) {
        for (const item of document.querySelectorAll(place.selector)) {
          if (isOurs(item) || (place.accept && !place.accept(item))) continue;
          const externalId = place.externalId(item);
          if (!externalId) continue;
          const button = this.ensureButton(place, item, externalId);
          this.render(button);
          const cached = this.cache.get(externalId);
          if ((!cached || performance.now() - cached.at > CACHE_TTL_MS) && !this.inFlight.has(externalId)) {
            stale.add(externalId);
          }
        }
      }
      // Visible to tests and to the page's performance tools; costs nothing otherwise.
      performance.measure("tasktimer:pass", { start: began, end: performance.now() });
      if (stale.size) void this.resolve([...stale]);
    }

    ensureButton(place, item, externalId) {
      let perPlace = this.mounted.get(item);
      let button = perPlace?.get(place.name);
      if (!button || !button.isConnected || !item.contains(button)) {
        // Another copy of this script (before an extension reload) may have left one.
        button = [...item.querySelectorAll(`.tasktimer-button[data-tasktimer-place="${place.name}"]`)].find(
          (candidate) => candidate.closest(place.selector) === item,
        );
        if (!button) {
          button = this.createButton(place);
          const { parent, before = null } = this.mountPoint(place, item);
          parent.insertBefore(button, before);
        }
        if (!perPlace) {
          perPlace = new Map();
          this.mounted.set(item, perPlace);
        }
        perPlace.set(place.name, button);
        item.setAttribute("data-tasktimer-handled", "");
      }
      // Recycled elements (virtualised lists) may now show another item.
      if (button.getAttribute("data-tasktimer-external-id") !== externalId) {
        button.setAttribute("data-tasktimer-external-id", externalId);
      }
      return button;
    }

    mountPoint(place, item) {
      const target = place.mount ? place.mount(item) : null;
      if (target instanceof Node) return { parent: target };
      return target ?? { parent: item };
    }

    createButton(place) {
      const button = element("button", {
        type: "button",
        class: "tasktimer-button",
        "data-tasktimer-service": this.service,
        "data-tasktimer-place": place.name,
        "data-tasktimer-state": "loading",
      });
      // The host page must not see clicks on our button (they would open the card).
      for (const type of ["pointerdown", "mousedown", "pointerup", "mouseup", "dblclick", "keydown"]) {
        button.addEventListener(type, (event) => event.stopPropagation());
      }
      button.addEventListener("click", (event) => {
        event.preventDefault();
        event.stopPropagation();
        void this.onClick(button, place);
      });
      return button;
    }

    isRunning(externalId, result) {
      const running = this.running;
      if (!running) return false;
      const ref = running.pending_ref;
      if (ref && ref.service === this.service && ref.external_id === externalId) return true;
      return Boolean(result && running.task_id && result.task_id === running.task_id);
    }

    isQueued(externalId) {
      return this.queue.some((action) => action.service === this.service && action.externalId === externalId);
    }

    stateOf(externalId) {
      if (!this.signedIn) return "signed-out";
      if (this.isQueued(externalId)) return "queued";
      const cached = this.cache.get(externalId);
      if (!cached) return "loading";
      if (cached.busy) return "loading";
      if (cached.error) return "error";
      if (this.isRunning(externalId, cached.result)) return "stop";
      if (cached.result === null) return "not-found";
      if (!cached.result.trackable) return "forbidden";
      return "start";
    }

    /** The user's seconds on an item: closed entries plus the running one up to now. */
    totalOf(externalId) {
      const cached = this.cache.get(externalId);
      if (!cached?.result || typeof cached.closed !== "number") return null;
      let total = cached.closed;
      if (this.isRunning(externalId, cached.result) && this.running?.start) {
        total += Math.max(0, Math.floor((Date.now() - Date.parse(this.running.start)) / 1000));
      }
      return total;
    }

    render(button) {
      const externalId = button.getAttribute("data-tasktimer-external-id");
      const state = this.stateOf(externalId);
      const total = this.totalOf(externalId);
      const totalText = total === null ? "" : String(total);
      if (
        button.getAttribute("data-tasktimer-state") === state &&
        (button.getAttribute("data-tasktimer-total-s") ?? "") === totalText
      ) {
        return;
      }
      const [label, tooltip] = LABELS[state];
      const cached = this.cache.get(externalId);
      button.setAttribute("data-tasktimer-state", state);
      let title = state === "forbidden" && cached?.result?.archived ? "This task is archived in Tasktimer." : tooltip;
      const parts = [element("span", { class: "tasktimer-label" }, label)];
      if (total === null) {
        button.removeAttribute("data-tasktimer-total-s");
      } else {
        button.setAttribute("data-tasktimer-total-s", totalText);
        if (total > 0) {
          parts.push(element("span", { class: "tasktimer-total" }, compact(total)));
          title += ` — your time on it: ${spelled(total)}`;
        }
      }
      button.replaceChildren(...parts);
      button.title = title;
      button.setAttribute("aria-label", title);
    }

    /** Running buttons show a growing total; re-render them now and then. */
    keepTicking() {
      const needed = Boolean(this.running) && this.enabled;
      if (needed && !this.tick) this.tick = setInterval(() => this.renderAll(), TICK_MS);
      if (!needed && this.tick) {
        clearInterval(this.tick);
        this.tick = 0;
      }
    }

    /** Cache entry for a resolve result; `closed` leaves out a running entry's time. */
    remember(externalId, result, at) {
      const entry = { result, at };
      if (result) {
        let closed = result.my_total_s ?? 0;
        if (this.isRunning(externalId, result) && this.running?.start) {
          closed -= Math.floor((Date.now() - Date.parse(this.running.start)) / 1000);
        }
        entry.closed = Math.max(0, closed);
      }
      this.cache.set(externalId, entry);
    }

    /**
     * The timer changed. A stop whose entry the worker reports adds its duration to the
     * item's total; a stop seen without it (made elsewhere) re-resolves that item once.
     */
    followTimer(running, stopped) {
      const previous = this.running;
      if (stopped && !this.countedStops.has(stopped.id)) {
        this.countedStops.add(stopped.id);
        for (const [externalId, cached] of this.cache) {
          if (!cached.result || typeof cached.closed !== "number") continue;
          const ref = stopped.pending_ref;
          const same =
            (stopped.task_id && cached.result.task_id === stopped.task_id) ||
            (ref && ref.service === this.service && ref.external_id === externalId);
          if (same) cached.closed += stopped.duration_s ?? 0;
        }
      } else if (!stopped && previous && previous.id !== running?.id) {
        for (const [externalId, cached] of this.cache) {
          if (this.isRunning(externalId, cached.result)) this.cache.delete(externalId);
        }
      }
      this.running = running;
      this.keepTicking();
      this.renderAll();
      this.pass();
    }

    renderAll() {
      for (const button of document.querySelectorAll(
        `.tasktimer-button[data-tasktimer-service="${this.service}"]`,
      )) {
        this.render(button);
      }
    }

    renderId(externalId) {
      for (const button of document.querySelectorAll(
        `.tasktimer-button[data-tasktimer-service="${this.service}"][data-tasktimer-external-id="${CSS.escape(externalId)}"]`,
      )) {
        this.render(button);
      }
    }

    async resolve(ids) {
      for (const id of ids) this.inFlight.add(id);
      const began = performance.now();
      try {
        const answer = await ask({ type: "resolve", service: this.service, externalIds: ids });
        // Signed-out answers are cached too, so churn does not ask again; signing in clears them.
        this.signedIn = answer.signedIn;
        this.running = answer.running;
        this.queue = answer.queue ?? this.queue;
        this.keepTicking();
        const at = performance.now();
        for (const id of ids) this.remember(id, answer.results[id] ?? null, at);
      } catch (err) {
        const at = performance.now();
        if (err.code === "signed_out") this.signedIn = false;
        else for (const id of ids) this.cache.set(id, { result: undefined, at, error: err.message });
        if (err.code !== "signed_out") this.showToast(`Tasktimer: ${err.message}`);
      } finally {
        for (const id of ids) this.inFlight.delete(id);
      }
      this.renderAll();
      performance.measure("tasktimer:resolve", { start: began, end: performance.now() });
    }

    // ------------------------------------------------------------ messages from the worker

    onMessage(message, sendResponse) {
      if (!this.enabled) {
        if (message?.type === "page-item") sendResponse(null);
        return false;
      }
      switch (message?.type) {
        case "timer-changed":
          this.followTimer(message.running, message.stopped ?? null);
          return false;
        case "queue-changed":
          this.queue = message.queue ?? [];
          this.renderAll();
          return false;
        case "tasks-changed":
          this.cache.clear();
          this.pass();
          return false;
        case "auth-changed":
          this.signedIn = message.signedIn;
          this.cache.clear();
          this.running = null;
          this.renderAll();
          this.pass();
          return false;
        case "page-item": {
          const item = this.site.pageItem?.() ?? null;
          sendResponse(item ? { service: this.service, ...item } : null);
          return false;
        }
        default:
          return false;
      }
    }

    // ------------------------------------------------------------ clicks

    titleOf(button, place) {
      const item = button.closest(place.selector);
      try {
        return (item && place.title?.(item)?.trim()) || "";
      } catch {
        return "";
      }
    }

    async onClick(button, place) {
      const externalId = button.getAttribute("data-tasktimer-external-id");
      const state = button.getAttribute("data-tasktimer-state");
      switch (state) {
        case "start":
          return this.startTimer(externalId, this.titleOf(button, place));
        case "stop":
          return this.stopTimer(externalId);
        case "queued":
          // Never a second action for one click: this one is already kept.
          return this.showToast(button.title);
        case "not-found":
          return this.openNotFoundPanel(button, externalId, this.titleOf(button, place));
        case "forbidden":
          return this.showToast(button.title);
        case "signed-out":
          return ask({ type: "open-options" }).catch((err) => this.showToast(err.message));
        case "error":
          this.cache.delete(externalId);
          return this.pass();
        default:
          return undefined; // loading: a request is under way
      }
    }

    async withBusy(externalId, action) {
      const cached = this.cache.get(externalId);
      if (cached) cached.busy = true;
      this.renderId(externalId);
      try {
        return await action();
      } finally {
        if (cached) cached.busy = false;
        this.renderId(externalId);
      }
    }

    async startTimer(externalId, title) {
      const at = new Date().toISOString();
      try {
        const state = await this.withBusy(externalId, () =>
          ask({ type: "start", service: this.service, externalId, title, at }),
        );
        if (state.queued) {
          this.queue = state.queue;
        } else {
          this.followTimer(state.running, state.stopped ?? null);
        }
        this.renderAll();
      } catch (err) {
        this.handleActionError(externalId, err);
      }
    }

    async stopTimer(externalId) {
      const at = new Date().toISOString();
      try {
        const state = await this.withBusy(externalId, () =>
          ask({ type: "stop", entryId: this.running?.id, service: this.service, externalId, at }),
        );
        if (state.queued) {
          this.queue = state.queue;
        } else {
          this.followTimer(null, state.stopped ?? null);
        }
        this.renderAll();
      } catch (err) {
        this.handleActionError(externalId, err);
      }
    }

    handleActionError(externalId, err) {
      if (err.code === "signed_out") {
        this.signedIn = false;
        this.renderAll();
      } else if (err.code === "task_not_trackable") {
        const cached = this.cache.get(externalId);
        if (cached?.result) cached.result = { ...cached.result, trackable: false };
        this.renderId(externalId);
      }
      this.showToast(`Tasktimer: ${err.message}`);
    }

    // ------------------------------------------------------------ our own small UI

    showToast(message) {
      this.toast?.remove();
      const toast = element("div", { class: "tasktimer-toast", role: "alert", "data-tasktimer-toast": "" });
      toast.append(element("span", { class: "tasktimer-toast-text" }, message));
      const close = element("button", { type: "button", class: "tasktimer-link", "aria-label": "Dismiss" }, "×");
      close.addEventListener("click", () => toast.remove());
      toast.append(close);
      document.documentElement.append(toast);
      this.toast = toast;
      setTimeout(() => toast.remove(), TOAST_MS);
    }

    closePanel() {
      this.panel?.remove();
      this.panel = null;
    }

    openNotFoundPanel(button, externalId, title) {
      this.closePanel();
      const panel = element("div", {
        class: "tasktimer-panel",
        role: "dialog",
        "aria-label": "Task not found",
        "data-tasktimer-panel": externalId,
      });
      panel.append(
        element("strong", { class: "tasktimer-panel-title" }, "Task not found"),
        element(
          "p",
          { class: "tasktimer-panel-text" },
          "This item is not in Tasktimer yet. It appears after the next synchronization " +
            "(automatic every hour); force one now, or start anyway and the time is " +
            "attached to the task once it is imported.",
        ),
      );
      const progress = element("p", { class: "tasktimer-panel-progress", "data-tasktimer-sync-progress": "" });
      const sync = element(
        "button",
        { type: "button", name: "tasktimer-force-sync", class: "tasktimer-action" },
        "Force synchronization",
      );
      const anyway = element(
        "button",
        { type: "button", name: "tasktimer-start-anyway", class: "tasktimer-action" },
        "Start anyway",
      );
      const close = element("button", { type: "button", name: "tasktimer-close", class: "tasktimer-link" }, "Close");
      sync.addEventListener("click", () => void this.forceSync(externalId, sync, progress));
      anyway.addEventListener("click", () => {
        this.closePanel();
        void this.startTimer(externalId, title);
      });
      close.addEventListener("click", () => this.closePanel());
      const actions = element("div", { class: "tasktimer-panel-actions" });
      actions.append(sync, anyway, close);
      panel.append(progress, actions);
      for (const type of ["pointerdown", "mousedown", "click", "keydown"]) {
        panel.addEventListener(type, (event) => event.stopPropagation());
      }
      const rect = button.getBoundingClientRect();
      panel.style.top = `${Math.min(rect.bottom + 4, innerHeight - 180)}px`;
      panel.style.left = `${Math.max(4, Math.min(rect.left, innerWidth - 320))}px`;
      document.documentElement.append(panel);
      this.panel = panel;
    }

    async forceSync(externalId, syncButton, progress) {
      syncButton.disabled = true;
      progress.textContent = "Synchronization requested…";
      try {
        const { syncs } = await ask({ type: "force-sync", service: this.service });
        if (!syncs.length) throw new Error("No integration to synchronize.");
        const deadline = performance.now() + SYNC_TIMEOUT_MS;
        let sync;
        for (;;) {
          sync = await ask({ type: "sync-status", service: this.service, syncId: syncs[0].syncId });
          progress.textContent = `Synchronization ${sync.state}…`;
          if (sync.state === "succeeded" || sync.state === "failed") break;
          if (performance.now() > deadline) throw new Error("The synchronization takes longer than expected.");
          await new Promise((resolve) => setTimeout(resolve, SYNC_POLL_MS));
        }
        if (sync.state === "failed") throw new Error(sync.error || "The synchronization failed.");
        const counts = sync.counts ?? {};
        progress.textContent = `Synchronized: ${counts.created ?? 0} created, ${counts.updated ?? 0} updated.`;
        this.cache.delete(externalId);
        await this.resolve([externalId]);
        if (this.cache.get(externalId)?.result) {
          this.closePanel();
        } else {
          progress.textContent =
            "Still not found after synchronization: the integration's owner may not see this item.";
        }
      } catch (err) {
        progress.textContent = `Synchronization failed: ${err.message}`;
      } finally {
        syncButton.disabled = false;
      }
    }
  }

  /**
   * @typedef {{
   *   name: string,
   *   selector: string,
   *   externalId: (item: Element) => string | null,
   *   title?: (item: Element) => string,
   *   accept?: (item: Element) => boolean,
   *   mount?: (item: Element) => Element | {parent: Element, before?: Node | null} | null,
   * }} Place
   * @typedef {{service: string, hosts: string[], places: Place[], pageItem?: () => {externalId: string, title?: string} | null}} Site
   */
  globalThis.TasktimerButtons = Object.freeze({
    /** @param {Site} site */
    start(site) {
      const controller = new Controller(site);
      controller.start();
      return controller;
    },
    /** Last path segment / query helpers shared by the site files. */
    /** An element's value or text, without the text of our own buttons inside it. */
    text(node) {
      if (!node) return "";
      if (typeof node.value === "string") return node.value;
      if (!node.querySelector?.(".tasktimer-button")) return node.textContent?.trim() ?? "";
      const copy = node.cloneNode(true);
      for (const ours of copy.querySelectorAll(".tasktimer-button")) ours.remove();
      return copy.textContent.trim();
    },
    idAfterUnderscore(value) {
      const match = /_(\d+)$/.exec(value ?? "");
      return match ? match[1] : null;
    },
  });
})();
