-- keyward's credit holdings for cluster mode (see credits.rs for the protocol).
--
-- KEYS[1]  the key's holding: a hash of
--            held  credits moved out of the database and not yet spent
--            db    the database's balance after the last move (an upper bound of it)
--            at    when the balance was last refilled, as of the last move (unix ms)
--            used  when the holding was last spent from or filled (Redis time, unix ms)
-- KEYS[2]  the key's move lock: a token, with an expiry, held by the node moving credits
-- ARGV[1]  the operation; the rest depends on it
--
-- Answers are {code, number, db}, db the row's part as text (the caller adds it to held in
-- integers: Lua's numbers are doubles), '' where it does not apply:
--   0 SPENT     held after the spend, and db
--   1 SHORT     not enough: held and db, unchanged
--   2 MOVE      the caller holds the lock and must move credits; the number is what it took back
--   3 BUSY      another node holds the lock; nothing changed
--   4 DONE      (install, put_back, fence, release) the number is what was taken back, if any

local op = ARGV[1]

local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end

local function take_back()
  local held = tonumber(redis.call('HGET', KEYS[1], 'held') or '0')
  if held ~= 0 then
    redis.call('HSET', KEYS[1], 'held', 0)
  end
  return held
end

if op == 'spend' then
  -- ARGV: op, cost, refill boundary (-1: no refill), lock token, lock ms
  local cost = tonumber(ARGV[2])
  local boundary = tonumber(ARGV[3])
  if redis.call('EXISTS', KEYS[2]) == 1 then
    return {3, 0, ''}
  end
  local h = redis.call('HMGET', KEYS[1], 'held', 'db', 'at')
  local held, db, at = tonumber(h[1] or '0'), tonumber(h[2]), tonumber(h[3])
  local move = false
  if db == nil or at == nil then
    move = true                      -- nothing loaded yet (or only a stray install)
  elseif boundary >= 0 and at < boundary then
    move = true                      -- a refill is due: the database decides it
  elseif held >= cost then
    if cost > 0 then
      redis.call('HINCRBY', KEYS[1], 'held', 0 - cost)
      redis.call('HSET', KEYS[1], 'used', now_ms())
    end
    return {0, held - cost, h[2]}
  elseif held + db < cost then
    return {1, held, h[2]}           -- db only ever falls between moves: surely not enough
  else
    move = true                      -- enough only with the database's part
  end
  redis.call('SET', KEYS[2], ARGV[4], 'PX', tonumber(ARGV[5]))
  return {2, take_back(), ''}
end

if op == 'install' or op == 'put_back' then
  -- install:  ARGV: op, lock token, credits to hold, database balance after, last refill.
  -- put_back: ARGV: op, lock token, credits taken back that the database did not receive.
  -- Only the lock's holder hands credits over, and frees the lock: a mover whose lock was lost
  -- (which the lock's lifetime, longer than any request's, rules out) keeps them out of
  -- circulation instead of risking them.
  if redis.call('GET', KEYS[2]) ~= ARGV[2] then
    return {3, 0, ''}
  end
  local add = tonumber(ARGV[3])
  if add ~= 0 then
    redis.call('HINCRBY', KEYS[1], 'held', add)
  end
  if op == 'install' then
    redis.call('HSET', KEYS[1], 'db', ARGV[4], 'at', ARGV[5], 'used', now_ms())
  end
  redis.call('DEL', KEYS[2])
  return {4, 0, ''}
end

if op == 'fence' then
  -- ARGV: op, lock token, lock ms. Takes the lock and every held credit, for a management change,
  -- and forgets the row's balance: whatever happens next, the next spend moves from the row.
  if redis.call('SET', KEYS[2], ARGV[2], 'NX', 'PX', tonumber(ARGV[3])) then
    local taken = take_back()
    redis.call('HDEL', KEYS[1], 'db', 'at')
    return {4, taken, ''}
  end
  return {3, 0, ''}
end

if op == 'sweep' then
  -- ARGV: op, lock token, lock ms, idle ms. Like fence, but only for a holding nobody has used
  -- for idle ms (and no one is moving): its credits go back to the row. {4, -1}: left alone.
  local used = tonumber(redis.call('HGET', KEYS[1], 'used') or '0')
  if used > now_ms() - tonumber(ARGV[4]) then
    return {4, -1, ''}
  end
  if redis.call('SET', KEYS[2], ARGV[2], 'NX', 'PX', tonumber(ARGV[3])) then
    local taken = take_back()
    redis.call('HDEL', KEYS[1], 'db', 'at')
    return {4, taken, ''}
  end
  return {4, -1, ''}
end

if op == 'release' then
  -- ARGV: op, lock token. Lifts a fence; an empty holding is dropped.
  if redis.call('GET', KEYS[2]) == ARGV[2] then
    redis.call('DEL', KEYS[2])
    if tonumber(redis.call('HGET', KEYS[1], 'held') or '0') == 0 then
      redis.call('DEL', KEYS[1])
    end
  end
  return {4, 0, ''}
end

return redis.error_reply('unknown credits operation ' .. tostring(op))
