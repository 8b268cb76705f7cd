/*
 * App state: the signed-in user and what they may do, the live alert stream of the session (one, whatever the
 * page) and what it has delivered, and the portfolio page's view, kept until the session ends.
 */
import { announce, isNumber } from "./dom.js";
import { api, ApiError, LIVE_KEY, Session } from "./api.js";
import { reportBug } from "./ui.js";
import { followEvents } from "./sse.js";

/** Roles, highest first (as the server orders them). */
export const ROLES = ["super_admin", "tenant_admin", "org_admin", "org_member", "user"];

export const state = {
  /** GET /auth/me: { user, session_id, permissions }. */
  me: null,
  permissions: new Set(),
  /** Where to go after signing in (the page that asked for it). */
  returnTo: null,
  /** A note for the sign-in page (e.g. "your session has ended"). */
  loginNotice: null,
};

export const can = (permission) => state.permissions.has(permission);
export const roleRank = (role) => ROLES.indexOf(role);
/** The admin page: user administration, or organization management. */
export const mayAdminister = () => can("user:read") && (can("user:manage") || can("org:manage") || can("org:create"));

/** The most live alerts kept (and shown on the alerts page). */
export const LIVE_MAX = 200;

/**
 * The live alert stream (one per session, whatever the page) and what it has delivered. `newest` is the
 * newest alert id the session knows of (null: not known yet, "": there was none when the session began);
 * alert ids are UUIDv7, so a larger id is a newer alert (the stored history is sorted by id).
 */
export const live = {
  alerts: [],
  count: 0,
  newest: null,
  controller: null,
  bus: new EventTarget(),
};

export function resetLive() {
  live.alerts = [];
  live.count = 0;
  live.newest = null;
}

function saveLive() {
  if (!Session.get()) return;
  sessionStorage.setItem(LIVE_KEY,
    JSON.stringify({ count: live.count, newest: live.newest, alerts: live.alerts.slice(0, 100) }));
}

export function restoreLive() {
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

export function setStreamState(stateName, detail) {
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
  const { items: recent } = await api("GET", "/alerts", { signal, query: { per_page: since === null ? 1 : 50 } });
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

export function startAlertStream() {
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
      else if (event.type === "drift") {
        const drift = JSON.parse(event.data);
        announce(`Drift alert: ${drift.model} has moved away from its ${drift.reference === "past" ? "past window" : "training sample"} (see Drift).`, "warning");
      } else if (event.type === "lagged") announce("Some live alerts were missed; the alert history has them all.");
    },
  }).catch(reportBug);
}

export function stopAlertStream() {
  live.controller?.abort();
  live.controller = null;
}

/** The signed-in user and their permissions. */
export async function loadMe() {
  const me = await api("GET", "/auth/me");
  state.me = me;
  state.permissions = new Set(me.permissions || []);
}

/** The portfolio page's view (search, filters, sort, page) when a session begins. */
export const PORTFOLIO_DEFAULTS = { q: "", risk: "", sector: "", sort: "symbol", page: 1, perPage: 25 };
/**
 * Kept across visits (until the session ends: session.js resets it), so going back to the portfolio shows the
 * same view.
 */
export const portfolioState = { ...PORTFOLIO_DEFAULTS };
