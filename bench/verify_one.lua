-- Scenario: POST /v2/keys.verifyKey of one key (BENCH_VERIFY_KEY), over and over, so it is cached.
-- The request is static: wrk formats it once.
local lib = dofile(os.getenv("BENCH_DIR") .. "/lib.lua")
wrk.method = "POST"
wrk.headers["Authorization"] = "Bearer " .. os.getenv("BENCH_ROOT_KEY")
wrk.headers["Content-Type"] = "application/json"
wrk.body = '{"key":"' .. os.getenv("BENCH_VERIFY_KEY") .. '"}'
done = lib.report
