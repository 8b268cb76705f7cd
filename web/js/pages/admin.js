/*
 * The administration page (#/admin): organizations and users of a tenant (a super admin chooses the tenant),
 * as far as the user's role may manage them.
 */
import { el, fmtInt, humanize, isAbort, supersedable, timeEl } from "../dom.js";
import { api, apiAll, ApiError, apiPages } from "../api.js";
import { card, dataTable, describeError, field, options, reportBug } from "../ui.js";
import { can, mayAdminister, roleRank, ROLES, state } from "../state.js";

export async function adminPage(view) {
  view.setTitle("Administration");
  view.mount(view.h1("Administration"));
  if (!mayAdminister()) {
    view.mount(el("p", { class: "card empty-state", id: "admin-forbidden", text: "Your role does not administer users or organizations." }));
    return;
  }
  const viewer = state.me.user;
  const viewerRank = roleRank(viewer.role);
  const mayManageUsers = can("user:manage");
  /** Roles the viewer may give: never above their own, never super_admin (a CLI matter). */
  const assignable = ROLES.filter((r) => r !== "super_admin" && roleRank(r) >= viewerRank);
  const mayManage = (user) => mayManageUsers && user.id !== viewer.id && roleRank(user.role) >= viewerRank;

  const message = el("div", { id: "admin-message", class: "admin-message", role: "status", "aria-live": "polite" });
  const say = (text, kind = "info") => {
    message.textContent = text;
    message.dataset.kind = kind;
  };
  const fail = (error) => {
    if (isAbort(error)) return; // another tenant was chosen, or the page left
    if (!(error instanceof ApiError)) reportBug(error);
    say(describeError(error), "error");
  };

  let tenantId = viewer.tenant_id;
  let orgNames = new Map();

  // A super admin belongs to no tenant: they choose one.
  const tenantPicker = el("div");
  if (!tenantId) {
    const tenants = await apiAll("/tenants", { signal: view.signal, maxPages: 1 });
    tenantId = tenants[0]?.id;
    const select = el("select", { id: "admin-tenant" }, options(tenants.map((t) => [t.id, `${t.name} (${t.slug})`]), tenantId));
    select.addEventListener("change", () => {
      tenantId = select.value;
      loadAll();
    });
    tenantPicker.append(el("div", { class: "filters" }, field("Tenant", select)));
  }

  // Organizations.
  const orgTable = dataTable({
    id: "org-table",
    caption: "Organizations",
    empty: "No organizations.",
    rowAttrs: (o) => ({ "data-organization-id": o.id }),
    columns: [
      { label: "Name", cell: (o) => o.name },
      { label: "Description", cell: (o) => o.description || "—" },
      { label: "Active", cell: (o) => (o.is_active ? "Yes" : "No") },
      { label: "Created", cell: (o) => timeEl(o.created_at) },
    ],
  });
  let orgForm = null;
  if (can("org:create")) {
    const name = el("input", { id: "org-name", type: "text", required: true, maxlength: "200", autocomplete: "off" });
    const description = el("input", { id: "org-description", type: "text", maxlength: "2000", autocomplete: "off" });
    orgForm = el("form", { id: "org-form", class: "inline-form", "aria-labelledby": "org-form-heading", novalidate: true },
      el("h3", { id: "org-form-heading", text: "New organization" }),
      field("Name", name), field("Description (optional)", description),
      el("button", { type: "submit", id: "org-submit", class: "button primary" }, "Create organization"));
    orgForm.addEventListener("submit", async (event) => {
      event.preventDefault();
      if (!name.value.trim()) return say("Give the organization a name.", "error");
      try {
        const created = await api("POST", `/tenants/${tenantId}/organizations`, {
          json: { name: name.value.trim(), ...(description.value.trim() ? { description: description.value.trim() } : {}) },
        });
        orgForm.reset();
        say(`Organization ${created.name} created.`);
        await loadAll();
      } catch (error) {
        fail(error);
      }
    });
  }

  // Users.
  const userTable = dataTable({
    id: "user-table",
    caption: "Users",
    empty: "No users.",
    rowAttrs: (u) => ({ "data-user-id": u.id }),
    columns: [
      { label: "E-mail", cell: (u) => u.email },
      { label: "Name", cell: (u) => u.full_name || "—" },
      { label: "Role", cell: (u) => (mayManage(u) ? roleSelect(u) : humanize(u.role)) },
      { label: "Organization", cell: (u) => (u.organization_id ? orgNames.get(u.organization_id) || "—" : "Whole tenant") },
      { label: "Active", cell: (u) => (u.is_active ? "Yes" : "No") },
      { label: "Last sign-in", cell: (u) => (u.last_login_at ? timeEl(u.last_login_at) : "Never") },
      {
        label: "Actions",
        cell: (u) => (mayManage(u) ? activeToggle(u) : "—"),
      },
    ],
  });

  function roleSelect(user) {
    const select = el("select", { class: "role-select", "data-user-id": user.id, "aria-label": `Role of ${user.email}` },
      options(assignable.map((r) => [r, humanize(r)]), user.role));
    select.addEventListener("change", () => {
      updateUser(user, { role: select.value }, `${user.email} is now ${humanize(select.value)}.`)
        .then((ok) => { if (!ok) select.value = user.role; });
    });
    return select;
  }

  function activeToggle(user) {
    const done = `${user.email} ${user.is_active ? "deactivated" : "activated"}.`;
    return el("button", {
      type: "button", class: "button small secondary toggle-active", "data-user-id": user.id,
      onclick: () => updateUser(user, { is_active: !user.is_active }, done),
    }, user.is_active ? "Deactivate" : "Activate");
  }

  async function updateUser(user, changes, done) {
    try {
      await api("PATCH", `/users/${user.id}`, { json: changes });
      say(done);
      await loadUsers();
      return true;
    } catch (error) {
      fail(error);
      return false;
    }
  }

  let userForm = null;
  const userOrg = el("select", { id: "user-org" });
  if (mayManageUsers) {
    const email = el("input", { id: "user-email", type: "email", required: true, autocomplete: "off" });
    const fullName = el("input", { id: "user-name", type: "text", autocomplete: "off", maxlength: "200" });
    const role = el("select", { id: "user-role" },
      options(assignable.map((r) => [r, humanize(r)]), assignable.includes("user") ? "user" : assignable[0]));
    const password = el("input", { id: "user-password", type: "password", autocomplete: "new-password" });
    userForm = el("form", { id: "user-form", class: "inline-form", "aria-labelledby": "user-form-heading", novalidate: true },
      el("h3", { id: "user-form-heading", text: "New user" }),
      field("E-mail", email), field("Full name", fullName), field("Role", role), field("Organization", userOrg),
      field("Password (empty: generated, shown once)", password),
      el("button", { type: "submit", id: "user-submit", class: "button primary" }, "Create user"));
    userForm.addEventListener("submit", async (event) => {
      event.preventDefault();
      if (!email.value.trim()) return say("Enter the new user's e-mail address.", "error");
      const body = { email: email.value.trim(), full_name: fullName.value.trim(), role: role.value };
      if (userOrg.value) body.organization_id = userOrg.value;
      if (password.value) body.password = password.value;
      try {
        const created = await api("POST", `/tenants/${tenantId}/users`, { json: body });
        userForm.reset();
        say(created.initial_password
          ? `User ${created.user.email} created. Initial password (shown once): ${created.initial_password}`
          : `User ${created.user.email} created.`);
        await loadUsers();
      } catch (error) {
        fail(error);
      }
    });
  }

  const usersNote = el("p", { id: "users-note", class: "hint", hidden: true });

  /** Renders the users; the row control (role, activation) that had the focus gets it back once redrawn. */
  const renderUsers = (users) => {
    const focused = document.activeElement;
    const userId = userTable.table.contains(focused) ? focused.dataset.userId : undefined;
    const kind = focused?.classList.contains("role-select") ? "role-select" : "toggle-active";
    userTable.render(users);
    if (!userId) return;
    const control = userTable.table.querySelector(`.${kind}[data-user-id="${CSS.escape(userId)}"]`);
    (control || userTable.element).focus();
  };

  /**
   * Each load of a tenant's lists cancels the one before it, so that after a quick change of tenant an
   * older answer never shows; `tenantSignal` is the latest load's (the users' reloads follow it too).
   */
  const nextTenantSignal = supersedable(view.signal);
  let tenantSignal = view.signal;

  const loadOrganizations = async (tenant, signal) => {
    const organizations = await apiAll(`/tenants/${tenant}/organizations`, { signal, maxPages: 1 });
    signal.throwIfAborted();
    orgNames = new Map(organizations.map((o) => [o.id, o.name]));
    orgTable.render(organizations);
    // Organization roles need an organization; a tenant admin may also be tenant-wide.
    const choices = organizations.map((o) => [o.id, o.name]);
    if (roleRank(viewer.role) <= roleRank("tenant_admin")) choices.push(["", "— Whole tenant (tenant admins only) —"]);
    userOrg.replaceChildren(...options(choices, viewer.organization_id || organizations[0]?.id || ""));
  };
  const loadUsers = async (tenant = tenantId, signal = tenantSignal) => {
    const { items: users, total } = await apiPages(`/tenants/${tenant}/users`, { signal, maxPages: 2 });
    signal.throwIfAborted();
    renderUsers(users);
    // The list stops at 400 users: say so rather than hide the others silently.
    usersNote.hidden = users.length >= total;
    usersNote.textContent = usersNote.hidden ? "" : `Showing the first ${fmtInt(users.length)} of ${fmtInt(total)} users.`;
  };
  const loadAll = () => {
    const tenant = tenantId;
    const signal = nextTenantSignal();
    tenantSignal = signal;
    return view.busy(async () => {
      if (!tenant) throw new ApiError(404, "NOT_FOUND", "There is no tenant to administer.");
      await loadOrganizations(tenant, signal);
      await loadUsers(tenant, signal);
    });
  };

  view.mount(
    tenantPicker,
    message,
    card("orgs-heading", "Organizations", orgTable.element, orgForm),
    card("users-heading", "Users", userTable.element, usersNote, userForm));
  await loadAll();
}
