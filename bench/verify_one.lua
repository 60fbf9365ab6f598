-- Scenario: POST /v2/keys.verifyKey of one key (BENCH_VERIFY_KEY), over and over, so it is cached;
-- with BENCH_VERIFY_QUERY set, the body also carries it as the permission query ("permissions").
-- The request is static: wrk formats it once.
local lib = dofile(os.getenv("BENCH_DIR") .. "/lib.lua")
wrk.method = "POST"
wrk.headers["Authorization"] = "Bearer " .. os.getenv("BENCH_ROOT_KEY")
wrk.headers["Content-Type"] = "application/json"
local query = os.getenv("BENCH_VERIFY_QUERY") or ""
if query == "" then
   wrk.body = '{"key":"' .. os.getenv("BENCH_VERIFY_KEY") .. '"}'
else
   wrk.body = '{"key":"' .. os.getenv("BENCH_VERIFY_KEY") .. '","permissions":"' .. query .. '"}'
end
done = lib.report
