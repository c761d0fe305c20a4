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
