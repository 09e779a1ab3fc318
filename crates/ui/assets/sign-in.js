// Sign in: checks the token and account against the API (listing the account's integrations),
// keeps them in this tab's sessionStorage, and goes on to the page that sent us here.

import { api, byId, path, saveSession, session, setAlert, ApiError } from "./common.js";
import { busy, clearErrors, showError, showFieldError } from "./forms.js";

const REASONS = {
  expired: "The API refused the token: sign in again.",
  "signed-out": "You are signed out. The token was removed from this tab.",
};

/** Only a page of this UI may be the destination, never another site. */
function destination() {
  const next = new URLSearchParams(location.search).get("next");
  return next && next.startsWith("/ui/") && !next.startsWith("//") ? next : "/ui/";
}

const form = byId("sign-in-form");
const summary = byId("form-error");
const reason = REASONS[new URLSearchParams(location.search).get("reason")];
if (reason) setAlert(byId("notice"), reason);
const previous = session();
if (previous) byId("account_id").value = previous.account;

form.addEventListener("submit", async (event) => {
  event.preventDefault();
  clearErrors(form, summary);
  const token = byId("token").value.trim();
  const account = byId("account_id").value.trim();
  let invalid = null;
  if (!account) invalid = showFieldError(form, "account_id", "Enter your PledgeBox account id.") ?? invalid;
  if (!token) invalid = showFieldError(form, "token", "Enter an API token.") ?? invalid;
  if (invalid) {
    setAlert(summary, "Not signed in: fill in the fields marked below.");
    invalid.focus();
    return;
  }
  const done = busy(form, "Signing in…");
  try {
    await api("GET", path`/v1/integrations?account_id=${account}`, undefined, { token });
    saveSession(token, account);
    location.assign(destination());
  } catch (error) {
    done();
    const shown =
      error instanceof ApiError && error.status === 401
        ? new ApiError(401, error.code, "The API does not accept this token: check it and try again.", "token")
        : error;
    showError(form, summary, shown, "Not signed in");
  }
});
