-- Applies one batch of performance events of ONE Kafka partition, exactly once.
-- Every key carries the partition's hash tag, so the step is atomic on a cluster too.
--
-- KEYS[1]  position: the offset of the last event of this partition already applied
-- KEYS[2]  counters hash of the partition: applied, duplicates, late
-- ARGV[1]  key prefix of the partition, e.g. "media:{pm:3}:"
-- ARGV[2]  offset of the batch's first event;  ARGV[3]  offset of its last event
-- ARGV[4]  now (epoch seconds)
-- ARGV[5]  seconds an event_id is remembered after its event-time hour (or after now)
-- ARGV[6]  epoch seconds before which an event is late (counts in lifetime only)
-- ARGV[7]  JSON [[resolution name, bucket seconds, retention seconds], ...]
-- ARGV[8]  JSON [[event_id, asset_id, channel, campaign, epoch seconds,
--                 impressions, clicks, engagements, conversions, shares, comments], ...]
--
-- Assets whose counters changed are added to the partition's `dirty` set, which the
-- leaderboard refresh drains.
--
-- Returns {1, applied, duplicates, late} when applied; {0, position} when the whole
-- batch was applied before; {-1, position} when the batch straddles the position
-- (the caller drops the events at or below it and calls again).
local position = tonumber(redis.call('GET', KEYS[1]) or '-1')
local first, last = tonumber(ARGV[2]), tonumber(ARGV[3])
if last <= position then
  return { 0, position }
end
if first <= position then
  return { -1, position }
end

local prefix = ARGV[1]
local now = tonumber(ARGV[4])
local seen_ttl = tonumber(ARGV[5])
local late_before = tonumber(ARGV[6])
local resolutions = cjson.decode(ARGV[7])
local events = cjson.decode(ARGV[8])
local metrics = { 'impressions', 'clicks', 'engagements', 'conversions', 'shares', 'comments' }

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
          local key = prefix .. 'a:' .. ev[2] .. ':' .. r[1] .. ':' .. string.format('%d', start)
          keys[#keys + 1] = key
          expiry[key] = expires
        end
      end
    end
    local channel = 'ch:' .. ev[3] .. ':'
    local campaign = 'cp:' .. ev[4] .. ':'
    for m = 1, 6 do
      local delta = ev[5 + m]
      if delta > 0 then
        for _, key in ipairs(keys) do
          add(key, channel .. metrics[m], delta)
          add(key, campaign .. metrics[m], delta)
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
return { 1, applied, duplicates, late }
