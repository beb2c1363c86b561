-- Applies one batch of performance events of ONE Kafka partition, exactly once.
-- Every key carries the partition's hash tag, so the step is atomic on a cluster too.
--
-- KEYS[1]  position: the offset of the last event of this partition already applied
-- KEYS[2]  counters hash of the partition: applied, duplicates, late, volume
-- ARGV[1]  key prefix of the partition, e.g. "media:{pm:3}:"
-- ARGV[2]  offset of the batch's first event;  ARGV[3]  offset of its last event
-- ARGV[4]  now (epoch seconds)
-- ARGV[5]  seconds an event_id is remembered after its event-time hour (or after now)
-- ARGV[6]  epoch seconds before which an event is late (counts in lifetime only)
-- ARGV[7]  JSON [[resolution name, bucket seconds, retention seconds], ...]
-- ARGV[8]  JSON [[event_id, asset_id, channel, campaign, epoch seconds,
--                 impressions, clicks, engagements, conversions, shares, comments], ...]
-- ARGV[9]  expected position: the position this worker last read or wrote (-1: none)
-- ARGV[10] the largest delta one event may carry
--
-- Steps, in order; nothing is written before step 4:
-- 1. Validate every argument and event; bad input is an error reply.
-- 2. Position: {-2, position} when it is below ARGV[9] (Redis lost writes: the worker
--    seeks back); {0, position} when the whole batch was applied before; {-1, position}
--    when the batch straddles it (the caller drops the events at or below it and calls
--    again).
-- 3. Overflow guard: `volume` (the sum of every delta this partition ever applied)
--    bounds every counter of the partition. While volume plus this batch stays below
--    LIMIT no counter can overflow; past it, each lifetime counter the batch touches is
--    read, and {-3, asset_id} refuses a batch that would take one above LIMIT (HINCRBY
--    would fail halfway through the writes, which Redis does not roll back).
-- 4. De-duplicate event ids (per event-time hour; a copy within the batch too), add the
--    deltas to the buckets and lifetime counters, mark the touched assets dirty for the
--    leaderboards, move the counters and the position. Returns {1, applied, duplicates,
--    late}.
local LIMIT = 9.0e18 -- below 2^63 - 1 by more than any batch can add

local function integer(value, low, high, what)
  local n = tonumber(value)
  if n == nil or n ~= math.floor(n) or n < low or n > high then
    error({ err = 'ERR bad input: ' .. what .. ' must be an integer in [' ..
      string.format('%d', low) .. ', ' .. string.format('%.0f', high) .. '], got ' ..
      tostring(value) })
  end
  return n
end

local function nonempty(value, what)
  if type(value) ~= 'string' or value == '' then
    error({ err = 'ERR bad input: ' .. what .. ' must be a non-empty string' })
  end
  return value
end

local function decode(text, what)
  local ok, value = pcall(cjson.decode, text)
  if not ok or type(value) ~= 'table' then
    error({ err = 'ERR bad input: ' .. what .. ' is not a JSON array' })
  end
  return value
end

-- 1. Validate.
local MAX_INT = 9007199254740991 -- 2^53 - 1: larger numbers are not exact in Lua
local prefix = nonempty(ARGV[1], 'ARGV[1] prefix')
local first = integer(ARGV[2], 0, MAX_INT, 'first offset')
local last = integer(ARGV[3], first, MAX_INT, 'last offset')
local now = integer(ARGV[4], 0, MAX_INT, 'now')
local seen_ttl = integer(ARGV[5], 1, MAX_INT, 'seen ttl')
local late_before = integer(ARGV[6], -MAX_INT, MAX_INT, 'late_before')
local resolutions = decode(ARGV[7], 'resolutions')
local events = decode(ARGV[8], 'events')
local expected = integer(ARGV[9], -1, MAX_INT, 'expected position')
local max_delta = integer(ARGV[10], 0, 1e12, 'max delta')
for i, r in ipairs(resolutions) do
  nonempty(r[1], 'resolution name')
  integer(r[2], 1, MAX_INT, 'resolution seconds')
  integer(r[3], 0, MAX_INT, 'resolution retention')
end
-- The events are checked inline (no string is built unless one is bad): this loop runs
-- for every event of every batch.
local floor = math.floor
local function bad_event(i, what)
  error({ err = 'ERR bad input: event ' .. i .. ' ' .. what })
end
local batch_volume = 0
for i, ev in ipairs(events) do
  if type(ev) ~= 'table' or #ev ~= 11 then
    bad_event(i, 'must be an array of 11 values')
  end
  for f = 1, 4 do
    local v = ev[f]
    if type(v) ~= 'string' or v == '' then
      bad_event(i, 'field ' .. f .. ' must be a non-empty string')
    end
  end
  local t = ev[5]
  if type(t) ~= 'number' or t ~= floor(t) or t < -MAX_INT or t > MAX_INT then
    bad_event(i, 'time must be an integer in [-2^53, 2^53], got ' .. tostring(t))
  end
  for m = 6, 11 do
    local d = ev[m]
    if type(d) ~= 'number' or d ~= floor(d) or d < 0 or d > max_delta then
      bad_event(i, 'delta ' .. (m - 5) .. ' must be an integer in [0, ' ..
        string.format('%.0f', max_delta) .. '], got ' .. tostring(d))
    end
    batch_volume = batch_volume + d
  end
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

local metrics = { 'impressions', 'clicks', 'engagements', 'conversions', 'shares', 'comments' }

-- 3. Overflow guard, before the first write, over every event of the batch (copies
-- included: the guard may only be stricter than needed, never looser).
local volume = tonumber(redis.call('HGET', KEYS[2], 'volume') or '0')
local guarded = volume + batch_volume <= LIMIT
if not guarded then
  local sums = {} -- asset -> field -> the batch's delta to its lifetime counter
  for _, ev in ipairs(events) do
    local fields = sums[ev[2]]
    if not fields then
      fields = {}
      sums[ev[2]] = fields
    end
    for m = 1, 6 do
      local delta = ev[5 + m]
      if delta > 0 then
        for _, f in ipairs({ 'ch:' .. ev[3] .. ':' .. metrics[m], 'cp:' .. ev[4] .. ':' .. metrics[m] }) do
          fields[f] = (fields[f] or 0) + delta
        end
      end
    end
  end
  for asset, fields in pairs(sums) do
    local life = prefix .. 'a:' .. asset .. ':life'
    for field, delta in pairs(fields) do
      if tonumber(redis.call('HGET', life, field) or '0') + delta > LIMIT then
        return { -3, asset }
      end
    end
  end
end

-- 4. Write: de-duplicate (HSETNX also catches a copy within the batch), add up the
-- deltas per key and field, then apply them.
local deltas = {}   -- key -> field -> delta
local expiry = {}   -- key -> EXPIREAT
local touched = {}  -- asset_id -> true: their leaderboard entries need a refresh
local applied, duplicates, late = 0, 0, 0

local function add(key, field, delta)
  local fields = deltas[key]
  if not fields then
    fields = {}
    deltas[key] = fields
  end
  fields[field] = (fields[field] or 0) + delta
end

for _, ev in ipairs(events) do
  local t = ev[5]
  local hour = t - t % 3600
  local seen_key = prefix .. 'seen:' .. string.format('%d', hour)
  if redis.call('HSETNX', seen_key, ev[1], 1) == 1 then
    expiry[seen_key] = math.max(hour + 3600, now) + seen_ttl
    applied = applied + 1
    touched[ev[2]] = true
    local keys = { prefix .. 'a:' .. ev[2] .. ':life' }
    if t < late_before then
      late = late + 1
    else
      for _, r in ipairs(resolutions) do
        local start = t - t % r[2]
        local expires = start + r[2] + r[3]
        if expires > now then
          local bucket = prefix .. 'a:' .. ev[2] .. ':' .. r[1] .. ':' .. string.format('%d', start)
          keys[#keys + 1] = bucket
          expiry[bucket] = expires
        end
      end
    end
    local channel = 'ch:' .. ev[3] .. ':'
    local campaign = 'cp:' .. ev[4] .. ':'
    for m = 1, 6 do
      local delta = ev[5 + m]
      if delta > 0 then
        for _, k in ipairs(keys) do
          add(k, channel .. metrics[m], delta)
          add(k, campaign .. metrics[m], delta)
        end
      end
    end
  else
    duplicates = duplicates + 1
  end
end

for key, fields in pairs(deltas) do
  for field, delta in pairs(fields) do
    redis.call('HINCRBY', key, field, string.format('%d', delta))
  end
end
for key, at in pairs(expiry) do
  redis.call('EXPIREAT', key, string.format('%d', at))
end
for asset in pairs(touched) do
  redis.call('SADD', prefix .. 'dirty', asset)
end
redis.call('SET', KEYS[1], ARGV[3])
redis.call('HINCRBY', KEYS[2], 'applied', applied)
redis.call('HINCRBY', KEYS[2], 'duplicates', duplicates)
redis.call('HINCRBY', KEYS[2], 'late', late)
if guarded then
  redis.call('HINCRBY', KEYS[2], 'volume', string.format('%d', batch_volume))
end
return { 1, applied, duplicates, late }
