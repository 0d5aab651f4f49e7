-- 90 % GET /topics/ and 10 % subscribe or unsubscribe, each request as a random user and,
-- for writes, a random topic among the first N (the first script argument).
package.path = os.getenv("BENCH_LUA") .. "/?.lua;" .. package.path
local common = require("common")
local cookies, topics = {}, 200

function init(args)
  cookies = common.cookies()
  topics = tonumber(args[1] or "200")
  math.randomseed(os.time() + math.random(1000))
end

function request()
  local cookie = cookies[math.random(#cookies)]
  if math.random(10) == 1 then
    local action = math.random(2) == 1 and "subscribe" or "unsubscribe"
    return wrk.format("POST", "/topics/" .. action .. "/" .. math.random(topics) .. "/",
      { Cookie = cookie, ["Content-Length"] = "0" })
  end
  return wrk.format("GET", "/topics/", { Cookie = cookie })
end

done = common.report
