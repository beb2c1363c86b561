-- One page of the members common to several sorted-set indexes of a library,
-- in asset_id order, after a cursor. All keys share the library's hash tag.
--
-- KEYS     the index sorted sets (all scores 0); the smallest one is scanned
-- ARGV[1]  cursor: the last asset_id of the previous page, or '' to start
-- ARGV[2]  page size
--
-- Returns the asset ids of the page; fewer than the page size means the end.
local limit = tonumber(ARGV[2])
local scan, smallest = nil, nil
for _, key in ipairs(KEYS) do
  local size = redis.call('ZCARD', key)
  if smallest == nil or size < smallest then
    scan, smallest = key, size
  end
end
local page = {}
if smallest == 0 then
  return page
end
local from = '-'
if ARGV[1] ~= '' then
  from = '(' .. ARGV[1]
end
local batch = math.max(limit, 100)
while #page < limit do
  local candidates = redis.call('ZRANGEBYLEX', scan, from, '+', 'LIMIT', 0, batch)
  if #candidates == 0 then
    break
  end
  for _, asset in ipairs(candidates) do
    local everywhere = true
    for _, key in ipairs(KEYS) do
      if key ~= scan and not redis.call('ZSCORE', key, asset) then
        everywhere = false
        break
      end
    end
    if everywhere then
      page[#page + 1] = asset
      if #page == limit then
        break
      end
    end
  end
  from = '(' .. candidates[#candidates]
  if #candidates < batch then
    break
  end
end
return page
