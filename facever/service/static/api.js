// The HTTP side of the page: the API key (sessionStorage) and fetch → JSON or a readable error.
// Every error the API sends is RFC 9457 problem JSON ({detail, code, ...}); the page shows `detail`.

const KEY_NAME = "facever.apiKey";

/** The API key typed in this tab, or "" when none (fine against a `--no-auth` server). */
export function getKey() {
  try {
    return sessionStorage.getItem(KEY_NAME) || "";
  } catch {
    return "";
  }
}

/** Keep `key` for this tab (empty string: forget it). */
export function setKey(key) {
  try {
    if (key) sessionStorage.setItem(KEY_NAME, key);
    else sessionStorage.removeItem(KEY_NAME);
  } catch {
    /* storage disabled: the key lives only as long as the page */
  }
}

/** An error the page can show as one line of text. `status` 0 = network failure. */
export class ApiError extends Error {
  constructor(message, { status = 0, code = "", scope = "", problem = {} } = {}) {
    super(message);
    this.name = "ApiError";
    this.status = status;
    this.code = code;
    this.scope = scope;
    this.problem = problem;
  }
}

function authHeaders() {
  const key = getKey();
  return key ? { Authorization: `Bearer ${key}` } : {};
}

async function problemOf(response) {
  try {
    const body = await response.json();
    return body && typeof body === "object" ? body : {};
  } catch {
    return {};
  }
}

function messageFor(response, problem, scope) {
  if (response.status === 401) {
    return getKey()
      ? "This key is not valid (unknown or revoked). Type another key above."
      : "This server needs an API key: type it in the key field above.";
  }
  if (response.status === 403) {
    return scope ? `This key lacks the “${scope}” scope.` : `This key lacks the scope this needs.`;
  }
  const detail = typeof problem.detail === "string" && problem.detail ? problem.detail : "";
  const title = typeof problem.title === "string" ? problem.title : response.statusText;
  let text = detail || title || `HTTP ${response.status}`;
  if (response.status === 429 || response.status === 503) {
    const retry = response.headers.get("Retry-After");
    if (retry) text += ` (retry in ${retry} s)`;
  }
  return text;
}

/**
 * Call the API. Returns the Response (ok) or throws ApiError with a readable message.
 * @param {string} path  e.g. "/v1/verify" (already percent-encoded)
 * @param {{method?: string, body?: BodyInit, json?: unknown, scope?: string, signal?: AbortSignal}} options
 *   scope: the scope the route needs, named in the 403 message.
 */
export async function request(path, { method = "GET", body, json, scope = "", signal } = {}) {
  const headers = { Accept: "application/json, application/problem+json", ...authHeaders() };
  if (json !== undefined) {
    headers["Content-Type"] = "application/json";
    body = JSON.stringify(json);
  }
  let response;
  try {
    response = await fetch(path, { method, body, headers, signal, cache: "no-store" });
  } catch (err) {
    if (err && err.name === "AbortError") throw err;
    throw new ApiError("Cannot reach the server (network error). Is `facever serve` running?", { status: 0 });
  }
  if (!response.ok) {
    const problem = await problemOf(response);
    throw new ApiError(messageFor(response, problem, scope), {
      status: response.status, code: String(problem.code || ""), scope, problem,
    });
  }
  return response;
}

/** `request` then parse JSON. */
export async function requestJson(path, options = {}) {
  const response = await request(path, options);
  try {
    return await response.json();
  } catch {
    throw new ApiError("The server sent an answer that is not JSON.", { status: response.status });
  }
}

/** A person's name as one path segment: /v1/people/{name}. */
export function personPath(name) {
  return `/v1/people/${encodeURIComponent(name)}`;
}
