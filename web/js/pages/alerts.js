/*
 * The alerts page (#/alerts): the session's live alerts as they arrive, and the stored history by company.
 */
import { debounce, el, fmtPct, fmtPeriod, fmtPp, humanize, supersedable, timeEl } from "../dom.js";
import { api } from "../api.js";
import { card, companyLink, dataTable, field, options, pageHead, riskBadge } from "../ui.js";
import { live, LIVE_MAX } from "../state.js";

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

export async function alertsPage(view) {
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
  // Where the next "Load more" starts (the answer's next_cursor; null when there is nothing older).
  let nextCursor = null;
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
      const cursor = appending ? nextCursor : undefined;
      const page = await api("GET", "/alerts", { signal, query: { company_id: companyId, cursor, per_page: LIMIT } });
      signal.throwIfAborted();
      rows = appending ? rows.concat(page.items) : page.items;
      nextCursor = page.next_cursor;
      rowsCompany = companyId;
      table.render(rows);
      more.disabled = !nextCursor;
      more.textContent = nextCursor ? "Load more" : "No older alerts";
    });
  };

  const searchCompanies = debounce(loadCompanies, 300);
  companySearch.addEventListener("input", searchCompanies);
  companySearch.addEventListener("change", searchCompanies);
  companySelect.addEventListener("change", () => loadHistory(true));
  more.addEventListener("click", () => loadHistory(false));
  await Promise.all([loadCompanies(), loadHistory(true)]);
}
