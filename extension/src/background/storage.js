// Typed wrapper over chrome.storage.local: the service worker's persistent state survives
// the worker being stopped between events, so nothing important lives in module globals.

import { DEFAULT_SERVER_URL } from "./api.js";

/**
 * @typedef {{id: string, email: string, name?: string, role?: string}} User
 * @typedef {{serverUrl: string, token: string | null, user: User | null}} Auth
 * @typedef {{running: object | null, label: string | null}} TimerState
 */

const AUTH = "auth";
const TIMER = "timer";

/** @returns {Promise<Auth>} */
export async function loadAuth() {
  const { [AUTH]: auth } = await chrome.storage.local.get(AUTH);
  return { serverUrl: DEFAULT_SERVER_URL, token: null, user: null, ...(auth ?? {}) };
}

/** @param {Auth} auth */
export async function saveAuth(auth) {
  await chrome.storage.local.set({ [AUTH]: auth });
}

/** @returns {Promise<TimerState>} */
export async function loadTimer() {
  const { [TIMER]: timer } = await chrome.storage.local.get(TIMER);
  return { running: null, label: null, ...(timer ?? {}) };
}

/** @param {TimerState} timer */
export async function saveTimer(timer) {
  await chrome.storage.local.set({ [TIMER]: timer });
}

/**
 * @typedef {{
 *   key: string, kind: "start" | "stop", at: string, service: string | null,
 *   externalId: string | null, title: string, body: object, queuedAt: string,
 * }} QueuedAction
 */

const QUEUE = "queue";
const QUEUE_FAILURES = "queueFailures";
const SETTINGS = "settings";

/** @returns {Promise<QueuedAction[]>} */
export async function loadQueue() {
  const { [QUEUE]: queue } = await chrome.storage.local.get(QUEUE);
  return Array.isArray(queue) ? queue : [];
}

/** @param {QueuedAction[]} queue */
export async function saveQueue(queue) {
  await chrome.storage.local.set({ [QUEUE]: queue });
}

/** Replays the server refused for good, newest first, kept for the popup to show. */
export async function recordQueueFailure(action, reason) {
  const { [QUEUE_FAILURES]: failures = [] } = await chrome.storage.local.get(QUEUE_FAILURES);
  const entry = { kind: action.kind, at: action.at, title: action.title, reason };
  await chrome.storage.local.set({ [QUEUE_FAILURES]: [entry, ...failures].slice(0, 5) });
}

/** @returns {Promise<import("../shared/settings.js").Settings>} */
export async function loadSettings() {
  const { [SETTINGS]: settings } = await chrome.storage.local.get(SETTINGS);
  return settings ?? { sites: {}, customHosts: [], customHostsText: "" };
}
