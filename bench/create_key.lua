-- Scenario: POST /v2/keys.createKey {"apiId": BENCH_API_ID} for the whole duration.
local lib = dofile(os.getenv("BENCH_DIR") .. "/lib.lua")
wrk.method = "POST"
wrk.headers["Authorization"] = "Bearer " .. os.getenv("BENCH_ROOT_KEY")
wrk.headers["Content-Type"] = "application/json"
wrk.body = '{"apiId":"' .. os.getenv("BENCH_API_ID") .. '"}'
done = lib.report
