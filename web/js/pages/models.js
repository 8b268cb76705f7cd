/*
 * The models page (#/models): the models the service scores with, and their model cards.
 */
import { el, fmtValue, humanize, isNumber } from "../dom.js";
import { api } from "../api.js";
import { dataTable, pageHead } from "../ui.js";

const METRIC_LABELS = {
  model: "Model",
  roc_auc_mean: "ROC-AUC (mean)",
  roc_auc_sd: "ROC-AUC (sd)",
  roc_auc_pooled: "ROC-AUC (pooled)",
  pr_auc: "PR-AUC",
  brier: "Brier score",
  ks: "KS",
  lower: "PD from",
  upper: "PD to",
  count: "Companies",
  mean_predicted: "Mean predicted PD",
  observed_rate: "Observed default rate",
};
const metricLabel = (key) => METRIC_LABELS[key] || humanize(key);
const isScalar = (v) => v === null || ["string", "number", "boolean"].includes(typeof v);

/** A table of objects: one column per scalar key (nested values are left to the caller). */
function objectsTable(rows, caption) {
  const keys = [...new Set(rows.flatMap((r) => Object.keys(r).filter((k) => isScalar(r[k]))))];
  const table = dataTable({
    caption,
    columns: keys.map((key) => ({
      label: metricLabel(key),
      numeric: rows.some((r) => isNumber(r[key])),
      cell: (r) => (isNumber(r[key]) ? fmtValue(r[key]) : String(r[key] ?? "—")),
    })),
  });
  table.render(rows);
  table.table.classList.add("compact");
  return table.element;
}

/** Text with its http(s) addresses as links (built as nodes: nothing is parsed as HTML). */
function linkify(text) {
  const parts = String(text).split(/(https?:\/\/[^\s)]+)/g);
  return parts.map((part, i) => (i % 2 ? el("a", { href: part, rel: "noopener noreferrer", target: "_blank", text: part }) : part));
}

/** Any JSON value, readably: scalars as text, lists as lists, objects as definition lists. */
function renderValue(value, depth = 0) {
  if (isNumber(value)) return fmtValue(value);
  if (isScalar(value)) return value === null ? "—" : linkify(String(value));
  if (Array.isArray(value)) {
    if (value.every(isScalar)) return value.map(String).join(", ");
    return el("ul", { class: "plain-list" }, value.map((v) => el("li", {}, renderValue(v, depth + 1))));
  }
  if (depth > 2) return el("code", { text: JSON.stringify(value) });
  return el("dl", { class: "kv" }, Object.entries(value).map(([k, v]) =>
    el("div", {}, el("dt", { text: humanize(k) }), el("dd", {}, renderValue(v, depth + 1)))));
}

function modelCard(model) {
  const card = model.card && typeof model.card === "object" ? model.card : {};
  const slug = model.id.replace(/[^a-z0-9]+/gi, "-");
  const section = (title, ...content) => el("div", { class: "card-section" }, el("h3", { text: title }), ...content);
  const metrics = Array.isArray(card.metrics) ? card.metrics : card.metrics && typeof card.metrics === "object" ? [card.metrics] : [];
  const nested = metrics.flatMap((m) => Object.entries(m)
    .filter(([, v]) => Array.isArray(v) && v.length && v.every((r) => r && typeof r === "object"))
    .map(([key, rows]) => el("details", {},
      el("summary", { text: `${metricLabel(key)} — ${m.model || model.id}` }),
      objectsTable(rows, `${humanize(key)} of ${m.model || model.id}`))));
  const data = card.data && typeof card.data === "object" ? card.data : null;
  const dataRest = data ? Object.fromEntries(Object.entries(data).filter(([k]) => k !== "citation" && k !== "license")) : {};
  const partners = Object.entries(model.term_structure || {});

  return el("section", { class: "card model-card", "data-model-id": model.id, "aria-labelledby": `model-${slug}` },
    el("h2", { id: `model-${slug}`, class: "mono", text: model.id }),
    el("p", { class: "model-title", text: card.title || model.description }),
    el("p", { class: "tags" },
      el("span", { class: "tag", text: humanize(model.prediction_type) }),
      el("span", { class: "tag", text: `${model.horizon_years}-year horizon` }),
      el("span", { class: "tag", text: humanize(model.kind) }),
      model.feature_set ? el("span", { class: "tag", text: `Features: ${model.feature_set}` }) : null),
    card.summary ? el("p", { class: "summary", text: card.summary }) : null,
    card.intended_use ? section("Intended use", el("p", { text: card.intended_use })) : null,
    section("Evaluation",
      metrics.length
        ? objectsTable(metrics, `Evaluation metrics of ${model.id}`)
        : el("p", { class: "muted", text: "No evaluation metrics are published for this model." }),
      nested,
      card.evaluation_protocol ? el("p", { class: "hint", text: card.evaluation_protocol }) : null),
    data ? section("Data",
      data.citation ? el("p", { class: "citation" }, el("strong", { text: "Citation: " }), linkify(data.citation)) : null,
      data.license ? el("p", {}, el("strong", { text: "License: " }), data.license) : null,
      Object.keys(dataRest).length ? el("details", {}, el("summary", { text: "Data details" }), renderValue(dataRest)) : null) : null,
    Array.isArray(card.limitations) && card.limitations.length
      ? section("Limitations", el("ul", { class: "limitations" }, card.limitations.map((l) => el("li", { text: l }))))
      : null,
    partners.length ? section("Term structure", el("p", { text: partners.map(([h, id]) => `${h}: ${id}`).join(" · ") })) : null,
    Array.isArray(model.features) && model.features.length
      ? el("details", {}, el("summary", { text: `Inputs (${model.features.length})` }),
        el("p", { class: "mono small", text: model.features.join(", ") }))
      : null,
    card.training && typeof card.training === "object"
      ? el("details", {}, el("summary", { text: "Training details" }), renderValue(card.training))
      : null);
}

export async function modelsPage(view) {
  view.setTitle("Models");
  const list = el("div", { class: "model-list" });
  view.mount(
    pageHead(view, "Models", "The models this service scores with, and their model cards: purpose, data, measured "
      + "performance and limits."),
    list);
  const models = await api("GET", "/models", { signal: view.signal });
  list.replaceChildren(...models.map(modelCard));
  if (!models.length) list.append(el("p", { class: "empty-state", text: "No models are loaded." }));
}
