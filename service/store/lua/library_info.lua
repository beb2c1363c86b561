-- Replaces a library's descriptive facts if the new version is the later one, so that
-- library-updated events applied in any order, any number of times, end the same.
--
-- KEYS[1]  library info hash: at (epoch microseconds), event_id, doc (LibraryInfo JSON)
-- ARGV[1]  the new version's time: epoch microseconds, an integer in [0, 2^53)
-- ARGV[2]  its event_id (non-empty)
-- ARGV[3]  its LibraryInfo JSON (an object)
--
-- The later time wins; at the same time, the greater event_id. Bad input is an error
-- reply 'ERR bad input: <what>' and changes nothing.
-- Returns 1 when written, 0 when what is stored is as late or later.
local MAX_INT = 9007199254740991

if type(ARGV[1]) ~= 'string' or not string.find(ARGV[1], '^%d+$') or tonumber(ARGV[1]) > MAX_INT then
  return redis.error_reply('ERR bad input: ARGV[1] time must be an integer in [0, 2^53)')
end
if type(ARGV[2]) ~= 'string' or ARGV[2] == '' then
  return redis.error_reply('ERR bad input: ARGV[2] event_id must not be empty')
end
local doc = ARGV[3]
if type(doc) ~= 'string' or #doc < 2 or string.byte(doc, 1) ~= 123 or string.byte(doc, #doc) ~= 125 then
  return redis.error_reply('ERR bad input: ARGV[3] info must be a JSON object')
end

local at = tonumber(ARGV[1])
local stored = redis.call('HMGET', KEYS[1], 'at', 'event_id')
if stored[1] then
  local stored_at = tonumber(stored[1])
  if stored_at > at or (stored_at == at and stored[2] >= ARGV[2]) then
    return 0
  end
end
redis.call('HSET', KEYS[1], 'at', ARGV[1], 'event_id', ARGV[2], 'doc', doc)
return 1
