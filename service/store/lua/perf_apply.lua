-- Applies one batch of performance events of ONE Kafka partition, exactly once: the
-- second half of the step perf_sums.lua begins. The worker read the sums the batch adds
-- to with perf_sums.lua, added the batch's counts to them (service/store/metrics.py)
-- and hands this script the new sums, with the position and the `forgotten` count it
-- read them at. The script writes them as given, only if neither moved since: no other
-- write can have come between, so each sum is the old one plus the batch's counts.
-- Every key it touches is declared and carries the partition's hash tag, so the step is
-- atomic on a cluster too, and safe while the partition's slot migrates.
--
-- KEYS[1]          position: the offset of the last event of this partition applied
-- KEYS[2]          counters hash of the partition: applied, duplicates, late, forgotten
-- KEYS[3]          dirty set: assets whose sums changed since the last board refresh
-- KEYS[4 .. 3+G]   id sets of the last G generations of processing time, oldest first;
--                  the newest (KEYS[3+G]) receives the batch's ids
-- KEYS[4+G ..]     metric hashes the batch writes sums to: `<asset_id>` -> its sums
-- ARGV[1] offset of the batch's first event;  ARGV[2] offset of its last event
-- ARGV[3] expected position: the position this worker last read or wrote (-1: none)
-- ARGV[4] G, the number of id sets;  ARGV[5] EXPIREAT of the newest id set
-- ARGV[6] copies the worker dropped (an id twice in the batch, or named by step 3 before)
-- ARGV[7] late events (older than the longest window: in the lifetime sums only)
-- ARGV[8] the position the sums were read at;  ARGV[9] the forgotten count read then
-- ARGV[10] F, the number of fingerprints;  ARGV[11] D, the number of assets to mark dirty
-- Then F fingerprints of the batch's event ids (12 bytes), D asset_ids (every asset of
-- the batch), and for each hash from KEYS[4+G] on: its EXPIREAT (0: none), N, and N
-- pairs of asset_id and its new sums.
--
-- Steps, in order; nothing is written before step 4:
-- 1. Validate the numbers and the sections' lengths; bad input is an error reply. The
--    sums are written as given (the worker's codec, `codecs.encode_sums`, makes them;
--    readers decode them strictly): checking each here would cost more than the rest of
--    the script.
-- 2. Position: {-2, position} when it is below ARGV[3] (Redis lost writes: the worker
--    seeks back); {0, position} when the whole batch was applied before; {-1, position}
--    when the batch straddles it (the caller drops the events at or below it and calls
--    again); {-5, position} when the position or the forgotten count is not the one the
--    sums were read at (another writer came between: the caller reads again).
-- 3. Ids: {-4, i, ...} names (1-based) the fingerprints already in an id set; the caller
--    counts those events as copies, adds the batch up again without them and calls again
--    (the sums it read still hold: nothing was written).
-- 4. Write the sums, the expiries, the ids, the dirty assets, the partition's counters
--    and the position. Returns {1, applied, duplicates, late}.
local MAX = 9007199254740991 -- 2^53 - 1
local CHUNK = 2000 -- arguments per command: Lua's unpack() takes at most ~8000

local function integer(value, low, high, what)
  local n = tonumber(value)
  if n == nil or n % 1 ~= 0 or n < low or n > high then
    error({ err = 'ERR bad input: ' .. what .. ' must be an integer in [' ..
      string.format('%d', low) .. ', ' .. string.format('%d', high) .. '], got ' .. tostring(value) })
  end
  return n
end

-- Runs `command key ARGV[from..upto]` in chunks of CHUNK arguments (whole entries of
-- `per`); returns the replies joined. Nothing to run when upto < from.
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
local read_at = integer(ARGV[8], -1, MAX, 'position the sums were read at')
local forgotten_then = integer(ARGV[9], 0, MAX, 'forgotten count the sums were read at')
local F = integer(ARGV[10], 0, #ARGV, 'number of fingerprints')
local D = integer(ARGV[11], 0, #ARGV, 'number of dirty assets')
local H = #KEYS - 3 - G
if H < 0 then
  error({ err = 'ERR bad input: ' .. #KEYS .. ' keys for ' .. G .. ' id sets' })
end
local hashes = {} -- {key, expiry, first pair argument, last pair argument}
local at = 12 + F + D
for i = 1, H do
  local expiry = integer(ARGV[at], 0, MAX, 'expiry of hash ' .. i)
  local n = integer(ARGV[at + 1], 0, #ARGV, 'number of assets of hash ' .. i)
  hashes[i] = { KEYS[3 + G + i], expiry, at + 2, at + 1 + 2 * n }
  at = at + 2 + 2 * n
end
if at ~= #ARGV + 1 then
  error({ err = 'ERR bad input: ' .. #ARGV .. ' arguments for ' .. F .. ' fingerprints, ' ..
    D .. ' dirty assets and ' .. H .. ' hashes' })
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
if position ~= read_at or tonumber(redis.call('HGET', KEYS[2], 'forgotten') or '0') ~= forgotten_then then
  return { -5, position }
end

-- 3. Ids.
if F > 0 then
  local known = {}
  for g = 1, G do
    for i, hit in ipairs(ranged('SMISMEMBER', KEYS[3 + g], 12, 11 + F, 1)) do
      if hit == 1 then known[#known + 1] = i end
    end
  end
  if #known > 0 then
    return { -4, unpack(known) }
  end
end

-- 4. Write.
for _, h in ipairs(hashes) do
  if h[4] >= h[3] then
    ranged('HSET', h[1], h[3], h[4], 2)
    if h[2] > 0 then
      redis.call('EXPIREAT', h[1], string.format('%d', h[2]))
    end
  end
end
if F > 0 then
  ranged('SADD', KEYS[3 + G], 12, 11 + F, 1)
  redis.call('EXPIREAT', KEYS[3 + G], string.format('%d', ids_expire))
end
ranged('SADD', KEYS[3], 12 + F, 11 + F + D, 1)
redis.call('SET', KEYS[1], ARGV[2])
redis.call('HINCRBY', KEYS[2], 'applied', F)
redis.call('HINCRBY', KEYS[2], 'duplicates', copies)
redis.call('HINCRBY', KEYS[2], 'late', late)
return { 1, F, copies, late }
