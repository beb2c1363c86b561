-- Claims assets for a board refresh, in one atomic step, so that a mark set while they
-- are being refreshed is kept for the next refresh instead of being taken out with them.
--
-- KEYS[1]  dirty set: assets marked (by the metrics script or the registry) since their
--          last claim
-- KEYS[2]  claimed set: assets a refresh took and has not finished (same slot as KEYS[1])
-- ARGV[1]  how many at most (a positive integer)
--
-- 1. When the claimed set is not empty, a refresh was cut off (a crash, a lost
--    connection, another leader): return up to ARGV[1] of its members again, so that it
--    is finished before anything new is taken.
-- 2. Otherwise move up to ARGV[1] members from the dirty set into the claimed set and
--    return them. From here on a new mark of one of them lands in the dirty set again.
-- 3. (The refresher) After an asset's entries are written, SREM it from the claimed set.
local count = tonumber(ARGV[1])
if not count or count < 1 or count ~= math.floor(count) then
  return redis.error_reply('ERR bad input: ARGV[1] must be a positive integer count')
end
local unfinished = redis.call('SRANDMEMBER', KEYS[2], count)
if #unfinished > 0 then
  return unfinished
end
local taken = redis.call('SPOP', KEYS[1], count)
if #taken > 0 then
  redis.call('SADD', KEYS[2], unpack(taken))
end
return taken
