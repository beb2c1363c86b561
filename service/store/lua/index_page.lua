-- One page of the members common to several sorted-set indexes of a library,
-- in asset_id order, after a cursor. All keys share the library's hash tag.
--
-- KEYS     the index sorted sets (at least one; all scores 0); the smallest one is scanned
-- ARGV[1]  cursor: the last asset_id of the previous page, or '' to start
-- ARGV[2]  page size: integer in [1, 10^6]
--
-- Reads only. Bad input is an error reply 'ERR bad input: <what>'.
-- Returns the asset ids of the page; fewer than the page size means the end.
if #KEYS < 1 then
  return redis.error_reply('ERR bad input: at least one index key is needed')
end
if type(ARGV[1]) ~= 'string' then
  return redis.error_reply('ERR bad input: ARGV[1] cursor must be a string (empty: start)')
end
if type(ARGV[2]) ~= 'string' or not string.find(ARGV[2], '^%d+$') or tonumber(ARGV[2]) < 1
    or tonumber(ARGV[2]) > 1e6 then
  return redis.error_reply('ERR bad input: ARGV[2] page size must be an integer in [1, 10^6]')
end
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
