-- Scenario: POST /v2/keys.verifyKey of a key drawn uniformly at random from BENCH_KEYFILE for each
-- request. Every thread loads the whole file (each draws from all keys).
local lib = dofile(os.getenv("BENCH_DIR") .. "/lib.lua")

local counter = 0
function setup(thread)
   thread:set("tid", counter)
   counter = counter + 1
end

local requests, n

-- Every key's request is built once, in init (the key file is dropped afterwards): per request the
-- client only draws an index, so it makes no garbage, and Lua's collector never has to walk a
-- million strings in the middle of the run.
function init(args)
   local keys = lib.read_keys(os.getenv("BENCH_KEYFILE"), 0, 1)
   local build = lib.verify_request_builder(os.getenv("BENCH_ROOT_KEY"))
   n = #keys
   requests = {}
   for k = 1, n do
      requests[k] = build(keys[k])
      keys[k] = nil
   end
   keys = nil
   collectgarbage()
   math.randomseed(os.time() + 7919 * tid)
end

function request()
   return requests[math.random(n)]
end

done = lib.report
