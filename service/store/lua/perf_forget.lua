-- Removes a deleted asset's lifetime sums, in one atomic step.
--
-- KEYS[1]  lifetime hash of the asset's partition: `<asset_id>` -> its sums
-- KEYS[2]  counters hash of that partition: `forgotten` counts the removals, so that a
--          batch whose sums were read before one is read again (the metrics step's
--          write is refused: service/store/perf_step.py)
-- ARGV[1]  asset_id (non-empty)
--
-- Returns 1 when the asset had sums, 0 when it had none (idempotent: nothing is written).
local asset = ARGV[1]
if type(asset) ~= 'string' or asset == '' then
  return redis.error_reply('ERR bad input: ARGV[1] asset_id must be a non-empty string')
end
local removed = redis.call('HDEL', KEYS[1], asset)
if removed > 0 then
  redis.call('HINCRBY', KEYS[2], 'forgotten', 1)
end
return removed
