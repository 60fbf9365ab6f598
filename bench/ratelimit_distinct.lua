-- Rate-limit memory: one pass of POST /v2/ratelimit.limit over BENCH_IDENTIFIERS distinct
-- identifiers ("0", "1", ...; namespace BENCH_NAMESPACE, limit BENCH_RL_LIMIT per BENCH_RL_DURATION
-- ms), so the server ends up holding that many live counters. Thread `tid` of `n` takes the
-- identifiers tid, tid + n, ... When a thread has had an answer for all of its identifiers (plus
-- one round of its connections) it writes BENCH_MARKER_DIR/distinct.<tid> with its counts and
-- stops; run.sh waits for every thread's marker and then ends wrk with SIGINT. Requests sent after
-- a thread's last identifier start its list again (they hit existing counters, add none).
local lib = dofile(os.getenv("BENCH_DIR") .. "/lib.lua")

local counter = 0
function setup(thread)
   thread:set("tid", counter)
   counter = counter + 1
end

local n, nthreads, mine, i, answered, ok, first_bad, finished, build, prefix, suffix, slack

function init(args)
   n = tonumber(os.getenv("BENCH_IDENTIFIERS"))
   nthreads = tonumber(os.getenv("BENCH_THREADS"))
   mine = math.floor((n - 1 - tid) / nthreads) + 1 -- identifiers tid, tid + nthreads, ... below n
   i, answered, ok, finished = 0, 0, 0, false
   slack = math.ceil(tonumber(os.getenv("BENCH_CONNECTIONS")) / nthreads)
   build = lib.post_request_builder("/v2/ratelimit.limit", os.getenv("BENCH_ROOT_KEY"))
   prefix = '{"namespace":"' .. os.getenv("BENCH_NAMESPACE") .. '","identifier":"'
   suffix = '","limit":' .. os.getenv("BENCH_RL_LIMIT") .. ',"duration":' .. os.getenv("BENCH_RL_DURATION") .. '}'
end

function request()
   if i >= mine then i = 0 end
   local body = prefix .. (tid + i * nthreads) .. suffix
   i = i + 1
   return build(body)
end

function response(status, headers, body)
   answered = answered + 1
   if answered <= mine then
      if status == 200 and body:find('"success":true', 1, true) then
         ok = ok + 1
      elseif first_bad == nil then
         first_bad = tostring(status) .. " " .. body
      end
   end
   if not finished and answered >= mine + slack then
      finished = true
      local f = io.open(os.getenv("BENCH_MARKER_DIR") .. "/distinct." .. tid, "w")
      f:write(string.format("identifiers=%d success=%d first_bad=%s\n", mine, ok,
         (first_bad or "none"):gsub("[\r\n]", " ")))
      f:close()
      wrk.thread:stop()
   end
end

done = lib.report
