-- Counts an occurrence once per id: the marker and the counter share a hash tag.
--
-- KEYS[1]  counters hash
-- KEYS[2]  marker key for this id
-- ARGV[1]  counter field
-- ARGV[2]  seconds the marker lives
--
-- Returns 1 when counted, 0 when this id was counted before.
if redis.call('SET', KEYS[2], '1', 'NX', 'EX', ARGV[2]) then
  redis.call('HINCRBY', KEYS[1], ARGV[1], 1)
  return 1
end
return 0
