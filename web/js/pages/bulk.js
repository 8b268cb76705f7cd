/*
 * The bulk jobs page (#/bulk): uploading a file to score, following a job's progress live, and downloading its
 * results and failed rows.
 */
import { announce, el, fmtInt, humanize, isAbort, isNumber, timeEl } from "../dom.js";
import { api, apiAll, ApiError, Session } from "../api.js";
import { card, dataTable, describeError, downloadLink, field, options, pageHead, pager, reportBug } from "../ui.js";
import { followEvents, STOP } from "../sse.js";
import { can } from "../state.js";

const FINISHED = new Set(["completed", "failed", "cancelled"]);
const jobPercent = (job) => (isNumber(job.progress_percent) ? job.progress_percent : 0);
const jobRows = (job) => `${fmtInt(job.processed_rows)} / ${isNumber(job.total_rows) ? fmtInt(job.total_rows) : "?"} rows`;
const jobStatusText = (job) => [
  humanize(job.status),
  jobRows(job),
  job.failed_rows > 0 ? `${fmtInt(job.failed_rows)} failed` : null,
  job.error_message,
].filter(Boolean).join(" · ");

export async function bulkPage(view) {
  view.setTitle("Bulk jobs");
  const mayUpload = can("prediction:manage");
  const session = Session.get();

  // The job being followed: its progress, status and (once finished) its downloads.
  const progress = el("progress", { id: "job-progress", max: "100", value: "0" });
  const status = el("span", { id: "job-status", class: "job-status" });
  const jobTitle = el("h2", { id: "job-title", text: "Job" });
  const jobActions = el("div", { class: "actions job-actions" });
  const panel = el("section", { id: "job-panel", class: "card job-panel", hidden: true, "aria-labelledby": "job-title" },
    jobTitle, el("div", { class: "field" }, el("label", { for: "job-progress", text: "Progress" }), progress),
    el("p", { "aria-live": "polite" }, status), jobActions);
  let following = null;

  function showJob(job) {
    panel.hidden = false;
    jobTitle.textContent = `Job: ${job.file_name}`;
    progress.value = jobPercent(job);
    progress.textContent = `${jobPercent(job)} %`;
    status.textContent = jobStatusText(job);
    const actions = [];
    if (FINISHED.has(job.status)) {
      actions.push(
        downloadLink("Download results (CSV)", `/bulk-jobs/${job.id}/results`, `${job.id}-results.csv`,
          { id: "results-link", class: "button primary" }),
        downloadLink(`Download failed rows (${fmtInt(job.failed_rows)})`, `/bulk-jobs/${job.id}/errors`, `${job.id}-errors.csv`,
          { id: "errors-link", class: "button secondary" }));
    } else if (mayUpload) {
      actions.push(el("button", { type: "button", id: "job-cancel", class: "button danger", onclick: () => cancelJob(job) }, "Cancel job"));
    }
    jobActions.replaceChildren(...actions);
  }

  /** Follows a job's progress stream until it is done (or another job is followed). */
  function followJob(job) {
    following?.abort();
    following = new AbortController();
    const signal = AbortSignal.any([view.signal, following.signal]);
    showJob(job);
    if (FINISHED.has(job.status)) return;
    followEvents(`/bulk-jobs/${job.id}/events`, {
      signal,
      onState: (s, error) => {
        if (s === "failed") announce(describeError(error), "error");
      },
      onEvent(event) {
        if (event.type !== "progress" && event.type !== "done") return undefined;
        const current = JSON.parse(event.data);
        showJob(current);
        if (event.type !== "done") return undefined;
        announce(`Job ${current.file_name}: ${jobStatusText(current)}.`);
        loadJobs();
        return STOP;
      },
    }).catch(reportBug);
  }

  async function cancelJob(job) {
    try {
      const updated = await api("POST", `/bulk-jobs/${job.id}/cancel`);
      announce(`Cancellation of ${updated.file_name} requested.`);
      showJob(updated);
      loadJobs();
    } catch (error) {
      announce(describeError(error), "error");
    }
  }

  // The upload form (for roles that may score).
  let uploadSection = el("p", { class: "notice", text: "Your role can follow bulk jobs but not upload files." });
  let loadOrganizations = async () => {};
  if (mayUpload) {
    const file = el("input", { id: "upload-file", name: "file", type: "file", accept: ".csv,.xlsx", required: true });
    const type = el("select", { id: "upload-type", name: "type" },
      options([["annual", "Annual statements"], ["quarterly", "Quarterly statements"]], "annual"));
    const error = el("div", { id: "upload-error", class: "form-error", role: "alert" });
    const submit = el("button", { type: "submit", id: "upload-submit", class: "button primary" }, "Upload and score");
    // Accounts without an organization of their own (tenant admins) choose where the companies go.
    const needsOrganization = !session?.organization_id;
    const organization = needsOrganization ? el("select", { id: "upload-org", name: "organization_id", required: true }) : null;
    if (organization && session?.tenant_id) {
      loadOrganizations = async () => {
        const orgs = await apiAll(`/tenants/${session.tenant_id}/organizations`, { signal: view.signal, maxPages: 1 });
        organization.replaceChildren(...options(orgs.map((o) => [o.id, o.name]), orgs[0]?.id));
      };
    }
    const form = el("form", { id: "upload-form", class: "card upload-form", "aria-labelledby": "upload-heading", novalidate: true },
      el("h2", { id: "upload-heading", text: "Upload a file" }),
      el("p", { class: "hint", text: "A CSV or XLSX file with one filing per row (AccuNode's column names). "
        + "Each row is scored, and its company created if it is new." }),
      el("div", { class: "form-grid" },
        field("File (.csv or .xlsx)", file),
        field("Statements", type),
        organization ? field("Organization", organization) : null),
      error,
      el("div", { class: "actions" }, submit));
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      error.replaceChildren();
      if (!file.files.length) {
        error.textContent = "Choose a file to upload.";
        file.focus();
        return;
      }
      const body = new FormData();
      body.append("type", type.value);
      if (organization?.value) body.append("organization_id", organization.value);
      body.append("file", file.files[0]);
      submit.disabled = true;
      submit.textContent = "Uploading…";
      try {
        const job = await api("POST", "/bulk-jobs", { form: body, signal: view.signal });
        announce(`Uploaded ${job.file_name}; the job is ${job.status}.`);
        file.value = "";
        followJob(job);
        loadJobs();
      } catch (failure) {
        if (isAbort(failure)) return;
        if (!(failure instanceof ApiError)) reportBug(failure);
        error.append(el("p", { text: describeError(failure) }));
        const details = failure.details;
        if (Array.isArray(details?.columns) && details.columns.length) {
          error.append(el("p", { text: `Columns concerned: ${details.columns.join(", ")}` }));
        }
        if (Array.isArray(details?.expected) && details.expected.length) {
          error.append(el("details", {}, el("summary", { text: "Accepted columns" }),
            el("p", { class: "mono small", text: details.expected.join(", ") })));
        }
      } finally {
        submit.disabled = false;
        submit.textContent = "Upload and score";
      }
    });
    uploadSection = form;
  }

  // Recent jobs.
  let jobsPage = 1;
  const jobsTable = dataTable({
    id: "jobs",
    caption: "Recent bulk jobs, newest first",
    empty: "No bulk jobs yet.",
    rowAttrs: (j) => ({ "data-job-id": j.id, "data-status": j.status }),
    columns: [
      { label: "File", cell: (j) => j.file_name },
      { label: "Type", cell: (j) => humanize(j.prediction_type) },
      { label: "Status", cell: (j) => el("span", { class: `job-state state-${j.status}`, text: humanize(j.status) }) },
      { label: "Rows", numeric: true, cell: jobRows },
      { label: "Scored", numeric: true, cell: (j) => fmtInt(j.succeeded_rows) },
      { label: "Failed", numeric: true, cell: (j) => fmtInt(j.failed_rows) },
      { label: "Uploaded", cell: (j) => timeEl(j.created_at) },
      {
        label: "Actions",
        cell: (j) => el("div", { class: "row-actions" },
          FINISHED.has(j.status)
            ? [downloadLink("Results", `/bulk-jobs/${j.id}/results`, `${j.id}-results.csv`, { class: "download-results" }),
              downloadLink("Errors", `/bulk-jobs/${j.id}/errors`, `${j.id}-errors.csv`, { class: "download-errors" })]
            : el("button", { type: "button", class: "button small secondary follow-job", onclick: () => followJob(j) }, "Follow")),
      },
    ],
  });
  const jobsPager = pager("jobs-", (page) => {
    jobsPage = page;
    loadJobs();
  }, ["job", "jobs"]);

  function loadJobs() {
    return view.busy(async () => {
      const data = await api("GET", "/bulk-jobs", { signal: view.signal, query: { page: jobsPage, per_page: 20 } });
      jobsTable.render(data.items);
      jobsPager.update(data);
    });
  }

  view.mount(
    pageHead(view, "Bulk jobs", "Score many filings at once from a spreadsheet, and download the results."),
    uploadSection, panel,
    card("jobs-heading", "Recent jobs", jobsTable.element, jobsPager.element));
  await Promise.all([view.busy(loadOrganizations), loadJobs()]);
}
