-- Applies one batch of performance events of ONE Kafka partition, exactly once.
-- The worker has added the batch up per counter (an asset's channel or campaign and a
-- metric), read the counters it changes and computed their new values
-- (service/store/metrics.py); this script checks that nothing changed them since, checks
-- the event ids, and writes. Every key it touches is declared and carries the
-- partition's hash tag, so the step is atomic on a cluster too, and safe while the
-- partition's slot migrates.
--
-- KEYS[1]          position: the offset of the last event of this partition already applied
-- KEYS[2]          counters hash of the partition: applied, duplicates, late, epoch
-- KEYS[3]          dirty set: assets whose counters changed since the last board refresh
-- KEYS[4 .. 3+G]   id sets of the last G generations of processing time, oldest first;
--                  the newest (KEYS[3+G]) receives the batch's ids
-- KEYS[4+G ..]     the hashes written, the lifetime hash first (when the batch changes
--                  a count): `<asset_id>|<dimension>|<metric index>` -> count; the
--                  lifetime hash also holds `<asset_id>` -> its dimensions, `|ch:web|...|`
-- ARGV[1] offset of the batch's first event;  ARGV[2] offset of its last event
-- ARGV[3] expected position: the position this worker last read or wrote (-1: none)
-- ARGV[4] G, the number of id sets;  ARGV[5] EXPIREAT of the newest id set
-- ARGV[6] copies the worker dropped (an id twice in the batch, or named by step 3 before)
-- ARGV[7] late events (older than the longest window: in the lifetime counters only)
-- ARGV[8] the partition's epoch when the worker read the counters (absent: 0)
-- ARGV[9] the asset of a counter the batch would take past 2^53 - 1, or ''
-- Then, each a count followed by that many items (so that each goes to Redis as it
-- came, with no parsing in Lua):
--   F, then F fingerprints of the batch's event ids (12-byte BLAKE2b)
--   for each hash from KEYS[4+G] on: its EXPIREAT (0: none), N, then N pairs
--     counter, new value (decimal)
--   L, then L pairs asset_id, its dimension list: the lists the batch grows
--   A, then A asset_ids: every asset of the batch (marked dirty)
--
-- Steps, in order; nothing is written before step 5:
-- 1. Validate the arguments; bad input is an error reply.
-- 2. Position: {-2, position} when it is below ARGV[3] (Redis lost writes: the worker
--    seeks back); {0, position} when the whole batch was applied before; {-1, position}
--    when the batch straddles it (the caller drops the events at or below it and calls
--    again). Since every writer of the partition's counters moves the position, a
--    position equal to ARGV[3] means no other step wrote them since the worker read them.
-- 3. Epoch: {-5, epoch} when it moved since the read (an asset's counters were removed):
--    the caller reads again. Overflow: {-3, asset_id} when ARGV[11] names one. Ids:
--    {-4, i, ...} names (1-based) the fingerprints already in an id set; the caller
--    counts those events as copies, adds the batch up again without them and calls again.
-- 4. (Nothing to compute: the values are the worker's.)
-- 5. Write the counters, the expiries, the dimension lists, the ids, the dirty assets,
--    the partition's counters and the position. Returns {1, applied, duplicates, late}.
local MAX = 9007199254740991 -- 2^53 - 1
local CHUNK = 2000 -- arguments per command: Lua's unpack() takes at most ~8000
local floor, format = math.floor, string.format

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

-- Runs `command key ARGV[from..upto]` in chunks of whole entries of `per` arguments
-- (CHUNK at most); returns the replies joined. Nothing to run when upto < from.
local function ranged(command, key, from, upto, per)
  local replies = {}
  local step = CHUNK - CHUNK % per
  for start = from, upto, step do
    local reply = redis.call(command, key, unpack(ARGV, start, math.min(start + step - 1, upto)))
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
local copies = integer(ARGV[6], 0, MAX, 'copies')
local late = integer(ARGV[7], 0, MAX, 'late')
local epoch = integer(ARGV[8], 0, MAX, 'epoch')
local overflow = ARGV[9]
-- The counted sections: `from` and `upto` of each, in ARGV.
local cursor = 10
local function section(items_per_entry, what)
  local count = integer(ARGV[cursor], 0, #ARGV, what)
  local from = cursor + 1
  cursor = from + count * items_per_entry
  if cursor - 1 > #ARGV then
    bad(what .. ': ' .. count .. ' announced, fewer given')
  end
  return from, cursor - 1
end
local ids_from, ids_upto = section(1, 'fingerprints')
local hashes = {} -- {key, expiry, from, upto}
for i = 1, #KEYS - 3 - G do
  local expiry = integer(ARGV[cursor], 0, MAX, 'expiry of hash ' .. i)
  cursor = cursor + 1
  local from, upto = section(2, 'counters of hash ' .. i)
  hashes[i] = { KEYS[3 + G + i], expiry, from, upto }
end
local lists_from, lists_upto = section(2, 'dimension lists')
local assets_from, assets_upto = section(1, 'assets')
if cursor - 1 ~= #ARGV then
  bad(#ARGV .. ' arguments for ' .. #KEYS .. ' keys: ' .. (#ARGV - cursor + 1) .. ' left over')
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

-- 3. Epoch, overflow, ids.
local stored_epoch = tonumber(redis.call('HGET', KEYS[2], 'epoch') or '0')
if stored_epoch ~= epoch then
  return { -5, stored_epoch }
end
if overflow ~= '' then
  return { -3, overflow }
end
if ids_upto >= ids_from then
  local known = {}
  for g = 1, G do
    local hits = ranged('SMISMEMBER', KEYS[3 + g], ids_from, ids_upto, 1)
    for i, hit in ipairs(hits) do
      if hit == 1 then known[#known + 1] = i end
    end
  end
  if #known > 0 then
    return { -4, unpack(known) }
  end
end

-- 5. Write.
for _, h in ipairs(hashes) do
  ranged('HSET', h[1], h[3], h[4], 2)
  if h[2] > 0 then
    redis.call('EXPIREAT', h[1], format('%d', h[2]))
  end
end
ranged('HSET', KEYS[4 + G], lists_from, lists_upto, 2)
if ids_upto >= ids_from then
  ranged('SADD', KEYS[3 + G], ids_from, ids_upto, 1)
  redis.call('EXPIREAT', KEYS[3 + G], format('%d', ids_expire))
end
ranged('SADD', KEYS[3], assets_from, assets_upto, 1)
redis.call('SET', KEYS[1], ARGV[2])
local applied = ids_upto - ids_from + 1
redis.call('HINCRBY', KEYS[2], 'applied', applied)
redis.call('HINCRBY', KEYS[2], 'duplicates', copies)
redis.call('HINCRBY', KEYS[2], 'late', late)
return { 1, applied, copies, late }
