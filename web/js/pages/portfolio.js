/*
 * The portfolio page (#/portfolio): every company the user may see with its latest PD, searched, filtered,
 * sorted and paged (the view is kept in state.js until the session ends).
 */
import { debounce, el, fmtCompact, fmtPct, fmtPeriod, humanize } from "../dom.js";
import { api } from "../api.js";
import { companyLink, dataTable, field, options, pageHead, pager, riskBadge, trendMark } from "../ui.js";
import { portfolioState } from "../state.js";

const RISK_LEVELS = ["low", "medium", "high", "critical"];
/** Sorts whose first click is descending (the riskiest, the largest first). */
const DESCENDING_FIRST = new Set(["probability", "market_cap"]);

export function portfolioPage(view) {
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
