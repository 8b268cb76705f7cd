/*
 * PD Score — the analysts' dashboard.
 *
 * One plain script, no build step and no dependencies: the service embeds it in its binary and serves it at
 * /app/ under a strict Content-Security-Policy (no inline code or styles, connections to this origin only).
 *
 * Layout of this file:
 *   1. error capture (the browser tests assert that window.__pdErrors stays empty)
 *   2. DOM and formatting helpers
 *   3. session storage, the API client (bearer token, one refresh on 401, 429 back-off) and downloads
 *   4. Server-Sent Events over fetch (EventSource cannot send the Authorization header)
 *   5. app state: the signed-in user, permissions, the live alert stream
 *   6. shared UI pieces: badges, tables, pagers, form fields
 *   7. the router and the page lifecycle (title, focus, data-ready)
 *   8. the pages: sign-in, portfolio, company, alerts, bulk jobs, models, admin
 *
 * Every piece of API data reaches the page through textContent or attributes, never through innerHTML.
 */
"use strict";

window.__pdErrors = [];

/* ---------------------------------------------------------------------------------------------------------
 * 1. Error capture: anything unexpected is recorded where the browser tests look for it.
 * ------------------------------------------------------------------------------------------------------- */
(() => {
  const record = (kind, detail) => window.__pdErrors.push(`${kind}: ${detail}`);
  window.addEventListener("error", (event) => record("error", event.error?.stack || event.message));
  window.addEventListener("unhandledrejection", (event) => {
    const reason = event.reason;
    record("unhandledrejection", reason?.stack || reason?.message || String(reason));
  });
  window.addEventListener("securitypolicyviolation", (event) =>
    record("csp", `${event.violatedDirective} blocked ${event.blockedURI || "inline content"}`));
  const originalError = console.error.bind(console);
  console.error = (...args) => {
    record("console.error", args.map((a) => (a instanceof Error ? a.stack : String(a))).join(" "));
    originalError(...args);
  };
})();

(() => {
  /* -------------------------------------------------------------------------------------------------------
   * 2. Helpers
   * ----------------------------------------------------------------------------------------------------- */

  const APP_NAME = "PD Score";
  const API = "/api/v1";
  const SESSION_KEY = "pdscore.session";
  const LIVE_KEY = "pdscore.live";
  /** This tab's id, kept with its session (see "Duplicated tabs" below). */
  const TAB_KEY = "pdscore.tab";
  /** Roles, highest first (as the server orders them). */
  const ROLES = ["super_admin", "tenant_admin", "org_admin", "org_member", "user"];
  const RISK_LEVELS = ["low", "medium", "high", "critical"];
  const SVG_NS = "http://www.w3.org/2000/svg";
  /** Returned by an SSE event handler to end the stream for good. */
  const STOP = Symbol("stop");

  const mainEl = document.getElementById("main");
  const headerEl = document.getElementById("app-header");
  const statusEl = document.getElementById("status");

  /** Properties assigned after the children exist (a select's value needs its options). */
  const PROPERTIES = new Set(["value", "checked", "selected"]);

  function appendChildren(node, children) {
    for (const child of children.flat(Infinity)) {
      if (child === null || child === undefined || child === false) continue;
      node.append(child instanceof Node ? child : String(child));
    }
    return node;
  }

  /**
   * Applies `props` to `node`: `text`, `class` (string or list), `dataset`, `on<event>` listeners, a few
   * properties (`value`, `checked`, `selected`); everything else becomes an attribute (true → "", false or
   * null → absent).
   */
  function applyProps(node, props) {
    const deferred = [];
    for (const [key, value] of Object.entries(props || {})) {
      if (value === undefined || value === null || value === false) continue;
      if (key === "text") node.textContent = String(value);
      else if (key === "class") node.setAttribute("class", [value].flat().filter(Boolean).join(" "));
      else if (key === "dataset") Object.assign(node.dataset, value);
      else if (key.startsWith("on") && typeof value === "function") node.addEventListener(key.slice(2), value);
      else if (PROPERTIES.has(key)) deferred.push([key, value]);
      else node.setAttribute(key, value === true ? "" : String(value));
    }
    return deferred;
  }

  /** An HTML element. */
  function el(tag, props, ...children) {
    const node = document.createElement(tag);
    const deferred = applyProps(node, props);
    appendChildren(node, children);
    for (const [key, value] of deferred) node[key] = value;
    return node;
  }

  /** An SVG element. */
  function svg(tag, attrs, ...children) {
    const node = document.createElementNS(SVG_NS, tag);
    applyProps(node, attrs);
    return appendChildren(node, children);
  }

  const isNumber = (v) => typeof v === "number" && Number.isFinite(v);
  const isAbort = (e) => e?.name === "AbortError";
  const debounce = (fn, ms) => {
    let timer = 0;
    return (...args) => {
      clearTimeout(timer);
      timer = setTimeout(() => fn(...args), ms);
    };
  };
  /** Resolves after `ms`, or rejects with an AbortError when `signal` aborts first. */
  const sleep = (ms, signal) =>
    new Promise((resolve, reject) => {
      if (signal?.aborted) return reject(signal.reason);
      const onAbort = () => {
        clearTimeout(timer);
        reject(signal.reason);
      };
      const timer = setTimeout(() => {
        signal?.removeEventListener("abort", onAbort);
        resolve();
      }, ms);
      signal?.addEventListener("abort", onAbort, { once: true });
    });
  /**
   * A source of abort signals where each new signal aborts the previous one (and all follow `parent`): for
   * loads that the next one supersedes, so that an older answer never overwrites a newer one.
   */
  const supersedable = (parent) => {
    let previous = null;
    return () => {
      previous?.abort();
      previous = new AbortController();
      return AbortSignal.any([parent, previous.signal]);
    };
  };
  /** A random id (crypto.randomUUID needs a secure context; getRandomValues does not). */
  const randomId = () => Array.from(crypto.getRandomValues(new Uint8Array(16)), (b) => b.toString(16).padStart(2, "0")).join("");
  const isUuid = (s) => /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i.test(s);

  // Number and date formats (the browser's locale).
  const numberFormat = (options) => new Intl.NumberFormat(undefined, options);
  const FORMAT = {
    percent: numberFormat({ style: "percent", minimumFractionDigits: 2, maximumFractionDigits: 2 }),
    tickPercent: numberFormat({ style: "percent", maximumSignificantDigits: 2 }),
    integer: numberFormat({ maximumFractionDigits: 0 }),
    decimal: numberFormat({ maximumFractionDigits: 4 }),
    compact: numberFormat({ notation: "compact", maximumFractionDigits: 1 }),
    signed: numberFormat({ signDisplay: "exceptZero", minimumFractionDigits: 2, maximumFractionDigits: 2 }),
    date: new Intl.DateTimeFormat(undefined, { dateStyle: "medium", timeStyle: "short" }),
  };
  const fmtPct = (p) => (isNumber(p) ? FORMAT.percent.format(p) : "—");
  const fmtInt = (n) => (isNumber(n) ? FORMAT.integer.format(n) : "—");
  const fmtCompact = (n) => (isNumber(n) ? FORMAT.compact.format(n) : "—");
  /** A model input or metric: grouped integers when large, up to four decimals otherwise. */
  const fmtValue = (v) => {
    if (!isNumber(v)) return v === null || v === undefined ? "—" : String(v);
    return Math.abs(v) >= 1000 ? FORMAT.integer.format(v) : FORMAT.decimal.format(v);
  };
  /** A PD move in percentage points, e.g. "+1.35 pp". */
  const fmtPp = (from, to) => (isNumber(from) && isNumber(to) ? `${FORMAT.signed.format((to - from) * 100)} pp` : "");
  const fmtDate = (iso) => {
    const date = new Date(iso);
    return Number.isNaN(date.getTime()) ? "—" : FORMAT.date.format(date);
  };
  const timeEl = (iso) => el("time", { datetime: iso, text: fmtDate(iso) });
  /** "snake_case" → "Snake case". */
  const humanize = (s) => String(s ?? "").replace(/[_-]+/g, " ").replace(/^\w/, (c) => c.toUpperCase());
  /** A quarter given as 3, "3" or "Q3" → 3; anything else → null. */
  const quarterNumber = (q) => {
    const n = typeof q === "number" ? q : parseInt(String(q ?? "").replace(/^Q/i, ""), 10);
    return n >= 1 && n <= 4 ? n : null;
  };
  const fmtPeriod = (year, quarter) => {
    if (year === null || year === undefined) return "—";
    const q = quarterNumber(quarter);
    return q ? `${year} Q${q}` : String(year);
  };

  /* -------------------------------------------------------------------------------------------------------
   * 3. Session and API client
   * ----------------------------------------------------------------------------------------------------- */

  /** The tokens live in sessionStorage (this tab only, gone when it closes). */
  const Session = {
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
  function isCopiedTab() {
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
  class ApiError extends Error {
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
  async function rawFetch(url, init = {}) {
    try {
      return await fetch(url, { credentials: "same-origin", ...init });
    } catch (error) {
      if (isAbort(error)) throw error;
      throw new ApiError(0, "NETWORK", "Cannot reach the server. Check your connection and try again.");
    }
  }

  /** The ApiError a failed response stands for (from its error envelope when it has one). */
  async function errorFrom(response) {
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
  async function readEnvelope(response) {
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
  async function authFetch(url, init = {}, retried = false) {
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
  async function api(method, path, { query, json, form, signal } = {}) {
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
  async function apiPages(path, { query, signal, maxPages = 5 } = {}) {
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
  const apiAll = async (path, options) => (await apiPages(path, options)).items;

  /** Downloads an authenticated file: fetch → Blob → a temporary <a download>. */
  async function download(path, fallbackName) {
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

  /* -------------------------------------------------------------------------------------------------------
   * 4. Server-Sent Events over fetch
   * ----------------------------------------------------------------------------------------------------- */

  /** An incremental text/event-stream parser: feed it decoded text in chunks of any size. */
  class SseParser {
    constructor(onEvent) {
      this.onEvent = onEvent;
      this.buffer = "";
      this.type = "";
      this.data = [];
      this.lastId = null;
    }

    feed(text) {
      this.buffer += text;
      // A trailing "\r" may be the first half of "\r\n": keep it until the next chunk.
      const end = this.buffer.endsWith("\r") ? this.buffer.length - 1 : this.buffer.length;
      const lines = this.buffer.slice(0, end).split(/\r\n|\r|\n/);
      this.buffer = lines.pop() + this.buffer.slice(end);
      for (const line of lines) this.line(line);
    }

    line(line) {
      if (line === "") return this.dispatch();
      if (line.startsWith(":")) return; // a comment (keep-alive)
      const colon = line.indexOf(":");
      const field = colon < 0 ? line : line.slice(0, colon);
      let value = colon < 0 ? "" : line.slice(colon + 1);
      if (value.startsWith(" ")) value = value.slice(1);
      if (field === "event") this.type = value;
      else if (field === "data") this.data.push(value);
      else if (field === "id") this.lastId = value;
    }

    dispatch() {
      if (this.data.length) this.onEvent({ type: this.type || "message", data: this.data.join("\n"), id: this.lastId });
      this.type = "";
      this.data = [];
    }
  }

  /**
   * Follows an SSE endpoint until `signal` aborts or `onEvent` returns STOP. A dropped or ended stream is
   * reopened after a back-off (1 s doubling to 30 s); a refused one (403, 404) is given up. `onState`
   * hears "open", "reconnecting" and "failed".
   */
  async function followEvents(path, { signal, onEvent, onState = () => {} }) {
    let delay = 1000;
    while (!signal.aborted) {
      let stopped = false;
      try {
        const response = await authFetch(`${API}${path}`, { signal, headers: { Accept: "text/event-stream" } });
        if (!response.ok) throw await errorFrom(response);
        onState("open");
        delay = 1000;
        const reader = response.body.getReader();
        const decoder = new TextDecoder();
        const parser = new SseParser((event) => {
          if (stopped) return;
          try {
            if (onEvent(event) === STOP) stopped = true;
          } catch (error) {
            reportBug(error);
          }
        });
        while (!stopped) {
          const { value, done } = await reader.read();
          if (done) break;
          parser.feed(decoder.decode(value, { stream: true }));
        }
        if (stopped) reader.cancel().catch(() => {});
      } catch (error) {
        if (isAbort(error) || signal.aborted) return;
        if (error instanceof ApiError && [401, 403, 404, 422].includes(error.status)) {
          onState("failed", error);
          return;
        }
        // A network drop (TypeError from the reader) or a 5xx/429: try again below.
      }
      if (stopped || signal.aborted) return;
      onState("reconnecting", delay);
      try {
        await sleep(delay, signal);
      } catch {
        return;
      }
      delay = Math.min(delay * 2, 30_000);
    }
  }

  /* -------------------------------------------------------------------------------------------------------
   * 5. App state: the user, what they may do, and the live alerts of this session
   * ----------------------------------------------------------------------------------------------------- */

  const state = {
    /** GET /auth/me: { user, session_id, permissions }. */
    me: null,
    permissions: new Set(),
    /** Where to go after signing in (the page that asked for it). */
    returnTo: null,
    /** A note for the sign-in page (e.g. "your session has ended"). */
    loginNotice: null,
  };

  const can = (permission) => state.permissions.has(permission);
  const roleRank = (role) => ROLES.indexOf(role);
  /** The admin page: user administration, or organization management. */
  const mayAdminister = () => can("user:read") && (can("user:manage") || can("org:manage") || can("org:create"));

  /** The most live alerts kept (and shown on the alerts page). */
  const LIVE_MAX = 200;

  /**
   * The live alert stream (one per session, whatever the page) and what it has delivered. `newest` is the
   * newest alert id the session knows of (null: not known yet, "": there was none when the session began);
   * alert ids are UUIDv7, so a larger id is a newer alert (the stored history is sorted by id).
   */
  const live = {
    alerts: [],
    count: 0,
    newest: null,
    controller: null,
    bus: new EventTarget(),
  };

  function resetLive() {
    live.alerts = [];
    live.count = 0;
    live.newest = null;
  }

  function saveLive() {
    if (!Session.get()) return;
    sessionStorage.setItem(LIVE_KEY,
      JSON.stringify({ count: live.count, newest: live.newest, alerts: live.alerts.slice(0, 100) }));
  }

  function restoreLive() {
    resetLive();
    try {
      const saved = JSON.parse(sessionStorage.getItem(LIVE_KEY));
      if (isNumber(saved?.count)) live.count = saved.count;
      if (typeof saved?.newest === "string") live.newest = saved.newest;
      if (Array.isArray(saved?.alerts)) live.alerts = saved.alerts;
    } catch {
      // Nothing (readable) saved: start afresh.
    }
  }

  /** Notes that alert `id` exists: it may be the newest the session knows of. */
  function noteNewest(id) {
    if (live.newest === null || id > live.newest) live.newest = id;
  }

  function receiveAlert(alert) {
    if (!alert?.id || live.alerts.some((a) => a.id === alert.id)) return;
    live.alerts.unshift(alert);
    live.alerts.length = Math.min(live.alerts.length, LIVE_MAX);
    live.count += 1;
    noteNewest(alert.id);
    saveLive();
    const counter = document.getElementById("alert-count");
    if (counter) counter.textContent = String(live.count);
    live.bus.dispatchEvent(new CustomEvent("alert", { detail: alert }));
  }

  function setStreamState(stateName, detail) {
    const dot = document.getElementById("stream-state");
    if (!dot) return;
    const label = {
      open: "Live alerts: connected",
      reconnecting: `Live alerts: reconnecting in ${Math.round((detail || 0) / 1000)} s`,
      failed: "Live alerts: unavailable",
    }[stateName] || "Live alerts: connecting";
    dot.dataset.state = stateName;
    dot.title = label;
    dot.setAttribute("aria-label", label);
  }

  /**
   * The server does not replay what a subscriber missed, so each time the stream (re)opens, the alerts
   * stored meanwhile are fetched: those newer than the newest the session knows of are received as live
   * ones (receiveAlert skips any already there). When the session's first stream opens, this only notes
   * where the session begins.
   */
  async function catchUpAlerts(signal) {
    const since = live.newest;
    const recent = await api("GET", "/alerts", { signal, query: { limit: since === null ? 1 : 50 } });
    if (since === null) {
      noteNewest(recent[0]?.id ?? "");
      saveLive();
      return;
    }
    const missed = recent.filter((alert) => alert.id > since);
    for (const alert of missed.reverse()) receiveAlert(alert);
    if (missed.length === recent.length && recent.length === 50) {
      announce("Some live alerts were missed; the alert history has them all.");
    }
  }

  function startAlertStream() {
    stopAlertStream();
    if (!can("prediction:read")) return;
    const controller = new AbortController();
    live.controller = controller;
    followEvents("/alerts/stream", {
      signal: controller.signal,
      onState(stateName, detail) {
        setStreamState(stateName, detail);
        if (stateName !== "open") return;
        catchUpAlerts(controller.signal).catch((error) => {
          // Not fatal: the alert history has them all.
          if (!(error instanceof ApiError)) reportBug(error);
        });
      },
      onEvent(event) {
        if (event.type === "alert") receiveAlert(JSON.parse(event.data));
        else if (event.type === "lagged") announce("Some live alerts were missed; the alert history has them all.");
      },
    }).catch(reportBug);
  }

  function stopAlertStream() {
    live.controller?.abort();
    live.controller = null;
  }

  /** The signed-in user and their permissions. */
  async function loadMe() {
    const me = await api("GET", "/auth/me");
    state.me = me;
    state.permissions = new Set(me.permissions || []);
  }

  async function signIn(email, password) {
    const response = await rawFetch(`${API}/auth/login`, {
      method: "POST",
      headers: { "Content-Type": "application/json", Accept: "application/json" },
      body: JSON.stringify({ email, password }),
    });
    const pair = await readEnvelope(response);
    Session.clear();
    Session.save(pair);
    resetLive();
    await loadMe();
    startSession();
    const target = state.returnTo && !state.returnTo.startsWith("#/login") ? state.returnTo : "#/portfolio";
    state.returnTo = null;
    location.hash = target;
  }

  /** Header and alert stream for a signed-in user. */
  function startSession() {
    renderHeader();
    startAlertStream();
  }

  /** Forgets the session in this tab and shows the sign-in page. */
  function endSession(notice = null) {
    stopAlertStream();
    Session.clear();
    sessionStorage.clear();
    state.me = null;
    state.permissions = new Set();
    resetLive();
    // The next person to sign in here starts from the default portfolio view.
    Object.assign(portfolioState, PORTFOLIO_DEFAULTS);
    state.loginNotice = notice;
    headerEl.hidden = true;
    headerEl.replaceChildren();
    if (location.hash === "#/login") route();
    else location.hash = "#/login";
  }

  /** True while signOut ends the session: a refusal meanwhile is not a lost session (signOut ends it anyway). */
  let signingOut = false;

  /** The server refused the session (expired, revoked): back to the sign-in page, once. */
  function sessionLost(notice = "Please sign in.") {
    if (signingOut || (!state.me && !Session.get())) return;
    if (location.hash.startsWith("#/") && !location.hash.startsWith("#/login")) state.returnTo = location.hash;
    endSession(notice);
  }

  async function signOut() {
    if (Session.get()) {
      // Ends the session on the server (an expired access token is refreshed once, and the logout retried);
      // whatever it answers, this tab forgets the session.
      signingOut = true;
      try {
        await authFetch(`${API}/auth/logout`, { method: "POST" });
      } catch {
        // Unreachable, or the session could not be renewed: nothing more to end here.
      } finally {
        signingOut = false;
      }
    }
    state.returnTo = null;
    endSession("You have signed out.");
  }

  /* -------------------------------------------------------------------------------------------------------
   * 6. Shared UI pieces
   * ----------------------------------------------------------------------------------------------------- */

  /** Writes to the polite live region (#status). */
  function announce(message, kind = "info") {
    statusEl.textContent = message;
    statusEl.dataset.kind = kind;
  }

  /** A programming error: recorded for the tests, and the user gets a generic message. */
  function reportBug(error) {
    if (isAbort(error)) return;
    window.__pdErrors.push(`bug: ${error?.stack || error}`);
  }

  /** What to tell people about a failure. */
  function describeError(error) {
    if (!(error instanceof ApiError)) return "Something went wrong on this page. Reload it to try again.";
    return error.message;
  }

  /** A risk level badge: coloured, and always with its name. */
  function riskBadge(level) {
    if (!level) return el("span", { class: "badge risk-none", text: "Not scored" });
    return el("span", { class: `badge risk-${level}`, text: humanize(level) });
  }

  const TREND = {
    up: { symbol: "▲", label: "PD up since previous period" },
    down: { symbol: "▼", label: "PD down since previous period" },
    flat: { symbol: "▬", label: "PD unchanged since previous period" },
    none: { symbol: "–", label: "No previous period" },
  };

  /** ▲ (riskier), ▼ or ▬, with its meaning for assistive technology and as a tooltip. */
  function trendMark(trend) {
    const name = TREND[trend] ? trend : "none";
    const { symbol, label } = TREND[name];
    return el("span", { class: `trend trend-${name}`, role: "img", "aria-label": label, title: label, text: symbol });
  }

  const companyLink = (id, symbol) => el("a", { class: "company-link", href: `#/companies/${id}`, text: symbol });

  /** A labelled form control. */
  const field = (label, control) => el("div", { class: "field" }, el("label", { for: control.id, text: label }), control);

  const options = (pairs, selected) =>
    pairs.map(([value, label]) => el("option", { value, text: label, selected: value === selected }));

  /**
   * A table in a horizontally scrollable region.
   *   columns: [{ label, cell(row) → Node|string, sort?: key, numeric?: bool }]
   *   rowAttrs(row) → attributes of the row; onSort(key) makes the `sort` columns' headers buttons.
   *   stack: on phones, each row becomes a card of "label: value" lines (the sort buttons stay above).
   * Returns { element, table, render(rows), setSort(sort) } where sort is "key" or "-key".
   */
  function dataTable({ id, caption, columns, rowAttrs, onSort, stack = false, empty = "Nothing to show." }) {
    const headers = columns.map((col) => {
      const th = el("th", { scope: "col", class: col.numeric ? "num" : null });
      if (col.sort && onSort) {
        th.append(el("button", { type: "button", class: "sort-button", "data-sort": col.sort, onclick: () => onSort(col.sort) },
          col.label, el("span", { class: "sort-icon", "aria-hidden": "true" })));
      } else {
        th.textContent = col.label;
      }
      return th;
    });
    const tbody = el("tbody");
    const table = el("table", { id, class: stack ? "data-table stack" : "data-table" },
      caption ? el("caption", { class: "visually-hidden", text: caption }) : null,
      el("thead", {}, el("tr", {}, headers)),
      tbody);
    const element = el("div", { class: "table-scroll", role: "region", "aria-label": caption || id, tabindex: "0" }, table);

    function render(rows) {
      tbody.replaceChildren(...rows.map((row) =>
        el("tr", rowAttrs ? rowAttrs(row) : {}, columns.map((col) =>
          el("td", { class: col.numeric ? "num" : null, "data-label": col.label }, col.cell(row))))));
      if (!rows.length) tbody.append(el("tr", { class: "empty-row" }, el("td", { colspan: columns.length, text: empty })));
    }

    function setSort(sort) {
      const key = sort.replace(/^-/, "");
      columns.forEach((col, i) => {
        if (!col.sort || !onSort) return;
        const active = col.sort === key;
        headers[i].setAttribute("aria-sort", active ? (sort.startsWith("-") ? "descending" : "ascending") : "none");
      });
    }

    return { element, table, render, setSort };
  }

  /** Previous / next buttons and "Page 1 of 3 · 42 companies". `prefix` keeps the ids unique. */
  function pager(prefix, onPage, noun = ["item", "items"]) {
    let current = { page: 1, total_pages: 1 };
    const button = (id, label, step) =>
      el("button", { type: "button", id: `${prefix}${id}`, class: "button secondary", onclick: () => onPage(current.page + step) }, label);
    const prev = button("page-prev", "‹ Previous", -1);
    const next = button("page-next", "Next ›", 1);
    // Focusable from script: it takes the focus when neither button can.
    const info = el("span", { id: `${prefix}page-info`, class: "page-info", "aria-live": "polite", tabindex: "-1" });
    const element = el("nav", { class: "pager", "aria-label": "Pages" }, prev, info, next);
    return {
      element,
      update(data) {
        current = { page: data.page, total_pages: Math.max(1, data.total_pages) };
        const focused = document.activeElement;
        prev.disabled = current.page <= 1;
        next.disabled = current.page >= current.total_pages;
        // A focused button that gets disabled would drop the focus to the page: hand it to the other one.
        if ((focused === prev || focused === next) && focused.disabled) {
          const other = focused === prev ? next : prev;
          (other.disabled ? info : other).focus();
        }
        info.textContent = `Page ${current.page} of ${current.total_pages} · ${fmtInt(data.total)} ${data.total === 1 ? noun[0] : noun[1]}`;
      },
    };
  }

  /** An <a> that downloads an authenticated file when followed. */
  function downloadLink(label, path, fileName, props = {}) {
    return el("a", {
      ...props,
      href: `${API}${path}`,
      class: ["download-link", props.class],
      onclick: (event) => {
        event.preventDefault();
        announce(`Preparing ${fileName}…`);
        download(path, fileName).then(
          () => announce(`Downloaded ${fileName}.`),
          (error) => announce(describeError(error), "error"));
      },
    }, label);
  }

  /** A page's heading and its one-line introduction. */
  const pageHead = (view, title, lede) =>
    el("div", { class: "page-head" }, view.h1(title), lede ? el("p", { class: "lede", text: lede }) : null);

  /** A card with a titled section (`id` names its heading, which labels the section). */
  const card = (id, title, ...content) =>
    el("section", { class: "card", "aria-labelledby": id }, el("h2", { id, text: title }), ...content);

  /** A definition list from [term, description] pairs (descriptions may be nodes). */
  const definitions = (pairs, className) =>
    el("dl", { class: className }, pairs.map(([term, description]) =>
      el("div", {}, el("dt", { text: term }), el("dd", {}, description))));

  /* -------------------------------------------------------------------------------------------------------
   * 7. Router and page lifecycle
   * ----------------------------------------------------------------------------------------------------- */

  const routes = [
    { name: "login", pattern: /^\/login$/, public: true, render: loginPage },
    { name: "portfolio", pattern: /^\/portfolio$/, render: portfolioPage },
    { name: "company", pattern: /^\/companies\/([^/?]+)$/, render: companyPage },
    { name: "alerts", pattern: /^\/alerts$/, render: alertsPage },
    { name: "bulk", pattern: /^\/bulk$/, render: bulkPage },
    { name: "models", pattern: /^\/models$/, render: modelsPage },
    { name: "admin", pattern: /^\/admin$/, render: adminPage },
  ];
  const notFoundRoute = { name: "not-found", render: notFoundPage };

  let activeView = null;

  /**
   * A page's handle on its lifetime: its abort signal (navigation aborts it), its title and heading, and
   * busy(), which keeps main[data-ready] false while any of the page's loads runs.
   */
  function createView(name, controller) {
    const signal = controller.signal;
    let pending = 0;
    let errorBox = null;
    const view = {
      name,
      signal,
      controller,
      heading: null,
      setTitle(text) {
        document.title = `${text} · ${APP_NAME}`;
      },
      /** The page's h1 (focused on arrival). */
      h1(text, id) {
        view.heading = el("h1", { tabindex: "-1", id, text });
        return view.heading;
      },
      mount(...nodes) {
        mainEl.append(...nodes);
      },
      /** Shows an error under the heading (and in the live region). */
      showError(error) {
        if (signal.aborted) return;
        const message = describeError(error);
        announce(message, "error");
        if (!errorBox) {
          errorBox = el("p", { class: "error-box" });
          if (view.heading?.isConnected) view.heading.after(errorBox);
          else mainEl.prepend(errorBox);
        }
        errorBox.textContent = message;
      },
      clearError() {
        errorBox?.remove();
        errorBox = null;
      },
      /** Runs a load: not ready until every load has settled; errors are shown, aborts ignored. */
      async busy(task) {
        if (signal.aborted) return undefined;
        pending += 1;
        mainEl.dataset.ready = "false";
        try {
          return await task();
        } catch (error) {
          if (!isAbort(error)) {
            if (!(error instanceof ApiError)) reportBug(error);
            if (!(error instanceof ApiError && error.status === 401)) view.showError(error);
          }
          return undefined;
        } finally {
          pending -= 1;
          if (pending === 0 && !signal.aborted) mainEl.dataset.ready = "true";
        }
      },
      /** Adds a listener removed when the page goes away. */
      listen(target, type, handler) {
        target.addEventListener(type, handler, { signal });
      },
      /** A signal for a load that the next call supersedes (type-ahead searches). */
      latest: supersedable(signal),
    };
    return view;
  }

  function matchRoute(path) {
    for (const candidate of routes) {
      const match = candidate.pattern.exec(path);
      if (!match) continue;
      try {
        return { route: candidate, params: match.slice(1).map(decodeURIComponent) };
      } catch (error) {
        if (!(error instanceof URIError)) throw error;
        break; // a malformed escape (e.g. "%E0") names no page
      }
    }
    return { route: notFoundRoute, params: [] };
  }

  function updateNav(pageName) {
    for (const link of headerEl.querySelectorAll("a[data-nav]")) {
      if (link.dataset.nav === pageName) link.setAttribute("aria-current", "page");
      else link.removeAttribute("aria-current");
    }
  }

  /** Shows the page the location's hash names. */
  function route() {
    const hash = location.hash;
    if (!hash.startsWith("#/")) {
      location.replace(state.me ? "#/portfolio" : "#/login");
      return;
    }
    const { route: target, params } = matchRoute(hash.slice(1).split("?")[0]);
    if (!target.public && !state.me) {
      state.returnTo = hash;
      location.replace("#/login");
      return;
    }
    if (target.name === "login" && state.me) {
      location.replace("#/portfolio");
      return;
    }
    activeView?.controller.abort();
    const view = createView(target.name, new AbortController());
    activeView = view;
    announce("");
    mainEl.dataset.ready = "false";
    document.body.dataset.page = target.name;
    mainEl.replaceChildren();
    updateNav(target.name);
    // The page builds its skeleton (and heading) synchronously, then loads its data.
    view.busy(() => target.render(view, ...params));
    (view.heading || mainEl).focus();
  }

  /* -------------------------------------------------------------------------------------------------------
   * 8. Pages
   * ----------------------------------------------------------------------------------------------------- */

  function renderHeader() {
    const user = state.me.user;
    const links = [
      ["portfolio", "Portfolio"],
      ["alerts", "Alerts"],
      ["bulk", "Bulk jobs"],
      ["models", "Models"],
    ];
    if (mayAdminister()) links.push(["admin", "Admin"]);
    const nav = el("nav", { class: "main-nav", "aria-label": "Main" },
      el("ul", {}, links.map(([page, label]) =>
        el("li", {}, el("a", { href: `#/${page}`, "data-nav": page }, label,
          page === "alerts"
            ? [" ", el("span", { id: "alert-count", class: "count-badge", text: String(live.count) }),
              el("span", { class: "visually-hidden", text: " live alerts this session" })]
            : null)))));
    const brand = el("a", { href: "#/portfolio", class: "brand-link" },
      el("span", { class: "brand-mark", "aria-hidden": "true", text: "PD" }), APP_NAME);
    const signOutButton = el("button", { type: "button", id: "sign-out", class: "button secondary small" }, "Sign out");
    signOutButton.addEventListener("click", () => signOut().catch(reportBug));
    headerEl.replaceChildren(
      el("div", { class: "brand" }, brand, el("span", { id: "stream-state", class: "stream-state", role: "img" })),
      nav,
      el("div", { class: "user-box" }, el("span", { id: "whoami", class: "whoami", text: `${user.email} · ${user.role}` }), signOutButton));
    headerEl.hidden = false;
    setStreamState("connecting");
  }

  /* ----- Sign-in ----- */

  function loginPage(view) {
    view.setTitle("Sign in");
    const email = el("input", { id: "email", name: "email", type: "email", autocomplete: "username", required: true, spellcheck: "false" });
    const password = el("input", { id: "password", name: "password", type: "password", autocomplete: "current-password", required: true });
    const error = el("p", { id: "login-error", class: "form-error", role: "alert" });
    const submit = el("button", { type: "submit", id: "login-submit", class: "button primary" }, "Sign in");
    const notice = state.loginNotice ? el("p", { id: "login-notice", class: "notice", text: state.loginNotice }) : null;
    state.loginNotice = null;

    const form = el("form", { id: "login-form", class: "card login-card", novalidate: true }, view.h1(`Sign in to ${APP_NAME}`), notice,
      field("E-mail", email), field("Password", password), error, submit);
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      error.textContent = "";
      if (!email.value.trim() || !password.value) {
        error.textContent = "Enter your e-mail address and your password.";
        (email.value.trim() ? password : email).focus();
        return;
      }
      submit.disabled = true;
      submit.textContent = "Signing in…";
      mainEl.dataset.ready = "false";
      try {
        await signIn(email.value.trim(), password.value);
      } catch (failure) {
        if (!(failure instanceof ApiError)) reportBug(failure);
        error.textContent = describeError(failure);
        password.select();
        // Signed in but the profile failed to load: start over cleanly.
        if (Session.get() && !state.me) Session.clear();
      } finally {
        submit.disabled = false;
        submit.textContent = "Sign in";
        if (!view.signal.aborted) mainEl.dataset.ready = "true";
      }
    });
    view.mount(el("div", { class: "login-wrap" }, form));
  }

  /* ----- Portfolio ----- */

  const PORTFOLIO_DEFAULTS = { q: "", risk: "", sector: "", sort: "symbol", page: 1, perPage: 25 };
  /** Kept across visits (until the session ends), so going back to the portfolio shows the same view. */
  const portfolioState = { ...PORTFOLIO_DEFAULTS };
  /** Sorts whose first click is descending (the riskiest, the largest first). */
  const DESCENDING_FIRST = new Set(["probability", "market_cap"]);

  function portfolioPage(view) {
    const s = portfolioState;
    view.setTitle("Portfolio");
    const search = el("input", { id: "search", type: "search", autocomplete: "off", value: s.q, placeholder: "e.g. ACME or Acme Corp" });
    const risk = el("select", { id: "filter-risk" },
      options([["", "All levels"], ...RISK_LEVELS.map((l) => [l, humanize(l)])], s.risk));
    const sector = el("input", { id: "filter-sector", type: "text", autocomplete: "off", value: s.sector, placeholder: "e.g. Technology" });

    const table = dataTable({
      id: "portfolio",
      stack: true,
      caption: "Companies with their latest probability of default",
      empty: "No companies match these filters.",
      rowAttrs: (item) => ({ "data-company-id": item.company.id }),
      onSort: (key) => {
        const current = s.sort.replace(/^-/, "");
        s.sort = key === current ? (s.sort.startsWith("-") ? key : `-${key}`) : (DESCENDING_FIRST.has(key) ? `-${key}` : key);
        s.page = 1;
        load();
      },
      columns: [
        { label: "Symbol", sort: "symbol", cell: (i) => companyLink(i.company.id, i.company.symbol) },
        { label: "Name", sort: "name", cell: (i) => i.company.name },
        { label: "Sector", sort: "sector", cell: (i) => i.company.sector || "—" },
        { label: "Market cap", sort: "market_cap", numeric: true, cell: (i) => fmtCompact(i.company.market_cap) },
        { label: "Latest PD", sort: "probability", numeric: true, cell: (i) => fmtPct(i.latest?.probability) },
        { label: "Risk", cell: (i) => riskBadge(i.latest?.risk_level) },
        { label: "Rating", cell: (i) => i.latest?.implied_rating || "—" },
        { label: "Trend", cell: (i) => trendMark(i.trend) },
        { label: "Period", cell: (i) => (i.latest ? fmtPeriod(i.latest.period_year, i.latest.period_quarter) : "—") },
      ],
    });
    const pages = pager("", (page) => {
      s.page = page;
      load();
    }, ["company", "companies"]);

    const readFilters = () => {
      s.q = search.value.trim();
      s.risk = risk.value;
      s.sector = sector.value.trim();
      s.page = 1;
    };
    const onFilter = () => {
      readFilters();
      load();
    };
    // Typing updates the state at once, and loads when it pauses: a state written late (e.g. after the "change"
    // of leaving the field for "Sign out") would outlive the session.
    const loadSoon = debounce(load, 300);
    const onType = () => {
      readFilters();
      loadSoon();
    };
    // "input" as people type; "change" also covers fields cleared by scripts and the search box's ✕.
    for (const input of [search, sector]) {
      input.addEventListener("input", onType);
      input.addEventListener("change", onType);
    }
    risk.addEventListener("change", onFilter);

    const filters = el("form", { class: "filters", role: "search", "aria-label": "Filter companies" },
      field("Search symbol or name", search), field("Risk level", risk), field("Sector", sector));
    filters.addEventListener("submit", (event) => {
      event.preventDefault();
      onFilter();
    });
    view.mount(
      pageHead(view, "Portfolio", "Every company you may see, with its latest probability of default (PD)."),
      filters, table.element, pages.element);

    function load() {
      const signal = view.latest();
      return view.busy(async () => {
        table.setSort(s.sort);
        const data = await api("GET", "/portfolio", {
          signal,
          query: { q: s.q, risk_level: s.risk, sector: s.sector, sort: s.sort, page: s.page, per_page: s.perPage },
        });
        view.clearError();
        table.render(data.items);
        pages.update(data);
      });
    }
    return load();
  }

  /* ----- Company ----- */

  async function companyPage(view, id) {
    view.setTitle("Company");
    const title = view.h1("Loading company…", "company-title");
    view.mount(el("p", { class: "breadcrumb" }, el("a", { href: "#/portfolio", text: "‹ Portfolio" })), title);

    const showNotFound = () => {
      title.textContent = "Company not found";
      view.setTitle("Company not found");
      view.mount(el("div", { id: "not-found", class: "card empty-state" },
        el("p", {}, el("strong", { text: "Company not found." }), " It does not exist, or it is not one you may see."),
        el("p", {}, el("a", { href: "#/portfolio", text: "Back to the portfolio" }))));
    };
    if (!isUuid(id)) return showNotFound();

    let company;
    let history;
    try {
      [company, history] = await Promise.all([
        api("GET", `/companies/${id}`, { signal: view.signal }),
        apiAll(`/companies/${id}/predictions`, { signal: view.signal }),
      ]);
    } catch (error) {
      if (error instanceof ApiError && (error.status === 404 || error.status === 422)) return showNotFound();
      title.textContent = "Company";
      throw error;
    }

    title.textContent = `${company.symbol} — ${company.name}`;
    view.setTitle(company.symbol);
    view.mount(definitions([
      ["Sector", company.sector || "—"],
      ["Market cap", fmtCompact(company.market_cap)],
      ["Predictions", fmtInt(history.length)],
    ], "facts"));

    const latest = history[0];
    if (!latest) {
      view.mount(el("p", { id: "no-predictions", class: "card empty-state", text: "This company has not been scored yet." }));
      return;
    }

    const period = fmtPeriod(latest.period_year, latest.period_quarter);
    view.mount(
      card("latest-heading", "Latest assessment", definitions([
        ["Probability of default", el("span", { id: "latest-pd", class: "big-number", text: fmtPct(latest.probability) })],
        ["Risk level", riskBadge(latest.risk_level)],
        ["Implied rating", el("span", { id: "latest-rating", text: latest.implied_rating || "—" })],
        ["Period", latest.basis?.flows === "trailing_twelve_months"
          ? `${period} (${latest.prediction_type}; flows of the trailing twelve months, ${(latest.basis.quarters || []).join(", ")})`
          : `${period} (${latest.prediction_type})`],
        ["Model", [el("span", { id: "model-id", class: "mono", text: latest.model }), " ",
          el("a", { href: "#/models", class: "small-link", text: "model card" })]],
        ["Confidence", isNumber(latest.confidence) ? fmtPct(latest.confidence) : "—"],
        ["Scored", timeEl(latest.created_at)],
      ], "summary-grid")),
      card("chart-heading", "PD history", pdChart(historySeries(history), company.symbol)),
      el("div", { class: "two-columns" },
        card("reasons-heading", "Top reason codes",
          el("p", { class: "hint", text: "Each feature's contribution to the latest prediction, in logit points against the "
            + "model's baseline: red bars raise the risk, green bars lower it." }),
          reasonsChart(latest.contributions)),
        card("inputs-heading", "Inputs as scored", inputsTable(latest).element)),
      card("all-heading", "All predictions", predictionsTable(history).element));
  }

  const SERIES_NAMES = { annual: "Annual", quarterly: "Quarterly" };

  /** Where a reporting period sits on the time axis: the middle of its year or quarter. */
  const periodX = (year, quarter) => {
    const q = quarterNumber(quarter);
    return year + (q ? (q - 0.5) / 4 : 0.5);
  };

  /**
   * The chart's series from a prediction history (newest first): one per prediction type, and one dashed
   * series per other horizon of the term structure. A period scored twice shows its newest prediction.
   */
  function historySeries(predictions) {
    const seen = new Set();
    const series = new Map();
    const add = (key, label, kind, point) => {
      if (!series.has(key)) series.set(key, { key, label, kind, points: [] });
      series.get(key).points.push(point);
    };
    for (const p of predictions) {
      const periodKey = `${p.prediction_type}:${p.period_year}:${quarterNumber(p.period_quarter) ?? ""}`;
      if (seen.has(periodKey) || !isNumber(p.probability)) continue;
      seen.add(periodKey);
      const x = periodX(p.period_year, p.period_quarter);
      const period = fmtPeriod(p.period_year, p.period_quarter);
      const typeName = SERIES_NAMES[p.prediction_type] || humanize(p.prediction_type);
      add(p.prediction_type, typeName, "main", {
        x, y: p.probability, title: `${typeName} ${period}: PD ${fmtPct(p.probability)} (${p.risk_level})`,
      });
      // The cumulative curve's 5-year point (the curve is monotone: at least the 1-year PD).
      for (const [horizon, value] of Object.entries((p.term_structure || {}).cumulative || {})) {
        if (horizon !== "5y" || !isNumber(value) || Math.abs(value - p.probability) < 1e-12) continue;
        const key = p.prediction_type === "annual" ? `term-${horizon}` : `term-${horizon}-${p.prediction_type}`;
        const label = `${horizon} PD${p.prediction_type === "annual" ? "" : ` (${p.prediction_type})`}`;
        add(key, label, "term", { x, y: value, title: `${label} ${period}: ${fmtPct(value)}` });
      }
    }
    const list = [...series.values()];
    for (const s of list) s.points.sort((a, b) => a.x - b.x);
    return list;
  }

  /** A "nice" step (1, 2 or 5 × 10^n) near `raw`. */
  const niceStep = (raw) => {
    const power = 10 ** Math.floor(Math.log10(raw));
    const f = raw / power;
    return (f <= 1 ? 1 : f <= 2 ? 2 : f <= 5 ? 5 : 10) * power;
  };

  /**
   * The PD axis: logarithmic when the values span more than ~an order of magnitude, linear from 0 otherwise.
   * Returns { map(v) → y pixel, ticks, log }.
   */
  function pdScale(values, top, bottom) {
    const max = Math.min(1, Math.max(...values, 1e-4));
    const min = Math.max(Math.min(...values), 1e-5);
    if (max / min >= 8) {
      const lo = Math.floor(Math.log10(min));
      const hi = Math.max(lo + 1, Math.min(0, Math.ceil(Math.log10(max))));
      const from = lo - (hi - lo) * 0.05; // a little room under the lowest tick
      const map = (v) => bottom - ((Math.log10(Math.max(v, 10 ** from)) - from) / (hi - from)) * (bottom - top);
      const multiples = hi - lo <= 2 ? [1, 2, 5] : [1];
      const ticks = [];
      for (let e = lo; e <= hi; e++) {
        for (const m of multiples) {
          const v = m * 10 ** e;
          if (v <= 10 ** hi + 1e-12) ticks.push(v);
        }
      }
      return { map, ticks, log: true };
    }
    const step = niceStep((max * 1.1) / 5);
    const ceiling = Math.min(1, Math.ceil((max * 1.1) / step) * step);
    const map = (v) => bottom - (v / ceiling) * (bottom - top);
    const ticks = [];
    for (let i = 0; i * step <= ceiling + step / 1000; i++) ticks.push(i * step);
    return { map, ticks, log: false };
  }

  /**
   * The PD history chart: an inline SVG scaled by its viewBox, with a legend and a text summary. The
   * viewBox is as wide as the page's content at drawing time (within bounds), so that its text stays
   * legible on a phone; it then scales with its container.
   */
  function pdChart(series, symbol) {
    const W = Math.round(Math.min(960, Math.max(340, mainEl.clientWidth - 64)));
    const H = W < 560 ? 260 : 320;
    const M = { left: 60, right: 16, top: 16, bottom: 44 };
    const points = series.flatMap((s) => s.points);
    const firstYear = Math.floor(Math.min(...points.map((p) => p.x)));
    const lastYear = Math.floor(Math.max(...points.map((p) => p.x)));
    const x = (v) => M.left + ((v - firstYear) / (lastYear + 1 - firstYear)) * (W - M.left - M.right);
    const y = pdScale(points.map((p) => p.y), M.top, H - M.bottom);

    const summary = series.map((s) => {
      const first = s.points[0];
      const last = s.points[s.points.length - 1];
      const periods = `${s.points.length} period${s.points.length === 1 ? "" : "s"}`;
      return `${s.label}: ${periods}, ${fmtPct(first.y)} at the first, ${fmtPct(last.y)} at the latest`;
    }).join("; ");
    const root = svg("svg", {
      id: "pd-chart", class: "pd-chart", viewBox: `0 0 ${W} ${H}`, role: "img",
      "aria-label": `Probability of default of ${symbol} by reporting period (${y.log ? "logarithmic" : "linear"} scale). ${summary}.`,
    });

    // Gridlines and the PD axis.
    const grid = svg("g", { class: "grid", "aria-hidden": "true" });
    for (const tick of y.ticks) {
      const ty = y.map(tick);
      grid.append(
        svg("line", { x1: M.left, x2: W - M.right, y1: ty, y2: ty, class: "gridline" }),
        svg("text", {
          x: M.left - 8, y: ty, class: "tick", "text-anchor": "end", "dominant-baseline": "middle",
          text: FORMAT.tickPercent.format(tick),
        }));
    }
    const maxLabels = Math.max(2, Math.floor((W - M.left - M.right) / 52));
    const yearStep = Math.max(1, Math.ceil((lastYear - firstYear + 1) / maxLabels));
    for (let year = firstYear; year <= lastYear; year++) {
      grid.append(svg("line", { x1: x(year), x2: x(year), y1: M.top, y2: H - M.bottom, class: "gridline vertical" }));
      if ((year - firstYear) % yearStep === 0) {
        grid.append(svg("text", { x: x(year + 0.5), y: H - M.bottom + 20, class: "tick", "text-anchor": "middle", text: String(year) }));
      }
    }
    const middle = (M.top + H - M.bottom) / 2;
    grid.append(
      svg("line", { x1: M.left, x2: W - M.right, y1: H - M.bottom, y2: H - M.bottom, class: "axis" }),
      svg("text", {
        x: 14, y: middle, class: "axis-label", "text-anchor": "middle", transform: `rotate(-90 14 ${middle})`,
        text: y.log ? "PD (log scale)" : "PD",
      }),
      svg("text", { x: (M.left + W - M.right) / 2, y: H - 4, class: "axis-label", "text-anchor": "middle", text: "Reporting period" }));
    root.append(grid);

    // The series: a line through the periods and a marker (with a tooltip) per period.
    for (const s of series) {
      const group = svg("g", { class: `series series-${s.kind === "term" ? "term" : s.key}`, "data-series": s.key });
      if (s.points.length > 1) {
        group.append(svg("polyline", {
          class: "series-line",
          points: s.points.map((p) => `${x(p.x).toFixed(1)},${y.map(p.y).toFixed(1)}`).join(" "),
          "stroke-dasharray": s.kind === "term" ? "6 4" : null,
        }));
      }
      for (const p of s.points) {
        group.append(svg("circle", {
          class: "point", "data-series": s.key, cx: x(p.x).toFixed(1), cy: y.map(p.y).toFixed(1),
          r: s.kind === "term" ? 3.5 : 4.5,
        }, svg("title", { text: p.title })));
      }
      root.append(group);
    }

    const legend = el("ul", { class: "chart-legend", "aria-label": "Legend" }, series.map((s) =>
      el("li", {}, el("span", { class: `swatch swatch-${s.kind === "term" ? "term" : s.key}`, "aria-hidden": "true" }), s.label)));
    return el("figure", { class: "chart" }, root, legend);
  }

  /** The latest prediction's reason codes as a diverging bar chart (top 8 by size). */
  function reasonsChart(contributions) {
    const list = (Array.isArray(contributions) ? contributions : [])
      .filter((c) => c && isNumber(c.logit))
      .sort((a, b) => Math.abs(b.logit) - Math.abs(a.logit))
      .slice(0, 8);
    const root = el("div", { id: "reasons", class: "reasons", role: "list" });
    if (!list.length) {
      root.append(el("p", { class: "muted", text: "This prediction has no reason codes." }));
      return root;
    }
    const largest = Math.max(...list.map((c) => Math.abs(c.logit))) || 1;
    for (const c of list) {
      const raises = c.logit > 0;
      const bar = el("span", { class: `reason-bar ${raises ? "up" : "down"}` });
      bar.style.width = `${(Math.abs(c.logit) / largest) * 100}%`;
      root.append(el("div", { class: `reason ${raises ? "raises" : "lowers"}`, role: "listitem", "data-feature": c.feature },
        el("div", { class: "reason-label" },
          el("span", { class: "reason-feature mono", text: c.feature }),
          c.reason ? el("span", { class: "reason-text", text: c.reason }) : null),
        el("div", { class: "reason-track", "aria-hidden": "true" },
          el("span", { class: "half negative" }, raises ? null : bar),
          el("span", { class: "half positive" }, raises ? bar : null)),
        el("span", { class: "reason-value", text: FORMAT.signed.format(c.logit) }),
        el("span", { class: "visually-hidden", text: raises ? " (raises the risk)" : " (lowers the risk)" })));
    }
    return root;
  }

  /** The latest prediction's inputs, with each one's contribution. */
  function inputsTable(prediction) {
    const contributions = new Map((Array.isArray(prediction.contributions) ? prediction.contributions : [])
      .map((c) => [c.feature, c.logit]));
    const table = dataTable({
      id: "inputs",
      caption: "Model inputs of the latest prediction",
      empty: "No inputs recorded.",
      columns: [
        { label: "Input", cell: ([name]) => el("span", { class: "mono", text: name }) },
        {
          label: "Value",
          numeric: true,
          cell: ([, value]) => (value === null ? el("span", { class: "muted", text: "missing" }) : fmtValue(value)),
        },
        {
          label: "Contribution",
          numeric: true,
          cell: ([name]) => (isNumber(contributions.get(name)) ? FORMAT.signed.format(contributions.get(name)) : "—"),
        },
      ],
    });
    table.render(Object.entries(prediction.inputs || {}));
    return table;
  }

  function predictionsTable(history) {
    const table = dataTable({
      id: "prediction-history",
      caption: "All predictions of this company, latest period first",
      columns: [
        { label: "Period", cell: (p) => fmtPeriod(p.period_year, p.period_quarter) },
        { label: "Type", cell: (p) => humanize(p.prediction_type) },
        { label: "PD", numeric: true, cell: (p) => fmtPct(p.probability) },
        { label: "Risk", cell: (p) => riskBadge(p.risk_level) },
        { label: "Rating", cell: (p) => p.implied_rating || "—" },
        { label: "Model", cell: (p) => el("span", { class: "mono", text: p.model }) },
        { label: "Source", cell: (p) => p.source },
        { label: "Scored", cell: (p) => timeEl(p.created_at) },
      ],
    });
    table.render(history);
    return table;
  }

  /* ----- Alerts ----- */

  /** "Low → Medium" with badges (an alert without a previous level is a first score). */
  function levelChange(alert) {
    return el("span", { class: "level-change" },
      alert.previous_level ? riskBadge(alert.previous_level) : el("span", { class: "muted", text: "new" }),
      el("span", { class: "arrow", "aria-hidden": "true", text: " → " }),
      el("span", { class: "visually-hidden", text: " to " }),
      riskBadge(alert.new_level));
  }

  /** "1.20% → 3.10% (+1.90 pp)". */
  const pdChange = (alert) => {
    const move = fmtPp(alert.previous_probability, alert.new_probability);
    return `${fmtPct(alert.previous_probability)} → ${fmtPct(alert.new_probability)}${move ? ` (${move})` : ""}`;
  };

  const REASONS = { level_changed: "Risk level changed", pd_moved: "PD moved" };

  function alertItem(alert) {
    return el("li", { class: "alert-item", "data-alert-id": alert.id },
      el("div", { class: "alert-main" },
        companyLink(alert.company_id, alert.company_symbol),
        el("span", { class: "muted", text: ` ${fmtPeriod(alert.period_year, alert.period_quarter)} ${alert.prediction_type}` }),
        levelChange(alert)),
      el("div", { class: "alert-meta" },
        el("span", { text: `PD ${pdChange(alert)}` }),
        el("span", { class: "muted", text: REASONS[alert.reason] || humanize(alert.reason) }),
        timeEl(alert.created_at)));
  }

  async function alertsPage(view) {
    view.setTitle("Alerts");
    const feed = el("ul", { id: "alert-feed", class: "alert-feed", "aria-live": "polite", "aria-relevant": "additions" });
    feed.replaceChildren(...live.alerts.map(alertItem));
    if (!live.alerts.length) {
      feed.append(el("li", { class: "empty-state", text: "No live alerts since you signed in. New ones appear here as they happen." }));
    }
    // Only the new alert is added (a live region reads out what is added; a rebuilt list would be read again).
    view.listen(live.bus, "alert", (event) => {
      feed.querySelector(".empty-state")?.remove();
      feed.prepend(alertItem(event.detail));
      while (feed.children.length > LIVE_MAX) feed.lastElementChild.remove();
    });

    const companySearch = el("input", { id: "alerts-company-search", type: "search", autocomplete: "off", placeholder: "Symbol or name" });
    const companySelect = el("select", { id: "alerts-company" }, options([["", "All companies"]], ""));
    const more = el("button", { type: "button", id: "alerts-more", class: "button secondary" }, "Load more");
    const table = dataTable({
      id: "alert-history",
      caption: "Stored risk-change alerts, newest first",
      empty: "No alerts.",
      rowAttrs: (a) => ({ "data-alert-id": a.id }),
      columns: [
        { label: "When", cell: (a) => timeEl(a.created_at) },
        { label: "Company", cell: (a) => companyLink(a.company_id, a.company_symbol) },
        { label: "Period", cell: (a) => `${fmtPeriod(a.period_year, a.period_quarter)} ${a.prediction_type}` },
        { label: "Change", cell: levelChange },
        { label: "PD", cell: pdChange },
        { label: "Reason", cell: (a) => REASONS[a.reason] || humanize(a.reason) },
      ],
    });

    view.mount(
      pageHead(view, "Alerts", "Risk-level changes and large PD moves of the companies you follow."),
      card("live-heading", "Live", feed),
      card("history-heading", "History",
        el("form", { class: "filters", role: "search", "aria-label": "Filter alerts", onsubmit: (e) => e.preventDefault() },
          field("Find a company", companySearch), field("Company", companySelect)),
        table.element,
        el("div", { class: "actions" }, more)));

    const LIMIT = 50;
    let rows = [];
    /** The company filter `rows` were loaded with. */
    let rowsCompany = null;
    /** Each history load cancels the one before it, so that an older answer never lands in the table. */
    const nextHistorySignal = supersedable(view.signal);

    /** The company choices: the portfolio's companies matching the search. */
    const loadCompanies = () => {
      const signal = view.latest();
      return view.busy(async () => {
        const data = await api("GET", "/portfolio", { signal, query: { q: companySearch.value.trim(), sort: "symbol", per_page: 200 } });
        const selected = companySelect.value;
        const choices = data.items.map((i) => [i.company.id, `${i.company.symbol} — ${i.company.name}`]);
        // Keep the chosen company selectable even when the new search does not find it.
        if (selected && !choices.some(([id]) => id === selected)) {
          choices.unshift([selected, companySelect.selectedOptions[0]?.textContent || selected]);
        }
        companySelect.replaceChildren(...options([["", "All companies"], ...choices], selected));
      });
    };

    /**
     * A page of the history: the first (fresh) or the next (after the last row shown). "Load more" starts
     * afresh when the rows shown are not of the company chosen now (its fresh load was cancelled).
     */
    const loadHistory = (fresh) => {
      const signal = nextHistorySignal();
      const companyId = companySelect.value;
      const appending = !fresh && companyId === rowsCompany;
      return view.busy(async () => {
        more.disabled = true;
        const before = appending ? rows[rows.length - 1]?.id : undefined;
        const page = await api("GET", "/alerts", { signal, query: { company_id: companyId, before, limit: LIMIT } });
        signal.throwIfAborted();
        rows = appending ? rows.concat(page) : page;
        rowsCompany = companyId;
        table.render(rows);
        more.disabled = page.length < LIMIT;
        more.textContent = page.length < LIMIT ? "No older alerts" : "Load more";
      });
    };

    const searchCompanies = debounce(loadCompanies, 300);
    companySearch.addEventListener("input", searchCompanies);
    companySearch.addEventListener("change", searchCompanies);
    companySelect.addEventListener("change", () => loadHistory(true));
    more.addEventListener("click", () => loadHistory(false));
    await Promise.all([loadCompanies(), loadHistory(true)]);
  }

  /* ----- Bulk jobs ----- */

  const FINISHED = new Set(["completed", "failed", "cancelled"]);
  const jobPercent = (job) => (isNumber(job.progress_percent) ? job.progress_percent : 0);
  const jobRows = (job) => `${fmtInt(job.processed_rows)} / ${isNumber(job.total_rows) ? fmtInt(job.total_rows) : "?"} rows`;
  const jobStatusText = (job) => [
    humanize(job.status),
    jobRows(job),
    job.failed_rows > 0 ? `${fmtInt(job.failed_rows)} failed` : null,
    job.error_message,
  ].filter(Boolean).join(" · ");

  async function bulkPage(view) {
    view.setTitle("Bulk jobs");
    const mayUpload = can("prediction:manage");
    const session = Session.get();

    // The job being followed: its progress, status and (once finished) its downloads.
    const progress = el("progress", { id: "job-progress", max: "100", value: "0" });
    const status = el("span", { id: "job-status", class: "job-status" });
    const jobTitle = el("h2", { id: "job-title", text: "Job" });
    const jobActions = el("div", { class: "actions job-actions" });
    const panel = el("section", { id: "job-panel", class: "card job-panel", hidden: true, "aria-labelledby": "job-title" },
      jobTitle, el("div", { class: "field" }, el("label", { for: "job-progress", text: "Progress" }), progress),
      el("p", { "aria-live": "polite" }, status), jobActions);
    let following = null;

    function showJob(job) {
      panel.hidden = false;
      jobTitle.textContent = `Job: ${job.file_name}`;
      progress.value = jobPercent(job);
      progress.textContent = `${jobPercent(job)} %`;
      status.textContent = jobStatusText(job);
      const actions = [];
      if (FINISHED.has(job.status)) {
        actions.push(
          downloadLink("Download results (CSV)", `/bulk-jobs/${job.id}/results`, `${job.id}-results.csv`,
            { id: "results-link", class: "button primary" }),
          downloadLink(`Download failed rows (${fmtInt(job.failed_rows)})`, `/bulk-jobs/${job.id}/errors`, `${job.id}-errors.csv`,
            { id: "errors-link", class: "button secondary" }));
      } else if (mayUpload) {
        actions.push(el("button", { type: "button", id: "job-cancel", class: "button danger", onclick: () => cancelJob(job) }, "Cancel job"));
      }
      jobActions.replaceChildren(...actions);
    }

    /** Follows a job's progress stream until it is done (or another job is followed). */
    function followJob(job) {
      following?.abort();
      following = new AbortController();
      const signal = AbortSignal.any([view.signal, following.signal]);
      showJob(job);
      if (FINISHED.has(job.status)) return;
      followEvents(`/bulk-jobs/${job.id}/events`, {
        signal,
        onState: (s, error) => {
          if (s === "failed") announce(describeError(error), "error");
        },
        onEvent(event) {
          if (event.type !== "progress" && event.type !== "done") return undefined;
          const current = JSON.parse(event.data);
          showJob(current);
          if (event.type !== "done") return undefined;
          announce(`Job ${current.file_name}: ${jobStatusText(current)}.`);
          loadJobs();
          return STOP;
        },
      }).catch(reportBug);
    }

    async function cancelJob(job) {
      try {
        const updated = await api("POST", `/bulk-jobs/${job.id}/cancel`);
        announce(`Cancellation of ${updated.file_name} requested.`);
        showJob(updated);
        loadJobs();
      } catch (error) {
        announce(describeError(error), "error");
      }
    }

    // The upload form (for roles that may score).
    let uploadSection = el("p", { class: "notice", text: "Your role can follow bulk jobs but not upload files." });
    let loadOrganizations = async () => {};
    if (mayUpload) {
      const file = el("input", { id: "upload-file", name: "file", type: "file", accept: ".csv,.xlsx", required: true });
      const type = el("select", { id: "upload-type", name: "type" },
        options([["annual", "Annual statements"], ["quarterly", "Quarterly statements"]], "annual"));
      const error = el("div", { id: "upload-error", class: "form-error", role: "alert" });
      const submit = el("button", { type: "submit", id: "upload-submit", class: "button primary" }, "Upload and score");
      // Accounts without an organization of their own (tenant admins) choose where the companies go.
      const needsOrganization = !session?.organization_id;
      const organization = needsOrganization ? el("select", { id: "upload-org", name: "organization_id", required: true }) : null;
      if (organization && session?.tenant_id) {
        loadOrganizations = async () => {
          const orgs = await apiAll(`/tenants/${session.tenant_id}/organizations`, { signal: view.signal, maxPages: 1 });
          organization.replaceChildren(...options(orgs.map((o) => [o.id, o.name]), orgs[0]?.id));
        };
      }
      const form = el("form", { id: "upload-form", class: "card upload-form", "aria-labelledby": "upload-heading", novalidate: true },
        el("h2", { id: "upload-heading", text: "Upload a file" }),
        el("p", { class: "hint", text: "A CSV or XLSX file with one filing per row (AccuNode's column names). "
          + "Each row is scored, and its company created if it is new." }),
        el("div", { class: "form-grid" },
          field("File (.csv or .xlsx)", file),
          field("Statements", type),
          organization ? field("Organization", organization) : null),
        error,
        el("div", { class: "actions" }, submit));
      form.addEventListener("submit", async (event) => {
        event.preventDefault();
        error.replaceChildren();
        if (!file.files.length) {
          error.textContent = "Choose a file to upload.";
          file.focus();
          return;
        }
        const body = new FormData();
        body.append("type", type.value);
        if (organization?.value) body.append("organization_id", organization.value);
        body.append("file", file.files[0]);
        submit.disabled = true;
        submit.textContent = "Uploading…";
        try {
          const job = await api("POST", "/bulk-jobs", { form: body, signal: view.signal });
          announce(`Uploaded ${job.file_name}; the job is ${job.status}.`);
          file.value = "";
          followJob(job);
          loadJobs();
        } catch (failure) {
          if (isAbort(failure)) return;
          if (!(failure instanceof ApiError)) reportBug(failure);
          error.append(el("p", { text: describeError(failure) }));
          const details = failure.details;
          if (Array.isArray(details?.columns) && details.columns.length) {
            error.append(el("p", { text: `Columns concerned: ${details.columns.join(", ")}` }));
          }
          if (Array.isArray(details?.expected) && details.expected.length) {
            error.append(el("details", {}, el("summary", { text: "Accepted columns" }),
              el("p", { class: "mono small", text: details.expected.join(", ") })));
          }
        } finally {
          submit.disabled = false;
          submit.textContent = "Upload and score";
        }
      });
      uploadSection = form;
    }

    // Recent jobs.
    let jobsPage = 1;
    const jobsTable = dataTable({
      id: "jobs",
      caption: "Recent bulk jobs, newest first",
      empty: "No bulk jobs yet.",
      rowAttrs: (j) => ({ "data-job-id": j.id, "data-status": j.status }),
      columns: [
        { label: "File", cell: (j) => j.file_name },
        { label: "Type", cell: (j) => humanize(j.prediction_type) },
        { label: "Status", cell: (j) => el("span", { class: `job-state state-${j.status}`, text: humanize(j.status) }) },
        { label: "Rows", numeric: true, cell: jobRows },
        { label: "Scored", numeric: true, cell: (j) => fmtInt(j.succeeded_rows) },
        { label: "Failed", numeric: true, cell: (j) => fmtInt(j.failed_rows) },
        { label: "Uploaded", cell: (j) => timeEl(j.created_at) },
        {
          label: "Actions",
          cell: (j) => el("div", { class: "row-actions" },
            FINISHED.has(j.status)
              ? [downloadLink("Results", `/bulk-jobs/${j.id}/results`, `${j.id}-results.csv`, { class: "download-results" }),
                downloadLink("Errors", `/bulk-jobs/${j.id}/errors`, `${j.id}-errors.csv`, { class: "download-errors" })]
              : el("button", { type: "button", class: "button small secondary follow-job", onclick: () => followJob(j) }, "Follow")),
        },
      ],
    });
    const jobsPager = pager("jobs-", (page) => {
      jobsPage = page;
      loadJobs();
    }, ["job", "jobs"]);

    function loadJobs() {
      return view.busy(async () => {
        const data = await api("GET", "/bulk-jobs", { signal: view.signal, query: { page: jobsPage, per_page: 20 } });
        jobsTable.render(data.items);
        jobsPager.update(data);
      });
    }

    view.mount(
      pageHead(view, "Bulk jobs", "Score many filings at once from a spreadsheet, and download the results."),
      uploadSection, panel,
      card("jobs-heading", "Recent jobs", jobsTable.element, jobsPager.element));
    await Promise.all([view.busy(loadOrganizations), loadJobs()]);
  }

  /* ----- Models ----- */

  const METRIC_LABELS = {
    model: "Model",
    roc_auc_mean: "ROC-AUC (mean)",
    roc_auc_sd: "ROC-AUC (sd)",
    roc_auc_pooled: "ROC-AUC (pooled)",
    pr_auc: "PR-AUC",
    brier: "Brier score",
    ks: "KS",
    lower: "PD from",
    upper: "PD to",
    count: "Companies",
    mean_predicted: "Mean predicted PD",
    observed_rate: "Observed default rate",
  };
  const metricLabel = (key) => METRIC_LABELS[key] || humanize(key);
  const isScalar = (v) => v === null || ["string", "number", "boolean"].includes(typeof v);

  /** A table of objects: one column per scalar key (nested values are left to the caller). */
  function objectsTable(rows, caption) {
    const keys = [...new Set(rows.flatMap((r) => Object.keys(r).filter((k) => isScalar(r[k]))))];
    const table = dataTable({
      caption,
      columns: keys.map((key) => ({
        label: metricLabel(key),
        numeric: rows.some((r) => isNumber(r[key])),
        cell: (r) => (isNumber(r[key]) ? fmtValue(r[key]) : String(r[key] ?? "—")),
      })),
    });
    table.render(rows);
    table.table.classList.add("compact");
    return table.element;
  }

  /** Text with its http(s) addresses as links (built as nodes: nothing is parsed as HTML). */
  function linkify(text) {
    const parts = String(text).split(/(https?:\/\/[^\s)]+)/g);
    return parts.map((part, i) => (i % 2 ? el("a", { href: part, rel: "noopener noreferrer", target: "_blank", text: part }) : part));
  }

  /** Any JSON value, readably: scalars as text, lists as lists, objects as definition lists. */
  function renderValue(value, depth = 0) {
    if (isNumber(value)) return fmtValue(value);
    if (isScalar(value)) return value === null ? "—" : linkify(String(value));
    if (Array.isArray(value)) {
      if (value.every(isScalar)) return value.map(String).join(", ");
      return el("ul", { class: "plain-list" }, value.map((v) => el("li", {}, renderValue(v, depth + 1))));
    }
    if (depth > 2) return el("code", { text: JSON.stringify(value) });
    return el("dl", { class: "kv" }, Object.entries(value).map(([k, v]) =>
      el("div", {}, el("dt", { text: humanize(k) }), el("dd", {}, renderValue(v, depth + 1)))));
  }

  function modelCard(model) {
    const card = model.card && typeof model.card === "object" ? model.card : {};
    const slug = model.id.replace(/[^a-z0-9]+/gi, "-");
    const section = (title, ...content) => el("div", { class: "card-section" }, el("h3", { text: title }), ...content);
    const metrics = Array.isArray(card.metrics) ? card.metrics : card.metrics && typeof card.metrics === "object" ? [card.metrics] : [];
    const nested = metrics.flatMap((m) => Object.entries(m)
      .filter(([, v]) => Array.isArray(v) && v.length && v.every((r) => r && typeof r === "object"))
      .map(([key, rows]) => el("details", {},
        el("summary", { text: `${metricLabel(key)} — ${m.model || model.id}` }),
        objectsTable(rows, `${humanize(key)} of ${m.model || model.id}`))));
    const data = card.data && typeof card.data === "object" ? card.data : null;
    const dataRest = data ? Object.fromEntries(Object.entries(data).filter(([k]) => k !== "citation" && k !== "license")) : {};
    const partners = Object.entries(model.term_structure || {});

    return el("section", { class: "card model-card", "data-model-id": model.id, "aria-labelledby": `model-${slug}` },
      el("h2", { id: `model-${slug}`, class: "mono", text: model.id }),
      el("p", { class: "model-title", text: card.title || model.description }),
      el("p", { class: "tags" },
        el("span", { class: "tag", text: humanize(model.prediction_type) }),
        el("span", { class: "tag", text: `${model.horizon_years}-year horizon` }),
        el("span", { class: "tag", text: humanize(model.kind) }),
        model.feature_set ? el("span", { class: "tag", text: `Features: ${model.feature_set}` }) : null),
      card.summary ? el("p", { class: "summary", text: card.summary }) : null,
      card.intended_use ? section("Intended use", el("p", { text: card.intended_use })) : null,
      section("Evaluation",
        metrics.length
          ? objectsTable(metrics, `Evaluation metrics of ${model.id}`)
          : el("p", { class: "muted", text: "No evaluation metrics are published for this model." }),
        nested,
        card.evaluation_protocol ? el("p", { class: "hint", text: card.evaluation_protocol }) : null),
      data ? section("Data",
        data.citation ? el("p", { class: "citation" }, el("strong", { text: "Citation: " }), linkify(data.citation)) : null,
        data.license ? el("p", {}, el("strong", { text: "License: " }), data.license) : null,
        Object.keys(dataRest).length ? el("details", {}, el("summary", { text: "Data details" }), renderValue(dataRest)) : null) : null,
      Array.isArray(card.limitations) && card.limitations.length
        ? section("Limitations", el("ul", { class: "limitations" }, card.limitations.map((l) => el("li", { text: l }))))
        : null,
      partners.length ? section("Term structure", el("p", { text: partners.map(([h, id]) => `${h}: ${id}`).join(" · ") })) : null,
      Array.isArray(model.features) && model.features.length
        ? el("details", {}, el("summary", { text: `Inputs (${model.features.length})` }),
          el("p", { class: "mono small", text: model.features.join(", ") }))
        : null,
      card.training && typeof card.training === "object"
        ? el("details", {}, el("summary", { text: "Training details" }), renderValue(card.training))
        : null);
  }

  async function modelsPage(view) {
    view.setTitle("Models");
    const list = el("div", { class: "model-list" });
    view.mount(
      pageHead(view, "Models", "The models this service scores with, and their model cards: purpose, data, measured "
        + "performance and limits."),
      list);
    const models = await api("GET", "/models", { signal: view.signal });
    list.replaceChildren(...models.map(modelCard));
    if (!models.length) list.append(el("p", { class: "empty-state", text: "No models are loaded." }));
  }

  /* ----- Admin ----- */

  async function adminPage(view) {
    view.setTitle("Administration");
    view.mount(view.h1("Administration"));
    if (!mayAdminister()) {
      view.mount(el("p", { class: "card empty-state", id: "admin-forbidden", text: "Your role does not administer users or organizations." }));
      return;
    }
    const viewer = state.me.user;
    const viewerRank = roleRank(viewer.role);
    const mayManageUsers = can("user:manage");
    /** Roles the viewer may give: never above their own, never super_admin (a CLI matter). */
    const assignable = ROLES.filter((r) => r !== "super_admin" && roleRank(r) >= viewerRank);
    const mayManage = (user) => mayManageUsers && user.id !== viewer.id && roleRank(user.role) >= viewerRank;

    const message = el("div", { id: "admin-message", class: "admin-message", role: "status", "aria-live": "polite" });
    const say = (text, kind = "info") => {
      message.textContent = text;
      message.dataset.kind = kind;
    };
    const fail = (error) => {
      if (isAbort(error)) return; // another tenant was chosen, or the page left
      if (!(error instanceof ApiError)) reportBug(error);
      say(describeError(error), "error");
    };

    let tenantId = viewer.tenant_id;
    let orgNames = new Map();

    // A super admin belongs to no tenant: they choose one.
    const tenantPicker = el("div");
    if (!tenantId) {
      const tenants = await apiAll("/tenants", { signal: view.signal, maxPages: 1 });
      tenantId = tenants[0]?.id;
      const select = el("select", { id: "admin-tenant" }, options(tenants.map((t) => [t.id, `${t.name} (${t.slug})`]), tenantId));
      select.addEventListener("change", () => {
        tenantId = select.value;
        loadAll();
      });
      tenantPicker.append(el("div", { class: "filters" }, field("Tenant", select)));
    }

    // Organizations.
    const orgTable = dataTable({
      id: "org-table",
      caption: "Organizations",
      empty: "No organizations.",
      rowAttrs: (o) => ({ "data-organization-id": o.id }),
      columns: [
        { label: "Name", cell: (o) => o.name },
        { label: "Description", cell: (o) => o.description || "—" },
        { label: "Active", cell: (o) => (o.is_active ? "Yes" : "No") },
        { label: "Created", cell: (o) => timeEl(o.created_at) },
      ],
    });
    let orgForm = null;
    if (can("org:create")) {
      const name = el("input", { id: "org-name", type: "text", required: true, maxlength: "200", autocomplete: "off" });
      const description = el("input", { id: "org-description", type: "text", maxlength: "2000", autocomplete: "off" });
      orgForm = el("form", { id: "org-form", class: "inline-form", "aria-labelledby": "org-form-heading", novalidate: true },
        el("h3", { id: "org-form-heading", text: "New organization" }),
        field("Name", name), field("Description (optional)", description),
        el("button", { type: "submit", id: "org-submit", class: "button primary" }, "Create organization"));
      orgForm.addEventListener("submit", async (event) => {
        event.preventDefault();
        if (!name.value.trim()) return say("Give the organization a name.", "error");
        try {
          const created = await api("POST", `/tenants/${tenantId}/organizations`, {
            json: { name: name.value.trim(), ...(description.value.trim() ? { description: description.value.trim() } : {}) },
          });
          orgForm.reset();
          say(`Organization ${created.name} created.`);
          await loadAll();
        } catch (error) {
          fail(error);
        }
      });
    }

    // Users.
    const userTable = dataTable({
      id: "user-table",
      caption: "Users",
      empty: "No users.",
      rowAttrs: (u) => ({ "data-user-id": u.id }),
      columns: [
        { label: "E-mail", cell: (u) => u.email },
        { label: "Name", cell: (u) => u.full_name || "—" },
        { label: "Role", cell: (u) => (mayManage(u) ? roleSelect(u) : humanize(u.role)) },
        { label: "Organization", cell: (u) => (u.organization_id ? orgNames.get(u.organization_id) || "—" : "Whole tenant") },
        { label: "Active", cell: (u) => (u.is_active ? "Yes" : "No") },
        { label: "Last sign-in", cell: (u) => (u.last_login_at ? timeEl(u.last_login_at) : "Never") },
        {
          label: "Actions",
          cell: (u) => (mayManage(u) ? activeToggle(u) : "—"),
        },
      ],
    });

    function roleSelect(user) {
      const select = el("select", { class: "role-select", "data-user-id": user.id, "aria-label": `Role of ${user.email}` },
        options(assignable.map((r) => [r, humanize(r)]), user.role));
      select.addEventListener("change", () => {
        updateUser(user, { role: select.value }, `${user.email} is now ${humanize(select.value)}.`)
          .then((ok) => { if (!ok) select.value = user.role; });
      });
      return select;
    }

    function activeToggle(user) {
      const done = `${user.email} ${user.is_active ? "deactivated" : "activated"}.`;
      return el("button", {
        type: "button", class: "button small secondary toggle-active", "data-user-id": user.id,
        onclick: () => updateUser(user, { is_active: !user.is_active }, done),
      }, user.is_active ? "Deactivate" : "Activate");
    }

    async function updateUser(user, changes, done) {
      try {
        await api("PATCH", `/users/${user.id}`, { json: changes });
        say(done);
        await loadUsers();
        return true;
      } catch (error) {
        fail(error);
        return false;
      }
    }

    let userForm = null;
    const userOrg = el("select", { id: "user-org" });
    if (mayManageUsers) {
      const email = el("input", { id: "user-email", type: "email", required: true, autocomplete: "off" });
      const fullName = el("input", { id: "user-name", type: "text", autocomplete: "off", maxlength: "200" });
      const role = el("select", { id: "user-role" },
        options(assignable.map((r) => [r, humanize(r)]), assignable.includes("user") ? "user" : assignable[0]));
      const password = el("input", { id: "user-password", type: "password", autocomplete: "new-password" });
      userForm = el("form", { id: "user-form", class: "inline-form", "aria-labelledby": "user-form-heading", novalidate: true },
        el("h3", { id: "user-form-heading", text: "New user" }),
        field("E-mail", email), field("Full name", fullName), field("Role", role), field("Organization", userOrg),
        field("Password (empty: generated, shown once)", password),
        el("button", { type: "submit", id: "user-submit", class: "button primary" }, "Create user"));
      userForm.addEventListener("submit", async (event) => {
        event.preventDefault();
        if (!email.value.trim()) return say("Enter the new user's e-mail address.", "error");
        const body = { email: email.value.trim(), full_name: fullName.value.trim(), role: role.value };
        if (userOrg.value) body.organization_id = userOrg.value;
        if (password.value) body.password = password.value;
        try {
          const created = await api("POST", `/tenants/${tenantId}/users`, { json: body });
          userForm.reset();
          say(created.initial_password
            ? `User ${created.user.email} created. Initial password (shown once): ${created.initial_password}`
            : `User ${created.user.email} created.`);
          await loadUsers();
        } catch (error) {
          fail(error);
        }
      });
    }

    const usersNote = el("p", { id: "users-note", class: "hint", hidden: true });

    /** Renders the users; the row control (role, activation) that had the focus gets it back once redrawn. */
    const renderUsers = (users) => {
      const focused = document.activeElement;
      const userId = userTable.table.contains(focused) ? focused.dataset.userId : undefined;
      const kind = focused?.classList.contains("role-select") ? "role-select" : "toggle-active";
      userTable.render(users);
      if (!userId) return;
      const control = userTable.table.querySelector(`.${kind}[data-user-id="${CSS.escape(userId)}"]`);
      (control || userTable.element).focus();
    };

    /**
     * Each load of a tenant's lists cancels the one before it, so that after a quick change of tenant an
     * older answer never shows; `tenantSignal` is the latest load's (the users' reloads follow it too).
     */
    const nextTenantSignal = supersedable(view.signal);
    let tenantSignal = view.signal;

    const loadOrganizations = async (tenant, signal) => {
      const organizations = await apiAll(`/tenants/${tenant}/organizations`, { signal, maxPages: 1 });
      signal.throwIfAborted();
      orgNames = new Map(organizations.map((o) => [o.id, o.name]));
      orgTable.render(organizations);
      // Organization roles need an organization; a tenant admin may also be tenant-wide.
      const choices = organizations.map((o) => [o.id, o.name]);
      if (roleRank(viewer.role) <= roleRank("tenant_admin")) choices.push(["", "— Whole tenant (tenant admins only) —"]);
      userOrg.replaceChildren(...options(choices, viewer.organization_id || organizations[0]?.id || ""));
    };
    const loadUsers = async (tenant = tenantId, signal = tenantSignal) => {
      const { items: users, total } = await apiPages(`/tenants/${tenant}/users`, { signal, maxPages: 2 });
      signal.throwIfAborted();
      renderUsers(users);
      // The list stops at 400 users: say so rather than hide the others silently.
      usersNote.hidden = users.length >= total;
      usersNote.textContent = usersNote.hidden ? "" : `Showing the first ${fmtInt(users.length)} of ${fmtInt(total)} users.`;
    };
    const loadAll = () => {
      const tenant = tenantId;
      const signal = nextTenantSignal();
      tenantSignal = signal;
      return view.busy(async () => {
        if (!tenant) throw new ApiError(404, "NOT_FOUND", "There is no tenant to administer.");
        await loadOrganizations(tenant, signal);
        await loadUsers(tenant, signal);
      });
    };

    view.mount(
      tenantPicker,
      message,
      card("orgs-heading", "Organizations", orgTable.element, orgForm),
      card("users-heading", "Users", userTable.element, usersNote, userForm));
    await loadAll();
  }

  /* ----- Unknown route ----- */

  function notFoundPage(view) {
    view.setTitle("Page not found");
    view.mount(view.h1("Page not found"),
      el("p", { class: "card empty-state" }, "There is no such page. ", el("a", { href: "#/portfolio", text: "Go to the portfolio" })));
  }

  /* -------------------------------------------------------------------------------------------------------
   * Start
   * ----------------------------------------------------------------------------------------------------- */

  async function boot() {
    document.getElementById("skip-link").addEventListener("click", (event) => {
      event.preventDefault();
      (activeView?.heading || mainEl).focus();
    });
    window.addEventListener("hashchange", route);
    if (Session.get() && await isCopiedTab()) {
      // The original tab keeps the session (it is not signed out); this copy signs in on its own.
      Session.clear();
      state.loginNotice = "This tab is a copy of another one. Sign in again to use it on its own.";
    }
    if (Session.get()) {
      restoreLive();
      try {
        await loadMe();
        startSession();
      } catch (error) {
        if (!(error instanceof ApiError)) reportBug(error);
        if (error instanceof ApiError && error.status !== 401) state.loginNotice = describeError(error);
      }
    }
    route();
  }

  boot().catch(reportBug);
})();
