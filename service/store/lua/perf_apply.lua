-- Applies one batch of performance events of ONE Kafka partition, exactly once: the
-- second half of the step service/store/metrics.py numbers. The worker read the sums the
-- batch adds to (in one transaction), added the batch's counts to them
-- and hands this script the new sums, with the position and the `forgotten` count it
-- read them at. The script writes them as given, only if neither moved since: no other
-- write can have come between, so each sum is the old one plus the batch's counts, and
-- the table of ids holds no id the worker did not look up.
-- Every key it touches is declared and carries the partition's hash tag, so the step is
-- atomic on a cluster too, and safe while the partition's slot migrates.
--
-- KEYS[1]          position: the offset of the last event of this partition applied
-- KEYS[2]          counters hash of the partition: applied, duplicates, late, forgotten
-- KEYS[3]          dirty set: assets whose sums changed since the last board refresh
-- KEYS[4]          table of the ids the partition applied (service/store/seen_ids.py)
-- KEYS[5 ..]       metric hashes the batch writes sums to: `<asset_id>` -> its sums
-- ARGV[1] offset of the batch's first event;  ARGV[2] offset of its last event
-- ARGV[3] expected position: the position this worker last read or wrote (-1: none)
-- ARGV[4] EXPIREAT of the table of ids
-- ARGV[5] copies the worker dropped (an id twice in the batch, or in the table)
-- ARGV[6] late events (older than the longest window: in the lifetime sums only)
-- ARGV[7] the position the sums were read at;  ARGV[8] the forgotten count read then
-- ARGV[9] the events applied;  ARGV[10] D, the number of assets to mark dirty
-- ARGV[11] the table's buckets after the step;  ARGV[12] its entries after the step
-- ARGV[13] W, the number of buckets written
-- Then D asset_ids (every asset of the batch), W pairs of bucket and its new value, and
-- for each hash from KEYS[5] on: its EXPIREAT (0: none), N, and N pairs of asset_id and
-- its new sums.
--
-- Steps, in order; nothing is written before step 3:
-- 1. Validate the numbers and the sections' lengths; bad input is an error reply. The
--    sums and buckets are written as given (the worker's codecs make them; readers
--    decode them strictly): checking each here would cost more than the rest of the
--    script.
-- 2. Position: {-2, position} when it is below ARGV[3] (Redis lost writes: the worker
--    seeks back); {0, position} when the whole batch was applied before; {-1, position}
--    when the batch straddles it (the caller drops the events at or below it and calls
--    again); {-5, position} when the position or the forgotten count is not the one the
--    sums were read at (another writer came between: the caller reads again). The
--    worker looked the ids up in the buckets read at that fence, so they hold too.
-- 3. Write the sums, the expiries, the table's buckets, the dirty assets, the
--    partition's counters and the position. Returns {1, applied, duplicates, late}.
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
local seen_expire = integer(ARGV[4], 1, MAX, 'expiry of the table of ids')
local copies = integer(ARGV[5], 0, MAX, 'copies')
local late = integer(ARGV[6], 0, MAX, 'late')
local read_at = integer(ARGV[7], -1, MAX, 'position the sums were read at')
local forgotten_then = integer(ARGV[8], 0, MAX, 'forgotten count the sums were read at')
local applied = integer(ARGV[9], 0, MAX, 'events applied')
local D = integer(ARGV[10], 0, #ARGV, 'number of dirty assets')
local buckets = integer(ARGV[11], 1, 1073741824, 'buckets of the table of ids')
local entries = integer(ARGV[12], 0, MAX, 'entries of the table of ids')
local W = integer(ARGV[13], 0, #ARGV, 'number of buckets written')
local H = #KEYS - 4
if H < 0 then
  error({ err = 'ERR bad input: ' .. #KEYS .. ' keys, at least 4 expected' })
end
local hashes = {} -- {key, expiry, first pair argument, last pair argument}
local at = 14 + D + 2 * W
for i = 1, H do
  local expiry = integer(ARGV[at], 0, MAX, 'expiry of hash ' .. i)
  local n = integer(ARGV[at + 1], 0, #ARGV, 'number of assets of hash ' .. i)
  hashes[i] = { KEYS[4 + i], expiry, at + 2, at + 1 + 2 * n }
  at = at + 2 + 2 * n
end
if at ~= #ARGV + 1 then
  error({ err = 'ERR bad input: ' .. #ARGV .. ' arguments for ' .. D .. ' dirty assets, ' ..
    W .. ' buckets and ' .. H .. ' hashes' })
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

-- 3. Write.
for _, h in ipairs(hashes) do
  if h[4] >= h[3] then
    ranged('HSET', h[1], h[3], h[4], 2)
    if h[2] > 0 then
      redis.call('EXPIREAT', h[1], string.format('%d', h[2]))
    end
  end
end
if W > 0 then
  redis.call('HSET', KEYS[4], 'n', string.format('%d', buckets), 'c', string.format('%d', entries))
  ranged('HSET', KEYS[4], 14 + D, 13 + D + 2 * W, 2)
  redis.call('EXPIREAT', KEYS[4], string.format('%d', seen_expire))
end
ranged('SADD', KEYS[3], 14, 13 + D, 1)
redis.call('SET', KEYS[1], ARGV[2])
redis.call('HINCRBY', KEYS[2], 'applied', applied)
redis.call('HINCRBY', KEYS[2], 'duplicates', copies)
redis.call('HINCRBY', KEYS[2], 'late', late)
return { 1, applied, copies, late }
