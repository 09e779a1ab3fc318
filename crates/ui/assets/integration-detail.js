// Integration Detail: org, audience, schedule, modules and runs; Sync Now with a live progress bar
// read from GET /v1/runs/{id} until the run ends; the re-authorise form when Zoho stopped
// accepting the credentials; Enable when the integration is disabled.

import {
  api, badge, byId, count, duration, el, every, initChrome, isActiveRun, path, requireSession, RUN_LABELS, setAlert,
  start, STATUS_LABELS, when, wireCopyButtons,
} from "./common.js";
import { busy, clearErrors, clearSpentCode, showError } from "./forms.js";

const POLL_MS = 700;
/** Members are counted by paging the audience; past this many pages the count says "more than". */
const MAX_MEMBER_PAGES = 25;
const STATUS_KIND = { active: "ok", needs_reauth: "warn", disabled: "muted" };
const RUN_KIND = { succeeded: "ok", failed: "bad", cancelled: "muted", queued: "info", running: "info" };
const TRIGGERS = { manual: "Sync Now", schedule: "Schedule" };

const id = decodeURIComponent(location.pathname.split("/")[3] ?? "");
const page = { integration: null, audiences: new Map(), activeRun: null, polling: null };

function audienceName(audienceId) {
  return audienceId ? page.audiences.get(audienceId) ?? audienceId : null;
}

function percent(run) {
  if (run.status === "succeeded") return 100;
  if (typeof run.progress === "number") return Math.floor(run.progress * 100);
  const c = run.counters;
  if (run.total_estimate) return Math.min(99, Math.floor(((c.applied + c.skipped) * 100) / run.total_estimate));
  return null;
}

function runSummary(run) {
  const c = run.counters;
  switch (run.status) {
    case "queued":
      return "Queued: waiting for a fetcher to pick the run up.";
    case "running":
      return run.total_estimate
        ? `Running: reading about ${count(run.total_estimate)} records from Zoho.`
        : "Running: reading records from Zoho.";
    case "succeeded":
      return `Succeeded: ${count(c.fetched)} records fetched, ${count(c.applied)} applied to the audience, ${count(c.skipped)} skipped, ${count(c.deleted)} removed.`;
    default:
      return `${RUN_LABELS[run.status] ?? run.status}: ${run.error ?? "no reason given"}.`;
  }
}

function renderRun(run) {
  const panel = byId("run-panel");
  panel.hidden = false;
  byId("run-title").textContent = `Run of ${when(run.created_at)} (${run.mode} sync, ${TRIGGERS[run.trigger] ?? run.trigger})`;
  const status = byId("run-status");
  const summary = runSummary(run);
  // The live region changes only when the run's state does, not on every poll.
  if (status.dataset.state !== `${run.id}:${run.status}`) {
    status.dataset.state = `${run.id}:${run.status}`;
    setAlert(status, summary);
  }
  const progress = byId("run-progress");
  const value = percent(run);
  if (value === null) {
    progress.removeAttribute("value");
    progress.setAttribute("aria-valuetext", "Waiting for Zoho's record count");
    byId("run-percent").textContent = "";
  } else {
    progress.value = value;
    progress.setAttribute("aria-valuetext", `${value}%`);
    byId("run-percent").textContent = `${value}%`;
  }
  const c = run.counters;
  byId("count-fetched").textContent = count(c.fetched);
  byId("count-applied").textContent = count(c.applied);
  byId("count-skipped").textContent = count(c.skipped);
  byId("count-deleted").textContent = count(c.deleted);
  const reasons = Object.entries(c.skipped_by_reason ?? {}).map(([reason, n]) =>
    el("li", {}, `${reason.replaceAll("_", " ")}: ${count(n)}`),
  );
  byId("skip-reasons").replaceChildren(...reasons);
  const error = byId("run-error");
  error.textContent = run.error ?? "";
  error.hidden = !run.error;
  // The member count is from before the run until it ends; then it is counted again.
  if (isActiveRun(run)) byId("members").hidden = true;
}

/** The Sync Now button: start a run, show the active one, or say why it cannot sync. */
function renderSyncButton() {
  const integration = page.integration;
  const button = byId("sync-now");
  const hint = byId("sync-hint");
  hint.replaceChildren();
  button.disabled = false;
  if (isActiveRun(page.activeRun)) {
    button.textContent = page.activeRun.status === "queued" ? "Sync queued — show progress" : "Sync running — show progress";
    hint.append("A run is under way; Sync Now shows it instead of starting another.");
  } else if (integration.status !== "active") {
    button.textContent = "Sync Now";
    button.disabled = true;
    hint.append(integration.status === "needs_reauth" ? "Re-authorise with Zoho first (above)." : "Enable the integration first (above).");
  } else if (!integration.audience_id) {
    button.textContent = "Sync Now";
    button.disabled = true;
    hint.append("Map an audience first: ", el("a", { href: `/ui/integrations/${encodeURIComponent(id)}/audience` }, "Map audience"), ".");
  } else {
    button.textContent = "Sync Now";
    hint.append(`Syncs ${integration.modules.join(" and ")} into ${audienceName(integration.audience_id)} now.`);
  }
}

function detail(term, ...value) {
  return el("div", {}, el("dt", {}, term), el("dd", {}, ...value));
}

function renderIntegration() {
  const i = page.integration;
  document.title = `${i.name} · PledgeSync`;
  byId("title").textContent = i.name;
  byId("crumb").textContent = i.name;
  const statusBadge = byId("status-badge");
  statusBadge.className = `badge badge-${STATUS_KIND[i.status] ?? "muted"}`;
  statusBadge.textContent = STATUS_LABELS[i.status] ?? i.status;
  statusBadge.hidden = false;
  byId("reauth").hidden = i.status !== "needs_reauth";
  byId("reauth-reason").textContent = i.status_reason ? ` (${i.status_reason})` : "";
  byId("reauth-client").textContent = i.client_id;
  byId("disabled").hidden = i.status !== "disabled";
  byId("disabled-reason").textContent = i.status_reason ? ` (${i.status_reason})` : "";
  const mapLink = el("a", { href: `/ui/integrations/${encodeURIComponent(id)}/audience` }, i.audience_id ? "Change" : "Map audience");
  const audience = i.audience_id ? [audienceName(i.audience_id), " · ", mapLink] : ["Not mapped yet — ", mapLink];
  byId("details").replaceChildren(
    detail("Zoho org", i.zoho_org.name ?? "Unnamed org"),
    detail("Org ID", i.zoho_org.id),
    detail("Time zone", i.zoho_org.time_zone ?? "—"),
    detail("Data centre", i.data_center),
    detail("Client ID", el("code", {}, i.client_id)),
    detail("Audience", ...audience),
    detail("Modules", i.modules.join(", ")),
    detail("Schedule", `Incremental ${every(i.schedule.interval_secs)}, full ${every(i.schedule.full_sync_interval_secs)}`),
    detail("Next scheduled sync", !(i.status === "active" && i.audience_id) ? "None until the integration can sync"
      : i.schedule.next_sync_at ? when(i.schedule.next_sync_at) : "After the first Sync Now"),
    detail("Last full sync", when(i.schedule.last_full_sync_at)),
    detail("Created", when(i.created_at)),
  );
  for (const section of ["sync", "details-section", "runs-section"]) byId(section).hidden = false;
  byId("loading").hidden = true;
  renderSyncButton();
}

function renderRuns(runs) {
  byId("runs-empty").hidden = runs.length > 0;
  byId("runs").hidden = runs.length === 0;
  const rows = runs.map((run) => {
    const c = run.counters;
    const outcome = [badge(RUN_KIND[run.status] ?? "muted", RUN_LABELS[run.status] ?? run.status)];
    if (run.error) outcome.push(el("span", { class: "run-error-text" }, ` ${run.error}`));
    return el(
      "tr",
      { "data-run": run.id },
      el("td", {}, when(run.created_at)),
      el("td", {}, outcome),
      el("td", {}, run.mode),
      el("td", {}, TRIGGERS[run.trigger] ?? run.trigger),
      el("td", { class: "num" }, count(c.fetched)),
      el("td", { class: "num" }, count(c.applied)),
      el("td", { class: "num" }, count(c.skipped)),
      el("td", { class: "num" }, count(c.deleted)),
      el("td", {}, duration(run.started_at ?? run.created_at, run.finished_at)),
    );
  });
  byId("runs").tBodies[0].replaceChildren(...rows);
}

/** Counts the audience's members by paging through them (capped). */
async function renderMembers() {
  const audienceId = page.integration?.audience_id;
  const node = byId("members");
  if (!audienceId) {
    node.hidden = true;
    return;
  }
  let total = 0;
  let cursor = null;
  for (let pages = 0; pages < MAX_MEMBER_PAGES; pages += 1) {
    const query = cursor ? path`?limit=200&cursor=${cursor}` : "?limit=200";
    const answer = await api("GET", path`/v1/audiences/${audienceId}/members` + query);
    total += answer.data.members.length;
    cursor = answer.data.next_cursor;
    if (!cursor) break;
  }
  node.textContent = `${cursor ? "More than " : ""}${count(total)} members in ${audienceName(audienceId)}.`;
  node.dataset.members = String(total);
  node.hidden = false;
}

function fetchRuns() {
  return api("GET", path`/v1/integrations/${id}/runs?limit=10`);
}

async function load() {
  const current = requireSession();
  const [integration, audiences, runs] = await Promise.all([
    api("GET", path`/v1/integrations/${id}`),
    api("GET", path`/v1/audiences?account_id=${current.account}`),
    fetchRuns(),
  ]);
  page.integration = integration.data;
  page.audiences = new Map(audiences.data.audiences.map((a) => [a.id, a.name]));
  const newest = runs.data.runs[0] ?? null;
  page.activeRun = isActiveRun(newest) ? newest : null;
  renderIntegration();
  renderRuns(runs.data.runs);
  if (isActiveRun(newest)) {
    renderRun(newest);
    poll(newest.id);
  }
  await renderMembers();
}

/** Follows a run until it ends, then reloads the page's data once. */
function poll(runId) {
  if (page.polling === runId) return;
  page.polling = runId;
  let failures = 0;
  const tick = async () => {
    try {
      const answer = await api("GET", path`/v1/runs/${runId}`);
      failures = 0;
      const changed = page.activeRun?.id !== runId || page.activeRun?.status !== answer.data.status;
      page.activeRun = answer.data;
      renderRun(answer.data);
      renderSyncButton();
      if (!isActiveRun(answer.data)) {
        page.polling = null;
        await load();
        return;
      }
      if (changed) renderRuns((await fetchRuns()).data.runs);
      setAlert(byId("sync-error"), "");
    } catch (error) {
      failures += 1;
      setAlert(byId("sync-error"), `Progress could not be read (${error.message}); still trying.`);
      if (failures > 20) {
        page.polling = null;
        return;
      }
    }
    setTimeout(tick, POLL_MS * Math.min(failures + 1, 5));
  };
  tick();
}

async function syncNow() {
  const button = byId("sync-now");
  if (isActiveRun(page.activeRun)) {
    byId("run-panel").focus();
    return;
  }
  setAlert(byId("sync-error"), "");
  button.disabled = true;
  try {
    const answer = await api("POST", path`/v1/integrations/${id}/syncs`);
    page.activeRun = answer.data;
    renderRun(answer.data);
    renderSyncButton();
    poll(answer.data.id);
    renderRuns((await fetchRuns()).data.runs);
  } catch (error) {
    renderSyncButton();
    setAlert(byId("sync-error"), error.message);
    byId("sync-error").focus();
  }
}

async function reauthorise(event) {
  event.preventDefault();
  const form = byId("reauth-form");
  const summary = byId("reauth-form-error");
  clearErrors(form, summary);
  const input = byId("refresh_token");
  const token = input.value.trim();
  if (!token) {
    showError(form, summary, { field: "refresh_token", message: "Paste the new grant code from the Zoho API Console." }, "Not re-authorised");
    return;
  }
  const done = busy(form, "Connecting to Zoho…");
  try {
    await api("PUT", path`/v1/integrations/${id}/credentials`, { refresh_token: token });
    done();
    input.value = "";
    setAlert(byId("notice"), "Re-authorised: Zoho accepts the new code. The integration syncs again; press Sync Now to sync at once.");
    await load();
    byId("sync-now").focus();
  } catch (error) {
    done();
    clearSpentCode(error, input, byId("refresh_token-note"));
    showError(form, summary, error, "Not re-authorised");
  }
}

async function enable() {
  setAlert(byId("enable-error"), "");
  try {
    await api("POST", path`/v1/integrations/${id}/enable`);
    setAlert(byId("notice"), "Enabled: the integration syncs on its schedule again.");
    await load();
  } catch (error) {
    setAlert(byId("enable-error"), error.message);
  }
}

start(async () => {
  initChrome(requireSession());
  wireCopyButtons(byId("copy-status"));
  byId("sync-now").addEventListener("click", syncNow);
  byId("reauth-form").addEventListener("submit", reauthorise);
  byId("enable").addEventListener("click", enable);
  await load();
});
