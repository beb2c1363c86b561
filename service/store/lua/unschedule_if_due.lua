-- Removes an asset from the held-events schedule only if its deadline has passed,
-- so that a deadline set concurrently by a newly held event is never lost.
--
-- KEYS[1]  schedule sorted set: asset_id scored by deadline (epoch milliseconds)
-- ARGV[1]  asset_id (non-empty)
-- ARGV[2]  now (epoch milliseconds): integer in [0, 2^53)
--
-- Both arguments are checked before anything is written: bad input is an error reply
-- 'ERR bad input: <what>' and changes nothing.
-- Returns 1 when removed, 0 otherwise.
local MAX_INT = 9007199254740991 -- 2^53 - 1: larger numbers are not exact in Lua
if type(ARGV[1]) ~= 'string' or ARGV[1] == '' then
  return redis.error_reply('ERR bad input: ARGV[1] asset_id must not be empty')
end
if type(ARGV[2]) ~= 'string' or not string.find(ARGV[2], '^%d+$')
    or tonumber(ARGV[2]) > MAX_INT then
  return redis.error_reply('ERR bad input: ARGV[2] now must be an integer in [0, 2^53) (ms)')
end
local score = redis.call('ZSCORE', KEYS[1], ARGV[1])
if score and tonumber(score) <= tonumber(ARGV[2]) then
  return redis.call('ZREM', KEYS[1], ARGV[1])
end
return 0
