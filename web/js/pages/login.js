/*
 * The sign-in page (#/login).
 */
import { APP_NAME, el, mainEl } from "../dom.js";
import { ApiError, Session } from "../api.js";
import { describeError, field, reportBug } from "../ui.js";
import { state } from "../state.js";
import { signIn } from "../session.js";

export function loginPage(view) {
  view.setTitle("Sign in");
  const email = el("input", { id: "email", name: "email", type: "email", autocomplete: "username", required: true, spellcheck: "false" });
  const password = el("input", { id: "password", name: "password", type: "password", autocomplete: "current-password", required: true });
  const error = el("p", { id: "login-error", class: "form-error", role: "alert" });
  const submit = el("button", { type: "submit", id: "login-submit", class: "button primary" }, "Sign in");
  const notice = state.loginNotice ? el("p", { id: "login-notice", class: "notice", text: state.loginNotice }) : null;
  state.loginNotice = null;

  const form = el("form", { id: "login-form", class: "card login-card", novalidate: true }, view.h1(`Sign in to ${APP_NAME}`), notice,
    field("E-mail", email), field("Password", password), error, submit);
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    error.textContent = "";
    if (!email.value.trim() || !password.value) {
      error.textContent = "Enter your e-mail address and your password.";
      (email.value.trim() ? password : email).focus();
      return;
    }
    submit.disabled = true;
    submit.textContent = "Signing in…";
    mainEl.dataset.ready = "false";
    try {
      await signIn(email.value.trim(), password.value);
    } catch (failure) {
      if (!(failure instanceof ApiError)) reportBug(failure);
      error.textContent = describeError(failure);
      password.select();
      // Signed in but the profile failed to load: start over cleanly.
      if (Session.get() && !state.me) Session.clear();
    } finally {
      submit.disabled = false;
      submit.textContent = "Sign in";
      if (!view.signal.aborted) mainEl.dataset.ready = "true";
    }
  });
  view.mount(el("div", { class: "login-wrap" }, form));
}
