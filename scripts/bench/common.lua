-- Shared by the benchmark scenarios: session cookies, and one result line for bench.sh.
local M = {}

function M.cookies()
  local list = {}
  local file = io.open(os.getenv("BENCH_COOKIES"), "r")
  if file then
    for line in file:lines() do
      if #line > 0 then list[#list + 1] = line end
    end
    file:close()
  end
  return list
end

function M.report(summary, latency)
  local seconds = summary.duration / 1e6
  local errors = summary.errors.connect + summary.errors.read + summary.errors.write
    + summary.errors.status + summary.errors.timeout
  io.write(string.format(
    "RESULT requests=%d rps=%.1f p50_ms=%.3f p99_ms=%.3f p999_ms=%.3f errors=%d\n",
    summary.requests, summary.requests / seconds,
    latency:percentile(50) / 1000, latency:percentile(99) / 1000,
    latency:percentile(99.9) / 1000, errors))
end

return M
