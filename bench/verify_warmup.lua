-- Warm-up: verifies every key of BENCH_KEYFILE once, in file order (the threads split the file).
-- When a thread has had an answer for all its keys (plus one round of its connections, to cover
-- answers that arrived out of order) it writes BENCH_MARKER_DIR/warm.<tid> with its counts and
-- stops; run.sh waits for every thread's marker and then ends wrk with SIGINT.
local lib = dofile(os.getenv("BENCH_DIR") .. "/lib.lua")

local counter = 0
function setup(thread)
   thread:set("tid", counter)
   counter = counter + 1
end

local keys, n, i, answered, valid, first_bad, finished, build, slack

function init(args)
   local nthreads = tonumber(os.getenv("BENCH_THREADS"))
   keys = lib.read_keys(os.getenv("BENCH_KEYFILE"), tid, nthreads)
   n, i, answered, valid, finished = #keys, 0, 0, 0, false
   slack = math.ceil(tonumber(os.getenv("BENCH_CONNECTIONS")) / nthreads)
   build = lib.verify_request_builder(os.getenv("BENCH_ROOT_KEY"))
end

function request()
   i = i + 1
   if i > n then i = 1 end
   return build(keys[i])
end

function response(status, headers, body)
   answered = answered + 1
   if answered <= n then
      if status == 200 and body:find('"valid":true', 1, true) then
         valid = valid + 1
      elseif first_bad == nil then
         first_bad = tostring(status) .. " " .. body
      end
   end
   if not finished and answered >= n + slack then
      finished = true
      local f = io.open(os.getenv("BENCH_MARKER_DIR") .. "/warm." .. tid, "w")
      f:write(string.format("keys=%d valid=%d first_bad=%s\n", n, valid,
         (first_bad or "none"):gsub("[\r\n]", " ")))
      f:close()
      wrk.thread:stop()
   end
end

done = lib.report
