-- Scenario: POST /v2/ratelimit.limit with identifier "user_" .. (counter % BENCH_IDENTIFIERS), the
-- counter advancing by one per request, so the run cycles through BENCH_IDENTIFIERS identifiers
-- (namespace BENCH_NAMESPACE, limit BENCH_RL_LIMIT per BENCH_RL_DURATION ms). With several wrk
-- threads, each starts at a different offset of the cycle. With BENCH_RL_STYLE=throttlecrab the
-- same cycle goes to throttlecrab-server's POST /throttle instead (key "user_<n>", max_burst and
-- count_per_period BENCH_RL_LIMIT, period BENCH_RL_DURATION / 1000 seconds): run.sh's ceiling of
-- scenario i when throttlecrab-server is installed.
local lib = dofile(os.getenv("BENCH_DIR") .. "/lib.lua")

local counter = 0
function setup(thread)
   thread:set("tid", counter)
   counter = counter + 1
end

local n, i, requests

-- Every request is built once, in init: the client then only indexes a table per request, so it
-- spends its share of the two cores on sending, not on building strings (and collecting them).
function init(args)
   n = tonumber(os.getenv("BENCH_IDENTIFIERS"))
   local nthreads = tonumber(os.getenv("BENCH_THREADS"))
   i = math.floor(n * tid / nthreads)
   local limit, duration = os.getenv("BENCH_RL_LIMIT"), os.getenv("BENCH_RL_DURATION")
   local build, prefix, suffix
   if os.getenv("BENCH_RL_STYLE") == "throttlecrab" then
      build = lib.post_request_builder("/throttle", os.getenv("BENCH_ROOT_KEY"))
      prefix = '{"key":"user_'
      suffix = '","max_burst":' .. limit .. ',"count_per_period":' .. limit
         .. ',"period":' .. math.floor(tonumber(duration) / 1000) .. '}'
   else
      build = lib.post_request_builder("/v2/ratelimit.limit", os.getenv("BENCH_ROOT_KEY"))
      prefix = '{"namespace":"' .. os.getenv("BENCH_NAMESPACE") .. '","identifier":"user_'
      suffix = '","limit":' .. limit .. ',"duration":' .. duration .. '}'
   end
   requests = {}
   for id = 0, n - 1 do
      requests[id + 1] = build(prefix .. id .. suffix)
   end
end

function request()
   local r = requests[(i % n) + 1]
   i = i + 1
   return r
end

done = lib.report
