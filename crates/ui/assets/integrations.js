// Integrations: the account's Zoho integrations with status, org, audience and last run.

import { api, badge, byId, count, el, initChrome, path, requireSession, RUN_LABELS, start, STATUS_LABELS, when } from "./common.js";

const STATUS_KIND = { active: "ok", needs_reauth: "warn", disabled: "muted" };
const RUN_KIND = { succeeded: "ok", failed: "bad", cancelled: "muted", queued: "info", running: "info" };

function lastRun(run) {
  if (!run) return "Never synced";
  const outcome = RUN_LABELS[run.status] ?? run.status;
  const parts = [badge(RUN_KIND[run.status] ?? "muted", outcome), ` ${when(run.finished_at ?? run.started_at ?? run.created_at)}`];
  if (run.status === "succeeded" || run.status === "running") {
    parts.push(` · ${count(run.counters.applied)} applied, ${count(run.counters.skipped)} skipped`);
  }
  if (run.error) parts.push(` · ${run.error}`);
  return parts;
}

function card(integration, audiences) {
  const detail = `/ui/integrations/${encodeURIComponent(integration.id)}`;
  const audience = integration.audience_id
    ? audiences.get(integration.audience_id) ?? integration.audience_id
    : el("span", {}, "Not mapped yet — ", el("a", { href: `${detail}/audience` }, "map an audience"));
  const org = integration.zoho_org;
  return el(
    "li",
    { class: "card integration" },
    el(
      "div",
      { class: "integration-head" },
      el("h2", {}, el("a", { href: detail }, integration.name)),
      badge(STATUS_KIND[integration.status] ?? "muted", STATUS_LABELS[integration.status] ?? integration.status),
    ),
    el(
      "dl",
      { class: "details compact" },
      el("div", {}, el("dt", {}, "Zoho org"), el("dd", {}, `${org.name ?? "Unnamed org"} (${org.id}, ${integration.data_center})`)),
      el("div", {}, el("dt", {}, "Audience"), el("dd", {}, audience)),
      el("div", {}, el("dt", {}, "Last run"), el("dd", {}, lastRun(integration.last_run))),
    ),
  );
}

start(async () => {
  const current = requireSession();
  initChrome(current);
  const account = current.account;
  const [integrations, audiences] = await Promise.all([
    api("GET", path`/v1/integrations?account_id=${account}`),
    api("GET", path`/v1/audiences?account_id=${account}`),
  ]);
  const names = new Map(audiences.data.audiences.map((a) => [a.id, a.name]));
  const list = byId("integrations");
  list.replaceChildren(...integrations.data.integrations.map((i) => card(i, names)));
  byId("loading").hidden = true;
  byId("empty").hidden = integrations.data.integrations.length > 0;
});
