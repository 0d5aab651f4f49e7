# Sourced by bench.sh and ab.sh.
# log_in_bench_users BASE COUNT FILE: logs in bench1…benchCOUNT (seeded by `server bench-seed`)
# at BASE and writes one session cookie per line to FILE; exits when any login failed.
log_in_bench_users() {
  local base=$1 count=$2 file=$3
  : >"$file"
  for n in $(seq "$count"); do
    curl -fs -o /dev/null -D - -X POST "$base/login" \
      --data-urlencode "username=bench$n" --data-urlencode "password=bench-password" \
      | sed -n 's/^[Ss]et-[Cc]ookie: \(subscriptions_session=[^;]*\).*/\1/p' | tr -d '\r' \
      >>"$file"
  done
  [ "$(wc -l <"$file")" -eq "$count" ] || { echo "login failed at $base" >&2; exit 1; }
}
