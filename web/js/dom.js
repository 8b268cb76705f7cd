/*
 * DOM and formatting helpers: elements built from props (el, svg), small utilities (debounce, sleep, abort
 * signals, ids), the number and date formats of the browser's locale, and the polite live region (#status) that
 * any module may write to. It imports nothing.
 */

export const APP_NAME = "PD Score";
const SVG_NS = "http://www.w3.org/2000/svg";

export const mainEl = document.getElementById("main");
export const headerEl = document.getElementById("app-header");
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
export function el(tag, props, ...children) {
  const node = document.createElement(tag);
  const deferred = applyProps(node, props);
  appendChildren(node, children);
  for (const [key, value] of deferred) node[key] = value;
  return node;
}

/** An SVG element. */
export function svg(tag, attrs, ...children) {
  const node = document.createElementNS(SVG_NS, tag);
  applyProps(node, attrs);
  return appendChildren(node, children);
}

export const isNumber = (v) => typeof v === "number" && Number.isFinite(v);
export const isAbort = (e) => e?.name === "AbortError";
export const debounce = (fn, ms) => {
  let timer = 0;
  return (...args) => {
    clearTimeout(timer);
    timer = setTimeout(() => fn(...args), ms);
  };
};
/** Resolves after `ms`, or rejects with an AbortError when `signal` aborts first. */
export const sleep = (ms, signal) =>
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
export const supersedable = (parent) => {
  let previous = null;
  return () => {
    previous?.abort();
    previous = new AbortController();
    return AbortSignal.any([parent, previous.signal]);
  };
};
/** A random id (crypto.randomUUID needs a secure context; getRandomValues does not). */
export const randomId = () => Array.from(crypto.getRandomValues(new Uint8Array(16)), (b) => b.toString(16).padStart(2, "0")).join("");
export const isUuid = (s) => /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i.test(s);

// Number and date formats (the browser's locale).
const numberFormat = (options) => new Intl.NumberFormat(undefined, options);
export const FORMAT = {
  percent: numberFormat({ style: "percent", minimumFractionDigits: 2, maximumFractionDigits: 2 }),
  tickPercent: numberFormat({ style: "percent", maximumSignificantDigits: 2 }),
  integer: numberFormat({ maximumFractionDigits: 0 }),
  decimal: numberFormat({ maximumFractionDigits: 4 }),
  compact: numberFormat({ notation: "compact", maximumFractionDigits: 1 }),
  signed: numberFormat({ signDisplay: "exceptZero", minimumFractionDigits: 2, maximumFractionDigits: 2 }),
  date: new Intl.DateTimeFormat(undefined, { dateStyle: "medium", timeStyle: "short" }),
};
export const fmtPct = (p) => (isNumber(p) ? FORMAT.percent.format(p) : "—");
export const fmtInt = (n) => (isNumber(n) ? FORMAT.integer.format(n) : "—");
export const fmtCompact = (n) => (isNumber(n) ? FORMAT.compact.format(n) : "—");
/** A model input or metric: grouped integers when large, up to four decimals otherwise. */
export const fmtValue = (v) => {
  if (!isNumber(v)) return v === null || v === undefined ? "—" : String(v);
  return Math.abs(v) >= 1000 ? FORMAT.integer.format(v) : FORMAT.decimal.format(v);
};
/** A PD move in percentage points, e.g. "+1.35 pp". */
export const fmtPp = (from, to) => (isNumber(from) && isNumber(to) ? `${FORMAT.signed.format((to - from) * 100)} pp` : "");
const fmtDate = (iso) => {
  const date = new Date(iso);
  return Number.isNaN(date.getTime()) ? "—" : FORMAT.date.format(date);
};
export const timeEl = (iso) => el("time", { datetime: iso, text: fmtDate(iso) });
/** "snake_case" → "Snake case". */
export const humanize = (s) => String(s ?? "").replace(/[_-]+/g, " ").replace(/^\w/, (c) => c.toUpperCase());
/** A quarter given as 3, "3" or "Q3" → 3; anything else → null. */
export const quarterNumber = (q) => {
  const n = typeof q === "number" ? q : parseInt(String(q ?? "").replace(/^Q/i, ""), 10);
  return n >= 1 && n <= 4 ? n : null;
};
export const fmtPeriod = (year, quarter) => {
  if (year === null || year === undefined) return "—";
  const q = quarterNumber(quarter);
  return q ? `${year} Q${q}` : String(year);
};

/** Writes to the polite live region (#status). */
export function announce(message, kind = "info") {
  statusEl.textContent = message;
  statusEl.dataset.kind = kind;
}
