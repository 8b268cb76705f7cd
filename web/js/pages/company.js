/*
 * A company's page (#/companies/<id>): its latest assessment, the PD history chart (inline SVG), the reason
 * codes, the inputs as scored and every prediction.
 */
import {
  el, fmtCompact, fmtInt, fmtPct, fmtPeriod, fmtValue, FORMAT, humanize, isNumber, isUuid, mainEl, quarterNumber,
  svg, timeEl,
} from "../dom.js";
import { api, apiAll, ApiError } from "../api.js";
import { card, dataTable, definitions, riskBadge } from "../ui.js";

export async function companyPage(view, id) {
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
