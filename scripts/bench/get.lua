-- GET the path given as the first script argument, as the first benchmark user when
-- BENCH_COOKIES is set (a hot, cached page), anonymously otherwise.
package.path = os.getenv("BENCH_LUA") .. "/?.lua;" .. package.path
local common = require("common")
local path = "/"

function init(args)
  path = args[1] or "/"
  local cookies = common.cookies()
  if cookies[1] then wrk.headers["Cookie"] = cookies[1] end
end

function request()
  return wrk.format("GET", path)
end

done = common.report
