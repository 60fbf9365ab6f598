-- Scenario: POST /v2/keys.verifyKey of a key drawn uniformly at random from BENCH_KEYFILE for each
-- request. Every thread loads the whole file (each draws from all keys).
local lib = dofile(os.getenv("BENCH_DIR") .. "/lib.lua")

local counter = 0
function setup(thread)
   thread:set("tid", counter)
   counter = counter + 1
end

local keys, n, build

function init(args)
   keys = lib.read_keys(os.getenv("BENCH_KEYFILE"), 0, 1)
   n = #keys
   math.randomseed(os.time() + 7919 * tid)
   build = lib.verify_request_builder(os.getenv("BENCH_ROOT_KEY"))
end

function request()
   return build(keys[math.random(n)])
end

done = lib.report
