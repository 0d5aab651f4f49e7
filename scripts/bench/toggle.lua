-- Each thread's user subscribes to and unsubscribes from one topic, alternately.
package.path = os.getenv("BENCH_LUA") .. "/?.lua;" .. package.path
local common = require("common")
local counter, cookie, topic, subscribed = 0, nil, 1, false

function setup(thread)
  counter = counter + 1
  thread:set("me", counter)
end

function init(args)
  local cookies = common.cookies()
  cookie = cookies[(me - 1) % #cookies + 1]
  topic = tonumber(args[1] or "1")
end

function request()
  subscribed = not subscribed
  local action = subscribed and "subscribe" or "unsubscribe"
  return wrk.format("POST", "/topics/" .. action .. "/" .. topic .. "/",
    { Cookie = cookie, ["Content-Length"] = "0" })
end

done = common.report
