/*
 * PD Score — the analysts' dashboard: the entry point.
 *
 * Plain ES modules, no build step and no dependencies: the service embeds them in its binary and serves them at
 * /app/ under a strict Content-Security-Policy (no inline code or styles, connections to this origin only).
 *
 * The modules, under js/; each imports only modules listed above it, so that there is no import cycle:
 *   errors.js      error capture (the browser tests assert that window.__pdErrors stays empty): imported first
 *   dom.js         DOM and formatting helpers, and the polite live region (#status)
 *   api.js         session storage, the API client (bearer token, one refresh on 401, 429 back-off) and downloads
 *   ui.js          shared UI pieces: badges, tables, pagers, form fields
 *   sse.js         Server-Sent Events over fetch (EventSource cannot send the Authorization header)
 *   state.js       app state: the signed-in user, permissions, the live alert stream
 *   router.js      the router and the page lifecycle (title, focus, data-ready)
 *   session.js     signing in and out, and the header of a signed-in session
 *   pages/*.js     the pages: sign-in, portfolio, company, alerts, bulk jobs, models, validation, drift, admin, and
 *                  "not found"
 * This module, above them all, registers the pages with the router, tells the API client what a lost session
 * leads to, and starts the app.
 *
 * Every piece of API data reaches the page through textContent or attributes, never through innerHTML.
 */
import "./js/errors.js";
import { ApiError, isCopiedTab, onSessionLost, Session } from "./js/api.js";
import { describeError, reportBug } from "./js/ui.js";
import { loadMe, restoreLive, state } from "./js/state.js";
import { focusPage, registerRoutes, route } from "./js/router.js";
import { sessionLost, startSession } from "./js/session.js";
import { loginPage } from "./js/pages/login.js";
import { portfolioPage } from "./js/pages/portfolio.js";
import { companyPage } from "./js/pages/company.js";
import { alertsPage } from "./js/pages/alerts.js";
import { bulkPage } from "./js/pages/bulk.js";
import { modelsPage } from "./js/pages/models.js";
import { validationPage } from "./js/pages/validation.js";
import { driftPage } from "./js/pages/drift.js";
import { adminPage } from "./js/pages/admin.js";
import { notFoundPage } from "./js/pages/not-found.js";

registerRoutes([
  { name: "login", pattern: /^\/login$/, public: true, render: loginPage },
  { name: "portfolio", pattern: /^\/portfolio$/, render: portfolioPage },
  { name: "company", pattern: /^\/companies\/([^/?]+)$/, render: companyPage },
  { name: "alerts", pattern: /^\/alerts$/, render: alertsPage },
  { name: "bulk", pattern: /^\/bulk$/, render: bulkPage },
  { name: "models", pattern: /^\/models$/, render: modelsPage },
  { name: "validation", pattern: /^\/validation$/, render: validationPage },
  { name: "drift", pattern: /^\/drift$/, render: driftPage },
  { name: "admin", pattern: /^\/admin$/, render: adminPage },
], { name: "not-found", render: notFoundPage });

// A session the server refuses, and that cannot be renewed, leads back to the sign-in page.
onSessionLost(sessionLost);

async function boot() {
  document.getElementById("skip-link").addEventListener("click", (event) => {
    event.preventDefault();
    focusPage();
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
