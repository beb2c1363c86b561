-- Deletes the state of an asset that never registered, once nothing is left of it:
-- a compare-and-delete at the rev the caller read. The held-event sweep calls it after
-- it sent the dead letters of the asset's expired events (the state's outbox,
-- `undelivered`, which this deletes with the state), so that unregistered asset ids do
-- not keep a state forever. The seen hash is kept (it expires on its own), so a re-sent
-- copy of a settled event is still recognised.
--
-- KEYS[1]  asset state hash: rev (integer), doc (JSON of AssetState)
-- ARGV[1]  the rev the caller read: integer in [1, 2^53)
--
-- The argument is checked before anything is written: bad input is an error reply
-- 'ERR bad input: <what>' and changes nothing. The stored document is checked too: a
-- state with a registered asset or a held event is never deleted (an error reply
-- 'ERR not forgettable: <what>').
-- Returns 1 when deleted, 0 when the stored rev moved on (or the state is gone already).
local MAX_INT = 9007199254740991 -- 2^53 - 1: larger numbers are not exact in Lua

if #KEYS ~= 1 or #ARGV ~= 1 then
  return redis.error_reply('ERR bad input: expected 1 key and 1 argument')
end
local text = ARGV[1]
if type(text) ~= 'string' or not string.find(text, '^%d+$') then
  return redis.error_reply('ERR bad input: ARGV[1] expected rev must be an integer in [1, 2^53)')
end
local expected = tonumber(text)
if expected < 1 or expected > MAX_INT then
  return redis.error_reply('ERR bad input: ARGV[1] expected rev must be an integer in [1, 2^53)')
end

local stored = redis.call('HMGET', KEYS[1], 'rev', 'doc')
if not stored[1] or tonumber(stored[1]) ~= expected then
  return 0
end

local ok, doc = pcall(cjson.decode, stored[2] or '')
if not ok or type(doc) ~= 'table' then
  return redis.error_reply('ERR not forgettable: the stored state is not a JSON object')
end
local function empty(list)
  return list == nil or list == cjson.null or (type(list) == 'table' and next(list) == nil)
end
if doc.asset ~= nil and doc.asset ~= cjson.null then
  return redis.error_reply('ERR not forgettable: the asset is registered')
end
if not empty(doc.held) then
  return redis.error_reply('ERR not forgettable: lifecycle events are held for it')
end

redis.call('DEL', KEYS[1])
return 1
