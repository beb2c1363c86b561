-- Compare-and-set of one asset's state, together with the outcome of every event
-- the change settles, in one atomic step. Both keys share the asset's hash tag.
--
-- KEYS[1]  asset state hash: rev (integer), doc (JSON of AssetState)
-- KEYS[2]  seen hash: event_id -> Outcome JSON
-- ARGV[1]  the rev the caller read (0 when the asset was unknown)
-- ARGV[2]  the rev to store
-- ARGV[3]  the new state JSON, or '' to leave the state as it is
-- ARGV[4]  seconds the seen hash lives after its last write
-- ARGV[5..] pairs: event_id, Outcome JSON
--
-- Returns 1 when written, 0 when the stored rev moved on (the caller reloads and retries).
local current = tonumber(redis.call('HGET', KEYS[1], 'rev') or '0')
if current ~= tonumber(ARGV[1]) then
  return 0
end
if ARGV[3] ~= '' then
  redis.call('HSET', KEYS[1], 'rev', ARGV[2], 'doc', ARGV[3])
end
if #ARGV >= 6 then
  for i = 5, #ARGV, 2 do
    redis.call('HSET', KEYS[2], ARGV[i], ARGV[i + 1])
  end
  redis.call('EXPIRE', KEYS[2], ARGV[4])
end
return 1
