-- Move one suggestion into its library's indexes, atomically: out of every index under
-- its previous member, into the library-wide index and the indexes of its current type,
-- priority and status under its current member. All keys share the library's hash tag.
--
-- KEYS[1]   hash: suggestion id -> its current member
-- KEYS[2]   the library-wide index (sorted set, scores 0)
-- KEYS[3..] every facet index the suggestion may be in
-- ARGV[1]   the suggestion id
-- ARGV[2]   its member now
-- ARGV[3..] the positions in KEYS of the facet indexes it belongs to now
--
-- Returns 1.
if #KEYS < 2 or #ARGV < 2 then
  return redis.error_reply('ERR bad input: the members hash, the index and an id and member are needed')
end
local before = redis.call('HGET', KEYS[1], ARGV[1])
if before then
  for i = 2, #KEYS do
    redis.call('ZREM', KEYS[i], before)
  end
end
redis.call('ZADD', KEYS[2], 0, ARGV[2])
for i = 3, #ARGV do
  local at = tonumber(ARGV[i])
  if at == nil or at < 3 or at > #KEYS then
    return redis.error_reply('ERR bad input: facet position ' .. tostring(ARGV[i]) .. ' names no facet key')
  end
  redis.call('ZADD', KEYS[at], 0, ARGV[2])
end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
return 1
