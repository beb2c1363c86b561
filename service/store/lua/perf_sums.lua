-- Reads where ONE partition of the performance topic stands, the sums a batch of it
-- will add to and the buckets of the partition's table of ids its events fall in: the
-- first half of the exactly-once step, perf_apply.lua the second. The worker looks the
-- ids up and adds the batch's counts to these sums, and hands perf_apply.lua the new
-- sums and buckets with the position and the `forgotten` count read here;
-- perf_apply.lua writes them only if neither moved meanwhile. Reads only.
--
-- KEYS[1]        position: the offset of the last event of the partition applied
-- KEYS[2]        counters hash of the partition: its `forgotten` field counts the assets
--                whose lifetime sums perf_forget.lua removed
-- KEYS[3]        table of ids (service/store/seen_ids.py): `n` buckets, `c` entries,
--                `<i>` bucket i
-- KEYS[4 ..]     metric hashes of the partition: `<asset_id>` -> its sums there
-- ARGV[1]        LOAD: entries per bucket the table grows towards
-- ARGV[2]        MAX: the most buckets the table may have
-- ARGV[3]        F, then F numbers (each id's 28-bit number, as seen_ids.py gives it)
-- then           for each metric hash in KEYS order: N, then N asset_ids
--
-- Steps:
-- 1. The table's size n (1 when it does not exist) and entries c. The size after the
--    step: enough buckets for c + F entries at LOAD a bucket, at most twice n and MAX.
-- 2. The values of the buckets the growth splits (bucket j, for n <= j < size, is
--    split off j - 2^floor(log2 j)), then of each id's bucket in a table of n buckets.
-- 3. The sums, one field per asset and hash.
--
-- Returns {position, forgotten, n, c, size, split values ..., id buckets' values ...,
-- sums ...}: position -1 when none, '' for a bucket or sum that does not exist. Bad
-- input is an error reply.
local CHUNK = 2000 -- fields per HMGET: Lua's unpack() takes at most ~8000

local function integer(value, low, high, what)
  local n = tonumber(value)
  if n == nil or n % 1 ~= 0 or n < low or n > high then
    error({ err = 'ERR bad input: ' .. what .. ' must be an integer in [' ..
      string.format('%d', low) .. ', ' .. string.format('%d', high) .. '], got ' .. tostring(value) })
  end
  return n
end

-- Appends HMGET key list[from..upto] to out, '' for a missing field.
local function fetch(out, key, list, from, upto)
  for start = from, upto, CHUNK do
    local values = redis.call('HMGET', key, unpack(list, start, math.min(start + CHUNK - 1, upto)))
    for i = 1, #values do
      out[#out + 1] = values[i] or ''
    end
  end
end

local load = integer(ARGV[1], 1, 1000000, 'LOAD')
local max = integer(ARGV[2], 1, 1073741824, 'MAX')
local F = integer(ARGV[3], 0, #ARGV - 3, 'number of ids')

-- 1. Size.
local out = { redis.call('GET', KEYS[1]) or '-1', redis.call('HGET', KEYS[2], 'forgotten') or '0' }
local meta = redis.call('HMGET', KEYS[3], 'n', 'c')
local n = tonumber(meta[1] or '1')
local c = tonumber(meta[2] or '0')
local size = math.max(n, math.ceil((c + F) / load))
size = math.min(size, 2 * n, max)
out[3] = n
out[4] = c
out[5] = size

-- 2. Buckets.
local function low_of(buckets)
  local low = 1
  while low * 2 <= buckets do low = low * 2 end
  return low
end
local fields = {}
for j = n, size - 1 do
  fields[#fields + 1] = j - low_of(j)
end
local low = low_of(n)
for i = 4, 3 + F do
  local number = integer(ARGV[i], 0, 268435455, 'number of id ' .. (i - 3))
  local at = number % (2 * low)
  if at >= n then at = number % low end
  fields[#fields + 1] = at
end
fetch(out, KEYS[3], fields, 1, #fields)

-- 3. Sums.
local at = 4 + F
for h = 4, #KEYS do
  local count = integer(ARGV[at], 0, #ARGV - at, 'number of assets of hash ' .. (h - 3))
  fetch(out, KEYS[h], ARGV, at + 1, at + count)
  at = at + count + 1
end
if at ~= #ARGV + 1 then
  error({ err = 'ERR bad input: ' .. #ARGV .. ' arguments for ' .. F .. ' ids and ' .. (#KEYS - 3) .. ' hashes' })
end
return out
