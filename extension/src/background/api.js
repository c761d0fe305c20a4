// HTTP client for the Tasktimer server. Only the service worker imports this module:
// it is the one place that holds the token and talks to the server.

export const DEFAULT_SERVER_URL = "http://127.0.0.1:8080";
const REQUEST_TIMEOUT_MS = 15_000;

/** Error raised for any non-2xx answer or network failure; `code` follows API.md. */
export class ApiError extends Error {
  /**
   * @param {number} status HTTP status, 0 for a network failure
   * @param {string} code stable machine-readable code
   * @param {string} message human-readable reason
   */
  constructor(status, code, message) {
    super(message);
    this.name = "ApiError";
    this.status = status;
    this.code = code;
  }
}

/** Normalises a user-entered server URL to an origin-like base without a trailing slash. */
export function normaliseServerUrl(raw) {
  const text = String(raw ?? "").trim() || DEFAULT_SERVER_URL;
  const url = new URL(text.includes("://") ? text : `http://${text}`);
  if (url.protocol !== "http:" && url.protocol !== "https:") {
    throw new ApiError(0, "invalid_server_url", "The server URL must start with http:// or https://");
  }
  return `${url.origin}${url.pathname.replace(/\/+$/, "")}`;
}

const CODES_BY_STATUS = new Map([
  [400, "validation_error"],
  [401, "unauthorized"],
  [403, "forbidden"],
  [404, "not_found"],
  [409, "conflict"],
  [429, "rate_limited"],
]);

async function errorFromResponse(response) {
  let body = null;
  try {
    body = await response.json();
  } catch {
    // A proxy or a crashed server may answer with HTML; the status still tells the story.
  }
  const code = body?.code ?? CODES_BY_STATUS.get(response.status) ?? "server_error";
  const message = body?.detail ?? body?.title ?? `The server answered ${response.status}.`;
  return new ApiError(response.status, code, message);
}

export class ServerClient {
  /**
   * @param {string} baseUrl normalised server URL
   * @param {string | null} token bearer token, null before sign-in
   */
  constructor(baseUrl, token) {
    this.baseUrl = baseUrl;
    this.token = token;
  }

  url(path) {
    return `${this.baseUrl}/api/v1${path}`;
  }

  headers(extra = {}) {
    const headers = { Accept: "application/json", ...extra };
    if (this.token) headers.Authorization = `Bearer ${this.token}`;
    return headers;
  }

  async request(method, path, body = undefined, extraHeaders = {}) {
    // A network that swallows packets must not leave a click pending for minutes: after
    // this long it counts as unreachable (and a start/stop is queued, see the worker).
    const init = {
      method,
      headers: this.headers(extraHeaders),
      cache: "no-store",
      signal: AbortSignal.timeout(REQUEST_TIMEOUT_MS),
    };
    if (body !== undefined) {
      init.headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(body);
    }
    let response;
    try {
      response = await fetch(this.url(path), init);
    } catch (err) {
      throw new ApiError(0, "network_error", `Cannot reach the Tasktimer server at ${this.baseUrl}.`);
    }
    if (!response.ok) throw await errorFromResponse(response);
    if (response.status === 204) return null;
    return response.json();
  }

  login(email, password) {
    return this.request("POST", "/auth/login", { email, password });
  }

  logout() {
    return this.request("POST", "/auth/logout");
  }

  me() {
    return this.request("GET", "/me");
  }

  async resolve(service, externalIds) {
    // API.md caps one resolve call at 500 ids; bigger pages are split, still one pass.
    const results = {};
    for (let i = 0; i < externalIds.length; i += 500) {
      const chunk = externalIds.slice(i, i + 500);
      const answer = await this.request("POST", "/resolve", { service, external_ids: chunk });
      Object.assign(results, answer.results);
    }
    return results;
  }

  match(url) {
    return this.request("GET", `/match?url=${encodeURIComponent(url)}`);
  }

  timer() {
    return this.request("GET", "/timer");
  }

  start(body, idempotencyKey) {
    return this.request("POST", "/timer/start", body, { "Idempotency-Key": idempotencyKey });
  }

  stop(body, idempotencyKey) {
    return this.request("POST", "/timer/stop", body, { "Idempotency-Key": idempotencyKey });
  }

  updateEntry(entryId, changes) {
    return this.request("PATCH", `/entries/${encodeURIComponent(entryId)}`, changes);
  }

  task(taskId) {
    return this.request("GET", `/tasks/${encodeURIComponent(taskId)}`);
  }

  searchTasks(query) {
    const params = new URLSearchParams({ q: query, trackable: "true", limit: "50" });
    return this.request("GET", `/tasks?${params}`);
  }

  integrations() {
    return this.request("GET", "/integrations");
  }

  forceSync(service) {
    return this.request("POST", `/integrations/${encodeURIComponent(service)}/sync`);
  }

  syncStatus(service, syncId) {
    return this.request(
      "GET",
      `/integrations/${encodeURIComponent(service)}/syncs/${encodeURIComponent(syncId)}`,
    );
  }

  /** Opens the Server-Sent Events stream; the caller reads `response.body`. */
  async openEvents(signal) {
    const response = await fetch(this.url("/events"), {
      headers: this.headers({ Accept: "text/event-stream" }),
      cache: "no-store",
      signal,
    });
    if (!response.ok) throw await errorFromResponse(response);
    return response;
  }
}

/**
 * Splits a text/event-stream into events. Yields `{event, data}`; comments (keep-alives)
 * are skipped. Written against the WHATWG event-stream format: fields end at a blank line.
 */
export async function* readEventStream(body) {
  const reader = body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  let event = "message";
  let data = [];
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    buffer += value;
    let newline;
    while ((newline = buffer.search(/\r\n|\r|\n/)) >= 0) {
      const line = buffer.slice(0, newline);
      buffer = buffer.slice(newline + (buffer.startsWith("\r\n", newline) ? 2 : 1));
      if (line === "") {
        if (data.length) yield { event, data: data.join("\n") };
        event = "message";
        data = [];
        continue;
      }
      if (line.startsWith(":")) continue;
      const colon = line.indexOf(":");
      const field = colon < 0 ? line : line.slice(0, colon);
      const valueText = colon < 0 ? "" : line.slice(colon + 1).replace(/^ /, "");
      if (field === "event") event = valueText;
      else if (field === "data") data.push(valueText);
    }
  }
}
