-- Compare-and-set of one asset's state, together with the outcome of every event
-- the change settles, in one atomic step. Both keys share the asset's hash tag.
--
-- KEYS[1]  asset state hash: rev (integer), doc (JSON of AssetState)
-- KEYS[2]  seen hash: event_id -> Outcome JSON
-- KEYS[3]  history sorted set: HistoryEntry JSON scored by its seq
-- ARGV[1]  the rev the caller read (0 when the asset was unknown): integer in [0, 2^53)
-- ARGV[2]  the rev to store: integer in [ARGV[1], 2^53)
-- ARGV[3]  the new state JSON (an object), or '' to leave the state as it is
-- ARGV[4]  seconds the seen hash lives after its last write: integer in [1, 10^10]
-- ARGV[5]  how many history entries the asset keeps: integer in [1, 10^6]
-- ARGV[6]  N, the number of history entries that follow: integer in [0, 10^6]
-- ARGV[7..6+2N] pairs: seq (integer in [1, 2^53)), HistoryEntry JSON (an object); written
--          only with a new state; then the oldest entries beyond ARGV[5] are removed
-- ARGV[7+2N..] pairs: event_id (non-empty), Outcome JSON (an object)
--
-- Every argument is checked before anything is written: bad input is an error reply
-- 'ERR bad input: <what>' and changes nothing.
-- Returns 1 when written, 0 when the stored rev moved on (the caller reloads and retries).
local MAX_INT = 9007199254740991 -- 2^53 - 1: larger numbers are not exact in Lua

local function integer(value, low, high)
  if type(value) ~= 'string' or not string.find(value, '^%-?%d+$') then
    return nil
  end
  local n = tonumber(value)
  if n < low or n > high then
    return nil
  end
  return n
end

-- The shape of a JSON object, checked in O(1): a state may weigh megabytes (held events
-- carry their original bytes), and parsing it on every commit would hold Redis that long.
-- The documents come from the service's own serialiser; this catches a wrong argument.
local function object(text)
  return type(text) == 'string' and #text >= 2 and string.byte(text, 1) == 123
    and string.byte(text, #text) == 125
end

local expected = integer(ARGV[1], 0, MAX_INT)
if not expected then
  return redis.error_reply('ERR bad input: ARGV[1] expected rev must be an integer in [0, 2^53)')
end
if not integer(ARGV[2], expected, MAX_INT) then
  return redis.error_reply('ERR bad input: ARGV[2] new rev must be an integer in [ARGV[1], 2^53)')
end
if type(ARGV[3]) ~= 'string' or (ARGV[3] ~= '' and not object(ARGV[3])) then
  return redis.error_reply('ERR bad input: ARGV[3] state must be a JSON object or empty')
end
if not integer(ARGV[4], 1, 1e10) then
  return redis.error_reply('ERR bad input: ARGV[4] seen ttl must be an integer in [1, 10^10]')
end
local keep = integer(ARGV[5], 1, 1e6)
if not keep then
  return redis.error_reply('ERR bad input: ARGV[5] history size must be an integer in [1, 10^6]')
end
local entries = integer(ARGV[6], 0, 1e6)
if not entries or 6 + 2 * entries > #ARGV then
  return redis.error_reply('ERR bad input: ARGV[6] history entry count must fit the arguments')
end
if entries > 0 and ARGV[3] == '' then
  return redis.error_reply('ERR bad input: ARGV[6] history entries need a new state')
end
for i = 7, 6 + 2 * entries, 2 do
  if not integer(ARGV[i], 1, MAX_INT) then
    return redis.error_reply('ERR bad input: ARGV[' .. i .. '] history seq must be an integer in [1, 2^53)')
  end
  if not object(ARGV[i + 1]) then
    return redis.error_reply('ERR bad input: ARGV[' .. (i + 1) .. '] history entry must be a JSON object')
  end
end
local first_pair = 7 + 2 * entries
if (#ARGV - first_pair + 1) % 2 ~= 0 then
  return redis.error_reply('ERR bad input: ARGV[' .. first_pair .. '..] must be event_id, outcome pairs')
end
for i = first_pair, #ARGV, 2 do
  if ARGV[i] == '' then
    return redis.error_reply('ERR bad input: ARGV[' .. i .. '] event_id must not be empty')
  end
  if not object(ARGV[i + 1]) then
    return redis.error_reply('ERR bad input: ARGV[' .. (i + 1) .. '] outcome must be a JSON object')
  end
end

local current = tonumber(redis.call('HGET', KEYS[1], 'rev') or '0')
if current ~= expected then
  return 0
end
if ARGV[3] ~= '' then
  redis.call('HSET', KEYS[1], 'rev', ARGV[2], 'doc', ARGV[3])
end
if entries > 0 then
  for i = 7, 6 + 2 * entries, 2 do
    redis.call('ZADD', KEYS[3], ARGV[i], ARGV[i + 1])
  end
  -- drop the oldest beyond `keep` (ZRANGE and ZREM: commands the service's ACL grants)
  local excess = redis.call('ZCARD', KEYS[3]) - keep
  while excess > 0 do
    local oldest = redis.call('ZRANGE', KEYS[3], 0, math.min(excess, 1000) - 1)
    redis.call('ZREM', KEYS[3], unpack(oldest))
    excess = excess - #oldest
  end
end
if #ARGV >= first_pair + 1 then
  for i = first_pair, #ARGV, 2 do
    redis.call('HSET', KEYS[2], ARGV[i], ARGV[i + 1])
  end
  redis.call('EXPIRE', KEYS[2], ARGV[4])
end
return 1
