-- Removes a deleted asset's lifetime counters and its dimension list, in one atomic step.
--
-- KEYS[1]  lifetime hash of the asset's partition: `<asset>|<dimension>|<metric>` -> count,
--          and `<asset>` -> its dimensions, `|ch:web|cp:c1|`
-- ARGV[1]  asset_id (non-empty)
--
-- Returns the number of fields removed (0 when the asset has none: idempotent).
local asset = ARGV[1]
if type(asset) ~= 'string' or asset == '' then
  return redis.error_reply('ERR bad input: ARGV[1] asset_id must be a non-empty string')
end
local listed = redis.call('HGET', KEYS[1], asset)
if not listed then
  return 0
end
local fields = { asset }
for dimension in string.gmatch(listed, '[^|]+') do
  for metric = 0, 5 do
    fields[#fields + 1] = asset .. '|' .. dimension .. '|' .. metric
  end
end
return redis.call('HDEL', KEYS[1], unpack(fields))
