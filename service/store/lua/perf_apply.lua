-- Applies one batch of performance events of ONE Kafka partition, exactly once.
-- The worker has added the batch up per counter (an asset's channel or campaign and a
-- metric: service/store/perf_batch.py); this script checks the event ids and adds one
-- count per counter, whatever the number of events behind it. Every key it touches is
-- declared and carries the partition's hash tag, so the step is atomic on a cluster too,
-- and safe while the partition's slot migrates.
--
-- KEYS[1]          position: the offset of the last event of this partition already applied
-- KEYS[2]          counters hash of the partition: applied, duplicates, late
-- KEYS[3]          dirty set: assets whose counters changed since the last board refresh
-- KEYS[4 .. 3+G]   id sets of the last G generations of processing time, oldest first;
--                  the newest (KEYS[3+G]) receives the batch's ids
-- KEYS[4+G]        lifetime hash, then KEYS[5+G ..] bucket hashes, each:
--                  `<asset_id>|<dimension>|<metric index>` -> count, and `<asset_id>` ->
--                  the dimensions the asset has counts of in that hash, `|ch:web|cp:c1|`
-- ARGV[1] offset of the batch's first event;  ARGV[2] offset of its last event
-- ARGV[3] expected position: the position this worker last read or wrote (-1: none)
-- ARGV[4] G, the number of id sets;  ARGV[5] EXPIREAT of the newest id set
-- ARGV[6] copies the worker dropped (an id twice in the batch, or named by step 3 before)
-- ARGV[7] late events (older than the longest window: in the lifetime counters only)
-- ARGV[8] F, then ARGV[9 .. 8+F] the fingerprints of the batch's event ids (12 bytes)
-- Then, for each hash from KEYS[4+G] on, four arguments: its EXPIREAT (0: none), its
-- counters, the counts to add to them, and `<asset_id>|<dimension>|...` for every asset
-- of the batch with counts in the hash and the dimensions they are of (in the lifetime
-- hash: every asset of the batch), each separated by single spaces (no identifier
-- holds one). The lifetime hash's assets are marked dirty.
--
-- Steps, in order; nothing is written before step 5:
-- 1. Validate the arguments; bad input is an error reply.
-- 2. Position: {-2, position} when it is below ARGV[3] (Redis lost writes: the worker
--    seeks back); {0, position} when the whole batch was applied before; {-1, position}
--    when the batch straddles it (the caller drops the events at or below it and calls
--    again).
-- 3. Ids: {-4, i, ...} names (1-based) the fingerprints already in an id set; the caller
--    counts those events as copies, adds the batch up again without them and calls again.
-- 4. Add: read the counters and add the counts; a count that is not a whole number >= 0
--    is an error, and {-3, asset_id} refuses a batch that would take a counter above
--    2^53 - 1 (Lua adds in doubles, exact up to there). Read the assets' dimension lists
--    in each hash and add the dimensions they lack.
-- 5. Write the sums, the expiries, the dimension lists, the ids, the dirty assets, the
--    partition's counters and the position. Returns {1, applied, duplicates, late}.
local MAX = 9007199254740991 -- 2^53 - 1
local CHUNK = 2000 -- arguments per command: Lua's unpack() takes at most ~8000
local floor, format, gmatch, match = math.floor, string.format, string.gmatch, string.match

local function integer(value, low, high, what)
  local n = tonumber(value)
  if n == nil or n ~= floor(n) or n < low or n > high then
    error({ err = 'ERR bad input: ' .. what .. ' must be an integer in [' ..
      format('%d', low) .. ', ' .. format('%d', high) .. '], got ' .. tostring(value) })
  end
  return n
end

local function bad(what)
  error({ err = 'ERR bad input: ' .. what })
end

-- Runs `command key list[from..upto]` in chunks of CHUNK arguments (whole entries of
-- `per`); returns the replies joined. Nothing to run when upto < from.
local function ranged(command, key, list, from, upto, per)
  local replies = {}
  local step = CHUNK - CHUNK % per
  for start = from, upto, step do
    local reply = redis.call(command, key, unpack(list, start, math.min(start + step - 1, upto)))
    if type(reply) == 'table' then
      for _, r in ipairs(reply) do replies[#replies + 1] = r end
    end
  end
  return replies
end

local function words(text)
  local list = {}
  for word in gmatch(text, '%S+') do list[#list + 1] = word end
  return list
end

-- 1. Validate.
local first = integer(ARGV[1], 0, MAX, 'first offset')
local last = integer(ARGV[2], first, MAX, 'last offset')
local expected = integer(ARGV[3], -1, MAX, 'expected position')
local G = integer(ARGV[4], 1, 64, 'number of id sets')
local ids_expire = integer(ARGV[5], 1, MAX, 'id set expiry')
local copies = integer(ARGV[6], 0, MAX, 'copies')
local late = integer(ARGV[7], 0, MAX, 'late')
local F = integer(ARGV[8], 0, #ARGV, 'number of fingerprints')
local H = #KEYS - 3 - G
if H < 1 or #ARGV ~= 8 + F + 4 * H then
  bad(#ARGV .. ' arguments for ' .. F .. ' fingerprints and ' .. H .. ' hashes')
end
local hashes = {} -- {key, expiry, counters, counts, assets, their entries}
for i = 1, H do
  local at = 8 + F + 4 * (i - 1)
  local counters, counts = words(ARGV[at + 2]), words(ARGV[at + 3])
  if #counters ~= #counts then
    bad('hash ' .. i .. ': ' .. #counters .. ' counters and ' .. #counts .. ' counts')
  end
  local assets, named = {}, {}
  for entry in gmatch(ARGV[at + 4], '%S+') do
    local asset = match(entry, '^[^|]+')
    if not asset then
      bad('hash ' .. i .. ' asset entry ' .. entry .. ' must start with an asset_id')
    end
    assets[#assets + 1] = asset
    named[#named + 1] = entry
  end
  hashes[i] = { KEYS[3 + G + i], integer(ARGV[at + 1], 0, MAX, 'expiry of hash ' .. i),
    counters, counts, assets, named }
end

-- 2. Position.
local position = tonumber(redis.call('GET', KEYS[1]) or '-1')
if position < expected then
  return { -2, position }
end
if last <= position then
  return { 0, position }
end
if first <= position then
  return { -1, position }
end

-- 3. Ids.
if F > 0 then
  local known = {}
  for g = 1, G do
    for i, hit in ipairs(ranged('SMISMEMBER', KEYS[3 + g], ARGV, 9, 8 + F, 1)) do
      if hit == 1 then known[#known + 1] = i end
    end
  end
  if #known > 0 then
    return { -4, unpack(known) }
  end
end

-- 4. Add, before any write: one HMGET per hash for its counters and its assets' lists.
local writes = {} -- hash index -> {counter, sum, ..., asset_id, grown list, ...}
for i, h in ipairs(hashes) do
  local counters, counts, assets, named = h[3], h[4], h[5], h[6]
  local fields = {}
  for j, counter in ipairs(counters) do fields[j] = counter end
  for j, asset in ipairs(assets) do fields[#counters + j] = asset end
  local current = ranged('HMGET', h[1], fields, 1, #fields, 1)
  local args = {}
  for j, counter in ipairs(counters) do
    local delta = tonumber(counts[j])
    if delta == nil or delta < 0 or delta ~= floor(delta) then
      bad('count ' .. tostring(counts[j]) .. ' of ' .. counter .. ' must be a whole number >= 0')
    end
    local sum = (tonumber(current[j]) or 0) + delta
    if sum >= 1e14 then -- below, Redis writes the number exactly itself (%.14g)
      if sum > MAX then
        return { -3, match(counter, '^[^|]*') }
      end
      sum = format('%d', sum)
    end
    args[2 * j - 1] = counter
    args[2 * j] = sum
  end
  for j, asset in ipairs(assets) do
    local list = current[#counters + j] or '|'
    local grown = list
    for dimension in gmatch(named[j], '|([^|]+)') do
      if not string.find(grown, '|' .. dimension .. '|', 1, true) then
        grown = grown .. dimension .. '|'
      end
    end
    if grown ~= list then
      args[#args + 1] = asset
      args[#args + 1] = grown
    end
  end
  writes[i] = args
end

-- 5. Write.
for i, h in ipairs(hashes) do
  ranged('HSET', h[1], writes[i], 1, #writes[i], 2)
  if h[2] > 0 and #h[3] > 0 then
    redis.call('EXPIREAT', h[1], format('%d', h[2]))
  end
end
if F > 0 then
  ranged('SADD', KEYS[3 + G], ARGV, 9, 8 + F, 1)
  redis.call('EXPIREAT', KEYS[3 + G], format('%d', ids_expire))
end
ranged('SADD', KEYS[3], hashes[1][5], 1, #hashes[1][5], 1)
redis.call('SET', KEYS[1], ARGV[2])
redis.call('HINCRBY', KEYS[2], 'applied', F)
redis.call('HINCRBY', KEYS[2], 'duplicates', copies)
redis.call('HINCRBY', KEYS[2], 'late', late)
return { 1, F, copies, late }
