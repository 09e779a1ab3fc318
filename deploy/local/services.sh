#!/usr/bin/env bash
# Local services for development, tests and the demo: PostgreSQL, RabbitMQ and Redis on loopback.
#
#   deploy/local/services.sh up      install what is missing, start all three, wait until each answers,
#                                    create the pledgesync role and database (idempotent)
#   deploy/local/services.sh down    stop all three
#   deploy/local/services.sh status  say which answer
#
# Written for a fresh Debian machine where we are root: PostgreSQL is installed but stopped, RabbitMQ
# and Redis are not installed, and packages do not start their services on install. Nothing here
# needs Docker; deploy/local/compose.yaml offers the same services where Docker exists.
set -euo pipefail

PG_USER=pledgesync
PG_PASSWORD=pledgesync
PG_DB=pledgesync
REDIS_PORT=${REDIS_PORT:-6379}
WAIT_SECS=${WAIT_SECS:-120}

log() { printf '[services] %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

as_root() {
  if [ "$(id -u)" -eq 0 ]; then "$@"; elif command -v sudo >/dev/null; then sudo "$@"; else die "need root for: $*"; fi
}

# wait_for NAME CMD...: run CMD until it succeeds or WAIT_SECS pass.
wait_for() {
  local name=$1; shift
  local deadline=$((SECONDS + WAIT_SECS))
  until "$@" >/dev/null 2>&1; do
    if [ $SECONDS -ge $deadline ]; then die "$name did not answer within ${WAIT_SECS}s"; fi
    sleep 0.5
  done
  log "$name is up"
}

install_missing() {
  local missing=()
  command -v redis-server >/dev/null || missing+=(redis-server)
  command -v rabbitmq-server >/dev/null || [ -x /usr/sbin/rabbitmq-server ] || missing+=(rabbitmq-server)
  command -v pg_ctlcluster >/dev/null || missing+=(postgresql)
  if [ ${#missing[@]} -gt 0 ]; then
    log "installing ${missing[*]}"
    as_root env DEBIAN_FRONTEND=noninteractive apt-get update -q
    # Packages do not start their services on install here; up() starts each one itself.
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}"
  fi
}

pg_cluster() {
  # The newest installed cluster: "VERSION NAME".
  pg_lsclusters --no-header 2>/dev/null | awk '{print $1, $2}' | sort -V | tail -n 1
}

pg_up() {
  local cluster
  cluster=$(pg_cluster)
  if [ -z "$cluster" ]; then
    local version
    version=$(ls /usr/lib/postgresql | sort -V | tail -n 1)
    log "creating PostgreSQL cluster $version main"
    as_root pg_createcluster "$version" main >/dev/null
    cluster="$version main"
  fi
  # shellcheck disable=SC2086
  set -- $cluster
  if ! pg_lsclusters --no-header | awk -v v="$1" -v n="$2" '$1==v && $2==n {print $4}' | grep -q online; then
    log "starting PostgreSQL $1/$2"
    as_root pg_ctlcluster "$1" "$2" start
  fi
  wait_for PostgreSQL pg_isready -h 127.0.0.1 -p 5432
  as_root su postgres -c "psql -v ON_ERROR_STOP=1 -qAt" <<SQL >/dev/null
DO \$\$
BEGIN
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '$PG_USER') THEN
    CREATE ROLE $PG_USER LOGIN PASSWORD '$PG_PASSWORD' CREATEDB;
  END IF;
END
\$\$;
SQL
  if ! as_root su postgres -c "psql -qAt -c \"SELECT 1 FROM pg_database WHERE datname = '$PG_DB'\"" | grep -q 1; then
    as_root su postgres -c "createdb -O $PG_USER $PG_DB"
  fi
  wait_for "PostgreSQL login" env PGPASSWORD=$PG_PASSWORD psql -h 127.0.0.1 -U $PG_USER -d $PG_DB -qAt -c 'SELECT 1'
}

redis_up() {
  if ! redis-cli -h 127.0.0.1 -p "$REDIS_PORT" ping 2>/dev/null | grep -q PONG; then
    log "starting Redis on 127.0.0.1:$REDIS_PORT"
    # Redis holds only what may be lost, so no persistence.
    as_root redis-server --daemonize yes --bind 127.0.0.1 --port "$REDIS_PORT" --save '' --appendonly no \
      --logfile /tmp/pledgesync-redis.log --dir /tmp
  fi
  wait_for Redis sh -c "redis-cli -h 127.0.0.1 -p $REDIS_PORT ping | grep -q PONG"
}

rabbit_env() {
  export RABBITMQ_NODE_IP_ADDRESS=127.0.0.1 ERL_EPMD_ADDRESS=127.0.0.1 RABBITMQ_NODENAME=rabbit@localhost
}

rabbit_up() {
  rabbit_env
  if ! as_root env RABBITMQ_NODENAME=$RABBITMQ_NODENAME rabbitmq-diagnostics -q check_running >/dev/null 2>&1; then
    log "starting RabbitMQ on 127.0.0.1:5672"
    # The distribution port too stays on loopback.
    as_root env RABBITMQ_NODE_IP_ADDRESS=127.0.0.1 ERL_EPMD_ADDRESS=127.0.0.1 RABBITMQ_NODENAME=$RABBITMQ_NODENAME \
      RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS="-kernel inet_dist_use_interface {127,0,0,1}" \
      rabbitmq-server -detached
  fi
  wait_for RabbitMQ as_root env RABBITMQ_NODENAME=$RABBITMQ_NODENAME rabbitmqctl -q await_startup --timeout 5
  wait_for "RabbitMQ port" bash -c "exec 3<>/dev/tcp/127.0.0.1/5672"
}

up() {
  install_missing
  pg_up
  redis_up
  rabbit_up
  log "all services up: postgres://$PG_USER:***@127.0.0.1:5432/$PG_DB amqp://127.0.0.1:5672 redis://127.0.0.1:$REDIS_PORT"
}

down() {
  rabbit_env
  if command -v rabbitmqctl >/dev/null; then
    as_root env RABBITMQ_NODENAME=$RABBITMQ_NODENAME rabbitmqctl -q stop >/dev/null 2>&1 && log "RabbitMQ stopped" || true
  fi
  if command -v redis-cli >/dev/null; then
    redis-cli -h 127.0.0.1 -p "$REDIS_PORT" shutdown nosave >/dev/null 2>&1 && log "Redis stopped" || true
  fi
  local cluster
  cluster=$(pg_cluster)
  if [ -n "$cluster" ]; then
    # shellcheck disable=SC2086
    as_root pg_ctlcluster $cluster stop >/dev/null 2>&1 && log "PostgreSQL stopped" || true
  fi
}

status() {
  rabbit_env
  local rc=0
  pg_isready -h 127.0.0.1 -p 5432 >/dev/null 2>&1 && echo "postgres: up" || { echo "postgres: down"; rc=1; }
  redis-cli -h 127.0.0.1 -p "$REDIS_PORT" ping 2>/dev/null | grep -q PONG && echo "redis: up" || { echo "redis: down"; rc=1; }
  as_root env RABBITMQ_NODENAME=$RABBITMQ_NODENAME rabbitmq-diagnostics -q check_running >/dev/null 2>&1 \
    && echo "rabbitmq: up" || { echo "rabbitmq: down"; rc=1; }
  return $rc
}

case "${1:-}" in
  up) up ;;
  down) down ;;
  status) status ;;
  *) echo "usage: $0 up|down|status" >&2; exit 2 ;;
esac
