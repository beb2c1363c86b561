-- Reads assets' sums in metric hashes of one partition, in one step. Reads only.
--
-- KEYS[1 .. H]  metric hashes of ONE partition (its lifetime hash or bucket hashes):
--               `<asset_id>` -> its sums there
-- ARGV[1 .. A]  asset_ids
--
-- Returns, for each asset in ARGV order and each hash in KEYS order, the asset's sums
-- in that hash ('' when it has none).
if #ARGV == 0 then
  return {}
end
local H = #KEYS
local out = {}
for h, key in ipairs(KEYS) do
  local values = redis.call('HMGET', key, unpack(ARGV))
  for a = 1, #ARGV do
    out[(a - 1) * H + h] = values[a] or ''
  end
end
return out
