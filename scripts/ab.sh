#!/usr/bin/env bash
# A/B of release server binaries on SQLite: each binary gets its own freshly seeded database
# and its own 200 logged-in users, then the scenarios run on them in turn (A, B, …, A, B, …),
# every other round in the reverse order, so that the machine's drift over the run falls on
# every binary alike.
#
#   ./scripts/ab.sh SECONDS ROUNDS NAME=BINARY NAME=BINARY [NAME=BINARY …]
#
# Build old commits with `git worktree add /tmp/wt-X X` and `cargo build --release -p server`
# there. The binaries serve this checkout's built site (`target/site`; `cargo xtask build
# --release` first). Prints one table row per scenario and binary; never gates anything.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=$1 rounds=$2; shift 2
logins=200
work=$(mktemp -d)
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null; wait "$pid" 2>/dev/null; done
  rm -rf "$work"
}
trap cleanup EXIT
log() { printf '==> %s\n' "$*" >&2; }
# shellcheck source=bench/login.sh
. scripts/bench/login.sh

names=() ports=()
port=3600
for spec in "$@"; do
  name=${spec%%=*} binary=${spec#*=}
  port=$((port + 1))
  mkdir -p "$work/$name"
  # The asset names a release binary renders come from hash.txt beside it.
  cp "$binary" "$work/$name/server"
  [ -f target/release/hash.txt ] && cp target/release/hash.txt "$work/$name/"
  DATABASE_URL="sqlite://$work/$name/bench.db" "$work/$name/server" bench-seed --profile small >/dev/null
  DATABASE_URL="sqlite://$work/$name/bench.db" LEPTOS_SITE_ADDR="127.0.0.1:$port" \
    LEPTOS_SITE_ROOT=target/site RUST_LOG=warn SHUTDOWN_DRAIN_SECONDS=0 \
    "$work/$name/server" >"$work/$name/log" 2>&1 &
  pids+=($!)
  for _ in $(seq 100); do curl -fs "http://127.0.0.1:$port/healthz" >/dev/null 2>&1 && break; sleep 0.1; done
  log_in_bench_users "http://127.0.0.1:$port" "$logins" "$work/$name/cookies"
  names+=("$name") ports+=("$port")
  log "$name ready on $port"
done

export BENCH_LUA="$PWD/scripts/bench"
echo "| scenario | round | binary | requests/s | p50 ms | p99 ms | p99.9 ms |"
echo "|---|---|---|---|---|---|---|"
for round in $(seq "$rounds"); do
  for scenario in "healthz:get.lua:/healthz" "hot GET /topics/:get.lua:/topics/" \
    "toggles:toggle.lua:2" "mixed 90/10:mixed.lua:203"; do
    IFS=: read -r title script argument <<<"$scenario"
    # Every other round in the reverse order, so no binary always runs first.
    order=("${!names[@]}")
    if [ $((round % 2)) -eq 0 ]; then order=($(printf '%s\n' "${order[@]}" | tac)); fi
    for i in "${order[@]}"; do
      line=$(BENCH_COOKIES="$work/${names[$i]}/cookies" wrk -t2 -c16 -d"${seconds}s" --timeout 5s \
        -s "scripts/bench/$script" "http://127.0.0.1:${ports[$i]}" -- "$argument" | grep '^RESULT')
      field() { sed -n "s/.* $1=\([^ ]*\).*/\1/p" <<<"$line"; }
      echo "| $title | $round | ${names[$i]} | $(field rps) | $(field p50_ms) | $(field p99_ms) | $(field p999_ms) |"
    done
  done
done
