-- Removes an asset from the held-events schedule only if its deadline has passed,
-- so that a deadline set concurrently by a newly held event is never lost.
--
-- KEYS[1]  schedule sorted set: asset_id scored by deadline (epoch milliseconds)
-- ARGV[1]  asset_id
-- ARGV[2]  now (epoch milliseconds)
local score = redis.call('ZSCORE', KEYS[1], ARGV[1])
if score and tonumber(score) <= tonumber(ARGV[2]) then
  return redis.call('ZREM', KEYS[1], ARGV[1])
end
return 0
