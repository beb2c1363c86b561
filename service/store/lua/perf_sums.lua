-- Reads where ONE partition of the performance topic stands and the sums a batch of it
-- will add to: the first half of the exactly-once step, perf_apply.lua the second. The
-- worker adds the batch's counts to these sums and hands perf_apply.lua the new sums
-- with the position and the `forgotten` count read here; perf_apply.lua writes them
-- only if neither moved meanwhile. Reads only; nothing is written.
--
-- KEYS[1]        position: the offset of the last event of the partition applied
-- KEYS[2]        counters hash of the partition: its `forgotten` field counts the assets
--                whose lifetime sums perf_forget.lua removed
-- KEYS[3 ..]     metric hashes of the partition: `<asset_id>` -> its sums there
-- ARGV           for each hash in KEYS order: N, then N asset_ids
--
-- Returns {position, forgotten, sums, ...}: the position (-1: none), the forgotten count,
-- then for each hash in KEYS order and each of its assets in ARGV order the asset's sums
-- there ('' when it has none). Bad input is an error reply.
local CHUNK = 2000 -- fields per HMGET: Lua's unpack() takes at most ~8000
local out = { redis.call('GET', KEYS[1]) or '-1', redis.call('HGET', KEYS[2], 'forgotten') or '0' }
local at = 1
for h = 3, #KEYS do
  local n = tonumber(ARGV[at])
  if n == nil or n < 0 or n % 1 ~= 0 or at + n > #ARGV then
    return redis.error_reply('ERR bad input: hash ' .. (h - 2) .. ' must be followed by its number of assets and as many asset_ids, got ' .. tostring(ARGV[at]))
  end
  for start = at + 1, at + n, CHUNK do
    local values = redis.call('HMGET', KEYS[h], unpack(ARGV, start, math.min(start + CHUNK - 1, at + n)))
    for i = 1, #values do
      out[#out + 1] = values[i] or ''
    end
  end
  at = at + n + 1
end
if at ~= #ARGV + 1 then
  return redis.error_reply('ERR bad input: ' .. #ARGV .. ' arguments for ' .. (#KEYS - 2) .. ' hashes')
end
return out
