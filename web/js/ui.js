/*
 * Shared UI pieces: bug reports and error messages, risk badges and trend marks, company links, form fields,
 * tables, pagers, download links, page headings, cards and definition lists.
 */
import { announce, el, fmtInt, humanize, isAbort } from "./dom.js";
import { API, ApiError, download } from "./api.js";

/** A programming error: recorded for the tests, and the user gets a generic message. */
export function reportBug(error) {
  if (isAbort(error)) return;
  window.__pdErrors.push(`bug: ${error?.stack || error}`);
}

/** What to tell people about a failure. */
export function describeError(error) {
  if (!(error instanceof ApiError)) return "Something went wrong on this page. Reload it to try again.";
  return error.message;
}

/** A risk level badge: coloured, and always with its name. */
export function riskBadge(level) {
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
export function trendMark(trend) {
  const name = TREND[trend] ? trend : "none";
  const { symbol, label } = TREND[name];
  return el("span", { class: `trend trend-${name}`, role: "img", "aria-label": label, title: label, text: symbol });
}

export const companyLink = (id, symbol) => el("a", { class: "company-link", href: `#/companies/${id}`, text: symbol });

/** A labelled form control. */
export const field = (label, control) => el("div", { class: "field" }, el("label", { for: control.id, text: label }), control);

export const options = (pairs, selected) =>
  pairs.map(([value, label]) => el("option", { value, text: label, selected: value === selected }));

/**
 * A table in a horizontally scrollable region.
 *   columns: [{ label, cell(row) → Node|string, sort?: key, numeric?: bool }]
 *   rowAttrs(row) → attributes of the row; onSort(key) makes the `sort` columns' headers buttons.
 *   stack: on phones, each row becomes a card of "label: value" lines (the sort buttons stay above).
 * Returns { element, table, render(rows), setSort(sort) } where sort is "key" or "-key".
 */
export function dataTable({ id, caption, columns, rowAttrs, onSort, stack = false, empty = "Nothing to show." }) {
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
export function pager(prefix, onPage, noun = ["item", "items"]) {
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
export function downloadLink(label, path, fileName, props = {}) {
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
export const pageHead = (view, title, lede) =>
  el("div", { class: "page-head" }, view.h1(title), lede ? el("p", { class: "lede", text: lede }) : null);

/** A card with a titled section (`id` names its heading, which labels the section). */
export const card = (id, title, ...content) =>
  el("section", { class: "card", "aria-labelledby": id }, el("h2", { id, text: title }), ...content);

/** A definition list from [term, description] pairs (descriptions may be nodes). */
export const definitions = (pairs, className) =>
  el("dl", { class: className }, pairs.map(([term, description]) =>
    el("div", {}, el("dt", { text: term }), el("dd", {}, description))));
