-- Counts an occurrence once per id: the marker and the counter share a hash tag.
--
-- KEYS[1]  counters hash
-- KEYS[2]  marker key for this id
-- ARGV[1]  counter field (non-empty)
-- ARGV[2]  seconds the marker lives: integer in [1, 10^10]
--
-- Both arguments are checked before anything is written: bad input is an error reply
-- 'ERR bad input: <what>' and changes nothing.
-- Returns 1 when counted, 0 when this id was counted before.
if type(ARGV[1]) ~= 'string' or ARGV[1] == '' then
  return redis.error_reply('ERR bad input: ARGV[1] counter field must not be empty')
end
local ttl = ARGV[2]
if type(ttl) ~= 'string' or not string.find(ttl, '^%d+$') or tonumber(ttl) < 1
    or tonumber(ttl) > 1e10 then
  return redis.error_reply('ERR bad input: ARGV[2] marker ttl must be an integer in [1, 10^10]')
end
if redis.call('SET', KEYS[2], '1', 'NX', 'EX', ttl) then
  redis.call('HINCRBY', KEYS[1], ARGV[1], 1)
  return 1
end
return 0
