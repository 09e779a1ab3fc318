#!/usr/bin/env bash
# make demo: sync a seeded Zoho emulator into a PledgeBox audience with the real binaries.
#
# Expects the local services to be up (`deploy/local/services.sh up`; `make demo` does it). Builds
# the binaries, starts the emulator (50,000 contacts and 20,000 leads), one scheduler, two fetchers
# and two sinks, then does what a creator does: an audience, a Self Client and a grant code in the
# emulator's console, Add Integration with the code, Map Audience, Sync Now. It draws the run's
# progress, prints what landed, then changes and deletes records in the emulator, runs an
# incremental sync and shows that the audience followed. Nothing is left running: every child is
# stopped on exit and the demo's database is dropped.
#
# Knobs (environment): DEMO_CONTACTS, DEMO_LEADS, DEMO_PROFILE (dev or release; dev by default:
# it shares the build with `make test`, and a release build costs far more time on a small machine
# than it saves in a 70,000-record sync),
# DEMO_KEEP=1 keeps the database and the logs for a look afterwards.
set -euo pipefail
cd "$(dirname "$0")/../.."

CONTACTS=${DEMO_CONTACTS:-50000}
LEADS=${DEMO_LEADS:-20000}
PROFILE=${DEMO_PROFILE:-dev}
PG_URL=${PLEDGESYNC__POSTGRES__URL:-postgres://pledgesync:pledgesync@127.0.0.1:5432/pledgesync}
RABBIT_URL=${PLEDGESYNC__RABBITMQ__URL:-amqp://guest:guest@127.0.0.1:5672/%2f}
REDIS_URL=${PLEDGESYNC__REDIS__URL:-redis://127.0.0.1:6379/0}
STAMP=$(date +%Y%m%d%H%M%S)-$$
DB=pledgesync_demo_${STAMP//-/_}
# One topology for every demo: nothing accumulates in RabbitMQ from run to run, and a message a
# killed demo left behind names a run of a dropped database, which the workers ack without work.
PREFIX=pledgesync-demo
ACCOUNT=demo-$STAMP
TOKEN=demo-token-$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')
KEY=$(head -c 32 /dev/urandom | base64)
WORK=$(mktemp -d -t pledgesync-demo.XXXXXX)
PIDS=()
DB_CREATED=0

say() { printf '\033[1m==> %s\033[0m\n' "$*"; }
die() { printf 'demo: %s\n' "$*" >&2; exit 1; }

for tool in curl jq psql cargo; do
  command -v "$tool" >/dev/null || die "$tool is needed (apt-get install -y $tool)"
done

cleanup() {
  local status=$?
  trap - EXIT INT TERM
  if [ ${#PIDS[@]} -gt 0 ]; then
    kill -TERM "${PIDS[@]}" 2>/dev/null || true
    local deadline=$((SECONDS + 15))
    for pid in "${PIDS[@]}"; do
      while kill -0 "$pid" 2>/dev/null && [ $SECONDS -lt $deadline ]; do sleep 0.2; done
      kill -KILL "$pid" 2>/dev/null || true
    done
    wait 2>/dev/null || true
  fi
  if [ "${DEMO_KEEP:-0}" = 1 ]; then
    echo "kept: database $DB, logs in $WORK"
  else
    if [ $DB_CREATED = 1 ]; then
      # The children's connections close as they exit; retry while PostgreSQL notices.
      for _ in $(seq 1 40); do
        psql "$PG_URL" -qAt -c "DROP DATABASE IF EXISTS \"$DB\"" >/dev/null 2>&1 && break
        sleep 0.5
      done
    fi
    if [ $status -ne 0 ]; then
      echo "demo failed; logs are in $WORK" >&2
    else
      rm -rf "$WORK"
    fi
  fi
  exit $status
}
trap cleanup EXIT INT TERM

# A loopback port nobody listens on, below the kernel's ephemeral range (32768 and up).
free_port() {
  local port
  for _ in $(seq 1 100); do
    port=$((10000 + RANDOM % 20000))
    if ! (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then echo "$port"; return; fi
  done
  die "no free port found"
}

# wait_for WHAT SECONDS CMD...: run CMD until it succeeds.
wait_for() {
  local what=$1 secs=$2; shift 2
  local deadline=$((SECONDS + secs))
  until "$@" >/dev/null 2>&1; do
    [ $SECONDS -lt $deadline ] || die "$what did not come up within ${secs}s (logs: $WORK)"
    sleep 0.2
  done
}

say "building the binaries ($PROFILE profile)"
cargo build --profile "$PROFILE" --bins -p pledgesync-scheduler -p pledgesync-fetcher -p pledgesync-sink -p zoho-emulator
case $PROFILE in dev) BIN=target/debug ;; *) BIN=target/$PROFILE ;; esac

psql "$PG_URL" -qAt -c "CREATE DATABASE \"$DB\"" >/dev/null || die "cannot create a database (is PostgreSQL up? run deploy/local/services.sh up)"
DB_CREATED=1
DB_URL=${PG_URL%/*}/$DB

EMU_PORT=$(free_port)
EMU=http://127.0.0.1:$EMU_PORT
say "starting the Zoho emulator with $CONTACTS contacts and $LEADS leads"
"$BIN/zoho-emulator" --listen "127.0.0.1:$EMU_PORT" --contacts "$CONTACTS" --leads "$LEADS" --seed 42 \
  >"$WORK/emulator.log" 2>&1 &
PIDS+=($!)
wait_for "the emulator" 120 curl -sf "$EMU/__emulator/health"

export PLEDGESYNC__POSTGRES__URL=$DB_URL
export PLEDGESYNC__RABBITMQ__URL=$RABBIT_URL
export PLEDGESYNC__RABBITMQ__TOPOLOGY_PREFIX=$PREFIX
export PLEDGESYNC__REDIS__URL=$REDIS_URL
export PLEDGESYNC__REDIS__KEY_PREFIX=$PREFIX-$STAMP
export PLEDGESYNC__ZOHO__ACCOUNTS_URL="$EMU/dc/{dc}"
export PLEDGESYNC__ZOHO_CLIENT__REDIS_KEY_PREFIX=$PREFIX-$STAMP:zoho
export PLEDGESYNC__SECURITY__ENCRYPTION_KEY=$KEY
export PLEDGESYNC__TELEMETRY__LOG_FORMAT=json
export PLEDGESYNC__TELEMETRY__LOG_LEVEL=info,lapin=warn,sqlx=warn

API_PORT=$(free_port)
API=http://127.0.0.1:$API_PORT
say "starting one scheduler, two fetchers and two sinks (logs in $WORK)"
PLEDGESYNC__API__LISTEN=127.0.0.1:$API_PORT PLEDGESYNC__API__TOKENS=$TOKEN PLEDGESYNC__SCHEDULE__TICK_SECS=3600 \
  PLEDGESYNC__SCHEDULE__RELAY_POLL_MILLIS=200 "$BIN/pledgesync-scheduler" >"$WORK/scheduler.log" 2>&1 &
PIDS+=($!)
wait_for "the scheduler" 60 curl -sf "$API/healthz"
for i in 1 2; do
  port=$(free_port)
  PLEDGESYNC__HTTP__LISTEN=127.0.0.1:$port \
    "$BIN/pledgesync-sink" >"$WORK/sink-$i.log" 2>&1 &
  PIDS+=($!)
  wait_for "sink $i" 60 curl -sf "http://127.0.0.1:$port/readyz"
  port=$(free_port)
  PLEDGESYNC__HTTP__LISTEN=127.0.0.1:$port "$BIN/pledgesync-fetcher" >"$WORK/fetcher-$i.log" 2>&1 &
  PIDS+=($!)
  wait_for "fetcher $i" 60 curl -sf "http://127.0.0.1:$port/readyz"
done

# api METHOD PATH [JSON]: the scheduler's API with the bearer token; fails on a 4xx/5xx.
api() {
  local out
  out=$(curl -sS -X "$1" "$API$2" -H "Authorization: Bearer $TOKEN" -H 'Content-Type: application/json' \
    ${3:+--data "$3"} -w '\n%{http_code}')
  local code=${out##*$'\n'}
  [ "${code:0:1}" = 2 ] || die "$1 $2 answered $code: ${out%$'\n'*}"
  printf '%s' "${out%$'\n'*}"
}
emu() {
  curl -sSf -X "$1" "$EMU$2" -H 'Content-Type: application/json' ${3:+--data "$3"}
}
members_sql() { psql "$DB_URL" -qAt -F ' | ' -c "$1"; }

# progress RUN: a live bar from GET /v1/runs/{id} until the run ends; prints the final view.
progress() {
  local run=$1 view status line interactive=0
  [ -t 1 ] && [ "${CI:-}" != true ] && interactive=1
  local last_print=0
  while :; do
    view=$(api GET "/v1/runs/$run")
    status=$(jq -r .status <<<"$view")
    line=$(jq -r '
      def bar(p): (p * 30 | floor) as $n | ("#" * $n) + ("." * (30 - $n));
      (.progress // 0) as $p
      | "[\(bar($p))] \($p * 100 | floor)%  fetched \(.counters.fetched)/\(.total_estimate // "?")  applied \(.counters.applied)  skipped \(.counters.skipped)  deleted \(.counters.deleted)  batches \(.counters.batches_applied)/\(.counters.batches_total // .counters.batches_published)  \(.status)"' <<<"$view")
    if [ $interactive = 1 ]; then
      printf '\r\033[K%s' "$line"
    elif [ $((SECONDS - last_print)) -ge 2 ] || { [ "$status" != running ] && [ "$status" != queued ]; }; then
      printf '%s\n' "$line"; last_print=$SECONDS
    fi
    case $status in succeeded|failed|cancelled) break ;; esac
    sleep 0.5
  done
  [ $interactive = 1 ] && printf '\n'
  RUN_VIEW=$view
  [ "$status" = succeeded ] || die "the run ended $status: $(jq -r .error <<<"$view")"
}

say "creating an audience, a Self Client and a grant code, and adding the integration"
AUDIENCE=$(api POST /v1/audiences "{\"account_id\":\"$ACCOUNT\",\"name\":\"Backers\"}" | jq -r .id)
CLIENT=$(emu POST /__emulator/self-clients '{}')
CLIENT_ID=$(jq -r .client_id <<<"$CLIENT")
CODE=$(emu POST /__emulator/grant-codes \
  "{\"client_id\":\"$CLIENT_ID\",\"scope\":\"ZohoCRM.modules.ALL,ZohoCRM.org.READ\",\"duration_minutes\":10,\"description\":\"PledgeBox Integration\"}" \
  | jq -r .code)
INTEGRATION=$(api POST /v1/integrations "$(jq -n --arg a "$ACCOUNT" --arg id "$CLIENT_ID" \
  --arg secret "$(jq -r .client_secret <<<"$CLIENT")" --arg code "$CODE" \
  '{account_id:$a, name:"Zoho CRM", client_id:$id, client_secret:$secret, refresh_token:$code}')")
INTEGRATION_ID=$(jq -r .id <<<"$INTEGRATION")
echo "integration $INTEGRATION_ID: Zoho org $(jq -r '.zoho_org.name // .zoho_org.id' <<<"$INTEGRATION"), data centre $(jq -r .data_center <<<"$INTEGRATION")"
api PUT "/v1/integrations/$INTEGRATION_ID/audience" "{\"audience_id\":\"$AUDIENCE\"}" >/dev/null
echo "mapped to audience $AUDIENCE"

say "Sync Now (full)"
RUN=$(api POST "/v1/integrations/$INTEGRATION_ID/syncs" '{"mode":"full"}' | jq -r .id)
progress "$RUN"

say "what landed"
jq -r '
  def ts: (sub("\\.[0-9]+"; "") | sub("\\+00:00$"; "Z") | fromdateiso8601)
    + ((capture("\\.(?<f>[0-9]+)") | "0.\(.f)" | tonumber) // 0);
  ((.finished_at | ts) - (.started_at | ts) | if . < 0.001 then 0.001 else . end) as $s
  | "records fetched   \(.counters.fetched)",
    "applied           \(.counters.applied)",
    "skipped           \(.counters.skipped)  \(.counters.skipped_by_reason | to_entries | map("\(.key)=\(.value)") | join(", "))",
    "batches           \(.counters.batches_total)",
    "time              \($s * 10 | round / 10) s",
    "records/second    \(.counters.fetched / $s | floor)"' <<<"$RUN_VIEW"
echo "members           $(members_sql "SELECT count(*) FROM audience_members WHERE audience_id = '$AUDIENCE' AND removed_at IS NULL")"
echo "unsubscribed      $(members_sql "SELECT count(*) FROM audience_members WHERE audience_id = '$AUDIENCE' AND removed_at IS NULL AND unsubscribed")"
echo
echo "a few members:"
api GET "/v1/audiences/$AUDIENCE/members?limit=5" \
  | jq -r '.members[] | "  \(.email)  \(.first_name // "-") \(.last_name // "-")  \(.country // "-")  \(if .unsubscribed then "unsubscribed" else "subscribed" end)  (\(.zoho_module) \(.zoho_id))"'

say "changing 3 contacts and deleting 3 leads in Zoho"
for module in Contacts Leads; do
  emu GET "/__emulator/records/$module?converted=false" \
    | jq -r '.records[] | select(.Email != null) | [.id, .Email] | @tsv' >"$WORK/$module.tsv"
done
# Records whose email no other record shares, so that each change moves exactly one member.
normalise='{k = tolower($2); gsub(/^ +| +$/, "", k)}'
awk -F'\t' "$normalise"' {print k}' "$WORK/Contacts.tsv" "$WORK/Leads.tsv" | sort | uniq -u >"$WORK/unique.txt"
pick() {
  awk -F'\t' 'NR == FNR {unique[$1] = 1; next} '"$normalise"' (k in unique) && k ~ /^[a-z0-9._+-]+@[a-z0-9-]+(\.[a-z0-9-]+)+$/ {print $1 "\t" k}' \
    "$WORK/unique.txt" "$WORK/$1.tsv" | sed -n '101,103p'
}
CHANGED=$(pick Contacts)
DELETED=$(pick Leads)
[ -n "$CHANGED" ] && [ -n "$DELETED" ] || die "no records with a unique email to change"
i=0
while IFS=$'\t' read -r id email; do
  i=$((i + 1))
  emu PATCH "/__emulator/records/Contacts/$id" "{\"First_Name\":\"Renamed$i\",\"Last_Name\":\"InZoho\",\"Email_Opt_Out\":true}" >/dev/null
  echo "  changed $email → Renamed$i InZoho, opted out"
done <<<"$CHANGED"
while IFS=$'\t' read -r id email; do
  emu DELETE "/__emulator/records/Leads/$id" >/dev/null
  echo "  deleted lead $email"
done <<<"$DELETED"

say "Sync Now (incremental)"
RUN2=$(api POST "/v1/integrations/$INTEGRATION_ID/syncs" '{"mode":"incremental"}' | jq -r .id)
progress "$RUN2"
jq -r '"incremental run: fetched \(.counters.fetched) changed records, applied \(.counters.applied), deleted \(.counters.deleted)"' <<<"$RUN_VIEW"

say "the audience followed"
in_list() { cut -f2 <<<"$1" | sed "s/.*/'&'/" | paste -sd, -; }
echo "changed contacts:"
members_sql "SELECT '  ' || email, first_name, last_name, CASE WHEN unsubscribed THEN 'unsubscribed' ELSE 'subscribed' END
             FROM audience_members WHERE audience_id = '$AUDIENCE' AND email IN ($(in_list "$CHANGED")) ORDER BY email"
echo "deleted leads:"
members_sql "SELECT '  ' || email, CASE WHEN removed_at IS NULL THEN 'STILL A MEMBER' ELSE 'removed (' || removed_reason || ')' END
             FROM audience_members WHERE audience_id = '$AUDIENCE' AND email IN ($(in_list "$DELETED")) ORDER BY email"
echo "members now     $(members_sql "SELECT count(*) FROM audience_members WHERE audience_id = '$AUDIENCE' AND removed_at IS NULL")"
say "the setup pages"
echo "  $API/ui/   (sign in with token $TOKEN and account $ACCOUNT)"
if [ "${DEMO_UI:-}" = 1 ] && [ "${CI:-}" != true ]; then
  echo "  the stack stays up for the pages; press Ctrl-C to stop everything"
  while :; do sleep 3600; done
fi
say "done; stopping everything"
