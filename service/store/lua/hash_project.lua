-- Places one asset in the content-hash index and reports the assets registered with
-- the same content before it. Both keys share the hash's hash tag.
--
-- KEYS[1]  assets sorted set: asset_id scored by order of first registration
-- KEYS[2]  meta hash: seq, rev:<asset>, lib:<asset>, announced:<asset>
-- ARGV[1]  asset_id (non-empty)
-- ARGV[2]  rev of the asset state: integer in [0, 2^53)
-- ARGV[3]  library_id, or '' when the asset left this content hash (moved or deleted)
--
-- Every argument is checked before anything is written: bad input is an error reply
-- 'ERR bad input: <what>' and changes nothing.
-- Returns {applied, announced, earlier_asset_1, its_library, earlier_asset_2, ...}.
-- A projection from an older rev than the stored one is ignored (applied = 0).
local MAX_INT = 9007199254740991 -- 2^53 - 1: larger numbers are not exact in Lua
local asset = ARGV[1]
if type(asset) ~= 'string' or asset == '' then
  return redis.error_reply('ERR bad input: ARGV[1] asset_id must not be empty')
end
if type(ARGV[2]) ~= 'string' or not string.find(ARGV[2], '^%d+$')
    or tonumber(ARGV[2]) > MAX_INT then
  return redis.error_reply('ERR bad input: ARGV[2] rev must be an integer in [0, 2^53)')
end
if type(ARGV[3]) ~= 'string' then
  return redis.error_reply('ERR bad input: ARGV[3] library_id must be a string (empty: left)')
end
local rev = tonumber(ARGV[2])

local stored = tonumber(redis.call('HGET', KEYS[2], 'rev:' .. asset) or '-1')
if stored > rev then
  return { 0, 0 }
end
redis.call('HSET', KEYS[2], 'rev:' .. asset, ARGV[2])

if ARGV[3] == '' then
  redis.call('ZREM', KEYS[1], asset)
  redis.call('HDEL', KEYS[2], 'lib:' .. asset, 'announced:' .. asset)
  return { 1, 0 }
end

local score = redis.call('ZSCORE', KEYS[1], asset)
if not score then
  score = redis.call('HINCRBY', KEYS[2], 'seq', 1)
  redis.call('ZADD', KEYS[1], score, asset)
end
redis.call('HSET', KEYS[2], 'lib:' .. asset, ARGV[3])

local result = { 1, redis.call('HEXISTS', KEYS[2], 'announced:' .. asset) }
for _, other in ipairs(redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', '(' .. score)) do
  result[#result + 1] = other
  result[#result + 1] = redis.call('HGET', KEYS[2], 'lib:' .. other)
end
return result
