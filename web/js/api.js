/*
 * Session storage (the tokens, in sessionStorage, and the check for a duplicated tab), the API client (bearer
 * token, one refresh on 401, 429 back-off) and authenticated downloads.
 */
import { announce, el, isAbort, randomId, sleep } from "./dom.js";

export const API = "/api/v1";
const SESSION_KEY = "pdscore.session";
/** Where state.js keeps the session's live alerts (Session.clear forgets them too). */
export const LIVE_KEY = "pdscore.live";
/** This tab's id, kept with its session (see "Duplicated tabs" below). */
const TAB_KEY = "pdscore.tab";

/**
 * What a refused session that cannot be renewed leads to (authFetch calls it): set by app.js to session.js's
 * sessionLost, which goes back to the sign-in page, so that this module needs none of the modules above it.
 */
let sessionLost = () => {};

/** Sets what a lost session leads to. */
export function onSessionLost(handler) {
  sessionLost = handler;
}

/** The tokens live in sessionStorage (this tab only, gone when it closes). */
export const Session = {
  get() {
    try {
      return JSON.parse(sessionStorage.getItem(SESSION_KEY));
    } catch {
      return null;
    }
  },
  save(pair) {
    const { access_token, refresh_token, user_id, role, tenant_id, organization_id } = pair;
    sessionStorage.setItem(SESSION_KEY,
      JSON.stringify({ access_token, refresh_token, user_id, role, tenant_id, organization_id }));
    if (!sessionStorage.getItem(TAB_KEY)) sessionStorage.setItem(TAB_KEY, randomId());
  },
  clear() {
    sessionStorage.removeItem(SESSION_KEY);
    sessionStorage.removeItem(LIVE_KEY);
    sessionStorage.removeItem(TAB_KEY);
  },
};

/*
 * Duplicated tabs. "Duplicate tab" copies sessionStorage, so the copy starts with the same single-use
 * refresh token as its original: whichever used it second would make the server revoke the session of
 * both. So each signed-in tab keeps an id with its session (TAB_KEY) and, over a BroadcastChannel, answers
 * "is anyone else tab <id>?". A tab that hears an answer on start is the copy: it forgets its session.
 */
const TAB_CHECK_MS = 250;
const tabChannel = typeof BroadcastChannel === "function" ? new BroadcastChannel("pdscore.tabs") : null;
/** During the check on start: { nonce, finish(copied) }. */
let tabCheck = null;

tabChannel?.addEventListener("message", ({ data }) => {
  const id = sessionStorage.getItem(TAB_KEY);
  if (!id || data?.tab !== id) return;
  if (!tabCheck) {
    if (data.type === "ping") tabChannel.postMessage({ type: "here", tab: id });
  } else if (data.type === "here" || (data.type === "ping" && data.nonce > tabCheck.nonce)) {
    // Answered; or both copies are starting at once, and the other one (the larger nonce) keeps the session.
    tabCheck.finish(true);
  }
});

/** Whether another open tab holds this tab's id (then this one is its copy). */
export function isCopiedTab() {
  const id = sessionStorage.getItem(TAB_KEY);
  if (!tabChannel || !id) return Promise.resolve(false);
  return new Promise((resolve) => {
    const finish = (copied) => {
      clearTimeout(timer);
      tabCheck = null;
      resolve(copied);
    };
    const timer = setTimeout(() => finish(false), TAB_CHECK_MS);
    tabCheck = { nonce: Math.random(), finish };
    tabChannel.postMessage({ type: "ping", tab: id, nonce: tabCheck.nonce });
  });
}

/** An API failure: the HTTP status (0: no answer), the envelope's code, message and details. */
export class ApiError extends Error {
  constructor(status, code, message, details = null, retryAfter = null) {
    super(message);
    this.name = "ApiError";
    this.status = status;
    this.code = code;
    this.details = details;
    this.retryAfter = retryAfter;
  }
}

const FALLBACK_MESSAGES = {
  400: "The request was not understood.",
  401: "Please sign in again.",
  403: "You are not allowed to do this.",
  404: "Not found.",
  413: "The file is too large.",
  429: "Too many requests; please wait a moment.",
  503: "The service is temporarily unavailable; please retry shortly.",
};

/** fetch(), with "no answer at all" turned into an ApiError people can read. */
export async function rawFetch(url, init = {}) {
  try {
    return await fetch(url, { credentials: "same-origin", ...init });
  } catch (error) {
    if (isAbort(error)) throw error;
    throw new ApiError(0, "NETWORK", "Cannot reach the server. Check your connection and try again.");
  }
}

/** The ApiError a failed response stands for (from its error envelope when it has one). */
export async function errorFrom(response) {
  let body = null;
  try {
    body = await response.json();
  } catch {
    // Not JSON (a proxy's page, an empty body): the status says enough.
  }
  const retryAfter = parseInt(response.headers.get("Retry-After") || "", 10) || null;
  const error = body?.error;
  let message = error?.message || FALLBACK_MESSAGES[response.status] || `The request failed (HTTP ${response.status}).`;
  if (response.status === 429 && retryAfter) message += ` Retry in ${retryAfter} s.`;
  return new ApiError(response.status, error?.code || `HTTP_${response.status}`, message, error?.details ?? null, retryAfter);
}

/** The `data` of a success envelope, or the ApiError of a failure. */
export async function readEnvelope(response) {
  if (!response.ok) throw await errorFrom(response);
  const body = await response.json().catch(() => null);
  if (!body || body.success !== true) {
    throw new ApiError(response.status, "BAD_RESPONSE", "The server sent an unexpected answer.");
  }
  return body.data;
}

/** The refresh in flight, shared by every caller that hit a 401 meanwhile (a refresh token works once). */
let refreshing = null;

async function refreshTokens() {
  const session = Session.get();
  if (!session?.refresh_token) throw new ApiError(401, "UNAUTHORIZED", "Please sign in.");
  if (refreshing?.token === session.refresh_token) return refreshing.promise;
  const promise = (async () => {
    const response = await rawFetch(`${API}/auth/refresh`, {
      method: "POST",
      headers: { "Content-Type": "application/json", Accept: "application/json" },
      body: JSON.stringify({ refresh_token: session.refresh_token }),
    });
    const pair = await readEnvelope(response);
    // Signed out, or signed in anew, while the refresh was in flight: leave that session alone.
    if (Session.get()?.refresh_token === session.refresh_token) Session.save(pair);
  })();
  refreshing = { token: session.refresh_token, promise };
  try {
    await promise;
  } finally {
    if (refreshing?.promise === promise) refreshing = null;
  }
}

/**
 * fetch() with the bearer token. A 401 refreshes the tokens once (or reuses a refresh another call made)
 * and retries; when the session cannot be renewed, the user is sent to the sign-in page.
 */
export async function authFetch(url, init = {}, retried = false) {
  const session = Session.get();
  if (!session) {
    sessionLost();
    throw new ApiError(401, "UNAUTHORIZED", "Please sign in.");
  }
  const headers = new Headers(init.headers || {});
  headers.set("Authorization", `Bearer ${session.access_token}`);
  const response = await rawFetch(url, { ...init, headers });
  if (response.status !== 401) return response;
  if (retried) {
    sessionLost("Your session has ended. Please sign in again.");
    return response;
  }
  if (Session.get()?.access_token === session.access_token) {
    try {
      await refreshTokens();
    } catch (error) {
      if (error instanceof ApiError && error.status !== 0) {
        sessionLost("Your session has ended. Please sign in again.");
      }
      throw error;
    }
  }
  return authFetch(url, init, true);
}

const queryString = (query) => {
  const params = new URLSearchParams();
  for (const [key, value] of Object.entries(query || {})) {
    if (value !== undefined && value !== null && value !== "") params.set(key, String(value));
  }
  const text = params.toString();
  return text ? `?${text}` : "";
};

/**
 * Calls the API: `json` or `form` (FormData) as the body, `query` as the query string; resolves to the
 * envelope's `data`, rejects with an ApiError. A rate-limited GET waits out a short Retry-After and retries.
 */
export async function api(method, path, { query, json, form, signal } = {}) {
  const init = { method, signal, headers: { Accept: "application/json" } };
  if (json !== undefined) {
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(json);
  } else if (form) {
    init.body = form;
  }
  const url = `${API}${path}${queryString(query)}`;
  for (let attempt = 0; ; attempt++) {
    const response = await authFetch(url, init);
    const wait = parseInt(response.headers.get("Retry-After") || "", 10);
    if (response.status === 429 && method === "GET" && attempt < 2 && wait > 0 && wait <= 10) {
      announce(`The server is busy; retrying in ${wait} s…`);
      await sleep(wait * 1000, signal);
      continue;
    }
    return readEnvelope(response);
  }
}

/**
 * Fetches the pages of a paginated list, at most `maxPages` pages of 200: { items, total }, where `total`
 * counts the whole list (more than `items` when it was cut short).
 */
export async function apiPages(path, { query, signal, maxPages = 5 } = {}) {
  const items = [];
  let total = 0;
  for (let page = 1; page <= maxPages; page++) {
    const data = await api("GET", path, { query: { ...query, page, per_page: 200 }, signal });
    items.push(...data.items);
    total = data.total;
    if (page >= data.total_pages) break;
  }
  return { items, total };
}

/** The items of a paginated list (at most `maxPages` pages of 200). */
export const apiAll = async (path, options) => (await apiPages(path, options)).items;

/** Downloads an authenticated file: fetch → Blob → a temporary <a download>. */
export async function download(path, fallbackName) {
  const response = await authFetch(`${API}${path}`);
  if (!response.ok) throw await errorFrom(response);
  const blob = await response.blob();
  const disposition = response.headers.get("Content-Disposition") || "";
  const name = /filename="?([^";]+)"?/i.exec(disposition)?.[1] || fallbackName;
  const url = URL.createObjectURL(blob);
  const link = el("a", { href: url, download: name, class: "visually-hidden" });
  document.body.append(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(url), 60_000);
}
