-- Scenario: verify_one.lua's request (the key BENCH_VERIFY_KEY, over and over), paced: each
-- connection waits BENCH_DELAY_MS milliseconds after every response before it sends its next
-- request (wrk's delay()), so C connections ask for about C / (delay + latency) requests a second.
-- wrk has no rate option; this is the closest it gets, and its latencies are not corrected for
-- coordinated omission (a stalled connection sends nothing while it waits).
dofile(os.getenv("BENCH_DIR") .. "/verify_one.lua")
local pause = tonumber(os.getenv("BENCH_DELAY_MS"))
function delay()
   return pause
end
