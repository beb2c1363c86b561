-- Moves one asset's entry in a library's statistics and indexes, idempotently.
-- Every key shares the library's hash tag; index keys are built from ARGV[1].
--
-- KEYS[1]  stats hash: assets, bytes, media_type:<t>, status:<s>
-- KEYS[2]  members hash: asset_id -> {"rev": n, "entry": {...}} (no "entry" once removed)
-- KEYS[3]  assets sorted set (all scores 0: ordered by asset_id)
-- ARGV[1]  index key prefix; indexes are <prefix>tag:<tag>, <prefix>category:<c>, <prefix>status:<s>
-- ARGV[2]  asset_id
-- ARGV[3]  rev of the asset state this entry comes from
-- ARGV[4]  the new member JSON (with "rev", and "entry" unless the asset left the library)
--
-- An entry from an older or equal rev than the stored one is ignored, so replays and
-- reordered projections never count twice. Returns 1 when applied, 0 when ignored.
local asset = ARGV[2]
local rev = tonumber(ARGV[3])
local stored = redis.call('HGET', KEYS[2], asset)
local old = nil
if stored then
  old = cjson.decode(stored)
  if tonumber(old.rev) >= rev then
    return 0
  end
end

local function count(field, delta)
  redis.call('HINCRBY', KEYS[1], field, string.format('%d', delta))
end

local function move(entry, sign)
  count('assets', sign)
  count('bytes', sign * entry.file_size_bytes)
  count('media_type:' .. entry.media_type, sign)
  count('status:' .. entry.status, sign)
  local indexes = { KEYS[3], ARGV[1] .. 'status:' .. entry.status }
  for _, tag in ipairs(entry.tags) do
    indexes[#indexes + 1] = ARGV[1] .. 'tag:' .. tag
  end
  for _, category in ipairs(entry.categories) do
    indexes[#indexes + 1] = ARGV[1] .. 'category:' .. category
  end
  for _, key in ipairs(indexes) do
    if sign > 0 then
      redis.call('ZADD', key, 0, asset)
    else
      redis.call('ZREM', key, asset)
    end
  end
end

if old and old.entry then
  move(old.entry, -1)
end
local new = cjson.decode(ARGV[4])
if new.entry then
  move(new.entry, 1)
end
redis.call('HSET', KEYS[2], asset, ARGV[4])
return 1
