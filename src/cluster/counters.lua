-- keyward's rate-limit decision for cluster mode: the same sliding window as LocalCounters
-- (src/domain/ratelimit/mod.rs), run atomically inside Redis on Redis's own clock, so every node
-- sharing this Redis decides against the same counts and no two nodes need to agree on time.
--
-- KEYS[i]  the counter of check i (its cells are KEYS[i] .. ":" .. cell number)
-- ARGV     three numbers per check: limit, duration (ms), cost
-- Returns  three integers per check: passed (1/0), remaining, reset (unix ms)
--
-- A batch is all-or-nothing: when any check fails nothing is counted, failing checks report
-- remaining 0 and passing ones what they would have had left.

local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)

local added = {}    -- cell key -> cost this batch adds to it
local ttl = {}      -- cell key -> how long the cell must live
local order = {}    -- cell keys in first-seen order
local out = {}
local all_passed = true

for i = 1, #KEYS do
  local limit = tonumber(ARGV[3 * i - 2])
  local duration = math.max(tonumber(ARGV[3 * i - 1]), 1)
  local cost = tonumber(ARGV[3 * i])
  local seq = math.floor(now / duration)
  local current_key = KEYS[i] .. ':' .. seq
  local previous_key = KEYS[i] .. ':' .. (seq - 1)
  local current = tonumber(redis.call('GET', current_key) or '0') + (added[current_key] or 0)
  local previous = tonumber(redis.call('GET', previous_key) or '0')
  local into_cell = now - seq * duration
  local weighted = current + math.floor(previous * (duration - into_cell) / duration)
  local effective = weighted + cost
  local passed = limit > 0 and effective <= limit
  if not passed then
    all_passed = false
  end
  local remaining = 0
  if passed then
    remaining = math.max(limit - effective, 0)
  end
  out[#out + 1] = passed and 1 or 0
  out[#out + 1] = remaining
  out[#out + 1] = (seq + 1) * duration
  if added[current_key] == nil then
    order[#order + 1] = current_key
    added[current_key] = 0
  end
  added[current_key] = added[current_key] + cost
  -- A cell matters while it is current and while it is the previous one: two durations.
  ttl[current_key] = math.max(ttl[current_key] or 0, 2 * duration + 1000)
end

if all_passed then
  for _, key in ipairs(order) do
    if added[key] > 0 then
      redis.call('INCRBY', key, added[key])
    end
    redis.call('PEXPIRE', key, ttl[key])
  end
else
  for i = 1, #KEYS do
    if out[3 * i - 2] == 1 then
      local limit = tonumber(ARGV[3 * i - 2])
      local cost = tonumber(ARGV[3 * i])
      out[3 * i - 1] = math.min(out[3 * i - 1] + cost, math.max(limit, 0))
    end
  end
end

return out
