/*
 * Signing in and out, and the header of a signed-in session (navigation, live-alert counter and state, who is
 * signed in, "Sign out"). Above the router: ending a session shows the sign-in page.
 */
import { APP_NAME, el, headerEl } from "./dom.js";
import { API, authFetch, rawFetch, readEnvelope, Session } from "./api.js";
import { reportBug } from "./ui.js";
import {
  live, loadMe, mayAdminister, PORTFOLIO_DEFAULTS, portfolioState, resetLive, setStreamState, startAlertStream,
  state, stopAlertStream,
} from "./state.js";
import { route } from "./router.js";

export async function signIn(email, password) {
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
export function startSession() {
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
export function sessionLost(notice = "Please sign in.") {
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

/** The header of a signed-in user: the pages they may open, the live alerts' counter and state, who they are. */
function renderHeader() {
  const user = state.me.user;
  const links = [
    ["portfolio", "Portfolio"],
    ["alerts", "Alerts"],
    ["bulk", "Bulk jobs"],
    ["models", "Models"],
  ];
  if (state.me?.user?.tenant_id) links.push(["validation", "Validation"]);
  if (state.me?.user?.tenant_id && state.me.user.role === "tenant_admin") links.push(["drift", "Drift"]);
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
