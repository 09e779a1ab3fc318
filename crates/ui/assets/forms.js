// Form errors shown where they belong: an API error whose `field` names an input of the form goes
// under that input (aria-invalid, aria-describedby), anything else goes to the form's alert.

import { byId, setAlert } from "./common.js";

/** The inputs of a form that map to an API field: `[data-field]`, keyed by that name. */
function fieldElement(form, field) {
  if (!field) return null;
  const exact = form.querySelector(`[data-field="${CSS.escape(field)}"]`);
  if (exact) return exact;
  // `modules[1]` or `schedule.interval_secs` concern the input named by their first segment.
  const base = field.split(/[[.]/)[0];
  return base ? form.querySelector(`[data-field="${CSS.escape(base)}"]`) : null;
}

function describedBy(node) {
  return (node.getAttribute("aria-describedby") ?? "").split(/\s+/).filter(Boolean);
}

function errorNode(node) {
  return byId(`${node.dataset.field}-error`);
}

/** What a person reads as the input's name. */
function labelOf(node) {
  if (node.tagName === "FIELDSET") return node.querySelector("legend")?.textContent?.trim() ?? node.dataset.field;
  return node.labels?.[0]?.textContent?.trim() ?? node.dataset.field;
}

/** The first thing to focus for an input (a group focuses its first control). */
function focusTarget(node) {
  return node.tagName === "FIELDSET" ? node.querySelector("input, select, textarea, button") : node;
}

/** Removes every error of the form. */
export function clearErrors(form, summary) {
  for (const node of form.querySelectorAll("[data-field]")) {
    node.removeAttribute("aria-invalid");
    const error = errorNode(node);
    if (error) {
      error.hidden = true;
      error.textContent = "";
      node.setAttribute("aria-describedby", describedBy(node).filter((id) => id !== error.id).join(" "));
    }
  }
  setAlert(summary, "");
}

/** Shows one input's error under it and returns the input, or null if the form has no such input. */
export function showFieldError(form, field, message) {
  const node = fieldElement(form, field);
  const error = node && errorNode(node);
  if (!node || !error) return null;
  error.textContent = message;
  error.hidden = false;
  node.setAttribute("aria-invalid", "true");
  const ids = describedBy(node);
  if (!ids.includes(error.id)) node.setAttribute("aria-describedby", [...ids, error.id].join(" "));
  return node;
}

/**
 * Shows an API error: beside its input when the form has it (and focuses that input), otherwise
 * in the form's alert (and focuses the alert).
 */
export function showError(form, summary, error, what) {
  const node = showFieldError(form, error.field, error.message);
  if (node) {
    setAlert(summary, `${what}: see the message under “${labelOf(node)}”.`);
    focusTarget(node)?.focus();
  } else {
    setAlert(summary, error.message);
    summary.focus();
  }
}

/** Marks a form busy: its submit button is disabled and says so, until `done()` is called. */
export function busy(form, label) {
  const button = form.querySelector('button[type="submit"]');
  const original = button.textContent;
  button.disabled = true;
  button.textContent = label;
  form.setAttribute("aria-busy", "true");
  return () => {
    button.disabled = false;
    button.textContent = original;
    form.removeAttribute("aria-busy");
  };
}

/**
 * The codes after which the pasted grant code is spent (Zoho saw it, or it was dead already):
 * the Refresh Token input is cleared so the next try starts with a new code. Other failures
 * (a wrong Client ID, a data centre mix-up, Zoho unreachable) leave the code usable.
 */
export const CODE_SPENT = new Set([
  "zoho_code_expired",
  "zoho_code_used",
  "zoho_wrong_secret",
  "zoho_missing_scope",
  "zoho_no_refresh_token",
  "zoho_throttled",
  "zoho_refused",
  "zoho_org_unreadable",
  "zoho_org_mismatch",
]);

/** Clears the Refresh Token input after a spent code and says why beside it. */
export function clearSpentCode(error, input, note) {
  if (!CODE_SPENT.has(error.code)) {
    note.hidden = true;
    return;
  }
  input.value = "";
  if (error.field === "refresh_token") {
    // The error message under the input already says to generate a new code.
    note.hidden = true;
    return;
  }
  note.textContent = "Cleared: Zoho has seen this code and it works only once. Generate a new code before you try again.";
  note.hidden = false;
}

export { byId };
