-- GET /topics/ as a different user on every request.
package.path = os.getenv("BENCH_LUA") .. "/?.lua;" .. package.path
local common = require("common")
local cookies, next_user = {}, 0

function init(args)
  cookies = common.cookies()
  next_user = math.random(#cookies)
end

function request()
  next_user = next_user % #cookies + 1
  return wrk.format("GET", "/topics/", { Cookie = cookies[next_user] })
end

done = common.report
