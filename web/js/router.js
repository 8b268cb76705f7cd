/*
 * The router and the page lifecycle: the page the location's hash names is shown with a view (its abort signal,
 * title, heading and focus, and main[data-ready] while its data loads). The pages are registered by app.js, so
 * that this module imports none of them.
 */
import { announce, APP_NAME, el, headerEl, isAbort, mainEl, supersedable } from "./dom.js";
import { ApiError } from "./api.js";
import { describeError, reportBug } from "./ui.js";
import { state } from "./state.js";

/** The pages, tried in order: [{ name, pattern, public?, render(view, ...params) }] (see registerRoutes). */
let routes = [];
/** The page of a hash that no route matches. */
let notFoundRoute = null;

/**
 * Sets the pages: each route's `pattern` is matched against the hash's path (without its query), its groups are
 * the page's parameters; a `public` page needs no signed-in user. `notFound` is shown when none matches.
 */
export function registerRoutes(list, notFound) {
  routes = list;
  notFoundRoute = notFound;
}

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
export function route() {
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

/** Focuses the page's heading (or main, while it has none): where the skip link leads. */
export function focusPage() {
  (activeView?.heading || mainEl).focus();
}
