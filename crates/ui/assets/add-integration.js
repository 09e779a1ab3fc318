// Add Integration: sends what the creator pasted to POST /v1/integrations, which exchanges the
// grant code at Zoho at once. On success, on to Map Audience; on failure the API's message goes
// beside the input it concerns, everything typed stays, except a grant code Zoho has seen.

import { api, byId, initChrome, requireSession, setAlert, start, wireCopyButtons } from "./common.js";
import { busy, clearErrors, clearSpentCode, showError, showFieldError } from "./forms.js";

const form = byId("add-form");
const summary = byId("form-error");

function checkFilled() {
  const missing = [
    ["refresh_token", "Paste the grant code from the Zoho API Console."],
    ["client_secret", "Paste the Client Secret of your Self Client."],
    ["client_id", "Paste the Client ID of your Self Client."],
    ["name", "Give the integration a name."],
  ].filter(([id]) => !byId(id).value.trim());
  let first = null;
  for (const [id, message] of missing) first = showFieldError(form, id, message) ?? first;
  const modules = [...form.querySelectorAll('input[name="modules"]:checked')];
  if (modules.length === 0) first = showFieldError(form, "modules", "Choose at least one module.") ?? first;
  return first;
}

start(async () => {
  const current = requireSession();
  initChrome(current);
  wireCopyButtons(byId("copy-status"));
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    clearErrors(form, summary);
    const invalid = checkFilled();
    if (invalid) {
      setAlert(summary, "Not connected yet: fill in the fields marked below.");
      (invalid.tagName === "FIELDSET" ? invalid.querySelector("input") : invalid).focus();
      return;
    }
    const body = {
      account_id: current.account,
      name: byId("name").value.trim(),
      client_id: byId("client_id").value.trim(),
      client_secret: byId("client_secret").value.trim(),
      refresh_token: byId("refresh_token").value.trim(),
      modules: [...form.querySelectorAll('input[name="modules"]:checked')].map((input) => input.value),
    };
    const dataCenter = byId("data_center").value;
    if (dataCenter) body.data_center = dataCenter;
    const done = busy(form, "Connecting to Zoho…");
    try {
      const created = await api("POST", "/v1/integrations", body);
      location.assign(`/ui/integrations/${encodeURIComponent(created.data.id)}/audience`);
    } catch (error) {
      done();
      clearSpentCode(error, byId("refresh_token"), byId("refresh_token-note"));
      showError(form, summary, error, "Not connected");
    }
  });
});
