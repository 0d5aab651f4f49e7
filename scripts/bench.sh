#!/usr/bin/env bash
# Benchmarks the release build: seeds a dataset into a temporary database, starts the server,
# drives it with wrk and prints a results table (also written to bench-results/).
#
#   ./scripts/bench.sh [small|large] [seconds per scenario]
#   ./scripts/bench.sh live [seconds of writes]
#   ./scripts/bench.sh live-100k [seconds of writes]
#
# `live`: on the `large` dataset, BENCH_STREAMS open pages (default 10,000) of BENCH_LIVE_USERS
# users (default 1,250) follow live updates while BENCH_WRITES_PER_SECOND toggles (default 20)
# run; the load tool (server/examples/bench_live/) reports how soon every page converged,
# the requests live updates caused and the server's memory; the hot GET is measured without
# and with the streams open.
#
# `live-100k`: 100,000 streams of 12,500 users on 250 HTTP/2 connections (BENCH_CONNECTIONS;
# a process may not hold 100,000 sockets here), following the list's first 100 pages
# (BENCH_PAGES) while the writes toggle topics of those pages. With BENCH_BACKEND=postgres
# both live profiles run on PostgreSQL with two instances, each holding half the streams.
#
# BENCH_RUST_LOG sets the servers' log filter (`domain::live=debug` shows every change told to
# every open page), and BENCH_LOG_DIR keeps their logs after the run.
#
# Installs what it lacks (wrk from Debian, wasm-opt from crates.io, the build tools). Reports;
# never gates anything: compare figures measured in the same run.
set -euo pipefail
cd "$(dirname "$0")/.."
profile=${1:-small}
duration=${2:-10}
live=""
case "$profile" in
  live) live=1 profile=large duration=${2:-30}
    : "${BENCH_STREAMS:=10000}" "${BENCH_LIVE_USERS:=1250}" "${BENCH_CONNECTIONS:=0}" "${BENCH_PAGES:=1}" ;;
  live-100k) live=1 profile=large duration=${2:-30}
    : "${BENCH_STREAMS:=100000}" "${BENCH_LIVE_USERS:=12500}" "${BENCH_CONNECTIONS:=250}" "${BENCH_PAGES:=100}" ;;
esac
port=${BENCH_PORT:-3400}
base="http://127.0.0.1:$port"
logins=${BENCH_USERS:-200}
metrics_token=$(head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \n')

log() { printf '==> %s\n' "$*" >&2; }

./scripts/setup.sh
if ! command -v wrk >/dev/null; then
  log "installing wrk"
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO=sudo
  $SUDO apt-get update && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y wrk
fi
if ! command -v wasm-opt >/dev/null || [ "$(command -v wasm-opt)" = /usr/bin/wasm-opt ]; then
  # Debian's binaryen is too old: its wasm-opt output does not hydrate.
  log "installing wasm-opt from crates.io"
  cargo install wasm-opt --locked
fi

log "building the release server and site"
cargo xtask build --release
if [ -n "$live" ]; then
  log "building the live load tool"
  cargo build --release --locked -p server --example bench_live
fi
# Asset names carry content hashes (listed beside the binary).
asset() { sed -n "s/^$1: //p" target/release/hash.txt; }
js_path="/pkg/subscriptions.$(asset js).js"
wasm_file="target/site/pkg/subscriptions.$(asset wasm).wasm"

work=$(mktemp -d)
server_pid=""
extra_pids=()
pg_database=""
cleanup() {
  [ -n "$server_pid" ] && kill "$server_pid" 2>/dev/null && wait "$server_pid" 2>/dev/null
  for pid in "${extra_pids[@]}"; do kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; done
  # BENCH_LOG_DIR: where the servers' logs are kept (the work folder goes).
  [ -n "${BENCH_LOG_DIR:-}" ] && mkdir -p "$BENCH_LOG_DIR" && cp "$work"/*.log "$BENCH_LOG_DIR"/ 2>/dev/null || true
  [ -n "$pg_database" ] && psql "$pg_server" -qc "DROP DATABASE IF EXISTS $pg_database WITH (FORCE)"
  rm -rf "$work"
}
trap cleanup EXIT

export DATABASE_URL="sqlite://$work/bench.db"
log "seeding the $profile dataset"
seed_line=$(target/release/server bench-seed --profile "$profile")
echo "$seed_line" >&2

# seed_postgres: creates a database for the run on BENCH_POSTGRES_URL (dropped on exit), points
# DATABASE_URL at it and seeds the profile's dataset.
pg_server=${BENCH_POSTGRES_URL:-postgres://postgres@127.0.0.1:5432/test}
seed_postgres() {
  pg_database="subs_bench_$$"
  psql "$pg_server" -v ON_ERROR_STOP=1 -qc "CREATE DATABASE $pg_database"
  export DATABASE_URL="${pg_server%/*}/$pg_database"
  log "seeding the $profile dataset into PostgreSQL"
  target/release/server bench-seed --profile "$profile" >&2
}

# launch PORT TTL LOG: starts a release server; its pid in $launched.
launch() {
  LEPTOS_SITE_ADDR="127.0.0.1:$1" LEPTOS_SITE_ROOT=target/site \
    RUST_LOG="${BENCH_RUST_LOG:-warn,app::topics::ssr::purge=info}" \
    TOPIC_CACHE_TTL_SECONDS="$2" METRICS_TOKEN="$metrics_token" SHUTDOWN_DRAIN_SECONDS=0 \
    target/release/server >"$3" 2>&1 &
  launched=$!
  for _ in $(seq 100); do
    curl -fs "http://127.0.0.1:$1/healthz" >/dev/null 2>&1 && return 0
    sleep 0.1
  done
  echo "the server did not start:" >&2; cat "$3" >&2; exit 1
}

start_server() {
  launch "$port" "${1:-60}" "$work/server.log"
  server_pid=$launched
}

stop_server() {
  kill "$server_pid"; wait "$server_pid" 2>/dev/null || true; server_pid=""
}

# The instances whose counters a scenario adds up (more than one behind the load balancer).
metric_bases=("$base")
metric() {
  local total=0 value
  for at in "${metric_bases[@]}"; do
    value=$(curl -fs -H "Authorization: Bearer $metrics_token" "$at/metrics" \
      | awk -v name="$1" '$1 == name { print $2 }')
    total=$(( total + ${value:-0} ))
  done
  echo "$total"
}

# shellcheck source=bench/login.sh
. scripts/bench/login.sh
login_users() { log_in_bench_users "$base" "$logins" "$work/cookies"; }

export BENCH_LUA="$PWD/scripts/bench" BENCH_COOKIES="$work/cookies"
# Where wrk sends its load: the server, or the load balancer in front of several.
target=$base
results="$work/results.md"
{
  echo "| scenario | connections | requests/s | p50 ms | p99 ms | p99.9 ms | errors | SQL statements / request |"
  echo "|---|---|---|---|---|---|---|---|"
} >"$results"

# run NAME CONNECTIONS SCRIPT [ARGS…]
run() {
  local name=$1 connections=$2 script=$3; shift 3
  local threads=$(( connections < 2 ? 1 : 2 ))
  local sql_before sql_after out line requests
  sql_before=$(metric sql_statements_total)
  out=$(wrk -t"$threads" -c"$connections" -d"${duration}s" --timeout 5s \
    -s "scripts/bench/$script" "$target" -- "$@")
  sql_after=$(metric sql_statements_total)
  line=$(grep '^RESULT' <<<"$out")
  requests=$(sed -n 's/.*requests=\([0-9]*\).*/\1/p' <<<"$line")
  local field; field() { sed -n "s/.* $1=\([^ ]*\).*/\1/p" <<<"$line"; }
  printf '| %s | %s | %s | %s | %s | %s | %s | %s |\n' "$name" "$connections" \
    "$(field rps)" "$(field p50_ms)" "$(field p99_ms)" "$(field p999_ms)" "$(field errors)" \
    "$(awk -v a="$sql_before" -v b="$sql_after" -v r="$requests" \
        'BEGIN { printf "%.2f", (r > 0 ? (b - a) / r : 0) }')" >>"$results"
  log "$name: $line"
}

if [ -n "$live" ]; then
  streams=$BENCH_STREAMS live_users=$BENCH_LIVE_USERS
  writes=${BENCH_WRITES_PER_SECOND:-20} hot=10
  pids=() live_bases=()
  if [ "${BENCH_BACKEND:-sqlite}" = postgres ]; then
    seed_postgres
    start_server 60
    launch $(( port + 1 )) 60 "$work/server2.log"
    extra_pids+=("$launched")
    pids=(--server-pid "$server_pid" --server-pid "$launched")
    live_bases=(--base "$base" --base "http://127.0.0.1:$(( port + 1 ))")
    metric_bases=("$base" "http://127.0.0.1:$(( port + 1 ))")
  else
    start_server 60
    pids=(--server-pid "$server_pid")
    live_bases=(--base "$base")
  fi
  log "logging in $logins users for wrk"
  login_users
  curl -fs -H "Cookie: $(head -1 "$work/cookies")" "$base/topics/" >/dev/null
  duration=$hot run "hot GET /topics/, no streams open" 16 get.lua /topics/
  log "opening $streams streams of $live_users users, then $writes toggles a second for $duration s"
  rm -f "$work/ready"
  target/release/examples/bench_live "${live_bases[@]}" --users "$live_users" --streams "$streams" \
    --connections "$BENCH_CONNECTIONS" --pages "$BENCH_PAGES" \
    --writes-per-second "$writes" --seconds "$duration" --idle-seconds $(( hot + 10 )) \
    --ready-file "$work/ready" "${pids[@]}" >"$work/live.out" &
  tool=$!
  extra_pids+=("$tool")
  until [ -f "$work/ready" ]; do
    kill -0 "$tool" 2>/dev/null || { echo "the load tool stopped" >&2; exit 1; }
    sleep 1
  done
  # The last streams' first events, and the logins' memory returned: let them settle.
  sleep 5
  duration=$hot run "hot GET /topics/, $streams idle streams open" 16 get.lua /topics/
  wait "$tool"
  dropped=$(metric live_streams_dropped_total)
  to_pages=$(metric live_bumps_to_pages_total) to_everyone=$(metric live_bumps_to_everyone_total)
  # Once more without streams: the machine's drift over the run shows against the first.
  duration=$hot run "hot GET /topics/, streams closed again" 16 get.lua /topics/
  line=$(grep '^RESULT' "$work/live.out")
  field() { sed -n "s/.* $1=\([^ ]*\).*/\1/p" <<<"$line"; }
  {
    echo
    echo "| live: $streams streams, $(field users) users, $(field writes_per_s) toggles/s, ${BENCH_BACKEND:-sqlite} | value |"
    echo "|---|---|"
    for name in connections pages page_write_pairs converge_p50_ms converge_p99_ms \
      converge_max_ms not_converged events_per_s patches versions refetches_per_write \
      live_requests_per_s failed_refetches failed_writes open_retries server_cpu_ms_per_write \
      rss_before_mib rss_open_mib rss_end_mib; do
      echo "| $name | $(field "$name") |"
    done
    echo "| streams dropped (fell behind) | $dropped |"
    echo "| changes told to the pages showing them / to every page | $to_pages / $to_everyone |"
    echo
    echo "- $(nproc) cores ($(sed -n 's/^model name\s*: //p' /proc/cpuinfo | head -1)), $(date -u +%Y-%m-%d), commit $(git rev-parse --short HEAD)"
  } >>"$results"
  mkdir -p bench-results
  cp "$results" "bench-results/live-$(date -u +%Y%m%d-%H%M%S).md"
  cat "$results"
  exit 0
fi

topics=$( [ "$profile" = large ] && echo 10000 || echo 203 )
log "starting the server (cache on) and logging in $logins users"
start_server 60
login_users
curl -fs -H "Cookie: $(head -1 "$work/cookies")" "$base/topics/" >/dev/null  # warm

run "/healthz (ceiling)" 16 get.lua /healthz
BENCH_COOKIES=/dev/null run "static asset (JS), 1 connection" 1 get.lua "$js_path"
run "hot GET /topics/, 1 connection" 1 get.lua /topics/
run "hot GET /topics/ (cache hit)" 16 get.lua /topics/
run "subscribe/unsubscribe toggles" 16 toggle.lua 2
run "mixed 90/10, $logins users" 16 mixed.lua "$topics"
rss_kib=$(awk '/VmRSS/ { print $2 }' "/proc/$server_pid/status")

log "deleting Python, which every benchmark user follows"
staff_cookie=$(curl -fs -o /dev/null -D - -X POST "$base/login" \
  --data-urlencode "username=benchstaff" --data-urlencode "password=bench-password" \
  | sed -n 's/^[Ss]et-[Cc]ookie: \(subscriptions_session=[^;]*\).*/\1/p' | tr -d '\r')
python_subscribers=$(curl -fs -H "Cookie: $staff_cookie" "$base/topics/?q=python" \
  | sed -n 's/.*data-topic-name="Python" data-subscribers="\([0-9]*\)".*/\1/p')
delete_timing=$(curl -s -o /dev/null -w '%{http_code} %{time_total}' -X POST \
  -H "Cookie: $staff_cookie" "$base/topics/delete/1/")
# A topic past one purge batch is retired in the request and purged afterwards; meanwhile
# the server keeps answering (the first write after the delete shows how long it waited).
toggle_timing=$(curl -s -o /dev/null -w '%{http_code} %{time_total}' -X POST \
  -H "Cookie: $staff_cookie" "$base/topics/subscribe/2/")
purge_ms=""
for _ in $(seq 300); do
  purge_ms=$(sed -n 's/.*retired topic purged.*elapsed_ms=\([0-9]*\).*/\1/p' "$work/server.log" | head -1)
  [ -n "$purge_ms" ] && break
  sleep 0.1
done
stop_server

log "restarting with the cache off: every load is a miss"
start_server 0
run "GET /topics/, every request a miss" 16 rotate.lua
stop_server

# The same scenarios on PostgreSQL: one instance, then two behind nginx (deploy/nginx.conf).
# BENCH_POSTGRES=0 skips them; BENCH_POSTGRES_URL names the server (a database is created
# on it for the run and dropped after).
if [ "${BENCH_POSTGRES:-1}" = 1 ]; then
  seed_postgres
  start_server 60
  login_users
  curl -fs -H "Cookie: $(head -1 "$work/cookies")" "$base/topics/" >/dev/null
  run "PostgreSQL: hot GET /topics/, 1 connection" 1 get.lua /topics/
  run "PostgreSQL: hot GET /topics/ (cache hit)" 16 get.lua /topics/
  run "PostgreSQL: subscribe/unsubscribe toggles" 16 toggle.lua 2
  run "PostgreSQL: mixed 90/10, $logins users" 16 mixed.lua "$topics"

  if ! command -v nginx >/dev/null && [ ! -x /usr/sbin/nginx ]; then
    log "installing nginx"
    SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO=sudo
    $SUDO apt-get update && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y nginx
  fi
  second=$(( port + 1 )) balancer=$(( port + 2 ))
  launch "$second" 60 "$work/server2.log"
  extra_pids+=("$launched")
  mkdir -p "$work/nginx/tmp"
  sed -e "s/127.0.0.1:3000/127.0.0.1:$balancer/" -e "s/127.0.0.1:3001/127.0.0.1:$port/" \
    -e "s/127.0.0.1:3002/127.0.0.1:$second/" deploy/nginx.conf >"$work/nginx/nginx.conf"
  "$(command -v nginx || echo /usr/sbin/nginx)" -p "$work/nginx" -c "$work/nginx/nginx.conf" \
    -g 'daemon off;' &
  extra_pids+=("$!")
  for _ in $(seq 100); do
    curl -fs "http://127.0.0.1:$balancer/healthz" >/dev/null 2>&1 && break
    sleep 0.1
  done
  target="http://127.0.0.1:$balancer" metric_bases=("$base" "http://127.0.0.1:$second")
  # Sessions are shared: the cookies from the first instance work on both.
  run "PostgreSQL, 2 instances behind nginx: hot GET /topics/" 16 get.lua /topics/
  run "PostgreSQL, 2 instances behind nginx: toggles" 16 toggle.lua 2
  run "PostgreSQL, 2 instances behind nginx: mixed 90/10" 16 mixed.lua "$topics"
  target=$base metric_bases=("$base")
  stop_server
fi

wasm_gz=$(gzip -9 -c "$wasm_file" | wc -c)
{
  echo
  echo "- dataset: $seed_line"
  echo "- server RSS after the mixed run: $(( rss_kib / 1024 )) MiB"
  echo "- POST /topics/delete/1/ (Python, ${python_subscribers:-?} subscribers): status ${delete_timing% *}, $(awk -v t="${delete_timing#* }" 'BEGIN { printf "%.1f", t * 1000 }') ms"
  ms() { awk -v t="${1#* }" 'BEGIN { printf "%.1f", t * 1000 }'; }
  echo "- a subscribe right after that delete: status ${toggle_timing% *}, $(ms "$toggle_timing") ms"
  echo "- background purge of the deleted topic's subscriptions: ${purge_ms:-none (deleted within the request)}${purge_ms:+ ms}"
  # The page/UX issue's budget: 300 KiB gzipped.
  over=""
  [ "$wasm_gz" -gt $((300 * 1024)) ] && over=" — OVER the 300 KiB budget"
  echo "- release wasm: $(( $(wc -c <"$wasm_file") / 1024 )) KiB, $(( wasm_gz / 1024 )) KiB gzipped$over"
  echo "- $duration s per scenario, wrk $(wrk -v 2>&1 | head -1 | awk '{print $2}'), $(nproc) cores ($(sed -n 's/^model name\s*: //p' /proc/cpuinfo | head -1)), $(date -u +%Y-%m-%d), commit $(git rev-parse --short HEAD)"
} >>"$results"

mkdir -p bench-results
cp "$results" "bench-results/$profile-$(date -u +%Y%m%d-%H%M%S).md"
cat "$results"
