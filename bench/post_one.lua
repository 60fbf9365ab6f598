-- Scenario: one static POST, over and over: the URL given to wrk, the body BENCH_BODY (JSON).
-- Used for ratelimit.limit on one hot identifier and for verifyKey with a permission query.
-- The request is static: wrk formats it once.
local lib = dofile(os.getenv("BENCH_DIR") .. "/lib.lua")
wrk.method = "POST"
wrk.headers["Authorization"] = "Bearer " .. os.getenv("BENCH_ROOT_KEY")
wrk.headers["Content-Type"] = "application/json"
wrk.body = os.getenv("BENCH_BODY")
done = lib.report
