-- Reads assets' counters in metric hashes of one partition, in one step: what the
-- worker would otherwise ask in two round trips (each asset's dimension list in each
-- hash, then the counters of those dimensions).
--
-- KEYS[1 .. H]  metric hashes of ONE partition (its lifetime hash or bucket hashes):
--               `<asset>|<dimension>|<metric index>` -> count, and `<asset>` -> the
--               dimensions it has counts of there, `|ch:web|cp:c1|`
-- ARGV[1 .. A]  asset_ids
--
-- Returns, for each asset in ARGV order and each hash in KEYS order, two strings: the
-- asset's dimension list in that hash ('' when it has none there), and its counters of
-- those dimensions, six per dimension in list order, joined by ',' (an absent counter
-- is empty). Reads only; nothing is written.
local CHUNK = 2000 -- fields per HMGET: Lua's unpack() takes at most ~8000
local out = {}
for _, asset in ipairs(ARGV) do
  for _, key in ipairs(KEYS) do
    local listed = redis.call('HGET', key, asset)
    local counts = ''
    if listed then
      local fields = {}
      for dimension in string.gmatch(listed, '[^|]+') do
        for metric = 0, 5 do
          fields[#fields + 1] = asset .. '|' .. dimension .. '|' .. metric
        end
      end
      local values = {}
      for start = 1, #fields, CHUNK do
        local got = redis.call('HMGET', key, unpack(fields, start, math.min(start + CHUNK - 1, #fields)))
        for _, value in ipairs(got) do
          values[#values + 1] = value or ''
        end
      end
      counts = table.concat(values, ',')
    end
    out[#out + 1] = listed or ''
    out[#out + 1] = counts
  end
end
return out
