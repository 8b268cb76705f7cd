/*
 * Error capture: anything unexpected is recorded in window.__pdErrors, where the browser tests look for it (they
 * assert that it stays empty). It imports nothing, and app.js imports it first, so that it runs before any other
 * module.
 */
window.__pdErrors = [];

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
