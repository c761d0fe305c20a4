// Used by the extension's own pages (popup, options): one way to talk to the worker.

/** Sends `{type, ...}` to the service worker; resolves with its data or throws its error. */
export async function ask(message) {
  const answer = await chrome.runtime.sendMessage(message);
  if (!answer?.ok) {
    const error = answer?.error ?? { code: "no_answer", message: "The extension did not answer." };
    throw Object.assign(new Error(error.message), { code: error.code, status: error.status });
  }
  return answer.data;
}

/** Calls `listener(newValue)` whenever the named chrome.storage.local key changes. */
export function onStorageKey(key, listener) {
  chrome.storage.onChanged.addListener((changes, area) => {
    if (area === "local" && Object.hasOwn(changes, key)) listener(changes[key].newValue);
  });
}
