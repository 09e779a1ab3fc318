// What every page shares: the session (token and account, in this tab's sessionStorage), the
// call to the scheduler's /v1 API with that token, the error shape it answers with, and small DOM
// and formatting helpers. Data from the API is only ever put into the page as text (textContent,
// attribute values), never as markup, so nothing it returns can run as script.

const SESSION_KEY = "pledgesync.session";

/** The signed-in session, or null. */
export function session() {
  try {
    const value = JSON.parse(sessionStorage.getItem(SESSION_KEY) ?? "null");
    if (value && typeof value.token === "string" && typeof value.account === "string") {
      return value;
    }
  } catch {
    // A damaged entry is the same as none: sign in again.
  }
  return null;
}

export function saveSession(token, account) {
  sessionStorage.setItem(SESSION_KEY, JSON.stringify({ token, account }));
}

export function forgetSession() {
  sessionStorage.removeItem(SESSION_KEY);
}

/** The sign-in page, coming back to `next` afterwards. */
export function signInUrl(next, reason) {
  const params = new URLSearchParams();
  if (next) params.set("next", next);
  if (reason) params.set("reason", reason);
  const query = params.toString();
  return query ? `/ui/sign-in?${query}` : "/ui/sign-in";
}

/** Thrown after a redirect to sign-in, so callers stop what they were doing. */
export class SignedOut extends Error {}

/** The session, or a redirect to the sign-in page. */
export function requireSession() {
  const current = session();
  if (!current) {
    location.replace(signInUrl(location.pathname + location.search));
    throw new SignedOut("not signed in");
  }
  return current;
}

/** An answer of the API that is not a success: `{"error": {"code", "message", "field"?}}`. */
export class ApiError extends Error {
  constructor(status, code, message, field) {
    super(message);
    this.status = status;
    this.code = code;
    this.field = field ?? null;
  }
}

/**
 * Calls the API with the session's token (or `options.token`). Resolves to `{status, data}` on a
 * 2xx; rejects with an ApiError otherwise. A 401 forgets the session and goes to sign-in, unless
 * `options.token` was given (the sign-in page checks a token that way).
 */
export async function api(method, path, body, options = {}) {
  const token = options.token ?? session()?.token;
  const headers = { Accept: "application/json" };
  if (token) headers.Authorization = `Bearer ${token}`;
  const init = { method, headers, cache: "no-store", credentials: "omit", redirect: "error" };
  if (body !== undefined) {
    headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  let response;
  try {
    response = await fetch(path, init);
  } catch {
    throw new ApiError(0, "network", "The scheduler could not be reached. Check your connection and try again.");
  }
  const text = await response.text();
  let data = null;
  try {
    data = text ? JSON.parse(text) : null;
  } catch {
    data = null;
  }
  if (response.ok) return { status: response.status, data };
  if (response.status === 401 && options.token === undefined) {
    forgetSession();
    location.assign(signInUrl(location.pathname + location.search, "expired"));
    throw new SignedOut("the token was refused");
  }
  const error = data && typeof data === "object" ? data.error : null;
  throw new ApiError(
    response.status,
    error?.code ?? `http_${response.status}`,
    error?.message ?? `The scheduler answered ${response.status} ${response.statusText}. Try again in a moment.`,
    error?.field,
  );
}

/** `/v1/...` with the path segments escaped. */
export function path(strings, ...values) {
  return strings.reduce((out, part, i) => out + part + (i < values.length ? encodeURIComponent(values[i]) : ""), "");
}

/** Builds an element: attributes (booleans toggle), then children (strings become text). */
export function el(tag, attributes = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) {
    if (value === false || value === null || value === undefined) continue;
    node.setAttribute(name, value === true ? "" : String(value));
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

export function byId(id) {
  return document.getElementById(id);
}

/**
 * Puts `message` into a live region (role=alert or status), or empties it. The region stays in
 * the page while empty (CSS collapses it): screen readers announce changes only to regions that
 * were already there.
 */
export function setAlert(node, message) {
  node.textContent = message ?? "";
}

const numberFormat = new Intl.NumberFormat();
export function count(value) {
  return numberFormat.format(value ?? 0);
}

const dateFormat = new Intl.DateTimeFormat(undefined, { dateStyle: "medium", timeStyle: "short" });
export function when(iso) {
  if (!iso) return "—";
  const date = new Date(iso);
  return Number.isNaN(date.getTime()) ? iso : dateFormat.format(date);
}

/** "2 min 5 s", "48 s", from two ISO instants. */
export function duration(fromIso, toIso) {
  if (!fromIso || !toIso) return "—";
  const secs = Math.max(0, Math.round((new Date(toIso) - new Date(fromIso)) / 1000));
  if (secs < 60) return `${secs} s`;
  const mins = Math.floor(secs / 60);
  if (mins < 60) return `${mins} min ${secs % 60} s`;
  return `${Math.floor(mins / 60)} h ${mins % 60} min`;
}

/** "every 60 minutes", "every 7 days". */
export function every(secs) {
  if (secs % 86400 === 0) return secs === 86400 ? "every day" : `every ${secs / 86400} days`;
  if (secs % 3600 === 0) return secs === 3600 ? "every hour" : `every ${secs / 3600} hours`;
  if (secs % 60 === 0) return `every ${secs / 60} minutes`;
  return `every ${secs} seconds`;
}

export const STATUS_LABELS = {
  active: "Active",
  needs_reauth: "Needs re-authorisation",
  disabled: "Disabled",
};

export const RUN_LABELS = {
  queued: "Queued",
  running: "Running",
  succeeded: "Succeeded",
  failed: "Failed",
  cancelled: "Cancelled",
};

export function isActiveRun(run) {
  return run && (run.status === "queued" || run.status === "running");
}

/** A status badge: the text says it, the colour only repeats it. */
export function badge(kind, label) {
  return el("span", { class: `badge badge-${kind}` }, label);
}

/** Wires `[data-copy]` buttons: copy the text of the element they name, and say so. */
export function wireCopyButtons(statusNode) {
  for (const button of document.querySelectorAll("[data-copy]")) {
    button.addEventListener("click", async () => {
      const source = byId(button.dataset.copy);
      const text = source?.textContent?.trim() ?? "";
      let copied = false;
      try {
        await navigator.clipboard.writeText(text);
        copied = true;
      } catch {
        // No clipboard permission (plain http, an old browser): select the text instead.
        const range = document.createRange();
        range.selectNodeContents(source);
        const selection = getSelection();
        selection.removeAllRanges();
        selection.addRange(range);
      }
      const original = button.dataset.label ?? button.textContent;
      button.dataset.label = original;
      button.textContent = copied ? "Copied" : "Selected — press Ctrl+C";
      if (statusNode) statusNode.textContent = copied ? `Copied ${text}` : `Selected ${text}: copy it with Ctrl+C or ⌘C.`;
      setTimeout(() => {
        button.textContent = original;
      }, 2500);
    });
  }
}

/** The header's account name and sign-out button, on every page but sign-in. */
export function initChrome(current) {
  const box = byId("session");
  if (!box || !current) return;
  byId("session-account").textContent = current.account;
  box.hidden = false;
  byId("sign-out").addEventListener("click", () => {
    forgetSession();
    location.assign(signInUrl(null, "signed-out"));
  });
}

/** Runs a page's start function, turning an unexpected failure into a visible message. */
export function start(main) {
  main().catch((error) => {
    if (error instanceof SignedOut) return;
    const box = byId("load-error") ?? byId("form-error");
    if (box) setAlert(box, error?.message ?? String(error));
    const loading = byId("loading");
    if (loading) loading.hidden = true;
  });
}
