-- Scenario: GET /v2/liveness, the baseline every other scenario is compared with.
local lib = dofile(os.getenv("BENCH_DIR") .. "/lib.lua")
wrk.method = "GET"
done = lib.report
