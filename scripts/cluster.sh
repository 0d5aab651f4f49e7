#!/usr/bin/env bash
# A try-out of several instances: two servers on one PostgreSQL database behind nginx (round
# robin) at http://127.0.0.1:3000. Ctrl-C stops everything.
#
#   DATABASE_URL  the shared database (default postgres://postgres@127.0.0.1:5432/subscriptions,
#                 created if missing)
#
# Installs nginx from Debian if missing, and the build tools (scripts/setup.sh).
set -euo pipefail
cd "$(dirname "$0")/.."

DATABASE_URL=${DATABASE_URL:-postgres://postgres@127.0.0.1:5432/subscriptions}
log() { printf '==> %s\n' "$*" >&2; }

./scripts/setup.sh
if ! command -v nginx >/dev/null && [ ! -x /usr/sbin/nginx ]; then
  log "installing nginx from Debian"
  SUDO=""
  [ "$(id -u)" -ne 0 ] && SUDO=sudo
  $SUDO apt-get update
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y nginx
fi
NGINX=$(command -v nginx || echo /usr/sbin/nginx)

# The database must exist; the instances create and migrate its tables.
name=${DATABASE_URL##*/}
name=${name%%\?*}
server_url=${DATABASE_URL%/*}/postgres
if [ "$(psql "$server_url" -tAc "SELECT 1 FROM pg_database WHERE datname = '$name'")" != 1 ]; then
  log "creating the database $name"
  psql "$server_url" -v ON_ERROR_STOP=1 -qc "CREATE DATABASE \"$name\""
fi

log "building"
cargo xtask build

run=$(mktemp -d)
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$run"
}
trap cleanup EXIT INT TERM

for port in 3001 3002; do
  DATABASE_URL=$DATABASE_URL \
    LEPTOS_SITE_ROOT=target/site \
    LEPTOS_SITE_ADDR=127.0.0.1:$port \
    PUBLIC_ORIGIN=http://127.0.0.1:3000 \
    TRUSTED_PROXY_HEADER=X-Forwarded-For \
    target/debug/server &
  pids+=($!)
done

mkdir -p "$run/tmp"
"$NGINX" -p "$run" -c "$PWD/deploy/nginx.conf" -g 'daemon off;' &
pids+=($!)
log "serving at http://127.0.0.1:3000 (instances on :3001 and :3002); Ctrl-C stops"
wait -n "${pids[@]}"
