// Map Audience: the second step. Picks one of the account's audiences (or creates one) and maps
// it with PUT /v1/integrations/{id}/audience; until then the integration cannot sync.

import { api, byId, el, initChrome, path, requireSession, setAlert, start } from "./common.js";
import { busy, clearErrors, showError, showFieldError } from "./forms.js";

const form = byId("audience-form");
const summary = byId("form-error");
const id = decodeURIComponent(location.pathname.split("/")[3] ?? "");
const detail = `/ui/integrations/${encodeURIComponent(id)}`;

function chosen() {
  return form.querySelector('input[name="audience"]:checked');
}

/** The name input is only in play when "Create a new audience" is chosen. */
function syncNameField() {
  const creating = chosen()?.value === "";
  byId("name").disabled = !creating;
  byId("new-audience").classList.toggle("inactive", !creating);
}

/** One audience as a radio choice. */
function option(audience, checked) {
  const input = el("input", { type: "radio", id: `audience-${audience.id}`, name: "audience", value: audience.id, checked });
  input.addEventListener("change", syncNameField);
  return el("div", { class: "choice" }, input, el("label", { for: `audience-${audience.id}` }, audience.name));
}

start(async () => {
  const current = requireSession();
  initChrome(current);
  const [integration, audiences] = await Promise.all([
    api("GET", path`/v1/integrations/${id}`),
    api("GET", path`/v1/audiences?account_id=${current.account}`),
  ]);
  const org = integration.data.zoho_org;
  byId("org-name").textContent = org.name ? `${org.name} (${org.id})` : org.id;
  const options = audiences.data.audiences.map((audience) => option(audience, audience.id === integration.data.audience_id));
  byId("audience-options").replaceChildren(...options);
  if (!chosen()) (options.length ? options[0].querySelector("input") : byId("audience-new")).checked = true;
  if (!options.length) byId("name").value = "Backers";
  byId("audience-new").addEventListener("change", syncNameField);
  syncNameField();

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    clearErrors(form, summary);
    let audienceId = chosen()?.value;
    if (audienceId === undefined) {
      showFieldError(form, "audience_id", "Choose an audience or create one.");
      setAlert(summary, "Not mapped yet: choose an audience.");
      form.querySelector('input[name="audience"]')?.focus();
      return;
    }
    const done = busy(form, "Saving…");
    try {
      if (audienceId === "") {
        const name = byId("name").value.trim();
        if (!name) {
          done();
          showFieldError(form, "name", "Name the new audience.")?.focus();
          setAlert(summary, "Not mapped yet: name the new audience.");
          return;
        }
        const created = await api("POST", "/v1/audiences", { account_id: current.account, name });
        audienceId = created.data.id;
        // Should mapping fail now, the next try maps the audience just made instead of making it twice.
        byId("audience-options").append(option(created.data, true));
        byId("name").value = "";
        syncNameField();
      }
      await api("PUT", path`/v1/integrations/${id}/audience`, { audience_id: audienceId });
      location.assign(detail);
    } catch (error) {
      done();
      showError(form, summary, error, "Not mapped");
    }
  });
});
