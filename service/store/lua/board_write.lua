-- Writes one asset's entries into boards that share a hash tag (one library's boards,
-- or one campaign's), in one step instead of a command per board.
--
-- KEYS[1 .. B]  boards: hashes asset_id -> `impressions,clicks,engagements,conversions,
--               shares,comments`
-- ARGV[1]       asset_id (non-empty)
-- ARGV[1 + i]   the asset's entry in KEYS[i], or '' to remove it from that board
--
-- Returns the number of boards given.
local asset = ARGV[1]
if type(asset) ~= 'string' or asset == '' then
  return redis.error_reply('ERR bad input: ARGV[1] asset_id must be a non-empty string')
end
if #ARGV ~= #KEYS + 1 then
  return redis.error_reply('ERR bad input: ' .. #KEYS .. ' boards need ' .. (#KEYS + 1) ..
    ' arguments, got ' .. #ARGV)
end
for i, board in ipairs(KEYS) do
  local entry = ARGV[1 + i]
  if entry == '' then
    redis.call('HDEL', board, asset)
  else
    redis.call('HSET', board, asset, entry)
  end
end
return #KEYS
