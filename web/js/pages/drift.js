/*
 * The drift page (#/drift): is the population a model scores still the one it was built on? The population
 * stability index (PSI) of its PD and of each input over the last window of this tenant's predictions, against
 * the model's training sample and against the window before; the PD's distribution in the three; the PSIs
 * over time; and the drift alerts.
 */
import { el, fmtInt, fmtPct, fmtValue, FORMAT, isNumber, svg, timeEl } from "../dom.js";
import { api } from "../api.js";
import { card, dataTable, definitions, field, options, pageHead } from "../ui.js";
import { state } from "../state.js";
import { axes, frame, legend } from "./validation.js";

/** The usual reading of a PSI against the threshold. */
function reading(psi, threshold) {
  if (!isNumber(psi)) return { cls: "unmeasured", text: "not measured" };
  if (psi > threshold) return { cls: "drifted", text: "shifted" };
  if (psi > 0.1) return { cls: "watch", text: "watch" };
  return { cls: "stable", text: "stable" };
}

const psiCell = (psi, threshold) => {
  const r = reading(psi, threshold);
  return el("span", { class: `psi ${r.cls}` }, el("span", { class: "psi-value", text: isNumber(psi) ? FORMAT.decimal.format(psi) : "—" }),
    " ", el("span", { class: "psi-reading", text: r.text }));
};

/** The PD's share per bin in the training sample, the past window and the current one, side by side. */
function distributionChart(bins) {
  const groups = [["expected", "training sample"], ["past", "past window"], ["current", "current window"]].filter(([k]) => bins[k]);
  const n = bins.edges.length + 2;
  const top = Math.max(0.05, ...groups.flatMap(([k]) => bins[k]));
  const f = frame("drift-distribution", `PD distribution in ${n} bins: ${groups.map(([, label]) => label).join(", ")}.`, true);
  axes(f, "PD bin", "Share", () => "", (v) => FORMAT.tickPercent.format(v), top);
  const slot = 1 / n;
  const width = (slot * 0.8) / groups.length;
  const label = (i) => (i === n - 1 ? "missing" : i === 0 ? `< ${fmtPct(bins.edges[0])}` : i === n - 2 ? `≥ ${fmtPct(bins.edges[n - 3])}` : `${fmtPct(bins.edges[i - 1])}–`);
  // Every bin labelled where there is room (about 60 px a label), else every second or third.
  const every = Math.max(1, Math.ceil((n * 60) / (f.W - f.M.left - f.M.right)));
  for (let i = 0; i < n; i += 1) {
    groups.forEach(([key, name], g) => {
      const share = bins[key][i];
      const x0 = i * slot + slot * 0.1 + g * width;
      f.root.append(svg("rect", {
        class: `bar ${key}`, x: f.x(x0), y: f.y(share / top), width: Math.max(1, f.x(x0 + width) - f.x(x0)), height: f.y(0) - f.y(share / top),
      }, svg("title", { text: `${label(i)} ${name}: ${fmtPct(share)}` })));
    });
    if (i % every === 0) {
      f.root.append(svg("text", { x: f.x(i * slot + slot / 2), y: f.H - f.M.bottom + 16, class: "tick", "text-anchor": "middle", text: label(i) }));
    }
  }
  return f.root;
}

/** The PD's PSIs and the largest feature PSI per hour, with the threshold. */
function historyChart(history, threshold) {
  const series = [["pd_training", "curve pd-training"], ["pd_past", "curve pd-past"], ["features_max_training", "curve features-training"], ["features_max_past", "curve features-past"]];
  const values = history.flatMap((h) => series.map(([k]) => h[k]).filter(isNumber));
  const top = Math.max(threshold * 1.5, ...values);
  const f = frame("drift-history", `PSI over ${history.length} hours against the threshold ${threshold}.`, true);
  const n = history.length;
  const at = (i) => (n === 1 ? 0.5 : i / (n - 1));
  axes(f, "Hour", "PSI", () => "", (v) => v.toFixed(2), top);
  [0, n - 1].filter((i, k, all) => i >= 0 && all.indexOf(i) === k).forEach((i) => f.root.append(svg("text", {
    x: f.x(at(i)), y: f.H - f.M.bottom + 16, class: "tick", "text-anchor": n === 1 ? "middle" : i === 0 ? "start" : "end", text: FORMAT.date.format(new Date(history[i].hour)),
  })));
  f.root.append(svg("line", { class: "threshold", x1: f.x(0), x2: f.x(1), y1: f.y(threshold / top), y2: f.y(threshold / top) }));
  for (const [key, cls] of series) {
    const points = history.map((h, i) => [at(i), h[key]]).filter(([, v]) => isNumber(v));
    if (!points.length) continue;
    f.root.append(svg("polyline", { class: cls, points: points.map(([a, v]) => `${f.x(a).toFixed(1)},${f.y(v / top).toFixed(1)}`).join(" ") }));
    for (const [a, v] of points) f.root.append(svg("circle", { class: `point ${cls}`, cx: f.x(a), cy: f.y(v / top), r: 3 }));
  }
  return f.root;
}

function featureTable(series, threshold, labels) {
  const worst = (s) => Math.max(isNumber(s.psi_training) ? s.psi_training : -1, isNumber(s.psi_past) ? s.psi_past : -1);
  const table = dataTable({
    id: "drift-features", caption: "PSI of each series, largest first", stack: true,
    columns: [
      { label: "Series", cell: (s) => (s.name === "pd" ? el("strong", { text: "PD" })
        : el("span", {}, labels[s.name] || s.name, el("span", { class: "series-name", text: ` ${s.name}` }))) },
      { label: "Against the training sample", numeric: true, cell: (s) => psiCell(s.psi_training, threshold) },
      { label: "Against the past window", numeric: true, cell: (s) => psiCell(s.psi_past, threshold) },
    ],
    rowAttrs: (s) => ({ class: worst(s) > threshold ? "drifted-row" : "" }),
    empty: "No series measured yet.",
  });
  table.render([...series].sort((a, b) => worst(b) - worst(a)));
  return table.element;
}

function alertList(alerts) {
  if (!alerts.length) return el("p", { class: "empty-state", text: "No drift alert: every PSI measured is under the threshold." });
  return el("ul", { id: "drift-alerts", class: "drift-alerts" }, alerts.map((a) => el("li", { class: a.resolved_at ? "resolved" : "open" },
    el("strong", { text: a.resolved_at ? "Resolved" : "Open" }), ` · against the ${a.reference === "past" ? "past window" : "training sample"} · raised `,
    timeEl(a.raised_at), a.resolved_at ? [" · resolved ", timeEl(a.resolved_at)] : null,
    el("div", { class: "hint", text: a.series.slice(0, 6).map((s) => `${s.name === "pd" ? "PD" : s.name} ${s.psi.toFixed(2)}`).join(", ")
      + (a.series.length > 6 ? ` and ${a.series.length - 6} more` : "") }))));
}

function reportSections(report) {
  const latest = report.latest;
  if (!latest) {
    return [card("drift-summary-heading", "Not measured yet", el("p", { class: "empty-state",
      text: "No prediction of this tenant has been measured yet: the monitor measures the stored predictions every few minutes." }))];
  }
  const pd = latest.series.find((s) => s.name === "pd");
  const open = report.alerts.filter((a) => !a.resolved_at).length;
  const days = report.window_hours % 24 === 0 ? `${report.window_hours / 24} days` : `${report.window_hours} hours`;
  return [
    card("drift-summary-heading", `Drift of ${report.model}`, definitions([
      ["Measured", timeEl(latest.computed_at)],
      ["Window", `the last ${days} (${fmtInt(latest.current_rows)} predictions) against the ${days} before (${fmtInt(latest.past_rows)})`],
      ["PD against the training sample", psiCell(pd?.psi_training, report.threshold)],
      ["PD against the past window", psiCell(pd?.psi_past, report.threshold)],
      ["Open drift alerts", el("span", { id: "drift-open-alerts", text: fmtInt(open) })],
      ["Training sample", report.training_sample || "none to compare with: the model's own bins"],
    ], "summary-grid"),
    el("p", { class: "hint", text: `PSI = Σ (current share − reference share) · ln(current / reference) over the bins. Under 0.1 stable, 0.1–${report.threshold} worth watching, `
      + `above ${report.threshold} shifted: an alert. A window needs ${fmtInt(report.min_rows)} predictions to be measured.` })),
    card("drift-alerts-heading", "Drift alerts", alertList(report.alerts)),
    card("drift-distribution-heading", "PD distribution", pd?.bins ? distributionChart(pd.bins) : el("p", { class: "empty-state", text: "—" }),
      legend(["expected", "training sample"], ["past", "past window"], ["current", "current window"])),
    card("drift-history-heading", "PSI over time", historyChart(report.history, report.threshold),
      legend(["pd-training", "PD against training"], ["pd-past", "PD against the past window"], ["features-training", "largest feature PSI against training"],
        ["features-past", "largest feature PSI against the past window"], ["threshold", "alert threshold"])),
    card("drift-features-heading", "Inputs", featureTable(latest.series, report.threshold, report.labels)),
  ];
}

export async function driftPage(view) {
  view.setTitle("Drift");
  view.mount(pageHead(view, "Drift", "Is the population the model scores still the one it was built on? Each input and the PD, "
    + "against the training sample and against the window before."));
  if (!state.me?.user?.tenant_id) {
    view.mount(el("p", { class: "card empty-state", text: "Drift is measured per tenant: sign in with a tenant's account." }));
    return;
  }
  const results = el("div", { id: "drift-results" });
  const first = await api("GET", "/drift", { signal: view.signal });
  const modelSelect = el("select", { id: "drift-model" }, options(first.models.map((m) => [m, m]), first.model || ""));
  const form = el("form", { class: "filters card", "aria-label": "Drift settings" }, field("Model", modelSelect),
    el("button", { id: "drift-refresh", type: "submit", class: "button", text: "Refresh" }));
  view.mount(form, results);
  results.replaceChildren(...reportSections(first));
  view.listen(form, "submit", (event) => {
    event.preventDefault();
    view.clearError();
    view.busy(async () => {
      const query = modelSelect.value ? { model: modelSelect.value } : {};
      results.replaceChildren(...reportSections(await api("GET", "/drift", { query, signal: view.signal })));
    });
  });
}
