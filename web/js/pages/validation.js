/*
 * The validation page (#/validation): does the model still work on this tenant's portfolio? A back-test of a
 * model version against the recorded credit events (discrimination, calibration, the grade tests, rating
 * migrations, the PD distribution over time), and champion against challenger on the same filings.
 */
import { el, fmtInt, fmtPct, fmtValue, FORMAT, humanize, isNumber, mainEl, svg } from "../dom.js";
import { api } from "../api.js";
import { card, dataTable, definitions, field, options, pageHead } from "../ui.js";
import { state } from "../state.js";

/** A plot area: 4:3 for the side-by-side charts, wide and low for a chart over time. */
export function frame(id, label, wide = false) {
  const W = Math.round(Math.min(wide ? 960 : 520, Math.max(300, mainEl.clientWidth - 64)));
  const H = Math.round(W * (wide ? (W < 560 ? 0.6 : 0.35) : 0.75));
  const M = { left: 56, right: 14, top: 12, bottom: 42 };
  const root = svg("svg", { id, class: "pd-chart validation-chart", viewBox: `0 0 ${W} ${H}`, role: "img", "aria-label": label });
  return { root, W, H, M, x: (v) => M.left + v * (W - M.left - M.right), y: (v) => H - M.bottom - v * (H - M.top - M.bottom) };
}

/** Gridlines at 0, 0.25, …, 1 on both axes, labelled with `fmt`, and the axis titles. */
export function axes(f, xTitle, yTitle, fmtX, fmtY, yMax = 1, xMax = 1) {
  const grid = svg("g", { class: "grid", "aria-hidden": "true" });
  for (const t of [0, 0.25, 0.5, 0.75, 1]) {
    grid.append(
      svg("line", { x1: f.x(0), x2: f.x(1), y1: f.y(t), y2: f.y(t), class: "gridline" }),
      svg("text", { x: f.M.left - 6, y: f.y(t), class: "tick", "text-anchor": "end", "dominant-baseline": "middle", text: fmtY(t * yMax) }),
      svg("line", { x1: f.x(t), x2: f.x(t), y1: f.y(0), y2: f.y(1), class: "gridline vertical" }),
      svg("text", { x: f.x(t), y: f.H - f.M.bottom + 16, class: "tick", "text-anchor": "middle", text: fmtX(t * xMax) }));
  }
  const middle = (f.M.top + f.H - f.M.bottom) / 2;
  grid.append(
    svg("line", { x1: f.x(0), x2: f.x(1), y1: f.y(0), y2: f.y(0), class: "axis" }),
    svg("text", { x: 12, y: middle, class: "axis-label", "text-anchor": "middle", transform: `rotate(-90 12 ${middle})`, text: yTitle }),
    svg("text", { x: (f.M.left + f.W - f.M.right) / 2, y: f.H - 4, class: "axis-label", "text-anchor": "middle", text: xTitle }));
  f.root.append(grid);
}

const share = (v) => FORMAT.tickPercent.format(v);

function rocChart(measures) {
  const points = measures.roc_curve || [];
  const f = frame("roc-chart", `ROC curve: area ${fmtValue(measures.roc_auc)} over ${fmtInt(measures.observations)} observations.`);
  axes(f, "False-positive rate", "True-positive rate", share, share);
  f.root.append(
    svg("line", { x1: f.x(0), y1: f.y(0), x2: f.x(1), y2: f.y(1), class: "diagonal" }),
    svg("polyline", { class: "curve", points: points.map(([a, b]) => `${f.x(a).toFixed(1)},${f.y(b).toFixed(1)}`).join(" ") }));
  return f.root;
}

/** Mean PD against the default rate per decile; both axes up to the largest of either (the diagonal is perfect calibration). */
function reliabilityChart(bins) {
  const top = Math.max(0.01, ...bins.flatMap((b) => [b.mean_pd, b.default_rate]));
  const f = frame("reliability-chart", `Reliability: ${bins.length} PD deciles, mean PD against default rate.`);
  axes(f, "Mean PD", "Default rate", share, share, top, top);
  f.root.append(svg("line", { x1: f.x(0), y1: f.y(0), x2: f.x(1), y2: f.y(1), class: "diagonal" }));
  for (const bin of bins) {
    f.root.append(svg("circle", {
      class: "point bin", cx: f.x(bin.mean_pd / top), cy: f.y(bin.default_rate / top), r: 3 + Math.min(6, Math.sqrt(bin.observations) / 3),
    }, svg("title", { text: `${fmtInt(bin.observations)} obligors: mean PD ${fmtPct(bin.mean_pd)}, default rate ${fmtPct(bin.default_rate)}` })));
  }
  return f.root;
}

/** The PD distribution per period: the 10th–90th percentile band, the median and the mean, and the default rate. */
function periodChart(periods) {
  const top = Math.max(0.01, ...periods.flatMap((p) => [p.p90, p.complete ? p.defaults / p.complete : 0]));
  const f = frame("period-chart", `PD distribution over ${periods.length} periods.`, true);
  const n = periods.length;
  const at = (i) => (n === 1 ? 0.5 : i / (n - 1));
  axes(f, "Reporting period", "PD", () => "", share, top);
  periods.forEach((p, i) => f.root.append(svg("text", { x: f.x(at(i)), y: f.H - f.M.bottom + 30, class: "tick", "text-anchor": "middle", text: p.period })));
  const line = (key, cls) => svg("polyline", { class: cls, points: periods.map((p, i) => `${f.x(at(i)).toFixed(1)},${f.y(p[key] / top).toFixed(1)}`).join(" ") });
  const band = [...periods.map((p, i) => [at(i), p.p90]), ...periods.map((p, i) => [at(i), p.p10]).reverse()];
  f.root.append(
    svg("polygon", { class: "band", points: band.map(([a, v]) => `${f.x(a).toFixed(1)},${f.y(v / top).toFixed(1)}`).join(" ") }),
    line("p50", "curve"), line("mean_pd", "curve mean"));
  periods.forEach((p, i) => {
    if (!p.complete) return;
    const rate = p.defaults / p.complete;
    f.root.append(svg("circle", { class: "point default-rate", cx: f.x(at(i)), cy: f.y(rate / top), r: 4 },
      svg("title", { text: `${p.period}: ${fmtInt(p.defaults)} defaults of ${fmtInt(p.complete)} (${fmtPct(rate)})` })));
  });
  return f.root;
}

export const legend = (...items) => el("p", { class: "chart-legend" }, items.map(([cls, text]) => el("span", { class: `key ${cls}` }, text)));

function gradeTable(grades) {
  const flagged = (p) => (isNumber(p) && p < 0.05 ? el("strong", { class: "flag", text: fmtValue(p) }) : fmtValue(p));
  const table = dataTable({
    id: "grade-tests", caption: "Default rates and PD tests per implied rating grade",
    columns: [
      { label: "Grade", cell: (g) => g.grade },
      { label: "Obligors", numeric: true, cell: (g) => fmtInt(g.obligors) },
      { label: "Defaults", numeric: true, cell: (g) => fmtInt(g.defaults) },
      { label: "Mean PD", numeric: true, cell: (g) => fmtPct(g.mean_pd) },
      { label: "Default rate", numeric: true, cell: (g) => fmtPct(g.default_rate) },
      { label: "Jeffreys p", numeric: true, cell: (g) => flagged(g.jeffreys_p_value) },
      { label: "Binomial p", numeric: true, cell: (g) => flagged(g.binomial_p_value) },
    ],
    empty: "No observation has run its course yet.",
  });
  table.render(grades);
  return table.element;
}

/** A cross-table: rows `from`, columns `to`, counts; the diagonal is marked. */
function matrix(id, caption, from, to, counts) {
  const table = el("table", { id, class: "data-table matrix" },
    el("caption", { class: "visually-hidden", text: caption }),
    el("thead", {}, el("tr", {}, el("th", { scope: "col", text: "From \\ to" }), to.map((t) => el("th", { scope: "col", class: "num", text: t })))),
    el("tbody", {}, from.map((f, i) => el("tr", {}, el("th", { scope: "row", text: f }),
      to.map((t, j) => el("td", { class: `num${f === t ? " diagonal-cell" : ""}${counts[i][j] ? "" : " zero"}`, text: fmtInt(counts[i][j]) }))))));
  return el("div", { class: "table-scroll", role: "region", "aria-label": caption, tabindex: "0" }, table);
}

function backtestSection(report) {
  const m = report.measures;
  const excluded = report.excluded;
  const figures = definitions([
    ["Observations", el("span", { id: "bt-observations", text: fmtInt(m.observations) })],
    ["Defaults", `${fmtInt(m.defaults)} (${fmtPct(m.default_rate)})`],
    ["Mean PD", fmtPct(m.mean_pd)],
    ["ROC-AUC", el("span", { id: "bt-auc", text: fmtValue(m.roc_auc) })],
    ["Accuracy ratio", fmtValue(m.accuracy_ratio)],
    ["Brier score", fmtValue(m.brier)],
    ["KS", fmtValue(m.ks)],
    ["Left out", `${fmtInt(excluded.incomplete)} with the horizon still open, ${fmtInt(excluded.defaulted_before)} in default already, ${fmtInt(excluded.without_pd)} without a PD at the horizon`],
  ], "summary-grid");
  const charts = m.observations && isNumber(m.roc_auc)
    ? el("div", { class: "chart-grid" },
      el("figure", {}, rocChart(m), el("figcaption", { text: "ROC curve (the diagonal is a coin toss)" })),
      el("figure", {}, reliabilityChart(m.calibration), el("figcaption", { text: "Reliability by PD decile (the diagonal is perfect calibration)" })))
    : el("p", { class: "empty-state", text: "Discrimination needs defaults and survivors among the observations whose horizon has run its course." });
  const migrations = report.migrations;
  return [
    card("backtest-heading", `Back-test of ${report.model}, ${report.horizon_years}-year horizon`, figures, charts,
      el("p", { class: "hint", text: "Observations are statements anchored at their period end; a company defaulted when its first "
        + "recorded credit event after the period end falls within the horizon." })),
    card("grades-heading", "Grades: PD against realised default rate", gradeTable(m.grades),
      el("p", { class: "hint", text: "Small p-values (in bold, under 5 %) say the grade's PD is too low for the defaults seen." })),
    card("periods-heading", "PD distribution over time",
      report.by_period.length ? periodChart(report.by_period) : el("p", { class: "empty-state", text: "No prediction in the window." }),
      legend(["band", "10th–90th percentile"], ["curve", "median"], ["mean", "mean"], ["default-rate", "default rate"])),
    card("migrations-heading", "Rating migrations between consecutive periods",
      matrix("migration-matrix", "Rating migrations between a company's consecutive periods", migrations.from, migrations.to, migrations.counts)),
  ];
}

function comparisonSection(c) {
  const a = c.agreement;
  const side = c.backtest;
  const row = (label, key, fmt = fmtValue) => ({ label, model: fmt(side.model[key]), challenger: fmt(side.challenger[key]) });
  const table = dataTable({
    id: "side-by-side", caption: "Champion and challenger back-tested on the same observations",
    columns: [
      { label: "Measure", cell: (r) => r.label },
      { label: c.model, numeric: true, cell: (r) => r.model },
      { label: c.challenger, numeric: true, cell: (r) => r.challenger },
    ],
  });
  table.render([row("Observations", "observations", fmtInt), row("Defaults", "defaults", fmtInt), row("ROC-AUC", "roc_auc"),
    row("Accuracy ratio", "accuracy_ratio"), row("Brier score", "brier"), row("KS", "ks"), row("Mean PD", "mean_pd", fmtPct)]);
  const levels = ["low", "medium", "high", "critical"].map(humanize);
  return card("comparison-heading", `Champion ${c.model} against challenger ${c.challenger}`,
    definitions([
      ["Filings scored by both", el("span", { id: "cmp-filings", text: fmtInt(a.filings) })],
      ["Same risk level", fmtPct(a.level_agreement)],
      ["Same implied rating", fmtPct(a.rating_agreement)],
      ["Within one grade", fmtPct(a.within_one_grade)],
      ["Challenger rates better / worse", `${fmtInt(a.upgrades)} / ${fmtInt(a.downgrades)}`],
      ["PD difference (challenger − champion)", a.pd_delta
        ? `mean ${FORMAT.signed.format(a.pd_delta.mean * 100)} pp, median ${FORMAT.signed.format(a.pd_delta.p50 * 100)} pp`
        : "—"],
    ], "summary-grid"),
    el("div", { class: "two-columns" },
      el("div", {}, el("h3", { text: "Risk levels (champion in rows)" }), matrix("level-matrix", "Risk levels: champion against challenger", levels, levels, a.levels)),
      el("div", {}, el("h3", { text: "Back-tested on the same observations" }), table.element)));
}

export async function validationPage(view) {
  view.setTitle("Validation");
  const tenantId = state.me?.user?.tenant_id;
  view.mount(pageHead(view, "Validation", "Does the model still work on this portfolio? Its PDs scored against the credit events "
    + "recorded since, and the challenger beside it."));
  if (!tenantId) {
    view.mount(el("p", { class: "card empty-state", text: "Validation reads one tenant's portfolio: sign in with a tenant's account." }));
    return;
  }
  const [settings, models] = await Promise.all([
    api("GET", `/tenants/${tenantId}/models`, { signal: view.signal }),
    api("GET", "/models", { signal: view.signal }),
  ]);
  const annual = settings.find((s) => s.prediction_type === "annual") || settings[0];
  const candidates = models.filter((m) => m.prediction_type === annual.prediction_type && m.horizon_years === 1).map((m) => m.id);
  const modelSelect = el("select", { id: "bt-model" }, options(candidates.map((id) => [id, id === annual.model ? `${id} (answering)` : id === annual.challenger ? `${id} (challenger)` : id]), annual.model));
  const horizon = el("select", { id: "bt-horizon" }, options([1, 2, 3, 4, 5].map((h) => [String(h), `${h} year${h > 1 ? "s" : ""}`]), "1"));
  const from = el("input", { id: "bt-from", type: "date" });
  const to = el("input", { id: "bt-to", type: "date" });
  const run = el("button", { id: "bt-run", type: "submit", class: "button", text: "Run the back-test" });
  const results = el("div", { id: "validation-results" });
  const form = el("form", { class: "filters card", "aria-label": "Back-test settings" },
    field("Model", modelSelect), field("Horizon", horizon), field("Period ends from", from), field("to", to), run);
  view.mount(form, results);

  const load = async () => {
    const query = { type: annual.prediction_type, model: modelSelect.value, horizon: horizon.value };
    if (from.value) query.from = from.value;
    if (to.value) query.to = to.value;
    const backtest = api("GET", "/backtests", { query, signal: view.signal });
    const comparison = annual.challenger
      ? api("GET", "/comparisons", { query: { ...query, model: annual.model, challenger: annual.challenger }, signal: view.signal })
      : null;
    const [report, compared] = await Promise.all([backtest, comparison]);
    results.replaceChildren(...backtestSection(report), compared ? comparisonSection(compared)
      : card("comparison-heading", "Champion and challenger", el("p", { class: "empty-state", text: "The tenant runs no challenger: a tenant admin sets one (PUT /tenants/{id}/models/{type})." })));
  };
  view.listen(form, "submit", (event) => {
    event.preventDefault();
    view.clearError();
    view.busy(load);
  });
  await load();
}
