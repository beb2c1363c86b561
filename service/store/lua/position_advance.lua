-- Moves the position of one input partition (the offset of its last message whose
-- effects are all in Redis), and notices when Redis lost writes this worker made.
--
-- KEYS[1]  position: the offset of the partition's last message fully processed
-- ARGV[1]  expected: the position this worker last read or wrote (-1: none yet)
-- ARGV[2]  offset of the last message of the batch just processed
--
-- Returns {1, offset} when moved; {0, position} when the position already covers
-- the batch (another owner of the partition went further: nothing to do);
-- {-2, position} when the stored position is below `expected`: Redis lost writes
-- (a crash before its append-only file was synced, a failover to a replica that
-- lagged, a restore). The worker then reprocesses from position + 1.
local expected, offset = tonumber(ARGV[1]), tonumber(ARGV[2])
if not expected or not offset or expected ~= math.floor(expected)
    or offset ~= math.floor(offset) or expected < -1 or offset < 0 then
  return redis.error_reply('ERR bad input: expected and offset must be integers >= -1 and >= 0')
end
local position = tonumber(redis.call('GET', KEYS[1]) or '-1')
if position < expected then
  return { -2, position }
end
if offset <= position then
  return { 0, position }
end
redis.call('SET', KEYS[1], ARGV[2])
return { 1, offset }
