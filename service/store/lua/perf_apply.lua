-- Applies one batch of performance events of ONE Kafka partition, exactly once.
-- The worker has already added the batch up per key and asset (service/store/perf_batch.py);
-- this script checks the event ids and adds one merged entry per key and asset. Every key
-- it touches is declared and carries the partition's hash tag, so the step is atomic on a
-- cluster too, and safe while the partition's slot migrates.
--
-- KEYS[1]          position: the offset of the last event of this partition already applied
-- KEYS[2]          counters hash of the partition: applied, duplicates, late
-- KEYS[3]          dirty set: assets whose counters changed since the last board refresh
-- KEYS[4 .. 3+G]   id sets of the last G generations of processing time, oldest first;
--                  the newest (KEYS[3+G]) receives the batch's ids
-- KEYS[4+G]        lifetime hash: asset_id -> counters
-- KEYS[5+G ..]     bucket hashes: asset_id -> counters
-- ARGV[1] offset of the batch's first event;  ARGV[2] offset of its last event
-- ARGV[3] expected position: the position this worker last read or wrote (-1: none)
-- ARGV[4] G, the number of id sets;  ARGV[5] EXPIREAT of the newest id set
-- ARGV[6] the fingerprints of the batch's event ids, concatenated, ARGV[7] bytes each
-- ARGV[8] copies the worker dropped (an id twice in the batch, or named by step 3 before)
-- ARGV[9] late events (older than the longest window: in the lifetime entries only)
-- ARGV[10] JSON, one item per hash from KEYS[4+G] on: [EXPIREAT or 0, [asset_id, counters,
--          asset_id, counters, ...]], counters being {"ch:<channel>": [six counts],
--          "cp:<campaign>": [six counts]} to add
--
-- Steps, in order; nothing is written before step 5:
-- 1. Validate the arguments; bad input is an error reply.
-- 2. Position: {-2, position} when it is below ARGV[3] (Redis lost writes: the worker
--    seeks back); {0, position} when the whole batch was applied before; {-1, position}
--    when the batch straddles it (the caller drops the events at or below it and calls
--    again).
-- 3. Ids: {-4, i, ...} names (1-based) the fingerprints already in an id set; the caller
--    counts those events as copies, merges the batch again without them and calls again.
-- 4. Add: read each hash's entries for the batch's assets, add the counts; a count that is
--    not a whole number >= 0 is an error, and {-3, asset_id} refuses a batch that would
--    take a counter above 2^53 - 1 (Lua adds in doubles, exact up to there).
-- 5. Write the sums, the expiries, the ids, the dirty assets, the counters and the
--    position. Returns {1, applied, duplicates, late}.
local MAX = 9007199254740991 -- 2^53 - 1
local CHUNK = 2000 -- arguments per command: Lua's unpack() takes at most ~8000
local floor, format, sub, concat = math.floor, string.format, string.sub, table.concat
local encode, decode = cjson.encode, cjson.decode

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
  if type(u) ~= 'table' or type(u[2]) ~= 'table' or #u[2] % 2 ~= 0 then
    bad('hash ' .. i .. ' must be [expiry, [asset_id, counters, ...]]')
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
local writes = {} -- hash index -> {asset_id, encoded counters, ...}
for i, u in ipairs(updates) do
  local entries = u[2]
  if #entries > 0 then
    local assets = {}
    for j = 1, #entries, 2 do
      local asset = entries[j]
      if type(asset) ~= 'string' or asset == '' or type(entries[j + 1]) ~= 'table' then
        bad('hash ' .. i .. ' entry ' .. j .. ' must be a non-empty asset_id and its counters')
      end
      assets[#assets + 1] = asset
    end
    local current = chunked('HMGET', KEYS[3 + G + i], assets)
    local args = {}
    for j, asset in ipairs(assets) do
      local stored = current[j]
      local counters = stored and decode(stored) or {}
      for dimension, add in pairs(entries[2 * j]) do
        local sums = counters[dimension]
        if sums == nil then
          sums = { 0, 0, 0, 0, 0, 0 }
          counters[dimension] = sums
        end
        if type(add) ~= 'table' or #add ~= 6 then
          bad('counters of ' .. asset .. ' ' .. tostring(dimension) .. ' must be six counts')
        end
        for m = 1, 6 do
          local delta = add[m]
          if type(delta) ~= 'number' or delta < 0 or delta ~= floor(delta) then
            bad('count ' .. m .. ' of ' .. asset .. ' ' .. dimension ..
              ' must be a whole number >= 0, got ' .. tostring(delta))
          end
          local sum = sums[m] + delta
          if sum > MAX then
            return { -3, asset }
          end
          sums[m] = sum
        end
      end
      local parts = {}
      for dimension, sums in pairs(counters) do
        parts[#parts + 1] = format('%s:[%d,%d,%d,%d,%d,%d]', encode(dimension),
          sums[1], sums[2], sums[3], sums[4], sums[5], sums[6])
      end
      args[#args + 1] = asset
      args[#args + 1] = '{' .. concat(parts, ',') .. '}'
    end
    writes[i] = args
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
if writes[1] then
  local dirty = {}
  for j = 1, #writes[1], 2 do dirty[#dirty + 1] = writes[1][j] end
  chunked('SADD', KEYS[3], dirty)
end
redis.call('SET', KEYS[1], ARGV[2])
redis.call('HINCRBY', KEYS[2], 'applied', #fingerprints)
redis.call('HINCRBY', KEYS[2], 'duplicates', copies)
redis.call('HINCRBY', KEYS[2], 'late', late)
return { 1, #fingerprints, copies, late }
