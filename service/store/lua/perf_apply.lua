-- Applies one batch of performance events of ONE Kafka partition, exactly once.
-- The worker has already added the batch up per key, asset, channel or campaign, and
-- metric (service/store/perf_batch.py); this script checks the event ids and adds one
-- merged count per counter. Every key it touches is declared and carries the partition's
-- hash tag, so the step is atomic on a cluster too, and safe while the partition's slot
-- migrates.
--
-- KEYS[1]          position: the offset of the last event of this partition already applied
-- KEYS[2]          counters hash of the partition: applied, duplicates, late
-- KEYS[3]          dirty set: assets whose counters changed since the last board refresh
-- KEYS[4 .. 3+G]   id sets of the last G generations of processing time, oldest first;
--                  the newest (KEYS[3+G]) receives the batch's ids
-- KEYS[4+G]        lifetime hash: `<asset_id>|<dimension>|<metric index>` -> count, and
--                  `<asset_id>` -> the asset's dimensions, `|ch:web|cp:c1|...|`
-- KEYS[5+G ..]     bucket hashes: `<asset_id>|<dimension>|<metric index>` -> count
-- ARGV[1] offset of the batch's first event;  ARGV[2] offset of its last event
-- ARGV[3] expected position: the position this worker last read or wrote (-1: none)
-- ARGV[4] G, the number of id sets;  ARGV[5] EXPIREAT of the newest id set
-- ARGV[6] the fingerprints of the batch's event ids, concatenated, ARGV[7] bytes each
-- ARGV[8] copies the worker dropped (an id twice in the batch, or named by step 3 before)
-- ARGV[9] late events (older than the longest window: in the lifetime entries only)
-- ARGV[10] JSON, one item per hash from KEYS[4+G] on: [EXPIREAT or 0, [counter, ...],
--          [count to add, ...]]
-- ARGV[11] JSON [asset_id, [dimension, ...], ...]: every asset of the batch and the
--          dimensions its events name (an asset of events that add nothing has none)
--
-- Steps, in order; nothing is written before step 5:
-- 1. Validate the arguments; bad input is an error reply.
-- 2. Position: {-2, position} when it is below ARGV[3] (Redis lost writes: the worker
--    seeks back); {0, position} when the whole batch was applied before; {-1, position}
--    when the batch straddles it (the caller drops the events at or below it and calls
--    again).
-- 3. Ids: {-4, i, ...} names (1-based) the fingerprints already in an id set; the caller
--    counts those events as copies, merges the batch again without them and calls again.
-- 4. Add: read each hash's counters the batch names, add the counts; a count that is not a
--    whole number >= 0 is an error, and {-3, asset_id} refuses a batch that would take a
--    counter above 2^53 - 1 (Lua adds in doubles, exact up to there). Read the assets'
--    dimension lists and add the dimensions they lack.
-- 5. Write the sums, the expiries, the dimension lists, the ids, the dirty assets, the
--    counters and the position. Returns {1, applied, duplicates, late}.
local MAX = 9007199254740991 -- 2^53 - 1
local CHUNK = 2000 -- arguments per command: Lua's unpack() takes at most ~8000
local floor, format, sub, concat = math.floor, string.format, string.sub, table.concat
local decode = cjson.decode

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

-- Runs `command key args...` in chunks of CHUNK arguments; returns the replies joined.
local function chunked(command, key, args)
  local replies = {}
  for from = 1, #args, CHUNK do
    local upto = math.min(from + CHUNK - 1, #args)
    local reply = redis.call(command, key, unpack(args, from, upto))
    if type(reply) == 'table' then
      for _, r in ipairs(reply) do replies[#replies + 1] = r end
    end
  end
  return replies
end

-- 1. Validate.
local first = integer(ARGV[1], 0, MAX, 'first offset')
local last = integer(ARGV[2], first, MAX, 'last offset')
local expected = integer(ARGV[3], -1, MAX, 'expected position')
local G = integer(ARGV[4], 1, 64, 'number of id sets')
local ids_expire = integer(ARGV[5], 1, MAX, 'id set expiry')
local blob = ARGV[6]
local width = integer(ARGV[7], 8, 64, 'fingerprint bytes')
local copies = integer(ARGV[8], 0, MAX, 'copies')
local late = integer(ARGV[9], 0, MAX, 'late')
if #blob % width ~= 0 then
  bad('ARGV[6] is not a whole number of ' .. width .. '-byte fingerprints')
end
local ok, updates = pcall(decode, ARGV[10])
if not ok or type(updates) ~= 'table' then
  bad('ARGV[10] is not a JSON array')
end
if #KEYS ~= 3 + G + #updates then
  bad(#KEYS .. ' keys for ' .. G .. ' id sets and ' .. #updates .. ' hashes')
end
for i, u in ipairs(updates) do
  if type(u) ~= 'table' or type(u[2]) ~= 'table' or type(u[3]) ~= 'table' or
      #u[2] ~= #u[3] then
    bad('hash ' .. i .. ' must be [expiry, [counter, ...], [count to add, ...]]')
  end
  integer(u[1], 0, MAX, 'expiry of hash ' .. i)
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
local fingerprints = {}
for i = 1, #blob / width do
  fingerprints[i] = sub(blob, (i - 1) * width + 1, i * width)
end
if #fingerprints > 0 then
  local known = {}
  for g = 1, G do
    for i, hit in ipairs(chunked('SMISMEMBER', KEYS[3 + g], fingerprints)) do
      if hit == 1 then known[#known + 1] = i end
    end
  end
  if #known > 0 then
    return { -4, unpack(known) }
  end
end

-- 4. Add, before any write.
local writes = {} -- hash index -> {counter, sum, ...}
for i, u in ipairs(updates) do
  local counters, deltas = u[2], u[3]
  if #counters > 0 then
    local current = chunked('HMGET', KEYS[3 + G + i], counters)
    local args = {}
    for j, counter in ipairs(counters) do
      local delta = deltas[j]
      if type(counter) ~= 'string' or type(delta) ~= 'number' or delta < 0 or
          delta ~= floor(delta) then
        bad('hash ' .. i .. ' counter ' .. tostring(counter) ..
          ' must be a name and a whole number >= 0, got ' .. tostring(delta))
      end
      local sum = (tonumber(current[j]) or 0) + delta
      if sum >= 1e14 then -- below, Redis writes the number exactly itself (%.14g)
        if sum > MAX then
          return { -3, string.match(counter, '^[^|]*') }
        end
        sum = format('%d', sum)
      end
      args[2 * j - 1] = counter
      args[2 * j] = sum
    end
    writes[i] = args
  end
end
local ok_dims, dims = pcall(decode, ARGV[11])
if not ok_dims or type(dims) ~= 'table' or #dims % 2 ~= 0 then
  bad('ARGV[11] is not a JSON array of asset ids and their dimensions')
end
local assets, lists = {}, {}
for j = 1, #dims, 2 do
  if type(dims[j]) ~= 'string' or dims[j] == '' or type(dims[j + 1]) ~= 'table' then
    bad('ARGV[11] item ' .. j .. ' must be a non-empty asset_id and its dimensions')
  end
  assets[#assets + 1] = dims[j]
end
local stored = #assets > 0 and chunked('HMGET', KEYS[4 + G], assets) or {}
for j, asset in ipairs(assets) do
  local list = stored[j] or '|'
  local grown = false
  for _, dimension in ipairs(dims[2 * j]) do
    if not string.find(list, '|' .. dimension .. '|', 1, true) then
      list = list .. dimension .. '|'
      grown = true
    end
  end
  if grown then
    lists[#lists + 1] = asset
    lists[#lists + 1] = list
  end
end

-- 5. Write.
for i, args in pairs(writes) do
  local key = KEYS[3 + G + i]
  chunked('HSET', key, args)
  if updates[i][1] > 0 then
    redis.call('EXPIREAT', key, format('%d', updates[i][1]))
  end
end
if #fingerprints > 0 then
  chunked('SADD', KEYS[3 + G], fingerprints)
  redis.call('EXPIREAT', KEYS[3 + G], format('%d', ids_expire))
end
if #lists > 0 then
  chunked('HSET', KEYS[4 + G], lists)
end
if #assets > 0 then
  chunked('SADD', KEYS[3], assets)
end
redis.call('SET', KEYS[1], ARGV[2])
redis.call('HINCRBY', KEYS[2], 'applied', #fingerprints)
redis.call('HINCRBY', KEYS[2], 'duplicates', copies)
redis.call('HINCRBY', KEYS[2], 'late', late)
return { 1, #fingerprints, copies, late }
